//! AuthorizePayment: a hold placed in one shard of the sender, with its
//! record, in one TransactWriteItems (see [`super::holds`]). On a warm
//! instance it is one request, and so is its replay (answered by the failed
//! write's returned record).

use super::clock::new_transaction_id;
use super::holds::clock;
use super::layout::{HoldRecord, HoldSlot, ShardState, StoredRecord, record_key};
use super::replay::{Call, replayed};
use super::round::{Party, RecordRead, Rounds, Start, Written, reason, refusal};
use super::{Caller, HoldOutcome, HoldState, Ledger, LedgerError, Transaction, TransactionKind};
use crate::domain::{HOLDS_OPEN_MAX, HoldOrder};

impl Ledger {
    /// Places a hold, exactly once per (sender, idempotency key).
    pub async fn authorize_payment(
        &self,
        hold: &HoldOrder,
        caller: &Caller,
    ) -> Result<HoldOutcome, LedgerError> {
        let order = &hold.order;
        let sender_id = order.sender_id.as_str();
        let recipient_id = order.recipient_id.as_str();
        let idempotency_key = order.idempotency_key.as_str();
        let _queued = self.locks.lock_pair(sender_id, sender_id).await;
        let key = record_key(sender_id, idempotency_key);
        let mut own_ids: Vec<String> = Vec::new();
        let mut verified = false;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            let (mut sender, mut record) = match self.start_round(order, caller, &key).await? {
                Start::Stored(stored) => return answer(hold, &own_ids, stored),
                Start::Parties { sender, record, .. } => (*sender, record),
            };
            // One shard reserves the whole hold: the one with the most
            // available, so every shard must be known.
            let all = sender.all_shards();
            self.fill(&mut [(&mut sender, &all)], None).await?;
            let (shard, state, mut holds, now) = loop {
                let now = clock();
                let (shard, state) = richest_shard(&sender, now)
                    .ok_or_else(|| LedgerError::Internal("sender has no shard states".into()))?;
                let holds = state.swept(now).unwrap_or_else(|| state.holds.clone());
                let refused = if state.available_at(now) < order.amount_minor {
                    Some(refusal(&sender, order.amount_minor, "hold", 1, now))
                } else if holds.len() >= HOLDS_OPEN_MAX {
                    Some(LedgerError::TooManyHolds {
                        account_id: sender_id.to_owned(),
                        limit: HOLDS_OPEN_MAX,
                    })
                } else {
                    None
                };
                match refused {
                    None => break (shard, state, holds, now),
                    // Before refusing, read the sender fresh, and the
                    // record with it: a replay is answered from it.
                    Some(_) if !verified => {
                        verified = true;
                        sender.forget_shards();
                        record = self
                            .fill_with_record(&mut [(&mut sender, &all)], &key)
                            .await?;
                        self.fill_raised(&mut sender).await?;
                        if let RecordRead::Found(stored) = record {
                            return answer(hold, &own_ids, stored);
                        }
                    }
                    Some(err) => {
                        return answer(hold, &own_ids, self.stored_or(err, &key, record).await?);
                    }
                }
            };
            let expires_at_ms = now + hold.expires_in_ms;
            holds.insert(
                idempotency_key.to_owned(),
                HoldSlot {
                    amount_minor: order.amount_minor,
                    expires_at_ms,
                },
            );
            let placed = HoldRecord {
                idempotency_key: idempotency_key.to_owned(),
                payment: Transaction {
                    transaction_id: new_transaction_id(),
                    sender_id: sender_id.to_owned(),
                    recipient_id: recipient_id.to_owned(),
                    amount_minor: order.amount_minor,
                    currency: order.currency.as_str().to_owned(),
                    memo: order.memo.clone(),
                    created_at_ms: now,
                    kind: TransactionKind::Capture,
                    refund_of: String::new(),
                },
                expires_at_ms,
                shard,
                state: HoldState::Open,
                captured_minor: 0,
                settled_at_ms: 0,
                capture_round: String::new(),
                refunded_minor: 0,
            };
            own_ids.push(placed.payment.transaction_id.clone());
            let after = ShardState {
                holds_rev: state.holds_rev + 1,
                holds,
                ..state.clone()
            };
            let items = vec![
                self.holds_update(sender_id, shard, &state, &after, true)?,
                self.put_record(placed.to_item())?,
            ];
            match self.transact(items).await? {
                Written::Committed => {
                    self.known.observe(sender_id, shard, &after);
                    self.known
                        .remember_record(&StoredRecord::Hold(placed.clone()));
                    return Ok(HoldOutcome {
                        hold: placed.view(now),
                        capture: None,
                        replayed: false,
                    });
                }
                Written::Unknown(cause) => {
                    return match self.read_record(&key).await {
                        Ok(Some(stored)) => answer(hold, &own_ids, stored),
                        _ => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
                Written::Cancelled(reasons) => {
                    rounds.met(&reasons)?;
                    // The key is taken: its record answers.
                    if let Some(stored) = self.taken(reason(&reasons, 1), &key).await? {
                        return answer(hold, &own_ids, stored);
                    }
                    let shard_reason = reason(&reasons, 0);
                    if shard_reason.failed() && shard_reason.item().is_none() {
                        self.known.forget(sender_id, shard);
                    }
                }
            }
        }
        match self.read_record(&key).await {
            Ok(Some(stored)) => answer(hold, &own_ids, stored),
            _ => Err(rounds.exhausted()),
        }
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

/// The answer when a record is stored under the hold's key (see
/// [`super::replay`]).
fn answer(
    hold: &HoldOrder,
    own_ids: &[String],
    stored: StoredRecord,
) -> Result<HoldOutcome, LedgerError> {
    let replayed = replayed(Call::Hold(hold), own_ids, &stored)?;
    match stored {
        StoredRecord::Hold(record) => Ok(HoldOutcome {
            hold: record.view(clock()),
            capture: record.capture(),
            replayed,
        }),
        StoredRecord::Transfer { .. } | StoredRecord::Fence(_) => Err(LedgerError::Internal(
            "a payment or a fence answered a hold's key".into(),
        )),
    }
}
