"""Commands naming a message that another session expunged, before this session was told.

RFC 2180 §4.1: the session keeps its sequence numbers until it may be sent EXPUNGE, so a FETCH
or STORE may name a message that is gone. Like Dovecot, pimap serves what it still has, NIL
for what is gone, and completes with a tagged OK carrying [EXPUNGEISSUED] (RFC 5530); STORE
changes the others. A COPY or MOVE naming such a message fails as a whole with
NO [EXPUNGEISSUED] (RFC 2180 §4.4.1) and copies nothing, as in Dovecot.
"""

import pytest

from imapwire import append, flags
from msgs import SIMPLE, message
from test_view_model import ViewModel


@pytest.fixture
def gone(server):
    """A and B have INBOX (3 messages, UIDs 1-3) selected; B expunged message 1."""
    a = server.login(name="A")
    append(a, "INBOX", SIMPLE)
    append(a, "INBOX", message("m2"))
    append(a, "INBOX", message("m3"))
    a.ok("CREATE Other")
    a.ok("SELECT INBOX")
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    return a, b


def test_fetch_body_of_expunged_message_is_nil_and_ok(gone):
    a, _ = gone
    r = a.command("FETCH 1 (BODY.PEEK[])")
    assert r.status == "OK", r.line
    assert r.code == "EXPUNGEISSUED"
    f = r.fetches()
    assert sorted(f) == [1]
    assert f[1]["BODY[]"] is None
    assert r.number("EXPUNGE") == []  # §7.4.1: not during FETCH


def test_fetch_mixing_expunged_and_present_messages(gone):
    a, _ = gone
    r = a.command("FETCH 1:3 (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] ENVELOPE RFC822.SIZE)")
    assert r.status == "OK", r.line
    assert r.code == "EXPUNGEISSUED"
    f = r.fetches()
    assert sorted(f) == [1, 2, 3]
    assert f[1]["UID"] == "1"
    assert "FLAGS" in f[1]  # as last known (pimap) or as now (Dovecot)
    assert f[1]["BODY[HEADER.FIELDS (SUBJECT)]"] is None
    assert f[1]["ENVELOPE"] == [None] * 10
    assert f[2]["BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: m2\r\n\r\n"
    assert f[3]["UID"] == "3"
    assert r.number("EXPUNGE") == []
    # Once told, the numbering moves on.
    assert a.ok("NOOP").number("EXPUNGE") == [1]
    assert {k: v["UID"] for k, v in a.ok("FETCH 1:* UID").fetches().items()} == {1: "2", 2: "3"}


@pytest.mark.parametrize("item", ["RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY.PEEK[TEXT]",
                                  "BODY.PEEK[1]", "BODY.PEEK[]<0.10>", "BINARY.PEEK[1]",
                                  "BINARY.SIZE[1]", "INTERNALDATE", "BODY[]"])
def test_fetch_each_item_of_expunged_message_is_ok(gone, item):
    a, _ = gone
    r = a.command(f"FETCH 1 ({item})")
    assert r.status == "OK", r.line
    assert sorted(r.fetches()) == [1]


def test_uid_fetch_after_expunge_elsewhere_is_ok(gone):
    a, _ = gone
    r = a.command("UID FETCH 1:3 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert r.status == "OK", r.line
    uids = {v["UID"] for v in r.fetches().values()}
    assert uids >= {"2", "3"}


def test_store_on_expunged_message_changes_the_rest(gone):
    a, b = gone
    r = a.command("STORE 1:2 +FLAGS (\\Flagged)")
    assert r.status == "OK", r.line
    f = r.fetches()
    assert "\\Flagged" in flags(f[2]["FLAGS"])
    assert r.number("EXPUNGE") == []
    r = a.command("UID STORE 1:3 +FLAGS (\\Answered)")
    assert r.status == "OK", r.line
    r = b.ok("FETCH 1:* (UID FLAGS)").fetches()
    got = {v["UID"]: flags(v["FLAGS"]) - {"\\Recent"} for v in r.values()}
    assert got == {"2": {"\\Flagged", "\\Answered"}, "3": {"\\Answered"}}


@pytest.mark.parametrize("cmd", ["COPY 1:2 Other", "MOVE 1:2 Other", "COPY 1 Other"])
def test_copy_or_move_naming_an_expunged_message_fails_as_a_whole(gone, cmd):
    a, b = gone
    r = a.command(cmd)
    assert r.status == "NO", r.line
    assert r.code == "EXPUNGEISSUED"
    st = b.ok("STATUS Other (MESSAGES)").data("STATUS")[0][2]
    assert st == ["MESSAGES", "0"]
    assert b.ok("NOOP").number("EXPUNGE") == []  # MOVE moved nothing
    a.ok("NOOP")
    assert len(a.ok("SEARCH ALL").search()) == 2


def test_untagged_responses_of_a_command_are_never_lost(server):
    """New messages found while a command runs are announced (EXISTS) in that command's
    response, whatever its outcome: the session counts them from then on, so dropping the
    EXISTS with a failed command's output made later EXPUNGE and FETCH responses name
    sequence numbers the client was never told of."""
    a = server.login(name="A")
    for i in range(3):
        append(a, "INBOX", message(f"m{i}"))
    model = ViewModel(a, a.ok("SELECT INBOX"))
    b = server.login(name="B")
    b.ok("SELECT INBOX")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    for i in range(3):
        append(b, "INBOX", message(f"new {i}"))
    for cmd in ["STORE 1:3 +FLAGS (\\Seen)", "FETCH 1:3 (BODY.PEEK[])", "COPY 1:3 Other",
                "NOOP", "FETCH 1:* (UID FLAGS)"]:
        model.run(cmd, allow=("OK", "NO"))
    assert not model.errors, "\n".join(model.errors)
    assert model.uids == [2, 3, 4, 5, 6]
