"""pimap and Dovecot serving one Maildir AT THE SAME TIME: interleavings of the two that the
concurrency checker's "both" mode met (conc_checker.py), each replayed deterministically.

Dovecot keeps its own index of each mailbox and trusts it between syncs; what pimap changes
on disk reaches that index only through Dovecot's reading of new/, cur/ and dovecot-uidlist
(Dovecot's maildir-sync.c and maildir-sync-index.c). pimap must leave those files in a state
Dovecot reads correctly at any moment.
"""

import os
import time

from imapwire import append, flags
from msgs import message


def fetch_flags(c, uid: int) -> set[str]:
    (v,) = c.ok(f"UID FETCH {uid} (FLAGS)").fetches().values()
    return flags(v["FLAGS"]) - {"\\Recent"}


def test_a_pimap_append_dovecot_meets_in_the_uidlist_keeps_its_flags_there(both):
    """Dovecot saving a message (APPEND, COPY, MOVE) reads dovecot-uidlist under its lock and
    adds every message listed there to its index without reading cur/: a message pimap
    appended just before gets the flags of the file name in its uidlist line. With a base
    name only, Dovecot showed FLAGS () for it until its next full sync, and a -FLAGS there
    meanwhile changed nothing (Dovecot skips removing what its index says is not set)."""
    dv, pm = both
    d = dv.login(name="dovecot")
    d.ok("SELECT INBOX")
    p = pm.login(name="pimap")
    r = append(p, "INBOX", message("flagged by pimap"), flags="\\Flagged \\Seen Later")
    uid = int(r.code.split()[2])
    append(d, "INBOX", message("from dovecot"))
    assert fetch_flags(d, uid) == {"\\Flagged", "\\Seen", "Later"}
    d.ok(f"UID STORE {uid} -FLAGS.SILENT (\\Flagged)")
    p.ok("SELECT INBOX")
    assert fetch_flags(p, uid) == {"\\Seen", "Later"}
    assert fetch_flags(d, uid) == {"\\Seen", "Later"}


def test_dovecot_sees_another_process_s_flag_rename_only_after_its_dirty_window(dovecot):
    """The premise of the concurrency checker's VIEW_LAG, on Dovecot alone: a flag change
    that another process (a MUA, or pimap) makes by renaming a file in cur/ can stay unseen
    by Dovecot for a second or two. Dovecot's save records cur/'s mtime without reading cur/
    (maildir-save.c), and Dovecot reads cur/ again only once that record is older than
    MAILDIR_SYNC_SECS (maildir-sync.c). If this starts failing, Dovecot no longer lags and
    VIEW_LAG in conc_checker.py can go."""
    d = dovecot.login(name="dovecot")
    d.ok("SELECT INBOX")
    r = append(d, "INBOX", message("renamed by a MUA"))
    uid = int(r.code.split()[2])
    assert fetch_flags(d, uid) == set()
    cur = dovecot.maildir("demo") / "cur"
    (name,) = os.listdir(cur)
    os.rename(cur / name, cur / (name.split(":")[0] + ":2,S"))
    append(d, "INBOX", message("saved right after"))
    assert fetch_flags(d, uid) == set(), "Dovecot read the rename at once"
    time.sleep(2.2)  # past MAILDIR_SYNC_SECS, counted in whole seconds (no event to wait for)
    d.ok("NOOP")
    assert fetch_flags(d, uid) == {"\\Seen"}
