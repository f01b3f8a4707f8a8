#!/usr/bin/env bash
# The benchmark runs docs/performance.md quotes, one after another,
# each with a DynamoDB Local of its own (scripts/bench.sh). Short runs: each
# takes a minute or two on a 2-core machine. Extra arguments go to every run,
# e.g. scripts/bench-all.sh --json.
#
#   merchant: 64 customers pay one merchant (--merchant-shards 64) with 1
#     caller (what 1 container serves), then through 8 and 32 independent
#     containers (one call at a time each, one caller per container), each
#     against 1 server with the same callers and against direct DynamoDB in
#     the same run, audited at the end; and a merchant opened as an ordinary
#     account (--merchant-shards 1) through 32 containers, which the service
#     promotes to shards during the run (the report says when);
#   accounts: 20 accounts, 16 and 32 callers, over gRPC and gRPC-Web, each
#     against direct DynamoDB in the same run.
# The one-server runs alternate their service and direct phases in 4 legs
# (--legs), so that the machine's drift during a run falls on both alike;
# the container runs do not, so that each container meets its merchant
# cold once, as against the one server measured before them.
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
  printf '\n==> scripts/bench.sh %s\n' "$*"
  scripts/bench.sh "$@"
}

common=(--payments 1000 --warmup 300 --reads 200 --history-pages 50)
run --scenario merchant --callers 1 "${common[@]}" --legs 4 --audit "$@"
run --scenario merchant --containers 8 --compare-one-server "${common[@]}" --audit "$@"
run --scenario merchant --containers 32 --compare-one-server "${common[@]}" --audit "$@"
run --scenario merchant --merchant-shards 1 --containers 32 --compare-one-server "${common[@]}" --audit "$@"
for callers in 16 32; do
  run --callers "$callers" "${common[@]}" --legs 4 "$@"
  run --callers "$callers" --grpc-web "${common[@]}" --legs 4 "$@"
done
