#!/usr/bin/env bash
# Installs the deployment-template tools into a Python venv at .tools/venv
# (ignored by git): cfn-lint, the AWS SAM CLI and cargo-lambda (for `cargo
# lambda watch` and `sam build`), at pinned versions; and the local AWS
# emulator of `make cloud`, ministack (which scripts/cloud-lib.sh starts
# with BIND_HOST=127.0.0.1, loopback only), into a venv of its own at
# .tools/ministack (it pins a botocore older than the SAM CLI's), with
# cryptography (its JWT authorizers verify RS256 signatures with it) and
# aws-sam-translator (its CloudFormation applies the SAM transform with it).
# Idempotent: a second run only checks. Needs python3 (3.9+) with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.58.0
AWS_SAM_CLI_VERSION=1.170.0
CARGO_LAMBDA_VERSION=1.9.2
venv=.tools/venv
MINISTACK_VERSION=1.5.33
# ministack $MINISTACK_VERSION pins botocore; boto3 goes with it.
MINISTACK_BOTOCORE_VERSION=1.43.106
CRYPTOGRAPHY_VERSION=50.0.2
ministack_venv=.tools/ministack

command -v python3 >/dev/null 2>&1 || { echo "setup-serverless: 'python3' is required but not installed" >&2; exit 1; }

installed() {
  [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/sam" ] && [ -x "$venv/bin/cargo-lambda" ] || return 1
  "$venv/bin/python" - "$CFN_LINT_VERSION" "$AWS_SAM_CLI_VERSION" "$CARGO_LAMBDA_VERSION" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = (version("cfn-lint") == sys.argv[1] and version("aws-sam-cli") == sys.argv[2]
          and version("cargo-lambda") == sys.argv[3])
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

if ! installed; then
  mkdir -p .tools
  if [ ! -x "$venv/bin/python" ]; then
    echo "setup-serverless: creating $venv"
    python3 -m venv "$venv"
  fi
  echo "setup-serverless: installing cfn-lint==$CFN_LINT_VERSION aws-sam-cli==$AWS_SAM_CLI_VERSION cargo-lambda==$CARGO_LAMBDA_VERSION"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "cfn-lint==$CFN_LINT_VERSION" "aws-sam-cli==$AWS_SAM_CLI_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi
ministack_installed() {
  [ -x "$ministack_venv/bin/ministack" ] || return 1
  "$ministack_venv/bin/python" - "$MINISTACK_VERSION" "$CRYPTOGRAPHY_VERSION" "$AWS_SAM_TRANSLATOR_VERSION" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = (version("ministack") == sys.argv[1] and version("cryptography") == sys.argv[2]
          and version("aws-sam-translator") == sys.argv[3])
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
}

# The SAM transform the emulator applies is the one the SAM CLI validates with.
AWS_SAM_TRANSLATOR_VERSION=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("aws-sam-translator"))')
if ! ministack_installed; then
  if [ ! -x "$ministack_venv/bin/python" ]; then
    echo "setup-serverless: creating $ministack_venv"
    python3 -m venv "$ministack_venv"
  fi
  echo "setup-serverless: installing ministack==$MINISTACK_VERSION cryptography==$CRYPTOGRAPHY_VERSION aws-sam-translator==$AWS_SAM_TRANSLATOR_VERSION"
  "$ministack_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "ministack==$MINISTACK_VERSION" "cryptography==$CRYPTOGRAPHY_VERSION" \
    "aws-sam-translator==$AWS_SAM_TRANSLATOR_VERSION" \
    "botocore==$MINISTACK_BOTOCORE_VERSION" "boto3==$MINISTACK_BOTOCORE_VERSION"
fi
echo "setup-serverless: $("$venv/bin/cfn-lint" --version), $("$venv/bin/sam" --version), $("$venv/bin/cargo-lambda" lambda --version), ministack $MINISTACK_VERSION"
