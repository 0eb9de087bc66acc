"""SPECIAL-USE (RFC 6154): \\Sent \\Drafts \\Trash \\Junk \\Archive on LIST, and the
`LIST (SPECIAL-USE)` selection / `RETURN (SPECIAL-USE)` option.

pimap only: the test Dovecot runs without the stock 15-mailboxes.conf, so it marks nothing.
pimap follows that file's names (Drafts, Junk, Trash, Sent, "Sent Messages") plus Archive.
"""

import pytest

from imapwire import listing

SPECIAL = {"Sent": "\\sent", "Drafts": "\\drafts", "Trash": "\\trash", "Junk": "\\junk",
           "Archive": "\\archive", "Sent Messages": "\\sent"}
USES = {"\\sent", "\\drafts", "\\trash", "\\junk", "\\archive"}


@pytest.fixture
def boxes(pimap):
    c = pimap.login()
    for name in ["Sent", "Drafts", "Trash", "Junk", "Archive", '"Sent Messages"', "Work", "Work.Sent",
                 "sent-ish"]:
        c.ok(f"CREATE {name}")
    return c


def caps(c) -> list[str]:
    return [str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]]


def test_advertised(pimap):
    assert "SPECIAL-USE" in caps(pimap.login())


def test_plain_list_carries_attributes(boxes):
    got = listing(boxes.ok('LIST "" "*"'))
    for name, use in SPECIAL.items():
        assert use in got[name][0], (name, got[name])
    for name in ["INBOX", "Work", "Work.Sent", "sent-ish"]:
        assert not (got[name][0] & USES), (name, got[name])


def test_special_use_selection(boxes):
    """RFC 6154 §5.1: `LIST (SPECIAL-USE)` returns only mailboxes with a special use."""
    got = listing(boxes.ok('LIST (SPECIAL-USE) "" "*"'))
    assert set(got) == set(SPECIAL)
    assert got["Junk"][0] >= {"\\junk", "\\hasnochildren"}


def test_special_use_selection_with_pattern(boxes):
    got = listing(boxes.ok('LIST (SPECIAL-USE) "" "S%"'))
    assert set(got) == {"Sent", "Sent Messages"}


def test_return_special_use(boxes):
    got = listing(boxes.ok('LIST "" "%" RETURN (SPECIAL-USE)'))
    assert "\\trash" in got["Trash"][0]
    assert "Work" in got and "INBOX" in got


def test_attribute_follows_rename(boxes):
    boxes.ok("RENAME Junk Spam")
    got = listing(boxes.ok('LIST "" "*"'))
    assert "Junk" not in got and not (got["Spam"][0] & USES)


def test_lsub_unaffected(boxes):
    boxes.ok("SUBSCRIBE Sent")
    r = boxes.ok('LSUB "" "*"')
    assert set(listing(r, "LSUB")) == {"Sent"}


def test_new_user_gets_special_use_folders(workdir):
    # With the default --autocreate-folders true, a user's first login creates and subscribes
    # Drafts, Sent, Trash, Junk and Archive, each marked with its attribute.
    from conftest import start_pimap
    srv = start_pimap(workdir, workdir / "users", workdir / "mail", extra=["--autocreate-folders", "true"],
                      name="pimap-autocreate")
    try:
        c = srv.login()
        names = set(listing(c.ok('LIST "" "*"')))
        assert names == {"INBOX", "Drafts", "Sent", "Trash", "Junk", "Archive"}
        assert set(listing(c.ok('LSUB "" "*"'), "LSUB")) >= {"Drafts", "Sent", "Trash", "Junk", "Archive"}
        r = c.ok('LIST (SPECIAL-USE) "" "*"')
        assert len(listing(r)) == 5
        c.logout()
        # An existing user's folders are left alone: delete one and log in again.
        c = srv.login()
        c.ok("DELETE Archive")
        c.logout()
        c = srv.login()
        assert "Archive" not in set(listing(c.ok('LIST "" "*"')))
        c.logout()
    finally:
        srv.stop()
