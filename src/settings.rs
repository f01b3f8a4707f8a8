//! The service's settings: every `PAYMENT_*` environment variable is read
//! here, and only here, into one [`Settings`], once, at start-up. Each
//! value is checked as it is read (an error names the variable), and each
//! part goes to the component it is for: the ledger's to
//! [`Ledger::from_settings`](crate::ledger::Ledger::from_settings), the
//! authentication's to
//! [`Authenticator::from_settings`](crate::auth::Authenticator::from_settings),
//! the CORS origins to [`crate::stack`], the log format to
//! [`crate::config::init_tracing`], the metrics' to
//! [`Telemetry::lambda`](crate::telemetry::Telemetry::lambda), the event bus
//! to [`Publisher::connect`](crate::events::Publisher::connect). No
//! component reads the environment for a `PAYMENT_*` setting itself.
//!
//! [`Settings::from_lookup`] takes the variables from any function (a map
//! in tests); [`Settings::from_env`] from the process's environment. Either
//! way an empty value is the same as an unset one.
//!
//! Not here: the settings of payment-server's and the clients' command lines
//! (`PAYMENT_LISTEN`, `PAYMENT_CONCURRENCY`, `PAYMENT_METRICS_LISTEN`,
//! `PAYMENT_ENDPOINT`, `PAYMENT_TOKEN`, ...), which clap reads with the
//! flags they stand for; and the standard variables the AWS SDK, the
//! OpenTelemetry SDK and Lambda define (`AWS_*`, `OTEL_*`, `RUST_LOG`),
//! read where they are used. docs/operating.md has the table of them all;
//! a test below keeps it listing every variable read here.

use crate::auth::jwks::JwksSource;
use crate::auth::{AuthConfigError, DEV_SECRET_BYTES_MIN, verify};
use crate::ledger::{Promotion, TEST_CLOCK_SKEW_MAX_MS, Tables};
use crate::stack::CorsConfigError;

/// The accounts table.
pub const ACCOUNTS_TABLE_ENV: &str = "PAYMENT_ACCOUNTS_TABLE";
/// The ledger (history and payments) table.
pub const LEDGER_TABLE_ENV: &str = "PAYMENT_LEDGER_TABLE";
/// The shard count a hot ordinary account is promoted to, or `off`.
pub const PROMOTE_SHARDS_ENV: &str = "PAYMENT_PROMOTE_SHARDS";
/// TEST ONLY: the skew of the ledger's clock, in milliseconds.
pub const TEST_CLOCK_SKEW_ENV: &str = "PAYMENT_TEST_CLOCK_SKEW_MS";
/// `jwt` or `apigateway`: how callers are known.
pub const AUTH_MODE_ENV: &str = "PAYMENT_AUTH_MODE";
/// The https URL of a JWKS.
pub const JWKS_URL_ENV: &str = "PAYMENT_JWKS_URL";
/// The file of a JWKS.
pub const JWKS_FILE_ENV: &str = "PAYMENT_JWKS_FILE";
/// The `iss` tokens must carry.
pub const JWT_ISSUER_ENV: &str = "PAYMENT_JWT_ISSUER";
/// The accepted audiences, comma-separated.
pub const JWT_AUDIENCE_ENV: &str = "PAYMENT_JWT_AUDIENCE";
/// The HS256 secret of development tokens.
pub const DEV_JWT_SECRET_ENV: &str = "PAYMENT_DEV_JWT_SECRET";
/// `true` allows the dev secret beside a JWKS.
pub const ALLOW_DEV_SECRET_WITH_JWKS_ENV: &str = "PAYMENT_ALLOW_DEV_SECRET_WITH_JWKS";
/// The browser origins allowed to call (CORS).
pub const CORS_ORIGINS_ENV: &str = "PAYMENT_CORS_ORIGINS";
/// `json` for JSON log lines.
pub const LOG_FORMAT_ENV: &str = "PAYMENT_LOG_FORMAT";
/// `off` turns the Lambda's EMF records off.
pub const METRICS_ENV: &str = "PAYMENT_METRICS";
/// The CloudWatch namespace of the EMF metrics.
pub const METRICS_NAMESPACE_ENV: &str = "PAYMENT_METRICS_NAMESPACE";
/// The value of the EMF metrics' `Service` dimension.
pub const METRICS_SERVICE_ENV: &str = "PAYMENT_METRICS_SERVICE";
/// The EventBridge bus of payment-events.
pub const EVENT_BUS_ENV: &str = "PAYMENT_EVENT_BUS";

/// Every variable [`Settings`] reads.
pub const VARIABLES: [&str; 17] = [
    ACCOUNTS_TABLE_ENV,
    LEDGER_TABLE_ENV,
    PROMOTE_SHARDS_ENV,
    TEST_CLOCK_SKEW_ENV,
    AUTH_MODE_ENV,
    JWKS_URL_ENV,
    JWKS_FILE_ENV,
    JWT_ISSUER_ENV,
    JWT_AUDIENCE_ENV,
    DEV_JWT_SECRET_ENV,
    ALLOW_DEV_SECRET_WITH_JWKS_ENV,
    CORS_ORIGINS_ENV,
    LOG_FORMAT_ENV,
    METRICS_ENV,
    METRICS_NAMESPACE_ENV,
    METRICS_SERVICE_ENV,
    EVENT_BUS_ENV,
];

/// Not the service's: `1` makes the fuzz targets print each input's request
/// and reply (fuzz/src/lib.rs reads it; named here with the others).
pub const FUZZ_TRACE_ENV: &str = "PAYMENT_FUZZ_TRACE";

pub const ACCOUNTS_TABLE_DEFAULT: &str = "payment-accounts";
pub const LEDGER_TABLE_DEFAULT: &str = "payment-ledger";
pub const METRICS_NAMESPACE_DEFAULT: &str = "PaymentService";
pub const METRICS_SERVICE_DEFAULT: &str = "payment";

/// A setting that cannot be used, named.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error(transparent)]
    Cors(#[from] CorsConfigError),
    /// `name`: what is wrong with its value (or its absence).
    #[error("{name}: {problem}")]
    Invalid { name: &'static str, problem: String },
}

/// Every setting of the service; see the module documentation. The default
/// is every setting's default (the settings of an empty environment).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The ledger's tables, promotion and clock.
    pub ledger: LedgerSettings,
    /// How callers are known (payment-server and payment-lambda).
    pub auth: AuthSettings,
    /// `PAYMENT_CORS_ORIGINS`: the browser origins allowed to call, as
    /// [`crate::stack::cors`] takes them: a comma-separated list of up to
    /// [`crate::stack::CORS_ORIGINS_MAX`] origins (scheme, host, port; no
    /// path), or `*` for any. Default: empty, CORS off (no CORS headers;
    /// browsers on other origins cannot call). payment-server's
    /// `--cors-origins` replaces it.
    pub cors_origins: String,
    /// `PAYMENT_LOG_FORMAT`: `json` for JSON log lines (as in Lambda);
    /// anything else, or unset (the default), human-readable text.
    pub log_format: LogFormat,
    /// The Lambda's EMF metrics.
    pub metrics: MetricsSettings,
    /// `PAYMENT_EVENT_BUS`: the EventBridge bus payment-events puts events
    /// on, by name or ARN; no default, and payment-events requires it
    /// ([`Settings::event_bus`]). The other binaries do not read it.
    pub event_bus: Option<String>,
}

/// The ledger's settings.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    /// `PAYMENT_ACCOUNTS_TABLE` (default [`ACCOUNTS_TABLE_DEFAULT`]) and
    /// `PAYMENT_LEDGER_TABLE` (default [`LEDGER_TABLE_DEFAULT`]): the names
    /// of the two tables.
    pub tables: Tables,
    /// `PAYMENT_PROMOTE_SHARDS`: the shard count (2 to
    /// [`crate::domain::BALANCE_SHARDS_MAX`]) a hot ordinary account is
    /// promoted to, with [`Promotion::default`]'s trigger; `off` (or `0`):
    /// None, promotion off. Default: [`Promotion::default`], 64 shards
    /// (docs/hot-accounts.md).
    pub promotion: Option<Promotion>,
    /// `PAYMENT_TEST_CLOCK_SKEW_MS`, TEST ONLY: shifts this process's ledger
    /// clock by this many milliseconds (negative: behind), from
    /// -[`TEST_CLOCK_SKEW_MAX_MS`] to [`TEST_CLOCK_SKEW_MAX_MS`], so that
    /// the history checker can run instances whose clocks disagree. Default
    /// 0. Never set it in production.
    pub test_clock_skew_ms: i64,
}

/// How callers are known; [`crate::auth::Authenticator::from_settings`]
/// builds the authenticator from it (and loads the JWKS). The default, `jwt`
/// with no key, is refused there: some key is needed.
#[derive(Clone, Default)]
pub struct AuthSettings {
    /// `PAYMENT_AUTH_MODE`: `jwt` (the default) or `apigateway` (the Lambda
    /// behind an API Gateway JWT authorizer; payment-server refuses it).
    pub mode: AuthMode,
    /// `PAYMENT_JWKS_URL` or `PAYMENT_JWKS_FILE` (not both): the key set of
    /// RS256/ES256 tokens, from an https URL (plain http only to a loopback
    /// host) or a file. Default: none.
    pub jwks: Option<JwksSource>,
    /// `PAYMENT_JWT_ISSUER`: the `iss` tokens must carry (at most
    /// [`verify::SETTING_BYTES_MAX`] bytes); required with a JWKS. Default:
    /// none, `iss` unchecked.
    pub issuer: Option<String>,
    /// `PAYMENT_JWT_AUDIENCE`: the accepted audiences, comma-separated (1 to
    /// [`verify::AUDIENCES_MAX`], each non-empty and at most
    /// [`verify::SETTING_BYTES_MAX`] bytes), matched against `aud` or
    /// Cognito's `client_id`; required with a JWKS. Default: empty, the
    /// audience unchecked.
    pub audiences: Vec<String>,
    /// `PAYMENT_DEV_JWT_SECRET`: the HS256 secret of development tokens, at
    /// least [`DEV_SECRET_BYTES_MIN`] bytes. Default: none. Never in
    /// production.
    pub dev_secret: Option<String>,
    /// `PAYMENT_ALLOW_DEV_SECRET_WITH_JWKS`: `true` allows the dev secret
    /// beside a JWKS, `false` (the default) refuses the two together.
    pub allow_dev_secret_with_jwks: bool,
}

/// `PAYMENT_AUTH_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// The service verifies `authorization: Bearer <JWT>` itself.
    #[default]
    Jwt,
    /// The claims an API Gateway JWT authorizer verified are trusted.
    ApiGateway,
}

/// `PAYMENT_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The Lambda's EMF metrics (payment-lambda only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `PAYMENT_METRICS`: `off` (any case) turns the EMF record per call
    /// off; any other value, or unset (the default), leaves it on. It is
    /// written only under Lambda (`AWS_LAMBDA_FUNCTION_NAME` set) anyway.
    pub emf: bool,
    /// `PAYMENT_METRICS_NAMESPACE`: the CloudWatch namespace (trimmed).
    /// Default [`METRICS_NAMESPACE_DEFAULT`].
    pub namespace: String,
    /// `PAYMENT_METRICS_SERVICE`: the value of the `Service` dimension
    /// (trimmed). Default [`METRICS_SERVICE_DEFAULT`].
    pub service: String,
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field("mode", &self.mode)
            .field("jwks", &self.jwks)
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            // Never the secret itself.
            .field("dev_secret", &self.dev_secret.as_ref().map(|_| "<set>"))
            .field(
                "allow_dev_secret_with_jwks",
                &self.allow_dev_secret_with_jwks,
            )
            .finish()
    }
}

/// The variables as a lookup that treats an empty value as unset.
struct Lookup<F>(F);

impl<F: Fn(&str) -> Option<String>> Lookup<F> {
    fn get(&self, name: &'static str) -> Option<String> {
        (self.0)(name).filter(|value| !value.is_empty())
    }
}

fn invalid(name: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        name,
        problem: problem.into(),
    }
}

impl Settings {
    /// From the process's environment (variables that are not Unicode count
    /// as unset).
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// From the variables `get` gives (a map in tests): each of
    /// [`VARIABLES`] is asked for once.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = Lookup(get);
        Ok(Self {
            ledger: LedgerSettings::read(&get)?,
            auth: AuthSettings::read(&get)?,
            cors_origins: read_cors_origins(&get)?,
            log_format: match get.get(LOG_FORMAT_ENV).as_deref() {
                Some("json") => LogFormat::Json,
                _ => LogFormat::Text,
            },
            metrics: MetricsSettings::read(&get),
            event_bus: get.get(EVENT_BUS_ENV).filter(|bus| !bus.trim().is_empty()),
        })
    }

    /// The event bus, which payment-events requires.
    pub fn event_bus(&self) -> Result<&str, SettingsError> {
        self.event_bus
            .as_deref()
            .ok_or_else(|| invalid(EVENT_BUS_ENV, "set it to the event bus's name or ARN"))
    }
}

impl LedgerSettings {
    fn read<F: Fn(&str) -> Option<String>>(get: &Lookup<F>) -> Result<Self, SettingsError> {
        let table = |name, default: &str| get.get(name).unwrap_or_else(|| default.to_owned());
        Ok(Self {
            tables: Tables {
                accounts: table(ACCOUNTS_TABLE_ENV, ACCOUNTS_TABLE_DEFAULT),
                ledger: table(LEDGER_TABLE_ENV, LEDGER_TABLE_DEFAULT),
            },
            promotion: parse_promotion(get.get(PROMOTE_SHARDS_ENV).as_deref().unwrap_or(""))?.map(
                |shards| Promotion {
                    shards,
                    ..Promotion::default()
                },
            ),
            test_clock_skew_ms: match get.get(TEST_CLOCK_SKEW_ENV) {
                None => 0,
                Some(text) => parse_clock_skew(&text)?,
            },
        })
    }
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            tables: Tables {
                accounts: ACCOUNTS_TABLE_DEFAULT.to_owned(),
                ledger: LEDGER_TABLE_DEFAULT.to_owned(),
            },
            promotion: Some(Promotion::default()),
            test_clock_skew_ms: 0,
        }
    }
}

fn parse_promotion(value: &str) -> Result<Option<u32>, SettingsError> {
    let max = crate::domain::BALANCE_SHARDS_MAX;
    match value.trim() {
        "" => Ok(Some(Promotion::default().shards)),
        "off" | "0" => Ok(None),
        text => match text.parse::<u32>() {
            Ok(n) if (2..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(
                PROMOTE_SHARDS_ENV,
                format!("{text:?} is not a shard count; set 2 to {max}, or off"),
            )),
        },
    }
}

fn parse_clock_skew(text: &str) -> Result<i64, SettingsError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|ms| ms.abs() <= TEST_CLOCK_SKEW_MAX_MS)
        .ok_or_else(|| {
            invalid(
                TEST_CLOCK_SKEW_ENV,
                format!("{text:?} is not a whole number of milliseconds from -{TEST_CLOCK_SKEW_MAX_MS} to {TEST_CLOCK_SKEW_MAX_MS} (a test-only setting)"),
            )
        })
}

impl AuthSettings {
    /// The authentication settings alone, from `get` (as in
    /// [`Settings::from_lookup`]).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, AuthConfigError> {
        Self::read(&Lookup(get))
    }

    /// Each value checked on its own, in this order; what depends on
    /// several (a JWKS needs an issuer and an audience, and excludes the dev
    /// secret unless allowed; some key is needed) is checked when the
    /// authenticator is built.
    fn read<F: Fn(&str) -> Option<String>>(get: &Lookup<F>) -> Result<Self, AuthConfigError> {
        let mode = match get.get(AUTH_MODE_ENV).as_deref() {
            None | Some("jwt") => AuthMode::Jwt,
            Some("apigateway") => AuthMode::ApiGateway,
            Some(other) => return Err(AuthConfigError::Mode(other.to_owned())),
        };
        let issuer = get.get(JWT_ISSUER_ENV);
        if issuer
            .as_ref()
            .is_some_and(|i| i.len() > verify::SETTING_BYTES_MAX)
        {
            return Err(AuthConfigError::Issuer);
        }
        let audiences = match get.get(JWT_AUDIENCE_ENV) {
            None => Vec::new(),
            Some(list) => {
                let audiences: Vec<String> =
                    list.split(',').map(str::trim).map(str::to_owned).collect();
                verify::check_audiences(&audiences)?;
                audiences
            }
        };
        let allow_dev_secret_with_jwks = match get.get(ALLOW_DEV_SECRET_WITH_JWKS_ENV).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(AuthConfigError::AllowFlag(other.to_owned())),
        };
        let jwks = match (get.get(JWKS_URL_ENV), get.get(JWKS_FILE_ENV)) {
            (Some(_), Some(_)) => return Err(AuthConfigError::TwoJwksSources),
            (Some(url), None) => Some(JwksSource::url(&url)?),
            (None, Some(file)) => Some(JwksSource::File(file)),
            (None, None) => None,
        };
        let dev_secret = get.get(DEV_JWT_SECRET_ENV);
        if dev_secret
            .as_ref()
            .is_some_and(|s| s.len() < DEV_SECRET_BYTES_MIN)
        {
            return Err(AuthConfigError::ShortSecret);
        }
        Ok(Self {
            mode,
            jwks,
            issuer,
            audiences,
            dev_secret,
            allow_dev_secret_with_jwks,
        })
    }
}

fn read_cors_origins<F: Fn(&str) -> Option<String>>(
    get: &Lookup<F>,
) -> Result<String, SettingsError> {
    let origins = get.get(CORS_ORIGINS_ENV).unwrap_or_default();
    crate::stack::cors(&origins)?;
    Ok(origins)
}

impl MetricsSettings {
    fn read<F: Fn(&str) -> Option<String>>(get: &Lookup<F>) -> Self {
        let trimmed = |name, default: &str| {
            get.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            emf: !get
                .get(METRICS_ENV)
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("off")),
            namespace: trimmed(METRICS_NAMESPACE_ENV, METRICS_NAMESPACE_DEFAULT),
            service: trimmed(METRICS_SERVICE_ENV, METRICS_SERVICE_DEFAULT),
        }
    }
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            emf: true,
            namespace: METRICS_NAMESPACE_DEFAULT.to_owned(),
            service: METRICS_SERVICE_DEFAULT.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests;
