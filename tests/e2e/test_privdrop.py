"""Privilege drop: started as root, pimap binds, reads the users file, then runs as
`--run-as UID:GID` — every thread — and everything it creates (Maildirs, messages, the S3
sync's deliveries) belongs to that user with modes 0700 / 0600. `--run-as 0:0` is refused.

These tests need root (the CI and the development machines run them as root); as another
user they are skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (HOST, MAIL_GID, MAIL_UID, PIMAP_BIN, attach, free_port, start_pimap, stop_process,
                      wait_for_port)
from imapwire import Conn

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to test dropping it")


def ids_of_every_thread(pid: int) -> list[tuple[list[int], list[int], str]]:
    """(Uid, Gid, Groups) of each thread, from /proc/PID/task/*/status."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        uid = [int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()]
        gid = [int(x) for x in re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()]
        groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).strip()
        out.append((uid, gid, groups))
    return out


def owner_and_mode(p: Path) -> tuple[int, int, int]:
    st = p.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_runs_as_the_configured_user_and_creates_private_files(request, workdir):
    srv = start_pimap(workdir, workdir / "users", workdir / "mail")
    request.addfinalizer(srv.stop)
    attach(request.node, "pimap log", srv.log_text)
    c = srv.login("demo")
    c.ok("CREATE Projects")
    c.ok("APPEND INBOX ", b"Subject: owned\r\n\r\nby the mail user\r\n")
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS (\\Seen)")
    threads = ids_of_every_thread(srv.proc.pid)
    assert len(threads) >= 2
    for uid, gid, groups in threads:
        assert uid == [MAIL_UID] * 4, threads
        assert gid == [MAIL_GID] * 4, threads
        assert groups == "", threads
    assert f"dropped privileges: now running as {MAIL_UID}:{MAIL_GID}" in srv.log_text()

    root = srv.maildir("demo")
    dirs = [root, root / "cur", root / "new", root / "tmp", root / ".Projects", root / ".Projects" / "cur"]
    for d in dirs:
        assert owner_and_mode(d) == (MAIL_UID, MAIL_GID, 0o700), d
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.parent.name == "cur" for p in files), files
    for f in files:
        assert owner_and_mode(f) == (MAIL_UID, MAIL_GID, 0o600), f


def test_default_run_as_5000_with_a_fresh_data_dir(request, workdir):
    """No --run-as: 5000:5000. The new data dir is given to that user, and so is the demo users
    file pimap generates as root (it reads it again after the drop: SIGHUP, edits)."""
    port = free_port()
    log = workdir / "serve.log"
    data = workdir / "pd"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(PIMAP_BIN), "serve", "--data-dir", str(data), "--imap-listen",
                                 f"{HOST}:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={k: v for k, v in os.environ.items()
                                                               if not k.startswith("PIMAP_")})
    request.addfinalizer(lambda: stop_process(proc))
    attach(request.node, "serve log", lambda: log.read_text())
    wait_for_port(port, proc, log)
    # pimap binds, then drops: the port can answer before the drop is done.
    deadline = time.monotonic() + 10
    while "dropped privileges" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    for uid, gid, groups in ids_of_every_thread(proc.pid):
        assert (uid, gid, groups) == ([5000] * 4, [5000] * 4, "")
    m = re.search(r"demo account: user demo, password (\S+)", log.read_text())
    assert m
    c = Conn(HOST, port)
    c.login("demo", m.group(1))
    c.ok("APPEND INBOX ", b"Subject: x\r\n\r\ny\r\n")
    c.logout()
    assert owner_and_mode(data) == (5000, 5000, 0o700)
    assert owner_and_mode(data / "mail" / "demo") == (5000, 5000, 0o700)
    msgs = list((data / "mail" / "demo").glob("*/*,S=*"))
    assert msgs and all(owner_and_mode(p) == (5000, 5000, 0o600) for p in msgs), msgs
    assert owner_and_mode(data / "users") == (5000, 5000, 0o600)
    assert "not readable" not in log.read_text() and "Permission denied" not in log.read_text()


def test_a_given_root_only_users_file_is_read_before_the_drop(request, workdir):
    """`--users` naming a file only root may read (systemd LoadCredential): the users are read
    before the drop and kept; only reloading needs a restart, which is logged, not an error."""
    (workdir / "users").chmod(0o600)
    srv = start_pimap(workdir, workdir / "users", workdir / "mail")
    request.addfinalizer(srv.stop)
    attach(request.node, "pimap log", srv.log_text)
    srv.login("demo").ok("SELECT INBOX")
    assert f"users file {workdir / 'users'} is not readable as {MAIL_UID}:{MAIL_GID}" in srv.log_text()


@pytest.mark.parametrize("bad", ["0:0", "0:5000", "5000:0", "root"])
def test_run_as_root_is_a_configuration_error(workdir, bad):
    p = subprocess.run([str(PIMAP_BIN), "serve", "--data-dir", str(workdir / "pd"), "--imap-listen",
                        f"{HOST}:{free_port()}", "--users", str(workdir / "users"), "--run-as", bad],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "refusing to serve mail as root" in p.stderr, p.stderr


def test_not_root_means_no_drop(request, workdir):
    srv = start_pimap(workdir, workdir / "users", workdir / "mail", as_mail_user=True)
    request.addfinalizer(srv.stop)
    srv.login("demo").ok("SELECT INBOX")
    assert "not started as root" in srv.log_text()
    for uid, _gid, _groups in ids_of_every_thread(srv.proc.pid):
        assert uid == [MAIL_UID] * 4


SES = """Return-Path: <sender@sender.example>\r
Received: from mx.sender.example by inbound-smtp.us-east-1.amazonaws.com with SMTP id {id}\r
 for alice@example.org; Mon, 23 Nov 2026 09:00:00 +0000 (UTC)\r
X-SES-Spam-Verdict: PASS\r
X-SES-Virus-Verdict: PASS\r
From: Sender <sender@sender.example>\r
To: alice@example.org\r
Subject: synced {id}\r
Message-ID: <{id}@sender.example>\r
Date: Mon, 23 Nov 2026 09:00:00 +0000\r
\r
Hello.\r
"""


def test_s3_sync_thread_delivers_as_the_mail_user(request, workdir):
    if shutil.which("s3s-fs") is None:
        pytest.skip("s3s-fs is not installed (scripts/install-s3-tools.sh)")
    s3data = workdir / "s3"
    (s3data / "mail" / "inbound").mkdir(parents=True)
    (s3data / "mail" / "inbound" / "msg-1").write_text(SES.format(id="msg-1"))
    s3port = free_port()
    s3log = open(workdir / "s3s.log", "wb")
    s3 = subprocess.Popen(["s3s-fs", "--host", HOST, "--port", str(s3port), "--access-key", "AK",
                           "--secret-key", "SK", str(s3data)], stdout=s3log, stderr=subprocess.STDOUT)
    request.addfinalizer(lambda: stop_process(s3))
    wait_for_port(s3port, s3, workdir / "s3s.log")
    creds = workdir / "credentials"
    creds.write_text("[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    creds.chmod(0o640)
    os.chown(creds, 0, MAIL_GID)  # root's file, readable by the mail group
    # The sync's ledger lives in the data dir: the mail user's (a root-owned one is a start-up
    # error, see below).
    (workdir / "pimap-data").mkdir()
    os.chown(workdir / "pimap-data", MAIL_UID, MAIL_GID)
    srv = start_pimap(workdir, workdir / "users", workdir / "mail", extra=[
        "--sync-interval", "1s", "--s3-bucket", "mail", "--s3-prefix", "inbound/",
        "--s3-endpoint", f"http://{HOST}:{s3port}", "--s3-credentials-file", str(creds),
        "--local-domain", "example.org", "--postmaster", "demo"])
    request.addfinalizer(srv.stop)
    attach(request.node, "pimap log", srv.log_text)
    new = srv.maildir("alice@example.org") / "new"
    deadline = time.monotonic() + 15
    while not (new.is_dir() and any(new.iterdir())):
        assert time.monotonic() < deadline, srv.log_text()
        time.sleep(0.1)
    for p in new.iterdir():
        assert owner_and_mode(p) == (MAIL_UID, MAIL_GID, 0o600), p
    assert owner_and_mode(new) == (MAIL_UID, MAIL_GID, 0o700)
    ledgers = list((workdir / "pimap-data").glob("s3-sync-*.ledger"))
    assert ledgers and all(owner_and_mode(p)[0] == MAIL_UID for p in ledgers), ledgers
    # The sync thread runs as the mail user too.
    for uid, gid, _ in ids_of_every_thread(srv.proc.pid):
        assert uid == [MAIL_UID] * 4 and gid == [MAIL_GID] * 4


def test_s3_sync_with_a_root_only_users_file_is_a_clear_start_up_error(workdir):
    users = workdir / "users"
    users.chmod(0o600)
    creds = workdir / "credentials"
    creds.write_text("[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    creds.chmod(0o644)
    p = subprocess.run([str(PIMAP_BIN), "serve", "--data-dir", str(workdir / "pd"), "--imap-listen",
                        f"{HOST}:{free_port()}", "--users", str(users), "--run-as", f"{MAIL_UID}:{MAIL_GID}",
                        "--mail-location", f"{workdir}/mail/%u", "--sync-interval", "1m",
                        "--s3-bucket", "b", "--s3-endpoint", "http://127.0.0.1:9", "--s3-credentials-file",
                        str(creds)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "the S3 sync reads the users file" in p.stderr and "cannot read it" in p.stderr, p.stderr


def test_s3_sync_with_a_root_owned_state_dir_is_a_clear_start_up_error(workdir):
    creds = workdir / "credentials"
    creds.write_text("[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    creds.chmod(0o644)
    (workdir / "pd").mkdir()
    p = subprocess.run([str(PIMAP_BIN), "serve", "--data-dir", str(workdir / "pd"), "--imap-listen",
                        f"{HOST}:{free_port()}", "--users", str(workdir / "users"),
                        "--run-as", f"{MAIL_UID}:{MAIL_GID}", "--mail-location", f"{workdir}/mail/%u",
                        "--sync-interval", "1m", "--s3-bucket", "b", "--s3-endpoint", "http://127.0.0.1:9",
                        "--s3-credentials-file", str(creds)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "the S3 sync keeps its state in" in p.stderr and "cannot write there" in p.stderr, p.stderr
