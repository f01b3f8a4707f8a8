//! One replay rule for every call that writes under an idempotency key.
//!
//! Payments, holds and refunds share one key space per paying account
//! (`P#<payer>` / `K#<key>`). A record stored under a call's key answers the
//! call only when it is the call's own kind with the call's parameters:
//! - a payment: the recipient, amount, currency and memo;
//! - a hold: the same, and the same expiry (`expires_in_seconds`);
//! - a refund: the refunded payment, the amount (when given) and the memo.
//!
//! A fence under the key (GetPayment with finalize, see [`super::fence`])
//! answers every call with FAILED_PRECONDITION, reason KEY_FENCED: the key
//! is closed for ever, and the call needs a new one. That includes a call
//! still in flight whose write met the fence. Anything else under the key
//! is another call: ALREADY_EXISTS with reason IDEMPOTENCY_KEY_REUSED,
//! whose metadata names the stored kind. A record written by one of this
//! call's own rounds is the call's answer, not a replay.

use super::layout::StoredRecord;
use super::{LedgerError, TransactionKind};
use crate::domain::{HoldOrder, PaymentOrder, RefundOrder};

/// A call that writes under an idempotency key.
#[derive(Debug, Clone, Copy)]
pub(super) enum Call<'a> {
    Payment(&'a PaymentOrder),
    Hold(&'a HoldOrder),
    /// A refund of the payment with transaction id `refund_of`, paid by
    /// `payer` (the payment's recipient).
    Refund {
        order: &'a RefundOrder,
        refund_of: &'a str,
        payer: &'a str,
    },
}

impl Call<'_> {
    fn key_and_payer(&self) -> (&str, &str) {
        match self {
            Call::Payment(order) => (order.idempotency_key.as_str(), order.sender_id.as_str()),
            Call::Hold(hold) => (
                hold.order.idempotency_key.as_str(),
                hold.order.sender_id.as_str(),
            ),
            Call::Refund { order, payer, .. } => (order.idempotency_key.as_str(), payer),
        }
    }

    /// Whether `stored` is this call made before.
    fn same(&self, stored: &StoredRecord) -> bool {
        match (self, stored) {
            (Call::Payment(order), StoredRecord::Transfer { payment, .. }) => {
                payment.kind == TransactionKind::Payment && payment.matches(order)
            }
            (Call::Hold(hold), StoredRecord::Hold(record)) => {
                record.payment.matches(&hold.order)
                    && record.expires_at_ms - record.payment.created_at_ms == hold.expires_in_ms
            }
            (
                Call::Refund {
                    order, refund_of, ..
                },
                StoredRecord::Transfer { payment, .. },
            ) => {
                payment.kind == TransactionKind::Refund
                    && payment.refund_of == *refund_of
                    && payment.memo == order.memo
                    && order.amount_minor.is_none_or(|a| a == payment.amount_minor)
            }
            _ => false,
        }
    }
}

/// Whether `stored`, found under the call's key, answers it: Ok(false) when
/// one of the call's own rounds wrote it (`own_ids`: the transaction ids
/// this call tried), Ok(true) for a replay, KEY_FENCED for a fence, else
/// IDEMPOTENCY_KEY_REUSED.
pub(super) fn replayed(
    call: Call<'_>,
    own_ids: &[String],
    stored: &StoredRecord,
) -> Result<bool, LedgerError> {
    let (key, payer) = call.key_and_payer();
    if let StoredRecord::Fence(_) = stored {
        return Err(LedgerError::KeyFenced {
            sender_id: payer.to_owned(),
            key: key.to_owned(),
        });
    }
    if stored
        .transaction_id()
        .is_some_and(|id| own_ids.iter().any(|own| own == id))
    {
        return Ok(false);
    }
    if call.same(stored) {
        return Ok(true);
    }
    Err(LedgerError::IdempotencyKeyReused {
        key: key.to_owned(),
        sender_id: payer.to_owned(),
        stored_kind: stored.kind_name(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::layout::Fence;
    use super::*;

    #[test]
    fn a_fence_answers_every_call_with_key_fenced() {
        let order = PaymentOrder::parse("k1", "alice", "bob", 100, "EUR", "").unwrap();
        let fence = Fence {
            sender_id: "alice".into(),
            idempotency_key: "k1".into(),
            fenced_at_ms: 1,
            fenced_by: "alice".into(),
        };
        // Stored and read back as DynamoDB returns it with a failed condition.
        let stored = StoredRecord::from_item(&fence.to_item()).unwrap();
        assert_eq!(stored, StoredRecord::Fence(fence));
        assert_eq!(stored.transaction_id(), None);
        assert_eq!(
            stored.key(),
            super::super::layout::record_key("alice", "k1")
        );
        let hold = HoldOrder::parse(order.clone(), 60).unwrap();
        for call in [Call::Payment(&order), Call::Hold(&hold)] {
            match replayed(call, &["t-own".to_owned()], &stored) {
                Err(LedgerError::KeyFenced { sender_id, key }) => {
                    assert_eq!((sender_id.as_str(), key.as_str()), ("alice", "k1"))
                }
                other => panic!("{call:?}: {other:?}"),
            }
        }
    }
}
