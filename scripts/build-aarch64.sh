#!/usr/bin/env bash
# Static aarch64 (Raspberry Pi 3/4, ARMv8.0-A) build of pimap from Debian packages only, then a
# smoke run under qemu. Usable by CI and by hand:
#
#   bash scripts/build-aarch64.sh            # -> target/debian-aarch64/pimap-aarch64-stripped
#
# Checks: static aarch64 ELF, stripped size under the budget, and under qemu-aarch64-static (as
# a Cortex-A53): --version, pw, one `sync --once` pass against s3s-fs, and serve with a python
# imaplib LOGIN / APPEND / SELECT / FETCH.
#
# Why this way (see shared/notes/aarch64-cross.md): CI can't fetch a rustup target, and Debian
# has no musl std for arm64, so this uses Debian's rustc-web together with its arm64 std
# (multiarch) and links glibc statically (+crt-static, from .cargo/config.toml). The compiler is
# NOT installed: its .debs are unpacked into a cache directory, so the machine's own rustc and
# its libraries stay exactly as they were. Users with Docker build the musl variant with
# `cross` instead (cross/Cross.toml).
#
# Installs (idempotent): gcc-aarch64-linux-gnu + libc6-dev-arm64-cross (linker driver, static
# glibc, and the C compiler for ring), lld-16 (the linker gcc drives: identical code folding,
# see .cargo/config.toml),
# qemu-user-static (runner), file. Environment knobs:
#   RUST_WEB_VERSION          Debian rustc-web version (default below; falls back to the
#                             archive's candidate if that exact version was superseded)
#   PIMAP_AARCH64_TOOLCHAIN   where the unpacked toolchain is cached
#   PIMAP_AARCH64_TARGET_DIR  cargo target dir (separate from target/ so the host build's
#                             artifacts are never rebuilt by the other compiler)
#   PIMAP_AARCH64_PROFILE     cargo profile (default release)
#   PIMAP_AARCH64_MAX_BYTES   size budget for the stripped binary (default 5 MiB)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

RUST_WEB_VERSION=${RUST_WEB_VERSION:-1.96.0+dfsg1-1~deb12u2}
TARGET=aarch64-unknown-linux-gnu
PROFILE=${PIMAP_AARCH64_PROFILE:-release}
TARGET_DIR=${PIMAP_AARCH64_TARGET_DIR:-$ROOT/target/debian-aarch64}
MAX_BYTES=${PIMAP_AARCH64_MAX_BYTES:-$((5 * 1024 * 1024))}

step() { printf '\n==> %s\n' "$*"; }
die() { echo "build-aarch64: $*" >&2; exit 1; }
SECONDS=0

# shellcheck source=scripts/privilege.sh
. scripts/privilege.sh

# --- host tools (Debian) -------------------------------------------------------------------
step "host packages (gcc-aarch64-linux-gnu + libc6-dev-arm64-cross, lld-16, qemu-user-static, file)"
need_pkgs=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross lld-16 qemu-user-static file; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    as_root dpkg --add-architecture arm64
    apt_updated=
else
    apt_updated=1
fi
if [ ${#need_pkgs[@]} -gt 0 ] || [ -z "$apt_updated" ]; then
    apt_get update -qq
    apt_updated=1
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    apt_get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

# --- Debian's rustc-web + arm64 std, unpacked (not installed) -------------------------------
# The std must be the same build as the compiler: every .deb comes from one version string.
version_available() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$2"
}
if ! version_available rustc-web "$RUST_WEB_VERSION"; then
    if [ -z "$apt_updated" ]; then apt_get update -qq; apt_updated=1; fi
fi
if ! version_available rustc-web "$RUST_WEB_VERSION"; then
    cand=$(apt-cache policy rustc-web | awk '/Candidate:/ {print $2}')
    [ -n "$cand" ] && [ "$cand" != "(none)" ] || die "rustc-web is not in the apt sources"
    echo "warning: rustc-web $RUST_WEB_VERSION is no longer in the archive; using $cand" >&2
    RUST_WEB_VERSION=$cand
fi
rust_major_minor=$(echo "$RUST_WEB_VERSION" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')
TOOLCHAIN=${PIMAP_AARCH64_TOOLCHAIN:-${XDG_CACHE_HOME:-$HOME/.cache}/pimap/rustc-web-$RUST_WEB_VERSION}

if [ ! -f "$TOOLCHAIN/.complete" ]; then
    step "unpacking Debian rustc-web $RUST_WEB_VERSION (+ arm64 std) into $TOOLCHAIN"
    # libllvm is whatever version the std package depends on.
    llvm_pkg=$(apt-cache depends "libstd-rust-web-$rust_major_minor=$RUST_WEB_VERSION" \
        | awk '/Depends: libllvm[0-9]+$/ {print $2; exit}')
    [ -n "$llvm_pkg" ] || die "could not find the libllvm dependency of libstd-rust-web-$rust_major_minor"
    dl=$(mktemp -d)
    trap 'rm -rf "$dl"' EXIT
    (cd "$dl" && apt-get download -qq \
        "rustc-web:amd64=$RUST_WEB_VERSION" \
        "libstd-rust-web-$rust_major_minor:amd64=$RUST_WEB_VERSION" \
        "libstd-rust-web-dev:amd64=$RUST_WEB_VERSION" \
        "$llvm_pkg:amd64" \
        "libstd-rust-web-$rust_major_minor:arm64=$RUST_WEB_VERSION" \
        "libstd-rust-web-dev:arm64=$RUST_WEB_VERSION")
    rm -rf "$TOOLCHAIN.tmp"
    mkdir -p "$TOOLCHAIN.tmp"
    for deb in "$dl"/*.deb; do dpkg -x "$deb" "$TOOLCHAIN.tmp"; done
    rm -rf "$dl"
    trap - EXIT
    rm -rf "$TOOLCHAIN"
    mv "$TOOLCHAIN.tmp" "$TOOLCHAIN"
    touch "$TOOLCHAIN/.complete"
fi

RUSTC_BIN=$TOOLCHAIN/usr/bin/rustc
export LD_LIBRARY_PATH="$TOOLCHAIN/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$RUSTC_BIN" --version || die "the unpacked rustc does not run"
[ -d "$TOOLCHAIN/usr/lib/rustlib/$TARGET/lib" ] || die "no $TARGET std in $TOOLCHAIN"

# --- build ------------------------------------------------------------------------------------
# Linker, target-cpu=cortex-a53 and +crt-static come from .cargo/config.toml
# ([target.aarch64-unknown-linux-gnu]); a RUSTFLAGS from the caller would replace them.
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
step "cargo build --profile $PROFILE --target $TARGET (Debian rustc $rust_major_minor)"
build_start=$SECONDS
RUSTC="$RUSTC_BIN" CARGO_TARGET_DIR="$TARGET_DIR" \
    cargo build --locked --profile "$PROFILE" --target "$TARGET" --bin pimap
echo "build took $((SECONDS - build_start)) s"

outdir=$PROFILE
[ "$PROFILE" = dev ] && outdir=debug
BIN=$TARGET_DIR/$TARGET/$outdir/pimap
[ -x "$BIN" ] || die "no binary at $BIN"

# --- checks -----------------------------------------------------------------------------------
step "checks"
desc=$(file -b "$BIN")
echo "$desc"
case "$desc" in
    *"ARM aarch64"*) ;;
    *) die "not an aarch64 binary" ;;
esac
case "$desc" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) die "not statically linked" ;;
esac
if aarch64-linux-gnu-readelf -l "$BIN" | grep -q 'INTERP'; then die "binary has an ELF interpreter"; fi

STRIPPED=$TARGET_DIR/pimap-aarch64-stripped
aarch64-linux-gnu-strip -o "$STRIPPED" "$BIN"
size=$(stat -c %s "$STRIPPED")
echo "stripped size: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.2f", s / 1048576}') MiB; budget $MAX_BYTES)"
[ "$size" -le "$MAX_BYTES" ] || die "stripped binary is over the size budget"

QEMU="qemu-aarch64-static -cpu cortex-a53"
step "qemu: pimap --version"
ver=$($QEMU "$STRIPPED" --version)
echo "$ver"
case "$ver" in "pimap "*) ;; *) die "unexpected --version output" ;; esac

step "qemu: pimap pw -s SHA512-CRYPT -p x"
hash=$($QEMU "$STRIPPED" pw -s SHA512-CRYPT -p x)
echo "$hash"
case "$hash" in '{SHA512-CRYPT}$6$'*) ;; *) die "unexpected pw output" ;; esac

# --- end-to-end smoke under qemu: serve + imaplib, one S3 sync pass --------------------------
step "qemu: serve, LOGIN/APPEND/FETCH with imaplib; one sync pass against s3s-fs"
if ! command -v s3s-fs >/dev/null; then bash scripts/install-s3-tools.sh; fi
smoke=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$smoke"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 100); do
        python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" \
            2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
mkdir -p "$smoke/data" "$smoke/s3/mail-in/inbound"
echo "alice:$($QEMU "$STRIPPED" pw -s SHA512-CRYPT -p smoke-pw):::::" >"$smoke/data/users"
printf 'From: bob@example.org\r\nTo: alice@example.org\r\nSubject: from s3\r\n\r\nsynced\r\n' \
    >"$smoke/s3/mail-in/inbound/msg-1"

s3port=$(free_port)
s3s-fs --host 127.0.0.1 --port "$s3port" --access-key AK --secret-key SK "$smoke/s3" \
    >"$smoke/s3s.log" 2>&1 &
pids+=($!)
wait_port "$s3port" || { cat "$smoke/s3s.log"; die "s3s-fs did not start"; }
AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK $QEMU "$STRIPPED" sync --once \
    --data-dir "$smoke/data" --s3-bucket mail-in --s3-prefix inbound/ \
    --s3-endpoint "http://127.0.0.1:$s3port" --deliver-to alice \
    || die "sync pass failed under qemu"
ls "$smoke/data/mail/alice/new" | grep -q . || die "sync delivered nothing"

imapport=$(free_port)
# As root, serve binds and then drops to --run-as (default 5000:5000, the vmail ids): give it
# the data, as a deployment would.
if [ "$(id -u)" -eq 0 ]; then
    chmod 0755 "$smoke"
    chown -R 5000:5000 "$smoke/data"
fi
$QEMU "$STRIPPED" serve --data-dir "$smoke/data" --imap-listen "127.0.0.1:$imapport" \
    >"$smoke/serve.log" 2>&1 &
pids+=($!)
wait_port "$imapport" || { cat "$smoke/serve.log"; die "pimap serve did not start under qemu"; }
python3 - "$imapport" <<'PY' || { cat "$smoke/serve.log"; die "IMAP smoke test failed"; }
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=30)
m.login("alice", "smoke-pw")
typ, _ = m.append("INBOX", None, None, b"From: a@example.org\r\nSubject: appended\r\n\r\nhi\r\n")
assert typ == "OK", typ
typ, data = m.select("INBOX")
assert typ == "OK" and int(data[0]) == 2, data
typ, data = m.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = b"".join(p[1] for p in data if isinstance(p, tuple))
assert b"from s3" in subjects and b"appended" in subjects, subjects
m.logout()
print("imaplib: login, append, select (2 messages), fetch OK")
PY
cleanup
trap - EXIT

echo
echo "aarch64 build OK: $STRIPPED ($size bytes), ${SECONDS}s in all"
