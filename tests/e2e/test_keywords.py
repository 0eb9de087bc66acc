"""Keywords: announced before use (RFC 3501 §7.2.6) and not limited to 26 per mailbox.

Maildir file names carry at most 26 keyword letters (`dovecot-keywords`); Dovecot keeps any
further keywords in its own index, pimap in `pimap-keywords` beside the uidlist. Clients and
migrations use many more than 26 over a mailbox's life ($Label1..5, $MDNSent, Junk, NonJunk,
tags...), so a STORE or APPEND with the 27th must not fail.
"""

import time

from conftest import start_pimap
from imapwire import Response, append, flags, listing
from msgs import message
from test_view_model import ViewModel

KW = [f"$Tag{i:02d}" for i in range(40)]


def fetch_flags(c, seqs="1:*"):
    return {k: flags(v["FLAGS"]) - {"\\Recent"} for k, v in c.ok(f"FETCH {seqs} FLAGS").fetches().items()}


def test_new_keyword_is_announced_before_use_to_every_session(server):
    a = server.login(name="A")
    append(a, "INBOX", message("one"))
    append(a, "INBOX", message("two"))
    ma = ViewModel(a, a.ok("SELECT INBOX"))
    b = server.login(name="B")
    mb = ViewModel(b, b.ok("SELECT INBOX"))
    c = server.login(name="C")
    mc = ViewModel(c, c.ok("SELECT INBOX"))
    c.send(b"I1 IDLE\r\n")
    assert c.read_response().startswith(b"+")
    r = ma.run("STORE 1 +FLAGS ($Label3)")
    lines = r.untagged
    i_flags = next(i for i, u in enumerate(lines) if u.startswith(b"* FLAGS "))
    i_fetch = next(i for i, u in enumerate(lines) if b" FETCH " in u)
    assert i_flags < i_fetch
    assert b"$Label3" in lines[i_flags]
    assert any(b"PERMANENTFLAGS" in u and b"$Label3" in u for u in lines)
    mb.run("NOOP")
    assert fetch_flags(b, "1") == {1: {"$Label3"}}
    # The idling session: FLAGS comes before the FETCH that uses the keyword.
    got = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(b" FETCH " in u for u in got):
        got.append(c.read_response())
    c.send(b"DONE\r\n")
    r = c.read_until_tagged("I1")
    assert r.ok
    mc.check(Response("I1", "OK", "", b"", got + r.untagged), "IDLE")
    # APPEND of a message with a keyword new to the mailbox, into the selected mailbox.
    ma.run("APPEND INBOX ($Fresh) ", message("three"))
    ma.run("FETCH 1:* (UID FLAGS)")
    mb.run("FETCH 1:* (UID FLAGS)")
    for m in (ma, mb, mc):
        assert not m.errors, "\n".join(m.errors)


def test_forty_keywords_on_one_message_by_store(server):
    a = server.login()
    append(a, "INBOX", message("many"))
    m = ViewModel(a, a.ok("SELECT INBOX"))
    for k in KW[:30]:
        m.run(f"STORE 1 +FLAGS ({k})")
    m.run(f"STORE 1 +FLAGS ({' '.join(KW[30:])})")
    assert not m.errors, "\n".join(m.errors)
    assert fetch_flags(a) == {1: set(KW)}
    # Removing some (with letters and without) leaves the rest.
    a.ok(f"STORE 1 -FLAGS ({KW[0]} {KW[35]})")
    assert fetch_flags(a) == {1: set(KW) - {KW[0], KW[35]}}
    # Another session reads them afresh.
    b = server.login()
    b.ok("EXAMINE INBOX")
    assert fetch_flags(b) == {1: set(KW) - {KW[0], KW[35]}}


def test_forty_distinct_keywords_across_messages_by_append(server):
    a = server.login()
    a.ok("CREATE Migrated")
    for i, k in enumerate(KW):
        r = a.command("APPEND Migrated (\\Seen " + k + ') "17-May-2001 12:00:00 +0000" ',
                      message(f"m{i}"))
        assert r.status == "OK", r.line
    r = a.ok("SELECT Migrated")
    assert r.number("EXISTS") == [40]
    listed = set(r.data("FLAGS")[0][1])
    assert set(KW) <= listed
    got = fetch_flags(a)
    assert got == {i + 1: {"\\Seen", k} for i, k in enumerate(KW)}
    # COPY keeps them, also into a mailbox whose letters are all taken.
    a.ok("CREATE Copy")
    a.ok("COPY 1:* Copy")
    a.ok("SELECT Copy")
    assert fetch_flags(a) == got


def test_keywords_beyond_26_survive_a_restart(pimap, workdir):
    a = pimap.login()
    append(a, "INBOX", message("one"), flags=" ".join(KW[:20]))
    append(a, "INBOX", message("two"), flags=" ".join(KW[20:]))
    a.ok("SELECT INBOX")
    a.ok(f"STORE 1 +FLAGS ({KW[39]})")
    before = fetch_flags(a)
    assert before == {1: set(KW[:20]) | {KW[39]}, 2: set(KW[20:])}
    pimap.stop()
    again = start_pimap(workdir, workdir / "users", workdir / "mail", name="pimap-again")
    try:
        b = again.login()
        r = b.ok("SELECT INBOX")
        assert set(KW) <= set(r.data("FLAGS")[0][1])
        assert fetch_flags(b) == before
    finally:
        again.stop()


def test_a_corrupt_keywords_file_fails_no_command(pimap):
    a = pimap.login()
    append(a, "INBOX", message("one"), flags=" ".join(KW[:30]))
    (pimap.maildir() / "pimap-keywords").write_text("not a keywords file\n")
    a.ok("SELECT INBOX")
    assert fetch_flags(a) == {1: set(KW[:26])}
    a.ok(f"STORE 1 +FLAGS ({KW[30]})")
    append(a, "INBOX", message("two"), flags=KW[31])
    assert fetch_flags(a) == {1: set(KW[:26]) | {KW[30]}, 2: {KW[31]}}
    assert (pimap.maildir() / "pimap-keywords.corrupt").exists()
    assert "pimap-keywords" in pimap.log_text() and "not usable" in pimap.log_text()


def test_dovecot_reads_the_first_26_from_the_file_names(both):
    dv, pm = both
    p = pm.login()
    append(p, "INBOX", message("many"), flags=" ".join(KW[:30]))
    d = dv.login()
    d.ok("SELECT INBOX")
    assert fetch_flags(d) == {1: set(KW[:26])}
    assert (pm.maildir() / "pimap-keywords").exists()
    assert set(listing(d.ok('LIST "" "*"'))) == {"INBOX"}  # not taken for a folder
    # Dovecot changes a flag (renaming the file): pimap keeps its extra keywords.
    d.ok("STORE 1 +FLAGS (\\Flagged)")
    p.ok("SELECT INBOX")
    assert fetch_flags(p) == {1: set(KW[:30]) | {"\\Flagged"}}
