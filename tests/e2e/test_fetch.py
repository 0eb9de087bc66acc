"""FETCH (RFC 3501 §6.4.5, §7.4.2): data items, sections, partials, and \\Seen side effects.

Expected ENVELOPE/BODYSTRUCTURE values are the ones RFC 3501 defines for these messages;
Debian's Dovecot produces exactly them (the Dovecot run of each test checks that).
"""

import pytest

from imapwire import append, flags
from msgs import (MULTIPART, MULTIPART_PART1_BODY, MULTIPART_PART1_MIME, MULTIPART_PART2_BODY, SIMPLE,
                  SIMPLE_ENVELOPE)


@pytest.fixture
def box(server):
    """INBOX with SIMPLE (1) and MULTIPART (2), selected read-write."""
    c = server.login()
    append(c, "INBOX", SIMPLE, date="17-Jul-1996 02:44:25 -0700")
    append(c, "INBOX", MULTIPART)
    c.ok("SELECT INBOX")
    return c


def lower(x):
    """Case-fold every string in a parsed structure (types, subtypes, parameter names)."""
    if isinstance(x, list):
        return [lower(i) for i in x]
    if isinstance(x, bytes):
        return x.lower()
    if isinstance(x, str):
        return x.lower()
    return x


def test_envelope(box):
    f = box.ok("FETCH 1 ENVELOPE").fetches()[1]
    assert f["ENVELOPE"] == SIMPLE_ENVELOPE


def test_envelope_multipart_and_missing_fields(box):
    env = box.ok("FETCH 2 ENVELOPE").fetches()[2]["ENVELOPE"]
    bob = [[b"Bob", None, b"bob", b"example.net"]]
    assert env == [b"Wed, 11 Mar 2020 10:00:00 +0100", b"multipart test", bob, bob, bob,
                   [[b"Alice Example", None, b"alice", b"example.org"]], None, None, None,
                   b"<mp1@example.net>"]


def test_bodystructure_single_part(box):
    f = box.ok("FETCH 1 (BODYSTRUCTURE BODY)").fetches()[1]
    body_len = len(SIMPLE.split(b"\r\n\r\n", 1)[1])
    core = [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", str(body_len), "2"]
    # body-type-text: type subtype params id desc encoding size lines [extension data]
    assert lower(f["BODYSTRUCTURE"][:8]) == core
    assert lower(f["BODY"]) == core  # BODY is the non-extensible form: no extension data


def test_bodystructure_multipart(box):
    f = box.ok("FETCH 2 (BODYSTRUCTURE BODY)").fetches()[2]
    bs = lower(f["BODYSTRUCTURE"])
    part1, part2, subtype = bs[0], bs[1], bs[2]
    assert part1[:8] == [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"quoted-printable",
                         str(len(MULTIPART_PART1_BODY)), "2"]
    assert part2[:7] == [b"application", b"octet-stream", [b"name", b"a.bin"], None, None, b"base64",
                         str(len(MULTIPART_PART2_BODY))]
    assert subtype == b"mixed"
    # Multipart extension data starts with the body parameters (the boundary).
    assert bs[3] == [b"boundary", b"xyz"]
    # Disposition of part 2 is in its extension data: md5, then disposition.
    assert part2[8] == [b"attachment", [b"filename", b"a.bin"]]
    body = lower(f["BODY"])
    assert body[0] == part1[:8] and body[1] == part2[:7] and body[2] == b"mixed" and len(body) == 3


def test_flags_internaldate_size_uid(box):
    f = box.ok("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE UID)").fetches()[1]
    assert flags(f["FLAGS"]) == {"\\Recent"}
    assert f["INTERNALDATE"] == b"17-Jul-1996 09:44:25 +0000"  # servers run with TZ=UTC
    assert f["RFC822.SIZE"] == str(len(SIMPLE))
    assert f["UID"] == "1"


def test_macros(box):
    fast = box.ok("FETCH 1 FAST").fetches()[1]
    assert set(fast) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE"}
    full = box.ok("FETCH 1 ALL").fetches()[1]
    assert set(full) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"}
    full = box.ok("FETCH 1 FULL").fetches()[1]
    assert set(full) == {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"}


def test_header_fields(box):
    f = box.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]").fetches()[1]
    # Fields in message order, then the blank line; the item name comes back without PEEK.
    assert f["BODY[HEADER.FIELDS (SUBJECT FROM)]"] == (
        b"From: Alice Example <alice@example.org>\r\nSubject: Quarterly report\r\n\r\n")


def test_header_fields_not(box):
    f = box.ok("FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (DATE TO)]").fetches()[2]
    assert f["BODY[HEADER.FIELDS.NOT (DATE TO)]"] == (
        b"From: Bob <bob@example.net>\r\nSubject: multipart test\r\nMessage-ID: <mp1@example.net>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n")


def test_header_and_text_sections(box):
    f = box.ok("FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] RFC822.HEADER)").fetches()[1]
    head, text = SIMPLE.split(b"\r\n\r\n", 1)
    assert f["BODY[HEADER]"] == head + b"\r\n\r\n"
    assert f["BODY[TEXT]"] == text
    assert f["RFC822.HEADER"] == head + b"\r\n\r\n"


def test_partial_fetch(box):
    f = box.ok("FETCH 2 BODY.PEEK[TEXT]<0.10>").fetches()[2]
    # §7.4.2: the origin octet is echoed as BODY[TEXT]<0>.
    assert f["BODY[TEXT]<0>"] == MULTIPART.split(b"\r\n\r\n", 1)[1][:10]
    f = box.ok("FETCH 1 BODY.PEEK[]<5.10>").fetches()[1]
    assert f["BODY[]<5>"] == SIMPLE[5:15]
    f = box.ok("FETCH 1 BODY.PEEK[]<100000.10>").fetches()[1]
    assert f["BODY[]<100000>"] == b""


def test_mime_part_sections(box):
    f = box.ok("FETCH 2 (BODY.PEEK[1.MIME] BODY.PEEK[1] BODY.PEEK[2])").fetches()[2]
    assert f["BODY[1.MIME]"] == MULTIPART_PART1_MIME
    assert f["BODY[1]"] == MULTIPART_PART1_BODY
    assert f["BODY[2]"] == MULTIPART_PART2_BODY
    # A single-part message's part 1 is its body.
    f = box.ok("FETCH 1 BODY.PEEK[1]").fetches()[1]
    assert f["BODY[1]"] == SIMPLE.split(b"\r\n\r\n", 1)[1]


def test_body_sets_seen_but_peek_does_not(box):
    r = box.ok("FETCH 1 BODY.PEEK[]")
    assert "FLAGS" not in r.fetches()[1]
    assert "\\Seen" not in flags(box.ok("FETCH 1 FLAGS").fetches()[1]["FLAGS"])
    r = box.ok("FETCH 1 BODY[]")
    f = r.fetches()[1]
    assert f["BODY[]"] == SIMPLE
    # The flag change is reported in the same FETCH response or a separate one (§6.4.5).
    assert "\\Seen" in flags(f["FLAGS"])
    assert "\\Seen" in flags(box.ok("FETCH 1 FLAGS").fetches()[1]["FLAGS"])


def test_rfc822_sets_seen_rfc822_header_does_not(box):
    box.ok("FETCH 2 RFC822.HEADER")
    assert "\\Seen" not in flags(box.ok("FETCH 2 FLAGS").fetches()[2]["FLAGS"])
    f = box.ok("FETCH 2 RFC822").fetches()[2]
    assert f["RFC822"] == MULTIPART
    assert "\\Seen" in flags(box.ok("FETCH 2 FLAGS").fetches()[2]["FLAGS"])


def test_seen_persists_across_sessions(server, box):
    box.ok("FETCH 1 BODY[TEXT]")
    box.logout()
    c = server.login()
    c.ok("SELECT INBOX")
    fl = c.ok("FETCH 1:2 FLAGS").fetches()
    assert "\\Seen" in flags(fl[1]["FLAGS"])
    assert "\\Seen" not in flags(fl[2]["FLAGS"])


def test_fetch_sequence_ranges(box):
    assert set(box.ok("FETCH 1:* UID").fetches()) == {1, 2}
    assert set(box.ok("FETCH * UID").fetches()) == {2}
    assert set(box.ok("FETCH 2:1 UID").fetches()) == {1, 2}  # §9: 2:1 is the same as 1:2
    assert set(box.ok("FETCH 1,2 UID").fetches()) == {1, 2}


def test_fetch_bad_sequence_numbers(box):
    # Sequence numbers beyond EXISTS are an error (§6.4.5 / §9 seq-number); never OK with data.
    r = box.command("FETCH 5 FLAGS")
    assert r.status in ("BAD", "NO"), r.line
    assert r.fetches() == {}
    assert box.command("FETCH 0 FLAGS").status == "BAD"
