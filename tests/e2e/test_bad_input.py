"""Untrusted input: malformed commands, wrong states, hostile mailbox names, oversized
literals and lines, floods of bad commands. The server must answer BAD/NO (RFC 3501 §7.1),
stay in sync, and never crash: every test ends by checking a fresh connection still works.
"""

import pytest

from imapwire import Closed, append, listing, quote
from msgs import message


@pytest.fixture(autouse=True)
def still_serving(request):
    """After each test, the server must still accept a login and answer NOOP."""
    # Requested here (not in the test) so the server outlives this fixture's teardown.
    servers = [request.getfixturevalue(n) for n in ("server", "pimap") if n in request.fixturenames]
    yield
    for srv in servers:
        assert srv.proc.poll() is None, f"{srv.kind} exited with {srv.proc.returncode}"
        c = srv.login()
        c.ok("NOOP")
        c.logout()


@pytest.mark.parametrize("line", [
    "FETCH",  # missing arguments
    "SELECT",
    "STORE 1",
    "FROBNICATE",  # unknown command
    "UID FROBNICATE 1",
    "SELECT INBOX)",
    'LIST "" "*" extra',
])
def test_malformed_or_unknown_command_is_tagged_bad(server, line):
    c = server.login()
    c.ok("SELECT INBOX")
    r = c.command(line)
    assert r.status == "BAD", r.line
    c.ok("NOOP")


def test_line_without_tag_or_command(server):
    c = server.login()
    c.send(b"\r\n")
    resp = c.read_response()
    assert b" BAD" in resp.split(b"\r\n")[0], resp
    c.send(b"NOOP\r\n")  # "NOOP" read as a tag with no command
    resp = c.read_response()
    assert resp.startswith((b"NOOP BAD", b"* BAD")), resp
    c.ok("NOOP")


def test_invalid_tag_characters(server):
    c = server.login()
    c.send(b"A+1 NOOP\r\n")  # '+' is not allowed in a tag (§9 `tag`)
    resp = c.read_response()
    assert b"BAD" in resp, resp
    c.ok("NOOP")


@pytest.mark.parametrize("cmd", ["SELECT INBOX", "EXAMINE INBOX", "CREATE X", "LIST \"\" *", "STATUS INBOX (MESSAGES)",
                                 "FETCH 1 FLAGS", "APPEND INBOX "])
def test_commands_before_login_are_refused(server, cmd):
    c = server.connect()
    r = c.command(cmd, b"x") if cmd.startswith("APPEND") else c.command(cmd)
    assert r.status in ("BAD", "NO"), r.line
    c.login("demo", server.password("demo"))


@pytest.mark.parametrize("cmd", ["FETCH 1 FLAGS", "STORE 1 +FLAGS (\\Seen)", "SEARCH ALL", "EXPUNGE", "CLOSE",
                                 "UID FETCH 1 FLAGS", "COPY 1 INBOX", f'LOGIN demo "x"', "AUTHENTICATE PLAIN"])
def test_commands_in_wrong_state_after_login(server, cmd):
    c = server.login()
    r = c.command(cmd)
    assert r.status in ("BAD", "NO"), r.line
    c.ok("NOOP")


@pytest.mark.parametrize("name", ["..", "a..b", "../x", "foo/bar", "/etc", "../../etc/passwd", ".hidden", ""])
def test_hostile_mailbox_names_are_refused(server, name):
    c = server.login()
    for cmd in (f"CREATE {quote(name)}", f"SELECT {quote(name)}", f"RENAME INBOX {quote(name)}",
                f"STATUS {quote(name)} (MESSAGES)", f"DELETE {quote(name)}"):
        r = c.command(cmd)
        assert r.status in ("NO", "BAD"), (cmd, r.line)
    r = c.command(f"APPEND {quote(name)} ", message("x"))
    assert r.status in ("NO", "BAD"), r.line
    # Nothing escaped the user's Maildir.
    root = server.maildir()
    assert not (root.parent / "x").exists()
    assert not (root / "foo").exists()
    assert set(listing(c.ok('LIST "" "*"'))) == {"INBOX"}


def test_control_characters_in_mailbox_name_refused(server):
    c = server.login()
    r = c.command("CREATE ", b"a\x01b")
    assert r.status in ("NO", "BAD"), r.line
    r = c.command("CREATE ", b"a\r\nb")
    assert r.status in ("NO", "BAD"), r.line


def test_nul_in_mailbox_name_refused(pimap):
    # §9: a literal is CHAR8 (no NUL). Dovecot 2.3 is lenient here (it accepts the name), so
    # this one runs against pimap only.
    c = pimap.login()
    r = c.command("CREATE ", b"a\x00b")
    assert r.status in ("NO", "BAD"), r.line
    assert set(listing(c.ok('LIST "" "*"'))) == {"INBOX"}


def test_empty_append_refused(server):
    c = server.login()
    r = c.command("APPEND INBOX ", b"")
    assert r.status in ("NO", "BAD"), r.line


def test_huge_non_append_literal_not_invited(server):
    c = server.login()
    c.send(b"A1 CREATE {50000000}\r\n")
    try:
        resp = c.read_response()
    except Closed:
        return
    # The server must not ask for 50 MB of mailbox name: tagged BAD/NO, or BYE and close.
    assert not resp.startswith(b"+"), resp
    assert resp.startswith((b"A1 BAD", b"A1 NO", b"* BYE")), resp


def test_absurd_literal_length(server):
    c = server.login()
    c.send(b"A1 SELECT {99999999999999999999999}\r\n")
    try:
        resp = c.read_response()
    except Closed:
        return
    assert resp.startswith((b"A1 BAD", b"A1 NO", b"* BYE")), resp


def test_overlong_command_line(server):
    c = server.login()
    c.send(b'A1 SELECT "' + b"x" * 200_000 + b'"\r\n')
    try:
        resp = c.read_response()
    except Closed:
        return
    assert resp.startswith((b"A1 BAD", b"A1 NO", b"* BYE")), resp[:200]


def test_many_bad_commands_disconnect(server):
    c = server.login()
    for i in range(60):
        try:
            r = c.command(f"FROB{i}")
        except Closed:
            break
        if r.status == "BYE":
            assert c.at_eof()
            break
        assert r.status == "BAD"
    else:
        pytest.fail("60 bad commands in a row and still connected")
    assert i <= 30  # both servers give up after about 20


def test_many_bad_commands_before_login_disconnect(server):
    c = server.connect()
    for i in range(60):
        try:
            r = c.command(f"FROB{i}")
        except Closed:
            break
        if r.status == "BYE":
            break
    else:
        pytest.fail("60 bad commands before login and still connected")


def test_good_commands_reset_nothing_but_are_not_counted(server):
    # A client that mixes a few mistakes into real work is not thrown out.
    c = server.login()
    c.ok("SELECT INBOX")
    for i in range(10):
        assert c.command("FROB").status == "BAD"
        c.ok("NOOP")
    append(c, "INBOX", message("still here"))
