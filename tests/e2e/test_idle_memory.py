"""Memory per idle session (pimap only; Dovecot forks a process per session, so the same
figure means something else there: see benches/idle_memory.py).

A logged-in session that waits for its next command, plain or in IDLE (RFC 2177), must not
hold buffers sized for a busy one: the server's private memory grows by at most a few KiB
per such session. The sessions are real clients over TCP; the memory is the pimap process's
Anonymous memory from /proc/PID/smaps_rollup (heap and stacks, no file pages), read after a
warm-up round has paid the one-time costs.
"""

from __future__ import annotations

import time

from conftest import MAIL_GID, MAIL_UID, USERS, chown_tree
from msgs import deliver, message
from test_ext_compress import compress

SESSIONS = 50
# Per idle session, KiB of private memory growth. A session holding a 16 KiB read buffer
# (plus the framer's copy of the last read) and an 8.7 KiB connection future measured
# 22-25 KiB here; without them 7-10 KiB (6-7 KiB in benches/idle_memory.py's release run).
# The margin absorbs malloc's rounding and noise.
LIMIT_KIB = 16
# The same with COMPRESS=DEFLATE (RFC 4978), in IDLE: the compressor's ~240 KiB of state
# stayed with every session (~290 KiB each); now a quiet one keeps only the inflater's
# window (~45 KiB). Fewer sessions: the old cost would be 30 x 290 KiB.
COMPRESSED_SESSIONS = 30
COMPRESSED_LIMIT_KIB = 100


def anonymous_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    raise AssertionError("no Anonymous: line in smaps_rollup")


def open_sessions(pimap, users: list[str], n: int, idle: bool, deflate: bool = False) -> list[tuple]:
    """(connection, IDLE tag or None) for n sessions, LOGIN (COMPRESS) and SELECT done."""
    conns = []
    for i in range(n):
        c = pimap.login(users[i % len(users)])
        if deflate:
            compress(c)
        assert c.ok("SELECT INBOX").ok
        tag = None
        if idle:
            tag = c.next_tag()
            c.send(f"{tag} IDLE\r\n".encode())
            assert c.read_response().startswith(b"+"), "no continuation for IDLE"
        conns.append((c, tag))
    return conns


def measure(pimap, idle: bool, sessions: int = SESSIONS, deflate: bool = False) -> float:
    users = list(USERS)
    for u in users:
        for k in range(10):
            deliver(pimap.maildir(u), message(subject=f"m{k}"), uid=MAIL_UID, gid=MAIL_GID)
        chown_tree(pimap.maildir(u))
    pid = pimap.proc.pid
    # Warm-up: one session per user (thread pools, the inotify hub, per-user tables).
    for c, _ in open_sessions(pimap, users, len(users), idle, deflate):
        c.close()
    time.sleep(1.0)
    before = anonymous_kib(pid)
    conns = open_sessions(pimap, users, sessions, idle, deflate)
    time.sleep(1.0)
    after = anonymous_kib(pid)
    # Every session is still alive and answers (an idle one after DONE).
    for c, tag in conns[:: sessions // 5]:
        if tag:
            c.send(b"DONE\r\n")
            assert c.read_until_tagged(tag).ok
        assert c.ok("NOOP").ok
    for c, _ in conns:
        c.close()
    return (after - before) / sessions


def test_logged_in_sessions_sitting_cost_a_few_kib_each(pimap):
    per = measure(pimap, idle=False)
    print(f"{per:.1f} KiB per logged-in session")
    assert per < LIMIT_KIB, f"{per:.1f} KiB per logged-in session (limit {LIMIT_KIB})"


def test_idling_sessions_cost_a_few_kib_each(pimap):
    per = measure(pimap, idle=True)
    print(f"{per:.1f} KiB per session in IDLE")
    assert per < LIMIT_KIB, f"{per:.1f} KiB per session in IDLE (limit {LIMIT_KIB})"


def test_compressed_idling_sessions_give_the_compressor_back(pimap):
    per = measure(pimap, idle=True, sessions=COMPRESSED_SESSIONS, deflate=True)
    print(f"{per:.1f} KiB per compressed session in IDLE")
    assert per < COMPRESSED_LIMIT_KIB, f"{per:.1f} KiB per compressed session in IDLE (limit {COMPRESSED_LIMIT_KIB})"
