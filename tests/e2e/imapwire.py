"""A small, strict IMAP4rev1 client for transcript-style tests (RFC 3501).

Python's imaplib hides the wire: it retries, reorders untagged data and cannot send a
malformed command. The tests need the opposite: exact lines, every untagged response in
order, literals under our control, and a timeout on every socket operation. This module
does only that:

* `Conn.command(*parts)` sends one tagged command. `str` parts are sent verbatim, `bytes`
  parts as synchronizing literals (`{n}` CRLF, wait for `+`, then the bytes). It returns a
  `Response` with the untagged responses and the tagged status.
* `parse()` turns a response line (with its literals) into nested Python values: atoms are
  `str`, quoted strings and literals are `bytes`, NIL is `None`, parenthesized lists are
  `list`. `BODY[HEADER.FIELDS (A B)]<0>` stays one atom, as in RFC 3501 `msg-att`.

Every transcript line is also recorded (`Conn.transcript`) so a failing test can show what
was said.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 10.0


class ImapProtocolError(AssertionError):
    """The server said something this client cannot frame."""


class Closed(ImapProtocolError):
    """The server closed the connection."""


@dataclass
class Response:
    tag: str
    status: str  # OK, NO, BAD (or BYE when the server hung up instead of answering)
    text: str  # the tagged line after the status, response code included
    line: bytes
    untagged: list[bytes] = field(default_factory=list)
    continuation: bytes | None = None  # a `+` line the server sent before its tagged answer

    @property
    def code(self) -> str | None:
        """The response code of the tagged line, e.g. `TRYCREATE` or `READ-WRITE`."""
        m = re.match(r"\[([^\]]*)\]", self.text)
        return m.group(1) if m else None

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    def parsed(self) -> list[list]:
        """Every untagged response that is data (not OK/NO/BAD/BYE text), parsed."""
        out = []
        for raw in self.untagged:
            if status_of(raw) is not None:
                continue
            out.append(parse(raw))
        return out

    def data(self, keyword: str) -> list[list]:
        """Untagged data responses whose keyword is `keyword` (case-insensitive), parsed.

        Works for both `* KEYWORD ...` and `* n KEYWORD ...` forms; the leading `*` is dropped.
        """
        keyword = keyword.upper()
        out = []
        for p in self.parsed():
            if len(p) >= 2 and isinstance(p[1], str) and p[1].upper() == keyword:
                out.append(p[1:])
            elif len(p) >= 3 and isinstance(p[2], str) and p[2].upper() == keyword:
                out.append(p[1:])
        return out

    def codes(self) -> dict[str, str]:
        """Response codes from untagged OK/NO/BAD lines: {"UIDVALIDITY": "123", ...}."""
        out: dict[str, str] = {}
        for raw in self.untagged:
            st = status_of(raw)
            if st is None:
                continue
            m = re.match(rb"\* \w+ \[([^\] ]+) ?([^\]]*)\]", raw)
            if m:
                out[m.group(1).decode().upper()] = m.group(2).decode()
        tag_code = self.code
        if tag_code:
            name, _, arg = tag_code.partition(" ")
            out.setdefault(name.upper(), arg)
        return out

    def number(self, keyword: str) -> list[int]:
        """Numbers of `* n KEYWORD` responses in order (EXISTS, RECENT, EXPUNGE)."""
        keyword = keyword.upper().encode()
        out = []
        for raw in self.untagged:
            m = re.match(rb"\* (\d+) ([A-Za-z]+)\r\n$", raw)
            if m and m.group(2).upper() == keyword:
                out.append(int(m.group(1)))
        return out

    def search(self) -> list[int]:
        """Numbers of all `* SEARCH` responses (RFC 3501 §7.2.5)."""
        nums: list[int] = []
        for d in self.data("SEARCH"):
            nums.extend(int(x) for x in d[1:])
        return nums

    def fetches(self) -> dict[int, dict[str, object]]:
        """{seq: {ITEM: value}} from every `* n FETCH (...)`, merged per message.

        Item names are upper-cased; values are parsed (FLAGS → list of str, etc.).
        """
        out: dict[int, dict[str, object]] = {}
        for d in self.data("FETCH"):
            seq = int(d[0])
            items = d[2]
            if not isinstance(items, list) or len(items) % 2:
                raise ImapProtocolError(f"bad FETCH response: {d!r}")
            m = out.setdefault(seq, {})
            for k, v in zip(items[0::2], items[1::2]):
                m[str(k).upper()] = v
        return out


def status_of(raw: bytes) -> str | None:
    m = re.match(rb"\* (OK|NO|BAD|BYE|PREAUTH)\b", raw, re.I)
    return m.group(1).decode().upper() if m else None


class Conn:
    """One IMAP connection. Every read and write has a timeout."""

    _counter = 0

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT, transcript=None,
                 name: str | None = None, read_greeting: bool = True, source: str | None = None):
        Conn._counter += 1
        self.name = name or f"c{Conn._counter}"
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.tagn = 0
        self.transcript = transcript if transcript is not None else []
        self.greeting = self.read_response() if read_greeting else None

    # -- low level ------------------------------------------------------------------------
    def _log(self, who: str, data: bytes) -> None:
        text = data.decode("utf-8", "replace").rstrip("\r\n")
        if len(text) > 400:
            text = text[:400] + f"... ({len(data)} bytes)"
        self.transcript.append(f"{self.name} {who}: {text}")

    def send(self, data: bytes) -> None:
        self._log("C", data)
        self.sock.sendall(data)

    def _fill(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError as e:
            raise Closed("connection reset by server") from e
        if not chunk:
            raise Closed("server closed the connection")
        self.buf += chunk

    def read_line(self) -> bytes:
        """One CRLF-terminated line (CRLF included)."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 2], self.buf[i + 2:]
                return line
            if len(self.buf) > 16 * 1024 * 1024:
                raise ImapProtocolError("line longer than 16 MiB")
            self._fill()

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self) -> bytes:
        """One whole response: a line plus any literals it announces and their continuations."""
        out = b""
        while True:
            line = self.read_line()
            out += line
            m = re.search(rb"\{(\d+)\+?\}\r\n$", line)
            if not m:
                break
            out += self.read_exact(int(m.group(1)))
        self._log("S", out)
        return out

    def at_eof(self, wait: float = 2.0) -> bool:
        """True if the server has closed the connection (within `wait` seconds)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    return False
                except (ConnectionResetError, BrokenPipeError):
                    return True
                if not chunk:
                    return True
                self.buf += chunk
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- commands -------------------------------------------------------------------------
    def next_tag(self) -> str:
        self.tagn += 1
        return f"A{self.tagn:03d}"

    def command(self, *parts, tag: str | None = None) -> Response:
        """Send one command; `str` parts verbatim, `bytes` parts as synchronizing literals.

        If the server answers a literal with a tagged response instead of `+` (it rejected
        the command before the literal, RFC 3501 §7.5), the rest is not sent and that
        response is returned.
        """
        tag = tag or self.next_tag()
        untagged: list[bytes] = []
        pending = (tag + " ").encode()
        for part in parts:
            if isinstance(part, str):
                pending += part.encode("utf-8")
                continue
            pending += b"{%d}\r\n" % len(part)
            self.send(pending)
            pending = b""
            while True:
                resp = self.read_response()
                if resp.startswith(b"+"):
                    break
                if resp.startswith(b"* "):
                    untagged.append(resp)
                    if status_of(resp) == "BYE":
                        return Response(tag, "BYE", resp.decode("utf-8", "replace"), resp, untagged)
                    continue
                return self._tagged(tag, resp, untagged)
            pending = bytes(part)
        self.send(pending + b"\r\n")
        return self.read_until_tagged(tag, untagged)

    def read_until_tagged(self, tag: str, untagged: list[bytes] | None = None) -> Response:
        untagged = untagged if untagged is not None else []
        cont = None
        while True:
            try:
                resp = self.read_response()
            except Closed:
                bye = [u for u in untagged if status_of(u) == "BYE"]
                if bye:
                    return Response(tag, "BYE", bye[-1].decode("utf-8", "replace"), bye[-1], untagged)
                raise
            if resp.startswith(b"* "):
                untagged.append(resp)
                continue
            if resp.startswith(b"+"):
                cont = resp
                raise ImapProtocolError(f"unexpected continuation: {resp!r}")
            r = self._tagged(tag, resp, untagged)
            r.continuation = cont
            if r.tag != tag:
                raise ImapProtocolError(f"expected tag {tag}, got {resp!r}")
            return r

    @staticmethod
    def _tagged(tag: str, resp: bytes, untagged: list[bytes]) -> Response:
        m = re.match(rb"(\S+) (OK|NO|BAD)(?: (.*))?\r\n$", resp, re.I | re.S)
        if not m:
            raise ImapProtocolError(f"not a tagged response: {resp!r}")
        return Response(m.group(1).decode(), m.group(2).decode().upper(),
                        (m.group(3) or b"").decode("utf-8", "replace"), resp, untagged)

    def ok(self, *parts) -> Response:
        """`command` that must end in tagged OK."""
        r = self.command(*parts)
        if r.status != "OK":
            raise AssertionError(f"{parts!r} → {r.line!r}")
        return r

    def login(self, user: str, password: str) -> Response:
        return self.ok(f"LOGIN {quote(user)} {quote(password)}")

    def logout(self) -> Response:
        r = self.command("LOGOUT")
        self.close()
        return r


def quote(s: str | bytes) -> str:
    """An IMAP quoted string (RFC 3501 `quoted`); callers use literals for CR/LF/NUL/8-bit."""
    if isinstance(s, bytes):
        s = s.decode()
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- response parser ----------------------------------------------------------------------

_ATOM_STOP = set(b" ()\r\n")


def parse(raw: bytes) -> list:
    """Parse one response (line plus literals) into nested values; see the module doc."""
    p = _Parser(raw)
    items = p.sequence(top=True)
    return items


class _Parser:
    def __init__(self, raw: bytes):
        self.s = raw
        self.i = 0

    def sequence(self, top: bool = False) -> list:
        out: list = []
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == 0x20:
                self.i += 1
            elif c in (0x0D, 0x0A):
                if top:
                    self.i += 1
                    continue
                raise ImapProtocolError(f"line ends inside a list: {s!r}")
            elif c == ord("("):
                self.i += 1
                out.append(self.sequence())
            elif c == ord(")"):
                if top:
                    raise ImapProtocolError(f"unbalanced ')' in {s!r}")
                self.i += 1
                return out
            elif c == ord('"'):
                out.append(self.quoted())
            elif c == ord("{"):
                out.append(self.literal())
            else:
                out.append(self.atom())
        if not top:
            raise ImapProtocolError(f"unterminated list in {s!r}")
        return out

    def quoted(self) -> bytes:
        s = self.s
        self.i += 1
        out = bytearray()
        while True:
            if self.i >= len(s):
                raise ImapProtocolError(f"unterminated quoted string in {s!r}")
            c = s[self.i]
            if c == ord("\\") and self.i + 1 < len(s):
                out.append(s[self.i + 1])
                self.i += 2
            elif c == ord('"'):
                self.i += 1
                return bytes(out)
            else:
                out.append(c)
                self.i += 1

    def literal(self) -> bytes:
        m = re.compile(rb"\{(\d+)\+?\}\r\n").match(self.s, self.i)
        if not m:
            raise ImapProtocolError(f"bad literal at {self.i} in {self.s!r}")
        n = int(m.group(1))
        start = m.end()
        self.i = start + n
        return self.s[start:start + n]

    def atom(self):
        s = self.s
        start = self.i
        depth = 0
        while self.i < len(s):
            c = s[self.i]
            if c == ord("["):
                depth += 1
            elif c == ord("]"):
                depth -= 1
            elif depth <= 0 and c in _ATOM_STOP:
                break
            self.i += 1
        word = s[start:self.i].decode("utf-8", "replace")
        if word.upper() == "NIL":
            return None
        return word


def flags(value) -> set[str]:
    """A parsed FLAGS list as a set with system flags case-normalized."""
    out = set()
    for f in value or []:
        f = str(f)
        out.add("\\" + f[1:].capitalize() if f.startswith("\\") else f)
    return out


def text(value) -> str | None:
    """An astring/nstring from a parsed response as str (atoms are str, strings bytes)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def listing(resp: Response, kind: str = "LIST") -> dict[str, tuple[set[str], str | None]]:
    """{mailbox: (attributes lower-cased, delimiter)} from LIST/LSUB responses (§7.2.2)."""
    out = {}
    for d in resp.data(kind):
        attrs, delim, name = d[1], d[2], d[3]
        out[text(name)] = ({str(a).lower() for a in attrs}, text(delim))
    return out


def append(c: Conn, mailbox: str, data: bytes, flags: str | None = None, date: str | None = None) -> Response:
    """APPEND with a synchronizing literal; `flags` like "\\\\Seen $Label1", date like
    "17-Jul-1996 02:44:25 -0700"."""
    parts = f"APPEND {quote(mailbox)} "
    if flags is not None:
        parts += f"({flags}) "
    if date is not None:
        parts += f'"{date}" '
    return c.ok(parts, data)
