//! The bad-input matrix: one table of requests at and just past every limit,
//! with wrong wire types, malformed protobuf, broken framing, wrong content
//! types and huge bodies, each sent through every transport: native gRPC
//! (raw HTTP/2), gRPC-Web binary and text (raw HTTP/1.1), and the Lambda
//! handler with both gRPC-Web encodings (API Gateway events).
//!
//! The framing, size, wire-type and garbage rows are generated for every
//! method of the contract by walking `pb::METHODS` (see [`every_method`]),
//! so a method added to the proto is in the matrix without anyone adding it.
//!
//! Every case states its expected answer. For each case and transport the
//! test checks the code (and that the message names the field), that nothing
//! answers INTERNAL, UNKNOWN or an HTTP 5xx, that the server still serves a
//! valid call right after, and that the ledger's tables are exactly as
//! before, except for the at-the-limit cases that are meant to succeed,
//! whose one effect (an account opened, a payment made) is checked item by
//! item. Each transport gets fresh tables, so every case runs the same way
//! on each. `PAYMENT_MATRIX_VERBOSE=1` prints every answer (with
//! `--nocapture`).
//!
//! The parts: [`table`] (what a case is), [`messages`] (the bytes it
//! sends), [`cases`] and [`every_method`] (the rows), [`transports`] (how a
//! case reaches the service), [`effects`] (the tables before and after),
//! [`replies`] (the answers of the OK rows); here, the run and the tests.

mod cases;
mod effects;
mod every_method;
mod messages;
mod replies;
mod table;
mod transports;

use crate::harness::{TESTER, shared_dynamodb};
use crate::helpers::grpc_web::WebReply;
use cases::cases;
use effects::{Snapshot, check_effect, snapshot};
use every_method::{EVERY_METHOD_ROWS, EVERY_METHOD_TEXT_ROWS};
use messages::read;
use payment::domain::{BALANCE_MAX_MINOR, Caller};
use payment::ledger::Ledger;
use payment::pb;
use prost::Message;
use replies::{check_ok_reply, request_message};
use std::collections::BTreeMap;
use std::time::Instant;
use table::*;
use tonic::Code;
use transports::{Target, Transport, outgoing, path_of};

#[tokio::test]
async fn bad_input_matrix_native_grpc() {
    run_matrix(Transport::Native).await;
}

#[tokio::test]
async fn bad_input_matrix_grpc_web_binary() {
    run_matrix(Transport::WebBinary).await;
}

#[tokio::test]
async fn bad_input_matrix_grpc_web_text() {
    run_matrix(Transport::WebText).await;
}

#[tokio::test]
async fn bad_input_matrix_lambda_binary() {
    run_matrix(Transport::LambdaBinary).await;
}

#[tokio::test]
async fn bad_input_matrix_lambda_text() {
    run_matrix(Transport::LambdaText).await;
}

/// Every applicable case on fresh tables, one after another: its answer,
/// its effect on the tables, and the server still serving after it; then
/// a clean audit.
async fn run_matrix(transport: Transport) {
    let started = Instant::now();
    let target = Target::new(transport).await;
    seed(&target.ledger).await;
    let client = crate::local_dynamodb::client(shared_dynamodb());
    let all = cases();
    let applicable: Vec<&Case> = all.iter().filter(|c| c.applies_to(transport)).collect();
    assert!(
        applicable.len() >= 40,
        "{}: only {} cases",
        transport.name(),
        applicable.len()
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for case in &applicable {
        let name = format!("{} / {}", transport.name(), case.name);
        let before = snapshot(&client, &target.ledger).await;
        let reply = target
            .request(outgoing(case, transport))
            .await
            .unwrap_or_else(|e| panic!("{name}: no reply: {e}"));
        if std::env::var_os("PAYMENT_MATRIX_VERBOSE").is_some() {
            eprintln!(
                "{name}: HTTP {} {:?} {:?}",
                reply.http_status,
                reply.grpc_code(),
                reply.message()
            );
        }
        let label = check_answer(&name, case, &reply, &before);
        *counts.entry(label).or_default() += 1;
        let after = snapshot(&client, &target.ledger).await;
        let effect = match &case.expect {
            Expect::Ok(effect) => effect.clone(),
            _ => Effect::Nothing,
        };
        check_effect(&name, &effect, &before, &after);
        still_serving(&target, &case.name).await;
    }
    let report = target.ledger.audit(2, &|_, _| {}).await.expect("audit");
    assert!(
        report.is_clean(),
        "{}: {:?}",
        transport.name(),
        report.discrepancies
    );
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "matrix [{}]: {} cases in {:.1?}: {}",
        transport.name(),
        applicable.len(),
        started.elapsed(),
        summary.join(", ")
    );
    if let Some(app) = target.app {
        app.stop().await;
    }
}

/// Checks a case's answer against what it expects (never a server error,
/// whatever the input), and returns the label the summary counts it under.
fn check_answer(name: &str, case: &Case, reply: &WebReply, before: &Snapshot) -> String {
    let (code, message) = (reply.grpc_code(), reply.message());
    assert!(
        reply.http_status < 500,
        "{name}: HTTP {} ({message})",
        reply.http_status,
    );
    assert!(
        !matches!(code, Some(Code::Internal | Code::Unknown)),
        "{name}: {code:?} {message}",
    );
    match &case.expect {
        Expect::Http4xx => {
            assert!(
                (400..500).contains(&reply.http_status),
                "{name}: expected an HTTP 4xx, got HTTP {} with {code:?} {message}",
                reply.http_status,
            );
            assert_eq!(code, None, "{name}: a gRPC status on a 4xx");
            "HTTP 4xx".to_owned()
        }
        Expect::Status(expected, needle) => {
            assert_eq!(reply.http_status, 200, "{name}: HTTP status");
            assert_eq!(code, Some(*expected), "{name}: message {message:?}");
            // Validation and framing errors explain themselves; tonic's
            // UNIMPLEMENTED for an unknown path has no message.
            assert!(
                needle.is_empty() || !message.is_empty(),
                "{name}: no grpc-message"
            );
            assert!(
                message.contains(needle),
                "{name}: message {message:?} does not name {needle:?}",
            );
            assert!(reply.messages.is_empty(), "{name}: data with an error");
            format!("{expected:?}")
        }
        Expect::Ok(effect) => {
            assert_eq!(
                (reply.http_status, code),
                (200, Some(Code::Ok)),
                "{name}: message {message:?}",
            );
            check_ok_reply(name, case, effect, reply, before);
            "OK".to_owned()
        }
    }
}

/// Opens the fixture accounts directly on the ledger, owned by TESTER.
async fn seed(ledger: &Ledger) {
    use payment::domain::{NewAccount, PaymentOrder};
    for (id, balance, shards) in [
        (A.to_owned(), A_OPENING, 0),
        (B.to_owned(), 0, 0),
        (RICH.to_owned(), BALANCE_MAX_MINOR, 0),
        (SINK.to_owned(), 0, 0),
        (id128_existing(), 0, 0),
        (WIDE.to_owned(), 0, 0),
        (FOUR.to_owned(), 0, 4),
    ] {
        let new =
            NewAccount::parse(&id, "fixture", "EUR", balance, shards).expect("fixture account");
        ledger
            .add_account(&new, TESTER, false)
            .await
            .expect("open fixture");
    }
    for n in 0..FIXTURE_PAYMENTS {
        let order = PaymentOrder::parse(&format!("fixture-{n}"), A, B, 10 + n, "EUR", "")
            .expect("fixture payment");
        ledger
            .make_payment(
                &order,
                &Caller {
                    sub: TESTER.into(),
                    admin: true,
                },
            )
            .await
            .expect("fixture payment");
    }
}

/// A valid read through the same transport: the server still serves.
async fn still_serving(target: &Target, after: &str) {
    let probe = Case {
        name: "probe".into(),
        method: BALANCE,
        http: Http::Grpc,
        body: read(A),
        expect: ok(),
        only: &[],
    };
    let reply = target
        .request(outgoing(&probe, target.transport))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: not serving after {after}: {e}",
                target.transport.name()
            )
        });
    assert_eq!(
        (reply.http_status, reply.grpc_code()),
        (200, Some(Code::Ok)),
        "{}: not serving after {after}: {}",
        target.transport.name(),
        reply.message()
    );
    let account = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .expect("balance")
        .account
        .expect("account");
    assert_eq!(account.account_id, A);
}

/// The table itself: unique names and enough cases on every transport;
/// the generated framing, size, wire-type and garbage rows for every method
/// of the contract (`pb::METHODS`), on every transport; and OK rows that
/// write (open an account, pay, hold) use distinct account ids and
/// idempotency keys, so that each writes once per transport on fresh tables.
#[test]
fn the_matrix_is_well_formed() {
    let all = cases();
    let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate case names");
    for t in Transport::ALL {
        let n = all.iter().filter(|c| c.applies_to(t)).count();
        assert!(n >= 40, "{}: {n} cases", t.name());
    }
    every_method_has_every_generated_row(&all);
    writes_are_distinct(&all);
    // AuthorizePayment and SetBalanceShards have OK rows at their limits,
    // as the other writes do.
    for name in [
        "AuthorizePayment expires_in_seconds 60",
        "AuthorizePayment expires_in_seconds 30 days",
        "AuthorizePayment amount 10^15",
    ] {
        assert!(
            all.iter()
                .any(|c| c.name == name && matches!(c.expect, Expect::Ok(Effect::Held { .. }))),
            "no OK row {name:?}"
        );
    }
    assert!(
        all.iter()
            .any(|c| c.name == "SetBalanceShards balance_shards 64"
                && matches!(c.expect, Expect::Ok(Effect::Resharded { to: 64, .. }))),
        "no OK row raising to 64 shards"
    );
}

/// Every method whose request is one message has every generated row, on
/// every transport (the text-only rows on the text transports), each a
/// refusal.
fn every_method_has_every_generated_row(all: &[Case]) {
    let guarded: Vec<&pb::Method> = pb::METHODS.iter().filter(|m| !m.client_streaming).collect();
    assert_eq!(
        guarded.len(),
        pb::METHODS.len(),
        "a client-streaming method: decide its rows"
    );
    for method in &guarded {
        for kind in EVERY_METHOD_ROWS.iter().chain(&EVERY_METHOD_TEXT_ROWS) {
            let name = format!("{}: {kind}", method.name);
            let row = all
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no row {name:?}"));
            assert_eq!(path_of(row.method), method.path, "{name}");
            for t in Transport::ALL {
                let wanted = !EVERY_METHOD_TEXT_ROWS.contains(kind) || t.text();
                assert_eq!(row.applies_to(t), wanted, "{name} on {}", t.name());
            }
            assert!(
                matches!(&row.expect, Expect::Status(code, _) if matches!(code, Code::InvalidArgument | Code::ResourceExhausted | Code::Unimplemented)),
                "{name}: a refusal"
            );
        }
    }
}

/// OK rows that write use distinct account ids and keys, and raise each
/// account's shards once.
fn writes_are_distinct(all: &[Case]) {
    let mut opened = Vec::new();
    let mut keys = Vec::new();
    let mut raised = Vec::new();
    for c in all {
        match &c.expect {
            Expect::Ok(Effect::Opened { account, .. }) => opened.push(account.clone()),
            Expect::Ok(Effect::Resharded { account, .. }) => {
                assert_eq!(c.method, SHARDS, "{}: a reshard by {}", c.name, c.method);
                raised.push(account.to_string());
            }
            Expect::Ok(Effect::Paid { .. } | Effect::Held { .. }) => keys.push(sender_and_key(c)),
            _ => {}
        }
    }
    assert_all_distinct(&opened, "account ids opened twice");
    assert_all_distinct(&keys, "keys used twice");
    assert_all_distinct(&raised, "accounts resharded twice");
}

/// The (sender, idempotency key) of a row that pays or holds.
fn sender_and_key(c: &Case) -> (String, String) {
    let message = request_message(&c.name, c);
    match c.method {
        PAY => {
            let r = pb::MakePaymentRequest::decode(message.as_slice()).expect("payment");
            (r.sender_id, r.idempotency_key)
        }
        AUTHORIZE => {
            let r = pb::AuthorizePaymentRequest::decode(message.as_slice()).expect("hold");
            (r.sender_id, r.idempotency_key)
        }
        other => panic!("{}: a write by {other}", c.name),
    }
}

#[track_caller]
fn assert_all_distinct<T: Ord + Clone + std::fmt::Debug>(items: &[T], what: &str) {
    let mut unique = items.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), items.len(), "{what}: {items:?}");
}
