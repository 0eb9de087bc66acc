"""`pimap backup` / `pimap restore` through the real binary, against moto (AWS's behaviour) and
s3s-fs (checks every SigV4 signature), with Dovecot as the peer that made the Maildirs and reads
them back: after backup, wipe and restore, the files (messages, names, mtimes, uidlist, keywords,
subscriptions) are byte-identical, and IMAP clients of Dovecot and pimap see the same
UIDVALIDITY, UIDs, flags, keywords and subscriptions as before."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (HOST, MAIL_GID, MAIL_UID, PIMAP_BIN, attach, chown_tree, free_port, start_dovecot,
                      start_pimap, stop_process, wait_for_port)
from imapwire import append, quote
from msgs import crlf

boto3 = pytest.importorskip("boto3")

AK, SK = "AKIDPIMAPBACKUP", "pimap-backup-secret"
REQUIRE = os.environ.get("PIMAP_TEST_REQUIRE_S3") == "1"

# What a backup keeps besides the messages (Dovecot's index files are rebuilt from these).
CONTROL = {"dovecot-uidlist", "dovecot-keywords", "pimap-keywords", "pimap-modseq",
           "dovecot-attributes", "maildirfolder", "subscriptions", "dovecot-uidvalidity"}


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        if REQUIRE:
            raise RuntimeError(f"{tool} is not installed and PIMAP_TEST_REQUIRE_S3=1 requires it")
        pytest.skip(f"{tool} is not installed (scripts/install-s3-tools.sh)")


class Bucket:
    """A bucket in moto or s3s-fs, and `pimap backup` / `pimap restore` runs against it."""

    def __init__(self, request, workdir: Path, port: int, name: str):
        self.workdir, self.port, self.name = workdir, port, name
        self.s3 = boto3.client("s3", endpoint_url=f"http://{HOST}:{port}", region_name="us-east-1",
                               aws_access_key_id=AK, aws_secret_access_key=SK)
        self.data = workdir / "backup-data"
        self.data.mkdir(exist_ok=True)
        chown_tree(self.data)
        self.logs: list[str] = []
        attach(request.node, "pimap backup/restore output", lambda: "\n".join(self.logs))

    def keys(self, prefix: str = "") -> list[str]:
        out, token = [], None
        while True:
            kw = {"Bucket": self.name, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            r = self.s3.list_objects_v2(**kw)
            out += [o["Key"] for o in r.get("Contents", [])]
            token = r.get("NextContinuationToken")
            if not token:
                return out

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.name, Key=key)["Body"].read()

    def cmd(self, command: str, *extra: str, prefix: str = "pi1") -> list[str]:
        args = [str(PIMAP_BIN), command, "--data-dir", str(self.data),
                "--users", str(self.workdir / "users"),
                "--mail-location", f"maildir:{self.workdir / 'mail'}/%u",
                "--backup-bucket", self.name, "--backup-prefix", prefix,
                "--s3-endpoint", f"http://{HOST}:{self.port}", "--s3-retries", "3", *extra]
        if os.geteuid() == 0:
            args = ["setpriv", f"--reuid={MAIL_UID}", f"--regid={MAIL_GID}", "--clear-groups", "--"] + args
        return args

    def run(self, command: str, *extra: str, ok: bool = True, prefix: str = "pi1",
            timeout: float = 300) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
        env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}
        p = subprocess.run(self.cmd(command, *extra, prefix=prefix), capture_output=True, text=True,
                           env=env, timeout=timeout, cwd=self.workdir)
        self.logs.append(f"$ pimap {command} {' '.join(extra)} -> {p.returncode}\n{p.stdout}{p.stderr}")
        if ok:
            assert p.returncode == 0, p.stderr
        return p

    def consistent(self, prefix: str = "pi1/", latest_only: bool = False) -> int:
        """Every snapshot names only manifests that exist, and they only messages that exist
        (what a kill -9 must never break). Returns the number of snapshots."""
        keys = set(self.keys(prefix))
        snaps = sorted(k for k in keys if re.search(r"/s/\d{8}T\d{6}Z$", k))
        if latest_only:
            snaps = snaps[-1:]
        for s in snaps:
            user = s[len(prefix):].split("/s/")[0]
            for line in self.get(s).decode().splitlines():
                if line.startswith("mailbox "):
                    mid = line.split()[1]
                    mkey = f"{prefix}{user}/b/{mid}"
                    assert mkey in keys, f"{s} names {mkey}, which is not there"
                    for mline in self.get(mkey).decode().splitlines():
                        if mline.startswith("msg "):
                            h = mline.split()[1]
                            assert f"{prefix}{user}/m/{h}" in keys, f"{mkey} names message {h}, not there"
        return len(snaps)


@pytest.fixture
def moto_bucket(request, workdir, moto):
    name = "b" + str(abs(hash(request.node.nodeid)) % 10**9) + str(int(time.time() * 1000) % 10**6)
    b = Bucket(request, workdir, moto, name)
    b.s3.create_bucket(Bucket=name)
    return b


@pytest.fixture
def s3s_bucket(request, workdir):
    need("s3s-fs")
    root = workdir / "s3s"
    (root / "backups").mkdir(parents=True)
    port = free_port()
    with open(workdir / "s3s.log", "wb") as log:
        proc = subprocess.Popen(["s3s-fs", "--host", HOST, "--port", str(port), "--access-key", AK,
                                 "--secret-key", SK, str(root)], stdout=log, stderr=subprocess.STDOUT)
    request.addfinalizer(lambda: stop_process(proc))
    wait_for_port(port, proc, workdir / "s3s.log")
    return Bucket(request, workdir, port, "backups")


@pytest.fixture(params=["moto", "s3s-fs"])
def bucket(request):
    return request.getfixturevalue("moto_bucket" if request.param == "moto" else "s3s_bucket")


def dovecot(request, workdir):
    dv = start_dovecot(workdir, workdir / "users", workdir / "mail")
    attach(request.node, "dovecot log", dv.log_text)
    attach(request.node, "dovecot transcript", lambda: "\n".join(dv.transcript))
    request.addfinalizer(dv.stop)
    return dv


def mail(n: int, size: int = 0) -> bytes:
    return crlf(f"From: a{n}@example.org\nTo: demo@example.org\nSubject: message {n}\n"
                f"Message-ID: <m{n}@example.org>\n\nBody {n}.\n" + "x" * size + "\n")


def populate(srv) -> None:
    """Folders, flags, keywords, subscriptions and UID gaps, made by a real server."""
    c = srv.login("demo")
    sep = c.ok('LIST "" ""').data("LIST")[0][2]
    sep = sep.decode() if isinstance(sep, bytes) else sep
    for name in ["Work", f"Work{sep}2026 Q4", "Sent Items", "Bücher"]:
        c.ok(f"CREATE {quote(imap_utf7(name))}")
    c.ok("SUBSCRIBE Work")
    c.ok(f"SUBSCRIBE {quote(imap_utf7('Bücher'))}")
    for i in range(1, 9):
        flags = ["\\Seen", "\\Seen \\Flagged $Label1", "", "\\Answered Junk", "\\Draft",
                 "\\Seen $Forwarded", "NonJunk", "\\Seen"][i - 1]
        append(c, "INBOX", mail(i, size=i * 300), flags=flags, date="17-Jul-2026 02:44:25 -0700")
    append(c, "Work", mail(20), flags="\\Seen work-kw")
    append(c, f"Work{sep}2026 Q4", mail(21, size=70000), flags="\\Flagged")
    append(c, "INBOX", mail(3, size=900))  # the same bytes as another message: one object
    c.ok("SELECT INBOX")
    c.ok("STORE 2,5 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    c.logout()
    a = srv.login("alice@example.org")
    append(a, "INBOX", mail(100), flags="\\Seen")
    a.logout()


def imap_utf7(s: str) -> str:
    out, buf = [], ""
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            if buf:
                import base64
                b = base64.b64encode(buf.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
                out.append("&" + b + "-")
                buf = ""
            out.append("&-" if ch == "&" else ch)
        else:
            buf += ch
    if buf:
        import base64
        b = base64.b64encode(buf.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
        out.append("&" + b + "-")
    return "".join(out)


def imap_view(srv, user: str = "demo") -> dict:
    """What a client caches: per mailbox UIDVALIDITY, UIDNEXT and {UID: (flags, size, date,
    bytes)}, and the subscriptions."""
    c = srv.login(user)
    names = [d[3] if isinstance(d[3], str) else d[3].decode() for d in c.ok('LIST "" "*"').data("LIST")]
    view = {"subscribed": sorted(d[3] if isinstance(d[3], str) else d[3].decode()
                                 for d in c.ok('LSUB "" "*"').data("LSUB"))}
    for name in sorted(names):
        r = c.ok(f"SELECT {quote(name)}")
        codes = r.codes()
        f = c.ok("UID FETCH 1:* (FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[])").fetches() \
            if r.number("EXISTS") and r.number("EXISTS")[-1] else {}
        view[name] = (codes["UIDVALIDITY"], codes.get("UIDNEXT"), {
            int(m["UID"]): (sorted(x for x in m["FLAGS"] if x != "\\Recent"), m["RFC822.SIZE"],
                            m["INTERNALDATE"], m["BODY[]"]) for m in f.values()})
    c.logout()
    return view


def files(root: Path) -> dict:
    """Message files (name → bytes, mtime) and the control files a backup keeps."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if not p.is_file() or "/tmp/" in f"/{rel}":
            continue
        if p.parent.name in ("cur", "new"):
            out[rel] = (p.read_bytes(), int(p.stat().st_mtime))
        elif p.name in CONTROL:
            out[rel] = (p.read_bytes(), None)
    return out


def wipe(workdir: Path) -> None:
    shutil.rmtree(workdir / "mail")
    (workdir / "mail").mkdir()
    chown_tree(workdir / "mail")


def test_backup_wipe_restore_is_byte_identical_and_clients_keep_their_uids(request, workdir, bucket):
    dv = dovecot(request, workdir)
    populate(dv)
    before_view = {u: imap_view(dv, u) for u in ("demo", "alice@example.org")}
    dv.stop()
    before = {u: files(workdir / "mail" / u) for u in ("demo", "alice@example.org")}
    assert len([k for k in before["demo"] if "/cur/" in f"/{k}" or "/new/" in f"/{k}"]) == 9
    out = bucket.run("backup").stderr
    # 9 files, 8 different contents (one message is there twice): 8 objects.
    assert re.search(r"demo: 9 message\(s\) in 5 folder\(s\); uploaded 8 ", out), out
    assert bucket.consistent() == 2

    wipe(workdir)
    bucket.run("restore")
    for u in before:
        assert files(workdir / "mail" / u) == before[u], u
    dv2 = dovecot(request, workdir)
    assert {u: imap_view(dv2, u) for u in before} == before_view
    dv2.stop()
    pm = start_pimap(workdir, workdir / "users", workdir / "mail", as_mail_user=True)
    request.addfinalizer(pm.stop)
    attach(request.node, "pimap log", pm.log_text)
    after = imap_view(pm)
    for name, v in before_view["demo"].items():
        if name == "subscribed":
            assert after[name] == v
        else:
            uids_flags = {u: m[0] for u, m in v[2].items()}
            assert after[name][0] == v[0], name
            assert {u: m[0] for u, m in after[name][2].items()} == uids_flags, name


def test_a_noop_pass_writes_one_object_and_a_flag_change_only_a_manifest(request, workdir, moto_bucket):
    b = moto_bucket
    dv = dovecot(request, workdir)
    populate(dv)
    b.run("backup")
    keys1 = set(b.keys())
    time.sleep(1.1)  # snapshot names have a one-second resolution
    out = b.run("backup").stderr
    keys2 = set(b.keys())
    assert len(keys2 - keys1) == 2 and keys1 <= keys2, keys2 - keys1  # one snapshot per user
    assert re.search(r"demo: 9 message\(s\) .* uploaded 0 \(0 bytes\), 0 manifest\(s\) written, 0 read", out), out

    c = dv.login("demo")
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS (\\Answered $Label2)")
    c.logout()
    time.sleep(1.1)
    out = b.run("backup", "--user", "demo").stderr
    keys3 = set(b.keys())
    new = sorted(keys3 - keys2)
    assert [k.split("/")[2] for k in new] == ["b", "s"], new
    assert re.search(r"uploaded 0 \(0 bytes\), 1 manifest\(s\) written", out), out


def test_incremental_passes_and_restore_at_an_earlier_time(request, workdir, moto_bucket):
    b = moto_bucket
    dv = dovecot(request, workdir)
    populate(dv)
    # The files as the backup reads them (a client's SELECT may make Dovecot rewrite some).
    first_files = files(workdir / "mail" / "demo")
    b.run("backup", "--user", "demo")
    first_view = imap_view(dv)
    time.sleep(1.1)
    t_between = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.1)
    c = dv.login("demo")
    c.ok("SELECT INBOX")
    c.ok("STORE 1 -FLAGS (\\Seen)")
    c.ok("STORE 1 +FLAGS ($Important)")
    c.ok("STORE 3 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    append(c, "INBOX", mail(50, size=5000), flags="\\Flagged")
    c.ok("UNSUBSCRIBE Work")
    c.logout()
    second_files = files(workdir / "mail" / "demo")
    out = b.run("backup", "--user", "demo").stderr
    assert re.search(r"uploaded 1 \(", out), out
    second_view = imap_view(dv)
    dv.stop()
    assert second_view != first_view

    wipe(workdir)
    b.run("restore", "--user", "demo")
    assert files(workdir / "mail" / "demo") == second_files
    wipe(workdir)
    b.run("restore", "--user", "demo", "--at", t_between)
    assert files(workdir / "mail" / "demo") == first_files
    dv2 = dovecot(request, workdir)
    assert imap_view(dv2) == first_view


def test_restore_refuses_a_non_empty_maildir_and_force_moves_it_aside(request, workdir, moto_bucket):
    b = moto_bucket
    dv = dovecot(request, workdir)
    populate(dv)
    dv.stop()
    b.run("backup", "--user", "demo")
    before = files(workdir / "mail" / "demo")
    p = b.run("restore", "--user", "demo", ok=False)
    assert p.returncode == 1 and "is not empty" in p.stderr and "--force" in p.stderr, p.stderr
    marker = workdir / "mail" / "demo" / "cur" / "local-only:2,S"
    marker.write_bytes(b"Subject: kept aside\r\n\r\n")
    b.run("restore", "--user", "demo", "--force")
    assert files(workdir / "mail" / "demo") == before
    aside = list((workdir / "mail").glob("demo.pre-restore-*"))
    assert len(aside) == 1 and (aside[0] / "cur" / "local-only:2,S").exists(), aside


def test_restore_errors_name_what_is_missing_or_damaged(request, workdir, moto_bucket):
    b = moto_bucket
    p = b.run("restore", "--user", "demo", ok=False)
    assert p.returncode == 1 and "no backup of demo" in p.stderr, p.stderr
    p = b.run("restore", ok=False)
    assert p.returncode == 1 and "nothing to restore" in p.stderr, p.stderr
    dv = dovecot(request, workdir)
    populate(dv)
    dv.stop()
    b.run("backup", "--user", "demo")
    manifests = [k for k in b.keys("pi1/demo/b/")]
    # A damaged manifest: refused before anything is written.
    original = b.get(manifests[0])
    b.s3.put_object(Bucket=b.name, Key=manifests[0],
                    Body=original + b"msg " + b"a" * 64 + b" 1 1 cur 1 ../../escaped\n")
    wipe(workdir)
    p = b.run("restore", "--user", "demo", ok=False)
    assert p.returncode == 1 and manifests[0] in p.stderr, p.stderr
    assert not (workdir / "mail" / "demo").exists()
    b.s3.put_object(Bucket=b.name, Key=manifests[0], Body=original)
    # A missing message and a corrupt one: the rest is restored, both are named.
    msgs = b.keys("pi1/demo/m/")
    b.s3.delete_object(Bucket=b.name, Key=msgs[0])
    b.s3.put_object(Bucket=b.name, Key=msgs[1], Body=b"not the message")
    p = b.run("restore", "--user", "demo", ok=False)
    assert p.returncode == 1 and "2 message(s) could not be restored" in p.stderr, p.stderr
    restored = [x for x in files(workdir / "mail" / "demo") if "/cur/" in f"/{x}" or "/new/" in f"/{x}"]
    assert 6 <= len(restored) <= 7, restored


def test_kill_9_during_a_backup_leaves_every_snapshot_whole(request, workdir, moto_bucket):
    b = moto_bucket
    root = workdir / "mail" / "demo"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(400):
        (root / "cur" / f"{1700000000 + i}.M{i}P1.host,S=2000:2,S").write_bytes(mail(i, size=1900))
    chown_tree(workdir / "mail")
    b.run("backup", "--user", "demo")
    for i in range(400, 1400):
        (root / "new" / f"{1700000000 + i}.M{i}P1.host").write_bytes(mail(i, size=1900))
    chown_tree(workdir / "mail")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}
    kills = 0
    for attempt in range(3):
        before = len(b.keys("pi1/demo/m/"))
        proc = subprocess.Popen(b.cmd("backup", "--user", "demo", "--s3-concurrency", "2"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(b.keys("pi1/demo/m/")) < before + 50 and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert b.consistent() >= 1
    assert kills >= 1
    b.run("backup", "--user", "demo")
    assert b.consistent() >= 2
    assert len(b.keys("pi1/demo/m/")) == 1400
    before = files(root)
    wipe(workdir)
    b.run("restore", "--user", "demo")
    assert files(workdir / "mail" / "demo") == before


def test_retention_prunes_expunged_mail_and_old_snapshots(request, workdir, moto_bucket):
    b = moto_bucket
    dv = dovecot(request, workdir)
    populate(dv)
    b.run("backup", "--user", "demo", "--backup-retention", "2s")
    objects = set(b.keys("pi1/demo/m/"))
    c = dv.login("demo")
    c.ok("SELECT INBOX")
    c.ok("STORE 1:* +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    c.logout()
    time.sleep(1.1)
    b.run("backup", "--user", "demo", "--backup-retention", "2s")
    # Within the retention: every message is still there.
    assert objects <= set(b.keys("pi1/demo/m/"))
    time.sleep(3.1)
    out = b.run("backup", "--user", "demo", "--backup-retention", "2s").stderr
    # The first snapshot goes; the second (after the expunge) is the state at the cutoff.
    assert re.search(r"pruned 1 snapshot\(s\) and 7 object\(s\)", out), out
    assert len(b.keys("pi1/demo/m/")) == 2  # the two messages of Work and Work.2026 Q4
    assert b.consistent() >= 2
    wipe(workdir)
    dv.stop()
    b.run("restore", "--user", "demo")


def test_bad_configuration_gets_a_clear_error(workdir, moto_bucket):
    b = moto_bucket
    p = subprocess.run([str(PIMAP_BIN), "backup", "--data-dir", str(b.data)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "no --backup-bucket" in p.stderr, p.stderr
    p = b.run("restore", "--at", "yesterday", ok=False)
    assert p.returncode == 2 and "expected a time" in p.stderr, p.stderr
    p = b.run("backup", "--user", "nobody", ok=False)
    assert p.returncode == 1 and "nobody" in p.stderr, p.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": "wrong"}
    wrong = b.cmd("backup")
    wrong[wrong.index("--backup-bucket") + 1] = "no-such-bucket"
    (workdir / "mail" / "demo" / "cur").mkdir(parents=True, exist_ok=True)
    chown_tree(workdir / "mail")
    p = subprocess.run(wrong, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 1 and "NoSuchBucket" in p.stderr, p.stderr


def test_serve_backs_up_every_interval_as_the_mail_user(request, workdir, moto_bucket):
    """`serve --backup-interval`: passes run inside the server after its privilege drop (the
    state and lock in the data dir belong to the mail user), new mail shows up in the next
    snapshot, and the metrics count the passes."""
    b = moto_bucket
    http = free_port()
    data = workdir / "pimap-data"
    data.mkdir()
    args = ["--backup-interval", "1s", "--backup-bucket", b.name, "--backup-prefix", "pi1",
            "--s3-endpoint", f"http://{HOST}:{b.port}", "--http-listen", f"{HOST}:{http}"]
    os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"] = AK, SK
    try:
        if os.geteuid() == 0:
            # A data dir the mail user cannot write: a start-up error, not failing passes.
            with pytest.raises(RuntimeError, match="backups keep their state and lock"):
                start_pimap(workdir, workdir / "users", workdir / "mail", extra=args)
            chown_tree(data)
        srv = start_pimap(workdir, workdir / "users", workdir / "mail", extra=args)
    finally:
        del os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    attach(request.node, "pimap log", srv.log_text)
    request.addfinalizer(srv.stop)
    c = srv.login("demo")
    append(c, "INBOX", mail(7), flags="\\Seen")

    def has_message() -> bool:
        return bool(b.keys("pi1/demo/m/"))
    deadline = time.monotonic() + 30
    while not has_message():
        assert time.monotonic() < deadline, srv.log_text()
        time.sleep(0.2)
    deadline = time.monotonic() + 30
    while True:
        import urllib.request
        text = urllib.request.urlopen(f"http://{HOST}:{http}/metrics", timeout=10).read().decode()
        m = re.search(r'^pimap_backup_passes_total\{result="ok"\} (\d+)$', text, re.M)
        if m and int(m.group(1)) >= 2:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert re.search(r"^pimap_backup_uploaded_objects_total [1-9]", text, re.M), text
    assert 'pimap_backup_passes_total{result="error"} 0' in text, text
    for f in data.glob("backup-*"):
        assert f.stat().st_uid == MAIL_UID, f
    assert b.consistent() >= 1
    assert "backup: demo: 1 message(s)" in srv.log_text(), srv.log_text()
    assert "ERROR [pimap::backup" not in srv.log_text(), srv.log_text()


def test_a_file_that_no_longer_matches_its_cached_hash_is_never_stored_under_it(workdir, moto_bucket):
    """The hash cache is trusted only as far as it can be checked: a file rewritten in place
    (same name and size, not how Maildir works, but disks and tools do it) whose old object is
    gone is not uploaded under the old hash; the pass fails saying so, and the next one reads
    every file again and stores the right bytes."""
    b = moto_bucket
    root = workdir / "mail" / "demo"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    f = root / "cur" / "1700000000.M1P1.host,S=100:2,S"
    f.write_bytes(b"A" * 100)
    (root / "cur" / "1700000001.M2P1.host:2,").write_bytes(b"B" * 50)
    chown_tree(workdir / "mail")
    b.run("backup", "--user", "demo")
    [old] = [k for k in b.keys("pi1/demo/m/") if b.get(k) == b"A" * 100]
    f.write_bytes(b"C" * 100)
    b.s3.delete_object(Bucket=b.name, Key=old)
    time.sleep(1.1)
    p = b.run("backup", "--user", "demo", ok=False)
    assert p.returncode == 1 and "not the content that was hashed" in p.stderr, p.stderr
    assert "reads every file again" in p.stderr, p.stderr
    assert old not in b.keys("pi1/demo/m/")
    time.sleep(1.1)
    b.run("backup", "--user", "demo")
    assert sorted(b.get(k) for k in b.keys("pi1/demo/m/")) == [b"B" * 50, b"C" * 100]
    assert b.consistent(latest_only=True) == 1
    wipe(workdir)
    b.run("restore", "--user", "demo")
    assert (workdir / "mail" / "demo" / "cur" / f.name).read_bytes() == b"C" * 100


def test_memory_stays_bounded_with_a_big_message(workdir, moto_bucket):
    """A 48 MiB message is streamed both ways: the peak RSS of `backup` and of `restore` stays
    far below the message's size."""
    b = moto_bucket
    root = workdir / "mail" / "demo"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    big = root / "cur" / "1700000000.M1P1.host:2,S"
    with open(big, "wb") as f:
        f.write(b"Subject: big\r\n\r\n")
        chunk = os.urandom(1 << 20)
        for _ in range(48):
            f.write(chunk)
    chown_tree(workdir / "mail")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}

    def peak_rss_mib(*args: str, prefix: str = "pi1") -> float:
        # GNU time: a child's ru_maxrss would include this (big) Python process it forked from.
        p = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M", *b.cmd(*args, prefix=prefix)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        return int(re.findall(r"maxrss=(\d+)", p.stderr)[-1]) / 1024
    if not os.path.exists("/usr/bin/time"):
        pytest.fail("GNU time is not installed (scripts/install-test-deps.sh installs it)")
    backup_rss = peak_rss_mib("backup", "--user", "demo")
    want = big.read_bytes()
    wipe(workdir)
    restore_rss = peak_rss_mib("restore", "--user", "demo")
    assert (workdir / "mail" / "demo" / "cur" / big.name).read_bytes() == want
    # The 48 MiB message costs no more than a few buffers (64 KiB chunks, HTTP buffers, one
    # thread per upload or download).
    assert backup_rss < 20 and restore_rss < 20, (backup_rss, restore_rss)


def test_progress_on_a_terminal_and_one_run_at_a_time(workdir, moto_bucket):
    """On a terminal, `backup` and `restore` show `done/total`; with its stderr not a terminal
    nothing but log lines. A second run while one holds the lock says so and exits 1."""
    import fcntl
    import pty
    b = moto_bucket
    root = workdir / "mail" / "demo"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(30):
        (root / "cur" / f"{1700000000 + i}.M{i}P1.host:2,S").write_bytes(mail(i))
    chown_tree(workdir / "mail")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
    env |= {"AWS_ACCESS_KEY_ID": AK, "AWS_SECRET_ACCESS_KEY": SK}
    master, slave = pty.openpty()
    p = subprocess.run(b.cmd("backup", "--user", "demo"), env=env, stderr=slave, stdout=subprocess.DEVNULL,
                       timeout=120)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.returncode == 0, out
    assert b"demo: 30/30 messages" in out, out
    assert b"/30 messages" not in b"\n".join(x.encode() for x in b.logs)

    [lock] = b.data.glob("backup-*.lock")
    with open(lock, "r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        p = b.run("backup", "--user", "demo", ok=False)
    assert p.returncode == 1 and "another backup of this bucket is running" in p.stderr, p.stderr
    b.run("backup", "--user", "demo")


def test_encrypted_round_trip_the_bucket_never_sees_plaintext_and_a_wrong_key_is_clear(
        request, workdir, moto_bucket):
    b = moto_bucket
    need("age")
    key, other = b.data / "backup.key", b.data / "other.key"
    for k in (key, other):
        p = subprocess.run([str(PIMAP_BIN), "backup-key", str(k)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and p.stdout.startswith("age1"), p.stderr
        assert k.stat().st_mode & 0o777 == 0o600
        os.chown(k, MAIL_UID, MAIL_GID)
    p = subprocess.run([str(PIMAP_BIN), "backup-key", str(key)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "exists" in p.stderr, p.stderr
    dv = dovecot(request, workdir)
    populate(dv)
    dv.stop()
    before = files(workdir / "mail" / "demo")
    b.run("backup", "--user", "demo", "--backup-key-file", str(key))
    keys = b.keys("pi1/")
    import hashlib
    hashes = {hashlib.sha256(data).hexdigest() for data, _ in before.values()}
    for k in keys:
        data = b.get(k)
        assert data.startswith(b"age-encryption.org/v1\n"), k
        assert b"Subject: message" not in data and b"dovecot" not in data, k
        assert k.rsplit("/", 1)[1] not in hashes, k  # IDs are keyed, not the content's hash
    # A standard age file: the age CLI decrypts a message object with the same key file.
    some = next(k for k in keys if "/m/" in k)
    (workdir / "obj.age").write_bytes(b.get(some))
    p = subprocess.run(["age", "-d", "-i", str(key), str(workdir / "obj.age")], capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and p.stdout in {data for data, _ in before.values()}, p.stderr

    # Another key, or none, on the same prefix: refused before anything is uploaded.
    for wrong in (["--backup-key-file", str(other)], []):
        p = b.run("backup", "--user", "demo", *wrong, ok=False)
        assert p.returncode == 1 and "another --backup-key-file" in p.stderr, p.stderr
    assert sorted(b.keys("pi1/")) == sorted(keys)

    wipe(workdir)
    p = b.run("restore", "--user", "demo", "--backup-key-file", str(other), ok=False)
    assert p.returncode == 1 and "wrong key" in p.stderr, p.stderr
    p = b.run("restore", "--user", "demo", ok=False)
    assert p.returncode == 1 and "pi1/demo/s/" in p.stderr, p.stderr
    assert not (workdir / "mail" / "demo").exists()
    b.run("restore", "--user", "demo", "--backup-key-file", str(key))
    assert files(workdir / "mail" / "demo") == before
