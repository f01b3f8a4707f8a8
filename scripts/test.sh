#!/usr/bin/env bash
# Runs every test: the Rust unit and integration tests (against DynamoDB
# Local, started by the tests themselves; tests/api/cloud.rs also deploys
# template.yaml to the local AWS emulator, see scripts/cloud.sh), the proto
# lint, the template lint and the browser app's unit and end-to-end tests. Installs what is missing
# first (scripts/setup*.sh are idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "setup"
scripts/setup.sh
scripts/setup-serverless.sh

step "cargo test (unit, integration on DynamoDB Local, the stack on the local AWS cloud, template)"
cargo test --all-targets --locked

step "buf lint (proto/)"
.tools/node_modules/.bin/buf lint

step "template lint (cfn-lint, sam validate)"
scripts/lint-template.sh

step "web: unit tests (vitest)"
scripts/web-setup.sh
(cd web && npm test)

step "web: end-to-end in headless Chromium"
scripts/web-e2e.sh
