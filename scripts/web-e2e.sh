#!/usr/bin/env bash
# Runs the web app's end-to-end tests: installs what they need, builds the
# Rust binaries (cargo rebuilds only what changed) and the page, then drives
# the built page in headless Chromium against DynamoDB Local + payment-server,
# all on free loopback ports and stopped afterwards.
#
#   scripts/web-e2e.sh
#   PAYMENT_E2E_ENDPOINT=http://127.0.0.1:9000/lambda-url/payment-lambda scripts/web-e2e.sh
#                                  # against a running endpoint instead
#   PAYMENT_E2E_DOCS_SCREENSHOT=1 scripts/web-e2e.sh   # also refresh docs/web-app.png
#
# Screenshots and the servers' logs end up in web/test-results/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/web-setup.sh

if [ -z "${PAYMENT_E2E_ENDPOINT:-}" ]; then
  scripts/setup.sh
  if [ -z "${PAYMENT_SERVER_BIN:-}" ]; then
    echo "web-e2e: cargo build --bins"
    cargo build --bins --quiet
  fi
fi

cd web
npm run build
npm run e2e
