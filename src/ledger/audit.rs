//! The whole-ledger audit: parallel Scans of both tables, checked in memory.
//!
//! [`Ledger::audit`] reads every item of both tables, sorts what it read
//! ([`Seen`]), and then checks every invariant the design relies on, one
//! idea per file:
//! - [`shards`]: each shard's balance, version, gapless sequences, whole
//!   `balance_after` chain, strictly increasing entry times and currency,
//!   and each sharded account's `need` (what consistent reads rely on);
//! - [`transactions`]: each record has exactly the entries its legs name,
//!   each entry embeds its record's transaction, and each refund mirrors
//!   the payment or captured hold it refunds without passing it;
//! - [`holds`]: holds reserved exactly while open, captures within their
//!   hold and moving exactly what the hold says was captured;
//! - here: owners' counts, and conservation per currency.

mod holds;
mod shards;
mod transactions;

use super::clock::now_ms;
use super::layout::{
    AccountFacts, AccountsItem, HoldRecord, Item, RecordLegs, ShardState, StoredEntry,
    StoredRecord, get_s, record_legs, sdk_error,
};
use super::{Ledger, LedgerError, Transaction, TransactionKind};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
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
    /// Money reserved by open holds, over all accounts (of all currencies;
    /// see `currencies` for each).
    pub held_minor: i128,
    pub refunds: u64,
    /// Over all accounts of all currencies: only the per-currency totals
    /// in `currencies` mean something as money.
    pub total_balance_minor: i128,
    pub total_opening_minor: i128,
    /// The totals of each currency, by ISO 4217 code: money is conserved
    /// when each currency's balances sum to its opening balances.
    pub currencies: BTreeMap<String, CurrencyTotals>,
    /// Up to [`AUDIT_LISTED_MAX`] discrepancies, in words.
    pub discrepancies: Vec<String>,
    pub discrepancies_total: u64,
}

/// The accounts of one currency, summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrencyTotals {
    pub accounts: u64,
    pub balance_minor: i128,
    pub opening_minor: i128,
    /// Reserved by open holds that had not expired at the audit.
    pub held_minor: i128,
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

/// Everything the audit read, sorted by kind.
#[derive(Default)]
struct Seen {
    accounts: BTreeMap<String, AccountSeen>,
    /// History entries by (account, shard), in sequence order once read.
    entries: HashMap<(String, u32), Vec<StoredEntry>>,
    /// What moved money, by transaction id: payments, refunds and the
    /// captures of captured holds.
    moved: BTreeMap<String, Moved>,
    /// Hold records by (sender, idempotency key).
    holds: BTreeMap<(String, String), HoldRecord>,
    /// Each owner's count of accounts opened (not those an admin opened).
    owner_counts: BTreeMap<String, u64>,
    /// Accounts found per owner.
    owned: HashMap<String, u64>,
}

/// An account as read: its facts (None when only shard items of it were
/// found) and the state of each shard item found.
#[derive(Default)]
struct AccountSeen {
    facts: Option<AccountFacts>,
    shards: BTreeMap<u32, ShardState>,
}

/// A transfer as its record says: the payment, refund or capture, where
/// its entries are, and how much of it was refunded.
struct Moved {
    payment: Transaction,
    legs: RecordLegs,
    refunded_minor: i64,
}

impl Seen {
    fn take_accounts_item(&mut self, report: &mut AuditReport, item: &Item) {
        match AccountsItem::from_item(item) {
            Ok(AccountsItem::Account(facts, state)) => {
                report.accounts += 1;
                *self.owned.entry(facts.owner.clone()).or_default() += 1;
                let account = self.accounts.entry(facts.account_id.clone()).or_default();
                account.shards.insert(0, state);
                account.facts = Some(facts);
            }
            Ok(AccountsItem::Shard {
                account_id,
                shard,
                state,
            }) => {
                let account = self.accounts.entry(account_id).or_default();
                account.shards.insert(shard, state);
            }
            Err(err) => {
                let key = get_s(item, "account_id").unwrap_or_else(|_| "?".into());
                report.flag(format!("accounts item {key}: does not decode: {err}"));
            }
        }
    }

    fn take_ledger_item(&mut self, report: &mut AuditReport, item: &Item) {
        let pk = get_s(item, "pk").unwrap_or_default();
        if pk.starts_with("A#") {
            report.entries += 1;
            match StoredEntry::from_item(item) {
                Ok(entry) => self
                    .entries
                    .entry((entry.account_id.clone(), entry.shard))
                    .or_default()
                    .push(entry),
                Err(err) => report.flag(format!("history entry {pk}: does not decode: {err}")),
            }
        } else if pk.starts_with("P#") {
            self.take_record(report, &pk, item);
        } else if let Some(owner) = pk.strip_prefix("O#") {
            match super::layout::get_n::<u64>(item, "accounts") {
                Ok(count) => {
                    self.owner_counts.insert(owner.to_owned(), count);
                }
                Err(err) => report.flag(format!("owner count {pk}: does not decode: {err}")),
            }
        } else {
            report.flag(format!("ledger item with unknown key {pk:?}"));
        }
    }

    /// A record of a `P#` partition: one arm per kind of record.
    fn take_record(&mut self, report: &mut AuditReport, pk: &str, item: &Item) {
        let record = match StoredRecord::from_item(item) {
            Ok(record) => record,
            Err(err) => {
                report.flag(format!("payment record {pk}: does not decode: {err}"));
                return;
            }
        };
        let moved = match record {
            StoredRecord::Transfer {
                payment,
                refunded_minor,
                ..
            } => {
                report.payments += 1;
                match payment.kind {
                    TransactionKind::Payment => {}
                    TransactionKind::Refund => report.refunds += 1,
                    kind => report.flag(format!(
                        "payment record {pk}: transaction {} has kind {kind:?}, which no payment record has",
                        payment.transaction_id
                    )),
                }
                Some((payment, refunded_minor))
            }
            StoredRecord::Hold(hold) => {
                report.holds += 1;
                let capture = hold.capture().map(|c| (c, hold.refunded_minor));
                let key = (hold.payment.sender_id.clone(), hold.idempotency_key.clone());
                self.holds.insert(key, hold);
                // A hold not captured moved no money: no entries.
                capture
            }
            // A fenced key (GetPayment with finalize): no money moved.
            StoredRecord::Fence(_) => None,
        };
        let Some((payment, refunded_minor)) = moved else {
            return;
        };
        let legs = match record_legs(item) {
            Ok(legs) => legs,
            Err(err) => {
                report.flag(format!("payment record {pk}: does not decode: {err}"));
                return;
            }
        };
        let tx_id = payment.transaction_id.clone();
        let moved = Moved {
            payment,
            legs,
            refunded_minor,
        };
        if self.moved.insert(tx_id.clone(), moved).is_some() {
            report.flag(format!(
                "transaction {tx_id}: more than one record has this transaction id"
            ));
        }
    }

    /// The entries of each transaction (not the opening credits, which
    /// have no sender and no record).
    fn by_transaction(&self) -> HashMap<&str, Vec<&StoredEntry>> {
        let mut by_tx: HashMap<&str, Vec<&StoredEntry>> = HashMap::new();
        for entry in self.entries.values().flatten() {
            if !entry.payment.sender_id.is_empty() {
                by_tx
                    .entry(&entry.payment.transaction_id)
                    .or_default()
                    .push(entry);
            }
        }
        by_tx
    }

    /// Every owner counted at most the accounts it owns.
    fn check_owners(&self, report: &mut AuditReport) {
        for (owner, &count) in &self.owner_counts {
            let has = self.owned.get(owner).copied().unwrap_or(0);
            if count > has {
                report.flag(format!(
                    "owner {owner:?}: counted {count} accounts opened but owns {has}"
                ));
            }
        }
    }

    /// Per currency, the balances of its accounts sum to their opening
    /// balances: payments, captures and refunds only move money between
    /// accounts of one currency (the shard checks see that every entry is
    /// in its account's currency). A sum over all currencies would hide
    /// money created in one and lost in another.
    fn check_conservation(&self, report: &mut AuditReport) {
        for account in self.accounts.values() {
            let Some(facts) = &account.facts else {
                continue;
            };
            let balance: i128 = account
                .shards
                .values()
                .map(|s| i128::from(s.balance_minor))
                .sum();
            let totals = report.currencies.entry(facts.currency.clone()).or_default();
            totals.accounts += 1;
            totals.balance_minor += balance;
            totals.opening_minor += i128::from(facts.opening_balance_minor);
            report.total_balance_minor += balance;
            report.total_opening_minor += i128::from(facts.opening_balance_minor);
        }
        let unequal: Vec<(String, i128, i128)> = report
            .currencies
            .iter()
            .filter(|(_, t)| t.balance_minor != t.opening_minor)
            .map(|(c, t)| (c.clone(), t.balance_minor, t.opening_minor))
            .collect();
        for (currency, balance, opening) in unequal {
            report.flag(format!(
                "{currency}: the balances of its accounts sum to {balance} but their opening balances to {opening}: money was created or lost in {currency}"
            ));
        }
    }
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
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
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

    /// Walks the whole ledger with parallel Scan segments and checks every
    /// invariant the design relies on (see the module docs): balances,
    /// versions and whole `balance_after` chains of every shard, entry
    /// times strictly increasing per shard, `need` of sharded accounts,
    /// every record against its entries and their embedded transactions,
    /// holds reserved while open and captured within their amount, refunds
    /// mirroring what they refund and never passing it, owners' counts, and
    /// conservation per currency. An item that does not decode is
    /// reported, and the audit goes on.
    ///
    /// It reads a moving ledger item by item, not as a snapshot: run it when
    /// no payments are in flight, or re-run it on a discrepancy. Memory grows
    /// with the number of history entries and records.
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
        let mut seen = Seen::default();
        for item in &account_items {
            seen.take_accounts_item(&mut report, item);
        }
        for item in &ledger_items {
            seen.take_ledger_item(&mut report, item);
        }
        for entries in seen.entries.values_mut() {
            entries.sort_by_key(|e| e.sequence);
        }
        let now = now_ms();
        shards::check(&seen, &mut report);
        let by_tx = seen.by_transaction();
        transactions::check(&seen, &by_tx, &mut report);
        holds::check(&seen, &by_tx, now, &mut report);
        seen.check_owners(&mut report);
        seen.check_conservation(&mut report);
        Ok(report)
    }
}
