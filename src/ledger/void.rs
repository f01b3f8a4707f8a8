//! VoidHold: the hold leaves its shard's map and its record says VOIDED,
//! in one TransactWriteItems, without moving money (see [`super::holds`]).
//! On a warm instance that is the only request. An instance that has not
//! seen the hold's shard or its recipient reads only the record, then
//! writes without knowing them (see [`Ledger::void_unread`]): two requests.

use super::capture::shard;
use super::holds::{Seen, clock, ended, expired, reserved};
use super::layout::{AccountsItem, HoldRecord, Item, ShardState, StoredRecord, n, s};
use super::round::{RecordRead, Rounds, Written, reason};
use super::{Caller, HoldOutcome, HoldState, Ledger, LedgerError};
use crate::domain::PaymentRef;
use aws_sdk_dynamodb::types::TransactWriteItem;
use std::collections::HashMap;

/// How a void that wrote without reading ended.
enum Unread {
    /// Voided by this call.
    Voided(Box<HoldOutcome>),
    /// The write may or may not have committed.
    Unknown,
    /// Not tried, or a condition failed (the hold ended, was swept, or the
    /// caller does not own the recipient): the read path decides.
    ReadFirst,
}

impl Ledger {
    /// Voids an open hold. Only the recipient's owner or an admin may.
    pub async fn void_hold(
        &self,
        reference: &PaymentRef,
        caller: &Caller,
    ) -> Result<HoldOutcome, LedgerError> {
        let (record, fresh) = self.recall_record(reference).await?;
        let hold = Self::named_hold(record, reference)?;
        let mut voided_here = false;
        match self.void_unread(&hold, caller).await? {
            Unread::Voided(outcome) => return Ok(*outcome),
            Unread::Unknown => voided_here = true,
            Unread::ReadFirst => {}
        }
        let Seen { mut hold, fresh } = self
            .hold_access(Seen { hold, fresh }, reference, caller, "void")
            .await?;
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
        if answer(&hold, voided_here).is_some() {
            if !fresh {
                // Remembered as ended: read it fresh before answering.
                hold = self.reread_hold(&hold).await?;
            }
            if let Some(done) = answer(&hold, voided_here) {
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
            if let RecordRead::Found(StoredRecord::Hold(read)) = record {
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
                    if let RecordRead::Found(StoredRecord::Hold(read)) = self
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
                self.void_record_update(&hold, now)?,
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

    /// The record's side of a void: VOIDED, if it is still open at `now`.
    fn void_record_update(
        &self,
        hold: &HoldRecord,
        now: i64,
    ) -> Result<TransactWriteItem, LedgerError> {
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
        )
    }

    /// A void that does not read what this instance does not know. When it
    /// knows neither the shard that reserves the hold nor (for a caller
    /// who is not an admin) the recipient's owner, the one write carries
    /// what a read would have decided, as conditions:
    /// - the shard loses the hold's entry by name, conditioned on it being
    ///   there, and `holds_rev` goes up by one ([`Self::hold_release`]);
    /// - the record goes OPEN to VOIDED if it has not expired, as always;
    /// - the recipient's account item must name the caller as its owner
    ///   ([`Self::owner_check`]).
    ///
    /// Any failed condition hands over to the read path, which reads what
    /// it needs and answers (or refuses) as before; nothing was written.
    async fn void_unread(&self, hold: &HoldRecord, caller: &Caller) -> Result<Unread, LedgerError> {
        let now = clock();
        let (sender_id, recipient_id) = (&hold.payment.sender_id, &hold.payment.recipient_id);
        if hold.state_at(now) != HoldState::Open || sender_id == recipient_id {
            return Ok(Unread::ReadFirst);
        }
        let recipient = self.known.get(recipient_id);
        if !caller.admin
            && recipient
                .as_ref()
                .is_some_and(|r| r.facts.owner != caller.sub)
        {
            return Ok(Unread::ReadFirst);
        }
        let check_owner = !caller.admin && recipient.is_none();
        let shard_known = self.known.get(sender_id).is_some_and(|k| {
            k.shards
                .get(hold.shard as usize)
                .is_some_and(Option::is_some)
        });
        if shard_known && !check_owner {
            // The read path writes once too, and keeps the shard known.
            return Ok(Unread::ReadFirst);
        }
        let mut items = vec![
            self.hold_release(sender_id, hold.shard, &hold.idempotency_key)?,
            self.void_record_update(hold, now)?,
        ];
        if check_owner {
            items.push(self.owner_check(recipient_id, &caller.sub)?);
        }
        match self.transact(items).await? {
            Written::Committed => {
                // The map's new state is not known here: read it when next
                // needed.
                self.known.forget(sender_id, hold.shard);
                let mut voided = hold.clone();
                voided.state = HoldState::Voided;
                voided.settled_at_ms = now;
                self.known
                    .remember_record(&StoredRecord::Hold(voided.clone()));
                Ok(Unread::Voided(Box::new(HoldOutcome {
                    hold: voided.view(now),
                    capture: None,
                    replayed: false,
                })))
            }
            Written::Unknown(_) => Ok(Unread::Unknown),
            Written::Cancelled(reasons) => {
                Rounds::new().met(&reasons)?;
                for returned in reasons.iter().filter_map(|r| r.item()) {
                    self.learn_returned(returned);
                }
                Ok(Unread::ReadFirst)
            }
        }
    }

    /// Remembers what an item returned with a failed condition says: an
    /// account's facts and shard, or a record.
    fn learn_returned(&self, item: &Item) {
        if item.contains_key("account_id") {
            if let Ok(AccountsItem::Account(facts, _)) = AccountsItem::from_item(item) {
                // What never changes: kept, so the read path need not read it.
                self.known.remember(&facts);
            }
            self.observe_returned(item);
        } else if let Ok(record) = StoredRecord::from_item(item) {
            self.known.remember_record(&record);
        }
    }
}
