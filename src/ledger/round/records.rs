//! The call's record in a round: as read with the parties, taken by
//! another call, or answering a refusal; and the writes of records.

use super::transact::Reason;
use crate::ledger::layout::{Item, StoredRecord, build_error};
use crate::ledger::{Ledger, LedgerError};
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};

impl Ledger {
    /// An update of a record in the ledger table, returning the record as
    /// it is when its condition fails.
    pub(in crate::ledger) fn record_update(
        &self,
        key: Item,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Item,
    ) -> Result<TransactWriteItem, LedgerError> {
        let mut builder = Update::builder()
            .table_name(&self.tables.ledger)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, attribute) in names {
            builder = builder.expression_attribute_names(*name, *attribute);
        }
        Ok(TransactWriteItem::builder()
            .update(builder.build().map_err(build_error)?)
            .build())
    }

    /// When a record's put failed its condition: the record stored under
    /// its key (as DynamoDB returned it with the failure, else read fresh),
    /// which answers the call. None when the put did not fail.
    pub(in crate::ledger) async fn taken(
        &self,
        reason: &Reason,
        key: &Item,
    ) -> Result<Option<StoredRecord>, LedgerError> {
        if !reason.failed() {
            return Ok(None);
        }
        let stored = match reason.item() {
            Some(item) => StoredRecord::from_item(item)?,
            None => self.read_record(key).await?.ok_or_else(|| {
                LedgerError::Internal("a record vanished after its put failed".into())
            })?,
        };
        self.known.remember_record(&stored);
        Ok(Some(stored))
    }

    /// A refusal is the answer only if nothing is stored under the call's
    /// key: a replay of a committed call is answered from its record even
    /// when the same call could not be made now. `record` is the record as
    /// read in this round (read now when it was not).
    /// Returns the stored record, which answers the call, or the refusal.
    pub(in crate::ledger) async fn stored_or(
        &self,
        refusal: LedgerError,
        key: &Item,
        record: RecordRead<StoredRecord>,
    ) -> Result<StoredRecord, LedgerError> {
        let stored = match record {
            RecordRead::Found(stored) => Some(stored),
            RecordRead::Absent => None,
            RecordRead::NotRead => self.read_record(key).await?,
        };
        stored.ok_or(refusal)
    }

    /// A put of a new ledger item (a record), returning what is stored
    /// under its key when one exists already. Its condition, that the key
    /// is free, is what makes a fence final (see [`crate::ledger::fence`]): every
    /// payment, hold and refund record is put through here.
    pub(in crate::ledger) fn put_record(
        &self,
        item: Item,
    ) -> Result<TransactWriteItem, LedgerError> {
        Ok(TransactWriteItem::builder()
            .put(self.put_new(item)?)
            .build())
    }
}

/// The item under a call's key as a round read it, in the request that
/// read the parties: not read (every party was known; read it when it
/// matters), read and absent, or read and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) enum RecordRead<T> {
    NotRead,
    Absent,
    Found(T),
}

impl<T> RecordRead<T> {
    /// What a read found: `stored`, or nothing.
    pub(in crate::ledger) fn of(stored: Option<T>) -> Self {
        match stored {
            Some(stored) => RecordRead::Found(stored),
            None => RecordRead::Absent,
        }
    }

    /// The item when it was read and found.
    pub(in crate::ledger) fn found(self) -> Option<T> {
        match self {
            RecordRead::Found(stored) => Some(stored),
            RecordRead::NotRead | RecordRead::Absent => None,
        }
    }
}
