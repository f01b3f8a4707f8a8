//! The AWS clients and the logs, configured the standard way: region,
//! credentials and endpoints from the AWS SDK's own environment (`AWS_*`),
//! the log filter from `RUST_LOG`. The service's own settings (`PAYMENT_*`)
//! are read in [`crate::settings`], and given to [`init_tracing`] here.

use crate::settings::LogFormat;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// Attempts the AWS SDK makes for one DynamoDB request (throttling, timeouts,
/// connection errors) before the ledger reports UNAVAILABLE.
pub const DYNAMODB_ATTEMPTS_MAX: u32 = 3;
/// Time to open a connection to DynamoDB.
pub const DYNAMODB_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one attempt of one DynamoDB request.
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one DynamoDB request with all its attempts.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(8);

/// A DynamoDB client configured the standard AWS way: region and
/// credentials from the usual chain, `AWS_ENDPOINT_URL_DYNAMODB` (or
/// `AWS_ENDPOINT_URL`) for a local endpoint, with bounded timeouts and
/// retries.
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config().await.build())
}

/// The configuration of [`dynamodb_client`], to add to (the benchmark adds
/// a [`RequestCounter`](crate::telemetry::RequestCounter)).
pub async fn dynamodb_config() -> aws_sdk_dynamodb::config::Builder {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(TlsRoots::from_env()))
        .retry_config(dynamodb_retry_config())
        .timeout_config(dynamodb_timeout_config());
    let from_env = FromEnv::read(|name| std::env::var(name).ok());
    if let Some(region) = from_env.region {
        loader = loader.region(aws_config::Region::new(region));
    }
    if from_env.credentials {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    metered_dynamodb_config(&loader.load().await)
}

/// What the SDK's default chains would take from the environment first.
/// The region chain asks `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the
/// profile and IMDS; the credentials chain asks `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`, then the profile, web identity (with an STS
/// client), ECS and IMDS. When the environment answers, as it always does
/// on Lambda, the chain's answer is the environment's, so it is given
/// directly and the rest of each chain is never built: that was a sixth of
/// a Lambda's init CPU (docs/performance.md).
#[derive(Debug, Default, PartialEq, Eq)]
struct FromEnv {
    region: Option<String>,
    credentials: bool,
}

impl FromEnv {
    fn read(get: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| get(name).filter(|value| !value.trim().is_empty());
        FromEnv {
            region: set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")),
            credentials: set("AWS_ACCESS_KEY_ID").is_some()
                && set("AWS_SECRET_ACCESS_KEY").is_some(),
        }
    }
}

/// The DynamoDB configuration of `shared`, with the per-call meter: here
/// so that `Ledger::new` need not rebuild the client.
pub(crate) fn metered_dynamodb_config(
    shared: &aws_config::SdkConfig,
) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(shared).interceptor(crate::telemetry::CallMeter)
}

/// The roots AWS's own endpoints chain to: Amazon Root CA 1 to 4 and
/// Starfield Services Root CA G2 (<https://www.amazontrust.com/repository/>).
const AMAZON_ROOTS_PEM: &[u8] = include_bytes!("amazon-roots.pem");

/// Which root certificates the DynamoDB client (and the credential
/// providers) trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Only Amazon's five roots, built in: nothing is read from disk, which
    /// takes about half of a cold start's init otherwise (docs/performance.md).
    Amazon,
    /// The system's store (`SSL_CERT_FILE`, `SSL_CERT_DIR` or the platform's
    /// bundle), read when the client is built.
    System,
}

impl TlsRoots {
    /// Amazon's roots when requests go to AWS's own endpoints, directly.
    /// The system's store when anything may put another certificate in the
    /// way: an https endpoint URL of one's own (`AWS_ENDPOINT_URL_DYNAMODB`,
    /// `AWS_ENDPOINT_URL`; an http one, such as DynamoDB Local's, needs no
    /// roots), a proxy (`HTTPS_PROXY`, `ALL_PROXY`), or roots named by
    /// `SSL_CERT_FILE` or `SSL_CERT_DIR`.
    pub fn from_env() -> Self {
        Self::choose(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    fn choose(get: impl Fn(&str) -> Option<String>) -> Self {
        const ENDPOINTS: [&str; 2] = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"];
        const SYSTEM_WHEN_SET: [&str; 6] = [
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        ];
        let https_endpoint = ENDPOINTS.iter().any(|name| {
            get(name).is_some_and(|url| !url.trim().to_ascii_lowercase().starts_with("http://"))
        });
        if https_endpoint || SYSTEM_WHEN_SET.iter().any(|name| get(name).is_some()) {
            TlsRoots::System
        } else {
            TlsRoots::Amazon
        }
    }
}

/// The SDK's own HTTPS client (hyper and rustls with aws-lc, as
/// `default-https-client` builds it), trusting `roots`.
pub fn https_client(roots: TlsRoots) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = match roots {
        TlsRoots::Amazon => TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_ROOTS_PEM),
        TlsRoots::System => TrustStore::default(),
    };
    let context = TlsContext::builder().with_trust_store(trust).build();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context.unwrap_or_default())
        .build_https()
}

/// The retries of every DynamoDB client: the SDK's standard ones, at most
/// [`DYNAMODB_ATTEMPTS_MAX`] attempts.
pub fn dynamodb_retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(DYNAMODB_ATTEMPTS_MAX)
}

/// The timeouts of every DynamoDB client: [`DYNAMODB_CONNECT_TIMEOUT`],
/// [`DYNAMODB_ATTEMPT_TIMEOUT`], [`DYNAMODB_OPERATION_TIMEOUT`].
pub fn dynamodb_timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(DYNAMODB_CONNECT_TIMEOUT)
        .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
        .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
        .build()
}

/// Sets up tracing: JSON lines or human-readable ones, as the settings say
/// ([`crate::settings::Settings::log_format`]); the level from `RUST_LOG`
/// (default `info`).
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if format == LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // Already initialised (several servers in one test process): keep it.
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::{AMAZON_ROOTS_PEM, FromEnv, TlsRoots};
    use std::collections::HashMap;

    fn from_env(vars: &[(&str, &str)]) -> FromEnv {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        FromEnv::read(|name| vars.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn the_environment_answers_only_what_the_chains_would_take_from_it() {
        // Lambda's environment: both answered, no chain is built.
        let lambda = from_env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]);
        assert_eq!(lambda.region.as_deref(), Some("eu-west-1"));
        assert!(lambda.credentials);
        assert_eq!(
            from_env(&[("AWS_DEFAULT_REGION", "us-east-1")])
                .region
                .as_deref(),
            Some("us-east-1")
        );
        // A key id without its secret, empty values, or nothing at all: the
        // chains decide (a profile, SSO, web identity, IMDS).
        assert_eq!(
            from_env(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")]),
            FromEnv::default()
        );
        assert_eq!(
            from_env(&[
                ("AWS_REGION", " "),
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", "secret")
            ]),
            FromEnv::default()
        );
        assert_eq!(from_env(&[]), FromEnv::default());
    }
    use base64::Engine as _;

    /// The DER certificates of a PEM text.
    fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
        let text = std::str::from_utf8(pem).expect("PEM is text");
        let mut certificates = Vec::new();
        let mut body: Option<String> = None;
        for line in text.lines() {
            match (line, body.as_mut()) {
                ("-----BEGIN CERTIFICATE-----", None) => body = Some(String::new()),
                ("-----END CERTIFICATE-----", Some(b64)) => {
                    certificates.push(
                        base64::engine::general_purpose::STANDARD
                            .decode(&*b64)
                            .expect("base64"),
                    );
                    body = None;
                }
                (line, Some(b64)) => b64.push_str(line.trim()),
                (_, None) => {}
            }
        }
        certificates
    }

    #[test]
    fn the_built_in_roots_are_amazons_five() {
        // SHA-256 fingerprints published at https://www.amazontrust.com/repository/.
        let expected = [
            "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
            "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
            "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
            "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
            "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root CA G2
        ];
        let fingerprints: Vec<String> = pem_certificates(AMAZON_ROOTS_PEM)
            .iter()
            .map(|der| {
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
                    .as_ref()
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(fingerprints, expected);
    }

    #[test]
    fn amazon_roots_unless_something_may_stand_between() {
        let only = |name: &'static str, value: &'static str| {
            move |n: &str| (n == name).then(|| value.to_owned())
        };
        assert_eq!(TlsRoots::choose(|_| None), TlsRoots::Amazon);
        for name in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"] {
            let local = "http://127.0.0.1:8000";
            assert_eq!(
                TlsRoots::choose(only(name, local)),
                TlsRoots::Amazon,
                "{name}"
            );
            let own = "https://dynamodb.internal.example";
            assert_eq!(
                TlsRoots::choose(only(name, own)),
                TlsRoots::System,
                "{name}"
            );
        }
        for name in [
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
        ] {
            assert_eq!(
                TlsRoots::choose(only(name, "x")),
                TlsRoots::System,
                "{name}"
            );
        }
        assert_eq!(TlsRoots::choose(only("HTTP_PROXY", "x")), TlsRoots::Amazon);
    }

    #[tokio::test]
    async fn a_client_with_amazons_roots_builds() {
        // The SDK parses the roots when the client is built (and panics on
        // one it cannot parse): building it is the check.
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(super::https_client(TlsRoots::Amazon))
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .load()
            .await;
        let _client = aws_sdk_dynamodb::Client::new(&shared);
    }
}
