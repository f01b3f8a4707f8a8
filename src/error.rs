//! The one place where errors become gRPC status codes.

use crate::domain::InvalidField;
use crate::ledger::LedgerError;
use std::collections::HashMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` this service sends.
pub const ERROR_DOMAIN: &str = "payment.v1";

/// A status whose details carry `google.rpc.ErrorInfo` with `reason` (a
/// stable UPPER_SNAKE_CASE word a program can branch on) and `metadata`.
pub fn status(code: Code, message: impl Into<String>, reason: &str, metadata: Metadata) -> Status {
    let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata.0);
    Status::with_error_details(code, message, details)
}

/// ErrorInfo metadata: string keys and values.
#[derive(Debug, Default)]
pub struct Metadata(HashMap<String, String>);

impl Metadata {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.0.insert(key.to_owned(), value.to_string());
        self
    }
}

impl From<InvalidField> for Status {
    fn from(err: InvalidField) -> Self {
        let mut details = ErrorDetails::with_error_info(
            "INVALID_FIELD",
            ERROR_DOMAIN,
            HashMap::from([("field".to_owned(), err.field.to_owned())]),
        );
        details.add_bad_request_violation(err.field, err.reason.clone());
        Status::with_error_details(Code::InvalidArgument, err.to_string(), details)
    }
}

/// The code and stable reason of each ledger error, and its metadata.
fn describe(err: &LedgerError) -> (Code, &'static str, Metadata) {
    let m = Metadata::new();
    match err {
        LedgerError::AccountExists(id) => (
            Code::AlreadyExists,
            "ACCOUNT_EXISTS",
            m.with("account_id", id),
        ),
        LedgerError::IdempotencyKeyReused {
            key,
            sender_id,
            stored_kind,
        } => (
            Code::AlreadyExists,
            "IDEMPOTENCY_KEY_REUSED",
            m.with("idempotency_key", key)
                .with("sender_id", sender_id)
                .with("stored_kind", stored_kind),
        ),
        LedgerError::AccountNotFound { role, account_id } => (
            Code::NotFound,
            "ACCOUNT_NOT_FOUND",
            m.with("account_id", account_id).with("role", role),
        ),
        LedgerError::PaymentNotFound { what, .. } => {
            (Code::NotFound, "PAYMENT_NOT_FOUND", m.with("what", what))
        }
        LedgerError::CurrencyMismatch {
            role,
            account_id,
            account_currency,
            currency,
        } => (
            Code::FailedPrecondition,
            "CURRENCY_MISMATCH",
            m.with("account_id", account_id)
                .with("role", role)
                .with("account_currency", account_currency)
                .with("currency", currency),
        ),
        LedgerError::InsufficientFunds {
            account_id,
            currency,
            available_minor,
            held_minor,
            amount_minor,
            ..
        } => (
            Code::FailedPrecondition,
            "INSUFFICIENT_FUNDS",
            m.with("account_id", account_id)
                .with("currency", currency)
                .with("available_minor", available_minor)
                .with("held_minor", held_minor)
                .with("needed_minor", amount_minor),
        ),
        LedgerError::SpreadOverShards {
            account_id,
            shards_max,
            payable_minor,
        } => (
            Code::FailedPrecondition,
            "SPREAD_OVER_SHARDS",
            m.with("account_id", account_id)
                .with("shards_max", shards_max)
                .with("payable_minor", payable_minor),
        ),
        LedgerError::BalanceLimit { account_id } => (
            Code::FailedPrecondition,
            "BALANCE_LIMIT",
            m.with("account_id", account_id)
                .with("limit_minor", crate::domain::BALANCE_MAX_MINOR),
        ),
        LedgerError::HoldExpired {
            hold_id,
            expired_at,
        } => (
            Code::FailedPrecondition,
            "HOLD_EXPIRED",
            m.with("hold_id", hold_id).with("expired_at", expired_at),
        ),
        LedgerError::HoldCaptured {
            hold_id,
            captured_minor,
            currency,
            ..
        } => (
            Code::FailedPrecondition,
            "HOLD_ALREADY_CAPTURED",
            m.with("hold_id", hold_id)
                .with("captured_minor", captured_minor)
                .with("currency", currency),
        ),
        LedgerError::HoldVoided { hold_id, .. } => (
            Code::FailedPrecondition,
            "HOLD_VOIDED",
            m.with("hold_id", hold_id),
        ),
        LedgerError::CaptureExceedsHold {
            hold_id,
            held_minor,
            amount_minor,
            currency,
        } => (
            Code::FailedPrecondition,
            "CAPTURE_EXCEEDS_HOLD",
            m.with("hold_id", hold_id)
                .with("held_minor", held_minor)
                .with("requested_minor", amount_minor)
                .with("currency", currency),
        ),
        LedgerError::RefundExceedsPayment {
            transaction_id,
            amount_minor,
            refunded_minor,
            requested_minor,
            currency,
        } => (
            Code::FailedPrecondition,
            "REFUND_EXCEEDS_PAYMENT",
            m.with("transaction_id", transaction_id)
                .with("amount_minor", amount_minor)
                .with("refunded_minor", refunded_minor)
                .with("refundable_minor", amount_minor - refunded_minor)
                .with("requested_minor", requested_minor)
                .with("currency", currency),
        ),
        LedgerError::NotRefundable { transaction_id, .. } => (
            Code::FailedPrecondition,
            "NOT_REFUNDABLE",
            m.with("transaction_id", transaction_id),
        ),
        LedgerError::NotOwner { account_id } => (
            Code::PermissionDenied,
            "NOT_ACCOUNT_OWNER",
            m.with("account_id", account_id),
        ),
        LedgerError::NotAllowed { .. } => (Code::PermissionDenied, "NOT_ALLOWED", m),
        LedgerError::Contended { attempts } => {
            (Code::Aborted, "CONTENDED", m.with("attempts", attempts))
        }
        LedgerError::OutcomeUnknown { .. } => (Code::Unavailable, "OUTCOME_UNKNOWN", m),
        LedgerError::Unavailable(_) => (Code::Unavailable, "LEDGER_UNAVAILABLE", m),
        LedgerError::TooManyAccounts { owner, limit } => (
            Code::ResourceExhausted,
            "TOO_MANY_ACCOUNTS",
            m.with("owner", owner).with("limit", limit),
        ),
        LedgerError::TooManyHolds { account_id, limit } => (
            Code::ResourceExhausted,
            "TOO_MANY_OPEN_HOLDS",
            m.with("account_id", account_id).with("limit", limit),
        ),
        LedgerError::Internal(_) => (Code::Internal, "INTERNAL", m),
    }
}

impl From<LedgerError> for Status {
    fn from(err: LedgerError) -> Self {
        let (code, reason, metadata) = describe(&err);
        let message = match &err {
            // The cause of an outage or a bug is logged, not sent: it may
            // name tables or endpoints, and the caller cannot act on it.
            LedgerError::OutcomeUnknown { .. } => {
                tracing::warn!(error = %err, "payment outcome unknown");
                "the ledger could not learn whether the change committed (its database did not answer); retry with the same idempotency key, or look it up with GetPayment: it applies at most once".to_owned()
            }
            LedgerError::Unavailable(_) => {
                tracing::warn!(error = %err, "DynamoDB unavailable");
                "the ledger's database is unavailable or throttling; retry with backoff (payments: with the same idempotency key)".to_owned()
            }
            LedgerError::Internal(_) => {
                tracing::error!(error = %err, "internal ledger error");
                "internal ledger error; it has been logged".to_owned()
            }
            _ => err.to_string(),
        };
        status(code, message, reason, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ledger_error_has_its_code() {
        let cases = [
            (LedgerError::AccountExists("a".into()), Code::AlreadyExists),
            (
                LedgerError::AccountNotFound {
                    role: "sender",
                    account_id: "a".into(),
                },
                Code::NotFound,
            ),
            (
                LedgerError::InsufficientFunds {
                    account_id: "a".into(),
                    what: "payment",
                    currency: "EUR".into(),
                    available_minor: 1,
                    held_minor: 0,
                    amount_minor: 2,
                },
                Code::FailedPrecondition,
            ),
            (
                LedgerError::BalanceLimit {
                    account_id: "a".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                LedgerError::IdempotencyKeyReused {
                    key: "k".into(),
                    sender_id: "a".into(),
                    stored_kind: "hold",
                },
                Code::AlreadyExists,
            ),
            (
                LedgerError::NotOwner {
                    account_id: "a".into(),
                },
                Code::PermissionDenied,
            ),
            (LedgerError::Contended { attempts: 3 }, Code::Aborted),
            (LedgerError::Unavailable("x".into()), Code::Unavailable),
        ];
        for (err, code) in cases {
            assert_eq!(Status::from(err).code(), code);
        }
        let invalid = Status::from(InvalidField {
            field: "amount",
            reason: "is 0".into(),
        });
        assert_eq!(invalid.code(), Code::InvalidArgument);
        assert_eq!(invalid.message(), "amount: is 0");
        let details = invalid.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "INVALID_FIELD");
        let violations = &details.bad_request().unwrap().field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "amount");
        assert_eq!(violations[0].description, "is 0");
    }

    #[test]
    fn insufficient_funds_says_what_is_available_in_the_currency() {
        let status = Status::from(LedgerError::InsufficientFunds {
            account_id: "alice".into(),
            what: "payment",
            currency: "EUR".into(),
            available_minor: 3766,
            held_minor: 500,
            amount_minor: 100_000,
        });
        assert_eq!(
            status.message(),
            "insufficient funds: account \"alice\" has 37.66 EUR available (5.00 EUR more is held), the payment needs 1000.00 EUR"
        );
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "INSUFFICIENT_FUNDS");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.metadata["available_minor"], "3766");
        assert_eq!(info.metadata["needed_minor"], "100000");
        assert_eq!(info.metadata["currency"], "EUR");
    }

    #[test]
    fn outages_and_bugs_carry_a_reason_but_not_their_cause() {
        for (err, reason) in [
            (
                LedgerError::Unavailable("table t at http://x".into()),
                "LEDGER_UNAVAILABLE",
            ),
            (LedgerError::Internal("table t".into()), "INTERNAL"),
        ] {
            let status = Status::from(err);
            assert!(
                !status.message().contains("table t"),
                "{}",
                status.message()
            );
            assert_eq!(
                status.get_error_details().error_info().unwrap().reason,
                reason
            );
        }
    }
}
