#!/usr/bin/env python3
"""The concurrency checker (tests/e2e/conc_checker.py), long runs: many client processes on
shared mailboxes against Dovecot alone (the control), Dovecot killed with SIGKILL at random
moments (the control for the kill mode), pimap alone, pimap and Dovecot on one Maildir at
once, and pimap killed with SIGKILL at random moments. Writes a Markdown report
(benches/results/concurrency-YYYY-MM-DD.md by default) with, per mode: commands run, kills,
messages at the end, and every kind of error the checker found with a count and an example.

Usage:  python3 benches/concurrency.py [--seconds 120] [--modes dovecot,dovecot-kill,pimap,both,kill]
            [--seed N] [--processes 3] [--sessions 4] [--out FILE] [--no-build]
Needs what tests/e2e needs (Debian's dovecot-core + dovecot-imapd, root for the mail user).
Uses target/release/pimap (built unless --no-build); PIMAP_BIN overrides. Exit status 1 if
any mode reported an error (the control too), so it can gate a release.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120, help="client run time per mode")
    ap.add_argument("--modes", default="dovecot,dovecot-kill,pimap,both,kill")
    ap.add_argument("--seed", type=int, default=None, help="default: a random one (printed)")
    ap.add_argument("--processes", type=int, default=3, help="client processes")
    ap.add_argument("--sessions", type=int, default=4, help="sessions (connections) per process")
    ap.add_argument("--out", type=Path,
                    default=REPO / "benches" / "results" / f"concurrency-{dt.date.today().isoformat()}.md")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (Maildirs, logs, transcripts)")
    a = ap.parse_args()

    if "PIMAP_BIN" not in os.environ:
        if not a.no_build:
            subprocess.run(["cargo", "build", "--release", "--bins"], cwd=REPO, check=True)
        os.environ["PIMAP_BIN"] = str(REPO / "target" / "release" / "pimap")
    import conc_checker  # after PIMAP_BIN: the harness reads it at import
    import conftest

    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 10**9)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    dovecot_version = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    pimap_commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                  text=True).stdout.strip()
    reports = []
    for i, mode in enumerate(modes):
        wd = conftest.make_workdir()
        print(f"== {mode}: seed {seed + i}, {a.seconds:.0f} s, temp dir {wd}", flush=True)
        r = conc_checker.run_mode(mode, wd, seed + i, a.seconds, a.processes, a.sessions)
        print(r.summary(examples=1, max_groups=15), flush=True)
        reports.append((r, wd))
        if not a.keep and not r.errors:
            shutil.rmtree(wd, ignore_errors=True)

    lines = [f"# Concurrency checker, {dt.date.today().isoformat()}", "",
             f"pimap {pimap_commit} ({os.environ['PIMAP_BIN']}), Dovecot {dovecot_version}; "
             f"{a.processes} client processes x {a.sessions} sessions over "
             f"{len(conc_checker.CHECK_USERS)} users x {len(conc_checker.MAILBOXES)} mailboxes, "
             f"{a.seconds:.0f} s per mode. Command: `python3 benches/concurrency.py "
             f"{' '.join(sys.argv[1:])}`.", "",
             "| mode | seed | commands | commands/s | kills | messages at the end | errors | kinds |",
             "|---|---|---|---|---|---|---|---|"]
    for r, _ in reports:
        n = sum(r.counts.values())
        lines.append(f"| {r.mode} | {r.seed} | {n} | {n / a.seconds:.0f} | {r.kills} | {r.messages} | "
                     f"{len(r.errors)} | {len(r.groups())} |")
    for r, wd in reports:
        lines += ["", f"## {r.mode} (seed {r.seed})", ""]
        no = {k: v for k, v in sorted(r.counts.items()) if not k.endswith(" OK")}
        lines.append(f"Tagged answers other than OK: {no or 'none'}.")
        lines += ["", "Answer times, slowest commands first (ms):", "",
                  "| command | count | p50 | p99 | max |", "|---|---|---|---|---|"]
        for w, n, p50, p99, mx in r.latency_table()[:8]:
            lines.append(f"| {w} | {n} | {p50:.1f} | {p99:.1f} | {mx:.0f} |")
        if not r.errors:
            lines.append("")
            lines.append("No errors.")
            continue
        lines += ["", f"Temp dir (transcripts, logs, errors.txt): `{wd}`.", "",
                  "| count | error (numbers replaced by N) | first example |", "|---|---|---|"]
        for key, errs in sorted(r.groups().items(), key=lambda kv: -len(kv[1])):
            ex = errs[0].split("\n")[0].replace("|", "\\|")[:300]
            k = key.replace("|", "\\|")[:200]
            lines.append(f"| {len(errs)} | {k} | {ex} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    return 1 if any(r.errors for r, _ in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
