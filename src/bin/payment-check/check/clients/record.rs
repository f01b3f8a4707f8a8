//! The record of a run: what each call asked and was answered, how each
//! keyed operation ended, and the shared [`Recorder`] of them all.

use super::CLIENT_GRACE;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tonic_types::StatusExt;

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

    pub(super) fn of_status(status: &tonic::Status) -> Answer {
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

    pub(super) fn client_timeout() -> Answer {
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

/// The shared record of a run.
pub struct Recorder {
    started: Instant,
    pub(super) next_call: AtomicUsize,
    next_op: AtomicUsize,
    calls: Mutex<Vec<Call>>,
    keyed: Mutex<Vec<KeyedOp>>,
    pub(super) done: AtomicUsize,
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

    pub(super) fn push(&self, call: Call) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    pub(super) fn push_keyed(&self, op: KeyedOp) {
        self.keyed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(op);
    }
}
