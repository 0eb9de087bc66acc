"""Process lifecycle through the real binary: systemd's sd_notify protocol on
$NOTIFY_SOCKET (READY=1 once listening, RELOADING=1/READY=1 around SIGHUP, STOPPING=1),
SIGTERM (every client gets `* BYE`, exit status 0 within the drain timeout) and SIGHUP
(the users file is re-read at once)."""

import os
import signal
import socket
import time

import pytest

from conftest import USERS, password_hash, start_pimap


@pytest.fixture
def notify_socket(workdir, monkeypatch):
    path = workdir / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    # Writable by all, like systemd's /run/systemd/notify: pimap drops root (--run-as) first.
    path.chmod(0o777)
    s.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield s
    s.close()


def messages(sock, until: str, timeout: float = 10.0) -> list[str]:
    """Datagrams received until one equals `until`."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if got[-1] == until:
            return got
    raise AssertionError(f"no {until!r} datagram; got {got}")


def test_ready_reload_and_graceful_stop(workdir, notify_socket):
    users = workdir / "users"
    srv = start_pimap(workdir, users, workdir / "mail")
    try:
        assert messages(notify_socket, "READY=1") == ["READY=1"]
        idle = srv.login("demo")
        assert idle.command("SELECT INBOX").ok
        busy = srv.login("alice@example.org")

        # SIGHUP: a user added to the file can log in right away.
        (pw, _scheme) = USERS["plain"]
        text = users.read_text()
        users.write_text(text + f"newbie:{password_hash('plain')}::::::\n")
        srv.proc.send_signal(signal.SIGHUP)
        assert messages(notify_socket, "READY=1") == ["RELOADING=1", "READY=1"]
        c = srv.connect()
        assert c.command(f'LOGIN newbie "{pw}"').ok
        c.command("LOGOUT")

        # SIGTERM: every open connection is told BYE, then the process exits 0.
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        for conn in (idle, busy):
            line = conn.read_line()
            assert line.startswith(b"* BYE"), line
        assert srv.proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 12
        assert "STOPPING=1" in messages(notify_socket, "STOPPING=1")
        log = srv.log_text()
        assert "shutting down" in log and "all connections closed" in log, log
    finally:
        srv.stop()


def test_stop_without_clients_is_quick(workdir):
    srv = start_pimap(workdir, workdir / "users", workdir / "mail")
    t0 = time.monotonic()
    os.kill(srv.proc.pid, signal.SIGTERM)
    assert srv.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 3
