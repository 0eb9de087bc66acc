"""APPEND (RFC 3501 §6.3.11): flags, internal date, literals, byte-exact storage, limits."""

import datetime as dt

from conftest import MAX_MESSAGE_SIZE
from imapwire import append, flags
from msgs import MULTIPART, SIMPLE, crlf, message


def internaldate(value) -> dt.datetime:
    """Parse an IMAP date-time (§9 `date-time`) to an aware datetime."""
    s = value.decode() if isinstance(value, bytes) else value
    return dt.datetime.strptime(s.strip(), "%d-%b-%Y %H:%M:%S %z")


def test_append_flags_date_and_read_back_byte_exact(server):
    c = server.login()
    r = c.ok('APPEND INBOX (\\Seen \\Flagged $Label1) "17-Jul-1996 02:44:25 -0700" ', SIMPLE)
    assert r.ok
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])").fetches()[1]
    assert flags(f["FLAGS"]) - {"\\Recent"} == {"\\Seen", "\\Flagged", "$Label1"}
    assert internaldate(f["INTERNALDATE"]) == internaldate("17-Jul-1996 02:44:25 -0700")
    assert int(f["RFC822.SIZE"]) == len(SIMPLE)
    assert f["BODY[]"] == SIMPLE


def test_append_without_flags_or_date(server):
    c = server.login()
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
    append(c, "INBOX", MULTIPART)
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])").fetches()[1]
    assert flags(f["FLAGS"]) - {"\\Recent"} == set()
    after = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2)
    assert before <= internaldate(f["INTERNALDATE"]) <= after
    assert f["BODY[]"] == MULTIPART


def test_append_8bit_and_binaryish_content_byte_exact(server):
    body = "Grüße aus Köln — ünïcödé\r\n".encode() + bytes(range(0x80, 0x100)) + b"\r\nend\r\n"
    msg = crlf("From: a@example.org\nSubject: 8bit\nContent-Type: text/plain; charset=utf-8\n"
               "Content-Transfer-Encoding: 8bit\n\n") + body
    c = server.login()
    append(c, "INBOX", msg)
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT])").fetches()[1]
    assert f["BODY[]"] == msg
    assert f["BODY[TEXT]"] == body
    assert int(f["RFC822.SIZE"]) == len(msg)


def test_append_lf_only_message_is_served_with_crlf(server):
    # A message stored with bare LF (as MDAs often write Maildir files) is sent with CRLF,
    # and RFC822.SIZE counts the CRLFs (the W= "virtual size" of Dovecot's file names).
    c = server.login()
    append(c, "INBOX", b"Subject: lf\nX: y\n\nbody\nline2\n")
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER])").fetches()[1]
    want = b"Subject: lf\r\nX: y\r\n\r\nbody\r\nline2\r\n"
    assert f["BODY[]"] == want
    assert f["BODY[HEADER]"] == b"Subject: lf\r\nX: y\r\n\r\n"
    assert int(f["RFC822.SIZE"]) == len(want)


def test_append_to_selected_mailbox_sends_exists(server):
    c = server.login()
    c.ok("SELECT INBOX")
    r = append(c, "INBOX", message("x"))
    # §6.3.11: the server SHOULD notify the client via an untagged EXISTS; both do at once.
    assert r.number("EXISTS") == [1]
    # The new message is \Recent for the session that has the mailbox selected.
    assert r.number("RECENT") == [1]
    r = append(c, "INBOX", message("y"))
    assert r.number("EXISTS") == [2]
    assert r.number("RECENT") == [2]


def test_append_to_missing_mailbox_says_trycreate(server):
    c = server.login()
    r = c.command("APPEND NoSuchBox ", message("x"))
    assert r.status == "NO", r.line
    # §6.3.11: MUST send [TRYCREATE] unless the mailbox can never be created.
    assert r.code == "TRYCREATE"


def test_append_to_other_mailbox_with_keywords(server):
    c = server.login()
    c.ok("CREATE Archive")
    append(c, "Archive", message("kw"), flags="$Forwarded Project-X")
    c.ok("SELECT Archive")
    assert flags(c.ok("FETCH 1 FLAGS").fetches()[1]["FLAGS"]) - {"\\Recent"} == {"$Forwarded", "Project-X"}


def test_append_bad_date_is_bad(server):
    c = server.login()
    r = c.command('APPEND INBOX "32-Foo-2020 99:00:00 +0000" ', message("x"))
    assert r.status == "BAD", r.line
    c.ok("NOOP")


def test_append_over_size_limit_is_no(server):
    c = server.login()
    big = message("big", body="x" * 78 + "\r\n") + b"y" * 78 + b"\r\n"
    big += (b"z" * 98 + b"\r\n") * ((MAX_MESSAGE_SIZE * 2) // 100)
    assert len(big) > MAX_MESSAGE_SIZE
    r = c.command("APPEND INBOX ", big)
    # The server may refuse before the literal (no "+") or after reading it; either way NO.
    assert r.status == "NO", r.line
    # The connection stays in sync: the next command works, nothing was stored.
    c.ok("NOOP")
    r = c.ok("SELECT INBOX")
    assert r.number("EXISTS") == [0]
    # Just under the limit is fine.
    ok = message("fits", body="a" * 100 + "\r\n")
    ok += b"b" * (MAX_MESSAGE_SIZE // 2)
    append(c, "INBOX", ok)
