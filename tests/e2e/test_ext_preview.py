"""PREVIEW (RFC 8970): `FETCH PREVIEW` and `PREVIEW (LAZY)`, compared with Dovecot 2.3's
"fuzzy" preview on plain-text and HTML messages.

C: A1 FETCH 1 (PREVIEW)
S: * 1 FETCH (PREVIEW "Hello Bob, the numbers look fine.")
"""

import pytest

from imapwire import append
from msgs import crlf
from test_ext_binary import answers


def plain(body: str, head: str = "Content-Type: text/plain; charset=utf-8\n") -> bytes:
    return crlf(f"From: a@example.org\nSubject: p\nMIME-Version: 1.0\n{head}\n{body}")


PLAIN = [
    plain("Hello Bob,\nthe numbers   look fine.\n\n-- \nAlice\n"),
    plain("  \n\n   leading blank lines\tand tabs\n"),
    plain("On Monday Bob wrote:\n> quoted line\n>> deeper\nMy answer.\n"),
    plain("> only quoted\n> text here\n"),
    plain("I am here. A b c.\n"),
    plain(("word " * 80) + "\n"),
    plain("x" * 300 + "\n"),
    plain("Caf=C3=A9 cr=C3=A8me, na=C3=AFve\n",
          "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n"),
    plain("Gr=FC=DFe aus K=F6ln\n",
          "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n"),
    plain("\u00e9" * 250 + "\n"),
    plain(""),
    plain("YWJjIGRlZg==\n", "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n"),
    crlf("From: a@example.org\nSubject: no mime\n\nplain old body\n"),
    plain("--b\nContent-Type: text/plain\n\nfirst part text\n--b\nContent-Type: text/plain\n\n"
          "second\n--b--\n", "Content-Type: multipart/mixed; boundary=b\n"),
    plain("--b\nContent-Type: application/pdf\n\nxx\n--b\nContent-Type: text/plain\n\n"
          "after pdf\n--b--\n", "Content-Type: multipart/mixed; boundary=b\n"),
    plain("xx\n", "Content-Type: image/png\n"),
    plain("hidden\n", "Content-Type: text/plain\nContent-Transfer-Encoding: x-unknown\n"),
    # Invalid base64: decoded as far as it is valid.
    plain("aGVs!!bG8=\n", "Content-Transfer-Encoding: base64\n"),
    plain("aGVsbG8=aGk=\n", "Content-Transfer-Encoding: base64\n"),
    plain("aGVs\nbG8=\nextra text after\n", "Content-Transfer-Encoding: base64\n"),
    plain("--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner text\n--b--\n",
          "Content-Type: multipart/mixed; boundary=b\n"),
    plain("--b\nContent-Type: text/html\n\n<p>html first</p>\n--b\nContent-Type: text/plain\n\n"
          "plain second\n--b--\n", "Content-Type: multipart/alternative; boundary=b\n"),
]

HTML = "Content-Type: text/html; charset=utf-8\n"

HTML_MESSAGES = [
    plain("<html><head><title>T</title><style>p{}</style></head><body><p>Hi <b>there</b>&amp; "
          "you</p>\n<blockquote>quoted</blockquote><p>second&nbsp;para</p></body></html>\n", HTML),
    plain("<!-- c -- x --  >a<SCRIPT type=x>if (a<b) {}</script>b<a href=\"x>y\">link</a>"
          "<![CDATA[<raw>]]> AT&T &unknown; &#233;&#xE9; &lt;&gt; caf&eacute;\n", HTML),
    plain("<div>\n> not a quote\n<br>line<br/>two</div>\n", HTML),
    plain("--b\nContent-Type: text/html\nContent-Transfer-Encoding: quoted-printable\n\n"
          "<p>Gr=C3=BC=C3=9Fe <i>aus</i> K=C3=B6ln</p>\n--b\nContent-Type: image/png\n\nxx\n--b--\n",
          "Content-Type: multipart/related; boundary=b\n"),
]


def test_preview_like_dovecot(both):
    dv, pm = both
    c = pm.login()
    for m in PLAIN + HTML_MESSAGES:
        append(c, "INBOX", m)
    c.logout()
    cmds = [f"FETCH {n} (PREVIEW)" for n in range(1, len(PLAIN + HTML_MESSAGES) + 1)]
    want, got = answers(dv, cmds), answers(pm, cmds)
    bad = [f"pimap   {g!r}\ndovecot {w!r}" for w, g in zip(want, got) if g != w]
    assert not bad, "\n".join(bad)


def test_preview_lazy(pimap):
    c = pimap.login()
    assert b"PREVIEW" in c.ok("CAPABILITY").untagged[0].split()
    append(c, "INBOX", plain("<html><head><style>p {}</style></head><body><p>Hi <b>there</b>"
                             "</p>\n<p>second</p></body></html>\n", "Content-Type: text/html\n"))
    append(c, "INBOX", PLAIN[0])
    c.ok("SELECT INBOX")
    r = c.ok("FETCH 1:2 (UID PREVIEW (LAZY))")
    assert r.untagged == [b'* 1 FETCH (UID 1 PREVIEW "Hi there second")\r\n',
                          b'* 2 FETCH (UID 2 PREVIEW "Hello Bob, the numbers look fine. -- Alice")\r\n']
    # PREVIEW does not set \Seen.
    assert c.ok("FETCH 1 FLAGS").untagged == [b"* 1 FETCH (FLAGS (\\Recent))\r\n"]


@pytest.mark.parametrize("cmd", ["FETCH 1 (PREVIEW (FOO))", "FETCH 1 (PREVIEW ())",
                                 "FETCH 1 (PREVIEW (LAZY)", "FETCH 1 PREVIEWX"])
def test_preview_bad_syntax(pimap, cmd):
    c = pimap.login()
    append(c, "INBOX", PLAIN[0])
    c.ok("SELECT INBOX")
    assert c.command(cmd).status == "BAD"


def test_preview_from_the_metadata_cache(pimap):
    """The cache entry APPEND fills holds the preview: FETCH PREVIEW does not read the file
    (unreadable here), with or without LAZY, alone or with other cached items."""
    c = pimap.login()
    append(c, "INBOX", PLAIN[2])
    [p] = list(pimap.maildir("demo").glob("cur/*"))
    p.chmod(0)
    c.ok("SELECT INBOX")
    r = c.ok("FETCH 1 (PREVIEW PREVIEW (LAZY) RFC822.SIZE)")
    assert r.untagged == [b'* 1 FETCH (PREVIEW "On Monday Bob wrote: My answer." '
                          b'RFC822.SIZE %d)\r\n' % len(PLAIN[2])]
