//! The workload: N clients issuing a seeded random mix of every operation
//! through the instances, following the contract's retry rules, and the
//! record of every call they made.
//!
//! The retry rules, as the contract gives them to a client:
//! - MakePayment, AuthorizePayment, RefundPayment: after an ambiguous
//!   answer (DEADLINE_EXCEEDED, UNAVAILABLE, ABORTED, a broken connection)
//!   send the same call with the same key again, up to
//!   [`KEYED_ATTEMPTS_MAX`] times; if the key's fate is still open (every
//!   answer ambiguous, or a refusal after an ambiguous answer, which says
//!   nothing of the earlier attempt's write), ask GetPayment with
//!   `finalize` for the final answer: found (committed) or NOT_FOUND
//!   KEY_FENCED (never). The key is never used again after that.
//! - CaptureHold, VoidHold: the same call again, up to the same bound (a
//!   repeated capture or void replays); the hold's final state tells.
//! - Reads are not retried: each answer is checked as it came.
//! - SetBalanceShards (the admin's, see [`run_admin`]): the same call
//!   again after an ambiguous answer, up to [`ADMIN_ATTEMPTS_MAX`] times;
//!   it is idempotent, so the final shard count tells.
//!
//! Now and then a client reuses the key of a hold it placed for another
//! call with the hold's own parties, amount and memo: a MakePayment, or an
//! AuthorizePayment with another expiry (a client that mixes up its kept
//! keys). The contract answers ALREADY_EXISTS, IDEMPOTENCY_KEY_REUSED, and
//! never the hold as if it were the call's replay; the checks hold it to
//! that (see [`KeyedOp::reuse`]).

use super::fleet::DEV_SECRET;
use payment::auth::{DevToken, mint_dev_token};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// The caller every client acts as: an admin who owns every account (only
/// a sender's owner may pay from it; an admin may capture, void, refund).
pub const CHECK_SUB: &str = "payment-check";
/// Most calls of one keyed operation before it asks for the final answer
/// (each operation draws its own number, 1 to this).
pub const KEYED_ATTEMPTS_MAX: u32 = 4;
/// GetPayment calls with finalize for one key before the client leaves it
/// to the end of the run (DynamoDB Local may be down for a while).
pub const FINALIZE_ATTEMPTS_MAX: u32 = 12;
/// The pause before a retry is drawn from this range (ms).
const RETRY_PAUSE_MS: (u64, u64) = (20, 400);
/// How long past its deadline the client waits for an answer before it
/// gives up on the call itself (a hang detector, not a speed limit).
const CLIENT_GRACE: Duration = Duration::from_secs(10);
/// Longest page a client asks for.
const PAGE_SIZE_MAX: i32 = 12;
/// Most SetBalanceShards calls of one admin operation (each retry after an
/// ambiguous answer; DynamoDB Local may be down for a while).
pub const ADMIN_ATTEMPTS_MAX: u32 = 8;
/// The admin's extra pause before a retry (ms), on top of the usual one.
const ADMIN_PAUSE_MS: u64 = 500;

/// One account of the run, as it opens. Its shard count may rise during
/// the run (SetBalanceShards, or an instance promoting it): what it is at
/// a moment is in the answers and, at the end, in the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSpec {
    pub id: String,
    pub currency: String,
    /// The balance shards it opens with.
    pub opening_shards: u32,
    pub opening_minor: i64,
}

/// An admin's SetBalanceShards of the workload: once `at_done` operations
/// are done, raise `account` to `shards` (which may also be its count or
/// fewer, to see those answered).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reshard {
    pub at_done: usize,
    pub account: String,
    pub shards: u32,
}

/// What a call asked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Pay {
        key: String,
        sender: String,
        recipient: String,
        amount: i64,
        currency: String,
        memo: String,
    },
    Authorize {
        key: String,
        sender: String,
        recipient: String,
        amount: i64,
        currency: String,
        memo: String,
        expires_in_s: i64,
    },
    Capture {
        sender: String,
        key: String,
        amount: i64,
    },
    Void {
        sender: String,
        key: String,
    },
    /// A refund paid by `payer` (the refunded payment's recipient) under
    /// `key`, of the payment made by `payment_sender` with `payment_key`.
    Refund {
        key: String,
        payer: String,
        payment_sender: String,
        payment_key: String,
        amount: i64,
        memo: String,
    },
    Lookup {
        sender: String,
        key: String,
        finalize: bool,
    },
    Balance {
        account: String,
    },
    /// A history page; `after` is the (shard, sequence) of the entry whose
    /// token it continues from.
    History {
        account: String,
        page_size: i32,
        page_token: String,
        after: Option<(u32, u64)>,
    },
    /// SetBalanceShards (an admin's).
    SetShards {
        account: String,
        shards: u32,
    },
}

impl Request {
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Pay { .. } => "pay",
            Request::Authorize { .. } => "authorize",
            Request::Capture { .. } => "capture",
            Request::Void { .. } => "void",
            Request::Refund { .. } => "refund",
            Request::Lookup {
                finalize: false, ..
            } => "lookup",
            Request::Lookup { finalize: true, .. } => "finalize",
            Request::Balance { .. } => "balance",
            Request::History { .. } => "history",
            Request::SetShards { .. } => "reshard",
        }
    }

    /// The (paying account, key) of a keyed call.
    pub fn key(&self) -> Option<(&str, &str)> {
        match self {
            Request::Pay { sender, key, .. } | Request::Authorize { sender, key, .. } => {
                Some((sender, key))
            }
            Request::Refund { payer, key, .. } => Some((payer, key)),
            _ => None,
        }
    }
}

/// A transaction as answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Tx {
    pub id: String,
    pub sender: String,
    pub recipient: String,
    pub amount: i64,
    pub currency: String,
    pub kind: i32,
    pub refund_of: String,
    pub created_at_ms: i64,
}

/// A hold as answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HoldView {
    pub id: String,
    pub sender: String,
    pub recipient: String,
    pub amount: i64,
    pub currency: String,
    pub state: i32,
    pub captured: i64,
    pub expires_at_ms: i64,
}

/// One entry of a history page as answered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PageEntry {
    pub tx: Tx,
    pub direction: i32,
    pub balance_after: i64,
    pub sequence: u64,
    pub shard: u32,
    pub has_token: bool,
}

/// What an OK answer said.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Transfer {
        tx: Tx,
        replayed: bool,
        refunded_total: i64,
    },
    Hold {
        hold: HoldView,
        capture: Option<Tx>,
        replayed: bool,
    },
    Found {
        tx: Option<Tx>,
        hold: Option<HoldView>,
        refunded_total: i64,
    },
    Balance {
        balance: i64,
        held: i64,
        available: i64,
        /// The account's balance shards when read.
        shards: u32,
    },
    Page {
        entries: Vec<PageEntry>,
        tokens: Vec<String>,
    },
    /// SetBalanceShards: the account after the call.
    Shards {
        shards: u32,
        balance: i64,
        raised: bool,
    },
}

/// How a call ended, for the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Ok,
    /// An answer that says the call did nothing.
    Refused,
    /// An answer that leaves it open (deadline, unavailable, aborted, a
    /// broken connection).
    Ambiguous,
}

/// What a call was answered.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub class: Class,
    /// "OK" or the gRPC code's name.
    pub code: String,
    /// The ErrorInfo reason, when the service gave one.
    pub reason: String,
    pub message: String,
    pub reply: Option<Reply>,
}

impl Answer {
    pub(crate) fn ok(reply: Reply) -> Answer {
        Answer {
            class: Class::Ok,
            code: "OK".into(),
            reason: String::new(),
            message: String::new(),
            reply: Some(reply),
        }
    }

    fn of_status(status: &tonic::Status) -> Answer {
        use tonic::Code;
        let class = match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::OutOfRange
            | Code::Unauthenticated
            | Code::Unimplemented => Class::Refused,
            _ => Class::Ambiguous,
        };
        let reason = status
            .get_error_details()
            .error_info()
            .map(|info| info.reason.clone())
            .unwrap_or_default();
        Answer {
            class,
            code: format!("{:?}", status.code()),
            reason,
            message: status.message().chars().take(300).collect(),
            reply: None,
        }
    }

    fn client_timeout() -> Answer {
        Answer {
            class: Class::Ambiguous,
            code: "DeadlineExceeded".into(),
            reason: "CLIENT_GAVE_UP".into(),
            message: format!("no answer within the deadline and {CLIENT_GRACE:?} more"),
            reply: None,
        }
    }
}

/// One call: who made it, where, when (µs since the run began), what was
/// asked and answered. `op` groups the calls of one operation (a keyed
/// call's retries and its final lookups, an admin's retries). `client` is
/// the client's index; one past the last client is the end of the run's
/// final lookups, two past it the admin.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub id: usize,
    pub op: usize,
    pub client: usize,
    pub instance: usize,
    pub invoked_us: u64,
    pub completed_us: u64,
    pub deadline_ms: u64,
    pub request: Request,
    pub answer: Answer,
}

/// How a keyed operation ended, as the client learned it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// Answered OK (by the call or its final lookup).
    Committed,
    /// Refused, with no ambiguous attempt before.
    Refused,
    /// The final lookup fenced the key: never.
    Fenced,
    /// The final lookup answered NOT_FOUND without a fence (a server that
    /// does not fence): it had not committed when read, and nothing stops
    /// a write still on the wire.
    NotFoundUnfenced,
    /// No final answer (yet).
    Open,
}

/// A keyed operation's outcome, for the checks.
#[derive(Debug, Clone, Serialize)]
pub struct KeyedOp {
    pub op: usize,
    pub sender: String,
    pub key: String,
    pub fate: Fate,
    /// The key was already the key of a committed hold, and this call is
    /// another one (a payment, or a hold with another expiry): every answer
    /// must be ALREADY_EXISTS or ambiguous, never OK.
    pub reuse: bool,
}

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Workload {
    pub seed: u64,
    pub clients: usize,
    pub operations: usize,
    pub deadline_ms: (u64, u64),
    pub accounts: Arc<Vec<AccountSpec>>,
    /// Largest amount of a payment or hold.
    pub amount_max: i64,
    /// Hold expiries are drawn from this range (s); 60 is the least.
    pub hold_expiry_s: (i64, i64),
    /// The admin's SetBalanceShards calls, in order (see [`run_admin`]).
    pub reshards: Vec<Reshard>,
}

/// The shared record of a run.
pub struct Recorder {
    started: Instant,
    next_call: AtomicUsize,
    next_op: AtomicUsize,
    calls: Mutex<Vec<Call>>,
    keyed: Mutex<Vec<KeyedOp>>,
    done: AtomicUsize,
}

impl Recorder {
    pub fn new(started: Instant) -> Recorder {
        Recorder {
            started,
            next_call: AtomicUsize::new(0),
            next_op: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            keyed: Mutex::new(Vec::new()),
            done: AtomicUsize::new(0),
        }
    }

    pub fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    pub fn new_op(&self) -> usize {
        self.next_op.fetch_add(1, Ordering::SeqCst)
    }

    /// Operations completed so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    pub fn take(&self) -> (Vec<Call>, Vec<KeyedOp>) {
        let mut calls = std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()));
        calls.sort_by_key(|c| c.id);
        let keyed = std::mem::take(&mut *self.keyed.lock().unwrap_or_else(|e| e.into_inner()));
        (calls, keyed)
    }

    fn push(&self, call: Call) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    fn push_keyed(&self, op: KeyedOp) {
        self.keyed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
    }
}

/// A bearer token for [`CHECK_SUB`], valid for `ttl`.
pub fn check_token(ttl: Duration) -> Result<tonic::metadata::AsciiMetadataValue, String> {
    let token = mint_dev_token(
        DEV_SECRET.as_bytes(),
        &DevToken {
            sub: CHECK_SUB,
            admin: true,
            ttl,
            ..Default::default()
        },
    )?;
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "token is not a header value".to_owned())
}

/// What the clients share: the instances' channels, the token, the record.
pub struct Shared {
    pub channels: Vec<Channel>,
    pub token: tonic::metadata::AsciiMetadataValue,
    pub recorder: Arc<Recorder>,
    pub workload: Workload,
    /// The most balance shards any answer showed of each account so far
    /// (a count only rises), for the clients' choices.
    pub shards_seen: Mutex<HashMap<String, u32>>,
}

impl Shared {
    pub fn new(
        channels: Vec<Channel>,
        token: tonic::metadata::AsciiMetadataValue,
        recorder: Arc<Recorder>,
        workload: Workload,
    ) -> Shared {
        Shared {
            channels,
            token,
            recorder,
            workload,
            shards_seen: Mutex::new(HashMap::new()),
        }
    }

    /// The account's balance shards as far as the answers so far showed:
    /// its opening count, or more once it was resharded.
    pub fn shards_of(&self, account: &AccountSpec) -> u32 {
        let seen = self
            .shards_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account.id)
            .copied()
            .unwrap_or(0);
        account.opening_shards.max(seen)
    }

    /// Notes the shard count an answer showed (a balance read, a
    /// reshard's answer, or a page with entries on higher shards).
    fn saw_shards(&self, request: &Request, answer: &Answer) {
        let (account, shards) = match (request, &answer.reply) {
            (Request::Balance { account }, Some(Reply::Balance { shards, .. }))
            | (Request::SetShards { account, .. }, Some(Reply::Shards { shards, .. })) => {
                (account, *shards)
            }
            (Request::History { account, .. }, Some(Reply::Page { entries, .. })) => {
                match entries.iter().map(|e| e.shard.saturating_add(1)).max() {
                    Some(shards) => (account, shards),
                    None => return,
                }
            }
            _ => return,
        };
        let mut seen = self.shards_seen.lock().unwrap_or_else(|e| e.into_inner());
        let known = seen.entry(account.clone()).or_default();
        *known = (*known).max(shards);
    }
}

/// One client's memory of what it did, to pick targets from (only its
/// own, so that its choices depend on its seed and its answers alone).
#[derive(Default)]
struct Memory {
    /// Holds placed: (sender, key, amount); the hold may not exist.
    holds: Vec<(String, String, i64)>,
    /// Payments and captures answered OK: (sender, key, recipient, amount).
    paid: Vec<(String, String, String, i64)>,
    /// Every key used: (paying account, key).
    keys: Vec<(String, String)>,
    /// The AuthorizePayment calls whose hold committed, as asked.
    placed: Vec<Request>,
}

struct Client {
    index: usize,
    shared: Arc<Shared>,
    rng: StdRng,
    memory: Memory,
    ops: usize,
}

/// Runs one client's share of the operations.
pub async fn run_client(shared: Arc<Shared>, index: usize) {
    let workload = &shared.workload;
    let share = workload.operations / workload.clients
        + usize::from(index < workload.operations % workload.clients);
    let seed = workload.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut client = Client::new(&shared, index, seed);
    for _ in 0..share {
        client.one().await;
        shared.recorder.done.fetch_add(1, Ordering::SeqCst);
    }
}

/// The admin's share of the workload: each of [`Workload::reshards`] once
/// its point of the run is reached (by the operations done, like the kills:
/// the same point on a slow machine and a fast one), SetBalanceShards under
/// the same deadlines, instances and faults as every call, retried with the
/// same arguments after an ambiguous answer. Its calls are recorded as
/// client `index` (its operations do not count as done). Returns when the
/// last one is answered (every point is reached before the clients are
/// done).
pub async fn run_admin(shared: Arc<Shared>, index: usize) {
    let workload = &shared.workload;
    let seed = workload.seed ^ (index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut client = Client::new(&shared, index, seed);
    for reshard in workload.reshards.clone() {
        let due = reshard.at_done.min(workload.operations);
        while shared.recorder.done() < due {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.reshard(&reshard).await;
    }
}

impl Client {
    fn new(shared: &Arc<Shared>, index: usize, seed: u64) -> Self {
        Client {
            index,
            shared: shared.clone(),
            rng: StdRng::seed_from_u64(seed),
            memory: Memory::default(),
            ops: 0,
        }
    }

    fn accounts(&self) -> &[AccountSpec] {
        &self.shared.workload.accounts
    }

    /// Whether the account has several balance shards, as far as the
    /// answers so far showed (an ordinary account resharded during the run
    /// is one).
    fn sharded(&self, account: &AccountSpec) -> bool {
        self.shared.shards_of(account) > 1
    }

    /// Two distinct accounts of one currency: a sender and a recipient.
    /// Ordinary senders mostly; a sharded account sends now and then.
    fn parties(&mut self) -> (AccountSpec, AccountSpec) {
        let accounts = self.accounts().to_vec();
        loop {
            let sender = &accounts[self.rng.random_range(0..accounts.len())];
            if self.sharded(sender) && !self.rng.random_ratio(1, 4) {
                continue;
            }
            let same: Vec<&AccountSpec> = accounts
                .iter()
                .filter(|a| a.currency == sender.currency && a.id != sender.id)
                .collect();
            if same.is_empty() {
                continue;
            }
            // Into a sharded account about one time in three.
            let sharded: Vec<&&AccountSpec> = same.iter().filter(|a| self.sharded(a)).collect();
            let recipient = if !sharded.is_empty() && self.rng.random_ratio(1, 3) {
                (*sharded[self.rng.random_range(0..sharded.len())]).clone()
            } else {
                same[self.rng.random_range(0..same.len())].clone()
            };
            return (sender.clone(), recipient);
        }
    }

    fn random_account(&mut self) -> String {
        let accounts = self.shared.workload.accounts.clone();
        accounts[self.rng.random_range(0..accounts.len())]
            .id
            .clone()
    }

    fn new_key(&mut self) -> String {
        self.ops += 1;
        format!("c{}-{}", self.index, self.ops)
    }

    fn amount(&mut self) -> i64 {
        self.rng.random_range(1..=self.shared.workload.amount_max)
    }

    async fn one(&mut self) {
        let pick = self.rng.random_range(0..100u32);
        match pick {
            0..=29 => self.pay().await,
            30..=41 => self.authorize().await,
            42..=51 => self.capture_or_void(true).await,
            52..=57 => self.capture_or_void(false).await,
            58..=67 => self.refund().await,
            68..=74 => self.lookup().await,
            75..=87 => self.balance().await,
            _ => self.history().await,
        }
    }

    async fn pay(&mut self) {
        if !self.memory.placed.is_empty() && self.rng.random_ratio(1, 12) {
            return self.reuse_hold_key(false).await;
        }
        let (sender, recipient) = self.parties();
        let key = self.new_key();
        let amount = self.amount();
        let request = Request::Pay {
            key: key.clone(),
            sender: sender.id.clone(),
            recipient: recipient.id.clone(),
            amount,
            currency: sender.currency.clone(),
            memo: format!("pay {key}"),
        };
        let fate = self.keyed(request, false).await;
        self.memory.keys.push((sender.id.clone(), key.clone()));
        if fate == Fate::Committed {
            self.memory
                .paid
                .push((sender.id, key, recipient.id, amount));
        }
    }

    async fn authorize(&mut self) {
        if !self.memory.placed.is_empty() && self.rng.random_ratio(1, 8) {
            return self.reuse_hold_key(true).await;
        }
        let (sender, recipient) = self.parties();
        let key = self.new_key();
        let amount = self.amount();
        let (low, high) = self.shared.workload.hold_expiry_s;
        let request = Request::Authorize {
            key: key.clone(),
            sender: sender.id.clone(),
            recipient: recipient.id.clone(),
            amount,
            currency: sender.currency.clone(),
            memo: format!("hold {key}"),
            expires_in_s: self.rng.random_range(low..=high),
        };
        let fate = self.keyed(request.clone(), false).await;
        self.memory.keys.push((sender.id.clone(), key.clone()));
        if fate == Fate::Committed {
            self.memory.holds.push((sender.id, key, amount));
            self.memory.placed.push(request);
        }
    }

    /// Another call under the key of a committed hold, with the hold's own
    /// parties, amount and memo: a payment (`as_hold` false) or a hold with
    /// another expiry. Whatever became of the hold since, the key holds it,
    /// so the answer must be ALREADY_EXISTS (the checks see to it).
    async fn reuse_hold_key(&mut self, as_hold: bool) {
        let placed = self.memory.placed[self.rng.random_range(0..self.memory.placed.len())].clone();
        let Request::Authorize {
            key,
            sender,
            recipient,
            amount,
            currency,
            memo,
            expires_in_s,
        } = placed
        else {
            return;
        };
        let request = if as_hold {
            let (low, high) = self.shared.workload.hold_expiry_s;
            let mut other = self.rng.random_range(low..=high);
            if other == expires_in_s {
                other = if other < high { other + 1 } else { other - 1 };
            }
            Request::Authorize {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
                expires_in_s: other,
            }
        } else {
            Request::Pay {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
            }
        };
        self.keyed(request, true).await;
    }

    async fn capture_or_void(&mut self, capture: bool) {
        if self.memory.holds.is_empty() {
            return self.pay().await;
        }
        let (sender, key, amount) = self
            .memory
            .holds
            .swap_remove(self.rng.random_range(0..self.memory.holds.len()));
        let request = if capture {
            let amount = if self.rng.random_bool(0.5) {
                0
            } else {
                self.rng.random_range(1..=amount)
            };
            Request::Capture {
                sender: sender.clone(),
                key: key.clone(),
                amount,
            }
        } else {
            Request::Void {
                sender: sender.clone(),
                key: key.clone(),
            }
        };
        let op = self.shared.recorder.new_op();
        let mut last = None;
        for _ in 0..KEYED_ATTEMPTS_MAX {
            let answer = self.call(op, request.clone()).await;
            let class = answer.class;
            last = Some(answer);
            if class != Class::Ambiguous {
                break;
            }
            self.pause().await;
        }
        if let Some(Answer {
            reply:
                Some(Reply::Hold {
                    hold,
                    capture: Some(_),
                    ..
                }),
            ..
        }) = last
            && capture
        {
            self.memory
                .paid
                .push((sender, key, hold.recipient, hold.captured));
        }
    }

    async fn refund(&mut self) {
        if self.memory.paid.is_empty() {
            return self.pay().await;
        }
        let (payment_sender, payment_key, payer, amount) =
            self.memory.paid[self.rng.random_range(0..self.memory.paid.len())].clone();
        let key = self.new_key();
        let amount = if self.rng.random_bool(0.3) {
            0
        } else {
            self.rng.random_range(1..=amount.max(1))
        };
        let request = Request::Refund {
            key: key.clone(),
            payer: payer.clone(),
            payment_sender,
            payment_key,
            amount,
            memo: format!("refund {key}"),
        };
        self.keyed(request, false).await;
        self.memory.keys.push((payer, key));
    }

    async fn lookup(&mut self) {
        if self.memory.keys.is_empty() {
            return self.balance().await;
        }
        let (sender, key) =
            self.memory.keys[self.rng.random_range(0..self.memory.keys.len())].clone();
        let op = self.shared.recorder.new_op();
        self.call(
            op,
            Request::Lookup {
                sender,
                key,
                finalize: false,
            },
        )
        .await;
    }

    async fn balance(&mut self) {
        let account = self.random_account();
        let op = self.shared.recorder.new_op();
        self.call(op, Request::Balance { account }).await;
    }

    async fn history(&mut self) {
        let account = self.random_account();
        let op = self.shared.recorder.new_op();
        let page_size = self.rng.random_range(1..=PAGE_SIZE_MAX);
        let first = Request::History {
            account: account.clone(),
            page_size,
            page_token: String::new(),
            after: None,
        };
        let answer = self.call(op, first).await;
        // Now and then, the next page from the last entry's token.
        if let Some(Reply::Page { entries, tokens }) = answer.reply
            && let (Some(last), Some(token)) = (entries.last(), tokens.last())
            && !token.is_empty()
            && self.rng.random_bool(0.5)
        {
            let next = Request::History {
                account,
                page_size: self.rng.random_range(1..=PAGE_SIZE_MAX),
                page_token: token.clone(),
                after: Some((last.shard, last.sequence)),
            };
            self.call(op, next).await;
        }
    }

    /// One SetBalanceShards operation: the same call again after an
    /// ambiguous answer (it is idempotent), until an OK or a refusal or
    /// [`ADMIN_ATTEMPTS_MAX`] calls.
    async fn reshard(&mut self, reshard: &Reshard) {
        let op = self.shared.recorder.new_op();
        let request = Request::SetShards {
            account: reshard.account.clone(),
            shards: reshard.shards,
        };
        for _ in 0..ADMIN_ATTEMPTS_MAX {
            let answer = self.call(op, request.clone()).await;
            if answer.class != Class::Ambiguous {
                break;
            }
            self.pause().await;
            tokio::time::sleep(Duration::from_millis(ADMIN_PAUSE_MS)).await;
        }
    }

    async fn pause(&mut self) {
        let ms = self.rng.random_range(RETRY_PAUSE_MS.0..=RETRY_PAUSE_MS.1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// A keyed call under the retry rules; records its fate. `reuse`: the
    /// key is a committed hold's, and this is another call.
    async fn keyed(&mut self, request: Request, reuse: bool) -> Fate {
        let (sender, key) = request
            .key()
            .map(|(s, k)| (s.to_owned(), k.to_owned()))
            .unwrap_or_default();
        let op = self.shared.recorder.new_op();
        let mut ambiguous = false;
        let mut fate = Fate::Open;
        // The contract allows either after an ambiguous answer: the same
        // call again, or the final lookup at once. Some operations go
        // straight to the lookup, which is where a late write would bite.
        let attempts = self.rng.random_range(1..=KEYED_ATTEMPTS_MAX);
        for _ in 0..attempts {
            let answer = self.call(op, request.clone()).await;
            match answer.class {
                Class::Ok => {
                    fate = Fate::Committed;
                    break;
                }
                Class::Refused if !ambiguous => {
                    fate = Fate::Refused;
                    break;
                }
                // A refusal after an ambiguous attempt says nothing of that
                // attempt's write: only the final lookup tells.
                Class::Refused => break,
                Class::Ambiguous => ambiguous = true,
            }
            self.pause().await;
        }
        if fate == Fate::Open {
            fate = self.finalize(op, &sender, &key).await;
        }
        self.shared.recorder.push_keyed(KeyedOp {
            op,
            sender,
            key,
            fate: fate.clone(),
            reuse,
        });
        fate
    }

    /// GetPayment with finalize until a definite answer.
    async fn finalize(&mut self, op: usize, sender: &str, key: &str) -> Fate {
        for _ in 0..FINALIZE_ATTEMPTS_MAX {
            let request = Request::Lookup {
                sender: sender.to_owned(),
                key: key.to_owned(),
                finalize: true,
            };
            let answer = self.call(op, request).await;
            if let Some(fate) = fate_of_final_lookup(&answer) {
                return fate;
            }
            self.pause().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Fate::Open
    }

    /// One call to a random instance, recorded.
    async fn call(&mut self, op: usize, request: Request) -> Answer {
        let instance = self.rng.random_range(0..self.shared.channels.len());
        let (low, high) = self.shared.workload.deadline_ms;
        let deadline_ms = self.rng.random_range(low..=high);
        call_instance(&self.shared, self.index, instance, op, deadline_ms, request).await
    }
}

/// The fate a GetPayment with finalize tells, or None if it leaves it open.
pub fn fate_of_final_lookup(answer: &Answer) -> Option<Fate> {
    match answer.class {
        Class::Ok => Some(Fate::Committed),
        Class::Refused if answer.code == "NotFound" && answer.reason == "KEY_FENCED" => {
            Some(Fate::Fenced)
        }
        Class::Refused if answer.code == "NotFound" => Some(Fate::NotFoundUnfenced),
        _ => None,
    }
}

/// Makes `request` on instance `instance` with a deadline, and records it.
pub async fn call_instance(
    shared: &Shared,
    client: usize,
    instance: usize,
    op: usize,
    deadline_ms: u64,
    request: Request,
) -> Answer {
    let recorder = &shared.recorder;
    let id = recorder.next_call.fetch_add(1, Ordering::SeqCst);
    let invoked_us = recorder.now_us();
    let deadline = Duration::from_millis(deadline_ms);
    let mut grpc = PaymentServiceClient::new(shared.channels[instance].clone());
    let answer = match tokio::time::timeout(
        deadline + CLIENT_GRACE,
        send(&mut grpc, &shared.token, deadline, &request),
    )
    .await
    {
        Ok(answer) => answer,
        Err(_) => Answer::client_timeout(),
    };
    let completed_us = recorder.now_us();
    shared.saw_shards(&request, &answer);
    recorder.push(Call {
        id,
        op,
        client,
        instance,
        invoked_us,
        completed_us,
        deadline_ms,
        request,
        answer: answer.clone(),
    });
    answer
}

fn authorized<T>(
    message: T,
    token: &tonic::metadata::AsciiMetadataValue,
    deadline: Duration,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request.set_timeout(deadline);
    request
}

fn ms(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    timestamp
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn tx(t: Option<pb::Transaction>) -> Tx {
    let t = t.unwrap_or_default();
    Tx {
        created_at_ms: ms(&t.created_at),
        id: t.transaction_id,
        sender: t.sender_id,
        recipient: t.recipient_id,
        amount: t.amount,
        currency: t.currency,
        kind: t.kind,
        refund_of: t.refund_of,
    }
}

fn hold(h: Option<pb::Hold>) -> HoldView {
    let h = h.unwrap_or_default();
    HoldView {
        expires_at_ms: ms(&h.expires_at),
        id: h.hold_id,
        sender: h.sender_id,
        recipient: h.recipient_id,
        amount: h.amount,
        currency: h.currency,
        state: h.state,
        captured: h.captured_amount,
    }
}

fn by_key(sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        transaction_id: String::new(),
        sender_id: sender.to_owned(),
        idempotency_key: key.to_owned(),
    })
}

async fn send(
    grpc: &mut PaymentServiceClient<Channel>,
    token: &tonic::metadata::AsciiMetadataValue,
    deadline: Duration,
    request: &Request,
) -> Answer {
    let result: Result<Reply, tonic::Status> = async {
        Ok(match request.clone() {
            Request::Pay {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
            } => {
                let r = grpc
                    .make_payment(authorized(
                        pb::MakePaymentRequest {
                            idempotency_key: key,
                            sender_id: sender,
                            recipient_id: recipient,
                            amount,
                            currency,
                            memo,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                Reply::Transfer {
                    tx: tx(r.transaction),
                    replayed: r.replayed,
                    refunded_total: 0,
                }
            }
            Request::Authorize {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
                expires_in_s,
            } => {
                let r = grpc
                    .authorize_payment(authorized(
                        pb::AuthorizePaymentRequest {
                            idempotency_key: key,
                            sender_id: sender,
                            recipient_id: recipient,
                            amount,
                            currency,
                            memo,
                            expires_in_seconds: expires_in_s,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                Reply::Hold {
                    hold: hold(r.hold),
                    capture: None,
                    replayed: r.replayed,
                }
            }
            Request::Capture {
                sender,
                key,
                amount,
            } => {
                let r = grpc
                    .capture_hold(authorized(
                        pb::CaptureHoldRequest {
                            hold: by_key(&sender, &key),
                            amount,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                Reply::Hold {
                    hold: hold(r.hold),
                    capture: Some(tx(r.transaction)),
                    replayed: r.replayed,
                }
            }
            Request::Void { sender, key } => {
                let r = grpc
                    .void_hold(authorized(
                        pb::VoidHoldRequest {
                            hold: by_key(&sender, &key),
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                Reply::Hold {
                    hold: hold(r.hold),
                    capture: None,
                    replayed: r.replayed,
                }
            }
            Request::Refund {
                key,
                payment_sender,
                payment_key,
                amount,
                memo,
                ..
            } => {
                let r = grpc
                    .refund_payment(authorized(
                        pb::RefundPaymentRequest {
                            idempotency_key: key,
                            payment: by_key(&payment_sender, &payment_key),
                            amount,
                            memo,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                Reply::Transfer {
                    tx: tx(r.transaction),
                    replayed: r.replayed,
                    refunded_total: r.refunded_total,
                }
            }
            Request::Lookup {
                sender,
                key,
                finalize,
            } => {
                let r = grpc
                    .get_payment(authorized(
                        pb::GetPaymentRequest {
                            payment: by_key(&sender, &key),
                            finalize,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                Reply::Found {
                    tx: r.transaction.is_some().then(|| tx(r.transaction)),
                    hold: r.hold.is_some().then(|| hold(r.hold)),
                    refunded_total: r.refunded_total,
                }
            }
            Request::Balance { account } => {
                let r = grpc
                    .get_account_balance(authorized(
                        pb::GetAccountBalanceRequest {
                            account_id: account,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                let a = r.account.unwrap_or_default();
                Reply::Balance {
                    balance: a.balance,
                    held: a.held,
                    available: a.available,
                    shards: u32::try_from(a.balance_shards).unwrap_or(0),
                }
            }
            Request::History {
                account,
                page_size,
                page_token,
                ..
            } => {
                let mut stream = grpc
                    .get_transaction_history(authorized(
                        pb::GetTransactionHistoryRequest {
                            account_id: account,
                            page_size,
                            page_token,
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                let (mut entries, mut tokens) = (Vec::new(), Vec::new());
                while let Some(e) = stream.message().await? {
                    entries.push(PageEntry {
                        tx: tx(e.transaction),
                        direction: e.direction,
                        balance_after: e.balance_after,
                        sequence: u64::try_from(e.sequence).unwrap_or(0),
                        shard: u32::try_from(e.shard).unwrap_or(0),
                        has_token: !e.next_page_token.is_empty(),
                    });
                    tokens.push(e.next_page_token);
                    // More than asked for is an anomaly the checks report;
                    // reading stops at a bound.
                    if entries.len() > 2 * PAGE_SIZE_MAX as usize {
                        break;
                    }
                }
                Reply::Page { entries, tokens }
            }
            Request::SetShards { account, shards } => {
                let r = grpc
                    .set_balance_shards(authorized(
                        pb::SetBalanceShardsRequest {
                            account_id: account,
                            balance_shards: i32::try_from(shards).unwrap_or(i32::MAX),
                        },
                        token,
                        deadline,
                    ))
                    .await?
                    .into_inner();
                let a = r.account.unwrap_or_default();
                Reply::Shards {
                    shards: u32::try_from(a.balance_shards).unwrap_or(0),
                    balance: a.balance,
                    raised: r.raised,
                }
            }
        })
    }
    .await;
    match result {
        Ok(reply) => Answer::ok(reply),
        Err(status) => Answer::of_status(&status),
    }
}
