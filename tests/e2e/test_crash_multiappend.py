"""kill -9 while sessions MULTIAPPEND (RFC 3502): what was acknowledged survives whole, with
its UIDs; what was not may have left only a prefix of its messages.

pimap renames a MULTIAPPEND's messages into cur/ one after the other (Maildir has no rename
of several files at once) and then writes their uidlist lines. A kill in between leaves the
messages renamed so far without UIDs: the next scan gives them theirs, so they appear
although the client got no OK (as with Dovecot's save). They are always the first ones of
the command, never a later one without an earlier one.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

from conftest import start_pimap
from msgs import message
from test_crash import _inbox


def _writer(srv, wid: int, seed: int, acked: dict, sent: list, stop: threading.Event):
    rng = random.Random(seed)
    try:
        c = srv.login(name=f"M{wid}")
        n = 0
        while not stop.is_set():
            n += 1
            subjects = [f"m{wid}-{seed}-{n}-{k}" for k in range(rng.randint(2, 6))]
            sent.append(subjects)
            parts: list = ["APPEND INBOX"]
            for s in subjects:
                parts += [" ", message(s)]
            r = c.command(*parts)
            m = re.fullmatch(r"APPENDUID \d+ (\d+):(\d+)", r.code or "")
            if r.ok and m:
                uids = list(range(int(m.group(1)), int(m.group(2)) + 1))
                assert len(uids) == len(subjects), r.line
                acked.update(zip(subjects, uids))
    except Exception:  # the server was killed under it
        return


def test_kill_9_during_multiappend(workdir):
    users, mail = workdir / "users", workdir / "mail"
    srv = start_pimap(workdir, users, mail, name="pimap0")
    try:
        validity, _ = _inbox(srv)
        acked: dict[str, int] = {}
        sent: list[list[str]] = []
        for rnd in range(3):
            stop = threading.Event()
            threads = [threading.Thread(target=_writer,
                                        args=(srv, w, rnd * 10 + w, acked, sent, stop))
                       for w in range(3)]
            for t in threads:
                t.start()
            time.sleep(random.Random(rnd).uniform(0.8, 2.0))
            srv.proc.kill()
            srv.proc.wait()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            # The killed process's dotlocks are taken over once stale (see test_crash).
            for lock in mail.rglob("*.lock"):
                old = time.time() - 200
                os.utime(lock, (old, old))
            srv = start_pimap(workdir, users, mail, name=f"pimap{rnd + 1}")
            v, got = _inbox(srv)
            assert v == validity, "UIDVALIDITY changed after a crash"
            for subject, uid in acked.items():
                assert got.get(subject) == uid, f"{subject} (UID {uid}): {got.get(subject)}"
            for subjects in sent:
                present = [s in got for s in subjects]
                assert present == sorted(present, reverse=True), f"not a prefix: {subjects} {present}"
        assert len(acked) > 20, "too few MULTIAPPENDs acknowledged to mean anything"
    finally:
        srv.stop()
