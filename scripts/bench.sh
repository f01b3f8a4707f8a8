#!/usr/bin/env bash
# Runs payment-bench (optimised build) against a DynamoDB Local of its own
# (in memory, 127.0.0.1, free port), stopped at the end. Arguments go to
# payment-bench, e.g.:
#   scripts/bench.sh                       # gRPC, 32 callers, 2000 payments
#   scripts/bench.sh --grpc-web --json
#   scripts/bench.sh --hot-percent 50 --payments 5000
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
cargo build --quiet --profile perf --bin payment-bench

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
scripts/dynamodb-local.sh "$port" >/dev/null 2>&1 &
ddb_pid=$!
trap 'kill $ddb_pid 2>/dev/null; wait $ddb_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port" AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local RUST_LOG=warn \
  PAYMENT_ACCOUNTS_TABLE=bench-accounts PAYMENT_LEDGER_TABLE=bench-ledger \
  target/perf/payment-bench "$@"
