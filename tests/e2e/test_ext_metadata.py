"""METADATA (RFC 5464): GETMETADATA / SETMETADATA on mailboxes and the server (""), against
pimap and Dovecot 2.3 with the answers Dovecot gives; entries kept in Dovecot's own
`dovecot-attributes` file, so both servers read what either wrote.

C: A1 SETMETADATA INBOX (/private/comment "hello")
S: A1 OK Setmetadata completed.
C: A2 GETMETADATA INBOX (/private/comment /shared/x)
S: * METADATA INBOX (/private/comment {5}
S: hello /shared/x NIL)
"""

import os
import signal

import pytest

from conftest import start_pimap


def caps(c) -> set[str]:
    return {str(x).upper() for x in c.ok("CAPABILITY").data("CAPABILITY")[0]}


def metadata(r) -> list[bytes]:
    """The untagged METADATA responses, whole (exact comparison); there must be no other."""
    found = [u for u in r.untagged if u.upper().startswith(b"* METADATA")]
    assert found == r.untagged, r.untagged
    return found


def entries(r) -> dict[str, bytes | None]:
    """{entry: value} of every METADATA response: for answers whose order Dovecot leaves to its
    hash table (DEPTH), compared as a set."""
    out = {}
    for d in r.data("METADATA"):
        items = d[2]
        out.update(zip(items[0::2], items[1::2]))
    return out


def tagged_text(r) -> str:
    """The tagged line's response code, without the text after it (Dovecot adds timings and
    words its texts its own way)."""
    return f"{r.status} [{r.code}]" if r.code else r.status


def test_advertised(server):
    assert "METADATA" in caps(server.login())


def test_set_and_get_exact(server):
    c = server.login()
    c.ok("CREATE Sub")
    assert tagged_text(c.ok('SETMETADATA INBOX (/private/comment "hello" /shared/comment "shared")')) == "OK"
    c.ok('SETMETADATA "" (/private/foo "server private" /shared/Bar "server shared")')
    c.ok("SETMETADATA Sub (/private/Vendor/X/y ", b"line1\r\nline\t2", ' /private/empty "")')
    r = c.ok("GETMETADATA INBOX (/private/COMMENT /shared/comment /private/nonexist)")
    assert metadata(r) == [b"* METADATA INBOX (/private/comment {5}\r\nhello /shared/comment {6}\r\n"
                           b"shared /private/nonexist NIL)\r\n"]
    assert tagged_text(r) == "OK"
    r = c.ok('GETMETADATA "" (/private/foo /shared/bar)')
    assert metadata(r) == [b'* METADATA "" (/private/foo {14}\r\nserver private /shared/bar {13}\r\n'
                           b"server shared)\r\n"]
    r = c.ok("GETMETADATA Sub /private/vendor/x/y")
    assert metadata(r) == [b"* METADATA Sub (/private/vendor/x/y {13}\r\nline1\r\nline\t2)\r\n"]
    r = c.ok("GETMETADATA Sub /private/empty")
    assert metadata(r) == [b"* METADATA Sub (/private/empty {0}\r\n)\r\n"]
    # The server's entries are not INBOX's, and INBOX's are not the server's.
    assert metadata(c.ok('GETMETADATA "" /private/comment')) == [
        b'* METADATA "" (/private/comment NIL)\r\n']
    assert entries(c.ok("GETMETADATA (DEPTH infinity) INBOX /private")) == {"/private/comment": b"hello"}
    # Empty lists: nothing to do.
    assert metadata(c.ok("GETMETADATA INBOX ()")) == []
    assert tagged_text(c.ok("SETMETADATA INBOX ()")) == "OK"
    # The selected state too, and INBOX in any case.
    c.ok("SELECT inbox")
    assert metadata(c.ok("GETMETADATA inbox /private/comment")) == [
        b"* METADATA INBOX (/private/comment {5}\r\nhello)\r\n"]


def test_depth(server):
    c = server.login()
    c.ok('SETMETADATA INBOX (/private/a "1" /private/a/b "2" /private/a/b/c "3" /private/d "4" '
         '/shared/a/x "5")')
    one = c.ok("GETMETADATA (DEPTH 1) INBOX /private/a")
    assert entries(one) == {"/private/a": b"1", "/private/a/b": b"2"}
    assert entries(c.ok("GETMETADATA (DEPTH infinity) INBOX /private/a")) == {
        "/private/a": b"1", "/private/a/b": b"2", "/private/a/b/c": b"3"}
    assert entries(c.ok("GETMETADATA (DEPTH 1) INBOX /private")) == {"/private/a": b"1", "/private/d": b"4"}
    assert entries(c.ok("GETMETADATA (DEPTH infinity) INBOX /shared")) == {"/shared/a/x": b"5"}
    assert metadata(c.ok("GETMETADATA (DEPTH 0) INBOX /private/a/b")) == [
        b"* METADATA INBOX (/private/a/b {1}\r\n2)\r\n"]
    # With a DEPTH, an entry that does not exist is left out rather than NIL.
    assert metadata(c.ok("GETMETADATA (DEPTH 1) INBOX /private/none")) == []
    assert entries(c.ok("GETMETADATA (DEPTH 1) INBOX (/private/none /private/a/b)")) == {
        "/private/a/b": b"2", "/private/a/b/c": b"3"}


def test_maxsize(server):
    c = server.login()
    c.ok('SETMETADATA INBOX (/private/short "ab" /private/long "abcdefgh" /private/mid "abcde")')
    r = c.ok("GETMETADATA (MAXSIZE 5) INBOX (/private/short /private/long /private/mid)")
    assert metadata(r) == [b"* METADATA INBOX (/private/short {2}\r\nab /private/mid {5}\r\nabcde)\r\n"]
    assert tagged_text(r) == "OK [METADATA LONGENTRIES 8]"
    r = c.ok("GETMETADATA (MAXSIZE 0 DEPTH infinity) INBOX /private")
    assert metadata(r) == []
    assert tagged_text(r) == "OK [METADATA LONGENTRIES 8]"
    r = c.ok("GETMETADATA (MAXSIZE 100) INBOX /private/long")
    assert tagged_text(r) == "OK"


def test_nil_deletes(server):
    c = server.login()
    c.ok('SETMETADATA INBOX (/private/a "1" /shared/a "2")')
    c.ok("SETMETADATA INBOX (/private/a NIL /private/never NIL)")
    assert metadata(c.ok("GETMETADATA INBOX (/private/a /shared/a)")) == [
        b"* METADATA INBOX (/private/a NIL /shared/a {1}\r\n2)\r\n"]
    c.ok('SETMETADATA INBOX (/private/a "again")')
    assert entries(c.ok("GETMETADATA INBOX /private/a")) == {"/private/a": b"again"}


@pytest.mark.parametrize("command", [
    "GETMETADATA INBOX /private/a*",
    "GETMETADATA INBOX /private/%",
    "GETMETADATA INBOX /private//a",
    "GETMETADATA INBOX /private/a/",
    "GETMETADATA (DEPTH infinity) INBOX /",
    "GETMETADATA INBOX private/a",
    "GETMETADATA INBOX /other/a",
    "GETMETADATA (DEPTH 2) INBOX /private",
    "GETMETADATA (FOO 1) INBOX /private/a",
    'SETMETADATA INBOX (/private/a* "x")',
    'SETMETADATA INBOX (/private/a//b "x")',
    'SETMETADATA INBOX (/private/a/ "x")',
    'SETMETADATA INBOX (/other/x "x")',
    "SETMETADATA INBOX (/private/a)",
    'SETMETADATA INBOX /private/a "x"',
])
def test_bad_input(server, command):
    c = server.login()
    assert c.command(command).status == "BAD"
    # Nothing was stored by a refused SETMETADATA.
    assert metadata(c.ok("GETMETADATA (DEPTH infinity) INBOX /private")) == []


def test_refused_values_and_names(server):
    c = server.login()
    r = c.command('SETMETADATA INBOX (/private/vendor/vendor.dovecot/pvt/server/x "no")')
    assert tagged_text(r) == "NO [CANNOT]"
    r = c.command("SETMETADATA INBOX (/private/ok \"1\" /private/nul ", b"a\0b", ")")
    assert tagged_text(r) == "NO [CANNOT]"
    # The whole command failed: the first entry was not set either.
    assert metadata(c.ok("GETMETADATA INBOX /private/ok")) == [b"* METADATA INBOX (/private/ok NIL)\r\n"]
    # Dovecot's internal entries read as not there.
    assert metadata(c.ok("GETMETADATA INBOX /private/vendor/vendor.dovecot/pvt/server/x")) == [
        b"* METADATA INBOX (/private/vendor/vendor.dovecot/pvt/server/x NIL)\r\n"]


def test_nonexistent_mailbox(server):
    c = server.login()
    # Dovecot answers without a response code; pimap adds [NONEXISTENT] (RFC 5530).
    assert c.command('SETMETADATA Nope (/private/a "x")').status == "NO"
    assert c.command("GETMETADATA Nope /private/a").status == "NO"


def test_rename_and_delete(server):
    c = server.login()
    c.ok("CREATE Box")
    c.ok("CREATE Other")
    c.ok('SETMETADATA Box (/private/k "v" /shared/k "s")')
    c.ok('SETMETADATA Other (/private/k "other")')
    c.ok("RENAME Box Box2")
    assert metadata(c.ok("GETMETADATA Box2 (/private/k /shared/k)")) == [
        b"* METADATA Box2 (/private/k {1}\r\nv /shared/k {1}\r\ns)\r\n"]
    c.ok("DELETE Box2")
    c.ok("CREATE Box2")
    assert metadata(c.ok("GETMETADATA Box2 (/private/k /shared/k)")) == [
        b"* METADATA Box2 (/private/k NIL /shared/k NIL)\r\n"]
    c.ok("CREATE Box")
    assert metadata(c.ok("GETMETADATA Box /private/k")) == [b"* METADATA Box (/private/k NIL)\r\n"]
    assert metadata(c.ok("GETMETADATA Other /private/k")) == [
        b"* METADATA Other (/private/k {5}\r\nother)\r\n"]


def test_utf8_mailbox_names(pimap):
    """After ENABLE IMAP4rev2 (which Dovecot 2.3 lacks) mailbox names are UTF-8 both ways; a
    rev1 client names the same mailbox in modified UTF-7."""
    c = pimap.login()
    c.ok("ENABLE IMAP4rev2")
    c.ok('CREATE "Grüße"')
    c.ok('SETMETADATA "Grüße" (/private/k "v")')
    assert metadata(c.ok('GETMETADATA "Grüße" /private/k')) == [
        '* METADATA "Grüße" (/private/k {1}\r\nv)\r\n'.encode()]
    old = pimap.login()
    assert metadata(old.ok("GETMETADATA Gr&APwA3w-e /private/k")) == [
        b"* METADATA Gr&APwA3w-e (/private/k {1}\r\nv)\r\n"]


# ---------------------------------------------------------------------------------------
# pimap's own limits (Dovecot 2.3 has none) and durability


def test_limits(pimap):
    c = pimap.login()
    r = c.command("SETMETADATA INBOX (/private/big ", b"x" * (64 * 1024 + 1), ")")
    assert tagged_text(r) == "NO [METADATA MAXSIZE 65536]"
    c.ok("SETMETADATA INBOX (/private/big ", b"x" * (64 * 1024), ")")
    many = " ".join(f'/private/k{i} "v"' for i in range(255))
    c.ok(f"SETMETADATA INBOX ({many})")
    r = c.command('SETMETADATA INBOX (/private/one-more "v")')
    assert tagged_text(r) == "NO [METADATA TOOMANY]"
    # Replacing or removing is fine at the limit; the server's entries count on their own.
    c.ok('SETMETADATA INBOX (/private/k1 "changed" /private/k2 NIL)')
    c.ok('SETMETADATA INBOX (/private/one-more "v")')
    c.ok('SETMETADATA "" (/private/server "v")')
    # The file as a whole: 1 MiB.
    c.ok("CREATE Big")
    value = b"y" * (64 * 1024)
    refused = None
    for i in range(20):
        r = c.command(f"SETMETADATA Big (/private/v{i} ", value, ")")
        if r.status != "OK":
            refused = (i, tagged_text(r))
            break
    assert refused is not None and refused[0] >= 10 and refused[1] == "NO [METADATA TOOMANY]", refused
    c.ok("SETMETADATA Big (/private/v0 NIL)")


def _restart(pimap, workdir, kill: bool):
    if kill:
        pimap.proc.send_signal(signal.SIGKILL)
        pimap.proc.wait(timeout=10)
    else:
        pimap.stop()
    return start_pimap(workdir, workdir / "users", workdir / "mail", name="pimap-again")


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill-9"])
def test_persists(pimap, workdir, kill, request):
    c = pimap.login()
    c.ok('SETMETADATA INBOX (/private/comment "kept")')
    c.ok('SETMETADATA "" (/shared/admin "mailto:x@example.org")')
    again = _restart(pimap, workdir, kill)
    request.addfinalizer(again.stop)
    c2 = again.login()
    assert metadata(c2.ok("GETMETADATA INBOX /private/comment")) == [
        b"* METADATA INBOX (/private/comment {4}\r\nkept)\r\n"]
    assert entries(c2.ok('GETMETADATA "" /shared/admin')) == {"/shared/admin": b"mailto:x@example.org"}


def test_corrupt_file(pimap):
    c = pimap.login()
    c.ok('SETMETADATA INBOX (/private/good "1")')
    path = pimap.maildir() / "dovecot-attributes"
    good = path.read_bytes()
    guid = good.split(b"/")[1].decode()
    path.write_bytes(good + f"priv/{guid}/bad\x01z\nv\npriv/{guid}/also-good\n2\ncut-off".encode())
    r = c.ok("GETMETADATA (DEPTH infinity) INBOX /private")
    assert entries(r) == {"/private/good": b"1", "/private/also-good": b"2"}
    assert f"{path}: skipped 2 malformed entries" in pimap.log_text()
    c.ok('SETMETADATA INBOX (/private/new "3")')
    assert entries(c.ok("GETMETADATA (DEPTH infinity) INBOX /private")) == {
        "/private/good": b"1", "/private/also-good": b"2", "/private/new": b"3"}
    assert b"bad\x01z" in (path.parent / "dovecot-attributes.corrupt").read_bytes()
    assert os.stat(path).st_size > 0


# ---------------------------------------------------------------------------------------
# Dovecot and pimap on the same Maildir: the same entries.


def test_cross_server(both):
    dv, pm = both
    d = dv.login()
    d.ok("CREATE Shared")
    d.ok('SETMETADATA INBOX (/private/by-dovecot "d1")')
    d.ok('SETMETADATA Shared (/shared/by-dovecot "d2")')
    d.ok('SETMETADATA "" (/private/server-by-dovecot ', b"a\tb\r\nc", ")")
    p = pm.login()
    assert entries(p.ok("GETMETADATA INBOX /private/by-dovecot")) == {"/private/by-dovecot": b"d1"}
    assert entries(p.ok("GETMETADATA Shared /shared/by-dovecot")) == {"/shared/by-dovecot": b"d2"}
    assert entries(p.ok('GETMETADATA "" /private/server-by-dovecot')) == {
        "/private/server-by-dovecot": b"a\tb\r\nc"}
    # pimap writes; Dovecot reads, for a mailbox Dovecot has never opened too.
    p.ok("CREATE ByPimap")
    p.ok('SETMETADATA ByPimap (/private/by-pimap "p1")')
    p.ok('SETMETADATA INBOX (/private/by-dovecot NIL /private/by-pimap ', b"x\ty\nz", ")")
    p.ok('SETMETADATA "" (/shared/server-by-pimap "p2")')
    assert metadata(d.ok("GETMETADATA ByPimap /private/by-pimap")) == [
        b"* METADATA ByPimap (/private/by-pimap {2}\r\np1)\r\n"]
    assert entries(d.ok("GETMETADATA INBOX (/private/by-dovecot /private/by-pimap)")) == {
        "/private/by-dovecot": None, "/private/by-pimap": b"x\ty\nz"}
    assert entries(d.ok('GETMETADATA "" /shared/server-by-pimap')) == {"/shared/server-by-pimap": b"p2"}
    # A RENAME by pimap keeps them for Dovecot; a DELETE by pimap removes them.
    p.ok("RENAME Shared Renamed")
    assert entries(d.ok("GETMETADATA Renamed /shared/by-dovecot")) == {"/shared/by-dovecot": b"d2"}
    p.ok("DELETE Renamed")
    text = (pm.maildir() / "dovecot-attributes").read_bytes()
    assert b"by-dovecot\nd2" not in text


def test_concurrent_writers_lose_nothing(both):
    """Dovecot and two pimap sessions set entries at the same time: each rewrites the whole
    file, under the same dotlock (`dovecot-attributes.lock`), so none is lost."""
    import threading

    dv, pm = both
    conns = {"dovecot": dv.login(), "pimap1": pm.login(), "pimap2": pm.login()}
    errors = []

    def writer(name, c):
        try:
            for i in range(15):
                c.ok(f'SETMETADATA INBOX (/private/{name}-{i} "{i}")')
        except Exception as e:  # reported below, with the others
            errors.append(f"{name}: {e}")

    threads = [threading.Thread(target=writer, args=kv) for kv in conns.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    want = {f"/private/{name}-{i}": str(i).encode() for name in conns for i in range(15)}
    for c in (conns["dovecot"], conns["pimap1"]):
        assert entries(c.ok("GETMETADATA (DEPTH 1) INBOX /private")) == want
