"""IDLE (RFC 2177): push of mailbox changes to an idling client.

C: A001 IDLE
S: + idling
   (another process delivers / another session appends, flags, expunges)
S: * 4 EXISTS
C: DONE
S: A001 OK IDLE terminated

pimap must push within 1 s; Dovecot, the reference, gets a looser budget since its
notification delay is its own business.
"""

import socket
import time

import pytest

from conftest import MAIL_GID, MAIL_UID
from imapwire import append, flags, parse
from msgs import deliver, message


def budget(server) -> float:
    return 1.0 if server.is_pimap else 5.0


def idle(c):
    """Send IDLE and read up to the continuation; returns (tag, untagged before it)."""
    tag = c.next_tag()
    c.send(f"{tag} IDLE\r\n".encode())
    before = []
    while True:
        resp = c.read_response()
        if resp.startswith(b"+"):
            return tag, before
        assert resp.startswith(b"* "), resp
        before.append(resp)


def wait_for(c, pattern: bytes, timeout: float) -> list[bytes]:
    """Read untagged responses until one matches `pattern` (a prefix after `* `)."""
    got = []
    deadline = time.monotonic() + timeout
    old = c.sock.gettimeout()
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout}s; got {got!r}")
            c.sock.settimeout(left)
            try:
                resp = c.read_response()
            except socket.timeout:
                raise AssertionError(f"no {pattern!r} within {timeout}s; got {got!r}") from None
            got.append(resp)
            if resp.upper().startswith(b"* " + pattern.upper()):
                return got
    finally:
        c.sock.settimeout(old)


def done(c, tag: str):
    c.send(b"DONE\r\n")
    return c.read_until_tagged(tag)


@pytest.fixture
def idler(server):
    a = server.login(name="A")
    for i in range(1, 4):
        append(a, "INBOX", message(f"m{i}"))
    a.ok("SELECT INBOX")
    return a


def test_capability_advertised(server):
    c = server.login()
    caps = c.ok("CAPABILITY").data("CAPABILITY")[0]
    assert "IDLE" in [str(x).upper() for x in caps]


def test_done_ends_idle_with_ok(idler):
    tag, _ = idle(idler)
    r = done(idler, tag)
    assert r.status == "OK", r.line
    # The session is usable afterwards.
    assert idler.ok("NOOP").status == "OK"


def test_done_is_case_insensitive(idler):
    tag, _ = idle(idler)
    idler.send(b"done\r\n")
    assert idler.read_until_tagged(tag).status == "OK"


def test_idle_in_authenticated_state(server):
    c = server.login()
    tag, _ = idle(c)
    assert done(c, tag).status == "OK"


def test_bad_line_during_idle_ends_it_with_bad(idler):
    tag, _ = idle(idler)
    idler.send(b"A999 NOOP\r\n")
    r = idler.read_until_tagged(tag)
    assert r.status == "BAD", r.line
    # IDLE is over: the next command is a normal one.
    assert idler.ok("NOOP").status == "OK"


def test_delivery_by_another_process_is_pushed(server, idler):
    tag, _ = idle(idler)
    time.sleep(0.2)  # let the server arm its watch (Dovecot does it after `+ idling`)
    t0 = time.monotonic()
    deliver(server.maildir("demo"), message("pushed"), uid=MAIL_UID, gid=MAIL_GID)
    got = wait_for(idler, b"4 EXISTS", budget(server))
    took = time.monotonic() - t0
    assert took < budget(server), took
    r = done(idler, tag)
    assert r.status == "OK"
    recent = [g for g in got + r.untagged if g.upper().endswith(b" RECENT\r\n")]
    assert recent, got
    assert idler.ok("FETCH 4 (UID FLAGS)").fetches()[4]["UID"] == "4"


def test_append_by_another_session_is_pushed(server, idler):
    tag, _ = idle(idler)
    time.sleep(0.2)
    b = server.login(name="B")
    t0 = time.monotonic()
    append(b, "INBOX", message("m4"))
    wait_for(idler, b"4 EXISTS", budget(server))
    assert time.monotonic() - t0 < budget(server)
    assert done(idler, tag).status == "OK"


def test_flag_change_by_another_session_is_pushed(server, idler):
    tag, _ = idle(idler)
    time.sleep(0.2)
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS (\\Flagged)")
    got = wait_for(idler, b"2 FETCH", budget(server))
    items = parse(got[-1])[3]
    i = [str(x).upper() for x in items].index("FLAGS")
    assert "\\Flagged" in flags(items[i + 1])
    assert done(idler, tag).status == "OK"


def test_expunge_by_another_session_is_pushed(server, idler):
    tag, _ = idle(idler)
    time.sleep(0.2)
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    wait_for(idler, b"2 EXPUNGE", budget(server))
    assert done(idler, tag).status == "OK"
    r = idler.ok("FETCH 1:* UID")
    assert {k: v["UID"] for k, v in r.fetches().items()} == {1: "1", 2: "3"}


def test_idle_again_after_done(server, idler):
    for n in (4, 5):
        tag, _ = idle(idler)
        time.sleep(0.2)
        deliver(server.maildir("demo"), message(f"m{n}"), uid=MAIL_UID, gid=MAIL_GID)
        wait_for(idler, b"%d EXISTS" % n, budget(server))
        assert done(idler, tag).status == "OK"


def test_logout_while_idling_by_closing_socket(server, idler):
    tag, _ = idle(idler)
    idler.close()
    # The server is still fine for others.
    c = server.login(name="B")
    assert c.ok("NOOP").status == "OK"


def test_two_idlers_then_one_leaves(server, idler):
    """Both idling sessions are woken; one leaving must not silence the other (pimap shares
    one inotify watch per directory between sessions)."""
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    tag_a, _ = idle(idler)
    tag_b, _ = idle(b)
    time.sleep(0.2)
    deliver(server.maildir("demo"), message("m4"), uid=MAIL_UID, gid=MAIL_GID)
    wait_for(idler, b"4 EXISTS", budget(server))
    wait_for(b, b"4 EXISTS", budget(server))
    assert done(b, tag_b).status == "OK"
    b.logout()
    time.sleep(0.2)
    deliver(server.maildir("demo"), message("m5"), uid=MAIL_UID, gid=MAIL_GID)
    wait_for(idler, b"5 EXISTS", budget(server))
    assert done(idler, tag_a).status == "OK"


def test_many_idlers_all_woken(server):
    """More idling sessions than a per-session inotify instance scheme would comfortably allow."""
    conns = []
    for i in range(20):
        c = server.login(name=f"I{i}")
        c.ok("SELECT INBOX")
        conns.append((c, idle(c)[0]))
    time.sleep(0.3)
    deliver(server.maildir("demo"), message("m1"), uid=MAIL_UID, gid=MAIL_GID)
    for c, tag in conns:
        wait_for(c, b"1 EXISTS", budget(server))
        assert done(c, tag).status == "OK"
