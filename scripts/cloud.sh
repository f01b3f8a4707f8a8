#!/usr/bin/env bash
# `make cloud`: the stack as deployed (template.yaml: DynamoDB tables, the
# function, the HTTP API with its JWT authorizer and CORS, Cognito, the event
# bus and payment-events on the tables' streams) on a local AWS emulator,
# ministack (PyPI), with no Docker and no AWS account:
#
#   1. installs the SAM CLI and ministack into .tools/ (scripts/setup-serverless.sh);
#   2. builds payment-lambda and payment-events for this machine (x86_64; the emulator runs the
#      `bootstrap` as a local process and does not enforce Architectures);
#   3. starts the emulator on 127.0.0.1 only (BIND_HOST=127.0.0.1; IOT_MTLS_ENABLED=0,
#      or it opens an IoT listener on 0.0.0.0:8883), its log in .data/cloud/;
#   4. deploys template.yaml with `sam deploy` against it (AWS_ENDPOINT_URL),
#      exactly as to AWS: only the code location and the architecture differ,
#      as in what `sam build` hands to `sam deploy`;
#   5. prints the API URL and how to get tokens and call it, then waits
#      (Ctrl-C stops the emulator and every function process it started).
#
#   scripts/cloud.sh                 # make cloud: up, print, wait
#   scripts/cloud.sh --no-wait       # up, print, stop (a smoke test of the deploy)
#
# Environment: PAYMENT_CLOUD_PORT (default 4566; 0 = a free port),
# PAYMENT_CLOUD_PROFILE (cargo profile of the function: release, the default,
# or dev), PAYMENT_CLOUD_ORIGINS (AllowedOrigins, default
# http://localhost:5173,http://127.0.0.1:5173), PAYMENT_CLOUD_STATE (a file to
# write the deployed stack's facts to as JSON, for the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. scripts/cloud-lib.sh

wait_for_ctrl_c=1
case "${1:-}" in
  "") ;;
  --no-wait) wait_for_ctrl_c=0 ;;
  *) echo "usage: scripts/cloud.sh [--no-wait]" >&2; exit 2 ;;
esac

scripts/setup-serverless.sh >/dev/null
port=${PAYMENT_CLOUD_PORT:-4566}
[ "$port" = 0 ] && port=$(free_port)
if port_open "$port"; then
  echo "cloud: port $port is taken (another make cloud?); set PAYMENT_CLOUD_PORT" >&2
  exit 1
fi

cloud_build "${PAYMENT_CLOUD_PROFILE:-release}"
trap cloud_stop EXIT
trap 'exit 130' INT TERM
cloud_start "$port"
cloud_deploy "${PAYMENT_CLOUD_ORIGINS:-http://localhost:5173,http://127.0.0.1:5173}"
[ -n "${PAYMENT_CLOUD_STATE:-}" ] && cp "$CLOUD_DIR/state.json" "$PAYMENT_CLOUD_STATE"

api=$(cloud_state api_url)
gateway=$(cloud_state gateway_url)
cat <<MSG

cloud: the stack is up (deployed in ${CLOUD_DEPLOY_SECONDS} s); emulator log: $CLOUD_DIR/ministack.log
  API (gRPC-Web):  $api
                   also $gateway (the same API by path, for clients that cannot resolve *.localhost)
  user pool:       $(cloud_state user_pool_id), issuer $(cloud_state issuer)
  web client:      $(cloud_state web_client_id) (code flow with PKCE)
  service client:  $(cloud_state service_client_id) (client_credentials, scope payments/admin)
  event bus:       $(cloud_state event_bus_name) (docs/events.md; subscribe a queue: scripts/cloud-py.sh subscribe NAME,
                   read it: scripts/cloud-py.sh receive QUEUE_URL)

Tokens, from the emulated Cognito (scripts/cloud-py.sh; secrets from $CLOUD_DIR/state.json):
  an admin (client credentials, scope payments/admin; sub = the service client id):
    export PAYMENT_TOKEN=\$(scripts/cloud-py.sh token admin)
  an ordinary user (created in the user pool if missing, signed in through the Hosted UI's code flow with PKCE):
    export PAYMENT_TOKEN=\$(scripts/cloud-py.sh token user alice@example.com)

The client, through API Gateway (gRPC-Web only: an HTTP API does not speak HTTP/2 gRPC):
  target/debug/payment-client --grpc-web --endpoint $api add-account alice --name Alice
  target/debug/payment-client --grpc-web --endpoint $api balance alice

The web app: make web, open http://127.0.0.1:5173, set the endpoint to $api
and paste a token (the API's CORS allows ${PAYMENT_CLOUD_ORIGINS:-http://localhost:5173,http://127.0.0.1:5173}).
MSG

if [ "$wait_for_ctrl_c" = 1 ]; then
  echo
  echo "cloud: Ctrl-C stops the emulator and the function processes"
  while kill -0 "$CLOUD_PID" 2>/dev/null; do sleep 1; done
  echo "cloud: the emulator exited; see $CLOUD_DIR/ministack.log" >&2
  exit 1
fi
