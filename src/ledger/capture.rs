//! CaptureHold: the held amount, or less, moves from the hold's shard to
//! the recipient as one transfer with the hold's id, and the hold's record
//! says CAPTURED, in one TransactWriteItems (see [`super::holds`]). On a
//! warm instance (it knows the hold and both accounts) that is the only
//! request; a stale memory costs one failed write, which returns what
//! changed.

use super::holds::{Seen, clock, ended, expired, reserved};
use super::layout::{HoldRecord, StoredRecord, legs_attributes, n, s};
use super::round::{Party, RecordRead, Rounds, Transfer, Written, reason};
use super::{Caller, HoldOutcome, HoldState, Ledger, LedgerError, Transaction, TransactionKind};
use crate::domain::{PaymentRef, shard_balance_max_minor};

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
        let Seen { mut hold, fresh } = self
            .hold_for_recipient(reference, caller, "capture")
            .await?;
        let capture_minor = amount.unwrap_or(hold.payment.amount_minor);
        let mut own_rounds: Vec<String> = Vec::new();
        let answer = |hold: &HoldRecord, own: &[String]| {
            if hold.state == HoldState::Captured
                && (own.contains(&hold.capture_round) || hold.captured_minor == capture_minor)
            {
                return Some(Ok(HoldOutcome {
                    hold: hold.view(clock()),
                    capture: hold.capture(),
                    replayed: !own.contains(&hold.capture_round),
                }));
            }
            ended(hold, "captured", clock()).map(Err)
        };
        if let Some(done) = answer(&hold, &own_rounds) {
            if fresh {
                return done;
            }
            // Remembered as ended: read it fresh before answering.
            hold = self.reread_hold(&hold).await?;
            if let Some(done) = answer(&hold, &own_rounds) {
                return done;
            }
        }
        if capture_minor > hold.payment.amount_minor {
            return Err(LedgerError::CaptureExceedsHold {
                hold_id: hold.payment.transaction_id.clone(),
                held_minor: hold.payment.amount_minor,
                amount_minor: capture_minor,
                currency: hold.payment.currency.clone(),
            });
        }
        let sender_id = hold.payment.sender_id.clone();
        let recipient_id = hold.payment.recipient_id.clone();
        // Queue as a payment does.
        let _queued = self.queue_transfer(&sender_id, &recipient_id).await;
        let mut slot = None;
        let mut verified = false;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            let ([sender, recipient], record) = self
                .parties([&sender_id, &recipient_id], hold.key())
                .await?;
            if let RecordRead::Found(StoredRecord::Hold(read)) = record {
                hold = read;
                if let Some(done) = answer(&hold, &own_rounds) {
                    return done;
                }
            }
            let (Some(mut sender), Some(mut recipient)) = (sender, recipient) else {
                return Err(LedgerError::Internal("a party of a hold vanished".into()));
            };
            let mut credit_shard = self.credit_shard(&recipient.facts, &mut slot);
            self.fill(
                &mut [
                    (&mut sender, &[hold.shard]),
                    (&mut recipient, &[credit_shard]),
                ],
                None,
            )
            .await?;
            let now = clock();
            let room = shard_balance_max_minor(recipient.facts.shards) - capture_minor;
            let state = shard(&sender, hold.shard)?;
            let mut credit = shard(&recipient, credit_shard)?;
            if !reserved(&state, &hold, now) || credit.balance_minor > room {
                if !verified {
                    // Before refusing, read the hold's record, its shard
                    // and every shard of the recipient fresh.
                    verified = true;
                    sender.forget_shards();
                    recipient.forget_shards();
                    let all = recipient.all_shards();
                    if let RecordRead::Found(StoredRecord::Hold(read)) = self
                        .fill_with_record(
                            &mut [(&mut sender, &[hold.shard]), (&mut recipient, &all)],
                            &hold.key(),
                        )
                        .await?
                    {
                        hold = read;
                    }
                    // A reshard seen in that read: its new shards too.
                    self.fill_raised(&mut recipient).await?;
                    if let Some(done) = answer(&hold, &own_rounds) {
                        return done;
                    }
                    continue;
                }
                if !reserved(&state, &hold, now) {
                    // Swept by a debit after it expired, or ended by a call
                    // whose record this one has read: the record says.
                    return answer(&hold, &own_rounds).unwrap_or_else(|| Err(expired(&hold)));
                }
                // Every shard of the recipient was read: credit one with room.
                credit_shard = shard_with_room(&recipient, room)?;
                credit = shard(&recipient, credit_shard)?;
            }
            let payment = Transaction {
                amount_minor: capture_minor,
                kind: TransactionKind::Capture,
                ..hold.payment.clone()
            };
            let mut transfer = Transfer::plan(
                payment,
                vec![(hold.shard, state, capture_minor)],
                (credit_shard, credit),
                recipient.facts.shards,
                now,
            );
            // The debit ends the hold in its shard's map too.
            let leg = &mut transfer.debits[0];
            leg.after.holds.remove(&hold.idempotency_key);
            leg.after.holds_rev = leg.before.holds_rev + 1;
            let at = transfer.payment.created_at_ms;
            let capture_round = uuid::Uuid::new_v4().to_string();
            own_rounds.push(capture_round.clone());
            let record_update =
                self.capture_update(&hold, &transfer, capture_minor, &capture_round, now)?;
            let items = self.transfer_items(&transfer, vec![record_update])?;
            match self.transact(items).await? {
                Written::Committed => {
                    self.observe_transfer(&transfer);
                    hold.state = HoldState::Captured;
                    hold.captured_minor = capture_minor;
                    hold.settled_at_ms = at;
                    hold.capture_round = capture_round;
                    self.known
                        .remember_record(&StoredRecord::Hold(hold.clone()));
                    return Ok(HoldOutcome {
                        hold: hold.view(clock()),
                        capture: hold.capture(),
                        replayed: false,
                    });
                }
                Written::Unknown(cause) => {
                    return match self.reread_hold(&hold).await {
                        Ok(read) => answer(&read, &own_rounds)
                            .unwrap_or(Err(LedgerError::OutcomeUnknown { cause })),
                        Err(_) => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
                Written::Cancelled(reasons) => {
                    rounds.met(&reasons)?;
                    let record_reason = reason(&reasons, transfer.debits.len() + 1);
                    if record_reason.failed() {
                        // Ended by another call, or expired: the record as
                        // DynamoDB returned it says which.
                        hold = self.returned_hold(record_reason.item(), &hold).await?;
                        return answer(&hold, &own_rounds).unwrap_or_else(|| Err(expired(&hold)));
                    }
                    if self.learn_from_transfer(&transfer, &reasons) {
                        self.move_credit(&recipient.facts, transfer.credit.shard, &mut slot)
                            .await?;
                    }
                }
            }
        }
        match self.reread_hold(&hold).await {
            Ok(read) => answer(&read, &own_rounds).unwrap_or_else(|| Err(rounds.exhausted())),
            Err(_) => Err(rounds.exhausted()),
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
