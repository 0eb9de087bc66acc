"""SORT (RFC 5256), SORT=DISPLAY (RFC 5957), I18NLEVEL=1 (RFC 5255) and ESORT (RFC 5267 §3),
against pimap and Dovecot with the same messages and the answers Dovecot 2.3 gives.

C: A1 SORT (REVERSE SUBJECT) UTF-8 ALL
S: * SORT 1 2 3 5 4
C: A2 SORT RETURN (MIN MAX ALL COUNT) (SIZE) UTF-8 ALL
S: * ESEARCH (TAG "A2") MIN 4 MAX 5 ALL 4,1:3,5 COUNT 5
"""

import pytest

from conftest import MAIL_GID, MAIL_UID, chown_tree
from imapwire import append
from msgs import crlf, deliver
from test_meta_cache import corpus


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def raw(subject=None, frm=None, to=None, cc=None, date=None, body="x\n") -> bytes:
    head = "".join(f"{name}: {value}\n" for name, value in
                   (("Date", date), ("From", frm), ("To", to), ("Cc", cc), ("Subject", subject))
                   if value is not None)
    return crlf(head + "\n" + body)


# Five messages whose keys tie, differ in case, are missing or broken (Dovecot's answers below).
FIVE = [
    raw("Re: hello", "Bob <bob@x>", "z@x", None, "Mon, 02 Mar 2020 08:00:00 +0000", ""),
    raw("hello", "alice@x", "y@x", "c@x", "Mon, 02 Mar 2020 08:00:00 +0000", "x"),
    raw("[fwd: Hello]", "\"Zed\" <a@x>", "x@x", None, "Mon, 02 Mar 2020 07:00:00 -0200", "xx"),
    raw(body="xxx"),
    raw("abc", "=?utf-8?q?=C3=89mile?= <e@x>", "=?utf-8?q?=C3=A9?= <b@x>", None, "garbage",
        "xxxx"),
]


def box(server, messages):
    c = server.login()
    for i, m in enumerate(messages):
        append(c, "INBOX", m, date=f"{i + 1:02d}-Jan-2021 00:00:00 +0000")
    c.ok("SELECT INBOX")
    return c


@pytest.fixture
def five(server):
    return box(server, FIVE)


def sort(c, command: str) -> list[int]:
    r = c.ok(command)
    lines = [u for u in r.untagged if u.upper().startswith(b"* SORT")]
    assert len(lines) == 1, r.untagged
    return [int(x) for x in lines[0].split()[2:]]


def esearch(r) -> bytes:
    lines = [u for u in r.untagged if u.upper().startswith(b"* ESEARCH")]
    assert len(lines) == 1, r.untagged
    return lines[0].rstrip(b"\r\n")


def test_advertised(server):
    assert {"SORT", "SORT=DISPLAY", "ESORT", "I18NLEVEL=1"} <= caps(server.login())


@pytest.mark.parametrize("program,expected", [
    ("SUBJECT", [4, 5, 1, 2, 3]),
    ("REVERSE SUBJECT", [1, 2, 3, 5, 4]),
    ("FROM", [4, 3, 2, 1, 5]),
    ("REVERSE FROM", [5, 1, 2, 3, 4]),
    ("TO", [4, 5, 3, 2, 1]),
    ("CC", [1, 3, 4, 5, 2]),
    ("REVERSE CC", [2, 1, 3, 4, 5]),
    ("DATE", [1, 2, 3, 4, 5]),
    ("REVERSE DATE", [5, 4, 3, 1, 2]),
    ("ARRIVAL", [1, 2, 3, 4, 5]),
    ("REVERSE ARRIVAL", [5, 4, 3, 2, 1]),
    ("SIZE", [4, 1, 2, 3, 5]),
    ("REVERSE SIZE", [5, 3, 2, 1, 4]),
    ("DISPLAYFROM", [4, 2, 1, 5, 3]),
    ("DISPLAYTO", [4, 5, 3, 2, 1]),
    ("subject reverse size", [4, 5, 3, 2, 1]),
    ("REVERSE SUBJECT REVERSE ARRIVAL", [3, 2, 1, 5, 4]),
    ("CC DATE", [1, 3, 4, 5, 2]),
    ("REVERSE REVERSE SIZE", [4, 1, 2, 3, 5]),
])
def test_sort_keys(five, program, expected):
    """RFC 5256 §3; ties go by sequence number, ascending even under REVERSE (Dovecot)."""
    assert sort(five, f"SORT ({program}) UTF-8 ALL") == expected


def test_uid_sort_with_criteria(five):
    five.ok("STORE 1,4 +FLAGS (\\Flagged)")
    assert sort(five, "UID SORT (SUBJECT) UTF-8 2:4") == [4, 2, 3]
    assert sort(five, "SORT (REVERSE SIZE) US-ASCII OR FLAGGED FROM \"bob\"") == [1, 4]
    assert sort(five, "SORT (DATE) utf-8 DELETED") == []


def test_esort(five):
    """RFC 5267 §3: MIN and MAX are the first and last in sort order; ALL keeps that order."""
    cases = [
        ("SORT RETURN (MIN MAX ALL COUNT) (REVERSE SUBJECT) UTF-8 ALL", 'MIN 1 MAX 4 ALL 1:3,5,4 COUNT 5'),
        ("SORT RETURN (MIN MAX ALL COUNT) (SIZE) UTF-8 ALL", 'MIN 4 MAX 5 ALL 4,1:3,5 COUNT 5'),
        ("SORT RETURN (MIN MAX ALL COUNT) (REVERSE SIZE) UTF-8 ALL", 'MIN 5 MAX 4 ALL 5,3,2,1,4 COUNT 5'),
        ("SORT RETURN () (SUBJECT) UTF-8 ALL", 'ALL 4:5,1:3'),
        ("UID SORT RETURN (COUNT) (SUBJECT) UTF-8 DELETED", 'UID COUNT 0'),
        ("UID SORT RETURN (MIN) (SUBJECT) UTF-8 DELETED", 'UID'),
    ]
    for command, rest in cases:
        r = five.ok(command)
        assert esearch(r) == f'* ESEARCH (TAG "{r.tag}") {rest}'.rstrip().encode(), command
        assert not [u for u in r.untagged if u.upper().startswith(b"* SORT")]


def test_esort_save(five):
    """RFC 5182 with SORT: SAVE alone answers nothing; `$` then holds the result."""
    r = five.ok("SORT RETURN (SAVE) (REVERSE SIZE) UTF-8 2:3")
    assert r.untagged == []
    assert five.ok("SEARCH $").search() == [2, 3]


def test_sort_modseq_enables_condstore(five):
    r = five.ok("SORT (SUBJECT) UTF-8 MODSEQ 1")
    line = [u for u in r.untagged if u.startswith(b"* SORT")][0]
    assert line.startswith(b"* SORT 4 5 1 2 3 (MODSEQ ")
    assert any(b"HIGHESTMODSEQ" in u for u in r.untagged)


# Base subjects (RFC 5256 §2.1) and i;unicode-casemap (RFC 5051: titlecase, then NFKD).
SUBJECTS = [
    "Re: Re: [list] Fwd: topic",  # 1
    "[fwd: Re: topic (fwd)]",  # 2
    "[list]",  # 3
    "Re: [list]",  # 4
    "TOPIC",  # 5
    "re[2]: topic",  # 6
    "Éclair",  # 7 (encoded below)
    "eclair",  # 8
    "E\u0301clair",  # 9
    "Ezra",  # 10
    "straße",  # 11
    "STRASSE",  # 12
    "ǆungla",  # 13
    "Ǆungla",  # 14
    "ﬁsh",  # 15
    "Ｆish",  # 16
    "Ärger",  # 17
    "zebra",  # 18
]


def test_base_subject_and_casemap(server):
    msgs = []
    for s in SUBJECTS:
        if s == "Éclair":
            s = "=?utf-8?q?=C3=89clair?="
        msgs.append(raw(s))
    c = box(server, msgs)
    # Dovecot 2.3's order: equal base subjects go by sequence number.
    # Ärger (A + U+0308), eclair, Ezra, Éclair = E + U+0301 + clair (tied), Ｆish, STRASSE,
    # straße, the TOPICs, zebra, the [LIST]s, ﬁsh ("fi" + SH: the decomposition is not
    # titlecased), ǆungla = Ǆungla (titlecase ǅ, left whole).
    assert sort(c, "SORT (SUBJECT) UTF-8 ALL") == [17, 8, 10, 7, 9, 16, 12, 11, 1, 2, 5, 6, 18, 3,
                                                   4, 15, 13, 14]


def test_display_sort_decodes_names(server):
    c = box(server, [raw(frm="=?iso-8859-1?q?=C4rger?= <z@x>"), raw(frm="Aaron <y@x>"),
                     raw(frm="<b@x>"), raw(frm="\"zed\" <a@x>"), raw(frm="undisclosed:;")])
    assert sort(c, "SORT (DISPLAYFROM) UTF-8 ALL") == [2, 1, 3, 5, 4]
    assert sort(c, "SORT (FROM) UTF-8 ALL") == [4, 3, 5, 2, 1]


def test_display_sort_odd_addresses(server):
    """RFC 5957 §3 as Dovecot reads it: a group sorts by its name, an empty name or a comment
    before the address by `mailbox@domain`, a trailing comment as the name."""
    froms = ["undisclosed:;", '"undisclosed" <q@x>', '"undisclosed@" <q@x>',
             "undisclosed: a@b;", '"" <m@x>', "(comment) <n@y>", "o@z (cmt)", "<>", "@", "foo"]
    c = box(server, [raw(frm=f) for f in froms])
    assert sort(c, "SORT (DISPLAYFROM) UTF-8 ALL") == [7, 10, 5, 8, 9, 6, 1, 2, 4, 3]
    assert sort(c, "SORT (REVERSE DISPLAYFROM) UTF-8 ALL") == [3, 1, 2, 4, 6, 8, 9, 5, 10, 7]
    assert sort(c, "SORT (FROM) UTF-8 ALL") == [10, 5, 8, 9, 6, 7, 2, 3, 1, 4]
    assert sort(c, "SORT (REVERSE FROM) UTF-8 ALL") == [1, 4, 2, 3, 7, 6, 8, 9, 5, 10]


# Characters Dovecot 2.3's Unicode tables predate (case pairs and compatibility mappings added
# in Unicode 12 to 14), which pimap's titlecase (Rust's) and decompositions (Unicode 14) know.
NEWER_UNICODE = {0x0282, 0x1D8E, 0x32FF, 0xA794, 0xA7F2, 0xA7F3, 0xA7F4, 0xAB69}


def test_casemap_like_dovecot_over_unicode(both):
    """i;unicode-casemap over every cased or decomposable character up to U+FFFF (and the
    mathematical letters): one subject each, sorted by both servers, must come out in the same
    order apart from NEWER_UNICODE."""
    import base64
    import difflib
    import unicodedata
    chars = [chr(o) for o in [*range(0xA0, 0x3400), *range(0xA000, 0xAC10),
                              *range(0xF900, 0x10000), *range(0x1D400, 0x1D800)]
             if unicodedata.category(chr(o)) not in ("Cs", "Co", "Cn")
             and (unicodedata.decomposition(chr(o)) or chr(o).upper() != chr(o)
                  or chr(o).lower() != chr(o))]
    maildir = both[0].maildir("demo")  # the two servers share it
    for n, ch in enumerate(chars):
        word = base64.b64encode(("Q" + ch + "Q").encode()).decode()
        deliver(maildir, crlf(f"Subject: =?utf-8?b?{word}?=\n\nx\n"),
                name=f"17000{n:05d}.M1P1.u", uid=MAIL_UID, gid=MAIL_GID)
    chown_tree(maildir)
    orders = []
    for srv in both:
        c = srv.login()
        c.ok("SELECT INBOX")
        orders.append([chars[i - 1] for i in sort(c, "SORT (SUBJECT) UTF-8 ALL")])
    moved = set()
    matcher = difflib.SequenceMatcher(None, orders[0], orders[1], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            moved.update(orders[0][i1:i2] + orders[1][j1:j2])
    print(f"{len(chars)} characters, {len(moved)} placed differently")
    assert {ord(c) for c in moved} <= NEWER_UNICODE
    assert len(chars) > 5000


@pytest.mark.parametrize("command,status,text", [
    ("SORT (BOGUS) UTF-8 ALL", "BAD", "Unknown sort argument: BOGUS"),
    ("SORT () UTF-8 ALL", "BAD", "Empty sort program"),
    ("SORT (REVERSE) UTF-8 ALL", "BAD", "Sort list ends with REVERSE"),
    ("SORT SUBJECT UTF-8 ALL", "BAD", "Invalid sort argument"),
    ("SORT (SUBJECT) UTF-8", "BAD", "Missing search parameters"),
    ("SORT (SUBJECT)", "BAD", "Invalid charset argument"),
    ("SORT (SUBJECT) UTF-8 BOGUS", "BAD", "BOGUS"),
    ("SORT (MODSEQ) UTF-8 ALL", "BAD", "Unknown sort argument: MODSEQ"),
    ("SORT (SUBJECT) X-NO-SUCH-CHARSET ALL", "NO", "[BADCHARSET"),
])
def test_bad_sort(five, command, status, text):
    r = five.command(command)
    assert r.status == status, r
    assert text in r.text, r


def test_sort_needs_selected_mailbox(server):
    assert server.login().command("SORT (SUBJECT) UTF-8 ALL").status in ("BAD", "NO")


def test_corpus_sort_like_dovecot(both):
    """Every key over ~200 real and malformed messages, compared with Dovecot's order."""
    dv, pm = both
    maildir = dv.maildir("demo")  # the two servers share it
    for i, data in enumerate(corpus()):
        deliver(maildir, data, name=f"1700000000.M{i}P1.corpus", uid=MAIL_UID, gid=MAIL_GID)
    chown_tree(maildir)
    orders = {}
    for srv in (dv, pm):
        c = srv.login()
        c.ok("SELECT INBOX")
        orders[srv.is_pimap] = {k: sort(c, f"UID SORT ({k}) UTF-8 ALL") for k in KEYS}
    for k in KEYS:
        a, b = orders[False][k], orders[True][k]
        print(k, "same" if a == b else f"differs at {sum(x != y for x, y in zip(a, b))} of {len(a)}")
    assert orders[False] == orders[True]


KEYS = ["ARRIVAL", "SIZE", "DATE", "SUBJECT", "FROM", "TO", "CC", "DISPLAYFROM", "DISPLAYTO"]


def repeated_sorts(c) -> list:
    """The same SORTs again and again, as webmail asks them for every page, while messages
    come and go and flags change."""
    seen = []
    for step in range(5):
        seen.append([sort(c, f"UID SORT ({p}) UTF-8 {crit}")
                     for p in ("SUBJECT", "REVERSE DATE", "DISPLAYFROM ARRIVAL")
                     for crit in ("ALL", "UNDELETED", "ALL")])
        if step == 0:
            append(c, "INBOX", raw("aaa first", "aaron@x", date="Sun, 01 Mar 2020 00:00:00 +0000"))
        elif step == 1:
            c.ok("UID STORE 2 +FLAGS (\\Deleted)")
        elif step == 2:
            c.ok("EXPUNGE")
        elif step == 3:
            append(c, "INBOX", FIVE[0])
    return seen


def test_repeated_sort_follows_changes(both):
    """pimap answers a repeated SORT from the order it kept for exactly the same messages:
    every answer as Dovecot gives it, each mailbox of its own."""
    dv, pm = both
    answers = {}
    for srv, user in ((dv, "demo"), (pm, "bob")):
        c = srv.login(user)
        for i, m in enumerate(FIVE):
            append(c, "INBOX", m, date=f"{i + 1:02d}-Jan-2021 00:00:00 +0000")
        c.ok("SELECT INBOX")
        answers[srv.is_pimap] = repeated_sorts(c)
    assert answers[True] == answers[False]
    assert answers[True][1][0] != answers[True][0][0], "the APPEND changed the order"


def test_warm_sort_does_not_read_message_files(pimap):
    c = box(pimap, FIVE)
    before = {k: sort(c, f"SORT ({k}) UTF-8 ALL") for k in KEYS}
    for p in pimap.maildir("demo").glob("cur/*"):
        p.chmod(0)
    c2 = pimap.login()
    c2.ok("SELECT INBOX")
    assert {k: sort(c2, f"SORT ({k}) UTF-8 ALL") for k in KEYS} == before
    # The files are really unreadable to the server.
    r = c2.command("FETCH 1 BODY.PEEK[]")
    assert not r.ok or b"NIL" in b"".join(r.untagged), r


I18N_SUBJECTS = ["café", "CAFE", "straße", "Ǆungla", "ﬁsh", "Ｆish", "naïve", "Ǖ"]


@pytest.mark.parametrize("needle,expected", [
    ("e", [1, 2, 3, 7]),  # café is CAFE + U+0301, naïve NAI + U+0308 + VE
    ("é", [1]),
    ("E\u0301", [1]),
    ("strasse", []),  # ß has no one-character titlecase
    ("ß", [3]),
    ("ǆ", [4]),
    ("dž", []),  # the titlecase digraph stays whole
    ("fi", [6]),  # ﬁ decomposes after titlecasing: "fi", not "FI"
    ("ﬁ", [5]),
    ("f", [1, 2, 6]),
    ("ï", [7]),
    ("ü", []),  # Ǖ is Ü + U+0304: one level of decomposition
    ("u", [4]),
])
def test_search_uses_casemap(server, needle, expected):
    """I18NLEVEL=1 (RFC 5255 §4.3): SEARCH compares with i;unicode-casemap too."""
    import base64
    c = box(server, [raw(f"=?utf-8?b?{base64.b64encode(s.encode()).decode()}?=", body=f"{s} body\n")
                     for s in I18N_SUBJECTS])
    assert c.ok(f'SEARCH CHARSET UTF-8 SUBJECT "{needle}"').search() == expected
    assert c.ok(f'SEARCH CHARSET UTF-8 BODY "{needle}"').search() == expected
    # TEXT also looks at field names ("Subject" holds E and U).
    assert set(expected) <= set(c.ok(f'SEARCH CHARSET UTF-8 TEXT "{needle}"').search())
