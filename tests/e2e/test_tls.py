"""TLS through the real binary: IMAPS (RFC 8314 implicit TLS) and STARTTLS (RFC 3501 §6.2.1,
RFC 2595), with a test CA made by the `openssl` CLI at test time.

Peers: python's ssl + imaplib (IMAP4_SSL, starttls()), `openssl s_client`, curl.
Covered: TLS 1.2/1.3 only (1.0/1.1 refused), STARTTLS advertised only with a certificate and
gone after it, no capabilities sent unasked after STARTTLS, the STARTTLS command-injection
bug class (CVE-2011-0411: bytes pipelined behind STARTTLS must not run after the handshake),
certificate rotation (rename, the k8s `..data` symlink swap, SIGHUP, a broken new pair keeps
the old one) while a client stays connected, and clear start-up errors for bad files.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (DOVECOT_CONF, HOST, MAX_MESSAGE_SIZE, PIMAP_BIN, USERS, Server, attach, free_port,
                      next_source_address, start_pimap, stop_process, wait_for_port)

if shutil.which("openssl") is None:
    pytest.skip("openssl CLI not installed", allow_module_level=True)


# ---------------------------------------------------------------------------------------
# A throw-away CA and server certificates (also used by test_proxy.py)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class TestCA:
    """`openssl`-made CA in `d`; `issue(serial)` writes a server cert+key for 127.0.0.1."""

    __test__ = False  # not a test class

    def __init__(self, d: Path):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=pimap test CA",
                 cwd=d)
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                   "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        self.ca = d / "ca.crt"

    def issue(self, serial: int, name: str, rsa: bool = False) -> tuple[Path, Path]:
        """Write `name.crt` / `name.key` (serial `serial`) and return their paths."""
        key = ["-newkey", "rsa:2048"] if rsa else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        _openssl("req", *key, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", "/CN=localhost", cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-set_serial", str(serial), "-days", "2", "-out", f"{name}.crt",
                 "-extfile", "ext.cnf", cwd=self.dir)
        # pimap started as root drops privileges after binding and must still read the files
        # to reload them (a k8s Secret mount gets this from fsGroup); these keys are throw-away.
        for f in (f"{name}.crt", f"{name}.key"):
            (self.dir / f).chmod(0o644)
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.check_hostname = True
        return ctx


def start_tls_pimap(request, workdir: Path, cert: Path, key: Path, extra: list[str] | None = None):
    """pimap with an IMAPS listener and STARTTLS; returns (server, imaps_port)."""
    port = free_port()
    srv = start_pimap(workdir, workdir / "users", workdir / "mail",
                      extra=["--imaps-listen", f"{HOST}:{port}", "--tls-cert", str(cert),
                             "--tls-key", str(key)] + (extra or []))
    attach(request.node, "pimap log", srv.log_text)
    request.addfinalizer(srv.stop)
    return srv, port


def start_tls_dovecot(request, workdir: Path, cert: Path, key: Path):
    """The suite's Dovecot with `ssl = yes` and an imaps listener: the reference for STARTTLS."""
    port, imaps = free_port(), free_port()
    conf = DOVECOT_CONF.format(workdir=workdir, host=HOST, port=port, mail_root=workdir / "mail",
                               users=workdir / "users", max_size=MAX_MESSAGE_SIZE)
    conf = conf.replace("ssl = no\n", f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
                        "ssl_min_protocol = TLSv1.2\n")
    old = "  inet_listener imaps {\n    port = 0\n  }"
    assert old in conf
    conf = conf.replace(old, f"  inet_listener imaps {{\n    address = {HOST}\n    port = {imaps}\n  }}")
    (workdir / "dovecot.conf").write_text(conf)
    out = workdir / "dovecot.stdout"
    with open(out, "ab") as outf:
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(workdir / "dovecot.conf")],
                                stdin=subprocess.DEVNULL, stdout=outf, stderr=subprocess.STDOUT,
                                cwd=workdir, start_new_session=True)
    try:
        wait_for_port(port, proc, out)
    except Exception:
        stop_process(proc, group=True)
        raise
    srv = Server("dovecot", port, proc, workdir / "dovecot.log", workdir, workdir / "mail")
    attach(request.node, "dovecot log", srv.log_text)
    request.addfinalizer(srv.stop)
    return srv, imaps


@pytest.fixture(params=["dovecot", "pimap"])
def tls_server(request, workdir, ca):
    """IMAPS + STARTTLS on Dovecot (the reference) and on pimap, same certificate."""
    if request.param == "dovecot" and shutil.which("dovecot") is None:
        pytest.skip("dovecot not installed")
    cert, key = ca.issue(0x1001, "tls")
    if request.param == "dovecot":
        return start_tls_dovecot(request, workdir, cert, key)
    return start_tls_pimap(request, workdir, cert, key)


@pytest.fixture
def ca(workdir) -> TestCA:
    return TestCA(workdir / "ca")


@pytest.fixture
def tls_pimap(request, workdir, ca):
    cert, key = ca.issue(0x1001, "tls")
    srv, port = start_tls_pimap(request, workdir, cert, key)
    return srv, port


def wait_log(srv, pattern: str, timeout: float = 10.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, srv.log_text())
        if m:
            return m
        time.sleep(0.05)
    raise AssertionError(f"log never matched {pattern!r}:\n{srv.log_text()[-3000:]}")


def serial_of(port: int, ca: TestCA) -> str:
    with socket.create_connection((HOST, port), timeout=10,
                                  source_address=(next_source_address(), 0)) as raw:
        with ca.context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert()["serialNumber"]


def caps_of(line: bytes) -> set[str]:
    m = re.search(rb"CAPABILITY ([^\]\r\n]*)", line)
    assert m, line
    return set(m.group(1).decode().upper().split())


# ---------------------------------------------------------------------------------------
# IMAPS


def test_imaps_with_imaplib(tls_pimap, ca):
    srv, port = tls_pimap
    user, pw = "demo", USERS["demo"][0]
    m = imaplib.IMAP4_SSL(HOST, port, ssl_context=ca.context(), timeout=10)
    try:
        assert "STARTTLS" not in m.capabilities  # already TLS
        assert "AUTH=PLAIN" in m.capabilities
        assert m.sock.version() in ("TLSv1.2", "TLSv1.3")
        m.login(user, pw)
        typ, data = m.select("INBOX")
        assert typ == "OK", data
        m.logout()
    finally:
        m.shutdown() if m.state != "LOGOUT" else None
    assert re.search(r"127\.\S+: connect \(TLS\)", srv.log_text())


def test_imaps_with_openssl_s_client_and_curl(tls_pimap, ca):
    _, port = tls_pimap
    p = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", "-CAfile", str(ca.ca),
                        "-verify_return_error", "-verify_ip", "127.0.0.1", "-ign_eof"],
                       input=b"a1 CAPABILITY\r\na2 LOGOUT\r\n", capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, p.stderr
    assert "Verify return code: 0 (ok)" in out, out
    assert re.search(r"\* OK \[CAPABILITY [^\]]*AUTH=PLAIN", out), out
    assert "a1 OK" in out and "a2 OK LOGOUT" in out, out
    c = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(ca.ca), "--user",
                        f"demo:{USERS['demo'][0]}", f"imaps://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=30)
    assert c.returncode == 0, c.stderr
    assert '"INBOX"' in c.stdout, c.stdout
    # The wrong CA: curl refuses our certificate (it is really checked).
    bad = subprocess.run(["curl", "-sS", "--max-time", "20", f"imaps://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 60, (bad.returncode, bad.stderr)


@pytest.mark.parametrize("version", ["tls1", "tls1_1"])
def test_old_tls_versions_refused(tls_pimap, ca, version):
    """RFC 8996: TLS 1.0 and 1.1 are refused by the server (the client offers them with the
    security level lowered, so the refusal is the server's)."""
    srv, port = tls_pimap
    p = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", f"-{version}",
                        "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", str(ca.ca)],
                       input=b"", capture_output=True, timeout=30)
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode != 0, out
    assert "* OK" not in out
    # The ClientHello reached the server and it answered with an alert (not a client-side
    # refusal): rustls speaks only TLS 1.2 and 1.3.
    assert re.search(r"alert (protocol version|handshake failure)", out, re.I), out
    wait_log(srv, r"TLS handshake failed .*peer is incompatible")
    for ok in ("tls1_2", "tls1_3"):
        p = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", f"-{ok}",
                            "-CAfile", str(ca.ca), "-verify_return_error", "-ign_eof"],
                           input=b"a LOGOUT\r\n", capture_output=True, timeout=30)
        assert p.returncode == 0 and b"* OK" in p.stdout, (ok, p.stdout, p.stderr)


# ---------------------------------------------------------------------------------------
# STARTTLS


def test_starttls_with_imaplib(tls_pimap, ca):
    srv, _ = tls_pimap
    m = imaplib.IMAP4(HOST, srv.port, timeout=10)
    try:
        assert "STARTTLS" in m.capabilities
        typ, _ = m.starttls(ssl_context=ca.context())
        assert typ == "OK"
        # imaplib asked again after the handshake (RFC 3501 §6.2.1): no STARTTLS any more.
        assert "STARTTLS" not in m.capabilities
        assert "AUTH=PLAIN" in m.capabilities
        m.login("demo", USERS["demo"][0])
        assert m.select("INBOX")[0] == "OK"
        m.logout()
    finally:
        if m.state != "LOGOUT":
            m.shutdown()


def test_starttls_transcript(tls_server, ca):
    """C: STARTTLS / S: OK / handshake / S: (nothing unasked) / C: CAPABILITY / C: STARTTLS."""
    srv, _ = tls_server
    c = srv.connect()
    assert "STARTTLS" in caps_of(c.greeting)
    r = c.command("STARTTLS")
    assert r.status == "OK", r.line
    c.sock = ca.context().wrap_socket(c.sock, server_hostname="127.0.0.1")
    # The server sends nothing on its own after the handshake: the client must ask.
    assert not c.buf
    c.sock.settimeout(0.5)
    with pytest.raises((socket.timeout, TimeoutError)):
        c.sock.recv(1)
    c.sock.settimeout(10)
    r = c.ok("CAPABILITY")
    caps = caps_of(r.untagged[0])
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps
    r = c.command("STARTTLS")
    assert r.status == "BAD" and "already" in r.text.lower(), r.line
    c.login("demo", USERS["demo"][0])
    r = c.command("STARTTLS")
    assert r.status == "BAD", r.line
    c.logout()


def test_starttls_command_injection_is_discarded(tls_server, ca):
    """CVE-2011-0411 class: `STARTTLS\\r\\nCAPABILITY\\r\\n` in one packet. The pipelined
    command was sent in the clear; it must never run inside the TLS session."""
    srv, _ = tls_server
    c = srv.connect()
    c.send(b"a1 STARTTLS\r\nINJ1 CAPABILITY\r\nINJ2 LOGIN demo x\r\n")
    line = c.read_line()
    assert line.startswith(b"a1 OK"), line
    # Nothing else in the clear: the injected commands got no answer before the handshake.
    assert c.buf == b""
    if not srv.is_pimap:
        # Dovecot's answer to pipelined input: it drops the connection instead of starting
        # TLS (also safe). pimap discards the bytes and goes on, checked below.
        with pytest.raises((ssl.SSLError, OSError)):
            s = ca.context().wrap_socket(c.sock, server_hostname="127.0.0.1")
            s.sendall(b"a2 NOOP\r\n")
            assert b"INJ" not in s.recv(4096)
            s.recv(4096)  # the connection must be gone
            raise AssertionError("Dovecot kept the connection")
        wait_log(srv, r"Disconnected")
        return
    c.sock = ca.context().wrap_socket(c.sock, server_hostname="127.0.0.1")
    r = c.ok("NOOP")
    assert r.untagged == [], r.untagged
    assert b"INJ" not in r.line
    c.sock.settimeout(0.5)
    with pytest.raises((socket.timeout, TimeoutError)):
        c.sock.recv(1)
    c.sock.settimeout(10)
    c.logout()
    log = srv.log_text()
    assert re.search(r"discarded \d+ byte\(s\) pipelined after STARTTLS", log), log
    assert "INJ" not in "\n".join(srv.transcript[-3:])


def test_no_starttls_without_a_certificate(pimap):
    c = pimap.connect()
    assert "STARTTLS" not in caps_of(c.greeting)
    r = c.command("STARTTLS")
    assert r.status == "BAD", r.line
    c.ok("NOOP")  # the connection goes on in the clear


# ---------------------------------------------------------------------------------------
# Certificate rotation


def test_rotation_keeps_open_connections(tls_pimap, ca, workdir):
    """cert-manager style: new files renamed into place. An open IMAPS connection keeps
    working; a new one sees the new serial. Then a broken pair keeps the old certificate."""
    srv, port = tls_pimap
    assert serial_of(port, ca) == "1001"
    m = imaplib.IMAP4_SSL(HOST, port, ssl_context=ca.context(), timeout=10)
    m.login("demo", USERS["demo"][0])
    m.select("INBOX")
    live = ca.context()
    new_crt, new_key = ca.issue(0x2002, "next")
    os.replace(new_key, ca.dir / "tls.key")
    os.replace(new_crt, ca.dir / "tls.crt")
    assert serial_of(port, ca) == "2002"
    wait_log(srv, r"TLS reload \(the certificate files changed\)")
    assert m.noop()[0] == "OK"  # the open connection did not notice
    assert m.sock.getpeercert()["serialNumber"] == "1001"
    # A broken certificate: the old one stays, the log says why (once).
    (ca.dir / "tls.crt").write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    assert serial_of(port, ca) == "2002"
    wait_log(srv, r"TLS reload .*failed, keeping the current certificate: TLS certificate \S*tls\.crt")
    # A certificate whose key is not the one next to it: refused too.
    other_crt, _ = ca.issue(0x3003, "other")
    os.replace(other_crt, ca.dir / "tls.crt")
    assert serial_of(port, ca) == "2002"
    wait_log(srv, r"TLS key \S*tls\.key does not belong to the certificate")
    assert m.noop()[0] == "OK"
    m.logout()
    del live


def test_k8s_symlink_swap_and_sighup(request, workdir, ca):
    """A k8s Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/; an update
    swaps the `..data` symlink atomically. SIGHUP reloads even when nothing looks changed."""
    vol = workdir / "secret"
    v1 = vol / "..2026_11_23_10_00_00.1"
    v1.mkdir(parents=True)
    crt, key = ca.issue(0x1111, "v1")
    shutil.copy(crt, v1 / "tls.crt")
    shutil.copy(key, v1 / "tls.key")
    os.symlink(v1.name, vol / "..data")
    os.symlink("..data/tls.crt", vol / "tls.crt")
    os.symlink("..data/tls.key", vol / "tls.key")
    srv, port = start_tls_pimap(request, workdir, vol / "tls.crt", vol / "tls.key")
    assert serial_of(port, ca) == "1111"
    keep = imaplib.IMAP4_SSL(HOST, port, ssl_context=ca.context(), timeout=10)
    keep.login("demo", USERS["demo"][0])
    v2 = vol / "..2026_11_23_11_00_00.2"
    v2.mkdir()
    crt, key = ca.issue(0x2222, "v2")
    shutil.copy(crt, v2 / "tls.crt")
    shutil.copy(key, v2 / "tls.key")
    os.symlink(v2.name, vol / "..data_tmp")
    os.replace(vol / "..data_tmp", vol / "..data")
    shutil.rmtree(v1)
    # Without any new connection: the periodic check picks it up within seconds.
    wait_log(srv, r"TLS reload \(the certificate files changed\).*tls\.crt", timeout=15)
    assert serial_of(port, ca) == "2222"
    assert keep.noop()[0] == "OK"
    srv.proc.send_signal(signal.SIGHUP)
    wait_log(srv, r"TLS reload \(SIGHUP\)")
    assert serial_of(port, ca) == "2222"
    assert keep.noop()[0] == "OK"
    keep.logout()


# ---------------------------------------------------------------------------------------
# Start-up errors


def _serve(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PIMAP_BIN), "serve", "--data-dir", str(workdir / "pd"), "--users",
                           str(workdir / "users"), "--imap-listen", f"{HOST}:{free_port()}", *args],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def test_bad_certificate_is_a_clear_startup_error(workdir, ca):
    crt, key = ca.issue(0x4004, "good")
    other_crt, _ = ca.issue(0x5005, "other")
    garbage = workdir / "garbage.pem"
    garbage.write_text("hello\n")
    imaps = ["--imaps-listen", f"{HOST}:{free_port()}"]
    cases = [
        (["--tls-cert", str(workdir / "nope.crt"), "--tls-key", str(key)], r"TLS certificate \S*nope\.crt: No such file"),
        (["--tls-cert", str(crt), "--tls-key", str(workdir / "nope.key")], r"TLS key \S*nope\.key: No such file"),
        (["--tls-cert", str(garbage), "--tls-key", str(key)], r"TLS certificate \S*garbage\.pem: no PEM CERTIFICATE"),
        (["--tls-cert", str(crt), "--tls-key", str(garbage)], r"TLS key \S*garbage\.pem: no usable PEM private key"),
        (["--tls-cert", str(other_crt), "--tls-key", str(key)], r"TLS key \S*good\.key does not belong to the certificate \S*other\.crt"),
        (imaps, r"--imaps-listen needs a certificate"),
        (["--tls-cert", str(crt)], r"--tls-key"),
    ]
    for args, pattern in cases:
        p = _serve(workdir, *args)
        assert p.returncode != 0, (args, p.stdout, p.stderr)
        assert re.search(pattern, p.stderr), (pattern, p.stderr)


def test_rsa_certificate_and_check_report(request, workdir, ca):
    crt, key = ca.issue(0x6006, "rsa", rsa=True)
    srv, port = start_tls_pimap(request, workdir, crt, key)
    assert serial_of(port, ca) == "6006"
    p = subprocess.run([str(PIMAP_BIN), "check", "--data-dir", str(workdir / "pd"), "--users",
                        str(workdir / "users"), "--tls-cert", str(crt), "--tls-key", str(key),
                        "--imaps-listen", f"{HOST}:993"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "imaps listen: 127.0.0.1:993" in p.stdout and "STARTTLS offered" in p.stdout, p.stdout


def test_alpn_imap_or_none(tls_pimap, ca):
    """ALPN (RFC 7301): "imap" or none is served; another protocol is refused (the ALPACA
    cross-protocol attack: an HTTPS client must not be talked into an IMAP session)."""
    srv, port = tls_pimap
    for alpn, ok in (("imap", True), ("http/1.1", False)):
        p = subprocess.run(["openssl", "s_client", "-connect", f"{HOST}:{port}", "-alpn", alpn,
                            "-CAfile", str(ca.ca), "-ign_eof"],
                           input=b"a LOGOUT\r\n", capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode(errors="replace")
        if ok:
            assert p.returncode == 0 and "ALPN protocol: imap" in out and "* OK" in out, out
        else:
            assert p.returncode != 0 and "* OK" not in out, out
    wait_log(srv, r"TLS handshake failed .*peer doesn.t support any known protocol")
