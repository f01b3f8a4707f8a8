#!/usr/bin/env bash
# Installs cargo-fuzz (pinned) into .tools/cargo, for scripts/fuzz-smoke.sh
# and for fuzzing by hand (see fuzz/README.md). Idempotent: does nothing when
# the pinned version is already there.
#
# cargo-fuzz drives libFuzzer through rustc flags that are nightly-only
# (-Zsanitizer, -Cpasses=sancov-module with -Z options). This machine has a
# stable toolchain only, so the fuzz scripts set RUSTC_BOOTSTRAP=1, which
# lets stable rustc accept them; the flags only apply to the fuzz/ build.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
root=.tools/cargo
bin=$root/bin/cargo-fuzz

if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "cargo-fuzz $CARGO_FUZZ_VERSION already in $root"
    exit 0
fi

echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root"
cargo install --locked --root "$root" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
"$bin" --version
