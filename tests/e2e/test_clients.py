"""Real IMAP clients against both servers: curl, mbsync (isync) and offlineimap3.

Each runs non-interactively with a timeout; its output is attached to a failing test.
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import attach
from imapwire import append, flags
from msgs import crlf, message

USER = "demo"


def run(request, cmd, timeout=60, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    attach(request.node, f"$ {' '.join(map(str, cmd))[:200]}",
           lambda: f"exit {p.returncode}\n--- stdout\n{p.stdout.decode(errors='replace')[-8000:]}"
                   f"\n--- stderr\n{p.stderr.decode(errors='replace')[-8000:]}")
    if check:
        assert p.returncode == 0, (cmd, p.returncode, p.stderr[-2000:])
    return p


# -- curl ---------------------------------------------------------------------------------


def curl(request, server, path="", *args, user=USER, password=None, check=True):
    password = password if password is not None else server.password(user)
    url = f"imap://{server.host}:{server.port}/{path}"
    return run(request, ["curl", "-sS", "--max-time", "30", "--user", f"{user}:{password}", url, *args], check=check)


def test_curl_fetch_by_uid(request, server):
    c = server.login()
    msg = message("for curl", "Fetched by curl.\r\n")
    append(c, "INBOX", msg)
    p = curl(request, server, "INBOX;UID=1")
    assert p.stdout == msg


def test_curl_custom_command(request, server):
    c = server.login()
    msg = message("custom")
    append(c, "INBOX", msg)
    p = curl(request, server, "INBOX", "-X", "UID FETCH 1 (FLAGS RFC822.SIZE)")
    assert p.stdout.startswith(b"* 1 FETCH (")
    assert b"UID 1" in p.stdout
    assert b"RFC822.SIZE %d" % len(msg) in p.stdout


def test_curl_search(request, server):
    c = server.login()
    append(c, "INBOX", message("alpha"))
    append(c, "INBOX", message("beta"))
    p = curl(request, server, "INBOX?SUBJECT%20beta")
    assert p.stdout.strip() == b"* SEARCH 2"


def test_curl_list(request, server):
    c = server.login()
    c.ok("CREATE Work")
    p = curl(request, server, "")
    # The name may be an atom or a quoted string.
    lines = [ln.replace('"', "") for ln in p.stdout.decode().splitlines()]
    assert any(ln.startswith("* LIST") and ln.endswith(" INBOX") for ln in lines), lines
    assert any(ln.startswith("* LIST") and ln.endswith(" Work") for ln in lines), lines


def test_curl_append_upload(request, server, tmp_path):
    msg = message("uploaded by curl", "Via curl -T.\r\n")
    f = tmp_path / "m.eml"
    f.write_bytes(msg)
    curl(request, server, "INBOX", "-T", str(f))
    c = server.login()
    c.ok("SELECT INBOX")
    assert c.ok("FETCH 1 BODY.PEEK[]").fetches()[1]["BODY[]"] == msg


def test_curl_wrong_password(request, server):
    p = curl(request, server, "INBOX", password="wrong", check=False)
    assert p.returncode == 67  # CURLE_LOGIN_DENIED


# -- mbsync -------------------------------------------------------------------------------


def maildir_messages(folder: Path) -> dict[str, str]:
    """{Subject: maildir info flags} of the messages in a local Maildir folder."""
    out = {}
    for sub in ("new", "cur"):
        d = folder / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            subj = ""
            for line in p.read_bytes().split(b"\n"):
                if line.lower().startswith(b"subject:"):
                    subj = line.split(b":", 1)[1].strip().decode()
                    break
            out[subj] = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
    return out


def server_messages(c, mailbox: str) -> dict[str, set[str]]:
    r = c.ok(f"EXAMINE {mailbox}")
    if r.number("EXISTS") == [0]:
        return {}
    out = {}
    for v in c.ok("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])").fetches().values():
        subj = v["BODY[HEADER.FIELDS (SUBJECT)]"].split(b":", 1)[1].strip().decode()
        out[subj] = flags(v["FLAGS"]) - {"\\Recent"}
    return out


def local_new_message(folder: Path, subject: str, name: str) -> None:
    (folder / "tmp").mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp" / name
    tmp.write_bytes(message(subject, "Written into the local Maildir.\r\n"))
    os.rename(tmp, folder / "new" / name)


def seed(server):
    c = server.login()
    c.ok("CREATE Work")
    append(c, "INBOX", message("inbox one"))
    append(c, "INBOX", message("inbox two"), flags="\\Seen")
    append(c, "Work", message("work one"))
    return c


def test_mbsync_two_way(request, server, tmp_path):
    seed(server)
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(f"""\
IMAPAccount test
Host {server.host}
Port {server.port}
User {USER}
Pass "{server.password(USER)}"
SSLType None
AuthMechs LOGIN
Timeout 20

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    run(request, ["mbsync", "-c", str(rc), "-a"])
    assert set(maildir_messages(local / "INBOX")) == {"inbox one", "inbox two"}
    assert "S" in maildir_messages(local / "INBOX")["inbox two"]
    assert set(maildir_messages(local / "Work")) == {"work one"}

    # Change both sides: a flag and a new message on the server, a new message and a flag
    # locally.
    c = server.login()
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS (\\Flagged)")
    append(c, "Work", message("work two"))
    c.logout()
    local_new_message(local / "INBOX", "local one", "1700000000.local1.host")
    work_cur = local / "Work" / "cur"
    for p in list(work_cur.iterdir()) + list((local / "Work" / "new").iterdir()):
        base = p.name.split(":2,", 1)[0]
        os.rename(p, work_cur / (base + ":2,S"))
    run(request, ["mbsync", "-c", str(rc), "-a"])

    c = server.login()
    inbox = server_messages(c, "INBOX")
    assert set(inbox) == {"inbox one", "inbox two", "local one"}
    work = server_messages(c, "Work")
    assert work == {"work one": {"\\Seen"}, "work two": set()}
    assert "F" in maildir_messages(local / "INBOX")["inbox one"]
    assert set(maildir_messages(local / "Work")) == {"work one", "work two"}


# -- offlineimap --------------------------------------------------------------------------


def test_offlineimap_two_way(request, server, tmp_path):
    seed(server)
    local = tmp_path / "local"
    rc = tmp_path / "offlineimaprc"
    rc.write_text(f"""\
[general]
accounts = test
metadata = {tmp_path}/meta
ui = basic

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = {server.host}
remoteport = {server.port}
remoteuser = {USER}
remotepass = {server.password(USER)}
ssl = no
starttls = no
maxconnections = 1
holdconnectionopen = no
""")
    cmd = ["offlineimap", "-c", str(rc), "-o", "-u", "basic"]
    run(request, cmd, env={**os.environ, "HOME": str(tmp_path)})
    assert set(maildir_messages(local / "INBOX")) == {"inbox one", "inbox two"}
    assert set(maildir_messages(local / "Work")) == {"work one"}

    c = server.login()
    c.ok("SELECT INBOX")
    c.ok("STORE 1 +FLAGS (\\Flagged)")
    c.logout()
    local_new_message(local / "Work", "local work", "1700000000_0.1.host")
    run(request, cmd, env={**os.environ, "HOME": str(tmp_path)})

    c = server.login()
    assert set(server_messages(c, "Work")) == {"work one", "local work"}
    assert "F" in maildir_messages(local / "INBOX")["inbox one"]
