#!/usr/bin/env bash
# The inner loop: the unit tests and the integration tests on DynamoDB Local
# (started by the tests themselves), without the local AWS cloud, buf,
# cargo lambda or a browser. `make test` stays the full gate CI runs.
# Arguments go to the test binaries, e.g. `scripts/test-fast.sh reshard::`.
set -euo pipefail
cd "$(dirname "$0")/.."

# DynamoDB Local only (idempotent; the serverless tools are not needed).
scripts/setup.sh >/dev/null
cargo test --all-targets --locked -- \
  --skip cloud:: --skip lambda_watch:: --skip buf_curl:: "$@"
