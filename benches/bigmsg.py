#!/usr/bin/env python3
"""Big messages: server memory and the cost of a small FETCH of a big message, pimap vs Dovecot.

What it measures, for each server in turn on the same machine in the same run:
  * memory: C (default 8) clients at once, each LOGIN, APPEND of an M MiB (default 50)
    message (LITERAL+), then FETCH BODY.PEEK[] of it (checked for length). The server's
    whole process tree (pimap: one process; Dovecot: master, imap-login, auth, imap, ...)
    is sampled every 20 ms from /proc: the peak of the summed RSS (VmRSS) and of the summed
    PSS (smaps_rollup), and the RSS before the load;
  * piece cost: one 40 KB and one 40 MB message in a fresh mailbox; the median over R
    (default 30) round trips of `FETCH n (BODY.PEEK[]<offset.65536>)` (offset 0 for 40 KB,
    the middle for 40 MB) and of `FETCH n (BODY.PEEK[HEADER])`, in ms.

Usage:  python3 benches/bigmsg.py [--clients 8] [--mib 50] [--repeats 30] [--no-build]
            [--servers pimap,dovecot] [--pimap-bin PATH] [--out benches/results/bigmsg-YYYY-MM-DD.md]
Needs: cargo (release build), Debian's dovecot-core + dovecot-imapd, root (the servers drop
to the mail user as in tests/e2e). Starts both servers with the helpers of tests/e2e/conftest.py
(same configuration as the e2e tests, message limit raised). 127.0.0.1 only; waits are bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import conftest  # noqa: E402

USER = "demo"
TIMEOUT = 600.0


class Client:
    """A minimal IMAP client that reads literals without holding more than it must."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((conftest.HOST, port), timeout=TIMEOUT)
        self.buf = bytearray()
        self.n = 0
        self.line()  # greeting

    def fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\n" not in self.buf:
            self.fill()
        i = self.buf.index(b"\n") + 1
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def skip(self, n: int) -> None:
        while n:
            if not self.buf:
                self.fill()
            k = min(n, len(self.buf))
            del self.buf[:k]
            n -= k

    def command(self, text: bytes, literal: bytes | None = None) -> tuple[bytes, int]:
        """Send; return the tagged line and the total size of the literals in the reply."""
        self.n += 1
        tag = b"B%d" % self.n
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d+}\r\n" % len(literal))
            self.sock.sendall(literal)
            self.sock.sendall(b"\r\n")
        got = 0
        while True:
            ln = self.line()
            if ln.startswith(tag + b" "):
                if not ln.startswith(tag + b" OK"):
                    raise RuntimeError(ln.decode(errors="replace"))
                return ln, got
            while ln.rstrip().endswith(b"}") and b"{" in ln:
                n = int(ln.rstrip()[ln.rstrip().rindex(b"{") + 1:-1])
                self.skip(n)
                got += n
                ln = self.line()

    def close(self) -> None:
        self.sock.close()


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def mem_kib(pids: list[int]) -> tuple[int, int]:
    rss = pss = 0
    for p in pids:
        try:
            for ln in open(f"/proc/{p}/status"):
                if ln.startswith("VmRSS:"):
                    rss += int(ln.split()[1])
            for ln in open(f"/proc/{p}/smaps_rollup"):
                if ln.startswith("Pss:"):
                    pss += int(ln.split()[1])
        except OSError:
            pass
    return rss, pss


class Sampler(threading.Thread):
    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.stop, self.peak = root, threading.Event(), (0, 0)

    def run(self) -> None:
        while not self.stop.is_set():
            rss, pss = mem_kib(tree(self.root))
            self.peak = (max(self.peak[0], rss), max(self.peak[1], pss))
            time.sleep(0.02)


def message(size: int, seed: int) -> bytes:
    head = (b"From: big@example.org\r\nTo: demo@example.org\r\nSubject: big %d\r\n"
            b"Message-ID: <big%d.%d@example.org>\r\n\r\n" % (seed, seed, size))
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


def memory_run(srv, clients: int, mib: int) -> dict:
    msg = message(mib * 1024 * 1024, 1)
    root = srv.proc.pid
    base = mem_kib(tree(root))
    sampler = Sampler(root)
    sampler.start()
    errors: list[str] = []

    def one(i: int) -> None:
        try:
            c = Client(srv.port)
            c.command(b'LOGIN %s "%s"' % (USER.encode(), srv.password(USER).encode()))
            c.command(b"CREATE Big%d" % i)
            c.command(b"APPEND Big%d" % i, msg)
            c.command(b"SELECT Big%d" % i)
            _, got = c.command(b"FETCH 1 (BODY.PEEK[])")
            if got != len(msg):
                errors.append(f"client {i}: fetched {got} of {len(msg)} bytes")
            c.command(b"LOGOUT")
            c.close()
        except Exception as e:  # reported, not hidden
            errors.append(f"client {i}: {e}")

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    secs = time.monotonic() - t0
    time.sleep(0.2)
    sampler.stop.set()
    sampler.join()
    return {"base_rss": base[0], "peak_rss": sampler.peak[0], "peak_pss": sampler.peak[1],
            "secs": secs, "errors": errors}


def piece_run(srv, repeats: int) -> dict:
    c = Client(srv.port)
    c.command(b'LOGIN %s "%s"' % (USER.encode(), srv.password(USER).encode()))
    c.command(b"CREATE Pieces")
    small, large = message(40_000, 2), message(40_000_000, 3)
    c.command(b"APPEND Pieces", small)
    c.command(b"APPEND Pieces", large)
    c.command(b"SELECT Pieces")
    out = {}
    for name, n, off in [("40KB", 1, 0), ("40MB", 2, len(large) // 2)]:
        for what, cmd in [("piece", b"FETCH %d (BODY.PEEK[]<%d.65536>)" % (n, off)),
                          ("header", b"FETCH %d (BODY.PEEK[HEADER])" % n)]:
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                c.command(cmd)
                times.append((time.perf_counter() - t) * 1000)
            out[f"{what} {name}"] = statistics.median(times)
    c.command(b"LOGOUT")
    c.close()
    return out


def start(kind: str, work: Path):
    (work / "mail").mkdir()
    (work / "mail").chmod(0o755)
    if os.geteuid() == 0:
        os.chown(work / "mail", conftest.MAIL_UID, conftest.MAIL_GID)
    conftest.write_users_file(work / "users")
    if kind == "dovecot":
        return conftest.start_dovecot(work, work / "users", work / "mail")
    return conftest.start_pimap(work, work / "users", work / "mail")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--mib", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--servers", default="pimap,dovecot")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--pimap-bin", type=Path, help="another pimap binary (e.g. an older build) "
                    "instead of this tree's release build; implies --no-build")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if not a.no_build and not a.pimap_bin:
        subprocess.run(["cargo", "build", "--release", "--bins"], cwd=REPO, check=True)
    conftest.PIMAP_BIN = a.pimap_bin or REPO / "target" / "release" / "pimap"
    conftest.MAX_MESSAGE_SIZE = max(64, a.mib + 1) * 1024 * 1024
    res = {}
    for kind in a.servers.split(","):
        work = conftest.make_workdir()
        srv = start(kind, work)
        try:
            res[kind] = {"mem": memory_run(srv, a.clients, a.mib), "pieces": piece_run(srv, a.repeats)}
        finally:
            srv.stop()
        print(kind, res[kind], flush=True)
    cmd = "python3 benches/bigmsg.py " + " ".join(sys.argv[1:])
    dv = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    lines = [f"# Big messages: pimap vs Dovecot {dv} ({dt.date.today()})", "",
             f"Command: `{cmd}` (release build; {os.cpu_count()} CPUs, shared).", "",
             f"Memory: {a.clients} clients at once, each APPEND {a.mib} MiB (LITERAL+) then FETCH "
             "BODY.PEEK[]; whole server process tree sampled every 20 ms.", "",
             "| server | RSS before | peak RSS | peak PSS | wall time | errors |",
             "|---|---|---|---|---|---|"]
    for kind, r in res.items():
        m = r["mem"]
        lines.append(f"| {kind} | {m['base_rss'] / 1024:.1f} MiB | {m['peak_rss'] / 1024:.1f} MiB | "
                     f"{m['peak_pss'] / 1024:.1f} MiB | {m['secs']:.1f} s | {len(m['errors'])} |")
    lines += ["", f"Piece cost: median of {a.repeats} round trips, ms (64 KB piece at offset 0 of "
              "the 40 KB message, at the middle of the 40 MB one).", "",
              "| server | piece 40 KB | piece 40 MB | HEADER 40 KB | HEADER 40 MB |", "|---|---|---|---|---|"]
    for kind, r in res.items():
        p = r["pieces"]
        lines.append(f"| {kind} | {p['piece 40KB']:.2f} | {p['piece 40MB']:.2f} | "
                     f"{p['header 40KB']:.2f} | {p['header 40MB']:.2f} |")
    for kind, r in res.items():
        for e in r["mem"]["errors"]:
            lines.append(f"\n{kind} error: {e}")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
