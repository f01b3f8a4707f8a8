#!/usr/bin/env bash
# Runs the Lambda function locally under `cargo lambda watch`, with what it
# needs: DynamoDB Local on 127.0.0.1:${DYNAMODB_PORT:-8000} (data in
# .data/dynamodb, shared with scripts/run-local.sh: run one of the two at a
# time), the tables created, the dev JWT secret of .data/dev-jwt-secret.
# The function answers gRPC-Web at
#   http://127.0.0.1:${LAMBDA_PORT:-9000}/lambda-url/payment-lambda
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh >/dev/null
scripts/setup-serverless.sh >/dev/null
cargo build --quiet --bins
export PATH="$PWD/.tools/venv/bin:$PATH"

ddb_port=${DYNAMODB_PORT:-8000}
lambda_port=${LAMBDA_PORT:-9000}
for port in "$ddb_port" "$lambda_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run-lambda: port $port is taken; set DYNAMODB_PORT / LAMBDA_PORT" >&2
    exit 1
  fi
done
mkdir -p .data
scripts/dynamodb-local.sh "$ddb_port" .data/dynamodb >.data/dynamodb-local.log 2>&1 &
ddb_pid=$!
trap 'kill $ddb_pid 2>/dev/null; wait $ddb_pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$ddb_port") 2>/dev/null && break
  sleep 0.2
done

export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
if [ ! -s .data/dev-jwt-secret ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .data/dev-jwt-secret)
fi
secret=$(cat .data/dev-jwt-secret)

# Create the tables once with the server binary (the function never creates them).
tables_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PAYMENT_DEV_JWT_SECRET=$secret PAYMENT_LISTEN="127.0.0.1:$tables_port" RUST_LOG=warn \
  target/debug/payment-server --create-tables &
tables_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$tables_port") 2>/dev/null && break
  sleep 0.1
done
kill $tables_pid; wait $tables_pid 2>/dev/null || true

cat <<MSG
run-lambda: the function at http://127.0.0.1:$lambda_port/lambda-url/payment-lambda (gRPC-Web)
run-lambda: in another shell:
  export PAYMENT_DEV_JWT_SECRET=\$(cat .data/dev-jwt-secret)
  export PAYMENT_TOKEN=\$(target/debug/payment-client token --sub alice --admin)
  target/debug/payment-client --grpc-web --endpoint http://127.0.0.1:$lambda_port/lambda-url/payment-lambda balance alice
MSG
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --disable-cors \
  --bin payment-lambda \
  --env-vars "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB,AWS_REGION=$AWS_REGION,AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY,PAYMENT_DEV_JWT_SECRET=$secret"
