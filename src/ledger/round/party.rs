//! The parties of a call as this instance knows them, and reading what it
//! does not: [`Party`], the fills, the start of a round that pays from its
//! sender, and where a transfer credits its recipient.

use super::records::RecordRead;
use crate::domain::{BALANCE_SHARDS_MAX, Currency, PaymentOrder};
use crate::ledger::known::CreditSlot;
use crate::ledger::layout::{
    AccountFacts, AccountsItem, Item, ShardState, StoredRecord, shard_key,
};
use crate::ledger::{Caller, Ledger, LedgerError};

impl Ledger {
    /// An account as this instance knows it, shards it never saw as None.
    pub(in crate::ledger) fn known_party(&self, account_id: &str) -> Option<Party> {
        self.known.get(account_id).map(|k| Party {
            facts: k.facts,
            shards: k.shards,
        })
    }

    /// Reads the given shards of the parties that are not known yet, in one
    /// BatchGetItem (none when all are known), with the ledger item `record`
    /// in the same request when given (then returned as read).
    pub(in crate::ledger) async fn fill(
        &self,
        parties: &mut [(&mut Party, &[u32])],
        record: Option<Item>,
    ) -> Result<RecordRead<Item>, LedgerError> {
        let mut keys = Vec::new();
        for (party, shards) in parties.iter() {
            for &shard in *shards {
                if party
                    .shards
                    .get(shard as usize)
                    .is_some_and(Option::is_none)
                {
                    keys.push(shard_key(&party.facts.account_id, shard));
                }
            }
        }
        if keys.is_empty() && record.is_none() {
            return Ok(RecordRead::NotRead);
        }
        let wants_record = record.is_some();
        let (items, stored) = self.read_items(&keys, record).await?;
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
            for (party, _) in parties.iter_mut() {
                if party.facts.account_id == account_id {
                    party.raise(state.told_shards);
                    if let Some(slot) = party.shards.get_mut(shard as usize) {
                        *slot = Some(state.clone());
                    }
                }
            }
        }
        Ok(if wants_record {
            RecordRead::of(stored)
        } else {
            RecordRead::NotRead
        })
    }

    /// Reads the shards of `party` that a reshard seen in this round added
    /// (unknown so far), so that a refusal weighs every shard. Each read
    /// can only show a larger count, at most [`BALANCE_SHARDS_MAX`]; the
    /// bound is a guard.
    pub(in crate::ledger) async fn fill_raised(
        &self,
        party: &mut Party,
    ) -> Result<(), LedgerError> {
        for _ in 0..3 {
            if party.known_count() == party.shards.len() {
                break;
            }
            let all = party.all_shards();
            self.fill(&mut [(party, &all)], None).await?;
        }
        Ok(())
    }

    /// Like [`Self::fill`], with the record under `key` read in the same
    /// request and returned decoded (never [`RecordRead::NotRead`]).
    pub(in crate::ledger) async fn fill_with_record(
        &self,
        parties: &mut [(&mut Party, &[u32])],
        key: &Item,
    ) -> Result<RecordRead<StoredRecord>, LedgerError> {
        let stored = self.fill(parties, Some(key.clone())).await?.found();
        let record = stored.as_ref().map(StoredRecord::from_item).transpose()?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok(RecordRead::of(record))
    }

    /// Two accounts as this instance knows them; the unknown ones are read
    /// with one strongly consistent BatchGetItem, together with the record
    /// under `key` (then also returned as read). None for an account that
    /// does not exist.
    pub(in crate::ledger) async fn parties(
        &self,
        ids: [&str; 2],
        key: Item,
    ) -> Result<([Option<Party>; 2], RecordRead<StoredRecord>), LedgerError> {
        let mut parties = ids.map(|id| self.known_party(id));
        let unknown: Vec<String> = ids
            .iter()
            .zip(&parties)
            .filter(|(_, p)| p.is_none())
            .map(|(id, _)| (*id).to_owned())
            .collect();
        if unknown.is_empty() {
            return Ok((parties, RecordRead::NotRead));
        }
        let (items, record) = self.read_items(&unknown, Some(key)).await?;
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
        let record = record.as_ref().map(StoredRecord::from_item).transpose()?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok((parties, RecordRead::of(record)))
    }

    /// Queues behind this instance's other calls on both accounts of a
    /// transfer, except on a sharded recipient, whose credits spread over
    /// shards: then on the sender only.
    pub(in crate::ledger) async fn queue_transfer(
        &self,
        sender_id: &str,
        recipient_id: &str,
    ) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let recipient_sharded = self
            .known
            .get(recipient_id)
            .is_some_and(|a| a.facts.shards > 1);
        let queue_on = if recipient_sharded {
            sender_id
        } else {
            recipient_id
        };
        self.locks.lock_pair(sender_id, queue_on).await
    }

    /// The shard of `recipient` to credit: shard 0 of an ordinary account;
    /// for a sharded one, the shard this instance sticks to (taken into
    /// `slot` for the call's life).
    pub(in crate::ledger) fn credit_shard(
        &self,
        recipient: &AccountFacts,
        slot: &mut Option<CreditSlot>,
    ) -> u32 {
        if recipient.shards > 1 {
            slot.get_or_insert_with(|| {
                self.known
                    .take_credit_slot(&recipient.account_id, recipient.shards)
            })
            .shard
        } else {
            0
        }
    }

    /// After a round lost its credit shard to another writer: move to the
    /// quietest shard (one BatchGetItem of all shards shows which).
    pub(in crate::ledger) async fn move_credit(
        &self,
        recipient: &AccountFacts,
        lost: u32,
        slot: &mut Option<CreditSlot>,
    ) -> Result<(), LedgerError> {
        if recipient.shards > 1 {
            let all: Vec<u32> = (0..recipient.shards).collect();
            self.read_shards(&recipient.account_id, &all).await?;
            self.known
                .move_away(&recipient.account_id, lost, recipient.shards);
            *slot = None;
        } else {
            self.promote_if_hot(&recipient.account_id).await;
        }
        Ok(())
    }

    /// The start of a round of a call that pays from its sender (a payment
    /// or a hold) under `key`: both parties as known (the unknown ones read
    /// with the record, see [`Self::parties`]), the sender's owner checked
    /// first (an unknown sender is "not yours", so that nobody can probe
    /// which account ids exist), then a stored record, an unknown recipient
    /// or a currency that differs, which end the call.
    pub(in crate::ledger) async fn start_round(
        &self,
        order: &PaymentOrder,
        caller: &Caller,
        key: &Item,
    ) -> Result<Start, LedgerError> {
        let (sender_id, recipient_id) = (order.sender_id.as_str(), order.recipient_id.as_str());
        let ([sender, recipient], record) =
            self.parties([sender_id, recipient_id], key.clone()).await?;
        let sender = own_sender(sender, sender_id, caller)?;
        if let RecordRead::Found(stored) = record {
            return Ok(Start::Stored(stored));
        }
        let recipient = match recipient {
            Some(recipient) => recipient,
            None => {
                let err = LedgerError::AccountNotFound {
                    role: "recipient",
                    account_id: recipient_id.to_owned(),
                };
                return Ok(Start::Stored(self.stored_or(err, key, record).await?));
            }
        };
        if let Err(err) = check_currencies(&order.currency, &sender.facts, &recipient.facts) {
            return Ok(Start::Stored(self.stored_or(err, key, record).await?));
        }
        Ok(Start::Parties {
            sender: Box::new(sender),
            recipient: Box::new(recipient),
            record,
        })
    }
}

/// How a round of a payment or hold begins (see [`Ledger::start_round`]).
pub(in crate::ledger) enum Start {
    /// A record under the key (the call's own, a replay or another call),
    /// which answers the call.
    Stored(StoredRecord),
    /// Both parties, and the record under the key as read in this round.
    Parties {
        sender: Box<Party>,
        recipient: Box<Party>,
        record: RecordRead<StoredRecord>,
    },
}

/// One side of a transfer as this instance knows it.
#[derive(Debug, Clone)]
pub(in crate::ledger) struct Party {
    pub facts: AccountFacts,
    pub shards: Vec<Option<ShardState>>,
}

impl Party {
    /// Takes in a larger shard count (a reshard, seen on an item read in
    /// this round): the new shards are unknown until read.
    pub(in crate::ledger) fn raise(&mut self, shards: u32) {
        let shards = shards.min(BALANCE_SHARDS_MAX);
        if shards > self.facts.shards {
            self.facts.shards = shards;
            self.shards.resize(shards as usize, None);
        }
    }

    /// How many of its shards are known.
    pub(in crate::ledger) fn known_count(&self) -> usize {
        self.shards.iter().filter(|s| s.is_some()).count()
    }

    /// Forgets every shard state (to read them fresh).
    pub(in crate::ledger) fn forget_shards(&mut self) {
        self.shards.iter_mut().for_each(|s| *s = None);
    }

    /// Every shard number.
    pub(in crate::ledger) fn all_shards(&self) -> Vec<u32> {
        (0..self.facts.shards).collect()
    }
}

/// The sender of a payment or hold, checked against the caller: only its
/// owner may pay from it. An unknown sender is "not yours" (so that nobody
/// can probe which account ids exist), except to an admin.
pub(in crate::ledger) fn own_sender(
    sender: Option<Party>,
    sender_id: &str,
    caller: &Caller,
) -> Result<Party, LedgerError> {
    match sender {
        Some(party) if party.facts.owner == caller.sub => Ok(party),
        None if caller.admin => Err(LedgerError::AccountNotFound {
            role: "sender",
            account_id: sender_id.to_owned(),
        }),
        _ => Err(LedgerError::NotOwner {
            account_id: sender_id.to_owned(),
        }),
    }
}

/// Both parties hold the call's currency.
pub(in crate::ledger) fn check_currencies(
    currency: &Currency,
    sender: &AccountFacts,
    recipient: &AccountFacts,
) -> Result<(), LedgerError> {
    for (role, account) in [("sender", sender), ("recipient", recipient)] {
        if account.currency != currency.as_str() {
            return Err(LedgerError::CurrencyMismatch {
                role,
                account_id: account.account_id.clone(),
                account_currency: account.currency.clone(),
                currency: currency.as_str().to_owned(),
            });
        }
    }
    Ok(())
}
