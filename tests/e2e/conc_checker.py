#!/usr/bin/env python3
"""A concurrency checker: many independent IMAP clients on shared mailboxes, checked strictly.

Used by tests/e2e/test_conc_checker.py (a bounded run per mode) and benches/concurrency.py
(longer runs, figures to benches/results/). It talks to real servers over sockets only.

What runs
---------
`run()` starts several client PROCESSES (`python3 conc_checker.py --worker CONFIG`); each
runs a few sessions (one thread and one socket each) over shared mailboxes: several users,
INBOX and "Work" each. Every session keeps its view the way RFC 3501 asks a client to
(§2.3.1.2, §7.4.1, RFC 7162 §3.2.10 for VANISHED): the sequence number → UID map, grown by
`* n EXISTS`, shrunk by `* n EXPUNGE` / `* VANISHED`, flags from `* n FETCH (FLAGS ...)`,
keywords announced by `* FLAGS`. It sends random APPEND (old internal dates such as 2001,
keywords from a pool of more than 26), FETCH (UID/FLAGS, BODY.PEEK[], partial, header
fields), STORE +/-FLAGS (system flags and keywords), COPY, MOVE, EXPUNGE / UID EXPUNGE,
NOOP and IDLE, in sequence-number and UID forms. Half the sessions ENABLE QRESYNC.

What fails a run (each error names the seed, the session, the command and the response)
---------------------------------------------------------------------------------------
* a tagged NO or BAD other than the cases Dovecot gives too (`ALLOWED_NO`, checked against
  Dovecot: a run against Dovecot alone must show 0 errors);
* a sequence number outside the session's view (`* n EXPUNGE` / `* n FETCH` with n above
  the messages the session was told of), EXISTS that shrinks without EXPUNGE, a FETCH whose
  UID contradicts the session's map, EXPUNGE while answering FETCH/STORE/SEARCH (§7.4.1);
  each such contradiction counts once: the session then re-SELECTs for a fresh view;
* a keyword in FETCH FLAGS never announced by an untagged FLAGS since the SELECT (§7.2.6);
* a missing tagged response, a response this client cannot parse, no answer within the
  timeout (a hang), a dropped connection (except when the checker killed the server);
* UIDVALIDITY of a mailbox changing.

After the clients stop (quiescent state), every server given to `final_check` lists every
mailbox (UID, FLAGS, the message's X-Checker-Id header) and the listing is compared with
the model built from every ACKNOWLEDGED write of every client: APPEND (APPENDUID), STORE,
EXPUNGE / VANISHED seen, COPY / MOVE (COPYUID). Every acknowledged message is there with
the same identity and flags a linearizable server could have left (concurrent STOREs on
one flag allow either value; in "both" a flag change made through pimap counts as concurrent
with Dovecot's commands for `VIEW_LAG` seconds after it was answered: Dovecot lags behind other
processes' renames by design), unless the model says it was expunged or moved; nothing else
is there, except what commands of unknown outcome (in flight when the server was killed)
may have created. Two servers' listings must also be identical.

Keywords beyond the 26 file-name letters
----------------------------------------
A Maildir file name carries at most 26 keyword letters (mapped in each mailbox's
dovecot-keywords). Dovecot keeps further keywords in its private index, pimap in its own
`pimap-keywords`: neither server can see the other's. So:
* "pimap" and "kill" use a pool of 40 keywords: pimap's own listing must match the model
  exactly (its extra keywords included); Dovecot's listing, and the comparison of the two
  listings, look only at the keywords that have a letter in that mailbox's dovecot-keywords
  (read from the Maildir after the run: `lettered_keywords`). Everything else is compared.
* "both" uses a pool of 26 keywords (`LETTER_KEYWORDS`), so every keyword of every mailbox
  gets a letter and both listings must match the model and each other exactly.

Running it
----------
    PIMAP_BIN=$PWD/target/debug/pimap python3 -m pytest -q -p no:cacheprovider \
        tests/e2e/test_conc_checker.py                  # 25 s per mode (CHECKER_SECONDS)
    CHECKER_SEED=1302 python3 -m pytest ... -k 'test_checker and pimap'   # replay a seed
    python3 benches/concurrency.py --seconds 120        # long runs, report in benches/results/
A failed run keeps its temp dir: checker-<seed>/errors.txt (every error), <sid>.log (each
session's transcript), p<n>.jsonl (each process's journal of acknowledged writes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imapwire import Closed, Conn, ImapProtocolError, parse, quote, status_of  # noqa: E402

MAILBOXES = ["INBOX", "Work"]
SYSTEM_FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"]
KEYWORDS = [f"kw{n:02d}" for n in range(40)]  # more than the 26 Maildir file-name letters
LETTER_KEYWORDS = KEYWORDS[:26]  # "both": every keyword of a mailbox gets a file-name letter
CMD_TIMEOUT = 15.0  # no tagged answer within this = a hang
# After a kill -9 the restarted server may first wait for lock files the killed process left:
# Dovecot breaks its own stale dotlocks after up to 2 minutes (seen: SELECT > 15 s in the
# dovecot-kill control). In the kill modes a hang is therefore no answer within this.
KILL_CMD_TIMEOUT = 150.0

# Tagged NO answers a correct server may give under concurrency, as (command word, response
# code). Each was seen from Dovecot 2.3 under this checker (the control): nothing else is
# allowed. COPY/MOVE of a message another session expunged meanwhile: RFC 2180 §4.4.
ALLOWED_NO = {
    ("COPY", "EXPUNGEISSUED"),
    ("MOVE", "EXPUNGEISSUED"),
}


def now() -> float:
    return time.monotonic()  # CLOCK_MONOTONIC: comparable between processes on one machine


def norm_flag(f: str) -> str:
    """System flags capitalized, keywords lower-cased (keywords are case-insensitive)."""
    f = str(f)
    return "\\" + f[1:].capitalize() if f.startswith("\\") else f.lower()


def expand_set(s: str) -> list[int]:
    out: list[int] = []
    for part in s.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            lo, hi = min(a, b), max(a, b)
            out.extend(range(lo, hi + 1))
        else:
            out.append(int(part))
    return out


def compact(nums) -> str:
    nums = sorted(set(nums))
    parts = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}:{nums[j]}")
        i = j + 1
    return ",".join(parts)


def message_bytes(cid: str, rng: random.Random) -> bytes:
    size = rng.choice([200, 800, 3000, 20000])
    line = "The quick brown fox jumps over the lazy dog. "
    body = (line * (size // len(line) + 1))[:size]
    body = "\r\n".join(body[i:i + 70] for i in range(0, len(body), 70))
    return (f"From: Checker <checker@example.org>\r\nTo: user@example.org\r\n"
            f"Subject: checker {cid}\r\nMessage-ID: <{cid}@checker.example>\r\n"
            f"Date: Mon, 01 Jan 2001 10:00:00 +0000\r\nX-Checker-Id: {cid}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n").encode()


def rand_date(rng: random.Random) -> str | None:
    r = rng.random()
    if r < 0.3:
        return None
    if r < 0.7:  # what a migration or mbsync upload sends: the message's original date
        return f"{rng.randint(1, 28):02d}-Jan-2001 {rng.randint(0, 23):02d}:13:07 +0000"
    year = rng.randint(1999, 2025)
    mon = rng.choice(["Feb", "Mar", "Jun", "Sep", "Dec"])
    return f"{rng.randint(1, 28):02d}-{mon}-{year} 08:00:00 -0700"


# ---------------------------------------------------------------------------------------
# One session (runs in a worker process, one thread)


class Unknown(Exception):
    """The connection broke with a command in flight (outcome unknown)."""


@dataclass
class View:
    uids: list = field(default_factory=list)  # seq-1 → UID (None: told by EXISTS, UID not yet fetched)
    flags: dict = field(default_factory=dict)  # UID → set of flags
    announced: set = field(default_factory=set)  # keywords from `* FLAGS` since SELECT


class Session:
    def __init__(self, worker, spec: dict, rng: random.Random):
        self.w = worker
        self.sid = spec["sid"]
        self.user = spec["user"]
        self.password = spec["password"]
        self.server = spec["server"]  # {"kind", "host", "port"}
        self.qresync = spec["qresync"]
        self.source = spec["source"]
        self.rng = rng
        self.conn: Conn | None = None
        self.mbox = rng.choice(MAILBOXES)
        self.view = View()
        self.n_cid = 0
        self.transcript: list[str] = []
        self.last_ok = now()  # the connection last answered at this time
        self.selected = False
        self.diverged = False  # the server contradicted this session's view: re-SELECT

    def dropped(self, what: str, e) -> None:
        """The connection broke: an error, unless the checker killed the server since the
        connection last answered (then the command's outcome is unknown)."""
        if not (self.w.kill_mode and self.w.killed_since(self.last_ok)):
            self.error("closed", f"connection lost during `{what.strip()[:120]}`: {e!r}")

    # -- reporting ------------------------------------------------------------------------
    def emit(self, ev: dict) -> None:
        """A journal event, naming this session and the server it talks to (the final check
        orders writes made through different servers with `VIEW_LAG`)."""
        ev.setdefault("sid", self.sid)
        ev["server"] = self.server["kind"]
        self.w.emit(ev)

    def where(self) -> str:
        return f"seed={self.w.seed} session={self.sid} ({self.user} on {self.server['kind']}:{self.mbox})"

    def error(self, kind: str, msg: str) -> None:
        if kind == "seq":
            # The first contradiction of the view is the finding; what follows from it in the
            # same command is not counted again. The next step re-SELECTs (a fresh view).
            if self.diverged:
                return
            self.diverged = True
        tail = "\n      ".join(line.replace("\r", "").replace("\n", "\\n")[:300]
                                   for line in self.transcript[-8:])
        self.emit({"ev": "error", "kind": kind, "sid": self.sid,
                   "msg": f"{kind}: {self.where()}: {msg}\n    last lines:\n      {tail}"})

    # -- connection -----------------------------------------------------------------------
    def save_transcript(self) -> None:
        """Append the transcript so far to <sid>.log beside the journal, keeping the last
        lines for error messages."""
        if not self.transcript:
            return
        with open(Path(self.w.cfg["journal"]).parent / f"{self.sid}.log", "a") as f:
            f.write("\n".join(self.transcript) + "\n")
        del self.transcript[:-8]
        self.transcript[:0] = ["(saved above)"]

    def connect(self) -> None:
        """Connect, log in, ENABLE QRESYNC (half the sessions), SELECT. Retries while the
        server is down (kill mode); gives up after 10 s, or in kill mode KILL_CMD_TIMEOUT after
        the last kill, with what each attempt met."""
        deadline = now() + (30 if self.w.kill_mode else 10)
        attempts: list[str] = []
        while (now() < deadline or (self.w.kill_mode and now() < self.w.last_kill() + KILL_CMD_TIMEOUT)) \
                and not self.w.stopping():
            t = now()
            step = "connect"
            try:
                if self.conn:
                    self.conn.close()
                self.save_transcript()
                self.transcript.append(f"--- {self.sid}: connecting")
                self.last_ok = now()
                self.conn = Conn(self.server["host"], self.server["port"], timeout=self.w.cmd_timeout,
                                 transcript=self.transcript, name=self.sid, source=self.source)
                step = "LOGIN"
                r = self.conn.command(f"LOGIN {quote(self.user)} {quote(self.password)}")
                if r.status != "OK":
                    self.error("login", r.line.decode(errors="replace"))
                    time.sleep(0.5)
                    continue
                if self.qresync:
                    step = "ENABLE"
                    self.cmd("ENABLE QRESYNC")
                step = "SELECT"
                self.select(self.mbox)
                return
            except (OSError, ImapProtocolError, Unknown) as e:
                attempts.append(f"{step} after {now() - t:.1f} s: {type(e).__name__} {e}")
                time.sleep(0.2)
        if not self.w.stopping():
            raise RuntimeError(f"no session (LOGIN + SELECT {self.mbox}) within "
                               f"{f'{KILL_CMD_TIMEOUT:.0f} s of the last kill' if self.w.kill_mode else '10 s'}; "
                               f"attempts: {attempts[-6:]}")

    def select(self, mbox: str) -> None:
        self.mbox = mbox
        self.view = View()
        self.selected = False
        self.diverged = False
        r = self.cmd(f"SELECT {mbox}")
        if r.status != "OK":
            return  # reported by cmd(); the next step tries again
        self.selected = True
        codes = r.codes()
        if "UIDVALIDITY" in codes:
            self.w.uidvalidity(self, mbox, int(codes["UIDVALIDITY"]))
        else:
            self.error("select", "no UIDVALIDITY in SELECT's answer")
        self.fill_uids()

    def fill_uids(self) -> None:
        """Learn the UIDs of messages announced by EXISTS (what a client does next)."""
        missing = [i + 1 for i, u in enumerate(self.view.uids) if u is None]
        if missing:
            self.cmd(f"FETCH {compact(missing)} (UID FLAGS)", check=True)

    # -- one command ----------------------------------------------------------------------
    def cmd(self, *parts, check: bool = False, word: str | None = None):
        """Send a command; process every untagged response into the view; return Response.

        Raises Unknown if the connection broke before the tagged answer."""
        text = parts[0] if isinstance(parts[0], str) else ""
        word = word or text.split(" ")[0].upper()
        if word == "UID":
            word = "UID " + text.split(" ")[1].upper()
        t = now()
        try:
            r = self.conn.command(*parts)
        except socket.timeout:
            self.error("hang", f"no tagged answer to `{text.strip()[:120]}` within {self.w.cmd_timeout:.0f} s")
            raise Unknown(text)
        except Closed as e:
            self.dropped(text, e)
            raise Unknown(text)
        except ImapProtocolError as e:
            self.error("protocol", f"`{text.strip()[:120]}`: {e}")
            raise Unknown(text)
        except OSError as e:
            self.dropped(text, e)
            raise Unknown(text)
        if r.status == "BYE":
            self.dropped(text, r.text)
            raise Unknown(text)
        self.last_ok = now()
        self.w.latency(word, self.last_ok - t)
        self.w.count(word, r.status if r.ok or not r.code else f"{r.status} [{r.code.split(' ')[0]}]")
        self.process(r.untagged, word)
        if r.status != "OK" and (check or (word.replace("UID ", ""), r.code.split(" ")[0] if r.code else None)
                                 not in ALLOWED_NO):
            self.error(f"tagged {r.status}", f"`{text.strip()[:160]}` → {r.line.decode(errors='replace').strip()}")
        return r

    def process(self, untagged: list[bytes], word: str) -> None:
        no_expunge = word in ("FETCH", "STORE", "SEARCH")
        for raw in untagged:
            try:
                self.process_one(raw, no_expunge, word)
            except (ImapProtocolError, ValueError, IndexError) as e:
                self.error("protocol", f"cannot parse {raw[:200]!r} (answer to {word}): {e}")

    def process_one(self, raw: bytes, no_expunge: bool, word: str) -> None:
        v = self.view
        st = status_of(raw)
        if st is not None:
            m = re.match(rb"\* OK \[UIDVALIDITY (\d+)\]", raw)
            if m and word != "SELECT":
                self.error("uidvalidity", f"UIDVALIDITY {m.group(1).decode()} sent outside SELECT")
            return
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|RECENT)\r\n$", raw, re.I)
        if m:
            n, what = int(m.group(1)), m.group(2).upper()
            if what == b"EXISTS":
                if n < len(v.uids):
                    self.error("seq", f"`* {n} EXISTS` but the session knows {len(v.uids)} messages "
                                      f"and was told of no EXPUNGE")
                    v.uids = v.uids[:n]
                v.uids.extend([None] * (n - len(v.uids)))
            elif what == b"EXPUNGE":
                if no_expunge:
                    self.error("seq", f"`* {n} EXPUNGE` while answering {word} (RFC 3501 §7.4.1)")
                if not 1 <= n <= len(v.uids):
                    self.error("seq", f"`* {n} EXPUNGE` but the session knows {len(v.uids)} messages")
                    return
                uid = v.uids.pop(n - 1)
                if uid is not None:
                    v.flags.pop(uid, None)
                    self.emit({"ev": "gone", "user": self.user, "mbox": self.mbox, "uid": uid})
            return
        p = parse(raw)
        if len(p) >= 2 and str(p[1]).upper() == "FLAGS":
            v.announced |= {norm_flag(f) for f in p[2] if not str(f).startswith("\\")}
            return
        if len(p) >= 2 and str(p[1]).upper() == "VANISHED":
            if no_expunge:
                self.error("seq", f"VANISHED while answering {word} (RFC 3501 §7.4.1, RFC 7162 §3.2.10)")
            earlier = isinstance(p[2], list)
            uids = expand_set(str(p[3] if earlier else p[2]))
            for u in uids:
                self.emit({"ev": "gone", "user": self.user, "mbox": self.mbox, "uid": u})
            if earlier:
                return  # about messages outside the view (RFC 7162 §3.2.10)
            # Without (EARLIER), VANISHED is EXPUNGE by UID: each UID is a message the session
            # was told of (EXISTS) and the count drops by one each. A message whose UID the
            # session has not fetched yet sits in a gap of unknown UIDs ordered by UID.
            for u in sorted(set(uids)):
                if u in v.uids:
                    v.uids.remove(u)
                    v.flags.pop(u, None)
                    continue
                lo = 0  # the gap where u belongs: after the last known UID below u
                for i, x in enumerate(v.uids):
                    if x is not None and x < u:
                        lo = i + 1
                    elif x is not None and x > u:
                        break
                if lo < len(v.uids) and v.uids[lo] is None:
                    v.uids.pop(lo)
                else:
                    self.error("seq", f"`* VANISHED` UID {u}: not a message of the session's view "
                                      f"({len(v.uids)} messages, no unfetched one where UID {u} would be)")
            return
        if len(p) >= 3 and str(p[2]).upper() == "FETCH":
            n = int(p[1])
            if not 1 <= n <= len(v.uids):
                self.error("seq", f"`* {n} FETCH` but the session knows {len(v.uids)} messages: "
                                  f"{raw[:160]!r}")
                return
            items = p[3]
            d = {str(k).upper(): val for k, val in zip(items[0::2], items[1::2])}
            uid = v.uids[n - 1]
            if "UID" in d:
                u = int(d["UID"])
                if uid is not None and u != uid:
                    self.error("seq", f"`* {n} FETCH (UID {u})` but seq {n} is UID {uid} in the session's view")
                    return
                if uid is None:
                    if u in v.uids:
                        self.error("seq", f"`* {n} FETCH (UID {u})` but UID {u} is seq "
                                          f"{v.uids.index(u) + 1} in the session's view")
                        return
                    v.uids[n - 1] = u
                    uid = u
            if "FLAGS" in d:
                fl = {norm_flag(f) for f in d["FLAGS"]}
                kws = {f for f in fl if not f.startswith("\\")}
                new = kws - v.announced
                if new:
                    self.error("keyword", f"`* {n} FETCH (FLAGS ...)` uses {sorted(new)} never announced "
                                          f"by `* FLAGS` (announced: {len(v.announced)} keywords)")
                    v.announced |= new
                if uid is not None:
                    v.flags[uid] = fl - {"\\Recent"}
            return
        if len(p) >= 2 and str(p[1]).upper() == "SEARCH" and word == "SEARCH":
            nums = [int(x) for x in p[2:] if not isinstance(x, list)]
            bad = [n for n in nums if not 1 <= n <= len(v.uids)]
            if bad:
                self.error("seq", f"`* SEARCH` returns {bad[:5]} but the session knows {len(v.uids)} messages")
            return
        # Other data (ENABLED, STATUS, LIST...) does not touch the view.

    # -- random operations ----------------------------------------------------------------
    def known(self) -> list[tuple[int, int]]:
        return [(i + 1, u) for i, u in enumerate(self.view.uids) if u is not None]

    def pick(self, k: int) -> list[tuple[int, int]]:
        kn = self.known()
        if not kn:
            return []
        return self.rng.sample(kn, min(len(kn), self.rng.randint(1, k)))

    def seqset(self, picked, use_uid: bool) -> str:
        return compact([u for _, u in picked] if use_uid else [s for s, _ in picked])

    def op_append(self) -> None:
        rng = self.rng
        mbox = self.mbox if rng.random() < 0.6 else rng.choice(MAILBOXES)
        self.n_cid += 1
        cid = f"{self.sid}.{self.n_cid}"
        fl = rng.sample(SYSTEM_FLAGS, rng.randint(0, 2)) + rng.sample(self.w.kw_pool(), rng.randint(0, 3))
        date = rand_date(rng)
        cmd = f"APPEND {mbox} "
        if fl or rng.random() < 0.5:
            cmd += f"({' '.join(fl)}) "
        if date:
            cmd += f'"{date}" '
        s = now()
        try:
            r = self.cmd(cmd, message_bytes(cid, rng), word="APPEND")
        except Unknown:
            self.emit({"ev": "unknown_create", "user": self.user, "mbox": mbox, "cids": [cid]})
            raise
        e = now()
        if r.status != "OK":
            return
        m = re.match(r"\[APPENDUID (\d+) (\d+)\]", r.text)
        if not m:
            self.error("appenduid", f"APPEND OK without APPENDUID: {r.line!r}")
            return
        self.w.uidvalidity(self, mbox, int(m.group(1)))
        self.emit({"ev": "create", "user": self.user, "mbox": mbox, "uid": int(m.group(2)), "cid": cid,
                   "flags": sorted(norm_flag(f) for f in fl), "s": s, "e": e, "sid": self.sid})

    def op_fetch(self) -> None:
        rng = self.rng
        items = rng.choice(["(UID FLAGS)", "(FLAGS)", "(UID BODY.PEEK[])", "(BODY.PEEK[]<0.100>)",
                            "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (X-Checker-Id)])",
                            "(BODY.PEEK[TEXT]<50.2000>)", "(UID INTERNALDATE ENVELOPE)"])
        if not self.view.uids:
            return
        if rng.random() < 0.2:
            self.cmd(f"{'UID ' if rng.random() < 0.5 else ''}FETCH 1:* {items}")
            return
        picked = self.pick(4)
        if not picked:
            return
        use_uid = rng.random() < 0.4
        self.cmd(f"{'UID ' if use_uid else ''}FETCH {self.seqset(picked, use_uid)} {items}")

    def store(self, picked, use_uid: bool, sign: str, fl: list[str], silent: bool) -> None:
        uids = [u for _, u in picked]
        s = now()
        outcome = None
        try:
            r = self.cmd(f"{'UID ' if use_uid else ''}STORE {self.seqset(picked, use_uid)} "
                         f"{sign}FLAGS{'.SILENT' if silent else ''} ({' '.join(fl)})")
            outcome = r.status == "OK"
        finally:
            e = now() if outcome is not None else None
            for u in uids:
                for f in fl:
                    self.emit({"ev": "store", "user": self.user, "mbox": self.mbox, "uid": u,
                               "flag": norm_flag(f), "val": sign == "+", "s": s, "e": e,
                               "certain": bool(outcome)})

    def op_store(self) -> None:
        rng = self.rng
        picked = self.pick(3)
        if not picked:
            return
        pool = SYSTEM_FLAGS + self.w.kw_pool()
        fl = rng.sample(pool, rng.randint(1, 2))
        self.store(picked, rng.random() < 0.5, rng.choice("+-"), fl, rng.random() < 0.4)

    def op_copy(self, move: bool) -> None:
        rng = self.rng
        picked = self.pick(3)
        if not picked:
            return
        dest = rng.choice([m for m in MAILBOXES if m != self.mbox])
        use_uid = rng.random() < 0.5
        word = "MOVE" if move else "COPY"
        src_uids = [u for _, u in picked]
        s = now()
        try:
            r = self.cmd(f"{'UID ' if use_uid else ''}{word} {self.seqset(picked, use_uid)} {dest}")
        except Unknown:
            self.emit({"ev": "unknown_copy", "user": self.user, "src": self.mbox, "dest": dest,
                       "uids": src_uids, "move": move})
            raise
        e = now()
        if r.status != "OK":
            return
        code = None
        for raw in r.untagged + [r.line]:
            m = re.search(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]", raw)
            if m:
                code = m
        if code is None:
            # No COPYUID: RFC 4315 allows it only when nothing was copied.
            self.emit({"ev": "copy_none", "user": self.user, "src": self.mbox, "dest": dest,
                       "uids": src_uids})
            return
        self.w.uidvalidity(self, dest, int(code.group(1)))
        src = expand_set(code.group(2).decode())
        dst = expand_set(code.group(3).decode())
        if len(src) != len(dst) or not set(src) <= set(src_uids):
            self.error("copyuid", f"COPYUID {code.group(2).decode()} {code.group(3).decode()} does not match "
                                  f"the command's messages (UIDs {src_uids} in the session's view)")
            # What the server copied is unknown: the final check skips those UIDs.
            self.emit({"ev": "unmodeled", "user": self.user, "mbox": dest, "uids": dst})
            return
        for a, b in zip(sorted(src), sorted(dst)):
            self.emit({"ev": "copy", "user": self.user, "src": self.mbox, "dest": dest, "suid": a,
                       "duid": b, "s": s, "e": e, "move": move})
        if move:
            for a in src:
                self.emit({"ev": "gone", "user": self.user, "mbox": self.mbox, "uid": a})

    def op_expunge(self) -> None:
        rng = self.rng
        picked = self.pick(2)
        if not picked:
            return
        self.store(picked, True, "+", ["\\Deleted"], True)
        uid_form = rng.random() < 0.6
        s = now()
        certain = False
        try:
            if uid_form:
                r = self.cmd(f"UID EXPUNGE {self.seqset(picked, True)}")
            else:
                r = self.cmd("EXPUNGE")
            certain = r.status == "OK"
        finally:
            self.emit({"ev": "expunge", "user": self.user, "mbox": self.mbox, "s": s,
                       "e": now() if certain else None,
                       "uids": [u for _, u in picked] if uid_form else None})

    def op_idle(self) -> None:
        c = self.conn
        tag = c.next_tag()
        c.send(f"{tag} IDLE\r\n".encode())
        try:
            untagged = []
            while True:
                resp = c.read_response()
                if resp.startswith(b"+"):
                    break
                if resp.startswith(b"* "):
                    untagged.append(resp)
                    continue
                r = c._tagged(tag, resp, untagged)
                self.process(untagged, "IDLE")
                self.error(f"tagged {r.status}", f"IDLE → {resp!r}")
                return
            self.process(untagged, "IDLE")
            deadline = now() + self.rng.uniform(0.1, 1.0)
            while True:
                left = deadline - now()
                if left <= 0:
                    break
                if not c.buf:
                    ready, _, _ = select.select([c.sock], [], [], left)
                    if not ready:
                        break
                self.process([c.read_response()], "IDLE")
            c.send(b"DONE\r\n")
            r = c.read_until_tagged(tag)
        except socket.timeout:
            self.error("hang", f"IDLE/DONE: no answer within {self.w.cmd_timeout:.0f} s")
            raise Unknown("IDLE")
        except (Closed, OSError) as e:
            self.dropped("IDLE", e)
            raise Unknown("IDLE")
        except ImapProtocolError as e:
            self.error("protocol", f"IDLE: {e}")
            raise Unknown("IDLE")
        self.last_ok = now()
        self.w.count("IDLE", r.status)
        self.process(r.untagged, "IDLE")
        if r.status != "OK":
            self.error(f"tagged {r.status}", f"DONE → {r.line!r}")

    def op_search(self) -> None:
        kw = self.rng.choice(self.w.kw_pool())
        crit = self.rng.choice(["ALL", f"KEYWORD {kw}", "UNSEEN", "DELETED", "FLAGGED SINCE 1-Jan-2000"])
        self.cmd(f"{'UID ' if self.rng.random() < 0.5 else ''}SEARCH {crit}")

    def op_relogin(self) -> None:
        """Log out and in again (a phone waking up): opening a mailbox while others write."""
        self.cmd("LOGOUT")
        self.conn.close()
        self.connect()

    def step(self) -> None:
        rng = self.rng
        if not self.selected:
            time.sleep(0.3)
            self.select(self.mbox)
            return
        ops = [(self.op_append, 18), (self.op_fetch, 20), (self.op_store, 20),
               (lambda: self.op_copy(False), 8), (lambda: self.op_copy(True), 6),
               (self.op_expunge, 8), (lambda: self.cmd("NOOP"), 8), (self.op_idle, 5),
               (lambda: self.select(rng.choice(MAILBOXES)), 3), (self.op_search, 3), (self.op_relogin, 2)]
        f = rng.choices([o for o, _ in ops], weights=[w for _, w in ops])[0]
        if len(self.transcript) > 20000:
            self.save_transcript()
        f()
        if self.diverged:
            self.select(self.mbox)
        if None in self.view.uids:
            self.fill_uids()

    def run(self, until: float) -> None:
        try:
            self.connect()
        except Exception as e:  # noqa: BLE001 - reported as a checker error, not a crash
            self.error("connect", str(e))
            return
        while now() < until and not self.w.stopping():
            try:
                self.step()
            except Unknown:
                if self.w.stopping():
                    break
                time.sleep(self.rng.uniform(0.05, 0.3))
                try:
                    self.connect()
                except Exception as e:  # noqa: BLE001
                    self.error("connect", str(e))
                    return
            except RuntimeError as e:  # connect() gave up (in op_relogin)
                self.error("connect", str(e))
                return
            except Exception:  # noqa: BLE001 - a checker bug must show, with the session
                self.error("checker", traceback.format_exc())
                return
        try:
            if self.conn:
                self.conn.command("LOGOUT")
        except Exception:  # noqa: BLE001
            pass
        self.save_transcript()


class Worker:
    """One client process: its sessions run in threads, events go to a JSON-lines journal."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.seed = cfg["seed"]
        self.kill_mode = cfg["kill_mode"]
        self.cmd_timeout = KILL_CMD_TIMEOUT if self.kill_mode else CMD_TIMEOUT
        self.lock = threading.Lock()
        self.out = open(cfg["journal"], "a", buffering=1)
        self.uvs: dict = {}
        self.counts: dict = {}
        self.lat: dict = {}  # command word → answer times (s)
        self.stop_file = Path(cfg["stop_file"])

    def kills(self) -> list[float]:
        """When the checker killed the server (monotonic times, written before each kill)."""
        try:
            return [float(x) for x in Path(self.cfg["kills_file"]).read_text().split()]
        except FileNotFoundError:
            return []

    def killed_since(self, t: float) -> bool:
        """Did the checker kill the server at or after monotonic time t?"""
        return any(k >= t - 0.1 for k in self.kills())

    def last_kill(self) -> float:
        return max(self.kills(), default=float("-inf"))

    def stopping(self) -> bool:
        return self.stop_file.exists()

    def kw_pool(self) -> list[str]:
        return KEYWORDS[:self.cfg.get("keywords", len(KEYWORDS))]

    def emit(self, ev: dict) -> None:
        ev.setdefault("t", now())
        with self.lock:
            self.out.write(json.dumps(ev) + "\n")

    def count(self, word: str, status: str) -> None:
        with self.lock:
            k = f"{word} {status}"
            self.counts[k] = self.counts.get(k, 0) + 1

    def latency(self, word: str, secs: float) -> None:
        with self.lock:
            self.lat.setdefault(word, []).append(round(secs, 4))

    def uidvalidity(self, s: Session, mbox: str, uv: int) -> None:
        key = (s.user, mbox)
        with self.lock:
            old = self.uvs.setdefault(key, uv)
        if old != uv:
            s.error("uidvalidity", f"UIDVALIDITY of {s.user}/{mbox} changed from {old} to {uv}")
        self.emit({"ev": "uidvalidity", "user": s.user, "mbox": mbox, "uv": uv})

    def main(self) -> None:
        until = now() + self.cfg["duration"]
        threads = []
        for spec in self.cfg["sessions"]:
            rng = random.Random(f"{self.seed}/{spec['sid']}")
            s = Session(self, spec, rng)
            t = threading.Thread(target=s.run, args=(until,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(self.cfg["duration"] + 4 * self.cmd_timeout + 30)
            if t.is_alive():
                self.emit({"ev": "error", "kind": "hang", "msg": f"seed={self.seed}: a session thread did not stop"})
        self.emit({"ev": "counts", "counts": self.counts, "latency": self.lat})
        self.out.close()


# ---------------------------------------------------------------------------------------
# The run and the final check (in the parent process)


@dataclass
class Endpoint:
    kind: str
    host: str
    port: int


@dataclass
class Report:
    seed: int
    mode: str
    errors: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    kills: int = 0
    messages: int = 0
    duration: float = 0.0
    latency: dict = field(default_factory=dict)  # command word → answer times (s)

    def latency_table(self) -> list[tuple[str, int, float, float, float]]:
        """(command, count, p50, p99, max) in ms, slowest first."""
        rows = []
        for w, xs in self.latency.items():
            xs = sorted(xs)
            rows.append((w, len(xs), 1000 * xs[len(xs) // 2], 1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))],
                         1000 * xs[-1]))
        return sorted(rows, key=lambda r: -r[4])

    def groups(self) -> dict:
        """{normalized first line: [errors]}: one group per kind of failure."""
        out: dict = {}
        for e in self.errors:
            out.setdefault(group_key(e), []).append(e)
        return out

    def summary(self, examples: int = 2, max_groups: int = 40) -> str:
        groups = self.groups()
        lines = [f"mode={self.mode} seed={self.seed}: {len(self.errors)} errors in {len(groups)} groups; "
                 f"{sum(self.counts.values())} commands, {self.kills} kills, {self.messages} messages at the end, "
                 f"{self.duration:.0f} s"]
        no = {k: v for k, v in sorted(self.counts.items()) if not k.endswith(" OK")}
        if no:
            lines.append(f"non-OK tagged answers: {no}")
        slow = self.latency_table()[:4]
        if slow:
            lines.append("slowest answers (command: max, p99): " + ", ".join(
                f"{w} {mx:.0f}/{p99:.0f} ms" for w, _, _, p99, mx in slow))
        for key, errs in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:max_groups]:
            lines.append(f"[{len(errs)}x] {key}")
            for e in errs[:examples]:
                lines.append("    " + e.replace("\n", "\n    "))
        return "\n".join(lines)


def group_key(err: str) -> str:
    k = err.split("\n")[0].split("; attempts:")[0]
    k = re.sub(r"<[^<>]*><[^<>]*>", "", k)  # Dovecot's log: process and session ids
    k = re.sub(r"/\S*/mail/", ".../mail/", k)  # the run's temp dir
    k = re.sub(r"(tmp|new|cur)/[^ ,:)]+", r"\1/FILE", k)  # Maildir file names
    k = re.sub(r"session=\S+ \([^)]*\)", "session=*", k)
    k = re.sub(r"`(UID [A-Z]+|[A-Z]+)\b[^`]*`", r"`\1 ...`", k)
    k = re.sub(r"\[[^\]]*kw[^\]]*\]", "[kw...]", k)
    k = re.sub(r"\bkw\d+", "kw", k)
    k = re.sub(r"\(p\d+s\d+\.\d+\)", "(msg)", k)
    k = re.sub(r"\bA\d{3,}\b", "TAG", k)
    k = re.sub(r"\(\d+\.\d+ \+ [^)]*secs\)", "", k)
    return re.sub(r"\d+", "N", k)


def run_clients(endpoints: list[Endpoint], users: dict[str, str], seed: int, duration: float,
                workdir: Path, processes: int = 3, sessions: int = 4, kill_mode: bool = False,
                tick=None, keywords: int = len(KEYWORDS)) -> tuple[list[dict], list[str]]:
    """Start the client processes; call `tick()` every 0.1 s while they run (the kill
    loop); return (events, errors)."""
    jdir = workdir / f"checker-{seed}"
    jdir.mkdir(exist_ok=True)
    stop_file = jdir / "stop"
    user_names = list(users)
    procs = []
    errors: list[str] = []
    sid = 0
    for p in range(processes):
        specs = []
        for s in range(sessions):
            ep = endpoints[sid % len(endpoints)]
            u = user_names[(sid // len(endpoints)) % len(user_names)]
            specs.append({"sid": f"p{p}s{s}", "user": u, "password": users[u], "qresync": s % 2 == 1,
                          "server": {"kind": ep.kind, "host": ep.host, "port": ep.port},
                          "source": f"127.3.{p + 1}.{s + 1}"})
            sid += 1
        cfg = {"seed": seed, "duration": duration, "kill_mode": kill_mode, "sessions": specs, "keywords": keywords,
               "journal": str(jdir / f"p{p}.jsonl"), "stop_file": str(stop_file),
               "kills_file": str(jdir / "kills")}
        (jdir / f"p{p}.json").write_text(json.dumps(cfg))
        procs.append(subprocess.Popen([sys.executable, __file__, "--worker", str(jdir / f"p{p}.json")],
                                      stdout=open(jdir / f"p{p}.out", "wb"), stderr=subprocess.STDOUT))
    deadline = now() + duration + 4 * (KILL_CMD_TIMEOUT if kill_mode else CMD_TIMEOUT) + 60
    while any(p.poll() is None for p in procs) and now() < deadline:
        if tick:
            tick()
        time.sleep(0.1)
    stop_file.touch()
    for i, p in enumerate(procs):
        if p.poll() is None:
            errors.append(f"hang: seed={seed}: client process p{i} did not finish; killed")
            p.kill()
            p.wait(10)
        elif p.returncode != 0:
            out = (jdir / f"p{i}.out").read_text(errors="replace")[-3000:]
            errors.append(f"checker: seed={seed}: client process p{i} exited {p.returncode}:\n{out}")
    events = []
    for i in range(processes):
        path = jdir / f"p{i}.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                events.append(json.loads(line))
    errors += [e["msg"] for e in events if e["ev"] == "error"]
    return events, errors


# How long a server may act on a view of a message's flags that misses a flag change another
# server acknowledged, by (server that changed them, server that acts): a STORE or COPY
# through the second server within this time after the first answered may be ordered before
# it. Only Dovecot lags, and only behind what other processes did in cur/: Dovecot keeps
# flags in its index, learns of another process's rename only when it reads cur/ again, and
# reads cur/ only when cur/'s mtime differs from the one its index recorded. After each of its
# own saves into a mailbox (APPEND, COPY, MOVE) it records cur/'s mtime of that moment without
# reading cur/ ("we don't really look into the maildir, just add all the new mails listed in
# dovecot-uidlist to index", maildir-save.c) and reads cur/ only once that record is more than
# MAILDIR_SYNC_SECS (1 s, counted in whole seconds) old: "The sync will eventually be done to
# make sure we didn't miss any external changes" (maildir-sync.c). Its own sessions share the
# index and never lag behind each other, so the Dovecot-only control keeps a lag of 0; pimap,
# which re-reads cur/ whenever its mtime moved, gets none either. 3 s: the failed 40 s runs of
# 2026-12-04, replayed, needed 2 (1 left errors).
VIEW_LAG = {("pimap", "dovecot"): 3.0}

# The name Dovecot gives a keyword letter whose keyword is not in dovecot-keywords ("name is
# lost. just generate one ourself", maildir-keywords.c): Dovecot names a file with a new
# keyword's letter before it writes the keyword there, so a kill -9 in between leaves the
# letter nameless. Accepted on a message only where a STORE of unknown outcome touched its
# keywords.
LOST_KEYWORD = re.compile(r"unknown-\d+\?*")


def possible_values(ops: list[dict], initial: set, at: tuple[float, float] | None = None,
                    reader: str | None = None, lag: dict | None = None) -> set:
    """Values one flag of one message may have under a linearizable server, read at some
    instant of the window `at` (None: after everything) through server `reader`. `ops` are
    STOREs on that flag: dicts with s (sent), e (answered), val, certain (answered OK;
    otherwise it may have taken effect at any time after s, or never) and the server that
    answered. `lag` ({(writer, actor): seconds}, see `VIEW_LAG`): a write may stay unseen by
    another server for that long after its answer."""
    inf = float("inf")
    ws, we = at if at else (inf, inf)
    certain = [o for o in ops if o["certain"]]

    def late(o: dict, by: str | None) -> float:
        return (lag or {}).get((o.get("server"), by), 0.0)

    out = set()
    # The initial value is readable if every certain STORE may take effect after the read.
    if all(o["e"] + late(o, reader) > ws for o in certain):
        out |= initial
    for x in ops:
        if x["s"] >= we:
            continue  # sent after the read
        xe = x["e"] if x["certain"] else inf
        ax = min(xe + late(x, reader), we)  # x takes effect (for the reader) as late as it may
        t = max(ax, ws)
        # x is overwritten if a certain STORE surely takes effect after x and before the read.
        if not any(y is not x and y["s"] > xe + late(x, y.get("server")) and y["e"] + late(y, reader) <= t
                   for y in certain):
            out.add(x["val"])
    return out


def list_server(ep: Endpoint, users: dict[str, str], errors: list[str], seed: int) -> dict:
    """{(user, mbox): {"uv": n, "msgs": {uid: (flags, cid)}}} through one server; a mailbox
    the server cannot list is left out and reported in `errors`."""
    out = {}
    for u, pw in users.items():
        try:
            c = Conn(ep.host, ep.port, timeout=KILL_CMD_TIMEOUT, name=f"final-{ep.kind}")
            c.ok(f"LOGIN {quote(u)} {quote(pw)}")
            for mb in MAILBOXES:
                r = c.command(f"EXAMINE {mb}")
                if not r.ok:
                    errors.append(f"final: seed={seed}: {ep.kind} cannot list {u}/{mb} after the run: "
                                  f"EXAMINE → {r.line.decode(errors='replace').strip()}")
                    continue
                uv = int(r.codes()["UIDVALIDITY"])
                msgs = {}
                if r.number("EXISTS") != [0]:
                    f = c.command("UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-Checker-Id)])")
                    if not f.ok:
                        errors.append(f"final: seed={seed}: {ep.kind} cannot list {u}/{mb} after the run: "
                                      f"UID FETCH → {f.line.decode(errors='replace').strip()}")
                        continue
                    for v in f.fetches().values():
                        hdr = v.get("BODY[HEADER.FIELDS (X-CHECKER-ID)]") or b""
                        m = re.search(rb"X-Checker-Id: (\S+)", hdr, re.I)
                        msgs[int(v["UID"])] = ({norm_flag(x) for x in v["FLAGS"]} - {"\\Recent"},
                                               m.group(1).decode() if m else None)
                out[(u, mb)] = {"uv": uv, "msgs": msgs}
            c.command("LOGOUT")
            c.close()
        except (OSError, ImapProtocolError, AssertionError, KeyError, ValueError) as e:
            errors.append(f"final: seed={seed}: {ep.kind} cannot list {u}'s mailboxes after the run: {e!r}")
    return out


def lettered_keywords(mail: Path, users, mailboxes=MAILBOXES) -> dict:
    """{(user, mbox): keywords (lower-cased) that have a letter in the mailbox's
    dovecot-keywords}; a mailbox without the file has none."""
    out = {}
    for u in users:
        for mb in mailboxes:
            path = mail / u / ("dovecot-keywords" if mb == "INBOX" else f".{mb}/dovecot-keywords")
            try:
                lines = path.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                lines = []
            out[(u, mb)] = {norm_flag(x.split(" ", 1)[1]) for x in lines
                            if " " in x and x.split(" ", 1)[0].isdigit() and int(x.split(" ", 1)[0]) < 26}
    return out


def only_lettered(listing: dict, lettered: dict) -> dict:
    """A listing with each message's keywords cut to those with a file-name letter."""
    return {key: {"uv": box["uv"], "msgs": {
        uid: ({f for f in fl if f.startswith("\\") or f in lettered.get(key, set())}, cid)
        for uid, (fl, cid) in box["msgs"].items()}} for key, box in listing.items()}


def final_check(events: list[dict], listings: dict[str, dict], seed: int,
                lettered: dict | None = None, lag: dict | None = None) -> list[str]:
    """Compare each server's listing with the model of acknowledged writes, and the
    listings with each other. With `lettered` ({(user, mbox): keywords with a file-name
    letter}), what the model says of other keywords is not asked of Dovecot's listing, and
    the other listings are cut to those keywords before the cross comparison (the others
    live in pimap's private store). Every keyword Dovecot does show is still checked, and
    pimap's listing is always checked whole. `lag`: see `VIEW_LAG` (None: no server lags)."""
    errors: list[str] = []
    creates: dict = {}  # (user, mbox) → {uid: {"cid", "ops": {flag: [op]}, "init": set, ...}}
    gone: dict = {}
    unknown_cids: dict = {}
    vague: set = set()  # mailboxes an uncertain copy of a message of unknown lineage went to
    expunges: dict = {}
    unknown_gone: dict = {}
    uvs: dict = {}
    by_key = lambda e, mb: (e["user"], mb)  # noqa: E731
    stores: dict = {}
    unmodeled: dict = {}  # UIDs made by a COPY/MOVE whose COPYUID was already reported wrong
    for e in events:
        ev = e["ev"]
        if ev == "create":
            creates.setdefault(by_key(e, e["mbox"]), {})[e["uid"]] = {
                "cid": e["cid"], "flags": set(e["flags"]), "s": e["s"], "e": e["e"]}
        elif ev == "gone":
            gone.setdefault(by_key(e, e["mbox"]), set()).add(e["uid"])
        elif ev == "store":
            stores.setdefault((e["user"], e["mbox"], e["uid"], e["flag"]), []).append(e)
        elif ev == "expunge":
            expunges.setdefault(by_key(e, e["mbox"]), []).append(e)
        elif ev == "uidvalidity":
            uvs.setdefault(by_key(e, e["mbox"]), set()).add(e["uv"])
        elif ev == "unmodeled":
            unmodeled.setdefault(by_key(e, e["mbox"]), set()).update(e["uids"])
    # Copies resolve in creation order: a copy's source may itself be a copy.
    copies = sorted((e for e in events if e["ev"] == "copy"), key=lambda e: e["e"])
    for e in copies:
        src = creates.get(by_key(e, e["src"]), {}).get(e["suid"])
        creates.setdefault(by_key(e, e["dest"]), {})[e["duid"]] = {
            "cid": src["cid"] if src else None, "copy_of": (e["src"], e["suid"]), "s": e["s"], "e": e["e"],
            "server": e.get("server")}
    for e in events:
        if e["ev"] == "unknown_create":
            unknown_cids.setdefault(by_key(e, e["mbox"]), set()).update(e["cids"])
        elif e["ev"] == "unknown_copy":
            srcs = creates.get(by_key(e, e["src"]), {})
            dest = unknown_cids.setdefault(by_key(e, e["dest"]), set())
            for u in e["uids"]:
                cid = srcs.get(u, {}).get("cid")
                if cid is not None:
                    dest.add(cid)
                else:
                    # The source itself came from a command of unknown outcome (no record, or
                    # a copy of such a message): its message is one of those commands'.
                    vague.add(by_key(e, e["dest"]))
            if e["move"]:
                unknown_gone.setdefault(by_key(e, e["src"]), set()).update(e["uids"])
    for user, mbox in vague:
        unknown_cids[(user, mbox)] |= {c for (u, _), cids in list(unknown_cids.items())
                                       if u == user for c in cids}

    def flag_values(user, mbox, uid, flag, at=None, depth=0, reader=None) -> set:
        info = creates.get((user, mbox), {}).get(uid)
        ops = stores.get((user, mbox, uid, flag), [])
        if info is None:
            return {True, False}
        if "copy_of" in info:
            if depth > 20:
                return {True, False}
            sm, su = info["copy_of"]
            init = flag_values(user, sm, su, flag, (info["s"], info["e"]), depth + 1, info.get("server"))
        else:
            init = {flag in info["flags"]}
        if at is not None:
            ops = [o for o in ops if o["s"] < at[1]]
        return possible_values(ops, init, at, reader, lag)

    def possibly_deleted(user, mbox, uid) -> bool:
        return True in flag_values(user, mbox, uid, "\\Deleted") or any(
            o["val"] for o in stores.get((user, mbox, uid, "\\Deleted"), []))

    touched: dict = {}
    for (u_, m_, uid_, f_) in stores:
        touched.setdefault((u_, m_, uid_), set()).add(f_)

    def flags_touched(user, mbox, uid, depth=0) -> set:
        """Flags the model has an opinion on: APPENDed, STOREd, or so on a COPY's source."""
        info = creates.get((user, mbox), {}).get(uid)
        out = set(touched.get((user, mbox, uid), set()))
        if info and "copy_of" in info and depth < 20:
            out |= flags_touched(user, *info["copy_of"], depth + 1)
        elif info:
            out |= info["flags"]
        return out

    def keyword_in_doubt(user, mbox, uid, depth=0) -> bool:
        """A STORE of unknown outcome (the server was killed) touched a keyword of this
        message or of a COPY's source."""
        info = creates.get((user, mbox), {}).get(uid)
        if any(not o["certain"] and not o["flag"].startswith("\\")
               for f in touched.get((user, mbox, uid), set()) for o in stores[(user, mbox, uid, f)]):
            return True
        return bool(info and "copy_of" in info and depth < 20
                    and keyword_in_doubt(user, *info["copy_of"], depth + 1))

    for (user, mbox), uvset in uvs.items():
        if len(uvset) > 1:
            errors.append(f"uidvalidity: seed={seed}: {user}/{mbox} had UIDVALIDITY {sorted(uvset)} during the run")

    names = list(listings)
    for name, listing in listings.items():
        for key, box in listing.items():
            user, mbox = key
            if key in uvs and box["uv"] not in uvs[key]:
                errors.append(f"uidvalidity: seed={seed}: {name} lists {user}/{mbox} with UIDVALIDITY "
                              f"{box['uv']}, the clients saw {sorted(uvs[key])}")
            made = creates.get(key, {})
            g = gone.get(key, set())
            spare = set(unknown_cids.get(key, set()))
            for uid, (fl, cid) in sorted(box["msgs"].items()):
                where = f"{name} {user}/{mbox} UID {uid} ({cid})"
                if uid in unmodeled.get(key, set()) and uid not in made:
                    continue
                if uid in g:
                    errors.append(f"final: seed={seed}: {where} is there, but a client was told it was "
                                  f"expunged (EXPUNGE/VANISHED) or moved")
                    continue
                if uid not in made:
                    if cid in spare:
                        spare.discard(cid)  # a command of unknown outcome made it
                    else:
                        errors.append(f"final: seed={seed}: {where} is there, but no acknowledged APPEND, "
                                      f"COPY or MOVE made it")
                    continue
                info = made[uid]
                if info["cid"] is not None and cid != info["cid"]:
                    errors.append(f"final: seed={seed}: {where} holds message {cid}, "
                                  f"the client's APPENDUID/COPYUID said {info['cid']}")
                modeled = flags_touched(user, mbox, uid)
                if lettered is not None and name == "dovecot":
                    modeled = {f for f in modeled if f.startswith("\\") or f in lettered.get(key, set())}
                universe = set(fl) | modeled | set(SYSTEM_FLAGS)
                for f in sorted(universe | {"\\Deleted"}):
                    if LOST_KEYWORD.fullmatch(f) and f in fl and keyword_in_doubt(user, mbox, uid):
                        continue
                    pv = flag_values(user, mbox, uid, f)
                    if (f in fl) not in pv:
                        errors.append(f"final: seed={seed}: {where}: flag {f} is {'set' if f in fl else 'clear'}, "
                                      f"but acknowledged APPEND/STORE/COPY leave only {sorted(pv)}")
            for uid, info in sorted(made.items()):
                if uid in box["msgs"] or uid in g or uid in unknown_gone.get(key, set()):
                    continue
                if possibly_deleted(user, mbox, uid) and any(
                        x["e"] is None or x["e"] > info["s"] for x in expunges.get(key, [])):
                    continue  # \Deleted and expunged without any client seeing it gone
                errors.append(f"final: seed={seed}: {name} {user}/{mbox} UID {uid} ({info['cid']}) was "
                              f"acknowledged (APPENDUID/COPYUID) and never expunged, but it is gone")
    if len(names) == 2:
        a, b = (listings[n] if lettered is None or n == "dovecot" else only_lettered(listings[n], lettered)
                for n in names)
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                ma, mb_ = a.get(key, {}).get("msgs", {}), b.get(key, {}).get("msgs", {})
                diff = [u for u in sorted(set(ma) | set(mb_)) if ma.get(u) != mb_.get(u)][:10]
                errors.append(f"cross: seed={seed}: {names[0]} and {names[1]} differ on {key[0]}/{key[1]}: "
                              f"UIDVALIDITY {a.get(key, {}).get('uv')} vs {b.get(key, {}).get('uv')}; "
                              + "; ".join(f"UID {u}: {ma.get(u)} vs {mb_.get(u)}" for u in diff))
    return errors


def setup_mailboxes(ep: Endpoint, users: dict[str, str]) -> None:
    for u, pw in users.items():
        c = Conn(ep.host, ep.port, timeout=30, name="setup")
        c.ok(f"LOGIN {quote(u)} {quote(pw)}")
        for mb in MAILBOXES:
            if mb != "INBOX":
                c.command(f"CREATE {mb}")
            c.ok(f"SELECT {mb}")
        c.command("LOGOUT")
        c.close()


def count_messages(listing: dict) -> int:
    return sum(len(b["msgs"]) for b in listing.values())


def collect_counts(events: list[dict]) -> tuple[dict, dict]:
    """(answers per command and status, answer times per command) over all processes."""
    out: dict = {}
    lat: dict = {}
    for e in events:
        if e["ev"] == "counts":
            for k, v in e["counts"].items():
                out[k] = out.get(k, 0) + v
            for k, v in e.get("latency", {}).items():
                lat.setdefault(k, []).extend(v)
    return out, lat


CHECK_USERS = ["demo", "plain", "alice@example.org"]
# "dovecot-kill" is Dovecot killed like pimap in "kill": the control for that mode (what a
# server that recovers from kill -9 looks like under this checker).
MODES = ("dovecot", "dovecot-kill", "pimap", "both", "kill")


def log_errors(server, kind: str) -> list[str]:
    """Errors a server logged itself: Dovecot's `Error:`/`Panic:` lines, pimap's panics."""
    try:
        text = server.log.read_text(errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        if kind == "dovecot" and (" Error: " in line or " Panic: " in line or " Fatal: " in line):
            out.append(line)
        elif kind == "pimap" and "panicked" in line:
            out.append(line)
    return out


def run_mode(mode: str, workdir: Path, seed: int, duration: float, processes: int = 3,
             sessions: int = 4, kill_every: tuple[float, float] = (1.0, 4.0)) -> Report:
    """One run: start the servers of `mode` on a fresh Maildir under `workdir`, run the
    clients for `duration` s, then list every mailbox through pimap and Dovecot and check.

    Modes: "dovecot" (the control, Dovecot alone), "pimap" (pimap alone; Dovecot is
    started on its Maildir afterwards to compare), "both" (pimap and Dovecot on one Maildir
    at once, sessions split between them), "kill" (pimap alone, kill -9 at random moments
    and restarted on the same port), "dovecot-kill" (the same with Dovecot: the control)."""
    import conftest as h  # the e2e harness: users file, servers, Maildir ownership

    assert mode in MODES, mode
    kill_mode = mode in ("kill", "dovecot-kill")
    report = Report(seed=seed, mode=mode)
    t0 = now()
    mail = workdir / "mail"
    mail.mkdir(exist_ok=True)
    mail.chmod(0o755)
    if os.geteuid() == 0:
        os.chown(mail, h.MAIL_UID, h.MAIL_GID)
    users_file = workdir / "users"
    h.write_users_file(users_file)
    users = {u: h.USERS[u][0] for u in CHECK_USERS}
    servers: dict = {}
    rng = random.Random(f"{seed}/kill")
    try:
        if mode in ("dovecot", "both", "dovecot-kill"):
            servers["dovecot"] = h.start_dovecot(workdir, users_file, mail)
        if mode in ("pimap", "both", "kill"):
            servers["pimap"] = h.start_pimap(workdir, users_file, mail, as_mail_user=mode == "both")
        eps = [Endpoint(k, v.host, v.port) for k, v in servers.items()]
        setup_mailboxes(eps[0], users)
        errors: list[str] = []
        (workdir / f"checker-{seed}").mkdir(exist_ok=True)
        state = {"next_kill": now() + rng.uniform(*kill_every)}

        def restart(kind: str, port: int):
            if kind == "pimap":
                return h.start_pimap(workdir, users_file, mail, port=port)
            return h.start_dovecot(workdir, users_file, mail, port=port)

        def tick() -> None:
            for kind, srv in list(servers.items()):
                if srv.proc.poll() is not None:
                    errors.append(f"server: seed={seed}: {kind} exited by itself with {srv.proc.returncode}")
                    servers[kind] = restart(kind, srv.port)
            victim = {"kill": "pimap", "dovecot-kill": "dovecot"}.get(mode)
            if victim and state["next_kill"] <= now() < t_clients + duration - 1:
                srv = servers[victim]
                with open(workdir / f"checker-{seed}" / "kills", "a") as f:
                    f.write(f"{now()}\n")  # before the kill: clients check it after they see EOF
                if victim == "dovecot":
                    os.killpg(srv.proc.pid, signal.SIGKILL)  # master and every imap process
                else:
                    srv.proc.kill()  # SIGKILL: no shutdown path runs
                srv.proc.wait(10)
                report.kills += 1
                time.sleep(rng.uniform(0, 0.5))
                servers[victim] = restart(victim, srv.port)
                state["next_kill"] = now() + rng.uniform(*kill_every)

        t_clients = now()
        events, cerrs = run_clients(eps, users, seed, duration, workdir, processes, sessions,
                                    kill_mode=kill_mode, tick=tick,
                                    keywords=len(LETTER_KEYWORDS) if mode == "both" else len(KEYWORDS))
        errors += cerrs
        report.counts, report.latency = collect_counts(events)
        # Quiescent: list through both servers (start the one the mode did not run). Dovecot's
        # view of pimap's last flag changes may lag (VIEW_LAG): give it that time first.
        if mode == "both":
            time.sleep(max(VIEW_LAG.values()))
        if mode == "pimap" or mode == "kill":
            servers["dovecot"] = h.start_dovecot(workdir, users_file, mail)
        listings = {k: list_server(Endpoint(k, v.host, v.port), users, errors, seed) for k, v in servers.items()}
        if mode in ("dovecot", "dovecot-kill"):
            listings = {"dovecot": listings["dovecot"]}
        # pimap alone (and killed) uses keywords beyond the 26 letters: Dovecot cannot see
        # those (see "Keywords beyond the 26 file-name letters" above).
        lettered = lettered_keywords(mail, users) if mode in ("pimap", "kill") else None
        errors += final_check(events, listings, seed, lettered, VIEW_LAG if mode == "both" else None)
        report.messages = count_messages(next(iter(listings.values())))
        for k, v in servers.items():
            errors += [f"{k}-log: seed={seed}: {line}" for line in log_errors(v, k)]
        report.errors = errors
        (workdir / f"checker-{seed}" / "errors.txt").write_text("\n".join(errors) + "\n")
    finally:
        for v in servers.values():
            v.stop()
    report.duration = now() - t0
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True, help="a worker's JSON config (written by run_clients)")
    a = ap.parse_args()
    Worker(json.loads(Path(a.worker).read_text())).main()
