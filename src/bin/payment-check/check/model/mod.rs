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

use super::clients::{AccountSpec, Call, Class, Fate, KeyedOp, Reply, Request};
use payment::domain::{AccountId, Caller, IdempotencyKey, PaymentRef};
use payment::ledger::{
    Direction, Entry, Found, HistoryCursor, HoldState, Ledger, LedgerError, TransactionKind,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// The ledger as it ended, in words (kept beside a failed run's calls).
pub fn describe(truth: &Truth) -> String {
    let mut text = String::new();
    for (id, account) in &truth.accounts {
        text.push_str(&format!(
            "account {id} balance {} shards {} (opened with {})\n",
            account.balance, account.shards, account.spec.opening_shards
        ));
        for e in &account.entries {
            let p = &e.payment;
            text.push_str(&format!(
                "  {}/{} {:?} {} {:?} {} -> {} at {} after {} refund_of {}\n",
                e.shard,
                e.sequence,
                e.direction,
                p.transaction_id,
                p.kind,
                p.sender_id,
                p.recipient_id,
                p.created_at_ms,
                e.balance_after_minor,
                p.refund_of
            ));
        }
    }
    let mut keys: Vec<_> = truth.keys.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for ((sender, key), found) in keys {
        let what = match found {
            None => "nothing".to_owned(),
            Some(Found::Transfer { payment, .. }) => {
                format!("{:?} {}", payment.kind, payment.transaction_id)
            }
            Some(Found::Hold { hold, .. }) => format!("hold {} {:?}", hold.hold_id, hold.state),
        };
        text.push_str(&format!("key {sender}/{key}: {what}\n"));
    }
    text
}

/// The checker reads as an admin.
fn admin() -> Caller {
    Caller {
        sub: super::clients::CHECK_SUB.into(),
        admin: true,
    }
}

/// Reads the accounts, their whole histories and every key directly.
pub async fn read_truth(
    ledger: &Ledger,
    accounts: &[AccountSpec],
    keys: &BTreeSet<(String, String)>,
) -> Result<Truth, LedgerError> {
    let mut truth = Truth {
        accounts: BTreeMap::new(),
        keys: HashMap::new(),
    };
    for spec in accounts {
        let id = AccountId::parse("account_id", &spec.id)
            .map_err(|e| LedgerError::Internal(e.to_string()))?;
        let account = ledger.get_account(&id).await?;
        let mut cursor = HistoryCursor::new(&account, None)
            .ok_or_else(|| LedgerError::Internal(format!("no history cursor for {}", spec.id)))?;
        let mut entries = Vec::new();
        while let Some(entry) = cursor.next(ledger, TRUTH_READ_AHEAD).await? {
            entries.push(entry);
        }
        entries.reverse();
        truth.accounts.insert(
            spec.id.clone(),
            AccountTruth {
                spec: spec.clone(),
                shards: account.shards(),
                balance: account.balance_minor,
                entries,
            },
        );
    }
    for (sender, key) in keys {
        let (Ok(sender_id), Ok(idempotency_key)) = (
            AccountId::parse("sender_id", sender),
            IdempotencyKey::parse(key),
        ) else {
            continue;
        };
        let reference = PaymentRef::Key {
            sender_id,
            idempotency_key,
        };
        let found = match ledger.get_payment(&reference, &admin()).await {
            Ok(found) => Some(found),
            Err(err) => {
                // NOT_FOUND (a fence included, however the ledger names
                // it): nothing committed under the key.
                let status = tonic::Status::from(err);
                if status.code() != tonic::Code::NotFound {
                    return Err(LedgerError::Internal(format!(
                        "reading key {sender}/{key}: {}",
                        status.message()
                    )));
                }
                None
            }
        };
        truth.keys.insert((sender.clone(), key.clone()), found);
    }
    Ok(truth)
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

    fn ok_is_one_effect(&mut self) {
        const CHECK: &str = "ok_is_one_effect";
        for call in self.calls {
            if call.answer.class != Class::Ok {
                continue;
            }
            let problems = self.ok_problems(call);
            for what in problems {
                self.anomaly(
                    CHECK,
                    format!("call {} ({}): {what}", call.id, call.request.kind()),
                    vec![call.id],
                );
            }
        }
        // Every entry in a history is an effect some call asked for.
        let mut asked: HashSet<String> = HashSet::new();
        for found in self.truth.keys.values().flatten() {
            match found {
                Found::Transfer { payment, .. } => {
                    asked.insert(payment.transaction_id.clone());
                }
                Found::Hold { hold, .. } => {
                    asked.insert(hold.hold_id.clone());
                }
            }
        }
        let mut unasked = Vec::new();
        for (id, account) in &self.truth.accounts {
            for entry in &account.entries {
                if entry.payment.kind != TransactionKind::Opening
                    && !asked.contains(&entry.payment.transaction_id)
                {
                    unasked.push(format!(
                        "{id}: entry {}/{} {}",
                        entry.shard, entry.sequence, entry.payment.transaction_id
                    ));
                }
            }
        }
        for what in unasked {
            self.anomaly(
                CHECK,
                format!("an effect no call's key holds: {what}"),
                vec![],
            );
        }
    }

    /// What is wrong with an OK answer, against the stored records and the
    /// histories.
    fn ok_problems(&self, call: &Call) -> Vec<String> {
        let mut problems = Vec::new();
        let reply = call.answer.reply.as_ref();
        // A transfer must be in both histories exactly once, as answered.
        let once = |txid: &str,
                    sender: &str,
                    recipient: &str,
                    amount: i64,
                    problems: &mut Vec<String>| {
            let entries = self.entries_of(txid);
            let debits: Vec<_> = entries
                .iter()
                .filter(|(a, e)| *a == sender && e.direction == Direction::Debit)
                .collect();
            let credits: Vec<_> = entries
                .iter()
                .filter(|(a, e)| *a == recipient && e.direction == Direction::Credit)
                .collect();
            if debits.len() != 1 || credits.len() != 1 || entries.len() != 2 {
                problems.push(format!(
                    "transaction {txid} is in the histories {} times ({} debits of {sender}, {} credits of {recipient}), not once each",
                    entries.len(),
                    debits.len(),
                    credits.len()
                ));
            }
            for (account, entry) in entries {
                if entry.payment.amount_minor != amount {
                    problems.push(format!(
                        "transaction {txid} moved {} in {account}'s history, not {amount}",
                        entry.payment.amount_minor
                    ));
                }
            }
        };
        match (&call.request, reply) {
            (
                Request::Pay {
                    key,
                    sender,
                    recipient,
                    amount,
                    currency,
                    memo,
                },
                Some(Reply::Transfer { tx, .. }),
            ) => {
                if (&tx.sender, &tx.recipient, tx.amount, &tx.currency, tx.kind)
                    != (sender, recipient, *amount, currency, 1)
                {
                    problems.push(format!("answered {tx:?} for the payment asked"));
                }
                match self.stored(sender, key) {
                    Some(Found::Transfer { payment, .. })
                        if payment.transaction_id == tx.id
                            && payment.amount_minor == *amount
                            && &payment.recipient_id == recipient
                            && &payment.memo == memo
                            && payment.kind == TransactionKind::Payment => {}
                    other => problems.push(format!(
                        "key {sender}/{key} holds {other:?}, not payment {}",
                        tx.id
                    )),
                }
                once(&tx.id, sender, recipient, *amount, &mut problems);
            }
            (
                Request::Authorize {
                    key,
                    sender,
                    recipient,
                    amount,
                    expires_in_s,
                    ..
                },
                Some(Reply::Hold { hold, .. }),
            ) => {
                if (&hold.sender, &hold.recipient, hold.amount) != (sender, recipient, *amount) {
                    problems.push(format!("answered {hold:?} for the hold asked"));
                }
                // The hold answered is the one asked for, expiry included.
                match self.stored(sender, key) {
                    Some(Found::Hold { hold: stored, .. })
                        if stored.hold_id == hold.id
                            && stored.amount_minor == *amount
                            && stored.expires_at_ms == hold.expires_at_ms
                            && stored.expires_at_ms - stored.created_at_ms
                                == expires_in_s * 1000 => {}
                    other => problems.push(format!(
                        "key {sender}/{key} holds {other:?}, not hold {}",
                        hold.id
                    )),
                }
            }
            (
                Request::Capture {
                    sender,
                    key,
                    amount,
                },
                Some(Reply::Hold { hold, capture, .. }),
            ) => match self.stored(sender, key) {
                Some(Found::Hold {
                    hold: stored,
                    capture: Some(stored_capture),
                    ..
                }) if stored.state == HoldState::Captured
                    && stored.captured_minor == hold.captured
                    && (*amount == 0 || *amount == hold.captured)
                    && capture
                        .as_ref()
                        .is_some_and(|c| c.id == stored_capture.transaction_id) =>
                {
                    once(
                        &stored.hold_id,
                        &stored.sender_id,
                        &stored.recipient_id,
                        stored.captured_minor,
                        &mut problems,
                    );
                }
                other => problems.push(format!(
                    "capture answered {hold:?} but the hold is {other:?}"
                )),
            },
            (Request::Void { sender, key }, Some(Reply::Hold { .. })) => {
                match self.stored(sender, key) {
                    Some(Found::Hold { hold, .. }) if hold.state == HoldState::Voided => {}
                    other => problems.push(format!("void answered OK but the hold is {other:?}")),
                }
            }
            (
                Request::Refund {
                    key,
                    payer,
                    payment_sender,
                    payment_key,
                    amount,
                    ..
                },
                Some(Reply::Transfer {
                    tx, refunded_total, ..
                }),
            ) => {
                let refunded_of = self.txid_of(payment_sender, payment_key);
                match self.stored(payer, key) {
                    Some(Found::Transfer { payment, .. })
                        if payment.transaction_id == tx.id
                            && payment.kind == TransactionKind::Refund
                            && Some(&payment.refund_of) == refunded_of.as_ref()
                            && payment.amount_minor == tx.amount
                            && (*amount == 0 || *amount == tx.amount) => {}
                    other => problems.push(format!(
                        "refund key {payer}/{key} holds {other:?}, not refund {}",
                        tx.id
                    )),
                }
                if *refunded_total < tx.amount {
                    problems.push(format!(
                        "refunded_total {refunded_total} is below the refund's own {}",
                        tx.amount
                    ));
                }
                once(&tx.id, payer, payment_sender, tx.amount, &mut problems);
            }
            (Request::Lookup { sender, key, .. }, Some(Reply::Found { tx, hold, .. })) => {
                let answered = hold
                    .as_ref()
                    .map(|h| h.id.clone())
                    .or_else(|| tx.as_ref().map(|t| t.id.clone()));
                let stored = self.txid_of(sender, key);
                if stored.is_none() || answered != stored {
                    problems.push(format!(
                        "lookup of {sender}/{key} found {answered:?}, the key holds {stored:?}"
                    ));
                }
            }
            (
                Request::Balance { .. } | Request::History { .. },
                Some(Reply::Balance { .. } | Reply::Page { .. }),
            ) => {}
            // Checked by `shards` and `balances`.
            (Request::SetShards { .. }, Some(Reply::Shards { .. })) => {}
            (request, reply) => {
                problems.push(format!("answer {reply:?} does not fit request {request:?}"))
            }
        }
        problems
    }

    fn keyed_fates(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        for op in self.keyed {
            let stored = self.stored(&op.sender, &op.key).is_some();
            let calls: Vec<usize> = self
                .calls
                .iter()
                .filter(|c| c.op == op.op)
                .map(|c| c.id)
                .collect();
            if op.reuse {
                coverage.keys_reused += 1;
                found.extend(self.reuse_problems(op));
                if op.fate == Fate::Open {
                    found.push((
                        "ambiguous_resolved",
                        format!(
                            "key {}/{} has no final answer after every retry and final lookup",
                            op.sender, op.key
                        ),
                        calls,
                    ));
                }
                continue;
            }
            match (&op.fate, stored) {
                (Fate::Committed, _) => coverage.keys_committed += 1,
                (Fate::Refused, false) => {}
                (Fate::Refused, true) => found.push((
                    "refusal_had_no_effect",
                    format!("key {}/{} was refused (and never cut off) but committed", op.sender, op.key),
                    calls,
                )),
                (Fate::Fenced, false) => coverage.keys_fenced += 1,
                (Fate::Fenced, true) => found.push((
                    "fenced_never_commits",
                    format!("key {}/{} was fenced (NOT_FOUND KEY_FENCED) but committed", op.sender, op.key),
                    calls,
                )),
                (Fate::NotFoundUnfenced, false) => coverage.keys_not_found_unfenced += 1,
                (Fate::NotFoundUnfenced, true) => found.push((
                    "fenced_never_commits",
                    format!(
                        "key {}/{}: the final lookup answered NOT_FOUND (no fence) after the call was cut off, then the key committed: a late write",
                        op.sender, op.key
                    ),
                    calls,
                )),
                (Fate::Open, _) => found.push((
                    "ambiguous_resolved",
                    format!("key {}/{} has no final answer after every retry and final lookup", op.sender, op.key),
                    calls,
                )),
            }
        }
        for (check, what, calls) in found {
            self.anomaly(check, what, calls);
        }
    }

    /// What is wrong with an operation that reused a committed hold's key
    /// for another call: each of its calls must be answered ALREADY_EXISTS
    /// (IDEMPOTENCY_KEY_REUSED) or ambiguously, and the key must still
    /// hold the hold.
    fn reuse_problems(&self, op: &KeyedOp) -> Vec<(&'static str, String, Vec<usize>)> {
        const CHECK: &str = "key_reuse_refused";
        let mut problems = Vec::new();
        for call in self.calls.iter().filter(|c| c.op == op.op) {
            if matches!(call.request, Request::Lookup { .. }) {
                continue;
            }
            let refused_as_reuse = call.answer.code == "AlreadyExists"
                && call.answer.reason == "IDEMPOTENCY_KEY_REUSED";
            if call.answer.class == Class::Ambiguous || refused_as_reuse {
                continue;
            }
            let other = match &call.request {
                Request::Pay { .. } => "a payment".to_owned(),
                Request::Authorize { expires_in_s, .. } => {
                    format!("a hold expiring in {expires_in_s} s")
                }
                _ => "another call".to_owned(),
            };
            let answered = match &call.answer.reply {
                Some(reply) => format!("OK {reply:?}"),
                None => format!("{} {}", call.answer.code, call.answer.reason),
            };
            problems.push((
                CHECK,
                format!(
                    "call {} reused the key {}/{} of a committed hold for {other} and was answered {answered}, not ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED",
                    call.id, op.sender, op.key
                ),
                vec![call.id],
            ));
        }
        if !matches!(self.stored(&op.sender, &op.key), Some(Found::Hold { .. })) {
            problems.push((
                CHECK,
                format!(
                    "key {}/{} of a committed hold holds {:?} after it was reused",
                    op.sender,
                    op.key,
                    self.stored(&op.sender, &op.key)
                ),
                self.calls
                    .iter()
                    .filter(|c| c.op == op.op)
                    .map(|c| c.id)
                    .collect(),
            ));
        }
        problems
    }

    fn lookups(&mut self) {
        let mut found = Vec::new();
        for call in self.calls {
            let Request::Lookup { sender, key, .. } = &call.request else {
                continue;
            };
            if call.answer.code != "NotFound" {
                continue;
            }
            // NOT_FOUND, yet the key was acknowledged before the lookup began.
            let acked_before = self.calls.iter().find(|c| {
                c.answer.class == Class::Ok
                    && c.completed_us < call.invoked_us
                    && match &c.request {
                        Request::Lookup {
                            sender: s, key: k, ..
                        } => s == sender && k == key,
                        other => other.key() == Some((sender.as_str(), key.as_str())),
                    }
            });
            if let Some(before) = acked_before {
                found.push((
                    format!("lookup of {sender}/{key} answered NOT_FOUND, but call {} had acknowledged it before", before.id),
                    vec![before.id, call.id],
                ));
            }
        }
        for (what, calls) in found {
            self.anomaly("lookup_consistent", what, calls);
        }
    }

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

    fn balances(&mut self, coverage: &mut Coverage) {
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

    fn pages(&mut self, coverage: &mut Coverage) {
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
            let mut problems = Vec::new();
            let size = if *page_size == 0 {
                50
            } else {
                *page_size as usize
            };
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
            let chains = Self::chains(truth);
            // Within each shard, the page's entries are consecutive, newest
            // first, and continue right after the token's entry.
            let mut last_seen: HashMap<u32, u64> = HashMap::new();
            if let Some((shard, sequence)) = after {
                last_seen.insert(*shard, *sequence);
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
            // A short page ends the history: it holds every older entry of
            // shard 0, down to its entry 1 (every account's opening, before
            // the run). Shard 0 is every account's, whatever its count was
            // when read; an entry with a part on it names it (see
            // HistoryCursor), so its entries are consecutive. Other shards'
            // entry 1 may be a part of an entry named for a lower shard.
            if entries.len() < size {
                let oldest = entries
                    .iter()
                    .filter(|e| e.shard == 0)
                    .map(|e| e.sequence)
                    .min();
                match (oldest, after) {
                    (Some(oldest), _) if oldest != 1 => problems.push(format!(
                        "a short page ends at sequence {oldest} of shard 0, not at the oldest entry"
                    )),
                    (None, Some((0, sequence))) if *sequence > 1 => problems.push(format!(
                        "a short page after entry 0/{sequence} has none of the older entries of shard 0"
                    )),
                    (None, None) if chains.contains_key(&0) => problems.push(
                        if entries.is_empty() {
                            "an empty first page of an account with entries"
                        } else {
                            "a short first page without the account's oldest entry (shard 0's entry 1)"
                        }
                        .into(),
                    ),
                    _ => {}
                }
            }
            // A first page starts at a cut allowed by real time: its first
            // entry of shard 0 is shard 0's newest when read (a shard's
            // entries are in increasing time, and a page is newest first),
            // whatever other shards the account had by then.
            if after.is_none()
                && let (Some(first), Some(chain)) =
                    (entries.iter().find(|e| e.shard == 0), chains.get(&0))
            {
                match self.cut_bounds(chain, call.invoked_us, call.completed_us) {
                    Ok((low, high)) => {
                        let top = first.sequence as usize;
                        if top < low.max(1) || top > high {
                            problems.push(format!(
                                "the page starts at entry {top}, outside the entries {}..={high} real time allows",
                                low.max(1)
                            ));
                        }
                    }
                    Err(what) => problems.push(what),
                }
            }
            for what in problems {
                found.push((format!("history page of {account}: {what}"), vec![call.id]));
            }
        }
        for (what, calls) in found {
            self.anomaly("history_page_is_a_cut", what, calls);
        }
    }

    fn holds(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        // The capture or void operation aimed at each hold (a client aims
        // at most one at a hold), and the OK answers about it.
        let mut aimed: HashMap<(String, String), Vec<&Call>> = HashMap::new();
        for call in self.calls {
            if let Request::Capture { sender, key, .. } | Request::Void { sender, key } =
                &call.request
            {
                aimed
                    .entry((sender.clone(), key.clone()))
                    .or_default()
                    .push(call);
            }
        }
        for ((sender, key), stored) in &self.truth.keys {
            let Some(Found::Hold { hold, capture, .. }) = stored else {
                continue;
            };
            match hold.state {
                HoldState::Captured => coverage.holds_captured += 1,
                HoldState::Voided => coverage.holds_voided += 1,
                HoldState::Expired => coverage.holds_expired += 1,
                HoldState::Open => coverage.holds_open += 1,
            }
            let calls = aimed
                .get(&(sender.clone(), key.clone()))
                .cloned()
                .unwrap_or_default();
            let ids: Vec<usize> = calls.iter().map(|c| c.id).collect();
            let in_histories = self.entries_of(&hold.hold_id).len();
            match (hold.state, capture) {
                (HoldState::Captured, Some(c))
                    if in_histories != 2
                        || c.amount_minor != hold.captured_minor
                        || hold.captured_minor > hold.amount_minor =>
                {
                    found.push((
                        format!(
                            "hold {} captured {} of {}: its capture is in the histories {in_histories} times",
                            hold.hold_id, hold.captured_minor, hold.amount_minor
                        ),
                        ids.clone(),
                    ));
                }
                (HoldState::Captured, Some(_)) => {}
                (HoldState::Captured, None) => found.push((
                    format!("hold {} is captured without a capture", hold.hold_id),
                    ids.clone(),
                )),
                (_, _) if in_histories != 0 => found.push((
                    format!(
                        "hold {} is {:?} but moved money ({in_histories} history entries)",
                        hold.hold_id, hold.state
                    ),
                    ids.clone(),
                )),
                _ => {}
            }
            // Every OK answer about the hold agrees with how it ended.
            let ended = state_number(hold.state);
            for call in &calls {
                let Some(Reply::Hold { hold: answered, .. }) = &call.answer.reply else {
                    // A definite refusal of a capture or void: the hold did
                    // not end that way by that call; its op's other calls
                    // (retries) may have.
                    continue;
                };
                let agrees = answered.state == ended
                    && (ended != 2 || answered.captured == hold.captured_minor);
                if !agrees {
                    found.push((
                        format!(
                            "call {} answered the hold {} state {} (captured {}), but it ended in state {ended} (captured {})",
                            call.id, hold.hold_id, answered.state, answered.captured, hold.captured_minor
                        ),
                        vec![call.id],
                    ));
                }
            }
            // Ended by a capture or void nobody asked for, or asked for and
            // definitely refused every time.
            let by_capture = calls
                .iter()
                .any(|c| matches!(c.request, Request::Capture { .. }));
            let by_void = calls
                .iter()
                .any(|c| matches!(c.request, Request::Void { .. }));
            let all_refused =
                !calls.is_empty() && calls.iter().all(|c| c.answer.class == Class::Refused);
            let wrong = match hold.state {
                HoldState::Captured => !by_capture || all_refused,
                HoldState::Voided => !by_void || all_refused,
                _ => false,
            };
            if wrong {
                found.push((
                    format!(
                        "hold {} ended {:?} though no call that was not refused asked for it",
                        hold.hold_id, hold.state
                    ),
                    ids.clone(),
                ));
            }
        }
        for (what, calls) in found {
            self.anomaly("hold_ends_once", what, calls);
        }
    }

    fn refunds(&mut self, coverage: &mut Coverage) {
        let mut refunded: HashMap<String, i64> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut amounts: HashMap<String, i64> = HashMap::new();
        for account in self.truth.accounts.values() {
            for entry in &account.entries {
                let p = &entry.payment;
                if p.kind == TransactionKind::Refund && seen.insert(p.transaction_id.clone()) {
                    *refunded.entry(p.refund_of.clone()).or_default() += p.amount_minor;
                    coverage.refunds += 1;
                }
                if matches!(p.kind, TransactionKind::Payment | TransactionKind::Capture) {
                    amounts.insert(p.transaction_id.clone(), p.amount_minor);
                }
            }
        }
        let mut found = Vec::new();
        for (of, total) in &refunded {
            match amounts.get(of) {
                Some(amount) if total <= amount => {}
                Some(amount) => {
                    found.push(format!("payment {of} of {amount} was refunded {total}"))
                }
                None => found.push(format!(
                    "refunds of {total} name {of}, which is no payment or capture in the histories"
                )),
            }
        }
        for what in found {
            self.anomaly("refund_within_payment", what, vec![]);
        }
    }

    fn conservation(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        for (id, account) in &self.truth.accounts {
            let (start, end) = coverage
                .money
                .entry(account.spec.currency.clone())
                .or_default();
            *start += account.spec.opening_minor;
            *end += account.balance;
            let sum: i64 = account.entries.iter().map(signed).sum();
            if sum != account.balance {
                found.push(format!(
                    "{id}: balance {} but its history sums to {sum}",
                    account.balance
                ));
            }
            if account.balance < 0 {
                found.push(format!("{id}: balance {} is negative", account.balance));
            }
        }
        for (currency, (start, end)) in &coverage.money {
            if start != end {
                found.push(format!(
                    "{currency}: {start} at the start, {end} at the end"
                ));
            }
        }
        for what in found {
            self.anomaly("conservation", what, vec![]);
        }
    }

    /// The balance shards of each account only rise, to a count someone
    /// asked for: the final count is the opening one, one a SetBalanceShards
    /// not refused asked for, or (an account that opened ordinary) the
    /// instances' promotion count. Every answer agrees with that: an OK
    /// shows at least the count asked, and at most the final count; a
    /// SHARDS_CANNOT_SHRINK comes only when the account had more than
    /// asked (so it ends with more); SHARD_OVER_SHARE never (no shard of
    /// the run comes near 10^15 / 64); and no answer shows fewer shards
    /// than one that completed before it began (balance reads, reshards'
    /// answers, pages with entries on a shard, refusals).
    fn shards(&mut self, promote: Option<u32>, coverage: &mut Coverage) {
        const CHECK: &str = "shards_only_rise";
        /// What a call showed of an account's count: at least `low`,
        /// exactly `exact` when it said.
        struct Seen {
            call: usize,
            invoked_us: u64,
            completed_us: u64,
            low: u32,
            exact: Option<u32>,
        }
        let mut found: Vec<(String, Vec<usize>)> = Vec::new();
        // Per account: the counts asked by SetBalanceShards calls that were
        // not refused (they may have raised it), and what calls showed.
        let mut asked: HashMap<&str, BTreeSet<u32>> = HashMap::new();
        let mut seen: HashMap<&str, Vec<Seen>> = HashMap::new();
        let mut ops: HashSet<usize> = HashSet::new();
        for call in self.calls {
            let (account, low, exact) = match (&call.request, &call.answer.reply) {
                (Request::Balance { account }, Some(Reply::Balance { shards, .. })) => {
                    (account, *shards, Some(*shards))
                }
                (Request::History { account, .. }, Some(Reply::Page { entries, .. })) => {
                    match entries.iter().map(|e| e.shard.saturating_add(1)).max() {
                        Some(low) => (account, low, None),
                        None => continue,
                    }
                }
                (Request::SetShards { account, shards }, reply) => {
                    ops.insert(call.op);
                    let Some(truth) = self.truth.accounts.get(account) else {
                        found.push((
                            format!(
                                "call {} resharded {account}, no account of the run",
                                call.id
                            ),
                            vec![call.id],
                        ));
                        continue;
                    };
                    let what = format!("call {}: SetBalanceShards({account}, {shards})", call.id);
                    match (call.answer.class, reply) {
                        (
                            Class::Ok,
                            Some(Reply::Shards {
                                shards: answered,
                                raised,
                                ..
                            }),
                        ) => {
                            asked.entry(account).or_default().insert(*shards);
                            if *raised {
                                coverage.reshards_raised += 1;
                            } else {
                                coverage.reshards_unchanged += 1;
                            }
                            if answered < shards {
                                found.push((
                                    format!("{what} answered OK with {answered} shards"),
                                    vec![call.id],
                                ));
                            }
                            (account, (*answered).max(*shards), Some(*answered))
                        }
                        // An OK that does not fit: ok_is_one_effect says so.
                        (Class::Ok, _) => continue,
                        (Class::Ambiguous, _) => {
                            asked.entry(account).or_default().insert(*shards);
                            continue;
                        }
                        (Class::Refused, _) => {
                            coverage.reshards_refused += 1;
                            let answer = &call.answer;
                            if answer.code == "FailedPrecondition"
                                && answer.reason == "SHARDS_CANNOT_SHRINK"
                            {
                                // It had more than asked then.
                                (account, shards.saturating_add(1), None)
                            } else {
                                let why = if answer.reason == "SHARD_OVER_SHARE" {
                                    format!(
                                        ", but no shard of it comes near its share of the balance limit (it ends with {} in all)",
                                        truth.balance
                                    )
                                } else {
                                    ", though it asks for a valid count of an account that exists, as an admin".to_owned()
                                };
                                found.push((
                                    format!(
                                        "{what} was refused {} {}{why}",
                                        answer.code, answer.reason
                                    ),
                                    vec![call.id],
                                ));
                                continue;
                            }
                        }
                    }
                }
                _ => continue,
            };
            seen.entry(account).or_default().push(Seen {
                call: call.id,
                invoked_us: call.invoked_us,
                completed_us: call.completed_us,
                low,
                exact,
            });
        }
        coverage.reshard_ops = ops.len();
        for (id, truth) in &self.truth.accounts {
            let (opening, last) = (truth.spec.opening_shards, truth.shards);
            let by_admin = asked.get(id.as_str()).is_some_and(|a| a.contains(&last));
            let by_promotion = opening == 1 && promote == Some(last);
            if last < opening {
                found.push((
                    format!("{id} opened with {opening} shards and ends with {last}"),
                    vec![],
                ));
            } else if last > opening {
                if !by_admin && !by_promotion {
                    let promotion = match promote {
                        Some(n) if opening == 1 => format!("promotion raises to {n}"),
                        Some(_) => "promotion raises only ordinary accounts".to_owned(),
                        None => "promotion is off".to_owned(),
                    };
                    found.push((
                        format!(
                            "{id} opened with {opening} shards and ends with {last}, which no SetBalanceShards that was not refused asked for ({promotion})"
                        ),
                        vec![],
                    ));
                }
                coverage.accounts_resharded.push(ReshardedAccount {
                    account: id.clone(),
                    opening_shards: opening,
                    final_shards: last,
                    by: match (by_admin, by_promotion) {
                        (true, true) => "SetBalanceShards or promotion",
                        (false, true) => "promotion",
                        _ => "SetBalanceShards",
                    },
                });
                coverage.resharded_account_reads += self
                    .calls
                    .iter()
                    .filter(|c| {
                        c.answer.class == Class::Ok
                            && matches!(
                                &c.request,
                                Request::Balance { account } | Request::History { account, .. }
                                    if account == id
                            )
                    })
                    .count();
            }
            let Some(seen) = seen.get_mut(id.as_str()) else {
                continue;
            };
            for s in seen.iter() {
                if s.exact.is_some_and(|n| n < opening) || s.low > last {
                    found.push((
                        format!(
                            "call {} showed {id} with {} shards, but it opened with {opening} and ends with {last}",
                            s.call,
                            s.exact.map_or(format!("at least {}", s.low), |n| n.to_string())
                        ),
                        vec![s.call],
                    ));
                }
            }
            // Real time: each exact count against the most any call that
            // completed before it began showed.
            let mut before: Vec<&Seen> = seen.iter().collect();
            before.sort_by_key(|s| s.completed_us);
            let mut after: Vec<&Seen> = seen.iter().filter(|s| s.exact.is_some()).collect();
            after.sort_by_key(|s| s.invoked_us);
            let mut most: Option<&Seen> = None;
            let mut next = 0;
            for s in after {
                while next < before.len() && before[next].completed_us < s.invoked_us {
                    if most.is_none_or(|m| before[next].low > m.low) {
                        most = Some(before[next]);
                    }
                    next += 1;
                }
                if let (Some(m), Some(n)) = (most, s.exact)
                    && n < m.low
                {
                    found.push((
                        format!(
                            "call {} showed {id} with {n} shards, but call {} had shown at least {} before it began",
                            s.call, m.call, m.low
                        ),
                        vec![m.call, s.call],
                    ));
                }
            }
        }
        for (what, calls) in found {
            self.anomaly(CHECK, what, calls);
        }
    }

    /// The service never answers INTERNAL for a request (only for broken
    /// stored data, which is an anomaly too).
    fn service_errors(&mut self) {
        let internal: Vec<usize> = self
            .calls
            .iter()
            .filter(|c| c.answer.code == "Internal" && c.answer.reason == "INTERNAL")
            .map(|c| c.id)
            .collect();
        for id in internal {
            self.anomaly(
                "ok_is_one_effect",
                format!("call {id} was answered INTERNAL"),
                vec![id],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The checks on a small history by hand: account `a` opens ordinary,
    //! is paid by `b`, is resharded to 4 by SetBalanceShards, and is paid
    //! twice more (once on its new shard 2, once on shard 0).
    use super::*;
    use crate::check::clients::{Answer, PageEntry, Tx};
    use payment::ledger::Transaction;

    fn payment(id: &str, sender: &str, recipient: &str, amount: i64, at: i64) -> Transaction {
        Transaction {
            transaction_id: id.into(),
            sender_id: sender.into(),
            recipient_id: recipient.into(),
            amount_minor: amount,
            currency: "EUR".into(),
            memo: format!("pay {id}"),
            created_at_ms: at,
            kind: if sender.is_empty() {
                TransactionKind::Opening
            } else {
                TransactionKind::Payment
            },
            refund_of: String::new(),
        }
    }

    fn entry(
        p: &Transaction,
        direction: Direction,
        shard: u32,
        sequence: u64,
        after: i64,
    ) -> Entry {
        Entry {
            shard,
            sequence,
            direction,
            payment: p.clone(),
            balance_after_minor: after,
        }
    }

    fn spec(id: &str) -> AccountSpec {
        AccountSpec {
            id: id.into(),
            currency: "EUR".into(),
            opening_shards: 1,
            opening_minor: 1_000,
        }
    }

    fn truth() -> Truth {
        let open_a = payment("open-a", "", "a", 1_000, 10);
        let open_b = payment("open-b", "", "b", 1_000, 10);
        let p1 = payment("p1", "b", "a", 100, 20);
        let p2 = payment("p2", "b", "a", 50, 30);
        let p3 = payment("p3", "b", "a", 10, 40);
        let a = AccountTruth {
            spec: spec("a"),
            shards: 4,
            balance: 1_160,
            entries: vec![
                entry(&open_a, Direction::Credit, 0, 1, 1_000),
                entry(&p1, Direction::Credit, 0, 2, 1_100),
                entry(&p2, Direction::Credit, 2, 1, 1_150),
                entry(&p3, Direction::Credit, 0, 3, 1_160),
            ],
        };
        let b = AccountTruth {
            spec: spec("b"),
            shards: 1,
            balance: 840,
            entries: vec![
                entry(&open_b, Direction::Credit, 0, 1, 1_000),
                entry(&p1, Direction::Debit, 0, 2, 900),
                entry(&p2, Direction::Debit, 0, 3, 850),
                entry(&p3, Direction::Debit, 0, 4, 840),
            ],
        };
        let mut keys = HashMap::new();
        for (key, p) in [("k1", p1), ("k2", p2), ("k3", p3)] {
            keys.insert(
                ("b".to_owned(), key.to_owned()),
                Some(Found::Transfer {
                    idempotency_key: key.into(),
                    payment: p,
                    refunded_minor: 0,
                }),
            );
        }
        Truth {
            accounts: BTreeMap::from([("a".to_owned(), a), ("b".to_owned(), b)]),
            keys,
        }
    }

    fn ok(reply: Reply) -> Answer {
        Answer::ok(reply)
    }

    fn call(id: usize, at: (u64, u64), request: Request, answer: Answer) -> Call {
        Call {
            id,
            op: id,
            client: 0,
            instance: 0,
            invoked_us: at.0,
            completed_us: at.1,
            deadline_ms: 1_000,
            request,
            answer,
        }
    }

    fn tx(p: &Transaction) -> Tx {
        Tx {
            id: p.transaction_id.clone(),
            sender: p.sender_id.clone(),
            recipient: p.recipient_id.clone(),
            amount: p.amount_minor,
            currency: p.currency.clone(),
            kind: kind_number(p.kind),
            refund_of: String::new(),
            created_at_ms: p.created_at_ms,
        }
    }

    /// A page of `a` as the final history shows it: the entries named by
    /// their transaction ids, newest first.
    fn page(truth: &Truth, ids: &[&str]) -> Reply {
        let entries = ids
            .iter()
            .map(|id| {
                let e = truth.accounts["a"]
                    .entries
                    .iter()
                    .find(|e| e.payment.transaction_id == *id)
                    .expect("entry");
                PageEntry {
                    tx: tx(&e.payment),
                    direction: 2,
                    balance_after: e.balance_after_minor,
                    sequence: e.sequence,
                    shard: e.shard,
                    has_token: true,
                }
            })
            .collect();
        Reply::Page {
            entries,
            tokens: ids.iter().map(|_| "t".to_owned()).collect(),
        }
    }

    fn history(size: i32, after: Option<(u32, u64)>) -> Request {
        Request::History {
            account: "a".into(),
            page_size: size,
            page_token: String::new(),
            after,
        }
    }

    fn balance(balance: i64, shards: u32) -> Reply {
        Reply::Balance {
            balance,
            held: 0,
            available: balance,
            shards,
        }
    }

    fn reshard(shards: u32) -> Request {
        Request::SetShards {
            account: "a".into(),
            shards,
        }
    }

    /// The run, correct: pays (k1 before the reshard, k2 and k3 after),
    /// the reshard, pages and balance reads before and after it.
    fn calls(truth: &Truth) -> Vec<Call> {
        let pay = |id: usize, at, key: &str, amount| {
            let p = match &truth.keys[&("b".to_owned(), key.to_owned())] {
                Some(Found::Transfer { payment, .. }) => payment.clone(),
                _ => unreachable!(),
            };
            call(
                id,
                at,
                Request::Pay {
                    key: key.into(),
                    sender: "b".into(),
                    recipient: "a".into(),
                    amount,
                    currency: "EUR".into(),
                    memo: p.memo.clone(),
                },
                ok(Reply::Transfer {
                    tx: tx(&p),
                    replayed: false,
                    refunded_total: 0,
                }),
            )
        };
        vec![
            pay(0, (100, 200), "k1", 100),
            call(
                1,
                (300, 400),
                reshard(4),
                ok(Reply::Shards {
                    shards: 4,
                    balance: 1_100,
                    raised: true,
                }),
            ),
            pay(2, (500, 600), "k2", 50),
            pay(3, (700, 800), "k3", 10),
            // Before the reshard: the whole history, on shard 0.
            call(
                4,
                (250, 260),
                history(10, None),
                ok(page(truth, &["p1", "open-a"])),
            ),
            // After: the newest two, then the rest from the token.
            call(
                5,
                (900, 950),
                history(2, None),
                ok(page(truth, &["p3", "p2"])),
            ),
            call(
                6,
                (960, 990),
                history(5, Some((2, 1))),
                ok(page(truth, &["p1", "open-a"])),
            ),
            call(
                7,
                (900, 950),
                Request::Balance {
                    account: "a".into(),
                },
                ok(balance(1_160, 4)),
            ),
            call(
                8,
                (250, 260),
                Request::Balance {
                    account: "a".into(),
                },
                ok(balance(1_100, 1)),
            ),
            // Between k2 and k3: the newest entry is on shard 2, shard 0's
            // newest is p1 (the spec's count would have taken p2 for it).
            call(
                9,
                (650, 690),
                history(5, None),
                ok(page(truth, &["p2", "p1", "open-a"])),
            ),
            // The same count again, and fewer: unchanged, and refused.
            call(
                10,
                (1_000, 1_100),
                reshard(4),
                ok(Reply::Shards {
                    shards: 4,
                    balance: 1_160,
                    raised: false,
                }),
            ),
            call(11, (1_000, 1_100), reshard(2), cannot_shrink()),
        ]
    }

    fn cannot_shrink() -> Answer {
        Answer {
            class: Class::Refused,
            code: "FailedPrecondition".into(),
            reason: "SHARDS_CANNOT_SHRINK".into(),
            message: String::new(),
            reply: None,
        }
    }

    fn keyed() -> Vec<KeyedOp> {
        [(0, "k1"), (2, "k2"), (3, "k3")]
            .into_iter()
            .map(|(op, key)| KeyedOp {
                op,
                sender: "b".into(),
                key: key.into(),
                fate: Fate::Committed,
                reuse: false,
            })
            .collect()
    }

    fn checks_of(anomalies: &[Anomaly]) -> Vec<&'static str> {
        anomalies.iter().map(|a| a.check).collect()
    }

    #[test]
    fn a_history_with_an_account_resharded_midway_passes() {
        let truth = truth();
        let (anomalies, coverage) = check(&calls(&truth), &keyed(), &truth, Some(64));
        assert!(anomalies.is_empty(), "{anomalies:#?}");
        assert_eq!(coverage.balance_reads_checked, 4);
        assert_eq!(coverage.pages_checked, 4);
        assert_eq!(coverage.reshard_ops, 3);
        assert_eq!(
            (
                coverage.reshards_raised,
                coverage.reshards_unchanged,
                coverage.reshards_refused
            ),
            (1, 1, 1)
        );
        let resharded = &coverage.accounts_resharded;
        assert_eq!(resharded.len(), 1, "{resharded:?}");
        assert_eq!(
            (
                resharded[0].account.as_str(),
                resharded[0].opening_shards,
                resharded[0].final_shards,
                resharded[0].by
            ),
            ("a", 1, 4, "SetBalanceShards")
        );
        assert_eq!(coverage.resharded_account_reads, 6);
    }

    #[test]
    fn a_count_nobody_asked_for_is_flagged_unless_promotion_gives_it() {
        let mut truth = truth();
        truth.accounts.get_mut("a").expect("a").shards = 8;
        let calls = calls(&truth);
        let (anomalies, _) = check(&calls, &keyed(), &truth, Some(64));
        assert_eq!(
            checks_of(&anomalies),
            ["shards_only_rise"],
            "{anomalies:#?}"
        );
        let (anomalies, coverage) = check(&calls, &keyed(), &truth, Some(8));
        assert!(anomalies.is_empty(), "{anomalies:#?}");
        assert_eq!(coverage.accounts_resharded[0].by, "promotion");
        // An account that opened sharded is never promoted (and a read
        // showing it with 1 shard is wrong too).
        truth.accounts.get_mut("a").expect("a").spec.opening_shards = 2;
        let (anomalies, _) = check(&calls, &keyed(), &truth, Some(8));
        assert!(
            anomalies.iter().all(|a| a.check == "shards_only_rise")
                && anomalies
                    .iter()
                    .any(|a| a.what.contains("which no SetBalanceShards")),
            "{anomalies:#?}"
        );
    }

    #[test]
    fn wrong_reshard_answers_are_flagged() {
        let truth = truth();
        // A count that went down in real time.
        let mut bad = calls(&truth);
        bad[7] = call(
            7,
            (900, 950),
            Request::Balance {
                account: "a".into(),
            },
            ok(balance(1_160, 1)),
        );
        let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
        assert_eq!(
            checks_of(&anomalies),
            ["shards_only_rise"],
            "{anomalies:#?}"
        );
        // SHARDS_CANNOT_SHRINK for the count the account ends with.
        let mut bad = calls(&truth);
        bad[11] = call(11, (1_000, 1_100), reshard(4), cannot_shrink());
        let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
        assert_eq!(
            checks_of(&anomalies),
            ["shards_only_rise"],
            "{anomalies:#?}"
        );
        // OK with fewer shards than asked.
        let mut bad = calls(&truth);
        bad[10].answer = ok(Reply::Shards {
            shards: 2,
            balance: 1_160,
            raised: false,
        });
        let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
        assert!(
            checks_of(&anomalies)
                .iter()
                .all(|c| *c == "shards_only_rise")
                && !anomalies.is_empty(),
            "{anomalies:#?}"
        );
    }

    #[test]
    fn pages_of_a_resharded_account_are_checked_on_shard_0() {
        let truth = truth();
        // A wrong balance_after before the first entry of another shard.
        let mut bad = calls(&truth);
        if let Some(Reply::Page { entries, .. }) = &mut bad[6].answer.reply {
            entries[0].balance_after -= 1;
        }
        let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
        assert_eq!(
            checks_of(&anomalies),
            ["history_page_is_a_cut"],
            "{anomalies:#?}"
        );
        // A short page that stops before shard 0's entry 1.
        let mut bad = calls(&truth);
        bad[6].answer = ok(page(&truth, &["p1"]));
        let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
        assert_eq!(
            checks_of(&anomalies),
            ["history_page_is_a_cut"],
            "{anomalies:#?}"
        );
        // A first page that misses p3, acknowledged before it began.
        let mut bad = calls(&truth);
        bad[5].answer = ok(page(&truth, &["p2", "p1"]));
        let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
        assert_eq!(
            checks_of(&anomalies),
            ["history_page_is_a_cut"],
            "{anomalies:#?}"
        );
    }
}
