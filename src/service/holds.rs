//! AuthorizePayment, CaptureHold and VoidHold.

use super::convert::{HOLD_REF, hold_message, payment_ref, transaction_message};
use super::{PaymentApi, unary};
use crate::auth::Caller;
use crate::domain::{HoldOrder, PaymentOrder, parse_amount_or_all};
use crate::error::{CutOff, ServiceError};
use crate::pb;
use tonic::{Request, Response};

impl PaymentApi {
    pub(super) async fn authorize_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::AuthorizePaymentRequest>,
    ) -> Result<Response<pb::AuthorizePaymentResponse>, ServiceError> {
        unary(
            request,
            CutOff::Hold,
            |r| {
                let order = PaymentOrder::parse(
                    &r.idempotency_key,
                    &r.sender_id,
                    &r.recipient_id,
                    r.amount,
                    &r.currency,
                    &r.memo,
                )?;
                Ok(HoldOrder::parse(order, r.expires_in_seconds)?)
            },
            |hold| async move { Ok(self.ledger.authorize_payment(&hold, caller).await?) },
            |outcome| pb::AuthorizePaymentResponse {
                hold: Some(hold_message(outcome.hold)),
                replayed: outcome.replayed,
            },
        )
        .await
    }

    pub(super) async fn capture_hold_call(
        &self,
        caller: &Caller,
        request: Request<pb::CaptureHoldRequest>,
    ) -> Result<Response<pb::CaptureHoldResponse>, ServiceError> {
        unary(
            request,
            CutOff::Hold,
            |r| {
                let hold = payment_ref(HOLD_REF, r.hold.as_ref())?;
                Ok((hold, parse_amount_or_all(r.amount)?))
            },
            |(hold, amount)| async move {
                Ok(self.ledger.capture_hold(&hold, amount, caller).await?)
            },
            |outcome| pb::CaptureHoldResponse {
                hold: Some(hold_message(outcome.hold)),
                transaction: outcome.capture.map(transaction_message),
                replayed: outcome.replayed,
            },
        )
        .await
    }

    pub(super) async fn void_hold_call(
        &self,
        caller: &Caller,
        request: Request<pb::VoidHoldRequest>,
    ) -> Result<Response<pb::VoidHoldResponse>, ServiceError> {
        unary(
            request,
            CutOff::Hold,
            |r| Ok(payment_ref(HOLD_REF, r.hold.as_ref())?),
            |hold| async move { Ok(self.ledger.void_hold(&hold, caller).await?) },
            |outcome| pb::VoidHoldResponse {
                hold: Some(hold_message(outcome.hold)),
                replayed: outcome.replayed,
            },
        )
        .await
    }
}
