"""CONDSTORE and QRESYNC (RFC 7162), as raw transcripts against Dovecot and pimap.

Mod-sequence values differ between servers (Dovecot counts from 1, pimap starts from a clock
value, see src/store/maildir/modseq.rs), so the tests compare values with each other, never
with constants; the shapes of the responses (which untagged responses, which UIDs, which
response codes) are what RFC 7162 prescribes and are checked exactly on both servers.

pimap-only tests at the end: mod-sequences survive a restart; deleting or corrupting the
`pimap-modseq` file never lowers HIGHESTMODSEQ nor changes UIDs; Dovecot changing flags or
expunging on the same Maildir is seen by pimap with new mod-sequences.
"""

import re

import pytest

from conftest import start_pimap
from imapwire import append, flags
from msgs import message


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def code_num(r, name: str) -> int:
    v = r.codes().get(name)
    assert v is not None, f"no [{name}] in {r.untagged!r} / {r.line!r}"
    return int(v)


def modseqs(r) -> dict[int, int]:
    """{UID or seq: modseq} from `* n FETCH (... MODSEQ (m) ...)`, keyed by UID when present."""
    out = {}
    for seq, items in r.fetches().items():
        assert "MODSEQ" in items, items
        ms = items["MODSEQ"]
        key = int(items["UID"]) if "UID" in items else seq
        out[key] = int(ms[0])
    return out


def vanished(r) -> list[tuple[bool, str]]:
    """[(earlier, uid-set)] of every `* VANISHED [(EARLIER)] set`."""
    out = []
    for raw in r.untagged:
        m = re.match(rb"\* VANISHED (\(EARLIER\) )?(\S+)\r\n$", raw)
        if m:
            out.append((m.group(1) is not None, m.group(2).decode()))
    return out


def expand(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        a, _, b = part.partition(":")
        lo, hi = sorted((int(a), int(b or a)))
        out.extend(range(lo, hi + 1))
    return out


def fill(c, n: int, box: str = "INBOX") -> None:
    for i in range(1, n + 1):
        append(c, box, message(f"m{i}"))


# -- CONDSTORE ---------------------------------------------------------------------------------

def test_advertised(server):
    c = server.login()
    assert {"CONDSTORE", "QRESYNC", "ENABLE"} <= caps(c)


def test_enable_and_highestmodseq_on_select(server):
    """RFC 7162 §3.1.2.1: once CONDSTORE is enabled, SELECT/EXAMINE report HIGHESTMODSEQ."""
    c = server.login()
    fill(c, 2)
    r = c.ok("ENABLE CONDSTORE")
    assert r.data("ENABLED") == [["ENABLED", "CONDSTORE"]]
    r = c.ok("SELECT INBOX")
    h = code_num(r, "HIGHESTMODSEQ")
    assert h > 0
    r = c.ok("EXAMINE INBOX")
    assert code_num(r, "HIGHESTMODSEQ") == h
    # STATUS (HIGHESTMODSEQ) of the same mailbox agrees.
    c.ok("UNSELECT")
    r = c.ok("STATUS INBOX (MESSAGES HIGHESTMODSEQ)")
    items = r.data("STATUS")[0][2]
    assert int(items[items.index("HIGHESTMODSEQ") + 1]) == h


def test_select_condstore_parameter(server):
    c = server.login()
    fill(c, 1)
    r = c.ok("SELECT INBOX (CONDSTORE)")
    assert code_num(r, "HIGHESTMODSEQ") > 0


def test_fetch_modseq_enables_condstore(server):
    """RFC 7162 §3.1: FETCH MODSEQ is CONDSTORE-enabling; with a mailbox selected the server
    then tells the HIGHESTMODSEQ it did not report in SELECT; STORE responses carry MODSEQ."""
    c = server.login()
    fill(c, 2)
    r = c.ok("SELECT INBOX")
    assert "HIGHESTMODSEQ" not in r.codes()
    r = c.ok("FETCH 1:2 (MODSEQ)")
    h = code_num(r, "HIGHESTMODSEQ")
    ms = modseqs(r)
    assert sorted(ms) == [1, 2] and max(ms.values()) <= h
    r = c.ok("STORE 2 +FLAGS (\\Seen)")
    f = r.fetches()[2]
    assert "\\Seen" in flags(f["FLAGS"])
    assert int(f["MODSEQ"][0]) > h


def test_store_and_changedsince(server):
    """RFC 7162 §3.1.4.1: FETCH (CHANGEDSINCE n) returns only messages whose mod-sequence is
    greater than n, with MODSEQ; every change raises the message's mod-sequence."""
    c = server.login()
    fill(c, 4)
    h0 = code_num(c.ok("SELECT INBOX (CONDSTORE)"), "HIGHESTMODSEQ")
    r = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
    assert r.fetches() == {}
    r = c.ok("STORE 2,4 +FLAGS.SILENT (\\Flagged)")
    # RFC 7162 §3.1.3: .SILENT still reports the new MODSEQ (and no FLAGS).
    f = r.fetches()
    assert sorted(f) == [2, 4]
    assert all(set(v) == {"MODSEQ"} for v in f.values()), f
    m2 = int(f[2]["MODSEQ"][0])
    assert m2 > h0
    r = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h0)
    got = r.fetches()
    assert sorted(got) == [2, 4]
    assert all(int(v["MODSEQ"][0]) == m2 and "\\Flagged" in flags(v["FLAGS"]) for v in got.values())
    # UID FETCH with CHANGEDSINCE returns UID too; a later change moves only that message.
    c.ok("STORE 4 -FLAGS.SILENT (\\Flagged)")
    r = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m2)
    got = r.fetches()
    assert list(got) == [4] and int(got[4]["UID"]) == 4
    m4 = int(got[4]["MODSEQ"][0])
    assert m4 > m2
    r = c.ok("STATUS INBOX (HIGHESTMODSEQ)")
    items = r.data("STATUS")[0][2]
    assert int(items[items.index("HIGHESTMODSEQ") + 1]) == m4


def test_store_unchangedsince_conflict(server):
    """RFC 7162 §3.1.3: messages changed after UNCHANGEDSINCE are not stored and are listed in
    [MODIFIED] (sequence numbers for STORE, UIDs for UID STORE); the others are stored."""
    a = server.login(name="A")
    fill(a, 3)
    a.ok("SELECT INBOX (CONDSTORE)")
    before = modseqs(a.ok("FETCH 1:3 (MODSEQ)"))
    seen = max(before.values())
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS (\\Answered)")  # another client changes message 1
    r = a.ok("STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % seen)
    assert r.code == "MODIFIED 1", r.line
    stored = r.fetches()
    assert 2 in stored and 3 in stored
    assert all(int(v["MODSEQ"][0]) > seen for k, v in stored.items() if k in (2, 3))
    assert all("\\Flagged" in flags(v["FLAGS"]) for k, v in stored.items() if k in (2, 3))
    now = a.ok("FETCH 1 (FLAGS)").fetches()[1]
    assert "\\Flagged" not in flags(now["FLAGS"]) and "\\Answered" in flags(now["FLAGS"])
    # UID STORE reports UIDs; UNCHANGEDSINCE equal to the current value passes (§3.1.3: "<=").
    b.ok("STORE 2 +FLAGS (\\Draft)")
    cur = modseqs(a.ok("UID FETCH 1:3 (MODSEQ)"))
    r = a.ok("UID STORE 2,3 (UNCHANGEDSINCE %d) -FLAGS (\\Flagged)" % cur[3])
    assert r.code == "MODIFIED 2", r.line
    r = a.ok("UID STORE 3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % modseqs(a.ok("UID FETCH 3 (MODSEQ)"))[3])
    assert r.code is None or not r.code.startswith("MODIFIED")


def test_search_modseq(server):
    """RFC 7162 §3.1.5: SEARCH MODSEQ n matches mod-sequences >= n; the result carries the
    highest mod-sequence of the matches (`(MODSEQ m)` / ESEARCH `MODSEQ m`)."""
    c = server.login()
    fill(c, 3)
    c.ok("SELECT INBOX (CONDSTORE)")
    r = c.ok("STORE 2 +FLAGS (\\Seen)")
    m = int(r.fetches()[2]["MODSEQ"][0])
    r = c.ok("SEARCH MODSEQ %d" % m)
    assert r.untagged == [b"* SEARCH 2 (MODSEQ %d)\r\n" % m]
    r = c.ok("UID SEARCH RETURN (ALL COUNT) MODSEQ %d" % m)
    tag = r.tag
    assert r.untagged == [b'* ESEARCH (TAG "%s") UID ALL 2 COUNT 1 MODSEQ %d\r\n' % (tag.encode(), m)]
    r = c.ok("SEARCH MODSEQ %d" % (m + 1))
    assert r.untagged == [b"* SEARCH\r\n"]


@pytest.mark.parametrize("ret, which", [
    ("MIN", [1]), ("MAX", [4]), ("MIN MAX", [1, 4]), ("SAVE MIN", [1]),
    ("MIN COUNT", [1, 2, 3, 4]), ("ALL", [1, 2, 3, 4]),
])
def test_esearch_modseq_is_that_of_the_returned_messages(server, ret, which):
    """RFC 7162 §3.1.5: with MIN and/or MAX (without ALL or COUNT) the ESEARCH `MODSEQ` is
    the highest mod-sequence of the messages returned, not of every match.

    C: A1 SEARCH RETURN (MAX) MODSEQ 1
    S: * ESEARCH (TAG "A1") MAX 4 MODSEQ <modseq of message 4>"""
    c = server.login()
    fill(c, 4)
    c.ok("SELECT INBOX (CONDSTORE)")
    for seq in (4, 1, 3):  # message 3 changed last: the highest mod-sequence of all
        c.ok(f"STORE {seq} +FLAGS (\\Seen)")
    ms = modseqs(c.ok("FETCH 1:4 (MODSEQ)"))
    assert ms[3] > ms[1] > ms[4]
    r = c.ok(f"SEARCH RETURN ({ret}) MODSEQ 1")
    nums = "".join(f" {k} {n}" for k, n in (("MIN", 1), ("MAX", 4)) if k in ret)
    if "ALL" in ret:
        nums = " ALL 1:4"
    if "COUNT" in ret:
        nums += " COUNT 4"
    top = max(ms[i] for i in which)
    assert r.untagged == [b'* ESEARCH (TAG "%s")%s MODSEQ %d\r\n' % (r.tag.encode(), nums.encode(), top)]


def test_condstore_flag_updates_carry_modseq(server):
    """RFC 7162 §3.1: once CONDSTORE is on, unsolicited FETCH responses carry MODSEQ."""
    a = server.login(name="A")
    fill(a, 2)
    a.ok("ENABLE CONDSTORE")
    h = code_num(a.ok("SELECT INBOX"), "HIGHESTMODSEQ")
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 2 +FLAGS (\\Flagged)")
    r = a.ok("NOOP")
    f = r.fetches()
    assert list(f) == [2] and "\\Flagged" in flags(f[2]["FLAGS"])
    assert int(f[2]["MODSEQ"][0]) > h


# -- QRESYNC -----------------------------------------------------------------------------------

def test_qresync_needs_enable(server):
    c = server.login()
    fill(c, 1)
    r = c.command("SELECT INBOX (QRESYNC (1 1))")
    assert r.status == "BAD"
    r = c.ok("ENABLE QRESYNC")
    assert r.data("ENABLED") == [["ENABLED", "QRESYNC"]]


def select_qresync(c, box: str, validity: int, modseq: int, extra: str = ""):
    inner = f"{validity} {modseq}" + (f" {extra}" if extra else "")
    return c.ok(f"SELECT {box} (QRESYNC ({inner}))")


def test_qresync_after_expunges_by_another_session(server):
    """RFC 7162 §3.2.5.1: a client back after a disconnect learns, in SELECT, the UIDs expunged
    meanwhile (VANISHED (EARLIER)) and the flag changes (FETCH UID FLAGS MODSEQ), nothing more."""
    a = server.login(name="A")
    fill(a, 6)
    a.ok("ENABLE QRESYNC")
    r = a.ok("SELECT INBOX")
    validity, h = code_num(r, "UIDVALIDITY"), code_num(r, "HIGHESTMODSEQ")
    a.logout()

    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("UID STORE 2,5 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    b.ok("UID STORE 3 +FLAGS.SILENT (\\Flagged)")

    a = server.login(name="A2")
    a.ok("ENABLE QRESYNC")
    r = select_qresync(a, "INBOX", validity, h, "1:6")
    assert vanished(r) == [(True, "2,5")]
    got = r.fetches()
    assert [int(v["UID"]) for v in got.values()] == [3]
    (seq, item), = got.items()
    assert seq == 2 and "\\Flagged" in flags(item["FLAGS"]) and int(item["MODSEQ"][0]) > h
    h2 = code_num(r, "HIGHESTMODSEQ")
    assert h2 >= int(item["MODSEQ"][0])
    # The responses come after the mailbox's untagged data, VANISHED before the FETCHes.
    kinds = [u.split(b" ")[1] for u in r.untagged]
    assert kinds.index(b"VANISHED") < kinds.index(b"2")
    # known-uids limit VANISHED; without changes there is nothing to report.
    r = select_qresync(a, "INBOX", validity, h, "1:4")
    assert vanished(r) == [(True, "2")]
    r = select_qresync(a, "INBOX", validity, h2)
    assert vanished(r) == [] and r.fetches() == {}
    # A stale UIDVALIDITY gets a plain SELECT.
    r = select_qresync(a, "INBOX", validity + 1, 1)
    assert vanished(r) == [] and r.fetches() == {}


def test_closed_when_switching_mailboxes(server):
    """RFC 7162 §3.2.11: `* OK [CLOSED]` marks the end of the previous mailbox's responses."""
    c = server.login()
    c.ok("CREATE Other")
    c.ok("ENABLE QRESYNC")
    r = c.ok("SELECT INBOX")
    assert b"[CLOSED]" not in b"".join(r.untagged)
    r = c.ok("EXAMINE Other")
    assert r.untagged[0].startswith(b"* OK [CLOSED]"), r.untagged
    c.ok("UNSELECT")
    r = c.ok("SELECT INBOX")
    assert b"[CLOSED]" not in b"".join(r.untagged)


def test_vanished_replaces_expunge(server):
    """RFC 7162 §3.2.10: with QRESYNC enabled, EXPUNGE, UID EXPUNGE and MOVE report
    `* VANISHED uids` instead of `* n EXPUNGE`; EXPUNGE's tagged OK tells HIGHESTMODSEQ."""
    c = server.login()
    fill(c, 6)
    c.ok("CREATE Dest")
    c.ok("ENABLE QRESYNC")
    c.ok("SELECT INBOX")
    c.ok("UID STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("EXPUNGE")
    assert vanished(r) == [(False, "2:3")] and r.number("EXPUNGE") == []
    assert code_num(r, "HIGHESTMODSEQ") > 0
    c.ok("UID STORE 6 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("UID EXPUNGE 6")
    assert vanished(r) == [(False, "6")]
    r = c.ok("UID MOVE 1,4 Dest")
    assert vanished(r) == [(False, "1,4")] and r.number("EXPUNGE") == []


def test_vanished_during_idle_and_noop(server):
    a = server.login(name="A")
    fill(a, 3)
    a.ok("ENABLE QRESYNC")
    a.ok("SELECT INBOX")
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    r = a.ok("NOOP")
    assert vanished(r) == [(False, "1")]
    tag = a.next_tag()
    a.send(f"{tag} IDLE\r\n".encode())
    assert a.read_response().startswith(b"+")
    b.ok("UID STORE 3 +FLAGS (\\Flagged)")
    b.ok("UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    got = []
    while not any(x.startswith(b"* VANISHED") for x in got):
        got.append(a.read_response())
    a.send(b"DONE\r\n")
    r = a.read_until_tagged(tag, got)
    assert vanished(r) == [(False, "2")]
    flag_updates = [x for x in r.untagged if b"FETCH" in x]
    # UID 3's \Flagged must come, with its MODSEQ. UID 2's \Deleted may come too: the IDLE
    # can wake between B's STORE and B's EXPUNGE (the message still exists then).
    assert any(b"UID 3" in x for x in flag_updates), flag_updates
    assert all(
        b"MODSEQ (" in x and (b"UID 3" in x or (b"UID 2" in x and b"\\Deleted" in x))
        for x in flag_updates
    ), flag_updates


def test_uid_fetch_vanished_modifier(server):
    """RFC 7162 §3.2.6: UID FETCH ... (CHANGEDSINCE n VANISHED) reports the UIDs of the set
    expunged since n as VANISHED (EARLIER), before the FETCH responses."""
    c = server.login()
    fill(c, 5)
    c.ok("ENABLE QRESYNC")
    h = code_num(c.ok("SELECT INBOX"), "HIGHESTMODSEQ")
    r = c.command("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert r.status == "OK" and vanished(r) == []
    c.ok("UID STORE 2,5 +FLAGS.SILENT (\\Deleted)")
    c.ok("UID EXPUNGE 2,5")
    c.ok("UID STORE 3 +FLAGS.SILENT (\\Seen)")
    r = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % h)
    assert vanished(r) == [(True, "2,5")]
    assert [int(v["UID"]) for v in r.fetches().values()] == [3]
    assert r.untagged[0].startswith(b"* VANISHED (EARLIER)")
    r = c.ok("UID FETCH 3:4 (FLAGS) (CHANGEDSINCE %d VANISHED)" % h)
    assert vanished(r) == []
    # VANISHED without QRESYNC-style UID FETCH is a syntax error.
    assert c.command("FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)").status == "BAD"


# -- pimap only: durability and the shared Maildir ---------------------------------------------

def restart(srv, request):
    srv.stop()
    new = start_pimap(srv.workdir, srv.workdir / "users", srv.mail_root)
    request.addfinalizer(new.stop)
    return new


def state(c) -> tuple[int, int, dict[int, int]]:
    r = c.ok("SELECT INBOX (CONDSTORE)")
    ms = modseqs(c.ok("UID FETCH 1:* (MODSEQ)"))
    c.ok("UNSELECT")
    return code_num(r, "UIDVALIDITY"), code_num(r, "HIGHESTMODSEQ"), ms


def test_modseq_survives_restart(pimap, request):
    c = pimap.login()
    fill(c, 3)
    c.ok("SELECT INBOX")
    c.ok("UID STORE 2 +FLAGS.SILENT (\\Seen)")
    c.ok("UNSELECT")
    before = state(c)
    assert (pimap.maildir() / "pimap-modseq").exists()
    srv = restart(pimap, request)
    assert state(srv.login()) == before


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_lost_modseq_file_never_lowers_highestmodseq(pimap, request, damage):
    c = pimap.login()
    fill(c, 3)
    c.ok("ENABLE QRESYNC")
    c.ok("SELECT INBOX")
    c.ok("UID STORE 1 +FLAGS.SILENT (\\Seen)")
    c.ok("UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    c.ok("UNSELECT")
    validity, high, ms = state(c)
    c.logout()
    f = pimap.maildir() / "pimap-modseq"
    if damage == "delete":
        f.unlink()
    else:
        f.write_bytes(b"pimap-modseq 1 V1 H\x00garbage\nM 1 x\n")
    srv = restart(pimap, request)
    c = srv.login()
    c.ok("ENABLE QRESYNC")
    r = select_qresync(c, "INBOX", validity, high)
    assert code_num(r, "UIDVALIDITY") == validity
    assert code_num(r, "HIGHESTMODSEQ") > high
    # The history is gone: the client gets every missing UID of its range (3) and, since
    # every message now has a new mod-sequence, the flags of all messages.
    assert vanished(r) == [(True, "3")]
    got = r.fetches()
    assert sorted(int(v["UID"]) for v in got.values()) == sorted(ms)
    assert all(int(v["MODSEQ"][0]) > high for v in got.values())
    if damage == "corrupt":
        assert (pimap.maildir() / "pimap-modseq.corrupt").exists()


def test_dovecot_changes_on_the_same_maildir_bump_modseq(both):
    """Dovecot renaming a file (flags) or expunging on the shared Maildir: pimap notices the
    difference and hands out new mod-sequences; a QRESYNC client hears about both."""
    dv, pm = both
    p = pm.login(name="pimap")
    fill(p, 4)
    p.ok("ENABLE QRESYNC")
    r = p.ok("SELECT INBOX")
    validity, h = code_num(r, "UIDVALIDITY"), code_num(r, "HIGHESTMODSEQ")
    p.ok("UNSELECT")
    d = dv.login(name="dovecot")
    d.ok("SELECT INBOX")
    d.ok("UID STORE 2 +FLAGS.SILENT (\\Flagged)")
    d.ok("UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    d.logout()
    r = select_qresync(p, "INBOX", validity, h, "1:4")
    assert vanished(r) == [(True, "4")]
    got = {int(v["UID"]): v for v in r.fetches().values()}
    assert list(got) == [2] and "\\Flagged" in flags(got[2]["FLAGS"])
    m2 = int(got[2]["MODSEQ"][0])
    assert m2 > h and code_num(r, "HIGHESTMODSEQ") >= m2
    # While selected: a Dovecot flag change shows up with a new MODSEQ at the next NOOP.
    d = dv.login(name="dovecot2")
    d.ok("SELECT INBOX")
    d.ok("UID STORE 1 +FLAGS.SILENT (\\Answered)")
    r = p.ok("NOOP")
    f = r.fetches()
    assert list(f) == [1] and int(f[1]["UID"]) == 1 and int(f[1]["MODSEQ"][0]) > m2
