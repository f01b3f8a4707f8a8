//! What captures and refunds share: reading parties and records fresh, and
//! writing one transfer round (debits, one credit, record writes, entries)
//! as one TransactWriteItems.
//!
//! MakePayment has its own, warmer path (`payments`), because it is the
//! call that must cost one request. Captures and refunds read what they
//! touch in every round (one BatchGetItem), then write once: simpler, and
//! still exact, since every write is conditioned on what was read.

use super::layout::{
    AccountFacts, AccountsItem, Item, RecordLegs, ShardState, StoredEntry, StoredRecord,
    TXID_INDEX, build_error, legs_attributes, now_ms, s, sdk_error,
};
use super::payments::{Party, is_server_side};
use super::{Direction, Ledger, LedgerError, Payment};
use crate::domain::{PaymentRef, shard_balance_max_minor};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};

/// One round of a capture or refund, as planned from fresh reads.
pub(super) struct Round {
    pub sender: AccountFacts,
    pub recipient: AccountFacts,
    /// The transfer; its `created_at_ms` is the round's entry time.
    pub payment: Payment,
    /// (shard, state before, state after, part) of each debited shard.
    pub debits: Vec<(u32, ShardState, ShardState, i64)>,
    /// (shard, state before) of the credited shard.
    pub credit: (u32, ShardState),
    /// Writes of records (puts and updates), after the shard updates.
    pub records: Vec<TransactWriteItem>,
}

/// How a round ended.
pub(super) enum Written {
    Committed,
    /// Refused by DynamoDB (a condition failed, or a conflict): the next
    /// round reads again. `credit_changed`: the credited shard had changed.
    Refused {
        credit_changed: bool,
    },
    /// No answer: it may or may not have committed.
    Unknown(String),
}

/// The time of a round's entries: now, but strictly after the newest entry
/// of every shard it touches (a shard's entries are in time order).
pub(super) fn round_time<'a>(states: impl Iterator<Item = &'a ShardState>) -> i64 {
    states
        .map(|s| s.updated_at_ms.saturating_add(1))
        .fold(now_ms(), i64::max)
}

impl Ledger {
    /// An account's facts and every shard's state, read fresh (facts may
    /// come from what this instance knows: they never change). None when it
    /// does not exist.
    pub(super) async fn fresh_party(&self, account_id: &str) -> Result<Option<Party>, LedgerError> {
        let facts = match self.known.get(account_id) {
            Some(known) => known.facts,
            None => match self
                .read_accounts_items(&[account_id.to_owned()])
                .await?
                .pop()
            {
                Some(AccountsItem::Account(facts, state)) => {
                    self.known.remember(&facts);
                    self.known.observe(account_id, 0, &state);
                    if facts.shards == 1 {
                        return Ok(Some(Party {
                            facts,
                            shards: vec![Some(state)],
                        }));
                    }
                    facts
                }
                _ => return Ok(None),
            },
        };
        let all: Vec<u32> = (0..facts.shards).collect();
        let states = self.read_shards(account_id, &all).await?;
        let shards = all.iter().map(|k| states.get(k).cloned()).collect();
        Ok(Some(Party { facts, shards }))
    }

    /// An account's facts: what this instance knows, else one read.
    pub(super) async fn facts(
        &self,
        account_id: &str,
    ) -> Result<Option<AccountFacts>, LedgerError> {
        if let Some(known) = self.known.get(account_id) {
            return Ok(Some(known.facts));
        }
        Ok(self.fresh_party(account_id).await?.map(|p| p.facts))
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
        self.read_record_item(key).await
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
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        output.item().map(StoredRecord::from_item).transpose()
    }

    /// Writes one round: the debit updates, the credit update, the record
    /// writes and the entries, as one TransactWriteItems. On commit the
    /// shards' new states are remembered.
    pub(super) async fn write_round(&self, round: &Round) -> Result<Written, LedgerError> {
        let at = round.payment.created_at_ms;
        let sender = &round.sender.account_id;
        let recipient = &round.recipient.account_id;
        let mut items = Vec::new();
        let mut entries = Vec::new();
        let multi = round.debits.len() > 1;
        for (shard, before, after, part) in &round.debits {
            let update = self.shard_update(
                sender,
                *shard,
                before,
                after,
                *part,
                Direction::Debit,
                multi,
                0,
            )?;
            items.push(TransactWriteItem::builder().update(update).build());
            entries.push(StoredEntry {
                account_id: sender.clone(),
                shard: *shard,
                sequence: after.version,
                direction: Direction::Debit,
                amount_minor: *part,
                balance_after_minor: after.balance_minor,
                payment: round.payment.clone(),
            });
        }
        let (credit_shard, before) = &round.credit;
        let credit_after = self.credit_after(before, round.payment.amount_minor, at);
        let update = self.shard_update(
            recipient,
            *credit_shard,
            before,
            &credit_after,
            round.payment.amount_minor,
            Direction::Credit,
            false,
            shard_balance_max_minor(round.recipient.shards) - round.payment.amount_minor,
        )?;
        items.push(TransactWriteItem::builder().update(update).build());
        entries.push(StoredEntry {
            account_id: recipient.clone(),
            shard: *credit_shard,
            sequence: credit_after.version,
            direction: Direction::Credit,
            amount_minor: round.payment.amount_minor,
            balance_after_minor: credit_after.balance_minor,
            payment: round.payment.clone(),
        });
        let records_from = items.len();
        items.extend(round.records.iter().cloned());
        for entry in entries {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_new(entry.to_item())?)
                    .build(),
            );
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let err = match result {
            Ok(_) => {
                for (shard, _, after, _) in &round.debits {
                    self.known.observe(sender, *shard, after);
                }
                self.known.observe(recipient, *credit_shard, &credit_after);
                return Ok(Written::Committed);
            }
            Err(err) => err,
        };
        let cancelled = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => c,
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                return Ok(Written::Refused {
                    credit_changed: false,
                });
            }
            Some(_) if !is_server_side(&err) => return Err(sdk_error("TransactWriteItems", err)),
            _ => {
                return Ok(Written::Unknown(
                    sdk_error("TransactWriteItems", err).to_string(),
                ));
            }
        };
        let reasons = cancelled.cancellation_reasons();
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        for i in 0..records_from {
            if let ("ConditionalCheckFailed", Some(item)) =
                (code(i), reasons.get(i).and_then(|r| r.item()))
            {
                self.observe_returned(item);
            } else if code(i) != "None" {
                let (account, shard) = if i < round.debits.len() {
                    (sender, round.debits[i].0)
                } else {
                    (recipient, *credit_shard)
                };
                self.known.forget(account, shard);
            }
        }
        Ok(Written::Refused {
            credit_changed: code(records_from - 1) != "None",
        })
    }

    fn credit_after(&self, before: &ShardState, amount: i64, at: i64) -> ShardState {
        ShardState {
            version: before.version + 1,
            balance_minor: before.balance_minor + amount,
            updated_at_ms: at,
            ..before.clone()
        }
    }

    pub(super) fn observe_returned(&self, item: &Item) {
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

    /// An update of a record in the ledger table.
    pub(super) fn record_update(
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
            .set_expression_attribute_values(Some(values));
        for (name, attribute) in names {
            builder = builder.expression_attribute_names(*name, *attribute);
        }
        Ok(TransactWriteItem::builder()
            .update(builder.build().map_err(build_error)?)
            .build())
    }
}

/// The record attributes that say where a round's entries are.
pub(super) fn round_legs(round: &Round) -> Item {
    legs_attributes(&RecordLegs {
        debits: round
            .debits
            .iter()
            .map(|(k, _, after, part)| (*k, after.version, *part))
            .collect(),
        credit: (round.credit.0, round.credit.1.version + 1),
    })
}
