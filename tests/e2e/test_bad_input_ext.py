"""Hostile input against the newer extensions: CONDSTORE/QRESYNC (RFC 7162), ENABLE
(RFC 5161), IMAP4rev2 (RFC 9051) / UTF8=ACCEPT (RFC 6855) mailbox names, modified UTF-7
(RFC 3501 §5.1.3) edge cases. pimap only (raw transcripts through the real binary). Each
test checks the server answered with a tagged status, kept its output bounded, and that a
fresh connection still works afterwards.
"""

import re

import pytest

from imapwire import append
from msgs import message


@pytest.fixture(autouse=True)
def still_serving(pimap):
    yield
    assert pimap.proc.poll() is None, f"pimap exited with {pimap.proc.returncode}"
    c = pimap.login()
    c.ok("NOOP")
    c.logout()


def uidvalidity(c, mbox="INBOX") -> int:
    r = c.ok(f"STATUS {mbox} (UIDVALIDITY)")
    m = re.search(rb"UIDVALIDITY (\d+)", b"".join(r.untagged))
    return int(m.group(1))


def fill(c, n=5, mbox="INBOX"):
    for i in range(n):
        assert append(c, mbox, message(subject=f"m{i}")).ok


def total_len(r) -> int:
    return sum(len(u) for u in r.untagged) + len(r.line)


@pytest.mark.parametrize("known", [
    "1:4294967295", "4294967295:1", "4294967295", "1,3,5,7:2", "2:1,4294967294:4294967295",
])
def test_qresync_select_known_uid_edges(pimap, known):
    c = pimap.login()
    fill(c)
    c.ok("SELECT INBOX")
    c.ok("STORE 2:4 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    uv = uidvalidity(c)
    c.ok("ENABLE QRESYNC")
    for ms in ("0", "1", "9223372036854775807"):
        r = c.command(f"SELECT INBOX (QRESYNC ({uv} {ms} {known}))")
        assert r.ok, r.line
        assert total_len(r) < 4096, r.untagged
        for u in r.untagged:
            if u.startswith(b"* VANISHED"):
                assert len(u) < 200, u


@pytest.mark.parametrize("params", [
    "(1 0 0)", "(1 0 0:5)", "(1 9223372036854775808)", "(1 18446744073709551616)",
    "(4294967296 1)", "(1 1 1:5 (0 1))", "(1 1 1:5 (1:3))", "(1 1 1:5 (1:3 1:4 1:5))",
    "(1 1 1:5 (3:1 9:7))", "(1 1 ())", "(1 1 1:5 ())", "(1 1 1:5 (1:3 1:3)",
    "(1 -1)", "(1 1 1:5 (1:3 1:3)) QRESYNC", "(1 1 1:5 (4294967295:1 4294967295:1))",
])
def test_qresync_select_bad_params(pimap, params):
    c = pimap.login()
    c.ok("ENABLE QRESYNC")
    r = c.command(f"SELECT INBOX (QRESYNC {params})")
    assert r.status in ("OK", "BAD", "NO"), r.line
    c.ok("NOOP")


def test_qresync_mismatched_seq_match_data(pimap):
    c = pimap.login()
    fill(c, 6)
    c.ok("SELECT INBOX")
    uv = uidvalidity(c)
    c.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("ENABLE QRESYNC")
    for smd in ("(1:100 1:2)", "(1 4294967295)", "(1:4294967295 1:4294967295)", "(5,1 2,9)"):
        r = c.command(f"SELECT INBOX (QRESYNC ({uv} 1 1:4294967295 {smd}))")
        assert r.ok, r.line
        assert total_len(r) < 4096


@pytest.mark.parametrize("since", ["0", "1", "9223372036854775807"])
def test_changedsince_edges(pimap, since):
    c = pimap.login()
    fill(c, 3)
    c.ok("ENABLE QRESYNC")
    c.ok("SELECT INBOX")
    r = c.command(f"UID FETCH 1:4294967295 (FLAGS) (CHANGEDSINCE {since} VANISHED)")
    assert r.ok, r.line
    r = c.command(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {since})")
    assert r.ok, r.line


@pytest.mark.parametrize("since", ["9223372036854775808", "18446744073709551615",
                                   "99999999999999999999999", "-1", "1.5", ""])
def test_changedsince_out_of_range_is_bad(pimap, since):
    c = pimap.login()
    fill(c, 1)
    c.ok("SELECT INBOX")
    r = c.command(f"FETCH 1:* (FLAGS) (CHANGEDSINCE {since})")
    assert r.status == "BAD", r.line
    r = c.command(f"STORE 1 (UNCHANGEDSINCE {since}) +FLAGS (\\Seen)")
    assert r.status == "BAD", r.line
    r = c.command(f"SEARCH MODSEQ {since}")
    assert r.status == "BAD", r.line


@pytest.mark.parametrize("n", ["0", "1", "9223372036854775807"])
def test_unchangedsince_edges(pimap, n):
    c = pimap.login()
    fill(c, 2)
    c.ok("SELECT INBOX")
    r = c.command(f"STORE 1:* (UNCHANGEDSINCE {n}) +FLAGS (\\Flagged)")
    assert r.status in ("OK", "NO"), r.line
    r = c.command(f"UID STORE 1:4294967295 (UNCHANGEDSINCE {n}) -FLAGS (\\Flagged)")
    assert r.status in ("OK", "NO"), r.line
    r = c.command(f"SEARCH MODSEQ {n}")
    assert r.ok, r.line
    r = c.command(f'SEARCH MODSEQ "/flags/\\\\Seen" all {n}')
    assert r.ok, r.line


def test_vanished_output_is_ranges(pimap):
    """Expunge many UIDs that are not contiguous on the wire; VANISHED (EARLIER) for
    1:4294967295 must be ranges, bounded by the number of gaps, not by the UID span."""
    c = pimap.login()
    fill(c, 40)
    c.ok("SELECT INBOX")
    uv = uidvalidity(c)
    c.ok("UID STORE 1:20 +FLAGS.SILENT (\\Deleted)")
    c.ok("UID STORE 22:39 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("ENABLE QRESYNC")
    r = c.command(f"SELECT INBOX (QRESYNC ({uv} 1 1:4294967295))")
    assert r.ok
    van = [u for u in r.untagged if u.startswith(b"* VANISHED")]
    assert van, r.untagged
    assert len(van[0]) < 100, van
    r = c.command("UID FETCH 1:4294967295 (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert r.ok
    for u in r.untagged:
        assert len(u) < 200, u


def test_enable_many_atoms(pimap):
    c = pimap.login()
    atoms = " ".join(["QRESYNC", "CONDSTORE", "IMAP4rev2", "UTF8=ACCEPT"] * 250)
    r = c.command(f"ENABLE {atoms}")
    assert r.ok, r.line
    en = [u for u in r.untagged if u.startswith(b"* ENABLED")]
    assert len(en) == 1 and len(en[0]) < 100, en
    r = c.command("ENABLE " + " ".join(f"X{i}" for i in range(1000)))
    assert r.ok, r.line
    r = c.command("ENABLE")
    assert r.status == "BAD", r.line


@pytest.mark.parametrize("enable", ["UTF8=ACCEPT", "IMAP4rev2"])
def test_invalid_utf8_mailbox_names_after_enable(pimap, enable):
    c = pimap.login()
    c.ok(f"ENABLE {enable}")
    for raw in [b"\xff", b"a\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf",
                b"x\x00y", b"&-\xe2\x82"]:
        for cmd in ("CREATE", "SELECT", "DELETE", "SUBSCRIBE", "STATUS"):
            extra = b" (MESSAGES)" if cmd == "STATUS" else b""
            tag = c.next_tag()
            c.send(tag.encode() + b" " + cmd.encode() + b" {" + str(len(raw)).encode() + b"+}\r\n"
                   + raw + extra + b"\r\n")
            r = c.read_until_tagged(tag)
            assert r.status in ("NO", "BAD"), (raw, cmd, r.line)
        c.ok("NOOP")
    c.ok('LIST "" "*"')


@pytest.mark.parametrize("enable", ["UTF8=ACCEPT", "IMAP4rev2", None])
def test_modified_utf7_edge_names(pimap, enable):
    c = pimap.login()
    if enable:
        c.ok(f"ENABLE {enable}")
    for name in ['"&"', '"&-&"', '"&AGE"', '"&AGEA-"', '"&AGE-"', '"&2D3eAA-"', '"&2D3-"',
                 '"&3gA-"', '"&-"', '"a&Jjo"', '"&ZeVnLIqe-"', '"&AC8-"', '"&AAA-"',
                 '"&///-"', '"&AF8AXw-"', '"&AGEAYQ-"', '"&=-"', '"&"&"', '"\u00e9&"']:
        r = c.command(f"CREATE {name}")
        assert r.status in ("OK", "NO", "BAD"), r.line
        r = c.command(f'LIST "" {name}')
        assert r.status in ("OK", "NO", "BAD"), r.line
        r = c.command(f"STATUS {name} (MESSAGES)")
        assert r.status in ("OK", "NO", "BAD"), r.line
        c.command(f"DELETE {name}")
    r = c.ok('LIST "" "*"')
    c.ok('LIST "" "%&%"')


@pytest.mark.parametrize("enable", ["UTF8=ACCEPT", "IMAP4rev2"])
def test_ampersand_names_round_trip_in_utf8_mode(pimap, enable):
    """In UTF-8 mode '&' is an ordinary character (RFC 9051 §5.1): the name comes back as
    sent, and a rev1 client sees it in modified UTF-7."""
    c = pimap.login()
    c.ok(f"ENABLE {enable}")
    for name in ["\u20ac&Jjo-", "&", "a&-b", "&AGE-"]:
        raw = name.encode()
        tag = c.next_tag()
        c.send(tag.encode() + b" CREATE {" + str(len(raw)).encode() + b"+}\r\n" + raw + b"\r\n")
        assert c.read_until_tagged(tag).ok
        r = c.ok('LIST "" "*"')
        assert any(raw in u for u in r.untagged), (raw, r.untagged)
    old = pimap.login()
    r = old.ok('LIST "" "*"')
    assert any(b"&IKw-&-Jjo-" in u for u in r.untagged), r.untagged
    assert any(b'"&-AGE-"' in u or b" &-AGE-" in u for u in r.untagged), r.untagged


@pytest.mark.parametrize("enable", ["UTF8=ACCEPT", "IMAP4rev2", None])
def test_control_and_separator_characters_refused(pimap, enable):
    """RFC 9051 §5.1: no controls (C0, DEL, C1) nor U+2028/U+2029 in mailbox names. In UTF-8
    mode such a name used to be encoded to modified UTF-7 (`a\\tb` → `a&AAk-b`) and created."""
    c = pimap.login()
    if enable:
        c.ok(f"ENABLE {enable}")
    for raw in [b"a\tb", b"a\x7fb", "a\u0085b".encode(), "a\u2028b".encode(),
                "\u2029".encode(), b"a\x01"]:
        for cmd in ("CREATE", "RENAME INBOX"):
            tag = c.next_tag()
            c.send(tag.encode() + f" {cmd} ".encode() + b"{" + str(len(raw)).encode() + b"+}\r\n"
                   + raw + b"\r\n")
            r = c.read_until_tagged(tag)
            assert r.status in ("NO", "BAD"), (raw, cmd, r.line)
    r = c.ok('LIST "" "*"')
    assert len(r.untagged) == 1, r.untagged  # INBOX only


@pytest.mark.parametrize("enable", ["QRESYNC", "IMAP4rev2"])
def test_closed_even_when_select_fails(pimap, enable):
    """RFC 7162 §3.2.11 / RFC 9051 §6.3.2: a SELECT of a missing mailbox still closes the
    selected one, and `* OK [CLOSED]` says so before the tagged NO (Dovecot 2.3 does too)."""
    c = pimap.login()
    c.ok(f"ENABLE {enable}")
    c.ok("SELECT INBOX")
    r = c.command("SELECT nosuch")
    assert r.status == "NO", r.line
    assert r.untagged and r.untagged[0].startswith(b"* OK [CLOSED]"), r.untagged
    assert c.command("FETCH 1 FLAGS").status == "BAD"
    r = c.command("EXAMINE nosuch")  # nothing selected now: no [CLOSED]
    assert r.status == "NO" and not r.untagged, r.untagged


def test_huge_wildcard_list_pattern_is_cheap(pimap):
    """A LIST pattern filling most of a 64 KiB line with wildcards, against 20 mailboxes with
    long names: answered in well under the socket timeout (was |pattern|·|name| per name)."""
    import time
    c = pimap.login()
    for i in range(20):
        c.ok(f"CREATE {'x' * 200}{i}")
    stars = "*%" * 15000
    t = time.monotonic()
    r = c.ok(f'LIST "" "{stars}x{stars}0"')
    assert len(r.untagged) == 2, r.untagged  # ...0 and ...10
    c.ok(f'LSUB "" "{stars}"')
    c.ok(f'LIST (SUBSCRIBED) "" ("{stars}y" "{stars}")')
    assert time.monotonic() - t < 5
