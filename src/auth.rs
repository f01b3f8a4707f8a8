//! Who is calling. Every call has a verified caller, identified by the JWT
//! `sub` claim; the `scope` claim containing [`ADMIN_SCOPE`] makes it an admin.
//!
//! Two ways to know the caller, chosen at start-up:
//! - [`Authenticator::Jwt`]: the service verifies `authorization: Bearer
//!   <JWT>` itself, with keys from a JWKS (RS256/ES256; file or URL, fetched
//!   once and cached) and/or, for local development, an HS256 secret.
//! - [`Authenticator::ApiGateway`]: behind an API Gateway JWT authorizer, the
//!   Lambda takes the claims the authorizer verified from the request
//!   context (put into the request's extensions by `crate::lambda`), and
//!   never from anything the caller can set.

use base64::Engine as _;
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::RwLock;
use tonic::Status;

/// The scope that makes a caller an admin.
pub const ADMIN_SCOPE: &str = "payments/admin";
/// Longest `authorization` header accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;
/// Longest `sub` accepted, in bytes (it is stored as the account owner).
pub const SUB_BYTES_MAX: usize = 256;
/// Shortest dev secret accepted: HS256 with a short secret is guessable.
pub const DEV_SECRET_BYTES_MIN: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// A JWKS is fetched again for an unknown key id at most this often.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Time to fetch a JWKS, and its largest size.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const JWKS_BYTES_MAX: usize = 1024 * 1024;

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub admin: bool,
}

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
        "authentication is not configured: set PAYMENT_DEV_JWT_SECRET (local development), or PAYMENT_JWKS_URL / PAYMENT_JWKS_FILE"
    )]
    NoKeys,
    #[error("PAYMENT_DEV_JWT_SECRET must be at least {DEV_SECRET_BYTES_MIN} bytes long")]
    ShortSecret,
    #[error("PAYMENT_AUTH_MODE must be \"jwt\" or \"apigateway\", not {0:?}")]
    Mode(String),
    #[error("cannot load the JWKS from {source_name}: {reason}")]
    Jwks { source_name: String, reason: String },
}

fn unauthenticated() -> Status {
    Status::unauthenticated(
        "Bearer error=\"invalid_token\": the bearer token is malformed, expired or not signed by a trusted key",
    )
}

fn missing_token() -> Status {
    Status::unauthenticated(
        "Bearer realm=\"payments\": this call needs an 'authorization: Bearer <JWT>' header",
    )
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Authenticator {
    /// From the environment: PAYMENT_AUTH_MODE (`jwt`, the default, or
    /// `apigateway`), PAYMENT_DEV_JWT_SECRET, PAYMENT_JWKS_URL,
    /// PAYMENT_JWKS_FILE, PAYMENT_JWT_ISSUER, PAYMENT_JWT_AUDIENCE.
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
        let mut verifier = JwtVerifier::new(get("PAYMENT_JWT_ISSUER"), get("PAYMENT_JWT_AUDIENCE"));
        if let Some(secret) = get("PAYMENT_DEV_JWT_SECRET") {
            verifier = verifier.with_dev_secret(secret.as_bytes())?;
        }
        if let Some(url) = get("PAYMENT_JWKS_URL") {
            verifier = verifier.with_jwks(JwksSource::Url(url)).await?;
        } else if let Some(file) = get("PAYMENT_JWKS_FILE") {
            verifier = verifier.with_jwks(JwksSource::File(file)).await?;
        }
        if verifier.secret.is_none() && verifier.jwks.is_none() {
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

/// Where a JWKS comes from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    Url(String),
    File(String),
}

impl JwksSource {
    fn name(&self) -> &str {
        match self {
            JwksSource::Url(s) | JwksSource::File(s) => s,
        }
    }

    async fn load(&self) -> Result<JwkSet, AuthConfigError> {
        let error = |reason: String| AuthConfigError::Jwks {
            source_name: self.name().to_owned(),
            reason,
        };
        let bytes = match self {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| error(e.to_string()))?,
            JwksSource::Url(url) => tokio::time::timeout(JWKS_FETCH_TIMEOUT, fetch(url))
                .await
                .map_err(|_| error(format!("no answer within {JWKS_FETCH_TIMEOUT:?}")))?
                .map_err(error)?,
        };
        if bytes.len() > JWKS_BYTES_MAX {
            return Err(error(format!("larger than {JWKS_BYTES_MAX} bytes")));
        }
        serde_json::from_slice(&bytes).map_err(|e| error(format!("not a JWKS: {e}")))
    }
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| e.to_string())?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(https);
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let response = client.get(uri).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = Limited::new(response.into_body(), JWKS_BYTES_MAX)
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(body.to_bytes().to_vec())
}

struct CachedJwks {
    set: JwkSet,
    fetched_at: Instant,
}

/// Verifies bearer tokens.
pub struct JwtVerifier {
    issuer: Option<String>,
    audience: Option<String>,
    secret: Option<DecodingKey>,
    jwks: Option<(JwksSource, RwLock<CachedJwks>)>,
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
}

impl JwtVerifier {
    pub fn new(issuer: Option<String>, audience: Option<String>) -> Self {
        Self {
            issuer,
            audience,
            secret: None,
            jwks: None,
        }
    }

    /// Accepts HS256 tokens signed with `secret` (local development).
    pub fn with_dev_secret(mut self, secret: &[u8]) -> Result<Self, AuthConfigError> {
        if secret.len() < DEV_SECRET_BYTES_MIN {
            return Err(AuthConfigError::ShortSecret);
        }
        self.secret = Some(DecodingKey::from_secret(secret));
        Ok(self)
    }

    /// Accepts RS256 and ES256 tokens signed by a key of this JWKS.
    pub async fn with_jwks(mut self, source: JwksSource) -> Result<Self, AuthConfigError> {
        let set = source.load().await?;
        self.jwks = Some((
            source,
            RwLock::new(CachedJwks {
                set,
                fetched_at: Instant::now(),
            }),
        ));
        Ok(self)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Verifies a token: its algorithm must match a configured key kind, its
    /// signature that key, and `exp` (and `iss`/`aud` when configured) must hold.
    pub async fn verify(&self, token: &str) -> Result<Caller, Status> {
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no
        // variant for them.
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthenticated())?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.clone().ok_or_else(unauthenticated)?,
            Algorithm::RS256 | Algorithm::ES256 => {
                self.jwks_key(header.kid.as_deref(), header.alg).await?
            }
            _ => return Err(unauthenticated()),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|_| unauthenticated())?;
        Caller::from_claims(&data.claims.sub, data.claims.scope.as_deref())
    }

    async fn jwks_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, Status> {
        let (source, cache) = self.jwks.as_ref().ok_or_else(unauthenticated)?;
        if let Some(key) = find_key(&cache.read().await.set, kid, alg) {
            return Ok(key);
        }
        // An unknown key id may be a rotated key: fetch again, rarely.
        let mut cached = cache.write().await;
        if cached.fetched_at.elapsed() >= JWKS_REFRESH_MIN {
            cached.fetched_at = Instant::now();
            match source.load().await {
                Ok(set) => cached.set = set,
                Err(err) => tracing::warn!(error = %err, "JWKS refresh failed"),
            }
        }
        find_key(&cached.set, kid, alg).ok_or_else(unauthenticated)
    }
}

fn find_key(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        // Without a key id, only an unambiguous set will do.
        None if set.keys.len() == 1 => &set.keys[0],
        None => return None,
    };
    let kind_matches = matches!(
        (&jwk.algorithm, alg),
        (
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_),
            Algorithm::RS256
        ) | (
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_),
            Algorithm::ES256
        )
    );
    if !kind_matches {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok()
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
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn dev() -> JwtVerifier {
        JwtVerifier::new(None, None)
            .with_dev_secret(SECRET)
            .unwrap()
    }

    fn token(sub: &str, admin: bool, ttl_secs: u64) -> String {
        mint_dev_token(
            SECRET,
            &DevToken {
                sub,
                admin,
                ttl: Duration::from_secs(ttl_secs),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn dev_tokens_verify_and_carry_the_admin_scope() {
        let alice = dev().verify(&token("alice", false, 60)).await.unwrap();
        assert_eq!(
            alice,
            Caller {
                sub: "alice".into(),
                admin: false
            }
        );
        let admin = dev().verify(&token("root", true, 60)).await.unwrap();
        assert!(admin.admin);
        assert_eq!(
            unverified_sub(&token("bob", false, 60)).as_deref(),
            Some("bob")
        );
    }

    #[tokio::test]
    async fn bad_tokens_are_unauthenticated() {
        let verifier = dev();
        let good = token("alice", false, 60);
        let other_key = mint_dev_token(
            b"another-secret-another-secret-xx",
            &DevToken {
                sub: "alice",
                ttl: Duration::from_secs(60),
                ..Default::default()
            },
        )
        .unwrap();
        // exp far enough in the past to be beyond the leeway.
        let expired = {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &serde_json::json!({"sub": "alice", "exp": now - 3600}),
                &EncodingKey::from_secret(SECRET),
            )
            .unwrap()
        };
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let payload = b64(&serde_json::json!({"sub": "alice", "exp": 4_102_444_800u64}));
        let alg_none = format!(
            "{}.{payload}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"}))
        );
        let mut tampered = good.clone();
        tampered.insert(good.find('.').unwrap() + 3, 'x');
        let no_sub = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"exp": 4_102_444_800u64}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::json!({"sub": "alice", "exp": 4_102_444_800u64}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        for bad in [
            other_key,
            expired,
            alg_none,
            tampered,
            no_sub,
            hs512,
            "x.y.z".into(),
            String::new(),
        ] {
            let status = verifier.verify(&bad).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{bad}");
            assert!(status.message().starts_with("Bearer"));
        }
    }

    #[tokio::test]
    async fn issuer_and_audience_are_checked_when_configured() {
        let verifier = JwtVerifier::new(Some("https://issuer".into()), Some("payments".into()))
            .with_dev_secret(SECRET)
            .unwrap();
        let mint = |issuer, audience| {
            mint_dev_token(
                SECRET,
                &DevToken {
                    sub: "a",
                    ttl: Duration::from_secs(60),
                    issuer,
                    audience,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert!(
            verifier
                .verify(&mint(Some("https://issuer"), Some("payments")))
                .await
                .is_ok()
        );
        for bad in [
            mint(None, Some("payments")),
            mint(Some("https://other"), Some("payments")),
            mint(Some("https://issuer"), None),
        ] {
            assert!(verifier.verify(&bad).await.is_err());
        }
    }

    #[tokio::test]
    async fn settings_must_name_a_way_to_verify_callers() {
        let from = |pairs: &'static [(&'static str, &'static str)]| {
            Authenticator::from_settings(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert!(matches!(from(&[]).await, Err(AuthConfigError::NoKeys)));
        assert!(matches!(
            from(&[("PAYMENT_AUTH_MODE", "none")]).await,
            Err(AuthConfigError::Mode(_))
        ));
        assert!(matches!(
            from(&[("PAYMENT_DEV_JWT_SECRET", "short")]).await,
            Err(AuthConfigError::ShortSecret)
        ));
        assert!(matches!(
            from(&[("PAYMENT_JWKS_FILE", "/nonexistent/jwks.json")]).await,
            Err(AuthConfigError::Jwks { .. })
        ));
        assert!(matches!(
            from(&[("PAYMENT_AUTH_MODE", "apigateway")]).await,
            Ok(Authenticator::ApiGateway)
        ));
        assert!(matches!(
            from(&[("PAYMENT_DEV_JWT_SECRET", "0123456789abcdef0123456789abcdef")]).await,
            Ok(Authenticator::Jwt(_))
        ));
    }

    #[test]
    fn short_dev_secrets_are_refused() {
        assert!(
            JwtVerifier::new(None, None)
                .with_dev_secret(b"short")
                .is_err()
        );
        assert!(mint_dev_token(b"short", &DevToken::default()).is_err());
    }
}
