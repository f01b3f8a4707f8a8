//! Finding payment, hold and refund records: by key or through the
//! transaction index, fresh or as this instance remembers them, and the
//! accounts' facts that decide who may see or act on them.

use super::layout::{AccountFacts, AccountsItem, Item, StoredRecord, TXID_INDEX, s, sdk_error};
use super::{Ledger, LedgerError};
use crate::domain::PaymentRef;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

impl Ledger {
    /// An account's facts: what this instance knows, else one read. None
    /// when it does not exist.
    pub(super) async fn facts(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountFacts>, LedgerError> {
        if let Some(known) = self.known.get(account_id) {
            return Ok(Some(known.facts));
        }
        match self
            .read_accounts_items(&[account_id.to_owned()])
            .await?
            .pop()
        {
            Some(AccountsItem::Account(facts, state)) => {
                self.known.remember(&facts);
                self.known.observe(account_id, 0, &state);
                Ok(Some(facts))
            }
            _ => Ok(None),
        }
    }

    /// The record a reference names, read with strong consistency. By
    /// transaction id it is first found through the index (eventually
    /// consistent: a record written a moment ago may not be found yet).
    pub(super) async fn find_record(
        &self,
        reference: &PaymentRef,
    ) -> Result<Option<StoredRecord>, LedgerError> {
        let key = match reference {
            PaymentRef::Key {
                sender_id,
                idempotency_key,
            } => super::layout::record_key(sender_id.as_str(), idempotency_key.as_str()),
            PaymentRef::Id(transaction_id) => {
                let output = self
                    .client
                    .query()
                    .table_name(&self.tables.ledger)
                    .index_name(TXID_INDEX)
                    .key_condition_expression("record_txid = :id")
                    .expression_attribute_values(":id", s(transaction_id))
                    .limit(1)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query", e))?;
                let Some(found) = output.items().first() else {
                    return Ok(None);
                };
                let (Some(pk), Some(sk)) = (found.get("pk"), found.get("sk")) else {
                    return Err(LedgerError::Internal(
                        "index entry lacks the record's key".into(),
                    ));
                };
                Item::from([("pk".to_owned(), pk.clone()), ("sk".to_owned(), sk.clone())])
            }
        };
        let record = self.read_record_item(key).await?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok(record)
    }

    /// The record a reference names as this instance last wrote or read it
    /// (`fresh` false), else read (`fresh` true). A remembered record may be
    /// stale: a caller only plans a conditioned write from it, and reads it
    /// fresh before it refuses anything.
    pub(super) async fn recall_record(
        &self,
        reference: &PaymentRef,
    ) -> Result<(Option<StoredRecord>, bool), LedgerError> {
        match self.known.record(reference) {
            Some(record) => Ok((Some(record), false)),
            None => Ok((self.find_record(reference).await?, true)),
        }
    }

    /// The record stored under a key, strongly consistent, remembered.
    pub(super) async fn read_record(
        &self,
        key: &Item,
    ) -> Result<Option<StoredRecord>, LedgerError> {
        let record = self.read_record_item(key.clone()).await?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok(record)
    }

    /// One record by its key, strongly consistent.
    pub(super) async fn read_record_item(
        &self,
        key: Item,
    ) -> Result<Option<StoredRecord>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.ledger)
            .set_key(Some(key))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        output.item().map(StoredRecord::from_item).transpose()
    }
}

/// A reference in words, for NOT_FOUND messages.
pub(super) fn describe(reference: &PaymentRef) -> String {
    match reference {
        PaymentRef::Id(id) => format!("with transaction id {id:?}"),
        PaymentRef::Key {
            sender_id,
            idempotency_key,
        } => format!(
            "of sender {:?} with idempotency key {:?}",
            sender_id.as_str(),
            idempotency_key.as_str()
        ),
    }
}
