//! One replay rule: a record stored under a key answers a call only when it
//! is the call's own kind with the call's parameters. A payment made with a
//! hold's or a refund's key, a hold with another expiry, a hold or a refund
//! with a payment's key: each is another call, ALREADY_EXISTS, and nothing
//! moves.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::pb;
use tonic::Code;
use tonic_types::StatusExt;

/// The reason and the stored kind a refusal names.
fn reused(status: tonic::Status) -> (Code, String, String) {
    let info = status.get_error_details().error_info().cloned();
    let info = info.unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"));
    (
        status.code(),
        info.reason,
        info.metadata
            .get("stored_kind")
            .cloned()
            .unwrap_or_default(),
    )
}

fn expected(kind: &str) -> (Code, String, String) {
    (
        Code::AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED".into(),
        kind.into(),
    )
}

fn hold(key: &str, from: &str, to: &str, amount: i64, seconds: i64) -> pb::AuthorizePaymentRequest {
    let o = order(key, from, to, amount);
    pb::AuthorizePaymentRequest {
        idempotency_key: o.idempotency_key,
        sender_id: o.sender_id,
        recipient_id: o.recipient_id,
        amount: o.amount,
        currency: o.currency,
        memo: o.memo,
        expires_in_seconds: seconds,
    }
}

#[tokio::test]
async fn a_payment_with_a_holds_key_is_another_call() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (alice, shop) = (unique("alice"), unique("shop"));
    add(&mut c, &alice, "EUR", 10_000).await.unwrap();
    add(&mut c, &shop, "EUR", 0).await.unwrap();
    c.authorize_payment(hold("k", &alice, &shop, 3_000, 600))
        .await
        .unwrap();
    // The same key, parties, amount and memo as the hold.
    let err = pay(&mut c, order("k", &alice, &shop, 3_000))
        .await
        .expect_err("a payment is not a hold");
    assert_eq!(reused(err), expected("hold"));
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 0);
    assert_eq!(balance(&mut c, &alice).await.unwrap(), 10_000);
    // The hold itself still replays.
    let again = c
        .authorize_payment(hold("k", &alice, &shop, 3_000, 600))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    app.stop().await;
}

#[tokio::test]
async fn a_hold_with_another_expiry_is_another_call() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (alice, shop) = (unique("alice"), unique("shop"));
    add(&mut c, &alice, "EUR", 10_000).await.unwrap();
    add(&mut c, &shop, "EUR", 0).await.unwrap();
    let first = c
        .authorize_payment(hold("k", &alice, &shop, 3_000, 600))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.replayed);
    let err = c
        .authorize_payment(hold("k", &alice, &shop, 3_000, 601))
        .await
        .expect_err("another expiry is another hold");
    assert_eq!(reused(err), expected("hold"));
    let same = c
        .authorize_payment(hold("k", &alice, &shop, 3_000, 600))
        .await
        .unwrap()
        .into_inner();
    assert!(same.replayed);
    assert_eq!(
        same.hold.unwrap().hold_id,
        first.hold.unwrap().hold_id,
        "the replay answers the same hold"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_payment_with_a_refunds_key_is_another_call() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (customer, shop) = (unique("customer"), unique("shop"));
    add(&mut c, &customer, "EUR", 10_000).await.unwrap();
    add(&mut c, &shop, "EUR", 0).await.unwrap();
    pay(&mut c, order("buy", &customer, &shop, 4_000))
        .await
        .unwrap();
    let refund = |key: &str| pb::RefundPaymentRequest {
        idempotency_key: key.into(),
        payment: Some(pb::PaymentRef {
            sender_id: customer.clone(),
            idempotency_key: "buy".into(),
            ..Default::default()
        }),
        amount: 1_000,
        memo: "test".into(),
    };
    c.refund_payment(refund("r")).await.unwrap();
    // The shop pays the customer with the refund's key, the same amount
    // and memo: the refund's record is in the shop's key space.
    let err = pay(&mut c, order("r", &shop, &customer, 1_000))
        .await
        .expect_err("a payment is not a refund");
    assert_eq!(reused(err), expected("refund"));
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 3_000);
    assert_eq!(balance(&mut c, &customer).await.unwrap(), 7_000);
    // And the other way: a refund under a key the shop used for a payment.
    pay(&mut c, order("p", &shop, &customer, 500))
        .await
        .unwrap();
    let err = c
        .refund_payment(refund("p"))
        .await
        .expect_err("a refund is not a payment");
    assert_eq!(reused(err), expected("payment"));
    // A hold under a payment's key.
    let err = c
        .authorize_payment(hold("buy", &customer, &shop, 4_000, 600))
        .await
        .expect_err("a hold is not a payment");
    assert_eq!(reused(err), expected("payment"));
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 2_500);
    assert_eq!(balance(&mut c, &customer).await.unwrap(), 7_500);
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    app.stop().await;
}
