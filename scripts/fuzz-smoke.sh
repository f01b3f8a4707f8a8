#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for SECONDS_PER_TARGET
# seconds (default 30), starting from the committed seed corpus; fails if any
# target crashes (a panic, a broken property, a timeout or running out of
# memory). Prints one summary line per target.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]
#
# New inputs go to fuzz/target/smoke/corpus/<target>, crashes to
# fuzz/artifacts/<target>/ (both git-ignored); the committed corpus is only
# read. Environment:
#   PAYMENT_FUZZ_SANITIZER  address | none (default none: the code under test
#                           is safe Rust, and ASan doubles build and run time)
#   PAYMENT_FUZZ_TARGETS    the targets to run (default: all)
#   PAYMENT_FUZZ_JOBS       cargo build jobs (default: cargo's own)
#
# cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them for this build only. See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1)); then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

scripts/fuzz-setup.sh >/dev/null
export RUSTC_BOOTSTRAP=1
cargo_fuzz=$PWD/.tools/cargo/bin/cargo-fuzz
build_flags=(--sanitizer "${PAYMENT_FUZZ_SANITIZER:-none}")
if [[ -n ${PAYMENT_FUZZ_JOBS:-} ]]; then
    export CARGO_BUILD_JOBS=$PAYMENT_FUZZ_JOBS
fi

read -r -a targets <<<"${PAYMENT_FUZZ_TARGETS:-$("$cargo_fuzz" list | tr '\n' ' ')}"

echo "==> building ${#targets[@]} fuzz targets (${build_flags[*]})"
started=$(date +%s)
"$cargo_fuzz" build "${build_flags[@]}"
echo "build: $(($(date +%s) - started)) s"

work=fuzz/target/smoke
mkdir -p "$work/logs"
summary=()
failed=0
for target in "${targets[@]}"; do
    corpus=$work/corpus/$target
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    log=$work/logs/$target.log
    options=(
        -max_total_time="$seconds"
        -timeout=10
        -rss_limit_mb=2048
        -print_final_stats=1
        -artifact_prefix="fuzz/artifacts/$target/"
    )
    if [[ -f fuzz/dicts/$target.dict ]]; then
        options+=(-dict="fuzz/dicts/$target.dict")
    fi
    echo "==> $target: ${seconds}s"
    # The first corpus directory receives new inputs; the committed one is
    # read only.
    set +e
    "$cargo_fuzz" run "${build_flags[@]}" "$target" "$corpus" "fuzz/corpus/$target" \
        -- "${options[@]}" >"$log" 2>&1
    status=$?
    set -e
    # libFuzzer's final statistics (absent when it stopped on a crash before
    # its first report).
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1 || true)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1 || true)
    cov=$( (grep -oE '(DONE|INITED|pulse|NEW|REDUCE) +cov: [0-9]+ ft: [0-9]+' "$log" || true) |
        tail -n 1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+)/cov \1, ft \2/')
    if ((status == 0)); then
        result=ok
    else
        result="FAILED (exit $status)"
        failed=1
        echo "---- $target: last lines of $log"
        tail -n 40 "$log" | cut -c1-300
        echo "----"
        grep -E '^(artifact_prefix|Test unit written)' "$log" || true
    fi
    summary+=("$(printf '%-16s %10s execs %7s exec/s %4ss  %-20s %s' \
        "$target" "${runs:-?}" "${speed:-?}" "$seconds" "${cov:-cov ?}" "$result")")
done

echo
echo "==> fuzz smoke summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
