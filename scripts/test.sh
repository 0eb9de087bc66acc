#!/usr/bin/env bash
# The project's one test command (README "Running the tests", .ci/run):
#
#   bash scripts/test.sh            # everything, as CI runs it
#   bash scripts/test.sh --lint     # only the lint stage (step 3), a minute or so
#
# 1. installs the test dependencies (idempotent; Debian packages, pinned Python packages, the
#    S3 test servers s3s-fs and moto),
# 2. builds pimap (debug profile: fastest to build on 2 cores; the e2e tests need no speed),
# 3. lint, as a reviewer checks it: `cargo fmt --check`, `cargo clippy --all-targets -- -D
#    warnings`, `cargo doc --no-deps --document-private-items` with RUSTDOCFLAGS=-D warnings,
# 4. runs the Rust tests (unit + integration); the S3 sync tests are required to run
#    (PIMAP_TEST_REQUIRE_S3=1: a missing s3s-fs or moto fails them instead of skipping),
# 5. runs the end-to-end suite in tests/e2e against the built binary AND Debian's Dovecot,
# 6. fuzzes the parsers for a bounded time (scripts/fuzz.sh),
# 7. checks the systemd unit and k3s manifests (scripts/check-deploy.sh),
# 8. builds the static aarch64 binary and smoke-tests it under qemu (scripts/build-aarch64.sh),
# 9. builds the multi-arch container image and runs it (scripts/build-image.sh).
#
# Exits non-zero if any step fails; every step runs even when an earlier test step failed,
# so one run reports everything. Extra arguments go to pytest (e.g. -k pimap, -x).
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

status=0
if [ "${1:-}" = "--lint" ]; then
    [ $# -eq 1 ] || { echo "usage: bash scripts/test.sh --lint" >&2; exit 2; }
    lint
    finish "lint"
fi

step "installing test dependencies"
bash scripts/install-test-deps.sh || { echo "dependency install failed" >&2; exit 1; }

step "cargo build"
cargo build --bins || { echo "build failed" >&2; exit 1; }

lint

step "cargo test"
# The S3 sync tests skip when their servers are missing (a plain `cargo test` on a laptop);
# here step 1 installed them, so missing means broken: fail, never skip silently.
PIMAP_TEST_REQUIRE_S3=1 cargo test --no-fail-fast || status=1

step "end-to-end tests (pytest tests/e2e)"
export PIMAP_BIN="$PWD/target/debug/pimap"
python3 -m pytest -q -p no:cacheprovider tests/e2e "$@"
rc=$?
# pytest exit 5 = no tests collected: that is a failure of this suite, not a pass.
if [ "$rc" -ne 0 ]; then status=1; fi

step "fuzzing the parsers (30 s per target)"
bash scripts/fuzz.sh 30 || status=1

step "deployment checks (systemd unit, k3s manifests)"
bash scripts/check-deploy.sh || status=1

step "aarch64 static build + qemu smoke test"
if bash scripts/build-aarch64.sh; then
    step "container image (amd64 + arm64, buildah) + run as uid 5000 in its own rootfs"
    bash scripts/build-image.sh || status=1
else
    status=1
fi

finish "all tests"
