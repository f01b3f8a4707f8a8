//! The audit of each balance shard against its own history, and of the
//! `need` that consistent reads of a sharded account rely on.

use super::{AccountSeen, AuditReport, Seen};
use crate::domain::{BALANCE_MAX_MINOR, shard_balance_max_minor};
use crate::ledger::Direction;
use crate::ledger::layout::{AccountFacts, ShardState, StoredEntry};
use std::collections::{BTreeMap, HashMap};

/// Checks every account's shards, and flags entries of shards that no
/// account has.
pub(super) fn check(seen: &Seen, report: &mut AuditReport) {
    for (id, account) in &seen.accounts {
        let Some(facts) = &account.facts else {
            report.flag(format!("shard items for unknown account {id}"));
            continue;
        };
        let declared: Vec<u32> = (0..facts.shards).collect();
        let found: Vec<u32> = account.shards.keys().copied().collect();
        if found != declared {
            report.flag(format!(
                "account {id}: declares {} shards but has shard items {found:?}",
                facts.shards
            ));
        }
        // A reshard sets the new count on every shard at once; shards of an
        // account never resharded carry none (the account's own item always
        // carries its count).
        let resharded = account
            .shards
            .iter()
            .any(|(&shard, state)| shard > 0 && state.told_shards > 0);
        for (&shard, state) in &account.shards {
            if (resharded || shard == 0) && state.told_shards != facts.shards {
                report.flag(format!(
                    "{}: says the account has {} shards, but it has {}",
                    shard_name(facts, shard),
                    state.told_shards,
                    facts.shards
                ));
            }
        }
        let mut total = 0i128;
        for (&shard, state) in &account.shards {
            total += i128::from(state.balance_minor);
            let entries = seen
                .entries
                .get(&(id.clone(), shard))
                .map_or(&[][..], Vec::as_slice);
            check_shard(report, facts, shard, state, entries, resharded);
        }
        if total > i128::from(BALANCE_MAX_MINOR) {
            report.flag(format!("account {id}: balance {total} above the limit"));
        }
        if facts.shards > 1 {
            check_needs(report, id, account, &seen.entries);
        }
    }
    let mut orphans: Vec<_> = seen
        .entries
        .keys()
        .filter(|(id, shard)| {
            seen.accounts
                .get(id)
                .is_none_or(|a| a.facts.is_none() || !a.shards.contains_key(shard))
        })
        .collect();
    orphans.sort();
    for (id, shard) in orphans {
        report.flag(format!(
            "history entries for unknown account {id} shard {shard}"
        ));
    }
}

/// How a shard is named in a discrepancy.
fn shard_name(facts: &AccountFacts, shard: u32) -> String {
    if facts.shards == 1 {
        format!("account {}", facts.account_id)
    } else {
        format!("account {} shard {shard}", facts.account_id)
    }
}

/// One shard against its entries (in sequence order): its balance within
/// its share of the limit (entries of a resharded account, some written
/// under a larger share, within the account's limit) and equal to the sum
/// of its history, its version
/// the number of entries and the newest sequence, the opening credit as the
/// account says, and then entry by entry: sequences without gaps, each
/// `balance_after` the one before (0 before the first) moved by the entry's
/// amount and within the limit, times strictly increasing (the sharded
/// history merge orders entries by time) and never after the shard's
/// `updated_at` (the next entry is planned after it), and every entry in
/// the account's currency.
fn check_shard(
    report: &mut AuditReport,
    facts: &AccountFacts,
    shard: u32,
    state: &ShardState,
    entries: &[StoredEntry],
    resharded: bool,
) {
    let audit = ShardAudit {
        at: shard_name(facts, shard),
        facts,
        shard,
        entry_limit: if resharded {
            BALANCE_MAX_MINOR
        } else {
            shard_balance_max_minor(facts.shards)
        },
    };
    audit.totals(report, state, entries);
    let mut before: Option<&StoredEntry> = None;
    for entry in entries {
        audit.entry(report, entry);
        audit.after(report, before, entry);
        before = Some(entry);
    }
    audit.newest(report, state, entries);
}

/// One shard under audit (see [`check_shard`]): how a discrepancy names
/// it, its account and number, and the limit every entry's balance_after
/// stays within.
struct ShardAudit<'a> {
    at: String,
    facts: &'a AccountFacts,
    shard: u32,
    entry_limit: i64,
}

impl ShardAudit<'_> {
    /// The shard's balance within its share of the limit and equal to the
    /// sum of its history; its version the number of entries, the newest
    /// sequence, and the newest entry's with its balance.
    fn totals(&self, report: &mut AuditReport, state: &ShardState, entries: &[StoredEntry]) {
        let at = &self.at;
        let (balance, version) = (state.balance_minor, state.version);
        let limit = shard_balance_max_minor(self.facts.shards);
        if balance < 0 || balance > limit {
            report.flag(format!("{at}: balance {balance} outside 0..={limit}"));
        }
        let sum: i128 = entries.iter().map(signed).sum();
        if sum != i128::from(balance) {
            report.flag(format!(
                "{at}: balance {balance} but its history sums to {sum}"
            ));
        }
        let sequence_max = entries.last().map_or(0, |e| e.sequence);
        if entries.len() as u64 != version || sequence_max != version {
            report.flag(format!(
                "{at}: version {version} but {} entries up to sequence {sequence_max}",
                entries.len()
            ));
        }
        let newest = entries.last().map(|e| (e.sequence, e.balance_after_minor));
        if version > 0 && newest != Some((version, balance)) {
            report.flag(format!(
                "{at}: newest entry (sequence, balance_after) {newest:?} differs from ({version}, {balance})"
            ));
        }
    }

    /// One entry on its own: only the opening credit has no sender, it is
    /// in the account's currency, and its balance_after is within the
    /// limit.
    fn entry(&self, report: &mut AuditReport, entry: &StoredEntry) {
        let (at, facts, seq) = (&self.at, self.facts, entry.sequence);
        if entry.payment.sender_id.is_empty()
            && (seq != 1 || self.shard != 0 || entry.direction != Direction::Credit)
        {
            report.flag(format!(
                "{at}: entry {seq} has no sender but is not the opening credit"
            ));
        }
        if entry.payment.currency != facts.currency {
            report.flag(format!(
                "{at}: entry {seq} is in {} but the account holds {}",
                entry.payment.currency, facts.currency
            ));
        }
        let (after, entry_limit) = (entry.balance_after_minor, self.entry_limit);
        if after < 0 || after > entry_limit {
            report.flag(format!(
                "{at}: entry {seq} leaves balance_after {after} outside 0..={entry_limit}"
            ));
        }
    }

    /// An entry against the one `before` it (None for the first): its
    /// balance_after is the one before (0 before the first) moved by its
    /// amount, and its time strictly after.
    fn after(&self, report: &mut AuditReport, before: Option<&StoredEntry>, entry: &StoredEntry) {
        let (at, seq, after) = (&self.at, entry.sequence, entry.balance_after_minor);
        let (before_seq, before_after) =
            before.map_or((0, 0), |e| (e.sequence, e.balance_after_minor));
        // A gap is reported by the version check; the chain and the times
        // are checked between neighbours only.
        if seq == before_seq + 1 {
            let expected = i128::from(before_after) + signed(entry);
            if i128::from(after) != expected {
                report.flag(format!(
                    "{at}: entry {seq} has balance_after {after}, but the balance before it was {before_after} and it {} {}, which leaves {expected}: the balance_after chain breaks",
                    match entry.direction {
                        Direction::Debit => "debits",
                        Direction::Credit => "credits",
                    },
                    entry.amount_minor
                ));
            }
        }
        if let Some(prev) = before
            && entry.payment.created_at_ms <= prev.payment.created_at_ms
        {
            report.flag(format!(
                "{at}: entry {seq} at {} ms is not after entry {} at {} ms: entry times must strictly increase",
                entry.payment.created_at_ms, prev.sequence, prev.payment.created_at_ms
            ));
        }
    }

    /// The newest entry not after the shard's `updated_at`, and the
    /// opening credit (the last entry without a sender) as the account
    /// says.
    fn newest(&self, report: &mut AuditReport, state: &ShardState, entries: &[StoredEntry]) {
        let at = &self.at;
        if let Some(newest) = entries.last()
            && newest.payment.created_at_ms > state.updated_at_ms
        {
            report.flag(format!(
                "{at}: updated_at {} ms is before its newest entry's time {} ms, so a next entry could come before it",
                state.updated_at_ms, newest.payment.created_at_ms
            ));
        }
        let opening_minor = entries
            .iter()
            .rev()
            .find(|e| e.payment.sender_id.is_empty())
            .map_or(0, |e| e.amount_minor);
        let facts = self.facts;
        if self.shard == 0 && opening_minor != facts.opening_balance_minor {
            report.flag(format!(
                "account {}: opening balance {} but opening credit {opening_minor}",
                facts.account_id, facts.opening_balance_minor
            ));
        }
    }
}

/// What an entry did to its shard's balance.
fn signed(entry: &StoredEntry) -> i128 {
    let amount = i128::from(entry.amount_minor);
    match entry.direction {
        Direction::Debit => -amount,
        Direction::Credit => amount,
    }
}

/// The `need` of a sharded account's shards (see `shards`): a snapshot of
/// the shards counts as consistent when every shard is at least at the
/// version every other shard's `need` asks of it. That is right only if,
/// for every debit that took several shards at once, each of those shards
/// needs each other at least at the sequence of that debit's entry there
/// (or a read could see one part of the debit and not the other); and
/// reads end only if no shard needs a version another shard has not
/// reached, of a shard the account has, other than itself.
fn check_needs(
    report: &mut AuditReport,
    id: &str,
    account: &AccountSeen,
    entries: &HashMap<(String, u32), Vec<StoredEntry>>,
) {
    // The debit parts of each transaction over this account's shards.
    let mut parts: BTreeMap<&str, Vec<(u32, u64)>> = BTreeMap::new();
    for &shard in account.shards.keys() {
        for entry in entries.get(&(id.to_owned(), shard)).into_iter().flatten() {
            if entry.direction == Direction::Debit {
                parts
                    .entry(&entry.payment.transaction_id)
                    .or_default()
                    .push((shard, entry.sequence));
            }
        }
    }
    // For each shard, what it must need of each other shard, and the
    // transaction that makes it so.
    let mut required: BTreeMap<(u32, u32), (u64, &str)> = BTreeMap::new();
    for (tx_id, legs) in &parts {
        for &(shard, _) in legs {
            for &(other, sequence) in legs {
                if other != shard {
                    let slot = required.entry((shard, other)).or_insert((0, tx_id));
                    if sequence > slot.0 {
                        *slot = (sequence, tx_id);
                    }
                }
            }
        }
    }
    for (&shard, state) in &account.shards {
        for (&other, &version) in &state.need {
            match account.shards.get(&other) {
                Some(other_state) if other != shard => {
                    if version > other_state.version {
                        report.flag(format!(
                            "account {id} shard {shard}: needs shard {other} at version {version}, which it has not reached ({}): a consistent read of the account never comes",
                            other_state.version
                        ));
                    }
                }
                _ => report.flag(format!(
                    "account {id} shard {shard}: needs shard {other} at version {version}, but that is not another shard of the account"
                )),
            }
        }
    }
    for (&(shard, other), &(sequence, tx_id)) in &required {
        let needed = account
            .shards
            .get(&shard)
            .and_then(|s| s.need.get(&other))
            .copied()
            .unwrap_or(0);
        if needed < sequence {
            report.flag(format!(
                "account {id} shard {shard}: needs shard {other} at version {needed}, but transaction {tx_id} debited both, shard {other} at sequence {sequence}: a read could see one part of it and not the other"
            ));
        }
    }
}
