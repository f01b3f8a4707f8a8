//! Watching an account's history: its new entries, oldest first, merged
//! over its shards, each sent exactly once (see docs/watch.md).
//!
//! # How a watch reads
//!
//! A watch keeps, for every shard, the sequence of the next entry to send
//! (its [`WatchCursor`]; the resume token carries it). One poll:
//! 1. reads a consistent snapshot of the account's shards (one
//!    strongly consistent GetItem for an ordinary account, one BatchGetItem
//!    of its shard items for a sharded one: `shards`), whose versions are
//!    the sequences of each shard's newest entry;
//! 2. for each shard whose version passed its cursor, reads the entries
//!    from the cursor to that version (at most [`WATCH_READ_PER_SHARD`])
//!    with a strongly consistent Query of the shard's own partition;
//! 3. merges them in the order of the history (`history::merge_key`),
//!    forwards, the parts of one payment drawn from several shards as one
//!    entry, as GetTransactionHistory shows them.
//!
//! # Why each entry is sent exactly once
//!
//! Every entry lives at one (shard, sequence), and a shard's entries up to
//! its version are all committed (a version moves only in the transaction
//! that writes its entry). A cursor moves past an entry only when the entry
//! is sent, so no entry is skipped and none is sent twice, whatever the
//! order in which shards commit. The snapshot is consistent, so a payment
//! drawn from several shards is in all of their versions or in none: its
//! parts are read together and sent as one entry. A shard added by a
//! reshard while the account is watched shows in the next snapshot; its
//! cursor starts at its first entry (a token from before the reshard lacks
//! it, and all its entries are newer than the token).
//!
//! When a shard has more new entries than one poll reads, only the entries
//! up to the oldest last-read entry of such shards are sent (later ones of
//! other shards might come after entries not read yet); the poll says
//! `more` and the next one reads on at once.
//!
//! Order across shards is the history's order within one poll. An entry
//! that commits in one shard with an older time than an entry already sent
//! from another (writers' clocks differ) comes after it: exactly once, but
//! not in time order. Within a shard, order is always by sequence.

use super::layout::{ShardState, StoredEntry};
use super::{Account, Entry, Ledger, LedgerError};
use crate::domain::WATCH_RESUME_BEHIND_MAX;
use std::collections::VecDeque;

/// Most entries of one shard one poll reads (one Query page, the history's
/// chunk).
pub const WATCH_READ_PER_SHARD: u32 = super::HISTORY_CHUNK_MAX;

/// Where a watch of one account stands.
#[derive(Debug, Clone)]
pub struct WatchCursor {
    account_id: String,
    /// For each shard, the sequence of the next entry to send.
    next: Vec<u64>,
    /// For each shard, its balance after entry `next - 1`, when known
    /// (needed for the balance after a sharded account's entry).
    base: Vec<Option<i64>>,
}

/// What one poll found.
#[derive(Debug)]
pub struct Polled {
    /// The new entries, oldest first, each with the cursors right after it.
    pub entries: Vec<(Entry, Vec<u64>)>,
    /// More entries were committed than this poll read: poll again now.
    pub more: bool,
}

impl WatchCursor {
    /// A watch of `account` (a consistent snapshot read at the call's
    /// start): from its newest entries when `resume` is None, else from the
    /// cursors of a resume token.
    ///
    /// Ok(None) when the cursors cannot be of this account: more of them
    /// than it has shards (a count never goes down) or past a shard's
    /// newest entry. [`LedgerError::ResumeTooOld`] when more than
    /// [`WATCH_RESUME_BEHIND_MAX`] entries were committed after them.
    pub fn new(account: &Account, resume: Option<&[u64]>) -> Result<Option<Self>, LedgerError> {
        let newest: Vec<u64> = account.shard_versions.iter().map(|v| v + 1).collect();
        let next: Vec<u64> = match resume {
            None => newest.clone(),
            Some(cursors) if cursors.len() > newest.len() => return Ok(None),
            Some(cursors) => {
                // Shards the token lacks were added by a reshard after it.
                let next: Vec<u64> = (0..newest.len())
                    .map(|k| cursors.get(k).copied().unwrap_or(1))
                    .collect();
                if next.iter().zip(&newest).any(|(n, newest)| n > newest) {
                    return Ok(None);
                }
                next
            }
        };
        let behind: u64 = newest.iter().zip(&next).map(|(n, c)| n - c).sum();
        if behind > WATCH_RESUME_BEHIND_MAX {
            return Err(LedgerError::ResumeTooOld {
                account_id: account.account_id.clone(),
                behind,
                limit: WATCH_RESUME_BEHIND_MAX,
            });
        }
        let base = next.iter().map(|&n| (n == 1).then_some(0)).collect();
        Ok(Some(Self {
            account_id: account.account_id.clone(),
            next,
            base,
        }))
    }

    /// The cursors after everything sent so far, shard 0 first.
    pub fn position(&self) -> Vec<u64> {
        self.next.clone()
    }

    /// Reads what was committed since the last poll (see the module docs).
    pub async fn poll(&mut self, ledger: &Ledger) -> Result<Polled, LedgerError> {
        let (_, states) = ledger.account_states(&self.account_id).await?;
        let states: Vec<ShardState> = states.into_values().collect();
        if states.len() < self.next.len() {
            return Err(LedgerError::Internal(format!(
                "account {} has {} shards, fewer than the {} it was watched with",
                self.account_id,
                states.len(),
                self.next.len()
            )));
        }
        // A shard added by a reshard: from its first entry.
        self.next.resize(states.len(), 1);
        self.base.resize(states.len(), Some(0));
        let mut heads: Vec<VecDeque<StoredEntry>> = Vec::with_capacity(states.len());
        // The latest point every shard was read up to, when one was not read
        // to its version: (time, transaction id) of its last entry read.
        let mut horizon: Option<(i64, String)> = None;
        for (k, state) in states.iter().enumerate() {
            let (read, truncated) = self.read_shard(ledger, k, state).await?;
            if let Some(last) = read.back().filter(|_| truncated) {
                let key = (
                    last.payment.created_at_ms,
                    last.payment.transaction_id.clone(),
                );
                if horizon.as_ref().is_none_or(|h| key < *h) {
                    horizon = Some(key);
                }
            }
            heads.push(read);
        }
        let more = horizon.is_some();
        let mut entries = Vec::new();
        // The oldest head over all shards, up to the horizon.
        while let Some(first) = (0..heads.len())
            .filter_map(|k| heads[k].front().map(|e| (k, e)))
            .min_by_key(|(k, e)| super::history::merge_key(e, *k))
            .filter(|(_, e)| {
                horizon.as_ref().is_none_or(|(time, id)| {
                    (e.payment.created_at_ms, &e.payment.transaction_id) <= (*time, id)
                })
            })
            .map(|(k, _)| k)
        {
            entries.push(self.take(&mut heads, first)?);
        }
        Ok(Polled { entries, more })
    }

    /// Sends the head of shard `first` and the other parts of its payment
    /// (at the heads of their shards): moves their cursors on and returns
    /// the merged entry with the cursors after it.
    fn take(
        &mut self,
        heads: &mut [VecDeque<StoredEntry>],
        first: usize,
    ) -> Result<(Entry, Vec<u64>), LedgerError> {
        let head = heads[first]
            .pop_front()
            .ok_or_else(|| LedgerError::Internal("watch head vanished".into()))?;
        let mut lowest = (first, head.sequence);
        self.next[first] = head.sequence + 1;
        self.base[first] = Some(head.balance_after_minor);
        for (k, shard) in heads.iter_mut().enumerate() {
            let same_payment = shard
                .front()
                .is_some_and(|e| e.payment.transaction_id == head.payment.transaction_id);
            if k == first || !same_payment {
                continue;
            }
            if let Some(part) = shard.pop_front() {
                if k < lowest.0 {
                    lowest = (k, part.sequence);
                }
                self.next[k] = part.sequence + 1;
                self.base[k] = Some(part.balance_after_minor);
            }
        }
        let mut balance_after_minor = 0i64;
        for (k, base) in self.base.iter().enumerate() {
            let base = base.ok_or_else(|| {
                LedgerError::Internal(format!(
                    "watch of {} lacks the balance of shard {k}",
                    self.account_id
                ))
            })?;
            // Each shard holds at most its share of the limit: no overflow.
            balance_after_minor = balance_after_minor.saturating_add(base);
        }
        let entry = Entry {
            shard: u32::try_from(lowest.0).unwrap_or(u32::MAX),
            sequence: lowest.1,
            direction: head.direction,
            payment: head.payment,
            balance_after_minor,
        };
        Ok((entry, self.next.clone()))
    }

    /// The entries of shard `k` from its cursor up to its version in
    /// `state` (at most [`WATCH_READ_PER_SHARD`]), oldest first, and whether
    /// the read stopped short of the version. Learns the shard's balance
    /// before its cursor on the way: from `state` when nothing is new, else
    /// from the entry before the cursor, read with the new ones when not
    /// known yet.
    async fn read_shard(
        &mut self,
        ledger: &Ledger,
        k: usize,
        state: &ShardState,
    ) -> Result<(VecDeque<StoredEntry>, bool), LedgerError> {
        let next = self.next[k];
        if state.version + 1 < next {
            return Err(LedgerError::Internal(format!(
                "shard {k} of {} is at version {}, behind its watch at {next}",
                self.account_id, state.version
            )));
        }
        if state.version + 1 == next {
            self.base[k] = Some(state.balance_minor);
            return Ok((VecDeque::new(), false));
        }
        // The entry before the cursor too, for its balance, when unknown
        // (then next >= 2: a shard's balance before its first entry is 0).
        let from = if self.base[k].is_some() {
            next
        } else {
            next - 1
        };
        let limit = WATCH_READ_PER_SHARD + u32::from(from < next);
        let shard = u32::try_from(k).unwrap_or(u32::MAX);
        let mut read: VecDeque<StoredEntry> = ledger
            .shard_entries(&self.account_id, shard, (from, state.version), true, limit)
            .await?
            .into();
        if from < next {
            let before = read.pop_front().filter(|e| e.sequence == from);
            let before = before.ok_or_else(|| {
                LedgerError::Internal(format!(
                    "entry {from} of shard {k} of {} is missing",
                    self.account_id
                ))
            })?;
            self.base[k] = Some(before.balance_after_minor);
        }
        // Committed entries have every sequence up to the version.
        let in_order = read
            .iter()
            .zip(next..)
            .all(|(entry, sequence)| entry.sequence == sequence);
        if !in_order {
            return Err(LedgerError::Internal(format!(
                "history of shard {k} of {} has a gap after {next}",
                self.account_id
            )));
        }
        let read_to = read.back().map_or(next - 1, |e| e.sequence);
        Ok((read, read_to < state.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(versions: &[u64]) -> Account {
        Account {
            account_id: "shop".into(),
            display_name: String::new(),
            currency: "EUR".into(),
            balance_minor: 0,
            created_at_ms: 0,
            owner: String::new(),
            opening_balance_minor: 0,
            shard_versions: versions.to_vec(),
            held_minor: 0,
        }
    }

    #[test]
    fn a_watch_starts_after_the_newest_entries_or_at_its_token() {
        let now = WatchCursor::new(&account(&[4, 0, 7]), None)
            .unwrap()
            .unwrap();
        assert_eq!(now.position(), vec![5, 1, 8]);
        let resumed = WatchCursor::new(&account(&[4, 0, 7]), Some(&[2, 1, 8]))
            .unwrap()
            .unwrap();
        assert_eq!(resumed.position(), vec![2, 1, 8]);
        // The balance before a shard's first entry is known: 0.
        assert_eq!(resumed.base, vec![None, Some(0), None]);
    }

    #[test]
    fn a_token_from_before_a_reshard_starts_the_new_shards_at_their_first_entry() {
        let resumed = WatchCursor::new(&account(&[4, 2, 3]), Some(&[5]))
            .unwrap()
            .unwrap();
        assert_eq!(resumed.position(), vec![5, 1, 1]);
    }

    #[test]
    fn a_token_that_cannot_be_of_the_account_does_not_fit() {
        // More shards than the account has; past a shard's newest entry.
        assert!(
            WatchCursor::new(&account(&[4]), Some(&[1, 1]))
                .unwrap()
                .is_none()
        );
        assert!(
            WatchCursor::new(&account(&[4]), Some(&[6]))
                .unwrap()
                .is_none()
        );
        assert!(
            WatchCursor::new(&account(&[4, 0]), Some(&[5, 2]))
                .unwrap()
                .is_none()
        );
        assert!(
            WatchCursor::new(&account(&[4]), Some(&[u64::MAX]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_token_too_far_behind_is_out_of_range_and_says_how_far() {
        let limit = WATCH_RESUME_BEHIND_MAX;
        // Exactly the limit behind, over two shards: caught up.
        assert!(
            WatchCursor::new(&account(&[limit / 2, limit / 2]), Some(&[1, 1]))
                .unwrap()
                .is_some()
        );
        let err =
            WatchCursor::new(&account(&[limit / 2, limit / 2 + 1]), Some(&[1, 1])).unwrap_err();
        match err {
            LedgerError::ResumeTooOld {
                behind, limit: l, ..
            } => assert_eq!((behind, l), (limit + 1, limit)),
            other => panic!("{other:?}"),
        }
    }
}
