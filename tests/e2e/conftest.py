"""Fixtures for the end-to-end suite: real pimap and real Dovecot processes on loopback.

Every protocol test takes the `server` fixture and so runs twice: against Debian's Dovecot
(the reference: if a test fails there, the test's expectation is wrong, not pimap) and
against pimap. Each test gets fresh processes and a fresh temp directory, so tests never see
each other's mail.

Environment:
  PIMAP_BIN        the pimap binary (default: target/debug/pimap in this checkout)
  PIMAP_E2E_KEEP   1 = keep every test's temp dir (default: kept only when the test failed)
  PIMAP_E2E_TMP    where temp dirs go (default /tmp; must be traversable by the mail user)

Layout of one test's temp dir (world-traversable, since Dovecot's mail processes run as the
unprivileged `pimaptest` user):
  users            Dovecot passwd-file shared by both servers
  mail/<user>/     the Maildir root of each user (`maildir:<dir>/mail/%u`)
  dovecot.conf, dovecot.log, dovecot-run/      (Dovecot)
  pimap.log, pimap-data/                       (pimap)
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from imapwire import Conn

REPO = Path(__file__).resolve().parents[2]
PIMAP_BIN = Path(os.environ.get("PIMAP_BIN") or REPO / "target" / "debug" / "pimap")
HOST = "127.0.0.1"
# pimap's APPEND limit in the tests (`--max-message-size`); Dovecot gets the same through
# the quota plugin's quota_max_mail_size.
MAX_MESSAGE_SIZE = 100_000


def _mail_ids() -> tuple[int, int, str]:
    """uid/gid Dovecot uses for mail (it refuses uid 0): `pimaptest`, else nobody."""
    for name in ("pimaptest", "nobody"):
        try:
            pw = pwd.getpwnam(name)
            return pw.pw_uid, pw.pw_gid, name
        except KeyError:
            continue
    return 65534, 65534, "nobody"


MAIL_UID, MAIL_GID, MAIL_USER = _mail_ids()

# name → (password, scheme). Hashes come from `pimap pw` for demo (checked with
# `doveadm pw -t`), from `doveadm pw` for the others, so each server verifies hashes
# the other one made.
USERS: dict[str, tuple[str, str]] = {
    "demo": ("demo-Secret-1", "SHA512-CRYPT"),
    "plain": ("plain pass", "PLAIN"),
    "alice@example.org": ("w0nderland!", "SHA512-CRYPT"),
    "bob": ("b0b-secret", "BLF-CRYPT"),
    "quota": ("quota-pass", "PLAIN"),
}

# name → the passwd-file's extra field (8th column) for users that have one: Dovecot's quota
# rules, read by both servers (test_ext_quota.py). Small limits so a few messages reach them.
USER_EXTRA: dict[str, str] = {
    "quota": "userdb_quota_rule=*:storage=2k userdb_quota_rule2=*:messages=4 "
             "userdb_quota_rule3=Trash:storage=+1k",
}

# ---------------------------------------------------------------------------------------
# Failure reporting: logs and IMAP transcripts of the test's servers are attached to the
# report of a failing test (shown by pytest under the failure).

_ATTACH = pytest.StashKey[list]()


def attach(node, title: str, getter) -> None:
    node.stash.setdefault(_ATTACH, []).append((title, getter))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.stash[_FAILED] = rep.failed
    if rep.failed and rep.when in ("setup", "call"):
        for title, getter in item.stash.get(_ATTACH, []):
            try:
                text = getter()
            except Exception as e:  # a report must never hide the real failure
                text = f"(could not read: {e})"
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            rep.sections.append((title, text))


_FAILED = pytest.StashKey[bool]()


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log file)"


# ---------------------------------------------------------------------------------------
# Helpers


_source_n = 0


def next_source_address() -> str:
    """A fresh loopback source address per connection (127.1.x.y).

    Dovecot's auth penalty grows per client IP after failed logins (2 s, 4 s, 8 s, ...);
    distinct loopback sources keep tests that fail a login on purpose from slowing every
    later connection. pimap treats all of 127.0.0.0/8 as loopback too.
    """
    global _source_n
    _source_n = _source_n % 60000 + 1
    return f"127.1.{_source_n // 250}.{_source_n % 250 + 1}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening:\n{_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s:\n{_tail(log)}")


def wait_for_greeting(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30.0,
                      first: bytes = b"") -> None:
    """Until a connection gets an IMAP greeting. Dovecot's listener accepts before its
    imap-login and auth processes are ready, and under load (seen in CI order after the
    privilege-drop and PROXY tests) its first greeting can take more than a client's 10 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if first:
                    s.sendall(first)  # e.g. a PROXY header, for a listener that needs one
                if s.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"no IMAP greeting on {port} within {timeout}s:\n{_tail(log)}")


def stop_process(proc: subprocess.Popen, grace: float = 5.0, group: bool = False) -> None:
    if group:
        # Our own session leader (start_new_session): its group is ours to end.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)
        return
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def chown_tree(path: Path, uid: int = MAIL_UID, gid: int = MAIL_GID) -> None:
    """Give a mail tree to the mail user (files written by root, e.g. by a test or pimap)."""
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for n in filenames:
            try:
                os.chown(os.path.join(dirpath, n), uid, gid)
            except FileNotFoundError:
                pass


def make_workdir() -> Path:
    base = os.environ.get("PIMAP_E2E_TMP", "/tmp")
    d = Path(tempfile.mkdtemp(prefix="pimap-e2e-", dir=base))
    d.chmod(0o755)
    return d


_hash_cache: dict[tuple[str, str], str] = {}


def _doveadm_pw(scheme: str, password: str) -> str:
    out = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password], capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout.strip()


def _pimap_pw(scheme: str, password: str) -> str | None:
    """`pimap pw`'s hash, if it works and Dovecot verifies it; else None."""
    if not PIMAP_BIN.exists():
        return None
    try:
        out = subprocess.run([str(PIMAP_BIN), "pw", "-s", scheme, "-p", password], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    h = out.stdout.strip()
    if out.returncode != 0 or not h.startswith("{"):
        return None
    check = subprocess.run(["doveadm", "pw", "-t", h, "-p", password], capture_output=True, timeout=30)
    return h if check.returncode == 0 else None


def password_hash(user: str) -> str:
    password, scheme = USERS[user]
    key = (user, scheme)
    if key not in _hash_cache:
        if scheme == "PLAIN":
            h = "{PLAIN}" + password
        elif user == "demo":
            h = _pimap_pw(scheme, password) or _doveadm_pw(scheme, password)
        else:
            h = _doveadm_pw(scheme, password)
        _hash_cache[key] = h
    return _hash_cache[key]


def write_users_file(path: Path) -> None:
    """A Dovecot passwd-file (user:password:uid:gid:gecos:home:shell:extra) for both servers."""
    lines = ["# pimap e2e users: Dovecot passwd-file format", ""]
    for user in USERS:
        lines.append(f"{user}:{password_hash(user)}:{MAIL_UID}:{MAIL_GID}::::{USER_EXTRA.get(user, '')}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)


# ---------------------------------------------------------------------------------------
# Servers


class Server:
    """A running IMAP server: pimap or Dovecot."""

    def __init__(self, kind: str, port: int, proc: subprocess.Popen, log: Path, workdir: Path,
                 mail_root: Path):
        self.kind = kind
        self.host = HOST
        self.port = port
        self.proc = proc
        self.log = log
        self.workdir = workdir
        self.mail_root = mail_root
        self.transcript: list[str] = []
        self.conns: list[Conn] = []

    def __repr__(self) -> str:
        return f"<{self.kind} on {self.host}:{self.port}>"

    @property
    def is_pimap(self) -> bool:
        return self.kind.startswith("pimap")

    def password(self, user: str) -> str:
        return USERS[user][0]

    def maildir(self, user: str = "demo") -> Path:
        return self.mail_root / user

    def connect(self, timeout: float = 10.0, name: str | None = None, read_greeting: bool = True) -> Conn:
        c = Conn(self.host, self.port, timeout=timeout, transcript=self.transcript,
                 name=name or f"{self.kind}#{len(self.conns) + 1}", read_greeting=read_greeting,
                 source=next_source_address())
        self.conns.append(c)
        return c

    def login(self, user: str = "demo", name: str | None = None) -> Conn:
        c = self.connect(name=name)
        c.login(user, self.password(user))
        return c

    def stop(self) -> None:
        for c in self.conns:
            c.close()
        stop_process(self.proc, group=self.kind == "dovecot")

    def log_text(self) -> str:
        """The log's end, and how the process ended if it has (a signal leaves no log line)."""
        text = _tail(self.log)
        rc = self.proc.poll()
        if rc is not None:
            how = f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
            text += f"\n[the {self.kind} process has ended: {how}]\n"
        return text


def start_pimap(workdir: Path, users_file: Path, mail_root: Path, extra: list[str] | None = None,
                as_mail_user: bool = False, name: str = "pimap", port: int | None = None) -> Server:
    """`port`: listen there (a restart after a kill keeps the clients' address); default a free one."""
    if not PIMAP_BIN.exists():
        raise RuntimeError(f"pimap binary not found at {PIMAP_BIN} (build it or set PIMAP_BIN)")
    port = port or free_port()
    data_dir = workdir / f"{name}-data"
    data_dir.mkdir(exist_ok=True)
    log = workdir / f"{name}.log"
    cmd = [str(PIMAP_BIN), "serve", "--data-dir", str(data_dir), "--imap-listen", f"{HOST}:{port}",
           "--users", str(users_file), "--mail-location", f"maildir:{mail_root}/%u",
           "--max-message-size", str(MAX_MESSAGE_SIZE), "--log-level", "debug",
           # Started as root, pimap drops to the mail user like Dovecot's mail processes.
           "--run-as", f"{MAIL_UID}:{MAIL_GID}"] + (extra or [])
    if "--autocreate-folders" not in cmd:
        # A bare Maildir like the test Dovecot's; test_ext_special_use.py turns it on.
        cmd += ["--autocreate-folders", "false"]
    if as_mail_user and os.geteuid() == 0:
        chown_tree(data_dir)
        cmd = ["setpriv", f"--reuid={MAIL_UID}", f"--regid={MAIL_GID}", "--clear-groups", "--"] + cmd
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIMAP_")}
    env["TZ"] = "UTC"
    with open(log, "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                env=env, cwd=workdir)
    try:
        wait_for_port(port, proc, log)
    except Exception:
        stop_process(proc)
        raise
    return Server(name, port, proc, log, workdir, mail_root)


DOVECOT_CONF = """\
# Private Dovecot for pimap's e2e tests: loopback only, no TLS, passwd-file users.
base_dir = {workdir}/dovecot-run
log_path = {workdir}/dovecot.log
info_log_path = {workdir}/dovecot.log
protocols = imap
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login scram-sha-1 scram-sha-256
# No growing auth penalty between the tests' failed logins (only the fixed failure delay).
login_trusted_networks = 127.0.0.0/8
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:{mail_root}/%u
mail_plugins = quota
# COMPRESS=DEFLATE (RFC 4978), to compare with pimap's (test_ext_compress.py).
# METADATA (RFC 5464): per-user attributes in a file under the user's Maildir.
imap_metadata = yes
mail_attribute_dict = file:{mail_root}/%u/dovecot-attributes
# NOTIFY (RFC 5465) needs the mailbox list index.
mailbox_list_index = yes
protocol imap {{
  mail_plugins = $mail_plugins imap_zlib imap_quota
}}
default_login_user = nobody
default_internal_user = nobody
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
plugin {{
  # Rejects big APPENDs like pimap's --max-message-size does; limits come from the users'
  # quota rules (USER_EXTRA), which pimap reads from the same file.
  quota = count:User quota
  quota_vsizes = yes
  quota_max_mail_size = {max_size}
}}
"""


def start_dovecot(workdir: Path, users_file: Path, mail_root: Path, port: int | None = None) -> Server:
    """`port`: listen there (a restart after a kill keeps the clients' address); default a free one."""
    if shutil.which("dovecot") is None:
        raise RuntimeError("dovecot is not installed (run scripts/install-test-deps.sh)")
    port = port or free_port()
    conf = workdir / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(workdir=workdir, host=HOST, port=port, mail_root=mail_root,
                                        users=users_file, max_size=MAX_MESSAGE_SIZE))
    log = workdir / "dovecot.log"
    out = workdir / "dovecot.stdout"
    env = dict(os.environ)
    env["TZ"] = "UTC"
    with open(out, "ab") as outf:
        # Own process group: stopping kills the master and all its children at once.
        proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=outf,
                                stderr=subprocess.STDOUT, env=env, cwd=workdir, start_new_session=True)
    try:
        wait_for_port(port, proc, out)
        wait_for_greeting(port, proc, log)
    except Exception:
        stop_process(proc, group=True)
        raise
    return Server("dovecot", port, proc, log, workdir, mail_root)


# ---------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def workdir(request):
    d = make_workdir()
    (d / "mail").mkdir()
    (d / "mail").chmod(0o755)
    if os.geteuid() == 0:
        os.chown(d / "mail", MAIL_UID, MAIL_GID)
    write_users_file(d / "users")
    attach(request.node, "temp dir", lambda: str(d))
    yield d
    failed = request.node.stash.get(_FAILED, True)
    if not failed and os.environ.get("PIMAP_E2E_KEEP") != "1":
        shutil.rmtree(d, ignore_errors=True)


def _start(kind: str, request, workdir: Path) -> Server:
    if kind == "dovecot":
        srv = start_dovecot(workdir, workdir / "users", workdir / "mail")
    else:
        srv = start_pimap(workdir, workdir / "users", workdir / "mail")
    attach(request.node, f"{kind} log", srv.log_text)
    attach(request.node, f"{kind} transcript", lambda: "\n".join(srv.transcript))
    request.addfinalizer(srv.stop)
    return srv


@pytest.fixture(params=["dovecot", "pimap"])
def server(request, workdir) -> Server:
    """The server under test: each test using it runs once per server."""
    return _start(request.param, request, workdir)


@pytest.fixture
def pimap(request, workdir) -> Server:
    """pimap only (for pimap-specific behaviour such as its limits)."""
    return _start("pimap", request, workdir)


@pytest.fixture
def dovecot(request, workdir) -> Server:
    return _start("dovecot", request, workdir)


@pytest.fixture
def both(request, workdir) -> tuple[Server, Server]:
    """Dovecot and pimap on the SAME Maildirs, both running as the mail user."""
    dv = start_dovecot(workdir, workdir / "users", workdir / "mail")
    attach(request.node, "dovecot log", dv.log_text)
    attach(request.node, "dovecot transcript", lambda: "\n".join(dv.transcript))
    request.addfinalizer(dv.stop)
    pm = start_pimap(workdir, workdir / "users", workdir / "mail", as_mail_user=True)
    attach(request.node, "pimap log", pm.log_text)
    attach(request.node, "pimap transcript", lambda: "\n".join(pm.transcript))
    request.addfinalizer(pm.stop)
    return dv, pm


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto server (AWS's S3, SQS and SNS behaviour) for one test module: its port."""
    if shutil.which("moto_server") is None:
        if os.environ.get("PIMAP_TEST_REQUIRE_S3") == "1":
            raise RuntimeError("moto_server is not installed and PIMAP_TEST_REQUIRE_S3=1 requires it")
        pytest.skip("moto is not installed (scripts/install-s3-tools.sh)")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(["moto_server", "-H", HOST, "-p", str(port)], stdout=f,
                                stderr=subprocess.STDOUT)
    wait_for_port(port, proc, log, timeout=30)
    yield port
    stop_process(proc)
