//! The one place where errors become gRPC statuses.
//!
//! Everything the service answers with, other than OK, is a [`ServiceError`].
//! Its one conversion, `impl From<ServiceError> for Status`, decides each
//! answer's code, its stable `google.rpc.ErrorInfo` reason, its message and
//! its metadata; no other file builds a [`Status`] from a reason. The other
//! modules construct variants: the ledger a [`LedgerError`], the domain an
//! [`InvalidField`], and the service, auth, guard and Lambda adapter the
//! variants of their own refusals.

use crate::auth::ADMIN_SCOPE;
use crate::domain::InvalidField;
use crate::ledger::LedgerError;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` this service sends.
pub const ERROR_DOMAIN: &str = "payment.v1";

/// Everything the service answers with when it does not answer OK.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The ledger refused or failed (its own reasons).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A request field breaks its rule.
    #[error(transparent)]
    Invalid(#[from] InvalidField),
    /// No bearer token (UNAUTHENTICATED), or no authorizer claims behind API
    /// Gateway.
    #[error("Bearer realm=\"payments\": this call needs an 'authorization: Bearer <JWT>' header")]
    TokenMissing,
    /// A token that is malformed, expired, not signed by a trusted key, or
    /// whose claims are not acceptable (UNAUTHENTICATED).
    #[error(
        "Bearer error=\"invalid_token\": the bearer token is malformed, expired or not signed by a trusted key"
    )]
    TokenInvalid,
    /// The caller's deadline expired first; what that means depends on the
    /// method.
    #[error("{}", .0.message())]
    Deadline(CutOff),
    /// A caller read an account that is neither theirs nor are they an admin
    /// (also when it does not exist, so that ids cannot be probed).
    #[error("{caller} may not read account \"{account_id}\": only its owner or an admin may")]
    NotAccountReader { caller: String, account_id: String },
    /// A field only an admin may set.
    #[error(
        "a positive initial_balance creates money: only an admin (scope {ADMIN_SCOPE}) may set one; open the account with 0 and pay into it"
    )]
    AdminOnly { field: &'static str },
    /// A request body over the guard's limit.
    #[error("request body is larger than {limit_bytes} bytes")]
    RequestTooLarge { limit_bytes: usize },
    /// A request body that is not one well-formed message; the text says
    /// what is wrong with it.
    #[error("{0}")]
    MalformedRequest(String),
    /// A compressed request message.
    #[error("compressed requests are not supported; send uncompressed messages")]
    CompressionUnsupported,
    /// A Lambda event that cannot become an HTTP request; the text names the
    /// field.
    #[error("{0}")]
    MalformedEvent(String),
    /// The Lambda could not collect the reply it was sending.
    #[error("the reply could not be completed; retry")]
    ReplyFailed,
}

/// What a call cut off by its deadline may have done, in words for its
/// DEADLINE_EXCEEDED message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutOff {
    /// A payment is one DynamoDB transaction: committed whole or not at all.
    Payment,
    /// Opening an account is one conditional write.
    Account,
    /// Reads change nothing.
    Read,
    /// A hold is one transaction, as a payment.
    Hold,
    /// GetPayment with finalize may have fenced the key.
    Finalize,
    /// SetBalanceShards may have raised the count.
    Shards,
}

impl CutOff {
    fn message(self) -> &'static str {
        match self {
            CutOff::Payment => {
                "the deadline expired before the ledger answered; the payment may or may not have been applied: retry with the same idempotency key to find out (it applies at most once), or ask GetPayment with finalize for a final answer"
            }
            CutOff::Account => {
                "the deadline expired before the ledger answered; the account may or may not have been opened: send the same AddAccount again (the same owner with the same parameters gets the account back)"
            }
            CutOff::Hold => {
                "the deadline expired before the ledger answered; the change to the hold may or may not have been applied: look the hold up with GetPayment (with finalize, for a final answer), or send the same call again (it applies at most once)"
            }
            CutOff::Finalize => {
                "the deadline expired before the ledger answered; the key may or may not have been fenced: send the same GetPayment with finalize again (it gives the same final answer)"
            }
            CutOff::Shards => {
                "the deadline expired before the ledger answered; the balance shards may or may not have been raised: send the same SetBalanceShards again (it is idempotent)"
            }
            CutOff::Read => {
                "the deadline expired before the ledger answered; nothing was changed: retry with a longer deadline"
            }
        }
    }
}

/// ErrorInfo metadata: string keys and values.
#[derive(Debug, Default)]
struct Metadata(HashMap<String, String>);

impl Metadata {
    fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.0.insert(key.to_owned(), value.to_string());
        self
    }
}

impl From<ServiceError> for Status {
    /// A status whose details carry `google.rpc.ErrorInfo` with a stable
    /// UPPER_SNAKE_CASE `reason` a program can branch on, and its metadata;
    /// INVALID_ARGUMENT for a field also carries a `google.rpc.BadRequest`
    /// violation naming it. docs/api.md, "Reasons a program can read", lists
    /// them.
    ///
    /// The code and reason of every variant are decided here (the ledger's
    /// in `ledger_code_and_reason`), in matches without a wildcard, so that
    /// a new variant does not compile until it has its answer; the metadata
    /// and the message come from `metadata` and `message`.
    fn from(err: ServiceError) -> Self {
        use ServiceError as E;
        let (code, reason) = match &err {
            E::Invalid(_) => (Code::InvalidArgument, "INVALID_FIELD"),
            E::MalformedRequest(_) => (Code::InvalidArgument, "MALFORMED_REQUEST"),
            E::MalformedEvent(_) => (Code::InvalidArgument, "MALFORMED_EVENT"),
            E::TokenMissing => (Code::Unauthenticated, "TOKEN_MISSING"),
            E::TokenInvalid => (Code::Unauthenticated, "TOKEN_INVALID"),
            // Reading an account of someone else: the reason of paying from
            // one (LedgerError::NotOwner), in other words.
            E::NotAccountReader { .. } => (Code::PermissionDenied, "NOT_ACCOUNT_OWNER"),
            E::AdminOnly { .. } => (Code::PermissionDenied, "ADMIN_ONLY"),
            E::Deadline(_) => (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
            E::RequestTooLarge { .. } => (Code::ResourceExhausted, "REQUEST_TOO_LARGE"),
            E::CompressionUnsupported => (Code::Unimplemented, "COMPRESSION_UNSUPPORTED"),
            E::ReplyFailed => (Code::Unavailable, "REPLY_FAILED"),
            E::Ledger(ledger) => ledger_code_and_reason(ledger),
        };
        let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata(&err).0);
        if let E::Invalid(invalid) = &err {
            details.add_bad_request_violation(invalid.field, invalid.reason.clone());
        }
        Status::with_error_details(code, message(&err), details)
    }
}

/// The code and reason of a ledger error; part of the one conversion above,
/// and called only from it.
fn ledger_code_and_reason(err: &LedgerError) -> (Code, &'static str) {
    use LedgerError as L;
    match err {
        // Paying from, or reading, an account of someone else: one reason,
        // two messages (ServiceError::NotAccountReader).
        L::NotOwner { .. } => (Code::PermissionDenied, "NOT_ACCOUNT_OWNER"),
        L::NotAllowed { .. } => (Code::PermissionDenied, "NOT_ALLOWED"),
        L::AccountExists(_) => (Code::AlreadyExists, "ACCOUNT_EXISTS"),
        L::IdempotencyKeyReused { .. } => (Code::AlreadyExists, "IDEMPOTENCY_KEY_REUSED"),
        // One reason, two codes: a lookup of a fenced key did not find
        // the call (it never happened); a call with it cannot be made.
        L::FencedNotFound { .. } => (Code::NotFound, "KEY_FENCED"),
        L::KeyFenced { .. } => (Code::FailedPrecondition, "KEY_FENCED"),
        L::AccountNotFound { .. } => (Code::NotFound, "ACCOUNT_NOT_FOUND"),
        L::PaymentNotFound { .. } => (Code::NotFound, "PAYMENT_NOT_FOUND"),
        L::CurrencyMismatch { .. } => (Code::FailedPrecondition, "CURRENCY_MISMATCH"),
        L::InsufficientFunds { .. } => (Code::FailedPrecondition, "INSUFFICIENT_FUNDS"),
        L::SpreadOverShards { .. } => (Code::FailedPrecondition, "SPREAD_OVER_SHARDS"),
        L::ShardsCannotShrink { .. } => (Code::FailedPrecondition, "SHARDS_CANNOT_SHRINK"),
        L::ShardOverShare { .. } => (Code::FailedPrecondition, "SHARD_OVER_SHARE"),
        L::BalanceLimit { .. } => (Code::FailedPrecondition, "BALANCE_LIMIT"),
        L::HoldExpired { .. } => (Code::FailedPrecondition, "HOLD_EXPIRED"),
        L::HoldCaptured { .. } => (Code::FailedPrecondition, "HOLD_ALREADY_CAPTURED"),
        L::HoldVoided { .. } => (Code::FailedPrecondition, "HOLD_VOIDED"),
        L::CaptureExceedsHold { .. } => (Code::FailedPrecondition, "CAPTURE_EXCEEDS_HOLD"),
        L::RefundExceedsPayment { .. } => (Code::FailedPrecondition, "REFUND_EXCEEDS_PAYMENT"),
        L::NotRefundable { .. } => (Code::FailedPrecondition, "NOT_REFUNDABLE"),
        // A watch asked to resume further back than it catches up:
        // OUT_OF_RANGE, as etcd answers a watch of a compacted revision.
        // The token was valid, and the same call will not succeed on
        // retry; the client reads the gap another way.
        L::ResumeTooOld { .. } => (Code::OutOfRange, "RESUME_TOKEN_TOO_OLD"),
        L::Contended { .. } => (Code::Aborted, "CONTENDED"),
        L::TooManyAccounts { .. } => (Code::ResourceExhausted, "TOO_MANY_ACCOUNTS"),
        L::TooManyHolds { .. } => (Code::ResourceExhausted, "TOO_MANY_OPEN_HOLDS"),
        L::OutcomeUnknown { .. } => (Code::Unavailable, "OUTCOME_UNKNOWN"),
        L::Unavailable(_) => (Code::Unavailable, "LEDGER_UNAVAILABLE"),
        L::Internal(_) | L::Rejected { .. } => (Code::Internal, "INTERNAL"),
    }
}

/// The ErrorInfo metadata of `err`: the ids, amounts and limits a program
/// acting on its reason needs.
fn metadata(err: &ServiceError) -> Metadata {
    use ServiceError as E;
    let m = Metadata::default();
    match err {
        E::Invalid(invalid) => m.with("field", invalid.field),
        E::NotAccountReader { account_id, .. } => m.with("account_id", account_id),
        E::AdminOnly { field } => m.with("field", field),
        E::RequestTooLarge { limit_bytes } => m.with("limit_bytes", limit_bytes),
        E::Ledger(ledger) => ledger_metadata(ledger),
        E::MalformedRequest(_)
        | E::MalformedEvent(_)
        | E::TokenMissing
        | E::TokenInvalid
        | E::Deadline(_)
        | E::CompressionUnsupported
        | E::ReplyFailed => m,
    }
}

/// The metadata of a ledger error, by family. A variant no family names
/// carries none: an outage or a bug (its cause stays in the log), and
/// NOT_ALLOWED (its message says who may).
fn ledger_metadata(err: &LedgerError) -> Metadata {
    account_metadata(err)
        .or_else(|| balance_metadata(err))
        .or_else(|| shard_metadata(err))
        .or_else(|| hold_metadata(err))
        .or_else(|| limit_metadata(err))
        .unwrap_or_default()
}

/// Accounts and idempotency keys: who owns what, what exists.
fn account_metadata(err: &LedgerError) -> Option<Metadata> {
    use LedgerError as L;
    let m = Metadata::default();
    Some(match err {
        L::NotOwner { account_id } => m.with("account_id", account_id),
        L::AccountExists(id) => m.with("account_id", id),
        L::IdempotencyKeyReused {
            key,
            sender_id,
            stored_kind,
        } => m
            .with("idempotency_key", key)
            .with("sender_id", sender_id)
            .with("stored_kind", stored_kind),
        L::FencedNotFound { sender_id, key } | L::KeyFenced { sender_id, key } => {
            m.with("sender_id", sender_id).with("idempotency_key", key)
        }
        L::AccountNotFound { role, account_id } => {
            m.with("account_id", account_id).with("role", role)
        }
        L::PaymentNotFound { what, .. } => m.with("what", what),
        _ => return None,
    })
}

/// An account's balance against what a call asked of it.
fn balance_metadata(err: &LedgerError) -> Option<Metadata> {
    use LedgerError as L;
    let m = Metadata::default();
    Some(match err {
        L::CurrencyMismatch {
            role,
            account_id,
            account_currency,
            currency,
        } => m
            .with("account_id", account_id)
            .with("role", role)
            .with("account_currency", account_currency)
            .with("currency", currency),
        L::InsufficientFunds {
            account_id,
            currency,
            available_minor,
            held_minor,
            amount_minor,
            ..
        } => m
            .with("account_id", account_id)
            .with("currency", currency)
            .with("available_minor", available_minor)
            .with("held_minor", held_minor)
            .with("needed_minor", amount_minor),
        L::BalanceLimit { account_id } => m
            .with("account_id", account_id)
            .with("limit_minor", crate::domain::BALANCE_MAX_MINOR),
        _ => return None,
    })
}

/// A balance spread over shards.
fn shard_metadata(err: &LedgerError) -> Option<Metadata> {
    use LedgerError as L;
    let m = Metadata::default();
    Some(match err {
        L::SpreadOverShards {
            account_id,
            shards_max,
            payable_minor,
        } => m
            .with("account_id", account_id)
            .with("shards_max", shards_max)
            .with("payable_minor", payable_minor),
        L::ShardsCannotShrink {
            account_id,
            shards,
            asked,
        } => m
            .with("account_id", account_id)
            .with("balance_shards", shards)
            .with("asked", asked),
        L::ShardOverShare {
            account_id,
            shard,
            balance_minor,
            share_minor,
            currency,
        } => m
            .with("account_id", account_id)
            .with("shard", shard)
            .with("balance_minor", balance_minor)
            .with("share_minor", share_minor)
            .with("currency", currency),
        _ => return None,
    })
}

/// Holds and refunds: what was held, captured or paid, against the call.
fn hold_metadata(err: &LedgerError) -> Option<Metadata> {
    use LedgerError as L;
    let m = Metadata::default();
    Some(match err {
        L::HoldExpired {
            hold_id,
            expired_at,
        } => m.with("hold_id", hold_id).with("expired_at", expired_at),
        L::HoldCaptured {
            hold_id,
            captured_minor,
            currency,
            ..
        } => m
            .with("hold_id", hold_id)
            .with("captured_minor", captured_minor)
            .with("currency", currency),
        L::HoldVoided { hold_id, .. } => m.with("hold_id", hold_id),
        L::CaptureExceedsHold {
            hold_id,
            held_minor,
            amount_minor,
            currency,
        } => m
            .with("hold_id", hold_id)
            .with("held_minor", held_minor)
            .with("requested_minor", amount_minor)
            .with("currency", currency),
        L::RefundExceedsPayment {
            transaction_id,
            amount_minor,
            refunded_minor,
            requested_minor,
            currency,
        } => m
            .with("transaction_id", transaction_id)
            .with("amount_minor", amount_minor)
            .with("refunded_minor", refunded_minor)
            .with("refundable_minor", amount_minor - refunded_minor)
            .with("requested_minor", requested_minor)
            .with("currency", currency),
        L::NotRefundable { transaction_id, .. } => m.with("transaction_id", transaction_id),
        _ => return None,
    })
}

/// Limits a call ran into: how far, how many, how often.
fn limit_metadata(err: &LedgerError) -> Option<Metadata> {
    use LedgerError as L;
    let m = Metadata::default();
    Some(match err {
        L::ResumeTooOld {
            account_id,
            behind,
            limit,
        } => m
            .with("account_id", account_id)
            .with("behind", behind)
            .with("limit", limit),
        L::Contended { attempts } => m.with("attempts", attempts),
        L::TooManyAccounts { owner, limit } => m.with("owner", owner).with("limit", limit),
        L::TooManyHolds { account_id, limit } => {
            m.with("account_id", account_id).with("limit", limit)
        }
        _ => return None,
    })
}

/// The status message: the error's own words, but for an outage or a bug.
fn message(err: &ServiceError) -> String {
    use LedgerError as L;
    match err {
        // The cause of an outage or a bug is logged, not sent: it may
        // name tables or endpoints, and the caller cannot act on it.
        ServiceError::Ledger(L::OutcomeUnknown { .. }) => {
            tracing::warn!(error = %err, "payment outcome unknown");
            "the ledger could not learn whether the change committed (its database did not answer); retry with the same idempotency key, or look it up with GetPayment: it applies at most once".to_owned()
        }
        ServiceError::Ledger(L::Unavailable(_)) => {
            tracing::warn!(error = %err, "DynamoDB unavailable");
            "the ledger's database is unavailable or throttling; retry with backoff (payments: with the same idempotency key)".to_owned()
        }
        ServiceError::Ledger(L::Internal(_)) => {
            tracing::error!(error = %err, "internal ledger error");
            "internal ledger error; it has been logged".to_owned()
        }
        ServiceError::Ledger(L::Rejected { code, .. }) => {
            tracing::error!(error = %err, "DynamoDB rejected a transaction");
            format!(
                "internal ledger error: DynamoDB rejected the ledger's transaction as invalid ({code}); nothing was written, and it has been logged"
            )
        }
        _ => err.to_string(),
    }
}

/// For a caller holding a bare ledger error: the same status as its
/// [`ServiceError::Ledger`].
impl From<LedgerError> for Status {
    fn from(err: LedgerError) -> Self {
        ServiceError::from(err).into()
    }
}

#[cfg(test)]
mod tests;
