# The targets read like the README.
.PHONY: run test setup lint fmt

## Run the service locally: DynamoDB Local (data in .data/), tables, payment-server.
run:
	scripts/run-local.sh

## Run every test.
test:
	scripts/test.sh

## Install the local tools into .tools/ (DynamoDB Local, buf, cfn-lint, SAM CLI).
setup:
	scripts/setup.sh
	scripts/setup-serverless.sh

## Formatting and lints, as CI runs them.
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all
