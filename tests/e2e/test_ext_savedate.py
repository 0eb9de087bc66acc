"""SAVEDATE (RFC 8514): FETCH SAVEDATE and SEARCH SAVEDBEFORE / SAVEDON / SAVEDSINCE /
SAVEDATESUPPORTED, against Dovecot 2.3 on the same Maildir.

The save date of a message Dovecot did not save itself is its file's ctime in Dovecot's
Maildir; pimap takes it from there for every message, so both answer alike.

C: A1 FETCH 1 (INTERNALDATE SAVEDATE)
S: * 1 FETCH (INTERNALDATE "01-Jan-2021 00:00:00 +0000" SAVEDATE "04-Dec-2026 20:30:01 +0000")
"""

import datetime
import os
import time

from imapwire import append
from msgs import crlf
from test_ext_binary import answers

OLD = "01-Jan-2021 00:00:00 +0000"


def msg(n: int) -> bytes:
    return crlf(f"From: a@example.org\nSubject: saved {n}\n\nbody {n}\n")


def imap_day(d: datetime.date) -> str:
    return f"{d.day}-{d.strftime('%b')}-{d.year}"


def compare(both, commands):
    dv, pm = both
    want, got = answers(dv, commands), answers(pm, commands)
    bad = [f"pimap   {g!r}\ndovecot {w!r}" for w, g in zip(want, got) if g != w]
    assert not bad, "\n".join(bad)
    return got


def test_savedate_fetch_and_search_like_dovecot(both):
    dv, pm = both
    c = pm.login()
    c.ok("CREATE Other")
    for n in range(3):
        append(c, "INBOX", msg(n), date=OLD)
    c.ok("SELECT INBOX")
    # A flag change renames the file (a new ctime); a copy is a new save.
    time.sleep(1.1)
    c.ok("STORE 2 +FLAGS (\\Flagged)")
    c.ok("COPY 3 Other")
    c.logout()
    today = datetime.datetime.now(datetime.timezone.utc).date()
    day = datetime.timedelta(days=1)
    got = compare(both, [
        "FETCH 1:* (INTERNALDATE SAVEDATE)",
        "UID FETCH 2 SAVEDATE",
        "SEARCH SAVEDATESUPPORTED",
        "SEARCH NOT SAVEDATESUPPORTED",
        f"SEARCH SAVEDON {imap_day(today)}",
        f"SEARCH SAVEDSINCE {imap_day(today)}",
        f"SEARCH SAVEDSINCE {imap_day(today + day)}",
        f"SEARCH SAVEDBEFORE {imap_day(today)}",
        f"SEARCH SAVEDBEFORE {imap_day(today + day)}",
        # INTERNALDATE is not the save date.
        "SEARCH BEFORE 2-Jan-2021",
        "SEARCH SAVEDBEFORE 2-Jan-2021",
        "SEARCH OR SAVEDON 1-Jan-2021 SEEN",
    ])
    # Sanity: the dates are the files' ctimes, not INTERNALDATE.
    fetched = got[0][1]
    assert len(fetched) == 3 and all(b"SAVEDATE \"01-Jan-2021" not in v
                                     for _, items in fetched for _, v in items)
    other = pm.maildir("demo") / ".Other" / "cur"
    names = list(other.iterdir()) + list((other.parent / "new").iterdir())
    assert len(names) == 1
    ctime = time.gmtime(os.stat(names[0]).st_ctime)
    c = pm.login()
    c.ok("SELECT Other")
    r = c.ok("FETCH 1 SAVEDATE")
    assert r.untagged == [b'* 1 FETCH (SAVEDATE "%s")\r\n'
                          % time.strftime("%d-%b-%Y %H:%M:%S +0000", ctime).encode()]


def test_savedate_of_messages_dovecot_saved(both):
    """Dovecot keeps the time of its own saves in its index; the file's ctime is that same
    time (to the second, unless the save straddles a second boundary)."""
    dv, pm = both
    d = dv.login()
    append(d, "INBOX", msg(1), date=OLD)
    d.ok("SELECT INBOX")
    want = d.ok("FETCH 1 SAVEDATE").untagged[0]
    p = pm.login()
    p.ok("SELECT INBOX")
    got = p.ok("FETCH 1 SAVEDATE").untagged[0]
    parse = lambda line: time.mktime(time.strptime(line.split(b'"')[1].decode(),
                                                   "%d-%b-%Y %H:%M:%S +0000"))
    assert abs(parse(got) - parse(want)) <= 1, (got, want)


def test_savedate_advertised_and_nil_when_expunged(pimap):
    c = pimap.login()
    caps = c.ok("CAPABILITY").untagged[0].split()
    assert b"SAVEDATE" in caps
    append(c, "INBOX", msg(1))
    c.ok("SELECT INBOX")
    r = c.ok("FETCH 1 (UID SAVEDATE)")
    assert r.untagged[0].startswith(b'* 1 FETCH (UID 1 SAVEDATE "')
    r = c.command("FETCH 1 (SAVEDATE")
    assert r.status == "BAD"
