"""Connection limits, slow-client deadlines, the failed-login back-off and APPENDLIMIT /
TOOBIG, through the real binary with small limits so the suite stays fast.

pimap only: these are pimap's own limits (`--max-connections`, `--login-timeout`, ...), and
Dovecot's equivalents are configured differently.
"""

from __future__ import annotations

import socket
import time

import pytest

from conftest import HOST, MAX_MESSAGE_SIZE, attach, next_source_address, start_pimap
from imapwire import Closed, Conn, quote


def _pimap(request, workdir, *extra: str):
    srv = start_pimap(workdir, workdir / "users", workdir / "mail", extra=list(extra))
    attach(request.node, "pimap log", srv.log_text)
    attach(request.node, "pimap transcript", lambda: "\n".join(srv.transcript))
    request.addfinalizer(srv.stop)
    return srv


def _raw(srv, source: str) -> socket.socket:
    s = socket.create_connection((HOST, srv.port), timeout=10, source_address=(source, 0))
    return s


def _read_all(s: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (bounded by `timeout`)."""
    s.settimeout(timeout)
    out = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


def test_connection_limits_total_and_per_ip(request, workdir):
    srv = _pimap(request, workdir, "--max-connections", "3", "--max-connections-per-ip", "2")
    a, b, c = (next_source_address() for _ in range(3))
    a1 = _raw(srv, a)
    a2 = _raw(srv, a)
    for s in (a1, a2):
        assert s.recv(4096).startswith(b"* OK")
    # S: * BYE Too many connections   (a third one from the same address), then close
    a3 = _raw(srv, a)
    assert _read_all(a3) == b"* BYE Too many connections\r\n"
    b1 = _raw(srv, b)
    assert b1.recv(4096).startswith(b"* OK")
    # Total limit (3) reached: another address is refused too.
    c1 = _raw(srv, c)
    assert _read_all(c1) == b"* BYE Too many connections\r\n"
    # A slot is freed when a connection closes; the address may connect again.
    a1.close()
    deadline = time.monotonic() + 5
    while True:
        s = _raw(srv, a)
        first = s.recv(4096)
        if first.startswith(b"* OK"):
            break
        assert time.monotonic() < deadline, first
        time.sleep(0.05)
    for x in (a2, a3, b1, c1, s):
        x.close()
    assert "too many connections from this address" in srv.log_text()
    assert "too many connections in total" in srv.log_text()


def test_slowloris_before_login_is_cut_off_by_the_login_deadline(request, workdir):
    srv = _pimap(request, workdir, "--login-timeout", "2s")
    s = _raw(srv, next_source_address())
    assert s.recv(4096).startswith(b"* OK")
    t0 = time.monotonic()
    got = b""
    s.settimeout(0.4)
    # One byte every 0.4 s: each byte is well within any per-byte idle timeout, but the
    # whole login must complete within 2 s of the connect.
    for ch in b'a1 LOGIN "demo" "slowly-slowly-slowly"\r\n':
        try:
            s.send(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            break
        if time.monotonic() - t0 > 6:
            break
    got += _read_all(s, 3)
    elapsed = time.monotonic() - t0
    assert got.startswith(b"* BYE Login timeout"), got
    assert 1.5 < elapsed < 4.0, elapsed
    s.close()


def test_slow_command_after_login_times_out_but_idle_and_steady_uploads_do_not(request, workdir):
    srv = _pimap(request, workdir, "--command-timeout", "1s")
    idle = srv.login("demo")
    slow = srv.login("plain")
    steady = srv.login("alice@example.org")

    # A command trickling in byte by byte must be complete within 1 s of its first byte.
    t0 = time.monotonic()
    got = b""
    for ch in b"a1 NOOP\r\n":
        try:
            slow.sock.send(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.4)
        if slow.at_eof(0.01):
            break
    got = slow.buf + _read_all(slow.sock, 3)
    assert got.startswith(b"* BYE Timed out waiting for the rest of the command."), got
    assert time.monotonic() - t0 < 3.5

    # A 20 kB APPEND sent in pieces over ~2.4 s (faster than the 4 KiB/s floor) is fine,
    # although it takes longer than the 1 s command timeout.
    body = (b"Subject: steady\r\n\r\n" + b"x" * 78 + b"\r\n") * 200
    steady.send(b"s1 APPEND INBOX {%d}\r\n" % len(body))
    assert steady.read_line().startswith(b"+")
    for i in range(0, len(body), len(body) // 8 + 1):
        steady.sock.sendall(body[i:i + len(body) // 8 + 1])
        time.sleep(0.3)
    steady.send(b"\r\n")
    r = steady.read_until_tagged("s1")
    assert r.ok, r.line

    # A connection that sent nothing for all that time is still logged in.
    assert idle.command("NOOP").ok


def test_failed_login_backoff_grows_per_address_is_capped_and_locks_nobody_out(request, workdir):
    srv = _pimap(request, workdir, "--failed-login-delay", "200ms", "--max-login-delay", "800ms")
    attacker = srv.connect()
    took = []
    for _ in range(5):
        t0 = time.monotonic()
        r = attacker.command('LOGIN plain "wrong"')
        took.append(time.monotonic() - t0)
        assert r.status == "NO" and r.code == "AUTHENTICATIONFAILED"
    expected = [0.2, 0.4, 0.8, 0.8, 0.8]
    for got, want in zip(took, expected):
        assert want - 0.05 <= got <= want + 0.6, (took, expected)
    # Another address is not slowed down by the attacker's failures...
    other = srv.connect()
    t0 = time.monotonic()
    assert other.command('LOGIN plain "wrong"').status == "NO"
    assert time.monotonic() - t0 < 0.2 + 0.6
    # ...and the right password still works from anywhere: delays, never a lock-out.
    assert other.command(f'LOGIN plain {quote(srv.password("plain"))}').ok
    assert attacker.command(f'LOGIN plain {quote(srv.password("plain"))}').ok


def test_appendlimit_advertised_and_toobig_refused_before_the_continuation(request, workdir):
    srv = _pimap(request, workdir)
    c = srv.login("demo")
    caps = c.ok("CAPABILITY").data("CAPABILITY")[0]
    assert f"APPENDLIMIT={MAX_MESSAGE_SIZE}" in [str(x) for x in caps], caps
    # C: a1 APPEND INBOX {MAX+1}
    # S: a1 NO [TOOBIG] ...            (no "+": the client never sends the literal)
    c.send(b"a1 APPEND INBOX {%d}\r\n" % (MAX_MESSAGE_SIZE + 1))
    line = c.read_line()
    assert line.startswith(b"a1 NO [TOOBIG]"), line
    # The connection is still in sync: the next command works.
    assert c.command("NOOP").ok
    # A message exactly at the limit is accepted.
    msg = b"Subject: at the limit\r\n\r\n"
    msg += b"y" * (MAX_MESSAGE_SIZE - len(msg))
    assert c.command("APPEND INBOX ", msg).ok
    # An absurd size is refused the same way, without allocating it.
    c.send(b"a2 APPEND INBOX {99999999999999999999}\r\n")
    assert c.read_line().startswith(b"a2 NO [TOOBIG]")
    assert c.command("NOOP").ok


def test_oversized_nonsync_literal_gets_bye_without_being_read(request, workdir):
    srv = _pimap(request, workdir)
    c = srv.login("demo")
    # RFC 7888 §4: the bytes of a LITERAL+ literal are already on their way; pimap answers
    # BYE at once and closes instead of reading (or buffering) a gigabyte.
    c.send(b"a1 APPEND INBOX {1000000000+}\r\n")
    out = _read_all(c.sock, 5)
    assert out.startswith(b"* BYE [TOOBIG]"), out
    with pytest.raises((Closed, OSError)):
        c.sock.sendall(b"x" * 65536)
        time.sleep(0.2)
        c.sock.sendall(b"x" * 65536)
        c._fill()
