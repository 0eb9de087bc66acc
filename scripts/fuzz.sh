#!/usr/bin/env bash
# Bounded fuzzing of the parsers of untrusted bytes (cargo-fuzz / libFuzzer), on the corpus
# committed under fuzz/corpus. Used by scripts/test.sh; also by hand:
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 30)
# Fails if any target finds a crash (the input is left in fuzz/artifacts/TARGET/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-30}"
CARGO_FUZZ_VERSION=0.13.1

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: no nightly toolchain on this machine; cargo-fuzz needs one" >&2
    exit 1
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
total=0
for target in $(cargo +nightly fuzz list); do
    # Fuzz a scratch copy of the corpus so the committed seeds stay small and reviewed.
    work="$(mktemp -d)"
    cp -r "fuzz/corpus/$target/." "$work/" 2>/dev/null || true
    echo "fuzz: $target for ${secs}s"
    out="$(cargo +nightly fuzz run "$target" "$work" -- -max_total_time="$secs" -rss_limit_mb=1024 2>&1 || true)"
    grep -E "^(Done|#[0-9]+ *DONE)|SUMMARY|panicked|ERROR" <<<"$out" || true
    # libFuzzer ends with "Done N runs in S second(s)": the executions of this target.
    runs="$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' <<<"$out" | tail -n 1)"
    echo "fuzz: $target: ${runs:-0} executions"
    total=$((total + ${runs:-0}))
    rm -rf "$work"
    if ls "fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
        echo "fuzz: $target found a crash: fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
echo "fuzz: total executions: $total"
