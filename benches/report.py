#!/usr/bin/env python3
"""Turns the tab-separated results of benches/run.sh into the Markdown report.

Usage: report.py RESULTS_DIR OUT.md [--meta key=value]... [--sync SYNC_REPORT.md]
Input files (written by run.sh and benches/loadgen): mix-{pimap,dovecot}-C.tsv, memory.tsv,
big-{kind}-{n}-{first,cold,warm}.tsv, startup.tsv, size.tsv, panic.tsv, panic-mix-*.tsv.
"""

import argparse
import glob
import os
import re
import statistics

MIB = 1024 * 1024


def read_tsv(path):
    try:
        with open(path) as f:
            return [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def mix(res, kind, c):
    rows = read_tsv(os.path.join(res, f"mix-{kind}-{c}.tsv"))
    out = {"total": None, "cmds": {}, "errs": []}
    for r in rows:
        if r[0] == "total":
            out["total"] = {"n": int(r[1]), "secs": float(r[2]), "cps": float(r[3]), "errors": int(r[4])}
        elif r[0] == "cmd":
            out["cmds"][r[1]] = {"n": int(r[2]), "p50": float(r[3]), "p99": float(r[4]), "errors": int(r[5])}
        elif r[0] == "err":
            out["errs"].append(r[1])
    return out


def probe(path):
    out = {"ops": {}, "single": {}, "notes": {}}
    for r in read_tsv(path):
        if r[0] == "messages":
            out["messages"] = int(r[1])
        elif r[0] == "search_hits":
            out["hits"] = int(r[1])
        elif r[0] == "op":
            out["ops"][r[1]] = float(r[2])
            if len(r) > 3 and r[3]:
                out["notes"][r[1]] = r[3]
        elif r[0] == "single":
            out["single"][r[1]] = float(r[2])
    return out


def ratio(a, b, fmt="{:.2f}×"):
    if a is None or b is None or b == 0:
        return "–"
    return fmt.format(a / b)


def mib(kib):
    return f"{kib / 1024:.1f}"


def ok(cond):
    return "✅ met" if cond else "❌ not met"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("res")
    ap.add_argument("out")
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--sync", default="")
    a = ap.parse_args()
    meta = dict(m.split("=", 1) for m in a.meta)
    res = a.res
    L = []
    w = L.append

    conns = sorted({int(m.group(1)) for p in glob.glob(os.path.join(res, "mix-pimap-*.tsv"))
                    if (m := re.search(r"mix-pimap-(\d+)\.tsv$", p))})
    mixes = {(k, c): mix(res, k, c) for k in ("pimap", "dovecot") for c in conns}
    mem = read_tsv(os.path.join(res, "memory.tsv"))
    memd = {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in mem}
    sizes = sorted({int(m.group(1)) for p in glob.glob(os.path.join(res, "big-pimap-*-warm.tsv"))
                    if (m := re.search(r"big-pimap-(\d+)-warm\.tsv$", p))})
    big = {(k, n, ph): probe(os.path.join(res, f"big-{k}-{n}-{ph}.tsv"))
           for k in ("pimap", "dovecot") for n in sizes for ph in ("first", "cold", "warm")}
    startup = {}
    for r in read_tsv(os.path.join(res, "startup.tsv")):
        startup.setdefault(r[0], []).append(int(r[1]))
    size = {r[0]: (int(r[1]), r[2] if len(r) > 2 else "") for r in read_tsv(os.path.join(res, "size.tsv"))}
    panic = {r[0]: (int(r[1]), float(r[2]), int(r[3])) for r in read_tsv(os.path.join(res, "panic.tsv"))
             if len(r) >= 4}

    w(f"# pimap vs Dovecot: performance report ({meta.get('date', '')})")
    w("")
    w("Command: `benches/run.sh` (see its header for what each step does and the knobs).")
    w("")
    w(f"- pimap: {meta.get('pimap', '')} at commit {meta.get('commit', '')}, `cargo build --release` "
      "(Cargo.toml's release profile: opt-level s, LTO, stripped)")
    w(f"- Dovecot: {meta.get('dovecot', '')} (Debian 12 package), defaults plus the test suite's settings "
      "(passwd-file, Maildir, plaintext auth on loopback, no TLS) and higher process/connection limits")
    w(f"- Machine: {meta.get('machine', '')}; both servers, the load generator and other people's builds "
      "share the cores, so absolute numbers are noisy: compare the ratios within this report")
    w(f"- Sizes: {meta.get('sizes', '')}; mail processes run as `{meta.get('mail_user', '')}`")
    w("")

    # ---- key figures
    w("## Key figures and targets")
    w("")
    w("| target | pimap | Dovecot | ratio | verdict |")
    w("|---|---|---|---|---|")
    for c in conns:
        p, d = mixes[("pimap", c)]["total"], mixes[("dovecot", c)]["total"]
        if not p or not d:
            continue
        target = c >= 20
        verdict = ok(p["cps"] >= d["cps"] and p["errors"] == 0) if target else "(no target)"
        w(f"| mix throughput, C={c} (commands/s; protocol errors) | {p['cps']:.0f} ({p['errors']} errors) | "
          f"{d['cps']:.0f} ({d['errors']} errors) | pimap {ratio(p['cps'], d['cps'])} | "
          f"{verdict + ' (target ≥ 1×, 0 errors)' if target else verdict} |")
    hold = [k for k in memd if k[1].endswith(" sessions") and not k[1].startswith("panic")]
    if hold:
        label = hold[0][1]
        p, d = memd.get(("pimap", label)), memd.get(("dovecot", label))
        if p and d:
            w(f"| total RSS, {label} holding a selected INBOX (MiB) | {mib(p[1])} | {mib(d[1])} "
              f"({d[0]} processes) | pimap uses {ratio(p[1], d[1], '{:.3f}')} of Dovecot's | "
              f"{ok(p[1] * 10 <= d[1])} (target ≤ 0.100) |")
            w(f"| total PSS, {label} (MiB) | {mib(p[2])} | {mib(d[2])} | {ratio(p[2], d[2], '{:.3f}')} | |")
    p, d = memd.get(("pimap", "idle")), memd.get(("dovecot", "idle"))
    if p and d:
        w(f"| idle RSS, just started (MiB) | {mib(p[1])} | {mib(d[1])} ({d[0]} processes) | "
          f"{ratio(p[1], d[1], '{:.3f}')} | {ok(p[1] <= 4096)} (target pimap ≤ 4 MiB) |")
    if sizes:
        n = max(sizes)
        p, d = big[("pimap", n, "warm")]["ops"].get("SELECT"), big[("dovecot", n, "warm")]["ops"].get("SELECT")
        if p is not None:
            w(f"| SELECT of {n:,} messages, warm (ms) | {p:.1f} | {d if d is None else f'{d:.1f}'} | "
              f"{ratio(p, d)} | {ok(p <= 100)} (target ≤ 100 ms) |")
    if len(sizes) >= 2:
        lo, hi = min(sizes), max(sizes)
        worst = []
        for kind in ("pimap", "dovecot"):
            s_lo, s_hi = big[(kind, lo, "warm")]["single"], big[(kind, hi, "warm")]["single"]
            gr = {op: s_hi[op] / s_lo[op] for op in s_hi if op in s_lo and s_lo[op] > 0}
            worst.append(max(gr.items(), key=lambda x: x[1]) if gr else ("–", 0))
        w(f"| single-message command cost, {hi:,} vs {lo:,} messages (worst growth) | "
          f"{worst[0][1]:.1f}× ({worst[0][0]}) | {worst[1][1]:.1f}× ({worst[1][0]}) | | "
          f"{ok(worst[0][1] <= 3)} (target: flat; ≤ 3× allowed for noise) |")
    if "pimap" in size:
        ps = size["pimap"][0]
        ds = size.get("dovecot", (0, ""))[0]
        w(f"| binary size, stripped (MiB) | {ps / MIB:.2f} | {ds / MIB:.2f} (programs + libdovecot*) | "
          f"{ratio(ps, ds, '{:.2f}')} | {ok(ps <= 5 * MIB)} (target ≤ 5 MiB) |")
    if startup:
        p, d = startup.get("pimap"), startup.get("dovecot")
        if p and d:
            w(f"| start-up to greeting, median of {len(p)} (ms) | {statistics.median(p):.0f} | "
              f"{statistics.median(d):.0f} | {ratio(statistics.median(p), max(statistics.median(d), 1))} | |")
    w("")

    # ---- mix
    w("## Load mix")
    w("")
    w("`pimap-loadgen mix`: each session loops LOGIN, SELECT INBOX, then 20 rounds of FETCH headers + "
      "ENVELOPE of 50 messages, FETCH BODYSTRUCTURE of 20, 2 × FETCH BODY[] (sets \\Seen), a SEARCH "
      "(UNSEEN / FROM / SINCE+SUBJECT), 2 × STORE ±\\Flagged, APPEND (6 KB, synchronizing literal), UID COPY "
      "to Archive, then UID MOVE to Archive or UID STORE \\Deleted + EXPUNGE, and every 5th round a NOOP and an "
      "IDLE woken by a message written into the user's `new/` (IDLE wake = delivery → `* n EXISTS`), then "
      "LOGOUT. Latency is per command, in ms. Errors are any unexpected NO/BAD, malformed or missing "
      "response data, or I/O error.")
    w("")
    for c in conns:
        p, d = mixes[("pimap", c)], mixes[("dovecot", c)]
        if not p["total"] or not d["total"]:
            continue
        w(f"### C = {c} sessions")
        w("")
        w(f"Throughput: pimap **{p['total']['cps']:.0f}** commands/s, Dovecot **{d['total']['cps']:.0f}** "
          f"(pimap {ratio(p['total']['cps'], d['total']['cps'])}); errors: pimap {p['total']['errors']}, "
          f"Dovecot {d['total']['errors']}.")
        w("")
        w("| command | pimap n | pimap p50 | pimap p99 | Dovecot n | Dovecot p50 | Dovecot p99 | p50 ratio (pimap/Dovecot) | errors (pimap / Dovecot) |")
        w("|---|---|---|---|---|---|---|---|---|")
        for cmd in sorted(set(p["cmds"]) | set(d["cmds"])):
            x = p["cmds"].get(cmd, {"n": 0, "p50": 0, "p99": 0, "errors": 0})
            y = d["cmds"].get(cmd, {"n": 0, "p50": 0, "p99": 0, "errors": 0})
            w(f"| {cmd} | {x['n']} | {x['p50']:.2f} | {x['p99']:.2f} | {y['n']} | {y['p50']:.2f} | {y['p99']:.2f} "
              f"| {ratio(x['p50'], y['p50'])} | {x['errors']} / {y['errors']} |")
        w("")
        for kind, m in (("pimap", p), ("Dovecot", d)):
            if m["errs"]:
                w(f"First errors ({kind}):")
                w("")
                for e in m["errs"][:10]:
                    w(f"- `{e[:200]}`")
                w("")

    # ---- memory
    w("## Memory")
    w("")
    w("RSS and PSS summed over every process of the server (pimap: one process; Dovecot: the master "
      "and every process in its session: log, config, anvil, auth, imap-login, imap). PSS splits "
      "shared pages between processes, so it is the fairer total for Dovecot's many processes.")
    w("")
    w("| state | pimap procs | pimap RSS MiB | pimap PSS MiB | Dovecot procs | Dovecot RSS MiB | Dovecot PSS MiB | RSS ratio |")
    w("|---|---|---|---|---|---|---|---|")
    labels = []
    for r in mem:
        if r[1] not in labels and not r[1].startswith("panic"):
            labels.append(r[1])
    for lab in labels:
        p, d = memd.get(("pimap", lab)), memd.get(("dovecot", lab))
        if not p or not d:
            continue
        w(f"| {lab} | {p[0]} | {mib(p[1])} | {mib(p[2])} | {d[0]} | {mib(d[1])} | {mib(d[2])} | {ratio(p[1], d[1], '{:.3f}')} |")
    w("")

    # ---- big mailbox
    if sizes:
        w("## Big mailbox")
        w("")
        w("`pimap-loadgen probe` on one user's INBOX. *first*: the first SELECT ever (no `dovecot-uidlist` / "
          "Dovecot index yet); *cold*: right after a server restart (indexes on disk, page cache warm); "
          "*warm*: a second session on the running server. Times in ms. SEARCH TEXT looks for a word in "
          "1 % of the messages (neither server has a full-text index).")
        w("")
        w("| messages | command | pimap first | pimap cold | pimap warm | Dovecot first | Dovecot cold | Dovecot warm | warm ratio |")
        w("|---|---|---|---|---|---|---|---|---|")
        for n in sizes:
            for op in ("connect+greeting", "LOGIN", "SELECT", "FETCH 1:* (FLAGS UID)", "SEARCH TEXT"):
                v = [big[(k, n, ph)]["ops"].get(op) for k in ("pimap", "dovecot") for ph in ("first", "cold", "warm")]
                cells = " | ".join("–" if x is None else f"{x:.1f}" for x in v)
                w(f"| {n:,} | {op} | {cells} | {ratio(v[2], v[5])} |")
        w("")
        hits = {(k, n): big[(k, n, "warm")].get("hits") for k in ("pimap", "dovecot") for n in sizes}
        w("SEARCH TEXT hits (both servers must agree): " + ", ".join(
            f"{n:,}: pimap {hits[('pimap', n)]}, Dovecot {hits[('dovecot', n)]}" for n in sizes))
        notes = [f"{k} {n} {ph} {op}: {t}" for (k, n, ph), pr in big.items() for op, t in pr["notes"].items()]
        if notes:
            w("")
            w("Non-OK responses: " + "; ".join(notes))
        w("")
        w("### Single-message commands vs mailbox size (warm, median of 15, ms)")
        w("")
        w("Commands whose cost RFC 3501 does not tie to the mailbox size: they should stay flat.")
        w("")
        head = " | ".join(f"pimap {n:,}" for n in sizes) + " | " + " | ".join(f"Dovecot {n:,}" for n in sizes)
        w(f"| command | {head} | pimap growth | Dovecot growth |")
        w("|---|" + "---|" * (2 * len(sizes) + 2))
        ops = sorted(big[("pimap", sizes[0], "warm")]["single"])
        for op in ops:
            vp = [big[("pimap", n, "warm")]["single"].get(op) for n in sizes]
            vd = [big[("dovecot", n, "warm")]["single"].get(op) for n in sizes]
            cells = " | ".join("–" if x is None else f"{x:.2f}" for x in vp + vd)
            w(f"| {op} | {cells} | {ratio(vp[-1], vp[0])} | {ratio(vd[-1], vd[0])} |")
        w("")

    # ---- size, start-up
    w("## Binary size and start-up")
    w("")
    w("| | bytes | MiB | note |")
    w("|---|---|---|---|")
    for k, (b, note) in size.items():
        w(f"| {k} | {b:,} | {b / MIB:.2f} | {note} |")
    w("")
    if startup:
        w("Start-up to the greeting (ms, from exec to the first `* OK` read by a polling client): " + "; ".join(
            f"{k}: {', '.join(map(str, v))} (median {statistics.median(v):.0f})" for k, v in startup.items()))
        w("")

    # ---- panic
    w("## Panic strategy: abort vs unwind")
    w("")
    if panic:
        w("Same source, `cargo build --release` twice, with `CARGO_PROFILE_RELEASE_PANIC=abort` "
          "(target/bench-panic-abort) and `=unwind` (target/bench-panic-unwind); the mix at C = "
          f"{meta.get('sizes', '').split('PANIC_CONNS=')[-1].split(' ')[0]} on a fresh copy each.")
        w("")
        w("| panic | stripped size (bytes) | MiB | mix commands/s | errors | RSS after mix MiB |")
        w("|---|---|---|---|---|---|")
        for k, (b, cps, err) in panic.items():
            m = memd.get(("pimap", f"panic={k} after mix"))
            w(f"| {k} | {b:,} | {b / MIB:.2f} | {cps:.0f} | {err} | {mib(m[1]) if m else '–'} |")
        if "abort" in panic and "unwind" in panic:
            a_, u_ = panic["abort"], panic["unwind"]
            w("")
            w(f"unwind is {u_[0] - a_[0]:+,} bytes ({(u_[0] / a_[0] - 1) * 100:+.1f} %) and "
              f"{(u_[1] / a_[1] - 1) * 100:+.1f} % in throughput (run-to-run noise here is several %).")
    else:
        w("(not measured in this run: PANIC=0)")
    w("")

    # ---- sync
    w("## S3 sync vs the AWS CLI (benches/sync_vs_awscli.sh)")
    w("")
    if a.sync and os.path.exists(a.sync):
        if os.path.abspath(a.sync).startswith(os.path.abspath("benches/results")):
            w(f"Latest results, from [{os.path.basename(a.sync)}]({os.path.basename(a.sync)}):")
        else:
            w("This run's `benches/sync_vs_awscli.sh` (same machine, same hour; the annotated "
              "reports of that benchmark are benches/results/sync-*.md):")
        w("")
        with open(a.sync) as f:
            for line in f.read().splitlines()[1:]:
                w(("#" + line) if line.startswith("## ") else line)
    else:
        w("(no sync report found)")
    w("")

    with open(a.out, "w") as f:
        f.write("\n".join(L).rstrip() + "\n")


if __name__ == "__main__":
    main()
