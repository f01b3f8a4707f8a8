//! The movements the events tests make through the service, on DynamoDB
//! Local (native gRPC) and on the local cloud (the crate's gRPC-Web client)
//! alike: a payment and its replay, a hold captured in part, another hold
//! voided, and a refund of part of the payment.

use crate::helpers::{ClientTransport, order};
use crate::holds::{by_id, hold_order};
use payment::pb;
use payment::pb::payment_service_client::PaymentServiceClient;

/// How much of the first hold [`make_movements`] captures.
pub(super) const CAPTURED: i64 = 1_500;

/// The movements as the service answered them.
pub(super) struct Movements {
    pub(super) payment: pb::Transaction,
    pub(super) hold: pb::Hold,
    pub(super) captured: pb::CaptureHoldResponse,
    pub(super) second: pb::Hold,
    pub(super) voided: pb::Hold,
    pub(super) refund: pb::Transaction,
}

/// From `a` (which holds at least 3,000) to `b`: a payment of 1,000 and
/// its retry, answered from its record with nothing written; a hold of
/// 2,000 captured for [`CAPTURED`]; a hold of 500 voided; a refund of 300.
pub(super) async fn make_movements<T: ClientTransport>(
    c: &mut PaymentServiceClient<T>,
    a: &str,
    b: &str,
) -> Movements {
    let paid = c
        .make_payment(order("p1", a, b, 1_000))
        .await
        .unwrap()
        .into_inner();
    let replayed = c
        .make_payment(order("p1", a, b, 1_000))
        .await
        .unwrap()
        .into_inner();
    assert!(replayed.replayed);
    assert_eq!(replayed.transaction, paid.transaction);
    let payment = paid.transaction.unwrap();
    let hold = authorize(c, hold_order("h1", a, b, 2_000, 3600)).await;
    let captured = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_id(&hold.hold_id),
            amount: CAPTURED,
        })
        .await
        .unwrap()
        .into_inner();
    let second = authorize(c, hold_order("h2", a, b, 500, 3600)).await;
    let voided = c
        .void_hold(pb::VoidHoldRequest {
            hold: by_id(&second.hold_id),
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let refund = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r1".into(),
            payment: by_id(&payment.transaction_id),
            amount: 300,
            memo: "back".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .transaction
        .unwrap();
    Movements {
        payment,
        hold,
        captured,
        second,
        voided,
        refund,
    }
}

async fn authorize<T: ClientTransport>(
    c: &mut PaymentServiceClient<T>,
    request: pb::AuthorizePaymentRequest,
) -> pb::Hold {
    c.authorize_payment(request)
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap()
}
