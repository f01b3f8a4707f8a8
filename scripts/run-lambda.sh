#!/usr/bin/env bash
# Runs the Lambda function locally under `cargo lambda watch`, with what it
# needs: DynamoDB Local on 127.0.0.1:${DYNAMODB_PORT:-8000} (data in
# .data/dynamodb, shared with scripts/run-local.sh: run one of the two at a
# time), the tables created, the dev JWT secret of .data/dev-jwt-secret, CORS
# for the dev origins of `make web` (PAYMENT_CORS_ORIGINS changes them).
# The function answers gRPC-Web at
#   http://127.0.0.1:${LAMBDA_PORT:-9000}/lambda-url/payment-lambda
# PAYMENT_AUTH_MODE=apigateway makes the function trust the authorizer claims
# of API Gateway events, as deployed (for `cargo lambda invoke --data-file
# events/...`); by default it verifies bearer tokens itself. Ctrl-C stops
# everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/setup.sh >/dev/null
scripts/setup-serverless.sh >/dev/null
cargo build --quiet --bins
export PATH="$PWD/.tools/venv/bin:$PATH"

ddb_port=${DYNAMODB_PORT:-8000}
lambda_port=${LAMBDA_PORT:-9000}
for port in "$ddb_port" "$lambda_port"; do
  if port_open "$port"; then
    echo "run-lambda: port $port is taken; set DYNAMODB_PORT / LAMBDA_PORT" >&2
    exit 1
  fi
done
trap 'kill ${DDB_PID:-} 2>/dev/null; wait ${DDB_PID:-} 2>/dev/null' EXIT INT TERM
start_dynamodb "$ddb_port" .data/dynamodb
secret=$(dev_secret)

# Create the tables once with the server binary (the function never creates them).
tables_port=$(free_port)
PAYMENT_AUTH_MODE=jwt PAYMENT_DEV_JWT_SECRET=$secret PAYMENT_LISTEN="127.0.0.1:$tables_port" RUST_LOG=warn \
  target/debug/payment-server --create-tables &
tables_pid=$!
wait_port "$tables_port" "$tables_pid" payment-server
kill $tables_pid; wait $tables_pid 2>/dev/null || true

cat <<MSG
run-lambda: the function at http://127.0.0.1:$lambda_port/lambda-url/payment-lambda (gRPC-Web)
run-lambda: in another shell:
  export PAYMENT_DEV_JWT_SECRET=\$(cat .data/dev-jwt-secret)
  export PAYMENT_TOKEN=\$(target/debug/payment-client token --sub alice --admin)
  target/debug/payment-client --grpc-web --endpoint http://127.0.0.1:$lambda_port/lambda-url/payment-lambda balance alice
MSG
# The function's environment, in a file: --env-vars cannot carry the commas
# of an origin list. CORS for the dev origins of `make web` only (the
# function sends no CORS headers without PAYMENT_CORS_ORIGINS).
env_file=.data/lambda-watch.env
(umask 077 && cat >"$env_file" <<ENV
AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
PAYMENT_DEV_JWT_SECRET=$secret
PAYMENT_AUTH_MODE=${PAYMENT_AUTH_MODE:-jwt}
PAYMENT_CORS_ORIGINS=${PAYMENT_CORS_ORIGINS:-http://127.0.0.1:5173,http://localhost:5173}
ENV
)
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --disable-cors \
  --bin payment-lambda --env-file "$env_file"
