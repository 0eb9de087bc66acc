"""ENABLE (RFC 5161), ESEARCH (RFC 4731), SEARCHRES (RFC 5182), STATUS=SIZE (RFC 8438).

C: A1 SEARCH RETURN (MIN MAX COUNT) FLAGGED
S: * ESEARCH (TAG "A1") MIN 2 MAX 4 COUNT 2
"""

import re

import pytest

from imapwire import append
from msgs import message


def caps(c) -> list[str]:
    return [str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]]


@pytest.fixture
def box5(server):
    c = server.login(name="A")
    for i in range(1, 6):
        append(c, "INBOX", message(f"m{i}"), flags="\\Flagged" if i in (2, 4) else None)
    c.ok("SELECT INBOX")
    return c


def esearch(r) -> bytes:
    lines = [u for u in r.untagged if u.upper().startswith(b"* ESEARCH")]
    assert len(lines) == 1, r.untagged
    return lines[0].rstrip(b"\r\n")


def test_advertised(server):
    c = server.login()
    have = set(caps(c))
    assert {"ENABLE", "ESEARCH", "SEARCHRES"} <= have


def test_enable_unknown_extension_lists_nothing(server):
    c = server.login()
    r = c.ok("ENABLE X-NO-SUCH-THING")
    # RFC 5161 §3.2: nothing was enabled, so an empty ENABLED (pimap) or none (Dovecot).
    assert r.untagged in ([b"* ENABLED\r\n"], [])


def test_enable_needs_authentication(pimap):
    """RFC 5161 §3.1: ENABLE is valid in the authenticated state only (Dovecot is lenient)."""
    c = pimap.connect()
    assert c.command("ENABLE CONDSTORE").status == "BAD"


def test_esearch_min_max_count(box5):
    r = box5.ok("SEARCH RETURN (MIN MAX COUNT) FLAGGED")
    tag = r.tag
    assert esearch(r) == f'* ESEARCH (TAG "{tag}") MIN 2 MAX 4 COUNT 2'.encode()
    assert r.search() == []  # no plain SEARCH response alongside


def test_esearch_all_uses_ranges(box5):
    r = box5.ok("SEARCH RETURN (ALL) 1:3,5")
    assert esearch(r) == f'* ESEARCH (TAG "{r.tag}") ALL 1:3,5'.encode()


def test_esearch_empty_return_means_all(box5):
    r = box5.ok("SEARCH RETURN () FLAGGED")
    assert esearch(r) == f'* ESEARCH (TAG "{r.tag}") ALL 2,4'.encode()


def test_uid_esearch_no_match(box5):
    """RFC 4731 §3.1: MIN/MAX/ALL are left out when nothing matches; COUNT is 0."""
    r = box5.ok("UID SEARCH RETURN (MIN MAX ALL COUNT) DELETED")
    assert esearch(r) == f'* ESEARCH (TAG "{r.tag}") UID COUNT 0'.encode()


def test_searchres_save_only_sends_no_esearch(box5):
    """RFC 5182 §2.4: SAVE alone gives no ESEARCH; `$` then works in FETCH and STORE."""
    r = box5.ok("SEARCH RETURN (SAVE) FLAGGED")
    assert not [u for u in r.untagged if b"ESEARCH" in u.upper()]
    r = box5.ok("FETCH $ (UID)")
    assert sorted(r.fetches()) == [2, 4]
    box5.ok("STORE $ +FLAGS.SILENT (\\Seen)")
    r = box5.ok("SEARCH SEEN")
    assert r.search() == [2, 4]


def test_searchres_in_search_and_uid_commands(box5):
    box5.ok("UID SEARCH RETURN (SAVE) 1:3")
    r = box5.ok("SEARCH $ FLAGGED")
    assert r.search() == [2]
    r = box5.ok("UID FETCH $ (FLAGS)")
    assert sorted(r.fetches()) == [1, 2, 3]


def test_searchres_min_only_saves_min(box5):
    box5.ok("SEARCH RETURN (SAVE MIN) FLAGGED")
    r = box5.ok("SEARCH $")
    assert r.search() == [2]


def test_searchres_survives_expunge_of_other_messages(box5):
    box5.ok("SEARCH RETURN (SAVE) 4:5")
    box5.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box5.ok("EXPUNGE")
    r = box5.ok("FETCH $ (UID)")
    assert sorted(v["UID"] for v in r.fetches().values()) == ["4", "5"]


def test_searchres_empty_before_any_save(box5):
    r = box5.ok("SEARCH $")
    assert r.search() == []


def test_status_size(server):
    c = server.login()
    if "STATUS=SIZE" not in caps(c):
        pytest.skip("STATUS=SIZE not advertised by this server")
    c.ok("CREATE Box")
    data = [message("a"), message("bb", body="longer body\n")]
    for d in data:
        append(c, "Box", d)
    r = c.ok("STATUS Box (MESSAGES SIZE)")
    items = r.data("STATUS")[0][2]
    got = {str(items[i]).upper(): int(items[i + 1]) for i in range(0, len(items), 2)}
    assert got == {"MESSAGES": 2, "SIZE": sum(len(d) for d in data)}


def test_status_size_advertised_by_pimap(pimap):
    assert "STATUS=SIZE" in caps(pimap.login())


def _imap_date(seconds_ago: int) -> str:
    import time

    t = time.gmtime(time.time() - seconds_ago)
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    return f"{t.tm_mday:02d}-{months[t.tm_mon - 1]}-{t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


@pytest.fixture
def aged(server):
    """Messages 1-4 with INTERNALDATEs 10 days, 2 hours, 10 minutes and 5 seconds ago."""
    c = server.login(name="A")
    for i, ago in enumerate([10 * 86400, 7200, 600, 5], start=1):
        append(c, "INBOX", message(f"aged{i}"), date=_imap_date(ago))
    c.ok("SELECT INBOX")
    return c


def test_within_advertised(server):
    assert "WITHIN" in caps(server.login())


def test_within_older_and_younger(aged):
    """RFC 5032 §3: OLDER / YOUNGER compare INTERNALDATE with the time of the command."""
    assert aged.ok("SEARCH OLDER 3600").search() == [1, 2]
    assert aged.ok("SEARCH YOUNGER 3600").search() == [3, 4]
    assert aged.ok("SEARCH YOUNGER 86400 OLDER 300").search() == [2, 3]
    assert aged.ok("UID SEARCH NOT YOUNGER 60").search() == [1, 2, 3]
    assert aged.ok("SEARCH OLDER 100000000").search() == []
    assert aged.ok("SEARCH YOUNGER 100000000").search() == [1, 2, 3, 4]
    r = aged.ok("SEARCH RETURN (COUNT) OR OLDER 86400 YOUNGER 60")
    assert esearch(r).endswith(b" COUNT 2")


@pytest.mark.parametrize("bad", ["OLDER", "OLDER 0", "YOUNGER -5", "YOUNGER x", "OLDER 4294967296"])
def test_within_bad_interval(aged, bad):
    """RFC 5032 §4: the interval is an nz-number of seconds."""
    assert aged.command(f"SEARCH {bad}").status == "BAD"
