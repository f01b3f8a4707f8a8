//! Configuration from the environment, read once at start-up.

use crate::ledger::{Promotion, Tables};
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// Environment variable naming the accounts table.
pub const ACCOUNTS_TABLE_ENV: &str = "PAYMENT_ACCOUNTS_TABLE";
/// Environment variable naming the ledger (history and payments) table.
pub const LEDGER_TABLE_ENV: &str = "PAYMENT_LEDGER_TABLE";
pub const ACCOUNTS_TABLE_DEFAULT: &str = "payment-accounts";
pub const LEDGER_TABLE_DEFAULT: &str = "payment-ledger";

/// Attempts the AWS SDK makes for one DynamoDB request (throttling, timeouts,
/// connection errors) before the ledger reports UNAVAILABLE.
pub const DYNAMODB_ATTEMPTS_MAX: u32 = 3;
/// Time to open a connection to DynamoDB.
pub const DYNAMODB_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one attempt of one DynamoDB request.
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one DynamoDB request with all its attempts.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Environment variable setting the shard count a hot ordinary account is
/// promoted to (2 to 64), or `off`; default 64 (see docs/hot-accounts.md).
pub const PROMOTE_SHARDS_ENV: &str = "PAYMENT_PROMOTE_SHARDS";

/// The promotion setting from the environment: on with the default
/// [`Promotion`] and the count set, or None for `off`.
pub fn promotion_from_env() -> Result<Option<Promotion>, String> {
    Ok(
        parse_promotion(&env_or(PROMOTE_SHARDS_ENV, ""))?.map(|shards| Promotion {
            shards,
            ..Promotion::default()
        }),
    )
}

fn parse_promotion(value: &str) -> Result<Option<u32>, String> {
    let max = crate::domain::BALANCE_SHARDS_MAX;
    match value.trim() {
        "" => Ok(Some(Promotion::default().shards)),
        "off" | "0" => Ok(None),
        text => match text.parse::<u32>() {
            Ok(n) if (2..=max).contains(&n) => Ok(Some(n)),
            _ => Err(format!(
                "{PROMOTE_SHARDS_ENV}: {text:?} is not a shard count; set 2 to {max}, or off"
            )),
        },
    }
}

/// The table names from the environment, with local defaults.
pub fn tables_from_env() -> Tables {
    Tables {
        accounts: env_or(ACCOUNTS_TABLE_ENV, ACCOUNTS_TABLE_DEFAULT),
        ledger: env_or(LEDGER_TABLE_ENV, LEDGER_TABLE_DEFAULT),
    }
}

/// A DynamoDB client configured the standard AWS way: region and
/// credentials from the usual chain, `AWS_ENDPOINT_URL_DYNAMODB` (or
/// `AWS_ENDPOINT_URL`) for a local endpoint, with bounded timeouts and
/// retries.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config().await.build())
}

/// The configuration of [`dynamodb_client`], to add to (the benchmark adds
/// a [`RequestCounter`]).
pub async fn dynamodb_config() -> aws_sdk_dynamodb::config::Builder {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await;
    aws_sdk_dynamodb::config::Builder::from(&shared)
}

/// Counts the HTTP requests a DynamoDB client sends (every attempt,
/// retries included), by operation name.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    counts: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl RequestCounter {
    /// Requests sent so far, per operation.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Requests sent so far, all operations.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl aws_sdk_dynamodb::config::Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_owned();
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

/// A client for DynamoDB Local at `endpoint` (tests and benchmarks), with
/// fixed dummy credentials and the same retries and timeouts as production.
pub fn local_dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(local_dynamodb_config(endpoint).build())
}

/// The configuration of [`local_dynamodb_client`], to add to.
pub fn local_dynamodb_config(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::{Credentials, Region};
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .retry_config(retry_config())
        .timeout_config(timeout_config())
}

fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(DYNAMODB_ATTEMPTS_MAX)
}

fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(DYNAMODB_CONNECT_TIMEOUT)
        .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
        .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
        .build()
}

/// Sets up tracing: JSON lines when `PAYMENT_LOG_FORMAT=json` (as in Lambda),
/// human-readable otherwise; the level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("PAYMENT_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (several servers in one test process): keep it.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::parse_promotion;

    #[test]
    fn promotion_is_on_by_default_and_can_be_set_or_turned_off() {
        assert_eq!(parse_promotion(""), Ok(Some(64)));
        assert_eq!(parse_promotion("16"), Ok(Some(16)));
        assert_eq!(parse_promotion("off"), Ok(None));
        assert_eq!(parse_promotion("0"), Ok(None));
        for bad in ["1", "65", "many", "-2"] {
            let err = parse_promotion(bad).expect_err(bad);
            assert!(err.starts_with("PAYMENT_PROMOTE_SHARDS"), "{err}");
        }
    }
}
