"""CATENATE (RFC 4469) with URL-PARTIAL (RFC 5550), against pimap and Dovecot.

C: A1 APPEND Drafts CATENATE (TEXT {n} ... URL "/INBOX;UIDVALIDITY=v/;UID=1/;SECTION=2.MIME"
      URL "/INBOX/;UID=1/;SECTION=2" TEXT {m} ...)
S: A1 OK [APPENDUID v' 1] ...

A URL names a message of the user's (RFC 5092, relative), a section of it as FETCH
BODY[section] gives it, a range of that. Every part is checked against what FETCH answers on
the same server. Bad URLs: `NO [BADURL url]` on both. Of a tagged line only the status and
the code are compared: the text after it is each server's own (Dovecot adds timings).
"""

import pytest

from conftest import MAX_MESSAGE_SIZE
from msgs import MULTIPART, crlf, message
from test_ext_multiappend import SPOOLED, appenduid, big, raw, status, tmp_files


@pytest.fixture
def inbox(server):
    """A session with MULTIPART as INBOX's UID 1 and an empty Drafts; (conn, UIDVALIDITY)."""
    c = server.login()
    c.ok("APPEND INBOX ", MULTIPART)
    c.ok("CREATE Drafts")
    validity = int(c.ok("SELECT INBOX").codes()["UIDVALIDITY"])
    return c, validity


def body(c, mailbox: str, uid: int) -> bytes:
    c.ok(f"EXAMINE {mailbox}")
    f = c.ok(f"UID FETCH {uid} BODY.PEEK[]").fetches()
    assert len(f) == 1, f
    return next(iter(f.values()))["BODY[]"]


def fetch(c, item: str) -> bytes:
    """BODY.PEEK[...]<...> of INBOX's UID 1 on this server."""
    c.ok("EXAMINE INBOX")
    f = c.ok(f"UID FETCH 1 (BODY.PEEK[{item}])").fetches()[1]
    return next(v for k, v in f.items() if k.startswith("BODY["))


def test_text_and_urls_with_sections_and_ranges(inbox):
    c, validity = inbox
    head = crlf("From: me@example.org\nSubject: forward\nMIME-Version: 1.0\n"
                "Content-Type: multipart/mixed; boundary=\"new\"\n\n--new\n")
    mid, tail = crlf("\n--new\n"), crlf("\n--new--\n")
    r = c.command("APPEND Drafts (\\Draft) CATENATE (TEXT ", head,
                  f' URL "/INBOX;UIDVALIDITY={validity}/;UID=1/;SECTION=1.MIME"'
                  ' URL "/INBOX/;UID=1/;SECTION=1" TEXT ', mid,
                  ' URL "/INBOX/;uid=1/;section=2.MIME" URL "/INBOX/;UID=1/;SECTION=2"'
                  ' URL "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=5.10"'
                  ' URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(Subject)" TEXT ', tail, ")")
    assert (r.status, r.untagged) == ("OK", []), r.line
    assert appenduid(r)[1] == [1]
    want = (head + fetch(c, "1.MIME") + fetch(c, "1") + mid + fetch(c, "2.MIME") + fetch(c, "2")
            + fetch(c, "TEXT")[5:15] + crlf("Subject: multipart test\n\n") + tail)
    assert body(c, "Drafts", 1) == want
    c.ok("SELECT Drafts")
    f = c.ok("FETCH 1 (FLAGS BODY.PEEK[2.MIME])").fetches()[1]
    assert "\\Draft" in f["FLAGS"]
    assert f["BODY[2.MIME]"] == fetch(c, "2.MIME")


@pytest.mark.parametrize("partial,expect", [
    ("0", slice(None)), ("0.5", slice(0, 5)), ("7", slice(7, None)), ("30.1000000", slice(30, None)),
])
def test_whole_message_and_url_partial(inbox, partial, expect):
    """RFC 5550: PARTIAL=offset[.length] of the message (or section), cut at its end."""
    c, _ = inbox
    r = c.command(f'APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;PARTIAL={partial}")')
    assert r.status == "OK", r.line
    assert r.untagged == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n"]
    assert body(c, "INBOX", 2) == MULTIPART[expect]


def test_with_multiappend(inbox):
    """CATENATE and plain messages in one MULTIAPPEND (RFC 4469 §5)."""
    c, validity = inbox
    r = c.command('APPEND Drafts CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT ',
                  b"body\r\n", ') (\\Seen) ', message("plain"),
                  ' CATENATE (URL "/INBOX/;UID=1")')
    assert (r.status, r.untagged) == ("OK", []), r.line
    assert appenduid(r)[1] == [1, 2, 3]
    header = fetch(c, "HEADER")
    assert [body(c, "Drafts", u) for u in (1, 2, 3)] == [header + b"body\r\n", message("plain"),
                                                        MULTIPART]


def bad_urls(validity: int) -> list[str]:
    return [
        "/INBOX/;UID=99",
        "/Nope/;UID=1",
        "imap://demo@127.0.0.1/INBOX/;UID=1",
        "/INBOX;UIDVALIDITY=1;UID=1",
        "/INBOX;UIDVALIDITY=x/;UID=1",
        f"/INBOX;UIDVALIDITY={validity + 1}/;UID=1",
        "/INBOX/;UID=1/;URLAUTH=anonymous",
    ]


@pytest.mark.parametrize("n", range(7))
def test_bad_url_stores_nothing(inbox, n):
    c, validity = inbox
    url = bad_urls(validity)[n]
    r = c.command(f'APPEND Drafts CATENATE (TEXT {{2+}}\r\nx\r URL "{url}")')
    assert (r.status, r.code, r.untagged) == ("NO", f"BADURL {url}", [])
    assert status(c, "Drafts") == ["MESSAGES", "0", "UIDNEXT", "1"]


def test_over_the_size_limit(server, inbox):
    """The parts together over APPENDLIMIT (pimap: [TOOBIG], Dovecot: [LIMIT])."""
    c, _ = inbox
    half = big(MAX_MESSAGE_SIZE // 2 + 100, "h")
    c.ok("APPEND Drafts ", half)
    r = c.command('APPEND Drafts CATENATE (URL "/Drafts/;UID=1" URL "/Drafts/;UID=1")')
    assert r.status == "NO" and r.code in ("TOOBIG", "LIMIT"), r.line
    assert status(c, "Drafts") == ["MESSAGES", "1", "UIDNEXT", "2"]
    assert tmp_files(server) == []


def test_spooled_text_parts(server):
    """A TEXT literal over the spooling threshold, put together with a URL."""
    c = server.login()
    a, b = big(20_000, "a"), big(SPOOLED, "b")
    c.ok("APPEND INBOX ", a)
    r = c.command("APPEND INBOX CATENATE (TEXT ", b, ' URL "/INBOX/;UID=1" TEXT ', b"end\r\n", ")")
    assert r.status == "OK", r.line
    assert body(c, "INBOX", 2) == b + a + b"end\r\n"
    assert tmp_files(server) == []


def test_empty_result_refused(pimap):
    """pimap refuses an empty message made by CATENATE as it refuses `{0}`; Dovecot stores a
    message of 0 bytes (not compared)."""
    c = pimap.login()
    r = raw(c, b"APPEND INBOX CATENATE (TEXT {0+}\r\n)")
    assert (r.status, r.code) == ("NO", "CANNOT")
    assert status(c) == ["MESSAGES", "0", "UIDNEXT", "1"]


def test_missing_section_is_a_bad_url(pimap):
    """A section the message does not have: pimap NO [BADURL] (as FETCH finds nothing there);
    Dovecot appends an empty part instead (not compared)."""
    c = pimap.login()
    c.ok("APPEND INBOX ", MULTIPART)
    r = c.command('APPEND INBOX CATENATE (TEXT {2+}\r\nx\r URL "/INBOX/;UID=1/;SECTION=3")')
    assert (r.status, r.code) == ("NO", "BADURL /INBOX/;UID=1/;SECTION=3")
