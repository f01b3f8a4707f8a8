//! Token verification: `JwtVerifier::verify` on arbitrary tokens, and on
//! arbitrary header and claims that carry a valid signature.
//!
//! The verifier is the production setup plus a dev secret (explicitly
//! allowed): issuer and audience required, a JWKS file with one RSA and one
//! P-256 key generated at start-up.
//!
//! Input: a mode byte, then text.
//! * Mode `h`, `r`, `e`: the text is `<header JSON>\n<claims JSON>`, signed
//!   with the dev secret (HS256), the RSA key (RS256) or the EC key (ES256)
//!   over exactly those bytes, so the fuzzer explores the claim checks with
//!   signatures that hold.
//! * Any other mode: the text is the token itself.
//!
//! Properties:
//! * verification never panics, and every refusal is UNAUTHENTICATED with a
//!   `Bearer` message;
//! * a token is accepted only if an independent reading of its header and
//!   claims agrees: `alg` HS256, RS256 or ES256; `iss` the issuer; `exp` a
//!   number in the future (within the 30 s leeway); `nbf`, when present, a
//!   number in the past (same leeway); the audience in `aud` (a string or a
//!   list), or `client_id` with `token_use: access`; `token_use` absent or
//!   `access`; `sub` a non-empty string of at most SUB_BYTES_MAX bytes
//!   without control characters, and the caller's sub is that `sub`; the
//!   caller is an admin exactly when `scope` lists ADMIN_SCOPE;
//! * free-form tokens (the last mode) are never accepted: nobody can forge
//!   a signature by chance.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use payment::auth::{ADMIN_SCOPE, JwksSource, JwtVerifier, SUB_BYTES_MAX};
use serde_json::Value;
use std::sync::OnceLock;

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "payments";
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret";
const LEEWAY_SECS: f64 = 30.0;

struct Setup {
    verifier: JwtVerifier,
    rsa: EncodingKey,
    ec: EncodingKey,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        body.join("\n")
    )
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).expect("public JWK");
    jwk.common.key_id = Some(kid.into());
    jwk
}

/// A runtime with timers: the verifier bounds its waits for a JWKS fetch.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        let rsa_pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
        let rsa_der: Pkcs8V1Der = rsa_pair.as_der().expect("PKCS#8");
        let rsa = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", rsa_der.as_ref()).as_bytes())
            .expect("RSA encoding key");
        let ec_pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .expect("EC key");
        let ec = EncodingKey::from_ec_der(ec_pair.to_pkcs8v1().expect("PKCS#8").as_ref());
        let set = JwkSet {
            keys: vec![
                jwk(&rsa, Algorithm::RS256, "rsa"),
                jwk(&ec, Algorithm::ES256, "ec"),
            ],
        };
        let path = std::env::temp_dir().join(format!("fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(&path, serde_json::to_vec(&set).expect("JWKS")).expect("JWKS file");
        let verifier = runtime().block_on(async {
            JwtVerifier::new(Some(ISSUER.into()), Some(AUDIENCE.into()))
                .allow_dev_secret_with_jwks()
                .with_dev_secret(SECRET)
                .expect("dev secret")
                .with_jwks(JwksSource::File(path.display().to_string()))
                .await
                .expect("JWKS")
        });
        Setup { verifier, rsa, ec }
    })
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Whether a token with this header and these claims may be accepted, read
/// independently of the verifier.
fn acceptable(header: &Value, claims: &Value) -> bool {
    let alg_ok = matches!(
        header.get("alg").and_then(Value::as_str),
        Some("HS256" | "RS256" | "ES256")
    );
    let str_claim = |name: &str| claims.get(name).and_then(Value::as_str);
    let now = now();
    let exp_ok = claims
        .get("exp")
        .and_then(Value::as_f64)
        .is_some_and(|exp| exp >= now - LEEWAY_SECS - 1.0);
    let nbf_ok = match claims.get("nbf") {
        None => true,
        Some(nbf) => nbf
            .as_f64()
            .is_some_and(|nbf| nbf <= now + LEEWAY_SECS + 1.0),
    };
    let token_use = str_claim("token_use");
    let token_use_ok = claims.get("token_use").is_none() || token_use == Some("access");
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    let client_id_ok = str_claim("client_id") == Some(AUDIENCE) && token_use == Some("access");
    let sub_ok = str_claim("sub").is_some_and(|sub| {
        !sub.is_empty() && sub.len() <= SUB_BYTES_MAX && !sub.chars().any(char::is_control)
    });
    alg_ok
        && str_claim("iss") == Some(ISSUER)
        && exp_ok
        && nbf_ok
        && token_use_ok
        && (aud_ok || client_id_ok)
        && sub_ok
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let setup = setup();
    let text = String::from_utf8_lossy(rest);
    let key = match mode {
        b'h' => Some((EncodingKey::from_secret(SECRET), Algorithm::HS256)),
        b'r' => Some((setup.rsa.clone(), Algorithm::RS256)),
        b'e' => Some((setup.ec.clone(), Algorithm::ES256)),
        _ => None,
    };
    let (token, parts) = match key {
        Some((key, alg)) => {
            let (header, claims) = text.split_once('\n').unwrap_or((&text, ""));
            let message = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(claims)
            );
            let Ok(signature) = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg) else {
                return;
            };
            (
                format!("{message}.{signature}"),
                Some((header.to_owned(), claims.to_owned())),
            )
        }
        None => (text.clone().into_owned(), None),
    };
    let result = runtime().block_on(setup.verifier.verify(&token));
    match (result, parts) {
        (Err(status), _) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{token}");
            assert!(status.message().starts_with("Bearer"), "{token}");
        }
        (Ok(caller), Some((header, claims))) => {
            let header: Value = serde_json::from_str(&header).expect("accepted: JSON header");
            let claims: Value = serde_json::from_str(&claims).expect("accepted: JSON claims");
            assert!(
                acceptable(&header, &claims),
                "accepted a token it must refuse: {header} {claims}"
            );
            assert_eq!(Some(caller.sub.as_str()), claims["sub"].as_str());
            let admin = claims
                .get("scope")
                .and_then(Value::as_str)
                .is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
            assert_eq!(caller.admin, admin, "{claims}");
        }
        (Ok(caller), None) => panic!("accepted a free-form token as {caller:?}: {token}"),
    }
});
