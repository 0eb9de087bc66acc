"""THREAD=ORDEREDSUBJECT, THREAD=REFERENCES (RFC 5256) and Dovecot's THREAD=REFS, against pimap
and Dovecot with the same messages: the answers below are Dovecot 2.3's.

C: A1 THREAD REFERENCES UTF-8 ALL
S: * THREAD (3)((1 (2)(4))(5))
"""

import pytest

from conftest import MAIL_GID, MAIL_UID, chown_tree
from imapwire import append
from msgs import crlf, deliver
from test_meta_cache import corpus


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def msg(mid=None, subject=None, date=None, refs=None, irt=None, body="x\n") -> bytes:
    head = "".join(f"{name}: {value}\n" for name, value in
                   (("Message-ID", mid), ("Date", date), ("Subject", subject),
                    ("References", refs), ("In-Reply-To", irt))
                   if value is not None)
    return crlf(head + "\n" + body)


def day(h: int, m: int = 0) -> str:
    return f"Sun, 01 Mar 2020 {h:02d}:{m:02d}:00 +0000"


# Sequence numbers in the comments; the RFC 5256 §2.1 step each exercises.
CORPUS = [
    msg("<1@x>", "Hello", day(10)),  # 1: a thread root
    msg("<2@x>", "Re: Hello", day(11), refs="<1@x>"),  # 2: child of 1
    msg("<3@x>", "Re: Hello", day(12), refs="<1@x> <2@x>"),  # 3: child of 2
    msg("<4@x>", "Re: Hello", day(10, 30), irt="<1@x>"),  # 4: In-Reply-To only; 1's oldest
    msg("<5@x>", "Lost", day(9), refs="<gone@x>"),  # 5, 6: a missing parent (dummy)
    msg("<6@x>", "Re: Lost", day(9, 30), refs="<gone@x>"),
    msg("<7@x>", "Fwd: Hello", day(13)),  # 7: same subject, a forward: joins 1
    msg("<8@x>", "hello", day(14)),  # 8: same subject, not a reply: dummy over 1 and 8
    msg("<9@x>", "Party", day(15)),  # 9, 10: same subject, equal dates, no references
    msg("<10@x>", "Party", day(15)),
    msg("<11@x>", None, day(8)),  # 11: no Subject at all
    msg("<1@x>", "Dup", day(16), refs="<3@x>"),  # 12: duplicate Message-ID (1's)
    msg("<13@x>", "Loop A", day(17), refs="<14@x>"),  # 13, 14: a reference loop
    msg("<14@x>", "Loop B", day(17, 30), refs="<13@x>"),
    msg("garbage", "Junk", day(18), refs="<nodomain> junk <5@x> <also"),  # 15: garbage IDs
    msg("<16@x>", "Late", "not a date"),  # 16: bad Date: its INTERNALDATE (2021)
    msg("<17@x>", "[list] Re: Lost (fwd)", day(7)),  # 17: a list tag and (fwd) trailer
    msg(None, "Re: Party", day(19), refs="<10@x>"),  # 18: no Message-ID
]


def box(server, messages):
    c = server.login()
    for i, m in enumerate(messages):
        append(c, "INBOX", m, date=f"{i + 1:02d}-Jan-2021 00:00:00 +0000")
    c.ok("SELECT INBOX")
    return c


@pytest.fixture
def corpus_box(server):
    return box(server, CORPUS)


def thread(c, command: str) -> bytes:
    r = c.ok(command)
    lines = [u for u in r.untagged if u.upper().startswith(b"* THREAD")]
    assert len(lines) == 1, r.untagged
    return lines[0].rstrip(b"\r\n")


def test_advertised(server):
    assert {"THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "THREAD=REFS"} <= caps(server.login())


def test_references(corpus_box):
    """§2.1: 17 ("[list] Re: Lost (fwd)") joins the dummy over 5 and 6 by subject and, the
    oldest, dates it; 15's only valid reference is 5; 4 sorts first under 1 by date; 12 (a
    duplicate of 1's Message-ID) hangs under 3; 7 (a forward) joins 1's thread, 8 (same
    subject, not a reply) makes a dummy over both; 9 and 10 (same subject, same date) a dummy
    in UID order; the loop 13 ↔ 14 is broken by 14's own reference losing; 16's bad Date
    sorts it by INTERNALDATE, last."""
    assert thread(corpus_box, "THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD ((17)(5 15)(6))(11)((1 (4)(2 3 12)(7))(8))((9)(10 18))(14 13)(16)")


def test_refs(corpus_box):
    """REFS: no subject merging; threads in the order of their newest message."""
    assert thread(corpus_box, "THREAD REFS UTF-8 ALL") == (
        b"* THREAD (17)(11)(7)(8)(9)(1 (4)(2 3 12))(14 13)((5 15)(6))(10 18)(16)")


def test_orderedsubject(corpus_box):
    """RFC 5256 §3: by base subject, the first (oldest) message of each the parent of the
    rest; threads by their first message's date (no Subject: the empty base subject)."""
    assert thread(corpus_box, "THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (17 (5)(6))(11)(1 (4)(2)(3)(7)(8))(9 (10)(18))(12)(13)(14)(15)(16)")


def test_uid_thread_and_criteria(corpus_box):
    c = corpus_box
    c.ok("STORE 1:4 +FLAGS (\\Flagged)")
    # UIDs are the sequence numbers here; expunge 2 so that they differ.
    c.ok("STORE 2 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    assert thread(c, "UID THREAD REFERENCES UTF-8 FLAGGED") == b"* THREAD (1 (4)(3))"
    assert thread(c, "THREAD REFERENCES UTF-8 FLAGGED") == b"* THREAD (1 (3)(2))"
    assert thread(c, "UID THREAD REFS US-ASCII UID 1:6 NOT FLAGGED") == b"* THREAD ((5)(6))"
    assert thread(c, "THREAD ORDEREDSUBJECT utf-8 SUBJECT hello") == (
        b"* THREAD (1 (3)(2)(6)(7))")
    assert thread(c, "UID THREAD ORDEREDSUBJECT UTF-8 SUBJECT hello") == (
        b"* THREAD (1 (4)(3)(7)(8))")


def test_after_new_and_expunged_messages(corpus_box):
    """A second THREAD in the session sees new and expunged messages (pimap keeps what it
    read of each UID for the session; Dovecot updates its thread index)."""
    c = corpus_box
    for alg in ("REFERENCES", "REFS", "ORDEREDSUBJECT"):
        thread(c, f"THREAD {alg} UTF-8 ALL")
    append(c, "INBOX", msg("<19@x>", "Re: Lost", day(20), refs="<5@x>"))
    c.ok("STORE 1,13 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")
    # 12 now holds <1@x> alone: 2 and 4 hang under it, its own reference (3) is a loop.
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD ((15)(4 (13)(17))(5))(10)(7 6)((8)(9 16))(11 (3)(1 2))(12)(14)")
    assert thread(c, "UID THREAD REFS UTF-8 ALL") == (
        b"* THREAD (17)(11)(7)(8)(9)(12 (4)(2 3))(14)(10 18)((5 (15)(19))(6))(16)")
    assert thread(c, "THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (15 (4)(5)(17))(10)(3 (1)(2)(6)(7))(8 (9)(16))(11)(12)(13)(14)")


def test_two_sessions(server):
    """Sessions of one mailbox (pimap shares what it read between them): each sees the
    messages its view has, the other's APPEND after a NOOP."""
    a = box(server, CORPUS[:6])
    b = server.login()
    b.ok("SELECT INBOX")
    assert thread(a, "THREAD REFS UTF-8 ALL") == b"* THREAD ((5)(6))(1 (4)(2 3))"
    append(b, "INBOX", msg("<7@x>", "Re: Lost", day(20), refs="<6@x>"))
    b.ok("NOOP")
    assert thread(b, "THREAD REFS UTF-8 ALL") == b"* THREAD (1 (4)(2 3))((5)(6 7))"
    assert thread(b, "UID THREAD REFS UTF-8 2:*") == b"* THREAD ((4)(2 3))((5)(6 7))"
    a.ok("NOOP")
    assert thread(a, "THREAD REFERENCES UTF-8 5:*") == b"* THREAD ((5)(6 7))"


def test_empty_result(corpus_box):
    """Dovecot writes the space after THREAD even with no threads."""
    for alg in ("REFERENCES", "REFS", "ORDEREDSUBJECT"):
        r = corpus_box.ok(f"THREAD {alg} UTF-8 DELETED")
        assert r.untagged == [b"* THREAD \r\n"], r.untagged


def test_empty_mailbox(server):
    c = server.login()
    c.ok("SELECT INBOX")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == b"* THREAD "


@pytest.mark.parametrize("command,status,text", [
    ("THREAD BOGUS UTF-8 ALL", "BAD", "nknown thread algorithm"),
    ("THREAD REFERENCES UTF-8", "BAD", ""),
    ("THREAD REFERENCES", "BAD", ""),
    ("THREAD (REFERENCES) UTF-8 ALL", "BAD", ""),
    ("THREAD REFS UTF-8 BOGUS", "BAD", "BOGUS"),
    ("THREAD REFS X-NO-SUCH-CHARSET ALL", "NO", "[BADCHARSET"),
])
def test_bad_thread(corpus_box, command, status, text):
    r = corpus_box.command(command)
    assert r.status == status, r
    assert text in r.text, r


def test_thread_needs_selected_mailbox(server):
    assert server.login().command("THREAD REFS UTF-8 ALL").status in ("BAD", "NO")


def test_charset_search_string(server):
    """The search criteria in UTF-8 (a literal) match the decoded subject."""
    c = box(server, [msg("<a@x>", "=?utf-8?q?caf=C3=A9?= talk", day(1)),
                     msg("<b@x>", "Re: café talk", day(2), refs="<a@x>"),
                     msg("<c@x>", "Re: cafe talk", day(3), refs="<a@x>")])
    r = c.ok("THREAD REFERENCES UTF-8 SUBJECT ", "café".encode())
    assert [u for u in r.untagged if u.startswith(b"* THREAD")] == [b"* THREAD (1 2)\r\n"]
    assert thread(c, "THREAD REFERENCES US-ASCII SUBJECT talk") == b"* THREAD (1 (2)(3))"


def delivered(server, messages):
    """The messages delivered into INBOX in this order (UIDs 1, 2, ...), then selected."""
    maildir = server.maildir("demo")
    for i, data in enumerate(messages):
        deliver(maildir, data, name=f"1700000000.M{i:05d}P1.thread", uid=MAIL_UID, gid=MAIL_GID)
    chown_tree(maildir)
    c = server.login()
    c.ok("SELECT INBOX")
    return c


def test_long_references_and_deep_chain(server):
    """10,000 References entries, a 300-deep chain of real messages, self-references."""
    refs = " ".join(f"<r{i}@x>" for i in range(10_000))
    msgs = [msg("<r9999@x>", "long", day(1), refs=refs)]
    for i in range(300):
        parent = f"<d{i - 1}@x>" if i else "<r5000@x>"
        msgs.append(msg(f"<d{i}@x>", f"chain {i}", day(2, 0), refs=parent))
    msgs.append(msg("<self@x>", "self", day(3), refs="<self@x> <self@x>"))
    c = delivered(server, msgs)
    chain = " ".join(str(i) for i in range(3, 302))
    # Message 1 is <r9999@x>, the last of its own references: linking the list made it
    # r9998's child, then its own parent (the last reference: itself) conflicts with that, so
    # it is a root alone. The chain hangs from the dummies r0 ... r5000: the root dummy's one
    # child (2) takes its place.
    want = f"* THREAD (1)(2 {chain})(302)".encode()
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == want
    assert thread(c, "THREAD REFS UTF-8 ALL") == want


def test_corpus_like_dovecot(both):
    """Every algorithm over ~200 real and malformed messages, compared with Dovecot."""
    dv, pm = both
    maildir = dv.maildir("demo")  # the two servers share it
    for i, data in enumerate(corpus()):
        deliver(maildir, data, name=f"1700000000.M{i}P1.corpus", uid=MAIL_UID, gid=MAIL_GID)
    chown_tree(maildir)
    answers = {}
    for srv in (dv, pm):
        c = srv.login()
        c.ok("SELECT INBOX")
        answers[srv.is_pimap] = {alg: thread(c, f"UID THREAD {alg} UTF-8 ALL")
                                 for alg in ("REFERENCES", "REFS", "ORDEREDSUBJECT")}
    assert answers[False] == answers[True]


@pytest.mark.parametrize("seed,pool", [(s, p) for s in (1, 2, 3) for p in (12, 40, 300)])
def test_random_corpus_like_dovecot(both, seed, pool):
    """Random messages over `pool` IDs (few: duplicates, loops, self-references, conflicting
    parents; many: missing parents, so REFS dummy roots of equal date, which Dovecot orders by
    its string index over the whole mailbox), garbage IDs, subjects that merge or not, dates
    that tie: THREAD and UID THREAD with each algorithm and criteria, equal to Dovecot's."""
    import random
    rnd = random.Random(seed)
    dv, pm = both
    maildir = dv.maildir("demo")  # the two servers share it
    ids = [f"<m{i}@x>" for i in range(pool)] + ["<bad>", "junk", "<a b@c>", '<"q"@x>']
    subjects = ["topic", "Re: topic", "Fwd: topic", "[l] Re: topic (fwd)", "other", "Re: other",
                "", "Re:", None]
    for i in range(150):
        refs = " ".join(rnd.choice(ids) for _ in range(rnd.randrange(0, 5))) or None
        irt = rnd.choice(ids) if rnd.random() < 0.3 else None
        mid = rnd.choice(ids) if rnd.random() < 0.9 else None
        date = day(rnd.randrange(0, 4)) if rnd.random() < 0.9 else "bogus"
        data = msg(mid, rnd.choice(subjects), date, refs=refs, irt=irt)
        deliver(maildir, data, name=f"1700000000.M{i:05d}P1.random", uid=MAIL_UID, gid=MAIL_GID)
    chown_tree(maildir)
    commands = [f"{u}THREAD {alg} UTF-8 {crit}" for u in ("", "UID ")
                for alg in ("REFERENCES", "REFS", "ORDEREDSUBJECT")
                for crit in ("ALL", "2:120", "SUBJECT topic")]
    answers = {}
    for srv in (dv, pm):
        c = srv.login()
        c.ok("SELECT INBOX")
        answers[srv.is_pimap] = [thread(c, cmd) for cmd in commands]
    for cmd, a, b in zip(commands, answers[False], answers[True]):
        assert a == b, cmd


def test_warm_thread_does_not_read_message_files(pimap):
    c = box(pimap, CORPUS)
    algs = ("REFERENCES", "REFS", "ORDEREDSUBJECT")
    before = {a: thread(c, f"THREAD {a} UTF-8 ALL") for a in algs}
    for p in pimap.maildir("demo").glob("cur/*"):
        p.chmod(0)
    c2 = pimap.login()
    c2.ok("SELECT INBOX")
    assert {a: thread(c2, f"THREAD {a} UTF-8 ALL") for a in algs} == before
    r = c2.command("FETCH 1 BODY.PEEK[]")
    assert not r.ok or b"NIL" in b"".join(r.untagged), r
