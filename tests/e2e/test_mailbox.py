"""Mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST,
LSUB, STATUS, CHECK, CLOSE, EXPUNGE (RFC 3501 §6.3, §6.4.1–3, §7.2–7.4).

The hierarchy separator is "." (Maildir++), as with Dovecot's default Maildir layout.
"""

import pytest

from imapwire import append, flags, listing, quote, text
from msgs import message

SYSTEM_FLAGS = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}


def select_info(r):
    fl = r.data("FLAGS")
    assert len(fl) == 1, r.untagged
    codes = r.codes()
    return {
        "flags": flags(fl[0][1]),
        "exists": r.number("EXISTS"),
        "recent": r.number("RECENT"),
        "codes": codes,
    }


def permanent_flags(codes):
    return set(codes["PERMANENTFLAGS"].strip("()").split())


# -- SELECT / EXAMINE ---------------------------------------------------------------------


def test_select_empty_inbox(server):
    c = server.login()
    r = c.ok("SELECT INBOX")
    info = select_info(r)
    # RFC 3501 §6.3.1: REQUIRED untagged responses FLAGS, EXISTS, RECENT; REQUIRED OK codes
    # PERMANENTFLAGS, UIDNEXT, UIDVALIDITY (UNSEEN only if there are unseen messages).
    assert SYSTEM_FLAGS <= info["flags"]
    assert info["exists"] == [0]
    assert info["recent"] == [0]
    assert int(info["codes"]["UIDVALIDITY"]) > 0
    assert int(info["codes"]["UIDNEXT"]) >= 1
    assert SYSTEM_FLAGS | {"\\*"} <= permanent_flags(info["codes"])
    assert "UNSEEN" not in info["codes"]
    assert r.code == "READ-WRITE"


def test_select_with_messages_recent_and_unseen(server):
    a = server.login()
    append(a, "INBOX", message("one"), flags="\\Seen")
    append(a, "INBOX", message("two"))
    append(a, "INBOX", message("three"))
    b = server.login()
    r = b.ok("SELECT INBOX")
    info = select_info(r)
    assert info["exists"] == [3]
    assert info["recent"] == [3]
    assert info["codes"]["UNSEEN"] == "2"  # sequence number of the first unseen message
    assert info["codes"]["UIDNEXT"] == "4"
    uidvalidity = info["codes"]["UIDVALIDITY"]
    # \Recent belongs to the first session that selected the mailbox (§2.3.2).
    c = server.login()
    info2 = select_info(c.ok("SELECT INBOX"))
    assert info2["exists"] == [3]
    assert info2["recent"] == [0]
    assert info2["codes"]["UIDVALIDITY"] == uidvalidity
    r = b.ok("FETCH 1:3 FLAGS")
    assert {k: flags(v["FLAGS"]) for k, v in r.fetches().items()} == {
        1: {"\\Seen", "\\Recent"}, 2: {"\\Recent"}, 3: {"\\Recent"}}


def test_examine_is_read_only(server):
    a = server.login()
    append(a, "INBOX", message("one"))
    b = server.login()
    r = b.ok("EXAMINE INBOX")
    assert r.code == "READ-ONLY"
    info = select_info(r)
    assert info["exists"] == [1]
    # Fetching the body in a read-only mailbox must not set \Seen (§6.4.5).
    b.ok("FETCH 1 BODY[]")
    assert "\\Seen" not in flags(b.ok("FETCH 1 FLAGS").fetches()[1]["FLAGS"])
    # Changes are refused (NO) or ignored (Dovecot: "OK Store ignored"), never applied.
    assert b.command("STORE 1 +FLAGS (\\Deleted)").status in ("OK", "NO")
    assert "\\Deleted" not in flags(b.ok("FETCH 1 FLAGS").fetches()[1]["FLAGS"])
    assert b.command("EXPUNGE").status in ("OK", "NO")
    assert b.ok("NOOP").number("EXPUNGE") == []
    # EXAMINE does not take \Recent away from the next SELECT.
    c = server.login()
    assert select_info(c.ok("SELECT INBOX"))["recent"] == [1]


def test_select_missing_mailbox_leaves_selected_state(server):
    c = server.login()
    append(c, "INBOX", message("one"))
    c.ok("SELECT INBOX")
    r = c.command("SELECT NoSuchBox")
    assert r.status == "NO", r.line
    # §6.3.1: a failed SELECT leaves the client in the authenticated state.
    assert c.command("FETCH 1 FLAGS").status in ("BAD", "NO")


def test_select_inbox_is_case_insensitive(server):
    c = server.login()
    c.ok("SELECT inbox")
    c.ok('SELECT "InBoX"')


# -- CREATE / DELETE / RENAME -------------------------------------------------------------


def test_create_list_and_maildir_layout(server):
    c = server.login()
    c.ok("CREATE Work")
    c.ok("CREATE Work.Sub")
    c.ok('CREATE "Two Words"')
    names = listing(c.ok('LIST "" "*"'))
    assert set(names) == {"INBOX", "Work", "Work.Sub", "Two Words"}
    assert all(d == "." for _, d in names.values())
    # Dovecot's Maildir++ layout on disk (see shared notes: dovecot-compat.md).
    root = server.maildir()
    for folder in (".Work", ".Work.Sub", ".Two Words"):
        assert (root / folder / "cur").is_dir(), folder
        assert (root / folder / "new").is_dir(), folder
        assert (root / folder / "tmp").is_dir(), folder
        assert (root / folder / "maildirfolder").is_file(), folder


def test_create_existing_and_inbox_fail(server):
    c = server.login()
    c.ok("CREATE Work")
    assert c.command("CREATE Work").status == "NO"
    assert c.command("CREATE INBOX").status == "NO"
    assert c.command("CREATE inbox").status == "NO"


def test_create_with_trailing_separator(server):
    c = server.login()
    # §6.3.3: a trailing separator declares the intent to create names under it.
    c.ok('CREATE "Projects."')
    c.ok('CREATE "Projects.Alpha"')
    names = listing(c.ok('LIST "" "Projects*"'))
    assert "Projects.Alpha" in names
    assert "Projects" in names


def test_create_deep_name_lists_superiors(server):
    c = server.login()
    c.ok("CREATE A.B.C")
    names = listing(c.ok('LIST "" "*"'))
    assert "A.B.C" in names
    # §6.3.3 SHOULD create superiors; at least they must be listed (maybe \Noselect) since
    # a client walks the tree with "%".
    assert "A" in listing(c.ok('LIST "" "%"'))
    assert "A.B" in listing(c.ok('LIST "" "A.%"'))
    c.ok("SELECT A.B.C")


def attrs_by_name(r) -> dict[str, list[str]]:
    """{name: attributes in the order sent} of every LIST line."""
    return {text(d[3]): [str(a) for a in d[1]] for d in r.data("LIST")}


@pytest.mark.parametrize("command, expected", [
    ('LIST "" "*"', {"INBOX": ["\\HasNoChildren"], "A": ["\\Noselect", "\\HasChildren"],
                     "A.B": ["\\Noselect", "\\HasChildren"], "A.B.C": ["\\HasNoChildren"]}),
    ('LIST "" "A*"', {"A": ["\\Noselect", "\\HasChildren"],
                      "A.B": ["\\Noselect", "\\HasChildren"], "A.B.C": ["\\HasNoChildren"]}),
    ('LIST "" "A.*"', {"A.B": ["\\Noselect", "\\HasChildren"], "A.B.C": ["\\HasNoChildren"]}),
    ('LIST "" "A.B"', {"A.B": ["\\Noselect", "\\HasChildren"]}),
    # RFC 5258 §3.4: with the extended syntax the same parents are \NonExistent.
    ('LIST "" "*" RETURN (CHILDREN)', {
        "INBOX": ["\\HasNoChildren"], "A": ["\\NonExistent", "\\HasChildren"],
        "A.B": ["\\NonExistent", "\\HasChildren"], "A.B.C": ["\\HasNoChildren"]}),
    ('LIST () "" "A.B"', {"A.B": ["\\NonExistent"]}),
    ('LIST "" "A.B" RETURN ()', {"A.B": ["\\NonExistent"]}),
])
def test_list_star_shows_missing_parents(server, command, expected):
    """After `CREATE A.B.C` (whose parents are not created), `LIST "" "*"` lists the
    parents too, \\Noselect, as Dovecot does: clients draw the folder tree from it.

    C: A1 LIST "" "*"
    S: * LIST (\\Noselect \\HasChildren) "." A
    S: * LIST (\\Noselect \\HasChildren) "." A.B
    S: * LIST (\\HasNoChildren) "." A.B.C
    """
    c = server.login()
    c.ok("CREATE A.B.C")
    got = attrs_by_name(c.ok(command))
    if "(" in command and "CHILDREN" not in command:
        # Children attributes were not asked for: Dovecot leaves them out, pimap sends them
        # anyway (RFC 5258 §4 allows both).
        got = {n: [a for a in v if "children" not in a.lower()] for n, v in got.items()}
    assert got == expected
    assert c.command("SELECT A.B").status == "NO"


def test_delete(server):
    c = server.login()
    c.ok("CREATE Trash")
    append(c, "Trash", message("x"))
    c.ok("DELETE Trash")
    assert "Trash" not in listing(c.ok('LIST "" "*"'))
    assert not (server.maildir() / ".Trash").exists()
    assert c.command("DELETE Trash").status == "NO"
    assert c.command("DELETE INBOX").status == "NO"
    assert c.command("SELECT Trash").status == "NO"
    # The name can be reused; it is a new mailbox with no messages.
    c.ok("CREATE Trash")
    r = c.ok("SELECT Trash")
    assert r.number("EXISTS") == [0]


def test_rename_moves_messages_and_children(server):
    c = server.login()
    c.ok("CREATE Work")
    c.ok("CREATE Work.Sub")
    append(c, "Work", message("w1"))
    append(c, "Work.Sub", message("s1"))
    append(c, "Work.Sub", message("s2"))
    c.ok("RENAME Work Play")
    names = listing(c.ok('LIST "" "*"'))
    assert "Work" not in names and "Work.Sub" not in names
    # §6.3.5: inferior hierarchical names MUST also be renamed.
    assert {"Play", "Play.Sub"} <= set(names)
    assert status(c, "Play", "MESSAGES") == {"MESSAGES": 1}
    assert status(c, "Play.Sub", "MESSAGES") == {"MESSAGES": 2}
    assert (server.maildir() / ".Play.Sub" / "maildirfolder").is_file()


def test_rename_errors(server):
    c = server.login()
    c.ok("CREATE A")
    c.ok("CREATE B")
    assert c.command("RENAME A B").status == "NO"  # destination exists
    assert c.command("RENAME Nope C").status == "NO"  # source missing
    assert {"A", "B"} <= set(listing(c.ok('LIST "" "*"')))


def test_rename_inbox_moves_messages_and_leaves_inbox_empty(server):
    c = server.login()
    c.ok("CREATE Keep")
    for i in range(3):
        append(c, "INBOX", message(f"m{i}"), flags="\\Seen" if i == 0 else None)
    r = c.command("RENAME INBOX Old")
    if server.kind == "dovecot":
        # Dovecot's Maildir++ INBOX is the root directory and it refuses (NO [CANNOT]);
        # RFC 3501 §6.3.5 permits the rename, and pimap implements it.
        assert r.status == "NO" and r.code == "CANNOT", r.line
        pytest.skip("Dovecot does not rename INBOX with the Maildir++ layout")
    assert r.ok, r.line
    # §6.3.5: renaming INBOX moves all its messages to a new mailbox; INBOX stays, empty;
    # INBOX's inferiors (none here) and other mailboxes are untouched.
    assert status(c, "Old", "MESSAGES UNSEEN") == {"MESSAGES": 3, "UNSEEN": 2}
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": 0}
    assert {"INBOX", "Old", "Keep"} <= set(listing(c.ok('LIST "" "*"')))
    r = c.ok("SELECT Old")
    assert r.number("EXISTS") == [3]
    append(c, "INBOX", message("new"))
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": 1}


# -- SUBSCRIBE / LSUB ---------------------------------------------------------------------


def test_subscribe_unsubscribe_lsub(server):
    c = server.login()
    c.ok("CREATE Work")
    c.ok("CREATE Work.Sub")
    c.ok("CREATE Other")
    c.ok("SUBSCRIBE Work")
    c.ok("SUBSCRIBE Work.Sub")
    c.ok("SUBSCRIBE INBOX")
    assert set(listing(c.ok('LSUB "" "*"'), "LSUB")) == {"INBOX", "Work", "Work.Sub"}
    c.ok("UNSUBSCRIBE Work")
    assert set(listing(c.ok('LSUB "" "*"'), "LSUB")) == {"INBOX", "Work.Sub"}
    # §6.3.9: with "%", a subscribed inferior makes its unsubscribed parent show, \Noselect.
    top = listing(c.ok('LSUB "" "%"'), "LSUB")
    assert set(top) == {"INBOX", "Work"}
    assert "\\noselect" in top["Work"][0]
    # Subscriptions survive the session.
    c.logout()
    c2 = server.login()
    assert set(listing(c2.ok('LSUB "" "*"'), "LSUB")) == {"INBOX", "Work.Sub"}


def test_subscriptions_file_on_disk(server):
    c = server.login()
    c.ok("CREATE Work")
    c.ok("CREATE Work.Sub")
    c.ok("SUBSCRIBE Work.Sub")
    c.ok("SUBSCRIBE Work")
    c.logout()
    raw = (server.maildir() / "subscriptions").read_text()
    # Dovecot's file: v1 (one name per line, "." separator) or v2 ("V\t2" header, names
    # with TAB between hierarchy levels).
    lines = raw.split("\n")
    if lines and lines[0] == "V\t2":
        names = {ln.replace("\t", ".") for ln in lines[2:] if ln}
    else:
        names = {ln for ln in lines if ln}
    assert names == {"Work", "Work.Sub"}


def test_unsubscribe_not_subscribed(server):
    c = server.login()
    c.ok("CREATE Work")
    # RFC 3501 lets this be OK or NO; it must not be BAD and must not break the session.
    assert c.command("UNSUBSCRIBE Work").status in ("OK", "NO")
    c.ok("NOOP")


# -- LIST ---------------------------------------------------------------------------------


@pytest.fixture
def tree(server):
    c = server.login()
    for name in ("Work", "Work.Sub", "Work.Sub.Deep", "Other"):
        c.ok(f"CREATE {name}")
    return c


def test_list_empty_pattern_returns_delimiter(server):
    c = server.login()
    r = c.ok('LIST "" ""')
    # §6.3.8: LIST "" "" returns the hierarchy delimiter and the root name, \Noselect.
    rows = r.data("LIST")
    assert len(rows) == 1
    attrs, delim, name = rows[0][1], rows[0][2], rows[0][3]
    assert "\\noselect" in {str(a).lower() for a in attrs}
    assert delim == b"."
    assert name in (b"", "")


def test_list_star(server, tree):
    names = listing(tree.ok('LIST "" "*"'))
    assert set(names) == {"INBOX", "Work", "Work.Sub", "Work.Sub.Deep", "Other"}


def test_list_percent_one_level(server, tree):
    assert set(listing(tree.ok('LIST "" "%"'))) == {"INBOX", "Work", "Other"}
    assert set(listing(tree.ok('LIST "" "Work.%"'))) == {"Work.Sub"}
    assert set(listing(tree.ok('LIST "" "Work.%.%"'))) == {"Work.Sub.Deep"}


def test_list_with_reference(server, tree):
    # §6.3.8: the reference is prefixed to the pattern (here it ends with the delimiter).
    assert set(listing(tree.ok('LIST "Work." "%"'))) == {"Work.Sub"}
    assert set(listing(tree.ok('LIST "Work." "*"'))) == {"Work.Sub", "Work.Sub.Deep"}


def test_list_patterns(server, tree):
    assert set(listing(tree.ok('LIST "" "W*"'))) == {"Work", "Work.Sub", "Work.Sub.Deep"}
    assert set(listing(tree.ok('LIST "" "*Sub*"'))) == {"Work.Sub", "Work.Sub.Deep"}
    assert set(listing(tree.ok('LIST "" "Nothing*"'))) == set()
    # Mailbox names are case-sensitive, except INBOX.
    assert set(listing(tree.ok('LIST "" "work"'))) == set()
    assert set(listing(tree.ok('LIST "" "inbox"'))) == {"INBOX"}


def test_list_non_ascii_name_in_modified_utf7(server):
    c = server.login()
    # RFC 3501 §5.1.3: "Entwürfe" in modified UTF-7.
    c.ok('CREATE "Entw&APw-rfe"')
    assert "Entw&APw-rfe" in listing(c.ok('LIST "" "*"'))
    # Dovecot keeps the mUTF-7 name on disk.
    assert (server.maildir() / ".Entw&APw-rfe").is_dir()


# -- STATUS -------------------------------------------------------------------------------


def status(c, mailbox, items):
    r = c.ok(f"STATUS {quote(mailbox)} ({items})")
    rows = r.data("STATUS")
    assert len(rows) == 1, r.untagged
    vals = rows[0][2]
    return {str(k).upper(): int(v) for k, v in zip(vals[0::2], vals[1::2])}


def test_status(server):
    c = server.login()
    c.ok("CREATE Work")
    append(c, "Work", message("a"), flags="\\Seen")
    append(c, "Work", message("b"))
    append(c, "Work", message("c"))
    st = status(c, "Work", "MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN")
    assert st["MESSAGES"] == 3
    assert st["RECENT"] == 3
    assert st["UIDNEXT"] == 4
    assert st["UNSEEN"] == 2
    sel = c.ok("SELECT Work").codes()
    assert int(sel["UIDVALIDITY"]) == st["UIDVALIDITY"]
    assert c.command("STATUS NoSuchBox (MESSAGES)").status == "NO"


def test_status_reports_the_requested_name(server):
    c = server.login()
    c.ok("CREATE Work.Sub")
    r = c.ok("STATUS Work.Sub (MESSAGES)")
    assert r.data("STATUS")[0][1] in ("Work.Sub", b"Work.Sub")


# -- CHECK / CLOSE / EXPUNGE --------------------------------------------------------------


def test_check(server):
    c = server.login()
    assert c.command("CHECK").status in ("BAD", "NO")  # only in the selected state
    c.ok("SELECT INBOX")
    c.ok("CHECK")


def test_close_expunges_silently(server):
    c = server.login()
    for i in range(3):
        append(c, "INBOX", message(f"m{i}"))
    c.ok("SELECT INBOX")
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("CLOSE")
    # §6.4.2: no untagged EXPUNGE responses are sent.
    assert r.number("EXPUNGE") == []
    assert c.command("FETCH 1 FLAGS").status in ("BAD", "NO")  # back to authenticated
    r = c.ok("SELECT INBOX")
    assert r.number("EXISTS") == [2]
    subjects = c.ok("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]").fetches()
    assert [v["BODY[HEADER.FIELDS (SUBJECT)]"] for _, v in sorted(subjects.items())] == [
        b"Subject: m0\r\n\r\n", b"Subject: m2\r\n\r\n"]


def test_close_after_examine_does_not_expunge(server):
    c = server.login()
    append(c, "INBOX", message("m0"), flags="\\Deleted")
    c.ok("EXAMINE INBOX")
    c.ok("CLOSE")
    assert status(c, "INBOX", "MESSAGES") == {"MESSAGES": 1}


def test_expunge_reports_correct_sequence_numbers(server):
    c = server.login()
    for i in range(1, 7):
        append(c, "INBOX", message(f"m{i}"))
    c.ok("SELECT INBOX")
    c.ok("STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("EXPUNGE")
    seqs = r.number("EXPUNGE")
    assert len(seqs) == 3
    # Apply the EXPUNGE responses in order (§7.4.1: each renumbers the ones after it) and
    # check they removed exactly messages 2, 3 and 5 (UIDs 2, 3, 5).
    uids = [1, 2, 3, 4, 5, 6]
    for s in seqs:
        del uids[s - 1]
    assert uids == [1, 4, 6]
    r = c.ok("FETCH 1:* UID")
    assert {k: int(v["UID"]) for k, v in r.fetches().items()} == {1: 1, 2: 4, 3: 6}
    assert c.ok("EXPUNGE").number("EXPUNGE") == []  # nothing left to expunge


def test_expunge_removes_files(server):
    c = server.login()
    append(c, "INBOX", message("keep"))
    append(c, "INBOX", message("drop"), flags="\\Deleted")
    c.ok("SELECT INBOX")
    c.ok("EXPUNGE")
    c.logout()
    root = server.maildir()
    files = list((root / "cur").iterdir()) + list((root / "new").iterdir())
    assert len(files) == 1
    assert b"Subject: keep" in files[0].read_bytes()
