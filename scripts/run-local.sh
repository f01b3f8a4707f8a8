#!/usr/bin/env bash
# Runs the whole service locally, with everything it needs:
#   DynamoDB Local on 127.0.0.1:${DYNAMODB_PORT:-8000}, data kept in .data/dynamodb
#   across restarts; the tables created if missing; payment-server on
#   ${PAYMENT_LISTEN:-127.0.0.1:50051} (native gRPC and gRPC-Web).
# Callers are verified with a development HS256 secret (PAYMENT_DEV_JWT_SECRET,
# generated once into .data/dev-jwt-secret unless set); the script prints how
# to get a token. Browsers may call from the dev origins of `make web`
# (PAYMENT_CORS_ORIGINS, default http://127.0.0.1:5173,http://localhost:5173);
# without it payment-server sends no CORS headers. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/setup.sh >/dev/null
cargo build --quiet --bins

ddb_port=${DYNAMODB_PORT:-8000}
if port_open "$ddb_port"; then
  echo "run-local: port $ddb_port is taken; set DYNAMODB_PORT to a free port" >&2
  exit 1
fi
stop_dynamodb() { kill ${DDB_PID:-} 2>/dev/null; wait ${DDB_PID:-} 2>/dev/null || true; }
trap stop_dynamodb EXIT
# Ctrl-C (or a TERM) is how `make run` is meant to end: payment-server
# finishes its calls, DynamoDB Local stops, and the run ends with status 0.
trap 'exit 0' INT TERM
start_dynamodb "$ddb_port" .data/dynamodb
echo "run-local: DynamoDB Local on 127.0.0.1:$ddb_port (data in .data/dynamodb)"

export PAYMENT_LISTEN=${PAYMENT_LISTEN:-127.0.0.1:50051}
export PAYMENT_DEV_JWT_SECRET=${PAYMENT_DEV_JWT_SECRET:-$(dev_secret)}
export PAYMENT_CORS_ORIGINS=${PAYMENT_CORS_ORIGINS:-http://127.0.0.1:5173,http://localhost:5173}
export PAYMENT_METRICS_LISTEN=${PAYMENT_METRICS_LISTEN:-127.0.0.1:9464}

cat <<MSG
run-local: payment-server on $PAYMENT_LISTEN (native gRPC and gRPC-Web), CORS for $PAYMENT_CORS_ORIGINS
run-local: Prometheus metrics at http://$PAYMENT_METRICS_LISTEN/metrics
run-local: callers need a token; in another shell:
  export PAYMENT_DEV_JWT_SECRET=\$(cat .data/dev-jwt-secret)
  export PAYMENT_TOKEN=\$(target/debug/payment-client token --sub alice --admin)
  target/debug/payment-client add-account alice --initial-balance 100.00
MSG
target/debug/payment-server --create-tables
