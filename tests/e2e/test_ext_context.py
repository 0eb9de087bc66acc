"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): RETURN (CONTEXT), (PARTIAL lo:hi) and
(UPDATE), whose result changes come unsolicited, and CANCELUPDATE.

C: A1 SEARCH RETURN (UPDATE COUNT) UNSEEN
S: * ESEARCH (TAG "A1") COUNT 3
   (another session appends a message)
C: A2 NOOP
S: * 4 EXISTS
S: * ESEARCH (TAG "A1") ADDTO (0 4)

Exact responses against pimap and Dovecot 2.3 (which answers SEARCH updates with position 0,
and refuses RFC 9394's negative PARTIAL ranges). Dovecot does not offer CONTEXT=SORT, so the
SORT tests run against pimap alone.
"""

import socket
import time

import pytest

from conftest import MAIL_GID, MAIL_UID
from imapwire import append
from msgs import crlf, deliver


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def msg(subject: str) -> bytes:
    return crlf(f"From: a@example.com\nSubject: {subject}\n\nbody\n")


def box(server, n=4, seen=(2, 4)):
    """A session on INBOX with `n` messages (subjects s1..sn), `seen` ones \\Seen; and a
    second session on the same INBOX."""
    c = server.login(name="A")
    for i in range(1, n + 1):
        append(c, "INBOX", msg(f"s{i}"), flags="\\Seen" if i in seen else None)
    # The second session selects first and so has the messages \Recent: the FETCH
    # responses the tests compare carry no \Recent.
    d = server.login(name="B")
    d.ok("SELECT INBOX")
    c.ok("SELECT INBOX")
    return c, d


def lines(r) -> list[bytes]:
    """The untagged responses, without `* n RECENT`: \\Recent bookkeeping differs between
    the servers (Dovecot gives it to the appending session) and is not what is tested."""
    return [u.rstrip(b"\r\n") for u in r.untagged
            if not (u.upper().endswith(b" RECENT\r\n") and u[2:3].isdigit())]


def update(c, command: str) -> tuple[str, list[bytes]]:
    r = c.ok(command)
    return r.tag, lines(r)


def test_advertised(server):
    have = caps(server.login())
    assert "CONTEXT=SEARCH" in have
    if server.is_pimap:
        assert "CONTEXT=SORT" in have


@pytest.mark.parametrize("returns,expected", [
    ("PARTIAL 1:2", b"PARTIAL (1:2 1:2)"),
    ("PARTIAL 2:1", b"PARTIAL (1:2 1:2)"),
    ("PARTIAL 3:100", b"PARTIAL (3:100 3:4)"),
    ("PARTIAL 50:100", b"PARTIAL (50:100 NIL)"),
    ("PARTIAL 1:1 COUNT", b"PARTIAL (1:1 1) COUNT 4"),
    ("CONTEXT", b"ALL 1:4"),
    ("CONTEXT COUNT", b"COUNT 4"),
])
def test_partial_and_context(server, returns, expected):
    c, _ = box(server)
    r = c.ok(f"SEARCH RETURN ({returns}) ALL")
    assert lines(r) == [f'* ESEARCH (TAG "{r.tag}") '.encode() + expected]


def test_uid_partial_of_unseen(server):
    c, _ = box(server)
    r = c.ok("UID SEARCH RETURN (PARTIAL 2:2) UNSEEN")
    assert lines(r) == [f'* ESEARCH (TAG "{r.tag}") UID PARTIAL (2:2 3)'.encode()]


@pytest.mark.parametrize("returns", [
    "PARTIAL", "PARTIAL 0:1", "PARTIAL -1:-2", "PARTIAL 1:*", "PARTIAL 1", "PARTIAL 1:2 ALL",
    "PARTIAL 1:2 PARTIAL 3:4", "UPDATES",
])
def test_bad_return_options(server, returns):
    c, _ = box(server)
    assert c.command(f"SEARCH RETURN ({returns}) ALL").status == "BAD"


def test_update_tag_in_use(server):
    """A second updating search under an active one's tag is BAD (its updates could not
    be told apart), as Dovecot answers; a search without UPDATE may reuse it."""
    c, _ = box(server)
    r = c.ok("SEARCH RETURN (UPDATE) UNSEEN")
    assert c.command("SEARCH RETURN (UPDATE COUNT) SEEN", tag=r.tag).status == "BAD"
    again = c.command("SEARCH RETURN (COUNT) SEEN", tag=r.tag)
    assert (again.status, lines(again)) == ("OK", [f'* ESEARCH (TAG "{r.tag}") COUNT 2'.encode()])
    assert c.command("SEARCH RETURN (UPDATE UPDATE) SEEN").status == "BAD"


def test_cancelupdate_syntax(server):
    c, _ = box(server)
    assert c.command("CANCELUPDATE").status == "BAD"
    r = c.command('CANCELUPDATE "nosuch"')
    assert (r.status, r.untagged) == ("NO", [])


def test_update_initial_answers(server):
    c, _ = box(server)
    for returns, data in [("UPDATE", b""), ("UPDATE COUNT", b" COUNT 2"),
                          ("UPDATE MIN", b" MIN 2"), ("UPDATE PARTIAL 2:3", b" PARTIAL (2:3 4)")]:
        r = c.ok(f"SEARCH RETURN ({returns}) SEEN")
        assert lines(r) == [f'* ESEARCH (TAG "{r.tag}")'.encode() + data]


def test_append_by_another_session(server):
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    u, _ = update(c, "UID SEARCH RETURN (UPDATE) SEEN")
    append(d, "INBOX", msg("new"))
    append(d, "INBOX", msg("new seen"), flags="\\Seen")
    assert lines(c.ok("NOOP")) == [
        b"* 6 EXISTS",
        f'* ESEARCH (TAG "{t}") ADDTO (0 5)'.encode(),
        f'* ESEARCH (TAG "{u}") UID ADDTO (0 6)'.encode(),
    ]
    assert lines(c.ok("NOOP")) == []


def test_store_makes_match_and_unmatch(server):
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    d.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    d.ok("STORE 2 -FLAGS.SILENT (\\Seen)")
    assert lines(c.ok("NOOP")) == [
        b"* 1 FETCH (FLAGS (\\Seen))",
        b"* 2 FETCH (FLAGS ())",
        f'* ESEARCH (TAG "{t}") REMOVEFROM (0 1) ADDTO (0 2)'.encode(),
    ]
    # This session's own STORE: reported in its response, after its FETCH responses.
    assert lines(c.ok("STORE 3:4 +FLAGS.SILENT (\\Seen)")) == [
        f'* ESEARCH (TAG "{t}") REMOVEFROM (0 3)'.encode(),
    ]
    assert lines(c.ok("STORE 1 FLAGS.SILENT (\\Flagged)")) == [
        f'* ESEARCH (TAG "{t}") ADDTO (0 1)'.encode(),
    ]
    assert lines(c.ok("NOOP")) == []


def test_fetch_that_sets_seen(server):
    c, _ = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    assert lines(c.ok("FETCH 1 BODY[]"))[-1] == f'* ESEARCH (TAG "{t}") REMOVEFROM (0 1)'.encode()
    assert lines(c.ok("FETCH 2:3 BODY.PEEK[]"))[-1].startswith(b"* 3 FETCH ")
    assert lines(c.ok("NOOP")) == []


def test_flag_change_that_keeps_the_match_is_silent(server):
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    d.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
    assert lines(c.ok("NOOP")) == [b"* 1 FETCH (FLAGS (\\Flagged))"]


def test_expunge_by_another_session(server):
    """REMOVEFROM comes before the EXPUNGE, with the sequence number it was known by."""
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) SEEN")
    u, _ = update(c, "UID SEARCH RETURN (UPDATE) ALL")
    d.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    assert lines(c.ok("NOOP")) == [
        f'* ESEARCH (TAG "{u}") UID REMOVEFROM (0 3)'.encode(),
        b"* 3 EXPUNGE",
    ]
    d.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    assert lines(c.ok("NOOP")) == [
        f'* ESEARCH (TAG "{t}") REMOVEFROM (0 2)'.encode(),
        f'* ESEARCH (TAG "{u}") UID REMOVEFROM (0 2)'.encode(),
        b"* 2 EXPUNGE",
    ]


def test_own_expunge(server):
    c, _ = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) SEEN")
    c.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    assert lines(c.ok("EXPUNGE")) == [
        f'* ESEARCH (TAG "{t}") REMOVEFROM (0 4)'.encode(),
        b"* 4 EXPUNGE",
    ]


def test_positions_in_the_criteria_mean_the_messages_of_then(server):
    """Sequence numbers, `*` and UID `*` name the messages they named when the search ran:
    an expunge that renumbers, a new last message or a flag change report nothing."""
    c, d = box(server, n=6, seen=())
    quiet = [update(c, f"{cmd} RETURN (UPDATE) {keys}")[0]
             for cmd, keys in [("SEARCH", "2:3"), ("SEARCH", "*"), ("UID SEARCH", "UID 5:*"),
                               ("SEARCH", "OR 1 UNSEEN")]]
    d.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    assert lines(c.ok("NOOP")) == [
        f'* ESEARCH (TAG "{quiet[3]}") REMOVEFROM (0 1)'.encode(), b"* 1 EXPUNGE"]
    append(d, "INBOX", msg("new"), flags="\\Seen")
    assert lines(c.ok("NOOP")) == [b"* 6 EXISTS"]
    assert lines(c.ok("STORE 1:* +FLAGS.SILENT (\\Seen)")) == [
        f'* ESEARCH (TAG "{quiet[3]}") REMOVEFROM (0 1:5)'.encode()]
    assert lines(c.ok("NOOP")) == []


def test_no_expunge_during_fetch(server):
    """An expunge seen during FETCH (no EXPUNGE allowed, RFC 3501 §7.4.1) is reported with
    its REMOVEFROM at the next NOOP, not before."""
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) SEEN")
    d.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    d.ok("EXPUNGE")
    r = c.ok("FETCH 1 UID")
    assert not [x for x in lines(r) if b"ESEARCH" in x or b"EXPUNGE" in x]
    assert lines(c.ok("NOOP")) == [
        f'* ESEARCH (TAG "{t}") REMOVEFROM (0 2)'.encode(),
        b"* 2 EXPUNGE",
    ]


def test_cancelupdate(server):
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    u, _ = update(c, "SEARCH RETURN (UPDATE) SEEN")
    # An unknown tag makes it NO; the known ones are cancelled all the same.
    assert c.command(f'CANCELUPDATE "{t}" "nosuch"').status == "NO"
    assert c.command(f'CANCELUPDATE "{t}"').status == "NO"
    v, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    c.ok(f'CANCELUPDATE "{v}"')
    d.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    assert lines(c.ok("NOOP")) == [
        b"* 1 FETCH (FLAGS (\\Seen))",
        f'* ESEARCH (TAG "{u}") ADDTO (0 1)'.encode(),
    ]


@pytest.mark.parametrize("leave", ["SELECT INBOX", "EXAMINE INBOX", "UNSELECT"])
def test_updates_end_with_the_mailbox(server, leave):
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    c.ok(leave)
    if leave == "UNSELECT":
        c.ok("SELECT INBOX")
    d.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    append(d, "INBOX", msg("new"))
    assert not [x for x in lines(c.ok("NOOP")) if b"ESEARCH" in x]
    assert c.command(f'CANCELUPDATE "{t}"').status == "NO"


def test_delivered_into_the_maildir(server):
    """A message an MDA (or pimap's S3 sync, which writes the same way) puts in new/."""
    c, _ = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    deliver(server.maildir(), msg("mda"), uid=MAIL_UID, gid=MAIL_GID)
    assert lines(c.ok("NOOP")) == [
        b"* 5 EXISTS",
        f'* ESEARCH (TAG "{t}") ADDTO (0 5)'.encode(),
    ]


def wait_for(c, pattern: bytes, timeout: float) -> list[bytes]:
    """Untagged responses until one starts with `pattern`; fails after `timeout` seconds."""
    got = []
    deadline = time.monotonic() + timeout
    old = c.sock.gettimeout()
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} within {timeout}s; got {got!r}"
            c.sock.settimeout(left)
            try:
                resp = c.read_response()
            except socket.timeout:
                raise AssertionError(f"no {pattern!r} within {timeout}s; got {got!r}") from None
            got.append(resp.rstrip(b"\r\n"))
            if resp.startswith(pattern):
                return got
    finally:
        c.sock.settimeout(old)


def test_pushed_during_idle(server):
    c, d = box(server)
    t, _ = update(c, "SEARCH RETURN (UPDATE) UNSEEN")
    tag = c.next_tag()
    c.send(f"{tag} IDLE\r\n".encode())
    assert c.read_response().startswith(b"+")
    append(d, "INBOX", msg("new"))
    got = wait_for(c, b"* ESEARCH", 1.0 if server.is_pimap else 10.0)
    assert got[-1] == f'* ESEARCH (TAG "{t}") ADDTO (0 5)'.encode()
    assert b"* 5 EXISTS" in got
    c.send(b"DONE\r\n")
    assert c.read_until_tagged(tag).status == "OK"


def test_change_made_by_dovecot(both):
    """pimap's updating search sees what Dovecot does to the same Maildir."""
    dv, pm = both
    c = pm.login()
    for i in range(1, 4):
        append(c, "INBOX", msg(f"s{i}"))
    c.ok("SELECT INBOX")
    t, _ = update(c, "UID SEARCH RETURN (UPDATE) FLAGGED")
    d = dv.login()
    d.ok("SELECT INBOX")
    d.ok("UID STORE 2 +FLAGS.SILENT (\\Flagged)")
    append(d, "INBOX", msg("s4"), flags="\\Flagged")
    got = [x for x in lines(c.ok("NOOP")) if not x.endswith(b"FETCH (FLAGS (\\Flagged \\Recent))")]
    assert got == [b"* 4 EXISTS", f'* ESEARCH (TAG "{t}") UID ADDTO (0 2,4)'.encode()]


# CONTEXT=SORT: pimap alone (Dovecot 2.3 does not offer it).

def test_sort_update_positions(pimap):
    c, d = box(pimap, n=3, seen=())
    r = c.ok("SORT RETURN (UPDATE ALL) (REVERSE SUBJECT) UTF-8 ALL")
    t = r.tag
    assert lines(r) == [f'* ESEARCH (TAG "{t}") ALL 3,2,1'.encode()]
    append(d, "INBOX", msg("s0"))
    append(d, "INBOX", msg("s25"))
    # s3 s25 s2 s1 s0: each position holds when the client applies them in order.
    assert lines(c.ok("NOOP")) == [
        b"* 5 EXISTS",
        f'* ESEARCH (TAG "{t}") ADDTO (2 5)'.encode(),
        f'* ESEARCH (TAG "{t}") ADDTO (5 4)'.encode(),
    ]
    c.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    assert lines(c.ok("EXPUNGE")) == [
        f'* ESEARCH (TAG "{t}") REMOVEFROM (1 3)'.encode(),
        b"* 3 EXPUNGE",
    ]
    r = c.ok("SORT RETURN (ALL) (REVERSE SUBJECT) UTF-8 ALL")
    assert lines(r) == [f'* ESEARCH (TAG "{r.tag}") ALL 4,2,1,3'.encode()]


def test_uid_sort_update_and_partial(pimap):
    c, d = box(pimap, n=4, seen=(2,))
    r = c.ok("UID SORT RETURN (UPDATE PARTIAL 1:2) (SUBJECT) UTF-8 UNSEEN")
    t = r.tag
    assert lines(r) == [f'* ESEARCH (TAG "{t}") UID PARTIAL (1:2 1,3)'.encode()]
    d.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
    d.ok("STORE 2 -FLAGS.SILENT (\\Seen)")
    assert lines(c.ok("NOOP"))[-2:] == [
        f'* ESEARCH (TAG "{t}") UID REMOVEFROM (2 3)'.encode(),
        f'* ESEARCH (TAG "{t}") UID ADDTO (2 2)'.encode(),
    ]


def test_too_many_updates(server):
    """At most 10 updating searches per session (Dovecot's bound too); another is answered,
    with an untagged NO [NOUPDATE] (RFC 5267 §4.2), and not updated."""
    c, d = box(server)
    tags = [update(c, "SEARCH RETURN (UPDATE) UNSEEN")[0] for _ in range(10)]
    r = c.ok("SEARCH RETURN (UPDATE COUNT) UNSEEN")
    # Dovecot sends no text after the code (RFC 3501's resp-text wants some): cut pimap's.
    no = f'* NO [NOUPDATE "{r.tag}"]'.encode()
    got = [no if x.startswith(no + b" ") else x for x in lines(r)]
    assert got == [no, f'* ESEARCH (TAG "{r.tag}") COUNT 2'.encode()]
    d.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    got = [x for x in lines(c.ok("NOOP")) if b"ESEARCH" in x]
    assert got == [f'* ESEARCH (TAG "{t}") REMOVEFROM (0 1)'.encode() for t in tags]
    # A cancelled one makes room.
    c.ok(f'CANCELUPDATE "{tags[0]}"')
    r = c.ok("SEARCH RETURN (UPDATE) UNSEEN")
    assert not [x for x in lines(r) if b"NOUPDATE" in x]
