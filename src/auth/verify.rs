//! Bearer token verification.
//!
//! A token is accepted when all of these hold:
//! - its `alg` is RS256 or ES256 with a JWKS key (see [`super::jwks`]), or
//!   HS256 with the dev secret; `alg: none`, other algorithms and an HS256
//!   token without a dev secret (for instance one "signed" with the RSA public
//!   key as secret) are refused;
//! - the signature checks; `exp` is present and in the future, `nbf` (when
//!   present) in the past, both with [`LEEWAY_SECS`] of clock skew;
//! - `iss` equals the configured issuer, and the audience is one of the
//!   configured ones: the `aud` claim (a string or a list), or for Cognito
//!   access tokens, which carry no `aud`, the `client_id` claim together with
//!   `token_use: access`; with a JWKS both settings are required;
//! - `token_use`, when present (Cognito), is `access`: ID tokens are refused;
//! - `sub` is present, non-empty, at most [`super::SUB_BYTES_MAX`] bytes and
//!   free of control characters.
//!
//! A token that passed is remembered, by its exact text, until the earlier
//! of its `exp` and [`VERIFIED_TTL`] from then: a caller that sends the same
//! token on every call (as clients do) has its signature and claims checked
//! once per instance and minute, not once per call. A JWKS token is
//! remembered only while the key set that verified it is current and its
//! key still usable (asked of the JWKS cache on every call, as for a new
//! token), so a key dropped from the set is refused exactly as before. The
//! memory holds at most [`VERIFIED_MAX`] tokens of at most
//! [`VERIFIED_TOKEN_BYTES_MAX`] bytes, and saves only CPU: every instance
//! verifies on its own.

use super::jwks::{JwksCache, JwksSource, JwksTiming};
use super::{AuthConfigError, Caller, DEV_SECRET_BYTES_MIN, unauthenticated};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::Status;

/// Most tokens remembered as verified.
pub const VERIFIED_MAX: usize = 256;
/// Longest token remembered as verified; longer ones are checked each time.
pub const VERIFIED_TOKEN_BYTES_MAX: usize = 4096;
/// Longest a verified token is remembered (never past its `exp`).
pub const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// Most audiences one verifier accepts.
pub const AUDIENCES_MAX: usize = 16;
/// Longest issuer or audience setting, in bytes.
pub const SETTING_BYTES_MAX: usize = 1024;

/// Audiences a verifier can take: at most [`AUDIENCES_MAX`], each
/// non-empty and at most [`SETTING_BYTES_MAX`] bytes.
pub fn check_audiences(audiences: &[String]) -> Result<(), AuthConfigError> {
    if audiences.len() > AUDIENCES_MAX
        || audiences
            .iter()
            .any(|a| a.is_empty() || a.len() > SETTING_BYTES_MAX)
    {
        return Err(AuthConfigError::Audience);
    }
    Ok(())
}

/// Verifies bearer tokens; see the module documentation.
pub struct JwtVerifier {
    issuer: Option<String>,
    audiences: Vec<String>,
    secret: Option<DecodingKey>,
    jwks: Option<Arc<JwksCache>>,
    dev_secret_with_jwks: bool,
    /// Tokens verified lately.
    verified: Mutex<HashMap<String, Verified>>,
}

/// A token verified lately: its caller, until when it is remembered, and
/// for a JWKS token the key it named and the key set that verified it.
#[derive(Clone)]
struct Verified {
    caller: Caller,
    until: Instant,
    jwks_key: Option<(Option<String>, Algorithm, u64)>,
}

/// What checking a token found.
struct Checked {
    caller: Caller,
    /// Its `exp`, 0 when not a whole number of seconds.
    exp: u64,
    jwks_key: Option<(Option<String>, Algorithm, u64)>,
}

/// `aud`: one string or a list.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains_any(&self, wanted: &[String]) -> bool {
        match self {
            Audience::One(aud) => wanted.contains(aud),
            Audience::Many(list) => list.iter().any(|aud| wanted.contains(aud)),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
    /// Required and checked by the validation; read here to bound how long
    /// the token is remembered (a non-integer one is not remembered).
    #[serde(default)]
    exp: Option<serde_json::Number>,
}

impl JwtVerifier {
    /// A verifier checking `iss` against `issuer` and the audience against
    /// `audience`, when given (both are required once a JWKS is added).
    pub fn new(issuer: Option<String>, audience: Option<String>) -> Self {
        Self {
            issuer,
            audiences: audience.into_iter().collect(),
            secret: None,
            jwks: None,
            dev_secret_with_jwks: false,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts any of `audiences` (replacing the one given to `new`).
    pub fn with_audiences(mut self, audiences: Vec<String>) -> Result<Self, AuthConfigError> {
        check_audiences(&audiences)?;
        self.audiences = audiences;
        Ok(self)
    }

    /// Allows a dev secret beside a JWKS (PAYMENT_ALLOW_DEV_SECRET_WITH_JWKS);
    /// without it, configuring both is an error.
    pub fn allow_dev_secret_with_jwks(mut self) -> Self {
        self.dev_secret_with_jwks = true;
        self
    }

    /// Accepts HS256 tokens signed with `secret` (local development).
    pub fn with_dev_secret(mut self, secret: &[u8]) -> Result<Self, AuthConfigError> {
        if secret.len() < DEV_SECRET_BYTES_MIN {
            return Err(AuthConfigError::ShortSecret);
        }
        if self.jwks.is_some() && !self.dev_secret_with_jwks {
            return Err(AuthConfigError::DevSecretWithJwks);
        }
        self.secret = Some(DecodingKey::from_secret(secret));
        Ok(self)
    }

    /// Accepts RS256 and ES256 tokens signed by a key of this JWKS, loaded
    /// now and refreshed on [`JwksTiming::default`]'s schedule.
    pub async fn with_jwks(self, source: JwksSource) -> Result<Self, AuthConfigError> {
        self.with_jwks_timing(source, JwksTiming::default()).await
    }

    /// Like [`JwtVerifier::with_jwks`] on another schedule (tests).
    pub async fn with_jwks_timing(
        mut self,
        source: JwksSource,
        timing: JwksTiming,
    ) -> Result<Self, AuthConfigError> {
        if self.issuer.is_none() {
            return Err(AuthConfigError::JwksNeedsIssuer);
        }
        if self.audiences.is_empty() {
            return Err(AuthConfigError::JwksNeedsAudience);
        }
        if self.secret.is_some() && !self.dev_secret_with_jwks {
            return Err(AuthConfigError::DevSecretWithJwks);
        }
        self.jwks = Some(JwksCache::load(source, timing).await?);
        Ok(self)
    }

    /// Whether any key is configured.
    pub fn has_keys(&self) -> bool {
        self.secret.is_some() || self.jwks.is_some()
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        // The audience is checked in `check_claims`: Cognito access tokens
        // carry it as `client_id`.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&required);
        validation
    }

    fn check_claims(&self, claims: &Claims) -> Result<(), Status> {
        let access_token = match claims.token_use.as_deref() {
            None => false,
            Some("access") => true,
            Some(_) => return Err(unauthenticated()),
        };
        if self.audiences.is_empty() {
            return Ok(());
        }
        let by_aud = claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains_any(&self.audiences));
        let by_client_id = access_token
            && claims
                .client_id
                .as_ref()
                .is_some_and(|id| self.audiences.contains(id));
        if by_aud || by_client_id {
            Ok(())
        } else {
            Err(unauthenticated())
        }
    }

    /// Verifies a token; see the module documentation for what must hold.
    pub async fn verify(&self, token: &str) -> Result<Caller, Status> {
        let now = Instant::now();
        if let Some(seen) = self.recall(token, now) {
            match (&seen.jwks_key, &self.jwks) {
                (None, _) => return Ok(seen.caller),
                (Some((kid, alg, generation)), Some(jwks)) => {
                    // The key must still be usable (this may refresh the
                    // set), and the set the one that verified the token.
                    if jwks.key(kid.as_deref(), *alg).await.is_ok()
                        && jwks.generation() == *generation
                    {
                        return Ok(seen.caller);
                    }
                }
                (Some(_), None) => {}
            }
        }
        let checked = self.check(token).await?;
        self.remember(token, &checked, now);
        Ok(checked.caller)
    }

    /// How many tokens are remembered as verified (tests).
    #[cfg(test)]
    pub(super) fn remembered(&self) -> usize {
        self.verified.lock().map_or(0, |v| v.len())
    }

    /// A token remembered as verified and not past its time.
    fn recall(&self, token: &str, now: Instant) -> Option<Verified> {
        let verified = self.verified.lock().ok()?;
        verified.get(token).filter(|v| now < v.until).cloned()
    }

    /// Remembers a verified token until the earlier of its `exp` and
    /// [`VERIFIED_TTL`]; when the memory is full, the entries past their
    /// time go first, and if none is, all of them.
    fn remember(&self, token: &str, checked: &Checked, now: Instant) {
        if token.len() > VERIFIED_TOKEN_BYTES_MAX {
            return;
        }
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let left = Duration::from_secs(checked.exp.saturating_sub(unix_now)).min(VERIFIED_TTL);
        if left.is_zero() {
            return;
        }
        let Ok(mut verified) = self.verified.lock() else {
            return;
        };
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, v| now < v.until);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(
            token.to_owned(),
            Verified {
                caller: checked.caller.clone(),
                until: now + left,
                jwks_key: checked.jwks_key.clone(),
            },
        );
    }

    /// Checks a token as the module documentation says: the caller, and the
    /// token's `exp`.
    async fn check(&self, token: &str) -> Result<Checked, Status> {
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no
        // variant for them.
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthenticated())?;
        let (key, jwks_key) = match header.alg {
            Algorithm::HS256 => (self.secret.clone().ok_or_else(unauthenticated)?, None),
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or_else(unauthenticated)?;
                // The set's generation before the key is taken: if a fetch
                // ends in between, the token is remembered with the older
                // one and simply checked again next time.
                let generation = jwks.generation();
                let key = jwks.key(header.kid.as_deref(), header.alg).await?;
                (key, Some((header.kid.clone(), header.alg, generation)))
            }
            _ => return Err(unauthenticated()),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(|_| unauthenticated())?;
        self.check_claims(&data.claims)?;
        Ok(Checked {
            caller: Caller::from_claims(&data.claims.sub, data.claims.scope.as_deref())?,
            exp: data.claims.exp.and_then(|e| e.as_u64()).unwrap_or(0),
            jwks_key,
        })
    }
}
