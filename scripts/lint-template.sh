#!/usr/bin/env bash
# Lints template.yaml offline: cfn-lint (any error, warning or informational
# finding fails), then `sam validate --lint`. Run scripts/setup-serverless.sh
# first. No AWS account is used: the credentials below are dummies that only
# satisfy the SAM CLI's start-up checks, and telemetry is off.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.tools/venv
if [ ! -x "$venv/bin/cfn-lint" ] || [ ! -x "$venv/bin/sam" ]; then
  echo "lint-template: cfn-lint or sam is missing; run scripts/setup-serverless.sh" >&2
  exit 1
fi

echo "lint-template: cfn-lint template.yaml"
"$venv/bin/cfn-lint" template.yaml

echo "lint-template: sam validate --lint"
env -u AWS_PROFILE -u AWS_SESSION_TOKEN SAM_CLI_TELEMETRY=0 \
  AWS_ACCESS_KEY_ID=offline-dummy AWS_SECRET_ACCESS_KEY=offline-dummy \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  "$venv/bin/sam" validate --lint --region us-east-1 -t template.yaml

echo "lint-template: template.yaml is clean"
