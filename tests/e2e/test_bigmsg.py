"""Big messages in bounded memory: APPEND literals go to tmp/ as they arrive, FETCH bodies are
read from the file piece by piece (RFC 3501 §6.3.11, §6.4.5 partial `<offset.length>`).

Protocol behaviour runs against Dovecot and pimap alike, with both servers allowing 32 MiB
messages; memory and tmp/ checks look at the pimap process and the Maildir.

C: A1 APPEND INBOX {3145728+}
C: <3 MiB>
S: A1 OK [APPENDUID ...]
C: A2 FETCH 1 (BODY.PEEK[]<1048570.65536>)
S: * 1 FETCH (BODY[]<1048570> {65536}
S: <the 64 KiB from that offset, byte-exact>
"""

import os
import time

import pytest

import conftest
from msgs import deliver
from test_ext_compress import deflate_on

BIG = 32 * 1024 * 1024


@pytest.fixture(params=["dovecot", "pimap"])
def big(request, workdir, monkeypatch):
    """A server (each in turn) that accepts messages up to 32 MiB."""
    monkeypatch.setattr(conftest, "MAX_MESSAGE_SIZE", BIG)
    return conftest._start(request.param, request, workdir)


@pytest.fixture
def big_pimap(request, workdir, monkeypatch):
    monkeypatch.setattr(conftest, "MAX_MESSAGE_SIZE", BIG)
    return conftest._start("pimap", request, workdir)


def big_message(size: int, eol: bytes = b"\r\n", seed: int = 1) -> bytes:
    """A text message of about `size` bytes, every line different (offsets are checkable)."""
    head = eol.join([b"From: big@example.org", b"To: demo@example.org",
                     b"Subject: big message %d" % seed, b"Message-ID: <big%d@example.org>" % seed,
                     b"", b""])
    lines = []
    n = len(head)
    i = 0
    while n < size:
        line = b"line %08d seed %d " % (i, seed) + bytes([0x41 + i % 26]) * (i % 60) + eol
        lines.append(line)
        n += len(line)
        i += 1
    return head + b"".join(lines)


def fetch_one(c, items: str, key: str) -> bytes:
    f = c.ok(f"FETCH 1 ({items})").fetches()[1]
    return f[key]


def append_plus(c, data: bytes) -> None:
    """APPEND with a non-synchronising literal (RFC 7888 LITERAL+)."""
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    r = c.read_until_tagged(tag)
    assert r.ok, r


def check_pieces(c, msg: bytes) -> None:
    """Partial fetches at awkward offsets, HEADER, TEXT and sizes against `msg` (CRLF form)."""
    hdr_end = msg.index(b"\r\n\r\n") + 4
    size = len(msg)
    for off, n in [(0, 65536), (hdr_end - 3, 10), (hdr_end, 65536), (size // 2 + 7, 65536),
                   (size - 100, 65536), (size, 10), (size + 5000, 10)]:
        got = fetch_one(c, f"BODY.PEEK[]<{off}.{n}>", f"BODY[]<{off}>")
        assert got == msg[off:off + n], (off, n)
    text = msg[hdr_end:]
    for off, n in [(0, 100), (12345, 65536), (len(text) - 10, 100)]:
        got = fetch_one(c, f"BODY.PEEK[TEXT]<{off}.{n}>", f"BODY[TEXT]<{off}>")
        assert got == text[off:off + n], (off, n)
    f = c.ok("FETCH 1 (RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (SUBJECT)] "
             "ENVELOPE)").fetches()[1]
    assert int(f["RFC822.SIZE"]) == size
    assert f["BODY[HEADER]"] == msg[:hdr_end]
    subject = [ln for ln in msg[:hdr_end].split(b"\r\n") if ln.startswith(b"Subject:")][0]
    assert f["BODY[HEADER.FIELDS (SUBJECT)]"] == subject + b"\r\n\r\n"
    assert f["ENVELOPE"][1] == subject.split(b": ", 1)[1]
    assert fetch_one(c, "BODY.PEEK[TEXT]", "BODY[TEXT]") == text
    assert fetch_one(c, "RFC822.TEXT", "RFC822.TEXT") == text


def test_big_append_then_fetch_whole_and_pieces_byte_exact(big):
    msg = big_message(3 * 1024 * 1024)
    c = big.login()
    append_plus(c, msg)
    c.ok("APPEND INBOX ", msg)  # synchronising literal: `+` then the bytes
    c.ok("SELECT INBOX")
    for uid in (1, 2):
        f = c.ok(f"FETCH {uid} (RFC822.SIZE BODY.PEEK[])").fetches()[uid]
        assert f["BODY[]"] == msg
        assert int(f["RFC822.SIZE"]) == len(msg)
    check_pieces(c, msg)
    # RFC822 sets \Seen (RFC 3501 §6.4.5) and the reply carries the whole message.
    f = c.ok("FETCH 2 (RFC822)").fetches()[2]
    assert f["RFC822"] == msg
    assert "\\Seen" in str(c.ok("FETCH 2 (FLAGS)").fetches()[2]["FLAGS"])
    # Both messages in one response, with a small one between them.
    c.ok("APPEND INBOX ", b"Subject: small\r\n\r\nsmall\r\n")
    f = c.ok("FETCH 1:3 (BODY.PEEK[])").fetches()
    assert [f[1]["BODY[]"], f[2]["BODY[]"], f[3]["BODY[]"]] == [msg, msg, b"Subject: small\r\n\r\nsmall\r\n"]
    if big.is_pimap:
        stored = [p.read_bytes() for p in (big.maildir() / "cur").iterdir()]
        assert stored.count(msg) == 2
        assert list((big.maildir() / "tmp").iterdir()) == []


@pytest.mark.parametrize("named", ["plain", "S="])
def test_big_lf_only_message_is_served_as_crlf_in_pieces(big, named):
    # Written by an MDA with bare LF and no W= in its name (only S=, as pimap's S3 sync
    # names them, or nothing): converted while streaming.
    raw = big_message(2 * 1024 * 1024, eol=b"\n", seed=2) + b"with a NUL \0 in it\n"
    c = big.login()
    c.ok("SELECT INBOX")  # creates the Maildir as the mail user
    name = f"{int(time.time())}.M1P1.e2e-big" + (f",S={len(raw)}" if named == "S=" else "")
    deliver(big.maildir(), raw, name=name, uid=conftest.MAIL_UID, gid=conftest.MAIL_GID)
    c.ok("SELECT INBOX")
    want = raw.replace(b"\n", b"\r\n").replace(b"\0", b"\x80")
    assert fetch_one(c, "BODY.PEEK[]", "BODY[]") == want
    check_pieces(c, want)


def test_big_fetch_through_compress_deflate(big):
    msg = big_message(2 * 1024 * 1024, seed=3)
    c = big.login()
    c.ok("COMPRESS DEFLATE")
    deflate_on(c)
    append_plus(c, msg)
    c.ok("SELECT INBOX")
    assert fetch_one(c, "BODY.PEEK[]", "BODY[]") == msg
    check_pieces(c, msg)


def maildir_files(server) -> list[str]:
    d = server.maildir()
    return sorted(f"{sub}/{p.name}" for sub in ("tmp", "new", "cur") if (d / sub).is_dir()
                  for p in (d / sub).iterdir())


def wait_no_files(server, timeout: float = 10.0) -> list[str]:
    end = time.monotonic() + timeout
    while True:
        files = maildir_files(server)
        if not files or time.monotonic() > end:
            return files
        time.sleep(0.1)


@pytest.mark.parametrize("literal", ["{%d}", "{%d+}"])
def test_cut_off_append_literal_leaves_no_file(big, literal):
    c = big.login()
    c.ok("SELECT INBOX")  # the Maildir exists
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {literal % (8 * 1024 * 1024)}\r\n".encode())
    if "+" not in literal:
        assert c.read_line().startswith(b"+")
    c.send(b"x" * (1024 * 1024))
    time.sleep(0.5)
    if big.is_pimap:
        # The literal is on its way to tmp/, not into memory.
        assert any(f.startswith("tmp/") for f in maildir_files(big))
    c.close()
    assert wait_no_files(big) == []
    d = big.login()
    assert d.ok("SELECT INBOX").number("EXISTS") == [0]


def test_append_refused_after_its_literal_leaves_no_file(big):
    # The literal arrives whole, then the command turns out to be invalid: BAD, no message.
    c = big.login()
    c.ok("SELECT INBOX")
    tag = c.next_tag()
    msg = big_message(300 * 1024, seed=4)
    c.send(f"{tag} APPEND INBOX {{{len(msg)}+}}\r\n".encode() + msg + b" trailing-junk\r\n")
    r = c.read_until_tagged(tag)
    assert r.status in ("BAD", "NO"), r
    assert c.ok("NOOP").ok
    assert wait_no_files(big) == []


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set (VmHWM) of a process, KiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("compress", [False, True])
def test_20mib_append_and_fetch_keep_server_memory_bounded(big_pimap, compress):
    pid = big_pimap.proc.pid
    c = big_pimap.login()
    c.ok("SELECT INBOX")
    c.ok("APPEND INBOX ", b"Subject: warm-up\r\n\r\nx\r\n")
    c.ok("FETCH 1 (BODY.PEEK[])")
    before = vm_hwm_kib(pid)
    if compress:
        c.ok("COMPRESS DEFLATE")
        deflate_on(c)
    msg = big_message(20 * 1024 * 1024, seed=5)
    append_plus(c, msg)
    c.ok("NOOP")
    f = c.ok("FETCH 2 (BODY.PEEK[])").fetches()[2]
    assert f["BODY[]"] == msg
    grown = vm_hwm_kib(pid) - before
    # Before streaming, the literal, its copy in the command and the FETCH response each held
    # the whole message (> 60 MiB). Now a few fixed buffers per connection.
    assert grown < 8 * 1024, f"peak RSS grew by {grown} KiB for a 20 MiB message"


def test_20mib_append_and_fetch_through_tls_keep_server_memory_bounded(request, workdir, monkeypatch):
    import socket
    import ssl

    from test_tls import TestCA, start_tls_pimap

    monkeypatch.setattr(conftest, "MAX_MESSAGE_SIZE", BIG)
    ca = TestCA(workdir / "ca")
    cert, key = ca.issue(0x1001, "tls")
    srv, port = start_tls_pimap(request, workdir, cert, key)
    sock = ca.context().wrap_socket(socket.create_connection((conftest.HOST, port), timeout=60),
                                    server_hostname="localhost")
    buf = bytearray()

    def until(marker: bytes) -> bytes:
        while marker not in buf:
            chunk = sock.recv(1 << 20)
            assert chunk, "server closed the connection"
            buf.extend(chunk)
        i = buf.index(marker) + len(marker)
        out = bytes(buf[:i])
        del buf[:i]
        return out

    until(b"\r\n")
    sock.sendall(f'a LOGIN demo "{srv.password("demo")}"\r\nb SELECT INBOX\r\n'.encode())
    until(b"b OK")
    until(b"\r\n")
    pid = srv.proc.pid
    before = vm_hwm_kib(pid)
    msg = big_message(20 * 1024 * 1024, seed=6)
    sock.sendall(b"c APPEND INBOX {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert b"c OK" in until(b"\r\nc ") + until(b"\r\n")
    sock.sendall(b"d FETCH 1 (BODY.PEEK[])\r\n")
    head = until(b"}\r\n")
    assert head.endswith(b"BODY[] {%d}\r\n" % len(msg)), head[-80:]
    got = until(b")\r\nd OK")
    assert got[:-len(b")\r\nd OK")] == msg
    sock.close()
    grown = vm_hwm_kib(pid) - before
    assert grown < 8 * 1024, f"peak RSS grew by {grown} KiB for a 20 MiB message over TLS"


def test_big_binary_whole_message_and_pieces(big):
    # RFC 3516: BINARY[] is the whole message as BODY[] but NUL stays NUL, in a literal8.
    msg = big_message(1024 * 1024, seed=7) + b"NUL here: \0.\r\n"
    c = big.login()
    append_plus(c, msg)
    c.ok("SELECT INBOX")
    size = len(msg)
    for off, n, want in [(0, 100, msg[:100]), (size - 20, 100, msg[size - 20:]),
                         (None, None, msg)]:
        part = "" if off is None else f"<{off}.{n}>"
        r = c.ok(f"FETCH 1 (BINARY.PEEK[]{part} BINARY.SIZE[])")
        raw = b"".join(r.untagged)
        origin = b"" if off is None else b"<%d>" % off
        # A piece with NUL must be a literal8; without, either form is right (Dovecot decides
        # by the whole message, pimap by the piece).
        lits = [b"~{%d}\r\n" % len(want)] + ([] if b"\0" in want else [b"{%d}\r\n" % len(want)])
        assert any(b"BINARY[]" + origin + b" " + lit + want in raw for lit in lits), (off, raw[:200])
        assert b"BINARY.SIZE[] %d" % size in raw


def test_big_multipart_sections_byte_exact(big):
    # Sections of MIME parts need the structure: read whole, sent without extra copies.
    part1 = big_message(1024 * 1024, seed=8).split(b"\r\n\r\n", 1)[1]
    msg = (b"From: big@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b0undary"\r\n\r\n'
           b"--b0undary\r\nContent-Type: text/plain\r\n\r\n" + part1 +
           b"\r\n--b0undary\r\nContent-Type: text/plain\r\n\r\nsmall part\r\n--b0undary--\r\n")
    c = big.login()
    append_plus(c, msg)
    c.ok("SELECT INBOX")
    f = c.ok("FETCH 1 (BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[1]<1000.5000>)").fetches()[1]
    assert f["BODY[1]"] == part1
    assert f["BODY[2]"] == b"small part"
    assert f["BODY[1]<1000>"] == part1[1000:6000]


def test_20mib_mime_part_is_sent_from_one_copy_of_the_message(big_pimap):
    # BODY[1] needs the MIME structure, so the message is read whole: once, and the part
    # goes out as a slice of it (before: the part copied twice more, ~3x the message).
    part1 = big_message(20 * 1024 * 1024, seed=9).split(b"\r\n\r\n", 1)[1]
    msg = (b"From: big@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b0undary"\r\n\r\n'
           b"--b0undary\r\nContent-Type: text/plain\r\n\r\n" + part1 +
           b"\r\n--b0undary--\r\n")
    c = big_pimap.login()
    append_plus(c, msg)
    c.ok("SELECT INBOX")
    c.ok("FETCH 1 (FLAGS)")
    before = vm_hwm_kib(big_pimap.proc.pid)
    assert fetch_one(c, "BODY.PEEK[1]", "BODY[1]") == part1
    grown = vm_hwm_kib(big_pimap.proc.pid) - before
    assert grown < 28 * 1024, f"peak RSS grew by {grown} KiB for a 20 MiB part"


def test_clients_not_reading_big_fetches_do_not_hold_up_others(big_pimap):
    # More stalled big FETCHes than the server runs commands at once (4 per core, at least
    # 4): each handler waits for its client without holding a turn, so others still get
    # answers.
    import socket

    msg = big_message(12 * 1024 * 1024, seed=10)
    c = big_pimap.login()
    append_plus(c, msg)
    stalled = []
    for _ in range(max(4, (os.cpu_count() or 1) * 4) + 2):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((big_pimap.host, big_pimap.port))
        pw = big_pimap.password("demo")
        s.sendall(f'a LOGIN demo "{pw}"\r\nb SELECT INBOX\r\nc FETCH 1 (BODY.PEEK[])\r\n'.encode())
        stalled.append(s)
    time.sleep(1.0)
    t = time.monotonic()
    d = big_pimap.login()
    d.ok("SELECT INBOX")
    assert int(d.ok("FETCH 1 (FLAGS RFC822.SIZE)").fetches()[1]["RFC822.SIZE"]) == len(msg)
    assert time.monotonic() - t < 5
    for s in stalled:
        s.close()
