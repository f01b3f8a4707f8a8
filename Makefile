# The targets read like the README.
.PHONY: run test lambda cloud web bench setup lint fmt

## Run the service locally: DynamoDB Local (data in .data/), tables, payment-server on 127.0.0.1:50051.
run:
	scripts/run-local.sh

## Run every test (Rust, proto and template lint, browser app), installing what is missing.
test:
	scripts/test.sh

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
bench:
	scripts/bench.sh $(BENCH_ARGS)

## Install the local tools into .tools/ (DynamoDB Local, buf, cfn-lint, SAM CLI, cargo-lambda, ministack).
setup:
	scripts/setup.sh
	scripts/setup-serverless.sh

## Formatting and lints, as CI runs them.
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all
