"""MULTIAPPEND (RFC 3502) and literal8 in APPEND (RFC 3516), against pimap and Dovecot.

C: A1 APPEND INBOX (\\Seen) {n}  ...  (\\Flagged) "1-Feb-2020 10:00:00 +0000" {m}  ...
S: * 2 EXISTS
S: * 2 RECENT
S: A1 OK [APPENDUID 1700000000 1:2] ...

All messages or none: a message over the size limit, a bad URL or a bad flag anywhere in the
command stores nothing. The untagged responses are compared in full; of the tagged line only
the status and the response code, since the text after it is each server's own (Dovecot adds
timings).
"""

import re

import pytest

from conftest import MAX_MESSAGE_SIZE
from imapwire import flags
from msgs import crlf, message

# Above net::conn's SPOOL_FROM (64 KiB): such a literal goes to a file as it arrives.
SPOOLED = 70_000


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def appenduid(r) -> tuple[int, list[int]]:
    """The APPENDUID code's UIDVALIDITY and UIDs (RFC 4315 `uid-set`, ranges expanded)."""
    m = re.fullmatch(r"APPENDUID (\d+) ([0-9:,]+)", r.code or "")
    assert m, r.line
    uids = []
    for piece in m.group(2).split(","):
        lo, _, hi = piece.partition(":")
        uids.extend(range(int(lo), int(hi or lo) + 1))
    return int(m.group(1)), uids


def status(c, mailbox="INBOX") -> list:
    return c.ok(f"STATUS {mailbox} (MESSAGES UIDNEXT)").data("STATUS")[0][2]


def raw(c, data: bytes):
    """One command sent as is (non-synchronising literals inside)."""
    tag = c.next_tag()
    c.send(tag.encode() + b" " + data + b"\r\n")
    return c.read_until_tagged(tag)


def big(size: int, tag: str) -> bytes:
    head = crlf(f"From: a@example.org\nSubject: {tag}\n\n")
    line = (tag * 80)[:76].encode() + b"\r\n"
    return head + (line * (size // len(line) + 1))[: size - len(head) - 2] + b"\r\n"


def tmp_files(server, user="demo") -> list[str]:
    return sorted(p.name for p in (server.mail_root / user).rglob("tmp/*") if p.is_file())


def test_advertised(server):
    assert {"MULTIAPPEND", "CATENATE", "URL-PARTIAL"} <= caps(server.login())


def test_messages_get_consecutive_uids_flags_and_dates(server):
    c = server.login()
    raw(c, b"APPEND INBOX {1+}\r\nx")
    validity = int(c.ok("SELECT INBOX").codes()["UIDVALIDITY"])
    m1, m2, m3 = message("one"), message("two"), message("three")
    r = c.command("APPEND INBOX (\\Seen) ", m1,
                  ' (\\Flagged $Label) "01-Feb-2020 10:00:00 +0000" ', m2, " ", m3)
    assert r.status == "OK", r.line
    # The new keyword first (RFC 3501 §7.2.6), then the messages, as Dovecot says it.
    assert r.untagged == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label)\r\n",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label \\*)]"
        b" Flags permitted.\r\n",
        b"* 4 EXISTS\r\n",
        b"* 4 RECENT\r\n",
    ]
    assert appenduid(r) == (validity, [2, 3, 4])
    f = c.ok("UID FETCH 2:4 (FLAGS INTERNALDATE BODY.PEEK[])").fetches()
    assert [f[i]["BODY[]"] for i in (2, 3, 4)] == [m1, m2, m3]
    assert flags(f[2]["FLAGS"]) == {"\\Seen", "\\Recent"}
    assert flags(f[3]["FLAGS"]) == {"\\Flagged", "$Label", "\\Recent"}
    assert flags(f[4]["FLAGS"]) == {"\\Recent"}
    assert f[3]["INTERNALDATE"] == b"01-Feb-2020 10:00:00 +0000"


def test_literal8_and_nul_in_a_literal(server):
    """RFC 3516 §4.4: literal8 in APPEND. A NUL in a plain literal is accepted too, as
    Dovecot accepts it; FETCH sends NUL as 0x80 (both servers)."""
    c = server.login()
    msg = b"Subject: nul\r\n\r\na\0b\r\n"
    r = raw(c, b"APPEND INBOX ~{%d+}\r\n" % len(msg) + msg + b" {%d+}\r\n" % len(msg) + msg)
    assert r.status == "OK", r.line
    assert appenduid(r)[1] == [1, 2]
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1:2 (RFC822.SIZE BODY.PEEK[])").fetches()
    for i in (1, 2):
        assert f[i]["BODY[]"] == msg.replace(b"\0", b"\x80")
        assert int(f[i]["RFC822.SIZE"]) == len(msg)


def test_big_messages_each_spooled(server):
    """Several literals over the spooling threshold in one command, around a small one,
    synchronising and non-synchronising."""
    c = server.login()
    a, b, small = big(SPOOLED, "a"), big(MAX_MESSAGE_SIZE, "b"), message("small")
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {{{len(a)}+}}\r\n".encode() + a + b" " + crlf("")
           + f"{{{len(small)}+}}\r\n".encode() + small + f" {{{len(b)}}}\r\n".encode())
    assert c.read_response().startswith(b"+")
    c.send(b + b"\r\n")
    r = c.read_until_tagged(tag)
    assert r.status == "OK", r.line
    assert appenduid(r)[1] == [1, 2, 3]
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1:3 (BODY.PEEK[])").fetches()
    assert [f[i]["BODY[]"] for i in (1, 2, 3)] == [a, small, b]
    assert tmp_files(server) == []


def test_messages_together_over_the_size_limit(server):
    """Each message is under APPENDLIMIT and the spooling threshold, together they are far
    over it: all stored (the limit is per message)."""
    c = server.login()
    msgs = [big(60_000, str(i)) for i in range(4)]
    parts: list = ["APPEND INBOX"]
    for m in msgs:
        parts += [" ", m]
    r = c.command(*parts)
    assert r.status == "OK", r.line
    assert appenduid(r)[1] == [1, 2, 3, 4]
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1:4 (BODY.PEEK[])").fetches()
    assert [f[i]["BODY[]"] for i in (1, 2, 3, 4)] == msgs
    assert tmp_files(server) == []


@pytest.mark.parametrize("first", [100, SPOOLED])
def test_a_later_message_over_the_limit_stores_none(server, first):
    """The second literal is over APPENDLIMIT: refused before its `+` (pimap: [TOOBIG],
    Dovecot: [LIMIT]); the first, already received (in a file when big), is not stored."""
    c = server.login()
    raw(c, b"APPEND INBOX {1+}\r\nx")
    before = status(c)
    r = c.command("APPEND INBOX ", big(first, "a"), " ", big(MAX_MESSAGE_SIZE + 1, "b"))
    assert r.status == "NO" and r.untagged == []
    assert r.code in ("TOOBIG", "LIMIT"), r.line
    assert status(c) == before
    assert tmp_files(server) == []
    c.ok("NOOP")


def test_a_later_bad_url_stores_none(server):
    c = server.login()
    c.ok("SELECT INBOX")
    r = c.command("APPEND INBOX ", message("one"), ' CATENATE (URL "/INBOX/;UID=99")')
    assert (r.status, r.code, r.untagged) == ("NO", "BADURL /INBOX/;UID=99", [])
    assert c.ok("NOOP").untagged == []
    assert status(c) == ["MESSAGES", "0", "UIDNEXT", "1"]


def test_an_empty_later_message_stores_none(server):
    c = server.login()
    r = c.command("APPEND INBOX ", message("one"), " {0+}\r\n")
    assert (r.status, r.untagged) == ("NO", [])
    assert status(c) == ["MESSAGES", "0", "UIDNEXT", "1"]


def test_missing_mailbox(server):
    c = server.login()
    r = c.command("APPEND Nope ", message("one"), " ", message("two"))
    assert (r.status, r.code, r.untagged) == ("NO", "TRYCREATE", [])


def test_into_another_mailbox_seen_by_a_selected_session(server):
    """The other session's next command reports all the messages at once."""
    c = server.login()
    c.ok("CREATE Sent")
    w = server.login()
    w.ok("SELECT Sent")
    r = c.command("APPEND Sent ", message("one"), " ", message("two"))
    assert (r.status, r.untagged) == ("OK", [])
    assert appenduid(r)[1] == [1, 2]
    assert w.ok("NOOP").untagged == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n"]


@pytest.mark.parametrize("line", [
    "APPEND INBOX {1+}\r\nx junk",
    "APPEND INBOX CATENATE ()",
    "APPEND INBOX CATENATE (FOO \"x\")",
])
def test_bad_syntax(server, line):
    # Not compared: Dovecot also takes a message right after the previous literal without
    # the SP (pimap: BAD, RFC 3502 §6.3.11 has the SP), and a SP at the end of the line.
    c = server.login()
    r = c.command(line)
    assert (r.status, r.untagged) == ("BAD", [])
    assert status(c) == ["MESSAGES", "0", "UIDNEXT", "1"]
