#!/usr/bin/env bash
# Runs payment-bench (optimised build) against a DynamoDB Local of its own
# (in memory, 127.0.0.1, free port), stopped at the end. Arguments go to
# payment-bench, e.g.:
#   scripts/bench.sh                       # gRPC, 32 callers, 2000 payments
#   scripts/bench.sh --grpc-web --json
#   scripts/bench.sh --hot-percent 50 --payments 5000
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/setup.sh >/dev/null
cargo build --quiet --profile perf --bin payment-bench

trap 'kill ${DDB_PID:-} 2>/dev/null; wait ${DDB_PID:-} 2>/dev/null || true' EXIT INT TERM
start_dynamodb "$(free_port)"

RUST_LOG=warn PAYMENT_ACCOUNTS_TABLE=bench-accounts PAYMENT_LEDGER_TABLE=bench-ledger \
  target/perf/payment-bench "$@"
