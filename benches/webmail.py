#!/usr/bin/env python3
"""Webmail opening a folder: the IMAP calls Roundcube makes, pimap vs Dovecot, on one mailbox of
N messages (default 10,000).

Roundcube opens a new IMAP connection for every page it serves. Opening a folder (the message
list, one page of 50) is then, per request (rcube_imap::index_direct / search_index /
rcube_imap_generic::sort, thread and fetchHeaders):

    LOGIN, SELECT, then one of
      UID SORT (DATE) UTF-8 ALL              sorted by date (the usual column)
      UID SORT (ARRIVAL) UTF-8 ALL           sorted by arrival
      UID SORT (SUBJECT) UTF-8 ALL           sorted by subject
      UID SORT (DISPLAYFROM) UTF-8 ALL       sorted by sender (FROM becomes DISPLAYFROM under SORT=DISPLAY)
      UID THREAD REFS UTF-8 ALL              the Threads view (REFS if offered, else REFERENCES)
    then UID FETCH <the page's 50 UIDs> (UID RFC822.SIZE FLAGS
      BODY.PEEK[HEADER.FIELDS (DATE FROM TO SUBJECT CONTENT-TYPE CC REPLY-TO LIST-POST
      DISPOSITION-NOTIFICATION-TO X-PRIORITY)]), and LOGOUT.

The mailbox is generated (fixed seed): threads of 1-12 messages with Message-ID, In-Reply-To
and References chains, "Re:"/"Fwd:" subjects, some RFC 2047 encoded subjects and names, some
References pointing at messages not in the mailbox, and text or multipart bodies of 1-20 KB.

For each server, from a fresh state (no pimap-cache / dovecot.index* files, fresh process):
  * cold: the first request of each kind;
  * warm: the median of R (default 5) further requests, each on a new connection, as Roundcube
    makes them.
Times are wall-clock milliseconds for the whole request (connect to LOGOUT's reply) and, in
a second column, for the SORT/THREAD command alone, measured by one Python client over
127.0.0.1 for both servers. Compare ratios: the machine is shared.

Usage:  python3 benches/webmail.py [--messages 10000] [--repeats 5]
            [--pimap-bin target/release/pimap] [--out benches/results/webmail-YYYY-MM-DD.md]
Needs root (the servers drop to the mail user as in tests/e2e), Debian's Dovecot, a release
build of pimap.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import random
import shutil
import socket
import statistics
import sys
import time
from email.utils import format_datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import conftest  # noqa: E402
from msgs import deliver  # noqa: E402

FIELDS = ("DATE FROM TO SUBJECT CONTENT-TYPE CC REPLY-TO LIST-POST DISPOSITION-NOTIFICATION-TO "
          "X-PRIORITY")
VIEWS = {
    "list by date": "UID SORT (DATE) UTF-8 ALL",
    "list by arrival": "UID SORT (ARRIVAL) UTF-8 ALL",
    "list by subject": "UID SORT (SUBJECT) UTF-8 ALL",
    "list by sender": "UID SORT (DISPLAYFROM) UTF-8 ALL",
    "threads": "UID THREAD {thread} UTF-8 ALL",
}
PAGE = 50

WORDS = ("meeting budget review draft invoice release plan garden photos trip report minutes "
         "server backup update question offer weekend party schedule contract patch build "
         "printer holiday ticket order delivery account password newsletter concert").split()
NAMES = ["Alice Example", "Bob Builder", "Carol Jones", "Dave Smith", "Eve Müller",
         "Frank O'Neil", "Grace Hopper", "Heidi Schäfer", "Ivan Petrov", "Judy Chen",
         "Mallory Brown", "Niaj Patel", "Olivia Rossi", "Peggy Sue", "Rupert Giles",
         "Sybil Fawlty", "Trent Reznor", "Victor Hugo", "Walter White", "Zoë Déjà"]


def encoded(text: str) -> str:
    """RFC 2047 B-encoding for non-ASCII text."""
    if text.isascii():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def addr(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    local = name.split()[0].lower().encode("ascii", "ignore").decode() or "user"
    quoted = f'"{name}"' if name.isascii() and "'" in name else encoded(name)
    return f"{quoted} <{local}@example.{rng.choice(['org', 'net', 'com'])}>"


def body(rng: random.Random, n: int) -> str:
    lines = []
    while sum(len(x) + 2 for x in lines) < n:
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))))
    return "\r\n".join(lines)


def mailbox(n: int, seed: int = 5256) -> list[bytes]:
    """`n` messages in arrival order, in threads, as described in the module's docstring."""
    rng = random.Random(seed)
    start = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
    out: list[tuple[dt.datetime, bytes]] = []
    t = 0
    while len(out) < n:
        topic = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        if rng.random() < 0.15:
            topic += " — " + rng.choice(["größe", "café", "naïve", "日程", "résumé"])
        size = min(rng.randint(1, 12), n - len(out))
        ids: list[str] = []
        if rng.random() < 0.1:  # the thread starts with a reply to mail not in the mailbox
            ids.append(f"<gone{t}@elsewhere.example>")
        for k in range(size):
            t += 1
            when = start + dt.timedelta(minutes=37 * t + rng.randint(0, 3000))
            mid = f"<m{t}.{rng.getrandbits(32):08x}@bench.example>"
            subject = topic if k == 0 and len(ids) == 0 else rng.choice(["Re: ", "RE: ", "Re: Re: ", "Fwd: "]) + topic
            parent = ids[rng.randrange(len(ids))] if ids else None
            head = [f"Message-ID: {mid}", f"Date: {format_datetime(when)}", f"From: {addr(rng)}",
                    f"To: {addr(rng)}", f"Subject: {encoded(subject)}", "MIME-Version: 1.0"]
            if parent:
                chain = ids[: ids.index(parent) + 1][-8:]
                head += [f"In-Reply-To: {parent}", "References: " + " ".join(chain)]
            text = body(rng, rng.randint(1_000, 20_000))
            if rng.random() < 0.3:
                b = "b" + str(t)
                head.append(f'Content-Type: multipart/alternative; boundary="{b}"')
                msg = "\r\n".join(head) + f"\r\n\r\n--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" \
                    + text + f"\r\n--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>" + text \
                    + f"</p>\r\n--{b}--\r\n"
            else:
                head.append("Content-Type: text/plain; charset=utf-8")
                msg = "\r\n".join(head) + "\r\n\r\n" + text + "\r\n"
            ids.append(mid)
            out.append((when, msg.encode()))
    # Arrival order is roughly date order, with replies sometimes arriving late.
    out.sort(key=lambda x: x[0] + dt.timedelta(minutes=rng.randint(0, 600)))
    return [m for _, m in out]


class Wire:
    """A minimal IMAP client that reads whole responses and times them."""

    def __init__(self, port: int) -> None:
        self.s = socket.create_connection((conftest.HOST, port), timeout=600)
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.n = 0

    def run(self, cmd: str) -> list[bytes]:
        self.n += 1
        tag = f"w{self.n}".encode()
        self.s.sendall(tag + b" " + cmd.encode() + b"\r\n")
        lines = []
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError(f"connection closed during {cmd!r}")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"{cmd!r}: {line!r}")
                return lines
            lines.append(line)
            # a literal: read its bytes and the rest of the line
            if line.endswith(b"}\r\n") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1:-3])
                lines.append(self.f.read(size))

    def close(self) -> None:
        self.s.close()


def uids_of(lines: list[bytes]) -> list[int]:
    """The UIDs of a SORT or THREAD answer, in answer order."""
    for line in lines:
        if line.startswith((b"* SORT", b"* THREAD")):
            text = line.split(b" ", 2)[2] if line.count(b" ") >= 2 else b""
            return [int(x) for x in text.replace(b"(", b" ").replace(b")", b" ").split()]
    return []


def request(port: int, password: str, command: str) -> tuple[float, float]:
    """One Roundcube request opening the folder: (whole request, the SORT/THREAD alone) in ms."""
    t0 = time.perf_counter()
    w = Wire(port)
    w.run(f'LOGIN demo "{password}"')
    w.run("SELECT INBOX")
    t1 = time.perf_counter()
    uids = uids_of(w.run(command))
    t2 = time.perf_counter()
    page = list(reversed(uids))[:PAGE]  # newest first, as Roundcube shows DESC order
    if page:
        w.run(f"UID FETCH {','.join(map(str, page))} (UID RFC822.SIZE FLAGS "
              f"BODY.PEEK[HEADER.FIELDS ({FIELDS})])")
    w.run("LOGOUT")
    w.close()
    return (time.perf_counter() - t0) * 1000, (t2 - t1) * 1000


def capabilities(port: int, password: str) -> set[str]:
    w = Wire(port)
    w.run(f'LOGIN demo "{password}"')
    caps = set()
    for line in w.run("CAPABILITY"):
        if line.startswith(b"* CAPABILITY"):
            caps = set(line.decode().split()[2:])
    w.run("LOGOUT")
    w.close()
    return caps


def start(kind: str, workdir: Path):
    if kind == "dovecot":
        return conftest.start_dovecot(workdir, workdir / "users", workdir / "mail")
    return conftest.start_pimap(workdir, workdir / "users", workdir / "mail", name="pimap-webmail")


def reset(kind: str, box: Path) -> None:
    for pat in (["dovecot.index*"] if kind == "dovecot" else ["pimap-cache*"]):
        for p in box.glob(pat):
            p.unlink()


def measure(kind: str, workdir: Path, box: Path, repeats: int) -> dict[str, tuple]:
    """view → (cold request, cold command, warm request, warm command) in ms, or None."""
    password = conftest.USERS["demo"][0]
    out: dict[str, tuple | None] = {}
    for view, template in VIEWS.items():
        reset(kind, box)
        srv = start(kind, workdir)
        try:
            caps = capabilities(srv.port, password)
            algo = "REFS" if "THREAD=REFS" in caps else "REFERENCES" if "THREAD=REFERENCES" in caps else None
            if "{thread}" in template and algo is None:
                out[view] = None
                continue
            command = template.format(thread=algo)
            cold = request(srv.port, password, command)
            warm = [request(srv.port, password, command) for _ in range(repeats)]
            out[view] = (cold[0], cold[1], statistics.median(w[0] for w in warm),
                         statistics.median(w[1] for w in warm), command)
        finally:
            srv.stop()
        r = out[view]
        print(f"{kind:8} {view:16} cold {r[0]:8.1f} ms ({r[1]:7.1f})  warm {r[2]:7.1f} ms "
              f"({r[3]:6.1f})  {r[4]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pimap-bin", default=str(REPO / "target" / "release" / "pimap"))
    ap.add_argument("--out", default=str(REPO / "benches" / "results" /
                                         f"webmail-{dt.date.today().isoformat()}.md"))
    a = ap.parse_args()
    conftest.PIMAP_BIN = Path(a.pimap_bin)
    workdir = conftest.make_workdir()
    (workdir / "mail").mkdir()
    conftest.write_users_file(workdir / "users")
    box = workdir / "mail" / "demo"
    for i, m in enumerate(mailbox(a.messages)):
        deliver(box, m, name=f"{1767254400 + i}.M{i}P1.webmail")
    conftest.chown_tree(workdir / "mail")
    print(f"{a.messages} messages in {box}", flush=True)
    res = {}
    for kind in ("pimap", "dovecot"):
        # One SELECT first, so both servers have moved new/ to cur/ and written their uidlist.
        srv = start(kind, workdir)
        w = Wire(srv.port)
        w.run(f'LOGIN demo "{conftest.USERS["demo"][0]}"')
        w.run("SELECT INBOX")
        w.run("LOGOUT")
        srv.stop()
        res[kind] = measure(kind, workdir, box, a.repeats)
    lines = [f"# Webmail opening a folder: {a.messages} messages, pimap (release) vs Dovecot, "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             "Produced by `benches/webmail.py` (method in its docstring). Milliseconds: the whole "
             "request (connect, LOGIN, SELECT, the command, FETCH of one page of 50, LOGOUT), and "
             f"in brackets the SORT/THREAD command alone; warm = median of {a.repeats} requests, "
             "each on a new connection.", "",
             "| view | command | pimap cold | Dovecot cold | pimap warm | Dovecot warm "
             "| warm request pimap/Dovecot | warm command pimap/Dovecot |",
             "|---|---|---|---|---|---|---|---|"]
    for view in VIEWS:
        p, d = res["pimap"].get(view), res["dovecot"].get(view)
        if p is None or d is None:
            lines.append(f"| {view} | {(p or d or [None] * 5)[4]} | "
                         f"{'n/a' if p is None else f'{p[0]:.1f} ({p[1]:.1f})'} | "
                         f"{'n/a' if d is None else f'{d[0]:.1f} ({d[1]:.1f})'} | | | | |")
            continue
        lines.append(f"| {view} | `{p[4]}` | {p[0]:.1f} ({p[1]:.1f}) | {d[0]:.1f} ({d[1]:.1f}) | "
                     f"{p[2]:.1f} ({p[3]:.1f}) | {d[2]:.1f} ({d[3]:.1f}) | "
                     f"{p[2] / d[2]:.2f}× | {p[3] / d[3]:.2f}× |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
