#!/usr/bin/env bash
# pimap vs Debian's Dovecot 2.3 (and `pimap sync` vs the AWS CLI): one command, from a fresh
# checkout, on Debian 12, as root or with sudo:
#
#   benches/run.sh            # full run, about 30-40 minutes on 2 cores
#   benches/run.sh --quick    # smoke test of every step with tiny sizes (a few minutes)
#
# Writes benches/results/report-YYYY-MM-DD.md (OUT=... to change; --quick writes
# /tmp/pimap-bench-quick.md unless OUT is set) and prints it. What it does:
#   1. installs what is missing: dovecot-imapd/dovecot-core and GNU time (apt-get), the AWS
#      CLI and s3s-fs the way benches/sync_vs_awscli.sh documents (pip, scripts/install-s3-tools.sh);
#   2. builds pimap (`cargo build --release`) and the load generator (benches/loadgen, its own
#      target dir);
#   3. generates Maildirs with benches/loadgen (`gen`) and gives each server its own hard-linked
#      copy (`cp -al`: same files, separate indexes; neither server rewrites a message file);
#   4. runs both servers the way tests/e2e/conftest.py does: passwd-file users, Maildir,
#      plaintext auth on loopback, Dovecot with its own config and base_dir under the temp dir;
#      mail processes run as the mail user (pimaptest/nobody when root, else the current user);
#   5. load mix at C = MIX_CONNS sessions over MIX_USERS users (each INBOX MIX_MSGS messages);
#   6. memory (RSS and PSS summed over all the server's processes): idle, and with HOLD_CONNS
#      sessions holding a selected MIX_MSGS-message INBOX; then, on a fresh server, IDLE_CONNS
#      logged-in sessions in IDLE on small (IDLE_MSGS-message) INBOXes, per session;
#   7. big mailbox (BIG_SIZES): SELECT, FETCH 1:* (FLAGS UID), SEARCH TEXT, and single-message
#      commands (NOOP, FETCH FLAGS / ENVELOPE / BODYSTRUCTURE / BODY[], STORE, APPEND,
#      UID EXPUNGE, and NOOP after another session's STORE on one message): first ever
#      (no index), cold (after a restart) and warm; then the bytes of each server's own
#      index/cache files (everything but the messages and Dovecot-format shared files) per message;
#   7b. real-message corpus (CORPUS, colon-separated directories; default CPython's email test
#      data + mail-parser's resources/eml, CORPUS_LIMIT to cut): APPEND each one by one to an
#      empty INBOX and fetch it back (BODY[], compared byte for byte), total time (median of
#      CORPUS_ROUNDS rounds, each into another user's empty INBOX); then the
#      fsyncs per APPEND: `strace -f -c` attached to every server process while FSYNC_N more
#      corpus messages are appended (and fetched back) in a fresh session;
#   7c. profiles (PROFILE=1, needs perf): pimap built with symbols and frame pointers
#      (target/bench-profile), `perf record -g` during (a) the mix at C=PROFILE_CONNS, (b) NOOP
#      after another session's STORE at the largest BIG_SIZES (`loadgen churn`), (c) the
#      corpus APPEND + FETCH; the top frames go into the report;
#   8. binary size and start-up time to the greeting;
#   9. panic=abort vs panic=unwind: the release profile built twice, each strategy set
#      explicitly (CARGO_PROFILE_RELEASE_PANIC, whatever Cargo.toml says) into its own target
#      dir (target/bench-panic-abort, target/bench-panic-unwind); stripped size and the mix's
#      throughput at C=PANIC_CONNS;
#  10. benches/sync_vs_awscli.sh (SYNC=0 skips it; its own report is embedded).
#
# Two reports (say a baseline and the run after a change) side by side:
#   benches/compare.py benches/results/report-A.md benches/results/report-B.md
#
# Knobs (env): MIX_USERS=10 MIX_MSGS=10000 MIX_SECS=20 MIX_CONNS="1 20 100" HOLD_CONNS=100
# IDLE_CONNS=100 IDLE_MSGS=20 CORPUS=dir:dir CORPUS_LIMIT=all CORPUS_ROUNDS=3 FSYNC_N=50 FSYNC_SESSIONS=4 PROFILE=1
# PROFILE_CONNS=20 CHURN_REPS=40 BIG_REPS=15
# BIG_SIZES="1000 10000 100000" PANIC_SECS=15 PANIC_CONNS=20 PANIC=1 SYNC=1 (SYNC=0: embed SYNC_FROM, default
# the newest benches/results/sync-*.md) PORT=18940 KEEP=0 (keep
# the temp dir) BUILD=1 (0: use the existing target/release/pimap). Measurements share the machine with whatever else runs: compare the ratios
# within one report, not absolute figures across reports.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
    : "${MIX_USERS:=2}" "${MIX_MSGS:=300}" "${MIX_SECS:=3}" "${MIX_CONNS:=1 5}" "${HOLD_CONNS:=10}"
    : "${BIG_SIZES:=100 1000}" "${PANIC_SECS:=3}" "${PANIC_CONNS:=5}" "${PANIC:=0}" "${SYNC:=0}"
    : "${IDLE_CONNS:=10}" "${CORPUS_LIMIT:=40}" "${FSYNC_N:=10}" "${PROFILE_CONNS:=5}" "${CHURN_REPS:=10}"
    : "${BIG_REPS:=5}"
    : "${OUT:=/tmp/pimap-bench-quick.md}"
fi
MIX_USERS=${MIX_USERS:-10}
MIX_MSGS=${MIX_MSGS:-10000}
MIX_SECS=${MIX_SECS:-20}
MIX_CONNS=${MIX_CONNS:-1 20 100}
HOLD_CONNS=${HOLD_CONNS:-100}
BIG_SIZES=${BIG_SIZES:-1000 10000 100000}
BIG_REPS=${BIG_REPS:-15}
IDLE_CONNS=${IDLE_CONNS:-100}
IDLE_MSGS=${IDLE_MSGS:-20}
if [ -z "${CORPUS:-}" ]; then
    # Real messages: CPython's email test data and the mail-parser crate's resources/eml.
    CORPUS=$(python3 -c 'import test, os; print(os.path.join(os.path.dirname(test.__file__), "test_email", "data"))' 2>/dev/null || true)
    for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/mail-parser-*/resources/eml; do
        [ -d "$d" ] && CORPUS="$CORPUS:$d"
    done
fi
CORPUS_LIMIT=${CORPUS_LIMIT:-1000000}
CORPUS_ROUNDS=${CORPUS_ROUNDS:-3}
FSYNC_N=${FSYNC_N:-50}
FSYNC_SESSIONS=${FSYNC_SESSIONS:-4}
PROFILE=${PROFILE:-1}
PROFILE_CONNS=${PROFILE_CONNS:-20}
CHURN_REPS=${CHURN_REPS:-40}
PANIC_SECS=${PANIC_SECS:-15}
PANIC_CONNS=${PANIC_CONNS:-20}
PANIC=${PANIC:-1}
SYNC=${SYNC:-1}
PORT=${PORT:-18940}
OUT=${OUT:-benches/results/report-$(date -u +%Y-%m-%d).md}
LOADAVG_START=$(cut -d" " -f1-3 /proc/loadavg)
PIMAP=$ROOT/target/release/pimap
LOADGEN=$ROOT/benches/loadgen/target/release/pimap-loadgen

log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo

# ---- 1. dependencies -----------------------------------------------------------------------
need=()
command -v dovecot >/dev/null || need+=(dovecot-core dovecot-imapd)
[ -x /usr/bin/time ] || need+=(time)
command -v strace >/dev/null || need+=(strace)
[ "$PROFILE" = 1 ] && { command -v perf >/dev/null || need+=(linux-perf); }
if [ ${#need[@]} -gt 0 ]; then
    log "apt-get install ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$SYNC" = 1 ]; then
    command -v aws >/dev/null || python3 -m pip install --quiet 'awscli==1.45.11'
    command -v s3s-fs >/dev/null || scripts/install-s3-tools.sh
fi

# ---- 2. builds -----------------------------------------------------------------------------
if [ "${BUILD:-1}" = 1 ]; then
    log "cargo build --release (pimap)"
    cargo build --release --quiet
fi
[ -x "$PIMAP" ] || { echo "$PIMAP missing" >&2; exit 1; }
PROFBIN=$ROOT/target/bench-profile/release/pimap
if [ "$PROFILE" = 1 ]; then
    # Same release profile, plus symbols and frame pointers, for `perf record -g`.
    log "cargo build --release with symbols and frame pointers (target/bench-profile)"
    CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --quiet --bin pimap \
        --target-dir target/bench-profile
fi
log "cargo build --release (benches/loadgen)"
cargo build --release --quiet --manifest-path benches/loadgen/Cargo.toml --target-dir benches/loadgen/target

WORK=$(mktemp -d /tmp/pimap-bench.XXXXXX)
chmod 755 "$WORK"
RES=$WORK/res
mkdir -p "$RES"
SERVER_PID=
HOLD_PID=
cleanup() {
    [ -z "$HOLD_PID" ] || kill "$HOLD_PID" 2>/dev/null || true
    stop_server
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The mail user, as in tests/e2e/conftest.py (Dovecot refuses uid 0 for mail).
if [ "$(id -u)" = 0 ]; then
    MAIL_USER=nobody
    id pimaptest >/dev/null 2>&1 && MAIL_USER=pimaptest
else
    MAIL_USER=$(id -un)
fi
MAIL_UID=$(id -u "$MAIL_USER")
MAIL_GID=$(id -g "$MAIL_USER")
AS_MAIL=()
[ "$(id -u)" = 0 ] && AS_MAIL=(setpriv "--reuid=$MAIL_UID" "--regid=$MAIL_GID" --clear-groups --)

USERS=$WORK/users
{
    echo "# benchmark users: Dovecot passwd-file format"
    for i in $(seq 1 "$(( MIX_USERS > CORPUS_ROUNDS + 1 ? MIX_USERS : CORPUS_ROUNDS + 1 ))"); do printf 'bench%02d:{PLAIN}benchpw:%s:%s::::\n' "$i" "$MAIL_UID" "$MAIL_GID"; done
} > "$USERS"
chmod 644 "$USERS"

# ---- 3. Maildirs ---------------------------------------------------------------------------
template() { # count → path of a generated Maildir (made once)
    local t=$WORK/tpl/$1
    if [ ! -d "$t" ]; then
        log "generating a Maildir of $1 messages"
        "$LOADGEN" gen --dir "$t" --count "$1" --seed "$1" >/dev/null
        chown -R "$MAIL_UID:$MAIL_GID" "$t" 2>/dev/null || true
    fi
    echo "$t"
}
mailroot() { # name, count, users → a fresh mail root with `users` hard-linked copies
    local root=$WORK/mail-$1 t
    t=$(template "$2")
    rm -rf "$root"
    mkdir -p "$root"
    for i in $(seq 1 "$3"); do cp -al "$t" "$root/$(printf 'bench%02d' "$i")"; done
    chown -R "$MAIL_UID:$MAIL_GID" "$root" 2>/dev/null || true
    echo "$root"
}

# ---- 4. servers ----------------------------------------------------------------------------
SERVER_KIND=
SERVER_PORT=
STARTUP_MS=
start_pimap() { # mail root [binary]
    local bin=${2:-$PIMAP}
    SERVER_PORT=$PORT
    mkdir -p "$WORK/pimap-data"
    chown "$MAIL_UID:$MAIL_GID" "$WORK/pimap-data" 2>/dev/null || true
    local t0
    t0=$(date +%s%N)
    TZ=UTC "${AS_MAIL[@]}" "$bin" serve --data-dir "$WORK/pimap-data" --imap-listen "127.0.0.1:$SERVER_PORT" \
        --users "$USERS" --mail-location "maildir:$1/%u" --autocreate-folders false --log-level warn \
        --max-connections-per-ip 1000 \
        >>"$WORK/pimap.log" 2>&1 &
    SERVER_PID=$!
    SERVER_KIND=pimap
    local t1
    t1=$("$LOADGEN" wait --port "$SERVER_PORT") || { tail "$WORK/pimap.log" >&2; exit 1; }
    STARTUP_MS=$(( (t1 - t0) / 1000000 ))
}
start_dovecot() { # mail root
    SERVER_PORT=$((PORT + 1))
    local conf=$WORK/dovecot.conf
    mkdir -p "$WORK/dovecot-run"
    cat > "$conf" <<EOF
# Private Dovecot for the benchmark: loopback only, no TLS, passwd-file users (as tests/e2e).
base_dir = $WORK/dovecot-run
log_path = $WORK/dovecot.log
info_log_path = $WORK/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
login_trusted_networks = 127.0.0.0/8
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:$1/%u
default_login_user = nobody
default_internal_user = nobody
# Room for the benchmark's sessions (the defaults allow 100 processes, 10 per user and IP;
# pimap gets --max-connections-per-ip 1000 likewise).
default_process_limit = 1000
default_client_limit = 4000
protocol imap {
  mail_max_userip_connections = 1000
}
passdb {
  driver = passwd-file
  args = $USERS
}
userdb {
  driver = passwd-file
  args = $USERS
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $SERVER_PORT
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
EOF
    local t0 t1
    t0=$(date +%s%N)
    # Its own session (setsid does not fork here): stopping kills the whole group.
    TZ=UTC setsid dovecot -F -c "$conf" >>"$WORK/dovecot.stdout" 2>&1 &
    SERVER_PID=$!
    SERVER_KIND=dovecot
    t1=$("$LOADGEN" wait --port "$SERVER_PORT") || { tail "$WORK/dovecot.log" "$WORK/dovecot.stdout" >&2; exit 1; }
    STARTUP_MS=$(( (t1 - t0) / 1000000 ))
}
start_server() { # kind, mail root
    if [ "$1" = pimap ]; then start_pimap "$2"; else start_dovecot "$2"; fi
}
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if [ "$SERVER_KIND" = dovecot ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    else
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
server_pids() { # all processes of the running server
    if [ "$SERVER_KIND" = dovecot ]; then
        ps -e -o pid=,sid= | awk -v s="$SERVER_PID" '$2 == s { print $1 }'
    else
        echo "$SERVER_PID"
    fi
}
memory() { # label → "label procs rss_kib pss_kib" in $RES/memory.tsv
    local rss=0 pss=0 n=0 p r q
    for p in $(server_pids); do
        [ -r "/proc/$p/smaps_rollup" ] || continue
        r=$(awk '/^Rss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        q=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        rss=$((rss + ${r:-0})); pss=$((pss + ${q:-0})); n=$((n + 1))
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$SERVER_KIND" "$1" "$n" "$rss" "$pss" >> "$RES/memory.tsv"
}
prewarm() { # users: SELECT every INBOX once (builds uidlist / index), untimed
    "$LOADGEN" hold --port "$SERVER_PORT" --users "$1" --conns "$1" --secs 0 >/dev/null
}

# ---- 5 + 6. load mix, memory ---------------------------------------------------------------
: > "$RES/memory.tsv"
for kind in pimap dovecot; do
    root=$(mailroot "$kind" "$MIX_MSGS" "$MIX_USERS")
    start_server "$kind" "$root"
    memory idle
    log "$kind: indexing $MIX_USERS INBOXes of $MIX_MSGS"
    prewarm "$MIX_USERS"
    for c in $MIX_CONNS; do
        log "$kind: mix, $c sessions, ${MIX_SECS}s"
        "$LOADGEN" mix --port "$SERVER_PORT" --users "$MIX_USERS" --conns "$c" --secs "$MIX_SECS" \
            --base "$MIX_MSGS" --maildir "$root/%u/" > "$RES/mix-$kind-$c.tsv"
        memory "after mix C=$c"
    done
    # Memory with HOLD_CONNS selected sessions, on a fresh process over the indexed Maildirs.
    stop_server
    start_server "$kind" "$root"
    sleep 1
    memory "idle (restarted)"
    log "$kind: $HOLD_CONNS sessions holding a selected INBOX of $MIX_MSGS"
    rm -f "$WORK/held"
    "$LOADGEN" hold --port "$SERVER_PORT" --users "$MIX_USERS" --conns "$HOLD_CONNS" --secs 600 \
        --ready "$WORK/held" > /dev/null &
    HOLD_PID=$!
    for _ in $(seq 1200); do [ -e "$WORK/held" ] && break; kill -0 "$HOLD_PID" 2>/dev/null || break; sleep 0.1; done
    [ -e "$WORK/held" ] || { echo "hold failed" >&2; exit 1; }
    sleep 2
    memory "$HOLD_CONNS sessions"
    kill "$HOLD_PID" 2>/dev/null || true
    wait "$HOLD_PID" 2>/dev/null || true
    HOLD_PID=
    stop_server
    rm -rf "$root"
done

# Per-session memory: IDLE_CONNS sessions logged in, each in IDLE on a small INBOX.
for kind in pimap dovecot; do
    root=$(mailroot "idle-$kind" "$IDLE_MSGS" "$MIX_USERS")
    start_server "$kind" "$root"
    prewarm "$MIX_USERS"
    sleep 1
    memory "before idling sessions"
    log "$kind: $IDLE_CONNS sessions in IDLE on INBOXes of $IDLE_MSGS"
    rm -f "$WORK/held"
    "$LOADGEN" hold --port "$SERVER_PORT" --users "$MIX_USERS" --conns "$IDLE_CONNS" --secs 600 \
        --idle 1 --ready "$WORK/held" > /dev/null &
    HOLD_PID=$!
    for _ in $(seq 1200); do [ -e "$WORK/held" ] && break; kill -0 "$HOLD_PID" 2>/dev/null || break; sleep 0.1; done
    [ -e "$WORK/held" ] || { echo "hold (idle) failed" >&2; exit 1; }
    sleep 2
    memory "$IDLE_CONNS idling sessions"
    kill "$HOLD_PID" 2>/dev/null || true
    wait "$HOLD_PID" 2>/dev/null || true
    HOLD_PID=
    stop_server
    rm -rf "$root"
done

# Bytes of a server's own files in a mail root: everything but the messages (cur/ new/ tmp/)
# and the files both servers share in Dovecot's formats; plus pimap's data dir.
# → "kind case messages bytes files" in $RES/disk.tsv
disk_cost() { # kind, case, mail root, messages
    {
        # Relative paths: the temp dir itself is under /tmp.
        (cd "$3" && find . -type f -not -path '*/cur/*' -not -path '*/new/*' -not -path '*/tmp/*' \
            -not -name dovecot-uidlist -not -name dovecot-keywords -not -name 'dovecot-uidvalidity*' \
            -not -name subscriptions -not -name maildirfolder -printf '%s %f\n')
        [ "$1" = pimap ] && find "$WORK/pimap-data" -type f -printf '%s data-dir/%f\n'
        true
    } | awk -v k="$1" -v c="$2" -v n="$4" '{ b += $1; s[$2] += $1 }
            END { l = ""; for (f in s) l = l (l == "" ? "" : ", ") f "=" s[f];
                  printf "%s\t%s\t%s\t%d\t%s\n", k, c, n, b, l }' >> "$RES/disk.tsv"
}
: > "$RES/disk.tsv"

# ---- 7. big mailbox ------------------------------------------------------------------------
for n in $BIG_SIZES; do
    for kind in pimap dovecot; do
        root=$(mailroot "big-$kind" "$n" 1)
        start_server "$kind" "$root"
        log "$kind: big mailbox $n, first SELECT ever"
        "$LOADGEN" probe --port "$SERVER_PORT" --user bench01 --reps "$BIG_REPS" > "$RES/big-$kind-$n-first.tsv"
        stop_server
        start_server "$kind" "$root"
        log "$kind: big mailbox $n, cold and warm"
        "$LOADGEN" probe --port "$SERVER_PORT" --user bench01 --reps "$BIG_REPS" > "$RES/big-$kind-$n-cold.tsv"
        "$LOADGEN" probe --port "$SERVER_PORT" --user bench01 --reps "$BIG_REPS" > "$RES/big-$kind-$n-warm.tsv"
        stop_server
        disk_cost "$kind" "big mailbox" "$root" "$n"
        rm -rf "$root"
    done
done

# ---- 7b. real-message corpus: APPEND + FETCH back, fsyncs per APPEND ----------------------
: > "$RES/fsync.tsv"
strace_count() { # label, n, command... → "kind label n calls seconds" in $RES/fsync.tsv
    local label=$1 n=$2 sp pids=()
    shift 2
    for p in $(server_pids); do pids+=(-p "$p"); done
    strace -f -c -w -e trace=fsync,fdatasync,syncfs,sync_file_range -o "$WORK/strace.txt" "${pids[@]}" 2>/dev/null &
    sp=$!
    sleep 1
    "$@" > "$WORK/strace-run.tsv"
    sleep 0.5
    kill -INT "$sp" 2>/dev/null || true
    wait "$sp" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\n' "$SERVER_KIND" "$label" "$n" \
        "$(awk '$NF == "total" { c = $4; t = $2 } END { print c + 0 "\t" t + 0 }' "$WORK/strace.txt")" >> "$RES/fsync.tsv"
    cat "$WORK/strace.txt" >> "$RES/strace-$SERVER_KIND.txt"
}
if [ -n "$CORPUS" ]; then
    for kind in pimap dovecot; do
        # CORPUS_ROUNDS timed rounds, each into its own user's empty INBOX, then one more
        # user for the fsync count.
        root=$(mailroot "corpus-$kind" 0 $((CORPUS_ROUNDS + 1)))
        start_server "$kind" "$root"
        for r in $(seq 1 "$CORPUS_ROUNDS"); do
            log "$kind: corpus APPEND + FETCH back, one by one (round $r)"
            "$LOADGEN" corpus --port "$SERVER_PORT" --user "$(printf 'bench%02d' "$r")" --dirs "$CORPUS" \
                --limit "$CORPUS_LIMIT" > "$RES/corpus-$kind-$r.tsv"
        done
        ncorpus=$(awk '$1 == "corpus" { print $2 }' "$RES/corpus-$kind-1.tsv")
        log "$kind: fsyncs during $FSYNC_N APPENDs"
        : > "$RES/strace-$kind.txt"
        strace_count "APPEND + FETCH" "$FSYNC_N" "$LOADGEN" corpus --port "$SERVER_PORT" \
            --user "$(printf 'bench%02d' $((CORPUS_ROUNDS + 1)))" --dirs "$CORPUS" --limit "$FSYNC_N"
        # The same from FSYNC_SESSIONS sessions at once into that one mailbox: what the
        # sessions share (a writer's fsyncs batched with the others').
        log "$kind: fsyncs during $FSYNC_SESSIONS x $FSYNC_N concurrent APPENDs into one mailbox"
        strace_count "concurrent APPEND + FETCH" "$((FSYNC_SESSIONS * FSYNC_N))" bash -c \
            'for i in $(seq 1 "$1"); do "$2" corpus --port "$3" --user "$4" --dirs "$5" --limit "$6" & done; wait' \
            _ "$FSYNC_SESSIONS" "$LOADGEN" "$SERVER_PORT" "$(printf 'bench%02d' $((CORPUS_ROUNDS + 1)))" \
            "$CORPUS" "$FSYNC_N"
        stop_server
        disk_cost "$kind" "corpus" "$root/bench01" "$ncorpus"
        rm -rf "$root"
    done
fi

# ---- 7c. profiles --------------------------------------------------------------------------
perf_during() { # case, command... : perf record -g on pimap while the command runs
    local case=$1 data=$WORK/perf-$1.data pp
    shift
    perf record -q -e cpu-clock -g -p "$SERVER_PID" -o "$data" 2>/dev/null &
    pp=$!
    sleep 1
    "$@" > "$RES/profile-$case.run.tsv"
    kill -INT "$pp" 2>/dev/null || true
    wait "$pp" 2>/dev/null || true
    # Threads merged (--sort dso,sym); the generic frames every stack passes through
    # (thread start, the blocking pool, syscall entry) left out of the inclusive list.
    perf report -i "$data" --no-children --sort dso,sym --stdio -g none --percent-limit 0.5 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -30 > "$RES/profile-$case.self.txt" || true
    perf report -i "$data" --children --sort dso,sym --stdio -g none --percent-limit 2 2>/dev/null |
        grep -v '^#' | grep -v '^$' |
        grep -Ev 'start_thread|thread_start|call_once|__rust_begin_short_backtrace|RawTask|blocking::unblock|LocalKey|entry_SYSCALL|do_syscall_64|__clone|async_executor|futures_lite::future::block_on|std::panic|catch_unwind|std::panicking|\[unknown\]' |
        head -40 > "$RES/profile-$case.children.txt" || true
    perf report -i "$data" --no-children --sort dso,sym --stdio -g caller,0.5,callee,function,percent --percent-limit 3 2>/dev/null |
        grep -v '^$' | head -200 > "$RES/profile-$case.callers.txt" || true
}
if [ "$PROFILE" = 1 ]; then
    [ -x "$PROFBIN" ] || { echo "$PROFBIN missing" >&2; exit 1; }
    root=$(mailroot prof-mix "$MIX_MSGS" "$MIX_USERS")
    start_pimap "$root" "$PROFBIN"
    prewarm "$MIX_USERS"
    log "profile (a): mix, $PROFILE_CONNS sessions"
    perf_during mix "$LOADGEN" mix --port "$SERVER_PORT" --users "$MIX_USERS" --conns "$PROFILE_CONNS" \
        --secs "$MIX_SECS" --base "$MIX_MSGS" --maildir "$root/%u/"
    stop_server
    rm -rf "$root"
    nbig=0
    for n in $BIG_SIZES; do [ "$n" -gt "$nbig" ] && nbig=$n; done
    root=$(mailroot prof-big "$nbig" 1)
    start_pimap "$root" "$PROFBIN"
    prewarm 1
    log "profile (b): NOOP after another session's STORE, $nbig messages"
    perf_during churn "$LOADGEN" churn --port "$SERVER_PORT" --user bench01 --reps "$CHURN_REPS"
    stop_server
    rm -rf "$root"
    if [ -n "$CORPUS" ]; then
        root=$(mailroot prof-corpus 0 1)
        start_pimap "$root" "$PROFBIN"
        log "profile (c): corpus APPEND + FETCH"
        perf_during corpus "$LOADGEN" corpus --port "$SERVER_PORT" --user bench01 --dirs "$CORPUS" \
            --limit "$CORPUS_LIMIT"
        stop_server
        rm -rf "$root"
    fi
fi

# ---- 8. size and start-up ------------------------------------------------------------------
log "binary size, start-up time"
root=$(mailroot startup 10 1)
: > "$RES/startup.tsv"
for kind in pimap dovecot; do
    for _ in 1 2 3 4 5; do
        start_server "$kind" "$root"
        printf '%s\t%s\n' "$kind" "$STARTUP_MS" >> "$RES/startup.tsv"
        stop_server
    done
done
{
    printf 'pimap\t%s\t%s\n' "$(stat -c %s "$PIMAP")" "$(file -b "$PIMAP" | grep -o 'not stripped\|stripped' || true)"
    # Dovecot: the programs an IMAP server runs plus Dovecot's own shared libraries.
    dsize=0
    for f in /usr/sbin/dovecot /usr/lib/dovecot/{anvil,auth,config,imap,imap-login,log} \
        /usr/lib/dovecot/libdovecot.so.0 /usr/lib/dovecot/libdovecot-login.so.0 \
        /usr/lib/dovecot/libdovecot-storage.so.0; do
        f=$(readlink -f "$f")
        if [ -f "$f" ]; then dsize=$((dsize + $(stat -c %s "$f"))); fi
    done
    printf 'dovecot\t%s\tstripped (Debian)\n' "$dsize"
    dall=$( (dpkg -L dovecot-core dovecot-imapd 2>/dev/null || true) | while read -r f; do
        if [ -f "$f" ] && [ ! -L "$f" ] && head -c 4 "$f" | grep -q ELF; then stat -c %s "$f"; fi; done |
        awk '{ s += $1 } END { print s + 0 }')
    printf 'dovecot-packages\t%s\tall ELF files of dovecot-core + dovecot-imapd\n' "$dall"
} > "$RES/size.tsv"
rm -rf "$root"

# ---- 9. panic strategy ---------------------------------------------------------------------
: > "$RES/panic.tsv"
if [ "$PANIC" = 1 ]; then
    # Both arms built here with the strategy set explicitly: target/release/pimap is whatever
    # Cargo.toml's profile says, so it can stand for neither arm.
    for strategy in abort unwind; do
        log "cargo build --release with panic=$strategy (target/bench-panic-$strategy)"
        CARGO_PROFILE_RELEASE_PANIC=$strategy cargo build --release --quiet --bin pimap \
            --target-dir "target/bench-panic-$strategy"
    done
    panic_bin() { echo "$ROOT/target/bench-panic-$1/release/pimap"; }
    # Same source and profile otherwise: if the two files are identical, a setting did not apply.
    if cmp -s "$(panic_bin abort)" "$(panic_bin unwind)"; then
        echo "run.sh: the panic=abort and panic=unwind builds are identical" >&2
        exit 1
    fi
    for strategy in abort unwind; do
        bin=$(panic_bin $strategy)
        root=$(mailroot "panic-$strategy" "$MIX_MSGS" "$MIX_USERS")
        start_pimap "$root" "$bin"
        prewarm "$MIX_USERS"
        log "panic=$strategy: mix, $PANIC_CONNS sessions, ${PANIC_SECS}s"
        "$LOADGEN" mix --port "$SERVER_PORT" --users "$MIX_USERS" --conns "$PANIC_CONNS" --secs "$PANIC_SECS" \
            --base "$MIX_MSGS" --maildir "$root/%u/" > "$RES/panic-mix-$strategy.tsv"
        memory "panic=$strategy after mix"
        stop_server
        rm -rf "$root"
        printf '%s\t%s\t%s\n' "$strategy" "$(stat -c %s "$bin")" "$(awk '$1 == "total" { print $4 "\t" $5 }' "$RES/panic-mix-$strategy.tsv")" >> "$RES/panic.tsv"
    done
fi

# ---- 10. sync vs AWS CLI -------------------------------------------------------------------
SYNC_REPORT=
if [ "$SYNC" = 1 ]; then
    log "benches/sync_vs_awscli.sh"
    # Into the temp dir: benches/results/sync-*.md are that benchmark's own annotated reports.
    SYNC_REPORT=$WORK/sync.md
    OUT=$SYNC_REPORT PIMAP=$PIMAP benches/sync_vs_awscli.sh >/dev/null
else
    SYNC_REPORT=${SYNC_FROM:-$(ls -t benches/results/sync-*.md 2>/dev/null | head -1 || true)}
fi

# ---- report --------------------------------------------------------------------------------
log "writing $OUT"
mkdir -p "$(dirname "$OUT")"
python3 benches/report.py "$RES" "$OUT" \
    --meta "date=$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --meta "commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted src changes)')" \
    --meta "machine=$(nproc) cores $(uname -m), $(uname -sr), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, load average at start $LOADAVG_START, at end $(cut -d" " -f1-3 /proc/loadavg)" \
    --meta "dovecot=$(dovecot --version 2>/dev/null | head -1)" \
    --meta "pimap=$("$PIMAP" --version 2>/dev/null || echo pimap)" \
    --meta "sizes=MIX_USERS=$MIX_USERS MIX_MSGS=$MIX_MSGS MIX_SECS=$MIX_SECS MIX_CONNS='$MIX_CONNS' HOLD_CONNS=$HOLD_CONNS IDLE_CONNS=$IDLE_CONNS IDLE_MSGS=$IDLE_MSGS BIG_SIZES='$BIG_SIZES' BIG_REPS=$BIG_REPS CORPUS_LIMIT=$CORPUS_LIMIT CORPUS_ROUNDS=$CORPUS_ROUNDS FSYNC_N=$FSYNC_N FSYNC_SESSIONS=$FSYNC_SESSIONS PROFILE=$PROFILE PROFILE_CONNS=$PROFILE_CONNS CHURN_REPS=$CHURN_REPS PANIC_CONNS=$PANIC_CONNS PANIC_SECS=$PANIC_SECS$([ $QUICK = 1 ] && echo ' (--quick)')" \
    --meta "mail_user=$MAIL_USER" \
    --meta "corpus=$CORPUS" \
    --meta "mix_msgs=$MIX_MSGS" \
    --meta "big_reps=$BIG_REPS" \
    --meta "fsync_sessions=$FSYNC_SESSIONS" \
    --sync "${SYNC_REPORT:-}"
cat "$OUT"
