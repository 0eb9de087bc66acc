"""User isolation: a mailbox name can never reach outside the user's Maildir —
not with `..`, `/`, NUL or a leading `.`, and not through a symlink planted inside the
Maildir that points outside it. Through the real binary; pimap only (the checks are pimap's
own store rules; Dovecot is configured differently)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import MAIL_GID, MAIL_UID, attach, chown_tree, start_pimap
from imapwire import quote

SECRET = b"TOP-SECRET-OUTSIDE-THE-MAILDIR"


@pytest.fixture
def srv(request, workdir):
    s = start_pimap(workdir, workdir / "users", workdir / "mail")
    attach(request.node, "pimap log", s.log_text)
    attach(request.node, "pimap transcript", lambda: "\n".join(s.transcript))
    request.addfinalizer(s.stop)
    return s


def tree(p: Path) -> set[str]:
    return {str(x.relative_to(p)) for x in p.rglob("*")}


BAD_NAMES = ["..", "../outside", "a/../../outside", "/etc", "foo/bar", "a..b", ".hidden", ".",
             "INBOX/../../outside", "INBOX..", "../*", "~root"]
# Odd but harmless: no separator trouble, so allowed, and it stays inside the root.
HARMLESS = {"~root"}


@pytest.mark.parametrize("name", BAD_NAMES)
def test_escaping_names_are_refused(srv, workdir, name):
    c = srv.login("demo")
    before = tree(workdir)
    for cmd in (f"CREATE {quote(name)}", f"SELECT {quote(name)}", f"RENAME INBOX {quote(name)}",
                f"STATUS {quote(name)} (MESSAGES)", f"DELETE {quote(name)}"):
        r = c.command(cmd)
        assert r.status in ("NO", "BAD") or name in HARMLESS, (cmd, r.line)
    r = c.command(f"APPEND {quote(name)} ", b"Subject: x\r\n\r\ny\r\n")
    assert r.status in ("NO", "BAD") or name in HARMLESS, r.line
    # Nothing appeared outside demo's Maildir.
    created = {p for p in tree(workdir) - before if not p.startswith("mail/demo")}
    assert not {p for p in created if not p.endswith(".log")}, created


def test_nul_in_a_mailbox_name_is_refused(srv):
    c = srv.login("demo")
    for verb in ("CREATE", "SELECT"):
        r = c.command(f"{verb} ", b"evil\x00name")
        assert r.status in ("NO", "BAD"), r.line
    assert c.command("NOOP").ok


def _outside_maildir(workdir: Path) -> Path:
    """A Maildir outside demo's root holding one secret message."""
    out = workdir / "outside"
    for sub in ("cur", "new", "tmp"):
        (out / sub).mkdir(parents=True)
    (out / "cur" / "1700000000.M1P1.host,S=30:2,").write_bytes(b"Subject: s\r\n\r\n" + SECRET + b"\r\n")
    chown_tree(out)
    return out


def test_symlinked_folder_pointing_outside_is_ignored(srv, workdir):
    c = srv.login("demo")
    root = srv.maildir("demo")
    out = _outside_maildir(workdir)
    before = tree(out)
    os.symlink(out, root / ".Evil")
    os.lchown(root / ".Evil", MAIL_UID, MAIL_GID)
    r = c.ok('LIST "" "*"')
    assert b"Evil" not in b"".join(r.untagged), r.untagged
    for cmd in ("SELECT Evil", "EXAMINE Evil", "STATUS Evil (MESSAGES)", "DELETE Evil",
                "RENAME Evil Good", "SUBSCRIBE Evil"):
        r = c.command(cmd)
        if cmd.startswith("SUBSCRIBE"):
            continue  # a subscription is only a name in a list
        assert r.status in ("NO", "BAD"), (cmd, r.line)
    r = c.command("APPEND Evil ", b"Subject: planted\r\n\r\nwritten outside?\r\n")
    assert r.status == "NO", r.line
    r = c.command("CREATE Evil.Sub")
    assert tree(out) == before, "something was written outside the Maildir"
    assert (out / "cur").is_dir() and out.exists()
    assert "symlink out of the mail root" in srv.log_text()


def test_symlinked_message_file_pointing_outside_is_not_read(srv, workdir):
    c = srv.login("demo")
    c.ok("APPEND INBOX ", b"Subject: real\r\n\r\nreal message\r\n")
    secret = workdir / "secret.txt"
    secret.write_bytes(b"Subject: stolen\r\n\r\n" + SECRET + b"\r\n")
    secret.chmod(0o644)
    cur = srv.maildir("demo") / "cur"
    link = cur / "1700000001.M2P2.host,S=50:2,"
    os.symlink(secret, link)
    os.lchown(link, MAIL_UID, MAIL_GID)
    c.ok("SELECT INBOX")
    r = c.command("FETCH 1:* (BODY.PEEK[])")
    assert SECRET not in r.line and all(SECRET not in u for u in r.untagged), r.untagged
    assert c.command("NOOP").ok


def test_symlinked_cur_dir_of_a_folder_pointing_outside_is_not_read(srv, workdir):
    c = srv.login("demo")
    c.ok("CREATE Box")
    out = _outside_maildir(workdir)
    box = srv.maildir("demo") / ".Box"
    (box / "cur").rmdir()
    os.symlink(out / "cur", box / "cur")
    os.lchown(box / "cur", MAIL_UID, MAIL_GID)
    # Regression: cur/ was followed out of the root and the outside message served.
    r = c.command("SELECT Box")
    assert r.status == "NO", r.line
    assert c.command("APPEND Box ", b"Subject: x\r\n\r\ny\r\n").status == "NO"
    assert sorted(p.name for p in (out / "cur").iterdir()) == ["1700000000.M1P1.host,S=30:2,"]
