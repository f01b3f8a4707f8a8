//! Holds, refunds and lookups: one test per rule, through the real server
//! and DynamoDB Local, on both entry points where a caller is concerned.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::pb;
use tonic::Code;

pub fn hold_order(
    key: &str,
    from: &str,
    to: &str,
    amount: i64,
    seconds: i64,
) -> pb::AuthorizePaymentRequest {
    pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: "EUR".into(),
        memo: "hold".into(),
        expires_in_seconds: seconds,
    }
}

pub fn by_key(sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        sender_id: sender.into(),
        idempotency_key: key.into(),
        ..Default::default()
    })
}

pub fn by_id(id: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        transaction_id: id.into(),
        ..Default::default()
    })
}

pub async fn account(client: &mut Client, id: &str) -> pb::Account {
    client
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
}

#[tokio::test]
async fn a_hold_reserves_money_and_its_capture_moves_it_once() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 10_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let placed = c
        .authorize_payment(hold_order("h1", &a, &b, 6_000, 3600))
        .await
        .unwrap()
        .into_inner();
    assert!(!placed.replayed);
    let hold = placed.hold.unwrap();
    assert_eq!(hold.state, pb::HoldState::Open as i32);
    let acct = account(&mut c, &a).await;
    assert_eq!(
        (acct.balance, acct.held, acct.available),
        (10_000, 6_000, 4_000)
    );
    // Only available money can be spent.
    assert_code(
        pay(&mut c, order("p1", &a, &b, 4_001)).await,
        Code::FailedPrecondition,
        "40.00 EUR available",
    );
    pay(&mut c, order("p2", &a, &b, 4_000)).await.unwrap();
    // A replay of the hold is the same hold.
    let again = c
        .authorize_payment(hold_order("h1", &a, &b, 6_000, 3600))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.hold.unwrap().hold_id, hold.hold_id);
    let captured = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!captured.replayed);
    let tx = captured.transaction.unwrap();
    assert_eq!(tx.transaction_id, hold.hold_id);
    assert_eq!(tx.amount, 5_000);
    assert_eq!(tx.kind, pb::TransactionKind::Capture as i32);
    let acct = account(&mut c, &a).await;
    assert_eq!((acct.balance, acct.held, acct.available), (1_000, 0, 1_000));
    assert_eq!(balance(&mut c, &b).await.unwrap(), 9_000);
    // Once: the same capture is a replay, another amount is refused.
    let replay = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_id(&hold.hold_id),
            amount: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(replay.replayed);
    assert_code(
        c.capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 0,
        })
        .await,
        Code::FailedPrecondition,
        "captured already",
    );
    assert_code(
        c.void_hold(pb::VoidHoldRequest {
            hold: by_key(&a, "h1"),
        })
        .await,
        Code::FailedPrecondition,
        "captured already",
    );
    // Refund part of the capture, then the rest, then nothing more.
    let refund = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r1".into(),
            payment: by_id(&hold.hold_id),
            amount: 2_000,
            memo: "partial".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refund.refunded_total, 2_000);
    let rtx = refund.transaction.unwrap();
    assert_eq!(rtx.kind, pb::TransactionKind::Refund as i32);
    assert_eq!(rtx.refund_of, hold.hold_id);
    assert_eq!(
        (rtx.sender_id.as_str(), rtx.recipient_id.as_str()),
        (b.as_str(), a.as_str())
    );
    assert_code(
        c.refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r2".into(),
            payment: by_key(&a, "h1"),
            amount: 3_001,
            memo: String::new(),
        })
        .await,
        Code::FailedPrecondition,
        "exceeds what is left",
    );
    let rest = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r3".into(),
            payment: by_key(&a, "h1"),
            amount: 0,
            memo: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.transaction.unwrap().amount, 3_000);
    assert_eq!(rest.refunded_total, 5_000);
    assert_eq!(balance(&mut c, &a).await.unwrap(), 6_000);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 4_000);
    let found = c
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&a, "h1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.refunded_total, 5_000);
    assert_eq!(found.hold.unwrap().state, pb::HoldState::Captured as i32);
    let refund_found = c
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&b, "r1"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refund_found.transaction.unwrap().refund_of, hold.hold_id);
    let history = history_all(&mut c, &a).await;
    check_balance_chain(&a, 6_000, &history);
    let kinds: Vec<i32> = history
        .iter()
        .map(|e| e.transaction.as_ref().unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        [
            pb::TransactionKind::Refund as i32,
            pb::TransactionKind::Refund as i32,
            pb::TransactionKind::Capture as i32,
            pb::TransactionKind::Payment as i32,
            pb::TransactionKind::Opening as i32,
        ]
    );
    let listed = c
        .list_accounts(pb::ListAccountsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.accounts.iter().any(|x| x.account_id == a));
}
