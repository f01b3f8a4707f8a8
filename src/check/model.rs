//! The checks: the recorded history of calls against what the ledger holds
//! at the end (read directly from DynamoDB Local once nothing is in
//! flight), and against a model of the ledger.
//!
//! What counts as an effect: a payment, hold or refund is committed when
//! its key has a record (GetPayment by key, read directly); its money moved
//! when its transaction is in both parties' histories. Each check is named
//! in [`CHECKS`]; every anomaly names its check and the calls involved.

use super::clients::{AccountSpec, Call, Class, Fate, KeyedOp, Reply, Request};
use crate::domain::{AccountId, IdempotencyKey, PaymentRef};
use crate::ledger::{
    Direction, Entry, Found, HistoryCursor, HoldState, Ledger, LedgerError, Payer, TransferKind,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Most sums one balance read is compared with: the cuts of a sharded
/// account multiply; past this the read is counted as not checked.
const CUT_SUMS_MAX: usize = 200_000;
/// Entries read per history chunk when reading the truth.
const TRUTH_READ_AHEAD: u32 = 100;

/// The checks, in the order the report lists them.
pub const CHECKS: [(&str, &str); 12] = [
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
        text.push_str(&format!("account {id} balance {}\n", account.balance));
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

const ADMIN: Payer<'static> = Payer {
    sub: super::clients::CHECK_SUB,
    admin: true,
};

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
        let found = match ledger.get_payment(&reference, ADMIN).await {
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
}

/// Runs every check but the audit's (the caller adds it).
pub fn check(calls: &[Call], keyed: &[KeyedOp], truth: &Truth) -> (Vec<Anomaly>, Coverage) {
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
    checker.service_errors();
    (checker.anomalies, coverage)
}

fn signed(entry: &Entry) -> i64 {
    match entry.direction {
        Direction::Credit => entry.payment.amount_minor,
        Direction::Debit => -entry.payment.amount_minor,
    }
}

fn kind_number(kind: TransferKind) -> i32 {
    match kind {
        TransferKind::Payment => 1,
        TransferKind::Capture => 2,
        TransferKind::Refund => 3,
        TransferKind::Opening => 4,
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
        if entry.payment.kind == TransferKind::Opening {
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
                if entry.payment.kind != TransferKind::Opening
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
                            && payment.kind == TransferKind::Payment => {}
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
                            && payment.kind == TransferKind::Refund
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
            let (Request::Balance { account }, Some(Reply::Balance { balance, .. })) =
                (&call.request, &call.answer.reply)
            else {
                continue;
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
            let by_id: HashMap<(&str, u32), &Entry> = truth
                .entries
                .iter()
                .map(|e| ((e.payment.transaction_id.as_str(), e.shard), e))
                .collect();
            let sharded = truth.spec.shards > 1;
            for got in entries {
                let Some(entry) = by_id.get(&(got.tx.id.as_str(), got.shard)) else {
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
                    && (sharded || got.balance_after == entry.balance_after_minor);
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
            // A short page ends the history.
            if entries.len() < size && !sharded {
                if let Some(last) = entries.last()
                    && last.sequence != 1
                {
                    problems.push(format!(
                        "a short page ends at sequence {}, not at the oldest entry",
                        last.sequence
                    ));
                }
                if entries.is_empty() && !truth.entries.is_empty() && after.is_none() {
                    problems.push("an empty first page of an account with entries".into());
                }
            }
            // A first page of an ordinary account starts at a cut allowed
            // by real time.
            if after.is_none()
                && !sharded
                && let (Some(first), Some(chain)) = (entries.first(), chains.get(&0))
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
                if p.kind == TransferKind::Refund && seen.insert(p.transaction_id.clone()) {
                    *refunded.entry(p.refund_of.clone()).or_default() += p.amount_minor;
                    coverage.refunds += 1;
                }
                if matches!(p.kind, TransferKind::Payment | TransferKind::Capture) {
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
