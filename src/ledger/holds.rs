//! What AuthorizePayment ([`super::authorize`]), CaptureHold
//! ([`super::capture`]) and VoidHold ([`super::void`]) share: where a hold
//! lives, how it ends, and who may end it.
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
//! it was read), and removes from the map it writes the holds expired at
//! the same clock that decided what it may spend, so a hold whose money
//! was spent can never be captured. The invariant the audit checks: every
//! shard's balance covers every hold in its map.
//!
//! # Exactly one ending
//!
//! Capture and void both update the record conditioned on `state = OPEN`
//! and `expires_at` after the writer's now, and both rewrite the shard's
//! map conditioned on `holds_rev` (a void by an instance that does not
//! know the map removes the hold's entry by name instead, conditioned on
//! it being there, and raises `holds_rev`). Whichever commits first ends the hold;
//! the other fails its conditions and answers from the record DynamoDB
//! returns with the failure. An expiry is the absence of a commit before
//! `expires_at`, and a debit that swept the hold from the map makes any
//! later capture fail too.
//!
//! # Clocks
//!
//! Each instance decides with its own clock: whether a hold has expired
//! (for what a debit may spend, for sweeping, and in the capture's and
//! void's condition `expires_at > now`). The design assumes the instances'
//! clocks agree within a bound S (on AWS, Lambda and EC2 clocks are kept by
//! NTP / the Time Sync Service within about a millisecond; the design
//! needs S well under a second). Skew can then do only this:
//! - an instance whose clock is behind may capture or void a hold up to S
//!   after its expiry;
//! - an instance whose clock is ahead may count a hold as expired, spend
//!   its money and sweep it, up to S before its expiry; its capture then
//!   answers HOLD_EXPIRED with an `expired_at` up to S in the future.
//!
//! It can never end a hold twice (the record's `state` condition), nor
//! spend money a hold still reserves in DynamoDB's eyes beyond S, nor
//! create or lose money: every amount moves in one transaction conditioned
//! on the shard's version and holds. A writer whose clock ran ahead does
//! push the entry times of the shards it writes ahead (entries are kept in
//! time order per shard), but no other writer sweeps holds by those times:
//! each sweeps by its own clock.

use super::clock::now_ms;
use super::layout::{HoldRecord, Item, ShardState, StoredRecord, build_error, s, shard_key};
use super::records::describe;
use super::round::{RecordRead, holds_pin};
use super::{Caller, Hold, HoldState, Ledger, LedgerError, Transaction, TransactionKind};
use crate::domain::PaymentRef;
use aws_sdk_dynamodb::types::{
    ConditionCheck, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

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
    pub(super) fn capture(&self) -> Option<Transaction> {
        (self.state == HoldState::Captured).then(|| Transaction {
            amount_minor: self.captured_minor,
            created_at_ms: self.settled_at_ms,
            kind: TransactionKind::Capture,
            ..self.payment.clone()
        })
    }

    /// The record's key.
    pub(super) fn key(&self) -> Item {
        super::layout::record_key(&self.payment.sender_id, &self.idempotency_key)
    }
}

pub(super) fn expired(hold: &HoldRecord) -> LedgerError {
    LedgerError::HoldExpired {
        hold_id: hold.payment.transaction_id.clone(),
        expired_at: crate::domain::format_time_ms(hold.expires_at_ms),
    }
}

/// Why a hold that is not open cannot be `action`ed, or None when it is
/// open at `now`.
pub(super) fn ended(hold: &HoldRecord, action: &'static str, now: i64) -> Option<LedgerError> {
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

/// A hold as one call sees it: its record, and whether that was read fresh
/// in this call (else it is what this instance last wrote or read).
pub(super) struct Seen {
    pub hold: HoldRecord,
    pub fresh: bool,
}

impl Ledger {
    /// The hold a reference names, for a call only its recipient's owner or
    /// an admin may make. Anyone who is neither the sender's nor the
    /// recipient's owner (nor an admin) gets NOT_FOUND, as for an unknown
    /// hold, so that holds cannot be probed.
    pub(super) async fn hold_for_recipient(
        &self,
        reference: &PaymentRef,
        caller: &Caller,
        action: &'static str,
    ) -> Result<Seen, LedgerError> {
        let (record, fresh) = self.recall_record(reference).await?;
        let hold = Self::named_hold(record, reference)?;
        self.hold_access(Seen { hold, fresh }, reference, caller, action)
            .await
    }

    /// The hold a looked-up record is, or NOT_FOUND.
    pub(super) fn named_hold(
        record: Option<StoredRecord>,
        reference: &PaymentRef,
    ) -> Result<HoldRecord, LedgerError> {
        match record {
            Some(StoredRecord::Hold(hold)) => Ok(hold),
            _ => Err(LedgerError::PaymentNotFound {
                what: "hold",
                name: describe(reference),
            }),
        }
    }

    /// Whether `caller` may `action` the hold (see
    /// [`Self::hold_for_recipient`]): the hold as seen, read fresh when the
    /// accounts had to be read.
    pub(super) async fn hold_access(
        &self,
        mut seen: Seen,
        reference: &PaymentRef,
        caller: &Caller,
        action: &'static str,
    ) -> Result<Seen, LedgerError> {
        let not_found = || LedgerError::PaymentNotFound {
            what: "hold",
            name: describe(reference),
        };
        if caller.admin {
            return Ok(seen);
        }
        // Both accounts' facts: known, or read in one request (with the
        // record, fresh).
        let (sender_id, recipient_id) = (
            seen.hold.payment.sender_id.clone(),
            seen.hold.payment.recipient_id.clone(),
        );
        let ([sender, recipient], record) = self
            .parties([&sender_id, &recipient_id], seen.hold.key())
            .await?;
        if let RecordRead::Found(StoredRecord::Hold(hold)) = record {
            seen = Seen { hold, fresh: true };
        }
        if recipient.is_some_and(|r| r.facts.owner == caller.sub) {
            return Ok(seen);
        }
        if sender.is_some_and(|s| s.facts.owner == caller.sub) {
            return Err(LedgerError::NotAllowed {
                what: format!(
                    "the sender's owner may not {action} hold {}",
                    seen.hold.payment.transaction_id
                ),
                who: "the recipient's owner or an admin",
            });
        }
        Err(not_found())
    }

    /// The hold's record read fresh, remembered.
    pub(super) async fn reread_hold(&self, hold: &HoldRecord) -> Result<HoldRecord, LedgerError> {
        match self.read_record(&hold.key()).await? {
            Some(StoredRecord::Hold(fresh)) => Ok(fresh),
            _ => Err(LedgerError::Internal("hold record vanished".into())),
        }
    }

    /// A hold record DynamoDB returned with a failed condition (or, when it
    /// returned none, read fresh), remembered.
    pub(super) async fn returned_hold(
        &self,
        item: Option<&Item>,
        hold: &HoldRecord,
    ) -> Result<HoldRecord, LedgerError> {
        match item.map(StoredRecord::from_item).transpose()? {
            Some(StoredRecord::Hold(fresh)) => {
                self.known
                    .remember_record(&StoredRecord::Hold(fresh.clone()));
                Ok(fresh)
            }
            _ => self.reread_hold(hold).await,
        }
    }

    /// An update of a shard's holds only (no money moves, its version
    /// stays), conditioned on the holds being as read. With
    /// `check_balance`, also that the balance covers every hold kept.
    pub(super) fn holds_update(
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
            values.insert(":total".into(), super::layout::n(total));
            condition.push_str(" AND balance >= :total");
        }
        let set = super::round::holds_set(after, &mut values);
        let update = Update::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(shard_key(account_id, shard)))
            .update_expression(format!("SET {}", set.trim_start_matches(", ")))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

impl Ledger {
    /// An update that takes the hold `key` out of a shard's map without
    /// knowing the map: REMOVE of its entry, conditioned on the entry being
    /// there, and `holds_rev` raised by one, so that every writer that
    /// pinned the map as it was fails its condition and reads it again.
    /// Money does not move; the version stays.
    pub(super) fn hold_release(
        &self,
        account_id: &str,
        shard: u32,
        key: &str,
    ) -> Result<TransactWriteItem, LedgerError> {
        let update = Update::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(shard_key(account_id, shard)))
            .update_expression("REMOVE holds.#key ADD holds_rev :one")
            .condition_expression("attribute_exists(holds.#key)")
            .expression_attribute_names("#key", key)
            .expression_attribute_values(":one", super::layout::n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A check, inside a transaction, that `caller` owns the account: the
    /// access rule enforced by DynamoDB when this instance does not know
    /// the account's owner yet.
    pub(super) fn owner_check(
        &self,
        account_id: &str,
        caller: &str,
    ) -> Result<TransactWriteItem, LedgerError> {
        let check = ConditionCheck::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(shard_key(account_id, 0)))
            .condition_expression("#owner = :caller")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":caller", s(caller))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }
}

/// Whether the shard still reserves the hold at `now`.
pub(super) fn reserved(state: &ShardState, hold: &HoldRecord, now: i64) -> bool {
    state
        .holds
        .get(&hold.idempotency_key)
        .is_some_and(|slot| slot.expires_at_ms > now)
}

/// Now, by this instance's clock.
pub(super) fn clock() -> i64 {
    now_ms()
}

/// Hold arithmetic on one balance shard.
impl ShardState {
    /// Money of the shard reserved by holds that have not expired at `now_ms`.
    pub(super) fn held_at(&self, now_ms: i64) -> i64 {
        self.holds
            .values()
            .filter(|h| h.expires_at_ms > now_ms)
            .map(|h| h.amount_minor)
            .sum()
    }

    /// What a debit may take from the shard at `now_ms`.
    pub(super) fn available_at(&self, now_ms: i64) -> i64 {
        self.balance_minor - self.held_at(now_ms)
    }

    /// The holds left after sweeping the expired ones, if any expired.
    pub(super) fn swept(
        &self,
        now_ms: i64,
    ) -> Option<std::collections::BTreeMap<String, super::layout::HoldSlot>> {
        if self.holds.values().all(|h| h.expires_at_ms > now_ms) {
            return None;
        }
        Some(
            self.holds
                .iter()
                .filter(|(_, h)| h.expires_at_ms > now_ms)
                .map(|(k, h)| (k.clone(), *h))
                .collect(),
        )
    }
}
