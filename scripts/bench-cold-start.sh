#!/usr/bin/env bash
# Cold-start benchmark of the Lambda binary (not a test): see scripts/bench-cold-start.py.
#   scripts/bench-cold-start.sh [BINARY] [OPTIONS...]
# Without BINARY, builds the release payment-lambda into target/bench (its own
# target dir, so it does not wait on other builds' lock) and measures that.
# OPTIONS go to bench-cold-start.py: --runs N (20), --warm M (200), --json, --check, ...
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  binary=$1
  shift
else
  export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-target/bench}
  cargo build --release --bin payment-lambda >&2
  binary=$CARGO_TARGET_DIR/release/payment-lambda
fi
scripts/setup.sh >/dev/null  # DynamoDB Local
exec python3 scripts/bench-cold-start.py --binary "$binary" "$@"
