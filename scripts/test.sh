#!/usr/bin/env bash
# The project's one test command (README "Running the tests", .ci/run):
#
#   bash scripts/test.sh                          # everything, as CI runs it
#   bash scripts/test.sh --lint                   # only the lint stage (step 3), a minute or so
#   bash scripts/test.sh --only install,build,e2e -k privdrop   # chosen stages, in this order
#
# Stages (names for --only, comma-separated; they always run in this order):
# 1. install: the test dependencies (idempotent; Debian packages, pinned Python packages, the
#    S3 test servers s3s-fs and moto),
# 2. build: pimap (debug profile: fastest to build on 2 cores; the e2e tests need no speed),
# 3. lint, as a reviewer checks it: `cargo fmt --check`, `cargo clippy --all-targets -- -D
#    warnings`, `cargo doc --no-deps --document-private-items` with RUSTDOCFLAGS=-D warnings,
# 4. rust: the Rust tests (unit + integration); the S3 sync tests are required to run
#    (PIMAP_TEST_REQUIRE_S3=1: a missing s3s-fs or moto fails them instead of skipping),
# 5. e2e: the end-to-end suite in tests/e2e against the built binary AND Debian's Dovecot,
# 6. fuzz: the parsers for a bounded time (scripts/fuzz.sh),
# 7. deploy: the systemd unit and k3s manifests (scripts/check-deploy.sh),
# 8. aarch64: the static aarch64 binary, smoke-tested under qemu (scripts/build-aarch64.sh),
# 9. image: the multi-arch container image, built and run (scripts/build-image.sh).
#
# Root or a normal user: install, e2e, deploy, aarch64 and image need root for part of their
# work (apt-get, useradd, Dovecot's mail processes as another user, the privilege-drop tests,
# buildah). Run as a normal user, those parts go through `sudo -n` (the e2e suite runs as root
# as a whole, with this user's PATH and build); without passwordless sudo the command says so
# in one line and stops. The rest (cargo, the user's own toolchain and CARGO_HOME) runs as the
# user, so nothing in the checkout becomes root's.
#
# Exits non-zero if any step fails; every step runs even when an earlier test step failed,
# so one run reports everything. Other arguments go to pytest (e.g. -k pimap, -x).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

# The lint stage; sets status=1 on any finding, runs all three either way.
lint() {
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        step "rustup component add rustfmt clippy"
        rustup component add rustfmt clippy || { status=1; return; }
    fi
    step "lint: cargo fmt --check"
    cargo fmt --check || status=1
    step "lint: cargo clippy --all-targets -- -D warnings"
    cargo clippy --all-targets -- -D warnings || status=1
    step "lint: cargo doc --no-deps --document-private-items (RUSTDOCFLAGS=-D warnings)"
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items || status=1
}

finish() {
    if [ "$status" -ne 0 ]; then
        printf '\nFAILED (see above)\n'
    else
        printf '\n%s passed\n' "$1"
    fi
    exit "$status"
}

ALL_STAGES=(install build lint rust e2e fuzz deploy aarch64 image)
# Stages that need root for part of their work (see the header).
ROOT_STAGES=(install e2e deploy aarch64 image)

usage() {
    echo "usage: bash scripts/test.sh [--lint | --only STAGE,...] [pytest arguments]" \
        "(stages: ${ALL_STAGES[*]})" >&2
    exit 2
}

# --only's list, checked against the stage names; sets `stages`.
select_stages() {
    local s known
    IFS=, read -r -a stages <<<"$1"
    [ "${#stages[@]}" -gt 0 ] || usage
    for s in "${stages[@]}"; do
        known=0
        for k in "${ALL_STAGES[@]}"; do [ "$s" = "$k" ] && known=1; done
        [ "$known" -eq 1 ] || { echo "scripts/test.sh: unknown stage '$s'" >&2; usage; }
    done
}

want() {
    local s
    for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done
    return 1
}

# A normal user needs passwordless sudo for the root stages; say so once, before any work.
check_privileges() {
    local s
    [ "$(id -u)" -eq 0 ] && return 0
    for s in "${ROOT_STAGES[@]}"; do
        if want "$s" && ! sudo -n true 2>/dev/null; then
            echo "scripts/test.sh: stage '$s' needs root: run it as root or as a user with" \
                "passwordless sudo (\`sudo -n true\` fails for $(id -un)), or choose stages" \
                "that do not: --only build,lint,rust,fuzz" >&2
            exit 2
        fi
    done
}

# The e2e suite, as root: Dovecot's mail processes and pimap's privilege drop run as other
# users, and the privilege tests check what root can and cannot do. A normal user's run hands
# it to root through sudo with this user's PATH (cargo's bin dir: s3s-fs) and PIMAP_*
# settings; no bytecode, so nothing in the checkout becomes root's.
e2e() {
    local py env_args=() name
    py=$(command -v python3)
    if [ "$(id -u)" -eq 0 ]; then
        "$py" -m pytest -q -p no:cacheprovider tests/e2e "$@"
        return
    fi
    env_args=("PATH=$PATH" PYTHONDONTWRITEBYTECODE=1)
    for name in $(compgen -e); do
        case "$name" in PIMAP_* | CHECKER_*) env_args+=("$name=${!name}") ;; esac
    done
    sudo -n env "${env_args[@]}" "$py" -m pytest -q -p no:cacheprovider tests/e2e "$@"
}

stages=("${ALL_STAGES[@]}")
case "${1:-}" in
--lint)
    [ $# -eq 1 ] || usage
    stages=(lint)
    shift
    ;;
--only)
    [ $# -ge 2 ] || usage
    select_stages "$2"
    shift 2
    ;;
esac
check_privileges

# Debian puts dovecot, doveadm and useradd in sbin, which a normal user's PATH leaves out.
for d in /usr/local/sbin /usr/sbin /sbin; do
    case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
done
export PATH

status=0
if want install; then
    step "installing test dependencies"
    bash scripts/install-test-deps.sh || { echo "dependency install failed" >&2; exit 1; }
fi

if want build; then
    step "cargo build"
    cargo build --bins || { echo "build failed" >&2; exit 1; }
fi

if want lint; then
    lint
fi

if want rust; then
    step "cargo test"
    # The S3 sync tests skip when their servers are missing (a plain `cargo test` on a laptop);
    # here step 1 installed them, so missing means broken: fail, never skip silently.
    PIMAP_TEST_REQUIRE_S3=1 cargo test --no-fail-fast || status=1
fi

if want e2e; then
    step "end-to-end tests (pytest tests/e2e)"
    export PIMAP_BIN="$PWD/target/debug/pimap"
    # As for the cargo tests: moto (the --sqs-queue tests) was installed in step 1.
    export PIMAP_TEST_REQUIRE_S3=1
    # pytest exit 5 = no tests collected: that is a failure of this suite, not a pass.
    e2e "$@" || status=1
fi

if want fuzz; then
    step "fuzzing the parsers (30 s per target)"
    bash scripts/fuzz.sh 30 || status=1
fi

if want deploy; then
    step "deployment checks (systemd unit, k3s manifests)"
    bash scripts/check-deploy.sh || status=1
fi

aarch64_ok=1
if want aarch64; then
    step "aarch64 static build + qemu smoke test"
    bash scripts/build-aarch64.sh || { status=1; aarch64_ok=0; }
fi

# The image holds the aarch64 binary: after a failed aarch64 build there is none to put in.
if want image && [ "$aarch64_ok" -eq 1 ]; then
    step "container image (amd64 + arm64, buildah) + run as uid 5000 in its own rootfs"
    bash scripts/build-image.sh || status=1
fi

if [ "${#stages[@]}" -eq "${#ALL_STAGES[@]}" ]; then
    finish "all tests"
fi
finish "${stages[*]}"
