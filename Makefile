# The targets read like the README.
.PHONY: help run test test-fast lambda cloud web bench bench-all bench-instructions check check-long setup lint fmt

## Run the service locally: DynamoDB Local (data in .data/), tables, payment-server on 127.0.0.1:50051.
run:
	scripts/run-local.sh

## Run every test (Rust, proto and template lint, browser app), installing what is missing.
test:
	scripts/test.sh

## While working: unit tests and the DynamoDB Local integration tests, without the cloud, buf, cargo lambda or a browser (args: ARGS="reshard::").
test-fast:
	scripts/test-fast.sh $(ARGS)

## Run the Lambda locally under cargo lambda watch (instead of `make run`, not beside it).
lambda:
	scripts/run-lambda.sh

## The stack as deployed (template.yaml) on a local AWS emulator (ministack), through sam deploy.
cloud:
	scripts/cloud.sh

## Serve the browser app on http://127.0.0.1:5173 (beside `make run` or `make lambda`).
web:
	scripts/web-setup.sh
	cd web && npm run dev -- --host 127.0.0.1

## Benchmark payments through the service against direct DynamoDB (args: BENCH_ARGS="--grpc-web").
## The runs docs/performance.md quotes:
##   make bench BENCH_ARGS="--callers 16"                    20 accounts, 16 callers, gRPC (also --grpc-web, --callers 32)
##   make bench BENCH_ARGS="--scenario merchant --callers 1 --audit"
##                                                           64 customers pay one merchant, one at a time (= 1 container)
##   make bench BENCH_ARGS="--scenario merchant --containers 8 --compare-one-server --audit"
##                                                           the same through 8 one-call-at-a-time containers, against 1 server (also 32)
## Each prints payments/s, p50/p99, ABORTED, DynamoDB requests and rounds per payment and
## the service's CPU ms per payment, per phase, and the ratios (--json for machine-readable).
bench:
	scripts/bench.sh $(BENCH_ARGS)

## All the runs above, one after another (each a minute or two; args: BENCH_ARGS="--json").
bench-all:
	scripts/bench-all.sh $(BENCH_ARGS)

## Instructions per call, service against direct ledger, under callgrind (about 15 minutes; args: INSTR_ARGS="--kinds payments -- --grpc-web").
bench-instructions:
	scripts/bench-instructions.sh $(INSTR_ARGS)

## The history checker, as CI runs it (about a minute; args: CHECK_ARGS="--seed N --json").
check:
	scripts/check.sh --seed 18 --instances 3 --clients 6 --operations 400 --faults all --kills 1 $(CHECK_ARGS)

## The long run: 16 instances, 40,000 operations, every fault, DynamoDB Local killed 4 times (about 12 minutes here, optimised build).
check-long:
	PAYMENT_CHECK_PROFILE=perf scripts/check.sh --instances 16 --clients 32 --operations 40000 --faults all --kills 4 $(CHECK_ARGS)

## Install the local tools into .tools/ (DynamoDB Local, buf, cfn-lint, SAM CLI, cargo-lambda, ministack; run with BIND_HOST=127.0.0.1).
setup:
	scripts/setup.sh
	scripts/setup-serverless.sh

## Formatting and lints, as CI runs them (the fuzz crate too, and the links of README and docs/).
lint:
	python3 scripts/check-doc-links.py
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
	cd fuzz && cargo fmt --all -- --check
	cd fuzz && cargo clippy --bins --locked -- -D warnings

## Format the crate and the fuzz crate.
fmt:
	cargo fmt --all
	cd fuzz && cargo fmt --all

## This list: each target with the first line of what it does.
help:
	@awk '/^## /{if(!doc)doc=substr($$0,4);next} /^[a-z-]+:/{if(doc){split($$0,t,":");printf "  make %-11s %s\n",t[1],doc}} {doc=""}' Makefile
