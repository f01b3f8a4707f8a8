//! The one place where errors become gRPC status codes.

use crate::domain::InvalidField;
use crate::ledger::LedgerError;
use tonic::{Code, Status};

impl From<InvalidField> for Status {
    fn from(err: InvalidField) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

impl From<LedgerError> for Status {
    fn from(err: LedgerError) -> Self {
        let code = match &err {
            LedgerError::AccountExists(_) | LedgerError::IdempotencyKeyReused { .. } => {
                Code::AlreadyExists
            }
            LedgerError::AccountNotFound { .. } => Code::NotFound,
            LedgerError::CurrencyMismatch { .. }
            | LedgerError::InsufficientFunds { .. }
            | LedgerError::SpreadOverShards { .. }
            | LedgerError::BalanceLimit { .. } => Code::FailedPrecondition,
            LedgerError::NotOwner { .. } => Code::PermissionDenied,
            LedgerError::Contended { .. } => Code::Aborted,
            LedgerError::Unavailable(_) | LedgerError::OutcomeUnknown { .. } => Code::Unavailable,
            LedgerError::TooManyAccounts { .. } => Code::ResourceExhausted,
            LedgerError::Internal(_) => Code::Internal,
        };
        match code {
            // The cause of an outage or a bug is logged, not sent: it may
            // name tables or endpoints, and the caller cannot act on it.
            Code::Unavailable if matches!(err, LedgerError::OutcomeUnknown { .. }) => {
                tracing::warn!(error = %err, "payment outcome unknown");
                Status::unavailable(
                    "the ledger could not learn whether the payment committed (its database did not answer); retry with the same idempotency key: it applies at most once, and the retry answers with the payment if it did",
                )
            }
            Code::Unavailable => {
                tracing::warn!(error = %err, "DynamoDB unavailable");
                Status::unavailable(
                    "the ledger's database is unavailable or throttling; retry with backoff (payments: with the same idempotency key)",
                )
            }
            Code::Internal => {
                tracing::error!(error = %err, "internal ledger error");
                Status::internal("internal ledger error; it has been logged")
            }
            _ => Status::new(code, err.to_string()),
        }
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
                    balance_minor: 1,
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
    }
}
