"""AUTHENTICATE SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802, RFC 7677, RFC 4959 SASL-IR).

The client side is `scramp` (a real SCRAM implementation; it also checks the server's `v=`
signature). Every exchange runs against Dovecot and pimap with the same passwd-file: SCRAM
users hashed by `doveadm pw` and by `pimap pw` (each checked with `doveadm pw -t`), the
suite's {PLAIN} user (both servers derive SCRAM keys from a plaintext password) and its
SHA512-CRYPT user (a one-way hash SCRAM cannot use).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import subprocess
import time

import pytest
import scramp

from conftest import (MAIL_GID, MAIL_UID, PIMAP_BIN, USERS, _doveadm_pw, _start, attach,
                      start_pimap)
from imapwire import quote

# name → (password, scheme, who hashes it)
SCRAM_USERS = {
    "s256": ("pencil 256", "SCRAM-SHA-256", "doveadm"),
    "s1": ("pencil-1", "SCRAM-SHA-1", "doveadm"),
    "p256": ("pimap: made 256", "SCRAM-SHA-256", "pimap"),
    "p1": ("pimap made 1", "SCRAM-SHA-1", "pimap"),
}
MECHS = ["SCRAM-SHA-1", "SCRAM-SHA-256"]
FAILED = "NO [AUTHENTICATIONFAILED] Authentication failed."

_hashes: dict[str, str] = {}


def _pimap_pw(scheme: str, password: str) -> str:
    out = subprocess.run([str(PIMAP_BIN), "pw", "-s", scheme, "-p", password], capture_output=True,
                         text=True, timeout=30, check=True)
    h = out.stdout.strip()
    assert h.startswith("{" + scheme + "}4096,"), h
    # Dovecot accepts it: `doveadm pw -t` exits 0 for the password, not for another.
    subprocess.run(["doveadm", "pw", "-t", h, "-p", password], capture_output=True, timeout=30,
                   check=True)
    bad = subprocess.run(["doveadm", "pw", "-t", h, "-p", password + "x"], capture_output=True,
                         timeout=30)
    assert bad.returncode != 0, h
    return h


def stored_hash(user: str) -> str:
    if user not in _hashes:
        password, scheme, who = SCRAM_USERS[user]
        _hashes[user] = (_pimap_pw if who == "pimap" else _doveadm_pw)(scheme, password)
    return _hashes[user]


def password(user: str) -> str:
    return SCRAM_USERS[user][0] if user in SCRAM_USERS else USERS[user][0]


@pytest.fixture(params=["dovecot", "pimap"])
def srv(request, workdir):
    """The suite's users plus the SCRAM ones, then one server on that file."""
    with open(workdir / "users", "a") as f:
        for user in SCRAM_USERS:
            f.write(f"{user}:{stored_hash(user)}:{MAIL_UID}:{MAIL_GID}::::\n")
    return _start(request.param, request, workdir)


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def unb64(line: bytes) -> str:
    assert line.startswith(b"+ "), line
    return base64.b64decode(line[2:].strip()).decode()


def tagged(c, tag: str) -> str:
    """The tagged line without the tag; an OK's post-login CAPABILITY list (each server has
    its own) is cut off."""
    line = c.read_until_tagged(tag).line.decode().rstrip("\r\n")
    assert line.startswith(tag + " "), line
    return re.sub(r"^OK \[CAPABILITY [^]]*\] .*", "OK", line[len(tag) + 1:])


def scram_login(c, user: str, pw: str, mech: str = "SCRAM-SHA-256", ir: bool = True,
                final=None, first: str | None = None) -> tuple[str, list[str]]:
    """Run the exchange; `final` may rewrite the client-final-message. Returns the tagged
    answer and the server's decoded challenges (the last one is checked by scramp)."""
    client = scramp.ScramClient([mech], user, pw)
    first = first or client.get_client_first()
    tag = c.next_tag()
    if ir:
        c.send(f"{tag} AUTHENTICATE {mech} {b64(first)}\r\n".encode())
    else:
        c.send(f"{tag} AUTHENTICATE {mech}\r\n".encode())
        assert c.read_line() == b"+ \r\n"
        c.send(f"{b64(first)}\r\n".encode())
    challenges = []
    line = c.read_line()
    if not line.startswith(b"+"):
        assert line.startswith(tag.encode() + b" "), line
        return line.decode()[len(tag) + 1:].rstrip("\r\n"), challenges
    challenges.append(unb64(line))
    client.set_server_first(challenges[0])
    cf = client.get_client_final()
    c.send(f"{b64(final(cf) if final else cf)}\r\n".encode())
    line = c.read_line()
    if not line.startswith(b"+"):
        assert line.startswith(tag.encode() + b" "), line
        return line.decode()[len(tag) + 1:].rstrip("\r\n"), challenges
    challenges.append(unb64(line))
    client.set_server_final(challenges[1])  # raises unless v= is the right ServerSignature
    c.send(b"\r\n")
    return tagged(c, tag), challenges


@pytest.mark.parametrize("user", list(SCRAM_USERS))
@pytest.mark.parametrize("ir", [True, False], ids=["sasl-ir", "no-ir"])
def test_scram_login_with_doveadm_and_pimap_hashes(srv, user, ir):
    mech = SCRAM_USERS[user][1]
    c = srv.connect()
    answer, challenges = scram_login(c, user, password(user), mech, ir=ir)
    assert answer == "OK", (answer, challenges)
    # server-first: the client's nonce extended, the stored salt and iteration count.
    salt = stored_hash(user).split("}")[1].split(",")[1]
    m = re.fullmatch(r"r=([\x21-\x2b\x2d-\x7e]+),s=([^,]+),i=4096", challenges[0])
    assert m and m.group(2) == salt, challenges[0]
    assert challenges[1].startswith("v="), challenges
    c.ok("SELECT INBOX")


class Gs2Client:
    """The client side by hand (hashlib), for a gs2 header scramp does not make (an authzid)."""

    def __init__(self, user: str, pw: str, gs2: str, mech: str = "SCRAM-SHA-256"):
        self.h = "sha256" if mech == "SCRAM-SHA-256" else "sha1"
        self.pw, self.gs2 = pw.encode(), gs2
        self.bare = f"n={user},r=" + base64.b64encode(os.urandom(18)).decode()

    def first(self) -> str:
        return self.gs2 + self.bare

    def final(self, server_first: str) -> str:
        f = dict(kv.split("=", 1) for kv in server_first.split(","))
        salted = hashlib.pbkdf2_hmac(self.h, self.pw, base64.b64decode(f["s"]), int(f["i"]))
        without_proof = f"c={b64(self.gs2)},r={f['r']}"
        auth = f"{self.bare},{server_first},{without_proof}".encode()
        client_key = hmac.new(salted, b"Client Key", self.h).digest()
        sig = hmac.new(hashlib.new(self.h, client_key).digest(), auth, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.expect = hmac.new(hmac.new(salted, b"Server Key", self.h).digest(), auth, self.h).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"


@pytest.mark.parametrize("mech", MECHS)
def test_scram_with_plaintext_password_and_authzid_of_the_user(srv, mech):
    """Both servers derive the keys from a {PLAIN} password; an authzid naming the user (gs2
    header `n,a=plain,`, RFC 5802 §7) and the `y` flag (client could bind, thinks the server
    cannot) are accepted."""
    assert scram_login(srv.connect(), "plain", password("plain"), mech)[0] == "OK"
    for gs2 in ["n,a=plain,", "y,,"]:
        client = Gs2Client("plain", password("plain"), gs2, mech)
        c = srv.connect()
        tag = c.next_tag()
        c.send(f"{tag} AUTHENTICATE {mech} {b64(client.first())}\r\n".encode())
        c.send(f"{b64(client.final(unb64(c.read_line())))}\r\n".encode())
        assert unb64(c.read_line()) == "v=" + base64.b64encode(client.expect).decode()
        c.send(b"\r\n")
        assert tagged(c, tag) == "OK", gs2


@pytest.mark.parametrize("mech", MECHS)
def test_wrong_password_nonce_or_channel_binding_fail(srv, mech):
    user = "s256" if mech == "SCRAM-SHA-256" else "s1"
    answer, challenges = scram_login(srv.connect(), user, "wrong", mech)
    assert (answer, len(challenges)) == (FAILED, 1)
    wrong_nonce = lambda cf: re.sub(r",r=([^,]+)", lambda m: ",r=" + m.group(1)[:-1] + "X", cf)
    assert scram_login(srv.connect(), user, password(user), mech, final=wrong_nonce)[0] == FAILED
    # c= must encode the gs2 header sent first ("n,," is "biws").
    other_cb = lambda cf: cf.replace("c=biws", "c=eSws")
    assert scram_login(srv.connect(), user, password(user), mech, final=other_cb)[0] == FAILED
    garbage = lambda cf: "hello"
    assert scram_login(srv.connect(), user, password(user), mech, final=garbage)[0] == FAILED
    # The right password still works after all that.
    assert scram_login(srv.connect(), user, password(user), mech)[0] == "OK"


@pytest.mark.parametrize("user", ["nobody", "demo"])
def test_unknown_user_and_one_way_hash_fail_alike(srv, user):
    """`demo` is SHA512-CRYPT: SCRAM cannot use it. Dovecot fails right after the
    client-first-message; pimap answers like for a real user and fails at the proof, so the
    exchange does not tell who exists (RFC 5802 §9). Both end in the same tagged NO."""
    answer, challenges = scram_login(srv.connect(), user, "whatever")
    assert answer == FAILED
    if srv.is_pimap:
        assert len(challenges) == 1 and re.search(r",s=[A-Za-z0-9+/]{22}==,i=4096$", challenges[0])
        # Asked again, the made-up salt is the same, as a real user's would be.
        again = scram_login(srv.connect(), user, "whatever")[1]
        assert again[0].split(",s=")[1] == challenges[0].split(",s=")[1]
    else:
        assert challenges == []


MALFORMED_FIRST = [
    "p=tls-unique,,n=s256,r=abcdef",  # channel binding: not offered (no -PLUS)
    "x,,n=s256,r=abcdef",
    "n,,m=ext,n=s256,r=abcdef",  # a mandatory extension
    "n,,n=s=2X56,r=abcdef",  # bad escape
    "n,,u=s256,r=abcdef",
    "n,,n=s256",
    "n,,n=s256,x=abcdef",
    "hello",
    "",  # sent as "=" (RFC 4959: an empty initial response)
]


@pytest.mark.parametrize("first", MALFORMED_FIRST)
def test_malformed_client_first_is_the_same_no(srv, first):
    c = srv.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE SCRAM-SHA-256 {b64(first) or '='}\r\n".encode())
    assert tagged(c, tag) == FAILED


def test_authzid_of_another_user_is_refused(srv):
    c = srv.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE SCRAM-SHA-256 {b64('n,a=s1,n=s256,r=abcdef')}\r\n".encode())
    # pimap names the reason (as for PLAIN); Dovecot says only AUTHENTICATIONFAILED.
    answer = tagged(c, tag)
    assert answer in (FAILED, "NO [AUTHORIZATIONFAILED] Authorization as another user is not allowed."), answer


def test_cancel_with_star_at_each_step_is_bad(srv):
    # RFC 3501 §6.2.2: "*" cancels, and the server answers BAD (texts differ: normalised).
    for steps in range(3):
        c = srv.connect()
        client = scramp.ScramClient(["SCRAM-SHA-256"], "s256", password("s256"))
        tag = c.next_tag()
        c.send(f"{tag} AUTHENTICATE SCRAM-SHA-256\r\n".encode())
        assert c.read_line() == b"+ \r\n"
        if steps >= 1:
            c.send(f"{b64(client.get_client_first())}\r\n".encode())
            client.set_server_first(unb64(c.read_line()))
        if steps >= 2:
            c.send(f"{b64(client.get_client_final())}\r\n".encode())
            client.set_server_final(unb64(c.read_line()))
        c.send(b"*\r\n")
        assert tagged(c, tag).startswith("BAD "), steps
        # Not logged in; the connection goes on.
        assert c.command("SELECT INBOX").status in ("NO", "BAD")
        assert scram_login(c, "s256", password("s256"))[0] == "OK"


def test_invalid_base64(srv):
    c = srv.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE SCRAM-SHA-256 !!!\r\n".encode())
    assert tagged(c, tag).startswith("BAD ")
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE SCRAM-SHA-256 {b64('n,,n=s256,r=abcdef')}\r\n".encode())
    assert c.read_line().startswith(b"+ ")
    c.send(b"!!!\r\n")
    # Dovecot: NO [ALERT] Invalid base64 in response; pimap: BAD, as for PLAIN.
    assert tagged(c, tag).split()[0] in ("BAD", "NO")


def test_capabilities_before_login(srv):
    c = srv.connect()
    caps = c.ok("CAPABILITY").untagged[0].decode().split()
    assert "AUTH=SCRAM-SHA-1" in caps and "AUTH=SCRAM-SHA-256" in caps, caps
    assert "AUTH=SCRAM-SHA-256-PLUS" not in caps
    r = c.command("AUTHENTICATE SCRAM-SHA-256-PLUS")
    assert r.status in ("NO", "BAD"), r.line


def test_login_and_plain_verify_a_scram_hash(srv):
    """LOGIN and AUTHENTICATE PLAIN check the password against the stored SCRAM keys."""
    for user in SCRAM_USERS:
        assert srv.connect().command(f"LOGIN {user} {quote(password(user))}").ok, user
        assert srv.connect().command(f"LOGIN {user} {quote(password(user) + 'x')}").status == "NO"
        ir = b64(f"\0{user}\0{password(user)}")
        assert srv.connect().command(f"AUTHENTICATE PLAIN {ir}").ok, user


def test_pimap_scram_limits_and_backoff(request, workdir):
    """pimap only: a client message over 4096 bytes fails without being parsed, and a failed
    SCRAM exchange costs the same per-address back-off as a failed LOGIN."""
    with open(workdir / "users", "a") as f:
        f.write(f"s256:{stored_hash('s256')}:{MAIL_UID}:{MAIL_GID}::::\n")
    srv = start_pimap(workdir, workdir / "users", workdir / "mail",
                      extra=["--failed-login-delay", "300ms", "--max-login-delay", "2s"])
    attach(request.node, "pimap log", srv.log_text)
    request.addfinalizer(srv.stop)
    c = srv.connect()
    tag = c.next_tag()
    c.send(f"{tag} AUTHENTICATE SCRAM-SHA-256 {b64('n,,n=s256,r=' + 'a' * 5000)}\r\n".encode())
    assert tagged(c, tag) == FAILED
    t0 = time.monotonic()
    assert scram_login(c, "s256", "wrong")[0] == FAILED
    took = time.monotonic() - t0
    assert 0.55 <= took <= 1.5, took  # the second failure from this address: 2 × 300 ms
    t0 = time.monotonic()
    assert c.command('LOGIN s256 "wrong"').status == "NO"
    assert time.monotonic() - t0 >= 1.1  # the third: 4 × 300 ms
    assert "too long" in srv.log_text() and "ClientProof does not match" in srv.log_text()
