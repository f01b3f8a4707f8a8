//! Holds: AuthorizePayment, CaptureHold and VoidHold.
//!
//! # Where a hold lives
//!
//! A hold is two things written in one transaction:
//! - its record, `P#<sender>` / `K#<key>` (the same key space as payments),
//!   with `hold`, `state` (OPEN, CAPTURED or VOIDED), `expires_at` and the
//!   shard that reserves its money;
//! - an entry in the `holds` map of one balance shard of the sender,
//!   `{key: {a: amount, e: expires_at}}`, with `holds_rev` raised.
//!
//! The money stays in the shard's `balance`. What a debit may take is the
//! balance less the holds of the map that have not expired at the writer's
//! clock, so an expired hold's money is available again at once, with no
//! sweep. Every debit is conditioned on `holds_rev` (the map is exactly as
//! it was read), and removes the expired holds from the map it writes, so
//! a hold whose money was spent can never be captured. The invariant the
//! audit checks: every shard's balance covers every hold in its map.
//!
//! # Exactly one ending
//!
//! Capture and void both update the record conditioned on `state = OPEN`
//! and `expires_at` after the writer's now, and both rewrite the shard's
//! map conditioned on `holds_rev`. Whichever commits first ends the hold;
//! the other fails its conditions, reads the record and answers from it.
//! An expiry is the absence of a commit before `expires_at`, and a debit
//! that swept the hold from the map makes any later capture fail too.

use super::layout::{
    HoldRecord, HoldSlot, Item, ShardState, StoredRecord, build_error, n, now_ms, record_key, s,
    shard_key,
};
use super::payments::{
    PAYMENT_ATTEMPTS_MAX, Party, backoff, holds_pin, holds_set, is_server_side, refusal,
};
use super::transfers::{Round, Written, round_legs, round_time};
use super::{Hold, HoldOutcome, HoldState, Ledger, LedgerError, Payer, Payment, TransferKind};
use crate::domain::{HOLDS_OPEN_MAX, HoldOrder, PaymentRef, shard_balance_max_minor};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use std::collections::HashMap;

impl HoldRecord {
    pub(super) fn view(&self, now_ms: i64) -> Hold {
        let state = self.state_at(now_ms);
        Hold {
            hold_id: self.payment.transaction_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            sender_id: self.payment.sender_id.clone(),
            recipient_id: self.payment.recipient_id.clone(),
            amount_minor: self.payment.amount_minor,
            currency: self.payment.currency.clone(),
            memo: self.payment.memo.clone(),
            created_at_ms: self.payment.created_at_ms,
            expires_at_ms: self.expires_at_ms,
            state,
            captured_minor: self.captured_minor,
            settled_at_ms: match state {
                HoldState::Open => 0,
                HoldState::Expired => self.expires_at_ms,
                _ => self.settled_at_ms,
            },
        }
    }

    /// The capture as a transaction, once captured.
    pub(super) fn capture(&self) -> Option<Payment> {
        (self.state == HoldState::Captured).then(|| Payment {
            amount_minor: self.captured_minor,
            created_at_ms: self.settled_at_ms,
            kind: TransferKind::Capture,
            ..self.payment.clone()
        })
    }
}

fn expired(hold: &HoldRecord) -> LedgerError {
    LedgerError::HoldExpired {
        hold_id: hold.payment.transaction_id.clone(),
        expired_at: crate::domain::format_time_ms(hold.expires_at_ms),
    }
}

/// Why a hold that is not open cannot be `action`ed, or None when it is
/// open at `now`.
fn ended(hold: &HoldRecord, action: &'static str, now: i64) -> Option<LedgerError> {
    let hold_id = hold.payment.transaction_id.clone();
    match hold.state_at(now) {
        HoldState::Open => None,
        HoldState::Captured => Some(LedgerError::HoldCaptured {
            hold_id,
            action,
            captured_minor: hold.captured_minor,
            currency: hold.payment.currency.clone(),
        }),
        HoldState::Voided => Some(LedgerError::HoldVoided { hold_id, action }),
        HoldState::Expired => Some(expired(hold)),
    }
}

impl Ledger {
    /// Places a hold, exactly once per (sender, idempotency key).
    pub async fn authorize_payment(
        &self,
        hold: &HoldOrder,
        payer: Payer<'_>,
    ) -> Result<HoldOutcome, LedgerError> {
        let order = &hold.order;
        let sender_id = order.sender_id.as_str();
        let key = order.idempotency_key.as_str();
        let _queued = self.locks.lock_pair(sender_id, sender_id).await;
        let mut own_ids: Vec<String> = Vec::new();
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            let (sender, stored) = tokio::try_join!(
                self.fresh_party(sender_id),
                self.read_record_item(record_key(sender_id, key))
            )?;
            let sender = match sender {
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
            if let Some(stored) = stored {
                return answer_stored_hold(hold, &own_ids, stored);
            }
            let recipient = self
                .facts(order.recipient_id.as_str())
                .await?
                .ok_or_else(|| LedgerError::AccountNotFound {
                    role: "recipient",
                    account_id: order.recipient_id.as_str().to_owned(),
                })?;
            for (role, facts) in [("sender", &sender.facts), ("recipient", &recipient)] {
                if facts.currency != order.currency.as_str() {
                    return Err(LedgerError::CurrencyMismatch {
                        role,
                        account_id: facts.account_id.clone(),
                        account_currency: facts.currency.clone(),
                        currency: order.currency.as_str().to_owned(),
                    });
                }
            }
            let now = now_ms();
            // One shard reserves the whole hold: the one with the most
            // available.
            let Some((shard, state)) = richest_shard(&sender, now) else {
                return Err(LedgerError::Internal("sender has no shard states".into()));
            };
            if state.available_at(now) < order.amount_minor {
                return Err(refusal(&sender, order.amount_minor, "hold", now));
            }
            let mut holds = state.swept(now).unwrap_or_else(|| state.holds.clone());
            if holds.len() >= HOLDS_OPEN_MAX {
                return Err(LedgerError::TooManyHolds {
                    account_id: sender_id.to_owned(),
                    limit: HOLDS_OPEN_MAX,
                });
            }
            holds.insert(
                key.to_owned(),
                HoldSlot {
                    amount_minor: order.amount_minor,
                    expires_at_ms: now + hold.expires_in_ms,
                },
            );
            let record = HoldRecord {
                idempotency_key: key.to_owned(),
                payment: Payment {
                    transaction_id: super::layout::new_transaction_id(),
                    sender_id: sender_id.to_owned(),
                    recipient_id: order.recipient_id.as_str().to_owned(),
                    amount_minor: order.amount_minor,
                    currency: order.currency.as_str().to_owned(),
                    memo: order.memo.clone(),
                    created_at_ms: now,
                    kind: TransferKind::Capture,
                    refund_of: String::new(),
                },
                expires_at_ms: now + hold.expires_in_ms,
                shard,
                state: HoldState::Open,
                captured_minor: 0,
                settled_at_ms: 0,
                capture_round: String::new(),
                refunded_minor: 0,
            };
            own_ids.push(record.payment.transaction_id.clone());
            let after = ShardState {
                holds_rev: state.holds_rev + 1,
                holds,
                ..state.clone()
            };
            let items = vec![
                self.holds_update(sender_id, shard, &state, &after, true)?,
                TransactWriteItem::builder()
                    .put(self.put_new(record.to_item())?)
                    .build(),
            ];
            match self.write_items(items).await? {
                None => {
                    self.known.observe(sender_id, shard, &after);
                    return Ok(HoldOutcome {
                        hold: record.view(now),
                        capture: None,
                        replayed: false,
                    });
                }
                Some(Some(failed)) if failed.get(1).copied().unwrap_or(false) => {
                    // The key is taken: answered from its record next round.
                }
                Some(Some(_)) => {}
                Some(None) => {
                    // No answer: the record tells.
                    return match self.read_record_item(record_key(sender_id, key)).await {
                        Ok(Some(stored)) => answer_stored_hold(hold, &own_ids, stored),
                        _ => Err(LedgerError::OutcomeUnknown {
                            cause: "TransactWriteItems got no answer".into(),
                        }),
                    };
                }
            }
        }
        match self.read_record_item(record_key(sender_id, key)).await {
            Ok(Some(stored)) => answer_stored_hold(hold, &own_ids, stored),
            _ => Err(LedgerError::Contended {
                attempts: PAYMENT_ATTEMPTS_MAX,
            }),
        }
    }

    /// Captures a hold: `amount` of it (None: all) moves to the recipient as
    /// one transfer with the hold's id, and the hold ends. Only the
    /// recipient's owner or an admin may.
    pub async fn capture_hold(
        &self,
        reference: &PaymentRef,
        amount: Option<i64>,
        caller: Payer<'_>,
    ) -> Result<HoldOutcome, LedgerError> {
        let mut hold = self
            .hold_for_recipient(reference, caller, "capture")
            .await?;
        let hold_id = hold.payment.transaction_id.clone();
        let capture_minor = amount.unwrap_or(hold.payment.amount_minor);
        let sender_id = hold.payment.sender_id.clone();
        let recipient_id = hold.payment.recipient_id.clone();
        let mut own_rounds: Vec<String> = Vec::new();
        let answer =
            |hold: &HoldRecord, own: &[String]| -> Option<Result<HoldOutcome, LedgerError>> {
                let now = now_ms();
                if hold.state == HoldState::Captured
                    && (own.contains(&hold.capture_round) || hold.captured_minor == capture_minor)
                {
                    return Some(Ok(HoldOutcome {
                        hold: hold.view(now),
                        capture: hold.capture(),
                        replayed: !own.contains(&hold.capture_round),
                    }));
                }
                ended(hold, "captured", now).map(Err)
            };
        if let Some(done) = answer(&hold, &own_rounds) {
            return done;
        }
        if capture_minor > hold.payment.amount_minor {
            return Err(LedgerError::CaptureExceedsHold {
                hold_id,
                held_minor: hold.payment.amount_minor,
                amount_minor: capture_minor,
                currency: hold.payment.currency.clone(),
            });
        }
        let _queued = self.locks.lock_pair(&sender_id, &sender_id).await;
        let mut slot = None;
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
                match self.read_record_item(hold_key(&hold)).await? {
                    Some(StoredRecord::Hold(fresh)) => hold = fresh,
                    _ => return Err(LedgerError::Internal("hold record vanished".into())),
                }
                if let Some(done) = answer(&hold, &own_rounds) {
                    return done;
                }
            }
            let (sender, recipient) = tokio::try_join!(
                self.fresh_party(&sender_id),
                self.fresh_party(&recipient_id)
            )?;
            let (Some(sender), Some(recipient)) = (sender, recipient) else {
                return Err(LedgerError::Internal("a party of a hold vanished".into()));
            };
            let Some(state) = sender.shards[hold.shard as usize].clone() else {
                return Err(LedgerError::Internal("hold shard not read".into()));
            };
            let now = now_ms();
            match state.holds.get(&hold.idempotency_key) {
                Some(slot) if slot.expires_at_ms > now => {}
                // Swept by a debit after it expired, or ended by a void or
                // capture whose record this call has not seen yet.
                _ => {
                    if let Some(StoredRecord::Hold(fresh)) =
                        self.read_record_item(hold_key(&hold)).await?
                    {
                        hold = fresh;
                    }
                    return answer(&hold, &own_rounds).unwrap_or_else(|| Err(expired(&hold)));
                }
            }
            let credit_shard = if recipient.facts.shards > 1 {
                slot.get_or_insert_with(|| {
                    self.known
                        .take_credit_slot(&recipient_id, recipient.facts.shards)
                })
                .shard
            } else {
                0
            };
            let Some(credit) = recipient.shards[credit_shard as usize].clone() else {
                return Err(LedgerError::Internal("credit shard not read".into()));
            };
            if credit.balance_minor
                > shard_balance_max_minor(recipient.facts.shards) - capture_minor
            {
                return Err(LedgerError::BalanceLimit {
                    account_id: recipient_id.clone(),
                });
            }
            let at = round_time([&state, &credit].into_iter());
            let mut holds = state.swept(at).unwrap_or_else(|| state.holds.clone());
            holds.remove(&hold.idempotency_key);
            let after = ShardState {
                version: state.version + 1,
                balance_minor: state.balance_minor - capture_minor,
                updated_at_ms: at,
                holds,
                holds_rev: state.holds_rev + 1,
                ..state.clone()
            };
            let capture_round = uuid::Uuid::new_v4().to_string();
            own_rounds.push(capture_round.clone());
            let mut round = Round {
                sender: sender.facts.clone(),
                recipient: recipient.facts.clone(),
                payment: Payment {
                    amount_minor: capture_minor,
                    created_at_ms: at,
                    kind: TransferKind::Capture,
                    ..hold.payment.clone()
                },
                debits: vec![(hold.shard, state, after, capture_minor)],
                credit: (credit_shard, credit),
                records: Vec::new(),
            };
            let mut values: Item = round_legs(&round)
                .into_iter()
                .map(|(k, v)| (format!(":{k}"), v))
                .collect();
            let legs: Vec<String> = round_legs(&round)
                .keys()
                .map(|k| format!("{k} = :{k}"))
                .collect();
            values.extend([
                (":captured".to_owned(), s(HoldState::Captured.as_str())),
                (":open".to_owned(), s(HoldState::Open.as_str())),
                (":amount".to_owned(), n(capture_minor)),
                (":at".to_owned(), n(at)),
                (":round".to_owned(), s(&capture_round)),
                (":now".to_owned(), n(now)),
            ]);
            round.records.push(self.record_update(
                hold_key(&hold),
                &format!(
                    "SET #st = :captured, captured_amount = :amount, settled_at = :at, capture_round = :round, {}",
                    legs.join(", ")
                ),
                "#st = :open AND expires_at > :now",
                &[("#st", "state")],
                values,
            )?);
            match self.write_round(&round).await? {
                Written::Committed => {
                    hold.state = HoldState::Captured;
                    hold.captured_minor = capture_minor;
                    hold.settled_at_ms = at;
                    hold.capture_round = capture_round;
                    return Ok(HoldOutcome {
                        hold: hold.view(now_ms()),
                        capture: hold.capture(),
                        replayed: false,
                    });
                }
                Written::Unknown(cause) => {
                    return match self.read_record_item(hold_key(&hold)).await {
                        Ok(Some(StoredRecord::Hold(fresh))) => match answer(&fresh, &own_rounds) {
                            Some(done) => done,
                            None => Err(LedgerError::OutcomeUnknown { cause }),
                        },
                        _ => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
                Written::Refused { credit_changed, .. } => {
                    if credit_changed && recipient.facts.shards > 1 {
                        self.known
                            .move_away(&recipient_id, credit_shard, recipient.facts.shards);
                        slot = None;
                    }
                }
            }
        }
        Err(LedgerError::Contended {
            attempts: PAYMENT_ATTEMPTS_MAX,
        })
    }

    /// Voids an open hold. Only the recipient's owner or an admin may.
    pub async fn void_hold(
        &self,
        reference: &PaymentRef,
        caller: Payer<'_>,
    ) -> Result<HoldOutcome, LedgerError> {
        let mut hold = self.hold_for_recipient(reference, caller, "void").await?;
        let sender_id = hold.payment.sender_id.clone();
        let answer = |hold: &HoldRecord| -> Option<Result<HoldOutcome, LedgerError>> {
            let now = now_ms();
            if hold.state == HoldState::Voided {
                return Some(Ok(HoldOutcome {
                    hold: hold.view(now),
                    capture: None,
                    replayed: true,
                }));
            }
            ended(hold, "voided", now).map(Err)
        };
        if let Some(done) = answer(&hold) {
            return done;
        }
        let _queued = self.locks.lock_pair(&sender_id, &sender_id).await;
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
                match self.read_record_item(hold_key(&hold)).await? {
                    Some(StoredRecord::Hold(fresh)) => hold = fresh,
                    _ => return Err(LedgerError::Internal("hold record vanished".into())),
                }
                if let Some(done) = answer(&hold) {
                    return done;
                }
            }
            let states = self.read_shards(&sender_id, &[hold.shard]).await?;
            let Some(state) = states.get(&hold.shard).cloned() else {
                return Err(LedgerError::Internal("hold shard vanished".into()));
            };
            let now = now_ms();
            if state
                .holds
                .get(&hold.idempotency_key)
                .is_none_or(|slot| slot.expires_at_ms <= now)
            {
                if let Some(StoredRecord::Hold(fresh)) =
                    self.read_record_item(hold_key(&hold)).await?
                {
                    hold = fresh;
                }
                return answer(&hold).unwrap_or_else(|| Err(expired(&hold)));
            }
            let mut holds = state.swept(now).unwrap_or_else(|| state.holds.clone());
            holds.remove(&hold.idempotency_key);
            let after = ShardState {
                holds,
                holds_rev: state.holds_rev + 1,
                ..state.clone()
            };
            let items = vec![
                self.holds_update(&sender_id, hold.shard, &state, &after, false)?,
                self.record_update(
                    hold_key(&hold),
                    "SET #st = :voided, settled_at = :now",
                    "#st = :open AND expires_at > :now",
                    &[("#st", "state")],
                    HashMap::from([
                        (":voided".to_owned(), s(HoldState::Voided.as_str())),
                        (":open".to_owned(), s(HoldState::Open.as_str())),
                        (":now".to_owned(), n(now)),
                    ]),
                )?,
            ];
            match self.write_items(items).await? {
                None => {
                    self.known.observe(&sender_id, hold.shard, &after);
                    hold.state = HoldState::Voided;
                    hold.settled_at_ms = now;
                    return Ok(HoldOutcome {
                        hold: hold.view(now),
                        capture: None,
                        replayed: false,
                    });
                }
                Some(None) => {
                    return match self.read_record_item(hold_key(&hold)).await {
                        Ok(Some(StoredRecord::Hold(fresh))) if fresh.state == HoldState::Voided => {
                            Ok(HoldOutcome {
                                hold: fresh.view(now_ms()),
                                capture: None,
                                replayed: false,
                            })
                        }
                        Ok(Some(StoredRecord::Hold(fresh))) => {
                            answer(&fresh).unwrap_or_else(|| {
                                Err(LedgerError::OutcomeUnknown {
                                    cause: "TransactWriteItems got no answer".into(),
                                })
                            })
                        }
                        _ => Err(LedgerError::OutcomeUnknown {
                            cause: "TransactWriteItems got no answer".into(),
                        }),
                    };
                }
                Some(Some(_)) => {}
            }
        }
        Err(LedgerError::Contended {
            attempts: PAYMENT_ATTEMPTS_MAX,
        })
    }

    /// The hold a reference names, for a call only its recipient's owner or
    /// an admin may make. Anyone who is neither the sender's nor the
    /// recipient's owner (nor an admin) gets NOT_FOUND, as for an unknown
    /// hold, so that holds cannot be probed.
    async fn hold_for_recipient(
        &self,
        reference: &PaymentRef,
        caller: Payer<'_>,
        action: &'static str,
    ) -> Result<HoldRecord, LedgerError> {
        let not_found = || LedgerError::PaymentNotFound {
            what: "hold",
            name: describe(reference),
        };
        let hold = match self.find_record(reference).await? {
            Some(StoredRecord::Hold(hold)) => hold,
            _ => return Err(not_found()),
        };
        if caller.admin {
            return Ok(hold);
        }
        let (sender, recipient) = tokio::try_join!(
            self.facts(&hold.payment.sender_id),
            self.facts(&hold.payment.recipient_id)
        )?;
        if recipient.is_some_and(|r| r.owner == caller.sub) {
            return Ok(hold);
        }
        if sender.is_some_and(|s| s.owner == caller.sub) {
            return Err(LedgerError::NotAllowed {
                what: format!(
                    "the sender's owner may not {action} hold {}",
                    hold.payment.transaction_id
                ),
                who: "the recipient's owner or an admin",
            });
        }
        Err(not_found())
    }

    /// An update of a shard's holds only (no money moves, its version
    /// stays), conditioned on the holds being as read. With
    /// `check_balance`, also that the balance covers every hold kept.
    fn holds_update(
        &self,
        account_id: &str,
        shard: u32,
        before: &ShardState,
        after: &ShardState,
        check_balance: bool,
    ) -> Result<TransactWriteItem, LedgerError> {
        let mut values = Item::new();
        let mut condition = holds_pin(before, &mut values);
        if check_balance {
            let total: i64 = after.holds.values().map(|h| h.amount_minor).sum();
            values.insert(":total".into(), n(total));
            condition.push_str(" AND balance >= :total");
        }
        let set = holds_set(after, &mut values);
        let update = Update::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(shard_key(account_id, shard)))
            .update_expression(format!("SET {}", set.trim_start_matches(", ")))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes items in one transaction: None when it committed; Some(Some)
    /// with which items failed their condition; Some(None) when there was
    /// no answer (it may have committed).
    async fn write_items(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Option<Vec<bool>>>, LedgerError> {
        let count = items.len();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(None),
            Err(err) => err,
        };
        match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                let reasons = c.cancellation_reasons();
                for reason in reasons {
                    if let Some(item) = reason.item()
                        && reason.code() == Some("ConditionalCheckFailed")
                        && item.contains_key("account_id")
                    {
                        self.observe_returned(item);
                    }
                }
                Ok(Some(Some(
                    (0..count)
                        .map(|i| {
                            reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                        })
                        .collect(),
                )))
            }
            Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                Ok(Some(Some(vec![false; count])))
            }
            Some(_) if !is_server_side(&err) => {
                Err(super::layout::sdk_error("TransactWriteItems", err))
            }
            _ => Ok(Some(None)),
        }
    }
}

fn hold_key(hold: &HoldRecord) -> Item {
    record_key(&hold.payment.sender_id, &hold.idempotency_key)
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

/// The shard with the most available money at `now`, and its state.
fn richest_shard(sender: &Party, now: i64) -> Option<(u32, ShardState)> {
    sender
        .shards
        .iter()
        .enumerate()
        .filter_map(|(k, s)| Some((u32::try_from(k).ok()?, s.clone()?)))
        .max_by_key(|(k, s)| (s.available_at(now), std::cmp::Reverse(*k)))
}

/// The answer when a record is already stored under a hold's key.
fn answer_stored_hold(
    order: &HoldOrder,
    own_ids: &[String],
    stored: StoredRecord,
) -> Result<HoldOutcome, LedgerError> {
    let reused = || LedgerError::IdempotencyKeyReused {
        key: order.order.idempotency_key.as_str().to_owned(),
        sender_id: order.order.sender_id.as_str().to_owned(),
    };
    let StoredRecord::Hold(hold) = stored else {
        return Err(reused());
    };
    let own = own_ids.contains(&hold.payment.transaction_id);
    if !own && !hold.payment.matches(&order.order) {
        return Err(reused());
    }
    Ok(HoldOutcome {
        hold: hold.view(now_ms()),
        capture: hold.capture(),
        replayed: !own,
    })
}
