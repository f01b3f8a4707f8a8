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
use crate::settings::{
    ALLOW_DEV_SECRET_WITH_JWKS_ENV, AUTH_MODE_ENV, AuthMode, AuthSettings, DEV_JWT_SECRET_ENV,
    JWKS_FILE_ENV, JWKS_URL_ENV, JWT_AUDIENCE_ENV, JWT_ISSUER_ENV,
};
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
        "authentication is not configured: set {JWKS_URL_ENV} or {JWKS_FILE_ENV} (with {JWT_ISSUER_ENV} and {JWT_AUDIENCE_ENV}), or {DEV_JWT_SECRET_ENV} for local development"
    )]
    NoKeys,
    #[error("{DEV_JWT_SECRET_ENV} must be at least {DEV_SECRET_BYTES_MIN} bytes long")]
    ShortSecret,
    #[error("{AUTH_MODE_ENV} must be \"jwt\" or \"apigateway\", not {0:?}")]
    Mode(String),
    #[error("set {JWKS_URL_ENV} or {JWKS_FILE_ENV}, not both")]
    TwoJwksSources,
    #[error(
        "{JWT_ISSUER_ENV} is required with a JWKS ({JWKS_URL_ENV} / {JWKS_FILE_ENV}): without it, any token the identity provider signs would be accepted"
    )]
    JwksNeedsIssuer,
    #[error(
        "{JWT_AUDIENCE_ENV} is required with a JWKS ({JWKS_URL_ENV} / {JWKS_FILE_ENV}): the API's audience, or for Cognito the app client ids (matched against `client_id`); without it, tokens meant for other applications would be accepted"
    )]
    JwksNeedsAudience,
    #[error(
        "{JWT_AUDIENCE_ENV} must be a comma-separated list of 1 to {} non-empty audiences of at most {} bytes each",
        verify::AUDIENCES_MAX,
        verify::SETTING_BYTES_MAX
    )]
    Audience,
    #[error("{JWT_ISSUER_ENV} must be at most {} bytes", verify::SETTING_BYTES_MAX)]
    Issuer,
    #[error(
        "{DEV_JWT_SECRET_ENV} and a JWKS are both set: a dev secret lets anyone who knows it mint tokens, so it is refused beside production keys unless {ALLOW_DEV_SECRET_WITH_JWKS_ENV}=true"
    )]
    DevSecretWithJwks,
    #[error("{ALLOW_DEV_SECRET_WITH_JWKS_ENV} must be \"true\" or \"false\", not {0:?}")]
    AllowFlag(String),
    #[error("{JWKS_URL_ENV} {url:?} is not allowed: {reason}")]
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

impl Authenticator {
    /// From the authentication settings (see [`AuthSettings`]): the API
    /// Gateway's claims, or a verifier with the dev secret and the JWKS
    /// (loaded now). Refused: a JWKS without an issuer and an audience, or
    /// beside the dev secret unless that is allowed, and no key at all.
    pub async fn from_settings(settings: &AuthSettings) -> Result<Self, AuthConfigError> {
        if settings.mode == AuthMode::ApiGateway {
            return Ok(Authenticator::ApiGateway);
        }
        let mut verifier = JwtVerifier::new(settings.issuer.clone(), None);
        if !settings.audiences.is_empty() {
            verifier = verifier.with_audiences(settings.audiences.clone())?;
        }
        if settings.allow_dev_secret_with_jwks {
            verifier = verifier.allow_dev_secret_with_jwks();
        }
        if let Some(secret) = &settings.dev_secret {
            verifier = verifier.with_dev_secret(secret.as_bytes())?;
        }
        if let Some(source) = &settings.jwks {
            verifier = verifier.with_jwks(source.clone()).await?;
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
