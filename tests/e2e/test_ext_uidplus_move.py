"""UIDPLUS (RFC 4315), MOVE (RFC 6851), and the small extensions both servers advertise:
NAMESPACE (RFC 2342), UNSELECT (RFC 3691), CHILDREN (RFC 3348), ID (RFC 2971),
SASL-IR (RFC 4959), LITERAL+ (RFC 7888).

Each test checks the exact response the RFC requires, against Dovecot and pimap.
"""

import base64
import re

import pytest

from imapwire import append, listing
from msgs import message


def caps(c) -> list[str]:
    return [str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]]


@pytest.fixture
def inbox3(server):
    c = server.login(name="A")
    for i in range(1, 4):
        append(c, "INBOX", message(f"m{i}"))
    c.ok("CREATE Dest")
    c.ok("SELECT INBOX")
    return c


def uidvalidity(c, mailbox: str) -> int:
    r = c.ok(f"STATUS {mailbox} (UIDVALIDITY)")
    items = r.data("STATUS")[0][2]
    return int(items[items.index("UIDVALIDITY") + 1])


# -- UIDPLUS ---------------------------------------------------------------------------------

def test_uidplus_advertised(server):
    c = server.login()
    assert {"UIDPLUS", "MOVE", "NAMESPACE", "UNSELECT", "CHILDREN", "ID", "LITERAL+",
            "SASL-IR", "IDLE"} <= set(caps(c))


def test_appenduid_exact(server):
    """RFC 4315 §3: `OK [APPENDUID <uidvalidity> <uid>]`."""
    c = server.login()
    c.ok("CREATE Box")
    v = uidvalidity(c, "Box")
    r = append(c, "Box", message("one"))
    assert r.code == f"APPENDUID {v} 1"
    r = append(c, "Box", message("two"))
    assert r.code == f"APPENDUID {v} 2"


def test_copyuid_exact(inbox3):
    """RFC 4315 §3: `OK [COPYUID <uidvalidity> <source uids> <dest uids>]` in matching order."""
    c = inbox3
    v = uidvalidity(c, "Dest")
    r = c.ok("COPY 2:3 Dest")
    name, dv, src, dst = r.code.split(" ")
    assert (name, int(dv)) == ("COPYUID", v)
    assert expand(src) == [2, 3] and expand(dst) == [1, 2]
    r = c.ok("UID COPY 1 Dest")
    assert r.code == f"COPYUID {v} 1 3"


def replay(uids: list[int], expunges: list[int]) -> list[int]:
    uids = list(uids)
    for seq in expunges:
        del uids[seq - 1]
    return uids


def expand(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        a, _, b = part.partition(":")
        lo, hi = sorted((int(a), int(b or a)))
        out.extend(range(lo, hi + 1))
    return out


def test_uid_expunge_only_the_given_uids(inbox3):
    """RFC 4315 §2.1: only \\Deleted messages within the UID set are expunged."""
    c = inbox3
    c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("UID EXPUNGE 2")
    assert r.number("EXPUNGE") == [2]
    r = c.ok("UID FETCH 1:* UID")
    assert sorted(v["UID"] for v in r.fetches().values()) == ["1", "3"]


def test_uid_expunge_ignores_undeleted(inbox3):
    c = inbox3
    r = c.ok("UID EXPUNGE 1:3")
    assert r.number("EXPUNGE") == []


def test_copy_to_missing_mailbox_trycreate(inbox3):
    r = inbox3.command("COPY 1 Nowhere")
    assert r.status == "NO" and r.code == "TRYCREATE"


# -- MOVE ------------------------------------------------------------------------------------

def test_move_untagged_copyuid_and_expunges(inbox3):
    """RFC 6851 §4.3: `* OK [COPYUID ...]` untagged, then EXPUNGE for each moved message."""
    c = inbox3
    v = uidvalidity(c, "Dest")
    r = c.ok("MOVE 1:2 Dest")
    codes = [u for u in r.untagged if u.startswith(b"* OK [COPYUID")]
    assert len(codes) == 1, r.untagged
    m = re.match(rb"\* OK \[COPYUID (\d+) (\S+) (\S+)\]", codes[0])
    assert int(m.group(1)) == v
    assert expand(m.group(2).decode()) == [1, 2] and expand(m.group(3).decode()) == [1, 2]
    # Sequence numbers shift after each EXPUNGE (`1 1` from pimap, `2 1` from Dovecot):
    # replaying them on the old view must remove exactly UIDs 1 and 2.
    assert replay([1, 2, 3], r.number("EXPUNGE")) == [3]
    # The COPYUID comes before the EXPUNGEs.
    order = [u for u in r.untagged if b"COPYUID" in u or b"EXPUNGE" in u]
    assert b"COPYUID" in order[0]
    assert c.ok("STATUS Dest (MESSAGES)").data("STATUS")[0][2][1] == "2"


def test_uid_move(inbox3):
    c = inbox3
    v = uidvalidity(c, "Dest")
    r = c.ok("UID MOVE 3 Dest")
    assert any(u.startswith(f"* OK [COPYUID {v} 3 1]".encode()) for u in r.untagged), r.untagged
    assert r.number("EXPUNGE") == [3]


@pytest.mark.parametrize("cmd", ["MOVE 1 INBOX", "UID MOVE 1 INBOX"])
def test_move_into_the_selected_mailbox(inbox3, cmd):
    """RFC 6851 §3.3: a MOVE into the selected mailbox expunges the message and reports
    the new copy, as Dovecot does:

    C: A1 MOVE 1 INBOX
    S: * OK [COPYUID v 1 4] ...
    S: * 1 EXPUNGE
    S: * 3 EXISTS
    """
    c = inbox3
    v = uidvalidity(c, "INBOX")
    r = c.ok(cmd)
    # The \Recent count is unchanged (one recent message out, one in): Dovecot leaves the
    # RECENT response out, pimap repeats it.
    assert [u for u in r.untagged if b"RECENT" not in u] == [
        f"* OK [COPYUID {v} 1 4] ".encode() + r.untagged[0].split(b"] ", 1)[1],
        b"* 1 EXPUNGE\r\n",
        b"* 3 EXISTS\r\n",
    ]
    assert [u for u in r.untagged if b"RECENT" in u] in ([], [b"* 3 RECENT\r\n"])
    r = c.ok("FETCH 1:* (UID)")
    assert r.untagged == [b"* 1 FETCH (UID 2)\r\n", b"* 2 FETCH (UID 3)\r\n",
                          b"* 3 FETCH (UID 4)\r\n"]
    assert c.ok("NOOP").untagged == []


def test_move_seen_by_other_session_on_source(server, inbox3):
    """RFC 6851 §4.3: the other session sees the EXPUNGEs at its next NOOP, not during FETCH."""
    c = inbox3
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    c.ok("MOVE 2 Dest")
    r = b.command("FETCH 1:* UID")
    assert r.number("EXPUNGE") == []
    r = b.ok("NOOP")
    assert r.number("EXPUNGE") == [2]
    r = b.ok("FETCH 1:* UID")
    assert {k: v["UID"] for k, v in r.fetches().items()} == {1: "1", 2: "3"}


def test_move_to_missing_mailbox_trycreate(inbox3):
    r = inbox3.command("MOVE 1 Nowhere")
    assert r.status == "NO" and r.code == "TRYCREATE"
    assert inbox3.ok("NOOP").number("EXPUNGE") == []


# -- NAMESPACE, UNSELECT, CHILDREN, ID -------------------------------------------------------

def test_namespace_personal_only(server):
    """RFC 2342 §5: one personal namespace with prefix "" and separator ".", no others."""
    c = server.login()
    r = c.ok("NAMESPACE")
    assert len(r.untagged) == 1
    assert r.untagged[0] == b'* NAMESPACE (("" ".")) NIL NIL\r\n'


def test_unselect_does_not_expunge(inbox3):
    """RFC 3691: UNSELECT leaves \\Deleted messages in place, unlike CLOSE."""
    c = inbox3
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    r = c.ok("UNSELECT")
    assert r.number("EXPUNGE") == []
    assert c.command("FETCH 1 UID").status == "BAD"  # not selected any more
    r = c.ok("STATUS INBOX (MESSAGES)")
    assert r.data("STATUS")[0][2][1] == "3"


def test_unselect_needs_selected_state(server):
    c = server.login()
    assert c.command("UNSELECT").status == "BAD"


def test_children_flags(server):
    """RFC 3348: \\HasChildren / \\HasNoChildren on every LIST entry."""
    c = server.login()
    c.ok("CREATE Parent")
    c.ok("CREATE Parent.Kid")
    c.ok("CREATE Lone")
    boxes = listing(c.ok('LIST "" "*"'))
    assert "\\haschildren" in boxes["Parent"][0]
    assert "\\hasnochildren" in boxes["Parent.Kid"][0]
    assert "\\hasnochildren" in boxes["Lone"][0]
    c.ok("DELETE Parent.Kid")
    boxes = listing(c.ok('LIST "" "*"'))
    assert "\\hasnochildren" in boxes["Parent"][0]


def test_id_answers_with_name(server):
    """RFC 2971 §3.1: `* ID (field value ...)` or `* ID NIL`, in any state."""
    c = server.connect()
    r = c.ok('ID ("name" "e2e" "version" "1")')
    assert len(r.data("ID")) == 1
    fields = r.data("ID")[0][1]
    assert fields == "NIL" or (isinstance(fields, list) and len(fields) % 2 == 0)
    r = c.ok("ID NIL")
    assert len(r.data("ID")) == 1


# -- SASL-IR, LITERAL+ -----------------------------------------------------------------------

def test_sasl_ir_initial_response(server):
    """RFC 4959: the PLAIN response on the AUTHENTICATE line, no `+` round trip."""
    c = server.connect()
    ir = base64.b64encode(b"\0demo\0" + server.password("demo").encode()).decode()
    r = c.command(f"AUTHENTICATE PLAIN {ir}")
    assert r.status == "OK", r.line
    assert r.continuation is None


def test_literal_plus_needs_no_continuation(server):
    """RFC 7888: `{n+}` literals are sent without waiting for `+`."""
    c = server.login()
    data = message("lit+")
    tag = c.next_tag()
    c.send(f"{tag} APPEND INBOX {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    r = c.read_until_tagged(tag)
    assert r.status == "OK", r.line
    assert r.continuation is None
    c.ok("SELECT INBOX")
    tag = c.next_tag()
    c.send(f"{tag} SEARCH SUBJECT {{4+}}\r\nlit+\r\n".encode())
    r = c.read_until_tagged(tag)
    assert r.status == "OK" and r.search() == [1], r.line
