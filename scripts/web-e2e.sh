#!/usr/bin/env bash
# Runs the web app's end-to-end tests: installs what they need, builds the
# Rust binaries (cargo rebuilds only what changed) and the page, then drives
# the built page in headless Chromium, signed in with bearer tokens, against
# three targets in turn:
#   payment-server                        the standalone server
#   payment-lambda (cargo lambda watch)   the Lambda function binary
#   cloud                                 the stack as deployed by scripts/cloud.sh
#                                         (template.yaml on ministack: API Gateway,
#                                         its JWT authorizer and CORS, Cognito tokens)
# the first two with a fresh random dev JWT secret and their own tables on one
# DynamoDB Local; everything on 127.0.0.1, on free ports, and stopped
# afterwards, also on failure. The run is bounded by PAYMENT_E2E_TIMEOUT
# seconds (default 1800).
#
#   scripts/web-e2e.sh
#   PAYMENT_E2E_TARGETS=payment-server scripts/web-e2e.sh   # one target only
#   PAYMENT_E2E_TARGETS=cloud scripts/web-e2e.sh            # only the deployed stack
#   PAYMENT_E2E_DOCS_SCREENSHOT=1 scripts/web-e2e.sh        # also refresh docs/web-app.png
#   PAYMENT_E2E_ENDPOINT=http://127.0.0.1:9000/lambda-url/payment-lambda \
#     PAYMENT_DEV_JWT_SECRET=... scripts/web-e2e.sh         # against a running endpoint instead
#
# Results in web/test-results/ (emptied first): a screenshot per test, and
# web-app-<target>.png per target, e2e-junit.xml, and the processes' logs in logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/web-setup.sh
if [ -z "${PAYMENT_E2E_ENDPOINT:-}" ]; then
  scripts/setup.sh              # DynamoDB Local
  scripts/setup-serverless.sh   # cargo-lambda, for `cargo lambda watch`; SAM CLI and ministack, for cloud
fi
# payment-client mints the tokens; payment-server is a target; the cloud
# target deploys this debug payment-lambda (no release build).
echo "web-e2e: cargo build --bins"
cargo build --bins --quiet

cd web
npm run build
rm -rf test-results
mkdir -p test-results

# Run in this process (not through npm), so that a timeout or Ctrl-C reaches
# the harness, which then stops every process group it started.
status=0
timeout --kill-after=30s "${PAYMENT_E2E_TIMEOUT:-1800}" \
  node --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=junit --test-reporter-destination=test-results/e2e-junit.xml \
    e2e/app.test.mjs || status=$?
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "web-e2e: stopped after ${PAYMENT_E2E_TIMEOUT:-1800} s" >&2
fi
echo "web-e2e: results in web/test-results/"
exit "$status"
