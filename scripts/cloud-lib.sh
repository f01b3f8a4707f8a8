# The local AWS cloud's steps (source it after scripts/lib.sh): build the
# function, start the emulator (ministack) on 127.0.0.1, deploy template.yaml
# with `sam deploy`, stop everything. scripts/cloud.sh and
# scripts/cloud-e2e.sh use them. Everything lives in $CLOUD_DIR.

CLOUD_DIR=${CLOUD_DIR:-.data/cloud}
CLOUD_STACK=payment-ledger-local
CLOUD_REGION=us-east-1
# How long the emulator may take to listen, and a deploy to finish.
CLOUD_START_TIMEOUT_S=60
CLOUD_DEPLOY_TIMEOUT_S=300

# cloud_build PROFILE: builds payment-lambda and payment-events (cargo
# profile release or dev) and payment-client, and lays the functions out as
# `sam build` would: $CLOUD_DIR/build/PaymentFunction/bootstrap and
# $CLOUD_DIR/build/EventsFunction/bootstrap beside a template whose functions
# have those CodeUris (scripts/cloud.py template).
# PAYMENT_CLOUD_LAMBDA_BIN and PAYMENT_CLOUD_EVENTS_BIN name binaries already
# built instead (the tests pass the ones cargo built for them); given only
# the first, payment-events is taken from beside it (built there if missing).
cloud_build() {
  local profile=$1 binary=${PAYMENT_CLOUD_LAMBDA_BIN:-} events=${PAYMENT_CLOUD_EVENTS_BIN:-}
  if [ -n "$binary" ] && [ -z "$events" ]; then
    events=$(dirname "$binary")/payment-events
    if [ ! -x "$events" ]; then
      local beside=dev
      [ "$(basename "$(dirname "$binary")")" = release ] && beside=release
      echo "cloud: cargo build --profile $beside --bin payment-events (none beside $binary)"
      cargo build --quiet --locked --profile "$beside" --bin payment-events
      events=target/$([ "$beside" = dev ] && echo debug || echo release)/payment-events
    fi
  fi
  if [ -z "$binary" ] || [ -z "$events" ]; then
    local dir
    case "$profile" in
      release) dir=target/release ;;
      dev) dir=target/debug ;;
      *) echo "cloud: PAYMENT_CLOUD_PROFILE must be release or dev, not $profile" >&2; return 1 ;;
    esac
    echo "cloud: cargo build --profile $profile --bin payment-lambda --bin payment-events (x86_64), --bin payment-client"
    cargo build --quiet --locked --profile "$profile" --bin payment-lambda --bin payment-events
    cargo build --quiet --locked --bin payment-client
    binary=${binary:-$dir/payment-lambda}
    events=${events:-$dir/payment-events}
  fi
  rm -rf "$CLOUD_DIR/build"
  mkdir -p "$CLOUD_DIR/build/PaymentFunction" "$CLOUD_DIR/build/EventsFunction"
  cp "$binary" "$CLOUD_DIR/build/PaymentFunction/bootstrap"
  cp "$events" "$CLOUD_DIR/build/EventsFunction/bootstrap"
  .tools/venv/bin/python scripts/cloud.py template template.yaml "$CLOUD_DIR/build/template.yaml"
}

# The environment every AWS client here gets: the emulator, dummy
# credentials (it accepts any), no telemetry, no profile of the user's.
cloud_env() {
  env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL_DYNAMODB \
    AWS_ENDPOINT_URL="http://127.0.0.1:$CLOUD_PORT" AWS_REGION=$CLOUD_REGION AWS_DEFAULT_REGION=$CLOUD_REGION \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null SAM_CLI_TELEMETRY=0 "$@"
}

# cloud_start PORT: starts the emulator in the background (CLOUD_PID), on
# 127.0.0.1:PORT only, and waits until it answers.
cloud_start() {
  CLOUD_PORT=$1
  mkdir -p "$CLOUD_DIR"
  echo "cloud: starting ministack on 127.0.0.1:$CLOUD_PORT (log $CLOUD_DIR/ministack.log)"
  # A clean environment: the function processes it starts inherit it.
  # BIND_HOST: it binds 0.0.0.0 by default. IOT_MTLS_ENABLED=0: with
  # cryptography installed (its JWT authorizers need it for RS256) it would
  # also listen on 0.0.0.0:8883. AWS_ENDPOINT_URL: it hands its own to the
  # functions, which so reach its DynamoDB. Its state lives in memory only.
  # scripts/ministack-launch.py fixes how its CloudFormation stores an HTTP
  # API's CORS (see there).
  env -i PATH="$PATH" HOME="$HOME" LANG=C.UTF-8 TMPDIR="$PWD/$CLOUD_DIR" \
    BIND_HOST=127.0.0.1 GATEWAY_PORT="$CLOUD_PORT" IOT_MTLS_ENABLED=0 PERSIST_STATE=0 LOG_LEVEL=INFO \
    AWS_ENDPOINT_URL="http://127.0.0.1:$CLOUD_PORT" \
    .tools/ministack/bin/python scripts/ministack-launch.py >"$CLOUD_DIR/ministack.log" 2>&1 &
  CLOUD_PID=$!
  local i
  for i in $(seq 1 $((CLOUD_START_TIMEOUT_S * 5))); do
    if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$CLOUD_PORT/_ministack/health" 2>/dev/null; then
      cloud_check_loopback_only
      return 0
    fi
    kill -0 "$CLOUD_PID" 2>/dev/null || { echo "cloud: ministack exited; see $CLOUD_DIR/ministack.log" >&2; tail -n 20 "$CLOUD_DIR/ministack.log" >&2; return 1; }
    sleep 0.2
  done
  echo "cloud: ministack did not answer within $CLOUD_START_TIMEOUT_S s; see $CLOUD_DIR/ministack.log" >&2
  return 1
}

# Fails if the emulator or anything it started listens beyond loopback.
cloud_check_loopback_only() {
  local pids pid listeners
  command -v ss >/dev/null 2>&1 || { echo "cloud: 'ss' (iproute2) is needed to check the emulator's listeners" >&2; return 1; }
  pids="$CLOUD_PID $(cloud_descendants "$CLOUD_PID")"
  listeners=$(ss -Hltnp)
  for pid in $pids; do
    if echo "$listeners" | grep "pid=$pid," | awk '{print $4}' | grep -v -E '^(127\.0\.0\.1|\[::1\]):' ; then
      echo "cloud: ministack (pid $pid) listens beyond 127.0.0.1 (above); stopping" >&2
      return 1
    fi
  done
}

# cloud_descendants PID: the pids of every descendant of PID.
cloud_descendants() {
  local child
  for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$child"
    cloud_descendants "$child"
  done
}

# cloud_deploy ORIGINS: `sam deploy` of the built template against the
# emulator, then writes $CLOUD_DIR/state.json (scripts/cloud.py state).
cloud_deploy() {
  local origins=$1 started=$SECONDS
  echo "cloud: sam deploy --stack-name $CLOUD_STACK (AWS_ENDPOINT_URL=http://127.0.0.1:$CLOUD_PORT)"
  # The same parameters as samconfig.toml's dev stage but for the origins.
  # The S3 bucket for the code is SAM's managed one (--resolve-s3), created
  # in the emulator like in an account.
  # Nothing from samconfig.toml (its dev stage asks for a confirmation).
  echo 'version = 0.1' > "$CLOUD_DIR/samconfig.toml"
  if ! cloud_env timeout "$CLOUD_DEPLOY_TIMEOUT_S" .tools/venv/bin/sam deploy \
      --config-file "$PWD/$CLOUD_DIR/samconfig.toml" \
      --template-file "$CLOUD_DIR/build/template.yaml" \
      --stack-name "$CLOUD_STACK" --region "$CLOUD_REGION" \
      --resolve-s3 --s3-prefix "$CLOUD_STACK" \
      --capabilities CAPABILITY_IAM --no-confirm-changeset --no-fail-on-empty-changeset \
      --no-progressbar \
      --parameter-overrides Stage=local DeletionProtection=false "AllowedOrigins=$origins" LogRetentionDays=1 \
      >"$CLOUD_DIR/sam-deploy.log" 2>&1; then
    echo "cloud: sam deploy failed; see $CLOUD_DIR/sam-deploy.log and $CLOUD_DIR/ministack.log" >&2
    tail -n 30 "$CLOUD_DIR/sam-deploy.log" >&2
    return 1
  fi
  CLOUD_DEPLOY_SECONDS=$((SECONDS - started))
  cloud_env .tools/venv/bin/python scripts/cloud.py state "$CLOUD_STACK" "$CLOUD_PORT" "$CLOUD_DIR/state.json"
}

# cloud_state KEY: a value from $CLOUD_DIR/state.json.
cloud_state() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$CLOUD_DIR/state.json" "$1"
}

# Stops the emulator and every process it started (warm function processes
# outlive it otherwise), by pid: SIGTERM, then SIGKILL after 5 s.
cloud_stop() {
  [ -n "${CLOUD_PID:-}" ] || return 0
  local pids pid
  pids="$(cloud_descendants "$CLOUD_PID") $CLOUD_PID"
  echo "cloud: stopping ministack and its processes (pids $(echo $pids))"
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    local alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
  wait "$CLOUD_PID" 2>/dev/null || true
  CLOUD_PID=""
}
