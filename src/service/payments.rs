//! MakePayment, RefundPayment and GetPayment.

use super::convert::{PAYMENT_REF, hold_message, payment_ref, transaction_message};
use super::{PaymentApi, unary};
use crate::auth::Caller;
use crate::domain::{InvalidField, PaymentOrder, PaymentRef, RefundOrder};
use crate::error::{CutOff, ServiceError};
use crate::ledger;
use crate::pb;
use tonic::{Request, Response};

impl PaymentApi {
    pub(super) async fn make_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::MakePaymentRequest>,
    ) -> Result<Response<pb::MakePaymentResponse>, ServiceError> {
        unary(
            request,
            CutOff::Payment,
            |r| {
                Ok(PaymentOrder::parse(
                    &r.idempotency_key,
                    &r.sender_id,
                    &r.recipient_id,
                    r.amount,
                    &r.currency,
                    &r.memo,
                )?)
            },
            |order| async move { Ok(self.ledger.make_payment(&order, caller).await?) },
            |outcome| {
                tracing::debug!(
                    transaction_id = %outcome.payment.transaction_id,
                    replayed = outcome.replayed,
                    "payment"
                );
                pb::MakePaymentResponse {
                    transaction: Some(transaction_message(outcome.payment)),
                    replayed: outcome.replayed,
                }
            },
        )
        .await
    }

    pub(super) async fn refund_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, ServiceError> {
        unary(
            request,
            CutOff::Payment,
            |r| {
                let payment = payment_ref(PAYMENT_REF, r.payment.as_ref())?;
                Ok(RefundOrder::parse(
                    &r.idempotency_key,
                    payment,
                    r.amount,
                    &r.memo,
                )?)
            },
            |order| async move { Ok(self.ledger.refund_payment(&order, caller).await?) },
            |outcome| pb::RefundPaymentResponse {
                transaction: Some(transaction_message(outcome.refund)),
                replayed: outcome.replayed,
                refunded_total: outcome.refunded_total_minor,
            },
        )
        .await
    }

    /// GetPayment, or with `finalize` a final answer for a key (a fence
    /// where nothing is stored).
    pub(super) async fn get_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, ServiceError> {
        let finalize = request.get_ref().finalize;
        let cut_off = if finalize {
            CutOff::Finalize
        } else {
            CutOff::Read
        };
        unary(
            request,
            cut_off,
            |r| {
                let payment = payment_ref(PAYMENT_REF, r.payment.as_ref())?;
                // A fence stands at a record's key: only a key can be fenced.
                if finalize && matches!(payment, PaymentRef::Id(_)) {
                    return Err(InvalidField::new(
                        "payment.transaction_id",
                        "is set with finalize; finalize fences a key: name the payment by payment.sender_id and payment.idempotency_key",
                    )
                    .into());
                }
                Ok(payment)
            },
            |payment| async move {
                Ok(if finalize {
                    self.ledger.finalize_payment(&payment, caller).await?
                } else {
                    self.ledger.get_payment(&payment, caller).await?
                })
            },
            found_message,
        )
        .await
    }
}

/// What GetPayment found, as its reply.
fn found_message(found: ledger::Found) -> pb::GetPaymentResponse {
    match found {
        ledger::Found::Transfer {
            idempotency_key,
            payment,
            refunded_minor,
        } => pb::GetPaymentResponse {
            transaction: Some(transaction_message(payment)),
            hold: None,
            idempotency_key,
            refunded_total: refunded_minor,
        },
        ledger::Found::Hold {
            hold,
            capture,
            refunded_minor,
        } => pb::GetPaymentResponse {
            idempotency_key: hold.idempotency_key.clone(),
            hold: Some(hold_message(hold)),
            transaction: capture.map(transaction_message),
            refunded_total: refunded_minor,
        },
    }
}
