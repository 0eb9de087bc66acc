"""STORE, COPY and the UID variants (RFC 3501 §6.4.6–6.4.8), keywords on disk."""

import pytest

from imapwire import append, flags
from msgs import message


@pytest.fixture
def box(server):
    c = server.login()
    for i in range(1, 5):
        append(c, "INBOX", message(f"m{i}"))
    c.ok("SELECT INBOX")
    return c


def flag_map(c, seqs="1:*"):
    return {k: flags(v["FLAGS"]) - {"\\Recent"} for k, v in c.ok(f"FETCH {seqs} FLAGS").fetches().items()}


def test_store_add_remove_replace(box):
    r = box.ok("STORE 1 +FLAGS (\\Flagged \\Seen)")
    # Without .SILENT the new flags come back as an untagged FETCH (§6.4.6).
    assert flags(r.fetches()[1]["FLAGS"]) - {"\\Recent"} == {"\\Flagged", "\\Seen"}
    r = box.ok("STORE 1 -FLAGS (\\Seen)")
    assert flags(r.fetches()[1]["FLAGS"]) - {"\\Recent"} == {"\\Flagged"}
    r = box.ok("STORE 1 FLAGS (\\Answered \\Draft)")
    assert flags(r.fetches()[1]["FLAGS"]) - {"\\Recent"} == {"\\Answered", "\\Draft"}
    r = box.ok("STORE 1 FLAGS ()")
    assert flags(r.fetches()[1]["FLAGS"]) - {"\\Recent"} == set()


def test_store_silent_sends_no_fetch(box):
    r = box.ok("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    assert r.fetches() == {}
    assert flag_map(box) == {1: set(), 2: {"\\Deleted"}, 3: {"\\Deleted"}, 4: set()}
    r = box.ok("STORE 2 -FLAGS.SILENT (\\Deleted)")
    assert r.fetches() == {}
    r = box.ok("STORE 3 FLAGS.SILENT (\\Seen)")
    assert r.fetches() == {}
    assert flag_map(box) == {1: set(), 2: set(), 3: {"\\Seen"}, 4: set()}


def test_store_ranges(box):
    r = box.ok("STORE 2:* +FLAGS (\\Seen)")
    assert set(r.fetches()) == {2, 3, 4}
    assert flag_map(box) == {1: set(), 2: {"\\Seen"}, 3: {"\\Seen"}, 4: {"\\Seen"}}


def test_store_keywords_persist(server, box):
    box.ok("STORE 1 +FLAGS ($Label1 Project-X)")
    box.ok("STORE 2 +FLAGS (Project-X)")
    box.ok("STORE 2 -FLAGS (Project-X)")
    assert flag_map(box) == {1: {"$Label1", "Project-X"}, 2: set(), 3: set(), 4: set()}
    box.logout()
    c = server.login()
    r = c.ok("SELECT INBOX")
    # Keywords in use are announced in FLAGS, and settable ones in PERMANENTFLAGS (§7.2.6).
    assert {"$Label1", "Project-X"} <= flags(r.data("FLAGS")[0][1])
    assert flag_map(c) == {1: {"$Label1", "Project-X"}, 2: set(), 3: set(), 4: set()}
    c.logout()
    # On disk the Dovecot way: dovecot-keywords maps letters to names, file names carry letters.
    root = server.maildir()
    kw = {}
    for line in (root / "dovecot-keywords").read_text().splitlines():
        idx, name = line.split(" ", 1)
        kw[name] = chr(ord("a") + int(idx))
    assert {"$Label1", "Project-X"} <= set(kw)
    names = [p.name for p in (root / "cur").iterdir()]
    tagged = [n for n in names if kw["$Label1"] in n.split(":2,", 1)[-1]]
    assert len(tagged) == 1
    assert kw["Project-X"] in tagged[0].split(":2,", 1)[1]


def test_store_flags_in_maildir_file_names(server, box):
    box.ok("STORE 1 FLAGS.SILENT (\\Seen \\Flagged \\Answered \\Draft \\Deleted)")
    box.logout()
    names = [p.name for p in (server.maildir() / "cur").iterdir()]
    infos = sorted(n.split(":2,", 1)[1] for n in names if ":2," in n)
    # Maildir info letters in ASCII order: D(raft) F(lagged) R(eplied) S(een) T(rashed).
    assert "DFRST" in infos


def test_store_bad_flag_syntax(box):
    assert box.command("STORE 1 +FLAGS (\\NoSuchSystemFlag)").status in ("BAD", "NO")
    assert box.command("STORE 1 +FLAGS (\\Recent)").status in ("BAD", "NO")  # §2.3.2: not settable
    assert box.command("STORE 1 +FLAGZ (\\Seen)").status == "BAD"
    box.ok("NOOP")


def test_copy_preserves_flags_and_bytes(box):
    box.ok("CREATE Archive")
    box.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Label1)")
    src = box.ok("FETCH 2:3 BODY.PEEK[]").fetches()
    box.ok("COPY 2:3 Archive")
    st = box.ok("STATUS Archive (MESSAGES)")
    assert st.data("STATUS")[0][2] == ["MESSAGES", "2"]
    # The source is unchanged.
    assert box.ok("FETCH 1:* UID").fetches().keys() == {1, 2, 3, 4}
    box.ok("SELECT Archive")
    dst = box.ok("FETCH 1:2 (FLAGS BODY.PEEK[])").fetches()
    assert flags(dst[1]["FLAGS"]) - {"\\Recent"} == {"\\Flagged", "$Label1"}
    assert flags(dst[2]["FLAGS"]) - {"\\Recent"} == set()
    # §6.4.7: copies get the \Recent flag in the destination.
    assert "\\Recent" in flags(dst[1]["FLAGS"])
    assert dst[1]["BODY[]"] == src[2]["BODY[]"]
    assert dst[2]["BODY[]"] == src[3]["BODY[]"]


def test_copy_to_missing_mailbox_says_trycreate(box):
    r = box.command("COPY 1 NoSuchBox")
    assert r.status == "NO" and r.code == "TRYCREATE", r.line


def test_uid_fetch_store_copy_search(box):
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    # Now seq 1..3 = UID 2..4.
    r = box.ok("UID FETCH 3:4 (FLAGS)")
    # §6.4.8: UID FETCH responses always include UID, and are keyed by sequence number.
    assert {k: v["UID"] for k, v in r.fetches().items()} == {2: "3", 3: "4"}
    r = box.ok("UID STORE 3 +FLAGS (\\Seen)")
    assert {k: (v["UID"], flags(v["FLAGS"]) - {"\\Recent"}) for k, v in r.fetches().items()} == {
        2: ("3", {"\\Seen"})}
    r = box.ok("UID SEARCH SEEN")
    assert r.search() == [3]
    r = box.ok("SEARCH SEEN")
    assert r.search() == [2]
    box.ok("CREATE Archive")
    box.ok("UID COPY 2,4 Archive")
    box.ok("SELECT Archive")
    r = box.ok("FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]").fetches()
    assert sorted(v["BODY[HEADER.FIELDS (SUBJECT)]"] for v in r.values()) == [
        b"Subject: m2\r\n\r\n", b"Subject: m4\r\n\r\n"]


def test_uid_ranges_and_star(box):
    # UIDs 1..4. `*` is the largest UID; n:* with n beyond it still names the last message.
    r = box.ok("UID FETCH 999:* UID")
    assert [v["UID"] for v in r.fetches().values()] == ["4"]
    r = box.ok("UID FETCH 2:3 UID")
    assert sorted(v["UID"] for v in r.fetches().values()) == ["2", "3"]
    # Non-existent UIDs are silently ignored (§6.4.8).
    r = box.ok("UID FETCH 50:60 UID")
    assert r.fetches() == {}
    r = box.ok("UID STORE 50 +FLAGS (\\Seen)")
    assert r.fetches() == {}
    r = box.ok("UID SEARCH UID 3:*")
    assert r.search() == [3, 4]


def test_uids_are_never_reused(server, box):
    box.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")
    append(box, "INBOX", message("m5"))
    r = box.ok("FETCH 1:* UID")
    assert sorted(int(v["UID"]) for v in r.fetches().values()) == [1, 2, 3, 5]
    box.logout()
    c = server.login()
    assert c.ok("SELECT INBOX").codes()["UIDNEXT"] == "6"
