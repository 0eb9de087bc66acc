#!/usr/bin/env python3
"""Push latency and idle cost of IMAP IDLE (RFC 2177): pimap vs Dovecot 2.3.

What it measures, for each server on the same machine with the same mail:
  * N (default 100) clients over U (default 4) users, each LOGIN, SELECT INBOX, IDLE;
  * idle cost: CPU (utime + stime from /proc/PID/stat) and RSS used by the server while the
    N clients idle for IDLE_SECONDS (default 30) with nothing happening. pimap is one
    process; for Dovecot the `imap` processes (one per client) are summed, and the whole
    Dovecot process tree (master, imap-login, auth, anvil, ...) is given too;
  * push latency: D (default 50) deliveries, round-robin over the users, each written the
    way an MDA does (Maildir spec: write into tmp/, then rename into new/) by this script (a
    process other than the server). For each, the time from the rename to the untagged
    `* n EXISTS` at every idling client of that user: p50 / p99 / max over all
    (delivery, client) pairs, and p50 / p99 of the slowest client per delivery.

Usage:  python3 benches/push_latency.py [--clients 100] [--users 4] [--deliveries 50]
            [--idle-seconds 30] [--no-build] [--out benches/results/push-YYYY-MM-DD.md]
Needs: cargo (release build of pimap), Debian's dovecot-core + dovecot-imapd, root (Dovecot's
mail processes run as an unprivileged user; the mail tree is chowned to it).
Everything listens on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pwd
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SEED_MESSAGES = 200  # per user, already in cur/ before the clients connect


def mail_ids() -> tuple[int, int]:
    for name in ("pimaptest", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    return 65534, 65534


MAIL_UID, MAIL_GID = mail_ids()


def message(i: int, subject: str) -> bytes:
    return (f"From: Bench <bench@example.org>\r\nTo: user@example.org\r\nSubject: {subject}\r\n"
            f"Message-ID: <{i}.{time.time_ns()}@bench.example>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
            f"\r\nMessage {i}.\r\n").encode()


def chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for d, dirs, files in os.walk(path):
        os.chown(d, MAIL_UID, MAIL_GID)
        for f in files:
            os.chown(os.path.join(d, f), MAIL_UID, MAIL_GID)


def seed_mail(root: Path, users: list[str]) -> None:
    for u in users:
        md = root / u
        for sub in ("cur", "new", "tmp"):
            (md / sub).mkdir(parents=True, exist_ok=True)
        base = int(time.time()) - 100000
        for i in range(SEED_MESSAGES):
            name = f"{base + i}.M{i}P{os.getpid()}.bench:2,S"
            (md / "cur" / name).write_bytes(message(i, f"seed {i}"))
    chown_tree(root)
    os.chmod(root, 0o755)


def deliver(maildir: Path, data: bytes, seq: int) -> float:
    """MDA-style delivery (tmp/ then rename into new/); returns the monotonic time of the
    rename, when the message becomes visible."""
    name = f"{int(time.time())}.M{seq}P{os.getpid()}.bench"
    tmp = maildir / "tmp" / name
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if os.geteuid() == 0:
        os.chown(tmp, MAIL_UID, MAIL_GID)
    t = time.monotonic()
    os.rename(tmp, maildir / "new" / name)
    return t


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port}")


# ---------------------------------------------------------------------------------------
# /proc accounting


def pss(pid: int) -> int:
    """Proportional set size (bytes): resident memory with shared pages divided among their
    users, so summing it over processes doesn't count a shared library 100 times."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    return int(ln.split()[1]) * 1024
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        pass
    return 0


def proc_stat(pid: int) -> tuple[float, int, int, str]:
    """(cpu seconds = utime + stime, rss bytes, session id, comm) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    comm = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state): utime = field 14, stime = 15, session = 6, rss = 24.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / TICK, int(fields[21]) * PAGE, int(fields[3]), comm


def processes_of_session(sid: int) -> dict[int, str]:
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            _, _, s, comm = proc_stat(int(p))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if s == sid:
            out[int(p)] = comm
    return out


def cpu_mem(pids: list[int]) -> tuple[float, int, int]:
    """(CPU seconds, RSS bytes, PSS bytes) summed over `pids`."""
    cpu = rss = ps = 0
    for p in pids:
        try:
            c, r, _, _ = proc_stat(p)
        except FileNotFoundError:
            continue
        cpu += c
        rss += r
        ps += pss(p)
    return cpu, rss, ps


# ---------------------------------------------------------------------------------------
# Servers


class Server:
    def __init__(self, kind: str, port: int, proc: subprocess.Popen, mail: Path):
        self.kind, self.port, self.proc, self.mail = kind, port, proc, mail

    def server_pids(self) -> tuple[list[int], list[int]]:
        """(pids whose CPU counts as "the server's IMAP work", all pids of the server)."""
        if self.kind == "pimap":
            return [self.proc.pid], [self.proc.pid]
        procs = processes_of_session(self.proc.pid)
        return [p for p, c in procs.items() if c == "imap"], list(procs)

    def stop(self) -> None:
        if self.kind == "dovecot":
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def users_file(path: Path, users: list[str]) -> None:
    path.write_text("".join(f"{u}:{{PLAIN}}pw-{u}:{MAIL_UID}:{MAIL_GID}::::\n" for u in users))
    path.chmod(0o644)


def start_pimap(work: Path, binary: Path, users: list[str]) -> Server:
    mail = work / "pimap-mail"
    seed_mail(mail, users)
    users_file(work / "pimap-users", users)
    (work / "pimap-data").mkdir()
    chown_tree(work / "pimap-data")
    port = free_port()
    cmd = [str(binary), "serve", "--data-dir", str(work / "pimap-data"),
           "--imap-listen", f"{HOST}:{port}", "--users", str(work / "pimap-users"),
           "--mail-location", f"maildir:{mail}/%u", "--log-level", "warn", "--autocreate-folders", "false"]
    helptext = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True).stdout
    if "--run-as" in helptext:
        # Started as root, pimap serves mail as --run-as: the same user as Dovecot's mail.
        cmd += ["--run-as", f"{MAIL_UID}:{MAIL_GID}"]
    if "--max-connections-per-ip" in helptext:
        cmd += ["--max-connections", str(10 * 60000)]
    log = open(work / "pimap.log", "ab")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, "pimap")
    return Server("pimap", port, proc, mail)


DOVECOT_CONF = """\
base_dir = {work}/dovecot-run
log_path = {work}/dovecot.log
protocols = imap
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
login_trusted_networks = 127.0.0.0/8
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{mail}/%u
default_login_user = nobody
default_internal_user = nobody
# {clients} clients: room for one imap process each (Dovecot's default: 100 processes per
# service, 10 connections per user and IP).
default_process_limit = {limit}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


def start_dovecot(work: Path, users: list[str], clients: int) -> Server:
    if shutil.which("dovecot") is None:
        raise SystemExit("dovecot is not installed (apt-get install dovecot-core dovecot-imapd)")
    mail = work / "dovecot-mail"
    seed_mail(mail, users)
    users_file(work / "dovecot-users", users)
    port = free_port()
    conf = work / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(work=work, host=HOST, mail=mail, users=work / "dovecot-users",
                                        port=port, clients=clients, limit=clients * 2 + 10))
    out = open(work / "dovecot.stdout", "ab")
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    wait_port(port, proc, "dovecot")
    return Server("dovecot", port, proc, mail)


# ---------------------------------------------------------------------------------------
# Clients


class Client:
    def __init__(self, port: int, user: str, n: int):
        self.user = user
        src = f"127.2.{n // 250}.{n % 250 + 1}"  # one source address each: no per-IP limits
        self.sock = socket.create_connection((HOST, port), timeout=30, source_address=(src, 0))
        self.buf = b""
        self.exists = 0
        self.seen: dict[int, float] = {}  # EXISTS count → monotonic time first seen

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{self.user}: server closed the connection")
            self.buf += chunk
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def command(self, tag: str, text: str) -> None:
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        while True:
            ln = self.line()
            self.note(ln, time.monotonic())
            if ln.startswith(tag.encode() + b" "):
                if not ln.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(f"{text!r} → {ln!r}")
                return

    def start(self) -> None:
        self.line()  # greeting
        self.command("a1", f"LOGIN {self.user} pw-{self.user}")
        self.command("a2", "SELECT INBOX")
        self.sock.sendall(b"a3 IDLE\r\n")
        while not self.line().startswith(b"+"):
            pass
        self.sock.setblocking(False)

    def note(self, ln: bytes, t: float) -> None:
        parts = ln.split()
        if len(parts) == 3 and parts[0] == b"*" and parts[2].upper() == b"EXISTS":
            n = int(parts[1])
            self.exists = n
            self.seen.setdefault(n, t)

    def on_readable(self) -> None:
        t = time.monotonic()
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            raise ConnectionError(f"{self.user}: server closed the connection while idling")
        self.buf += chunk
        while b"\r\n" in self.buf:
            i = self.buf.index(b"\r\n") + 2
            ln, self.buf = self.buf[:i], self.buf[i:]
            self.note(ln, t)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def run_one(server: Server, users: list[str], clients: int, deliveries: int, idle_s: float) -> dict:
    conns: list[Client] = []
    t0 = time.monotonic()
    for i in range(clients):
        c = Client(server.port, users[i % len(users)], i)
        c.start()
        conns.append(c)
    setup = time.monotonic() - t0
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)

    def pump(until: float) -> None:
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return
            for key, _ in sel.select(timeout=min(left, 0.5)):
                key.data.on_readable()

    # Let the servers arm their watches and settle after the logins.
    pump(time.monotonic() + 2.0)
    imap_pids, all_pids = server.server_pids()
    cpu0, _, _ = cpu_mem(imap_pids)
    all0, _, _ = cpu_mem(all_pids)
    pump(time.monotonic() + idle_s)
    cpu1, rss, ps = cpu_mem(imap_pids)
    all1, all_rss, all_pss = cpu_mem(all_pids)
    idle = {"cpu": cpu1 - cpu0, "rss": rss, "pss": ps, "all_cpu": all1 - all0, "all_rss": all_rss,
            "all_pss": all_pss, "imap_procs": len(imap_pids), "all_procs": len(all_pids)}

    by_user = {u: [c for c in conns if c.user == u] for u in users}
    lat_all: list[float] = []
    lat_last: list[float] = []
    missed = 0
    busy0, _, _ = cpu_mem(all_pids)
    for k in range(deliveries):
        u = users[k % len(users)]
        group = by_user[u]
        want = max(c.exists for c in group) + 1
        t = deliver(server.mail / u, message(10_000 + k, f"pushed {k}"), k)
        deadline = t + 10.0
        while time.monotonic() < deadline and not all(want in c.seen for c in group):
            for key, _ in sel.select(timeout=0.05):
                key.data.on_readable()
        got = [c.seen[want] - t for c in group if want in c.seen]
        missed += len(group) - len(got)
        lat_all.extend(got)
        if got:
            lat_last.append(max(got))
        pump(time.monotonic() + 0.1)
    busy1, _, _ = cpu_mem(all_pids)
    load = open("/proc/loadavg").read().split()[0]
    for c in conns:
        try:
            c.sock.close()
        except OSError:
            pass
    ms = lambda x: x * 1000  # noqa: E731
    return {
        "setup_s": setup,
        "idle": idle,
        "push_cpu_ms": (busy1 - busy0) * 1000 / max(1, deliveries),
        "load": load,
        "samples": len(lat_all),
        "missed": missed,
        "p50": ms(pct(lat_all, 50)), "p99": ms(pct(lat_all, 99)), "max": ms(max(lat_all, default=float("nan"))),
        "mean": ms(statistics.fmean(lat_all)) if lat_all else float("nan"),
        "last_p50": ms(pct(lat_last, 50)), "last_p99": ms(pct(lat_last, 99)),
    }


def git_rev() -> str:
    """HEAD's short hash, with `+local changes` when the working tree differs from it."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return rev + (" + local changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def report(args, res: dict, path: Path, rev: str) -> str:
    cpu_model = "?"
    for ln in open("/proc/cpuinfo"):
        if ln.startswith("model name"):
            cpu_model = ln.split(":", 1)[1].strip()
            break
    dv = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    p, d = res["pimap"], res["dovecot"]
    mib = lambda b: b / (1 << 20)  # noqa: E731
    lines = [
        f"# IDLE push latency and idle cost: pimap vs Dovecot ({dt.date.today().isoformat()})",
        "",
        f"`python3 benches/push_latency.py --clients {args.clients} --users {args.users} "
        f"--deliveries {args.deliveries} --idle-seconds {args.idle_seconds}`",
        "",
        f"- Machine: {os.cpu_count()} cores ({cpu_model}), Linux {os.uname().release}; pimap release build "
        f"of {rev}, Dovecot {dv} (one `imap` process per client, its default).",
        f"- {args.clients} clients over {args.users} users ({args.clients // args.users} per user), each "
        f"LOGIN, SELECT INBOX ({SEED_MESSAGES} messages), IDLE; one source address per client.",
        f"- Idle cost: server CPU (utime+stime from /proc) over {args.idle_seconds:g} s with nothing "
        "happening, and RSS at the end. Dovecot: the `imap` processes summed, and in brackets its whole "
        "process tree (master, imap-login, auth, anvil, log, config, stats).",
        f"- Latency: {args.deliveries} deliveries, round-robin over the users, written by the benchmark "
        "process like an MDA (tmp/, fsync, rename into new/); clock from the rename to `* n EXISTS` "
        "read at each idling client of that user (all of them: "
        f"{args.clients // args.users} samples per delivery).",
        "",
        "| | pimap | Dovecot |",
        "|---|---:|---:|",
        f"| push latency p50 (ms) | {p['p50']:.1f} | {d['p50']:.1f} |",
        f"| push latency p99 (ms) | {p['p99']:.1f} | {d['p99']:.1f} |",
        f"| push latency max (ms) | {p['max']:.1f} | {d['max']:.1f} |",
        f"| slowest client per delivery, p50 / p99 (ms) | {p['last_p50']:.1f} / {p['last_p99']:.1f} "
        f"| {d['last_p50']:.1f} / {d['last_p99']:.1f} |",
        f"| samples (missed, no EXISTS within 10 s) | {p['samples']} ({p['missed']}) "
        f"| {d['samples']} ({d['missed']}) |",
        f"| CPU while {args.clients} clients idle {args.idle_seconds:g} s (ms) | {p['idle']['cpu'] * 1000:.0f} "
        f"| {d['idle']['cpu'] * 1000:.0f} ({d['idle']['all_cpu'] * 1000:.0f} all) |",
        f"| memory with {args.clients} idle clients, PSS (MiB) | {mib(p['idle']['pss']):.1f} "
        f"| {mib(d['idle']['pss']):.1f} ({mib(d['idle']['all_pss']):.1f} all, "
        f"{d['idle']['all_procs']} processes) |",
        f"| same, RSS summed (MiB) | {mib(p['idle']['rss']):.1f} | {mib(d['idle']['rss']):.1f} "
        f"({mib(d['idle']['all_rss']):.1f} all) |",
        f"| server CPU per delivery, waking {args.clients // args.users} idlers (ms) "
        f"| {p['push_cpu_ms']:.1f} | {d['push_cpu_ms']:.1f} (all processes) |",
        f"| time to connect + LOGIN + SELECT + IDLE all clients (s) | {p['setup_s']:.2f} | {d['setup_s']:.2f} |",
        f"| machine load average (1 min) after the deliveries | {p['load']} | {d['load']} |",
        "",
        "Notes:",
        "- The machine is shared: a load average above its core count means other work competed "
        "with the servers, which shows in the latencies (not in the CPU figures, which are the "
        "servers' own).",
        "- pimap wakes an idling session through one process-wide inotify instance, then waits 25 ms "
        "(`idle::SETTLE`) for the writer's burst before re-reading the mailbox: that wait is part of "
        "every pimap figure above.",
        "- Memory: PSS (from /proc/PID/smaps_rollup) shares each shared page among the processes "
        "using it, so Dovecot's sum is what its processes cost together; summed RSS counts shared "
        "libraries once per process and is given only for comparison with other reports. CPU is "
        f"counted in clock ticks of 1/{TICK} s, so 0 means under 10 ms over the whole window.",
        "",
    ]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--deliveries", type=int, default=50)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--no-build", action="store_true", help="use the existing target/release/pimap")
    ap.add_argument("--binary", type=Path, help="this pimap binary instead (implies --no-build; e.g. "
                    "to compare two builds)")
    ap.add_argument("--servers", default="pimap,dovecot")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benches" / "results" / f"push-{dt.date.today().isoformat()}.md")
    args = ap.parse_args()
    if not 1 <= args.users <= args.clients or args.clients > 60000:
        raise SystemExit("need 1 <= users <= clients <= 60000")
    rev = git_rev()
    if not args.no_build and args.binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True, timeout=3600)
    binary = args.binary or REPO / "target" / "release" / "pimap"
    users = [f"user{i}" for i in range(1, args.users + 1)]
    res = {}
    work = Path(tempfile.mkdtemp(prefix="pimap-push-bench-"))
    work.chmod(0o755)
    try:
        for kind in args.servers.split(","):
            srv = start_pimap(work, binary, users) if kind == "pimap" else start_dovecot(work, users, args.clients)
            try:
                print(f"{kind}: {args.clients} clients idling ...", file=sys.stderr, flush=True)
                res[kind] = run_one(srv, users, args.clients, args.deliveries, args.idle_seconds)
                print(f"{kind}: {res[kind]}", file=sys.stderr, flush=True)
            finally:
                srv.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "pimap" in res and "dovecot" in res:
        print(report(args, res, args.out, rev))
        print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
