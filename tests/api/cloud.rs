//! End to end on the local AWS cloud (`make cloud`): template.yaml deployed
//! with `sam deploy` to the ministack emulator on 127.0.0.1, called through
//! its API Gateway (the HTTP API, its JWT authorizer and CORS) with tokens
//! from its Cognito, the function running as deployed
//! (PAYMENT_AUTH_MODE=apigateway) on the emulator's DynamoDB.
//!
//! One deployment serves the whole test (a deploy takes about a minute). The
//! ledger's correctness is tested on DynamoDB Local elsewhere; here the
//! payment path's conditions, transactions and cancellation reasons run on
//! the emulator's DynamoDB too (replay, insufficient funds, a reused key).

use crate::harness::{Bearer, web_client};
use crate::helpers::grpc_web::{WebReply, frame, raw_at};
use crate::helpers::{assert_code, unique};
use crate::transport::{RawWeb, every_call};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use payment::pb;
use prost::Message;
use serde_yaml_ng::Value;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;

/// How long building the function, starting the emulator and deploying may
/// take (the build may first wait for cargo's lock).
const CLOUD_START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the emulator may take to show an invocation in the function's logs.
const LOG_DELAY_MAX: Duration = Duration::from_secs(15);
/// Each call through the gateway (a cold start included).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The browser origin the deployment allows (AllowedOrigins).
const ORIGIN: &str = "http://localhost:5173";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The deployed stack: scripts/cloud.sh running in its own process group,
/// stopped (with the function processes) when dropped.
pub(crate) struct Cloud {
    child: Child,
    dir: PathBuf,
    state: serde_json::Value,
}

impl Cloud {
    async fn start() -> Cloud {
        let dir = repo_root().join(".data/cloud-e2e");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cloud dir");
        let state_file = dir.join("state.json");
        let log = std::fs::File::create(dir.join("cloud.log")).expect("log");
        let child = Command::new(repo_root().join("scripts/cloud.sh"))
            .current_dir(repo_root())
            .env("CLOUD_DIR", ".data/cloud-e2e")
            .env("PAYMENT_CLOUD_PORT", "0")
            // The debug build cargo made for this test: a release build would
            // add minutes to every run.
            .env(
                "PAYMENT_CLOUD_LAMBDA_BIN",
                env!("CARGO_BIN_EXE_payment-lambda"),
            )
            .env(
                "PAYMENT_CLOUD_EVENTS_BIN",
                env!("CARGO_BIN_EXE_payment-events"),
            )
            .env("PAYMENT_CLOUD_ORIGINS", ORIGIN)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("cannot run scripts/cloud.sh");
        let mut cloud = Cloud {
            child,
            dir,
            state: serde_json::Value::Null,
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&state_file)
                && let Ok(state) = serde_json::from_str(&text)
            {
                cloud.state = state;
                break;
            }
            if let Ok(Some(status)) = cloud.child.try_wait() {
                panic!(
                    "scripts/cloud.sh exited with {status} before the stack was up; see {}",
                    cloud.dir.join("cloud.log").display()
                );
            }
            assert!(
                started.elapsed() < CLOUD_START_TIMEOUT,
                "the stack was not up within {CLOUD_START_TIMEOUT:?}; see {}",
                cloud.dir.join("cloud.log").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "cloud: stack up after {:.1} s (build, emulator start, sam deploy)",
            started.elapsed().as_secs_f64()
        );
        cloud
    }

    fn get(&self, key: &str) -> String {
        match &self.state[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => panic!("state.json has no {key}: {other:?}"),
        }
    }

    /// The API as the stack's ApiUrl output names it:
    /// http://<api-id>.execute-api.localhost:<port>.
    pub(crate) fn api_url(&self) -> String {
        self.get("api_url")
    }

    /// The emulator's address, and the Host header that reaches the API
    /// there (for raw requests).
    fn gateway(&self) -> (String, String) {
        let api = self.api_url();
        let host = api.trim_start_matches("http://").to_owned();
        (self.get("endpoint"), host)
    }

    /// scripts/cloud.py against this stack.
    pub(crate) fn cloud_py(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join("scripts/cloud-py.sh"))
            .current_dir(repo_root())
            .env("CLOUD_STATE", self.dir.join("state.json"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("scripts/cloud-py.sh");
        assert!(
            output.status.success(),
            "cloud.py {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    pub(crate) fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        self.cloud_py(&all)
    }

    /// How many times the function has run so far.
    fn invocations(&self) -> u64 {
        self.cloud_py(&["invocations"]).parse().expect("a count")
    }

    /// Waits until the function's logs show at least `expected` invocations
    /// and then stop growing (they arrive a little after the answers), and
    /// returns the count.
    async fn invocations_settled(&self, expected: u64) -> u64 {
        let started = Instant::now();
        let mut last = self.invocations();
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let count = self.invocations();
            if (count >= expected && count == last) || started.elapsed() > LOG_DELAY_MAX {
                return count;
            }
            last = count;
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // scripts/cloud.sh stops the emulator and each function process by pid.
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Last resort: the whole process group.
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
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

/// A grpc-message header value, percent-decoded (as the gRPC spec encodes it).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The template's CORS configuration of the HTTP API, as header values.
fn template_cors() -> (String, String, String, String) {
    let path = repo_root().join("template.yaml");
    let template: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template")).expect("yaml");
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

struct Gateway {
    base: String,
    host: String,
}

impl Gateway {
    /// One raw request to the API through the emulator (Host header names it).
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> WebReply {
        let mut all = vec![("host", self.host.as_str())];
        all.extend_from_slice(headers);
        tokio::time::timeout(CALL_TIMEOUT, raw_at(&self.base, method, path, &all, body))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {CALL_TIMEOUT:?}"))
    }

    /// A gRPC-Web call (binary) of `method` with `message` and `authorization`.
    async fn rpc(&self, method: &str, message: Vec<u8>, authorization: Option<&str>) -> WebReply {
        let mut headers = vec![
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
            ("origin", ORIGIN),
        ];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        self.send(
            http::Method::POST,
            &format!("/payment.v1.PaymentService/{method}"),
            &headers,
            frame(&message),
        )
        .await
    }

    /// A grpc-web-text call: base64 request, base64 reply decoded chunk by chunk.
    async fn rpc_text(&self, method: &str, message: Vec<u8>, token: &str) -> WebReply {
        let authorization = format!("Bearer {token}");
        let headers = [
            ("content-type", "application/grpc-web-text"),
            ("accept", "application/grpc-web-text"),
            ("x-grpc-web", "1"),
            ("authorization", authorization.as_str()),
        ];
        self.send(
            http::Method::POST,
            &format!("/payment.v1.PaymentService/{method}"),
            &headers,
            B64.encode(frame(&message)).into_bytes(),
        )
        .await
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

/// The whole exercise once the stack is up (a few dozen calls).
const EXERCISE_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_stack_on_the_local_cloud_serves_every_call_behind_its_authorizer() {
    // DynamoDB Local (for the comparison at the end) starts while the stack deploys.
    let dynamodb_local = tokio::task::spawn_blocking(crate::harness::shared_dynamodb);
    let cloud = Cloud::start().await;
    dynamodb_local.await.expect("DynamoDB Local");
    tokio::time::timeout(EXERCISE_TIMEOUT, exercise(&cloud))
        .await
        .unwrap_or_else(|_| panic!("the calls did not finish within {EXERCISE_TIMEOUT:?}"));
    tokio::time::timeout(
        EXERCISE_TIMEOUT,
        crate::events::events_reach_a_subscribed_queue(&cloud),
    )
    .await
    .unwrap_or_else(|_| panic!("the events part did not finish within {EXERCISE_TIMEOUT:?}"));
    // What on-call gets: the alarms, the dashboard, X-Ray and JSON logs (the
    // log lines of every call above arrive a little after their answers).
    cloud.invocations_settled(1).await;
    check_observability(&cloud);
    drop(cloud);
}

async fn exercise(cloud: &Cloud) {
    let (base, host) = cloud.gateway();
    let gateway = Gateway { base, host };
    let admin = cloud.token(&["admin"]);
    let admin_sub = sub_of(&admin);
    let bob = cloud.token(&["user", &format!("bob-{}@example.com", unique("e2e"))]);
    let bob_sub = sub_of(&bob);
    assert_ne!(admin_sub, bob_sub);

    // --- Every RPC over gRPC-Web binary, with the service's own client, at
    // the stack's ApiUrl (http://<id>.execute-api.localhost:<port>).
    let mut web = web_client(&cloud.api_url(), Bearer::new(&admin));
    let (a, b) = (unique("a"), unique("b"));
    let cold = Instant::now();
    let opened = web
        .add_account(pb::AddAccountRequest {
            account_id: a.clone(),
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
    web.add_account(pb::AddAccountRequest {
        account_id: b.clone(),
        currency: "EUR".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let order = |key: &str, amount: i64| pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: a.clone(),
        recipient_id: b.clone(),
        amount,
        currency: "EUR".into(),
        memo: "through API Gateway".into(),
    };
    let first = web
        .make_payment(order("k1", 2_500))
        .await
        .unwrap()
        .into_inner();
    let again = web
        .make_payment(order("k1", 2_500))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed && again.replayed, "the retry is a replay");
    assert_eq!(first.transaction, again.transaction);
    web.make_payment(order("k2", 500)).await.unwrap();

    let mut warm_ms = Vec::new();
    for _ in 0..20 {
        let call = Instant::now();
        let account = web
            .get_account_balance(balance_of(&a))
            .await
            .unwrap()
            .into_inner()
            .account
            .unwrap();
        warm_ms.push(call.elapsed().as_secs_f64() * 1e3);
        assert_eq!(account.balance, 7_000);
    }
    warm_ms.sort_by(f64::total_cmp);
    eprintln!(
        "cloud: first call (cold start, AddAccount) {cold_ms:.0} ms; warm GetAccountBalance p50 {:.1} ms, max {:.1} ms (20 calls, gRPC-Web through the emulated gateway)",
        warm_ms[warm_ms.len() / 2],
        warm_ms[warm_ms.len() - 1]
    );

    // History, paged: newest first, page tokens continue after an entry.
    let mut stream = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: a.clone(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut page = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        page.push(entry);
    }
    assert_eq!(page.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3, 2]);
    let mut rest = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: a.clone(),
            page_size: 0,
            page_token: page[1].next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let last = rest.message().await.unwrap().unwrap();
    assert_eq!((last.sequence, last.next_page_token.as_str()), (1, ""));
    assert!(rest.message().await.unwrap().is_none());

    // Error codes, from the function through the gateway.
    let ghost = unique("ghost");
    assert_code(
        web.get_account_balance(balance_of(&ghost)).await,
        Code::NotFound,
        &ghost,
    );
    assert_code(
        web.get_account_balance(balance_of("bad id")).await,
        Code::InvalidArgument,
        "account_id",
    );
    assert_code(
        web.make_payment(order("k3", 1_000_000)).await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    assert_code(
        web.make_payment(order("k1", 1)).await,
        Code::AlreadyExists,
        "different payment",
    );
    assert_code(
        web.add_account(pb::AddAccountRequest {
            account_id: a.clone(),
            currency: "EUR".into(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "already exists",
    );
    let mut self_pay = order("k4", 1);
    self_pay.recipient_id = a.clone();
    assert_code(
        web.make_payment(self_pay).await,
        Code::InvalidArgument,
        "recipient_id",
    );
    let forged_page = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: a.clone(),
            page_size: 5,
            page_token: "forged".into(),
        })
        .await;
    match forged_page {
        // The status may come as the stream's first (and only) item.
        Ok(mut s) => assert_eq!(
            s.get_mut().message().await.unwrap_err().code(),
            Code::InvalidArgument
        ),
        Err(status) => assert_eq!(status.code(), Code::InvalidArgument),
    }
    let balance_after_errors = web
        .get_account_balance(balance_of(&a))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
        .balance;
    assert_eq!(balance_after_errors, 7_000, "no failed call moved money");
    // Every method of the contract (walked from pb::METHODS), each checked,
    // on accounts of its own: holds, refunds, the lookups by key and by id
    // and the listing run on the emulator's DynamoDB and its indexes too.
    every_call(&mut web, &admin_sub, "deployed stack, gRPC-Web binary").await;

    // --- Every RPC over grpc-web-text, raw, through the Host header: the
    // history paged first, then every method of the contract.
    let c = unique("c");
    let reply = gateway
        .rpc_text(
            "AddAccount",
            pb::AddAccountRequest {
                account_id: c.clone(),
                currency: "EUR".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            &admin,
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
    let reply = gateway
        .rpc_text(
            "MakePayment",
            pb::MakePaymentRequest {
                recipient_id: c.clone(),
                ..order("t1", 100)
            }
            .encode_to_vec(),
            &admin,
        )
        .await;
    assert_ok(&reply, "MakePayment (text)");
    let paid = pb::MakePaymentResponse::decode(reply.messages[0].clone()).unwrap();
    assert_eq!(paid.transaction.unwrap().recipient_id, c);
    let reply = gateway
        .rpc_text("GetAccountBalance", balance_of(&c).encode_to_vec(), &admin)
        .await;
    assert_ok(&reply, "GetAccountBalance (text)");
    let account = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(account.balance, 100);
    let history = |page_size: i32, page_token: String| {
        pb::GetTransactionHistoryRequest {
            account_id: a.clone(),
            page_size,
            page_token,
        }
        .encode_to_vec()
    };
    let reply = gateway
        .rpc_text("GetTransactionHistory", history(3, String::new()), &admin)
        .await;
    assert_ok(&reply, "GetTransactionHistory (text)");
    let entries: Vec<_> = reply
        .messages
        .iter()
        .map(|m| pb::GetTransactionHistoryResponse::decode(m.clone()).unwrap())
        .collect();
    assert_eq!(
        entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [4, 3, 2]
    );
    let reply = gateway
        .rpc_text(
            "GetTransactionHistory",
            history(3, entries[2].next_page_token.clone()),
            &admin,
        )
        .await;
    assert_ok(&reply, "GetTransactionHistory page 2 (text)");
    assert_eq!(reply.messages.len(), 1, "the opening credit is left");
    let reply = gateway
        .rpc_text(
            "GetAccountBalance",
            balance_of(&ghost).encode_to_vec(),
            &admin,
        )
        .await;
    assert_eq!(
        reply.grpc_status().as_deref(),
        Some("5"),
        "NOT_FOUND (text)"
    );
    let mut text = RawWeb {
        base: gateway.base.clone(),
        text: true,
        headers: vec![
            ("host".into(), gateway.host.clone()),
            ("authorization".into(), format!("Bearer {admin}")),
        ],
    };
    every_call(&mut text, &admin_sub, "deployed stack, grpc-web-text").await;
    let reply = gateway
        .send(
            http::Method::POST,
            "/payment.v1.PaymentService/GetAccountBalance",
            &[
                ("content-type", "application/grpc-web-text"),
                ("x-grpc-web", "1"),
                ("authorization", &format!("Bearer {admin}")),
            ],
            b"%%%".to_vec(),
        )
        .await;
    assert_eq!(
        (reply.http_status, reply.grpc_status().as_deref()),
        (200, Some("3")),
        "bad base64 is INVALID_ARGUMENT: {}",
        reply.grpc_message()
    );

    // --- The authorizer: no token, a bad signature, another audience, an
    // expired token, a token of another issuer: 401 from the gateway, and
    // the function never runs.
    let stranger = cloud.token(&["stranger"]);
    let short_lived = cloud.token(&["short-lived"]);
    let mut tampered = admin.clone().into_bytes();
    let middle = admin.rfind('.').unwrap() + 10;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let dev_token = crate::harness::token(&admin_sub, true);
    tokio::time::sleep(Duration::from_secs(2)).await; // short_lived expires
    let before = cloud.invocations_settled(0).await;
    let probe = balance_of(&a).encode_to_vec();
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
        let reply = gateway
            .rpc("GetAccountBalance", probe.clone(), authorization.as_deref())
            .await;
        assert_eq!(reply.http_status, 401, "{what}: {:?}", reply.headers);
        assert_eq!(reply.grpc_status(), None, "{what}: answered by the gateway");
    }
    let reply = gateway
        .rpc(
            "GetAccountBalance",
            probe.clone(),
            Some(&format!("Bearer {admin}")),
        )
        .await;
    assert_ok(&reply, "the same call with a valid token");
    let after = cloud.invocations_settled(before + 1).await;
    assert_eq!(
        after,
        before + 1,
        "the function ran only for the valid call, not for the six refused ones"
    );

    // --- Identity comes from the authorizer's claims only: bob (an ordinary
    // Cognito user) is who his token says, whatever else the request says.
    let mut bob_web = web_client(&cloud.api_url(), Bearer::new(&bob));
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
    let authorization = format!("Bearer {bob}");
    let spoofed = [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("authorization", authorization.as_str()),
        ("x-amzn-oidc-identity", admin_sub.as_str()),
        ("x-payment-caller", admin_sub.as_str()),
        ("sub", admin_sub.as_str()),
        ("scope", "payments/admin"),
    ];
    let reply = gateway
        .send(
            http::Method::POST,
            "/payment.v1.PaymentService/GetAccountBalance",
            &spoofed,
            frame(&probe),
        )
        .await;
    assert_eq!(
        reply.grpc_status().as_deref(),
        Some("7"),
        "PERMISSION_DENIED"
    );
    let message = percent_decode(&reply.grpc_message());
    assert!(
        message.contains(&format!("{bob_sub} may not read account")),
        "the caller is bob's sub from the claims: {message}"
    );
    let mut bob_pays = order("b1", 1);
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
    web.get_account_balance(balance_of(&bobs)).await.unwrap();

    // --- CORS: the preflight is answered by the gateway with the template's
    // headers (the function does not run), and answers carry them too.
    let (allow_headers, allow_methods, expose_headers, max_age) = template_cors();
    let before = cloud.invocations_settled(0).await;
    let preflight = gateway
        .send(
            http::Method::OPTIONS,
            "/payment.v1.PaymentService/MakePayment",
            &[
                ("origin", ORIGIN),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type,x-grpc-web",
                ),
            ],
            Vec::new(),
        )
        .await;
    let header = |reply: &WebReply, name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
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
    let elsewhere = gateway
        .send(
            http::Method::OPTIONS,
            "/payment.v1.PaymentService/MakePayment",
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "POST"),
            ],
            Vec::new(),
        )
        .await;
    assert_eq!(
        header(&elsewhere, "access-control-allow-origin"),
        None,
        "an origin the template does not list gets no CORS headers"
    );
    let answered = gateway
        .rpc(
            "GetAccountBalance",
            probe.clone(),
            Some(&format!("Bearer {admin}")),
        )
        .await;
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
    let after = cloud.invocations_settled(before + 1).await;
    assert_eq!(after, before + 1, "the preflights did not run the function");

    // --- payment-client at the stack's ApiUrl with a Cognito token.
    let output = Command::new(env!("CARGO_BIN_EXE_payment-client"))
        .args([
            "--grpc-web",
            "--endpoint",
            &cloud.api_url(),
            "--token",
            &admin,
        ])
        .args(["--json", "balance", &a])
        .env_remove("PAYMENT_TOKEN")
        .env_remove("PAYMENT_ENDPOINT")
        .output()
        .expect("payment-client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "payment-client: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    // 10,000 opening, 2,500 and 500 to b, 100 to c over grpc-web-text.
    assert_eq!(shown["balance"], 6_900);
    assert_eq!(shown["owner"], admin_sub.as_str());

    // --- Without a token the gateway answers 401 itself (no grpc-status);
    // the client reads that as UNAUTHENTICATED, as the gRPC spec maps it.
    let output = Command::new(env!("CARGO_BIN_EXE_payment-client"))
        .args(["--grpc-web", "--endpoint", &cloud.api_url()])
        .args(["--json", "balance", &a])
        .env_remove("PAYMENT_TOKEN")
        .env_remove("PAYMENT_ENDPOINT")
        .output()
        .expect("payment-client");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the error as JSON");
    assert_eq!(report["error"]["code"], "UNAUTHENTICATED", "{report}");

    // --- The emulator's own DynamoDB against DynamoDB Local, on what the
    // ledger relies on.
    let local = dynamodb_semantics(&payment::config::local_dynamodb_client(
        crate::harness::shared_dynamodb(),
    ))
    .await;
    let emulated = dynamodb_semantics(&payment::config::local_dynamodb_client(
        &cloud.get("endpoint"),
    ))
    .await;
    eprintln!("cloud: DynamoDB Local: {local:#?}");
    assert_eq!(
        emulated, local,
        "the emulator's DynamoDB differs from DynamoDB Local"
    );
}

/// What the ledger relies on from DynamoDB, observed on one endpoint as
/// text: a transaction cancelled by its conditions (the reasons per item,
/// with the failing item's values under ReturnValuesOnConditionCheckFailure
/// ALL_OLD), a conditional put on an existing item (with its old values), a
/// condition on a number (`balance >= amount`), and a ClientRequestToken
/// reused with the same and with other parameters.
async fn dynamodb_semantics(client: &aws_sdk_dynamodb::Client) -> Vec<String> {
    use aws_sdk_dynamodb::types::{
        AttributeValue as V, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure as Rv,
        TransactWriteItem, Update,
    };
    let ledger = payment::ledger::Ledger::new(client.clone(), crate::harness::unique_tables());
    // A JVM just started may take a while to create its first tables.
    let mut created = ledger.create_tables().await;
    for _ in 0..3 {
        if created.is_ok() {
            break;
        }
        created = ledger.create_tables().await;
    }
    created.expect("create tables");
    let table = ledger.tables().accounts.clone();
    let item = |id: &str, balance: i64| {
        [
            ("account_id".to_owned(), V::S(id.into())),
            ("balance".to_owned(), V::N(balance.to_string())),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>()
    };
    let mut seen = Vec::new();
    for (id, balance) in [("x", 10), ("y", 0)] {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item(id, balance)))
            .send()
            .await
            .expect("put");
    }

    // A conditional put on an existing item, with its old values.
    let err = client
        .put_item()
        .table_name(&table)
        .set_item(Some(item("x", 99)))
        .condition_expression("attribute_not_exists(account_id)")
        .return_values_on_condition_check_failure(Rv::AllOld)
        .send()
        .await
        .expect_err("the item exists");
    let service = err.into_service_error();
    seen.push(format!(
        "put: conditional check failed {}, old balance {:?}",
        service.is_conditional_check_failed_exception(),
        match &service {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) =>
                e.item().and_then(|i| i.get("balance")).cloned(),
            _ => None,
        }
    ));

    // A transaction whose debit fails `balance >= :amount`: reasons per item.
    let debit = |amount: i64| {
        Update::builder()
            .table_name(&table)
            .key("account_id", V::S("x".into()))
            .update_expression("SET balance = balance - :amount")
            .condition_expression("balance >= :amount")
            .expression_attribute_values(":amount", V::N(amount.to_string()))
            .return_values_on_condition_check_failure(Rv::AllOld)
            .build()
            .unwrap()
    };
    let credit = |amount: i64| {
        Update::builder()
            .table_name(&table)
            .key("account_id", V::S("y".into()))
            .update_expression("SET balance = balance + :amount")
            .expression_attribute_values(":amount", V::N(amount.to_string()))
            .build()
            .unwrap()
    };
    let record = Put::builder()
        .table_name(&table)
        .set_item(Some(item("record", 0)))
        .condition_expression("attribute_not_exists(account_id)")
        .build()
        .unwrap();
    let err = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(debit(11)).build())
        .transact_items(TransactWriteItem::builder().update(credit(11)).build())
        .transact_items(TransactWriteItem::builder().put(record.clone()).build())
        .send()
        .await
        .expect_err("insufficient funds");
    match err.into_service_error() {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
            for reason in e.cancellation_reasons() {
                seen.push(format!(
                    "transaction: reason {:?}, old balance {:?}",
                    reason.code(),
                    reason.item().and_then(|i| i.get("balance"))
                ));
            }
        }
        other => seen.push(format!("transaction: not cancelled: {other:?}")),
    }

    // A condition check on another item, then a ClientRequestToken reused.
    let token = uuid::Uuid::new_v4().to_string();
    let check = ConditionCheck::builder()
        .table_name(&table)
        .key("account_id", V::S("y".into()))
        .condition_expression("attribute_exists(account_id)")
        .build()
        .unwrap();
    for (what, amount) in [
        ("first", 4),
        ("same token, same items", 4),
        ("same token, other items", 5),
    ] {
        let result = client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(debit(amount)).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(check.clone())
                    .build(),
            )
            .client_request_token(&token)
            .send()
            .await;
        seen.push(format!(
            "token {what}: {}",
            match result {
                Ok(_) => "ok".to_owned(),
                Err(err) => err
                    .into_service_error()
                    .meta()
                    .code()
                    .unwrap_or("?")
                    .to_owned(),
            }
        ));
    }
    let balance = client
        .get_item()
        .table_name(&table)
        .key("account_id", V::S("x".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .and_then(|i| i.get("balance").cloned());
    seen.push(format!("balance after: {balance:?}"));
    seen
}

// The metrics the service emits (the contract with its telemetry;
// tests/template.rs checks the template's alarms and dashboard against it).
use payment::telemetry::emf::METRICS as SERVICE_METRICS;

/// The template's value with its intrinsic functions resolved as this
/// deployment resolved them: `!Ref`/`${...}` through `value`, `!If` on the
/// one condition the alarms use (NotifyAlarmTopic: false, no topic is
/// given here), `AWS::NoValue` dropped.
fn resolved(v: &Value, value: &dyn Fn(&str) -> String) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    let one_key = |name: &str, tag: &str| -> Option<&Value> {
        match v {
            Value::Tagged(t) if t.tag == tag => Some(&t.value),
            Value::Mapping(m) if m.len() == 1 => m.get(name),
            _ => None,
        }
    };
    if let Some(target) = one_key("Ref", "Ref") {
        let target = target.as_str().expect("!Ref of a name");
        return (target != "AWS::NoValue").then(|| J::String(value(target)));
    }
    if let Some(text) = one_key("Fn::Sub", "Sub") {
        return Some(J::String(substituted(
            text.as_str().expect("!Sub string"),
            value,
        )));
    }
    if let Some(args) = one_key("Fn::If", "If") {
        let args = args.as_sequence().expect("!If [condition, then, else]");
        assert_eq!(args[0].as_str(), Some("NotifyAlarmTopic"), "{args:?}");
        return resolved(&args[2], value);
    }
    Some(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => serde_json::from_str(&n.to_string()).expect("a number"),
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => {
            J::Array(items.iter().filter_map(|i| resolved(i, value)).collect())
        }
        Value::Mapping(map) => J::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), resolved(v, value)?)))
                .collect(),
        ),
        Value::Tagged(t) => panic!("intrinsic !{} not handled here", t.tag),
    })
}

/// A `!Sub` string with each `${Var}` replaced by `value(Var)`.
fn substituted(text: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("${ closed");
        let var = &after[..end];
        match var.strip_prefix('!') {
            Some(literal) => out.push_str(&format!("${{{literal}}}")),
            None => out.push_str(&value(var)),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every request id a JSON log line carries, wherever it is.
fn request_ids(line: &serde_json::Value, found: &mut Vec<String>) {
    match line {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if matches!(
                    key.as_str(),
                    "requestId" | "RequestId" | "request_id" | "aws_request_id"
                ) && let Some(id) = value.as_str()
                {
                    found.push(id.to_owned());
                }
                request_ids(value, found);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| request_ids(i, found)),
        _ => {}
    }
}

/// Lambda's own lines: (kind, request id). Text on the emulator
/// (`START RequestId: <id> Version: ...`), JSON records on AWS with
/// LogFormat JSON (`{"type": "platform.start", "record": {"requestId": ...}}`).
fn platform_line(message: &str) -> Option<(&'static str, String)> {
    for (prefix, kind) in [
        ("START RequestId: ", "start"),
        ("END RequestId: ", "end"),
        ("REPORT RequestId: ", "report"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let id = rest.split_whitespace().next().unwrap_or_default();
            return Some((kind, id.to_owned()));
        }
    }
    if message.starts_with("INIT_START") {
        return Some(("init", String::new()));
    }
    let json: serde_json::Value = serde_json::from_str(message).ok()?;
    let kind = json["type"].as_str()?.strip_prefix("platform.")?;
    let kind = match kind {
        "start" => "start",
        "runtimeDone" | "end" => "end",
        "report" => "report",
        _ => "init",
    };
    Some((
        kind,
        json["record"]["requestId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

/// What the emulator holds of the stack's alarms, dashboard, tracing and
/// logging (scripts/cloud.py observability: DescribeAlarms, GetDashboard,
/// GetFunctionConfiguration, the role's policies, FilterLogEvents), each
/// against template.yaml; and the function's log: JSON lines, each call's
/// carrying its request id, the EMF records in the template's namespace.
fn check_observability(cloud: &Cloud) {
    let seen: serde_json::Value =
        serde_json::from_str(&cloud.cloud_py(&["observability"])).expect("observability JSON");
    let path = repo_root().join("template.yaml");
    let template: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template")).expect("yaml");
    let stack = cloud.get("stack");
    let namespace = template["Parameters"]["MetricsNamespace"]["Default"]
        .as_str()
        .expect("MetricsNamespace's default (the deploy keeps it)")
        .to_owned();
    let physical = |id: &str| -> String {
        seen["resources"][id]
            .as_str()
            .unwrap_or_else(|| panic!("the deployed stack has no {id}"))
            .to_owned()
    };
    let alarms = seen["alarms"].as_array().expect("alarms");
    let alarm_named = |name: &str| {
        alarms
            .iter()
            .find(|a| a["AlarmName"] == name)
            .unwrap_or_else(|| panic!("DescribeAlarms has no {name}"))
    };
    let value = |var: &str| -> String {
        match var {
            "AWS::StackName" => stack.clone(),
            "AWS::Region" => "us-east-1".to_owned(),
            "MetricsNamespace" => namespace.clone(),
            "AlarmTopicArn" => String::new(),
            _ => match (var.strip_suffix(".Arn"), var.strip_suffix(".QueueName")) {
                (Some(alarm), _) => alarm_named(&physical(alarm))["AlarmArn"]
                    .as_str()
                    .expect("AlarmArn")
                    .to_owned(),
                // A queue's physical id is its URL, which ends in its name.
                (_, Some(queue)) => physical(queue)
                    .rsplit('/')
                    .next()
                    .expect("a queue URL")
                    .to_owned(),
                _ => physical(var),
            },
        }
    };

    // --- The alarms, every property as the template resolves it.
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut declared = 0;
    for (id, resource) in resources {
        if resource["Type"] != "AWS::CloudWatch::Alarm" {
            continue;
        }
        declared += 1;
        let id = id.as_str().unwrap();
        let want = resolved(&resource["Properties"], &value).unwrap();
        let name = physical(id);
        assert_eq!(want["AlarmName"], name.as_str(), "{id}");
        let got = alarm_named(&name);
        for key in [
            "AlarmDescription",
            "ComparisonOperator",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "TreatMissingData",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Period",
            "Unit",
        ] {
            if let Some(expected) = want.get(key) {
                assert_eq!(&got[key], expected, "{id}: {key}");
            }
        }
        assert_eq!(
            got["Threshold"].as_f64(),
            want["Threshold"].as_f64(),
            "{id}: Threshold"
        );
        assert_eq!(
            got["Dimensions"],
            want.get("Dimensions")
                .cloned()
                .unwrap_or(serde_json::json!([])),
            "{id}: Dimensions"
        );
        assert_eq!(
            got["Metrics"],
            want.get("Metrics")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            "{id}: Metrics"
        );
        // No AlarmTopicArn given: no actions.
        for key in ["AlarmActions", "OKActions"] {
            assert_eq!(got[key], serde_json::json!([]), "{id}: {key}");
        }
    }
    assert!(declared >= 10, "the template declares {declared} alarms");
    assert_eq!(
        alarms.len(),
        declared,
        "DescribeAlarms: the stack's alarms, no more"
    );

    // --- The dashboard: the template's body, substituted.
    let dashboard = &seen["dashboards"]["Dashboard"];
    assert_eq!(dashboard["DashboardName"], stack.as_str());
    let body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"].clone();
    let want: serde_json::Value =
        serde_json::from_str(resolved(&body, &value).unwrap().as_str().expect("a body"))
            .expect("the template's body is JSON");
    let got: serde_json::Value =
        serde_json::from_str(dashboard["DashboardBody"].as_str().expect("DashboardBody"))
            .expect("the deployed body is JSON");
    assert_eq!(got, want, "the deployed dashboard");
    let text = got.to_string();
    for metric in SERVICE_METRICS {
        assert!(
            text.contains(&format!("\"{metric}\"")) || text.contains(&format!("\\\"{metric}\\\"")),
            "the dashboard shows {metric}"
        );
    }
    assert!(text.contains(&format!("Service=\\\"{stack}\\\"")), "{text}");

    // --- The function: X-Ray on, JSON logs, the metrics' namespace and service.
    let function = &seen["function"];
    assert_eq!(function["TracingConfig"]["Mode"], "Active");
    assert_eq!(function["LoggingConfig"]["LogFormat"], "JSON");
    let variables = &function["Environment"]["Variables"];
    assert_eq!(variables["PAYMENT_METRICS_NAMESPACE"], namespace.as_str());
    assert_eq!(variables["PAYMENT_METRICS_SERVICE"], stack.as_str());
    let policies: Vec<&str> = seen["role_policies"]
        .as_array()
        .expect("policies")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        policies.contains(&"arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"),
        "SAM gives the traced function's role X-Ray's policy: {policies:?}"
    );

    // --- The log: every line the function wrote is JSON; a call's lines
    // (its log line, its EMF record) carry its request id.
    let events = seen["log_events"].as_array().expect("log events");
    let mut streams: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for event in events {
        streams
            .entry(event["stream"].as_str().expect("stream"))
            .or_default()
            .push(event["message"].as_str().expect("message"));
    }
    let (mut invocations, mut calls, mut emf) = (0, 0, 0);
    for (stream, lines) in &streams {
        // The invocations of this stream (one container), by their START
        // lines. A line is matched to its invocation by the request id it
        // carries, not by where it sits: the emulator reads a function's
        // output on its own schedule, so a call's last line can land after
        // the next invocation's START (seen once in PITFALLS).
        let started: std::collections::BTreeSet<String> = lines
            .iter()
            .filter_map(|line| platform_line(line))
            .filter(|(kind, _)| *kind == "start")
            .map(|(_, id)| id)
            .collect();
        invocations += started.len();
        for line in lines {
            if platform_line(line).is_some() {
                continue;
            }
            let json: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{stream}: a log line that is not JSON ({e}): {line}"));
            assert!(json.is_object(), "{stream}: not a JSON object: {line}");
            let mut ids = Vec::new();
            request_ids(&json, &mut ids);
            assert!(
                ids.iter().all(|id| started.contains(id)),
                "{stream}: a line names a request this container never started: {line}"
            );
            let is_emf = json.get("_aws").is_some();
            let is_call = is_emf || line.contains("\"method\"") || line.contains("\"Method\"");
            if is_call {
                calls += 1;
                let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
                assert!(
                    distinct.len() == 1,
                    "{stream}: a call's line carries exactly its own request id: {line}"
                );
            }
            if is_emf {
                emf += 1;
                let definition = &json["_aws"]["CloudWatchMetrics"][0];
                assert_eq!(definition["Namespace"], namespace.as_str(), "{line}");
                assert_eq!(json["Service"], stack.as_str(), "{line}");
                for metric in definition["Metrics"].as_array().expect("Metrics") {
                    let name = metric["Name"].as_str().expect("Name");
                    assert!(
                        SERVICE_METRICS.contains(&name),
                        "{name} is not in the contract: {line}"
                    );
                }
            }
        }
    }
    eprintln!(
        "cloud: {} log streams, {invocations} invocations, {calls} call lines with their request id, {emf} EMF records",
        streams.len()
    );
    assert!(
        invocations > 50,
        "the function's START lines: {invocations}"
    );
    assert!(
        calls >= invocations,
        "every invocation logs its call: {calls} for {invocations}"
    );
    assert!(
        emf > 0,
        "no EMF record in the function's log: is telemetry on in payment-lambda?"
    );
}
