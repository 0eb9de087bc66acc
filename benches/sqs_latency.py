#!/usr/bin/env python3
"""`--sqs-queue`: how soon mail that lands in S3 reaches an idling IMAP client, and what the
watcher costs when nothing arrives. Against moto (S3, SQS, SNS and S3 event notifications).

What it does, all on 127.0.0.1, every wait bounded:
  * starts moto_server on a free port and, in front of it, tests/e2e/sqsproxy.py's SqsProxy,
    which checks each SQS request's SigV4 signature and counts every request pimap makes,
    per SQS action and per S3 operation (pimap's --s3-endpoint and --sqs-queue both point at
    it; the benchmark's own puts and publishes go to moto directly and are not counted);
  * per path (--via, default both): a bucket and a queue (default visibility timeout), and
      s3   an S3 event notification (s3:ObjectCreated:*, prefix inbound/) into the queue;
      sns  an SNS topic subscribed to the queue, and after each put an SES-shaped receipt
           notification published to it, as SES's S3 action with a topic does;
  * starts the release pimap `serve` with --s3-bucket, --s3-prefix inbound/, --deliver-to,
    --sqs-queue and --sync-interval 1h, one user, dropping to the mail user when run as root;
    an IMAP client LOGINs, SELECTs INBOX and IDLEs;
  * latency: N (default 200) SES-shaped objects (CRLF, SES trace headers, 2-20 KB), one at a
    time with a random pause of 0 to --gap s between them; for each, from just before the put
    call starts to the `* n EXISTS` line read: p50 / p90 / p99 / max;
  * idle cost (first path only): with nothing arriving, the requests pimap makes in
    IDLE_SECONDS (default 120) per action, extrapolated to an hour, with pimap's CPU seconds
    (utime + stime from /proc) over that time and its RSS; next to it, computed (not
    measured) costs of the setups it replaces (a CronJob running `aws s3 sync` every 5 min,
    `--sync-interval 1m`);
  * side by side (unless --list-puts 0): the LIST-only path, pimap with --sync-interval 5s
    and no queue, for a few puts at random moments, to compare latencies.

Usage:  python3 benches/sqs_latency.py [--messages 200] [--via s3,sns] [--idle-seconds 120]
            [--gap 0.5] [--list-puts 10] [--list-interval 5] [--no-build] [--binary PATH]
            [--out benches/results/sqs-latency-YYYY-MM-DD.md]
Needs: moto (`scripts/install-s3-tools.sh`; run with 5.2.1), boto3, cargo (release build of
pimap). Root is optional; as root pimap drops to the mail user (`pimaptest`, else nobody).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import math
import os
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from sqsproxy import SqsProxy  # noqa: E402

import boto3  # noqa: E402

HOST = "127.0.0.1"
AK, SK = "AKIDPIMAPBENCH", "pimap-bench-secret"
ACCOUNT = "123456789012"  # moto's default account
USER = "bench"
TICK = os.sysconf("SC_CLK_TCK")
WAIT = 30.0  # the bound on every single wait below


def mail_ids() -> tuple[int, int]:
    for name in ("pimaptest", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    return 65534, 65534


MAIL_UID, MAIL_GID = mail_ids()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(pred, what: str, timeout: float = WAIT, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_until(up, f"{what} to listen on {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    for d, _, files in os.walk(path):
        os.chown(d, MAIL_UID, MAIL_GID)
        for f in files:
            os.chown(os.path.join(d, f), MAIL_UID, MAIL_GID)


# ---------------------------------------------------------------------------------------
# Mail and notifications shaped like SES's


def ses_message(i: int, size: int, rng: random.Random) -> bytes:
    """An object as SES's S3 action writes it: its trace and verdict headers first, CRLF line
    ends, padded with text lines to about `size` bytes."""
    head = (f"Return-Path: <sender{i}@example.net>\r\n"
            f"Received: from mail.example.net (mail.example.net [192.0.2.{i % 250 + 1}]) by "
            f"inbound-smtp.us-east-1.amazonaws.com with SMTP id bench{i:06d} for "
            f"{USER}@example.org; Fri, 04 Dec 2026 10:00:00 +0000 (UTC)\r\n"
            "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n"
            "Received-SPF: pass (spfCheck: domain of example.net designates 192.0.2.1 as "
            "permitted sender) client-ip=192.0.2.1;\r\n"
            "Authentication-Results: amazonses.com; spf=pass; dkim=pass header.i=@example.net; "
            "dmarc=pass header.from=example.net;\r\n"
            f"From: Sender {i} <sender{i}@example.net>\r\nTo: {USER}@example.org\r\n"
            f"Subject: bench message {i}\r\nMessage-ID: <bench{i}.{time.time_ns()}@example.net>\r\n"
            "Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode()
    words = ("mail", "queue", "bucket", "notification", "latency", "second", "server", "idle")
    body = bytearray()
    while len(head) + len(body) < size:
        body += (" ".join(rng.choice(words) for _ in range(12)) + "\r\n").encode()
    return head + bytes(body)


def ses_receipt(bucket: str, key: str, topic: str) -> str:
    """The SES receipt notification its S3 action publishes to the topic after the write."""
    return json.dumps({
        "notificationType": "Received",
        "mail": {"timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
                 "source": "sender@example.net", "messageId": key.rsplit("/", 1)[-1],
                 "destination": [f"{USER}@example.org"]},
        "receipt": {"recipients": [f"{USER}@example.org"], "processingTimeMillis": 400,
                    "spamVerdict": {"status": "PASS"}, "virusVerdict": {"status": "PASS"},
                    "action": {"type": "S3", "topicArn": topic, "bucketName": bucket,
                               "objectKeyPrefix": "inbound/", "objectKey": key}}})


# ---------------------------------------------------------------------------------------
# The proxy, counting S3 operations too


def s3_operation(method: str, path: str) -> str:
    """Name the S3 operation of a path-style request."""
    where, _, query = path.partition("?")
    # A presigned request carries its signature in X-Amz-* parameters: not part of the name.
    params = {p.partition("=")[0] for p in query.split("&") if p and not p.startswith("X-Amz-")}
    if method == "GET" and "list-type" in params:
        return "S3 ListObjectsV2"
    if method == "GET" and not params:
        return "S3 GetObject" if where.strip("/").count("/") else "S3 ListObjects"
    return {"HEAD": "S3 HeadObject", "PUT": "S3 PutObject", "DELETE": "S3 DeleteObject"}.get(
        method, f"S3 {method} ?{'&'.join(sorted(params))}")


class CountingProxy(SqsProxy):
    """SqsProxy (SigV4 check of SQS requests, counts per SQS action) that also names each S3
    request's operation, so a LIST and an object GET are told apart."""

    def __init__(self, port: int, upstream_port: int, keys: dict[str, str]):
        self.s3_ops: collections.Counter[str] = collections.Counter()
        self.receives: list[float] = []  # when each ReceiveMessage came in (monotonic)
        super().__init__(port, upstream_port, keys)
        default = self.server.handle_error

        def handle_error(request, address) -> None:
            # A long poll whose client (a stopped pimap) is gone: nobody to answer.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                default(request, address)
        self.server.handle_error = handle_error

    def _handle(self, h) -> None:
        target = h.headers.get("X-Amz-Target")
        with self.lock:
            if not target:
                self.s3_ops[s3_operation(h.command, h.path)] += 1
            elif target == "AmazonSQS.ReceiveMessage":
                self.receives.append(time.monotonic())
        super()._handle(h)

    def receive_times(self, since: float, until: float) -> list[float]:
        with self.lock:
            return [t for t in self.receives if since <= t <= until]

    def snapshot(self) -> collections.Counter[str]:
        with self.lock:
            out = collections.Counter({k: v for k, v in self.counts.items() if not k.startswith("S3 ")})
            out.update(self.s3_ops)
        return out


# ---------------------------------------------------------------------------------------
# pimap and its IMAP client


class Pimap:
    def __init__(self, work: Path, binary: Path, extra: list[str]):
        self.work = work
        for d in ("mail", "data"):
            (work / d).mkdir(parents=True, exist_ok=True)
        (work / "users").write_text(f"{USER}:{{PLAIN}}pw-{USER}:{MAIL_UID}:{MAIL_GID}::::\n")
        (work / "users").chmod(0o644)
        chown_tree(work)
        self.port, self.http = free_port(), free_port()
        self.log = work / "pimap.log"
        cmd = [str(binary), "serve", "--data-dir", str(work / "data"), "--imap-listen", f"{HOST}:{self.port}",
               "--users", str(work / "users"), "--mail-location", f"maildir:{work}/mail/%u",
               "--http-listen", f"{HOST}:{self.http}", "--log-level", "info",
               "--autocreate-folders", "false", *extra]
        if os.geteuid() == 0:
            cmd += ["--run-as", f"{MAIL_UID}:{MAIL_GID}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
        env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK, "TZ": "UTC"}
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                         env=env, cwd=work)
        wait_port(self.port, self.proc, "pimap")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def cpu_rss(self) -> tuple[float, int, int]:
        """(CPU seconds, RSS bytes, peak RSS bytes) of the pimap process."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14, 15)
        status = dict(ln.split(":", 1) for ln in open(f"/proc/{self.proc.pid}/status") if ":" in ln)
        kib = lambda k: int(status[k].split()[0]) * 1024  # noqa: E731
        return cpu, kib("VmRSS"), kib("VmHWM")

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://{HOST}:{self.http}/metrics", timeout=10).read().decode()
        out = {}
        for ln in text.splitlines():
            if ln.startswith(("pimap_sqs_", "pimap_sync_")):
                name, _, v = ln.rpartition(" ")
                out[name] = float(v)
        return out


class Idler:
    """One IMAP client: LOGIN, SELECT INBOX, IDLE; then reads `* n EXISTS` lines."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=WAIT)
        self.buf = b""
        self.exists = 0
        self.line(time.monotonic() + WAIT)  # greeting
        for tag, cmd in (("a1", f"LOGIN {USER} pw-{USER}"), ("a2", "SELECT INBOX")):
            self.sock.sendall(f"{tag} {cmd}\r\n".encode())
            while not (ln := self.line(time.monotonic() + WAIT)).startswith(tag.encode()):
                pass
            if not ln.startswith(f"{tag} OK".encode()):
                raise SystemExit(f"{cmd}: {ln!r}")
        self.sock.sendall(b"a3 IDLE\r\n")
        while not self.line(time.monotonic() + WAIT).startswith(b"+"):
            pass

    def line(self, deadline: float) -> bytes | None:
        """The next line, or None at `deadline`; notes EXISTS counts."""
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return None
            if not chunk:
                raise SystemExit("pimap closed the IMAP connection")
            self.buf += chunk
        i = self.buf.index(b"\r\n") + 2
        ln, self.buf = self.buf[:i], self.buf[i:]
        parts = ln.split()
        if len(parts) == 3 and parts[0] == b"*" and parts[2].upper() == b"EXISTS":
            self.exists = int(parts[1])
        return ln

    def wait_exists(self, n: int, timeout: float = WAIT) -> float | None:
        """Monotonic time the line saying `n` (or more) messages was read; None on timeout."""
        deadline = time.monotonic() + timeout
        while self.exists < n:
            if self.line(deadline) is None:
                return None
        return time.monotonic()

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.line(deadline) is not None:
            pass

    def close(self) -> None:
        try:
            self.sock.sendall(b"DONE\r\na4 LOGOUT\r\n")
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------------------------------
# The runs


class Moto:
    def __init__(self, work: Path):
        self.port = free_port()
        with open(work / "moto.log", "wb") as f:
            self.proc = subprocess.Popen(["moto_server", "-H", HOST, "-p", str(self.port)],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, "moto_server")
        kw = dict(endpoint_url=f"http://{HOST}:{self.port}", region_name="us-east-1",
                  aws_access_key_id=AK, aws_secret_access_key=SK)
        self.s3, self.sqs, self.sns = (boto3.client(s, **kw) for s in ("s3", "sqs", "sns"))

    def queue(self, name: str) -> tuple[str, str]:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    def queue_empty(self, url: str) -> bool:
        a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return a["ApproximateNumberOfMessages"] == "0" and a["ApproximateNumberOfMessagesNotVisible"] == "0"


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else float("nan")


def summary(lat: list[float]) -> dict:
    ms = [x * 1000 for x in lat]
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99),
            "max": max(ms, default=float("nan")), "mean": statistics.fmean(ms) if ms else float("nan")}


def put_and_wait(moto: Moto, client: Idler, bucket: str, n: int, rng: random.Random, gap: float,
                 topic: str | None, first: int) -> tuple[list[float], list[float], int]:
    """Put `n` objects one at a time, each after a random pause of up to `gap` s; returns the
    latencies (put start to EXISTS), the put calls' own durations, and how many never showed."""
    lat, put_s, missed = [], [], 0
    for i in range(first, first + n):
        data = ses_message(i, rng.randint(2 * 1024, 20 * 1024), rng)
        key = f"inbound/{i:06d}-{rng.getrandbits(40):010x}"
        time.sleep(rng.uniform(0, gap))
        want = client.exists + 1
        t0 = time.monotonic()
        moto.s3.put_object(Bucket=bucket, Key=key, Body=data)
        put_s.append(time.monotonic() - t0)
        if topic:
            moto.sns.publish(TopicArn=topic, Message=ses_receipt(bucket, key, topic))
        seen = client.wait_exists(want)
        if seen is None:
            missed += 1
            print(f"  {key}: no EXISTS within {WAIT:g} s", file=sys.stderr, flush=True)
        else:
            lat.append(seen - t0)
        if (i - first + 1) % 50 == 0:
            print(f"  {i - first + 1}/{n}: p50 {pct(lat, 50) * 1000:.0f} ms", file=sys.stderr, flush=True)
    return lat, put_s, missed


def run_queue_path(via: str, moto: Moto, proxy: CountingProxy, binary: Path, work: Path, args,
                   rng: random.Random, measure_idle: bool) -> dict:
    bucket = f"bench-{via}"
    moto.s3.create_bucket(Bucket=bucket)
    url, arn = moto.queue(bucket)
    topic = None
    if via == "s3":
        moto.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                     "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "inbound/"}]}}}]})
    else:
        topic = moto.sns.create_topic(Name=bucket)["TopicArn"]
        moto.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    c0 = proxy.snapshot()
    srv = Pimap(work / via, binary, [
        "--s3-bucket", bucket, "--s3-prefix", "inbound/", "--s3-endpoint", f"http://{HOST}:{proxy.port}",
        "--deliver-to", USER, "--sqs-queue", f"http://{HOST}:{proxy.port}/{ACCOUNT}/{bucket}",
        "--sync-interval", "1h"])
    try:
        wait_until(lambda: "sqs: watching" in srv.log_text(), "pimap's queue watcher")
        # moto's s3:TestEvent (sent when the notification is configured) handled and deleted.
        wait_until(lambda: moto.queue_empty(url), "the queue to be empty")
        client = Idler(srv.port)
        client.drain(1.0)
        c1 = proxy.snapshot()
        print(f"{via}: {args.messages} puts ...", file=sys.stderr, flush=True)
        lat, put_s, missed = put_and_wait(moto, client, bucket, args.messages, rng, args.gap, topic, 0)
        wait_until(lambda: moto.queue_empty(url), "the queue to be emptied after the puts")
        client.drain(2.0)
        c2 = proxy.snapshot()
        res = {"via": via, "lat": summary(lat), "put": summary(put_s), "missed": missed,
               "startup": c1 - c0, "busy": c2 - c1, "objects": args.messages}
        if measure_idle:
            print(f"{via}: idle {args.idle_seconds:g} s ...", file=sys.stderr, flush=True)
            cpu0, _, _ = srv.cpu_rss()
            t0 = time.monotonic()
            client.drain(args.idle_seconds)
            t1 = time.monotonic()
            cpu1, rss, hwm = srv.cpu_rss()
            res["idle"] = {"seconds": t1 - t0, "requests": proxy.snapshot() - c2, "cpu": cpu1 - cpu0,
                           "rss": rss, "hwm": hwm, "receives": proxy.receive_times(t0, t1)}
        res["metrics"] = srv.metrics()
        res["rejected"] = list(proxy.rejected)
        client.close()
        return res
    finally:
        stop(srv.proc)


def run_list_path(moto: Moto, proxy: CountingProxy, binary: Path, work: Path, args,
                  rng: random.Random) -> dict:
    """LIST only (no queue), --sync-interval `args.list_interval`: puts at random moments."""
    bucket = "bench-list"
    moto.s3.create_bucket(Bucket=bucket)
    srv = Pimap(work / "list", binary, [
        "--s3-bucket", bucket, "--s3-prefix", "inbound/", "--s3-endpoint", f"http://{HOST}:{proxy.port}",
        "--deliver-to", USER, "--sync-interval", f"{args.list_interval}s"])
    try:
        client = Idler(srv.port)
        print(f"list: {args.list_puts} puts ...", file=sys.stderr, flush=True)
        c0, t0 = proxy.snapshot(), time.monotonic()
        # A random pause of up to one interval before each put: puts land at random phases.
        lat, _, missed = put_and_wait(moto, client, bucket, args.list_puts, rng, args.list_interval, None, 0)
        span = time.monotonic() - t0
        client.close()
        return {"lat": summary(lat), "missed": missed, "requests": proxy.snapshot() - c0, "seconds": span}
    finally:
        stop(srv.proc)


# ---------------------------------------------------------------------------------------
# The report


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30).stdout.strip()
        return rev + (" + local changes" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def per_hour(n: int, seconds: float) -> float:
    return n * 3600 / seconds


def cost_lines(res: dict, args) -> list[str]:
    """Requests per hour: measured for --sqs-queue, computed for what it replaces."""
    idle = res["idle"]
    reqs, span = idle["requests"], idle["seconds"]
    # The rate from the polls' own spacing: a count over the window is off by up to one poll.
    times = idle["receives"]
    recv_h = (3600 * (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2
              else per_hour(reqs["ReceiveMessage"], span))
    other = {k: v for k, v in reqs.items() if k != "ReceiveMessage" and v}
    lines = [
        f"Measured over {span:.0f} s with nothing arriving (through the proxy): "
        + fmt_counts(reqs) + (f"; one ReceiveMessage every {(times[-1] - times[0]) / (len(times) - 1):.1f} s"
                              if len(times) > 2 else "") + ".",
        "",
        "| setup | AWS requests per hour, N objects in the bucket | N = 200 | N = 10,000 | N = 100,000 "
        "| mean latency |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def row(name: str, formula: str, f, latency: str) -> str:
        return f"| {name} | {formula} | {f(200):,.0f} | {f(10_000):,.0f} | {f(100_000):,.0f} | {latency} |"
    lists = lambda n: math.ceil(n / 1000)  # noqa: E731
    lat = res["lat"]["mean"]
    lines.append(row("`--sqs-queue` (measured)",
                     f"{recv_h:.0f} ReceiveMessage + 1 LIST pass (⌈N/1000⌉ LISTs)"
                     + (f" + {sum(per_hour(v, span) for v in other.values()):.0f} other" if other else ""),
                     lambda n: recv_h + lists(n) + sum(per_hour(v, span) for v in other.values()),
                     f"{lat / 1000:.2f} s (measured)"))
    lines.append(row("`--sync-interval 1m`", "60 passes × ⌈N/1000⌉ LISTs", lambda n: 60 * lists(n),
                     "30 s (half the interval)"))
    lines.append(row("CronJob `aws s3 sync` every 5 min", "12 runs × ⌈N/1000⌉ LISTs (+ credentials)",
                     lambda n: 12 * lists(n), "2.5 min (half the interval)"))
    if "list" in res:
        lr = res["list"]
        lh = per_hour(lr["requests"].get("S3 ListObjectsV2", 0), lr["seconds"])
        lines.append(row(f"`--sync-interval {args.list_interval}s` (measured, no queue)",
                         f"{lh:.0f} LISTs × ⌈N/1000⌉", lambda n: lh * lists(n),
                         f"{lr['lat']['mean'] / 1000:.2f} s (measured)"))
    lines += [
        "",
        "Every new object costs one GetObject on every path (and, with the queue, its share of a "
        "ReceiveMessage and a DeleteMessageBatch, 10 messages a batch at most); that part is not "
        "in the table. The AWS CLI's no-op `aws s3 sync` sends ⌈N/1000⌉ LISTs and nothing else "
        "(measured in [sync-2026-11-23.md](sync-2026-11-23.md)); a CronJob also starts a new "
        "process per run, so with IRSA each run adds an STS AssumeRoleWithWebIdentity (12/h).",
        f"At us-east-1 list prices (SQS $0.40 per million requests after the first million a "
        f"month free; S3 LIST $0.005 per 1,000), {recv_h:.0f} ReceiveMessage/h is "
        f"{recv_h * 730:,.0f} a month: inside the free tier, else ${recv_h * 730 * 0.4e-6:.2f}; the "
        f"5-min CronJob over 10,000 objects is {12 * 10 * 730:,} LISTs a month, "
        f"${12 * 10 * 730 * 0.005 / 1000:.2f}.",
    ]
    return lines


def fmt_counts(c: collections.Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v) or "none"


def report(args, results: list[dict], list_res: dict | None, env: dict, path: Path) -> str:
    mib = lambda b: b / (1 << 20)  # noqa: E731
    head = results[0]
    lines = [
        f"# `--sqs-queue`: S3/SES to IDLE latency and idle cost ({dt.date.today().isoformat()})",
        "",
        f"`python3 benches/sqs_latency.py --messages {args.messages} --via {args.via} "
        f"--idle-seconds {args.idle_seconds:g} --gap {args.gap:g} --list-puts {args.list_puts} "
        f"--list-interval {args.list_interval}`",
        "",
        f"- pimap release build of {env['rev']}; moto {env['moto']} (S3, SQS, SNS) on loopback, with "
        "tests/e2e/sqsproxy.py in front checking every SQS request's SigV4 signature and counting "
        f"pimap's requests; boto3 {boto3.__version__} for the puts.",
        f"- Machine: {os.cpu_count()} cores ({env['cpu']}), Linux {os.uname().release}; load average "
        f"(1 min) {env['load0']} at the start, {env['load1']} at the end (shared with other builds).",
        f"- {args.messages} SES-shaped objects (CRLF, SES trace and verdict headers, 2-20 KB) per path, "
        f"one at a time, 0-{args.gap:g} s apart; latency from just before the put call to the "
        "`* n EXISTS` line read by a client idling in INBOX. pimap runs `serve --sqs-queue ... "
        "--sync-interval 1h` (the LIST pass at start, then hourly).",
        "",
        "| path | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | mean (ms) | missed | put call p50 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {"s3": "S3 event → SQS", "sns": "SES receipt → SNS → SQS (put, then publish)"}
    for r in results:
        s = r["lat"]
        lines.append(f"| {names[r['via']]} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | "
                     f"{s['max']:.0f} | {s['mean']:.0f} | {r['missed']} | {r['put']['p50']:.0f} |")
    if list_res:
        s = list_res["lat"]
        lines.append(f"| LIST only, `--sync-interval {args.list_interval}s`, {args.list_puts} puts at random "
                     f"moments | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['max']:.0f} | "
                     f"{s['mean']:.0f} | {list_res['missed']} | |")
    goal = all(r["lat"]["p99"] < 1000 and not r["missed"] for r in results)
    lines += ["", f"Goal (p99 under 1 s on loopback): **{'met' if goal else 'NOT met'}**."]
    if list_res:
        ratio = list_res["lat"]["mean"] / head["lat"]["mean"]
        lines.append(f"Mean latency, LIST every {args.list_interval} s vs the queue: {ratio:.0f}× "
                     f"({list_res['lat']['mean']:.0f} ms vs {head['lat']['mean']:.0f} ms).")
    lines += ["", "Requests pimap made while the objects arrived (per path, through the proxy):", ""]
    for r in results:
        per = {k: v / r["objects"] for k, v in r["busy"].items() if v}
        lines.append(f"- {r['via']}: {fmt_counts(r['busy'])} (per object: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items())) + "); at start: "
                     f"{fmt_counts(r['startup'])}.")
    if "idle" in head:
        idle = head["idle"]
        lines += ["", f"## Idle cost ({head['via']} path, nothing arriving)", ""]
        lines += cost_lines({**head, **({"list": list_res} if list_res else {})}, args)
        lines += ["", f"pimap's own cost over the {idle['seconds']:.0f} s idle: {idle['cpu'] * 1000:.0f} ms "
                  f"CPU (utime + stime, ticks of 1/{TICK} s; {idle['cpu'] / idle['seconds'] * 3600:.1f} s "
                  f"an hour), RSS {mib(idle['rss']):.1f} MiB (peak {mib(idle['hwm']):.1f} MiB) with one "
                  f"IDLE session, after {args.messages} deliveries."]
    lines += ["", "## Notes", ""]
    m = head["metrics"]
    lat_n = m.get("pimap_sync_notification_latency_seconds_count", 0)
    if lat_n:
        lines.append(f"- pimap's own metric, notification sent (SQS SentTimestamp) to delivered, "
                     f"{head['via']} path: mean {m['pimap_sync_notification_latency_seconds_sum'] / lat_n * 1000:.0f} "
                     f"ms over {lat_n:.0f} deliveries.")
    rejected = sum(len(r["rejected"]) for r in results)
    lines += [
        f"- SQS requests rejected by the proxy's SigV4 check: {rejected}.",
        "- What the latency includes: the put to moto (which writes the object, then sends the "
        "S3 event to its SQS queue inline; the put call's own time is in the last column), the "
        "long poll's wake-up, the GET, the Maildir delivery (fsync of the file and new/), pimap's "
        "IDLE wake-up (inotify, then a 25 ms settle for the writer's burst) and the EXISTS. moto "
        "answers a waiting ReceiveMessage as soon as a message arrives, like SQS. On AWS add S3's "
        "own notification delay, which this run cannot show: AWS documents event notifications "
        "as at-least-once, typically delivered in seconds, sometimes a minute or more.",
        "- The SNS path's clock also includes the publish call, as SES publishes after its write.",
        "- Long polling with WaitTimeSeconds 20 is 3 ReceiveMessage a minute when idle, whatever "
        "the bucket's size; the LIST pass (hourly here, the safety net) is the only part that grows "
        "with N. GetQueueAttributes is sent once at start.",
        "",
    ]
    text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200, help="objects put per path")
    ap.add_argument("--via", default="s3,sns", help="paths: s3 (S3 event), sns (SES receipt via SNS)")
    ap.add_argument("--idle-seconds", type=float, default=120.0)
    ap.add_argument("--gap", type=float, default=0.5, help="up to this many seconds between puts")
    ap.add_argument("--list-puts", type=int, default=10, help="puts on the LIST-only path (0: skip it)")
    ap.add_argument("--list-interval", type=int, default=5, help="its --sync-interval, seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-build", action="store_true", help="use the existing target/release/pimap")
    ap.add_argument("--binary", type=Path, help="this pimap binary (implies --no-build)")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benches" / "results" / f"sqs-latency-{dt.date.today().isoformat()}.md")
    args = ap.parse_args()
    paths = [p for p in args.via.split(",") if p]
    if not paths or any(p not in ("s3", "sns") for p in paths) or args.messages < 1:
        raise SystemExit("--via takes s3, sns or s3,sns; --messages at least 1")
    if shutil.which("moto_server") is None:
        raise SystemExit("moto_server is not installed (scripts/install-s3-tools.sh)")
    if not args.no_build and args.binary is None:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "pimap"], cwd=REPO, check=True,
                       timeout=3600)
    binary = (args.binary or REPO / "target" / "release" / "pimap").resolve()
    import moto
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    env = {"rev": git_rev(), "moto": moto.__version__, "cpu": cpu,
           "load0": open("/proc/loadavg").read().split()[0]}
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="pimap-sqs-bench-"))
    work.chmod(0o755)
    m = Moto(work)
    proxy = CountingProxy(free_port(), m.port, {AK: SK})
    try:
        results = [run_queue_path(via, m, proxy, binary, work, args, rng, i == 0) for i, via in enumerate(paths)]
        list_res = run_list_path(m, proxy, binary, work, args, rng) if args.list_puts > 0 else None
    finally:
        # A long poll pimap left behind as it stopped ends with moto: not an error worth a trace.
        proxy.server.handle_error = lambda *a: None
        proxy.close()
        stop(m.proc)
    env["load1"] = open("/proc/loadavg").read().split()[0]
    shutil.rmtree(work, ignore_errors=True)
    print(report(args, results, list_res, env, args.out))
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
