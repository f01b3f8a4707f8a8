//! A standard gRPC client, `buf curl` (npm @bufbuild/buf, installed by
//! scripts/setup.sh), resolving the service by server reflection with no
//! local schema, over native gRPC (HTTP/2 without TLS) and over gRPC-Web
//! (HTTP/1.1), against payment-server on 127.0.0.1.
//!
//! buf curl keeps the reflection stream open while it waits for answers, so
//! a server that waits for the end of that stream before answering hangs it
//! forever: every call here is killed and fails after CALL_TIMEOUT.

use crate::harness::{TestApp, token};
use crate::helpers::unique;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use payment::pb;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one buf curl call may take (reflection, then the call).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// buf curl's flags for one protocol.
#[derive(Debug, Clone, Copy)]
enum Protocol {
    /// Native gRPC over HTTP/2 with prior knowledge (h2c).
    Grpc,
    /// gRPC-Web over HTTP/1.1.
    GrpcWeb,
}

impl Protocol {
    fn args(self) -> &'static [&'static str] {
        match self {
            Protocol::Grpc => &["--protocol", "grpc", "--http2-prior-knowledge"],
            Protocol::GrpcWeb => &["--protocol", "grpcweb"],
        }
    }
}

/// What one buf curl call printed, and how it ended.
#[derive(Debug)]
struct Outcome {
    /// buf curl's exit code: 0, or 8 times the gRPC code of an error.
    exit_code: i32,
    /// The response messages (stdout: one JSON object per message).
    messages: Vec<Value>,
    /// The error, as buf curl prints it on stderr (`{"code": ..., "message": ...}`).
    error: Option<Value>,
    stderr: String,
}

impl Outcome {
    fn ok(&self) -> &[Value] {
        assert_eq!(self.exit_code, 0, "buf curl failed: {}", self.stderr);
        &self.messages
    }

    /// The single response message of a unary call.
    fn one(&self) -> &Value {
        let messages = self.ok();
        assert_eq!(messages.len(), 1, "{messages:?}");
        &messages[0]
    }

    /// The error code (as buf curl names it: "not_found", ...) and message.
    fn error(&self, code: &str, grpc_code: i32) -> String {
        assert_eq!(
            self.exit_code,
            8 * grpc_code,
            "exit code for {code}: {}",
            self.stderr
        );
        let error = self.error.as_ref().expect("an error object on stderr");
        assert_eq!(error["code"], code, "{error}");
        error["message"].as_str().unwrap_or_default().to_owned()
    }
}

fn buf() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/.bin/buf");
    assert!(
        path.exists(),
        "buf is not installed at {}; run scripts/setup.sh",
        path.display()
    );
    path
}

/// Calls `method` (e.g. `payment.v1.PaymentService/AddAccount`) at `url`
/// with `body` (JSON) and a bearer token, if any; kills buf curl and fails
/// the test after CALL_TIMEOUT.
async fn buf_curl(
    protocol: Protocol,
    url: &str,
    method: &str,
    bearer: Option<&str>,
    body: Value,
) -> Outcome {
    let mut command = Command::new(buf());
    command
        .arg("curl")
        .args(protocol.args())
        .args(["--data", &body.to_string()])
        .arg(format!("{url}/{method}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = bearer {
        command.args(["--header", &format!("authorization: Bearer {token}")]);
    }
    let what = format!("buf curl {protocol:?} {method}");
    let (exit_code, stdout, stderr) = run_bounded(command, what.clone()).await;
    let messages = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{what}: stdout is not JSON ({e}): {stdout}"));
    // The error object is the JSON on stderr, after any "Failure" line.
    let error = stderr
        .find('{')
        .and_then(|at| serde_json::from_str::<Value>(&stderr[at..]).ok());
    Outcome {
        exit_code,
        messages,
        error,
        stderr,
    }
}

/// Runs `command` to its end and returns its exit code, stdout and stderr;
/// kills it and fails the test after CALL_TIMEOUT. The waiting runs off the
/// async runtime, which also serves the test server.
async fn run_bounded(command: Command, what: String) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || run_bounded_blocking(command, &what))
        .await
        .expect("buf curl runner")
}

fn run_bounded_blocking(mut command: Command, what: &str) -> (i32, String, String) {
    // A process group of its own: the npm wrapper runs the real buf binary
    // as a child, and both must go on a timeout (the child holds the pipes).
    let mut child = command.process_group(0).spawn().expect("cannot run buf");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for buf curl") {
            break status;
        }
        if started.elapsed() > CALL_TIMEOUT {
            // SAFETY: kill(2) on the process group of our own child.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            panic!(
                "{what} did not finish within {CALL_TIMEOUT:?} (killed): it hangs; stderr: {}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let exit_code = status
        .code()
        .unwrap_or_else(|| panic!("{what} was killed by a signal: {stderr}"));
    (exit_code, stdout, stderr)
}

const SERVICE: &str = "payment.v1.PaymentService";

/// Every RPC of the service, health Check, and the common error codes,
/// through buf curl by reflection on one protocol. Fails unless the methods
/// called are exactly the contract's (`pb::METHODS`).
async fn every_rpc_over(protocol: Protocol) {
    let app = TestApp::spawn().await;
    let url = app.url();
    let called = RefCell::new(BTreeSet::new());
    let call = |method: &str, bearer: Option<String>, body: Value| {
        called.borrow_mut().insert(method.to_owned());
        let (url, method) = (url.clone(), format!("{SERVICE}/{method}"));
        async move { buf_curl(protocol, &url, &method, bearer.as_deref(), body).await }
    };
    let (alice, bob) = (unique("alice"), unique("bob"));
    // An admin opens alice with money; bob opens his own account.
    let admin = Some(token(&alice, true));
    let bob_token = Some(token(&bob, false));

    let opened = call(
        "AddAccount",
        admin.clone(),
        json!({"account_id": alice, "display_name": "Alice", "currency": "EUR", "initial_balance": 10000}),
    )
    .await;
    let account = &opened.one()["account"];
    assert_eq!(account["accountId"], alice.as_str());
    assert_eq!(account["balance"], "10000");
    assert_eq!(account["owner"], alice.as_str());
    let opened = call(
        "AddAccount",
        bob_token.clone(),
        json!({"account_id": bob, "currency": "EUR"}),
    )
    .await;
    assert_eq!(opened.one()["account"]["accountId"], bob.as_str());
    let again = call(
        "AddAccount",
        admin.clone(),
        json!({"account_id": alice, "currency": "EUR"}),
    )
    .await;
    assert!(again.error("already_exists", 6).contains(&alice));

    let order = json!({
        "idempotency_key": "buf-curl-1",
        "sender_id": alice,
        "recipient_id": bob,
        "amount": 1234,
        "currency": "EUR",
        "memo": "lunch",
    });
    let paid = call("MakePayment", admin.clone(), order.clone()).await;
    let paid = paid.one();
    assert_eq!(paid["transaction"]["amount"], "1234");
    assert_eq!(paid["transaction"]["senderId"], alice.as_str());
    assert_eq!(paid["transaction"]["recipientId"], bob.as_str());
    assert!(paid.get("replayed").is_none(), "{paid}");
    let replay = call("MakePayment", admin.clone(), order).await;
    let replay = replay.one();
    assert_eq!(replay["replayed"], true);
    assert_eq!(
        replay["transaction"]["transactionId"],
        paid["transaction"]["transactionId"]
    );
    let too_much = call(
        "MakePayment",
        admin.clone(),
        json!({"idempotency_key": "buf-curl-2", "sender_id": alice, "recipient_id": bob, "amount": 1000000, "currency": "EUR"}),
    )
    .await;
    assert!(
        too_much
            .error("failed_precondition", 9)
            .contains("insufficient funds")
    );

    let balance = call(
        "GetAccountBalance",
        admin.clone(),
        json!({"account_id": alice}),
    )
    .await;
    assert_eq!(balance.one()["account"]["balance"], "8766");
    let balance = call(
        "GetAccountBalance",
        bob_token.clone(),
        json!({"account_id": bob}),
    )
    .await;
    assert_eq!(balance.one()["account"]["balance"], "1234");
    let not_yours = call(
        "GetAccountBalance",
        bob_token.clone(),
        json!({"account_id": alice}),
    )
    .await;
    not_yours.error("permission_denied", 7);
    let no_token = call("GetAccountBalance", None, json!({"account_id": alice})).await;
    no_token.error("unauthenticated", 16);
    let unknown = call(
        "GetAccountBalance",
        admin.clone(),
        json!({"account_id": unique("nobody")}),
    )
    .await;
    unknown.error("not_found", 5);
    let invalid = call(
        "GetAccountBalance",
        admin.clone(),
        json!({"account_id": "not valid!"}),
    )
    .await;
    assert!(invalid.error("invalid_argument", 3).contains("account_id"));

    // The whole history, newest first, then paged one entry at a time.
    let history = call(
        "GetTransactionHistory",
        admin.clone(),
        json!({"account_id": alice}),
    )
    .await;
    let entries = history.ok();
    let summary: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["sequence"].as_str().unwrap_or_default(),
                e["direction"].as_str().unwrap_or_default(),
                e["balanceAfter"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("2", "DIRECTION_DEBIT", "8766"),
            ("1", "DIRECTION_CREDIT", "10000")
        ],
        "{entries:?}"
    );
    let first = call(
        "GetTransactionHistory",
        admin.clone(),
        json!({"account_id": alice, "page_size": 1}),
    )
    .await;
    let first = first.one();
    assert_eq!(first["sequence"], "2");
    let next = call(
        "GetTransactionHistory",
        admin.clone(),
        json!({"account_id": alice, "page_size": 1, "page_token": first["nextPageToken"]}),
    )
    .await;
    let next = next.one();
    assert_eq!(next["sequence"], "1");

    // A watch of alice from her first entry, for a second: her two entries,
    // oldest first, then the last message with only the token after them.
    // bob may not watch her account.
    let first_entry = URL_SAFE_NO_PAD.encode(format!("w1|{alice}|1"));
    let watched = call(
        "WatchAccount",
        admin.clone(),
        json!({"account_id": alice, "resume_token": first_entry, "max_seconds": 1}),
    )
    .await;
    let watched = watched.ok();
    let summary: Vec<(&str, &str)> = watched
        .iter()
        .map(|e| {
            (
                e["sequence"].as_str().unwrap_or_default(),
                e["balanceAfter"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [("1", "10000"), ("2", "8766"), ("", "")],
        "{watched:?}"
    );
    assert!(watched[2].get("transaction").is_none(), "{watched:?}");
    assert_eq!(watched[2]["resumeToken"], watched[1]["resumeToken"]);
    let not_yours = call(
        "WatchAccount",
        bob_token.clone(),
        json!({"account_id": alice, "max_seconds": 1}),
    )
    .await;
    not_yours.error("permission_denied", 7);
    assert!(next.get("nextPageToken").is_none(), "the oldest entry");

    // A hold that bob (the recipient's owner) captures in part, one he
    // voids, a refund he makes, a lookup, and his own accounts.
    let hold = |key: &str, amount: i64| json!({"idempotency_key": key, "sender_id": alice, "recipient_id": bob, "amount": amount, "currency": "EUR", "expires_in_seconds": 600});
    let placed = call("AuthorizePayment", admin.clone(), hold("buf-h1", 1000)).await;
    let placed = placed.one()["hold"].clone();
    assert_eq!(
        (&placed["state"], &placed["amount"]),
        (&json!("HOLD_STATE_OPEN"), &json!("1000")),
        "{placed}"
    );
    let captured = call(
        "CaptureHold",
        bob_token.clone(),
        json!({"hold": {"transaction_id": placed["holdId"]}, "amount": 600}),
    )
    .await;
    let captured = captured.one();
    assert_eq!(
        captured["hold"]["state"], "HOLD_STATE_CAPTURED",
        "{captured}"
    );
    assert_eq!(captured["transaction"]["amount"], "600", "{captured}");
    assert_eq!(
        captured["transaction"]["kind"], "TRANSACTION_KIND_CAPTURE",
        "{captured}"
    );
    call("AuthorizePayment", admin.clone(), hold("buf-h2", 500))
        .await
        .one();
    let voided = call(
        "VoidHold",
        bob_token.clone(),
        json!({"hold": {"sender_id": alice, "idempotency_key": "buf-h2"}}),
    )
    .await;
    assert_eq!(voided.one()["hold"]["state"], "HOLD_STATE_VOIDED");
    let refunded = call(
        "RefundPayment",
        bob_token.clone(),
        json!({"idempotency_key": "buf-r1", "payment": {"sender_id": alice, "idempotency_key": "buf-curl-1"}, "amount": 234}),
    )
    .await;
    let refunded = refunded.one();
    assert_eq!(refunded["transaction"]["kind"], "TRANSACTION_KIND_REFUND");
    assert_eq!(refunded["transaction"]["amount"], "234");
    assert_eq!(refunded["refundedTotal"], "234");
    let found = call(
        "GetPayment",
        admin.clone(),
        json!({"payment": {"sender_id": alice, "idempotency_key": "buf-curl-1"}}),
    )
    .await;
    let found = found.one();
    assert_eq!(
        found["transaction"]["transactionId"],
        paid["transaction"]["transactionId"]
    );
    assert_eq!(found["refundedTotal"], "234");
    // bob: 1234 + 600 - 234. The listing comes from an index that may lag a
    // just opened account (the contract says so): ask again, a bounded
    // number of times.
    let mut listed = Vec::new();
    for _ in 0..10 {
        let page = call("ListAccounts", bob_token.clone(), json!({})).await;
        listed = page.one()["accounts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !listed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed: Vec<(&Value, &Value)> = listed
        .iter()
        .map(|a| (&a["accountId"], &a["balance"]))
        .collect();
    assert_eq!(
        listed,
        [(&json!(bob), &json!("1600"))],
        "bob's own accounts"
    );
    let balance = call(
        "GetAccountBalance",
        admin.clone(),
        json!({"account_id": alice}),
    )
    .await;
    // alice: 8766 - 600 + 234, nothing held.
    let account = &balance.one()["account"];
    assert_eq!(
        (&account["balance"], &account["available"]),
        (&json!("8400"), &json!("8400"))
    );
    // An admin raises alice's balance shards: the same money over 4 shards;
    // the same count again is no raise (false is left out of the JSON);
    // fewer is refused, and bob, no admin, may not raise his own.
    let raise =
        |balance_shards: i32| json!({"account_id": alice, "balance_shards": balance_shards});
    let raised = call("SetBalanceShards", admin.clone(), raise(4)).await;
    let raised = raised.one();
    assert_eq!(raised["raised"], true, "{raised}");
    assert_eq!(
        (
            &raised["account"]["balanceShards"],
            &raised["account"]["balance"]
        ),
        (&json!(4), &json!("8400")),
        "{raised}"
    );
    let again = call("SetBalanceShards", admin.clone(), raise(4)).await;
    let again = again.one();
    assert!(again.get("raised").is_none(), "{again}");
    assert_eq!(again["account"]["balanceShards"], 4, "{again}");
    let fewer = call("SetBalanceShards", admin.clone(), raise(2)).await;
    assert!(fewer.error("failed_precondition", 9).contains(&alice));
    let not_admin = call(
        "SetBalanceShards",
        bob_token.clone(),
        json!({"account_id": bob, "balance_shards": 2}),
    )
    .await;
    not_admin.error("permission_denied", 7);
    let contract: BTreeSet<String> = pb::METHODS.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(
        *called.borrow(),
        contract,
        "{protocol:?}: buf curl called every method of the contract"
    );

    let health = buf_curl(
        protocol,
        &url,
        "grpc.health.v1.Health/Check",
        None,
        json!({"service": SERVICE}),
    )
    .await;
    assert_eq!(health.one()["status"], "SERVING");
    let overall = buf_curl(
        protocol,
        &url,
        "grpc.health.v1.Health/Check",
        None,
        json!({}),
    )
    .await;
    assert_eq!(overall.one()["status"], "SERVING");
    app.stop().await;
}

#[tokio::test]
async fn buf_curl_by_reflection_calls_every_rpc_over_grpc() {
    every_rpc_over(Protocol::Grpc).await;
}

#[tokio::test]
async fn buf_curl_by_reflection_calls_every_rpc_over_grpc_web() {
    every_rpc_over(Protocol::GrpcWeb).await;
}

/// Reflection itself, as clients browse a server: list every method, with
/// the stream held open by buf curl. The payment methods listed are exactly
/// the contract's (`pb::METHODS`); the rest are health and reflection.
#[tokio::test]
async fn buf_curl_lists_the_methods_by_reflection() {
    let app = TestApp::spawn().await;
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb] {
        let mut command = Command::new(buf());
        command
            .arg("curl")
            .args(protocol.args())
            .arg("--list-methods")
            .arg(app.url())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("buf curl {protocol:?} --list-methods");
        let (exit_code, listed, stderr) = run_bounded(command, what).await;
        assert_eq!(exit_code, 0, "{protocol:?}: {stderr}");
        let listed: BTreeSet<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
        let (contract, others): (BTreeSet<&str>, BTreeSet<&str>) = listed.iter().partition(|l| {
            pb::METHODS
                .iter()
                .any(|m| m.service == l.split('/').next().unwrap_or_default())
        });
        let expected: BTreeSet<&str> = pb::METHODS
            .iter()
            .map(|m| m.path.trim_start_matches('/'))
            .collect();
        assert_eq!(contract, expected, "{protocol:?}: the contract's methods");
        let health = BTreeSet::from(["grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch"]);
        let reflection = BTreeSet::from([
            "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]);
        assert!(
            health.is_subset(&others),
            "{protocol:?}: health in {others:?}"
        );
        assert!(
            others
                .iter()
                .all(|l| health.contains(l) || reflection.contains(l)),
            "{protocol:?}: a method neither of the contract, health nor reflection: {others:?}"
        );
    }
    app.stop().await;
}
