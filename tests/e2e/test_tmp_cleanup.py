"""Stale tmp/ files: only files nobody is writing any more may be removed.

The maildir spec lets a reader remove files left in tmp/ for 36 hours. Age must be judged by
something a writer cannot set into the past: an APPEND with an old INTERNALDATE (every
migration, every mbsync upload of an old message) sets the tmp/ file's mtime to that date
before renaming it into cur/, so an mtime test deletes the message under the writer's feet
(Dovecot, like pimap now, looks at the ctime).
"""

import os
import threading
import time

from conftest import MAIL_GID, MAIL_UID
from imapwire import append
from msgs import message

OLD = time.mktime((2001, 5, 17, 12, 0, 0, 0, 0, -1))


def plant_old_tmp_file(maildir, name):
    """A file in tmp/ whose mtime is 2001 but whose ctime is now: a writer mid-APPEND."""
    p = maildir / "tmp" / name
    p.write_bytes(message("being appended"))
    if os.geteuid() == 0:
        os.chown(p, MAIL_UID, MAIL_GID)
    os.utime(p, (OLD, OLD))
    return p


def test_tmp_file_with_old_mtime_but_fresh_ctime_survives_login_and_select(server):
    c = server.login()
    c.ok("CREATE Archive")
    append(c, "INBOX", message("first"))
    c.logout()
    inbox = plant_old_tmp_file(server.maildir(), "1000000000.M1P1.writer")
    folder = plant_old_tmp_file(server.maildir() / ".Archive", "1000000000.M2P1.writer")
    for _ in range(2):
        c = server.login()
        c.ok("SELECT INBOX")
        c.ok("SELECT Archive")
        c.ok("STATUS INBOX (MESSAGES)")
        c.logout()
    assert inbox.exists(), "a tmp/ file being written was removed at login/SELECT"
    assert folder.exists(), "a tmp/ file being written was removed at SELECT"


def test_appends_dated_2001_racing_logins_all_succeed(server):
    """Regression: `NO [CANNOT] appended message vanished` when a login cleaned tmp/ between
    the APPEND's write (mtime set to 2001) and its rename."""
    w = server.login(name="writer")
    stop = threading.Event()
    errors = []

    def logins():
        try:
            while not stop.is_set():
                c = server.login(name="reader")
                c.ok("SELECT INBOX")
                c.logout()
                server.conns.remove(c)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=logins)
    t.start()
    try:
        n = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            n += 1
            r = w.command('APPEND INBOX "17-May-2001 12:00:00 +0000" ', message(f"old {n}"))
            assert r.status == "OK", r.line
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors
    r = w.ok("SELECT INBOX")
    assert r.number("EXISTS") == [n]
    dates = w.ok("FETCH 1:* INTERNALDATE").fetches()
    assert {v["INTERNALDATE"] for v in dates.values()} == {b"17-May-2001 12:00:00 +0000"}


def test_dovecot_appends_dated_2001_while_pimap_logs_in(both):
    """The same race across servers: Dovecot's APPEND failed with NO [SERVERBUG]
    (`rename(tmp/..., new/...) failed`) when pimap's login cleaned tmp/ in between."""
    dv, pm = both
    w = dv.login(name="dovecot-writer")
    pm.login(name="first").logout()  # the Maildir exists
    stop = threading.Event()
    errors = []

    def logins():
        try:
            while not stop.is_set():
                c = pm.login(name="pimap-reader")
                c.ok("SELECT INBOX")
                c.logout()
                pm.conns.remove(c)
        except Exception as e:
            errors.append(e)

    t = threading.Thread(target=logins)
    t.start()
    try:
        n = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            n += 1
            r = w.command('APPEND INBOX "17-May-2001 12:00:00 +0000" ', message(f"old {n}"))
            assert r.status == "OK", r.line
    finally:
        stop.set()
        t.join(timeout=30)
    assert not errors, errors
    r = pm.login().ok("SELECT INBOX")
    assert r.number("EXISTS") == [n]
