#!/usr/bin/env bash
# The project's one test command (README "Running the tests", .ci/run):
#
#   bash scripts/test.sh
#
# 1. installs the test dependencies (idempotent; Debian packages, pinned Python packages),
# 2. builds pimap (debug profile: fastest to build on 2 cores; the e2e tests need no speed),
# 3. runs the Rust tests (unit + integration),
# 4. runs the end-to-end suite in tests/e2e against the built binary AND Debian's Dovecot,
# 5. fuzzes the parsers for a bounded time (scripts/fuzz.sh),
# 6. checks the systemd unit and k3s manifests (scripts/check-deploy.sh),
# 7. builds the static aarch64 binary and smoke-tests it under qemu (scripts/build-aarch64.sh),
# 8. builds the multi-arch container image and runs it (scripts/build-image.sh).
#
# Exits non-zero if any step fails; every step runs even when an earlier test step failed,
# so one run reports everything. Extra arguments go to pytest (e.g. -k pimap, -x).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

step "installing test dependencies"
bash scripts/install-test-deps.sh || { echo "dependency install failed" >&2; exit 1; }

step "cargo build"
cargo build --bins || { echo "build failed" >&2; exit 1; }

status=0

step "cargo test"
cargo test --no-fail-fast || status=1

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

if [ "$status" -ne 0 ]; then
    printf '\nFAILED (see above)\n'
else
    printf '\nall tests passed\n'
fi
exit "$status"
