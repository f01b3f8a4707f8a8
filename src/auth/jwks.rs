//! The JWKS: where it comes from, how it is cached and refreshed, and which of
//! its keys may check a token.
//!
//! Refresh rules (the bounds are [`JwksTiming`]'s fields):
//! - A key set older than `max_age` is fetched again before it is used, so a
//!   key removed from the JWKS stops being trusted at most `max_age` after
//!   the last fetch that still listed it (plus one fetch, at most
//!   [`JWKS_FETCH_TIMEOUT`]).
//! - A token naming an unknown `kid` may be a rotated key: it triggers a
//!   fetch too.
//! - One fetch at a time, and the next one starts at least
//!   `refresh_interval_min` after the last one ended, whatever the callers
//!   send: random key ids cannot make the service hammer the identity
//!   provider.
//! - A fetch runs in a task of its own and no lock is held while it runs:
//!   verifications with known keys go on; callers that need its result wait
//!   for it (bounded by [`JWKS_FETCH_TIMEOUT`]) without blocking anyone.
//! - When fetches fail, the last key set is kept until it is `stale_max`
//!   old; after that every JWKS token is refused until a fetch succeeds.

use super::{AuthConfigError, unauthenticated};
use http_body_util::{BodyExt, Empty, Limited};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tonic::Status;

/// Time to fetch a JWKS (connect, answer and body).
pub const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS accepted, in bytes.
pub const JWKS_BYTES_MAX: usize = 1024 * 1024;
/// Most keys a JWKS may hold (identity providers publish two or three).
pub const JWKS_KEYS_MAX: usize = 100;

/// How long JWKS keys are trusted and how often they are fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// A key set older than this is fetched again before use: the bound on
    /// trusting a key removed from the JWKS.
    pub max_age: Duration,
    /// Least time between two fetches (unknown key ids, retries after a
    /// failed fetch).
    pub refresh_interval_min: Duration,
    /// While fetches fail, the last key set is used until it is this old.
    pub stale_max: Duration,
}

impl Default for JwksTiming {
    /// 5 minutes, 30 seconds, 1 hour: a rotated-in key is picked up within
    /// 30 s of its first use, a removed key is dropped within 5 minutes, and
    /// an identity provider outage shorter than an hour goes unnoticed.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(5 * 60),
            refresh_interval_min: Duration::from_secs(30),
            stale_max: Duration::from_secs(60 * 60),
        }
    }
}

/// Where a JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// An https URL (plain http only on a loopback host, for tests).
    Url(String),
    /// A file, read again on every refresh.
    File(String),
}

impl JwksSource {
    /// A URL source, if the URL is https, or http to a loopback host.
    pub fn url(url: &str) -> Result<Self, AuthConfigError> {
        let not_allowed = |reason: &str| AuthConfigError::JwksUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = url.parse().map_err(|_| not_allowed("not a valid URL"))?;
        let host = uri.host().ok_or_else(|| not_allowed("it has no host"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if is_loopback(host) => {}
            Some("http") => {
                return Err(not_allowed(
                    "it must be https (plain http only to a loopback host)",
                ));
            }
            _ => return Err(not_allowed("it must be an https:// URL")),
        }
        Ok(JwksSource::Url(url.to_owned()))
    }

    fn name(&self) -> &str {
        match self {
            JwksSource::Url(s) | JwksSource::File(s) => s,
        }
    }

    /// Reads and parses the key set.
    pub(super) async fn load(&self) -> Result<JwkSet, AuthConfigError> {
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
        let set: JwkSet =
            serde_json::from_slice(&bytes).map_err(|e| error(format!("not a JWKS: {e}")))?;
        if set.keys.len() > JWKS_KEYS_MAX {
            return Err(error(format!("more than {JWKS_KEYS_MAX} keys")));
        }
        Ok(set)
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn fetch(url: &str) -> Result<Vec<u8>, String> {
    // http is allowed only for loopback URLs, which JwksSource::url checked.
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

struct KeySet {
    set: JwkSet,
    fetched_at: Instant,
}

struct RefreshState {
    /// When the last fetch started or, once it is over, ended.
    last_fetch: Instant,
    in_flight: bool,
}

/// A JWKS and its refresh state; see the module documentation.
pub(super) struct JwksCache {
    source: JwksSource,
    timing: JwksTiming,
    /// Swapped whole by a fetch; held only to clone the Arc.
    keys: RwLock<Arc<KeySet>>,
    /// Held only to decide whether to start a fetch, never across one.
    refresh: Mutex<RefreshState>,
    /// Counts finished fetches; callers waiting for one watch it.
    fetched: watch::Sender<u64>,
}

impl JwksCache {
    /// Loads the key set once (an error here stops the start-up).
    pub(super) async fn load(
        source: JwksSource,
        timing: JwksTiming,
    ) -> Result<Arc<Self>, AuthConfigError> {
        let set = source.load().await?;
        let now = Instant::now();
        Ok(Arc::new(Self {
            source,
            timing,
            keys: RwLock::new(Arc::new(KeySet {
                set,
                fetched_at: now,
            })),
            refresh: Mutex::new(RefreshState {
                last_fetch: now,
                in_flight: false,
            }),
            fetched: watch::channel(0).0,
        }))
    }

    fn current(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The key that checks a token with this `kid` and `alg`, or
    /// UNAUTHENTICATED.
    /// Which key set is current: it changes with every finished fetch, so
    /// that something decided with one set can tell it is still that set.
    pub(super) fn generation(&self) -> u64 {
        *self.fetched.borrow()
    }

    pub(super) async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, Status> {
        let keys = self.current();
        if keys.fetched_at.elapsed() < self.timing.max_age
            && let Some(key) = find_key(&keys.set, kid, alg)
        {
            return Ok(key);
        }
        // Too old, or an unknown key id: fetch again if allowed, and wait for
        // that fetch (without holding any lock).
        if let Some(mut fetched) = self.start_refresh() {
            let _ = tokio::time::timeout(
                JWKS_FETCH_TIMEOUT + Duration::from_secs(1),
                fetched.changed(),
            )
            .await;
        }
        let keys = self.current();
        if keys.fetched_at.elapsed() >= self.timing.stale_max {
            tracing::warn!(
                age = ?keys.fetched_at.elapsed(),
                "JWKS keys too old to trust (fetches are failing): refusing JWKS tokens"
            );
            return Err(unauthenticated());
        }
        find_key(&keys.set, kid, alg).ok_or_else(unauthenticated)
    }

    /// Starts a fetch unless one is running or the last one ended less than
    /// `refresh_interval_min` ago; returns a receiver that changes when the
    /// running fetch ends, or None when no fetch runs.
    fn start_refresh(self: &Arc<Self>) -> Option<watch::Receiver<u64>> {
        let mut state = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        if !state.in_flight {
            if state.last_fetch.elapsed() < self.timing.refresh_interval_min {
                return None;
            }
            state.in_flight = true;
            state.last_fetch = Instant::now();
            // A task of its own, so that a caller that goes away cannot
            // leave the fetch half done.
            tokio::spawn(self.clone().refresh());
        }
        Some(self.fetched.subscribe())
    }

    async fn refresh(self: Arc<Self>) {
        match self.source.load().await {
            Ok(set) => {
                let keys = Arc::new(KeySet {
                    set,
                    fetched_at: Instant::now(),
                });
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
                tracing::info!(source = self.source.name(), "JWKS fetched again");
            }
            Err(err) => tracing::warn!(error = %err, "JWKS refresh failed; keeping the last keys"),
        }
        let mut state = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        state.in_flight = false;
        state.last_fetch = Instant::now();
        // Under the lock: whoever subscribed while the fetch ran sees this.
        self.fetched.send_modify(|n| *n += 1);
    }
}

/// The key of `set` for a token with this `kid` and `alg`: found by `kid`
/// (without one, only a set of one key will do), of the kind `alg` needs,
/// meant for signatures and, if it names an algorithm, naming `alg`.
pub(super) fn find_key(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        None if set.keys.len() == 1 => &set.keys[0],
        None => return None,
    };
    let kind_matches = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        _ => false,
    };
    let use_matches = match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => true,
        Some(_) => false,
    };
    let alg_matches = match jwk.common.key_algorithm {
        None => true,
        Some(named) => matches!(
            (named, alg),
            (KeyAlgorithm::RS256, Algorithm::RS256) | (KeyAlgorithm::ES256, Algorithm::ES256)
        ),
    };
    if !(kind_matches && use_matches && alg_matches) {
        return None;
    }
    DecodingKey::from_jwk(jwk).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_must_be_https_or_loopback() {
        for ok in [
            "https://cognito-idp.eu-west-1.amazonaws.com/pool/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks.json",
            "http://[::1]:9000/jwks.json",
        ] {
            assert_eq!(
                JwksSource::url(ok).unwrap(),
                JwksSource::Url(ok.into()),
                "{ok}"
            );
        }
        for bad in [
            "http://example.com/jwks.json",
            "http://10.0.0.1/jwks.json",
            "http://localhost.example.com/jwks.json",
            "ftp://127.0.0.1/jwks.json",
            "/etc/jwks.json",
            "not a url",
        ] {
            let err = JwksSource::url(bad).unwrap_err();
            assert!(matches!(err, AuthConfigError::JwksUrl { .. }), "{bad}");
            let name = crate::settings::JWKS_URL_ENV;
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
