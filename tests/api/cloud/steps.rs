//! The calls of the exercise, step by step, on one deployment. The steps
//! run in the order `exercise` calls them, and each leaves the accounts as
//! the next expects them: the payment client at the end reads what every
//! payment before it left on account a.

use super::stack::{Cloud, Gateway};
use super::{ORIGIN, template};
use crate::deployed::{WebClient, a_retry_replays, errors_come_through, history_pages_continue};
use crate::harness::{Bearer, web_client};
use crate::helpers::grpc_web::{WebReply, request_body};
use crate::helpers::{assert_code, unique};
use crate::transport::{RawWeb, every_call};
use base64::Engine as _;
use payment::pb;
use prost::Message;
use std::process::Command;
use std::time::{Duration, Instant};
use tonic::Code;

/// What the steps share: the deployment, its tokens, the crate's client at
/// the stack's ApiUrl (http://<id>.execute-api.localhost:<port>) as the
/// admin, and the two accounts the first step opens.
pub(super) struct Run<'a> {
    cloud: &'a Cloud,
    gateway: Gateway,
    /// A client-credentials token with scope payments/admin, and its sub.
    admin: String,
    admin_sub: String,
    /// An ordinary Cognito user's token, and his sub.
    bob: String,
    bob_sub: String,
    web: WebClient,
    /// Opened with 10,000 by the first step; every payment is from a to b
    /// (but one, to c, over grpc-web-text).
    a: String,
    b: String,
}

impl<'a> Run<'a> {
    pub(super) fn new(cloud: &'a Cloud) -> Run<'a> {
        let admin = cloud.token(&["admin"]);
        let admin_sub = sub_of(&admin);
        let bob = cloud.token(&["user", &format!("bob-{}@example.com", unique("e2e"))]);
        let bob_sub = sub_of(&bob);
        assert_ne!(admin_sub, bob_sub);
        Run {
            cloud,
            gateway: cloud.gateway(),
            web: web_client(&cloud.api_url(), Bearer::new(&admin)),
            admin,
            admin_sub,
            bob,
            bob_sub,
            a: unique("a"),
            b: unique("b"),
        }
    }

    fn order(&self, key: &str, amount: i64) -> pb::MakePaymentRequest {
        order(&self.a, &self.b, key, amount)
    }

    /// GetAccountBalance of `a`, encoded: the call the raw steps make.
    fn probe(&self) -> Vec<u8> {
        balance_of(&self.a).encode_to_vec()
    }

    /// Accounts a and b opened (the first call is the cold start), a
    /// payment and its replay, another payment, and twenty warm reads.
    pub(super) async fn accounts_and_payments(&mut self) {
        let cold = Instant::now();
        let opened = self
            .web
            .add_account(pb::AddAccountRequest {
                account_id: self.a.clone(),
                display_name: "A".into(),
                currency: "EUR".into(),
                initial_balance: 10_000,
                ..Default::default()
            })
            .await
            .expect("the first call (cold start)")
            .into_inner()
            .account
            .unwrap();
        let cold_ms = cold.elapsed().as_secs_f64() * 1e3;
        assert_eq!(opened.balance, 10_000);
        self.web
            .add_account(pb::AddAccountRequest {
                account_id: self.b.clone(),
                currency: "EUR".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let first = self.order("k1", 2_500);
        a_retry_replays(&mut self.web, first).await;
        let second = self.order("k2", 500);
        self.web.make_payment(second).await.unwrap();

        let mut warm_ms = Vec::new();
        for _ in 0..20 {
            let call = Instant::now();
            let balance = self.balance(&self.a.clone()).await;
            warm_ms.push(call.elapsed().as_secs_f64() * 1e3);
            assert_eq!(balance, 7_000);
        }
        warm_ms.sort_by(f64::total_cmp);
        eprintln!(
            "cloud: first call (cold start, AddAccount) {cold_ms:.0} ms; warm GetAccountBalance p50 {:.1} ms, max {:.1} ms (20 calls, gRPC-Web through the emulated gateway)",
            warm_ms[warm_ms.len() / 2],
            warm_ms[warm_ms.len() - 1]
        );
    }

    async fn balance(&mut self, id: &str) -> i64 {
        self.web
            .get_account_balance(balance_of(id))
            .await
            .unwrap()
            .into_inner()
            .account
            .unwrap()
            .balance
    }

    /// History in pages, and the error codes from the function through the
    /// gateway, none of which moved money; then every method of the
    /// contract (walked from pb::METHODS), each checked, on accounts of its
    /// own: holds, refunds, the lookups by key and by id and the listing
    /// run on the emulator's DynamoDB and its indexes too.
    pub(super) async fn history_errors_and_every_call(&mut self) {
        history_pages_continue(&mut self.web, &self.a).await;
        let (a, b) = (&self.a, &self.b);
        let order = |key: &str, amount: i64| order(a, b, key, amount);
        errors_come_through(&mut self.web, a, order, ["k3", "k1", "k4"]).await;
        assert_eq!(
            self.balance(&self.a.clone()).await,
            7_000,
            "no failed call moved money"
        );
        every_call(
            &mut self.web,
            &self.admin_sub,
            "deployed stack, gRPC-Web binary",
        )
        .await;
    }

    /// Calls over grpc-web-text, raw, through the Host header: an account
    /// c opened and paid, its balance, a's history paged, and NOT_FOUND.
    pub(super) async fn text_calls(&self) {
        let c = unique("c");
        let reply = self
            .text(
                "AddAccount",
                pb::AddAccountRequest {
                    account_id: c.clone(),
                    currency: "EUR".into(),
                    ..Default::default()
                },
            )
            .await;
        assert_ok(&reply, "AddAccount (text)");
        assert!(
            reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/grpc-web-text")),
            "{:?}",
            reply.headers
        );
        let paid = pb::MakePaymentRequest {
            recipient_id: c.clone(),
            ..self.order("t1", 100)
        };
        let reply = self.text("MakePayment", paid).await;
        assert_ok(&reply, "MakePayment (text)");
        let paid = pb::MakePaymentResponse::decode(reply.messages[0].clone()).unwrap();
        assert_eq!(paid.transaction.unwrap().recipient_id, c);
        let reply = self.text("GetAccountBalance", balance_of(&c)).await;
        assert_ok(&reply, "GetAccountBalance (text)");
        let account = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
            .unwrap()
            .account
            .unwrap();
        assert_eq!(account.balance, 100);
        self.text_history().await;
        let ghost = unique("ghost");
        let reply = self.text("GetAccountBalance", balance_of(&ghost)).await;
        assert_eq!(
            reply.grpc_status().as_deref(),
            Some("5"),
            "NOT_FOUND (text)"
        );
    }

    /// One grpc-web-text call as the admin.
    async fn text(&self, method: &str, message: impl Message) -> WebReply {
        self.gateway
            .rpc_text(method, message.encode_to_vec(), &self.admin)
            .await
    }

    /// a's history over grpc-web-text: three entries, then the opening
    /// credit on the page after.
    async fn text_history(&self) {
        let history = |page_size: i32, page_token: String| pb::GetTransactionHistoryRequest {
            account_id: self.a.clone(),
            page_size,
            page_token,
        };
        let reply = self
            .text("GetTransactionHistory", history(3, String::new()))
            .await;
        assert_ok(&reply, "GetTransactionHistory (text)");
        let entries: Vec<pb::GetTransactionHistoryResponse> = reply.decoded();
        assert_eq!(
            entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            [4, 3, 2]
        );
        let next = history(3, entries[2].next_page_token.clone());
        let reply = self.text("GetTransactionHistory", next).await;
        assert_ok(&reply, "GetTransactionHistory page 2 (text)");
        assert_eq!(reply.messages.len(), 1, "the opening credit is left");
    }

    /// Every method of the contract over grpc-web-text, raw, through the
    /// Host header; and a body that is not base64.
    pub(super) async fn every_call_as_text(&self) {
        let authorization = format!("Bearer {}", self.admin);
        let mut text = RawWeb {
            base: self.gateway.base.clone(),
            text: true,
            headers: vec![
                ("host".into(), self.gateway.host.clone()),
                ("authorization".into(), authorization.clone()),
            ],
        };
        every_call(&mut text, &self.admin_sub, "deployed stack, grpc-web-text").await;
        let headers = [("authorization", authorization.as_str())];
        let reply = self
            .gateway
            .call("GetAccountBalance", true, b"%%%".to_vec(), &headers)
            .await;
        assert_eq!(
            (reply.http_status, reply.grpc_status().as_deref()),
            (200, Some("3")),
            "bad base64 is INVALID_ARGUMENT: {}",
            reply.grpc_message()
        );
    }

    /// The authorizer: no token, a bad signature, another audience, an
    /// expired token, a token of another issuer: 401 from the gateway, and
    /// the function never runs.
    pub(super) async fn authorizer(&self) {
        let stranger = self.cloud.token(&["stranger"]);
        let short_lived = self.cloud.token(&["short-lived"]);
        let mut tampered = self.admin.clone().into_bytes();
        let middle = self.admin.rfind('.').unwrap() + 10;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let dev_token = crate::harness::token(&self.admin_sub, true);
        tokio::time::sleep(Duration::from_secs(2)).await; // short_lived expires
        let before = self.cloud.invocations_settled(0).await;
        for (what, authorization) in [
            ("no token", None),
            ("a bad signature", Some(format!("Bearer {tampered}"))),
            ("another audience", Some(format!("Bearer {stranger}"))),
            ("an expired token", Some(format!("Bearer {short_lived}"))),
            (
                "an HS256 token of another issuer",
                Some(format!("Bearer {dev_token}")),
            ),
            ("not a JWT", Some("Bearer not-a-jwt".to_owned())),
        ] {
            let reply = self
                .gateway
                .rpc("GetAccountBalance", self.probe(), authorization.as_deref())
                .await;
            assert_eq!(reply.http_status, 401, "{what}: {:?}", reply.headers);
            assert_eq!(reply.grpc_status(), None, "{what}: answered by the gateway");
        }
        let reply = self.as_admin().await;
        assert_ok(&reply, "the same call with a valid token");
        let after = self.cloud.invocations_settled(before + 1).await;
        assert_eq!(
            after,
            before + 1,
            "the function ran only for the valid call, not for the six refused ones"
        );
    }

    /// The probe, binary, as the admin, from the allowed origin.
    async fn as_admin(&self) -> WebReply {
        let authorization = format!("Bearer {}", self.admin);
        self.gateway
            .rpc("GetAccountBalance", self.probe(), Some(&authorization))
            .await
    }

    /// Identity comes from the authorizer's claims only: bob (an ordinary
    /// Cognito user) is who his token says, whatever else the request says.
    pub(super) async fn identity_from_claims(&mut self) {
        let mut bob_web = web_client(&self.cloud.api_url(), Bearer::new(&self.bob));
        let bobs = unique("bobs");
        bob_web
            .add_account(pb::AddAccountRequest {
                account_id: bobs.clone(),
                currency: "EUR".into(),
                ..Default::default()
            })
            .await
            .expect("bob opens an account of his own");
        assert_code(
            bob_web
                .add_account(pb::AddAccountRequest {
                    account_id: unique("rich"),
                    currency: "EUR".into(),
                    initial_balance: 1,
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
            "admin",
        );
        self.spoofed_identity_headers_are_ignored().await;
        let mut bob_pays = self.order("b1", 1);
        bob_pays.idempotency_key = unique("bob");
        assert_code(
            bob_web.make_payment(bob_pays).await,
            Code::PermissionDenied,
            "does not own",
        );
        let bobs_balance = bob_web
            .get_account_balance(balance_of(&bobs))
            .await
            .unwrap()
            .into_inner()
            .account
            .unwrap();
        assert_eq!(bobs_balance.balance, 0);
        // The admin (scope payments/admin from client credentials) reads bob's account.
        self.web
            .get_account_balance(balance_of(&bobs))
            .await
            .unwrap();
    }

    /// Bob reads a's account with headers that name the admin: refused, and
    /// the refusal names bob's sub, from the claims.
    async fn spoofed_identity_headers_are_ignored(&self) {
        let authorization = format!("Bearer {}", self.bob);
        let admin_sub = self.admin_sub.as_str();
        let spoofed = [
            ("authorization", authorization.as_str()),
            ("x-amzn-oidc-identity", admin_sub),
            ("x-payment-caller", admin_sub),
            ("sub", admin_sub),
            ("scope", "payments/admin"),
        ];
        let body = request_body(&self.probe(), false);
        let reply = self
            .gateway
            .call("GetAccountBalance", false, body, &spoofed)
            .await;
        assert_eq!(
            reply.grpc_status().as_deref(),
            Some("7"),
            "PERMISSION_DENIED"
        );
        let message = reply.message();
        assert!(
            message.contains(&format!("{} may not read account", self.bob_sub)),
            "the caller is bob's sub from the claims: {message}"
        );
    }

    /// CORS: the preflight is answered by the gateway with the template's
    /// headers (the function does not run), and answers carry them too.
    pub(super) async fn cors(&self) {
        let (allow_headers, allow_methods, expose_headers, max_age) = template_cors();
        let before = self.cloud.invocations_settled(0).await;
        let preflight = self.preflight(ORIGIN, true).await;
        assert_eq!(preflight.http_status, 204, "{:?}", preflight.headers);
        assert_eq!(
            header(&preflight, "access-control-allow-origin").as_deref(),
            Some(ORIGIN)
        );
        assert_eq!(
            header(&preflight, "access-control-allow-headers"),
            Some(allow_headers)
        );
        assert_eq!(
            header(&preflight, "access-control-allow-methods"),
            Some(allow_methods)
        );
        assert_eq!(header(&preflight, "access-control-max-age"), Some(max_age));
        let elsewhere = self.preflight("https://evil.example", false).await;
        assert_eq!(
            header(&elsewhere, "access-control-allow-origin"),
            None,
            "an origin the template does not list gets no CORS headers"
        );
        let answered = self.as_admin().await;
        assert_ok(&answered, "a call from the allowed origin");
        // Exactly one Access-Control-Allow-Origin, the gateway's, as on AWS (a
        // browser refuses an answer with two; scripts/ministack-launch.py drops
        // the function's, which the emulator kept beside the gateway's).
        let origins: Vec<_> = answered
            .headers
            .get_all("access-control-allow-origin")
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(origins, [ORIGIN], "{:?}", answered.headers);
        assert!(
            answered
                .headers
                .get_all("access-control-expose-headers")
                .iter()
                .any(|v| v.to_str().ok() == Some(expose_headers.as_str())),
            "{:?}",
            answered.headers
        );
        let after = self.cloud.invocations_settled(before + 1).await;
        assert_eq!(after, before + 1, "the preflights did not run the function");
    }

    /// A CORS preflight of MakePayment from `origin` (asking for the
    /// gRPC-Web headers, or for none).
    async fn preflight(&self, origin: &str, with_headers: bool) -> WebReply {
        let mut headers = vec![
            ("origin", origin),
            ("access-control-request-method", "POST"),
        ];
        if with_headers {
            headers.push((
                "access-control-request-headers",
                "authorization,content-type,x-grpc-web",
            ));
        }
        self.gateway
            .send(
                http::Method::OPTIONS,
                "/payment.v1.PaymentService/MakePayment",
                &headers,
                Vec::new(),
            )
            .await
    }

    /// payment-client at the stack's ApiUrl: with a Cognito token it shows
    /// a's balance; without one the gateway answers 401 itself (no
    /// grpc-status), which the client reads as UNAUTHENTICATED, as the gRPC
    /// spec maps it.
    pub(super) async fn payment_client(&self) {
        let output = self.payment_client_balance(Some(&self.admin));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "payment-client: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let shown: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
        // 10,000 opening, 2,500 and 500 to b, 100 to c over grpc-web-text.
        assert_eq!(shown["balance"], 6_900);
        assert_eq!(shown["owner"], self.admin_sub.as_str());

        let output = self.payment_client_balance(None);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the error as JSON");
        assert_eq!(report["error"]["code"], "UNAUTHENTICATED", "{report}");
    }

    /// `payment-client --json balance a` over gRPC-Web at the stack's ApiUrl.
    fn payment_client_balance(&self, token: Option<&str>) -> std::process::Output {
        let api_url = self.cloud.api_url();
        let mut command = Command::new(env!("CARGO_BIN_EXE_payment-client"));
        command.args(["--grpc-web", "--endpoint", &api_url]);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command
            .args(["--json", "balance", &self.a])
            .env_remove("PAYMENT_TOKEN")
            .env_remove("PAYMENT_ENDPOINT")
            .output()
            .expect("payment-client")
    }
}

/// A payment from `a` to `b` through API Gateway.
fn order(a: &str, b: &str, key: &str, amount: i64) -> pb::MakePaymentRequest {
    pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: a.into(),
        recipient_id: b.into(),
        amount,
        currency: "EUR".into(),
        memo: "through API Gateway".into(),
    }
}

fn balance_of(id: &str) -> pb::GetAccountBalanceRequest {
    pb::GetAccountBalanceRequest {
        account_id: id.into(),
    }
}

#[track_caller]
fn assert_ok(reply: &WebReply, what: &str) {
    assert_eq!(
        (reply.http_status, reply.grpc_status().as_deref()),
        (200, Some("0")),
        "{what}: {}",
        reply.grpc_message()
    );
}

fn header(reply: &WebReply, name: &str) -> Option<String> {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The `sub` claim of a JWT (not verified: the test's own tokens).
fn sub_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&json).expect("claims");
    claims["sub"].as_str().expect("sub").to_owned()
}

/// The template's CORS configuration of the HTTP API, as header values.
fn template_cors() -> (String, String, String, String) {
    let template = template();
    let cors = &template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"];
    let list = |key: &str| {
        cors[key]
            .as_sequence()
            .unwrap_or_else(|| panic!("CorsConfiguration.{key}"))
            .iter()
            .map(|v| v.as_str().expect("a string"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let max_age = cors["MaxAge"].as_u64().expect("MaxAge").to_string();
    (
        list("AllowHeaders"),
        list("AllowMethods"),
        list("ExposeHeaders"),
        max_age,
    )
}
