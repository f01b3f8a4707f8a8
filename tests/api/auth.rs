//! Every call has a verified caller, and nobody spends or reads another's
//! money: on the server (bearer JWTs verified by the service) and on the
//! Lambda behind API Gateway (claims from the authorizer only).

use crate::harness::{Bearer, DEV_SECRET, TestApp, fresh_ledger, token};
use crate::helpers::*;
use crate::transport::{Caller as _, valid_requests};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use payment::auth::{Authenticator, DevToken, mint_dev_token};
use payment::pb;
use std::time::Duration;
use tonic::Code;

fn forged_tokens() -> Vec<(&'static str, String)> {
    let other_key = mint_dev_token(
        b"not-the-server-secret-not-the-server-secret",
        &DevToken {
            sub: "alice",
            ttl: Duration::from_secs(600),
            ..Default::default()
        },
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": "alice", "exp": now - 600}),
        &jsonwebtoken::EncodingKey::from_secret(DEV_SECRET.as_bytes()),
    )
    .unwrap();
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let alg_none = format!(
        "{}.{}.",
        part(serde_json::json!({"alg": "none", "typ": "JWT"})),
        part(serde_json::json!({"sub": "alice", "exp": now + 600, "scope": "payments/admin"}))
    );
    vec![
        ("signed with another key", other_key),
        ("expired", expired),
        ("alg none", alg_none),
        ("malformed", "not.a.jwt".into()),
        ("garbage", "%%%".into()),
    ]
}

/// Every method of the contract (`pb::METHODS`, through
/// [`valid_requests`]) is refused without a valid token, whatever the bad
/// bearer, and says so without detail.
#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let mut admin = app.grpc().await;
    let alice = unique("alice");
    add(&mut admin, &alice, "EUR", 100).await.unwrap();
    let mut bearers = vec![("no token", Bearer::none())];
    bearers.extend(
        forged_tokens()
            .into_iter()
            .map(|(name, t)| (name, Bearer::new(&t))),
    );
    let requests = valid_requests(&alice, "k");
    for (name, bearer) in bearers {
        let mut c = app.grpc_with(bearer).await;
        for (method, request) in &requests {
            let status = c
                .call(method, request.clone())
                .await
                .expect_err(&format!("{name}: {}", method.name));
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{name}: {}: {}",
                method.name,
                status.message()
            );
            assert!(
                status.message().starts_with("Bearer"),
                "{name}: {}: {}",
                method.name,
                status.message()
            );
            assert!(
                !status.message().contains("signature"),
                "leaks detail: {}",
                status.message()
            );
        }
    }
    assert_eq!(balance(&mut admin, &alice).await.unwrap(), 100);
}

#[tokio::test]
async fn owners_spend_and_read_their_own_accounts_only() {
    let app = TestApp::spawn().await;
    let (alice_sub, bob_sub) = (unique("alice-user"), unique("bob-user"));
    let mut alice = app.grpc_as(&alice_sub, false).await;
    let mut bob = app.grpc_as(&bob_sub, false).await;
    let mut admin = app.grpc_as(&unique("admin"), true).await;
    let (a, b) = (unique("a"), unique("b"));

    // The owner is the caller; an opening balance needs an admin.
    assert_code(
        add(&mut alice, &a, "EUR", 500).await,
        Code::PermissionDenied,
        "admin",
    );
    let account = add(&mut alice, &a, "EUR", 0).await.unwrap();
    assert_eq!(account.owner, alice_sub);
    add(&mut bob, &b, "EUR", 0).await.unwrap();
    let funding = unique("funding");
    add(&mut admin, &funding, "EUR", 10_000).await.unwrap();
    pay(&mut admin, order("fund-a", &funding, &a, 1_000))
        .await
        .unwrap();

    // Alice pays bob: any existing account may receive.
    pay(&mut alice, order("k1", &a, &b, 100)).await.unwrap();
    // Bob cannot spend alice's money, nor probe whether an account exists.
    assert_code(
        pay(&mut bob, order("k2", &a, &b, 100)).await,
        Code::PermissionDenied,
        "does not own",
    );
    assert_code(
        pay(&mut bob, order("k2", &unique("ghost"), &b, 1)).await,
        Code::PermissionDenied,
        "does not own",
    );
    // Reads: owner yes, others PERMISSION_DENIED whether or not it exists.
    assert_eq!(balance(&mut alice, &a).await.unwrap(), 900);
    assert_code(
        balance(&mut bob, &a).await,
        Code::PermissionDenied,
        "only its owner",
    );
    assert_code(
        balance(&mut bob, &unique("ghost")).await,
        Code::PermissionDenied,
        "only its owner",
    );
    assert_code(
        history_page(&mut bob, &a, 0, "").await,
        Code::PermissionDenied,
        "only its owner",
    );
    assert_code(
        history_page(&mut bob, &unique("ghost"), 0, "").await,
        Code::PermissionDenied,
        "only its owner",
    );
    assert_eq!(history_page(&mut alice, &a, 0, "").await.unwrap().len(), 2);
    // An admin reads everything, and learns NOT_FOUND for unknown ids.
    assert_eq!(balance(&mut admin, &a).await.unwrap(), 900);
    assert_eq!(history_page(&mut admin, &b, 0, "").await.unwrap().len(), 1);
    let ghost = unique("ghost");
    assert_code(balance(&mut admin, &ghost).await, Code::NotFound, &ghost);
    assert_code(
        pay(&mut admin, order("k4", &ghost, &b, 1)).await,
        Code::NotFound,
        &ghost,
    );
    // An admin still cannot spend from someone else's account.
    assert_code(
        pay(&mut admin, order("k3", &a, &b, 1)).await,
        Code::PermissionDenied,
        "does not own",
    );
    assert_eq!(balance(&mut admin, &a).await.unwrap(), 900);
    assert_eq!(balance(&mut admin, &b).await.unwrap(), 100);

    // Balance shards: only an admin may raise them, even on one's own
    // account; an admin learns NOT_FOUND for an unknown id.
    let shards = |id: &str| pb::SetBalanceShardsRequest {
        account_id: id.into(),
        balance_shards: 2,
    };
    let status = alice.set_balance_shards(shards(&a)).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "message: {}",
        status.message()
    );
    assert_eq!(crate::holds::reason(&status), "NOT_ALLOWED", "{status:?}");
    assert_code(
        admin.set_balance_shards(shards(&ghost)).await,
        Code::NotFound,
        &ghost,
    );
    let raised = admin
        .set_balance_shards(shards(&a))
        .await
        .unwrap()
        .into_inner();
    assert!(raised.raised);
    assert_eq!(raised.account.unwrap().balance_shards, 2);
    assert_eq!(balance(&mut alice, &a).await.unwrap(), 900);
}

#[tokio::test]
async fn a_stolen_idempotency_key_is_useless_to_another_caller() {
    let app = TestApp::spawn().await;
    let (alice_sub, bob_sub) = (unique("alice-user"), unique("bob-user"));
    let mut admin = app.grpc().await;
    let mut alice = app.grpc_as(&alice_sub, false).await;
    let mut bob = app.grpc_as(&bob_sub, false).await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut alice, &a, "EUR", 0).await.unwrap();
    add(&mut bob, &b, "EUR", 0).await.unwrap();
    let funding = unique("funding");
    add(&mut admin, &funding, "EUR", 10_000).await.unwrap();
    pay(&mut admin, order("fa", &funding, &a, 1_000))
        .await
        .unwrap();
    pay(&mut admin, order("fb", &funding, &b, 1_000))
        .await
        .unwrap();
    let original = pay(&mut alice, order("secret-key", &a, &b, 250))
        .await
        .unwrap();
    // Bob replays alice's exact request: denied, and he learns nothing of it.
    let status = pay(&mut bob, order("secret-key", &a, &b, 250))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        !status
            .message()
            .contains(&original.transaction.unwrap().transaction_id)
    );
    // The same key on bob's own account is simply bob's own new payment.
    let bobs = pay(&mut bob, order("secret-key", &b, &a, 10))
        .await
        .unwrap();
    assert!(!bobs.replayed);
    assert_eq!(balance(&mut alice, &a).await.unwrap(), 760);
    assert_eq!(balance(&mut bob, &b).await.unwrap(), 1_240);
}

/// Headers that name alice, as a proxy or a careless gateway might set them.
fn identity_headers(sub: &str) -> [(&'static str, &str); 3] {
    [
        ("x-user", sub),
        ("x-caller-sub", sub),
        ("x-amzn-oidc-identity", sub),
    ]
}

#[tokio::test]
async fn identity_never_comes_from_headers() {
    use prost::Message;
    let app = TestApp::spawn().await;
    let alice_sub = unique("alice-user");
    let mut alice = app.grpc_as(&alice_sub, false).await;
    let a = unique("a");
    add(&mut alice, &a, "EUR", 0).await.unwrap();
    let headers = identity_headers(&alice_sub);

    // The server: no token is UNAUTHENTICATED, another's token is
    // PERMISSION_DENIED, whatever the headers say.
    let mut anonymous = app.grpc_with(Bearer::none()).await;
    let mut mallory = app.grpc_as("mallory", false).await;
    for (client, want) in [
        (&mut anonymous, Code::Unauthenticated),
        (&mut mallory, Code::PermissionDenied),
    ] {
        let mut request = tonic::Request::new(pb::GetAccountBalanceRequest {
            account_id: a.clone(),
        });
        for (name, value) in headers {
            request.metadata_mut().insert(name, value.parse().unwrap());
        }
        let status = client.get_account_balance(request).await.unwrap_err();
        assert_eq!(status.code(), want, "{status:?}");
    }
    // The headers alone do not make alice either: her own token does.
    assert_eq!(balance(&mut alice, &a).await.unwrap(), 0);

    // The Lambda handler in jwt mode (PAYMENT_AUTH_MODE=jwt), on the same
    // ledger: the same answers, through API Gateway events.
    let service = payment::stack::http_service(
        payment::service::PaymentApi::new(app.ledger.clone(), crate::harness::dev_auth()),
        "*",
    )
    .await
    .unwrap();
    let read = pb::GetAccountBalanceRequest {
        account_id: a.clone(),
    }
    .encode_to_vec();
    let mallory_token = format!("Bearer {}", token("mallory", false));
    let alice_token = format!("Bearer {}", token(&alice_sub, false));
    for (bearer, want) in [
        (None, "16"),
        (Some(mallory_token.as_str()), "7"),
        (Some(alice_token.as_str()), "0"),
    ] {
        let mut with: Vec<(&str, &str)> = headers.to_vec();
        if let Some(bearer) = bearer {
            with.push(("authorization", bearer));
        }
        assert_eq!(
            lambda_status(
                &service,
                gateway_event("GetAccountBalance", &read, None, &with)
            )
            .await,
            want,
            "bearer {bearer:?}"
        );
    }
}

#[tokio::test]
async fn the_lambda_in_jwt_mode_ignores_authorizer_claims() {
    use prost::Message;
    let ledger = fresh_ledger().await;
    let service = payment::stack::http_service(
        payment::service::PaymentApi::new(ledger.clone(), crate::harness::dev_auth()),
        "*",
    )
    .await
    .unwrap();
    let a = unique("a");
    let alice_token = format!("Bearer {}", token("alice", false));
    let mallory_token = format!("Bearer {}", token("mallory", false));
    let admin_claims = || Some(serde_json::json!({"sub": "alice", "scope": "payments/admin"}));
    let open = |initial| {
        pb::AddAccountRequest {
            account_id: a.clone(),
            currency: "EUR".into(),
            initial_balance: initial,
            ..Default::default()
        }
        .encode_to_vec()
    };
    // Claims of an admin in the event, no token: not a caller.
    assert_eq!(
        lambda_status(
            &service,
            gateway_event("AddAccount", &open(100), admin_claims(), &[])
        )
        .await,
        "16"
    );
    // alice's own (non-admin) token with admin claims in the event: the
    // token decides, so she may not open with money...
    assert_eq!(
        lambda_status(
            &service,
            gateway_event(
                "AddAccount",
                &open(100),
                admin_claims(),
                &[("authorization", alice_token.as_str())]
            )
        )
        .await,
        "7"
    );
    // ... and may open it empty, owned by the token's subject.
    assert_eq!(
        lambda_status(
            &service,
            gateway_event(
                "AddAccount",
                &open(0),
                admin_claims(),
                &[("authorization", alice_token.as_str())]
            )
        )
        .await,
        "0"
    );
    let read = pb::GetAccountBalanceRequest {
        account_id: a.clone(),
    }
    .encode_to_vec();
    // mallory's token with claims that name alice (an admin): still mallory.
    assert_eq!(
        lambda_status(
            &service,
            gateway_event(
                "GetAccountBalance",
                &read,
                admin_claims(),
                &[("authorization", mallory_token.as_str())]
            )
        )
        .await,
        "7"
    );
    // Claims alone, without a token: UNAUTHENTICATED, also for a read.
    assert_eq!(
        lambda_status(
            &service,
            gateway_event("GetAccountBalance", &read, admin_claims(), &[])
        )
        .await,
        "16"
    );
    assert_eq!(
        lambda_status(
            &service,
            gateway_event(
                "GetAccountBalance",
                &read,
                admin_claims(),
                &[("authorization", alice_token.as_str())]
            )
        )
        .await,
        "0"
    );
}

/// An API Gateway event for `method` with `body`, and the given authorizer
/// claims (None: no authorizer) and extra headers.
fn gateway_event(
    method: &str,
    body: &[u8],
    claims: Option<serde_json::Value>,
    headers: &[(&str, &str)],
) -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/get-account-balance.json");
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let path = format!("/payment.v1.PaymentService/{method}");
    event["rawPath"] = path.clone().into();
    event["requestContext"]["http"]["path"] = path.into();
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(crate::helpers::grpc_web::frame(body))
        .into();
    match claims {
        Some(claims) => event["requestContext"]["authorizer"]["jwt"]["claims"] = claims,
        None => {
            event["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    // The file's placeholder token is not one: only `headers` may carry a token.
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    for (k, v) in headers {
        event["headers"][*k] = (*v).into();
    }
    event.to_string()
}

async fn lambda_status(service: &payment::stack::HttpService, event: String) -> String {
    let response = crate::lambda::invoke_raw(service, &event).await;
    let header = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body();
    header.unwrap_or_else(|| {
        let (_, trailers) = crate::helpers::grpc_web::parse_frames(&body);
        trailers
            .into_iter()
            .find(|(k, _)| k == "grpc-status")
            .map(|(_, v)| v)
            .unwrap_or_default()
    })
}

#[tokio::test]
async fn behind_api_gateway_the_caller_comes_only_from_the_authorizer() {
    use prost::Message;
    let ledger = fresh_ledger().await;
    let service = payment::stack::http_service(
        payment::service::PaymentApi::new(ledger.clone(), Authenticator::ApiGateway),
        "*",
    )
    .await
    .unwrap();
    let a = unique("a");
    let claims = |sub: &str, scope: &str| Some(serde_json::json!({"sub": sub, "scope": scope}));
    let open = |initial| {
        pb::AddAccountRequest {
            account_id: a.clone(),
            currency: "EUR".into(),
            initial_balance: initial,
            ..Default::default()
        }
        .encode_to_vec()
    };
    // A non-admin cannot open with money; the owner is the authorizer's sub.
    assert_eq!(
        lambda_status(
            &service,
            gateway_event("AddAccount", &open(100), claims("alice", ""), &[])
        )
        .await,
        "7"
    );
    assert_eq!(
        lambda_status(
            &service,
            gateway_event(
                "AddAccount",
                &open(100),
                claims("alice", "openid payments/admin"),
                &[]
            )
        )
        .await,
        "0"
    );
    let read = pb::GetAccountBalanceRequest {
        account_id: a.clone(),
    }
    .encode_to_vec();
    assert_eq!(
        lambda_status(
            &service,
            gateway_event("GetAccountBalance", &read, claims("alice", ""), &[])
        )
        .await,
        "0"
    );
    assert_eq!(
        lambda_status(
            &service,
            gateway_event("GetAccountBalance", &read, claims("bob", ""), &[])
        )
        .await,
        "7"
    );
    // No authorizer context: UNAUTHENTICATED, whatever the headers claim,
    // even a token that the dev secret would accept.
    let dev_token = format!("Bearer {}", token("alice", true));
    for headers in [
        vec![],
        vec![("authorization", dev_token.as_str())],
        vec![("x-user", "alice"), ("x-amzn-oidc-identity", "alice")],
    ] {
        assert_eq!(
            lambda_status(
                &service,
                gateway_event("GetAccountBalance", &read, None, &headers)
            )
            .await,
            "16"
        );
    }
    // Claims without a subject are not a caller.
    assert_eq!(
        lambda_status(
            &service,
            gateway_event(
                "GetAccountBalance",
                &read,
                Some(serde_json::json!({"scope": "payments/admin"})),
                &[]
            )
        )
        .await,
        "16"
    );
}
