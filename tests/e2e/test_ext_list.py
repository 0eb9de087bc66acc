"""LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819), against Dovecot and pimap.

C: A1 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"
S: * LIST () "." "Work" ("CHILDINFO" ("SUBSCRIBED"))
"""

import pytest

from imapwire import append, listing, parse, text
from msgs import message


def caps(c) -> list[str]:
    return [str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]]


@pytest.fixture
def tree(server):
    c = server.login()
    for name in ["Work", "Work.Reports", "Home", "Old"]:
        c.ok(f"CREATE {name}")
    c.ok("SUBSCRIBE Work.Reports")
    c.ok("SUBSCRIBE Home")
    c.ok("CREATE Gone")
    c.ok("SUBSCRIBE Gone")
    c.ok("DELETE Gone")  # the subscription outlives the mailbox (RFC 3501 §6.3.4)
    return c


def ext(resp) -> dict[str, list]:
    """{name: extended data items} for LIST lines that carry them."""
    out = {}
    for d in resp.data("LIST"):
        if len(d) > 4:
            out[text(d[3])] = d[4]
    return out


def test_advertised(server):
    assert {"LIST-EXTENDED", "LIST-STATUS"} <= set(caps(server.login()))


def test_subscribed_selection(tree):
    got = listing(tree.ok('LIST (SUBSCRIBED) "" "*"'))
    assert set(got) == {"Work.Reports", "Home", "Gone"}
    for name in got:
        assert "\\subscribed" in got[name][0]
    assert "\\nonexistent" in got["Gone"][0]
    assert "\\nonexistent" not in got["Home"][0]


def test_recursivematch_childinfo(tree):
    r = tree.ok('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    got = listing(r)
    assert set(got) == {"Work", "Home", "Gone"}
    assert "\\subscribed" not in got["Work"][0]
    info = ext(r)
    assert text(info["Work"][0]).upper() == "CHILDINFO"
    assert [text(x).upper() for x in info["Work"][1]] == ["SUBSCRIBED"]
    assert "Home" not in info


def test_recursivematch_needs_another_selection_option(tree):
    assert tree.command('LIST (RECURSIVEMATCH) "" "*"').status == "BAD"


def test_return_subscribed(tree):
    got = listing(tree.ok('LIST "" "*" RETURN (SUBSCRIBED)'))
    assert "\\subscribed" in got["Home"][0]
    assert "\\subscribed" not in got["Old"][0]
    assert "Gone" not in got  # RETURN options never change what is selected


def test_return_children(tree):
    got = listing(tree.ok('LIST "" "%" RETURN (CHILDREN)'))
    assert "\\haschildren" in got["Work"][0]
    assert "\\hasnochildren" in got["Home"][0]


def test_several_patterns(tree):
    got = listing(tree.ok('LIST "" ("Home" "Work.*")'))
    assert set(got) == {"Home", "Work.Reports"}


def test_remote_selection_is_plain_list(tree):
    got = listing(tree.ok('LIST (REMOTE) "" "%"'))
    assert {"INBOX", "Work", "Home", "Old"} <= set(got)


def test_list_status(tree):
    """RFC 5819: a STATUS response follows each selectable mailbox listed."""
    append(tree, "Home", message("h1"))
    append(tree, "Home", message("h2"))
    r = tree.ok('LIST "" "%" RETURN (STATUS (MESSAGES UIDNEXT))')
    statuses = {}
    for d in r.data("STATUS"):
        name = text(d[1])
        items = d[2]
        statuses[name] = {str(items[i]).upper(): int(items[i + 1]) for i in range(0, len(items), 2)}
    assert statuses["Home"] == {"MESSAGES": 2, "UIDNEXT": 3}
    assert statuses["Old"] == {"MESSAGES": 0, "UIDNEXT": 1}
    assert set(statuses) == set(listing(r))
    # Each STATUS comes right after its LIST line.
    kinds = [parse(u)[1] for u in r.untagged]
    assert kinds[:2] == ["LIST", "STATUS"]


def test_list_status_skips_nonexistent(tree):
    r = tree.ok('LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))')
    names = {text(d[1]) for d in r.data("STATUS")}
    assert names == {"Home", "Work.Reports"}


# -- RECURSIVEMATCH: the examples of RFC 5258 §5 (with "." as the separator) -----------------

def sub_listing(c, command: str) -> dict[str, tuple[set[str], bool]]:
    """{name: (attributes, CHILDINFO ("SUBSCRIBED") given)} of a LIST. Children attributes
    count only when asked for (RETURN (CHILDREN)): unasked, Dovecot leaves them out and pimap
    sends them (RFC 5258 §4 allows both)."""
    r = c.ok(command)
    info = ext(r)
    out = {}
    for name, (attrs, _) in listing(r).items():
        if "CHILDREN" not in command:
            attrs = {a for a in attrs if "children" not in a}
        childinfo = name in info
        if childinfo:
            assert text(info[name][0]).upper() == "CHILDINFO"
            assert [text(x).upper() for x in info[name][1]] == ["SUBSCRIBED"]
        out[name] = (attrs, childinfo)
    return out


def test_rfc5258_example_8(server):
    """RFC 5258 §5 example 8: Foo, Foo/Bar, Foo/Baz, Moo."""
    c = server.login()
    for name in ["Foo", "Foo.Bar", "Foo.Baz", "Moo"]:
        c.ok(f"CREATE {name}")
    # A: only Foo/Baz is subscribed; "%" reaches it only through RECURSIVEMATCH.
    c.ok("SUBSCRIBE Foo.Baz")
    assert sub_listing(c, 'LIST (SUBSCRIBED) "" "*"') == {"Foo.Baz": ({"\\subscribed"}, False)}
    assert sub_listing(c, 'LIST (SUBSCRIBED) "" "%"') == {}
    assert sub_listing(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == {"Foo": (set(), True)}
    # A1: Foo is subscribed too.
    c.ok("SUBSCRIBE Foo")
    assert sub_listing(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == {
        "Foo": ({"\\subscribed"}, True)}
    # A2: a subscribed name whose parent does not exist.
    c.ok("UNSUBSCRIBE Foo")
    c.ok("UNSUBSCRIBE Foo.Baz")
    c.ok("CREATE Xyzzy.Plugh")
    c.ok("SUBSCRIBE Xyzzy.Plugh")
    c.ok("DELETE Xyzzy.Plugh")
    assert sub_listing(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == {
        "Xyzzy": ({"\\nonexistent"}, True)}
    # B: nothing subscribed, nothing listed.
    c.ok("UNSUBSCRIBE Xyzzy.Plugh")
    assert sub_listing(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == {}
    # C: Foo and Moo subscribed, no subscribed child: no CHILDINFO.
    c.ok("SUBSCRIBE Foo")
    c.ok("SUBSCRIBE Moo")
    assert sub_listing(c, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)') == {
        "Foo": ({"\\subscribed", "\\haschildren"}, False),
        "Moo": ({"\\subscribed", "\\hasnochildren"}, False),
    }


@pytest.fixture
def example9(server):
    """RFC 5258 §5 example 9's mailboxes and subscriptions."""
    c = server.login()
    for name in ["foo2", "foo2.bar1", "foo2.bar2", "baz2", "baz2.bar2", "baz2.bar22",
                 "baz2.bar222", "eps2", "eps2.mamba", "qux2.bar2"]:
        c.ok(f"CREATE {name}")
    for name in ["foo2.bar1", "foo2.bar2", "baz2.bar2", "baz2.bar22", "baz2.bar222", "eps2",
                 "eps2.mamba", "qux2.bar2"]:
        c.ok(f"SUBSCRIBE {name}")
    return c


def test_rfc5258_example_9(example9):
    """`*2`: foo2 is listed (with CHILDINFO) for foo2/bar1, which `*2` does not match; baz2
    is not, since its subscribed children all match and are listed themselves."""
    s = {"\\subscribed"}
    assert sub_listing(example9, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*2"') == {
        "foo2": (set(), True),
        "foo2.bar2": (s, False),
        "baz2.bar2": (s, False),
        "baz2.bar22": (s, False),
        "baz2.bar222": (s, False),
        "eps2": (s, True),
        "qux2.bar2": (s, False),
    }


def test_recursivematch_star_and_percent(example9):
    """The same names with `*` (every subscription matches: no parent is added, a listed
    subscribed parent still gets CHILDINFO, as Dovecot answers) and with `%`."""
    s = {"\\subscribed"}
    assert sub_listing(example9, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"') == {
        "foo2.bar1": (s, False),
        "foo2.bar2": (s, False),
        "baz2.bar2": (s, False),
        "baz2.bar22": (s, False),
        "baz2.bar222": (s, False),
        "eps2": (s, True),
        "eps2.mamba": (s, False),
        "qux2.bar2": (s, False),
    }
    assert sub_listing(example9, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == {
        "foo2": (set(), True),
        "baz2": (set(), True),
        "eps2": (s, True),
        "qux2": ({"\\nonexistent"}, True),
    }
