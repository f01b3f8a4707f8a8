//! Who is calling. Every call has a verified caller, identified by the JWT
//! `sub` claim; the `scope` claim containing [`ADMIN_SCOPE`] makes it an admin.
//!
//! Two ways to know the caller, chosen at start-up:
//! - [`Authenticator::Jwt`]: the service verifies `authorization: Bearer
//!   <JWT>` itself ([`verify`]), with keys from a JWKS ([`jwks`]: RS256 and
//!   ES256, from an https URL or a file, cached and refreshed) for
//!   production, or with an HS256 secret for local development.
//! - [`Authenticator::ApiGateway`]: behind an API Gateway JWT authorizer, the
//!   Lambda takes the claims the authorizer verified from the request
//!   context (put into the request's extensions by `crate::lambda`), and
//!   never from anything the caller can set.

pub mod jwks;
pub mod verify;

pub use jwks::{JwksSource, JwksTiming};
pub use verify::JwtVerifier;

use crate::error::ServiceError;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::Status;

/// The scope that makes a caller an admin.
pub const ADMIN_SCOPE: &str = "payments/admin";
/// Longest `authorization` header accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;
/// Longest `sub` accepted, in bytes (it is stored as the account owner).
pub const SUB_BYTES_MAX: usize = 256;
/// Shortest dev secret accepted: HS256 with a short secret is guessable.
pub const DEV_SECRET_BYTES_MIN: usize = 32;
/// The setting that allows a dev secret beside a JWKS (value `true`).
pub const ALLOW_DEV_SECRET_WITH_JWKS_ENV: &str = "PAYMENT_ALLOW_DEV_SECRET_WITH_JWKS";

/// A verified caller (the domain's: the ledger acts for it).
pub use crate::domain::Caller;

impl Caller {
    fn from_claims(sub: &str, scope: Option<&str>) -> Result<Self, Status> {
        if sub.is_empty() || sub.len() > SUB_BYTES_MAX || sub.chars().any(char::is_control) {
            return Err(unauthenticated());
        }
        let admin = scope.is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
        Ok(Self {
            sub: sub.to_owned(),
            admin,
        })
    }
}

/// The claims an API Gateway JWT authorizer verified, as the Lambda adapter
/// found them in the request context.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerClaims(pub HashMap<String, String>);

/// How callers are identified; see the module documentation.
#[derive(Clone)]
pub enum Authenticator {
    Jwt(Arc<JwtVerifier>),
    ApiGateway,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authenticator::Jwt(_) => f.write_str("Authenticator::Jwt"),
            Authenticator::ApiGateway => f.write_str("Authenticator::ApiGateway"),
        }
    }
}

/// Errors in the authentication configuration, reported at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(
        "authentication is not configured: set PAYMENT_JWKS_URL or PAYMENT_JWKS_FILE (with PAYMENT_JWT_ISSUER and PAYMENT_JWT_AUDIENCE), or PAYMENT_DEV_JWT_SECRET for local development"
    )]
    NoKeys,
    #[error("PAYMENT_DEV_JWT_SECRET must be at least {DEV_SECRET_BYTES_MIN} bytes long")]
    ShortSecret,
    #[error("PAYMENT_AUTH_MODE must be \"jwt\" or \"apigateway\", not {0:?}")]
    Mode(String),
    #[error("set PAYMENT_JWKS_URL or PAYMENT_JWKS_FILE, not both")]
    TwoJwksSources,
    #[error(
        "PAYMENT_JWT_ISSUER is required with a JWKS (PAYMENT_JWKS_URL / PAYMENT_JWKS_FILE): without it, any token the identity provider signs would be accepted"
    )]
    JwksNeedsIssuer,
    #[error(
        "PAYMENT_JWT_AUDIENCE is required with a JWKS (PAYMENT_JWKS_URL / PAYMENT_JWKS_FILE): the API's audience, or for Cognito the app client ids (matched against `client_id`); without it, tokens meant for other applications would be accepted"
    )]
    JwksNeedsAudience,
    #[error(
        "PAYMENT_JWT_AUDIENCE must be a comma-separated list of 1 to {} non-empty audiences of at most {} bytes each",
        verify::AUDIENCES_MAX,
        verify::SETTING_BYTES_MAX
    )]
    Audience,
    #[error(
        "PAYMENT_JWT_ISSUER must be at most {} bytes",
        verify::SETTING_BYTES_MAX
    )]
    Issuer,
    #[error(
        "PAYMENT_DEV_JWT_SECRET and a JWKS are both set: a dev secret lets anyone who knows it mint tokens, so it is refused beside production keys unless {ALLOW_DEV_SECRET_WITH_JWKS_ENV}=true"
    )]
    DevSecretWithJwks,
    #[error("{ALLOW_DEV_SECRET_WITH_JWKS_ENV} must be \"true\" or \"false\", not {0:?}")]
    AllowFlag(String),
    #[error("PAYMENT_JWKS_URL {url:?} is not allowed: {reason}")]
    JwksUrl { url: String, reason: String },
    #[error("cannot load the JWKS from {source_name}: {reason}")]
    Jwks { source_name: String, reason: String },
}

/// UNAUTHENTICATED: a token that is malformed, expired, wrongly signed or
/// with claims that are not acceptable.
fn unauthenticated() -> Status {
    ServiceError::TokenInvalid.into()
}

/// UNAUTHENTICATED: no token (or no authorizer claims) at all.
fn missing_token() -> Status {
    ServiceError::TokenMissing.into()
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Authenticator {
    /// From the environment: PAYMENT_AUTH_MODE (`jwt`, the default, or
    /// `apigateway`), PAYMENT_JWKS_URL or PAYMENT_JWKS_FILE with
    /// PAYMENT_JWT_ISSUER and PAYMENT_JWT_AUDIENCE (comma-separated),
    /// PAYMENT_DEV_JWT_SECRET, PAYMENT_ALLOW_DEV_SECRET_WITH_JWKS.
    pub async fn from_env() -> Result<Self, AuthConfigError> {
        Self::from_settings(env_nonempty).await
    }

    /// Like [`Authenticator::from_env`], with settings looked up by `get`.
    pub async fn from_settings(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthConfigError> {
        match get("PAYMENT_AUTH_MODE").as_deref() {
            None | Some("jwt") => {}
            Some("apigateway") => return Ok(Authenticator::ApiGateway),
            Some(other) => return Err(AuthConfigError::Mode(other.to_owned())),
        }
        let issuer = get("PAYMENT_JWT_ISSUER");
        if issuer
            .as_ref()
            .is_some_and(|i| i.len() > verify::SETTING_BYTES_MAX)
        {
            return Err(AuthConfigError::Issuer);
        }
        let mut verifier = JwtVerifier::new(issuer, None);
        if let Some(list) = get("PAYMENT_JWT_AUDIENCE") {
            let audiences = list.split(',').map(str::trim).map(str::to_owned).collect();
            verifier = verifier.with_audiences(audiences)?;
        }
        match get(ALLOW_DEV_SECRET_WITH_JWKS_ENV).as_deref() {
            None | Some("false") => {}
            Some("true") => verifier = verifier.allow_dev_secret_with_jwks(),
            Some(other) => return Err(AuthConfigError::AllowFlag(other.to_owned())),
        }
        let source = match (get("PAYMENT_JWKS_URL"), get("PAYMENT_JWKS_FILE")) {
            (Some(_), Some(_)) => return Err(AuthConfigError::TwoJwksSources),
            (Some(url), None) => Some(JwksSource::url(&url)?),
            (None, Some(file)) => Some(JwksSource::File(file)),
            (None, None) => None,
        };
        if let Some(secret) = get("PAYMENT_DEV_JWT_SECRET") {
            verifier = verifier.with_dev_secret(secret.as_bytes())?;
        }
        if let Some(source) = source {
            verifier = verifier.with_jwks(source).await?;
        }
        if !verifier.has_keys() {
            return Err(AuthConfigError::NoKeys);
        }
        Ok(Authenticator::Jwt(Arc::new(verifier)))
    }

    /// The verified caller of a request, or UNAUTHENTICATED.
    pub async fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, Status> {
        match self {
            Authenticator::ApiGateway => {
                let claims = request
                    .extensions()
                    .get::<AuthorizerClaims>()
                    .ok_or_else(missing_token)?;
                let sub = claims.0.get("sub").ok_or_else(unauthenticated)?;
                Caller::from_claims(sub, claims.0.get("scope").map(String::as_str))
            }
            Authenticator::Jwt(verifier) => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .ok_or_else(missing_token)?;
                if header.len() > TOKEN_BYTES_MAX {
                    return Err(unauthenticated());
                }
                let token = header
                    .to_str()
                    .ok()
                    .and_then(|h| {
                        h.strip_prefix("Bearer ")
                            .or_else(|| h.strip_prefix("bearer "))
                    })
                    .ok_or_else(unauthenticated)?;
                verifier.verify(token.trim()).await
            }
        }
    }
}

#[derive(serde::Serialize)]
struct DevClaims<'a> {
    sub: &'a str,
    exp: u64,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Options for [`mint_dev_token`].
#[derive(Debug, Clone, Default)]
pub struct DevToken<'a> {
    pub sub: &'a str,
    pub admin: bool,
    pub ttl: Duration,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// Mints an HS256 token with the dev secret (payment-client token, tests).
pub fn mint_dev_token(secret: &[u8], options: &DevToken<'_>) -> Result<String, String> {
    if secret.len() < DEV_SECRET_BYTES_MIN {
        return Err(format!(
            "the dev secret must be at least {DEV_SECRET_BYTES_MIN} bytes long"
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = DevClaims {
        sub: options.sub,
        exp: now + options.ttl.as_secs(),
        iat: now,
        scope: options.admin.then_some(ADMIN_SCOPE),
        iss: options.issuer,
        aud: options.audience,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| e.to_string())
}

/// The `sub` of a token, read without verifying it (for display only).
pub fn unverified_sub(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("sub")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests;
