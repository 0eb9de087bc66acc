"""Every untagged response stays inside the client's view (RFC 3501 §2.3.1.2, §7.4.1, §7.2.6).

A client knows the mailbox only through what the server told it: the EXISTS count, each
EXPUNGE (which renumbers the messages after it), FETCH responses for known sequence numbers,
and the keywords announced by FLAGS. `ViewModel` is that client: it checks every untagged
response of every command against what it was told before, and fails on

- an EXPUNGE or FETCH for a sequence number the client was never told of;
- an EXISTS that shrinks the mailbox (only EXPUNGE may);
- a UID that contradicts what this sequence number had (a renumbering gone wrong);
- a keyword in FETCH FLAGS that no FLAGS response announced.

The randomized test drives one observed session while another session and a plain external
writer (an MDA or another IMAP server renaming and deleting files in cur/ and new/) change the
same Maildir between its commands; seeds are fixed so a failure replays.
"""

from __future__ import annotations

import os
import random
import re
import time

import pytest

from conftest import MAIL_GID, MAIL_UID
from imapwire import Response, append, flags
from msgs import deliver, message

SYSTEM = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent"}


class ViewModel:
    """The client's idea of the selected mailbox, updated only from server responses."""

    def __init__(self, conn, select_response):
        self.c = conn
        self.uids: list[int | None] = []  # index = sequence number - 1
        self.keywords: set[str] = set()
        # Flags last told per UID (FETCH FLAGS, solicited or not), without \Recent.
        self.flags: dict[int, set[str]] = {}
        self.errors: list[str] = []
        self.check(select_response, "SELECT")

    def fail(self, what: str, raw: bytes) -> None:
        self.errors.append(f"{what}: {raw!r}")

    def check(self, r, cmd: str) -> None:
        for raw in r.untagged:
            m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH|RECENT)\b", raw, re.I)
            if raw.upper().startswith(b"* FLAGS "):
                listed = Response("", "", "", b"", [raw]).data("FLAGS")[0][1]
                self.keywords = {str(f).lower() for f in listed} - {s.lower() for s in SYSTEM}
                continue
            if not m:
                continue
            n, kind = int(m.group(1)), m.group(2).upper().decode()
            if kind == "EXISTS":
                if n < len(self.uids):
                    self.fail(f"{cmd}: EXISTS shrank the mailbox from {len(self.uids)}", raw)
                self.uids.extend([None] * (n - len(self.uids)))
            elif kind == "EXPUNGE":
                if not 1 <= n <= len(self.uids):
                    self.fail(f"{cmd}: EXPUNGE outside the {len(self.uids)} known messages", raw)
                    continue
                gone = self.uids.pop(n - 1)
                if gone is not None:
                    self.flags.pop(gone, None)
            elif kind == "FETCH":
                if not 1 <= n <= len(self.uids):
                    self.fail(f"{cmd}: FETCH outside the {len(self.uids)} known messages", raw)
                    continue
                items = Response("", "", "", b"", [raw]).fetches()[n]
                if "UID" in items:
                    uid = int(items["UID"])
                    known = self.uids[n - 1]
                    if known is not None and known != uid:
                        self.fail(f"{cmd}: message {n} was UID {known}", raw)
                    self.uids[n - 1] = uid
                    below = [u for u in self.uids[: n - 1] if u is not None]
                    above = [u for u in self.uids[n:] if u is not None]
                    if (below and max(below) >= uid) or (above and min(above) <= uid):
                        self.fail(f"{cmd}: UIDs out of order {self.uids}", raw)
                if "FLAGS" in items:
                    if self.uids[n - 1] is not None:
                        told = {f.lower() for f in flags(items["FLAGS"])} - {"\\recent"}
                        self.flags[self.uids[n - 1]] = told
                    for f in flags(items["FLAGS"]):
                        if f not in SYSTEM and f.lower() not in self.keywords:
                            self.fail(f"{cmd}: keyword {f} used before a FLAGS response announced it", raw)

    def run(self, cmd: str, *literals, allow=("OK",)):
        r = self.c.command(cmd, *literals)
        self.check(r, cmd)
        if r.status not in allow:
            self.fail(f"{cmd}: {r.status} where {allow} was expected", r.line)
        return r


def settled_view_matches(model: ViewModel, server) -> None:
    """Once every writer has been quiet for longer than any mtime granularity, one NOOP tells
    the client of every change: its UIDs and the flags it was last told equal the mailbox's."""
    time.sleep(1.2)
    model.run("NOOP")
    truth_conn = server.login(name="truth")
    truth_conn.ok("EXAMINE INBOX")
    nonempty = bool(truth_conn.ok("SEARCH ALL").search())
    fetched = truth_conn.ok("FETCH 1:* (UID FLAGS)").fetches() if nonempty else {}
    truth_conn.ok("LOGOUT")
    truth = {int(v["UID"]): {f.lower() for f in flags(v["FLAGS"])} - {"\\recent"}
             for v in fetched.values()}
    for uid, told in model.flags.items():
        if uid in truth and told != truth[uid]:
            model.fail(f"UID {uid}: told {sorted(told)}, mailbox has {sorted(truth[uid])}", b"")
    known = [u for u in model.uids if u is not None]
    if any(u not in truth for u in known) or len(model.uids) != len(truth):
        model.fail(f"view {model.uids} after a settled NOOP, mailbox has {sorted(truth)}", b"")
    assert not model.errors, "\n".join(model.errors)


def external_writer(maildir, rng: random.Random) -> None:
    """One change by another program: a delivery, a flag rename, or a removal."""
    cur = sorted(p for p in (maildir / "cur").iterdir() if not p.name.startswith("."))
    action = rng.choice(["deliver", "deliver", "flag", "delete"])
    if action == "deliver" or not cur:
        deliver(maildir, message(f"external {rng.random()}"),
                name=f"{rng.randrange(10**9)}.M{rng.randrange(10**6)}P7.external",
                uid=MAIL_UID, gid=MAIL_GID)
    elif action == "flag":
        p = rng.choice(cur)
        base, _, letters = p.name.partition(":2,")
        new = "".join(sorted(set(letters) ^ {rng.choice("FRS")}))
        try:
            os.rename(p, p.with_name(f"{base}:2,{new}"))
        except FileNotFoundError:
            pass
    else:
        try:
            rng.choice(cur).unlink()
        except FileNotFoundError:
            pass


# PIMAP_E2E_SEEDS=1-50 runs more (a longer soak than CI's).
_SEEDS = os.environ.get("PIMAP_E2E_SEEDS", "1-3").partition("-")


@pytest.mark.parametrize("seed", range(int(_SEEDS[0]), int(_SEEDS[2] or _SEEDS[0]) + 1))
def test_random_changes_between_commands_stay_inside_the_view(server, seed):
    rng = random.Random(seed)
    a = server.login(name="A")
    b = server.login(name="B")
    for i in range(6):
        append(b, "INBOX", message(f"start {i}"))
    a.ok("CREATE Other")
    model = ViewModel(a, a.ok("SELECT INBOX"))
    b.ok("SELECT INBOX")
    maildir = server.maildir()
    for step in range(120):
        # The others change the mailbox ...
        for _ in range(rng.randrange(3)):
            what = rng.choice(["external", "append", "store", "keyword", "expunge"])
            if what == "external":
                external_writer(maildir, rng)
            elif what == "append":
                append(b, "INBOX", message(f"b {step}"), flags=rng.choice([None, "\\Seen", "$Work"]))
            else:
                n = len(b.ok("SEARCH ALL").search())
                if n == 0:
                    continue
                seq = rng.randrange(1, n + 1)
                if what == "store":
                    b.ok(f"STORE {seq} {rng.choice('+-')}FLAGS (\\Flagged)")
                elif what == "keyword":
                    b.ok(f"STORE {seq} +FLAGS ($kw{rng.randrange(8)})")
                else:
                    b.ok(f"STORE {seq} +FLAGS.SILENT (\\Deleted)")
                    b.ok("EXPUNGE")
        # ... and the observed session goes on with what it knows.
        n = len(model.uids)
        seq = rng.randrange(1, n + 1) if n else None
        choice = rng.choice(["noop", "fetch", "fetch", "uidfetch", "store", "uidstore", "search",
                             "copy", "check"])
        if choice == "noop" or seq is None:
            model.run("NOOP")
        elif choice == "fetch":
            model.run(f"FETCH {seq}:{n} (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        elif choice == "uidfetch":
            model.run("UID FETCH 1:* (FLAGS)")
        elif choice == "store":
            model.run(f"STORE {seq} +FLAGS (\\Seen $mine{rng.randrange(4)})")
        elif choice == "uidstore":
            model.run("UID STORE 1:* -FLAGS (\\Seen)")
        elif choice == "search":
            model.run("SEARCH ALL")
        elif choice == "copy":
            # RFC 2180 §4.4.1: a COPY naming a message expunged meanwhile may fail as a whole.
            r = model.run(f"COPY {seq} Other", allow=("OK", "NO"))
            if r.status == "NO":
                assert r.code == "EXPUNGEISSUED", r.line
        else:
            model.run("CHECK")
        assert not model.errors, "\n".join(model.errors)
        if step % 30 == 29:
            settled_view_matches(model, server)
    # Quiet now: after a NOOP the client's numbering is the server's.
    model.run("NOOP")
    r = model.run("FETCH 1:* (UID)") if model.uids else None
    assert not model.errors, "\n".join(model.errors)
    b.ok("NOOP")
    truth = sorted(int(u) for u in (b.ok("UID SEARCH ALL").search()))
    assert model.uids == truth
    if r is not None:
        assert [int(v["UID"]) for _, v in sorted(r.fetches().items())] == truth


def random_session_step(c, rng: random.Random, tag: str) -> None:
    """One change through an IMAP session of either server (the session need not be told)."""
    n = len(c.ok("SEARCH ALL").search())
    what = rng.choice(["append", "append", "store", "keyword", "expunge"]) if n else "append"
    if what == "append":
        fl = rng.choice(["\\Seen", "$Work", "$Label2", ""])
        r = c.command(f"APPEND INBOX ({fl}) ", message(f"{tag} {rng.random()}"))
        assert r.status == "OK", r.line
        return
    seq = rng.randrange(1, n + 1)
    if what == "store":
        r = c.command(f"STORE {seq} {rng.choice('+-')}FLAGS (\\Flagged)")
    elif what == "keyword":
        r = c.command(f"STORE {seq} +FLAGS ($kw{rng.randrange(8)})")
    else:
        r = c.command(f"STORE {seq} +FLAGS.SILENT (\\Deleted)")
        if r.ok:
            r = c.command("EXPUNGE")
    assert r.status == "OK", r.line


@pytest.mark.parametrize("observed", ["pimap", "dovecot"])
@pytest.mark.parametrize("seed", range(int(_SEEDS[0]), int(_SEEDS[2] or _SEEDS[0]) + 1))
def test_dovecot_and_pimap_writing_the_same_maildir_stay_inside_the_view(both, observed, seed):
    """The observed session is on one server; the other server and a second session of the
    observed one write the same Maildir between its commands."""
    dv, pm = both
    rng = random.Random(seed)
    obs_srv, other_srv = (pm, dv) if observed == "pimap" else (dv, pm)
    a = obs_srv.login(name="A")
    for i in range(5):
        append(a, "INBOX", message(f"start {i}"))
    a.ok("CREATE Other")
    model = ViewModel(a, a.ok("SELECT INBOX"))
    writers = [other_srv.login(name="W-other"), obs_srv.login(name="W-same")]
    for w in writers:
        w.ok("SELECT INBOX")
    for step in range(80):
        for _ in range(rng.randrange(3)):
            random_session_step(rng.choice(writers), rng, f"w{step}")
        n = len(model.uids)
        seq = rng.randrange(1, n + 1) if n else None
        choice = rng.choice(["noop", "fetch", "uidfetch", "store", "search", "copy"])
        if choice == "noop" or seq is None:
            model.run("NOOP")
        elif choice == "fetch":
            model.run(f"FETCH {seq}:{n} (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        elif choice == "uidfetch":
            model.run("UID FETCH 1:* (FLAGS)")
        elif choice == "store":
            model.run(f"STORE {seq} +FLAGS (\\Seen $mine{rng.randrange(4)})")
        elif choice == "search":
            model.run("SEARCH ALL")
        else:
            r = model.run(f"COPY {seq} Other", allow=("OK", "NO"))
            if r.status == "NO":
                assert r.code == "EXPUNGEISSUED", r.line
        assert not model.errors, "\n".join(model.errors)
        if step % 40 == 39:
            settled_view_matches(model, obs_srv)
    model.run("NOOP")
    assert not model.errors, "\n".join(model.errors)
    writers[1].ok("NOOP")  # its own view up to date first
    truth = sorted(writers[1].ok("UID SEARCH ALL").search())
    model.run("FETCH 1:* (UID)")
    assert model.uids == truth
    # Both servers list the same UIDs and flags.
    views = []
    for srv in (dv, pm):
        c = srv.login()
        c.ok("EXAMINE INBOX")
        f = c.ok("FETCH 1:* (UID FLAGS)").fetches()
        views.append({int(v["UID"]): flags(v["FLAGS"]) - {"\\Recent"} for v in f.values()})
    assert views[0] == views[1]
