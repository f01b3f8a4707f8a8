//! The whole-ledger audit: parallel Scans of both tables, checked in memory.

use super::layout::{
    AccountsItem, HoldSlot, Item, StoredEntry, StoredRecord, get_s, now_ms, record_legs, sdk_error,
};
use super::{Direction, HoldState, Ledger, LedgerError, Payment, TransferKind};
use crate::domain::{BALANCE_MAX_MINOR, shard_balance_max_minor};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Most parallel Scan segments an audit may use.
pub const AUDIT_SEGMENTS_MAX: u32 = 64;
/// Most discrepancies an audit lists (it counts them all).
pub const AUDIT_LISTED_MAX: usize = 1000;

/// What an audit found; see [`Ledger::audit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub accounts: u64,
    pub entries: u64,
    pub payments: u64,
    /// Hold records, and of them those open and not expired at the audit.
    pub holds: u64,
    pub holds_open: u64,
    /// Money reserved by open holds, over all accounts.
    pub held_minor: i128,
    pub refunds: u64,
    pub total_balance_minor: i128,
    pub total_opening_minor: i128,
    /// Up to [`AUDIT_LISTED_MAX`] discrepancies, in words.
    pub discrepancies: Vec<String>,
    pub discrepancies_total: u64,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.discrepancies_total == 0
    }

    fn flag(&mut self, what: String) {
        self.discrepancies_total += 1;
        if self.discrepancies.len() < AUDIT_LISTED_MAX {
            self.discrepancies.push(what);
        }
    }
}

#[derive(Default)]
struct ShardTally {
    entries: u64,
    sequence_max: u64,
    sum_minor: i128,
    /// (sequence, balance_after) of the newest entry seen.
    newest: Option<(u64, i64)>,
    opening_minor: Option<i64>,
}

/// An entry's place and size: (account, shard, sequence, direction,
/// amount, currency).
type EntryKey = (String, u32, u64, Direction, i64, String);

#[derive(Default)]
struct PaymentTally {
    record: Option<(Payment, super::layout::RecordLegs)>,
    entries: Vec<EntryKey>,
}

#[derive(Default)]
struct AccountTally {
    shards_declared: u32,
    opening_minor: i64,
    /// Balance and version of each shard item found.
    shard_items: BTreeMap<u32, (i64, u64)>,
    /// The holds map of each shard item found.
    holds: BTreeMap<u32, BTreeMap<String, HoldSlot>>,
}

/// What the audit learns of a record that can be refunded.
struct RefundTally {
    /// The most its refunds may add up to (a payment's amount, a capture's).
    cap_minor: i64,
    /// Its `refunded` attribute.
    recorded_minor: i64,
    /// The sum of the refund records that name it.
    found_minor: i128,
}

impl Ledger {
    /// Reads every item of a table with `segments` parallel Scan segments,
    /// strongly consistent, calling `seen` with the running item count.
    async fn scan_all(
        &self,
        table: &str,
        segments: u32,
        seen: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Item>, LedgerError> {
        let segments = segments.clamp(1, AUDIT_SEGMENTS_MAX);
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for segment in 0..segments {
            let (client, table, counter) = (self.client.clone(), table.to_owned(), counter.clone());
            tasks.spawn(async move {
                let mut items = Vec::new();
                let mut start_key = None;
                loop {
                    let output = client
                        .scan()
                        .table_name(&table)
                        .segment(segment as i32)
                        .total_segments(segments as i32)
                        .consistent_read(true)
                        .set_exclusive_start_key(start_key)
                        .send()
                        .await
                        .map_err(|e| sdk_error("Scan", e))?;
                    let page = output.items().to_vec();
                    counter.fetch_add(page.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    items.extend(page);
                    start_key = output.last_evaluated_key().cloned();
                    if start_key.is_none() {
                        return Ok::<_, LedgerError>(items);
                    }
                }
            });
        }
        let mut all = Vec::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok(items)) => all.extend(items?),
                    Some(Err(e)) => return Err(LedgerError::Internal(format!("scan task failed: {e}"))),
                },
                _ = ticker.tick() => seen(counter.load(std::sync::atomic::Ordering::Relaxed)),
            }
        }
        seen(counter.load(std::sync::atomic::Ordering::Relaxed));
        Ok(all)
    }

    /// Walks the whole ledger with parallel Scan segments and checks that
    /// every shard's balance equals the sum of its history (with gapless
    /// sequences and a matching newest balance_after) and stays within its
    /// share of the limit, that every account has all its shards, that
    /// every payment has exactly the entries its record names with matching
    /// amounts, that every entry belongs to a payment or is an opening
    /// credit, and that the sum of all balances equals the sum of all
    /// opening balances. An item that does not decode is reported, and the
    /// audit goes on.
    ///
    /// It reads a moving ledger item by item, not as a snapshot: run it when
    /// no payments are in flight, or re-run it on a discrepancy. Memory grows
    /// with the number of accounts and payments.
    pub async fn audit(
        &self,
        segments: u32,
        progress: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<AuditReport, LedgerError> {
        let account_items = self
            .scan_all(&self.tables.accounts, segments, &|n| {
                progress("accounts", n)
            })
            .await?;
        let ledger_items = self
            .scan_all(&self.tables.ledger, segments, &|n| {
                progress("ledger items", n)
            })
            .await?;
        let mut report = AuditReport::default();
        let mut accounts: BTreeMap<String, AccountTally> = BTreeMap::new();
        let mut owned: HashMap<String, u64> = HashMap::new();
        for item in &account_items {
            let key = get_s(item, "account_id").unwrap_or_else(|_| "?".into());
            match AccountsItem::from_item(item) {
                Ok(AccountsItem::Account(facts, state)) => {
                    report.accounts += 1;
                    report.total_opening_minor += i128::from(facts.opening_balance_minor);
                    *owned.entry(facts.owner.clone()).or_default() += 1;
                    let tally = accounts.entry(facts.account_id.clone()).or_default();
                    tally.shards_declared = facts.shards;
                    tally.opening_minor = facts.opening_balance_minor;
                    tally
                        .shard_items
                        .insert(0, (state.balance_minor, state.version));
                    tally.holds.insert(0, state.holds);
                }
                Ok(AccountsItem::Shard {
                    account_id,
                    shard,
                    state,
                }) => {
                    let tally = accounts.entry(account_id).or_default();
                    tally
                        .shard_items
                        .insert(shard, (state.balance_minor, state.version));
                    tally.holds.insert(shard, state.holds);
                }
                Err(err) => report.flag(format!("accounts item {key}: does not decode: {err}")),
            }
        }
        let mut tallies: HashMap<(String, u32), ShardTally> = HashMap::new();
        let mut payments: HashMap<String, PaymentTally> = HashMap::new();
        let mut owner_counts: HashMap<String, u64> = HashMap::new();
        let now = now_ms();
        // Holds by (sender, key), refundable records and refunds by
        // transaction id.
        let mut holds: BTreeMap<(String, String), super::layout::HoldRecord> = BTreeMap::new();
        let mut refundable: HashMap<String, RefundTally> = HashMap::new();
        let mut refunds: Vec<(String, String, i64)> = Vec::new();
        for item in &ledger_items {
            let pk = get_s(item, "pk").unwrap_or_default();
            if pk.starts_with("A#") {
                report.entries += 1;
                let entry = match StoredEntry::from_item(item) {
                    Ok(entry) => entry,
                    Err(err) => {
                        report.flag(format!("history entry {pk}: does not decode: {err}"));
                        continue;
                    }
                };
                let key = (entry.account_id.clone(), entry.shard);
                let tally = tallies.entry(key.clone()).or_default();
                tally.entries += 1;
                tally.sequence_max = tally.sequence_max.max(entry.sequence);
                let amount = i128::from(entry.amount_minor);
                tally.sum_minor += match entry.direction {
                    Direction::Debit => -amount,
                    Direction::Credit => amount,
                };
                if tally.newest.is_none_or(|(seq, _)| seq < entry.sequence) {
                    tally.newest = Some((entry.sequence, entry.balance_after_minor));
                }
                if entry.payment.sender_id.is_empty() {
                    if entry.sequence != 1
                        || entry.shard != 0
                        || entry.direction != Direction::Credit
                    {
                        report.flag(format!(
                            "account {} shard {}: entry {} has no sender but is not the opening credit",
                            entry.account_id, entry.shard, entry.sequence
                        ));
                    }
                    tally.opening_minor = Some(entry.amount_minor);
                    continue;
                }
                payments
                    .entry(entry.payment.transaction_id.clone())
                    .or_default()
                    .entries
                    .push((
                        entry.account_id,
                        entry.shard,
                        entry.sequence,
                        entry.direction,
                        entry.amount_minor,
                        entry.payment.currency,
                    ));
            } else if pk.starts_with("P#") {
                let record = match StoredRecord::from_item(item) {
                    Ok(record) => record,
                    Err(err) => {
                        report.flag(format!("payment record {pk}: does not decode: {err}"));
                        continue;
                    }
                };
                let (payment, refunded_minor) = match record {
                    StoredRecord::Transfer {
                        payment,
                        refunded_minor,
                        ..
                    } => {
                        report.payments += 1;
                        (payment, refunded_minor)
                    }
                    StoredRecord::Hold(hold) => {
                        report.holds += 1;
                        let key = (hold.payment.sender_id.clone(), hold.idempotency_key.clone());
                        let capture = hold.capture();
                        let refunded_minor = hold.refunded_minor;
                        holds.insert(key, hold);
                        match capture {
                            Some(capture) => (capture, refunded_minor),
                            // A hold not captured moved no money: no entries.
                            None => continue,
                        }
                    }
                    // A fenced key (GetPayment with finalize): no money moved.
                    StoredRecord::Fence(_) => continue,
                };
                if payment.kind == TransferKind::Refund {
                    report.refunds += 1;
                    refunds.push((
                        payment.transaction_id.clone(),
                        payment.refund_of.clone(),
                        payment.amount_minor,
                    ));
                } else {
                    refundable.insert(
                        payment.transaction_id.clone(),
                        RefundTally {
                            cap_minor: payment.amount_minor,
                            recorded_minor: refunded_minor,
                            found_minor: 0,
                        },
                    );
                }
                match record_legs(item) {
                    Ok(legs) => {
                        let tx_id = payment.transaction_id.clone();
                        payments.entry(tx_id).or_default().record = Some((payment, legs));
                    }
                    Err(err) => report.flag(format!("payment record {pk}: does not decode: {err}")),
                }
            } else if let Some(owner) = pk.strip_prefix("O#") {
                // An owner's count of accounts opened (not those an admin
                // opened): never more than the accounts the owner has.
                match super::layout::get_n::<u64>(item, "accounts") {
                    Ok(count) => {
                        owner_counts.insert(owner.to_owned(), count);
                    }
                    Err(err) => report.flag(format!("owner count {pk}: does not decode: {err}")),
                }
            } else {
                report.flag(format!("ledger item with unknown key {pk:?}"));
            }
        }
        for (id, account) in &accounts {
            if account.shards_declared == 0 {
                report.flag(format!("shard items for unknown account {id}"));
                continue;
            }
            let declared: Vec<u32> = (0..account.shards_declared).collect();
            let found: Vec<u32> = account.shard_items.keys().copied().collect();
            if found != declared {
                report.flag(format!(
                    "account {id}: declares {} shards but has shard items {found:?}",
                    account.shards_declared
                ));
            }
            let limit = shard_balance_max_minor(account.shards_declared);
            let mut total = 0i128;
            for (&shard, &(balance, version)) in &account.shard_items {
                total += i128::from(balance);
                report.total_balance_minor += i128::from(balance);
                let tally = tallies.remove(&(id.clone(), shard)).unwrap_or_default();
                let at = if account.shards_declared == 1 {
                    format!("account {id}")
                } else {
                    format!("account {id} shard {shard}")
                };
                if balance < 0 || balance > limit {
                    report.flag(format!("{at}: balance {balance} outside 0..={limit}"));
                }
                if tally.sum_minor != i128::from(balance) {
                    report.flag(format!(
                        "{at}: balance {balance} but its history sums to {}",
                        tally.sum_minor
                    ));
                }
                if tally.entries != version || tally.sequence_max != version {
                    report.flag(format!(
                        "{at}: version {version} but {} entries up to sequence {}",
                        tally.entries, tally.sequence_max
                    ));
                }
                if version > 0 && tally.newest != Some((version, balance)) {
                    report.flag(format!(
                        "{at}: newest entry (sequence, balance_after) {:?} differs from ({version}, {balance})",
                        tally.newest
                    ));
                }
                if shard == 0 && tally.opening_minor.unwrap_or(0) != account.opening_minor {
                    report.flag(format!(
                        "account {id}: opening balance {} but opening credit {}",
                        account.opening_minor,
                        tally.opening_minor.unwrap_or(0)
                    ));
                }
            }
            if total > i128::from(BALANCE_MAX_MINOR) {
                report.flag(format!("account {id}: balance {total} above the limit"));
            }
            // Every hold a shard keeps is covered by its balance, is an open
            // hold of this account on this shard, and is as its record says.
            for (&shard, kept) in &account.holds {
                let balance = account.shard_items.get(&shard).map_or(0, |b| b.0);
                let reserved: i128 = kept.values().map(|h| i128::from(h.amount_minor)).sum();
                if reserved > i128::from(balance) {
                    report.flag(format!(
                        "account {id} shard {shard}: holds reserve {reserved} but the balance is {balance}"
                    ));
                }
                for (key, slot) in kept {
                    match holds.get(&(id.clone(), key.clone())) {
                        Some(hold)
                            if hold.state == HoldState::Open
                                && hold.shard == shard
                                && hold.payment.amount_minor == slot.amount_minor
                                && hold.expires_at_ms == slot.expires_at_ms =>
                        {
                            if slot.expires_at_ms > now {
                                report.held_minor += i128::from(slot.amount_minor);
                            }
                        }
                        Some(hold) => report.flag(format!(
                            "account {id} shard {shard}: keeps hold {key:?} ({} until {}) but its record says {:?} of {} on shard {} until {}",
                            slot.amount_minor,
                            slot.expires_at_ms,
                            hold.state,
                            hold.payment.amount_minor,
                            hold.shard,
                            hold.expires_at_ms
                        )),
                        None => report.flag(format!(
                            "account {id} shard {shard}: keeps hold {key:?} without a hold record"
                        )),
                    }
                }
            }
        }
        // Every open hold that has not expired reserves its money.
        for ((sender, key), hold) in &holds {
            if hold.state_at(now) != HoldState::Open {
                continue;
            }
            report.holds_open += 1;
            let kept = accounts
                .get(sender)
                .and_then(|a| a.holds.get(&hold.shard))
                .and_then(|h| h.get(key));
            if kept.is_none() {
                report.flag(format!(
                    "hold {} of {sender} ({key:?}) is open until {} but its shard {} does not reserve it",
                    hold.payment.transaction_id, hold.expires_at_ms, hold.shard
                ));
            }
        }
        // Refunds: each names a refundable record, and their sum is that
        // record's `refunded`, never above its amount.
        for (refund_id, refund_of, amount) in &refunds {
            match refundable.get_mut(refund_of) {
                Some(tally) => tally.found_minor += i128::from(*amount),
                None => report.flag(format!(
                    "refund {refund_id} names {refund_of:?}, which is not a payment or capture"
                )),
            }
        }
        let mut refunded: Vec<_> = refundable.iter().collect();
        refunded.sort_by(|a, b| a.0.cmp(b.0));
        for (tx_id, tally) in refunded {
            if tally.found_minor != i128::from(tally.recorded_minor)
                || tally.recorded_minor > tally.cap_minor
                || tally.recorded_minor < 0
            {
                report.flag(format!(
                    "transaction {tx_id}: refunded {} of {} recorded, but its refunds sum to {}",
                    tally.recorded_minor, tally.cap_minor, tally.found_minor
                ));
            }
        }
        let mut orphans: Vec<_> = tallies.into_keys().collect();
        orphans.sort();
        for (id, shard) in orphans {
            report.flag(format!(
                "history entries for unknown account {id} shard {shard}"
            ));
        }
        let mut tx_ids: Vec<_> = payments.keys().cloned().collect();
        tx_ids.sort();
        for tx_id in tx_ids {
            let tally = &payments[&tx_id];
            let Some((payment, legs)) = &tally.record else {
                report.flag(format!(
                    "transaction {tx_id}: entries without a payment record"
                ));
                continue;
            };
            let mut expected: Vec<EntryKey> = legs
                .debits
                .iter()
                .map(|(shard, sequence, part)| {
                    (
                        payment.sender_id.clone(),
                        *shard,
                        *sequence,
                        Direction::Debit,
                        *part,
                        payment.currency.clone(),
                    )
                })
                .collect();
            expected.push((
                payment.recipient_id.clone(),
                legs.credit.0,
                legs.credit.1,
                Direction::Credit,
                payment.amount_minor,
                payment.currency.clone(),
            ));
            let parts: i128 = legs.debits.iter().map(|(_, _, p)| i128::from(*p)).sum();
            let mut found = tally.entries.clone();
            found.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
            expected.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
            if found != expected || parts != i128::from(payment.amount_minor) {
                report.flag(format!(
                    "transaction {tx_id}: expected entries {expected:?} (debits summing to {}), found {found:?}",
                    payment.amount_minor
                ));
            }
        }
        let mut owners: Vec<_> = owner_counts.into_iter().collect();
        owners.sort();
        for (owner, count) in owners {
            let has = owned.get(&owner).copied().unwrap_or(0);
            if count > has {
                report.flag(format!(
                    "owner {owner:?}: counted {count} accounts opened but owns {has}"
                ));
            }
        }
        if report.total_balance_minor != report.total_opening_minor {
            report.flag(format!(
                "all balances sum to {} but all opening balances to {}: money was created or lost",
                report.total_balance_minor, report.total_opening_minor
            ));
        }
        Ok(report)
    }
}
