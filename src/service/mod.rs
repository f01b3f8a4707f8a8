//! The gRPC service: maps protobuf messages to domain values, calls the
//! ledger and maps results and errors back. It knows nothing of DynamoDB.
//!
//! One file per group of methods (`accounts`, `payments`, `holds`,
//! `history`, `watch`), each handler a parse, a ledger call and a reply over
//! [`unary`]; `convert` maps ledger values to messages and `deadline` reads
//! the caller's deadline. Every call goes through `call!` below: the one
//! place that authenticates it and makes its record.

mod accounts;
mod convert;
mod deadline;
mod history;
mod holds;
mod payments;
mod watch;

pub use deadline::Arrived;

use crate::auth::Authenticator;
use crate::error::{CutOff, ServiceError};
use crate::ledger::Ledger;
use crate::pb;
use crate::pb::payment_service_server::PaymentService;
use crate::telemetry::{Call, Telemetry, metered};
use deadline::{deadline, until};
use std::future::Future;
use std::pin::Pin;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The PaymentService implementation shared by the server and the Lambda.
#[derive(Debug, Clone)]
pub struct PaymentApi {
    ledger: Ledger,
    auth: Authenticator,
    telemetry: Telemetry,
    /// Turns true when the server stops: open watches then end with their
    /// resume token instead of holding the drain up to their bound.
    stopping: Option<tokio::sync::watch::Receiver<bool>>,
}

impl PaymentApi {
    /// The service, recording each call in its log line only.
    pub fn new(ledger: Ledger, auth: Authenticator) -> Self {
        Self {
            ledger,
            auth,
            telemetry: Telemetry::off(),
            stopping: None,
        }
    }

    /// The service, recording each call through `telemetry` too (one
    /// record per call: see `crate::telemetry`).
    pub fn with_telemetry(self, telemetry: Telemetry) -> Self {
        Self { telemetry, ..self }
    }

    /// Where this service records its calls (the request guard records
    /// the calls it refuses there too).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The service, ending its open WatchAccount calls (OK, with their
    /// resume token) once `stopping` turns true or its sender is gone: a
    /// server draining for a restart waits for no watch.
    pub fn with_shutdown(self, stopping: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            stopping: Some(stopping),
            ..self
        }
    }
}

/// One unary call: the caller's deadline from the request, its message
/// parsed into domain values (the first invalid field fails the call), the
/// work run until the deadline, and its result made the reply.
async fn unary<Req, In, Out, Reply, Work>(
    request: Request<Req>,
    cut_off: CutOff,
    parse: impl FnOnce(Req) -> Result<In, ServiceError>,
    work: impl FnOnce(In) -> Work,
    reply: impl FnOnce(Out) -> Reply,
) -> Result<Response<Reply>, ServiceError>
where
    Work: Future<Output = Result<Out, ServiceError>>,
{
    let deadline = deadline(&request);
    let input = parse(request.into_inner())?;
    let output = until(deadline, cut_off, work(input)).await?;
    Ok(Response::new(reply(output)))
}

/// A streamed answer.
type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
type HistoryStream = Streamed<pb::GetTransactionHistoryResponse>;
type WatchStream = Streamed<pb::WatchAccountResponse>;

/// Authenticates and runs one call, its DynamoDB work metered, and records
/// it ([`crate::telemetry`]): the one place every call's record is made.
/// A streamed answer is recorded when its stream ends.
macro_rules! call {
    ($self:ident, $method:literal, $request:ident, $handler:ident) => {{
        let (call, result) = call!(@run $self, $method, $request, $handler);
        call.finish(&result);
        result
    }};
    ($self:ident, $method:literal, $request:ident, $handler:ident, streamed) => {{
        let (call, result) = call!(@run $self, $method, $request, $handler);
        match result {
            Ok(response) => Ok(response.map(|stream| -> Streamed<_> {
                Box::pin(call.finish_stream(stream))
            })),
            Err(status) => {
                call.finish::<()>(&Err(status.clone()));
                Err(status)
            }
        }
    }};
    (@run $self:ident, $method:literal, $request:ident, $handler:ident) => {{
        let mut call = Call::start(&$self.telemetry, $method, &$request);
        let result = match $self.auth.caller(&$request).await {
            Ok(caller) => {
                call.set_caller(&caller.sub);
                metered(call.meter(), $self.$handler(&caller, $request))
                    .await
                    .map_err(Status::from)
            }
            Err(status) => Err(status),
        };
        (call, result)
    }};
}

#[tonic::async_trait]
impl PaymentService for PaymentApi {
    async fn add_account(
        &self,
        request: Request<pb::AddAccountRequest>,
    ) -> Result<Response<pb::AddAccountResponse>, Status> {
        call!(self, "AddAccount", request, add_account_call)
    }

    async fn make_payment(
        &self,
        request: Request<pb::MakePaymentRequest>,
    ) -> Result<Response<pb::MakePaymentResponse>, Status> {
        call!(self, "MakePayment", request, make_payment_call)
    }

    async fn get_account_balance(
        &self,
        request: Request<pb::GetAccountBalanceRequest>,
    ) -> Result<Response<pb::GetAccountBalanceResponse>, Status> {
        call!(self, "GetAccountBalance", request, get_account_balance_call)
    }

    async fn authorize_payment(
        &self,
        request: Request<pb::AuthorizePaymentRequest>,
    ) -> Result<Response<pb::AuthorizePaymentResponse>, Status> {
        call!(self, "AuthorizePayment", request, authorize_payment_call)
    }

    async fn capture_hold(
        &self,
        request: Request<pb::CaptureHoldRequest>,
    ) -> Result<Response<pb::CaptureHoldResponse>, Status> {
        call!(self, "CaptureHold", request, capture_hold_call)
    }

    async fn void_hold(
        &self,
        request: Request<pb::VoidHoldRequest>,
    ) -> Result<Response<pb::VoidHoldResponse>, Status> {
        call!(self, "VoidHold", request, void_hold_call)
    }

    async fn refund_payment(
        &self,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, Status> {
        call!(self, "RefundPayment", request, refund_payment_call)
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, Status> {
        call!(self, "GetPayment", request, get_payment_call)
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        call!(self, "ListAccounts", request, list_accounts_call)
    }

    async fn set_balance_shards(
        &self,
        request: Request<pb::SetBalanceShardsRequest>,
    ) -> Result<Response<pb::SetBalanceShardsResponse>, Status> {
        call!(self, "SetBalanceShards", request, set_balance_shards_call)
    }

    type GetTransactionHistoryStream = HistoryStream;

    type WatchAccountStream = WatchStream;

    async fn watch_account(
        &self,
        request: Request<pb::WatchAccountRequest>,
    ) -> Result<Response<Self::WatchAccountStream>, Status> {
        call!(self, "WatchAccount", request, watch_account_call, streamed)
    }

    async fn get_transaction_history(
        &self,
        request: Request<pb::GetTransactionHistoryRequest>,
    ) -> Result<Response<Self::GetTransactionHistoryStream>, Status> {
        call!(
            self,
            "GetTransactionHistory",
            request,
            get_transaction_history_call,
            streamed
        )
    }
}
