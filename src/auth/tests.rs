//! Unit tests of token verification: dev tokens, and real RS256/ES256 keys
//! generated for the test, in a JWKS file.

use super::*;
use crate::settings::AuthSettings;

/// The authenticator the binaries build, from settings given as a map.
async fn authenticator_of(pairs: &[(&str, String)]) -> Result<Authenticator, AuthConfigError> {
    let settings = AuthSettings::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })?;
    Authenticator::from_settings(&settings).await
}

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
async fn verified_tokens_are_remembered_within_bounds() {
    let verifier = dev();
    let (alice, root) = (token("alice", false, 60), token("root", true, 60));
    for _ in 0..3 {
        assert_eq!(
            verifier.verify(&alice).await.unwrap(),
            Caller {
                sub: "alice".into(),
                admin: false
            }
        );
        assert!(verifier.verify(&root).await.unwrap().admin);
    }
    assert_eq!(verifier.remembered(), 2, "each token once");
    // Remembered by exact text: the same token with another signature is
    // checked, and refused, and not remembered.
    let (head, _) = alice.rsplit_once('.').unwrap();
    let forged = format!("{head}.{}", "A".repeat(43));
    assert!(verifier.verify(&forged).await.is_err());
    assert_eq!(verifier.remembered(), 2);
    // A token longer than the bound is verified every time.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let long = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({
            "sub": "carol",
            "exp": now + 60,
            "pad": "x".repeat(verify::VERIFIED_TOKEN_BYTES_MAX),
        }),
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(verifier.verify(&long).await.unwrap().sub, "carol");
    assert_eq!(verifier.remembered(), 2);
    // Bounded, however many callers there are.
    for n in 0..verify::VERIFIED_MAX + 10 {
        let caller = verifier
            .verify(&token(&format!("user-{n}"), false, 60))
            .await
            .unwrap();
        assert_eq!(caller.sub, format!("user-{n}"));
    }
    assert!(verifier.remembered() <= verify::VERIFIED_MAX);
    assert_eq!(verifier.verify(&alice).await.unwrap().sub, "alice");
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
    for (bad, why) in [
        (mint(None, Some("payments")), "no issuer"),
        (
            mint(Some("https://other"), Some("payments")),
            "another issuer",
        ),
        (mint(Some("https://issuer"), None), "no audience"),
        (
            mint(Some("https://issuer"), Some("other")),
            "another audience",
        ),
    ] {
        assert_refused(&verifier, &bad, why).await;
    }
}

#[tokio::test]
async fn settings_must_name_a_way_to_verify_callers() {
    let from = |pairs: &'static [(&'static str, &'static str)]| async move {
        let pairs: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
        authenticator_of(&pairs).await
    };
    assert!(matches!(from(&[]).await, Err(AuthConfigError::NoKeys)));
    assert!(matches!(
        from(&[(AUTH_MODE_ENV, "none")]).await,
        Err(AuthConfigError::Mode(_))
    ));
    assert!(matches!(
        from(&[(DEV_JWT_SECRET_ENV, "short")]).await,
        Err(AuthConfigError::ShortSecret)
    ));
    assert!(matches!(
        from(&[
            (JWKS_FILE_ENV, "/nonexistent/jwks.json"),
            (JWT_ISSUER_ENV, "https://issuer"),
            (JWT_AUDIENCE_ENV, "payments"),
        ])
        .await,
        Err(AuthConfigError::Jwks { .. })
    ));
    assert!(matches!(
        from(&[(AUTH_MODE_ENV, "apigateway")]).await,
        Ok(Authenticator::ApiGateway)
    ));
    assert!(matches!(
        from(&[(DEV_JWT_SECRET_ENV, "0123456789abcdef0123456789abcdef")]).await,
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

// ---------------------------------------------------------------------------
// Production keys: RS256 and ES256 keys generated for the test, in a JWKS file.

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com/pool";
const AUDIENCE: &str = "payments-api";

/// A signing key and its public JWK.
struct TestKey {
    alg: Algorithm,
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
    /// The public key as PEM (what an HS256/RS256 confusion attack uses as
    /// the HMAC secret).
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
    fn rsa(kid: &str) -> TestKey {
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

    fn ec(kid: &str) -> TestKey {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let encoding = EncodingKey::from_ec_der(pkcs8.as_ref());
        Self::new(Algorithm::ES256, kid, encoding, String::new())
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

    /// `claims` signed by this key, with its `kid`.
    fn sign(&self, claims: &Value) -> String {
        self.sign_as(self.alg, Some(&self.kid), claims)
    }

    fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// One RSA and one EC key, generated once per test binary.
fn keys() -> &'static (TestKey, TestKey) {
    static KEYS: std::sync::OnceLock<(TestKey, TestKey)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| (TestKey::rsa("rsa-1"), TestKey::ec("ec-1")))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a valid access token for `sub`.
fn access(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now() + 600, "iat": now()})
}

/// `claims` with `changes` applied (a null value removes the claim).
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

/// A JWKS file (in the temp directory) holding `jwks`.
struct JwksFile(std::path::PathBuf);

impl JwksFile {
    fn new(jwks: &[&Jwk]) -> JwksFile {
        let path = std::env::temp_dir().join(format!("jwks-{}.json", uuid::Uuid::new_v4()));
        let file = JwksFile(path);
        file.write(jwks);
        file
    }
    fn write(&self, jwks: &[&Jwk]) {
        let set = JwkSet {
            keys: jwks.iter().map(|&k| k.clone()).collect(),
        };
        // Write then rename, so a refresh never reads half a file.
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&set).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }
    fn source(&self) -> JwksSource {
        JwksSource::File(self.0.display().to_string())
    }
}

impl Drop for JwksFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn jwks_verifier(file: &JwksFile, timing: JwksTiming) -> JwtVerifier {
    JwtVerifier::new(Some(ISSUER.into()), Some(AUDIENCE.into()))
        .with_jwks_timing(file.source(), timing)
        .await
        .unwrap()
}

async fn standard_verifier() -> (JwksFile, JwtVerifier) {
    let (rsa, ec) = keys();
    let file = JwksFile::new(&[&rsa.jwk, &ec.jwk]);
    let verifier = jwks_verifier(&file, JwksTiming::default()).await;
    (file, verifier)
}

async fn assert_refused(verifier: &JwtVerifier, token: &str, why: &str) {
    let status = verifier.verify(token).await.expect_err(why);
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{why}");
    assert!(status.message().starts_with("Bearer"), "{why}");
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_with_the_key_their_kid_names() {
    let (rsa, ec) = keys();
    let (_file, verifier) = standard_verifier().await;
    let alice = verifier.verify(&rsa.sign(&access("alice"))).await.unwrap();
    assert_eq!(
        alice,
        Caller {
            sub: "alice".into(),
            admin: false
        }
    );
    let admin = with(access("root"), json!({"scope": "openid payments/admin"}));
    assert!(verifier.verify(&ec.sign(&admin)).await.unwrap().admin);
}

#[tokio::test]
async fn an_unknown_or_missing_kid_is_refused() {
    let (rsa, ec) = keys();
    let (_file, verifier) = standard_verifier().await;
    let claims = access("alice");
    assert_refused(
        &verifier,
        &rsa.sign_as(Algorithm::RS256, Some("no-such-kid"), &claims),
        "unknown kid",
    )
    .await;
    // Two keys: without a kid the key is ambiguous.
    assert_refused(
        &verifier,
        &ec.sign_as(Algorithm::ES256, None, &claims),
        "no kid",
    )
    .await;
    // A key the JWKS does not hold, claiming the kid of one it does.
    let stranger = TestKey::ec("ec-1");
    assert_refused(&verifier, &stranger.sign(&claims), "another key, same kid").await;
}

#[tokio::test]
async fn a_key_of_the_wrong_kind_is_refused() {
    let (rsa, ec) = keys();
    let claims = access("alice");
    let (_file, verifier) = standard_verifier().await;
    // RS256 naming the EC key, ES256 naming the RSA key.
    assert_refused(
        &verifier,
        &rsa.sign_as(Algorithm::RS256, Some(&ec.kid), &claims),
        "RS256 with an EC kid",
    )
    .await;
    assert_refused(
        &verifier,
        &ec.sign_as(Algorithm::ES256, Some(&rsa.kid), &claims),
        "ES256 with an RSA kid",
    )
    .await;
    // An RSA key published for encryption, or for another algorithm.
    let mut for_encryption = rsa.jwk.clone();
    for_encryption.common.public_key_use = Some(PublicKeyUse::Encryption);
    let mut for_ps256 = rsa.jwk.clone();
    for_ps256.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::PS256);
    for jwk in [for_encryption, for_ps256] {
        let file = JwksFile::new(&[&jwk]);
        let verifier = jwks_verifier(&file, JwksTiming::default()).await;
        assert_refused(
            &verifier,
            &rsa.sign(&claims),
            "key not for RS256 signatures",
        )
        .await;
    }
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    let (rsa, _) = keys();
    let claims = with(access("mallory"), json!({"scope": "payments/admin"}));
    let jwk_json = serde_json::to_string(&rsa.jwk).unwrap();
    let secrets = [rsa.public_pem.as_bytes(), jwk_json.as_bytes()];
    let (file, jwks_only) = standard_verifier().await;
    let with_dev_secret = JwtVerifier::new(Some(ISSUER.into()), Some(AUDIENCE.into()))
        .allow_dev_secret_with_jwks()
        .with_dev_secret(SECRET)
        .unwrap()
        .with_jwks(file.source())
        .await
        .unwrap();
    for secret in secrets {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rsa.kid.clone());
        let forged =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap();
        assert_refused(&jwks_only, &forged, "HS256 with the public key, JWKS only").await;
        assert_refused(
            &with_dev_secret,
            &forged,
            "HS256 with the public key, dev secret too",
        )
        .await;
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let (rsa, ec) = keys();
    let (_file, verifier) = standard_verifier().await;
    let now = now();
    for key in [rsa, ec] {
        for (why, changes) in [
            ("expired", json!({"exp": now - 3600})),
            ("no exp", json!({"exp": null})),
            ("not yet valid", json!({"nbf": now + 3600})),
            ("nbf not a number", json!({"nbf": "soon"})),
        ] {
            assert_refused(&verifier, &key.sign(&with(access("a"), changes)), why).await;
        }
        // Within the clock skew allowed.
        for changes in [json!({"nbf": now + 10}), json!({"exp": now - 10})] {
            let token = key.sign(&with(access("a"), changes.clone()));
            assert!(verifier.verify(&token).await.is_ok(), "{changes}");
        }
    }
}

#[tokio::test]
async fn the_wrong_issuer_or_audience_is_refused() {
    let (rsa, _) = keys();
    let (_file, verifier) = standard_verifier().await;
    for (why, changes) in [
        (
            "other issuer",
            json!({"iss": "https://idp.example.com/other-pool"}),
        ),
        ("no issuer", json!({"iss": null})),
        ("other audience", json!({"aud": "another-app"})),
        ("other audiences", json!({"aud": ["another-app", "third"]})),
        ("no audience", json!({"aud": null})),
        ("no sub", json!({"sub": null})),
        ("empty sub", json!({"sub": ""})),
    ] {
        assert_refused(&verifier, &rsa.sign(&with(access("a"), changes)), why).await;
    }
    let listed = with(access("a"), json!({"aud": ["another-app", AUDIENCE]}));
    assert!(verifier.verify(&rsa.sign(&listed)).await.is_ok());
}

#[tokio::test]
async fn cognito_access_tokens_count_client_id_as_audience_and_id_tokens_are_refused() {
    let (rsa, _) = keys();
    let (_file, verifier) = standard_verifier().await;
    // A Cognito access token: no aud, client_id, token_use access.
    let cognito_access = with(
        access("alice"),
        json!({"aud": null, "client_id": AUDIENCE, "token_use": "access", "scope": "openid"}),
    );
    assert!(verifier.verify(&rsa.sign(&cognito_access)).await.is_ok());
    for (why, changes) in [
        // The ID token of the same app client: aud is the client id.
        (
            "id token",
            json!({"aud": AUDIENCE, "client_id": null, "token_use": "id"}),
        ),
        ("client_id without token_use", json!({"token_use": null})),
        ("another app client", json!({"client_id": "another-client"})),
        ("token_use refresh", json!({"token_use": "refresh"})),
    ] {
        assert_refused(
            &verifier,
            &rsa.sign(&with(cognito_access.clone(), changes)),
            why,
        )
        .await;
    }
}

/// One setting: its variable's name and value.
type Setting = (&'static str, String);

/// A JWKS file of the RSA key, with the settings naming it, an issuer and
/// an audience. Keep the file: dropping it removes it.
fn jwks_settings() -> (JwksFile, Setting, Setting, Setting) {
    let (rsa, _) = keys();
    let file = JwksFile::new(&[&rsa.jwk]);
    let jwks = (JWKS_FILE_ENV, file.0.display().to_string());
    let issuer = (JWT_ISSUER_ENV, ISSUER.to_owned());
    let audience = (JWT_AUDIENCE_ENV, format!("other, {AUDIENCE}"));
    (file, jwks, issuer, audience)
}

/// The authenticator of `pairs`, as the binaries build it.
async fn settings(pairs: Vec<Setting>) -> Result<Authenticator, AuthConfigError> {
    authenticator_of(&pairs).await
}

/// The error of settings that must be refused.
fn error(result: Result<Authenticator, AuthConfigError>) -> AuthConfigError {
    result.unwrap_err()
}

/// A dev token for the issuer and audience of [`jwks_settings`].
fn dev_token() -> String {
    mint_dev_token(
        SECRET,
        &DevToken {
            sub: "dev",
            ttl: Duration::from_secs(60),
            issuer: Some(ISSUER),
            audience: Some(AUDIENCE),
            ..Default::default()
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_jwks_needs_an_issuer_and_an_audience() {
    let (_file, jwks, issuer, audience) = jwks_settings();
    let err = error(settings(vec![jwks.clone(), audience.clone()]).await);
    assert!(matches!(err, AuthConfigError::JwksNeedsIssuer), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{JWT_ISSUER_ENV} is required"))
    );
    let err = error(settings(vec![jwks.clone(), issuer.clone()]).await);
    assert!(matches!(err, AuthConfigError::JwksNeedsAudience), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{JWT_AUDIENCE_ENV} is required"))
    );
    let err = error(
        settings(vec![
            jwks.clone(),
            issuer.clone(),
            (JWT_AUDIENCE_ENV, ",".into()),
        ])
        .await,
    );
    assert!(matches!(err, AuthConfigError::Audience), "{err}");
}

#[tokio::test]
async fn a_dev_secret_beside_a_jwks_needs_the_allow_flag() {
    let (rsa, _) = keys();
    let (_file, jwks, issuer, audience) = jwks_settings();
    let secret = (
        DEV_JWT_SECRET_ENV,
        String::from_utf8(SECRET.to_vec()).unwrap(),
    );
    let all = vec![
        jwks.clone(),
        issuer.clone(),
        audience.clone(),
        secret.clone(),
    ];
    let err = error(settings(all.clone()).await);
    assert!(matches!(err, AuthConfigError::DevSecretWithJwks), "{err}");
    assert!(err.to_string().contains(ALLOW_DEV_SECRET_WITH_JWKS_ENV));
    let mut allowed = all.clone();
    allowed.push((ALLOW_DEV_SECRET_WITH_JWKS_ENV, "true".into()));
    let Ok(Authenticator::Jwt(both)) = settings(allowed).await else {
        panic!("dev secret beside a JWKS, explicitly allowed");
    };
    // Both kinds of token then verify, each against the same issuer and audience.
    assert!(both.verify(&rsa.sign(&access("a"))).await.is_ok());
    assert!(both.verify(&dev_token()).await.is_ok());
    let mut bad_flag = all.clone();
    bad_flag.push((ALLOW_DEV_SECRET_WITH_JWKS_ENV, "yes".into()));
    assert!(matches!(
        error(settings(bad_flag).await),
        AuthConfigError::AllowFlag(_)
    ));
}

#[tokio::test]
async fn a_jwks_url_is_https_and_the_only_jwks_source() {
    let (_file, jwks, issuer, audience) = jwks_settings();
    let err = error(
        settings(vec![
            (JWKS_URL_ENV, "http://idp.example.com/jwks.json".into()),
            issuer.clone(),
            audience.clone(),
        ])
        .await,
    );
    assert!(matches!(err, AuthConfigError::JwksUrl { .. }), "{err}");
    let err = error(
        settings(vec![
            (JWKS_URL_ENV, "https://idp.example.com/jwks.json".into()),
            jwks.clone(),
            issuer.clone(),
            audience.clone(),
        ])
        .await,
    );
    assert!(matches!(err, AuthConfigError::TwoJwksSources), "{err}");
}

#[tokio::test]
async fn a_jwks_alone_verifies_its_tokens_and_refuses_dev_tokens() {
    let (rsa, _) = keys();
    let (_file, jwks, issuer, audience) = jwks_settings();
    let Ok(Authenticator::Jwt(verifier)) = settings(vec![jwks, issuer, audience]).await else {
        panic!("a JWKS with issuer and audience");
    };
    assert!(verifier.verify(&rsa.sign(&access("a"))).await.is_ok());
    // Without a dev secret, a dev token is just an HS256 token: refused.
    assert_refused(&verifier, &dev_token(), "no dev secret configured").await;
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_a_removed_key_is_dropped_within_max_age() {
    let (rsa, ec) = keys();
    let file = JwksFile::new(&[&rsa.jwk]);
    let timing = JwksTiming {
        // Far longer than the two verifications between the last fetch and
        // the "cached for max_age" check take on a loaded machine.
        max_age: Duration::from_secs(4),
        refresh_interval_min: Duration::ZERO,
        stale_max: Duration::from_secs(3600),
    };
    let verifier = jwks_verifier(&file, timing).await;
    let (old, new) = (rsa.sign(&access("a")), ec.sign(&access("a")));
    assert!(verifier.verify(&old).await.is_ok());
    assert_refused(&verifier, &new, "not published yet").await;
    // Rotation: the new key is published, then used; its kid is unknown, so
    // the set is fetched again at once.
    file.write(&[&rsa.jwk, &ec.jwk]);
    assert!(verifier.verify(&new).await.is_ok());
    // The old key is withdrawn: trusted until the set is max_age old, no
    // longer after that.
    file.write(&[&ec.jwk]);
    assert!(verifier.verify(&old).await.is_ok(), "cached for max_age");
    // The last fetch that listed it was before this sleep, so it is more
    // than max_age old now. (How long the sleep took is the test's, not the
    // verifier's, so it is not asserted.)
    tokio::time::sleep(timing.max_age).await;
    assert_refused(&verifier, &old, "withdrawn, after max_age").await;
    assert!(verifier.verify(&new).await.is_ok());
}

/// An unknown kid fetches no sooner than refresh_interval_min after the
/// last fetch, and does fetch once the interval has passed. (That many
/// unknown kids make at most one fetch per interval is counted against a
/// JWKS server in tests/api/tokens.rs.)
#[tokio::test]
async fn unknown_kids_fetch_again_only_after_the_interval() {
    let (rsa, ec) = keys();
    let file = JwksFile::new(&[&rsa.jwk]);
    let timing = JwksTiming {
        refresh_interval_min: Duration::from_secs(2),
        ..JwksTiming::default()
    };
    let started = std::time::Instant::now();
    let verifier = jwks_verifier(&file, timing).await;
    // Published after the start-up fetch: within the interval no fetch may
    // start, so the new key is not seen. (Only asserted while the interval
    // surely has not passed: the start-up fetch came after `started`.)
    file.write(&[&rsa.jwk, &ec.jwk]);
    let checked_at = started.elapsed();
    let early = verifier.verify(&ec.sign(&access("a"))).await;
    if checked_at < timing.refresh_interval_min {
        let status = early.expect_err("fetched too recently");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }
    assert!(verifier.verify(&rsa.sign(&access("a"))).await.is_ok());
    // Once the interval has passed since the start-up fetch (which ended
    // before `jwks_verifier` returned), the unknown kid fetches again.
    tokio::time::sleep(timing.refresh_interval_min).await;
    assert!(
        verifier.verify(&ec.sign(&access("a"))).await.is_ok(),
        "fetched again after the interval"
    );
}

#[tokio::test]
async fn when_fetches_fail_the_last_keys_serve_until_stale_max() {
    let (rsa, _) = keys();
    let file = JwksFile::new(&[&rsa.jwk]);
    let timing = JwksTiming {
        max_age: Duration::from_millis(100),
        refresh_interval_min: Duration::ZERO,
        // Far longer than the 200 ms sleep and one verification take on a
        // loaded machine, so "stale but usable" cannot miss it.
        stale_max: Duration::from_secs(3),
    };
    let verifier = jwks_verifier(&file, timing).await;
    let token = rsa.sign(&access("a"));
    std::fs::remove_file(&file.0).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(verifier.verify(&token).await.is_ok(), "stale but usable");
    tokio::time::sleep(timing.stale_max).await;
    assert_refused(&verifier, &token, "older than stale_max").await;
}
