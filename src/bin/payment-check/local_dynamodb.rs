//! A DynamoDB client for DynamoDB Local: the history checker's, and the
//! tests' (they include this file: `#[path]` in tests/api/main.rs). Not the
//! library's: the service reaches DynamoDB only through
//! `payment::config::dynamodb_client`, configured the standard AWS way.

use aws_sdk_dynamodb::config::{BehaviorVersion, Builder, Credentials, Region};

/// A client for DynamoDB Local at `endpoint`, with fixed dummy credentials
/// and the same retries and timeouts as production.
pub fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(config(endpoint).build())
}

/// The configuration of [`client`], to add to: the production retries
/// and timeouts, and the per-call meter the ledger's client has
/// (`payment::telemetry::CallMeter`).
pub fn config(endpoint: &str) -> Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .retry_config(payment::config::dynamodb_retry_config())
        .timeout_config(payment::config::dynamodb_timeout_config())
        .interceptor(payment::telemetry::CallMeter)
}
