//! GetPayment with finalize: a final answer for a key after a cut-off.
//!
//! After DEADLINE_EXCEEDED or UNAVAILABLE a caller cannot know whether its
//! call committed. Its TransactWriteItems may still be on the wire, in a
//! socket buffer, or in a frozen Lambda container, and commit after any
//! lookup that found nothing: a lookup alone can only say "not yet".
//!
//! A fence makes it "never". Where nothing is stored under (sender, key),
//! GetPayment with finalize puts a fence item at that very key, on
//! condition that nothing is there. Every payment, hold and refund record is
//! put on the same condition (`attribute_not_exists(pk)`, in
//! [`Ledger::put_record`]), inside the call's one transaction. So of the
//! fence and the call's write, exactly one is first:
//! - the fence: the late write fails its record's condition, DynamoDB
//!   cancels its whole transaction and no money moves; the call, if it is
//!   still running, and every later call with the key answer
//!   FAILED_PRECONDITION, reason KEY_FENCED (see [`super::replay`]);
//! - the write: the fence's put fails and returns the record, which is the
//!   answer, as GetPayment gives it.
//!
//! CaptureHold and VoidHold only update a hold's record (conditioned on its
//! state), and a refund raises `refunded` of the record it refunds: none of
//! them creates an item under a key, so none can get past a fence.
//!
//! Who may fence: the sender's owner or an admin, who are those who may
//! make calls with the sender's keys (a refund's key is in its payer's key
//! space: the refunded payment's recipient). Anyone else is answered as
//! GetPayment without finalize, and fences nothing, so that nobody learns
//! or closes another's keys. A sender that does not exist has no key to
//! fence: NOT_FOUND.
//!
//! A fence is kept for ever, as records are: a key is never free again. A
//! fence that expired would reopen the window it closes (a write held long
//! enough could commit after it went).

use super::clock::now_ms;
use super::layout::{Fence, StoredRecord, record_key, sdk_error};
use super::{Caller, Found, Ledger, LedgerError};
use crate::domain::PaymentRef;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};

impl Ledger {
    /// GetPayment with finalize: the record under (sender, key) as
    /// [`Self::get_payment`] shows it; where there is none, and the caller
    /// owns the sender (or is an admin), the key is fenced and the answer is
    /// FencedNotFound. `reference` must name a key.
    pub async fn finalize_payment(
        &self,
        reference: &PaymentRef,
        caller: &Caller,
    ) -> Result<Found, LedgerError> {
        let PaymentRef::Key {
            sender_id,
            idempotency_key,
        } = reference
        else {
            return Err(LedgerError::Internal(
                "only a key can be fenced, not a transaction id".into(),
            ));
        };
        let may_fence = self
            .facts(sender_id.as_str())
            .await?
            .is_some_and(|facts| caller.admin || facts.owner == caller.sub);
        if !may_fence {
            return self.get_payment(reference, caller).await;
        }
        let fence = Fence {
            sender_id: sender_id.as_str().to_owned(),
            idempotency_key: idempotency_key.as_str().to_owned(),
            fenced_at_ms: now_ms(),
            fenced_by: caller.sub.to_owned(),
        };
        let stored = match self.put_fence(&fence).await? {
            Some(stored) => stored,
            None => {
                tracing::info!(
                    sender_id = fence.sender_id,
                    key = fence.idempotency_key,
                    by = fence.fenced_by,
                    "key fenced"
                );
                let fenced = StoredRecord::Fence(fence);
                self.known.remember_record(&fenced);
                fenced
            }
        };
        self.shown(reference, Some(stored), caller).await
    }

    /// Puts `fence` where nothing is stored. None when it was put; else
    /// what is stored under its key (a record, or an earlier fence).
    async fn put_fence(&self, fence: &Fence) -> Result<Option<StoredRecord>, LedgerError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.ledger)
            .set_item(Some(fence.to_item()))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error()
        else {
            return Err(sdk_error("PutItem", err));
        };
        let stored = match failed.item() {
            Some(item) => StoredRecord::from_item(item)?,
            None => self
                .read_record(&record_key(&fence.sender_id, &fence.idempotency_key))
                .await?
                .ok_or_else(|| {
                    LedgerError::Internal("a record vanished after a fence's put failed".into())
                })?,
        };
        self.known.remember_record(&stored);
        Ok(Some(stored))
    }
}
