//! The ledger: the only module that knows the DynamoDB layout and conditions.
//!
//! # Parts
//!
//! One file per operation, each holding only its plan and its conditions:
//! - AddAccount and reading accounts in [`accounts`];
//! - MakePayment in [`payments`];
//! - [`authorize`], [`capture`], [`void`]: AuthorizePayment, CaptureHold,
//!   VoidHold, over what holds share in [`holds`] (where a hold lives, why
//!   each hold ends exactly once, what clock skew can do);
//! - RefundPayment, never more than the payment, in [`refunds`];
//! - GetPayment and ListAccounts in [`lookups`]; GetPayment with finalize,
//!   which fences a key where nothing is stored, in [`fence`];
//! - reading an account's history, merged over its shards, in [`history`];
//!   watching its new entries (WatchAccount), the same merge forwards, in
//!   [`watch`];
//! - SetBalanceShards and the promotion of a hot ordinary account, raising
//!   its shard count online, in [`reshard`];
//! - the whole-ledger check in [`audit`];
//! - what a record of the tables' DynamoDB Streams means, for the event
//!   publisher, in [`stream`].
//!
//! What they share:
//! - [`round`], the one write round: plan from what is known, send one
//!   TransactWriteItems, read every cancellation reason, learn from the
//!   items that come back, go round again with backoff (bounded) or answer;
//!   the transfer (debits, credit, entries) payments, captures and refunds
//!   write; the ownership and currency checks;
//! - [`replay`], the one replay rule for idempotency keys;
//! - [`records`], finding payment, hold and refund records;
//! - [`layout`], the DynamoDB layout alone: keys, attributes, one codec per
//!   kind of item, the schema and the one list of retryable DynamoDB errors;
//! - [`clock`], the ledger's clock (and its test-only skew);
//! - [`shards`], the hot-account mechanism: balance shards, their
//!   consistent snapshot, and which shard a credit goes to;
//! - [`known`], what a warm instance remembers (accounts, shard states, the
//!   records it wrote or read) so that a call costs one request; it only
//!   ever saves requests, DynamoDB's conditions decide;
//! - [`locks`], the in-process queue per account.
//!
//! # Layout
//!
//! Accounts table (key `account_id`):
//! - the account item, keyed by the account id: currency, owner, opening
//!   balance, the number of balance shards, and the state of shard 0;
//! - for an account with `shards` > 1, one item per further shard k, keyed
//!   `<account>#k` (`#` cannot occur in an account id), with `shard_of`;
//!   once the account was resharded, every shard item also carries the
//!   account's count in `shards`.
//!
//! A shard's state is its `balance`, its `version` (the number of history
//! entries in that shard, which is also the newest entry's sequence), its
//! `updated_at` (the newest entry's time; entry times strictly increase per
//! shard), `need` (see [`shards`]), and the shard's open holds: `holds`
//! (a map by hold key of amount and expiry) with `holds_rev`, raised by
//! every change of the map (see [`holds`]). An ordinary account has one
//! shard, its own item, exactly as before sharding existed. Account items
//! carry `listed` for the all-accounts index.
//!
//! Ledger table (key `pk`, `sk`):
//! - history entry: `pk = "A#<account>"` (shard 0) or `"A#<account>#k"`,
//!   `sk = "E#<sequence, 20 digits>"`, one per shard touched by a payment,
//!   plus the opening credit;
//! - payment record: `pk = "P#<sender>"`, `sk = "K#<idempotency key>"`, the
//!   durable idempotency record of a payment, with the shards and sequences
//!   of its entries, `record_txid` (for the transaction index) and
//!   `refunded` once refunds were made; a refund's record is the same, with
//!   `kind = REFUND` and `refund_of`, in its payer's (the refunded
//!   payment's recipient's) partition; a hold's record has `hold`,
//!   `state`, `expires_at` and `hold_shard`, and its capture's legs once
//!   captured; a fence has `fence`, `fenced_at` and `fenced_by` and no
//!   `record_txid` (see [`fence`]): it is kept for ever, like records;
//! - owner count: `pk = "O#<owner>"`, `sk = "COUNT"`, how many accounts the
//!   owner opened (bounded by `OWNER_ACCOUNTS_MAX`).
//!
//! Indexes (KEYS_ONLY; what they find is then read with strong consistency):
//! `by-owner` (`owner`, `account_id`) and `all-accounts` (`listed`,
//! `account_id`) on the accounts table, for ListAccounts; `by-transaction`
//! (`record_txid`) on the ledger table, for GetPayment by transaction id.
//!
//! # Why money is never created or lost
//!
//! A payment commits one TransactWriteItems: an update of every shard it
//! touches (the sender's, one or more; the recipient's, exactly one), their
//! history entries and the payment record. Each shard update is conditioned
//! on the shard's `version` as the writer knew it, so entry sequences are
//! exact and a concurrent change cancels the whole transaction; the debit is
//! also conditioned on `balance >= amount` and the credit on the shard's
//! share of the balance limit; the payment record and the entries are
//! conditioned on not existing, so a payment applies at most once per key.
//! A debit spends only available money: the balance less the holds of the
//! shard that have not expired; it is conditioned on `holds_rev` too, so
//! the holds are exactly those it counted.
//! What the writer knew may come from its own earlier commits: when it is
//! stale, the conditions fail and DynamoDB returns the current items
//! (ReturnValuesOnConditionCheckFailure), and the payment goes round again.

mod accounts;
mod audit;
mod authorize;
mod capture;
mod clock;
mod fence;
mod history;
mod holds;
mod known;
mod layout;
mod locks;
mod lookups;
mod payments;
mod records;
mod refunds;
mod replay;
mod reshard;
mod round;
mod shards;
pub mod stream;
mod void;
mod watch;

pub use audit::{AUDIT_LISTED_MAX, AUDIT_SEGMENTS_MAX, AuditReport, CurrencyTotals};
pub use clock::{TEST_CLOCK_SKEW_MAX_MS, set_test_clock_skew};
pub use history::{HISTORY_CHUNK_MAX, HistoryCursor};
pub use known::Promotion;
pub use layout::IndexSchemas;
pub use reshard::Resharded;
pub use round::PAYMENT_ATTEMPTS_MAX;
pub use shards::BALANCE_SHARDS_MAX;
pub use watch::{Polled, WATCH_READ_PER_SHARD, WatchCursor};

use crate::domain::{BALANCE_MAX_MINOR, Caller, format_money};
use aws_sdk_dynamodb::Client;
use std::sync::Arc;

/// Names of the two DynamoDB tables.
#[derive(Debug, Clone)]
pub struct Tables {
    pub accounts: String,
    pub ledger: String,
}

/// Everything that can go wrong in the ledger. Status codes are decided from
/// this in one place (`crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("account {0:?} already exists")]
    AccountExists(String),
    #[error("{role} account {account_id:?} does not exist")]
    AccountNotFound {
        role: &'static str,
        account_id: String,
    },
    #[error(
        "{role} account {account_id:?} holds {account_currency}, but the payment is in {currency}"
    )]
    CurrencyMismatch {
        role: &'static str,
        account_id: String,
        account_currency: String,
        currency: String,
    },
    #[error(
        "insufficient funds: account {account_id:?} has {} available{}, the {what} needs {}",
        format_money(*available_minor, currency),
        if *held_minor > 0 { format!(" ({} more is held)", format_money(*held_minor, currency)) } else { String::new() },
        format_money(*amount_minor, currency)
    )]
    InsufficientFunds {
        account_id: String,
        /// "payment", "hold" or "refund".
        what: &'static str,
        currency: String,
        available_minor: i64,
        held_minor: i64,
        amount_minor: i64,
    },
    #[error(
        "sender account {account_id:?} holds enough, but spread over more balance shards than one payment may draw from ({shards_max}); pay at most {payable_minor} minor units now and the rest in a second payment"
    )]
    SpreadOverShards {
        account_id: String,
        shards_max: usize,
        payable_minor: i64,
    },
    #[error(
        "account {account_id:?} has {shards} balance shards; asked for {asked}, but a count of shards can only be raised"
    )]
    ShardsCannotShrink {
        account_id: String,
        shards: u32,
        asked: u32,
    },
    #[error(
        "shard {shard} of account {account_id:?} holds {}, more than its share of the balance limit with the shards asked for ({}); pay some of it out first or ask for fewer shards",
        format_money(*balance_minor, currency),
        format_money(*share_minor, currency)
    )]
    ShardOverShare {
        account_id: String,
        shard: u32,
        balance_minor: i64,
        share_minor: i64,
        currency: String,
    },
    #[error(
        "recipient account {account_id:?} would exceed the balance limit of {BALANCE_MAX_MINOR} minor units"
    )]
    BalanceLimit { account_id: String },
    #[error(
        "idempotency key {key:?} was already used by account {sender_id:?} for a different {stored_kind}; use a new key for a new call"
    )]
    IdempotencyKeyReused {
        key: String,
        sender_id: String,
        /// What is stored under the key: "payment", "hold" or "refund".
        stored_kind: &'static str,
    },
    /// A call with a key that GetPayment with finalize fenced: it can never
    /// commit (FAILED_PRECONDITION).
    #[error(
        "idempotency key {key:?} of account {sender_id:?} is fenced: a GetPayment with finalize found no call under it and closed it, so no call with it can ever commit; use a new key"
    )]
    KeyFenced { sender_id: String, key: String },
    /// A lookup of a fenced key: the call with it did not happen and never
    /// will (NOT_FOUND).
    #[error(
        "no payment, hold or refund of sender {sender_id:?} with idempotency key {key:?}: the key is fenced, so the call with it did not happen and never will; decide afresh, with a new key"
    )]
    FencedNotFound { sender_id: String, key: String },
    #[error("the caller does not own sender account {account_id:?}")]
    NotOwner { account_id: String },
    #[error("{what}; only {who} may")]
    NotAllowed { what: String, who: &'static str },
    #[error("no {what} {name} is known to the caller")]
    PaymentNotFound { what: &'static str, name: String },
    #[error("hold {hold_id} expired at {expired_at}; its money is available to the sender again")]
    HoldExpired { hold_id: String, expired_at: String },
    #[error("hold {hold_id} was captured already ({}); it cannot be {action}", format_money(*captured_minor, currency))]
    HoldCaptured {
        hold_id: String,
        action: &'static str,
        captured_minor: i64,
        currency: String,
    },
    #[error("hold {hold_id} was voided; it cannot be {action}")]
    HoldVoided {
        hold_id: String,
        action: &'static str,
    },
    #[error(
        "the capture of {} exceeds hold {hold_id}, which holds {}",
        format_money(*amount_minor, currency),
        format_money(*held_minor, currency)
    )]
    CaptureExceedsHold {
        hold_id: String,
        held_minor: i64,
        amount_minor: i64,
        currency: String,
    },
    #[error(
        "account {account_id:?} has {limit} open holds on one balance shard, the most allowed; capture or void one first"
    )]
    TooManyHolds { account_id: String, limit: usize },
    #[error(
        "a refund of {} exceeds what is left of payment {transaction_id}: {} of {} was refunded already",
        format_money(*requested_minor, currency),
        format_money(*refunded_minor, currency),
        format_money(*amount_minor, currency)
    )]
    RefundExceedsPayment {
        transaction_id: String,
        amount_minor: i64,
        refunded_minor: i64,
        requested_minor: i64,
        currency: String,
    },
    #[error("transaction {transaction_id} cannot be refunded: {why}")]
    NotRefundable {
        transaction_id: String,
        why: &'static str,
    },
    #[error(
        "the payment lost {attempts} races with concurrent payments on the same accounts; retry with the same idempotency key"
    )]
    Contended { attempts: u32 },
    #[error(
        "the payment's outcome is unknown ({cause}); retry with the same idempotency key: it applies at most once, and the retry answers with the payment if it committed"
    )]
    OutcomeUnknown { cause: String },
    /// A WatchAccount resume token further behind the account than a watch
    /// catches up (OUT_OF_RANGE).
    #[error(
        "the resume_token is {behind} entries behind account {account_id:?}; a watch catches up at most {limit}: read what was missed with GetTransactionHistory, then watch from now with an empty resume_token"
    )]
    ResumeTooOld {
        account_id: String,
        behind: u64,
        limit: u64,
    },
    #[error("owner {owner:?} has opened {limit} accounts, the most one owner may open")]
    TooManyAccounts { owner: String, limit: u32 },
    #[error("DynamoDB is unavailable or throttling: {0}")]
    Unavailable(String),
    /// DynamoDB refused a transaction as invalid (a cancellation reason of
    /// ValidationError): nothing was written, and going again would not
    /// help. A bug of the ledger's, never of the caller's input.
    #[error("DynamoDB rejected the ledger's transaction ({code}): {detail}")]
    Rejected { code: &'static str, detail: String },
    #[error("ledger error: {0}")]
    Internal(String),
}

/// An account as stored: its fixed facts and its balance over all shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub display_name: String,
    pub currency: String,
    /// The sum of the shards' balances.
    pub balance_minor: i64,
    pub created_at_ms: i64,
    pub owner: String,
    pub opening_balance_minor: i64,
    /// Each shard's version (its number of history entries), shard 0 first;
    /// one element for an ordinary account. Together with the balance they
    /// are one consistent snapshot: the balance is the sum of exactly the
    /// history entries up to these versions.
    pub shard_versions: Vec<u64>,
    /// Reserved by open holds that had not expired when it was read.
    pub held_minor: i64,
}

impl Account {
    /// What payments and new holds may spend.
    pub fn available_minor(&self) -> i64 {
        self.balance_minor - self.held_minor
    }

    /// How many balance shards the account has.
    pub fn shards(&self) -> u32 {
        u32::try_from(self.shard_versions.len()).unwrap_or(u32::MAX)
    }
}

/// A committed transaction: a payment, a hold's capture, a refund, or an
/// opening credit (with an empty sender); `kind` says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub transaction_id: String,
    pub sender_id: String,
    pub recipient_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
    pub created_at_ms: i64,
    pub kind: TransactionKind,
    /// For a refund: the transaction id of the payment or capture it
    /// refunds; empty otherwise.
    pub refund_of: String,
}

/// What a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionKind {
    Payment,
    Capture,
    Refund,
    Opening,
}

/// Where a hold is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    Open,
    Captured,
    Voided,
    Expired,
}

/// A hold, with its state when it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub hold_id: String,
    pub idempotency_key: String,
    pub sender_id: String,
    pub recipient_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub state: HoldState,
    pub captured_minor: i64,
    /// When it was captured or voided; its expiry for an expired hold; 0
    /// while open.
    pub settled_at_ms: i64,
}

/// What GetPayment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A payment or refund, with how much of it has been refunded.
    Transfer {
        idempotency_key: String,
        payment: Transaction,
        refunded_minor: i64,
    },
    /// A hold; with its capture once captured, and how much of that has
    /// been refunded.
    Hold {
        hold: Hold,
        capture: Option<Transaction>,
        refunded_minor: i64,
    },
}

/// The result of a hold operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldOutcome {
    pub hold: Hold,
    /// The capture, for CaptureHold.
    pub capture: Option<Transaction>,
    pub replayed: bool,
}

/// The result of RefundPayment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOutcome {
    pub refund: Transaction,
    pub replayed: bool,
    /// Refunded of the payment in all, as of this refund's commit (for a
    /// replay: as of now).
    pub refunded_total_minor: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Debit,
    Credit,
}

/// One side of a payment in one account's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The shard the entry is in (0 for an ordinary account); for a payment
    /// drawn from several shards, the lowest of them.
    pub shard: u32,
    /// Its position in that shard's history (1 = oldest).
    pub sequence: u64,
    pub direction: Direction,
    pub payment: Transaction,
    /// The account's balance over all shards right after this entry.
    pub balance_after_minor: i64,
}

/// The result of MakePayment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    pub payment: Transaction,
    pub replayed: bool,
}

/// The DynamoDB ledger. Cheap to clone: clones share the SDK client, the
/// in-process queue and what the instance knows of accounts. Two ledgers
/// made with [`Ledger::new`] share nothing, like two Lambda containers.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    tables: Tables,
    locks: Arc<locks::AccountLocks>,
    known: Arc<known::Known>,
    /// When an ordinary account that loses races is promoted to balance
    /// shards (see `reshard`); None: promotion is off.
    promotion: Option<Promotion>,
}

impl Ledger {
    /// A ledger on `client` (with the per-call meter of
    /// [`crate::telemetry::CallMeter`] added to it) and `tables`.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client: crate::telemetry::metered_client(client),
            tables,
            locks: Arc::new(locks::AccountLocks::new()),
            known: Arc::new(known::Known::new()),
            promotion: Some(Promotion::default()),
        }
    }

    /// A ledger on `client` as the settings say: their tables and
    /// promotion, and their test-only clock skew, which is the whole
    /// process's ([`set_test_clock_skew`]: 0 unless set).
    pub fn from_settings(client: Client, settings: &crate::settings::LedgerSettings) -> Self {
        set_test_clock_skew(settings.test_clock_skew_ms);
        Self::new(client, settings.tables.clone()).with_promotion(settings.promotion)
    }

    /// Sets when hot ordinary accounts are promoted to balance shards (the
    /// count clamped to 2 to [`BALANCE_SHARDS_MAX`]), or turns promotion off
    /// (None). On by default, with [`Promotion::default`].
    pub fn with_promotion(mut self, promotion: Option<Promotion>) -> Self {
        self.promotion = promotion.map(|p| Promotion {
            shards: p.shards.clamp(2, BALANCE_SHARDS_MAX),
            ..p
        });
        self
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}
