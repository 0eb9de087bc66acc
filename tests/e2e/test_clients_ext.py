"""Real clients using pimap's extensions, seen in their own debug output.

* mbsync (isync 1.4) picks its commands from the CAPABILITY list: with UIDPLUS it takes the
  new message's UID from APPEND's `[APPENDUID ...]` (without it, it searches for the
  `X-TUID` header it planted) and expunges with `UID EXPUNGE`; with MOVE it trashes a message
  with `UID MOVE` (without it, `UID COPY` + `\\Deleted`); with COMPRESS=DEFLATE it compresses
  the session. `-Dn` prints the protocol it speaks (decompressed).
* offlineimap3 in its looping mode with `idlefolders` keeps an IDLE connection on INBOX and
  syncs as soon as the server pushes `* n EXISTS`, then idles again. (It doesn't use
  COMPRESS: its imaplib2 never sends it.)
"""

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import MAIL_GID, MAIL_UID, attach
from imapwire import append
from msgs import deliver, message
from test_clients import local_new_message, maildir_messages, run, server_messages

USER = "demo"


def mbsyncrc(server, local: Path, extra_account: str = "") -> str:
    return f"""\
IMAPAccount test
Host {server.host}
Port {server.port}
User {USER}
Pass "{server.password(USER)}"
SSLType None
AuthMechs LOGIN
Timeout 20
{extra_account}

IMAPStore remote
Account test
Trash Trash

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
"""


def mark_local_deleted(folder: Path, subject: str) -> None:
    """Set the Maildir `T` (trashed = \\Deleted) flag on the local copy of `subject`."""
    for sub in ("cur", "new"):
        for p in (folder / sub).iterdir():
            if f"Subject: {subject}".encode() in p.read_bytes():
                base, _, fl = p.name.partition(":2,")
                os.rename(p, folder / "cur" / (base + ":2," + "".join(sorted(set(fl) | {"T"}))))
                return
    raise AssertionError(f"no local message {subject!r}")


def test_mbsync_uses_uidplus_move_and_compress(request, server, tmp_path):
    c = server.login()
    append(c, "INBOX", message("keep me"))
    append(c, "INBOX", message("trash me"))
    c.logout()
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(mbsyncrc(server, local))
    run(request, ["mbsync", "-c", str(rc), "-a"])
    assert set(maildir_messages(local / "INBOX")) == {"keep me", "trash me"}

    # One new local message (→ APPEND), one local deletion (→ \Deleted, trash, expunge).
    local_new_message(local / "INBOX", "from local", "1700000000.local1.host")
    mark_local_deleted(local / "INBOX", "trash me")
    p = run(request, ["mbsync", "-Dn", "-c", str(rc), "-a"])
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")

    # COMPRESS=DEFLATE was negotiated (the rest of the traffic went through it).
    assert "COMPRESS DEFLATE" in out and "OK" in out.split("COMPRESS DEFLATE", 1)[1][:400]
    # UIDPLUS: the new message's UID came from APPENDUID; no X-TUID header search.
    assert "APPEND" in out and "APPENDUID" in out, out[-3000:]
    assert "HEADER.FIELDS (X-TUID)" not in out
    # MOVE: the deleted message was moved to Trash in one command, not copied + flagged.
    assert "UID MOVE" in out, out[-3000:]
    assert "UID COPY" not in out
    assert "COPYUID" in out.split("UID MOVE", 1)[1]
    # UIDPLUS again: only the trashed message is expunged, by UID.
    assert "UID EXPUNGE" in out

    c = server.login()
    assert set(server_messages(c, "INBOX")) == {"keep me", "from local"}
    assert set(server_messages(c, "Trash")) == {"trash me"}
    assert set(maildir_messages(local / "INBOX")) == {"keep me", "from local"}
    # The local message got the server's UID from APPENDUID (mbsync renames it ,U=n).
    names = [p.name for sub in ("cur", "new") for p in (local / "INBOX" / sub).iterdir()]
    assert all(",U=" in n for n in names), names


def test_mbsync_without_compress_still_syncs(request, pimap, tmp_path):
    """`DisableExtensions COMPRESS`: the plain session works the same (control for the above)."""
    c = pimap.login()
    append(c, "INBOX", message("plain one"))
    c.logout()
    local = tmp_path / "local"
    local.mkdir()
    rc = tmp_path / "mbsyncrc"
    rc.write_text(mbsyncrc(pimap, local, "DisableExtensions COMPRESS=DEFLATE"))
    p = run(request, ["mbsync", "-Dn", "-c", str(rc), "-a"])
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert "COMPRESS DEFLATE" not in out
    assert set(maildir_messages(local / "INBOX")) == {"plain one"}


def offlineimaprc(server, tmp_path: Path, local: Path) -> str:
    return f"""\
[general]
accounts = test
metadata = {tmp_path}/meta
ui = basic

[Account test]
localrepository = local
remoterepository = remote
autorefresh = 10
quick = 0

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
folderfilter = lambda f: f == 'INBOX'
idlefolders = ['INBOX']
keepalive = 60
holdconnectionopen = yes
"""


def test_offlineimap_idle_wakes_on_delivery(request, server, tmp_path):
    c = server.login()
    append(c, "INBOX", message("before idle"))
    c.logout()
    local = tmp_path / "local"
    rc = tmp_path / "offlineimaprc"
    rc.write_text(offlineimaprc(server, tmp_path, local))
    log = tmp_path / "offlineimap.log"
    # Looping mode (no -o): a sync, then IDLE on INBOX until the server pushes something.
    # autorefresh = 10 minutes, so only IDLE can bring the next message within the test.
    with open(log, "wb") as logf:
        proc = subprocess.Popen(["offlineimap", "-c", str(rc), "-u", "basic", "-d", "imap"],
                                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                env={**os.environ, "HOME": str(tmp_path)}, start_new_session=True)
    attach(request.node, "offlineimap log", lambda: log.read_text(errors="replace")[-12000:])
    try:
        deadline = time.monotonic() + 60
        while "before idle" not in maildir_messages(local / "INBOX") and time.monotonic() < deadline:
            assert proc.poll() is None, "offlineimap exited"
            time.sleep(0.2)
        assert "before idle" in maildir_messages(local / "INBOX")
        # Wait until its IDLE is running on the server.
        deadline = time.monotonic() + 30
        while b"IDLE" not in _idle_lines(log) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b"IDLE" in _idle_lines(log), "offlineimap never sent IDLE"
        time.sleep(0.5)
        t0 = time.monotonic()
        deliver(server.maildir(USER), message("pushed while idling"), uid=MAIL_UID, gid=MAIL_GID)
        deadline = t0 + 30
        while "pushed while idling" not in maildir_messages(local / "INBOX") and time.monotonic() < deadline:
            assert proc.poll() is None, "offlineimap exited"
            time.sleep(0.2)
        took = time.monotonic() - t0
        assert "pushed while idling" in maildir_messages(local / "INBOX"), "not synced after IDLE push"
        assert took < 30
        # The push came during IDLE (`* 2 EXISTS` read before its DONE), and afterwards
        # offlineimap went back to idling: it keeps working.
        text = log.read_bytes()
        first_idle = text.index(rb" IDLE\r\n")
        assert b"< b'* 2 EXISTS" in text[first_idle:text.index(b"> b'DONE", first_idle)]
        deadline = time.monotonic() + 15
        while _idle_lines(log).count(b" IDLE") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _idle_lines(log).count(b" IDLE") >= 2, "offlineimap did not IDLE again"
        assert proc.poll() is None, "offlineimap must keep running"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _idle_lines(log: Path) -> bytes:
    """offlineimap's `-d imap` lines that sent an IDLE command."""
    return b"\n".join(ln for ln in log.read_bytes().splitlines() if b" IDLE" in ln and b"> " in ln)
