//! AuthorizePayment: a hold placed in one shard of the sender, with its
//! record, in one TransactWriteItems (see [`super::holds`]). On a warm
//! instance it is one request, and so is its replay (answered by the failed
//! write's returned record).

use super::clock::new_transaction_id;
use super::holds::clock;
use super::layout::{HoldRecord, HoldSlot, Item, ShardState, StoredRecord, record_key};
use super::replay::{Call, replayed};
use super::round::{Next, Party, Plan, RecordRead, Rounds, Settled, Start, reason, refusal};
use super::{Caller, HoldOutcome, HoldState, Ledger, LedgerError, Transaction, TransactionKind};
use crate::domain::{HOLDS_OPEN_MAX, HoldOrder};
use std::collections::BTreeMap;

/// One AuthorizePayment call, across its rounds.
struct HoldCall<'a> {
    hold: &'a HoldOrder,
    caller: &'a Caller,
    /// The key of the hold's record.
    key: Item,
    /// The transaction ids this call's rounds wrote under the key.
    own_ids: Vec<String>,
    /// Whether the sender was read fresh before a refusal.
    verified: bool,
}

/// Where a round places the hold: the shard, its state as read, the holds
/// it keeps (those expired at `now` swept), and the clock that decided.
struct Placement {
    shard: u32,
    state: ShardState,
    holds: BTreeMap<String, HoldSlot>,
    now: i64,
}

impl Ledger {
    /// Places a hold, exactly once per (sender, idempotency key).
    pub async fn authorize_payment(
        &self,
        hold: &HoldOrder,
        caller: &Caller,
    ) -> Result<HoldOutcome, LedgerError> {
        let order = &hold.order;
        let sender_id = order.sender_id.as_str();
        let _queued = self.locks.lock_pair(sender_id, sender_id).await;
        let mut call = HoldCall {
            hold,
            caller,
            key: record_key(sender_id, order.idempotency_key.as_str()),
            own_ids: Vec::new(),
            verified: false,
        };
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            if let Next::Done(outcome) = self.hold_round(&mut call, &mut rounds).await? {
                return Ok(outcome);
            }
        }
        let stored = self.stored_or_exhausted(&call.key, &rounds).await?;
        answer(hold, &call.own_ids, stored)
    }

    /// One round: place the hold in the sender's richest shard, write the
    /// shard's map and the record, and settle what DynamoDB answered.
    async fn hold_round(
        &self,
        call: &mut HoldCall<'_>,
        rounds: &mut Rounds,
    ) -> Result<Next<HoldOutcome>, LedgerError> {
        let sender_id = call.hold.order.sender_id.as_str();
        let (mut sender, record) = match self
            .start_round(&call.hold.order, call.caller, &call.key)
            .await?
        {
            Start::Stored(stored) => {
                return answer(call.hold, &call.own_ids, stored).map(Next::Done);
            }
            Start::Parties { sender, record, .. } => (*sender, record),
        };
        let Placement {
            shard,
            state,
            holds,
            now,
        } = match self.place(call, &mut sender, record).await? {
            Plan::Write(placement) => placement,
            Plan::Stored(stored) => {
                return answer(call.hold, &call.own_ids, *stored).map(Next::Done);
            }
        };
        let placed = new_hold(call.hold, shard, now);
        call.own_ids.push(placed.payment.transaction_id.clone());
        let after = with_hold(&state, holds, &placed);
        let items = vec![
            self.holds_update(sender_id, shard, &state, &after, true)?,
            self.put_record(placed.to_item())?,
        ];
        let written = self.transact(items).await?;
        match self.settle(written, rounds, &call.key, 1).await? {
            Settled::Committed => {
                self.known.observe(sender_id, shard, &after);
                self.known
                    .remember_record(&StoredRecord::Hold(placed.clone()));
                Ok(Next::Done(HoldOutcome {
                    hold: placed.view(now),
                    capture: None,
                    replayed: false,
                }))
            }
            Settled::Unknown { cause, read: None } => Err(LedgerError::OutcomeUnknown { cause }),
            // The key is taken, or the write committed after all: the
            // record answers.
            Settled::Unknown {
                read: Some(stored), ..
            }
            | Settled::Taken(stored) => answer(call.hold, &call.own_ids, stored).map(Next::Done),
            Settled::Again(reasons) => {
                self.forget_unreturned(reason(&reasons, 0), sender_id, shard);
                Ok(Next::Again)
            }
        }
    }

    /// Where the hold goes: the sender's shard with the most available (one
    /// shard reserves the whole hold, so every shard must be known). Before
    /// refusing, the sender is read fresh, with the record: a replay is
    /// answered from it.
    async fn place(
        &self,
        call: &mut HoldCall<'_>,
        sender: &mut Party,
        mut record: RecordRead<StoredRecord>,
    ) -> Result<Plan<Placement>, LedgerError> {
        let all = sender.all_shards();
        self.fill(&mut [(&mut *sender, &all)], None).await?;
        loop {
            let now = clock();
            let (shard, state) = richest_shard(sender, now)
                .ok_or_else(|| LedgerError::Internal("sender has no shard states".into()))?;
            let holds = state.swept(now).unwrap_or_else(|| state.holds.clone());
            let Some(err) = refused(sender, call.hold, &state, &holds, now) else {
                return Ok(Plan::Write(Placement {
                    shard,
                    state,
                    holds,
                    now,
                }));
            };
            if call.verified {
                let stored = self.stored_or(err, &call.key, record).await?;
                return Ok(Plan::Stored(Box::new(stored)));
            }
            call.verified = true;
            sender.forget_shards();
            record = self
                .fill_with_record(&mut [(&mut *sender, &all)], &call.key)
                .await?;
            self.fill_raised(sender).await?;
            if let RecordRead::Found(stored) = record {
                return Ok(Plan::Stored(Box::new(stored)));
            }
        }
    }
}

/// Why the hold cannot go to `state`, the sender's richest shard at `now`
/// (keeping `holds`): too little available, or too many holds open.
fn refused(
    sender: &Party,
    hold: &HoldOrder,
    state: &ShardState,
    holds: &BTreeMap<String, HoldSlot>,
    now: i64,
) -> Option<LedgerError> {
    let order = &hold.order;
    if state.available_at(now) < order.amount_minor {
        Some(refusal(sender, order.amount_minor, "hold", 1, now))
    } else if holds.len() >= HOLDS_OPEN_MAX {
        Some(LedgerError::TooManyHolds {
            account_id: order.sender_id.as_str().to_owned(),
            limit: HOLDS_OPEN_MAX,
        })
    } else {
        None
    }
}

/// The record of a hold placed at `now` in `shard`.
fn new_hold(hold: &HoldOrder, shard: u32, now: i64) -> HoldRecord {
    let order = &hold.order;
    HoldRecord {
        idempotency_key: order.idempotency_key.as_str().to_owned(),
        payment: Transaction {
            transaction_id: new_transaction_id(),
            sender_id: order.sender_id.as_str().to_owned(),
            recipient_id: order.recipient_id.as_str().to_owned(),
            amount_minor: order.amount_minor,
            currency: order.currency.as_str().to_owned(),
            memo: order.memo.clone(),
            created_at_ms: now,
            kind: TransactionKind::Capture,
            refund_of: String::new(),
        },
        expires_at_ms: now + hold.expires_in_ms,
        shard,
        state: HoldState::Open,
        captured_minor: 0,
        settled_at_ms: 0,
        capture_round: String::new(),
        refunded_minor: 0,
    }
}

/// The shard's state with `placed` in its map, `holds` being the map as
/// kept (those expired swept).
fn with_hold(
    state: &ShardState,
    mut holds: BTreeMap<String, HoldSlot>,
    placed: &HoldRecord,
) -> ShardState {
    holds.insert(
        placed.idempotency_key.clone(),
        HoldSlot {
            amount_minor: placed.payment.amount_minor,
            expires_at_ms: placed.expires_at_ms,
        },
    );
    ShardState {
        holds_rev: state.holds_rev + 1,
        holds,
        ..state.clone()
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
