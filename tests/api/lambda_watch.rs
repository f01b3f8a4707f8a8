//! End to end through `cargo lambda watch`: the real function binary,
//! served the way the local Lambda emulator serves it, over gRPC-Web binary
//! and text: every method of the contract (walked from `pb::METHODS` by
//! [`every_call`]) including the streamed history, and the error codes.

use crate::deployed::{a_retry_replays, errors_come_through, history_pages_continue};
use crate::harness::{Bearer, LambdaWatch, TESTER, fresh_ledger, token, web_client};
use crate::helpers::grpc_web::{raw_at, request_headers};
use crate::helpers::{assert_code, unique};
use crate::transport::{RawWeb, every_call};
use payment::pb;
use tonic::Code;

/// The callers' rules of holds, refunds and lookups
/// ([`crate::holds::caller_rules`]), here through the function. In this
/// module so that `make test-fast` (which skips `lambda_watch::`) needs no
/// cargo lambda.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_hold_capture_void_refund_and_look_up_only_what_is_theirs_on_the_lambda() {
    let ledger = fresh_ledger().await;
    let watch = LambdaWatch::start(&ledger).await;
    crate::holds::caller_rules(&watch.url()).await;
    let report = ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    assert_eq!((report.holds, report.refunds), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_under_cargo_lambda_watch_serves_every_call() {
    let ledger = fresh_ledger().await;
    let watch = LambdaWatch::start(&ledger).await;
    let mut web = web_client(&watch.url(), Bearer::new(&token(TESTER, true)));
    let (a, b) = (unique("a"), unique("b"));
    for (id, initial) in [(&a, 10_000), (&b, 0)] {
        web.add_account(pb::AddAccountRequest {
            account_id: id.clone(),
            display_name: String::new(),
            currency: "EUR".into(),
            initial_balance: initial,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let order = |key: &str, amount: i64| pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: a.clone(),
        recipient_id: b.clone(),
        amount,
        currency: "EUR".into(),
        memo: "via lambda".into(),
    };
    a_retry_replays(&mut web, order("l1", 2_500)).await;
    web.make_payment(order("l2", 500)).await.unwrap();

    let balance = web
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: a.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
        .balance;
    assert_eq!(balance, 7_000);
    history_pages_continue(&mut web, &a).await;

    // Error codes come through the function as gRPC statuses.
    errors_come_through(&mut web, &a, &order, ["l3", "l1", "l4"]).await;
    let balance_of = |id: &str| pb::GetAccountBalanceRequest {
        account_id: id.into(),
    };

    // Auth is enforced by the function itself here (no API Gateway).
    let mut anonymous = web_client(&watch.url(), Bearer::none());
    assert_code(
        anonymous.get_account_balance(balance_of(&a)).await,
        Code::Unauthenticated,
        "Bearer",
    );
    let mut mallory = web_client(&watch.url(), Bearer::new(&token("mallory", false)));
    assert_code(
        mallory.get_account_balance(balance_of(&a)).await,
        Code::PermissionDenied,
        "owner",
    );
    assert_code(
        mallory.make_payment(order("m1", 1)).await,
        Code::PermissionDenied,
        "does not own",
    );

    // Every method of the contract, with the service's client (binary).
    every_call(&mut web, TESTER, "cargo lambda watch, gRPC-Web binary").await;

    // grpc-web-text: every method again, raw, replies decoded chunk by chunk.
    let authorization = format!("Bearer {}", token(TESTER, true));
    let mut text = RawWeb {
        base: watch.url(),
        text: true,
        headers: vec![("authorization".into(), authorization.clone())],
    };
    every_call(&mut text, TESTER, "cargo lambda watch, grpc-web-text").await;
    let mut headers = request_headers(true);
    headers.push(("authorization", authorization.as_str()));
    let reply = raw_at(
        &watch.url(),
        http::Method::POST,
        "/payment.v1.PaymentService/GetAccountBalance",
        &headers,
        b"%%%".to_vec(),
    )
    .await;
    assert_eq!(
        reply.grpc_status().as_deref(),
        Some("3"),
        "{}",
        reply.grpc_message()
    );
    drop(watch);
}
