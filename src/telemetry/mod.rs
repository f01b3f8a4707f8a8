//! One wide event per call: what a call did, measured in one place.
//!
//! Every handler of the service goes through [`Call`]: it starts when the
//! call arrives, meters the DynamoDB work done on the call's behalf (a
//! [`Meter`] in a task-local, fed by the [`CallMeter`] interceptor of the
//! ledger's client and by the ledger's write rounds), and ends with one
//! [`CallRecord`]: a log line always, and through the [`Telemetry`] sink of
//! the entry point either Prometheus series (payment-server, [`prometheus`])
//! or one CloudWatch EMF line (payment-lambda, [`emf`]). A streamed call's
//! record is made when its stream ends. With [`traces`] on, the call is
//! also a span, with a child span per DynamoDB attempt. docs/observability.md
//! says what each field means.
//!
//! Records never hold a token or an amount; ids (the caller) go only into
//! the log line and EMF properties, never into metric dimensions or labels.
//!
//! Each idea has its file: `call` (a call in progress, and its streamed
//! answer), `meter` (the task-local count of a call's DynamoDB work),
//! `call_meter` (the SDK interceptor that feeds it), `record` (what a call
//! ends with, and its log line) and `sink` (where records go besides).

mod call;
mod call_meter;
pub mod emf;
mod meter;
pub mod prometheus;
mod record;
mod requests;
mod sink;
pub mod traces;
pub mod xray;

pub use call::{Call, Metered};
pub use call_meter::{CALL_METER, CallMeter, metered_client};
pub use meter::{Counts, Meter, current_meter, metered};
pub(crate) use meter::{count_conflict, count_round};
pub use record::{CallRecord, OUTCOME_UNKNOWN, code_name, reason_of};
pub use requests::RequestCounter;
pub use sink::{Sink, Telemetry};

/// How a call reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Native gRPC (HTTP/2) on payment-server.
    Grpc,
    /// gRPC-Web (HTTP/1.1 or HTTP/2) on payment-server.
    GrpcWeb,
    /// An API Gateway event to payment-lambda.
    Lambda,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::GrpcWeb => "grpc-web",
            Transport::Lambda => "lambda",
        }
    }

    /// gRPC-Web or native gRPC, from a request's content type (before
    /// tonic-web rewrites it).
    pub fn of_http(headers: &http::HeaderMap) -> Self {
        let web = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web"));
        if web {
            Transport::GrpcWeb
        } else {
            Transport::Grpc
        }
    }
}

/// The Lambda invocation a call belongs to (a request extension set by
/// `crate::lambda`): its ids go into the call's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The Lambda request id.
    pub request_id: String,
    /// The X-Ray trace id, when Lambda passed one.
    pub trace_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transport_is_grpc_web_by_content_type() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(Transport::of_http(&headers), Transport::Grpc);
        headers.insert("content-type", "application/grpc".parse().unwrap());
        assert_eq!(Transport::of_http(&headers), Transport::Grpc);
        headers.insert(
            "content-type",
            "application/grpc-web+proto".parse().unwrap(),
        );
        assert_eq!(Transport::of_http(&headers), Transport::GrpcWeb);
        headers.insert("content-type", "application/grpc-web-text".parse().unwrap());
        assert_eq!(Transport::of_http(&headers), Transport::GrpcWeb);
    }
}
