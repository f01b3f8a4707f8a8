//! Production tokens through the real server: RS256 and ES256 keys generated
//! for the test, published as a JWKS by an HTTP server on 127.0.0.1 that the
//! test starts (key rotation, refresh limits, a JWKS that stalls), and the
//! start-up refusals of both binaries.

use crate::harness::{Bearer, TestApp, fresh_ledger, shared_dynamodb, web_client};
use crate::helpers::*;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use payment::auth::{Authenticator, JwksSource, JwksTiming, JwtVerifier};
use payment::pb;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tonic::Code;

const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_test";
const CLIENT_ID: &str = "web-client-id";

// ---------------------------------------------------------------------------
// Keys and tokens.

/// A signing key and its public JWK.
pub struct TestKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    pub jwk: Jwk,
    public_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8: Pkcs8V1Der = pair.as_der().unwrap();
        let public: PublicKeyX509Der = pair.public_key().as_der().unwrap();
        let encoding =
            EncodingKey::from_rsa_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).unwrap();
        Self::new(
            Algorithm::RS256,
            kid,
            encoding,
            pem("PUBLIC KEY", public.as_ref()),
        )
    }

    pub fn ec(kid: &str) -> TestKey {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        Self::new(
            Algorithm::ES256,
            kid,
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            String::new(),
        )
    }

    fn new(alg: Algorithm, kid: &str, encoding: EncodingKey, public_pem: String) -> TestKey {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        TestKey {
            alg,
            kid: kid.into(),
            encoding,
            jwk,
            public_pem,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, Some(&self.kid), claims)
    }

    fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Two RSA keys and one EC key, generated once per test binary.
fn keys() -> &'static [TestKey; 3] {
    static KEYS: OnceLock<[TestKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            TestKey::rsa("rsa-1"),
            TestKey::ec("ec-1"),
            TestKey::rsa("rsa-2"),
        ]
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a Cognito access token for `sub`.
fn access(sub: &str, admin: bool) -> Value {
    let scope = if admin { "payments/admin" } else { "openid" };
    json!({
        "iss": ISSUER, "sub": sub, "client_id": CLIENT_ID, "token_use": "access",
        "scope": scope, "exp": now() + 600, "iat": now(),
    })
}

fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

// ---------------------------------------------------------------------------
// A JWKS served on 127.0.0.1.

#[derive(Default)]
pub struct JwksState {
    body: Mutex<String>,
    /// Requests received (counted on arrival, before any delay).
    pub hits: AtomicUsize,
    delay_ms: AtomicU64,
    /// 0: answer 200 with the body; otherwise this HTTP status.
    status: AtomicU16,
    /// When the latest request arrived.
    last_arrival: Mutex<Option<Instant>>,
}

impl JwksState {
    pub fn publish(&self, keys: &[&Jwk]) {
        let set = JwkSet {
            keys: keys.iter().map(|&k| k.clone()).collect(),
        };
        *self.body.lock().unwrap() = serde_json::to_string(&set).unwrap();
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// An HTTP server on 127.0.0.1 answering GET /jwks.json; stopped when dropped.
pub struct JwksServer {
    pub url: String,
    pub state: Arc<JwksState>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl JwksServer {
    pub async fn start(keys: &[&Jwk]) -> JwksServer {
        let state = Arc::new(JwksState::default());
        state.publish(keys);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = shared.clone();
                async move {
                    *state.last_arrival.lock().unwrap() = Some(Instant::now());
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let status = match state.status.load(Ordering::SeqCst) {
                        0 => http::StatusCode::OK,
                        code => http::StatusCode::from_u16(code).unwrap(),
                    };
                    let body = state.body.lock().unwrap().clone();
                    (
                        status,
                        [(http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        JwksServer {
            url,
            state,
            _shutdown: tx,
        }
    }
}

async fn url_verifier(server: &JwksServer, timing: JwksTiming) -> Authenticator {
    let verifier = JwtVerifier::new(Some(ISSUER.into()), Some(CLIENT_ID.into()))
        .with_jwks_timing(JwksSource::url(&server.url).unwrap(), timing)
        .await
        .unwrap();
    Authenticator::Jwt(Arc::new(verifier))
}

/// The balance of `account`, read with `token`.
async fn balance_as(app: &TestApp, token: &str, account: &str) -> Result<i64, tonic::Status> {
    let mut client = app.grpc_with(Bearer::new(token)).await;
    balance(&mut client, account).await
}

fn assert_unauthenticated<T: std::fmt::Debug>(result: Result<T, tonic::Status>, why: &str) {
    let status = result.expect_err(why);
    assert_eq!(status.code(), Code::Unauthenticated, "{why}: {status:?}");
    assert!(status.message().starts_with("Bearer"), "{why}");
}

// ---------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn jwks_tokens_from_a_url_verify_on_the_server_and_bad_ones_are_refused() {
    let [rsa, ec, _] = keys();
    let jwks = JwksServer::start(&[&rsa.jwk, &ec.jwk]).await;
    let started = Instant::now();
    // Configured the way the binaries are, from settings.
    let url = jwks.url.clone();
    let settings = payment::settings::Settings::from_lookup(move |name| match name {
        "PAYMENT_JWKS_URL" => Some(url.clone()),
        "PAYMENT_JWT_ISSUER" => Some(ISSUER.into()),
        "PAYMENT_JWT_AUDIENCE" => Some(format!("payments-api,{CLIENT_ID}")),
        _ => None,
    })
    .unwrap();
    let auth = Authenticator::from_settings(&settings.auth).await.unwrap();
    let app = TestApp::serve_with(fresh_ledger().await, auth).await;
    let (alice, admin) = (unique("alice"), unique("admin"));
    let account = unique("a");

    // RS256 over native gRPC: alice opens her account and owns it.
    let mut alice_client = app
        .grpc_with(Bearer::new(&rsa.sign(&access(&alice, false))))
        .await;
    let opened = add(&mut alice_client, &account, "EUR", 0).await.unwrap();
    assert_eq!(opened.owner, alice);
    // ES256 over gRPC-Web: an admin (scope payments/admin) reads it.
    let mut admin_web = web_client(&app.url(), Bearer::new(&ec.sign(&access(&admin, true))));
    let read = admin_web
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: account.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.account.unwrap().owner, alice);
    // A generic OIDC access token: aud instead of client_id.
    let oidc = with(
        access(&alice, false),
        json!({"aud": ["payments-api"], "client_id": null, "token_use": null}),
    );
    assert_eq!(
        balance_as(&app, &rsa.sign(&oidc), &account)
            .await
            .expect("balance"),
        0
    );

    let claims = access(&alice, false);
    let mut hs256 = Header::new(Algorithm::HS256);
    hs256.kid = Some(rsa.kid.clone());
    let confused = jsonwebtoken::encode(
        &hs256,
        &claims,
        &EncodingKey::from_secret(rsa.public_pem.as_bytes()),
    )
    .unwrap();
    let refused = [
        (
            "unknown kid",
            rsa.sign_as(Algorithm::RS256, Some("rotated-away"), &claims),
        ),
        (
            "RS256 naming the EC key",
            rsa.sign_as(Algorithm::RS256, Some(&ec.kid), &claims),
        ),
        (
            "ES256 naming the RSA key",
            ec.sign_as(Algorithm::ES256, Some(&rsa.kid), &claims),
        ),
        ("HS256 signed with the RSA public key", confused),
        (
            "expired",
            rsa.sign(&with(claims.clone(), json!({"exp": now() - 3600}))),
        ),
        (
            "not yet valid",
            ec.sign(&with(claims.clone(), json!({"nbf": now() + 3600}))),
        ),
        (
            "wrong issuer",
            rsa.sign(&with(
                claims.clone(),
                json!({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/other"}),
            )),
        ),
        (
            "wrong audience",
            rsa.sign(&with(claims.clone(), json!({"client_id": "other-app"}))),
        ),
        (
            "ID token of the same app client",
            rsa.sign(&with(
                claims.clone(),
                json!({"token_use": "id", "aud": CLIENT_ID, "client_id": null}),
            )),
        ),
    ];
    for (why, token) in refused {
        assert_unauthenticated(balance_as(&app, &token, &account).await, why);
        let mut web = web_client(&app.url(), Bearer::new(&token));
        let result = web
            .get_account_balance(pb::GetAccountBalanceRequest {
                account_id: account.clone(),
            })
            .await;
        assert_unauthenticated(result, why);
    }
    // Random key ids cannot make the service hammer the JWKS: with the
    // default refresh_interval_min (30 s) the unknown kid may fetch at most
    // once per interval since start-up, so within a test this short the
    // start-up fetch plus at most one. (Whether an unknown kid fetches at
    // all depends on when the last fetch was; that it does, and exactly
    // once per interval, is asserted with chosen timings in
    // jwks_refresh_is_rate_limited_and_a_slow_fetch_stalls_no_other_call.)
    let interval = payment::auth::JwksTiming::default().refresh_interval_min;
    let allowed = 2 + (started.elapsed().as_secs_f64() / interval.as_secs_f64()) as usize;
    assert!(
        jwks.state.hits() <= allowed,
        "{} fetches in {:?}, at most {allowed}",
        jwks.state.hits(),
        started.elapsed()
    );
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_removed_key_is_refused_within_max_age() {
    let [old, _, new] = keys();
    let jwks = JwksServer::start(&[&old.jwk]).await;
    let timing = JwksTiming {
        max_age: Duration::from_secs(2),
        refresh_interval_min: Duration::ZERO,
        stale_max: Duration::from_secs(3600),
    };
    let app = TestApp::serve_with(fresh_ledger().await, url_verifier(&jwks, timing).await).await;
    let sub = unique("alice");
    let account = unique("a");
    let (old_token, new_token) = (
        old.sign(&access(&sub, false)),
        new.sign(&access(&sub, false)),
    );
    let mut client = app.grpc_with(Bearer::new(&old_token)).await;
    add(&mut client, &account, "EUR", 0).await.unwrap();
    assert_unauthenticated(
        balance_as(&app, &new_token, &account).await,
        "not yet published",
    );

    // The identity provider publishes the new key and signs with it.
    jwks.state.publish(&[&old.jwk, &new.jwk]);
    assert_eq!(
        balance_as(&app, &new_token, &account)
            .await
            .expect("balance"),
        0
    );
    // It withdraws the old key: trusted at most max_age longer.
    jwks.state.publish(&[&new.jwk]);
    let withdrawn = Instant::now();
    loop {
        // Measured when the call is sent: the service verified it later than
        // that, so an OK for a call sent past the bound is a key trusted too
        // long, however long the answer then took to come back. The bound:
        // the last fetch that listed the key started before `withdrawn` and
        // took at most JWKS_FETCH_TIMEOUT, and its keys serve max_age.
        let sent = withdrawn.elapsed();
        match balance_as(&app, &old_token, &account).await {
            Ok(_) => {
                assert!(
                    sent < timing.max_age + payment::auth::jwks::JWKS_FETCH_TIMEOUT,
                    "the withdrawn key is still trusted {sent:?} after it was withdrawn"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unauthenticated);
                break;
            }
        }
    }
    assert_eq!(
        balance_as(&app, &new_token, &account)
            .await
            .expect("balance"),
        0
    );
}

#[tokio::test]
async fn jwks_refresh_is_rate_limited_and_a_slow_fetch_stalls_no_other_call() {
    let [rsa, _, _] = keys();
    let jwks = JwksServer::start(&[&rsa.jwk]).await;
    let timing = JwksTiming {
        max_age: Duration::from_secs(3600),
        refresh_interval_min: Duration::from_secs(3),
        stale_max: Duration::from_secs(7200),
    };
    let app = TestApp::serve_with(fresh_ledger().await, url_verifier(&jwks, timing).await).await;
    let sub = unique("alice");
    let account = unique("a");
    let good = rsa.sign(&access(&sub, false));
    let mut client = app.grpc_with(Bearer::new(&good)).await;
    add(&mut client, &account, "EUR", 0).await.unwrap();
    assert_eq!(jwks.state.hits(), 1, "the start-up fetch");
    tokio::time::sleep(timing.refresh_interval_min).await;

    // The JWKS now takes 4.5 s to answer. Twenty calls with random key ids
    // arrive together: one fetch starts, and they all wait for it.
    let stall = Duration::from_millis(4_500);
    assert!(stall < payment::auth::jwks::JWKS_FETCH_TIMEOUT);
    jwks.state
        .delay_ms
        .store(stall.as_millis() as u64, Ordering::SeqCst);
    let random_kid_calls: Vec<_> = (0..20)
        .map(|_| {
            let token = rsa.sign_as(
                Algorithm::RS256,
                Some(&uuid::Uuid::new_v4().to_string()),
                &access(&sub, false),
            );
            let url = app.url();
            let account = account.clone();
            tokio::spawn(async move {
                let channel = payment::client::connect_channel(&url).await.unwrap();
                let mut client = pb::payment_service_client::PaymentServiceClient::with_interceptor(
                    channel,
                    Bearer::new(&token),
                );
                client
                    .get_account_balance(pb::GetAccountBalanceRequest {
                        account_id: account,
                    })
                    .await
            })
        })
        .collect();
    let started = Instant::now();
    while jwks.state.hits() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no refresh started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While that fetch hangs, a call with a known key is not held up: it is
    // answered before the fetch could have ended (the JWKS answers `stall`
    // after the request arrived), so it did not wait for it. Measured from
    // the fetch's arrival, not the call's start, so a slow machine only
    // eats into the stall, which is nearly as long as the service lets a
    // fetch take (JWKS_FETCH_TIMEOUT, 5 s).
    let fetch_arrived = jwks.state.last_arrival.lock().unwrap().expect("a fetch");
    assert_eq!(balance_as(&app, &good, &account).await.expect("balance"), 0);
    let answered = fetch_arrived.elapsed();
    assert!(
        answered < stall,
        "a known-key call was answered {answered:?} after a JWKS fetch that hangs for {stall:?} started: it waited for it"
    );
    for call in random_kid_calls {
        assert_unauthenticated(call.await.unwrap(), "random kid");
    }
    assert_eq!(jwks.state.hits(), 2, "twenty unknown kids, one fetch");

    // Right after that fetch, more random kids start no fetch at all: at
    // most one per refresh_interval_min since it ended (before `ended`),
    // so none while the calls take less than that, and on a machine too
    // slow for that, no more than the intervals that passed.
    let ended = Instant::now();
    jwks.state.delay_ms.store(0, Ordering::SeqCst);
    for _ in 0..20 {
        let token = rsa.sign_as(Algorithm::RS256, Some("random"), &access(&sub, false));
        assert_unauthenticated(balance_as(&app, &token, &account).await, "rate limited");
    }
    let intervals = ended.elapsed().as_secs_f64() / timing.refresh_interval_min.as_secs_f64();
    assert!(
        jwks.state.hits() <= 2 + intervals as usize,
        "{} fetches, no more than one per refresh_interval_min: {:?} since the slow fetch",
        jwks.state.hits(),
        ended.elapsed()
    );
}

#[tokio::test]
async fn callers_of_a_newly_published_key_share_one_fetch_and_all_get_in() {
    let [old, _, new] = keys();
    let jwks = JwksServer::start(&[&old.jwk]).await;
    // No rate limit, so only the one-fetch-at-a-time rule keeps the count.
    let timing = JwksTiming {
        max_age: Duration::from_secs(3600),
        refresh_interval_min: Duration::ZERO,
        stale_max: Duration::from_secs(7200),
    };
    let app = TestApp::serve_with(fresh_ledger().await, url_verifier(&jwks, timing).await).await;
    let sub = unique("alice");
    let account = unique("a");
    let mut client = app
        .grpc_with(Bearer::new(&old.sign(&access(&sub, false))))
        .await;
    add(&mut client, &account, "EUR", 0).await.unwrap();
    // The new key is published; the JWKS answers slowly; ten callers use
    // the new key at once.
    jwks.state.publish(&[&old.jwk, &new.jwk]);
    jwks.state.delay_ms.store(1000, Ordering::SeqCst);
    let token = new.sign(&access(&sub, false));
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (url, token, account) = (app.url(), token.clone(), account.clone());
            tokio::spawn(async move {
                let channel = payment::client::connect_channel(&url).await.unwrap();
                let mut client = pb::payment_service_client::PaymentServiceClient::with_interceptor(
                    channel,
                    Bearer::new(&token),
                );
                client
                    .get_account_balance(pb::GetAccountBalanceRequest {
                        account_id: account,
                    })
                    .await
            })
        })
        .collect();
    for call in calls {
        let reply = call.await.unwrap().expect("the new key, once fetched");
        assert_eq!(reply.into_inner().account.unwrap().balance, 0);
    }
    assert_eq!(jwks.state.hits(), 2, "start-up, then one fetch for all ten");
}

#[tokio::test]
async fn an_unreachable_jwks_keeps_the_last_keys_until_stale_max() {
    let [rsa, _, _] = keys();
    let jwks = JwksServer::start(&[&rsa.jwk]).await;
    let timing = JwksTiming {
        max_age: Duration::from_millis(200),
        refresh_interval_min: Duration::ZERO,
        // Far longer than the few calls below take on a loaded machine, so
        // the keys are surely not stale yet at the first one.
        stale_max: Duration::from_secs(5),
    };
    let app = TestApp::serve_with(fresh_ledger().await, url_verifier(&jwks, timing).await).await;
    let sub = unique("alice");
    let account = unique("a");
    let token = rsa.sign(&access(&sub, false));
    let mut client = app.grpc_with(Bearer::new(&token)).await;
    add(&mut client, &account, "EUR", 0).await.unwrap();
    jwks.state.status.store(503, Ordering::SeqCst);
    // Counted from when the JWKS fails (a refresh during `add` may have
    // succeeded before).
    let hits_before_failing = jwks.state.hits();
    tokio::time::sleep(timing.max_age).await;
    assert_eq!(
        balance_as(&app, &token, &account).await.expect("balance"),
        0,
        "stale keys"
    );
    assert!(
        jwks.state.hits() > hits_before_failing,
        "a refresh was tried (and failed)"
    );
    // Every successful fetch was before the 503, more than stale_max ago
    // after this sleep. (How long the test's own sleeps took is not the
    // service's doing, so it is not asserted.)
    tokio::time::sleep(timing.stale_max).await;
    assert_unauthenticated(
        balance_as(&app, &token, &account).await,
        "keys older than stale_max",
    );
    // The identity provider is back: tokens verify again.
    jwks.state.status.store(0, Ordering::SeqCst);
    assert_eq!(
        balance_as(&app, &token, &account).await.expect("balance"),
        0
    );
}

/// Runs `binary` with only `envs` (plus PATH) and returns its exit status and
/// stderr; it must exit within 30 s.
pub fn run_until_exit(binary: &str, envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut child = std::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_DYNAMODB", shared_dynamodb())
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{binary} with {envs:?} did not exit: it started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
fn both_binaries_refuse_to_start_with_unsafe_token_settings() {
    let secret = ("PAYMENT_DEV_JWT_SECRET", crate::harness::DEV_SECRET);
    let file = ("PAYMENT_JWKS_FILE", "/nonexistent/jwks.json");
    let issuer = ("PAYMENT_JWT_ISSUER", ISSUER);
    let audience = ("PAYMENT_JWT_AUDIENCE", CLIENT_ID);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![file, audience], "PAYMENT_JWT_ISSUER is required"),
        (vec![file, issuer], "PAYMENT_JWT_AUDIENCE is required"),
        (
            vec![file, issuer, audience, secret],
            "PAYMENT_ALLOW_DEV_SECRET_WITH_JWKS=true",
        ),
        (
            vec![
                ("PAYMENT_JWKS_URL", "http://idp.example.com/jwks.json"),
                issuer,
                audience,
            ],
            "must be https",
        ),
        (vec![], "authentication is not configured"),
    ];
    for binary in [
        env!("CARGO_BIN_EXE_payment-server"),
        env!("CARGO_BIN_EXE_payment-lambda"),
    ] {
        for (envs, message) in &cases {
            let (status, stderr) = run_until_exit(binary, envs);
            assert!(!status.success(), "{binary} {envs:?} started");
            assert!(
                stderr.contains(message),
                "{binary} {envs:?}: wanted {message:?} in {stderr}"
            );
        }
    }
}
