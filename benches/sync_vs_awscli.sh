#!/bin/sh
# Benchmark: `pimap sync --once` against `aws s3 sync` on the same SES-shaped
# objects, served by s3s-fs (SigV4-checking) on loopback, with the issue's sizes:
#   - a first sync of N_FIRST objects (default 1,000) into an empty Maildir / directory;
#   - a no-op pass over N_NOOP objects (default 10,000), both tools having synced them once.
# Reports wall time and peak RSS (GNU time's %e and %M) of each run, the ratios, and the
# requests each no-op pass sends (counted from s3s-fs's debug log in an extra, untimed pass).
#
# One command (from the repository root, after `scripts/install-s3-tools.sh` and
# `python3 -m pip install 'awscli==1.45.11'`):
#
#   cargo build --release && benches/sync_vs_awscli.sh
#
# writes benches/results/sync-YYYY-MM-DD.md (OUT=... to change) and prints it.
# Knobs: N_FIRST, N_NOOP, PIMAP (default target/release/pimap), PIMAP_FLAGS, PORT.
# Objects are written straight into s3s-fs's root directory (it serves files from
# ROOT/BUCKET/KEY), which seeds 10,000 objects in seconds. Not a timed test.
set -eu

N_FIRST=${N_FIRST:-1000}
N_NOOP=${N_NOOP:-10000}
PIMAP=${PIMAP:-target/release/pimap}
PORT=${PORT:-18914}
DBG_PORT=$((PORT + 1))
OUT=${OUT:-benches/results/sync-$(date -u +%Y-%m-%d).md}
AK=AKIABENCH
SK=bench-secret-key
WORK=$(mktemp -d)
S3PID=
DBGPID=
cleanup() {
    [ -z "$S3PID" ] || kill "$S3PID" 2>/dev/null || true
    [ -z "$DBGPID" ] || kill "$DBGPID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v s3s-fs >/dev/null || { echo "s3s-fs missing: run scripts/install-s3-tools.sh" >&2; exit 1; }
command -v aws >/dev/null || { echo "aws missing: python3 -m pip install 'awscli==1.45.11'" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "GNU time (/usr/bin/time) missing: apt-get install time" >&2; exit 1; }
[ -x "$PIMAP" ] || { echo "$PIMAP missing: cargo build --release" >&2; exit 1; }
"$PIMAP" sync --help >/dev/null 2>&1 || { echo "$PIMAP has no sync subcommand" >&2; exit 1; }

# SES-shaped objects, 4-40 KiB each, CRLF, written into the server's root: ROOT/BUCKET/inbound/.
seed() { # bucket, count
    mkdir -p "$WORK/s3/$1/inbound"
    python3 - "$WORK/s3/$1/inbound" "$2" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    body = ("line %d of a message body that is long enough to look like mail\r\n" % i) * (60 + (i * 37) % 540)
    msg = ("Return-Path: <s@sender.example>\r\n"
           "Received: from mx.sender.example by inbound-smtp.us-east-1.amazonaws.com with SMTP id m%05d\r\n"
           " for alice@example.org;\r\n Mon, 23 Nov 2026 09:00:00 +0000 (UTC)\r\n"
           "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n"
           "From: s@sender.example\r\nTo: alice@example.org\r\nSubject: bench %d\r\n\r\n" % (i, i)) + body
    with open(os.path.join(d, "m%05d" % i), "w", newline="") as f:
        f.write(msg)
EOF
}
seed first "$N_FIRST"
seed noop "$N_NOOP"

start_s3s() { # port, log level; prints the pid
    RUST_LOG=$2 s3s-fs --host 127.0.0.1 --port "$1" --access-key "$AK" --secret-key "$SK" "$WORK/s3" \
        >"$WORK/s3s-$1.log" 2>&1 &
    echo $!
}
wait_s3s() { # port
    i=0
    while ! aws --endpoint-url "http://127.0.0.1:$1" s3api list-buckets >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "s3s-fs did not start on $1" >&2; exit 1; }; sleep 0.1
    done
}
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1
S3PID=$(start_s3s "$PORT" error)
wait_s3s "$PORT"

printf 'alice:{PLAIN}x::::::\n' > "$WORK/users"
# The sync functions run their tool under $TIMER (GNU time when measuring, else nothing).
TIMER=
measure() { # label, function, args...: appends "label wall_s peak_kib user_s sys_s"
    label=$1; shift
    TIMER="/usr/bin/time -f %e_%M_%U_%S -o $WORK/time"
    "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    TIMER=
    echo "$label $(tr _ ' ' < "$WORK/time")" >> "$WORK/results"
}
aws_sync() { # port, bucket
    $TIMER aws --endpoint-url "http://127.0.0.1:$1" s3 sync --quiet "s3://$2/inbound/" "$WORK/aws-$2"
}
pimap_sync() { # port, bucket
    # shellcheck disable=SC2086
    $TIMER "$PIMAP" sync --once --data-dir "$WORK/data" --users "$WORK/users" --mail-location "$WORK/mail-$2/%u" \
        --s3-bucket "$2" --s3-prefix inbound/ --s3-endpoint "http://127.0.0.1:$1" --deliver-to alice \
        ${PIMAP_FLAGS:-}
}
: > "$WORK/results"

echo "first sync of $N_FIRST objects..." >&2
measure aws_first aws_sync "$PORT" first
measure pimap_first pimap_sync "$PORT" first
echo "priming the no-op bucket ($N_NOOP objects, untimed)..." >&2
aws_sync "$PORT" noop
pimap_sync "$PORT" noop >/dev/null 2>&1
echo "no-op passes over $N_NOOP objects..." >&2
measure aws_noop aws_sync "$PORT" noop
measure pimap_noop pimap_sync "$PORT" noop

for b in first noop; do
    n=$(find "$WORK/mail-$b/alice/new" -type f | wc -l)
    want=$N_FIRST; [ "$b" = first ] || want=$N_NOOP
    [ "$n" -eq "$want" ] || { echo "pimap delivered $n of $want ($b)" >&2; exit 1; }
done

# Requests of one more no-op pass of each tool, counted by a second s3s-fs (same root) that
# logs every request it routes; untimed, since the debug log slows the server down.
DBGPID=$(start_s3s "$DBG_PORT" s3s::ops=debug)
wait_s3s "$DBG_PORT"
count_ops() { # label, function, args...
    label=$1; shift
    before=$(grep -c 'resolved route' "$WORK/s3s-$DBG_PORT.log" || true)
    list0=$(grep -c 'resolved route, op: ListObjectsV2' "$WORK/s3s-$DBG_PORT.log" || true)
    "$@" >/dev/null 2>&1
    after=$(grep -c 'resolved route' "$WORK/s3s-$DBG_PORT.log" || true)
    list1=$(grep -c 'resolved route, op: ListObjectsV2' "$WORK/s3s-$DBG_PORT.log" || true)
    echo "$label $((after - before)) $((list1 - list0))" >> "$WORK/requests"
}
: > "$WORK/requests"
count_ops aws_noop aws_sync "$DBG_PORT" noop
count_ops pimap_noop pimap_sync "$DBG_PORT" noop

mkdir -p "$(dirname "$OUT")"
{
    echo "# \`pimap sync\` vs \`aws s3 sync\` ($(date -u +%Y-%m-%d))"
    echo
    echo "Command: \`benches/sync_vs_awscli.sh\` (N_FIRST=$N_FIRST, N_NOOP=$N_NOOP)."
    echo "Server: s3s-fs $(s3s-fs --version 2>/dev/null | awk '{print $2}') on loopback, SigV4 checked."
    echo "Client: $(aws --version 2>&1 | cut -d' ' -f1) vs $("$PIMAP" --version 2>/dev/null || echo pimap) ($PIMAP${PIMAP_FLAGS:+ $PIMAP_FLAGS})."
    echo "Machine: $(nproc) cores ($(uname -m)), $(uname -sr); objects 4-40 KiB, SES-shaped, CRLF."
    echo
    awk -v nf="$N_FIRST" -v nn="$N_NOOP" 'FNR == NR { t[$1] = $2; m[$1] = $3; c[$1] = $4 + $5; next }
        { req[$1] = $2; list[$1] = $3 }
        END {
            printf "| run | objects | wall s | CPU s (user+sys) | peak RSS MiB | requests | LIST requests |\n"
            printf "|---|---|---|---|---|---|---|\n"
            printf "| aws s3 sync, first sync | %d | %.2f | %.2f | %.1f | | |\n", nf, t["aws_first"], c["aws_first"], m["aws_first"] / 1024
            printf "| pimap sync, first sync | %d | %.2f | %.2f | %.1f | | |\n", nf, t["pimap_first"], c["pimap_first"], m["pimap_first"] / 1024
            printf "| aws s3 sync, no-op | %d | %.2f | %.2f | %.1f | %d | %d |\n", nn, t["aws_noop"], c["aws_noop"], m["aws_noop"] / 1024, req["aws_noop"], list["aws_noop"]
            printf "| pimap sync, no-op | %d | %.2f | %.2f | %.1f | %d | %d |\n", nn, t["pimap_noop"], c["pimap_noop"], m["pimap_noop"] / 1024, req["pimap_noop"], list["pimap_noop"]
            pf = t["pimap_first"] > 0 ? t["pimap_first"] : 0.01
            pn = t["pimap_noop"] > 0 ? t["pimap_noop"] : 0.01
            printf "\n"
            cf = c["pimap_first"] > 0 ? c["pimap_first"] : 0.01
            cn = c["pimap_noop"] > 0 ? c["pimap_noop"] : 0.01
            printf "- First sync of %d: pimap **%.1f× faster** (wall), %.1f× less CPU, **%.1f× less** peak RSS (issue target: ≥ 5× faster).\n", nf, t["aws_first"] / pf, c["aws_first"] / cf, m["aws_first"] / m["pimap_first"]
            printf "- No-op pass over %d: pimap **%.1f× faster** (wall), %.1f× less CPU, **%.1f× less** peak RSS (targets: ≥ 20×, ≤ 1/20); %d LIST requests and nothing else (%d requests; ⌈N/1000⌉ = %d).\n", nn, t["aws_noop"] / pn, c["aws_noop"] / cn, m["aws_noop"] / m["pimap_noop"], list["pimap_noop"], req["pimap_noop"], int((nn + 999) / 1000)
        }' "$WORK/results" "$WORK/requests"
} > "$OUT"
cat "$OUT"
