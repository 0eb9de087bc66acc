"""pimap's command line: `pw` (hashes Dovecot accepts), `check`, and `serve`'s demo account."""

import re
import subprocess

import pytest

from conftest import HOST, PIMAP_BIN, free_port, stop_process, wait_for_port
from imapwire import Conn


def pimap(*args, timeout=60, **kw):
    return subprocess.run([str(PIMAP_BIN), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.mark.parametrize("scheme", ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "SSHA512",
                                    "SHA256", "PLAIN"])
def test_pw_hash_verified_by_doveadm(scheme):
    p = pimap("pw", "-s", scheme, "-p", "s3cret pass")
    assert p.returncode == 0, p.stderr
    h = p.stdout.strip()
    assert h.startswith("{" + scheme + "}"), h
    ok = subprocess.run(["doveadm", "pw", "-t", h, "-p", "s3cret pass"], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["doveadm", "pw", "-t", h, "-p", "wrong"], capture_output=True, timeout=60)
    assert bad.returncode != 0


def test_pw_unknown_scheme_fails():
    p = pimap("pw", "-s", "NO-SUCH-SCHEME", "-p", "x")
    assert p.returncode != 0
    assert p.stdout == ""


def test_check_reports_users(workdir):
    p = pimap("check", "--data-dir", str(workdir / "pd"), "--users", str(workdir / "users"),
              "--mail-location", f"maildir:{workdir}/mail/%u")
    assert p.returncode == 0, p.stderr
    assert f"{workdir}/mail/alice@example.org" in p.stdout
    p = pimap("check", "--data-dir", str(workdir / "pd"), "--users", str(workdir / "missing"))
    assert p.returncode != 0


def test_serve_creates_demo_account(workdir):
    port = free_port()
    log = workdir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(PIMAP_BIN), "serve", "--data-dir", str(workdir / "pd"),
                                 "--imap-listen", f"{HOST}:{port}"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc, log)
        m = re.search(r"demo account: user demo, password (\S+)", log.read_text())
        assert m, log.read_text()
        assert (workdir / "pd" / "users").is_file()
        c = Conn(HOST, port)
        c.login("demo", m.group(1))
        c.ok("SELECT INBOX")
        c.logout()
        assert (workdir / "pd" / "mail" / "demo" / "cur").is_dir()
    finally:
        stop_process(proc)
