//! CaptureHold: the held amount, or less, moves from the hold's shard to
//! the recipient as one transfer with the hold's id, and the hold's record
//! says CAPTURED, in one TransactWriteItems (see [`super::holds`]). On a
//! warm instance (it knows the hold and both accounts) that is the only
//! request; a stale memory costs one failed write, which returns what
//! changed.

use super::holds::{Seen, clock, ended, expired, reserved};
use super::known::CreditSlot;
use super::layout::{HoldRecord, ShardState, StoredRecord, legs_attributes, n, s};
use super::round::{Next, Party, RecordRead, Rounds, Settled, Transfer};
use super::{Caller, HoldOutcome, HoldState, Ledger, LedgerError, Transaction, TransactionKind};
use crate::domain::{PaymentRef, shard_balance_max_minor};

/// One CaptureHold call, across its rounds.
struct CaptureCall {
    /// The hold as last read or written.
    hold: HoldRecord,
    capture_minor: i64,
    /// The ids of this call's capture rounds.
    own_rounds: Vec<String>,
    /// The recipient's shard this call credits, once taken.
    slot: Option<CreditSlot>,
    /// Whether the hold, its shard and the recipient were read fresh
    /// before a refusal.
    verified: bool,
}

/// The legs a capture round writes: the state of the hold's shard, the
/// credit shard and its state, and the clock that decided them.
struct Legs {
    state: ShardState,
    credit_shard: u32,
    credit: ShardState,
    now: i64,
}

/// What a capture round's plan came to.
enum Planned {
    Legs(Legs),
    /// The round ends without a write: with the call's answer, or to go
    /// again after a fresh read.
    Ends(Next<HoldOutcome>),
}

impl CaptureCall {
    /// The answer a hold's record gives: captured by this call, or before
    /// with the same amount (a replay); or why it cannot be captured. None
    /// while it is open.
    fn answer(&self, hold: &HoldRecord) -> Option<Result<HoldOutcome, LedgerError>> {
        let own = &self.own_rounds;
        if hold.state == HoldState::Captured
            && (own.contains(&hold.capture_round) || hold.captured_minor == self.capture_minor)
        {
            return Some(Ok(HoldOutcome {
                hold: hold.view(clock()),
                capture: hold.capture(),
                replayed: !own.contains(&hold.capture_round),
            }));
        }
        ended(hold, "captured", clock()).map(Err)
    }

    /// The answer for a hold whose shard no longer reserves it: its record
    /// says why, else it expired.
    fn answer_or_expired(&self, hold: &HoldRecord) -> Result<HoldOutcome, LedgerError> {
        self.answer(hold).unwrap_or_else(|| Err(expired(hold)))
    }
}

impl Ledger {
    /// Captures a hold: `amount` of it (None: all) moves to the recipient as
    /// one transfer with the hold's id, and the hold ends. Only the
    /// recipient's owner or an admin may.
    pub async fn capture_hold(
        &self,
        reference: &PaymentRef,
        amount: Option<i64>,
        caller: &Caller,
    ) -> Result<HoldOutcome, LedgerError> {
        let Seen { hold, fresh } = self
            .hold_for_recipient(reference, caller, "capture")
            .await?;
        let mut call = CaptureCall {
            capture_minor: amount.unwrap_or(hold.payment.amount_minor),
            hold,
            own_rounds: Vec::new(),
            slot: None,
            verified: false,
        };
        if let Some(done) = call.answer(&call.hold) {
            if fresh {
                return done;
            }
            // Remembered as ended: read it fresh before answering.
            call.hold = self.reread_hold(&call.hold).await?;
            if let Some(done) = call.answer(&call.hold) {
                return done;
            }
        }
        let held = &call.hold.payment;
        if call.capture_minor > held.amount_minor {
            return Err(LedgerError::CaptureExceedsHold {
                hold_id: held.transaction_id.clone(),
                held_minor: held.amount_minor,
                amount_minor: call.capture_minor,
                currency: held.currency.clone(),
            });
        }
        // Queue as a payment does.
        let _queued = self
            .queue_transfer(&held.sender_id, &held.recipient_id)
            .await;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            if let Next::Done(outcome) = self.capture_round(&mut call, &mut rounds).await? {
                return Ok(outcome);
            }
        }
        match self.reread_hold(&call.hold).await {
            Ok(read) => call
                .answer(&read)
                .unwrap_or_else(|| Err(rounds.exhausted())),
            Err(_) => Err(rounds.exhausted()),
        }
    }

    /// One round: plan the legs, write the transfer with the hold's record,
    /// and settle what DynamoDB answered.
    async fn capture_round(
        &self,
        call: &mut CaptureCall,
        rounds: &mut Rounds,
    ) -> Result<Next<HoldOutcome>, LedgerError> {
        let held = &call.hold.payment;
        let ids = [held.sender_id.as_str(), held.recipient_id.as_str()];
        let ([sender, recipient], record) = self.parties(ids, call.hold.key()).await?;
        if let RecordRead::Found(StoredRecord::Hold(read)) = record {
            call.hold = read;
            if let Some(done) = call.answer(&call.hold) {
                return done.map(Next::Done);
            }
        }
        let (Some(mut sender), Some(mut recipient)) = (sender, recipient) else {
            return Err(LedgerError::Internal("a party of a hold vanished".into()));
        };
        let legs = match self.capture_legs(call, &mut sender, &mut recipient).await? {
            Planned::Legs(legs) => legs,
            Planned::Ends(next) => return Ok(next),
        };
        let now = legs.now;
        let transfer = capture_transfer(&call.hold, call.capture_minor, legs, &recipient);
        let capture_round = uuid::Uuid::new_v4().to_string();
        call.own_rounds.push(capture_round.clone());
        let record_update = self.capture_update(
            &call.hold,
            &transfer,
            call.capture_minor,
            &capture_round,
            now,
        )?;
        let items = self.transfer_items(&transfer, vec![record_update])?;
        let written = self.transact(items).await?;
        let record_at = transfer.debits.len() + 1;
        match self
            .settle_hold(written, rounds, &call.hold, record_at)
            .await?
        {
            Settled::Committed => Ok(Next::Done(self.captured(call, &transfer, capture_round))),
            Settled::Unknown { cause, read } => {
                let answer = read.and_then(|read| call.answer(&read));
                let outcome = answer.unwrap_or(Err(LedgerError::OutcomeUnknown { cause }));
                outcome.map(Next::Done)
            }
            // Ended by another call, or expired: the record as DynamoDB
            // returned it says which.
            Settled::Taken(ended) => call.answer_or_expired(&ended).map(Next::Done),
            Settled::Again(reasons) => {
                if self.learn_from_transfer(&transfer, &reasons) {
                    let lost = transfer.credit.shard;
                    self.move_credit(&recipient.facts, lost, &mut call.slot)
                        .await?;
                }
                Ok(Next::Again)
            }
        }
    }

    /// Plans the legs: the hold's shard, which must still reserve it, and
    /// a shard of the recipient with room for the credit. Before refusing,
    /// what decides is read fresh once in the call.
    async fn capture_legs(
        &self,
        call: &mut CaptureCall,
        sender: &mut Party,
        recipient: &mut Party,
    ) -> Result<Planned, LedgerError> {
        let hold_shard = call.hold.shard;
        let credit_shard = self.credit_shard(&recipient.facts, &mut call.slot);
        self.fill(
            &mut [
                (&mut *sender, &[hold_shard]),
                (&mut *recipient, &[credit_shard]),
            ],
            None,
        )
        .await?;
        let now = clock();
        let room = shard_balance_max_minor(recipient.facts.shards) - call.capture_minor;
        let state = shard(sender, hold_shard)?;
        let credit = shard(recipient, credit_shard)?;
        let still_reserved = reserved(&state, &call.hold, now);
        if still_reserved && credit.balance_minor <= room {
            let legs = Legs {
                state,
                credit_shard,
                credit,
                now,
            };
            return Ok(Planned::Legs(legs));
        }
        if !call.verified {
            return self.verify_capture(call, sender, recipient).await;
        }
        if !still_reserved {
            // Swept by a debit after it expired, or ended by a call whose
            // record this one has read: the record says.
            let outcome = call.answer_or_expired(&call.hold)?;
            return Ok(Planned::Ends(Next::Done(outcome)));
        }
        // Every shard of the recipient was read: credit one with room.
        let credit_shard = shard_with_room(recipient, room)?;
        let credit = shard(recipient, credit_shard)?;
        Ok(Planned::Legs(Legs {
            state,
            credit_shard,
            credit,
            now,
        }))
    }

    /// Before refusing, reads the hold's record, its shard and every shard
    /// of the recipient fresh. The round ends: with the record's answer,
    /// or to go again.
    async fn verify_capture(
        &self,
        call: &mut CaptureCall,
        sender: &mut Party,
        recipient: &mut Party,
    ) -> Result<Planned, LedgerError> {
        call.verified = true;
        sender.forget_shards();
        recipient.forget_shards();
        let all = recipient.all_shards();
        let parties = &mut [(sender, &[call.hold.shard][..]), (&mut *recipient, &all)];
        if let RecordRead::Found(StoredRecord::Hold(read)) =
            self.fill_with_record(parties, &call.hold.key()).await?
        {
            call.hold = read;
        }
        // A reshard seen in that read: its new shards too.
        self.fill_raised(recipient).await?;
        match call.answer(&call.hold) {
            Some(done) => Ok(Planned::Ends(Next::Done(done?))),
            None => Ok(Planned::Ends(Next::Again)),
        }
    }

    /// A committed capture: its shards remembered, and the hold's record as
    /// the write left it.
    fn captured(
        &self,
        call: &mut CaptureCall,
        transfer: &Transfer,
        capture_round: String,
    ) -> HoldOutcome {
        self.observe_transfer(transfer);
        let hold = &mut call.hold;
        hold.state = HoldState::Captured;
        hold.captured_minor = call.capture_minor;
        hold.settled_at_ms = transfer.payment.created_at_ms;
        hold.capture_round = capture_round;
        self.known
            .remember_record(&StoredRecord::Hold(hold.clone()));
        HoldOutcome {
            hold: hold.view(clock()),
            capture: hold.capture(),
            replayed: false,
        }
    }

    /// The hold record's half of a capture: CAPTURED, with the amount, the
    /// time, this round's id and the transfer's legs, on condition that the
    /// hold is still open and unexpired at `now`.
    fn capture_update(
        &self,
        hold: &HoldRecord,
        transfer: &Transfer,
        capture_minor: i64,
        capture_round: &str,
        now: i64,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, LedgerError> {
        let legs = legs_attributes(&transfer.legs());
        let mut values: super::layout::Item = legs
            .iter()
            .map(|(k, v)| (format!(":{k}"), v.clone()))
            .collect();
        let set_legs: Vec<String> = legs.keys().map(|k| format!("{k} = :{k}")).collect();
        values.extend([
            (":captured".to_owned(), s(HoldState::Captured.as_str())),
            (":open".to_owned(), s(HoldState::Open.as_str())),
            (":amount".to_owned(), n(capture_minor)),
            (":at".to_owned(), n(transfer.payment.created_at_ms)),
            (":round".to_owned(), s(capture_round)),
            (":now".to_owned(), n(now)),
        ]);
        self.record_update(
            hold.key(),
            &format!(
                "SET #st = :captured, captured_amount = :amount, settled_at = :at, capture_round = :round, {}",
                set_legs.join(", ")
            ),
            "#st = :open AND expires_at > :now",
            &[("#st", "state")],
            values,
        )
    }
}

/// The capture as a transfer of `capture_minor` from the hold's shard to
/// `recipient`; the debit ends the hold in its shard's map too.
fn capture_transfer(
    hold: &HoldRecord,
    capture_minor: i64,
    legs: Legs,
    recipient: &Party,
) -> Transfer {
    let payment = Transaction {
        amount_minor: capture_minor,
        kind: TransactionKind::Capture,
        ..hold.payment.clone()
    };
    let mut transfer = Transfer::plan(
        payment,
        vec![(hold.shard, legs.state, capture_minor)],
        (legs.credit_shard, legs.credit),
        recipient.facts.shards,
        legs.now,
    );
    let leg = &mut transfer.debits[0];
    leg.after.holds.remove(&hold.idempotency_key);
    leg.after.holds_rev = leg.before.holds_rev + 1;
    transfer
}

/// The first of `party`'s shards (all read) whose balance leaves `room`
/// for a credit; refused with the balance limit when none does.
fn shard_with_room(party: &Party, room: i64) -> Result<u32, LedgerError> {
    (0..party.facts.shards)
        .find(|&k| {
            party
                .shards
                .get(k as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.balance_minor <= room)
        })
        .ok_or_else(|| LedgerError::BalanceLimit {
            account_id: party.facts.account_id.clone(),
        })
}

/// A shard's state that was just made known.
pub(super) fn shard(party: &Party, shard: u32) -> Result<super::layout::ShardState, LedgerError> {
    party
        .shards
        .get(shard as usize)
        .cloned()
        .flatten()
        .ok_or_else(|| {
            LedgerError::Internal(format!(
                "shard {shard} of {} was not read",
                party.facts.account_id
            ))
        })
}
