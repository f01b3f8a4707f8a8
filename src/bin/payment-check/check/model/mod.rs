//! The checks: the recorded history of calls against what the ledger holds
//! at the end (read directly from DynamoDB Local once nothing is in
//! flight), and against a model of the ledger.
//!
//! What counts as an effect: a payment, hold or refund is committed when
//! its key has a record (GetPayment by key, read directly); its money moved
//! when its transaction is in both parties' histories. Each check is named
//! in [`CHECKS`]; every anomaly names its check and the calls involved.
//!
//! An account's balance shards may rise during the run (an admin's
//! SetBalanceShards, an instance's promotion of a hot ordinary account), so
//! no check takes the count an account opened with for what it is: the
//! count is the ledger's at the end ([`AccountTruth::shards`]) or what an
//! answer showed, and the history's own `shard` of each entry tells which
//! shard it is on. An account that never had more than one shard has all
//! its entries on shard 0, where every check below is as strict as for an
//! ordinary account (every page's `balance_after`, a short page ending at
//! entry 1, a first page's real-time cut).
//!
//! Parts: [`truth`] (the ledger as it ended), one file per family of
//! checks ([`effects`], [`keys`], [`cuts`], [`holds`], [`money`],
//! [`shards`]), all on the [`Checker`] here.

mod cuts;
mod effects;
mod holds;
mod keys;
mod money;
mod shards;
#[cfg(test)]
mod tests;
mod truth;

pub use truth::{describe, read_truth};

use super::clients::{AccountSpec, Call, Class, KeyedOp, Reply, Request};
use payment::ledger::{Direction, Entry, Found, HoldState, TransactionKind};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Most sums one balance read is compared with: the cuts of a sharded
/// account multiply; past this the read is counted as not checked.
const CUT_SUMS_MAX: usize = 200_000;
/// Entries read per history chunk when reading the truth.
const TRUTH_READ_AHEAD: u32 = 100;

/// The checks, in the order the report lists them.
pub const CHECKS: [(&str, &str); 13] = [
    (
        "ok_is_one_effect",
        "every OK (replays included) is exactly one committed effect with those parameters",
    ),
    (
        "refusal_had_no_effect",
        "every definite refusal had no effect",
    ),
    (
        "key_reuse_refused",
        "another call under a committed hold's key (a payment, or another expiry) is answered ALREADY_EXISTS, never the hold as a replay",
    ),
    (
        "ambiguous_resolved",
        "every ambiguous answer is resolved (committed, or fenced)",
    ),
    (
        "fenced_never_commits",
        "a key whose final answer was NOT_FOUND never commits",
    ),
    (
        "lookup_consistent",
        "a lookup finds what was acknowledged before it began, as committed",
    ),
    (
        "balance_is_a_cut",
        "every balance read is the balance after a real-time-consistent prefix of the account's history",
    ),
    (
        "history_page_is_a_cut",
        "every history page is a consistent cut of the account's final history",
    ),
    (
        "hold_ends_once",
        "every hold ends once (captured, voided or expired), as its answers said",
    ),
    ("refund_within_payment", "refunds never pass their payment"),
    (
        "conservation",
        "money is conserved per currency, and every balance is its history's sum",
    ),
    (
        "shards_only_rise",
        "balance shards only rise, to a count asked for (or promoted to), and every answer agrees: SetBalanceShards OK shows at least the count asked, SHARDS_CANNOT_SHRINK only when the account had more",
    ),
    ("audit_clean", "the ledger audit (Ledger::audit) is clean"),
];

/// One thing that should not have happened.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub check: &'static str,
    pub what: String,
    /// The ids of the calls involved (see the report's `calls`).
    pub calls: Vec<usize>,
}

/// One account at the end of the run.
#[derive(Debug, Clone)]
pub struct AccountTruth {
    pub spec: AccountSpec,
    /// Its balance shards at the end (at least `spec.opening_shards`).
    pub shards: u32,
    pub balance: i64,
    /// The history as GetTransactionHistory shows it, oldest first.
    pub entries: Vec<Entry>,
}

/// The ledger at the end of the run.
#[derive(Debug, Clone)]
pub struct Truth {
    pub accounts: BTreeMap<String, AccountTruth>,
    /// What is stored under every key the clients used (None: nothing).
    pub keys: HashMap<(String, String), Option<Found>>,
}

/// When a transaction's call was first made, and first acknowledged.
#[derive(Debug, Clone, Copy)]
struct Times {
    invoked_us: u64,
    acked_us: Option<u64>,
}

/// The history of calls, indexed for the checks.
struct Checker<'a> {
    calls: &'a [Call],
    keyed: &'a [KeyedOp],
    truth: &'a Truth,
    anomalies: Vec<Anomaly>,
    /// Transaction id -> when its calls were made and first acknowledged.
    times: HashMap<String, Times>,
}

/// Counts that say how much the checks saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    pub balance_reads_checked: usize,
    pub balance_reads_unchecked: usize,
    pub pages_checked: usize,
    pub keys_committed: usize,
    pub keys_fenced: usize,
    pub keys_not_found_unfenced: usize,
    /// Calls under a committed hold's key that were another call.
    pub keys_reused: usize,
    pub holds_captured: usize,
    pub holds_voided: usize,
    pub holds_expired: usize,
    pub holds_open: usize,
    pub refunds: usize,
    /// Currency -> (money at the start, money at the end).
    pub money: BTreeMap<String, (i64, i64)>,
    /// SetBalanceShards operations (an admin's, each retried while
    /// ambiguous), and their calls answered OK raised, OK unchanged (the
    /// count was there already) and refused.
    pub reshard_ops: usize,
    pub reshards_raised: usize,
    pub reshards_unchanged: usize,
    pub reshards_refused: usize,
    /// The accounts that end with more shards than they opened with.
    pub accounts_resharded: Vec<ReshardedAccount>,
    /// Balance reads and history pages of those accounts that the checks
    /// above took (answered OK).
    pub resharded_account_reads: usize,
}

/// An account whose balance shards rose during the run.
#[derive(Debug, Clone, Serialize)]
pub struct ReshardedAccount {
    pub account: String,
    pub opening_shards: u32,
    pub final_shards: u32,
    /// What can have raised it to its final count: "SetBalanceShards",
    /// "promotion" (an instance's, of a hot ordinary account) or both.
    pub by: &'static str,
}

/// Runs every check but the audit's (the caller adds it). `promote_shards`
/// is the count the instances promote a hot ordinary account to (None:
/// promotion off).
pub fn check(
    calls: &[Call],
    keyed: &[KeyedOp],
    truth: &Truth,
    promote_shards: Option<u32>,
) -> (Vec<Anomaly>, Coverage) {
    let mut checker = Checker {
        calls,
        keyed,
        truth,
        anomalies: Vec::new(),
        times: HashMap::new(),
    };
    let mut coverage = Coverage::default();
    checker.index_times();
    checker.ok_is_one_effect();
    checker.keyed_fates(&mut coverage);
    checker.lookups();
    checker.balances(&mut coverage);
    checker.pages(&mut coverage);
    checker.holds(&mut coverage);
    checker.refunds(&mut coverage);
    checker.conservation(&mut coverage);
    checker.shards(promote_shards, &mut coverage);
    checker.service_errors();
    (checker.anomalies, coverage)
}

fn signed(entry: &Entry) -> i64 {
    match entry.direction {
        Direction::Credit => entry.payment.amount_minor,
        Direction::Debit => -entry.payment.amount_minor,
    }
}

fn kind_number(kind: TransactionKind) -> i32 {
    match kind {
        TransactionKind::Payment => 1,
        TransactionKind::Capture => 2,
        TransactionKind::Refund => 3,
        TransactionKind::Opening => 4,
    }
}

fn state_number(state: HoldState) -> i32 {
    match state {
        HoldState::Open => 1,
        HoldState::Captured => 2,
        HoldState::Voided => 3,
        HoldState::Expired => 4,
    }
}

impl Checker<'_> {
    fn anomaly(&mut self, check: &'static str, what: String, calls: Vec<usize>) {
        self.anomalies.push(Anomaly { check, what, calls });
    }

    fn stored(&self, sender: &str, key: &str) -> Option<&Found> {
        self.truth
            .keys
            .get(&(sender.to_owned(), key.to_owned()))
            .and_then(Option::as_ref)
    }

    /// The transaction id that committed under a key (a hold: its id).
    fn txid_of(&self, sender: &str, key: &str) -> Option<String> {
        match self.stored(sender, key)? {
            Found::Transfer { payment, .. } => Some(payment.transaction_id.clone()),
            Found::Hold { hold, .. } => Some(hold.hold_id.clone()),
        }
    }

    /// Where a transaction is in the histories: (account, entry index).
    fn entries_of(&self, txid: &str) -> Vec<(&str, &Entry)> {
        let mut found = Vec::new();
        for (id, account) in &self.truth.accounts {
            for entry in &account.entries {
                if entry.payment.transaction_id == txid {
                    found.push((id.as_str(), entry));
                }
            }
        }
        found
    }

    /// The transaction a call's effect is: (txid) for keyed calls by their
    /// key's record; captures by their hold's id.
    fn effect_txid(&self, request: &Request) -> Option<String> {
        match request {
            Request::Pay { sender, key, .. } | Request::Authorize { sender, key, .. } => {
                self.txid_of(sender, key)
            }
            Request::Refund { payer, key, .. } => self.txid_of(payer, key),
            Request::Capture { sender, key, .. } => self.txid_of(sender, key),
            _ => None,
        }
    }

    fn index_times(&mut self) {
        let mut times: HashMap<String, Times> = HashMap::new();
        for call in self.calls {
            let effect = match &call.request {
                Request::Pay { .. } | Request::Refund { .. } | Request::Capture { .. } => {
                    self.effect_txid(&call.request)
                }
                // A lookup that finds a transaction acknowledges it: the
                // payment or refund, or a hold's capture once it shows one
                // (a hold found open acknowledges no money moving).
                Request::Lookup { .. } => match &call.answer.reply {
                    Some(Reply::Found { tx: Some(tx), .. }) => Some(tx.id.clone()),
                    _ => None,
                },
                _ => None,
            };
            let Some(txid) = effect else { continue };
            let is_lookup = matches!(call.request, Request::Lookup { .. });
            let entry = times.entry(txid).or_insert(Times {
                invoked_us: u64::MAX,
                acked_us: None,
            });
            if !is_lookup {
                entry.invoked_us = entry.invoked_us.min(call.invoked_us);
            }
            let acks = call.answer.class == Class::Ok
                && match &call.answer.reply {
                    Some(Reply::Hold { capture, .. }) => capture.is_some(),
                    _ => true,
                };
            if acks {
                entry.acked_us = Some(
                    entry
                        .acked_us
                        .map_or(call.completed_us, |a| a.min(call.completed_us)),
                );
            }
        }
        self.times = times;
    }

    /// When an entry's transaction was invoked and acknowledged; openings
    /// before the run.
    fn times_of(&self, entry: &Entry) -> Times {
        if entry.payment.kind == TransactionKind::Opening {
            return Times {
                invoked_us: 0,
                acked_us: Some(0),
            };
        }
        self.times
            .get(&entry.payment.transaction_id)
            .copied()
            .unwrap_or(Times {
                invoked_us: u64::MAX,
                acked_us: None,
            })
    }
}
