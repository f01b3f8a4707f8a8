//! One write round, shared by every operation that writes.
//!
//! Every change of money (a payment, a hold placed, captured or voided, a
//! refund, an account opened) is planned from what this instance knows,
//! written as one TransactWriteItems, and, when DynamoDB cancels it, read
//! back from the cancellation reasons and tried again, a bounded number of
//! times. This module owns the parts of that loop that do not depend on the
//! operation:
//! - [`Rounds`]: the bound and the backoff;
//! - [`Ledger::transact`]: sending one transaction and reading every
//!   cancellation reason into a [`Reason`], remembering the account items a
//!   failed condition returned;
//! - [`Party`], [`plan_debits`], [`refusal`], [`Ledger::transfer_items`]:
//!   the debits, the credit and the entries of a transfer, built once for
//!   payments, captures and refunds;
//! - the sender-ownership and currency checks.
//!
//! Each operation's own file keeps only its plan and its conditions.

use super::known::CreditSlot;
use super::layout::{
    AccountFacts, AccountsItem, Item, RecordLegs, ShardState, StoredEntry, StoredRecord,
    build_error, holds_value, is_retryable_code, n, need_value, s, sdk_error, shard_key,
};
use super::shards::merged_needs;
use super::{Caller, Direction, Ledger, LedgerError, Transaction};
use crate::domain::{BALANCE_SHARDS_MAX, Currency, PaymentOrder, shard_balance_max_minor};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use std::collections::HashMap;
use std::time::Duration;

/// Most rounds one operation takes before the caller gets ABORTED (or
/// UNAVAILABLE, when DynamoDB was throttling). A round fails when another
/// writer changed an item it touches; the failed write returns the items'
/// current state, so the next round usually commits. With the backoff
/// below, ten rounds span about a second.
pub const PAYMENT_ATTEMPTS_MAX: u32 = 10;
/// Backoff before a round that follows a conflict (two transactions on one
/// item at the same moment) or a second lost round; doubles each round up to
/// the cap, each wait drawn uniformly from zero to that bound (full jitter).
/// The first round that only learnt a newer version goes again at once.
const BACKOFF_BASE: Duration = Duration::from_millis(4);
const BACKOFF_CAP: Duration = Duration::from_millis(200);

/// Most shards one payment may draw from: their updates and entries, with
/// the credit, its entry and the payment record, fill 2 * 48 + 3 = 99 of
/// the 100 items a transaction may hold (a refund, which also updates the
/// refunded payment's record, fills all 100). A sharded account pays out at
/// most what its 48 richest shards hold in one payment.
pub(super) const DEBIT_SHARDS_MAX: usize = 48;

/// Full-jitter exponential backoff before round `attempt` (1-based).
pub(super) fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=bound_us))
}

/// The bounded rounds of one operation.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    attempt: u32,
    wait: bool,
    throttled: bool,
}

impl Rounds {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Starts the next round (after the backoff, if the last round asked
    /// for one or it is not the second); None when the rounds are used up.
    pub(super) async fn next(&mut self) -> Option<u32> {
        if self.attempt >= PAYMENT_ATTEMPTS_MAX {
            return None;
        }
        if self.attempt > 1 || self.wait {
            tokio::time::sleep(backoff(self.attempt.max(1))).await;
        }
        self.attempt += 1;
        self.wait = false;
        Some(self.attempt)
    }

    /// Takes in what a cancelled round met: a conflict or throttling makes
    /// the next round wait. Returns the error for a request DynamoDB found
    /// invalid (nothing was written, and going again would not help).
    pub(super) fn met(&mut self, reasons: &[Reason]) -> Result<(), LedgerError> {
        self.throttled = false;
        for (index, reason) in reasons.iter().enumerate() {
            match reason {
                Reason::Busy { throttled } => {
                    self.wait = true;
                    self.throttled |= *throttled;
                }
                Reason::Invalid(message) => {
                    return Err(LedgerError::Rejected {
                        code: "ValidationError",
                        detail: format!("item {index}: {message}"),
                    });
                }
                Reason::None | Reason::Failed(_) => {}
            }
        }
        Ok(())
    }

    /// The answer once every round was refused: UNAVAILABLE when DynamoDB
    /// was throttling in the last one, else ABORTED.
    pub(super) fn exhausted(&self) -> LedgerError {
        if self.throttled {
            LedgerError::Unavailable(format!(
                "DynamoDB throttled {PAYMENT_ATTEMPTS_MAX} rounds of this call; retry with the same idempotency key after a pause"
            ))
        } else {
            LedgerError::Contended {
                attempts: PAYMENT_ATTEMPTS_MAX,
            }
        }
    }
}

/// How DynamoDB answered one TransactWriteItems.
#[derive(Debug)]
pub(super) enum Written {
    Committed,
    /// Cancelled, with one reason per item in the order written.
    Cancelled(Vec<Reason>),
    /// No answer, or a server-side error: it may or may not have committed.
    Unknown(String),
}

/// Why DynamoDB cancelled a transaction, for one of its items.
#[derive(Debug, Clone)]
pub(super) enum Reason {
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
    pub(super) fn failed(&self) -> bool {
        matches!(self, Reason::Failed(_))
    }

    /// The item a failed condition returned.
    pub(super) fn item(&self) -> Option<&Item> {
        match self {
            Reason::Failed(item) => item.as_ref(),
            _ => None,
        }
    }

    pub(super) fn is_none(&self) -> bool {
        matches!(self, Reason::None)
    }
}

/// The reason of item `index` (None past the end).
pub(super) fn reason(reasons: &[Reason], index: usize) -> &Reason {
    reasons.get(index).unwrap_or(&Reason::None)
}

impl Ledger {
    /// Sends one TransactWriteItems with a fresh ClientRequestToken (which
    /// makes the SDK's own retries of this exact request idempotent) and
    /// reads its answer. Account items returned by failed conditions are
    /// remembered as the newest word on their shards.
    pub(super) async fn transact(
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

    /// Remembers an account item DynamoDB returned.
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

    /// An account as this instance knows it, shards it never saw as None.
    pub(super) fn known_party(&self, account_id: &str) -> Option<Party> {
        self.known.get(account_id).map(|k| Party {
            facts: k.facts,
            shards: k.shards,
        })
    }

    /// Reads the given shards of the parties that are not known yet, in one
    /// BatchGetItem (none when all are known), with the ledger item `record`
    /// in the same request when given (then returned as read).
    pub(super) async fn fill(
        &self,
        parties: &mut [(&mut Party, &[u32])],
        record: Option<Item>,
    ) -> Result<RecordRead<Item>, LedgerError> {
        let mut keys = Vec::new();
        for (party, shards) in parties.iter() {
            for &shard in *shards {
                if party
                    .shards
                    .get(shard as usize)
                    .is_some_and(Option::is_none)
                {
                    keys.push(shard_key(&party.facts.account_id, shard));
                }
            }
        }
        if keys.is_empty() && record.is_none() {
            return Ok(RecordRead::NotRead);
        }
        let wants_record = record.is_some();
        let (items, stored) = self.read_items(&keys, record).await?;
        for item in items {
            let (account_id, shard, state) = match item {
                AccountsItem::Account(facts, state) => (facts.account_id, 0, state),
                AccountsItem::Shard {
                    account_id,
                    shard,
                    state,
                } => (account_id, shard, state),
            };
            self.known.observe(&account_id, shard, &state);
            for (party, _) in parties.iter_mut() {
                if party.facts.account_id == account_id {
                    party.raise(state.told_shards);
                    if let Some(slot) = party.shards.get_mut(shard as usize) {
                        *slot = Some(state.clone());
                    }
                }
            }
        }
        Ok(if wants_record {
            RecordRead::of(stored)
        } else {
            RecordRead::NotRead
        })
    }

    /// Reads the shards of `party` that a reshard seen in this round added
    /// (unknown so far), so that a refusal weighs every shard. Each read
    /// can only show a larger count, at most [`BALANCE_SHARDS_MAX`]; the
    /// bound is a guard.
    pub(super) async fn fill_raised(&self, party: &mut Party) -> Result<(), LedgerError> {
        for _ in 0..3 {
            if party.known_count() == party.shards.len() {
                break;
            }
            let all = party.all_shards();
            self.fill(&mut [(party, &all)], None).await?;
        }
        Ok(())
    }

    /// Like [`Self::fill`], with the record under `key` read in the same
    /// request and returned decoded (never [`RecordRead::NotRead`]).
    pub(super) async fn fill_with_record(
        &self,
        parties: &mut [(&mut Party, &[u32])],
        key: &Item,
    ) -> Result<RecordRead<StoredRecord>, LedgerError> {
        let stored = self.fill(parties, Some(key.clone())).await?.found();
        let record = stored.as_ref().map(StoredRecord::from_item).transpose()?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok(RecordRead::of(record))
    }

    /// Two accounts as this instance knows them; the unknown ones are read
    /// with one strongly consistent BatchGetItem, together with the record
    /// under `key` (then also returned as read). None for an account that
    /// does not exist.
    pub(super) async fn parties(
        &self,
        ids: [&str; 2],
        key: Item,
    ) -> Result<([Option<Party>; 2], RecordRead<StoredRecord>), LedgerError> {
        let mut parties = ids.map(|id| self.known_party(id));
        let unknown: Vec<String> = ids
            .iter()
            .zip(&parties)
            .filter(|(_, p)| p.is_none())
            .map(|(id, _)| (*id).to_owned())
            .collect();
        if unknown.is_empty() {
            return Ok((parties, RecordRead::NotRead));
        }
        let (items, record) = self.read_items(&unknown, Some(key)).await?;
        for item in items {
            if let AccountsItem::Account(facts, state) = item {
                self.known.remember(&facts);
                self.known.observe(&facts.account_id, 0, &state);
                let mut shards = vec![None; facts.shards as usize];
                shards[0] = Some(state);
                for (slot, id) in parties.iter_mut().zip(ids) {
                    if id == facts.account_id {
                        *slot = Some(Party {
                            facts: facts.clone(),
                            shards: shards.clone(),
                        });
                    }
                }
            }
        }
        let record = record.as_ref().map(StoredRecord::from_item).transpose()?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok((parties, RecordRead::of(record)))
    }

    /// The shard of `recipient` to credit: shard 0 of an ordinary account;
    /// for a sharded one, the shard this instance sticks to (taken into
    /// Queues behind this instance's other calls on both accounts of a
    /// transfer, except on a sharded recipient, whose credits spread over
    /// shards: then on the sender only.
    pub(super) async fn queue_transfer(
        &self,
        sender_id: &str,
        recipient_id: &str,
    ) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let recipient_sharded = self
            .known
            .get(recipient_id)
            .is_some_and(|a| a.facts.shards > 1);
        let queue_on = if recipient_sharded {
            sender_id
        } else {
            recipient_id
        };
        self.locks.lock_pair(sender_id, queue_on).await
    }

    /// `slot` for the call's life).
    pub(super) fn credit_shard(
        &self,
        recipient: &AccountFacts,
        slot: &mut Option<CreditSlot>,
    ) -> u32 {
        if recipient.shards > 1 {
            slot.get_or_insert_with(|| {
                self.known
                    .take_credit_slot(&recipient.account_id, recipient.shards)
            })
            .shard
        } else {
            0
        }
    }

    /// After a round lost its credit shard to another writer: move to the
    /// quietest shard (one BatchGetItem of all shards shows which).
    pub(super) async fn move_credit(
        &self,
        recipient: &AccountFacts,
        lost: u32,
        slot: &mut Option<CreditSlot>,
    ) -> Result<(), LedgerError> {
        if recipient.shards > 1 {
            let all: Vec<u32> = (0..recipient.shards).collect();
            self.read_shards(&recipient.account_id, &all).await?;
            self.known
                .move_away(&recipient.account_id, lost, recipient.shards);
            *slot = None;
        } else {
            self.promote_if_hot(&recipient.account_id).await;
        }
        Ok(())
    }

    /// An update of one shard by a transfer: the version and, for a debit,
    /// the holds exactly as known, the debit covered by the balance and the
    /// credit within the shard's share of the balance limit.
    fn shard_update(
        &self,
        account_id: &str,
        leg: &Leg,
        direction: Direction,
        write_need: bool,
        room: Room,
    ) -> Result<Update, LedgerError> {
        let (before, after) = (&leg.before, &leg.after);
        let mut values = HashMap::from([
            (":amount".to_owned(), n(leg.part_minor)),
            (":version".to_owned(), n(before.version)),
            (":next_version".to_owned(), n(after.version)),
            (":at".to_owned(), n(after.updated_at_ms)),
        ]);
        let (mut update, mut condition) = match direction {
            Direction::Debit => (
                "SET balance = balance - :amount, version = :next_version, updated_at = :at"
                    .to_owned(),
                "version = :version AND balance >= :amount".to_owned(),
            ),
            Direction::Credit => (
                "SET balance = balance + :amount, version = :next_version, updated_at = :at"
                    .to_owned(),
                format!("version = :version AND {}", credit_room(room, &mut values)),
            ),
        };
        if write_need {
            update.push_str(", need = :need");
            values.insert(":need".into(), need_value(&after.need));
        }
        if direction == Direction::Debit {
            // A debit spends only available money, computed from the holds
            // as known: they must be exactly these.
            condition.push_str(" AND ");
            condition.push_str(&holds_pin(before, &mut values));
            if after.holds_rev != before.holds_rev {
                update.push_str(&holds_set(after, &mut values));
            }
        }
        Update::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(shard_key(account_id, leg.shard)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)
    }

    /// The items of a transfer, in this order: the debited shards, the
    /// credited shard, `records` (the operation's own record writes), then
    /// the history entries. See [`Transfer`].
    pub(super) fn transfer_items(
        &self,
        transfer: &Transfer,
        records: Vec<TransactWriteItem>,
    ) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let payment = &transfer.payment;
        let sender = &payment.sender_id;
        let recipient = &payment.recipient_id;
        let multi = transfer.debits.len() > 1;
        let mut items = Vec::new();
        let mut entries = Vec::new();
        for leg in &transfer.debits {
            let update = self.shard_update(sender, leg, Direction::Debit, multi, Room::NONE)?;
            items.push(TransactWriteItem::builder().update(update).build());
            entries.push(StoredEntry {
                account_id: sender.clone(),
                shard: leg.shard,
                sequence: leg.after.version,
                direction: Direction::Debit,
                amount_minor: leg.part_minor,
                balance_after_minor: leg.after.balance_minor,
                payment: payment.clone(),
            });
        }
        let credit = &transfer.credit;
        let room = Room {
            shards: transfer.recipient_shards,
            amount_minor: payment.amount_minor,
        };
        let update = self.shard_update(recipient, credit, Direction::Credit, false, room)?;
        items.push(TransactWriteItem::builder().update(update).build());
        entries.push(StoredEntry {
            account_id: recipient.clone(),
            shard: credit.shard,
            sequence: credit.after.version,
            direction: Direction::Credit,
            amount_minor: payment.amount_minor,
            balance_after_minor: credit.after.balance_minor,
            payment: payment.clone(),
        });
        items.extend(records);
        for entry in entries {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_new(entry.to_item())?)
                    .build(),
            );
        }
        Ok(items)
    }

    /// Remembers the shards a committed transfer wrote.
    pub(super) fn observe_transfer(&self, transfer: &Transfer) {
        for leg in &transfer.debits {
            self.known
                .observe(&transfer.payment.sender_id, leg.shard, &leg.after);
        }
        self.known.observe(
            &transfer.payment.recipient_id,
            transfer.credit.shard,
            &transfer.credit.after,
        );
    }

    /// After a cancelled transfer: a shard whose condition failed without
    /// returning its item, or an entry that failed alone (this instance's
    /// memory is wrong in a way the items did not show), is forgotten, so
    /// the next round reads it. Returns whether the credit shard was lost.
    pub(super) fn learn_from_transfer(&self, transfer: &Transfer, reasons: &[Reason]) -> bool {
        let legs = transfer.debits.len() + 1;
        let touched = transfer
            .debits
            .iter()
            .map(|leg| (transfer.payment.sender_id.as_str(), leg.shard))
            .chain(std::iter::once((
                transfer.payment.recipient_id.as_str(),
                transfer.credit.shard,
            )));
        let mut stale_shard = false;
        for (i, (account_id, shard)) in touched.enumerate() {
            let reason = reason(reasons, i);
            if reason.failed() {
                stale_shard = true;
                if reason.item().is_none() {
                    self.known.forget(account_id, shard);
                }
            }
        }
        let entries_from = reasons.len().saturating_sub(legs);
        if !stale_shard && (entries_from..reasons.len()).any(|i| reason(reasons, i).failed()) {
            for leg in &transfer.debits {
                self.known.forget(&transfer.payment.sender_id, leg.shard);
            }
            self.known
                .forget(&transfer.payment.recipient_id, transfer.credit.shard);
        }
        !reason(reasons, legs - 1).is_none()
    }

    /// An update of a record in the ledger table, returning the record as
    /// it is when its condition fails.
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
    pub(super) async fn taken(
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

    /// The start of a round of a call that pays from its sender (a payment
    /// or a hold) under `key`: both parties as known (the unknown ones read
    /// with the record, see [`Self::parties`]), the sender's owner checked
    /// first (an unknown sender is "not yours", so that nobody can probe
    /// which account ids exist), then a stored record, an unknown recipient
    /// or a currency that differs, which end the call.
    pub(super) async fn start_round(
        &self,
        order: &PaymentOrder,
        caller: &Caller,
        key: &Item,
    ) -> Result<Start, LedgerError> {
        let (sender_id, recipient_id) = (order.sender_id.as_str(), order.recipient_id.as_str());
        let ([sender, recipient], record) =
            self.parties([sender_id, recipient_id], key.clone()).await?;
        let sender = own_sender(sender, sender_id, caller)?;
        if let RecordRead::Found(stored) = record {
            return Ok(Start::Stored(stored));
        }
        let recipient = match recipient {
            Some(recipient) => recipient,
            None => {
                let err = LedgerError::AccountNotFound {
                    role: "recipient",
                    account_id: recipient_id.to_owned(),
                };
                return Ok(Start::Stored(self.stored_or(err, key, record).await?));
            }
        };
        if let Err(err) = check_currencies(&order.currency, &sender.facts, &recipient.facts) {
            return Ok(Start::Stored(self.stored_or(err, key, record).await?));
        }
        Ok(Start::Parties {
            sender: Box::new(sender),
            recipient: Box::new(recipient),
            record,
        })
    }

    /// A refusal is the answer only if nothing is stored under the call's
    /// key: a replay of a committed call is answered from its record even
    /// when the same call could not be made now. `record` is the record as
    /// read in this round (read now when it was not).
    /// Returns the stored record, which answers the call, or the refusal.
    pub(super) async fn stored_or(
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
    /// is free, is what makes a fence final (see [`super::fence`]): every
    /// payment, hold and refund record is put through here.
    pub(super) fn put_record(&self, item: Item) -> Result<TransactWriteItem, LedgerError> {
        Ok(TransactWriteItem::builder()
            .put(self.put_new(item)?)
            .build())
    }
}

/// What a credit must leave room for: `amount_minor` within the shard's
/// share of the balance limit, for an account of `shards` shards as the
/// writer knows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Room {
    pub shards: u32,
    pub amount_minor: i64,
}

impl Room {
    const NONE: Room = Room {
        shards: 1,
        amount_minor: 0,
    };
}

/// The condition that a credit stays within its shard's share of the
/// balance limit, exactly, whatever count of shards the writer believes.
///
/// The share is the limit divided by the account's shard count, and a
/// reshard only raises the count (after checking that every old shard
/// already fits the new, smaller share). So a credit that leaves the shard
/// within the smallest share there is (that of [`BALANCE_SHARDS_MAX`]
/// shards) fits whatever the count is now, and needs no more: a writer that
/// still believes the old count commits. Only a credit past that share
/// depends on the count, and then it is conditioned on it: the shard's
/// `shards` attribute is the writer's count, or absent (a shard of an
/// account never resharded, whose count is the one it opened with).
fn credit_room(room: Room, values: &mut Item) -> String {
    let own = shard_balance_max_minor(room.shards) - room.amount_minor;
    let least = shard_balance_max_minor(BALANCE_SHARDS_MAX) - room.amount_minor;
    values.insert(":room".into(), n(own));
    if room.shards >= BALANCE_SHARDS_MAX {
        return "balance <= :room".into();
    }
    values.insert(":least_room".into(), n(least));
    values.insert(":shards".into(), n(room.shards));
    "(balance <= :least_room OR (balance <= :room AND (attribute_not_exists(shards) OR shards = :shards)))".into()
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

/// How a round of a payment or hold begins (see [`Ledger::start_round`]).
pub(super) enum Start {
    /// A record under the key (the call's own, a replay or another call),
    /// which answers the call.
    Stored(StoredRecord),
    /// Both parties, and the record under the key as read in this round.
    Parties {
        sender: Box<Party>,
        recipient: Box<Party>,
        record: RecordRead<StoredRecord>,
    },
}

/// The item under a call's key as a round read it, in the request that
/// read the parties: not read (every party was known; read it when it
/// matters), read and absent, or read and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RecordRead<T> {
    NotRead,
    Absent,
    Found(T),
}

impl<T> RecordRead<T> {
    /// What a read found: `stored`, or nothing.
    pub(super) fn of(stored: Option<T>) -> Self {
        match stored {
            Some(stored) => RecordRead::Found(stored),
            None => RecordRead::Absent,
        }
    }

    /// The item when it was read and found.
    pub(super) fn found(self) -> Option<T> {
        match self {
            RecordRead::Found(stored) => Some(stored),
            RecordRead::NotRead | RecordRead::Absent => None,
        }
    }
}

/// One side of a transfer as this instance knows it.
#[derive(Debug, Clone)]
pub(super) struct Party {
    pub facts: AccountFacts,
    pub shards: Vec<Option<ShardState>>,
}

impl Party {
    /// Takes in a larger shard count (a reshard, seen on an item read in
    /// this round): the new shards are unknown until read.
    pub(super) fn raise(&mut self, shards: u32) {
        let shards = shards.min(BALANCE_SHARDS_MAX);
        if shards > self.facts.shards {
            self.facts.shards = shards;
            self.shards.resize(shards as usize, None);
        }
    }

    /// How many of its shards are known.
    pub(super) fn known_count(&self) -> usize {
        self.shards.iter().filter(|s| s.is_some()).count()
    }

    /// Forgets every shard state (to read them fresh).
    pub(super) fn forget_shards(&mut self) {
        self.shards.iter_mut().for_each(|s| *s = None);
    }

    /// Every shard number.
    pub(super) fn all_shards(&self) -> Vec<u32> {
        (0..self.facts.shards).collect()
    }
}

/// The sender of a payment or hold, checked against the caller: only its
/// owner may pay from it. An unknown sender is "not yours" (so that nobody
/// can probe which account ids exist), except to an admin.
pub(super) fn own_sender(
    sender: Option<Party>,
    sender_id: &str,
    caller: &Caller,
) -> Result<Party, LedgerError> {
    match sender {
        Some(party) if party.facts.owner == caller.sub => Ok(party),
        None if caller.admin => Err(LedgerError::AccountNotFound {
            role: "sender",
            account_id: sender_id.to_owned(),
        }),
        _ => Err(LedgerError::NotOwner {
            account_id: sender_id.to_owned(),
        }),
    }
}

/// Both parties hold the call's currency.
pub(super) fn check_currencies(
    currency: &Currency,
    sender: &AccountFacts,
    recipient: &AccountFacts,
) -> Result<(), LedgerError> {
    for (role, account) in [("sender", sender), ("recipient", recipient)] {
        if account.currency != currency.as_str() {
            return Err(LedgerError::CurrencyMismatch {
                role,
                account_id: account.account_id.clone(),
                account_currency: account.currency.clone(),
                currency: currency.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

/// One shard a transfer touches: its state before and after, and what it
/// gives or gets.
#[derive(Debug, Clone)]
pub(super) struct Leg {
    pub shard: u32,
    pub before: ShardState,
    pub after: ShardState,
    pub part_minor: i64,
}

/// A transfer as one round writes it: `payment` (whose `created_at_ms` is
/// the entries' time) from its sender's `debits` to one `credit` shard of
/// its recipient, which has `recipient_shards` shards.
#[derive(Debug, Clone)]
pub(super) struct Transfer {
    pub payment: Transaction,
    pub debits: Vec<Leg>,
    pub credit: Leg,
    pub recipient_shards: u32,
}

impl Transfer {
    /// Plans the legs: `debits` (shard, state, part) of the sender, and the
    /// recipient's `credit` shard. `now` is the clock that decided what the
    /// sender may spend; the holds expired by then are swept with it (never
    /// with the entry time, which another writer's clock may have pushed
    /// ahead). The entries' time is set into `payment`: now, but strictly
    /// after the newest entry of every shard touched.
    pub(super) fn plan(
        mut payment: Transaction,
        debits: Vec<(u32, ShardState, i64)>,
        credit: (u32, ShardState),
        recipient_shards: u32,
        now: i64,
    ) -> Self {
        let at = debits
            .iter()
            .map(|(_, s, _)| s.updated_at_ms)
            .chain(std::iter::once(credit.1.updated_at_ms))
            .map(|t| t.saturating_add(1))
            .fold(now, i64::max);
        payment.created_at_ms = at;
        let legs: Vec<(u32, &ShardState)> = debits.iter().map(|(k, st, _)| (*k, st)).collect();
        let needs = merged_needs(&legs);
        let debits = debits
            .iter()
            .map(|(shard, before, part)| {
                let swept = before.swept(now);
                Leg {
                    shard: *shard,
                    after: ShardState {
                        version: before.version + 1,
                        balance_minor: before.balance_minor - part,
                        updated_at_ms: at,
                        need: needs.get(shard).cloned().unwrap_or_default(),
                        holds_rev: before.holds_rev + u64::from(swept.is_some()),
                        holds: swept.unwrap_or_else(|| before.holds.clone()),
                        told_shards: before.told_shards,
                    },
                    before: before.clone(),
                    part_minor: *part,
                }
            })
            .collect();
        let (shard, before) = credit;
        let credit = Leg {
            shard,
            after: ShardState {
                version: before.version + 1,
                balance_minor: before.balance_minor + payment.amount_minor,
                updated_at_ms: at,
                ..before.clone()
            },
            before,
            part_minor: payment.amount_minor,
        };
        Self {
            payment,
            debits,
            credit,
            recipient_shards,
        }
    }

    /// Where the transfer's entries are, for its record.
    pub(super) fn legs(&self) -> RecordLegs {
        RecordLegs {
            debits: self
                .debits
                .iter()
                .map(|leg| (leg.shard, leg.after.version, leg.part_minor))
                .collect(),
            credit: (self.credit.shard, self.credit.after.version),
        }
    }
}

/// Why a sender that is fully known cannot pay `amount`: too little
/// available, or enough but spread over more shards than one transaction
/// can take (`shards_max`: one for a hold).
pub(super) fn refusal(
    sender: &Party,
    amount: i64,
    what: &'static str,
    shards_max: usize,
    now: i64,
) -> LedgerError {
    let states = || sender.shards.iter().flatten();
    let available_minor: i64 = states().map(|s| s.available_at(now).max(0)).sum();
    if available_minor >= amount {
        let mut richest: Vec<i64> = states().map(|s| s.available_at(now).max(0)).collect();
        richest.sort_unstable_by(|a, b| b.cmp(a));
        return LedgerError::SpreadOverShards {
            account_id: sender.facts.account_id.clone(),
            shards_max,
            payable_minor: richest.iter().take(shards_max).sum(),
        };
    }
    LedgerError::InsufficientFunds {
        account_id: sender.facts.account_id.clone(),
        what,
        currency: sender.facts.currency.clone(),
        available_minor,
        held_minor: states().map(|s| s.held_at(now)).sum(),
        amount_minor: amount,
    }
}

/// Which shards of the sender give what: one shard when a known one has
/// the whole amount available (the richest), else the richest first until
/// covered, once every shard is known. None when the known shards do not
/// cover it. Only available money counts: holds that have not expired at
/// `now` reserve theirs.
pub(super) fn plan_debits(
    sender: &Party,
    amount: i64,
    now: i64,
) -> Option<Vec<(u32, ShardState, i64)>> {
    let mut known: Vec<(u32, &ShardState)> = sender
        .shards
        .iter()
        .enumerate()
        .filter_map(|(k, s)| Some((u32::try_from(k).ok()?, s.as_ref()?)))
        .collect();
    known.sort_by_key(|(k, s)| (std::cmp::Reverse(s.available_at(now)), *k));
    if let Some((k, state)) = known.first()
        && state.available_at(now) >= amount
    {
        return Some(vec![(*k, (*state).clone(), amount)]);
    }
    if known.len() < sender.shards.len() {
        return None;
    }
    let mut left = amount;
    let mut debits = Vec::new();
    for (k, state) in known.into_iter().take(DEBIT_SHARDS_MAX) {
        if left == 0 {
            break;
        }
        let part = state.available_at(now).max(0).min(left);
        if part > 0 {
            debits.push((k, state.clone(), part));
            left -= part;
        }
    }
    let mut debits = (left == 0).then_some(debits)?;
    debits.sort_by_key(|(k, _, _)| *k);
    Some(debits)
}

/// The condition that a shard's holds are still as `before` knew them.
pub(super) fn holds_pin(before: &ShardState, values: &mut Item) -> String {
    if before.holds_rev == 0 {
        "attribute_not_exists(holds_rev)".to_owned()
    } else {
        values.insert(":holds_rev".into(), n(before.holds_rev));
        "holds_rev = :holds_rev".to_owned()
    }
}

/// The part of a SET that writes a shard's holds as `after` has them
/// (", holds = ..., holds_rev = ..."); an empty map is written as such.
pub(super) fn holds_set(after: &ShardState, values: &mut Item) -> String {
    values.insert(":holds".into(), holds_value(&after.holds));
    values.insert(":next_holds_rev".into(), n(after.holds_rev));
    ", holds = :holds, holds_rev = :next_holds_rev".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn rounds_end_with_the_right_error() {
        let mut rounds = Rounds::new();
        rounds.met(&[Reason::Busy { throttled: true }]).unwrap();
        assert!(matches!(rounds.exhausted(), LedgerError::Unavailable(_)));
        rounds.met(&[Reason::Busy { throttled: false }]).unwrap();
        assert!(matches!(
            rounds.exhausted(),
            LedgerError::Contended {
                attempts: PAYMENT_ATTEMPTS_MAX
            }
        ));
        let err = rounds.met(&[Reason::None, Reason::Invalid("x".into())]);
        assert!(
            matches!(err, Err(LedgerError::Rejected { code: "ValidationError", detail }) if detail.contains("item 1"))
        );
    }

    #[tokio::test]
    async fn rounds_are_bounded() {
        let mut rounds = Rounds::new();
        let mut count = 0;
        while rounds.next().await.is_some() {
            count += 1;
        }
        assert_eq!(count, PAYMENT_ATTEMPTS_MAX);
    }

    #[test]
    fn expired_holds_are_swept_with_the_clock_that_planned_the_debit() {
        use super::super::layout::HoldSlot;
        // A shard whose newest entry is an hour ahead of this instance's
        // clock (another writer's clock ran ahead).
        let ahead = 3_600_000;
        let now = 1_000_000;
        let state = ShardState {
            version: 3,
            balance_minor: 1_000,
            updated_at_ms: now + ahead,
            holds: [(
                "h".to_owned(),
                HoldSlot {
                    amount_minor: 400,
                    expires_at_ms: now + 60_000,
                },
            )]
            .into(),
            holds_rev: 1,
            ..ShardState::default()
        };
        let sender = Party {
            facts: AccountFacts {
                account_id: "a".into(),
                display_name: String::new(),
                currency: "EUR".into(),
                created_at_ms: 0,
                owner: String::new(),
                opening_balance_minor: 0,
                shards: 1,
            },
            shards: vec![Some(state.clone())],
        };
        let debits = plan_debits(&sender, 600, now).unwrap();
        let payment = Transaction {
            transaction_id: "t".into(),
            sender_id: "a".into(),
            recipient_id: "b".into(),
            amount_minor: 600,
            currency: "EUR".into(),
            memo: String::new(),
            created_at_ms: 0,
            kind: super::super::TransactionKind::Payment,
            refund_of: String::new(),
        };
        let transfer = Transfer::plan(payment, debits, (0, ShardState::default()), 1, now);
        // The entry comes after the shard's newest, but the hold, which
        // has not expired at this instance's now, is kept.
        assert_eq!(transfer.payment.created_at_ms, now + ahead + 1);
        let after = &transfer.debits[0].after;
        assert_eq!(after.holds.len(), 1);
        assert_eq!(after.holds_rev, 1);
        assert_eq!(after.balance_minor, 400);
        // Once it has expired at the planning clock, it is swept.
        let later = now + 60_000;
        let debits = plan_debits(&sender, 1_000, later).unwrap();
        let transfer = Transfer::plan(
            transfer.payment.clone(),
            debits,
            (0, ShardState::default()),
            1,
            later,
        );
        assert!(transfer.debits[0].after.holds.is_empty());
        assert_eq!(transfer.debits[0].after.holds_rev, 2);
    }
}
