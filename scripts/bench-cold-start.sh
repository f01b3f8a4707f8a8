#!/usr/bin/env bash
# Cold-start benchmark of the Lambda binary (not a test): see scripts/bench-cold-start.py.
#   scripts/bench-cold-start.sh [BINARY] [OPTIONS...]
# Without BINARY, builds the release payment-lambda into target/bench (its own
# target dir, so it does not wait on other builds' lock) and measures that.
# Starts DynamoDB Local on a free port and creates the tables (bench-accounts,
# bench-ledger) with the crate's own Ledger::create_tables, indexes included,
# through `payment-client create-tables` (built there too).
# OPTIONS go to bench-cold-start.py: --runs N (20), --warm M (200), --json, --check, ...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

export CARGO_TARGET_DIR=${BENCH_TARGET_DIR:-target/bench}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  binary=$1
  shift
  cargo build --release --bin payment-client >&2
else
  cargo build --release --bin payment-lambda --bin payment-client >&2
  binary=$CARGO_TARGET_DIR/release/payment-lambda
fi
client=$CARGO_TARGET_DIR/release/payment-client
scripts/setup.sh >/dev/null  # DynamoDB Local

ddb_port=$(free_port)
# Stopped at the end, keeping the benchmark's exit status.
trap 'kill ${DDB_PID:-} 2>/dev/null; wait ${DDB_PID:-} 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
echo "bench: starting DynamoDB Local on port $ddb_port" >&2
start_dynamodb "$ddb_port"
export PAYMENT_ACCOUNTS_TABLE=bench-accounts PAYMENT_LEDGER_TABLE=bench-ledger
RUST_LOG=warn "$client" create-tables >&2
python3 scripts/bench-cold-start.py --binary "$binary" \
  --dynamodb-endpoint "$AWS_ENDPOINT_URL_DYNAMODB" "$@"
