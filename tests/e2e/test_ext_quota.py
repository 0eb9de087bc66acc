"""QUOTA (RFC 9208) against pimap and Dovecot 2.3 (count backend, quota_vsizes = yes), with the
limits of the passwd-file user `quota` (conftest USER_EXTRA: 2 KiB, 4 messages, Trash +1 KiB).

C: A1 GETQUOTAROOT INBOX
S: * QUOTAROOT INBOX "User quota"
S: * QUOTA "User quota" (STORAGE 1 2 MESSAGE 1 4)
C: A2 APPEND INBOX {916}
S: A2 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)

Dovecot appends timings to its tagged texts ("completed (0.001 + 0.000 secs)."): `said` drops
them. Dovecot advertises only QUOTA; pimap also names its resources (QUOTA=RES-STORAGE,
QUOTA=RES-MESSAGE), as RFC 9208 §3.1 asks.
"""

import re

from conftest import MAIL_GID, MAIL_UID, chown_tree
from msgs import crlf, deliver

USER = "quota"
ROOT = b'"User quota"'


def msg(n: int) -> bytes:
    """A message of exactly n + 16 bytes (CRLF line ends: its size is its RFC822.SIZE)."""
    return crlf("Subject: m\n\n" + "x" * n + "\n")


def said(r) -> tuple[str, str]:
    """The tagged status and text, without Dovecot's timings."""
    return r.status, re.sub(r" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)", "", r.text)


def quota(c) -> bytes:
    r = c.ok(f'GETQUOTA {ROOT.decode()}')
    assert len(r.untagged) == 1, r.untagged
    return r.untagged[0]


def append(c, mailbox: str, data: bytes):
    return c.command(f"APPEND {mailbox} ", data)


def test_advertised(server):
    c = server.login(USER)
    caps = {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}
    assert "QUOTA" in caps
    if server.is_pimap:
        assert {"QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE"} <= caps


def test_user_without_rules_has_no_quota(server):
    c = server.login("demo")
    r = c.command("GETQUOTAROOT INBOX")
    assert (r.untagged, said(r)) == ([], ("OK", "No quota."))
    r = c.command(f"GETQUOTA {ROOT.decode()}")
    assert (r.untagged, said(r)) == ([], ("OK", "Getquota completed."))
    r = c.command('GETQUOTA ""')
    assert (r.untagged, said(r)) == ([], ("NO", "Quota root doesn't exist."))


def test_getquotaroot_and_getquota(server):
    c = server.login(USER)
    r = c.command("GETQUOTAROOT INBOX")
    assert r.untagged == [b'* QUOTAROOT INBOX "User quota"\r\n',
                          b'* QUOTA "User quota" (STORAGE 0 2 MESSAGE 0 4)\r\n']
    assert said(r) == ("OK", "Getquotaroot completed.")
    # Any mailbox name, existing or not, is in the one root (Dovecot does not look).
    r = c.command('GETQUOTAROOT "No such"')
    assert r.untagged[0] == b'* QUOTAROOT "No such" "User quota"\r\n'
    # 516 bytes: 1 KiB, rounded up like the limits.
    assert append(c, "INBOX", msg(500)).ok
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 1 4)\r\n'
    c.ok("CREATE Trash")
    assert append(c, "Trash", msg(1008)).ok
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 2 2 MESSAGE 2 4)\r\n'
    r = c.command('GETQUOTA "user quota"')
    assert (r.untagged, said(r)) == ([], ("NO", "Quota root doesn't exist."))


def test_setquota_is_refused(server):
    c = server.login(USER)
    for cmd in ['SETQUOTA "User quota" (STORAGE 10)', 'SETQUOTA "User quota" ()']:
        r = c.command(cmd)
        assert (r.untagged, said(r)) == ([], ("NO", "Quota can be changed only by admin."))
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 0 2 MESSAGE 0 4)\r\n'


def test_append_over_quota_refused_before_the_literal(server):
    c = server.login(USER)
    assert append(c, "INBOX", msg(1500)).ok
    # Synchronising literal: NO instead of "+", the message is never sent.
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {{{len(msg(900))}}}\r\n".encode())
    r = c.read_until_tagged(tag)
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")
    assert r.untagged == []
    # LITERAL+: the bytes come anyway; read and dropped, and the connection goes on.
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {{3000+}}\r\n".encode() + b"x" * 3000 + b"\r\n")
    r = c.read_until_tagged(tag)
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")
    # Exactly up to the limit fits: 1516 + 532 = 2048.
    assert append(c, "INBOX", msg(516)).ok
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 2 2 MESSAGE 2 4)\r\n'
    r = c.command("SELECT INBOX")
    assert r.ok and b"* 2 EXISTS\r\n" in r.untagged


def test_message_limit(server):
    c = server.login(USER)
    for _ in range(4):
        assert append(c, "INBOX", msg(1)).ok
    r = append(c, "INBOX", msg(1))
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 4 4)\r\n'
    # Expunging frees the room again.
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 3 4)\r\n'
    assert append(c, "INBOX", msg(1)).ok


def test_copy_over_quota_and_the_trash_rule_and_move(server):
    c = server.login(USER)
    c.ok("CREATE Trash")
    assert append(c, "INBOX", msg(500)).ok
    assert append(c, "INBOX", msg(1502)).ok
    c.ok("SELECT INBOX")
    # 2034 + 516 > 2048: refused, nothing copied.
    r = c.command("COPY 1 INBOX")
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")
    assert r.untagged == []
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 2 2 MESSAGE 2 4)\r\n'
    # Trash may hold 1 KiB more (Trash:storage=+1k): 2550 <= 3072.
    r = c.command("COPY 1 Trash")
    assert said(r)[0] == "OK" and r.code.startswith("COPYUID")
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 3 2 MESSAGE 3 4)\r\n'
    # Over quota now, but a MOVE adds nothing to the one quota root: never refused.
    # (Only the status: the MOVE texts differ, "Move completed" / "MOVE completed".)
    assert c.command("MOVE 1 INBOX").status == "OK"
    assert c.command("MOVE 1 Trash").status == "OK"
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 3 2 MESSAGE 3 4)\r\n'
    # Even Trash's extra room is gone for a copy: 2550 + 1518 > 3072.
    c.ok("SELECT Trash")
    r = c.command("COPY 2 Trash")
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")


def test_usage_follows_the_other_server(both):
    """Mail delivered and expunged through the other server (or straight into the Maildir)
    counts at once: pimap's usage is no cache of its own sessions' doings."""
    dovecot, pimap = both
    d = dovecot.login(USER)
    p = pimap.login(USER)
    assert quota(p) == b'* QUOTA "User quota" (STORAGE 0 2 MESSAGE 0 4)\r\n'
    assert append(d, "INBOX", msg(1000)).ok
    deliver(pimap.maildir(USER), msg(100), uid=MAIL_UID, gid=MAIL_GID)
    chown_tree(pimap.maildir(USER))
    assert quota(p) == b'* QUOTA "User quota" (STORAGE 2 2 MESSAGE 2 4)\r\n'
    r = append(p, "INBOX", msg(1000))
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")
    d.ok("SELECT INBOX")
    d.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    assert quota(p) == b'* QUOTA "User quota" (STORAGE 0 2 MESSAGE 0 4)\r\n'
    assert append(p, "INBOX", msg(1000)).ok
    assert quota(d) == b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 1 4)\r\n'


def test_status_deleted_storage(pimap):
    """RFC 9208 §4.3.1 (a server with QUOTA=RES-STORAGE supports it); Dovecot 2.3 has neither
    DELETED nor DELETED-STORAGE."""
    c = pimap.login(USER)
    for n in (10, 20, 30):
        assert append(c, "INBOX", msg(n)).ok
    c.ok("SELECT INBOX")
    c.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("STATUS INBOX (DELETED-STORAGE DELETED SIZE)")
    assert r.untagged == [b"* STATUS INBOX (DELETED-STORAGE 72 DELETED 2 SIZE 108)\r\n"]


def test_multiappend_over_quota_stores_none(server):
    """MULTIAPPEND (RFC 3502) is all or nothing under the quota too: five messages against a
    limit of four are refused whole; three fit."""
    c = server.login(USER)

    def multi(n: int):
        parts = b"".join(b" {%d+}\r\n" % len(msg(10)) + msg(10) for _ in range(n))
        tag = c.next_tag()
        c.send(tag.encode() + b" APPEND INBOX" + parts + b"\r\n")
        return c.read_until_tagged(tag)

    r = multi(5)
    assert said(r) == ("NO", "[OVERQUOTA] Quota exceeded (mailbox for user is full).")
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 0 2 MESSAGE 0 4)\r\n'
    assert multi(3).ok
    assert quota(c) == b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 3 4)\r\n'
    assert not [p for p in (server.mail_root / USER).rglob("tmp/*") if p.is_file()]
