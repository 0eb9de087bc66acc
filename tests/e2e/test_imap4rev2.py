"""IMAP4rev2 (RFC 9051) after `ENABLE IMAP4rev2`, through the real pimap binary.

pimap only: Debian's Dovecot 2.3 does not implement IMAP4rev2. Each test also runs an
IMAP4rev1 session on the same mailbox to show that rev1 behaviour is unchanged (the
differences are those of RFC 9051 Appendix E).
"""

import re

from imapwire import append, flags, listing
from msgs import deliver, message


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def rev2(srv, name="rev2"):
    c = srv.login(name=name)
    r = c.ok("ENABLE IMAP4rev2")
    assert r.untagged == [b"* ENABLED IMAP4rev2\r\n"]
    return c


def test_advertised_beside_rev1(pimap):
    c = pimap.connect()
    assert {"IMAP4REV1", "IMAP4REV2"} <= caps(c)
    c.login("demo", pimap.password("demo"))
    assert {"IMAP4REV1", "IMAP4REV2", "ENABLE"} <= caps(c)


def test_select_without_recent_and_unseen(pimap):
    """RFC 9051 §6.3.2 / Appendix E: no RECENT response, no [UNSEEN] code, but a LIST
    response with the mailbox name; \\Recent is never a flag."""
    c = rev2(pimap)
    for i in range(3):
        append(c, "INBOX", message(f"m{i}"))
    r = c.ok("SELECT INBOX")
    assert r.number("EXISTS") == [3]
    assert r.number("RECENT") == []
    assert "UNSEEN" not in r.codes()
    assert r.data("LIST") == [["LIST", [], b".", b"INBOX"]] or r.data("LIST") == [["LIST", [], b".", "INBOX"]]
    f = c.ok("FETCH 1:* (FLAGS)").fetches()
    assert all("\\Recent" not in flags(v["FLAGS"]) for v in f.values())
    # A delivery: EXISTS without RECENT, and no \Recent on the new message.
    deliver(pimap.maildir(), message("new one"))
    r = c.ok("NOOP")
    assert r.number("EXISTS") == [4] and r.number("RECENT") == []
    f = c.ok("FETCH 4 (FLAGS)").fetches()
    assert "\\Recent" not in flags(f[4]["FLAGS"])
    # A rev1 session on the same mailbox still gets RECENT and [UNSEEN].
    one = pimap.login(name="rev1")
    r = one.ok("EXAMINE INBOX")
    assert r.number("RECENT") != [] and "UNSEEN" in r.codes() and r.data("LIST") == []


def test_search_answers_with_esearch(pimap):
    """RFC 9051 §6.4.4: SEARCH without RETURN is `RETURN (ALL)`, answered by ESEARCH."""
    c = rev2(pimap)
    for i in range(4):
        append(c, "INBOX", message(f"m{i}"), flags="\\Seen" if i % 2 else None)
    c.ok("SELECT INBOX")
    r = c.ok("SEARCH SEEN")
    assert r.untagged == [b'* ESEARCH (TAG "%s") ALL 2,4\r\n' % r.tag.encode()]
    r = c.ok("UID SEARCH ALL")
    assert r.untagged == [b'* ESEARCH (TAG "%s") UID ALL 1:4\r\n' % r.tag.encode()]
    r = c.ok("UID SEARCH DELETED")
    assert r.untagged == [b'* ESEARCH (TAG "%s") UID\r\n' % r.tag.encode()]
    r = c.ok("SEARCH RETURN (COUNT) UNSEEN")
    assert r.untagged == [b'* ESEARCH (TAG "%s") COUNT 2\r\n' % r.tag.encode()]
    one = pimap.login(name="rev1")
    one.ok("SELECT INBOX")
    assert one.ok("SEARCH SEEN").untagged == [b"* SEARCH 2 4\r\n"]


def test_utf8_mailbox_names(pimap):
    """RFC 9051 §5.1: with IMAP4rev2 enabled, mailbox names are UTF-8 on the wire; on disk
    they stay Dovecot's modified UTF-7, which rev1 clients keep seeing."""
    c = rev2(pimap)
    c.ok('CREATE "Grüße"')
    c.ok('CREATE "Tom & Jerry"')
    assert (pimap.maildir() / ".Gr&APwA3w-e").is_dir()
    assert (pimap.maildir() / ".Tom &- Jerry").is_dir()
    names = set(listing(c.ok('LIST "" "*"')))
    assert {"Grüße", "Tom & Jerry", "INBOX"} <= names
    append(c, "Grüße", message("umlaut"))
    r = c.ok('STATUS "Grüße" (MESSAGES)')
    assert r.untagged == ['* STATUS "Grüße" (MESSAGES 1)\r\n'.encode()]
    r = c.ok('SELECT "Grüße"')
    assert r.number("EXISTS") == [1]
    assert r.data("LIST")[0][3] == "Grüße".encode()
    c.ok('COPY 1 "Tom & Jerry"')
    c.ok('SUBSCRIBE "Grüße"')
    r = c.ok('LIST (SUBSCRIBED) "" "Gr*" RETURN (STATUS (MESSAGES))')
    assert "Grüße" in listing(r)
    c.ok('RENAME "Tom & Jerry" "Tom & Jerry ✓"')
    assert "Tom & Jerry ✓" in listing(c.ok('LIST "" "Tom*"'))
    one = pimap.login(name="rev1")
    names1 = set(listing(one.ok('LIST "" "*"')))
    assert "Gr&APwA3w-e" in names1 and "Tom &- Jerry &JxM-" in names1
    r = one.ok('STATUS "Tom &- Jerry &JxM-" (MESSAGES)')
    assert b"MESSAGES 1" in r.untagged[0]


def test_status_deleted(pimap):
    """RFC 9051 §6.3.11: STATUS DELETED counts messages with \\Deleted."""
    c = rev2(pimap)
    for i in range(3):
        append(c, "INBOX", message(f"m{i}"), flags="\\Deleted" if i else None)
    r = c.ok("STATUS INBOX (MESSAGES DELETED)")
    items = r.data("STATUS")[0][2]
    assert items == ["MESSAGES", "3", "DELETED", "2"]


def test_rev1_session_is_unchanged(pimap):
    """Without ENABLE IMAP4rev2 nothing changes: SEARCH, RECENT, modified UTF-7 names."""
    c = pimap.login()
    c.ok("CREATE Gr&APwA3w-e")
    append(c, "INBOX", message("x"))
    r = c.ok("SELECT INBOX")
    assert r.number("RECENT") == [1] and r.data("LIST") == []
    assert re.match(rb"\* SEARCH 1\r\n", c.ok("SEARCH ALL").untagged[0])
    assert "Gr&APwA3w-e" in listing(c.ok('LIST "" "*"'))


def test_utf8_accept(pimap):
    """RFC 6855 §3-4: ENABLE UTF8=ACCEPT switches mailbox names to UTF-8 (without the other
    rev2 changes) and APPEND accepts `UTF8 (~{n})`."""
    c = pimap.login()
    assert "UTF8=ACCEPT" in caps(c)
    r = c.ok("ENABLE UTF8=ACCEPT")
    assert r.untagged == [b"* ENABLED UTF8=ACCEPT\r\n"]
    c.ok('CREATE "Bücher"')
    assert (pimap.maildir() / ".B&APw-cher").is_dir()
    data = "Subject: Grüße\r\nFrom: a@example.org\r\n\r\nHallo ✓\r\n".encode()
    c.send(b'A900 APPEND "B\xc3\xbccher" UTF8 (~{%d+}\r\n' % len(data) + data + b")\r\n")
    r = c.read_until_tagged("A900")
    assert r.ok and r.code.startswith("APPENDUID"), r.line
    r = c.ok('SELECT "Bücher"')
    assert r.number("RECENT") == [1]  # not rev2: \Recent still exists
    got = c.ok("FETCH 1 (BODY.PEEK[])").fetches()[1]["BODY[]"]
    assert got == data
    assert "Bücher" in listing(c.ok('LIST "" "B*"'))
