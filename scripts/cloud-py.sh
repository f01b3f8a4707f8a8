#!/usr/bin/env bash
# Runs scripts/cloud.py against the emulator of a running `make cloud` (its
# port from .data/cloud/state.json; CLOUD_STATE overrides), e.g. tokens from
# the emulated Cognito:
#   scripts/cloud-py.sh token admin                client credentials, scope payments/admin
#   scripts/cloud-py.sh token user alice@example.com
#                                                  an ordinary user (created if missing),
#                                                  signed in with the code flow and PKCE
set -euo pipefail
cd "$(dirname "$0")/.."
state=${CLOUD_STATE:-.data/cloud/state.json}
[ -f "$state" ] || { echo "cloud-py: no $state; run make cloud first" >&2; exit 1; }
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$state")
exec env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL_DYNAMODB CLOUD_STATE="$state" \
  AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  .tools/venv/bin/python scripts/cloud.py "$@"
