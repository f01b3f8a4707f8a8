#!/usr/bin/env bash
# Instructions per call of the service against the direct ledger call, counted
# by valgrind's callgrind (not a test): see scripts/bench-instructions.py.
#   scripts/bench-instructions.sh [OPTIONS...] [-- PAYMENT-BENCH ARGS...]
#   scripts/bench-instructions.sh --kinds payments --calls 400
#   scripts/bench-instructions.sh --kinds payments -- --grpc-web
# Builds payment-bench (perf profile, as scripts/bench.sh) and runs it against
# a DynamoDB Local of its own (in memory, 127.0.0.1, free port), stopped at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

command -v valgrind >/dev/null || { echo "bench-instructions: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
scripts/setup.sh >/dev/null
cargo build --quiet --profile perf --bin payment-bench

trap 'kill ${DDB_PID:-} 2>/dev/null; wait ${DDB_PID:-} 2>/dev/null || true' EXIT
start_dynamodb "$(free_port)"

PAYMENT_ACCOUNTS_TABLE=bench-accounts PAYMENT_LEDGER_TABLE=bench-ledger \
  python3 scripts/bench-instructions.py --bench target/perf/payment-bench "$@"
