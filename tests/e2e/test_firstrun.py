"""First run: the README's quick start, `pimap serve` with no flags, works from any directory,
as root and as a normal user. Started as root it still drops to `--run-as` (5000:5000): the
data dir it creates belongs to that user, the demo users file too, and a data dir below a
directory only root may enter (root's home, anything `mktemp -d` made) is entered before the
drop. A drop that would leave pimap unable to use its data dir, mail root or users file is a
start-up error naming the path and what to do, never a server that fails every login.

Each test runs pimap from a fresh mode-0700 directory, like a clone in /root. The quick start
listens on the default 127.0.0.1:1143, so those tests wait for that port to be free.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import HOST, MAIL_GID, MAIL_UID, PIMAP_BIN, attach, free_port, stop_process, wait_for_port
from imapwire import Conn

DEFAULT_PORT = 1143  # the quick start's --imap-listen default
DEFAULT_RUN_AS = (5000, 5000)
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (the CI runs the suite as root)")

MESSAGE = b"From: a@example.org\r\nTo: demo@example.org\r\nSubject: first run\r\n\r\nHello from a 0700 dir.\r\n"


def owner_and_mode(p: Path) -> tuple[int, int, int]:
    st = p.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def private_dir(workdir: Path, name: str, owner: tuple[int, int] | None = None) -> Path:
    """A fresh 0700 directory (like /root, or what `mktemp -d` makes), owned by `owner`."""
    d = workdir / name
    d.mkdir()
    d.chmod(0o700)
    if owner and IS_ROOT:
        os.chown(d, *owner)
    return d


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIMAP_", "AWS_"))}
    env["TZ"] = "UTC"
    return env


def wait_until_port_free(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
                return
            except OSError as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{HOST}:{port} (the quick start's default) stays in use: {e}")
        time.sleep(0.2)


def as_user(uid: int, gid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


class Serve:
    """`pimap serve ARGS` from `cwd`; stdout and stderr go to one log."""

    def __init__(self, request, cwd: Path, args: list[str] = (), port: int = DEFAULT_PORT,
                 prefix: list[str] = (), env: dict[str, str] | None = None, name: str = "serve"):
        if port == DEFAULT_PORT:
            wait_until_port_free(port)
        self.port = port
        self.log = cwd.parent / f"{name}.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*prefix, str(PIMAP_BIN), "serve", *args], cwd=cwd,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env or clean_env())
        request.addfinalizer(self.stop)
        attach(request.node, f"{name} log", self.text)
        wait_for_port(port, self.proc, self.log)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.proc)

    def demo_password(self) -> str:
        m = re.findall(r"demo account: user demo, password (\S+)", self.text())
        assert len(m) == 1, self.text()
        return m[0]

    def conn(self) -> Conn:
        return Conn(HOST, self.port)


def append_and_fetch_back(c: Conn) -> None:
    r = c.ok("APPEND INBOX ", MESSAGE)
    assert r.code and r.code.startswith("APPENDUID"), r.text
    c.ok("SELECT INBOX")
    got = c.ok("FETCH 1 BODY.PEEK[]").fetches()[1]["BODY[]"]
    assert got == MESSAGE


def thread_uids(pid: int) -> set[tuple[int, int]]:
    out = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        out |= {(int(u), int(g)) for u, g in zip(uids, gids)}
    return out


def start_dir(workdir: Path, where: str, owner: tuple[int, int] | None = None) -> Path:
    """The directory the quick start runs in: a clone (mode 0755, as git makes it) inside a 0700
    home, or a 0700 directory itself (`mktemp -d`)."""
    home = private_dir(workdir, "home", owner)
    if where == "0700 dir":
        return home
    clone = home / "pimap"
    clone.mkdir()
    clone.chmod(0o755)
    if owner and IS_ROOT:
        os.chown(clone, *owner)
    return clone


WHERE = ["clone in a 0700 home", "0700 dir"]


@needs_root
@pytest.mark.parametrize("where", WHERE)
def test_readme_first_command_as_root_from_a_0700_directory(request, workdir, where):
    """`pimap serve`, no flags, as root, cwd a clone in a 0700 home or a fresh 0700 dir: the demo
    login works, APPEND and FETCH round-trip, SIGHUP reloads the users file, and a second start
    says how to get a new demo password."""
    home = start_dir(workdir, where)
    srv = Serve(request, home)
    password = srv.demo_password()
    c = srv.conn()
    c.login("demo", password)
    append_and_fetch_back(c)
    c.logout()
    assert thread_uids(srv.proc.pid) == {DEFAULT_RUN_AS}
    log = srv.text()
    assert "not readable" not in log and "Permission denied" not in log, log

    data = home / "pimap-data"
    assert owner_and_mode(data) == (*DEFAULT_RUN_AS, 0o700)
    assert owner_and_mode(data / "users") == (*DEFAULT_RUN_AS, 0o600)
    assert owner_and_mode(data / "mail" / "demo") == (*DEFAULT_RUN_AS, 0o700)
    msgs = list((data / "mail" / "demo").glob("cur/*")) + list((data / "mail" / "demo").glob("new/*"))
    assert msgs and all(owner_and_mode(p) == (*DEFAULT_RUN_AS, 0o600) for p in msgs), msgs
    # The 0700 is untouched: nothing was opened up to make this work.
    assert owner_and_mode(workdir / "home") == (0, 0, 0o700)

    # SIGHUP: a user added to the users file (appending keeps its owner) can log in.
    h = subprocess.run([str(PIMAP_BIN), "pw", "-p", "second-Secret-2"], capture_output=True, text=True,
                       check=True).stdout.strip()
    with open(data / "users", "a") as f:
        f.write(f"second:{h}::::::\n")
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reloaded (2 users)" not in srv.text():
        assert time.monotonic() < deadline, srv.text()
        time.sleep(0.05)
    c = srv.conn()
    c.login("second", "second-Secret-2")
    c.ok("SELECT INBOX")
    c.logout()
    srv.stop()

    # A second start: no new password, but the log says how to get one.
    again = Serve(request, home, name="serve-again")
    log = again.text()
    assert "demo account:" not in log
    hint = [line for line in log.splitlines() if "demo" in line and " pw" in line]
    assert hint, log
    assert str(data / "users") in hint[0] or "pimap-data/users" in hint[0], hint
    c = again.conn()
    c.login("demo", password)
    c.ok("SELECT INBOX")
    c.logout()
    # Follow the hint: `pimap pw`, its hash in place of demo's, SIGHUP.
    h = subprocess.run([str(PIMAP_BIN), "pw", "-p", "new-demo-Secret-3"], capture_output=True, text=True,
                       check=True).stdout.strip()
    text = (data / "users").read_text()
    with open(data / "users", "w") as f:  # in place: owner and mode stay
        f.write(re.sub(r"^demo:[^:]*:", lambda _: f"demo:{h}:", text, flags=re.M))
    again.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while again.text().count("reloaded (2 users)") < 1:
        assert time.monotonic() < deadline, again.text()
        time.sleep(0.05)
    c = again.conn()
    assert c.command(f'LOGIN "demo" "{password}"').status == "NO"
    c = again.conn()
    c.login("demo", "new-demo-Secret-3")
    c.logout()

    # `pimap check`, no flags, from the same directory: the same view as serve, exit 0.
    p = subprocess.run([str(PIMAP_BIN), "check"], cwd=home, capture_output=True, text=True, timeout=60,
                       env=clean_env(), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert "demo: mail in" in p.stdout and "/proc/self" not in p.stdout, p.stdout


@pytest.mark.parametrize("where", WHERE)
def test_readme_first_command_as_a_normal_user_from_a_0700_directory(request, workdir, where):
    """The same quick start as an unprivileged user (the mail test user when the suite runs
    as root): nothing to drop, everything belongs to that user."""
    owner = (MAIL_UID, MAIL_GID) if IS_ROOT else (os.getuid(), os.getgid())
    home = start_dir(workdir, where, owner)
    srv = Serve(request, home, prefix=as_user(*owner) if IS_ROOT else [])
    c = srv.conn()
    c.login("demo", srv.demo_password())
    append_and_fetch_back(c)
    c.logout()
    assert "not started as root" in srv.text()
    assert thread_uids(srv.proc.pid) == {owner}
    assert owner_and_mode(home / "pimap-data" / "users") == (*owner, 0o600)


S3_MESSAGE = """Return-Path: <sender@sender.example>\r
Received: from mx.sender.example by inbound-smtp.us-east-1.amazonaws.com with SMTP id m1\r
 for demo@example.org; Mon, 23 Nov 2026 09:00:00 +0000 (UTC)\r
From: Sender <sender@sender.example>\r
To: demo@example.org\r
Subject: synced into a 0700 dir\r
Message-ID: <m1@sender.example>\r
\r
Hello.\r
"""


@needs_root
@pytest.mark.parametrize("where", WHERE)
def test_s3_sync_in_serve_with_the_default_data_dir_as_root_from_a_0700_directory(request, workdir, where):
    """`serve` with only the sync's flags, as root, from a 0700 dir: the sync thread (running as
    5000:5000) keeps its ledger in the entered data dir and delivers into demo's Maildir."""
    if shutil.which("s3s-fs") is None:
        pytest.skip("s3s-fs is not installed (scripts/install-test-deps.sh)")
    s3data = workdir / "s3"
    (s3data / "mail" / "inbound").mkdir(parents=True)
    (s3data / "mail" / "inbound" / "m1").write_text(S3_MESSAGE)
    s3port = free_port()
    with open(workdir / "s3s.log", "wb") as s3log:
        s3 = subprocess.Popen(["s3s-fs", "--host", HOST, "--port", str(s3port), "--access-key", "AK",
                               "--secret-key", "SK", str(s3data)], stdout=s3log, stderr=subprocess.STDOUT)
    request.addfinalizer(lambda: stop_process(s3))
    wait_for_port(s3port, s3, workdir / "s3s.log")

    home = start_dir(workdir, where)
    env = clean_env() | {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK"}
    port = free_port()
    srv = Serve(request, home, port=port, env=env, args=[
        "--imap-listen", f"{HOST}:{port}", "--sync-interval", "1s", "--s3-bucket", "mail",
        "--s3-prefix", "inbound/", "--s3-endpoint", f"http://{HOST}:{s3port}", "--deliver-to", "demo"])
    data = home / "pimap-data"
    new = data / "mail" / "demo" / "new"
    deadline = time.monotonic() + 20
    # The pass's summary ("s3 sync: ...") is logged after its deliveries: wait for both.
    while not (new.is_dir() and any(new.iterdir()) and "s3 sync" in srv.text()):
        assert time.monotonic() < deadline, srv.text()
        time.sleep(0.1)
    assert "Permission denied" not in srv.text(), srv.text()
    ledgers = list(data.glob("s3-sync-*.ledger"))
    assert ledgers and all(owner_and_mode(p)[:2] == DEFAULT_RUN_AS for p in ledgers), ledgers
    c = srv.conn()
    c.login("demo", srv.demo_password())
    c.ok("SELECT INBOX")
    body = c.ok("FETCH 1 BODY.PEEK[]").fetches()[1]["BODY[]"]
    assert b"synced into a 0700 dir" in body
    c.logout()


def start_up_error(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([str(PIMAP_BIN), *args], cwd=cwd, capture_output=True, text=True, timeout=20,
                       env=clean_env(), stdin=subprocess.DEVNULL)
    assert p.returncode != 0, (p.stdout, p.stderr)
    return p


@needs_root
@pytest.mark.parametrize("owner", ["root", "another user"])
def test_explicit_run_as_that_cannot_reach_the_data_dir_is_a_start_up_error(workdir, owner):
    """An existing data dir the run-as user may not enter: `serve` exits non-zero before
    serving, naming the directory and the fix; `check` says the same."""
    data = workdir / "pd"
    data.mkdir(mode=0o700)
    data.chmod(0o700)
    if owner == "another user":
        os.chown(data, *DEFAULT_RUN_AS)  # left by a run with the default --run-as
    port = free_port()
    args = ["--data-dir", str(data), "--imap-listen", f"{HOST}:{port}", "--run-as", f"{MAIL_UID}:{MAIL_GID}"]
    p = start_up_error(workdir, "serve", *args)
    assert f"data dir {data}" in p.stderr, p.stderr
    assert f"chown -R {MAIL_UID}:{MAIL_GID} {data}" in p.stderr, p.stderr
    with socket.socket() as s:  # it never served
        assert s.connect_ex((HOST, port)) != 0
    p = start_up_error(workdir, "check", *args)
    assert f"data dir {data}" in p.stderr and "chown" in p.stderr, p.stderr


@needs_root
def test_explicit_mail_root_the_run_as_user_cannot_reach_is_a_start_up_error(workdir):
    vault = private_dir(workdir, "vault")
    (vault / "mail").mkdir()
    args = ["--data-dir", str(workdir / "pd"), "--users", str(workdir / "users"), "--imap-listen",
            f"{HOST}:{free_port()}", "--run-as", f"{MAIL_UID}:{MAIL_GID}", "--mail-location",
            f"{vault}/mail/%u"]
    p = start_up_error(workdir, "serve", *args)
    assert f"mail root {vault}/mail" in p.stderr and "Permission denied" in p.stderr, p.stderr
    p = start_up_error(workdir, "check", *args)
    assert f"mail root {vault}/mail" in p.stderr, p.stderr


@needs_root
@pytest.mark.parametrize("where", WHERE)
def test_default_users_file_the_run_as_user_cannot_read_is_a_start_up_error(workdir, where):
    """A DATA_DIR/users that only root can read (as an older pimap left it): pimap re-reads it
    on SIGHUP and on each change, so after the drop that is an error with the fix, not a
    server that silently stops seeing user changes."""
    home = start_dir(workdir, where)
    data = home / "pimap-data"
    data.mkdir(mode=0o700)
    os.chown(data, *DEFAULT_RUN_AS)
    users = data / "users"
    users.write_text("demo:{PLAIN}x::::::\n")
    users.chmod(0o600)
    p = start_up_error(home, "serve", "--imap-listen", f"{HOST}:{free_port()}")
    assert f"users file {users}" in p.stderr, p.stderr
    assert f"chown 5000:5000 {users}" in p.stderr, p.stderr
    p = start_up_error(home, "check")
    assert f"users file {users}" in p.stderr, p.stderr
