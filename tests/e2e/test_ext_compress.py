"""COMPRESS=DEFLATE (RFC 4978): a whole session through raw deflate, with Python's zlib as the
client's (independent) compressor, against pimap and Dovecot's imap_zlib.

C: A003 COMPRESS DEFLATE
S: A003 OK DEFLATE active
   (from here on both directions are raw deflate, RFC 1951, without a zlib header;
    each side sync-flushes at the end of what it sends)
C: A004 SELECT INBOX
S: * 3 EXISTS ...
C: A005 COMPRESS DEFLATE
S: A005 NO [COMPRESSIONACTIVE] ...
"""

import re
import ssl
import subprocess
import time
import zlib

import pytest

from conftest import MAIL_GID, MAIL_UID
from imapwire import Closed, append, parse
from msgs import deliver, message
from test_ext_idle import budget, done, idle, wait_for


def caps_of(c) -> list[str]:
    return [str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]]


def deflate_on(c, level: int = 6) -> None:
    """After the tagged OK to COMPRESS: compress what `c` sends, inflate what it reads.

    Bytes already read past the tagged OK (the server's first compressed burst in the same
    TCP segment) are compressed data too (RFC 4978 §3).
    """
    c.zout = zlib.compressobj(level, zlib.DEFLATED, -15)  # -15: raw deflate, no zlib header
    zin = zlib.decompressobj(-15)
    c.wire_in = c.wire_out = 0

    def send(data: bytes) -> None:
        c._log("C", data)
        z = c.zout.compress(data) + c.zout.flush(zlib.Z_SYNC_FLUSH)
        c.wire_out += len(z)
        c.sock.sendall(z)

    def fill() -> None:
        try:
            chunk = c.sock.recv(65536)
        except ConnectionResetError as e:
            raise Closed("connection reset by server") from e
        if not chunk:
            raise Closed("server closed the connection")
        c.wire_in += len(chunk)
        c.buf += zin.decompress(chunk)

    c.buf = zin.decompress(c.buf)
    c.send = send
    c._fill = fill


def compress(c) -> None:
    r = c.command("COMPRESS DEFLATE")
    assert r.status == "OK", r.line
    deflate_on(c)


def seed(c, n: int = 3) -> list[bytes]:
    msgs = [message(f"m{i}", f"Body {i}, long enough to be worth compressing. " * 20 + "\r\n")
            for i in range(1, n + 1)]
    for m in msgs:
        append(c, "INBOX", m)
    return msgs


def test_advertised_only_after_login_and_until_active(server):
    c = server.connect()
    assert "COMPRESS=DEFLATE" not in caps_of(c)
    c.login("demo", server.password("demo"))
    assert "COMPRESS=DEFLATE" in caps_of(c)
    compress(c)
    after = caps_of(c)
    if server.is_pimap:
        # RFC 4978 §3 doesn't require it, but a second COMPRESS can only fail: don't offer it.
        assert "COMPRESS=DEFLATE" not in after
    assert "IDLE" in after


def test_whole_session_through_deflate(server):
    c = server.login()
    msgs = seed(c)
    compress(c)
    r = c.ok("SELECT INBOX")
    assert r.number("EXISTS") == [3]
    f = c.ok("FETCH 1:3 (UID BODY.PEEK[])").fetches()
    assert [f[i]["BODY[]"] for i in (1, 2, 3)] == msgs
    # A synchronising literal: `+` continuation and the literal both go through deflate.
    new = message("appended compressed", "Sent through the deflate stream.\r\n")
    c.ok("APPEND INBOX ", new)
    c.ok("NOOP")
    assert c.ok("FETCH 4 BODY.PEEK[]").fetches()[4]["BODY[]"] == new
    # IDLE: a delivery by another process is pushed, compressed and flushed at once.
    tag, _ = idle(c)
    time.sleep(0.2)
    deliver(server.maildir("demo"), message("pushed"), uid=MAIL_UID, gid=MAIL_GID)
    wait_for(c, b"5 EXISTS", budget(server))
    assert done(c, tag).status == "OK"
    # Everything really was compressed: the body bytes never crossed the wire in clear.
    assert c.wire_in < sum(map(len, msgs)), c.wire_in
    r = c.command("LOGOUT")
    assert r.status == "OK"
    assert any(u.startswith(b"* BYE") for u in r.untagged)


def test_command_pipelined_in_the_same_packet_as_compress(pimap):
    """RFC 4978 §3: the client compresses from the byte after the COMPRESS line's CRLF. Bytes
    the server read together with that line are already compressed and must not be lost.

    pimap only: the RFC tells clients not to pipeline behind COMPRESS, and Dovecot 2.3 doesn't
    answer such commands; pimap runs them rather than silently losing them."""
    c = pimap.login()
    seed(c, 2)
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    tail = z.compress(b"B1 NOOP\r\nB2 SELECT INBOX\r\nB3 FETCH 2 (UID)\r\n") + z.flush(zlib.Z_SYNC_FLUSH)
    c.send(b"A1 COMPRESS DEFLATE\r\n" + tail)
    assert c.read_until_tagged("A1").status == "OK"
    # Switch this client over by hand, keeping our compressor's state.
    deflate_on(c)
    c.zout = z
    assert c.read_until_tagged("B1").status == "OK"
    r = c.read_until_tagged("B2")
    assert r.status == "OK" and r.number("EXISTS") == [2], r.line
    r = c.read_until_tagged("B3")
    assert r.status == "OK" and r.fetches()[2]["UID"] == "2"


def test_commands_split_across_many_small_deflate_packets(server):
    c = server.login()
    seed(c, 1)
    compress(c)
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = z.compress(b"C1 SELECT INBOX\r\nC2 FETCH 1 (FLAGS)\r\n") + z.flush(zlib.Z_SYNC_FLUSH)
    for i in range(len(data)):
        c.sock.sendall(data[i:i + 1])
        time.sleep(0.002)
    assert c.read_until_tagged("C1").status == "OK"
    assert c.read_until_tagged("C2").status == "OK"


def test_second_compress_is_no_compressionactive(server):
    c = server.login()
    compress(c)
    r = c.command("COMPRESS DEFLATE")
    assert r.status == "NO" and r.code == "COMPRESSIONACTIVE", r.line
    # Still compressed, still working.
    assert c.ok("NOOP").ok


def test_unknown_mechanism_is_refused_and_nothing_changes(server):
    c = server.login()
    r = c.command("COMPRESS LZW")
    # RFC 4978 §3: "BAD ... invalid or unknown argument" (Dovecot answers NO).
    assert r.status in ("BAD", "NO"), r.line
    if server.is_pimap:
        assert r.status == "BAD" and "DEFLATE" in r.text
    r = c.command("COMPRESS")
    assert r.status == "BAD", r.line
    # The connection stays uncompressed.
    assert c.ok("NOOP").ok
    assert "COMPRESS=DEFLATE" in caps_of(c)


def test_compress_before_login_is_refused(server):
    c = server.connect()
    r = c.command("COMPRESS DEFLATE")
    assert r.status in ("BAD", "NO"), r.line
    c.login("demo", server.password("demo"))
    assert c.ok("NOOP").ok


def test_corrupt_deflate_from_client_closes_the_connection(server):
    c = server.login()
    compress(c)
    # BTYPE = 11 is reserved (RFC 1951 §3.2.3): no decoder accepts it.
    c.sock.sendall(b"\x07\xff\xff\xff\xff\xff\xff\xff")
    assert c.at_eof(wait=5.0)
    # The server is fine for everybody else.
    d = server.login()
    compress(d)
    assert d.ok("NOOP").ok
    if server.is_pimap:
        deadline = time.monotonic() + 5
        while "not valid deflate" not in server.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert re.search(r"disconnect user=demo \(error: .*not valid deflate", server.log_text())
        assert "panicked" not in server.log_text()


def vm_hwm_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_zip_bomb_line_is_cut_by_the_line_limit_in_bounded_memory(pimap):
    """64 MiB of one byte with no line end inflates from ~64 KiB: the framer's line limit
    answers BAD at once and discards the rest as it streams; peak memory stays small."""
    c = pimap.login()
    compress(c)
    assert c.ok("NOOP").ok
    before = vm_hwm_kib(pimap.proc.pid)
    z = c.zout
    bomb = b"D1 NOOP " + b"a" * (1 << 20)
    chunk = z.compress(bomb)
    for _ in range(63):
        chunk += z.compress(b"a" * (1 << 20))
    chunk += z.compress(b"\r\nD2 NOOP\r\n") + z.flush(zlib.Z_SYNC_FLUSH)
    assert len(chunk) < 200_000, len(chunk)
    c.sock.sendall(chunk)
    r = c.read_until_tagged("D1")
    assert r.status == "BAD" and "too long" in r.text.lower(), r.line
    old = c.sock.gettimeout()
    c.sock.settimeout(60)
    assert c.read_until_tagged("D2").status == "OK"
    c.sock.settimeout(old)
    grown = vm_hwm_kib(pimap.proc.pid) - before
    assert grown < 16 * 1024, f"peak RSS grew by {grown} KiB"


def test_compressed_fetch_is_smaller_and_identical_to_dovecot(both):
    """Both servers on the same Maildir: the same FETCH through deflate gives the same bytes."""
    dv, pm = both
    c = pm.login()
    seed(c, 3)
    c.logout()
    got = {}
    for srv in (dv, pm):
        c = srv.login()
        compress(c)
        c.ok("EXAMINE INBOX")
        f = c.ok("FETCH 1:3 (RFC822.SIZE BODY.PEEK[])").fetches()
        got[srv.kind] = {k: (v["RFC822.SIZE"], v["BODY[]"]) for k, v in f.items()}
        assert c.wire_in < sum(len(v[1]) for v in got[srv.kind].values())
    assert got["dovecot"] == got["pimap"]


def _has_tls() -> bool:
    from conftest import PIMAP_BIN
    try:
        out = subprocess.run([str(PIMAP_BIN), "serve", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--tls-cert" in out.stdout


@pytest.mark.skipif(not _has_tls(), reason="this pimap has no --tls-cert")
def test_compress_inside_starttls(request, workdir, tmp_path):
    """RFC 4978 §3 (and §6): compression happens inside TLS, i.e. COMPRESS after STARTTLS
    deflates the plaintext that TLS then encrypts. pimap wraps whatever stream the
    connection has, so this is STARTTLS → LOGIN → COMPRESS → a session."""
    from conftest import start_pimap
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o644)
    srv = start_pimap(workdir, workdir / "users", workdir / "mail",
                      extra=["--tls-cert", str(cert), "--tls-key", str(key)])
    request.addfinalizer(srv.stop)
    c = srv.connect()
    assert c.command("STARTTLS").status == "OK"
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
    c.login("demo", srv.password("demo"))
    msgs = seed(c, 2)
    compress(c)
    assert c.ok("SELECT INBOX").number("EXISTS") == [2]
    f = c.ok("FETCH 1:2 BODY.PEEK[]").fetches()
    assert [f[1]["BODY[]"], f[2]["BODY[]"]] == msgs
    assert c.wire_in < sum(map(len, msgs))
    assert c.command("COMPRESS DEFLATE").code == "COMPRESSIONACTIVE"
