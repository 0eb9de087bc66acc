#!/usr/bin/env bash
# Bounded fuzzing of the parsers of untrusted bytes (cargo-fuzz / libFuzzer with AddressSanitizer),
# on the corpus committed under fuzz/corpus. Used by scripts/test.sh; also by hand:
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET [LIBFUZZER_FLAGS...]]    (default 30 s)
#   FUZZ_TARGETS="utf7 command" bash scripts/fuzz.sh 60                 (only these targets)
#
# Fails if a target does not build or run, or if libFuzzer leaves ANY finding in
# fuzz/artifacts/TARGET/ (crash-, oom-, timeout-, leak-; a finding from an earlier run counts
# until it is fixed and the file removed). slow-unit- files are reports, not findings.
#
# Toolchain: cargo-fuzz passes unstable rustc flags (-Zsanitizer=address, ...). A nightly
# toolchain is used when rustup has one; otherwise the default (stable) toolchain with
# RUSTC_BOOTSTRAP=1, which accepts those flags and ships the same sanitizer runtimes
# (lib/rustlib/*/lib/librustc-*_rt.asan.a), so no download from rustup's server is needed.
# cargo-fuzz itself is installed from crates.io (pinned) if missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-30}"
shift || true
extra=("$@")
CARGO_FUZZ_VERSION=0.13.1

if cargo +nightly --version >/dev/null 2>&1; then
    tc=(+nightly)
    echo "fuzz: toolchain $(cargo +nightly --version)"
else
    # The only unstable features used are cargo-fuzz's own -Z flags (sanitizer, coverage).
    export RUSTC_BOOTSTRAP=1
    tc=()
    echo "fuzz: no nightly toolchain; using $(cargo --version) with RUSTC_BOOTSTRAP=1" \
        "(for a nightly instead: rustup toolchain install nightly)"
fi
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
# Sanitizer runtime of the toolchain that builds the targets: without it the link fails later
# with a less helpful message.
sysroot="$(rustc "${tc[@]}" --print sysroot)"
if ! ls "$sysroot"/lib/rustlib/*/lib/librustc-*_rt.asan.a >/dev/null 2>&1; then
    echo "fuzz: no AddressSanitizer runtime under $sysroot/lib/rustlib (rust-std incomplete?)" >&2
    exit 1
fi

targets="${FUZZ_TARGETS:-$(cargo "${tc[@]}" fuzz list)}"
[ -n "$targets" ] || { echo "fuzz: no fuzz targets" >&2; exit 1; }
total=0
failed=0
for target in $targets; do
    # Fuzz a scratch copy of the corpus so the committed seeds stay small and reviewed.
    work="$(mktemp -d)"
    cp -r "fuzz/corpus/$target/." "$work/" 2>/dev/null || true
    echo "fuzz: $target for ${secs}s"
    rc=0
    out="$(cargo "${tc[@]}" fuzz run "$target" "$work" -- -max_total_time="$secs" -rss_limit_mb=1024 \
        "${extra[@]}" 2>&1)" || rc=$?
    rm -rf "$work"
    grep -E "^(Done|#[0-9]+ *DONE)|SUMMARY|panicked|ERROR|^error" <<<"$out" || true
    # libFuzzer ends with "Done N runs in S second(s)": the executions of this target.
    runs="$(sed -n 's/^Done \([0-9][0-9]*\) runs.*/\1/p' <<<"$out" | tail -n 1)"
    echo "fuzz: $target: ${runs:-0} executions"
    total=$((total + ${runs:-0}))
    findings="$(find "fuzz/artifacts/$target" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) \
        2>/dev/null | sort)"
    if [ -n "$findings" ]; then
        echo "fuzz: $target has findings (reproduce: cargo fuzz run $target FILE):" >&2
        echo "$findings" | sed 's/^/  /' >&2
        failed=1
    elif [ "$rc" -ne 0 ]; then
        tail -n 30 <<<"$out" >&2
        echo "fuzz: $target: cargo fuzz run exited with $rc" >&2
        failed=1
    elif [ -z "$runs" ]; then
        tail -n 30 <<<"$out" >&2
        echo "fuzz: $target: libFuzzer did not report its runs" >&2
        failed=1
    fi
done
echo "fuzz: total executions: $total"
exit "$failed"
