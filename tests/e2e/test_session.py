"""Connection and authentication: greeting, CAPABILITY, LOGIN, AUTHENTICATE, LOGOUT, NOOP.

RFC 3501 §6.1 (any state), §6.2 (not authenticated), RFC 4616 (PLAIN), RFC 4959 (SASL-IR).
"""

import base64

from imapwire import quote


def caps_of(resp):
    caps = resp.data("CAPABILITY")
    assert len(caps) == 1, resp.untagged
    return [str(c).upper() for c in caps[0][1:]]


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_greeting_is_untagged_ok(server):
    c = server.connect()
    # RFC 3501 §7.1: the greeting is OK (not authenticated) or PREAUTH; here never PREAUTH.
    assert c.greeting.startswith(b"* OK"), c.greeting
    assert c.greeting.endswith(b"\r\n")


def test_capability_before_and_after_login(server):
    c = server.connect()
    r = c.ok("CAPABILITY")
    caps = caps_of(r)
    assert "IMAP4REV1" in caps
    # Plaintext login is allowed on loopback by both servers, so it must not be disabled
    # (RFC 3501 §6.2.3), and AUTH=PLAIN is what AUTHENTICATE PLAIN below relies on.
    assert "LOGINDISABLED" not in caps
    assert "AUTH=PLAIN" in caps
    c.login("demo", server.password("demo"))
    caps = caps_of(c.ok("CAPABILITY"))
    assert "IMAP4REV1" in caps


def test_login_ok_then_select(server):
    c = server.connect()
    r = c.command(f'LOGIN demo {quote(server.password("demo"))}')
    assert r.status == "OK", r.line
    c.ok("SELECT INBOX")


def test_login_quoted_password_with_space(server):
    c = server.connect()
    assert c.command('LOGIN "plain" "plain pass"').ok


def test_login_email_address_user(server):
    c = server.connect()
    assert c.command(f'LOGIN alice@example.org {quote(server.password("alice@example.org"))}').ok
    c.ok("SELECT INBOX")
    assert (server.maildir("alice@example.org") / "cur").is_dir()


def test_login_with_literals(server):
    c = server.connect()
    r = c.command("LOGIN ", b"bob", " ", server.password("bob").encode())
    assert r.ok, r.line


def test_login_verifies_doveadm_blowfish_hash(server):
    # bob's hash was made by `doveadm pw -s BLF-CRYPT` ($2y$).
    c = server.connect()
    assert c.command(f'LOGIN bob {quote(server.password("bob"))}').ok
    c2 = server.connect()
    assert c2.command('LOGIN bob "wrong"').status == "NO"


def test_login_wrong_password_and_unknown_user_same_answer(server):
    c = server.connect()
    wrong = c.command('LOGIN demo "not-the-password"')
    assert wrong.status == "NO", wrong.line
    unknown = server.connect().command('LOGIN nosuchuser "not-the-password"')
    assert unknown.status == "NO", unknown.line
    # The answer must not tell which part was wrong (no user enumeration).
    assert wrong.text == unknown.text
    # The connection stays usable and a correct login still works.
    c.login("demo", server.password("demo"))


def test_login_is_case_sensitive_in_password(server):
    c = server.connect()
    assert c.command(f'LOGIN demo {quote(server.password("demo").upper())}').status == "NO"


def test_authenticate_plain_with_initial_response(server):
    c = server.connect()
    caps = caps_of(c.ok("CAPABILITY"))
    assert "SASL-IR" in caps, "RFC 4959 initial response is advertised by both servers"
    ir = b64("\0demo\0" + server.password("demo"))
    r = c.command(f"AUTHENTICATE PLAIN {ir}")
    assert r.ok, r.line
    c.ok("SELECT INBOX")


def test_authenticate_plain_without_initial_response(server):
    c = server.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE PLAIN\r\n".encode())
    cont = c.read_response()
    # RFC 3501 §6.2.2: the server sends an empty challenge as "+" followed by a space.
    assert cont.startswith(b"+"), cont
    assert cont.rstrip(b"\r\n") in (b"+", b"+ "), cont
    c.send((b64("\0plain\0plain pass") + "\r\n").encode())
    r = c.read_until_tagged(tag)
    assert r.ok, r.line


def test_authenticate_plain_with_authzid_equal_to_user(server):
    c = server.connect()
    ir = b64("demo\0demo\0" + server.password("demo"))
    assert c.command(f"AUTHENTICATE PLAIN {ir}").ok


def test_authenticate_plain_wrong_password(server):
    c = server.connect()
    r = c.command(f"AUTHENTICATE PLAIN {b64(chr(0) + 'demo' + chr(0) + 'nope')}")
    assert r.status == "NO", r.line
    server.login("demo")


def test_authenticate_cancelled_with_star_is_bad(server):
    c = server.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE PLAIN\r\n".encode())
    assert c.read_response().startswith(b"+")
    c.send(b"*\r\n")
    r = c.read_until_tagged(tag)
    # RFC 3501 §6.2.2: "it MUST reject the AUTHENTICATE command by sending a tagged BAD".
    assert r.status == "BAD", r.line
    c.login("demo", server.password("demo"))


def test_authenticate_unknown_mechanism_rejected(server):
    c = server.connect()
    r = c.command("AUTHENTICATE X-NO-SUCH-MECH")
    assert r.status in ("NO", "BAD"), r.line
    c.login("demo", server.password("demo"))


def test_authenticate_invalid_base64_rejected(server):
    c = server.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE PLAIN\r\n".encode())
    assert c.read_response().startswith(b"+")
    c.send(b"!!!not base64!!!\r\n")
    r = c.read_until_tagged(tag)
    assert r.status in ("BAD", "NO"), r.line


def test_logout_sends_bye_then_ok_and_closes(server):
    c = server.connect()
    c.login("demo", server.password("demo"))
    r = c.command("LOGOUT")
    assert r.status == "OK", r.line
    assert any(u.startswith(b"* BYE") for u in r.untagged), r.untagged
    # The BYE comes before the tagged OK (RFC 3501 §6.1.3 example).
    assert r.untagged[-1].startswith(b"* BYE")
    assert c.at_eof()


def test_logout_before_login(server):
    c = server.connect()
    r = c.command("LOGOUT")
    assert r.status == "OK"
    assert any(u.startswith(b"* BYE") for u in r.untagged)
    assert c.at_eof()


def test_noop_in_every_state(server):
    c = server.connect()
    assert c.command("NOOP").ok
    c.login("demo", server.password("demo"))
    r = c.ok("NOOP")
    assert r.parsed() == []
    c.ok("SELECT INBOX")
    r = c.ok("NOOP")
    assert r.parsed() == [], "nothing changed, so no untagged data"


def test_lowercase_command_names(server):
    c = server.connect()
    # RFC 3501 §9: commands are case-insensitive.
    c.ok(f'login demo {quote(server.password("demo"))}')
    c.ok("select inbox")
    c.ok("noop")
