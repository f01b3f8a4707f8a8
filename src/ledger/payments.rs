//! MakePayment: one TransactWriteItems per round, and on a warm instance one
//! round per payment.

use super::known::CreditSlot;
use super::layout::{
    AccountFacts, AccountsItem, Item, RecordLegs, ShardState, StoredEntry, build_error,
    holds_value, n, need_value, new_transaction_id, now_ms, record_item, s, sdk_error, shard_key,
};
use super::shards::merged_needs;
use super::{Direction, Ledger, LedgerError, Payer, Payment, PaymentOutcome, TransferKind};
use crate::domain::{PaymentOrder, shard_balance_max_minor};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use std::collections::HashMap;
use std::time::Duration;

/// Most rounds one payment takes before the caller gets ABORTED. A round
/// fails when another writer changed a shard it touches; the failed write
/// returns the shards' current state, so the next round usually commits.
/// With the backoff below, ten rounds span about a second.
pub const PAYMENT_ATTEMPTS_MAX: u32 = 10;
/// Backoff before a round that follows a conflict (two transactions on one
/// item at the same moment) or a second lost round; doubles each round up to
/// the cap, each wait drawn uniformly from zero to that bound (full jitter).
/// The first round that only learnt a newer version goes again at once.
const BACKOFF_BASE: Duration = Duration::from_millis(4);
const BACKOFF_CAP: Duration = Duration::from_millis(200);

/// Most shards one payment may draw from: their updates and entries, with
/// the credit, its entry and the payment record, fill 2 * 48 + 3 = 99 of
/// the 100 items a transaction may hold. A sharded account pays out at most
/// what its 48 richest shards hold in one payment.
pub(super) const DEBIT_SHARDS_MAX: usize = 48;

/// Full-jitter exponential backoff before round `attempt` (1-based).
pub(super) fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=bound_us))
}

/// One side of a payment as this instance knows it.
#[derive(Debug, Clone)]
pub(super) struct Party {
    pub facts: AccountFacts,
    pub shards: Vec<Option<ShardState>>,
}

/// What one round writes: the shards debited (with their state before and
/// the part each gives) and the shard credited.
struct Plan {
    debits: Vec<(u32, ShardState, i64)>,
    credit: (u32, ShardState),
}

/// How a refused round goes on.
enum Next {
    /// Go round again, after a backoff if the round met a conflict, on
    /// another credit shard if it lost its credit shard.
    Again {
        backoff: bool,
        lost_credit: bool,
    },
    Done(Result<PaymentOutcome, LedgerError>),
}

impl Ledger {
    /// Moves money exactly once per (sender, idempotency key). A warm
    /// instance that knows both accounts' shards commits with a single
    /// TransactWriteItems; it reads only what it does not know, or what a
    /// failed write told it was stale. `payer` must own the sender account.
    pub async fn make_payment(
        &self,
        order: &PaymentOrder,
        payer: Payer<'_>,
    ) -> Result<PaymentOutcome, LedgerError> {
        let sender_id = order.sender_id.as_str();
        let recipient_id = order.recipient_id.as_str();
        // Queue behind this instance's other payments of the same accounts,
        // except on a sharded recipient, whose credits spread over shards.
        let recipient_sharded = self
            .known
            .get(recipient_id)
            .is_some_and(|a| a.facts.shards > 1);
        let _queued = self
            .locks
            .lock_pair(
                sender_id,
                if recipient_sharded {
                    sender_id
                } else {
                    recipient_id
                },
            )
            .await;
        let mut own_ids: Vec<String> = Vec::new();
        let mut slot: Option<CreditSlot> = None;
        let mut verified = (false, false);
        let mut wait = false;
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            if wait {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            // The payment record as read in this round, if it was read.
            let ([sender, recipient], mut record) = self.parties(order).await?;
            // Ownership first: an unknown sender is "not yours", so that
            // nobody can probe which account ids exist.
            let mut sender = match sender {
                Some(party) if party.facts.owner == payer.sub => party,
                None if payer.admin => {
                    return Err(LedgerError::AccountNotFound {
                        role: "sender",
                        account_id: sender_id.to_owned(),
                    });
                }
                _ => {
                    return Err(LedgerError::NotOwner {
                        account_id: sender_id.to_owned(),
                    });
                }
            };
            if let Some(Some(stored)) = record {
                return answer_stored(order, &own_ids, stored);
            }
            let Some(mut recipient) = recipient else {
                let err = LedgerError::AccountNotFound {
                    role: "recipient",
                    account_id: recipient_id.to_owned(),
                };
                return self.refuse(order, &own_ids, err, record).await;
            };
            if let Err(err) = check_currencies(order, &sender.facts, &recipient.facts) {
                return self.refuse(order, &own_ids, err, record).await;
            }
            let credit_shard = if recipient.facts.shards > 1 {
                slot.get_or_insert_with(|| {
                    self.known
                        .take_credit_slot(recipient_id, recipient.facts.shards)
                })
                .shard
            } else {
                0
            };
            let plan = match self
                .plan(
                    order,
                    &mut sender,
                    &mut recipient,
                    credit_shard,
                    &mut verified,
                    &mut record,
                )
                .await?
            {
                Ok(plan) => plan,
                Err(err) => return self.refuse(order, &own_ids, err, record).await,
            };
            let payment = Payment {
                transaction_id: new_transaction_id(),
                sender_id: sender_id.to_owned(),
                recipient_id: recipient_id.to_owned(),
                amount_minor: order.amount_minor,
                currency: order.currency.as_str().to_owned(),
                memo: order.memo.clone(),
                created_at_ms: entry_time(&plan),
                kind: TransferKind::Payment,
                refund_of: String::new(),
            };
            own_ids.push(payment.transaction_id.clone());
            let (items, after) =
                self.payment_writes(order, &sender, &recipient, &plan, &payment)?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                // Makes the SDK's own retries of this exact request (after a
                // timeout, say) idempotent; each round gets a fresh token.
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            match result {
                Ok(_) => {
                    for (account_id, shard, state) in &after {
                        self.known.observe(account_id, *shard, state);
                    }
                    return Ok(PaymentOutcome {
                        payment,
                        replayed: false,
                    });
                }
                Err(err) => {
                    let next = self
                        .after_failure(order, &own_ids, &plan, &recipient.facts, err)
                        .await;
                    match next {
                        Next::Done(answer) => return answer,
                        Next::Again {
                            backoff,
                            lost_credit,
                        } => {
                            // Only the first round after a plain stale
                            // version goes again at once: on a contended
                            // item, writers that retry at once just meet
                            // again.
                            wait = backoff || attempt > 1;
                            if lost_credit && recipient.facts.shards > 1 {
                                // Lost the shard to another writer that
                                // sticks to it: look at all shards once (one
                                // BatchGetItem) and move to the quietest.
                                let all: Vec<u32> = (0..recipient.facts.shards).collect();
                                self.read_shards(recipient_id, &all).await?;
                                self.known.move_away(
                                    recipient_id,
                                    plan.credit.0,
                                    recipient.facts.shards,
                                );
                                slot = None;
                            }
                            tracing::debug!(attempt, "payment round lost a race; going again");
                        }
                    }
                }
            }
        }
        // The last round may have committed after all (a TransactionInProgress
        // answer, say): the record says.
        match self.read_record(order).await {
            Ok(Some(stored)) if own_ids.contains(&stored.transaction_id) => Ok(PaymentOutcome {
                payment: stored,
                replayed: false,
            }),
            Ok(Some(stored)) => answer_stored(order, &own_ids, stored),
            _ => Err(LedgerError::Contended {
                attempts: PAYMENT_ATTEMPTS_MAX,
            }),
        }
    }

    /// After a write whose outcome is unknown: the stored record answers if
    /// there is one; else the outcome stays unknown, and the caller is told
    /// so (a retry with the same key is always safe).
    async fn resolve(
        &self,
        order: &PaymentOrder,
        own_ids: &[String],
        cause: String,
    ) -> Result<PaymentOutcome, LedgerError> {
        match self.read_record(order).await {
            Ok(Some(stored)) => answer_stored(order, own_ids, stored),
            Ok(None) | Err(_) => Err(LedgerError::OutcomeUnknown { cause }),
        }
    }

    /// Both accounts as this instance knows them; the unknown ones are read
    /// with one strongly consistent BatchGetItem, together with the payment
    /// record (then also returned: Some(None) when there is none). None for
    /// an account that does not exist.
    #[allow(clippy::type_complexity)]
    async fn parties(
        &self,
        order: &PaymentOrder,
    ) -> Result<([Option<Party>; 2], Option<Option<Payment>>), LedgerError> {
        let ids = [order.sender_id.as_str(), order.recipient_id.as_str()];
        let mut parties = ids.map(|id| {
            self.known.get(id).map(|k| Party {
                facts: k.facts,
                shards: k.shards,
            })
        });
        let unknown: Vec<String> = ids
            .iter()
            .zip(&parties)
            .filter(|(_, p)| p.is_none())
            .map(|(id, _)| (*id).to_owned())
            .collect();
        if unknown.is_empty() {
            return Ok((parties, None));
        }
        let (items, record) = self.read_items(&unknown, Some(record_key(order))).await?;
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
        let record = record.as_ref().map(Payment::from_item).transpose()?;
        Ok((parties, Some(record)))
    }

    /// Reads the given shards of both parties that are not known yet, in one
    /// BatchGetItem (none when all are known); with `record`, the payment
    /// record too, returned as Some(None) when there is none.
    async fn fill(
        &self,
        order: &PaymentOrder,
        sender: &mut Party,
        sender_shards: &[u32],
        recipient: &mut Party,
        recipient_shards: &[u32],
        record: bool,
    ) -> Result<Option<Option<Payment>>, LedgerError> {
        let mut keys = Vec::new();
        for (party, shards) in [(&*sender, sender_shards), (&*recipient, recipient_shards)] {
            for &shard in shards {
                if party.shards[shard as usize].is_none() {
                    keys.push(shard_key(&party.facts.account_id, shard));
                }
            }
        }
        if keys.is_empty() && !record {
            return Ok(None);
        }
        let (items, stored) = self
            .read_items(&keys, record.then(|| record_key(order)))
            .await?;
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
            for party in [&mut *sender, &mut *recipient] {
                if party.facts.account_id == account_id
                    && let Some(slot) = party.shards.get_mut(shard as usize)
                {
                    *slot = Some(state.clone());
                }
            }
        }
        if !record {
            return Ok(None);
        }
        Ok(Some(stored.as_ref().map(Payment::from_item).transpose()?))
    }

    /// Plans a round from what is known, reading only what is missing; a
    /// refusal (insufficient funds, balance limit) is only given after the
    /// shards concerned were read fresh in this call. The outer error is a
    /// failure to read; the inner one a refusal.
    async fn plan(
        &self,
        order: &PaymentOrder,
        sender: &mut Party,
        recipient: &mut Party,
        credit_shard: u32,
        verified: &mut (bool, bool),
        record: &mut Option<Option<Payment>>,
    ) -> Result<Result<Plan, LedgerError>, LedgerError> {
        let amount = order.amount_minor;
        let sender_all: Vec<u32> = (0..sender.facts.shards).collect();
        let mut credit_shard = credit_shard;
        // What the sender needs first: shard 0 for an ordinary account; a
        // sharded sender's known shards are tried before reading them all.
        let sender_first: &[u32] = if sender.facts.shards == 1 || known_count(sender) == 0 {
            &sender_all
        } else {
            &[]
        };
        self.fill(
            order,
            sender,
            sender_first,
            recipient,
            &[credit_shard],
            false,
        )
        .await?;
        let now = now_ms();
        let debits = loop {
            match plan_debits(sender, amount, now) {
                Some(debits) => break debits,
                None if known_count(sender) < sender.shards.len() => {
                    self.fill(order, sender, &sender_all, recipient, &[], false)
                        .await?;
                }
                None if !verified.0 => {
                    // Before refusing, read the sender fresh, and the
                    // record with it: a replay is answered from it.
                    verified.0 = true;
                    sender.shards.iter_mut().for_each(|s| *s = None);
                    *record = self
                        .fill(order, sender, &sender_all, recipient, &[], true)
                        .await?;
                }
                None => return Ok(Err(refusal(sender, amount, "payment", now))),
            }
        };
        let room = shard_balance_max_minor(recipient.facts.shards) - amount;
        let has_room = |r: &Party, shard: u32| {
            r.shards[shard as usize]
                .as_ref()
                .is_some_and(|s| s.balance_minor <= room)
        };
        if !has_room(recipient, credit_shard) {
            let all: Vec<u32> = (0..recipient.facts.shards).collect();
            if !verified.1 {
                verified.1 = true;
                recipient.shards.iter_mut().for_each(|s| *s = None);
            }
            *record = self.fill(order, sender, &[], recipient, &all, true).await?;
            match all.iter().copied().find(|&k| has_room(recipient, k)) {
                Some(shard) => credit_shard = shard,
                None => {
                    return Ok(Err(LedgerError::BalanceLimit {
                        account_id: recipient.facts.account_id.clone(),
                    }));
                }
            }
        }
        let credit = recipient.shards[credit_shard as usize]
            .clone()
            .ok_or_else(|| LedgerError::Internal("credit shard state missing".into()))?;
        Ok(Ok(Plan {
            debits,
            credit: (credit_shard, credit),
        }))
    }

    /// The items of one round, and the shards' states once it commits.
    #[allow(clippy::type_complexity)]
    fn payment_writes(
        &self,
        order: &PaymentOrder,
        sender: &Party,
        recipient: &Party,
        plan: &Plan,
        payment: &Payment,
    ) -> Result<(Vec<TransactWriteItem>, Vec<(String, u32, ShardState)>), LedgerError> {
        let at = payment.created_at_ms;
        let legs: Vec<(u32, &ShardState)> = plan.debits.iter().map(|(k, st, _)| (*k, st)).collect();
        let needs = merged_needs(&legs);
        let multi = plan.debits.len() > 1;
        let mut updates = Vec::new();
        let mut entries = Vec::new();
        let mut after = Vec::new();
        for (shard, state, part) in &plan.debits {
            // A debit sweeps the holds that expired: their money is what it
            // may be spending.
            let swept = state.swept(at);
            let next = ShardState {
                version: state.version + 1,
                balance_minor: state.balance_minor - part,
                updated_at_ms: at,
                need: needs.get(shard).cloned().unwrap_or_default(),
                holds_rev: state.holds_rev + u64::from(swept.is_some()),
                holds: swept.unwrap_or_else(|| state.holds.clone()),
            };
            updates.push(self.shard_update(
                &sender.facts.account_id,
                *shard,
                state,
                &next,
                *part,
                Direction::Debit,
                multi,
                0,
            )?);
            entries.push(StoredEntry {
                account_id: sender.facts.account_id.clone(),
                shard: *shard,
                sequence: next.version,
                direction: Direction::Debit,
                amount_minor: *part,
                balance_after_minor: next.balance_minor,
                payment: payment.clone(),
            });
            after.push((sender.facts.account_id.clone(), *shard, next));
        }
        let (shard, state) = &plan.credit;
        let next = ShardState {
            version: state.version + 1,
            balance_minor: state.balance_minor + payment.amount_minor,
            updated_at_ms: at,
            ..state.clone()
        };
        updates.push(self.shard_update(
            &recipient.facts.account_id,
            *shard,
            state,
            &next,
            payment.amount_minor,
            Direction::Credit,
            false,
            shard_balance_max_minor(recipient.facts.shards) - payment.amount_minor,
        )?);
        entries.push(StoredEntry {
            account_id: recipient.facts.account_id.clone(),
            shard: *shard,
            sequence: next.version,
            direction: Direction::Credit,
            amount_minor: payment.amount_minor,
            balance_after_minor: next.balance_minor,
            payment: payment.clone(),
        });
        after.push((recipient.facts.account_id.clone(), *shard, next.clone()));
        let legs = RecordLegs {
            debits: plan
                .debits
                .iter()
                .map(|(k, st, part)| (*k, st.version + 1, *part))
                .collect(),
            credit: (*shard, next.version),
        };
        let mut items: Vec<TransactWriteItem> = updates
            .into_iter()
            .map(|u| TransactWriteItem::builder().update(u).build())
            .collect();
        items.push(
            TransactWriteItem::builder()
                .put(self.put_new(record_item(payment, order.idempotency_key.as_str(), &legs))?)
                .build(),
        );
        for entry in entries {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_new(entry.to_item())?)
                    .build(),
            );
        }
        Ok((items, after))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn shard_update(
        &self,
        account_id: &str,
        shard: u32,
        before: &ShardState,
        after: &ShardState,
        amount_minor: i64,
        direction: Direction,
        write_need: bool,
        room_minor: i64,
    ) -> Result<Update, LedgerError> {
        let mut values = HashMap::from([
            (":amount".to_owned(), n(amount_minor)),
            (":version".to_owned(), n(before.version)),
            (":next_version".to_owned(), n(after.version)),
            (":at".to_owned(), n(after.updated_at_ms)),
        ]);
        let (mut update, condition) = match direction {
            Direction::Debit => (
                "SET balance = balance - :amount, version = :next_version, updated_at = :at"
                    .to_owned(),
                "version = :version AND balance >= :amount",
            ),
            Direction::Credit => {
                values.insert(":room".into(), n(room_minor));
                (
                    "SET balance = balance + :amount, version = :next_version, updated_at = :at"
                        .to_owned(),
                    "version = :version AND balance <= :room",
                )
            }
        };
        if write_need {
            update.push_str(", need = :need");
            values.insert(":need".into(), need_value(&after.need));
        }
        let mut condition = condition.to_owned();
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
            .key("account_id", s(shard_key(account_id, shard)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)
    }

    /// After a round failed: a stored record answers the call; shards found
    /// stale are remembered as DynamoDB returned them; a conflict waits.
    async fn after_failure<R: std::fmt::Debug>(
        &self,
        order: &PaymentOrder,
        own_ids: &[String],
        plan: &Plan,
        recipient: &AccountFacts,
        err: aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
    ) -> Next {
        let cancelled = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => c,
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                return Next::Again {
                    backoff: true,
                    lost_credit: false,
                };
            }
            // A definite refusal by DynamoDB: nothing was written.
            Some(_) if !is_server_side(&err) => {
                return Next::Done(Err(sdk_error("TransactWriteItems", err)));
            }
            // A timeout, a dropped connection, a 5xx: the write may or may
            // not have committed. The record says which.
            _ => {
                let cause = sdk_error("TransactWriteItems", err).to_string();
                return Next::Done(self.resolve(order, own_ids, cause).await);
            }
        };
        let reasons = cancelled.cancellation_reasons();
        let code = |i: usize| reasons.get(i).and_then(|r| r.code()).unwrap_or("None");
        let debits = plan.debits.len();
        let record_index = debits + 1;
        if let Some(bad) = (0..reasons.len()).map(code).find(|c| {
            !matches!(
                *c,
                "None"
                    | "ConditionalCheckFailed"
                    | "TransactionConflict"
                    | "ThrottlingError"
                    | "ProvisionedThroughputExceeded"
            )
        }) {
            return Next::Done(Err(LedgerError::Internal(format!(
                "TransactWriteItems cancelled: {bad}"
            ))));
        }
        if code(record_index) == "ConditionalCheckFailed" {
            let stored = match reasons[record_index].item() {
                Some(item) => Payment::from_item(item),
                None => self.read_record(order).await.and_then(|r| {
                    r.ok_or_else(|| {
                        LedgerError::Internal(
                            "payment record vanished after its condition failed".into(),
                        )
                    })
                }),
            };
            return Next::Done(stored.and_then(|p| answer_stored(order, own_ids, p)));
        }
        let mut backoff = false;
        let touched = plan
            .debits
            .iter()
            .map(|(k, _, _)| (order.sender_id.as_str(), *k))
            .chain(std::iter::once((
                recipient.account_id.as_str(),
                plan.credit.0,
            )));
        for (i, (account_id, shard)) in touched.enumerate() {
            match (code(i), reasons.get(i).and_then(|r| r.item())) {
                ("ConditionalCheckFailed", Some(item)) => self.observe_item(item),
                ("ConditionalCheckFailed", None) => self.known.forget(account_id, shard),
                ("None", _) => {}
                _ => backoff = true,
            }
        }
        // An entry that exists already is explained by a stale version of
        // its shard, which the shard's own failed condition reports. An
        // entry failing alone means this instance's memory is wrong in a
        // way the items did not show: forget it and read.
        let stale_shard = (0..record_index).any(|i| code(i) == "ConditionalCheckFailed");
        if !stale_shard && (record_index + 1..reasons.len()).any(|i| code(i) != "None") {
            backoff = true;
            for (k, _, _) in &plan.debits {
                self.known.forget(order.sender_id.as_str(), *k);
            }
            self.known.forget(&recipient.account_id, plan.credit.0);
        }
        Next::Again {
            backoff,
            lost_credit: code(debits) != "None",
        }
    }

    fn observe_item(&self, item: &Item) {
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

    /// A refusal is the answer only if no payment was stored under the key:
    /// a replay of a committed payment is answered from its record even
    /// when the same payment could not be made now.
    async fn refuse(
        &self,
        order: &PaymentOrder,
        own_ids: &[String],
        refusal: LedgerError,
        record: Option<Option<Payment>>,
    ) -> Result<PaymentOutcome, LedgerError> {
        let stored = match record {
            Some(stored) => stored,
            None => self.read_record(order).await?,
        };
        match stored {
            Some(stored) => answer_stored(order, own_ids, stored),
            None => Err(refusal),
        }
    }

    /// The stored payment record of (sender, key), strongly consistent.
    async fn read_record(&self, order: &PaymentOrder) -> Result<Option<Payment>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.ledger)
            .set_key(Some(record_key(order)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        output.item().map(Payment::from_item).transpose()
    }
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

/// Whether a failed request may have been carried out: no answer at all
/// (timeout, connection), or a server-side error (5xx, throttling after
/// the SDK's retries).
pub(super) fn is_server_side<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    match err {
        aws_sdk_dynamodb::error::SdkError::ServiceError(service) => matches!(
            service.err().code(),
            Some(
                "InternalServerError"
                    | "ServiceUnavailable"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "ProvisionedThroughputExceededException"
            )
        ),
        _ => true,
    }
}

/// The key of the payment record of (sender, idempotency key).
fn record_key(order: &PaymentOrder) -> Item {
    super::layout::record_key(order.sender_id.as_str(), order.idempotency_key.as_str())
}

/// The answer when a payment is already stored under the order's key: this
/// call's own earlier round (not a replay), the same payment made earlier (a
/// replay), or another payment (the key was reused).
fn answer_stored(
    order: &PaymentOrder,
    own_ids: &[String],
    stored: Payment,
) -> Result<PaymentOutcome, LedgerError> {
    if own_ids.contains(&stored.transaction_id) {
        Ok(PaymentOutcome {
            payment: stored,
            replayed: false,
        })
    } else if stored.matches(order) {
        Ok(PaymentOutcome {
            payment: stored,
            replayed: true,
        })
    } else {
        Err(LedgerError::IdempotencyKeyReused {
            key: order.idempotency_key.as_str().to_owned(),
            sender_id: order.sender_id.as_str().to_owned(),
        })
    }
}

fn check_currencies(
    order: &PaymentOrder,
    sender: &AccountFacts,
    recipient: &AccountFacts,
) -> Result<(), LedgerError> {
    for (role, account) in [("sender", sender), ("recipient", recipient)] {
        if account.currency != order.currency.as_str() {
            return Err(LedgerError::CurrencyMismatch {
                role,
                account_id: account.account_id.clone(),
                account_currency: account.currency.clone(),
                currency: order.currency.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

fn known_count(party: &Party) -> usize {
    party.shards.iter().filter(|s| s.is_some()).count()
}

/// Why a sender that is fully known cannot pay `amount`: too little
/// available, or enough but spread over more shards than one transaction
/// can take.
pub(super) fn refusal(sender: &Party, amount: i64, what: &'static str, now: i64) -> LedgerError {
    let states = || sender.shards.iter().flatten();
    let available_minor: i64 = states().map(|s| s.available_at(now).max(0)).sum();
    if available_minor >= amount {
        let mut richest: Vec<i64> = states().map(|s| s.available_at(now).max(0)).collect();
        richest.sort_unstable_by(|a, b| b.cmp(a));
        let shards_max = if what == "hold" { 1 } else { DEBIT_SHARDS_MAX };
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

/// The time of a round's entries: now, but strictly after the newest entry
/// of every shard it touches, so that each shard's entries are in time
/// order (a sharded account's history is merged by time).
fn entry_time(plan: &Plan) -> i64 {
    plan.debits
        .iter()
        .map(|(_, s, _)| s.updated_at_ms)
        .chain(std::iter::once(plan.credit.1.updated_at_ms))
        .map(|t| t.saturating_add(1))
        .fold(now_ms(), i64::max)
}
