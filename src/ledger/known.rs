//! What one ledger instance (a server, a Lambda container) remembers about
//! accounts, so that a warm instance pays with one DynamoDB request.
//!
//! It may remember only what cannot silently go wrong: accounts never
//! disappear and their currency and owner never change; a shard's version
//! and balance come from this instance's own commits or from the items
//! DynamoDB returns when a condition fails. A stale version can never
//! commit anything: every write is conditioned on it, so the worst a stale
//! memory costs is one more round. Correctness never rests here, which is
//! why Lambda containers that share nothing stay correct.
//!
//! The shard count is different: a reshard raises it, and never lowers it
//! (see `reshard`). So a remembered count is a lower bound, raised whenever
//! an item this instance reads or gets back shows a larger one (every shard
//! item carries the count once the account was resharded). A writer that
//! still believes the old count commits correctly on the old shards (a
//! credit's room is conditioned on the count the writer assumed, see
//! `round`), and every read that must see all shards (a balance, a history
//! page, a refusal) re-reads when an item shows more shards than it read.

use super::layout::{AccountFacts, ShardState, StoredRecord};
use crate::domain::PaymentRef;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most accounts one instance remembers; past it, it forgets them all and
/// starts over (reads are the only cost). At a few hundred bytes each this
/// bounds the memory to a few megabytes.
const KNOWN_ACCOUNTS_MAX: usize = 10_000;

/// When an instance promotes a hot ordinary account to balance shards: once
/// it lost `lost_races` credit races on it within `window` (see `reshard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    /// The shard count the account is raised to (2 to 64).
    pub shards: u32,
    pub lost_races: u32,
    pub window: std::time::Duration,
}

impl Default for Promotion {
    /// 64 shards after 4 lost races within 5 s: two writers that meet now
    /// and then never get there; a merchant paid by many containers at
    /// once does within its first payments.
    fn default() -> Self {
        Self {
            shards: crate::domain::BALANCE_SHARDS_MAX,
            lost_races: 4,
            window: std::time::Duration::from_secs(5),
        }
    }
}

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

/// Lost credit races on an ordinary account, towards its promotion.
#[derive(Debug)]
struct Races {
    since: std::time::Instant,
    lost: u32,
    /// This instance asked for the promotion already (at most once).
    promoted: bool,
}

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<String, KnownAccount>,
    slots: HashMap<String, CreditSlots>,
    races: HashMap<String, Races>,
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
            inner.races.clear();
            inner.slots.retain(|_, slots| slots.busy != 0);
        }
        let known = inner
            .accounts
            .entry(facts.account_id.clone())
            .or_insert_with(|| KnownAccount {
                facts: facts.clone(),
                shards: vec![None; facts.shards as usize],
            });
        if known.facts.shards < facts.shards {
            raise(&mut inner, &facts.account_id, facts.shards);
        }
    }

    /// Records a shard's state as DynamoDB last showed it (a commit of this
    /// instance, a read, or the item a failed condition returned). The
    /// newest word wins even when its version is lower: a store that lost
    /// an acknowledged write (DynamoDB Local killed at the wrong moment)
    /// must not leave this instance stuck on a version that no longer
    /// exists.
    pub(super) fn observe(&self, account_id: &str, shard: u32, state: &ShardState) {
        let mut inner = self.lock();
        if inner
            .accounts
            .get(account_id)
            .is_some_and(|a| a.facts.shards < state.told_shards)
        {
            raise(&mut inner, account_id, state.told_shards);
        }
        if let Some(slot) = inner
            .accounts
            .get_mut(account_id)
            .and_then(|a| a.shards.get_mut(shard as usize))
        {
            *slot = Some(state.clone());
        }
    }

    /// The account's shard count as this instance knows it (a lower bound).
    pub(super) fn shard_count(&self, account_id: &str) -> Option<u32> {
        self.lock().accounts.get(account_id).map(|a| a.facts.shards)
    }

    /// Counts a lost credit race on an ordinary account. True exactly once
    /// per account and instance (unless the promotion failed): when the
    /// races lost within the promotion's window reach its threshold.
    pub(super) fn lost_race(&self, account_id: &str, promotion: &Promotion) -> bool {
        let mut inner = self.lock();
        if inner.races.len() >= KNOWN_ACCOUNTS_MAX && !inner.races.contains_key(account_id) {
            inner.races.retain(|_, r| r.promoted);
            if inner.races.len() >= KNOWN_ACCOUNTS_MAX {
                inner.races.clear();
            }
        }
        let now = std::time::Instant::now();
        let races = inner.races.entry(account_id.to_owned()).or_insert(Races {
            since: now,
            lost: 0,
            promoted: false,
        });
        if races.promoted {
            return false;
        }
        if now.duration_since(races.since) > promotion.window {
            races.since = now;
            races.lost = 0;
        }
        races.lost += 1;
        races.promoted = races.lost >= promotion.lost_races.max(1);
        races.promoted
    }

    /// After a promotion that failed: the races count afresh towards
    /// another try.
    pub(super) fn promotion_failed(&self, account_id: &str) {
        if let Some(races) = self.lock().races.get_mut(account_id) {
            races.promoted = false;
            races.lost = 0;
            races.since = std::time::Instant::now();
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

/// Raises a remembered account's shard count (a reshard happened): the new
/// shards are not known yet, and the credit slot starts afresh at random
/// over all shards, so that instances spread onto the new ones.
fn raise(inner: &mut Inner, account_id: &str, shards: u32) {
    let Some(known) = inner.accounts.get_mut(account_id) else {
        return;
    };
    let shards = shards.min(crate::domain::BALANCE_SHARDS_MAX);
    if known.facts.shards >= shards {
        return;
    }
    known.facts.shards = shards;
    known.shards.resize(shards as usize, None);
    if let Some(slots) = inner.slots.get_mut(account_id) {
        slots.start = rand::random_range(0..shards);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(shards: u32) -> AccountFacts {
        AccountFacts {
            account_id: "shop".into(),
            display_name: String::new(),
            currency: "EUR".into(),
            created_at_ms: 0,
            owner: "o".into(),
            opening_balance_minor: 0,
            shards,
        }
    }

    #[test]
    fn a_larger_shard_count_on_any_item_raises_what_is_remembered_never_lowers() {
        let known = Known::new();
        known.remember(&facts(1));
        let told = |n| ShardState {
            version: 3,
            told_shards: n,
            ..ShardState::default()
        };
        known.observe("shop", 0, &told(8));
        let account = known.get("shop").unwrap();
        assert_eq!((account.facts.shards, account.shards.len()), (8, 8));
        assert_eq!(account.shards[0].as_ref().map(|s| s.version), Some(3));
        assert!(account.shards[1..].iter().all(Option::is_none));
        // An older item, or the account's facts as first read, never lower it.
        known.observe("shop", 1, &told(0));
        known.remember(&facts(1));
        assert_eq!(known.shard_count("shop"), Some(8));
        known.remember(&facts(16));
        assert_eq!(known.shard_count("shop"), Some(16));
    }

    #[test]
    fn lost_races_promote_once_within_the_window_and_again_after_a_failure() {
        let known = Known::new();
        let promotion = Promotion {
            shards: 8,
            lost_races: 3,
            window: std::time::Duration::from_secs(3600),
        };
        let lost: Vec<bool> = (0..6).map(|_| known.lost_race("a", &promotion)).collect();
        assert_eq!(lost, [false, false, true, false, false, false]);
        known.promotion_failed("a");
        let lost: Vec<bool> = (0..3).map(|_| known.lost_race("a", &promotion)).collect();
        assert_eq!(lost, [false, false, true]);
        // Another account counts on its own; an empty window never fills.
        let none = Promotion {
            window: std::time::Duration::ZERO,
            ..promotion
        };
        assert!(!known.lost_race("b", &none));
        assert!(!known.lost_race("b", &none));
    }
}
