"""kill -9 while sessions write: nothing acknowledged is lost, UIDs and UIDVALIDITY survive.

Several sessions APPEND, STORE flags and keywords, COPY and EXPUNGE in one Maildir while the
server is killed with SIGKILL at a random moment (so, over the rounds, during each kind of
write: a message file, a flag rename, dovecot-uidlist, dovecot-keywords, the mod-sequence and
keyword files). After each restart every message whose APPEND was acknowledged is there with
the UID it was given (unless an EXPUNGE of it may have run), UIDVALIDITY is unchanged, and
Dovecot, opening the same Maildir, lists the same UIDs.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

from conftest import start_dovecot, start_pimap
from msgs import message


def _writer(srv, wid: int, seed: int, acked: dict, maybe_gone: set, stop: threading.Event):
    rng = random.Random(seed)
    try:
        c = srv.login(name=f"W{wid}")
        c.ok("SELECT INBOX")
        n = 0
        while not stop.is_set():
            n += 1
            what = rng.choice(["append", "append", "store", "keyword", "expunge", "copy"])
            if what == "append":
                subject = f"w{wid}-{seed}-{n}"
                fl = rng.choice(["", "\\Seen", "$Work"])
                r = c.command(f"APPEND INBOX ({fl}) ", message(subject))
                m = re.match(r"APPENDUID \d+ (\d+)", r.code or "")
                if r.ok and m:
                    acked[subject] = int(m.group(1))
                continue
            uids = sorted(acked.values())
            if not uids:
                continue
            uid = rng.choice(uids)
            if what == "store":
                c.command(f"UID STORE {uid} {rng.choice('+-')}FLAGS (\\Flagged \\Answered)")
            elif what == "keyword":
                c.command(f"UID STORE {uid} +FLAGS ($kw{rng.randrange(30)})")
            elif what == "copy":
                c.command(f"UID COPY {uid} INBOX")
            else:
                maybe_gone.add(uid)
                c.command(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
                c.command(f"UID EXPUNGE {uid}")
    except Exception:  # the server was killed under it
        return


def _inbox(srv) -> tuple[str, dict[str, int]]:
    c = srv.login(name="check")
    r = c.ok("SELECT INBOX")
    validity = r.codes()["UIDVALIDITY"]
    got: dict[str, int] = {}
    if c.ok("SEARCH ALL").search():
        f = c.ok("FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])").fetches()
        for v in f.values():
            text = str(v.get("BODY[HEADER.FIELDS (SUBJECT)]", ""))
            m = re.search(r"Subject: ([\w-]+)", text)
            if m:
                got.setdefault(m.group(1), int(v["UID"]))
    c.ok("LOGOUT")
    return validity, got


def test_kill_9_during_writes_loses_nothing_acknowledged(workdir):
    users, mail = workdir / "users", workdir / "mail"
    srv = start_pimap(workdir, users, mail, name="pimap0")
    try:
        validity, _ = _inbox(srv)
        acked: dict[str, int] = {}
        maybe_gone: set[int] = set()
        for rnd in range(4):
            stop = threading.Event()
            threads = [threading.Thread(target=_writer,
                                        args=(srv, w, rnd * 10 + w, acked, maybe_gone, stop))
                       for w in range(4)]
            for t in threads:
                t.start()
            time.sleep(random.Random(rnd).uniform(0.8, 2.5))
            srv.proc.kill()
            srv.proc.wait()
            # Concurrent sessions' own small writes (the \Recent marker) did not collide.
            log = (workdir / f"pimap{rnd}.log").read_text(errors="replace")
            assert "cannot record recent marker" not in log
            stop.set()
            for t in threads:
                t.join(timeout=30)
            # A dotlock the killed process held stays behind; like Dovecot, pimap takes it
            # over only once it is stale (2 minutes untouched). Let that time pass.
            for lock in mail.rglob("*.lock"):
                old = time.time() - 200
                os.utime(lock, (old, old))
            srv = start_pimap(workdir, users, mail, name=f"pimap{rnd + 1}")
            v, got = _inbox(srv)
            assert v == validity, "UIDVALIDITY changed after a crash"
            for subject, uid in acked.items():
                if uid in maybe_gone:
                    continue
                assert got.get(subject) == uid, f"{subject} (UID {uid}) lost or renumbered: {got.get(subject)}"
        assert len(acked) > 10, "too few APPENDs acknowledged to mean anything"
    finally:
        srv.stop()
    # Dovecot reads what pimap left. It judges a dotlock stale by its ctime, which the aging
    # above cannot set back: remove what the killed processes left (as 2 minutes would).
    for lock in mail.rglob("*.lock"):
        lock.unlink()
    dv = start_dovecot(workdir, users, mail)
    try:
        v, dgot = _inbox(dv)
        assert v == validity
        assert dgot == got
    finally:
        dv.stop()
