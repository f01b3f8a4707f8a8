//! Sending one TransactWriteItems and reading its answer: committed,
//! cancelled (with one [`Reason`] per item), or unknown.

use crate::ledger::layout::{AccountsItem, Item, is_retryable_code, sdk_error};
use crate::ledger::{Ledger, LedgerError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, TransactWriteItem};

/// How DynamoDB answered one TransactWriteItems.
#[derive(Debug)]
pub(in crate::ledger) enum Written {
    Committed,
    /// Cancelled, with one reason per item in the order written.
    Cancelled(Vec<Reason>),
    /// No answer, or a server-side error: it may or may not have committed.
    Unknown(String),
}

/// Why DynamoDB cancelled a transaction, for one of its items.
#[derive(Debug, Clone)]
pub(in crate::ledger) enum Reason {
    /// This item was fine.
    None,
    /// Its condition failed; the item as it is now, when the write asked
    /// for it (ReturnValuesOnConditionCheckFailure) and it exists.
    Failed(Option<Item>),
    /// Another transaction held the item (TransactionConflict, or the whole
    /// request was TransactionInProgress), DynamoDB throttled it
    /// (ThrottlingError, ProvisionedThroughputExceeded), or a code this
    /// version does not know: going again after a pause may succeed.
    Busy { throttled: bool },
    /// ValidationError: the request itself was invalid.
    Invalid(String),
}

impl Reason {
    fn of(code: Option<&str>, message: Option<&str>, item: Option<&Item>) -> Self {
        match code.unwrap_or("None") {
            "None" => Reason::None,
            "ConditionalCheckFailed" => Reason::Failed(item.cloned()),
            "ThrottlingError" | "ProvisionedThroughputExceeded" => Reason::Busy { throttled: true },
            "ValidationError" => Reason::Invalid(message.unwrap_or("").to_owned()),
            // TransactionConflict, and any code added after this was
            // written: nothing was written, so another round is safe.
            _ => Reason::Busy { throttled: false },
        }
    }

    /// Whether the item's condition failed.
    pub(in crate::ledger) fn failed(&self) -> bool {
        matches!(self, Reason::Failed(_))
    }

    /// The item a failed condition returned.
    pub(in crate::ledger) fn item(&self) -> Option<&Item> {
        match self {
            Reason::Failed(item) => item.as_ref(),
            _ => None,
        }
    }

    pub(in crate::ledger) fn is_none(&self) -> bool {
        matches!(self, Reason::None)
    }
}

/// The reason of item `index` (None past the end).
pub(in crate::ledger) fn reason(reasons: &[Reason], index: usize) -> &Reason {
    reasons.get(index).unwrap_or(&Reason::None)
}

impl Ledger {
    /// Sends one TransactWriteItems with a fresh ClientRequestToken (which
    /// makes the SDK's own retries of this exact request idempotent) and
    /// reads its answer. Account items returned by failed conditions are
    /// remembered as the newest word on their shards.
    pub(in crate::ledger) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Written, LedgerError> {
        let count = items.len();
        crate::telemetry::count_round();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Written::Committed),
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                crate::telemetry::count_conflict();
                let given = cancelled.cancellation_reasons();
                let reasons: Vec<Reason> = (0..count.max(given.len()))
                    .map(|i| match given.get(i) {
                        Some(r) => Reason::of(r.code(), r.message(), r.item()),
                        None => Reason::None,
                    })
                    .collect();
                for reason in &reasons {
                    if let Some(item) = reason.item()
                        && !item.contains_key("pk")
                    {
                        self.observe_returned(item);
                    }
                }
                Ok(Written::Cancelled(reasons))
            }
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                crate::telemetry::count_conflict();
                Ok(Written::Cancelled(vec![
                    Reason::Busy { throttled: false };
                    count
                ]))
            }
            Some(_) if !may_have_committed(&err) => Err(sdk_error("TransactWriteItems", err)),
            _ => Ok(Written::Unknown(
                sdk_error("TransactWriteItems", err).to_string(),
            )),
        }
    }

    /// After a cancelled round: forgets shard `shard` of `account_id` when
    /// its condition failed (`reason`) without returning the item, so that
    /// the next round reads it. An item that came back was remembered by
    /// [`Self::transact`].
    pub(in crate::ledger) fn forget_unreturned(
        &self,
        reason: &Reason,
        account_id: &str,
        shard: u32,
    ) {
        if reason.failed() && reason.item().is_none() {
            self.known.forget(account_id, shard);
        }
    }

    /// Remembers an account item DynamoDB returned.
    pub(in crate::ledger) fn observe_returned(&self, item: &Item) {
        match AccountsItem::from_item(item) {
            Ok(AccountsItem::Account(facts, state)) => {
                self.known.observe(&facts.account_id, 0, &state)
            }
            Ok(AccountsItem::Shard {
                account_id,
                shard,
                state,
            }) => self.known.observe(&account_id, shard, &state),
            Err(err) => tracing::warn!(%err, "returned account item does not decode"),
        }
    }
}

/// Whether a failed request may have been carried out: no answer at all
/// (timeout, connection), or a server-side error (5xx, throttling after
/// the SDK's retries). The codes are the one list in `layout`.
fn may_have_committed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_dynamodb::error::SdkError::ServiceError(service) => {
            service.err().code().is_some_and(is_retryable_code)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::layout::s;

    #[test]
    fn every_cancellation_reason_is_read() {
        let item = Item::from([("account_id".to_owned(), s("a"))]);
        assert!(matches!(Reason::of(None, None, None), Reason::None));
        assert!(matches!(Reason::of(Some("None"), None, None), Reason::None));
        assert!(matches!(
            Reason::of(Some("ConditionalCheckFailed"), None, Some(&item)),
            Reason::Failed(Some(_))
        ));
        for (code, throttled) in [
            ("TransactionConflict", false),
            ("ThrottlingError", true),
            ("ProvisionedThroughputExceeded", true),
            ("SomethingNew", false),
        ] {
            match Reason::of(Some(code), None, None) {
                Reason::Busy { throttled: t } => assert_eq!(t, throttled, "{code}"),
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            Reason::of(Some("ValidationError"), Some("bad"), None),
            Reason::Invalid(m) if m == "bad"
        ));
    }
}
