//! The caller's deadline: `grpc-timeout`, counted from the request's
//! arrival, and running work until it.

use crate::domain;
use crate::error::{CutOff, ServiceError};
use std::future::Future;
use std::time::Duration;
use tonic::Request;

/// Below this much time left, no DynamoDB call can finish: answer
/// DEADLINE_EXCEEDED at once instead of starting work.
const DEADLINE_BUDGET_MIN: Duration = Duration::from_millis(2);
/// How much earlier than the caller's deadline the service gives up, so
/// that the caller gets DEADLINE_EXCEEDED from the service rather than
/// CANCELLED from the transport's own timer (tonic's server enforces
/// grpc-timeout too, with millisecond timer granularity).
const DEADLINE_MARGIN_MAX: Duration = Duration::from_millis(5);

/// When a request reached the server, before any queue in front of the
/// service (a concurrency limit): its `grpc-timeout` counts from here, so
/// a call that waited its turn past its deadline does no work at all.
#[derive(Debug, Clone, Copy)]
pub struct Arrived(pub tokio::time::Instant);

/// The caller's deadline from the `grpc-timeout` header, if any, counted
/// from the request's arrival ([`Arrived`], else now).
pub(super) fn deadline<T>(request: &Request<T>) -> Option<tokio::time::Instant> {
    let timeout = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(domain::parse_grpc_timeout)?;
    let margin = (timeout / 10).clamp(DEADLINE_BUDGET_MIN, DEADLINE_MARGIN_MAX);
    let arrived = request
        .extensions()
        .get::<Arrived>()
        .map_or_else(tokio::time::Instant::now, |a| a.0);
    Some(arrived + timeout.saturating_sub(margin))
}

/// Runs `work` until the caller's deadline.
pub(super) async fn until<T>(
    deadline: Option<tokio::time::Instant>,
    cut_off: CutOff,
    work: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let expired = || Err(ServiceError::Deadline(cut_off));
    match deadline {
        None => work.await,
        Some(at) if at <= tokio::time::Instant::now() + DEADLINE_BUDGET_MIN => expired(),
        Some(at) => tokio::time::timeout_at(at, work)
            .await
            .unwrap_or_else(|_| expired()),
    }
}
