#!/usr/bin/env python3
"""Memory per idle session: pimap vs Dovecot 2.3.

For each variant, a fresh server (release build of pimap, or Debian's Dovecot with one `imap`
process per session) gets:
  1. a warm-up: one session per user (LOGIN, SELECT INBOX, IDLE), then closed, so one-time
     costs (thread pools, the inotify hub, lazily built tables, the user database) are paid
     before the first reading;
  2. reading A: memory of the server (pimap: its one process; Dovecot: every process of its
     tree, master, login, auth and the `imap` processes);
  3. N sessions (default 100, over U users with a 10-message INBOX each) that LOGIN, SELECT
     INBOX and then either just sit ("plain") or enter IDLE ("idle"); TLS (STARTTLS before
     LOGIN) and COMPRESS=DEFLATE (after LOGIN) variants are pimap only;
  4. after a settle time, reading B. Per-session cost = (B - A) / N, for RSS, PSS and the
     private anonymous memory (smaps_rollup's Anonymous: heap, thread stacks, no file pages).

Usage:  python3 benches/idle_memory.py [--sessions 100] [--users 10] [--settle 3]
            [--variants plain,idle,tls,compress,dovecot-plain,dovecot-idle] [--no-build]
            [--binary target/release/pimap] [--out benches/results/idle-memory-YYYY-MM-DD.md]
Needs: cargo (release build), openssl (the TLS variant's certificate), Debian's dovecot-core
and dovecot-imapd for the Dovecot rows; run as root. Everything listens on 127.0.0.1 only;
every wait is bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import push_latency as pl  # noqa: E402  (server start-up, mail seeding, /proc readers)

REPO = pl.REPO
HOST = pl.HOST
MESSAGES = 10


def smaps(pid: int) -> dict[str, int]:
    """smaps_rollup fields (bytes) of one process; {} when it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                parts = ln.split()
                if len(parts) >= 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1]) * 1024
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        pass
    return out


def reading(server: pl.Server) -> dict[str, int]:
    """Memory of the whole server (summed over its processes) and its process count."""
    pids = [server.proc.pid] if server.kind == "pimap" else list(pl.processes_of_session(server.proc.pid))
    total = {"Rss": 0, "Pss": 0, "Anonymous": 0, "procs": 0}
    for p in pids:
        s = smaps(p)
        if not s:
            continue
        total["procs"] += 1
        for k in ("Rss", "Pss", "Anonymous"):
            total[k] += s.get(k, 0)
    return total


class Session:
    """One client session over a blocking socket: optional STARTTLS and COMPRESS."""

    def __init__(self, port: int, n: int, user: str, ctx: ssl.SSLContext | None):
        src = f"127.3.{n // 250}.{n % 250 + 1}"  # one source address each: no per-IP limits
        self.sock = socket.create_connection((HOST, port), timeout=30, source_address=(src, 0))
        self.buf = b""
        self.inflate = self.deflate = None
        self.user = user
        self.line()  # greeting
        if ctx is not None:
            self.command("t", "STARTTLS")
            self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")

    def recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return self.inflate.decompress(chunk) if self.inflate else chunk

    def send(self, data: bytes) -> None:
        if self.deflate:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.recv()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def command(self, tag: str, text: str) -> None:
        self.send(f"{tag} {text}\r\n".encode())
        while True:
            ln = self.line()
            if ln.startswith(tag.encode() + b" "):
                if not ln.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(f"{text!r} → {ln!r}")
                return

    def start(self, compress: bool, idle: bool) -> None:
        self.command("a1", f"LOGIN {self.user} pw-{self.user}")
        if compress:
            self.command("z", "COMPRESS DEFLATE")
            self.inflate, self.deflate = zlib.decompressobj(-15), zlib.compressobj(wbits=-15)
        self.command("a2", "SELECT INBOX")
        if idle:
            self.send(b"a3 IDLE\r\n")
            while not self.line().startswith(b"+"):
                pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def make_cert(work: Path) -> tuple[Path, Path]:
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o644)
    return cert, key


def start_pimap(work: Path, binary: Path, users: list[str], tls: tuple[Path, Path] | None,
                env: dict[str, str]) -> pl.Server:
    """pimap as push_latency starts it, with `--tls-cert/--tls-key` for the TLS variant."""
    mail = work / "pimap-mail"
    pl.seed_mail(mail, users)
    pl.users_file(work / "pimap-users", users)
    (work / "pimap-data").mkdir()
    pl.chown_tree(work / "pimap-data")
    port = pl.free_port()
    cmd = [str(binary), "serve", "--data-dir", str(work / "pimap-data"), "--imap-listen", f"{HOST}:{port}",
           "--users", str(work / "pimap-users"), "--mail-location", f"maildir:{mail}/%u",
           "--log-level", "warn", "--autocreate-folders", "false", "--max-connections", "10000"]
    if os.geteuid() == 0:
        cmd += ["--run-as", f"{pl.MAIL_UID}:{pl.MAIL_GID}"]
    if tls:
        cmd += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    log = open(work / "pimap.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **env})
    pl.wait_port(port, proc, "pimap")
    return pl.Server("pimap", port, proc, mail)


def run_variant(name: str, args, binary: Path, env: dict[str, str]) -> dict:
    users = [f"u{i}" for i in range(args.users)]
    pl.SEED_MESSAGES = MESSAGES
    with tempfile.TemporaryDirectory(prefix="pimap-idlemem-") as d:
        work = Path(d)
        os.chmod(work, 0o755)
        dovecot = name.startswith("dovecot")
        tls = make_cert(work) if name == "tls" else None
        ctx = None
        if tls:
            ctx = ssl.create_default_context(cafile=str(tls[0]))
        server = (pl.start_dovecot(work, users, args.sessions) if dovecot
                  else start_pimap(work, binary, users, tls, env))
        idle = name.endswith("idle") or name in ("tls", "compress")
        compress = name == "compress"
        try:
            warm = [Session(server.port, i, u, ctx) for i, u in enumerate(users)]
            for s in warm:
                s.start(compress, idle)
            time.sleep(0.5)
            for s in warm:
                s.close()
            time.sleep(args.settle)
            before = reading(server)
            sessions = []
            for i in range(args.sessions):
                s = Session(server.port, len(users) + i, users[i % len(users)], ctx)
                s.start(compress, idle)
                sessions.append(s)
            time.sleep(args.settle)
            after = reading(server)
            for s in sessions:
                s.close()
        finally:
            server.stop()
    per = {k: (after[k] - before[k]) / args.sessions for k in ("Rss", "Pss", "Anonymous")}
    return {"name": name, "before": before, "after": after, "per": per}


DESCRIBE = {
    "plain": "pimap: LOGIN, SELECT, then sits",
    "idle": "pimap: LOGIN, SELECT, IDLE",
    "tls": "pimap: STARTTLS, LOGIN, SELECT, IDLE",
    "compress": "pimap: LOGIN, COMPRESS DEFLATE, SELECT, IDLE",
    "dovecot-plain": "Dovecot: LOGIN, SELECT, then sits",
    "dovecot-idle": "Dovecot: LOGIN, SELECT, IDLE",
}


def report(args, rows: list[dict], path: Path, rev: str, env: dict[str, str]) -> str:
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                      if ln.startswith("model name")), "?")
    dv = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip() or "-"
    kib = lambda b: b / 1024  # noqa: E731
    lines = [
        f"# Memory per idle session: pimap vs Dovecot ({dt.date.today().isoformat()})",
        "",
        f"`python3 benches/idle_memory.py --sessions {args.sessions} --users {args.users} "
        f"--settle {args.settle:g}`" + (f" with {' '.join(f'{k}={v}' for k, v in env.items())}" if env else ""),
        "",
        f"- Machine: {os.cpu_count()} cores ({cpu_model}), Linux {os.uname().release}; pimap release build "
        f"of {rev}; Dovecot {dv} (one `imap` process per session, its default).",
        f"- {args.sessions} sessions over {args.users} users, INBOX of {MESSAGES} small messages each. A fresh "
        "server per row; after a warm-up round (one session per user, closed), memory is read before "
        f"and {args.settle:g} s after the {args.sessions} sessions are set up; the table gives the "
        "difference divided by the session count.",
        "- Memory from /proc/PID/smaps_rollup, summed over the server's processes (Dovecot: its whole "
        "tree). RSS counts shared pages once per process; PSS shares them out; Anonymous is private "
        "anonymous memory (heap, stacks: what the sessions allocated, no file pages).",
        "",
        "| variant | KiB/session RSS | KiB/session PSS | KiB/session Anonymous | server RSS before → after (MiB) | processes after |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        p, b, a = r["per"], r["before"], r["after"]
        lines.append(f"| {DESCRIBE[r['name']]} | {kib(p['Rss']):.1f} | {kib(p['Pss']):.1f} | "
                     f"{kib(p['Anonymous']):.1f} | {b['Rss'] / 2**20:.1f} → {a['Rss'] / 2**20:.1f} | {a['procs']} |")
    lines += [
        "",
        "Notes:",
        "- glibc malloc keeps freed memory in its arenas (one per thread that allocated, up to 8 per "
        "core), so a pimap reading includes heap that is free but not returned; the warm-up round "
        "makes the first reading include what one-time set-up left behind.",
        "",
    ]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--variants", default="plain,idle,tls,compress,dovecot-plain,dovecot-idle")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for pimap's environment")
    ap.add_argument("--binary", type=Path, default=REPO / "target/release/pimap")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path,
                    default=REPO / f"benches/results/idle-memory-{dt.date.today().isoformat()}.md")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bin", "pimap"], cwd=REPO, check=True)
    env = dict(kv.split("=", 1) for kv in args.env)
    rows = []
    for v in args.variants.split(","):
        if v not in DESCRIBE:
            raise SystemExit(f"unknown variant {v!r} (one of {', '.join(DESCRIBE)})")
        r = run_variant(v, args, args.binary, env)
        print(f"{v}: {r['per']['Rss'] / 1024:.1f} KiB RSS, {r['per']['Pss'] / 1024:.1f} KiB PSS, "
              f"{r['per']['Anonymous'] / 1024:.1f} KiB anon per session", flush=True)
        rows.append(r)
    print(report(args, rows, args.out, pl.git_rev(), env))


if __name__ == "__main__":
    main()
