//! VoidHold: the hold leaves its shard's map and its record says VOIDED,
//! in one TransactWriteItems, without moving money (see [`super::holds`]).
//! On a warm instance that is the only request.

use super::capture::shard;
use super::holds::{Seen, clock, ended, expired, reserved};
use super::layout::{HoldRecord, ShardState, StoredRecord, n, s};
use super::round::{Rounds, Written, reason};
use super::{HoldOutcome, HoldState, Ledger, LedgerError, Payer};
use crate::domain::PaymentRef;
use std::collections::HashMap;

impl Ledger {
    /// Voids an open hold. Only the recipient's owner or an admin may.
    pub async fn void_hold(
        &self,
        reference: &PaymentRef,
        caller: Payer<'_>,
    ) -> Result<HoldOutcome, LedgerError> {
        let Seen { mut hold, fresh } = self.hold_for_recipient(reference, caller, "void").await?;
        let mut voided_here = false;
        let answer = |hold: &HoldRecord, voided_here: bool| {
            if hold.state == HoldState::Voided {
                return Some(Ok(HoldOutcome {
                    hold: hold.view(clock()),
                    capture: None,
                    replayed: !voided_here,
                }));
            }
            ended(hold, "voided", clock()).map(Err)
        };
        if answer(&hold, false).is_some() {
            if !fresh {
                // Remembered as ended: read it fresh before answering.
                hold = self.reread_hold(&hold).await?;
            }
            if let Some(done) = answer(&hold, false) {
                return done;
            }
        }
        let sender_id = hold.payment.sender_id.clone();
        let _queued = self.locks.lock_pair(&sender_id, &sender_id).await;
        let mut verified = false;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            let ([sender, _], record) = self
                .parties([&sender_id, &hold.payment.recipient_id], hold.key())
                .await?;
            if let Some(Some(StoredRecord::Hold(read))) = record {
                hold = read;
                if let Some(done) = answer(&hold, voided_here) {
                    return done;
                }
            }
            let Some(mut sender) = sender else {
                return Err(LedgerError::Internal(
                    "the sender of a hold vanished".into(),
                ));
            };
            self.fill(&mut [(&mut sender, &[hold.shard])], None).await?;
            let state = shard(&sender, hold.shard)?;
            let now = clock();
            if !reserved(&state, &hold, now) {
                if !verified {
                    // Before refusing, read the record and the shard fresh.
                    verified = true;
                    sender.forget_shards();
                    if let Some(Some(StoredRecord::Hold(read))) = self
                        .fill_with_record(&mut [(&mut sender, &[hold.shard])], &hold.key())
                        .await?
                    {
                        hold = read;
                    }
                    if let Some(done) = answer(&hold, voided_here) {
                        return done;
                    }
                    continue;
                }
                return answer(&hold, voided_here).unwrap_or_else(|| Err(expired(&hold)));
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
                    hold.key(),
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
            match self.transact(items).await? {
                Written::Committed => {
                    self.known.observe(&sender_id, hold.shard, &after);
                    hold.state = HoldState::Voided;
                    hold.settled_at_ms = now;
                    self.known
                        .remember_record(&StoredRecord::Hold(hold.clone()));
                    return Ok(HoldOutcome {
                        hold: hold.view(now),
                        capture: None,
                        replayed: false,
                    });
                }
                Written::Unknown(cause) => {
                    // Voided now means voided by this call: nobody else
                    // could have voided it between its read and this write
                    // without failing this write's condition.
                    voided_here = true;
                    return match self.reread_hold(&hold).await {
                        Ok(read) => answer(&read, voided_here)
                            .unwrap_or(Err(LedgerError::OutcomeUnknown { cause })),
                        Err(_) => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
                Written::Cancelled(reasons) => {
                    rounds.met(&reasons)?;
                    let record_reason = reason(&reasons, 1);
                    if record_reason.failed() {
                        hold = self.returned_hold(record_reason.item(), &hold).await?;
                        return answer(&hold, voided_here).unwrap_or_else(|| Err(expired(&hold)));
                    }
                    let shard_reason = reason(&reasons, 0);
                    if shard_reason.failed() && shard_reason.item().is_none() {
                        self.known.forget(&sender_id, hold.shard);
                    }
                }
            }
        }
        Err(rounds.exhausted())
    }
}
