#!/usr/bin/env python3
"""`pimap backup` / `pimap restore` against `aws s3 sync`, side by side on the same Maildirs and
the same S3 server: wall time, CPU, peak RSS and the S3 requests each run sends, by operation.

What it does, all on 127.0.0.1 (as root: in a network namespace of its own whose loopback
routes have `quickack 1`, see enter_netns; --host-loopback: the host's):
  * builds Dovecot-style Maildirs for --users users (default 3) with --messages message files in
    all (default 10,000): INBOX, Sent, Archive, Archive/2025 and Junk per user; most messages
    2-20 KB, --big of them (default 1.5 %) 200 KB-2 MB with a base64 attachment; LF line ends;
    names `TIME.MusecPpid.host,S=SIZE,W=VSIZE:2,FLAGS` in cur/ with the file's mtime = TIME
    (Dovecot's INTERNALDATE); a `dovecot-uidlist` per folder (`3 V.. N.. G..`, then `UID :BASE`
    lines, with the UID gaps expunges leave), `maildirfolder` in each subfolder, a
    `dovecot-keywords` and keyword letters in one INBOX, `subscriptions` (version 2) and
    `dovecot-uidvalidity` (+ its marker) per user; 1 % of the files are COPYs of another
    message into another folder (a hard link under a new name, as Dovecot's COPY makes them);
  * per round (--rounds, default 3) starts s3s-fs (checks every SigV4 signature) on a fresh
    root with a per-request debug log, and runs, alternating which tool goes first:
      first     pimap backup into an empty prefix | aws s3 sync --delete MAILROOT s3://B/P
      noop      the same again, nothing changed
      change    after 100 flag changes (renames in cur/) and 50 new messages (in new/)
      restore   pimap restore into an empty mail location | aws s3 sync s3://B/P DIR
    and checks each restore against the Maildirs: every file (messages and control files,
    except Dovecot's uidvalidity marker, which a backup does not keep) with the same name and
    bytes, and, for pimap, the same mtime (a mismatch fails the benchmark); the AWS CLI sets
    mtimes to the download time, which is counted and reported, not failed;
  * measures each run: wall time, user+sys CPU and peak RSS of the client (GNU time), CPU of
    the S3 server meanwhile (/proc), requests by operation (s3s-fs's `resolved route, op:` log
    lines) and so by HTTP method;
  * with --perf, one more pimap first pass into a fresh prefix under `perf record --call-graph
    dwarf`, and the top of `perf report` in the report;
  * writes benches/results/backup-YYYY-MM-DD.md (--out) with medians over the rounds and the
    ratios pimap/awscli, and prints it.

Usage:  python3 benches/backup.py [--messages 10000] [--users 3] [--rounds 3] [--perf]
            [--pimap target/bench/release/pimap] [--out PATH] [--keep] [--aws-stock]
            [--host-loopback]
Needs: s3s-fs 0.14.1 (scripts/install-s3-tools.sh), the AWS CLI (`python3 -m pip install
'awscli==1.45.11'`), a release pimap (`cargo build --release --target-dir target/bench`),
GNU time, perf for --perf. As root, pimap runs as the mail user (`pimaptest`, else nobody), as in
tests/e2e/test_backup.py; the AWS CLI runs as the invoking user.
"""

from __future__ import annotations

import argparse
import base64
import collections
import datetime as dt
import os
import platform
import pwd
import random
import re
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
AK, SK = "AKIDPIMAPBENCH", "pimap-bench-secret"
BUCKET = "bench"
HOST = "mail.example.org"
# (directory, subscription name, share of the messages)
FOLDERS = [("", None, 0.50), (".Sent", "Sent", 0.15), (".Archive", "Archive", 0.17),
           (".Archive.2025", "Archive\t2025", 0.13), (".Junk", "Junk", 0.05)]
USER_SHARES = [0.5, 0.3, 0.2, 0.1, 0.1, 0.1]
STEPS = ["first", "noop", "change", "restore"]
STEP_TITLES = {
    "first": "first pass",
    "noop": "no-op pass",
    "change": "after 100 flag changes + 50 new",
    "restore": "restore into an empty dir",
}
TOOLS = ["pimap", "awscli"]
# S3 operation -> HTTP method (ListObjectsV2 is a GET on the bucket; counted apart as LIST).
METHOD = {
    "GetObject": "GET", "ListObjectsV2": "LIST", "ListObjects": "LIST", "ListBuckets": "GET",
    "GetBucketLocation": "GET", "HeadObject": "HEAD", "HeadBucket": "HEAD", "PutObject": "PUT",
    "CopyObject": "PUT", "UploadPart": "PUT", "DeleteObject": "DELETE", "DeleteObjects": "POST",
    "CreateMultipartUpload": "POST", "CompleteMultipartUpload": "POST",
    "AbortMultipartUpload": "DELETE",
}
COLUMNS = ["LIST", "GET", "PUT", "HEAD", "DELETE", "POST", "other"]


def mail_ids() -> tuple[int, int]:
    """The uid/gid pimap runs as when this runs as root (as tests/e2e/conftest.py picks it)."""
    for name in ("pimaptest", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    return 65534, 65534


MAIL_UID, MAIL_GID = mail_ids()
ROOT = os.geteuid() == 0


def chown_tree(path: Path) -> None:
    if not ROOT:
        return
    os.chown(path, MAIL_UID, MAIL_GID)
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(d, n), MAIL_UID, MAIL_GID)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The Maildirs


WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at "
         "which but have an they you were her she there been one all we their has would when "
         "if so no will more out up into do any your what some can only other new time could "
         "these two may first then my now over such our man me even most made after also did "
         "many before must through back years where much your way well down should because "
         "each just those people how too little state good very make world still own see men "
         "work long get here between both life being under never day same another know while "
         "meeting invoice report schedule attached review project budget thanks regards").split()


class Generator:
    """Message bytes: unique headers, then body text cut from a shared pool of lines, or a
    multipart with a base64 attachment for the big ones."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        lines, n = [], 0
        while n < 512 * 1024:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 13)))
            line = line[:1].upper() + line[1:] + "."
            lines.append(line)
            n += len(line) + 1
        self.pool = "\n".join(lines) + "\n"

    def text(self, n: int) -> str:
        start = self.pool.index("\n", self.rng.randrange(len(self.pool) - 1)) + 1
        out = (self.pool[start:] + self.pool)[: max(n, 0)]
        return out[: out.rfind("\n") + 1] if "\n" in out else out

    def message(self, user: str, seq: int, when: int, size: int, big: bool) -> bytes:
        r = self.rng
        date = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
        sender = f"{r.choice(WORDS)}.{r.choice(WORDS)}@{r.choice(['example.com', 'example.net', 'lists.example.org'])}"
        head = (f"Return-Path: <{sender}>\n"
                f"Delivered-To: {user}@example.org\n"
                f"Received: from mx{r.randint(1, 9)}.example.com (mx.example.com [192.0.2.{r.randint(1, 254)}])\n"
                f"\tby {HOST} with LMTP id {r.getrandbits(64):016x}\n\tfor <{user}@example.org>; {date}\n"
                f"From: {sender}\nTo: {user}@example.org\n"
                f"Subject: {' '.join(r.choice(WORDS) for _ in range(r.randint(2, 8)))} #{seq}\n"
                f"Date: {date}\nMessage-ID: <{seq}.{r.getrandbits(48):012x}@{sender.split('@')[1]}>\n"
                "MIME-Version: 1.0\n")
        if not big:
            head += "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            return (head + self.text(size - len(head))).encode()
        boundary = f"b{r.getrandbits(64):016x}"
        part1 = self.text(3000)
        head += (f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
                 f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{part1}\n"
                 f"--{boundary}\nContent-Type: application/pdf; name=\"scan{seq}.pdf\"\n"
                 "Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\n")
        raw = r.randbytes(max(size - len(head) - 60, 0) * 3 // 4)
        b64 = base64.b64encode(raw).decode()
        body = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
        return (head + body + f"\n--{boundary}--\n").encode()


def sample_size(rng: random.Random, big: bool) -> int:
    lo, hi = (200_000, 2_000_000) if big else (2_000, 20_000)
    return int(lo * (hi / lo) ** rng.random())  # log-uniform: more small than large


def base_name(rng: random.Random, when: int, data: bytes) -> str:
    vsize = len(data) + data.count(b"\n")  # RFC822.SIZE: with CRLF line ends
    return f"{when}.M{rng.randrange(1_000_000)}P{rng.randint(1000, 60000)}.{HOST},S={len(data)},W={vsize}"


def build_maildirs(root: Path, users: list[str], total: int, big_share: float, seed: int) -> dict:
    """Write the Maildirs; returns what was made (for the report)."""
    rng = random.Random(seed)
    gen = Generator(rng)
    now = int(time.time())
    copies = total // 100
    unique = total - copies
    n_big = round(unique * big_share)
    bigs = set(rng.sample(range(unique), n_big))
    shares = USER_SHARES[: len(users)]
    # A message: {when (in its name), mtime, data, flags, source (a COPY's original), path}.
    placed: dict[tuple[int, int], list[dict]] = collections.defaultdict(list)
    originals = []
    for i in range(unique):
        u = rng.choices(range(len(users)), weights=shares)[0]
        f = rng.choices(range(len(FOLDERS)), weights=[s for _, _, s in FOLDERS])[0]
        when = now - rng.randint(3600, 2 * 365 * 86400)
        data = gen.message(users[u], i, when, sample_size(rng, i in bigs), i in bigs)
        flags = {0: rng.choices(["S", "RS", "FS", "", "Sa", "Sab"], [70, 8, 5, 12, 3, 2])[0],
                 1: "S", 4: rng.choice(["", "S"])}.get(f, rng.choice(["S", "RS"]))
        if u != 0 or f != 0:
            flags = flags.replace("a", "").replace("b", "")  # keywords only in the first INBOX
        m = {"when": when, "mtime": when, "data": data, "flags": flags, "source": None, "path": None}
        placed[(u, f)].append(m)
        originals.append(((u, f), m))
    # COPYs: the same bytes into another folder of the same user, later, under a new name; a
    # hard link, so the same mtime (INTERNALDATE), as Dovecot's COPY makes them.
    for _ in range(copies):
        (u, f), src = rng.choice(originals)
        g = rng.choice([x for x in range(len(FOLDERS)) if x != f])
        placed[(u, g)].append({"when": src["when"] + rng.randint(60, 86400), "mtime": src["mtime"],
                               "data": src["data"], "flags": "S", "source": src, "path": None})
    sizes = sorted(len(m["data"]) for _, m in originals)
    stats = {"files": 0, "bytes": 0, "unique": unique, "copies": copies, "big": n_big,
             "unique_bytes": sum(sizes), "sizes": sizes}
    uidvalidity = now - 400 * 86400
    for u, user in enumerate(users):
        uroot = root / user
        uroot.mkdir(parents=True)
        subs = "V\t2\n\n" + "".join(f"{s}\n" for _, s, _ in FOLDERS if s)
        (uroot / "subscriptions").write_text(subs)
        top = uidvalidity + len(FOLDERS) * (u + 1)
        (uroot / "dovecot-uidvalidity").write_text(f"{top:08x}")
        (uroot / f"dovecot-uidvalidity.{top:08x}").touch()
        for f, (d, _, _) in enumerate(FOLDERS):
            fdir = uroot / d if d else uroot
            for sub in ("cur", "new", "tmp"):
                (fdir / sub).mkdir(parents=True, exist_ok=True)
            if d:
                (fdir / "maildirfolder").touch()
            if u == 0 and f == 0:
                (fdir / "dovecot-keywords").write_text("0 $Label1\n1 Work\n")
            lines, uid = [], 0
            for m in sorted(placed[(u, f)], key=lambda m: m["when"]):
                uid += 1 if rng.random() < 0.9 else rng.randint(2, 6)  # gaps of expunges
                base = base_name(rng, m["when"], m["data"])
                m["path"] = fdir / "cur" / f"{base}:2,{m['flags']}"
                lines.append(f"{uid} :{base}\n")
                stats["files"] += 1
                stats["bytes"] += len(m["data"])
            guid = f"{rng.getrandbits(128):032x}"
            header = f"3 V{uidvalidity + len(FOLDERS) * u + f} N{uid + 1} G{guid}\n"
            (fdir / "dovecot-uidlist").write_text(header + "".join(lines))
    for ms in placed.values():
        for m in ms:
            if m["source"] is None:
                m["path"].write_bytes(m["data"])
                os.utime(m["path"], (m["mtime"], m["mtime"]))
    for ms in placed.values():
        for m in ms:
            if m["source"] is not None:
                os.link(m["source"]["path"], m["path"])
    chown_tree(root)
    return stats


def apply_changes(root: Path, users: list[str], seed: int, renames: int = 100, new: int = 50) -> None:
    """What a day of mail does: flags changed on `renames` messages (a rename in cur/, the
    mtime kept) and `new` messages delivered to INBOX/new/ (not in the uidlist yet)."""
    rng = random.Random(seed + 1)
    gen = Generator(rng)
    files = sorted(p for p in root.glob("*/**/cur/*") if p.is_file())
    for p in rng.sample(files, renames):
        base, flags = p.name.split(":2,")
        flags = "".join(sorted(set(flags) ^ {"F"}, key=lambda c: (c.islower(), c)))
        p.rename(p.with_name(f"{base}:2,{flags}"))
    now = int(time.time())
    for i in range(new):
        user = users[i % len(users)]
        data = gen.message(user, 10_000_000 + i, now, sample_size(rng, False), False)
        path = root / user / "new" / base_name(rng, now, data)
        path.write_bytes(data)
        os.utime(path, (now, now))
        if ROOT:
            os.chown(path, MAIL_UID, MAIL_GID)


def tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root (relative path -> bytes, mtime), but tmp/ and the uidvalidity
    marker (pimap's backup keeps neither: tmp/ is work in progress, and the marker is only
    Dovecot's lock for the next UIDVALIDITY)."""
    out = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if not p.is_file() or "tmp" in rel.parts[:-1] or p.name.startswith("dovecot-uidvalidity."):
            continue
        out[str(rel)] = (p.read_bytes(), int(p.stat().st_mtime))
    return out


def compare(want: dict, got: dict, mtimes: bool) -> tuple[list[str], int]:
    """Differences (missing, extra, different bytes, and mtimes when asked), and the number of
    message files whose mtime differs."""
    diffs = [f"missing {k}" for k in sorted(want.keys() - got.keys())]
    diffs += [f"extra {k}" for k in sorted(got.keys() - want.keys())]
    bad_mtime = 0
    for k in sorted(want.keys() & got.keys()):
        if want[k][0] != got[k][0]:
            diffs.append(f"bytes differ: {k}")
        elif "/cur/" in f"/{k}" or "/new/" in f"/{k}":
            if want[k][1] != got[k][1]:
                bad_mtime += 1
                if mtimes:
                    diffs.append(f"mtime differs: {k} ({want[k][1]} != {got[k][1]})")
    return diffs, bad_mtime


# ---------------------------------------------------------------------------------------------
# The S3 server and the measured runs


class Server:
    """s3s-fs on a fresh root, logging each request's operation."""

    def __init__(self, root: Path):
        self.root = root
        (root / BUCKET).mkdir(parents=True)
        self.port = free_port()
        self.log = root.parent / f"s3s-{self.port}.log"
        env = dict(os.environ, RUST_LOG="s3s::ops=debug,s3s::ops::signature=info")
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(
                ["s3s-fs", "--host", "127.0.0.1", "--port", str(self.port), "--access-key", AK,
                 "--secret-key", SK, str(root)], stdout=f, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"s3s-fs did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def requests_since(self, offset: int) -> dict[str, int]:
        time.sleep(0.3)  # the last response can be sent before its log lines are flushed
        with open(self.log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        ops = collections.Counter(re.findall(r"resolved route, op: (\w+)", text))
        seen = len(re.findall(r"s3s::ops: parsing \S+ request", text))
        out = dict(ops)
        if seen != sum(ops.values()):
            out["(unrouted)"] = seen - sum(ops.values())
        errors = len(re.findall(r" ERROR s3s", text))
        if errors:
            out["(server errors)"] = errors
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(argv: list[str], env: dict, log: Path, server: Server) -> dict:
    """Run argv to completion: wall s, user+sys CPU s, peak RSS KiB, server CPU s, requests.

    CPU and RSS come from GNU time, not from this process's wait4: a child's ru_maxrss starts
    from the RSS of the process it was forked from (recorded at exec), and this one holds the
    Maildirs' bytes at times; GNU time is small."""
    offset, cpu0 = server.log_size(), server.cpu()
    rusage = log.with_suffix(".time")
    with open(log, "ab") as lf:
        lf.write(f"\n$ {' '.join(argv)}\n".encode())
        lf.flush()
        t0 = time.monotonic()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%U %S %M", "-o", str(rusage), "--"] + argv, env=env,
                             stdout=lf, stderr=lf, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = p.wait()
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        wall = time.monotonic() - t0
    if code != 0:
        raise SystemExit(f"{argv[0]} failed ({code}); see {log}:\n{log.read_text()[-3000:]}")
    user, sys_, rss = rusage.read_text().split()[-3:]
    return {"wall": wall, "cpu": float(user) + float(sys_), "rss": int(rss),
            "server_cpu": server.cpu() - cpu0, "requests": server.requests_since(offset)}


# An AWS CLI plugin: no `Expect: 100-continue` on uploads. botocore sends it on every PUT with
# a file body; against s3s-fs a few of those responses fail to parse (urllib3
# HeaderParsingError, MissingHeaderBodySeparatorDefect, the 200 response left as "unparsed
# data"), the client then reads the body to EOF and each such PUT ends in the 60 s read timeout
# and a retry: 2 of 537 PUTs in a trial, 123 s instead of 1.6 s. On loopback the header only
# adds a wait per PUT; pimap sends none.
NO_EXPECT = """\
def _drop_expect(params, **kwargs):
    params.get("headers", {}).pop("Expect", None)


def awscli_initialize(cli):
    # After botocore's own before-call.s3 handler (add_expect_header) has set it.
    cli.register_last("before-call.s3", _drop_expect)
"""


class Tools:
    """The command lines of both tools for one round."""

    def __init__(self, args, work: Path, server: Server, mail: Path, users_file: Path):
        self.args, self.work, self.server, self.mail, self.users_file = args, work, server, mail, users_file
        self.data = work / "pimap-data"
        self.data.mkdir()
        self.key = None
        if args.encrypt:
            # `pimap backup-key` writes a new age identity; pimap's objects are encrypted to it.
            self.key = self.data / "backup.key"
            subprocess.run([str(args.pimap), "backup-key", str(self.key)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        chown_tree(self.data)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
        base |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}
        self.pimap_env = base
        # No user config can change the AWS CLI's behaviour: its defaults, as installed, but for
        # the plugin that drops `Expect: 100-continue` (see NO_EXPECT) unless --aws-stock.
        config = work / "aws-config"
        self.aws_env = base | {"AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(config),
                               "AWS_SHARED_CREDENTIALS_FILE": str(work / "no-aws-credentials")}
        if not args.aws_stock:
            plugins = work / "aws-plugins"
            plugins.mkdir()
            (plugins / "pimap_bench_noexpect.py").write_text(NO_EXPECT)
            config.write_text("[plugins]\nnoexpect = pimap_bench_noexpect\n")
            path = os.environ.get("PYTHONPATH")
            self.aws_env["PYTHONPATH"] = f"{plugins}:{path}" if path else str(plugins)

    def pimap(self, command: str, mail_location: Path, prefix: str = "pimap",
              data: Path | None = None) -> list[str]:
        argv = [str(self.args.pimap), command, "--data-dir", str(data or self.data),
                "--users", str(self.users_file), "--mail-location", f"maildir:{mail_location}/%u",
                "--backup-bucket", BUCKET, "--backup-prefix", prefix,
                "--s3-endpoint", self.server.url]
        if self.key:
            argv += ["--backup-key-file", str(self.key)]
        if ROOT:
            argv = ["setpriv", f"--reuid={MAIL_UID}", f"--regid={MAIL_GID}", "--clear-groups", "--"] + argv
        return argv

    def aws_up(self) -> list[str]:
        return [self.args.aws, "--endpoint-url", self.server.url, "s3", "sync", "--quiet", "--delete",
                f"{self.mail}/", f"s3://{BUCKET}/awscli/"]

    def aws_down(self, dest: Path) -> list[str]:
        return [self.args.aws, "--endpoint-url", self.server.url, "s3", "sync", "--quiet",
                f"s3://{BUCKET}/awscli/", f"{dest}/"]

    def run(self, tool: str, step: str) -> dict:
        log = self.work / f"{tool}.log"
        if tool == "pimap":
            if step == "restore":
                dest = self.work / "restore-pimap"
                dest.mkdir()
                chown_tree(dest)
                argv = self.pimap("restore", dest)
            else:
                argv = self.pimap("backup", self.mail)
            return measure(argv, self.pimap_env, log, self.server)
        if step == "restore":
            return measure(self.aws_down(self.work / "restore-aws"), self.aws_env, log, self.server)
        return measure(self.aws_up(), self.aws_env, log, self.server)


def run_round(args, r: int, base: Path, users: list[str], users_file: Path) -> tuple[dict, list[str]]:
    """One round: each step by both tools (the order alternates by round), then the checks."""
    work = args.work / f"round{r}"
    work.mkdir()
    os.chmod(work, 0o755)
    mail = work / "mail"
    subprocess.run(["cp", "-a", str(base), str(mail)], check=True)  # keeps mtimes and links
    server = Server(work / "s3")
    notes = []
    try:
        tools = Tools(args, work, server, mail, users_file)
        order = TOOLS if r % 2 == 1 else TOOLS[::-1]
        res: dict = {}
        for step in STEPS:
            if step == "change":
                apply_changes(mail, users, args.seed)
            for tool in order:
                print(f"round {r}: {step}: {tool} ...", file=sys.stderr, flush=True)
                res[(step, tool)] = m = tools.run(tool, step)
                print(f"round {r}: {step}: {tool}: {m['wall']:.2f} s, {m['rss'] / 1024:.1f} MiB, "
                      f"{sum(v for k, v in m['requests'].items() if not k.startswith('('))} requests",
                      file=sys.stderr, flush=True)
        # Is pimap's bucket what the Maildirs hold? One object per distinct content per user.
        for user in users:
            objs = list((server.root / BUCKET / "pimap" / user / "m").iterdir())
            contents = {p.read_bytes() for p in (mail / user).glob("**/*") if p.parent.name in ("cur", "new")}
            if len(objs) != len(contents):
                raise SystemExit(f"{user}: {len(objs)} message objects for {len(contents)} contents")
        want = {u: tree(mail / u) for u in users}
        for u in users:
            diffs, _ = compare(want[u], tree(work / "restore-pimap" / u), mtimes=True)
            if diffs:
                raise SystemExit(f"pimap restore of {u} differs ({len(diffs)}): " + "; ".join(diffs[:10]))
        aws_mtime = 0
        for u in users:
            diffs, bad = compare(want[u], tree(work / "restore-aws" / u), mtimes=False)
            if diffs:
                raise SystemExit(f"aws s3 sync restore of {u} differs ({len(diffs)}): " + "; ".join(diffs[:10]))
            aws_mtime += bad
        n = sum(len(t) for t in want.values())
        notes.append(f"round {r}: both restores byte-identical ({n} files); pimap kept every mtime, "
                     f"the AWS CLI {aws_mtime} message file(s) with another mtime (the download time)")
        return res, notes
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def perf_profile(args, base: Path, users_file: Path) -> str:
    """One more pimap first pass under perf; the top of perf report as markdown."""
    work = args.work / "perf"
    work.mkdir()
    os.chmod(work, 0o755)
    server = Server(work / "s3")
    try:
        tools = Tools(args, work, server, base, users_file)
        data = work / "perf.data"
        argv = ["perf", "record", "-q", "-F", str(args.perf_freq), "--call-graph", "dwarf,16384",
                "-o", str(data), "--"] + tools.pimap("backup", base)
        m = measure(argv, tools.pimap_env, work / "perf-run.log", server)

        def report(*extra: str) -> str:
            p = subprocess.run(["perf", "report", "-i", str(data), "--stdio", *extra],
                               capture_output=True, text=True)
            lines = [ln for ln in p.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
            return "\n".join(lines)

        by_comm = report("--no-children", "--sort", "comm,dso", "-g", "none", "--percent-limit", "1")
        flat = report("--no-children", "--sort", "sym", "-g", "none", "--percent-limit", "0.7")
        children = report("--children", "--sort", "sym", "-g", "none", "--percent-limit", "4")
        skip = re.compile(r"start_thread|thread_start|clone3?\b|call_once|__rust_begin_short_backtrace|"
                          r"std::sys::|std::thread::|core::ops::function|std::panic|panicking|"
                          r"\[unknown\]|_start$|__libc_start|main$|lang_start|entry_SYSCALL|do_syscall_64")
        children = "\n".join(ln for ln in children.splitlines() if not skip.search(ln))
        out = [f"## Profile: pimap's first pass (`perf record -F {args.perf_freq} --call-graph dwarf`)", "",
               f"Under perf: {m['wall']:.2f} s wall (perf's own work included), s3s-fs "
               f"{m['server_cpu']:.2f} s CPU meanwhile.", "",
               "Samples by thread and object (self):", "", "```", by_comm, "```", "",
               "Functions, self time (≥ 0.7 %):", "", "```", flat[:6000], "```", "",
               "Functions, with callees (≥ 4 %, thread and runtime frames left out):", "", "```",
               children[:6000], "```", ""]
        return "\n".join(out)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The report


def by_method(requests: dict) -> dict[str, int]:
    out = collections.Counter()
    for op, n in requests.items():
        if not op.startswith("("):
            out[METHOD.get(op, "other")] += n
    return out


def fmt_requests(requests: dict) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(requests.items(), key=lambda kv: -kv[1]))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b > 0 else "–"


def render(args, stats: dict, rounds: list[dict], notes: list[str], meta: dict, perf: str) -> str:
    med = {k: {f: statistics.median(r[k][f] for r in rounds) for f in ("wall", "cpu", "rss", "server_cpu")}
           for k in rounds[0]}
    req = {k: rounds[0][k]["requests"] for k in rounds[0]}
    varying = [f"{s}/{t}" for (s, t) in rounds[0] if any(r[(s, t)]["requests"] != req[(s, t)] for r in rounds)]
    sz = stats["sizes"]
    q = lambda f: sz[min(len(sz) - 1, int(f * len(sz)))]  # noqa: E731
    lines = [
        f"# `pimap backup` / `restore` vs `aws s3 sync` ({meta['date']})", "",
        f"Command: `python3 benches/backup.py --messages {args.messages} --users {args.users} "
        f"--rounds {args.rounds}{' --perf' if args.perf else ''}{' --encrypt' if args.encrypt else ''}`."
        + (" pimap encrypts every object (`--backup-key-file`, age)." if args.encrypt else ""),
        f"Server: s3s-fs {meta['s3s']} on 127.0.0.1 (checks every SigV4 signature), a fresh root per "
        "round, one request log line counted per request; "
        + ("in a private network namespace whose loopback routes have `quickack 1` (see the notes)."
           if args.netns else "on the host's loopback (`--host-loopback`: GETs on kept-alive "
           "connections wait for delayed ACKs, see the notes)."),
        f"Clients: {meta['pimap']} (`{args.pimap}`, default --s3-concurrency 8) vs {meta['aws']} "
        "(defaults: 10 concurrent requests" + ("" if args.aws_stock else
                                               "; `Expect: 100-continue` dropped, see the notes")
        + "), each with its own prefix in the same bucket.",
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), {platform.system()} {platform.release()}, "
        f"shared (load average {meta['load0']} at the start, {meta['load1']} at the end).", "",
        f"Data: {args.users} users, {len(FOLDERS)} folders each, {stats['files']} message files, "
        f"{stats['bytes'] / 2**20:.1f} MiB ({stats['unique']} distinct messages, "
        f"{stats['unique_bytes'] / 2**20:.1f} MiB; {stats['copies']} COPYs as hard links); "
        f"{stats['big']} of 200 KB-2 MB, the rest 2-20 KB; sizes p10 {q(0.1) / 1024:.1f} KiB, "
        f"median {q(0.5) / 1024:.1f} KiB, p90 {q(0.9) / 1024:.1f} KiB, max {sz[-1] / 2**20:.2f} MiB. "
        "The change step renames 100 files in cur/ (a flag change) and delivers 50 new ones to "
        "INBOX/new/.", "",
        f"Medians over {len(rounds)} round(s) (the tool that goes first alternates). CPU: the client's "
        "user+sys; server CPU: s3s-fs's meanwhile. Requests by HTTP method (LIST: ListObjectsV2, a "
        "GET on the bucket) from round 1" + (f"; they varied across rounds for {', '.join(varying)}"
                                            if varying else "; the same in every round") + ".", "",
        "| step | tool | wall s | CPU s | peak RSS MiB | server CPU s | requests | "
        + " | ".join(COLUMNS) + " |",
        "|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    for step in STEPS:
        for tool in TOOLS:
            m, rq = med[(step, tool)], req[(step, tool)]
            bm = by_method(rq)
            lines.append(f"| {STEP_TITLES[step]} | {'pimap' if tool == 'pimap' else 'aws s3 sync'} | "
                         f"{m['wall']:.2f} | {m['cpu']:.2f} | {m['rss'] / 1024:.1f} | {m['server_cpu']:.2f} | "
                         f"{sum(bm.values())} | " + " | ".join(str(bm.get(c, 0)) for c in COLUMNS) + " |")
    lines += ["", "Ratios pimap / aws s3 sync (below 1: pimap uses less):", "",
              "| step | wall | CPU | peak RSS | requests | server CPU |", "|---|---:|---:|---:|---:|---:|"]
    for step in STEPS:
        p, a = med[(step, "pimap")], med[(step, "awscli")]
        rp, ra = sum(by_method(req[(step, "pimap")]).values()), sum(by_method(req[(step, "awscli")]).values())
        lines.append(f"| {STEP_TITLES[step]} | {ratio(p['wall'], a['wall'])} | {ratio(p['cpu'], a['cpu'])} | "
                     f"{ratio(p['rss'], a['rss'])} | {ratio(rp, ra)} | {ratio(p['server_cpu'], a['server_cpu'])} |")
    lines += ["", "Wall seconds per round:", "",
              "| step | tool | " + " | ".join(f"round {i + 1}" for i in range(len(rounds))) + " |",
              "|---|---|" + "---:|" * len(rounds)]
    for step in STEPS:
        for tool in TOOLS:
            lines.append(f"| {STEP_TITLES[step]} | {tool} | "
                         + " | ".join(f"{r[(step, tool)]['wall']:.2f}" for r in rounds) + " |")
    lines += ["", "S3 operations (round 1):", ""]
    for step in STEPS:
        for tool in TOOLS:
            lines.append(f"- {STEP_TITLES[step]}, {tool}: {fmt_requests(req[(step, tool)])}")
    lines += ["", "Checks:", ""] + [f"- {n}" for n in notes]
    lines += ["", "Notes:", ""]
    if not args.aws_stock:
        lines += ["- The AWS CLI ran with a 5-line CLI plugin (written by the benchmark) that drops "
                  "the `Expect: 100-continue` header botocore puts on every upload: against s3s-fs, "
                  "some of those PUTs end in urllib3's HeaderParsingError (the 200 response left as "
                  "unparsed data), then the 60 s read timeout and a retry (a trial: 2 stalls in 537 "
                  "PUTs, 123 s instead of 1.6 s). On loopback the header costs one wait per PUT; "
                  "pimap sends none. `--aws-stock` runs the CLI as installed."]
    lines += ["- s3s-fs sets no TCP_NODELAY and writes a response's head and body separately: on a "
              "kept-alive connection Nagle holds the body until the client's delayed ACK, about 40 ms, "
              "for about a third of the GETs (boto3, one GET at a time: p90 44 ms on the host's "
              "loopback, 2.2 ms with quickack). "
              + ("This run is in a network namespace of its own whose loopback routes have `quickack 1`, "
                 "so that cost of the server is not counted as the clients'." if args.netns else
                 "This run is on the host's loopback: restore times include those waits.")]
    lines += ["- The AWS CLI's HEAD before each download comes from s3s-fs: its listings carry no "
              "ETag, so s3transfer asks for it; against S3, whose listings have ETags, it would not.",
              "- pimap's first pass also reads back the snapshots and manifests it just wrote (GET): "
              "retention collects unreferenced objects on the first pass with a new data dir, then "
              "once a day."]
    lines += ["", "Not the same work: pimap's backup keeps every pass as a snapshot (a restore picks "
              "one, with the UIDs, flags and mtimes of then) and stores each distinct message once per "
              "user; `aws s3 sync --delete` keeps one mirror, stores a flag change as a new object and "
              "each COPY again. pimap's restore fsyncs the tree (one syncfs) before it renames it into "
              "place; the AWS CLI fsyncs nothing.", ""]
    if perf:
        lines += [perf]
    return "\n".join(lines) + "\n"


NETNS_MARK = "PIMAP_BACKUP_BENCH_NETNS"


def enter_netns(args) -> bool:
    """Run in a network namespace of our own whose loopback routes have `quickack 1`.

    s3s-fs sets no TCP_NODELAY and writes a response's head and body in separate writes: on a
    kept-alive connection Nagle then holds the body until the client's delayed ACK (40 ms),
    for about a third of GETs (boto3, one GET at a time: p90 44 ms; with quickack 2.2 ms).
    That is the server's cost, and it would decide the restore's wall time. Only loopback,
    only in this namespace: the host's network is untouched. Returns True inside one."""
    if os.environ.get(NETNS_MARK) == "1":
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "route", "replace", "local", "127.0.0.0/8", "dev", "lo", "table", "local",
                     "proto", "kernel", "scope", "host", "src", "127.0.0.1", "quickack", "1"],
                    ["ip", "route", "replace", "local", "127.0.0.1", "dev", "lo", "table", "local",
                     "proto", "kernel", "scope", "host", "src", "127.0.0.1", "quickack", "1"]):
            subprocess.run(cmd, check=True)
        return True
    if args.host_loopback:
        return False
    if not ROOT or shutil.which("unshare") is None or shutil.which("ip") is None:
        print("not root, or no unshare/ip: on the host's loopback (see --host-loopback)", file=sys.stderr)
        return False
    os.environ[NETNS_MARK] = "1"
    os.execvp("unshare", ["unshare", "--net", "--", sys.executable, str(Path(__file__).resolve())]
              + sys.argv[1:])
    return False  # not reached


def version(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=3, choices=range(1, len(USER_SHARES) + 1))
    ap.add_argument("--big", type=float, default=0.015, help="share of 200 KB-2 MB messages")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--pimap", type=Path, default=REPO / "target" / "bench" / "release" / "pimap")
    ap.add_argument("--perf", action="store_true", help="profile one more pimap first pass")
    ap.add_argument("--perf-freq", type=int, default=999)
    ap.add_argument("--out", type=Path,
                    default=REPO / "benches" / "results" / f"backup-{dt.date.today().isoformat()}.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--encrypt", action="store_true",
                    help="pimap with --backup-key-file (age encryption of every object)")
    ap.add_argument("--aws-stock", action="store_true",
                    help="run the AWS CLI without the plugin that drops Expect: 100-continue")
    ap.add_argument("--host-loopback", action="store_true",
                    help="use the host's loopback, not a private network namespace with quickack")
    args = ap.parse_args()
    args.netns = enter_netns(args)

    for tool in ("s3s-fs", "aws", "/usr/bin/time", "setpriv" if ROOT else "true") + (("perf",) if args.perf else ()):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (see this file's docstring; GNU time: apt-get install time)")
    if not args.pimap.is_file() or subprocess.run([str(args.pimap), "backup", "--help"],
                                                  capture_output=True).returncode != 0:
        raise SystemExit(f"{args.pimap}: no pimap with a backup command (cargo build --release --target-dir target/bench)")
    # The AWS CLI's real script, not a version manager's shim (which would add its start-up).
    args.aws = shutil.which("aws")
    shim = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True) \
        if "/shims/" in args.aws and shutil.which("pyenv") else None
    if shim is not None and shim.returncode == 0:
        args.aws = shim.stdout.strip()
    meta = {"date": dt.date.today().isoformat(), "s3s": version(["s3s-fs", "--version"]).split()[-1],
            "aws": version([args.aws, "--version"]).split()[0], "pimap": version([str(args.pimap), "--version"]),
            "load0": " ".join(Path("/proc/loadavg").read_text().split()[:3])}

    args.work = Path(tempfile.mkdtemp(prefix="pimap-bench-backup."))
    os.chmod(args.work, 0o755)
    try:
        users = ["alice", "bob", "carol", "dave", "erin", "frank"][: args.users]
        users_file = args.work / "users"
        users_file.write_text("".join(f"{u}:{{PLAIN}}x:{MAIL_UID}:{MAIL_GID}::::\n" for u in users))
        users_file.chmod(0o644)
        base = args.work / "base"
        print(f"building {args.messages} message files for {len(users)} users in {base} ...", file=sys.stderr)
        stats = build_maildirs(base, users, args.messages, args.big, args.seed)
        rounds, notes = [], []
        for r in range(1, args.rounds + 1):
            res, n = run_round(args, r, base, users, users_file)
            rounds.append(res)
            notes += n
        perf = perf_profile(args, base, users_file) if args.perf else ""
        meta["load1"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        text = render(args, stats, rounds, notes, meta, perf)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(text)
    finally:
        if args.keep:
            print(f"kept {args.work}", file=sys.stderr)
        else:
            shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
