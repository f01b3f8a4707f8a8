#!/usr/bin/env bash
# Runs the whole service locally, with everything it needs:
#   DynamoDB Local on 127.0.0.1:${DYNAMODB_PORT:-8000}, data kept in .data/dynamodb
#   across restarts; the tables created if missing; payment-server on
#   ${PAYMENT_LISTEN:-127.0.0.1:50051} (native gRPC and gRPC-Web).
# Callers are verified with a development HS256 secret (PAYMENT_DEV_JWT_SECRET,
# generated once into .data/dev-jwt-secret unless set); the script prints how
# to get a token. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
cargo build --quiet --bins

ddb_port=${DYNAMODB_PORT:-8000}
if (exec 3<>"/dev/tcp/127.0.0.1/$ddb_port") 2>/dev/null; then
  echo "run-local: port $ddb_port is taken; set DYNAMODB_PORT to a free port" >&2
  exit 1
fi
mkdir -p .data
scripts/dynamodb-local.sh "$ddb_port" .data/dynamodb >.data/dynamodb-local.log 2>&1 &
ddb_pid=$!
trap 'kill $ddb_pid 2>/dev/null; wait $ddb_pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ddb_port") 2>/dev/null && break
  kill -0 $ddb_pid 2>/dev/null || { echo "run-local: DynamoDB Local failed; see .data/dynamodb-local.log" >&2; exit 1; }
  sleep 0.2
done
echo "run-local: DynamoDB Local on 127.0.0.1:$ddb_port (data in .data/dynamodb)"

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export PAYMENT_LISTEN=${PAYMENT_LISTEN:-127.0.0.1:50051}
if [ -z "${PAYMENT_DEV_JWT_SECRET:-}" ]; then
  if [ ! -s .data/dev-jwt-secret ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .data/dev-jwt-secret)
  fi
  PAYMENT_DEV_JWT_SECRET=$(cat .data/dev-jwt-secret)
fi
export PAYMENT_DEV_JWT_SECRET

cat <<MSG
run-local: payment-server on $PAYMENT_LISTEN (native gRPC and gRPC-Web)
run-local: callers need a token; in another shell:
  export PAYMENT_DEV_JWT_SECRET=\$(cat .data/dev-jwt-secret)
  export PAYMENT_TOKEN=\$(target/debug/payment-client token --sub alice --admin)
  target/debug/payment-client add-account alice --initial-balance 100.00
MSG
target/debug/payment-server --create-tables
