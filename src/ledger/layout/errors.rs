//! What a DynamoDB error means to the ledger: retryable, a missing table,
//! or a bug in the request.

use crate::ledger::LedgerError;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// The one list of DynamoDB error codes that say "not now": throttling,
/// limits and server-side failures. A caller may go again later; for a
/// write, the request may also have been carried out.
pub(in crate::ledger) fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException"
    )
}

/// Maps an SDK error of any operation: throttling, timeouts and connection
/// failures are UNAVAILABLE (retryable); a missing table is UNAVAILABLE too,
/// since it is an operator's error that the caller cannot fix; anything else
/// is a bug in the request we built.
pub(in crate::ledger) fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = service.err().message().unwrap_or("");
            match code {
                code if is_retryable_code(code) => {
                    LedgerError::Unavailable(format!("{operation}: {code}: {message}"))
                }
                "ResourceNotFoundException" => LedgerError::Unavailable(format!(
                    "{operation}: a ledger table does not exist ({message}); create the tables (payment-server --create-tables, or sam deploy)"
                )),
                _ => LedgerError::Internal(format!("{operation}: {code}: {message}")),
            }
        }
        _ => LedgerError::Unavailable(format!(
            "{operation}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        )),
    }
}

pub(in crate::ledger) fn build_error(err: impl std::fmt::Display) -> LedgerError {
    LedgerError::Internal(format!("building a DynamoDB request: {err}"))
}
