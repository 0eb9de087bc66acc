#!/usr/bin/env python3
"""Turns the tab-separated results of benches/run.sh into the Markdown report.

Usage: report.py RESULTS_DIR OUT.md [--meta key=value]... [--sync SYNC_REPORT.md]
Input files (written by run.sh and benches/loadgen): mix-{pimap,dovecot}-C.tsv, memory.tsv,
big-{kind}-{n}-{first,cold,warm}.tsv, startup.tsv, size.tsv, panic.tsv, panic-mix-*.tsv,
corpus-{kind}.tsv, fsync.tsv, disk.tsv, profile-{mix,churn,corpus}.{self,children,callers}.txt.
The sections and the key-figures table keep the same order from run to run, so two reports
(say a baseline and the run after a change) can be read side by side.
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
        elif r[0] == "changes_seen":
            out["seen"] = (int(r[1]), int(r[2]))
    return out


def corpus(res, kind):
    """The round with the median total time (corpus-KIND-R.tsv), its errors, all rounds' totals."""
    rounds = []
    for path in sorted(glob.glob(os.path.join(res, f"corpus-{kind}-*.tsv"))):
        out = {"errs": []}
        for r in read_tsv(path):
            if r[0] == "corpus":
                out.update(n=int(r[1]), bytes=int(r[2]), wall=float(r[3]), append=float(r[4]),
                           fetch=float(r[5]), errors=int(r[6]), skipped=int(r[7]))
            elif r[0] == "err":
                out["errs"].append(r[1])
        if "n" in out:
            rounds.append(out)
    if not rounds:
        return {"errs": []}
    rounds.sort(key=lambda o: o["wall"])
    med = dict(rounds[len(rounds) // 2])
    med["rounds"] = [o["wall"] for o in rounds]
    med["all_errors"] = sum(o["errors"] for o in rounds)
    return med


def read_text(path):
    try:
        with open(path) as f:
            return f.read().rstrip()
    except FileNotFoundError:
        return ""


def ratio(a, b, fmt="{:.2f}×"):
    if a is None or b is None or b == 0:
        return "–"
    return fmt.format(a / b)


def mib(kib):
    return f"{kib / 1024:.1f}"


def ok(cond):
    if cond is None:
        return "– (not measured)"
    return "✅ met" if cond else "❌ not met"


def kib_per(after, before, n):
    if not after or not before or not n:
        return None
    return (after - before) / n


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
    corp = {k: corpus(res, k) for k in ("pimap", "dovecot")}
    fsync = {(r[0], r[1]): (int(r[2]), int(r[3]), float(r[4]) if len(r) > 4 else None)
             for r in read_tsv(os.path.join(res, "fsync.tsv")) if len(r) >= 4}
    disk = [r for r in read_tsv(os.path.join(res, "disk.tsv")) if len(r) >= 4]
    hold_label = next((lab for (_, lab) in memd if re.fullmatch(r"\d+ sessions", lab)), None)
    idle_label = next((lab for (_, lab) in memd if re.fullmatch(r"\d+ idling sessions", lab)), None)

    w("## Key figures and targets")
    w("")
    w("Targets are the benchmark list of the shared-mailbox-index work (one shared index per mailbox, "
      "metadata cache). Ratios are pimap / Dovecot unless said otherwise.")
    w("")
    w("| target | pimap | Dovecot | ratio | verdict |")
    w("|---|---|---|---|---|")
    for c in conns:
        p, d = mixes[("pimap", c)]["total"], mixes[("dovecot", c)]["total"]
        if not p or not d:
            continue
        w(f"| mix throughput, C={c} (commands/s; protocol errors) | {p['cps']:.0f} ({p['errors']} errors) | "
          f"{d['cps']:.0f} ({d['errors']} errors) | pimap {ratio(p['cps'], d['cps'])} | "
          f"{ok(p['cps'] >= 2 * d['cps'] and p['errors'] == 0)} (target ≥ 2×, 0 errors) |")
    if len(sizes) >= 2:
        lo, hi = min(sizes), max(sizes)
        worst = []
        for kind in ("pimap", "dovecot"):
            s_lo, s_hi = big[(kind, lo, "warm")]["single"], big[(kind, hi, "warm")]["single"]
            gr = {op: s_hi[op] / s_lo[op] for op in s_hi if op in s_lo and s_lo[op] > 0}
            worst.append(max(gr.items(), key=lambda x: x[1]) if gr else ("–", 0))
        w(f"| single-message commands, {hi:,} vs {lo:,} messages, warm (worst growth; table below) | "
          f"{worst[0][1]:.1f}× ({worst[0][0]}) | {worst[1][1]:.1f}× ({worst[1][0]}) | | "
          f"{ok(worst[0][1] <= 1.5)} (target ≤ 1.5×) |")
        op = "NOOP after other session's STORE"
        vp = [big[("pimap", n, "warm")]["single"].get(op) for n in (lo, hi)]
        vd = [big[("dovecot", n, "warm")]["single"].get(op) for n in (lo, hi)]
        if None not in vp and None not in vd:
            w(f"| NOOP after another session changed one message, {hi:,} messages (ms; growth from {lo:,}) | "
              f"{vp[1]:.2f} ({ratio(vp[1], vp[0])}) | {vd[1]:.2f} ({ratio(vd[1], vd[0])}) | "
              f"{ratio(vp[1], vd[1])} | {ok(vp[1] <= 1.5 * vp[0])} (target: O(changes), ≤ 1.5× growth) |")
    if sizes:
        n = max(sizes)
        for op, what in (("SELECT", "second session"), ("SELECT again (median of 3)", "re-SELECT, median of 3")):
            p, d = big[("pimap", n, "warm")]["ops"].get(op), big[("dovecot", n, "warm")]["ops"].get(op)
            if p is not None and d is not None:
                w(f"| SELECT of {n:,} messages, warm, {what} (ms) | {p:.1f} | {d:.1f} | "
                  f"{ratio(p, d)} | {ok(p <= d)} (target ≤ 1×) |")
    if hold_label:
        p, d = memd.get(("pimap", hold_label)), memd.get(("dovecot", hold_label))
        if p and d:
            w(f"| total RSS, {hold_label} each holding a selected {meta.get('mix_msgs', '')}-message INBOX (MiB) | "
              f"{mib(p[1])} | {mib(d[1])} ({d[0]} processes) | {ratio(p[1], d[1], '{:.3f}')} | "
              f"{ok(p[1] * 10 <= d[1])} (target ≤ 0.100) |")
            w(f"| pimap's RSS vs Dovecot's PSS, {hold_label} (MiB) | {mib(p[1])} RSS | {mib(d[2])} PSS | "
              f"{ratio(p[1], d[2], '{:.3f}')} | {ok(p[1] < d[2])} (target < 1) |")
    if idle_label:
        nidle = int(idle_label.split()[0])
        pb, pa = memd.get(("pimap", "before idling sessions")), memd.get(("pimap", idle_label))
        db, da = memd.get(("dovecot", "before idling sessions")), memd.get(("dovecot", idle_label))
        if pb and pa and db and da:
            pk, dk = kib_per(pa[1], pb[1], nidle), kib_per(da[1], db[1], nidle)
            dpk = kib_per(da[2], db[2], nidle)
            w(f"| memory per session, {nidle} logged-in sessions in IDLE on small INBOXes (KiB of RSS growth "
              f"each; Dovecot PSS growth in brackets) | {pk:.1f} | {dk:.1f} ({dpk:.1f} PSS) | {ratio(pk, dk, '{:.3f}')} | "
              f"{ok(pk <= 16)} (target ≤ 16 KiB) |")
    p, d = corp["pimap"], corp["dovecot"]
    if "n" in p and "n" in d:
        w(f"| real-message corpus, {p['n']} messages APPENDed one by one, each fetched back "
          f"(s, median of {len(p['rounds'])} rounds; errors in all rounds) | "
          f"{p['wall'] / 1000:.2f} ({p['all_errors']}) | {d['wall'] / 1000:.2f} ({d['all_errors']}) | "
          f"{ratio(p['wall'], d['wall'])} of the time | {ok(p['wall'] <= d['wall'] and p['all_errors'] == 0)} "
          f"(target ≤ 1×, 0 errors) |")
    fp, fd = fsync.get(("pimap", "APPEND + FETCH")), fsync.get(("dovecot", "APPEND + FETCH"))
    if fp and fd:
        w(f"| fsync/fdatasync calls per APPEND (session of {fp[0]} APPENDs + FETCHes) | {fp[1] / fp[0]:.2f} | "
          f"{fd[1] / fd[0]:.2f} | {ratio(fp[1], fd[1])} | (reported) |")
        if fp[2] is not None and fd[2] is not None:
            w(f"| wall time in those sync calls per APPEND (ms) | {fp[2] * 1000 / fp[0]:.2f} | "
              f"{fd[2] * 1000 / fd[0]:.2f} | {ratio(fp[2], fd[2])} | (reported) |")
    fp, fd = (fsync.get(("pimap", "concurrent APPEND + FETCH")),
              fsync.get(("dovecot", "concurrent APPEND + FETCH")))
    if fp and fd:
        w(f"| fsync/fdatasync calls per APPEND, {meta.get('fsync_sessions', 'several')} sessions APPENDing "
          f"into one mailbox at once ({fp[0]} APPENDs) | {fp[1] / fp[0]:.2f} | {fd[1] / fd[0]:.2f} | "
          f"{ratio(fp[1], fd[1])} | (reported: sessions' syncs batched) |")
    for case in ("big mailbox", "corpus"):
        rows = {r[0]: r for r in disk if r[1] == case}
        if "pimap" in rows and "dovecot" in rows:
            pr, dr = rows["pimap"], rows["dovecot"]
            per = lambda r: int(r[3]) / max(int(r[2]), 1)
            w(f"| own index/cache bytes per message, {case} ({int(pr[2]):,} / {int(dr[2]):,} messages) | "
              f"{per(pr):.1f} | {per(dr):.1f} | {ratio(per(pr), per(dr))} | (reported; files in Disk section) |")
    p, d = memd.get(("pimap", "idle")), memd.get(("dovecot", "idle"))
    if p and d:
        w(f"| idle RSS, just started (MiB) | {mib(p[1])} | {mib(d[1])} ({d[0]} processes) | "
          f"{ratio(p[1], d[1], '{:.3f}')} | {ok(p[1] <= 4096)} (target pimap ≤ 4 MiB) |")
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
    if idle_label:
        w(f"*{idle_label}*: `pimap-loadgen hold --idle 1`, each session LOGIN, SELECT of an INBOX of "
          "a few messages, then IDLE; per-session cost = (total with the sessions − total just before) "
          "÷ sessions, measured on a fresh server.")
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
        w(f"### Single-message commands vs mailbox size (warm, median of {meta.get('big_reps', '?')}, ms)")
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
        w("*NOOP after other session's STORE*: a second session of the same user adds or removes \\Draft on one "
          "message, then the probing session's NOOP (which must report that FETCH) is timed. "
          "*APPEND* of a generated message of 1-15 KB; *UID STORE+EXPUNGE 1* / *UID EXPUNGE 1* remove it again.")
        seen = [f"{k} {n:,}: {big[(k, n, 'warm')]['seen'][0]}/{big[(k, n, 'warm')]['seen'][1]}"
                for n in sizes for k in ("pimap", "dovecot") if "seen" in big[(k, n, "warm")]]
        if seen:
            w("")
            w("NOOPs that reported the other session's change (warm): " + "; ".join(seen))
        w("")

    # ---- corpus
    w("## Real-message corpus: APPEND one by one, each fetched back")
    w("")
    p, d = corp["pimap"], corp["dovecot"]
    if "n" in p and "n" in d:
        w(f"`pimap-loadgen corpus`: {p['n']} messages ({p['bytes'] / MIB:.1f} MiB; {p['skipped']} files left "
          "out: empty or containing NUL), bare LF sent as CRLF, each APPENDed to an empty INBOX then "
          "`UID FETCH uid BODY[]` and compared byte for byte with what was sent. One session per round, "
          f"each into another user's empty INBOX; the table shows the round with the median total "
          f"(all totals, s: pimap {', '.join(f'{x / 1000:.2f}' for x in p['rounds'])}; Dovecot "
          f"{', '.join(f'{x / 1000:.2f}' for x in d['rounds'])}). "
          f"Corpus: `{meta.get('corpus', '')}`.")
        w("")
        w("| | pimap | Dovecot | ratio |")
        w("|---|---|---|---|")
        for key, lab in (("wall", "total, incl. LOGIN/SELECT (s)"), ("append", "sum of APPEND (s)"),
                         ("fetch", "sum of FETCH BODY[] (s)")):
            w(f"| {lab} | {p[key] / 1000:.2f} | {d[key] / 1000:.2f} | {ratio(p[key], d[key])} |")
        w(f"| errors (this round; all rounds) | {p['errors']}; {p['all_errors']} | {d['errors']}; {d['all_errors']} | |")
        w("")
        for kind, m in (("pimap", p), ("Dovecot", d)):
            if m["errs"]:
                w(f"First errors ({kind}):")
                w("")
                for e in m["errs"][:10]:
                    w(f"- `{e[:200]}`")
                w("")
    else:
        w("(not measured in this run: no corpus)")
        w("")

    # ---- fsync, disk
    w("## fsyncs and disk cost")
    w("")
    if fsync:
        w("`strace -f -c -w -e trace=fsync,fdatasync,syncfs,sync_file_range`, attached to every process of the "
          "server while a fresh session LOGINs, SELECTs an empty INBOX and APPENDs (and fetches back) N "
          "corpus messages (wall time spent inside the calls, as strace measures it, slowed by strace):")
        w("")
        w("| server | APPENDs | sync calls | per APPEND | seconds in sync calls | ms per APPEND |")
        w("|---|---|---|---|---|---|")
        for (k, lab), (n, calls, secs) in sorted(fsync.items()):
            w(f"| {k} | {n} | {calls} | {calls / max(n, 1):.2f} | {'–' if secs is None else f'{secs:.3f}'} | "
              f"{'–' if secs is None else f'{secs * 1000 / max(n, 1):.2f}'} |")
        w("")
    if disk:
        w("Bytes of each server's own files next to the messages: everything in the mail root except the "
          "message files (cur/, new/, tmp/) and the files both servers share in Dovecot's formats "
          "(dovecot-uidlist, dovecot-keywords, subscriptions, maildirfolder); for pimap also its data dir.")
        w("")
        w("| server | case | messages | bytes | per message | files (bytes) |")
        w("|---|---|---|---|---|---|")
        for r in disk:
            w(f"| {r[0]} | {r[1]} | {int(r[2]):,} | {int(r[3]):,} | {int(r[3]) / max(int(r[2]), 1):.1f} | "
              f"{r[4] if len(r) > 4 and r[4] else '(none)'} |")
        w("")

    # ---- profiles
    w("## Where pimap's time goes (perf)")
    w("")
    profs = [(c, t) for c, t in (("mix", "(a) load mix"), ("churn", "(b) NOOP after another session's STORE, "
             "largest mailbox"), ("corpus", "(c) corpus APPEND + FETCH")) if read_text(os.path.join(res, f"profile-{c}.self.txt"))]
    if profs:
        w("`perf record -e cpu-clock -g -p <pimap>` during each case, on a release build with symbols and "
          "frame pointers (target/bench-profile; otherwise the same profile). *Self*: samples in the "
          "function itself; *children*: including callees (frames of Rust's std have no frame pointers, "
          "so some stacks stop there).")
        w("")
        for c, t in profs:
            w(f"### {t}")
            w("")
            run = read_tsv(os.path.join(res, f"profile-{c}.run.tsv"))
            if run:
                w("Workload result: `" + " ".join(run[0]) + "`")
                w("")
            w("Self:")
            w("")
            w("```")
            w(read_text(os.path.join(res, f"profile-{c}.self.txt")))
            w("```")
            w("")
            w("Children (inclusive), ≥ 4 %:")
            w("")
            w("```")
            w(read_text(os.path.join(res, f"profile-{c}.children.txt")))
            w("```")
            w("")
    else:
        w("(not measured in this run: PROFILE=0 or perf missing)")
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
