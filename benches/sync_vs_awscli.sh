#!/bin/sh
# Benchmark (issue 4): `pimap sync --once` against `aws s3 sync` on the same bucket of N
# SES-shaped objects, served by s3s-fs (SigV4-checking) on loopback. Reports wall time and
# peak RSS (GNU time's %M) for a first sync and for a no-op pass, and the ratios.
#
#   scripts/install-s3-tools.sh             # s3s-fs
#   python3 -m pip install 'awscli==1.45.11' # the AWS CLI (v1, pinned)
#   cargo build && benches/sync_vs_awscli.sh [N]   # default N=200; PIMAP=path/to/pimap
#
# Not a timed test: numbers depend on the machine; the README quotes a run.
set -eu

N=${1:-200}
PIMAP=${PIMAP:-target/debug/pimap}
PORT=${PORT:-18914}
AK=AKIABENCH
SK=bench-secret-key
BUCKET=bench
WORK=$(mktemp -d)
trap 'kill $S3PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v s3s-fs >/dev/null || { echo "s3s-fs missing: run scripts/install-s3-tools.sh" >&2; exit 1; }
command -v aws >/dev/null || { echo "aws missing: python3 -m pip install 'awscli==1.45.11'" >&2; exit 1; }
[ -x "$PIMAP" ] || { echo "$PIMAP missing: cargo build" >&2; exit 1; }
"$PIMAP" sync --help >/dev/null 2>&1 || { echo "$PIMAP has no sync subcommand" >&2; exit 1; }

mkdir -p "$WORK/s3" "$WORK/seed/inbound"
s3s-fs --host 127.0.0.1 --port "$PORT" --access-key "$AK" --secret-key "$SK" "$WORK/s3" >/dev/null 2>&1 &
S3PID=$!
export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_DEFAULT_REGION=us-east-1
AWS="aws --endpoint-url http://127.0.0.1:$PORT"
i=0
while ! $AWS s3api list-buckets >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "s3s-fs did not start" >&2; exit 1; }; sleep 0.1
done
$AWS s3api create-bucket --bucket "$BUCKET" >/dev/null

# SES-shaped objects, 4-40 KiB each, CRLF.
python3 - "$WORK/seed/inbound" "$N" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    body = ("line %d of a message body that is long enough to look like mail\r\n" % i) * (60 + (i * 37) % 540)
    msg = ("Return-Path: <s@sender.example>\r\n"
           "Received: from mx.sender.example by inbound-smtp.us-east-1.amazonaws.com with SMTP id m%05d\r\n"
           " for alice@example.org;\r\n Mon, 23 Nov 2026 09:00:00 +0000 (UTC)\r\n"
           "X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n"
           "From: s@sender.example\r\nTo: alice@example.org\r\nSubject: bench %d\r\n\r\n" % (i, i)) + body
    open(os.path.join(d, "m%05d" % i), "w", newline="").write(msg)
EOF
$AWS s3 sync --quiet "$WORK/seed" "s3://$BUCKET/" >/dev/null

printf 'alice:{PLAIN}x::::::\n' > "$WORK/users"
measure() { # label, command...: prints "label seconds peak_kib"
    label=$1; shift
    /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    echo "$label $(cat "$WORK/time")"
}
set -- "$PIMAP" sync --once --data-dir "$WORK/data" --users "$WORK/users" --mail-location "$WORK/mail/%u" \
    --s3-bucket "$BUCKET" --s3-prefix inbound/ --s3-endpoint "http://127.0.0.1:$PORT" --deliver-to alice \
    ${PIMAP_FLAGS:-}

{
    measure aws_first $AWS s3 sync --quiet "s3://$BUCKET/inbound/" "$WORK/awsdir"
    measure aws_noop $AWS s3 sync --quiet "s3://$BUCKET/inbound/" "$WORK/awsdir"
    measure pimap_first "$@"
    measure pimap_noop "$@"
} > "$WORK/results"

delivered=$(find "$WORK/mail/alice/new" -type f | wc -l)
[ "$delivered" -eq "$N" ] || { echo "pimap delivered $delivered of $N" >&2; exit 1; }

awk -v n="$N" '
    { t[$1] = $2; m[$1] = $3 }
    END {
        printf "%d objects (s3s-fs on loopback)\n", n
        printf "%-12s %10s %12s\n", "run", "seconds", "peak RSS KiB"
        for (k in t) printf "%-12s %10.2f %12d\n", k, t[k], m[k]
        printf "first sync: pimap %.1fx faster, %.1fx less peak RSS\n", t["aws_first"] / (t["pimap_first"] > 0 ? t["pimap_first"] : 0.01), m["aws_first"] / m["pimap_first"]
        printf "no-op pass: pimap %.1fx faster, %.1fx less peak RSS\n", t["aws_noop"] / (t["pimap_noop"] > 0 ? t["pimap_noop"] : 0.01), m["aws_noop"] / m["pimap_noop"]
    }' "$WORK/results"
