//! VoidHold: the hold leaves its shard's map and its record says VOIDED,
//! in one TransactWriteItems, without moving money (see [`super::holds`]).
//! On a warm instance that is the only request. An instance that has not
//! seen the hold's shard or its recipient reads only the record, then
//! writes without knowing them (see [`Ledger::void_unread`]): two requests.

use super::capture::shard;
use super::holds::{Seen, clock, ended, expired, reserved};
use super::layout::{AccountsItem, HoldRecord, Item, ShardState, StoredRecord, n, s};
use super::round::{Next, Party, RecordRead, Rounds, Settled, Written, reason};
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

/// One VoidHold call on the read path, across its rounds.
struct VoidCall {
    /// The hold as last read or written.
    hold: HoldRecord,
    /// Whether a write of this call may have voided it (no answer came):
    /// then a voided hold is this call's doing, not a replay.
    voided_here: bool,
    /// Whether the record and the shard were read fresh before a refusal.
    verified: bool,
}

impl VoidCall {
    /// The answer a hold's record gives: voided (by this call or before),
    /// or why it cannot be voided. None while it is open.
    fn answer(&self, hold: &HoldRecord) -> Option<Result<HoldOutcome, LedgerError>> {
        if hold.state == HoldState::Voided {
            return Some(Ok(HoldOutcome {
                hold: hold.view(clock()),
                capture: None,
                replayed: !self.voided_here,
            }));
        }
        ended(hold, "voided", clock()).map(Err)
    }

    /// The answer for a hold whose shard no longer reserves it: its record
    /// says why, else it expired.
    fn answer_or_expired(&self, hold: &HoldRecord) -> Result<HoldOutcome, LedgerError> {
        self.answer(hold).unwrap_or_else(|| Err(expired(hold)))
    }
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
        let Seen { hold, fresh } = self
            .hold_access(Seen { hold, fresh }, reference, caller, "void")
            .await?;
        let mut call = VoidCall {
            hold,
            voided_here,
            verified: false,
        };
        if call.answer(&call.hold).is_some() {
            if !fresh {
                // Remembered as ended: read it fresh before answering.
                call.hold = self.reread_hold(&call.hold).await?;
            }
            if let Some(done) = call.answer(&call.hold) {
                return done;
            }
        }
        let sender_id = &call.hold.payment.sender_id;
        let _queued = self.locks.lock_pair(sender_id, sender_id).await;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            if let Next::Done(outcome) = self.void_round(&mut call, &mut rounds).await? {
                return Ok(outcome);
            }
        }
        Err(rounds.exhausted())
    }

    /// One round: take the hold out of its shard's map, write that with the
    /// record, and settle what DynamoDB answered.
    async fn void_round(
        &self,
        call: &mut VoidCall,
        rounds: &mut Rounds,
    ) -> Result<Next<HoldOutcome>, LedgerError> {
        let sender_id = call.hold.payment.sender_id.clone();
        let ids = [sender_id.as_str(), &call.hold.payment.recipient_id];
        let ([sender, _], record) = self.parties(ids, call.hold.key()).await?;
        if let RecordRead::Found(StoredRecord::Hold(read)) = record {
            call.hold = read;
            if let Some(done) = call.answer(&call.hold) {
                return done.map(Next::Done);
            }
        }
        let Some(mut sender) = sender else {
            return Err(LedgerError::Internal(
                "the sender of a hold vanished".into(),
            ));
        };
        let hold_shard = call.hold.shard;
        self.fill(&mut [(&mut sender, &[hold_shard])], None).await?;
        let state = shard(&sender, hold_shard)?;
        let now = clock();
        if !reserved(&state, &call.hold, now) {
            return self.void_unreserved(call, &mut sender).await;
        }
        let mut holds = state.swept(now).unwrap_or_else(|| state.holds.clone());
        holds.remove(&call.hold.idempotency_key);
        let after = ShardState {
            holds,
            holds_rev: state.holds_rev + 1,
            ..state.clone()
        };
        let items = vec![
            self.holds_update(&sender_id, hold_shard, &state, &after, false)?,
            self.void_record_update(&call.hold, now)?,
        ];
        let written = self.transact(items).await?;
        match self.settle_hold(written, rounds, &call.hold, 1).await? {
            Settled::Committed => Ok(Next::Done(self.voided(call, &sender_id, &after, now))),
            Settled::Unknown { cause, read } => {
                // Voided now means voided by this call: nobody else could
                // have voided it between its read and this write without
                // failing this write's condition.
                call.voided_here = true;
                let answer = read.and_then(|read| call.answer(&read));
                let outcome = answer.unwrap_or(Err(LedgerError::OutcomeUnknown { cause }));
                outcome.map(Next::Done)
            }
            Settled::Taken(ended) => call.answer_or_expired(&ended).map(Next::Done),
            Settled::Again(reasons) => {
                self.forget_unreturned(reason(&reasons, 0), &sender_id, hold_shard);
                Ok(Next::Again)
            }
        }
    }

    /// A hold its shard no longer reserves at this round's now: before
    /// refusing, the record and the shard are read fresh once in the call
    /// (and the round goes again, unless the record answers); after that,
    /// the record says why, else it expired.
    async fn void_unreserved(
        &self,
        call: &mut VoidCall,
        sender: &mut Party,
    ) -> Result<Next<HoldOutcome>, LedgerError> {
        if call.verified {
            return call.answer_or_expired(&call.hold).map(Next::Done);
        }
        call.verified = true;
        sender.forget_shards();
        let parties = &mut [(sender, &[call.hold.shard][..])];
        if let RecordRead::Found(StoredRecord::Hold(read)) =
            self.fill_with_record(parties, &call.hold.key()).await?
        {
            call.hold = read;
        }
        match call.answer(&call.hold) {
            Some(done) => done.map(Next::Done),
            None => Ok(Next::Again),
        }
    }

    /// A committed void: the shard's map and the hold's record as the write
    /// left them, remembered.
    fn voided(
        &self,
        call: &mut VoidCall,
        sender_id: &str,
        after: &ShardState,
        now: i64,
    ) -> HoldOutcome {
        self.known.observe(sender_id, call.hold.shard, after);
        let hold = &mut call.hold;
        hold.state = HoldState::Voided;
        hold.settled_at_ms = now;
        self.known
            .remember_record(&StoredRecord::Hold(hold.clone()));
        HoldOutcome {
            hold: hold.view(now),
            capture: None,
            replayed: false,
        }
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
