//! Reads against real time: balance_is_a_cut and history_page_is_a_cut.

use super::{AccountTruth, CUT_SUMS_MAX, Checker, Coverage, kind_number, signed};
use crate::check::clients::{Call, PageEntry, Reply, Request};
use payment::ledger::{Direction, Entry};
use std::collections::{BTreeMap, HashMap, HashSet};

impl Checker<'_> {
    /// How many of the account's oldest entries have a `balance_after` that
    /// every page must show as the final history does: those before its
    /// first entry named for a shard other than 0. Up to there, in the
    /// final history's order, every shard but 0 holds only parts of
    /// entries that also took shard 0, so each shard's balance at such an
    /// entry comes from entries that any snapshot holding the entry holds
    /// too (shard 0's chain is a prefix of it, and a payment's parts commit
    /// together). Past there, an entry of another shard that a page's
    /// snapshot lacked can sort before it (clocks differ), so a page may
    /// rightly show less. All of an ordinary account's entries, unless it
    /// was resharded.
    fn exact_balance_after(account: &AccountTruth) -> usize {
        account
            .entries
            .iter()
            .position(|e| e.shard != 0)
            .unwrap_or(account.entries.len())
    }

    /// Per shard of an account (the history's `shard`), its entries in
    /// sequence order and the balance after each prefix.
    fn chains(account: &AccountTruth) -> BTreeMap<u32, Vec<&Entry>> {
        let mut chains: BTreeMap<u32, Vec<&Entry>> = BTreeMap::new();
        for entry in &account.entries {
            chains.entry(entry.shard).or_default().push(entry);
        }
        for chain in chains.values_mut() {
            chain.sort_by_key(|e| e.sequence);
        }
        chains
    }

    /// The prefixes of each chain a read may have seen: at least every
    /// entry acknowledged before it began, nothing invoked after it ended.
    /// Per chain: (lowest count, highest count), or an anomaly text.
    fn cut_bounds(
        &self,
        chain: &[&Entry],
        invoked_us: u64,
        completed_us: u64,
    ) -> Result<(usize, usize), String> {
        let mut low = 0;
        let mut high = chain.len();
        for (i, entry) in chain.iter().enumerate() {
            let times = self.times_of(entry);
            if times.acked_us.is_some_and(|a| a < invoked_us) {
                low = i + 1;
            }
            if times.invoked_us > completed_us && high == chain.len() {
                high = i;
            }
        }
        if low > high {
            return Err(format!(
                "entry {} (acknowledged before the read began) follows entry {} (invoked after it ended) in shard {}",
                chain[low - 1].payment.transaction_id,
                chain[high].payment.transaction_id,
                chain[high].shard
            ));
        }
        Ok((low, high))
    }

    pub(super) fn balances(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        for call in self.calls {
            // A reshard's answer is a balance read too (the account read
            // after the change, within the call).
            let (account, balance) = match (&call.request, &call.answer.reply) {
                (Request::Balance { account }, Some(Reply::Balance { balance, .. }))
                | (Request::SetShards { account, .. }, Some(Reply::Shards { balance, .. })) => {
                    (account, balance)
                }
                _ => continue,
            };
            let Some(truth) = self.truth.accounts.get(account) else {
                continue;
            };
            let chains = Self::chains(truth);
            let mut sums: HashSet<i64> = HashSet::from([0]);
            let mut problem = None;
            for chain in chains.values() {
                let (low, high) = match self.cut_bounds(chain, call.invoked_us, call.completed_us) {
                    Ok(bounds) => bounds,
                    Err(what) => {
                        problem = Some(what);
                        break;
                    }
                };
                let mut prefix: Vec<i64> = Vec::with_capacity(chain.len() + 1);
                let mut sum = 0i64;
                prefix.push(0);
                for entry in chain {
                    sum += signed(entry);
                    prefix.push(sum);
                }
                let options: Vec<i64> = prefix[low..=high].to_vec();
                let mut next = HashSet::new();
                for s in &sums {
                    for o in &options {
                        next.insert(s + o);
                    }
                }
                sums = next;
                if sums.len() > CUT_SUMS_MAX {
                    break;
                }
            }
            if let Some(what) = problem {
                found.push((format!("balance read of {account}: {what}"), vec![call.id]));
                continue;
            }
            if sums.len() > CUT_SUMS_MAX {
                coverage.balance_reads_unchecked += 1;
                continue;
            }
            coverage.balance_reads_checked += 1;
            if !sums.contains(balance) {
                found.push((
                    format!(
                        "balance read of {account} answered {balance}, which no prefix allowed by real time gives (the final balance is {})",
                        truth.balance
                    ),
                    vec![call.id],
                ));
            }
        }
        for (what, calls) in found {
            self.anomaly("balance_is_a_cut", what, calls);
        }
    }

    pub(super) fn pages(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        for call in self.calls {
            let (
                Request::History {
                    account,
                    page_size,
                    after,
                    ..
                },
                Some(Reply::Page { entries, .. }),
            ) = (&call.request, &call.answer.reply)
            else {
                continue;
            };
            let Some(truth) = self.truth.accounts.get(account) else {
                continue;
            };
            coverage.pages_checked += 1;
            let size = if *page_size == 0 {
                50
            } else {
                *page_size as usize
            };
            let chains = Self::chains(truth);
            let mut problems = Self::page_entries(truth, size, entries);
            problems.extend(Self::page_order(&chains, *after, entries));
            if entries.len() < size {
                problems.extend(Self::short_page_end(&chains, *after, entries));
            }
            if after.is_none() {
                problems.extend(self.first_page_cut(call, &chains, entries));
            }
            for what in problems {
                found.push((format!("history page of {account}: {what}"), vec![call.id]));
            }
        }
        for (what, calls) in found {
            self.anomaly("history_page_is_a_cut", what, calls);
        }
    }

    /// A page holds at most its size, and each entry as the final history
    /// has it (its `balance_after` too, where every page must show it).
    fn page_entries(truth: &AccountTruth, size: usize, entries: &[PageEntry]) -> Vec<String> {
        let mut problems = Vec::new();
        if entries.len() > size {
            problems.push(format!("{} entries on a page of {size}", entries.len()));
        }
        let by_id: HashMap<(&str, u32), (usize, &Entry)> = truth
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.payment.transaction_id.as_str(), e.shard), (i, e)))
            .collect();
        let exact_after = Self::exact_balance_after(truth);
        for got in entries {
            let Some(&(index, entry)) = by_id.get(&(got.tx.id.as_str(), got.shard)) else {
                problems.push(format!(
                    "entry {} (shard {}) is not in the final history",
                    got.tx.id, got.shard
                ));
                continue;
            };
            let direction = match entry.direction {
                Direction::Debit => 1,
                Direction::Credit => 2,
            };
            let same = got.sequence == entry.sequence
                && got.direction == direction
                && got.tx.amount == entry.payment.amount_minor
                && got.tx.sender == entry.payment.sender_id
                && got.tx.recipient == entry.payment.recipient_id
                && got.tx.kind == kind_number(entry.payment.kind)
                && got.tx.refund_of == entry.payment.refund_of
                && (index >= exact_after || got.balance_after == entry.balance_after_minor);
            if !same {
                problems.push(format!(
                    "entry {} differs from the final history's: {got:?} against {entry:?}",
                    got.tx.id
                ));
            }
        }
        problems
    }

    /// Within each shard, the page's entries are consecutive, newest
    /// first, and continue right after the token's entry.
    fn page_order(
        chains: &BTreeMap<u32, Vec<&Entry>>,
        after: Option<(u32, u64)>,
        entries: &[PageEntry],
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut last_seen: HashMap<u32, u64> = HashMap::new();
        if let Some((shard, sequence)) = after {
            last_seen.insert(shard, sequence);
        }
        for got in entries {
            if let Some(previous) = last_seen.get(&got.shard) {
                let chain = &chains[&got.shard];
                let position = |seq: u64| chain.iter().position(|e| e.sequence == seq);
                if let (Some(p), Some(q)) = (position(*previous), position(got.sequence))
                    && q + 1 != p
                {
                    problems.push(format!(
                        "after entry {}/{previous} comes {}/{}: not the next older entry of its shard",
                        got.shard, got.shard, got.sequence
                    ));
                }
            }
            last_seen.insert(got.shard, got.sequence);
        }
        problems
    }

    /// A short page ends the history: it holds every older entry of
    /// shard 0, down to its entry 1 (every account's opening, before
    /// the run). Shard 0 is every account's, whatever its count was
    /// when read; an entry with a part on it names it (see
    /// HistoryCursor), so its entries are consecutive. Other shards'
    /// entry 1 may be a part of an entry named for a lower shard.
    fn short_page_end(
        chains: &BTreeMap<u32, Vec<&Entry>>,
        after: Option<(u32, u64)>,
        entries: &[PageEntry],
    ) -> Option<String> {
        let oldest = entries
            .iter()
            .filter(|e| e.shard == 0)
            .map(|e| e.sequence)
            .min();
        match (oldest, after) {
            (Some(oldest), _) if oldest != 1 => Some(format!(
                "a short page ends at sequence {oldest} of shard 0, not at the oldest entry"
            )),
            (None, Some((0, sequence))) if sequence > 1 => Some(format!(
                "a short page after entry 0/{sequence} has none of the older entries of shard 0"
            )),
            (None, None) if chains.contains_key(&0) => Some(
                if entries.is_empty() {
                    "an empty first page of an account with entries"
                } else {
                    "a short first page without the account's oldest entry (shard 0's entry 1)"
                }
                .into(),
            ),
            _ => None,
        }
    }

    /// A first page starts at a cut allowed by real time: its first
    /// entry of shard 0 is shard 0's newest when read (a shard's
    /// entries are in increasing time, and a page is newest first),
    /// whatever other shards the account had by then.
    fn first_page_cut(
        &self,
        call: &Call,
        chains: &BTreeMap<u32, Vec<&Entry>>,
        entries: &[PageEntry],
    ) -> Option<String> {
        let (Some(first), Some(chain)) = (entries.iter().find(|e| e.shard == 0), chains.get(&0))
        else {
            return None;
        };
        match self.cut_bounds(chain, call.invoked_us, call.completed_us) {
            Ok((low, high)) => {
                let top = first.sequence as usize;
                (top < low.max(1) || top > high).then(|| {
                    format!(
                        "the page starts at entry {top}, outside the entries {}..={high} real time allows",
                        low.max(1)
                    )
                })
            }
            Err(what) => Some(what),
        }
    }
}
