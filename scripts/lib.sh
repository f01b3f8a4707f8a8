# Shell helpers shared by the run and bench scripts (source it).

# free_port: prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# port_open PORT: whether something listens on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_port PORT PID WHAT: waits (at most 60 s) until PORT listens, failing
# if process PID dies first.
wait_port() {
  for _ in $(seq 1 300); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || { echo "$3 exited before listening on port $1" >&2; return 1; }
    sleep 0.2
  done
  echo "$3 did not listen on port $1 within 60 s" >&2
  return 1
}

# start_dynamodb PORT [DATA_DIR]: starts DynamoDB Local in the background
# (log in .data/dynamodb-local.log), sets DDB_PID, waits until it listens and
# exports the AWS variables that point the service at it.
start_dynamodb() {
  mkdir -p .data
  scripts/dynamodb-local.sh "$@" >.data/dynamodb-local.log 2>&1 &
  DDB_PID=$!
  wait_port "$1" "$DDB_PID" "DynamoDB Local (see .data/dynamodb-local.log)"
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$1"
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
}

# dev_secret: prints the local development JWT secret, creating it once in
# .data/dev-jwt-secret.
dev_secret() {
  mkdir -p .data
  if [ ! -s .data/dev-jwt-secret ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > .data/dev-jwt-secret)
  fi
  cat .data/dev-jwt-secret
}
