#!/usr/bin/env python3
"""The metadata cache: FETCH ENVELOPE / FETCH BODYSTRUCTURE / SEARCH FROM / SORT over N messages
(default 10,000), cold vs warm, pimap vs Dovecot, and the cache's disk cost per message.

The messages are the real-message corpus of tests/e2e/test_meta_cache.py (CPython's email test
data and mail-parser's resources/eml) repeated under unique names into one INBOX. For each
server and each command, from a fresh state:
  * cold: the first run. pimap: no `pimap-cache` file, fresh process. Dovecot: no
    `dovecot.index*` files (its cache), fresh process. The OS page cache is warm for both (the
    message files were just written or read): "cold" is the parsing cost, not disk latency.
  * warm: the median of R (default 3) further runs in the same session.
  * next session: a new login to the same process, after the warm runs (first run).
  * restarted: a fresh process with the cache left in place (first run; for Dovecot its
    index files, thread index included).
Times are wall-clock seconds for the whole command, measured by a Python client over
127.0.0.1 (the same client for both servers).

Usage:  python3 benches/meta_cache.py [--messages 10000] [--repeats 3]
            [--pimap-bin target/release/pimap] [--out benches/results/meta-cache-YYYY-MM-DD.md]
            [--only THREAD]
Needs root (the servers drop to the mail user as in tests/e2e), Debian's Dovecot, a release
build of pimap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e"))
import conftest  # noqa: E402
from msgs import deliver  # noqa: E402

COMMANDS = {
    "FETCH ENVELOPE": "FETCH 1:* (ENVELOPE)",
    "FETCH BODYSTRUCTURE": "FETCH 1:* (BODYSTRUCTURE)",
    "SEARCH FROM": 'SEARCH FROM "barry"',
    "SORT SUBJECT": "SORT (SUBJECT) UTF-8 ALL",
    "SORT DATE FROM": "SORT (REVERSE DATE FROM) UTF-8 ALL",
    "THREAD REFS": "THREAD REFS UTF-8 ALL",
    "THREAD REFERENCES": "THREAD REFERENCES UTF-8 ALL",
    "THREAD ORDEREDSUBJECT": "THREAD ORDEREDSUBJECT UTF-8 ALL",
}


def corpus() -> list[bytes]:
    import test as cpython_test
    files = sorted(glob.glob(os.path.join(os.path.dirname(cpython_test.__file__),
                                          "test_email", "data", "msg_*.txt")))
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    files += sorted(glob.glob(str(home / "registry/src/*/mail-parser-0.11*/resources/eml/**/*.eml"),
                              recursive=True))
    return [Path(f).read_bytes() for f in files]


class Discard(list):
    """A transcript that keeps nothing (10,000-line responses)."""

    def append(self, _item) -> None:
        pass


def timed(c, cmd: str) -> float:
    t = time.perf_counter()
    c.ok(cmd)
    return time.perf_counter() - t


def start(kind: str, workdir: Path, name: str):
    if kind == "dovecot":
        return conftest.start_dovecot(workdir, workdir / "users", workdir / "mail")
    return conftest.start_pimap(workdir, workdir / "users", workdir / "mail", name=name)


def login(srv):
    c = srv.connect(timeout=600)
    c.transcript = Discard()
    c.login("demo", srv.password("demo"))
    c.ok("SELECT INBOX")
    return c


def reset(kind: str, box: Path) -> None:
    pats = ["dovecot.index*"] if kind == "dovecot" else ["pimap-cache*"]
    for pat in pats:
        for p in box.glob(pat):
            p.unlink()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="only the commands whose label starts so")
    ap.add_argument("--pimap-bin", default=str(REPO / "target" / "release" / "pimap"))
    ap.add_argument("--out", default=str(REPO / "benches" / "results" /
                                         f"meta-cache-{dt.date.today().isoformat()}.md"))
    a = ap.parse_args()
    for label in [k for k in COMMANDS if not k.startswith(a.only)]:
        del COMMANDS[label]
    conftest.PIMAP_BIN = Path(a.pimap_bin)
    workdir = conftest.make_workdir()
    (workdir / "mail").mkdir()
    conftest.write_users_file(workdir / "users")
    box = workdir / "mail" / "demo"
    msgs = corpus()
    for i in range(a.messages):
        deliver(box, msgs[i % len(msgs)], name=f"1700000000.M{i}P1.bench")
    conftest.chown_tree(workdir / "mail")
    print(f"{a.messages} messages ({len(msgs)} distinct) in {box}", flush=True)
    rows = []
    cache_bytes = None
    for kind in ("pimap", "dovecot"):
        # SELECT once so that both servers have moved new/ to cur/ and written their uidlist.
        srv = start(kind, workdir, "pimap-bench")
        login(srv).ok("LOGOUT")
        srv.stop()
        for label, cmd in COMMANDS.items():
            reset(kind, box)
            srv = start(kind, workdir, "pimap-bench")
            c = login(srv)
            cold = timed(c, cmd)
            warm = statistics.median(timed(c, cmd) for _ in range(a.repeats))
            c.ok("LOGOUT")
            c = login(srv)
            session = timed(c, cmd)
            c.ok("LOGOUT")
            srv.stop()
            if kind == "pimap" and cache_bytes is None and (box / "pimap-cache").exists():
                cache_bytes = (box / "pimap-cache").stat().st_size
            srv = start(kind, workdir, "pimap-bench")
            c = login(srv)
            restarted = timed(c, cmd)
            c.ok("LOGOUT")
            srv.stop()
            rows.append((kind, label, cold, warm, session, restarted))
            print(kind, label, f"cold {cold:.3f}s warm {warm:.3f}s",
                  "" if restarted is None else f"restarted {restarted:.3f}s", flush=True)
    by = {(k, l): (c, w, s, r) for k, l, c, w, s, r in rows}
    lines = [f"# Metadata cache: {a.messages} messages, pimap (release) vs Dovecot "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             "Produced by `benches/meta_cache.py` (method in its docstring). Seconds per whole "
             "command; warm = median of "
             f"{a.repeats}.", "",
             "| command | pimap cold | pimap warm | pimap next session | pimap restarted "
             "| Dovecot cold | Dovecot warm | Dovecot next session | Dovecot restarted "
             "| warm pimap/Dovecot |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label in COMMANDS:
        pc, pw, ps, pr = by[("pimap", label)]
        dc, dw, ds, dr = by[("dovecot", label)]
        lines.append(f"| {label} | {pc:.3f} | {pw:.3f} | {ps:.3f} | {pr:.3f} | {dc:.3f} | "
                     f"{dw:.3f} | {ds:.3f} | {dr:.3f} | {pw / dw:.2f}× |")
    if cache_bytes is not None:
        lines += ["", f"`pimap-cache` after the first command: {cache_bytes} bytes, "
                  f"{cache_bytes / a.messages:.0f} bytes per message."]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
