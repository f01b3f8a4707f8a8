//! What one ledger instance (a server, a Lambda container) remembers about
//! accounts, so that a warm instance pays with one DynamoDB request.
//!
//! It may remember only what cannot silently go wrong: accounts never
//! disappear and their facts (currency, owner, shard count) never change;
//! a shard's version and balance come from this instance's own commits or
//! from the items DynamoDB returns when a condition fails. A stale version
//! can never commit anything: every write is conditioned on it, so the
//! worst a stale memory costs is one more round. Correctness never rests
//! here, which is why Lambda containers that share nothing stay correct.

use super::layout::{AccountFacts, ShardState, StoredRecord};
use crate::domain::PaymentRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most accounts one instance remembers; past it, it forgets them all and
/// starts over (reads are the only cost). At a few hundred bytes each this
/// bounds the memory to a few megabytes.
const KNOWN_ACCOUNTS_MAX: usize = 10_000;

/// Most payment, hold and refund records one instance remembers (the ones
/// it wrote or read last); past it, it forgets them all. A remembered record
/// is only a plan's starting point: every write that depends on it is
/// conditioned on the record as remembered, and a refusal is only given
/// after the record was read fresh.
const KNOWN_RECORDS_MAX: usize = 10_000;

#[derive(Debug, Clone)]
pub(super) struct KnownAccount {
    pub facts: AccountFacts,
    /// The newest state this instance saw of each shard, if any.
    pub shards: Vec<Option<ShardState>>,
}

/// Which shard this instance credits for a sharded account: it sticks to
/// one shard while that works (so that containers, each serving one
/// request at a time, settle on different shards) and moves to a random
/// other one when it lost a race there. Its own concurrent payments take
/// the next free shards after it.
#[derive(Debug, Default)]
struct CreditSlots {
    start: u32,
    /// Shards this instance is crediting right now (bit per shard).
    busy: u64,
}

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<String, KnownAccount>,
    slots: HashMap<String, CreditSlots>,
    /// Records by (paying account, idempotency key).
    records: HashMap<(String, String), StoredRecord>,
    /// Record keys by transaction id.
    record_ids: HashMap<String, (String, String)>,
}

#[derive(Debug, Default)]
pub(super) struct Known {
    inner: Mutex<Inner>,
}

impl Known {
    pub(super) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave a half-written
        // account behind (every update is one assignment), so a poisoned
        // lock is safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, account_id: &str) -> Option<KnownAccount> {
        self.lock().accounts.get(account_id).cloned()
    }

    /// Remembers an account's facts (keeping any shard states known).
    pub(super) fn remember(&self, facts: &AccountFacts) {
        let mut inner = self.lock();
        if inner.accounts.len() >= KNOWN_ACCOUNTS_MAX
            && !inner.accounts.contains_key(&facts.account_id)
        {
            inner.accounts.clear();
            inner.slots.retain(|_, slots| slots.busy != 0);
        }
        inner
            .accounts
            .entry(facts.account_id.clone())
            .or_insert_with(|| KnownAccount {
                facts: facts.clone(),
                shards: vec![None; facts.shards as usize],
            });
    }

    /// Records a shard's state as DynamoDB last showed it (a commit of this
    /// instance, a read, or the item a failed condition returned). The
    /// newest word wins even when its version is lower: a store that lost
    /// an acknowledged write (DynamoDB Local killed at the wrong moment)
    /// must not leave this instance stuck on a version that no longer
    /// exists.
    pub(super) fn observe(&self, account_id: &str, shard: u32, state: &ShardState) {
        let mut inner = self.lock();
        if let Some(slot) = inner
            .accounts
            .get_mut(account_id)
            .and_then(|a| a.shards.get_mut(shard as usize))
        {
            *slot = Some(state.clone());
        }
    }

    /// Remembers a record as it was written or read. A fence may be
    /// remembered like any record: it is never removed, so it never goes
    /// stale.
    pub(super) fn remember_record(&self, record: &StoredRecord) {
        let mut inner = self.lock();
        if inner.records.len() >= KNOWN_RECORDS_MAX {
            inner.records.clear();
            inner.record_ids.clear();
        }
        let key = (
            record.parties().0.to_owned(),
            record.idempotency_key().to_owned(),
        );
        // A fence has no transaction id; it is found by its key only.
        if let Some(id) = record.transaction_id() {
            inner.record_ids.insert(id.to_owned(), key.clone());
        }
        inner.records.insert(key, record.clone());
    }

    /// The record a reference names, as last written or read here.
    pub(super) fn record(&self, reference: &PaymentRef) -> Option<StoredRecord> {
        let inner = self.lock();
        let key = match reference {
            PaymentRef::Key {
                sender_id,
                idempotency_key,
            } => (
                sender_id.as_str().to_owned(),
                idempotency_key.as_str().to_owned(),
            ),
            PaymentRef::Id(id) => inner.record_ids.get(id)?.clone(),
        };
        inner.records.get(&key).cloned()
    }

    /// Forgets a shard's state (after an answer that left it unknown).
    pub(super) fn forget(&self, account_id: &str, shard: u32) {
        if let Some(slot) = self
            .lock()
            .accounts
            .get_mut(account_id)
            .and_then(|a| a.shards.get_mut(shard as usize))
        {
            *slot = None;
        }
    }

    /// Takes the shard this instance should credit next for a sharded
    /// account, marking it busy until the returned slot is dropped.
    pub(super) fn take_credit_slot(self: &Arc<Self>, account_id: &str, shards: u32) -> CreditSlot {
        let mut inner = self.lock();
        let slots = inner
            .slots
            .entry(account_id.to_owned())
            .or_insert_with(|| CreditSlots {
                start: rand::random_range(0..shards),
                busy: 0,
            });
        let shard = (0..shards)
            .map(|offset| (slots.start + offset) % shards)
            .find(|shard| slots.busy & (1 << shard) == 0)
            .unwrap_or(slots.start % shards);
        slots.busy |= 1 << shard;
        CreditSlot {
            known: self.clone(),
            account_id: account_id.to_owned(),
            shard,
        }
    }

    /// After a lost race on `shard`: start from another shard, the one
    /// written least recently as far as this instance knows (an idle shard
    /// that no other writer sticks to), ties broken at random.
    pub(super) fn move_away(&self, account_id: &str, shard: u32, shards: u32) {
        if shards < 2 {
            return;
        }
        let mut inner = self.lock();
        let last_written: Vec<i64> = match inner.accounts.get(account_id) {
            Some(account) => account
                .shards
                .iter()
                .map(|s| s.as_ref().map_or(i64::MIN, |s| s.updated_at_ms))
                .collect(),
            None => vec![i64::MIN; shards as usize],
        };
        let quietest = (0..shards)
            .filter(|&k| k != shard)
            .map(|k| {
                (
                    last_written.get(k as usize).copied().unwrap_or(i64::MIN),
                    rand::random::<u32>(),
                    k,
                )
            })
            .min()
            .map_or(shard, |(_, _, k)| k);
        if let Some(slots) = inner.slots.get_mut(account_id)
            && slots.start == shard
        {
            slots.start = quietest;
        }
    }
}

/// A shard this instance is crediting; released when dropped.
#[derive(Debug)]
pub(super) struct CreditSlot {
    known: Arc<Known>,
    account_id: String,
    pub shard: u32,
}

impl Drop for CreditSlot {
    fn drop(&mut self) {
        if let Some(slots) = self.known.lock().slots.get_mut(&self.account_id) {
            slots.busy &= !(1 << self.shard);
        }
    }
}
