"""Several sessions on one mailbox, and mail delivered into the Maildir by another process.

RFC 3501 §5.2 (mailbox size and message status updates), §7.4.1 (when EXPUNGE may be sent).
"""

import time

import pytest

from conftest import MAIL_GID, MAIL_UID
from imapwire import append, flags
from msgs import deliver, message


@pytest.fixture
def two(server):
    a = server.login(name="A")
    for i in range(1, 4):
        append(a, "INBOX", message(f"m{i}"))
    a.ok("SELECT INBOX")
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    return a, b


def test_flag_change_seen_by_other_session(two):
    a, b = two
    b.ok("STORE 1 +FLAGS (\\Flagged)")
    r = a.ok("NOOP")
    assert "\\Flagged" in flags(r.fetches()[1]["FLAGS"])


def test_append_seen_by_other_session(two):
    a, b = two
    append(b, "INBOX", message("m4"))
    r = a.ok("NOOP")
    assert r.number("EXISTS") == [4]
    assert a.ok("FETCH 4 UID").fetches()[4]["UID"] == "4"


def test_expunge_seen_by_other_session_only_when_allowed(two):
    a, b = two
    b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    r = b.ok("EXPUNGE")
    assert r.number("EXPUNGE") == [2]
    # §7.4.1: no EXPUNGE while responding to FETCH, STORE or SEARCH. A FETCH that touches
    # the expunged message may still succeed (Dovecot) or fail with NO [EXPUNGEISSUED]
    # (RFC 2180 §4.1, RFC 5530); either way the session's numbering is unchanged.
    r = a.command("FETCH 1:* UID")
    assert r.status == "OK" or (r.status == "NO" and r.code == "EXPUNGEISSUED"), r.line
    assert r.number("EXPUNGE") == []
    r = a.command("SEARCH ALL")
    assert r.status in ("OK", "NO"), r.line
    assert r.number("EXPUNGE") == []
    r = a.ok("NOOP")
    assert r.number("EXPUNGE") == [2]
    r = a.ok("FETCH 1:* UID")
    assert {k: v["UID"] for k, v in r.fetches().items()} == {1: "1", 2: "3"}


def test_several_expunges_seen_by_other_session(server):
    a = server.login(name="A")
    for i in range(1, 7):
        append(a, "INBOX", message(f"m{i}"))
    a.ok("SELECT INBOX")
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 1,3,6 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    seqs = a.ok("NOOP").number("EXPUNGE")
    uids = [1, 2, 3, 4, 5, 6]
    for s in seqs:
        del uids[s - 1]
    assert uids == [2, 4, 5]


def test_maildir_delivery_appears_at_noop(server):
    a = server.login()
    append(a, "INBOX", message("m1"))
    r = a.ok("SELECT INBOX")
    assert r.number("EXISTS") == [1]
    data = message("delivered", "Dropped into new/ by an MDA.\r\n")
    deliver(server.maildir(), data, uid=MAIL_UID, gid=MAIL_GID)
    deadline = time.monotonic() + 5
    exists = []
    while time.monotonic() < deadline:
        r = a.ok("NOOP")
        exists = r.number("EXISTS")
        if exists:
            break
        time.sleep(0.2)
    assert exists == [2]
    # The new message is \Recent in the only session that has the mailbox selected; RECENT
    # counts every \Recent message (m1 is one too: appended before this SELECT), §7.3.2.
    assert r.number("RECENT") == [2]
    f = a.ok("FETCH 2 (UID FLAGS BODY.PEEK[])").fetches()[2]
    assert f["BODY[]"] == data
    assert f["UID"] == "2"
    assert flags(f["FLAGS"]) == {"\\Recent"}
    a.logout()
    # The Dovecot-format uidlist now names the delivered file with UID 2.
    uidlist = (server.maildir() / "dovecot-uidlist").read_text().splitlines()
    assert uidlist[0].startswith("3 ")
    assert any(line.startswith("2 ") for line in uidlist[1:])


def test_maildir_delivery_into_cur_with_flags(server):
    a = server.login()
    a.ok("CREATE Work")
    root = server.maildir() / ".Work"
    data = message("pre-flagged")
    path = deliver(root, data, uid=MAIL_UID, gid=MAIL_GID)
    path.rename(root / "cur" / (path.name + ":2,FS"))
    r = a.ok("SELECT Work")
    assert r.number("EXISTS") == [1]
    f = a.ok("FETCH 1 (FLAGS BODY.PEEK[])").fetches()[1]
    assert flags(f["FLAGS"]) - {"\\Recent"} == {"\\Flagged", "\\Seen"}
    assert f["BODY[]"] == data


def test_delivery_counted_by_status(server):
    a = server.login()
    a.ok("CREATE Work")
    a.ok("STATUS Work (MESSAGES)")
    deliver(server.maildir() / ".Work", message("one"), uid=MAIL_UID, gid=MAIL_GID)
    deliver(server.maildir() / ".Work", message("two"), uid=MAIL_UID, gid=MAIL_GID)
    r = a.ok("STATUS Work (MESSAGES UNSEEN UIDNEXT)")
    vals = r.data("STATUS")[0][2]
    st = {str(k).upper(): int(v) for k, v in zip(vals[0::2], vals[1::2])}
    assert st == {"MESSAGES": 2, "UNSEEN": 2, "UIDNEXT": 3}


def test_nul_bytes_from_disk_are_sent_as_0x80(pimap):
    # A Maildir file may contain NUL (an MDA wrote it as received). NUL can't go in an IMAP
    # literal (RFC 3501 §4.3), so BODY[] sends 0x80 in its place, keeping the size (Dovecot's
    # rule too; pimap-only here because the test's Dovecot can't sync a Maildir it didn't create).
    a = pimap.login()
    data = message("nul", "before\x00after\r\n")
    assert b"\x00" in data
    deliver(pimap.maildir(), data, uid=MAIL_UID, gid=MAIL_GID)
    a.ok("SELECT INBOX")
    f = a.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT])").fetches()[1]
    assert f["BODY[]"] == data.replace(b"\x00", b"\x80")
    assert f["BODY[TEXT]"] == b"before\x80after\r\n"
    assert int(f["RFC822.SIZE"]) == len(data)
    a.logout()
