"""`--http-listen`: /healthz and /metrics (Prometheus text format) through the real binary,
read with curl; malformed requests get a 4xx, never a crash."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess

import pytest

from conftest import HOST, attach, free_port, start_pimap

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def srv(request, workdir):
    port = free_port()
    s = start_pimap(workdir, workdir / "users", workdir / "mail", extra=["--http-listen", f"{HOST}:{port}"])
    s.http = f"http://{HOST}:{port}"
    s.http_port = port
    attach(request.node, "pimap log", s.log_text)
    request.addfinalizer(s.stop)
    return s


def curl(*args: str) -> tuple[int, str, str]:
    """(status, headers, body)"""
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", *args], capture_output=True,
                       timeout=20)
    assert p.returncode == 0, p.stderr
    head, _, body = p.stdout.decode().partition("\r\n\r\n")
    status = int(head.split(" ", 2)[1])
    return status, head, body


def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def sample(text: str, series: str) -> int:
    m = re.search(r"^" + re.escape(series) + r" (\d+)$", text, re.M)
    assert m, f"no {series} in\n{text}"
    return int(m.group(1))


def test_healthz_ok_and_503_when_the_mail_root_is_not_writable(srv, workdir):
    status, head, body = curl(f"{srv.http}/healthz")
    assert (status, body) == (200, "ok\n")
    assert "Content-Type: text/plain" in head
    # HEAD: the GET's headers, no body.
    out = raw(srv.http_port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\n"), out
    assert b"Content-Length: 3\r\n" in out
    mail = workdir / "mail"
    mail.chmod(0o500)
    try:
        status, _, body = curl(f"{srv.http}/healthz")
        assert status == 503
        assert f"mail root {mail} is not writable" in body
    finally:
        mail.chmod(0o755)
    assert curl(f"{srv.http}/healthz")[0] == 200


def test_metrics_count_connections_logins_commands_and_bytes(srv):
    c = srv.login("demo")
    c.ok("SELECT INBOX")
    c.ok("NOOP")
    c.ok("NOOP")
    bad = srv.connect()
    assert bad.command('LOGIN demo "wrong"').status == "NO"
    status, head, body = curl(f"{srv.http}/metrics")
    assert status == 200
    assert "Content-Type: text/plain; version=0.0.4" in head
    assert "# TYPE pimap_connections gauge" in body
    assert sample(body, "pimap_connections") >= 2
    assert sample(body, "pimap_connections_total") >= 2
    assert sample(body, 'pimap_logins_total{result="ok"}') == 1
    assert sample(body, 'pimap_logins_total{result="failed"}') == 1
    assert sample(body, 'pimap_commands_total{command="NOOP"}') == 2
    assert sample(body, 'pimap_commands_total{command="SELECT"}') == 1
    assert sample(body, 'pimap_commands_total{command="LOGIN"}') == 2
    assert sample(body, "pimap_received_bytes_total") > 50
    assert sample(body, "pimap_sent_bytes_total") > 100
    assert sample(body, 'pimap_sync_passes_total{result="ok"}') == 0
    assert sample(body, "pimap_sync_notification_latency_seconds_count") == 0
    assert sample(body, 'pimap_sync_notification_latency_seconds_bucket{le="+Inf"}') == 0
    # Every sample belongs to a family announced by # TYPE; a histogram's samples are its
    # name with _bucket, _sum and _count.
    families = set(re.findall(r"^# TYPE (\S+) (?:counter|gauge)$", body, re.M))
    histograms = set(re.findall(r"^# TYPE (\S+) histogram$", body, re.M))
    assert histograms == {"pimap_sync_notification_latency_seconds"}, histograms
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line)[0]
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in families or base in histograms, line


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400),
    (b"GET /healthz\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n", 505),
])
def test_bad_requests_get_4xx_and_the_server_keeps_serving(srv, request_bytes, status):
    out = raw(srv.http_port, request_bytes)
    assert out.startswith(f"HTTP/1.1 {status} ".encode()), out[:200]
    assert b"Connection: close" in out
    assert curl(f"{srv.http}/healthz")[0] == 200
    assert srv.login("demo").command("NOOP").ok
