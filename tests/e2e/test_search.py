"""SEARCH (RFC 3501 §6.4.4): keys, dates, sizes, sets, OR/NOT/parentheses, CHARSET UTF-8."""

import pytest

from imapwire import append
from msgs import crlf, message

BIG_BODY = ("lorem ipsum dolor sit amet " * 3 + "\n") * 70  # about 5.7 kB

# (message, flags, internal date). Sequence numbers 1..6 follow this order.
CORPUS = [
    (message("Quarterly report", "Numbers attached.\n", sender="Alice Example <alice@example.org>",
             to="Bob <bob@example.net>", date="Tue, 03 Mar 2020 09:00:00 +0000"),
     "\\Seen", "10-Mar-2020 12:00:00 +0000"),
    (message("Lunch?", "Pizza at noon?\n", sender="Bob <bob@example.net>", to="alice@example.org",
             date="Fri, 13 Mar 2020 11:00:00 +0000"),
     "\\Seen \\Flagged", "15-Mar-2020 12:00:00 +0000"),
    (crlf("Date: Thu, 19 Mar 2020 08:00:00 +0000\nFrom: Carol <carol@example.com>\n"
          "To: alice@example.org\nSubject: =?UTF-8?Q?Caf=C3=A9_time?=\nX-Priority: 1\n"
          "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
          "Content-Transfer-Encoding: quoted-printable\n\nMeet at the caf=C3=A9?\n"),
     None, "20-Mar-2020 12:00:00 +0000"),
    (message("Big attachment", BIG_BODY, sender="Alice Example <alice@example.org>",
             to="Carol <carol@example.com>", date="Tue, 24 Mar 2020 10:00:00 +0000"),
     "\\Answered", "25-Mar-2020 12:00:00 +0000"),
    (message("Re: Lunch?", "No pizza today, sorry.\n", sender="Dave <dave@example.com>",
             to="Bob <bob@example.net>", date="Wed, 01 Apr 2020 10:00:00 +0000",
             extra="In-Reply-To: <lunch@example.net>\n"),
     "$Important", "01-Apr-2020 12:00:00 +0000"),
    (message("Draft idea", "Thinking about it.\n", sender="Alice Example <alice@example.org>",
             to="Dave <dave@example.com>", date="Thu, 02 Apr 2020 10:00:00 +0000"),
     "\\Draft \\Deleted", "02-Apr-2020 12:00:00 +0000"),
]


@pytest.fixture
def box(server):
    c = server.login()
    for data, fl, date in CORPUS:
        append(c, "INBOX", data, flags=fl, date=date)
    c.ok("SELECT INBOX")
    return c


CASES = [
    ("ALL", {1, 2, 3, 4, 5, 6}),
    ("SEEN", {1, 2}),
    ("UNSEEN", {3, 4, 5, 6}),
    ("FLAGGED", {2}),
    ("UNFLAGGED", {1, 3, 4, 5, 6}),
    ("ANSWERED", {4}),
    ("DELETED", {6}),
    ("UNDELETED", {1, 2, 3, 4, 5}),
    ("DRAFT", {6}),
    ("KEYWORD $Important", {5}),
    ("UNKEYWORD $Important", {1, 2, 3, 4, 6}),
    ("FROM alice", {1, 4, 6}),
    ("FROM ALICE@EXAMPLE.ORG", {1, 4, 6}),  # case-insensitive substring (§6.4.4)
    ("TO carol", {4}),
    ('SUBJECT "lunch"', {2, 5}),
    ("SUBJECT Re:", {5}),
    ("HEADER X-Priority 1", {3}),
    ('HEADER X-Priority ""', {3}),  # an empty string matches every message with the field
    ("HEADER In-Reply-To lunch@example.net", {5}),
    ("BODY pizza", {2, 5}),
    ("BODY PIZZA", {2, 5}),
    ("BODY carol", set()),  # BODY does not look at the header
    ("TEXT carol", {3, 4}),  # TEXT does
    ("TEXT ipsum", {4}),
    ("SINCE 20-Mar-2020", {3, 4, 5, 6}),  # internal date, ignoring time (§6.4.4)
    ("BEFORE 20-Mar-2020", {1, 2}),
    ("ON 20-Mar-2020", {3}),
    ("SENTSINCE 19-Mar-2020", {3, 4, 5, 6}),  # Date: header
    ("SENTBEFORE 13-Mar-2020", {1}),
    ("SENTON 13-Mar-2020", {2}),
    ("LARGER 3000", {4}),
    ("SMALLER 3000", {1, 2, 3, 5, 6}),
    ("2,4:5", {2, 4, 5}),
    ("1:3 SEEN", {1, 2}),
    ("*", {6}),
    ("UID 2:3", {2, 3}),
    ("UID 5:*", {5, 6}),
    ("OR FROM bob FROM dave", {2, 5}),
    ("NOT SEEN", {3, 4, 5, 6}),
    ("NOT FROM alice", {2, 3, 5}),
    ("(OR FROM bob FROM carol) UNSEEN", {3}),
    ("OR (FROM alice SEEN) KEYWORD $Important", {1, 5}),
    ("OR OR FLAGGED ANSWERED DRAFT", {2, 4, 6}),
    ("FROM alice SUBJECT report", {1}),
]


@pytest.mark.parametrize("query,expected", CASES, ids=[q for q, _ in CASES])
def test_search(box, query, expected):
    r = box.ok(f"SEARCH {query}")
    assert set(r.search()) == expected
    assert len(r.data("SEARCH")) == 1


def test_search_new_recent_old(box):
    # Everything was appended before SELECT, so every message is \Recent in this session.
    assert set(box.ok("SEARCH RECENT").search()) == {1, 2, 3, 4, 5, 6}
    assert set(box.ok("SEARCH NEW").search()) == {3, 4, 5, 6}
    assert box.ok("SEARCH OLD").search() == []


def test_search_charset_utf8_literal(box):
    r = box.ok("SEARCH CHARSET UTF-8 SUBJECT ", "Café".encode())
    assert r.search() == [3]  # RFC 2047 encoded subject, decoded before matching
    r = box.ok("SEARCH CHARSET UTF-8 BODY ", "café".encode())
    assert r.search() == [3]  # quoted-printable body, decoded before matching
    r = box.ok("SEARCH CHARSET UTF-8 TEXT ", "Café".encode())
    assert r.search() == [3]


def test_search_ascii_charsets(box):
    assert set(box.ok("SEARCH CHARSET US-ASCII FROM alice").search()) == {1, 4, 6}


def test_search_unknown_charset(box):
    r = box.command("SEARCH CHARSET X-NO-SUCH-CHARSET FROM alice")
    # §6.4.4: NO with [BADCHARSET] (optionally listing the supported charsets).
    assert r.status == "NO", r.line
    assert r.code and r.code.upper().startswith("BADCHARSET")


def test_uid_search_after_expunge(box):
    box.ok("EXPUNGE")  # removes 6 (\Deleted)
    box.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    box.ok("EXPUNGE")  # seq 1..4 are now UIDs 2..5
    assert box.ok("SEARCH FROM alice").search() == [3]
    assert box.ok("UID SEARCH FROM alice").search() == [4]
    assert set(box.ok("UID SEARCH ALL").search()) == {2, 3, 4, 5}
    assert set(box.ok("UID SEARCH UID 1:3").search()) == {2, 3}


def test_search_syntax_errors(box):
    for bad in ("SEARCH", "SEARCH NOSUCHKEY", "SEARCH SINCE notadate", "SEARCH (FROM alice",
                "SEARCH OR FROM alice", "SEARCH LARGER x"):
        assert box.command(bad).status == "BAD", bad
    box.ok("NOOP")


# -- long OR chains ----------------------------------------------------------------------------

@pytest.fixture
def ids3(server):
    c = server.login()
    for i in (7, 500, 999):
        append(c, "INBOX", message(f"m{i}", msgid=f"<id{i}@example.org>"))
    c.ok("SELECT INBOX")
    return c


def id_terms(n: int) -> list[str]:
    return [f"HEADER Message-ID <id{i}@example.org>" for i in range(n)]


@pytest.mark.parametrize("n", [150, 1000])
@pytest.mark.parametrize("nesting", ["right", "left"])
def test_long_or_chain(ids3, n, nesting):
    """A client looking for n Message-IDs sends n-1 nested ORs (`OR a OR b OR c d`, or
    `OR OR OR a b c d`); Dovecot accepts 1,000 terms, pimap refused more than 100 levels.

    C: A1 SEARCH OR HEADER Message-ID <id0@example.org> OR ... HEADER Message-ID <id149@...>
    S: * SEARCH 1
    """
    terms = id_terms(n)
    if nesting == "right":
        chain = " ".join(f"OR {t}" for t in terms[:-1]) + " " + terms[-1]
    else:
        chain = "OR " * (n - 1) + " ".join(terms)
    r = ids3.ok(f"SEARCH {chain}")
    assert r.untagged == [b"* SEARCH 1\r\n" if n == 150 else b"* SEARCH 1 2 3\r\n"]
    r = ids3.ok(f"SEARCH NOT ({chain}) UNDELETED")
    assert r.untagged == [b"* SEARCH\r\n" if n == 1000 else b"* SEARCH 2 3\r\n"]


def test_search_keys_bounded_without_deep_recursion(pimap):
    """The work is bounded by the number of keys (10,000), nesting of parentheses and NOT by
    100 levels; pathological input gets a BAD, never a crash (Dovecot accepts these)."""
    c = pimap.login()
    append(c, "INBOX", message("x"))
    c.ok("SELECT INBOX")
    r = c.command("SEARCH " + "OR ALL " * 6000 + "ALL")
    assert r.status == "BAD" and "Too many search keys (at most 10000)" in r.text, r.line
    for deep in ["NOT " * 10_000 + "ALL", "(" * 10_000 + "ALL" + ")" * 10_000,
                 "OR NOT " * 5_000 + "ALL" + " ALL" * 5_000]:
        r = c.command("SEARCH " + deep)
        assert r.status == "BAD" and "nested too deeply" in r.text, r.line
    assert c.ok("SEARCH " + "OR ALL " * 4000 + "ALL").untagged == [b"* SEARCH 1\r\n"]


# -- FROM / TO / CC / BCC match addresses, not the raw field (RFC 5322 CFWS) ----------------

ADDRESSES = crlf("""\
From: <user-from (comment)@ (comment) domain.org>
To: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>, x@y.test, <@r1,@r2:g@h.test>
Cc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;
Bcc: "Quoted (not comment)" <q@x.test> (trailing), =?utf-8?q?J=C3=B6rg?= <j@x.test>
Subject: addresses
Message-ID: <addr@example.org>

body
""")

# The ENVELOPE Dovecot 2.3 gives: names from the phrase, never from a comment inside <...>;
# groups as (NIL NIL "name" NIL) ... (NIL NIL NIL NIL) (RFC 3501 §7.4.2).
ADDRESSES_ENVELOPE = (
    b'(NIL "addresses" ((NIL NIL "user-from" "domain.org")) ((NIL NIL "user-from" "domain.org")) '
    b'((NIL NIL "user-from" "domain.org")) (("Pete" NIL "pete" "silly.test")'
    b'(NIL NIL "x" "y.test")(NIL "@r1,@r2" "g" "h.test")) '
    b'((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")'
    b'("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)(NIL NIL "Undisclosed recipients" NIL)'
    b'(NIL NIL NIL NIL)) (("Quoted (not comment)" NIL "q" "x.test")'
    b'("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x.test")) NIL "<addr@example.org>")'
)


def test_address_envelope_ignores_comments(server):
    c = server.login()
    append(c, "INBOX", ADDRESSES)
    c.ok("SELECT INBOX")
    r = c.ok("FETCH 1 ENVELOPE")
    assert r.untagged == [b"* 1 FETCH (ENVELOPE " + ADDRESSES_ENVELOPE + b")\r\n"]
    r = c.ok("SEARCH CHARSET UTF-8 BCC ", "Jörg <j@x.test>".encode())
    assert r.untagged == [b"* SEARCH 1\r\n"]


# (key, matches): the field's addresses are matched as Dovecot writes them back:
# `<mailbox@domain>`, `name <mailbox@domain>` (a name that is not an atom quoted), a group as
# `"name": a, b;`, joined by ", ", encoded-words decoded; comments and folding gone.
ADDRESS_KEYS = [
    ("FROM user-from@domain.org", True),
    ('FROM "<user-from@domain.org>"', True),
    ("FROM comment", False),
    ("TO pete@silly.test", True),
    ('TO "Pete <pete@silly.test>"', True),
    ('TO "his host"', False),
    ("TO nice", False),
    ('TO "<pete@silly.test>, <x@y.test>, <@r1,@r2:g@h.test>"', True),
    ('TO "x@y.test, "', False),
    ('CC "\\"Ed Jones\\" <c@a.test>"', True),
    ('CC "Ed Jones <c@a.test>"', False),
    ('CC "\\"A Group\\": \\"Ed"', True),
    ('CC "jdoe@one.test>;, \\"Undisclosed recipients\\":;"', True),
    ('BCC "\\"Quoted (not comment)\\" <q@x.test>"', True),
    ("BCC trailing", False),
    ('BCC "rg <j@x.test>"', True),
    ('BCC "=?utf-8"', False),
    # HEADER keeps matching the raw field.
    ("HEADER From comment", True),
    ("HEADER From user-from@domain.org", False),
]


@pytest.mark.parametrize("key, matches", ADDRESS_KEYS)
def test_address_search_ignores_comments(server, key, matches):
    c = server.login()
    append(c, "INBOX", ADDRESSES)
    c.ok("SELECT INBOX")
    assert c.ok(f"SEARCH {key}").untagged == [b"* SEARCH 1\r\n" if matches else b"* SEARCH\r\n"]
