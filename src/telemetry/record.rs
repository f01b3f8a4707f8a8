//! The record a call ends with, and its log line.

use super::{Counts, Invocation, Transport};
use std::time::Duration;
use tonic::{Code, Status};

/// A gRPC code as its canonical name: "OK", "FAILED_PRECONDITION", ...
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The reason of an answer that is not OK: the ErrorInfo reason every
/// status of this service carries (empty when it has none).
pub fn reason_of(status: &Status) -> String {
    use tonic_types::StatusExt as _;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The reason of a payment whose outcome is unknown.
pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";

/// One call, as recorded when it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// The RPC's name, e.g. "MakePayment".
    pub method: &'static str,
    /// The gRPC code, e.g. "OK" ([`code_name`]).
    pub code: &'static str,
    /// The ErrorInfo reason, e.g. "INSUFFICIENT_FUNDS"; empty for OK.
    pub reason: String,
    pub transport: Transport,
    /// From the call's arrival at the service to its answer (for a
    /// streamed call, to its stream's end).
    pub latency: Duration,
    /// For a streamed call, from its arrival to its first message (None
    /// when it sent none, and for unary calls).
    pub first_message: Option<Duration>,
    pub counts: Counts,
    /// The first call this service instance (a process) served.
    pub cold_start: bool,
    /// The caller's subject, when authenticated (an id: properties only).
    pub caller: Option<String>,
    /// The Lambda request id and X-Ray trace id (payment-lambda only).
    pub invocation: Option<Invocation>,
    /// The OpenTelemetry trace id (32 hex digits) of the call's span, when
    /// payment-server traces (on Lambda, the invocation's X-Ray trace id
    /// is the one logged).
    pub trace_id: Option<String>,
    /// Whether the method streams its answer.
    pub streamed: bool,
}

impl CallRecord {
    pub fn outcome_unknown(&self) -> bool {
        self.reason == OUTCOME_UNKNOWN
    }
}

/// The call's log line: every field of its record.
pub(super) fn log(record: &CallRecord) {
    let c = &record.counts;
    let caller = record.caller.as_deref().unwrap_or("-");
    let (request_id, trace_id) = record
        .invocation
        .as_ref()
        .map_or(("", record.trace_id.as_deref().unwrap_or("")), |i| {
            (i.request_id.as_str(), i.trace_id.as_deref().unwrap_or(""))
        });
    let latency_ms = record.latency.as_secs_f64() * 1000.0;
    let first_message_ms = record.first_message.map(|d| d.as_secs_f64() * 1000.0);
    // The target is the telemetry module's, not this file's: log filters
    // (RUST_LOG=payment::telemetry=...) and queries select call lines by it.
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "payment::telemetry",
                method = record.method,
                caller,
                code = record.code,
                reason = record.reason.as_str(),
                transport = record.transport.as_str(),
                latency_ms,
                first_message_ms,
                dynamodb_requests = c.requests,
                rounds = c.rounds,
                conflicts = c.conflicts,
                wcu = c.wcu,
                rcu = c.rcu,
                cold_start = record.cold_start,
                request_id,
                trace_id,
                "call"
            )
        };
    }
    match record.code {
        "INTERNAL" | "UNKNOWN" | "UNAVAILABLE" | "DATA_LOSS" => line!(warn),
        _ => line!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }
}
