"""The PROXY protocol (HAProxy spec v1 text, v2 binary) through the real binary.

From a peer in `--proxy-trusted-networks` the header is required and its client address is
the one pimap uses (logs, the plaintext-auth loopback test); from any other peer a header is
refused with `* BYE`. Works before the TLS handshake on the IMAPS listener too. Peers: raw
sockets (to claim arbitrary addresses) and `curl --haproxy-protocol`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import subprocess

import pytest

from conftest import (DOVECOT_CONF, HOST, MAX_MESSAGE_SIZE, USERS, Server, attach, free_port,
                      wait_for_greeting,
                      next_source_address, start_pimap, stop_process, wait_for_port)
from imapwire import Closed, Conn
from test_auth_scram import scram_login
from test_tls import TestCA, caps_of, start_tls_pimap, wait_log

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src: str, sport: int, dst: str = "127.0.0.1", dport: int = 143) -> bytes:
    fam = "TCP4" if ipaddress.ip_address(src).version == 4 else "TCP6"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src: str | None, sport: int = 0, dst: str = "::1", dport: int = 143, local: bool = False,
       tlv: bytes = b"") -> bytes:
    if local:
        return SIG + bytes([0x20, 0x00]) + struct.pack(">H", len(tlv)) + tlv
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if s.version == 4 else 0x21
    body = s.packed + d.packed + struct.pack(">HH", sport, dport) + tlv
    return SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


def proxied(srv, header: bytes, port: int | None = None) -> Conn:
    """A connection that sends `header` first, then reads the greeting."""
    c = Conn(HOST, port or srv.port, timeout=10, transcript=srv.transcript, read_greeting=False,
             source=next_source_address())
    srv.conns.append(c)
    c.send(header)
    c.greeting = c.read_response()
    return c


@pytest.fixture
def trusting(request, workdir):
    """pimap that requires a PROXY header from all of loopback (where the tests connect from)."""
    srv = start_pimap(workdir, workdir / "users", workdir / "mail",
                      extra=["--proxy-trusted-networks", "10.0.0.0/8, 127.0.0.0/8"])
    attach(request.node, "pimap log", srv.log_text)
    attach(request.node, "transcript", lambda: "\n".join(srv.transcript))
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture
def ca(workdir) -> TestCA:
    return TestCA(workdir / "ca")


# ---------------------------------------------------------------------------------------
# Trusted peer: the header names the client


def test_v1_remote_client_is_remote(trusting):
    """A loopback proxy saying the client is 203.0.113.5: plaintext LOGIN is refused
    (LOGINDISABLED, RFC 3501 §6.2.3) as for any remote client, and the log names it."""
    c = proxied(trusting, v1("203.0.113.5", 40000))
    caps = caps_of(c.greeting)
    assert "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps, caps
    r = c.command(f"LOGIN demo \"{USERS['demo'][0]}\"")
    assert r.status == "NO" and r.code == "PRIVACYREQUIRED", r.line
    r = c.command("AUTHENTICATE PLAIN AGRlbW8AeA==")
    assert r.status == "NO", r.line
    c.logout()
    log = trusting.log_text()
    assert re.search(r"127\.[\d.]+:\d+: PROXY v1 header: client 203\.0\.113\.5:40000", log), log
    assert "203.0.113.5:40000: connect" in log


def test_v1_loopback_client_may_log_in(trusting):
    c = proxied(trusting, v1("127.9.9.9", 5555))
    assert "AUTH=PLAIN" in caps_of(c.greeting)
    c.login("demo", USERS["demo"][0])
    c.ok("SELECT INBOX")
    c.logout()
    assert re.search(r"127\.9\.9\.9:5555: login ok user=demo", trusting.log_text())


def test_v2_ipv6_client_with_tlvs(trusting):
    # A PP2_TYPE_AUTHORITY TLV (0x02) as HAProxy sends it: ignored.
    c = proxied(trusting, v2("2001:db8::7", 4711, tlv=b"\x02\x00\x0bexample.org"))
    assert "LOGINDISABLED" in caps_of(c.greeting)
    c.ok("NOOP")
    c.logout()
    assert re.search(r"PROXY v2 header: client \[2001:db8::7\]:4711", trusting.log_text())


def test_v2_local_uses_the_socket_address(trusting):
    """v2 LOCAL (a load balancer's health check): the connection's own address counts."""
    c = proxied(trusting, v2(None, local=True))
    assert "AUTH=PLAIN" in caps_of(c.greeting)  # the socket peer is loopback
    c.login("demo", USERS["demo"][0])
    c.logout()
    m = re.search(r"(127\.[\d.]+:\d+): PROXY v2 header: client (\S+)", trusting.log_text())
    assert m and m.group(1) == m.group(2), trusting.log_text()


def test_header_split_across_packets(trusting):
    h = v1("198.51.100.9", 1234)
    c = Conn(HOST, trusting.port, timeout=10, read_greeting=False, source=next_source_address())
    for i in range(0, len(h), 7):
        c.send(h[i:i + 7])
    assert "LOGINDISABLED" in caps_of(c.read_response())
    c.logout()


@pytest.mark.parametrize("first", [b"a1 CAPABILITY\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
                                   b"PROXY TCP4 " + b"1" * 200, SIG + b"\x21\x11\xff\xff"])
def test_trusted_peer_without_a_valid_header_is_closed(trusting, first):
    c = Conn(HOST, trusting.port, timeout=10, read_greeting=False, source=next_source_address())
    c.send(first)
    assert c.read_line().startswith(b"* BYE Bad PROXY protocol header")
    assert c.at_eof()
    wait_log(trusting, r"bad PROXY header from a trusted peer: ")


def test_trusted_peer_that_sends_nothing_times_out(trusting):
    c = Conn(HOST, trusting.port, timeout=15, read_greeting=False, source=next_source_address())
    assert c.read_line().startswith(b"* BYE Bad PROXY protocol header")  # after ~5 s
    wait_log(trusting, r"no PROXY header within 5s")


# ---------------------------------------------------------------------------------------
# Untrusted peer: a header is refused, never honoured


@pytest.mark.parametrize("header", [v1("203.0.113.5", 40000), v1("127.0.0.1", 1), v2("192.0.2.1", 9)])
def test_untrusted_peer_header_refused(request, workdir, header):
    srv = start_pimap(workdir, workdir / "users", workdir / "mail",
                      extra=["--proxy-trusted-networks", "10.0.0.0/8"])
    attach(request.node, "pimap log", srv.log_text)
    request.addfinalizer(srv.stop)
    c = Conn(HOST, srv.port, timeout=10, source=next_source_address())
    c.send(header + b"a1 LOGIN demo x\r\n")
    assert c.read_line().startswith(b"* BYE PROXY protocol header not accepted")
    assert c.at_eof()
    log = wait_log(srv, r"PROXY header from an untrusted peer, refused").string
    assert "203.0.113.5" not in log and "192.0.2.1" not in log
    # Without the header, the same peer is an ordinary client.
    d = srv.connect()
    d.ok("CAPABILITY")
    d.logout()


def test_no_trusted_networks_means_no_proxy(pimap):
    """Default: no peer may send a header (curl's real v1 header is refused)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--haproxy-protocol", "--user",
                        f"demo:{USERS['demo'][0]}", f"imap://127.0.0.1:{pimap.port}/"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    wait_log(pimap, r"PROXY header from an untrusted peer, refused")


# ---------------------------------------------------------------------------------------
# With TLS: the header comes before the handshake


def test_imaps_and_starttls_behind_a_trusted_proxy(request, workdir, ca):
    crt, key = ca.issue(0x7007, "tls")
    srv, tls_port = start_tls_pimap(request, workdir, crt, key,
                                    extra=["--proxy-trusted-networks", "127.0.0.0/8"])
    # IMAPS: header, then the TLS handshake; a remote client on TLS may log in.
    raw = socket.create_connection((HOST, tls_port), timeout=10,
                                   source_address=(next_source_address(), 0))
    raw.sendall(v2("198.51.100.20", 50000, dst="10.0.0.1", dport=993))
    c = Conn.__new__(Conn)
    c.name, c.buf, c.tagn, c.transcript = "imaps", b"", 0, srv.transcript
    c.sock = ca.context().wrap_socket(raw, server_hostname="127.0.0.1")
    c.greeting = c.read_response()
    caps = caps_of(c.greeting)
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" not in caps, caps
    c.login("demo", USERS["demo"][0])
    c.logout()
    wait_log(srv, r"198\.51\.100\.20:50000: login ok user=demo")
    # STARTTLS on the plain port: remote → LOGINDISABLED until TLS, then AUTH=PLAIN.
    d = proxied(srv, v1("198.51.100.21", 50001))
    caps = caps_of(d.greeting)
    assert "LOGINDISABLED" in caps and "STARTTLS" in caps, caps
    assert d.ok("STARTTLS")
    d.sock = ca.context().wrap_socket(d.sock, server_hostname="127.0.0.1")
    caps = caps_of(d.ok("CAPABILITY").untagged[0])
    assert "AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps, caps
    d.login("demo", USERS["demo"][0])
    d.logout()
    wait_log(srv, r"198\.51\.100\.21:50001: login ok user=demo")
    # curl's own v1 header, on both listeners.
    for url in (f"imaps://127.0.0.1:{tls_port}/", f"imap://127.0.0.1:{srv.port}/"):
        p = subprocess.run(["curl", "-sS", "--max-time", "20", "--haproxy-protocol", "--cacert",
                            str(ca.ca), "--ssl-reqd", "--user", f"demo:{USERS['demo'][0]}", url],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and '"INBOX"' in p.stdout, (url, p.stderr)
    assert len(re.findall(r"PROXY v1 header: client 127\.0\.0\.1:\d+", srv.log_text())) == 2


def test_imaps_untrusted_header_answered_in_the_clear(request, workdir, ca):
    crt, key = ca.issue(0x8008, "tls")
    srv, tls_port = start_tls_pimap(request, workdir, crt, key)
    raw = socket.create_connection((HOST, tls_port), timeout=10,
                                   source_address=(next_source_address(), 0))
    raw.sendall(v1("203.0.113.9", 1000))
    data = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    raw.close()
    assert data.startswith(b"* BYE PROXY protocol header not accepted"), data
    wait_log(srv, r"PROXY header from an untrusted peer, refused")


def test_bad_trusted_networks_is_a_startup_error(workdir):
    from test_tls import _serve
    for bad in ("10.0.0.0/33", "example.org"):
        p = _serve(workdir, "--proxy-trusted-networks", bad)
        assert p.returncode != 0
        assert "--proxy-trusted-networks" in p.stderr and bad in p.stderr, p.stderr


# ---------------------------------------------------------------------------------------
# Dovecot parity: the same headers against Dovecot's haproxy_trusted_networks


def start_proxy_dovecot(request, workdir):
    port = free_port()
    conf = DOVECOT_CONF.format(workdir=workdir, host=HOST, port=port, mail_root=workdir / "mail",
                               users=workdir / "users", max_size=MAX_MESSAGE_SIZE)
    conf = conf.replace("disable_plaintext_auth = no\n", "disable_plaintext_auth = yes\n"
                        "haproxy_trusted_networks = 127.0.0.0/8\n")
    conf = conf.replace("login_trusted_networks = 127.0.0.0/8\n", "")
    old = f"    port = {port}\n"
    assert old in conf
    conf = conf.replace(old, old + "    haproxy = yes\n")
    (workdir / "dovecot.conf").write_text(conf)
    out = workdir / "dovecot.stdout"
    with open(out, "ab") as outf:
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(workdir / "dovecot.conf")],
                                stdin=subprocess.DEVNULL, stdout=outf, stderr=subprocess.STDOUT,
                                cwd=workdir, start_new_session=True)
    try:
        wait_for_port(port, proc, out)
        wait_for_greeting(port, proc, out, first=b"PROXY TCP4 127.0.0.1 127.0.0.1 1 143\r\n")
    except Exception:
        stop_process(proc, group=True)
        raise
    srv = Server("dovecot", port, proc, workdir / "dovecot.log", workdir, workdir / "mail")
    attach(request.node, "dovecot log", srv.log_text)
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture(params=["dovecot", "pimap"])
def proxy_server(request, workdir):
    if request.param == "dovecot":
        return start_proxy_dovecot(request, workdir)
    srv = start_pimap(workdir, workdir / "users", workdir / "mail",
                      extra=["--proxy-trusted-networks", "127.0.0.0/8"])
    attach(request.node, "pimap log", srv.log_text)
    request.addfinalizer(srv.stop)
    return srv


def test_scram_offered_and_working_where_plaintext_is_disabled(proxy_server):
    """Both servers: SCRAM never sends the password, so a remote client that gets
    LOGINDISABLED is still offered AUTH=SCRAM-SHA-1 / SCRAM-SHA-256 and logs in with it."""
    c = proxied(proxy_server, v1("203.0.113.5", 40000))
    caps = caps_of(c.greeting) if b"CAPABILITY" in c.greeting else caps_of(c.ok("CAPABILITY").untagged[0])
    assert "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps, caps
    assert "AUTH=SCRAM-SHA-1" in caps and "AUTH=SCRAM-SHA-256" in caps, caps
    assert scram_login(c, "plain", USERS["plain"][0])[0] == "OK"
    c.ok("SELECT INBOX")


@pytest.mark.parametrize("header,remote", [
    (v1("203.0.113.5", 40000), True),
    (v2("2001:db8::7", 4711), True),
    (v1("127.0.0.1", 40000), False),
    (v2(None, local=True), False),
])
def test_proxy_header_parity_with_dovecot(proxy_server, header, remote):
    """Both servers: a remote client named by a trusted PROXY header gets LOGINDISABLED and
    a refused LOGIN; for pimap a loopback one (or v2 LOCAL from loopback) may log in."""
    if not remote and not proxy_server.is_pimap:
        # Dovecot counts a client as local only when its IP equals the server's own, pimap
        # any loopback address (its existing --allow-plaintext-auth rule): not comparable.
        pytest.skip("Dovecot's 'secured' rule differs for loopback clients")
    c = proxied(proxy_server, header)
    caps = caps_of(c.greeting) if b"CAPABILITY" in c.greeting else caps_of(c.ok("CAPABILITY").untagged[0])
    assert ("LOGINDISABLED" in caps) == remote, caps
    r = c.command(f"LOGIN demo \"{USERS['demo'][0]}\"")
    assert (r.status == "OK") == (not remote), r.line
    c.logout()
    if remote:
        who = "203.0.113.5" if header.startswith(b"PROXY") else "2001:db8::7"
        wait_log(proxy_server, re.escape(who))
