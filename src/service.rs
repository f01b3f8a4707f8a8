//! The gRPC service: maps protobuf messages to domain values, calls the
//! ledger and maps results and errors back. It knows nothing of DynamoDB.

use crate::auth::{Authenticator, Caller};
use crate::domain::{
    self, AccountId, AccountsPage, HistoryPage, HoldOrder, InvalidField, NewAccount, PageToken,
    PaymentOrder, PaymentRef, RefundOrder, ShardsOrder, WATCH_LONG_POLL_SECONDS_MAX,
    WATCH_SECONDS_MAX, WatchRequest, WatchToken, parse_amount_or_all,
};
use crate::error::{CutOff, ServiceError};
use crate::ledger::{self, HistoryCursor, Ledger, LedgerError, Payer, WatchCursor};
use crate::pb;
use crate::pb::payment_service_server::PaymentService;
use crate::telemetry::{Call, Telemetry, Transport, current_meter, metered};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Entries buffered between the DynamoDB reader and a slow stream reader.
const HISTORY_BUFFER_ENTRIES: usize = 128;

/// The PaymentService implementation shared by the server and the Lambda.
#[derive(Debug, Clone)]
pub struct PaymentApi {
    ledger: Ledger,
    auth: Authenticator,
    telemetry: Telemetry,
    /// Turns true when the server stops: open watches then end with their
    /// resume token instead of holding the drain up to their bound.
    stopping: Option<watch::Receiver<bool>>,
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

    /// The service, ending its open WatchAccount calls (OK, with their
    /// resume token) once `stopping` turns true or its sender is gone: a
    /// server draining for a restart waits for no watch.
    pub fn with_shutdown(self, stopping: watch::Receiver<bool>) -> Self {
        Self {
            stopping: Some(stopping),
            ..self
        }
    }
}

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
fn deadline<T>(request: &Request<T>) -> Option<tokio::time::Instant> {
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
async fn until<T>(
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

fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

fn account_message(account: ledger::Account) -> pb::Account {
    let balance_shards = i32::try_from(account.shards()).unwrap_or(i32::MAX);
    pb::Account {
        held: account.held_minor,
        available: account.available_minor(),
        account_id: account.account_id,
        display_name: account.display_name,
        currency: account.currency,
        balance: account.balance_minor,
        created_at: Some(timestamp(account.created_at_ms)),
        owner: account.owner,
        balance_shards,
    }
}

fn transaction_message(payment: ledger::Payment) -> pb::Transaction {
    pb::Transaction {
        kind: match payment.kind {
            ledger::TransferKind::Payment => pb::TransactionKind::Payment,
            ledger::TransferKind::Capture => pb::TransactionKind::Capture,
            ledger::TransferKind::Refund => pb::TransactionKind::Refund,
            ledger::TransferKind::Opening => pb::TransactionKind::Opening,
        } as i32,
        refund_of: payment.refund_of,
        transaction_id: payment.transaction_id,
        sender_id: payment.sender_id,
        recipient_id: payment.recipient_id,
        amount: payment.amount_minor,
        currency: payment.currency,
        memo: payment.memo,
        created_at: Some(timestamp(payment.created_at_ms)),
    }
}

fn hold_message(hold: ledger::Hold) -> pb::Hold {
    let optional_time = |ms: i64| (ms > 0).then(|| timestamp(ms));
    pb::Hold {
        hold_id: hold.hold_id,
        sender_id: hold.sender_id,
        recipient_id: hold.recipient_id,
        amount: hold.amount_minor,
        currency: hold.currency,
        memo: hold.memo,
        created_at: Some(timestamp(hold.created_at_ms)),
        expires_at: Some(timestamp(hold.expires_at_ms)),
        state: match hold.state {
            ledger::HoldState::Open => pb::HoldState::Open,
            ledger::HoldState::Captured => pb::HoldState::Captured,
            ledger::HoldState::Voided => pb::HoldState::Voided,
            ledger::HoldState::Expired => pb::HoldState::Expired,
        } as i32,
        captured_amount: hold.captured_minor,
        settled_at: optional_time(hold.settled_at_ms),
        idempotency_key: hold.idempotency_key,
    }
}

/// A PaymentRef of a request; `field` is the request's field name.
fn payment_ref(
    fields: [&'static str; 4],
    reference: Option<&pb::PaymentRef>,
) -> Result<PaymentRef, InvalidField> {
    let [field, id, sender, key] = fields;
    let reference =
        reference.ok_or_else(|| InvalidField::new(field, "is required: name the payment"))?;
    PaymentRef::parse(
        [id, sender, key],
        &reference.transaction_id,
        &reference.sender_id,
        &reference.idempotency_key,
    )
}

/// One history entry, with the token that continues right after it.
fn entry_message(
    account_id: &AccountId,
    entry: ledger::Entry,
    position: Option<Vec<u64>>,
) -> pb::GetTransactionHistoryResponse {
    let next_page_token = position.map_or_else(String::new, |cursors| {
        PageToken {
            account_id: account_id.clone(),
            before_sequence: cursors[0],
            other_shards: cursors[1..].to_vec(),
        }
        .encode()
    });
    pb::GetTransactionHistoryResponse {
        transaction: Some(transaction_message(entry.payment)),
        direction: match entry.direction {
            ledger::Direction::Debit => pb::Direction::Debit,
            ledger::Direction::Credit => pb::Direction::Credit,
        } as i32,
        balance_after: entry.balance_after_minor,
        next_page_token,
        sequence: i64::try_from(entry.sequence).unwrap_or(i64::MAX),
        shard: i32::try_from(entry.shard).unwrap_or(i32::MAX),
    }
}

/// A streamed answer.
type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
type HistoryStream = Streamed<pb::GetTransactionHistoryResponse>;
type WatchStream = Streamed<pb::WatchAccountResponse>;

impl PaymentApi {
    /// The owner, or an admin, may read an account. Anyone else gets
    /// PERMISSION_DENIED whether or not the account exists, so that account
    /// ids cannot be probed; an admin gets NOT_FOUND for an unknown one.
    async fn readable_account(
        &self,
        caller: &Caller,
        account_id: &AccountId,
    ) -> Result<ledger::Account, ServiceError> {
        let denied = || ServiceError::NotAccountReader {
            caller: caller.sub.clone(),
            account_id: account_id.to_string(),
        };
        match self.ledger.get_account(account_id).await {
            Ok(account) if account.owner == caller.sub || caller.admin => Ok(account),
            Ok(_) => Err(denied()),
            Err(LedgerError::AccountNotFound { .. }) if !caller.admin => Err(denied()),
            Err(err) => Err(err.into()),
        }
    }

    async fn add_account_call(
        &self,
        caller: &Caller,
        request: Request<pb::AddAccountRequest>,
    ) -> Result<Response<pb::AddAccountResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let new = NewAccount::parse(
            &r.account_id,
            &r.display_name,
            &r.currency,
            r.initial_balance,
            r.balance_shards,
        )?;
        if new.initial_balance_minor > 0 && !caller.admin {
            return Err(ServiceError::AdminOnly {
                field: "initial_balance",
            });
        }
        let account = until(deadline, CutOff::Account, async {
            Ok(self
                .ledger
                .add_account(&new, &caller.sub, !caller.admin)
                .await?)
        })
        .await?;
        Ok(Response::new(pb::AddAccountResponse {
            account: Some(account_message(account)),
        }))
    }

    async fn make_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::MakePaymentRequest>,
    ) -> Result<Response<pb::MakePaymentResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let order = PaymentOrder::parse(
            &r.idempotency_key,
            &r.sender_id,
            &r.recipient_id,
            r.amount,
            &r.currency,
            &r.memo,
        )?;
        let outcome = until(deadline, CutOff::Payment, async {
            let payer = Payer {
                sub: &caller.sub,
                admin: caller.admin,
            };
            Ok(self.ledger.make_payment(&order, payer).await?)
        })
        .await?;
        tracing::debug!(
            transaction_id = %outcome.payment.transaction_id,
            replayed = outcome.replayed,
            "payment"
        );
        Ok(Response::new(pb::MakePaymentResponse {
            transaction: Some(transaction_message(outcome.payment)),
            replayed: outcome.replayed,
        }))
    }

    async fn get_account_balance_call(
        &self,
        caller: &Caller,
        request: Request<pb::GetAccountBalanceRequest>,
    ) -> Result<Response<pb::GetAccountBalanceResponse>, ServiceError> {
        let deadline = deadline(&request);
        let account_id = AccountId::parse("account_id", &request.get_ref().account_id)?;
        let account = until(
            deadline,
            CutOff::Read,
            self.readable_account(caller, &account_id),
        )
        .await?;
        Ok(Response::new(pb::GetAccountBalanceResponse {
            account: Some(account_message(account)),
        }))
    }

    async fn get_transaction_history_call(
        &self,
        caller: &Caller,
        request: Request<pb::GetTransactionHistoryRequest>,
    ) -> Result<Response<HistoryStream>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let page = HistoryPage::parse(&r.account_id, r.page_size, &r.page_token)?;
        // Errors found before the stream starts (NOT_FOUND, PERMISSION_DENIED)
        // come as a plain error response, not as a trailer after zero messages.
        let account = until(
            deadline,
            CutOff::Read,
            self.readable_account(caller, &page.account_id),
        )
        .await?;
        let cursors: Option<Vec<u64>> = page.before_sequence.map(|first| {
            std::iter::once(first)
                .chain(page.other_shards.iter().copied())
                .collect()
        });
        let cursor = HistoryCursor::new(&account, cursors.as_deref()).ok_or_else(|| {
            InvalidField::new(
                "page_token",
                "does not fit the shards of this account; start with an empty page_token",
            )
        })?;
        let (tx, rx) = mpsc::channel(HISTORY_BUFFER_ENTRIES);
        let ledger = self.ledger.clone();
        // The reader works for this call: its requests count in its meter.
        tokio::spawn(metered(current_meter(), async move {
            let send_all = stream_history(&ledger, &page, cursor, &tx);
            if let Err(err) = until(deadline, CutOff::Read, send_all).await {
                let status = Status::from(err);
                tracing::warn!(code = ?status.code(), message = status.message(), "history stream failed midway");
                // The reader may be gone already; then there is nobody to tell.
                let _ = tx.send(Err(status)).await;
            }
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    fn payer<'a>(caller: &'a Caller) -> Payer<'a> {
        Payer {
            sub: &caller.sub,
            admin: caller.admin,
        }
    }

    async fn authorize_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::AuthorizePaymentRequest>,
    ) -> Result<Response<pb::AuthorizePaymentResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let order = PaymentOrder::parse(
            &r.idempotency_key,
            &r.sender_id,
            &r.recipient_id,
            r.amount,
            &r.currency,
            &r.memo,
        )?;
        let hold = HoldOrder::parse(order, r.expires_in_seconds)?;
        let outcome = until(deadline, CutOff::Hold, async {
            Ok(self
                .ledger
                .authorize_payment(&hold, Self::payer(caller))
                .await?)
        })
        .await?;
        Ok(Response::new(pb::AuthorizePaymentResponse {
            hold: Some(hold_message(outcome.hold)),
            replayed: outcome.replayed,
        }))
    }

    async fn capture_hold_call(
        &self,
        caller: &Caller,
        request: Request<pb::CaptureHoldRequest>,
    ) -> Result<Response<pb::CaptureHoldResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let hold = payment_ref(
            [
                "hold",
                "hold.transaction_id",
                "hold.sender_id",
                "hold.idempotency_key",
            ],
            r.hold.as_ref(),
        )?;
        let amount = parse_amount_or_all(r.amount)?;
        let outcome = until(deadline, CutOff::Hold, async {
            Ok(self
                .ledger
                .capture_hold(&hold, amount, Self::payer(caller))
                .await?)
        })
        .await?;
        Ok(Response::new(pb::CaptureHoldResponse {
            hold: Some(hold_message(outcome.hold)),
            transaction: outcome.capture.map(transaction_message),
            replayed: outcome.replayed,
        }))
    }

    async fn void_hold_call(
        &self,
        caller: &Caller,
        request: Request<pb::VoidHoldRequest>,
    ) -> Result<Response<pb::VoidHoldResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let hold = payment_ref(
            [
                "hold",
                "hold.transaction_id",
                "hold.sender_id",
                "hold.idempotency_key",
            ],
            r.hold.as_ref(),
        )?;
        let outcome = until(deadline, CutOff::Hold, async {
            Ok(self.ledger.void_hold(&hold, Self::payer(caller)).await?)
        })
        .await?;
        Ok(Response::new(pb::VoidHoldResponse {
            hold: Some(hold_message(outcome.hold)),
            replayed: outcome.replayed,
        }))
    }

    async fn refund_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::RefundPaymentRequest>,
    ) -> Result<Response<pb::RefundPaymentResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let payment = payment_ref(
            [
                "payment",
                "payment.transaction_id",
                "payment.sender_id",
                "payment.idempotency_key",
            ],
            r.payment.as_ref(),
        )?;
        let order = RefundOrder::parse(&r.idempotency_key, payment, r.amount, &r.memo)?;
        let outcome = until(deadline, CutOff::Payment, async {
            Ok(self
                .ledger
                .refund_payment(&order, Self::payer(caller))
                .await?)
        })
        .await?;
        Ok(Response::new(pb::RefundPaymentResponse {
            transaction: Some(transaction_message(outcome.refund)),
            replayed: outcome.replayed,
            refunded_total: outcome.refunded_total_minor,
        }))
    }

    async fn get_payment_call(
        &self,
        caller: &Caller,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::GetPaymentResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let payment = payment_ref(
            [
                "payment",
                "payment.transaction_id",
                "payment.sender_id",
                "payment.idempotency_key",
            ],
            r.payment.as_ref(),
        )?;
        let found = if r.finalize {
            // A fence stands at a record's key: only a key can be fenced.
            if let PaymentRef::Id(_) = payment {
                return Err(InvalidField::new(
                    "payment.transaction_id",
                    "is set with finalize; finalize fences a key: name the payment by payment.sender_id and payment.idempotency_key",
                )
                .into());
            }
            until(deadline, CutOff::Finalize, async {
                Ok(self
                    .ledger
                    .finalize_payment(&payment, Self::payer(caller))
                    .await?)
            })
            .await?
        } else {
            until(deadline, CutOff::Read, async {
                Ok(self
                    .ledger
                    .get_payment(&payment, Self::payer(caller))
                    .await?)
            })
            .await?
        };
        Ok(Response::new(match found {
            ledger::Found::Transfer {
                idempotency_key,
                payment,
                refunded_minor,
            } => pb::GetPaymentResponse {
                transaction: Some(transaction_message(payment)),
                hold: None,
                idempotency_key,
                refunded_total: refunded_minor,
            },
            ledger::Found::Hold {
                hold,
                capture,
                refunded_minor,
            } => pb::GetPaymentResponse {
                idempotency_key: hold.idempotency_key.clone(),
                hold: Some(hold_message(hold)),
                transaction: capture.map(transaction_message),
                refunded_total: refunded_minor,
            },
        }))
    }

    async fn list_accounts_call(
        &self,
        caller: &Caller,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let page = AccountsPage::parse(
            &caller.sub,
            caller.admin,
            &r.owner,
            r.page_size,
            &r.page_token,
        )?;
        let (accounts, after) = until(deadline, CutOff::Read, async {
            Ok(self.ledger.list_accounts(&page).await?)
        })
        .await?;
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.into_iter().map(account_message).collect(),
            next_page_token: after.map_or_else(String::new, |last| page.token_after(&last)),
        }))
    }
}

impl PaymentApi {
    async fn watch_account_call(
        &self,
        caller: &Caller,
        request: Request<pb::WatchAccountRequest>,
    ) -> Result<Response<WatchStream>, ServiceError> {
        let deadline = deadline(&request);
        let long_poll = request.extensions().get::<Transport>() == Some(&Transport::Lambda);
        let r = request.into_inner();
        let watch = WatchRequest::parse(&r.account_id, &r.resume_token, r.max_seconds)?;
        // As for history: refusals come before the stream starts.
        let account = until(
            deadline,
            CutOff::Read,
            self.readable_account(caller, &watch.account_id),
        )
        .await?;
        let cursor = WatchCursor::new(&account, watch.resume.as_deref())?.ok_or_else(|| {
            InvalidField::new(
                "resume_token",
                "does not fit this account's history (it is ahead of it, or names more shards than it has); start with an empty resume_token",
            )
        })?;
        let bound_seconds = if long_poll {
            WATCH_LONG_POLL_SECONDS_MAX
        } else {
            WATCH_SECONDS_MAX
        };
        let seconds = watch
            .max_seconds
            .unwrap_or(bound_seconds)
            .min(bound_seconds);
        let mut ends_at = tokio::time::Instant::now() + Duration::from_secs(u64::from(seconds));
        // A caller's deadline ends the watch in time for its last message.
        if let Some(at) = deadline {
            ends_at = ends_at.min(at.checked_sub(WATCH_END_MARGIN).unwrap_or(at));
        }
        let (tx, rx) = mpsc::channel(HISTORY_BUFFER_ENTRIES);
        let ledger = self.ledger.clone();
        let watcher = Watcher {
            account_id: watch.account_id,
            cursor,
            ends_at,
            long_poll,
            stopping: self.stopping.clone(),
        };
        tokio::spawn(metered(current_meter(), async move {
            let watched = until(deadline, CutOff::Read, watcher.run(&ledger, &tx));
            if let Err(err) = watched.await {
                let status = Status::from(err);
                tracing::warn!(code = ?status.code(), message = status.message(), "watch failed midway");
                let _ = tx.send(Err(status)).await;
            }
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn set_balance_shards_call(
        &self,
        caller: &Caller,
        request: Request<pb::SetBalanceShardsRequest>,
    ) -> Result<Response<pb::SetBalanceShardsResponse>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let order = ShardsOrder::parse(&r.account_id, r.balance_shards)?;
        if !caller.admin {
            return Err(LedgerError::NotAllowed {
                what: "raising an account's balance shards".into(),
                who: "an admin",
            }
            .into());
        }
        let done = until(deadline, CutOff::Shards, async {
            Ok(self
                .ledger
                .raise_shards(&order.account_id, order.balance_shards)
                .await?)
        })
        .await?;
        Ok(Response::new(pb::SetBalanceShardsResponse {
            account: Some(account_message(done.account)),
            raised: done.raised,
        }))
    }
}

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

async fn stream_history(
    ledger: &Ledger,
    page: &HistoryPage,
    mut cursor: HistoryCursor,
    tx: &mpsc::Sender<Result<pb::GetTransactionHistoryResponse, Status>>,
) -> Result<(), ServiceError> {
    let mut remaining = page.page_size;
    while remaining > 0 {
        let Some(entry) = cursor.next(ledger, remaining).await? else {
            break;
        };
        remaining -= 1;
        let message = entry_message(&page.account_id, entry, cursor.position());
        if tx.send(Ok(message)).await.is_err() {
            return Ok(()); // The caller hung up.
        }
    }
    Ok(())
}

/// How long before the caller's deadline a watch stops polling, so that its
/// last message (the resume token) reaches the caller in time.
const WATCH_END_MARGIN: Duration = Duration::from_millis(250);
/// Pause between polls right after one that found entries.
pub const WATCH_POLL_PAUSE_MIN: Duration = Duration::from_millis(100);
/// Longest pause between polls of an idle watch: it doubles from
/// [`WATCH_POLL_PAUSE_MIN`] with every empty poll up to this, so an idle
/// watcher polls about once a second (docs/watch.md gives the cost).
pub const WATCH_POLL_PAUSE_MAX: Duration = Duration::from_secs(1);

/// One WatchAccount call's loop: poll, send, pause with backoff, until its
/// bound (or, as a long poll, its first entries); then the last message.
struct Watcher {
    account_id: AccountId,
    cursor: WatchCursor,
    ends_at: tokio::time::Instant,
    long_poll: bool,
    stopping: Option<watch::Receiver<bool>>,
}

/// Resolves once the server is stopping (see [`PaymentApi::with_shutdown`]);
/// never without a shutdown signal.
async fn stopped(stopping: &mut Option<watch::Receiver<bool>>) {
    match stopping {
        // Err: the sender is gone, so is the server.
        Some(rx) => drop(rx.wait_for(|&stop| stop).await),
        None => std::future::pending().await,
    }
}

impl Watcher {
    async fn run(
        mut self,
        ledger: &Ledger,
        tx: &mpsc::Sender<Result<pb::WatchAccountResponse, Status>>,
    ) -> Result<(), ServiceError> {
        let mut pause = WATCH_POLL_PAUSE_MIN;
        loop {
            let polled = self.cursor.poll(ledger).await?;
            let found = !polled.entries.is_empty();
            for (entry, position) in polled.entries {
                let message = watch_message(&self.account_id, entry, position);
                if tx.send(Ok(message)).await.is_err() {
                    return Ok(()); // The caller hung up.
                }
            }
            let now = tokio::time::Instant::now();
            if (self.long_poll && found) || now >= self.ends_at {
                break;
            }
            if polled.more {
                continue;
            }
            pause = if found {
                WATCH_POLL_PAUSE_MIN
            } else {
                (pause * 2).min(WATCH_POLL_PAUSE_MAX)
            };
            tokio::select! {
                () = tokio::time::sleep_until((now + pause).min(self.ends_at)) => {}
                () = tx.closed() => return Ok(()),
                () = stopped(&mut self.stopping) => break,
            }
        }
        let last = pb::WatchAccountResponse {
            resume_token: self.token(self.cursor.position()),
            ..Default::default()
        };
        // The caller may be gone already; then there is nobody to tell.
        let _ = tx.send(Ok(last)).await;
        Ok(())
    }

    fn token(&self, next: Vec<u64>) -> String {
        WatchToken {
            account_id: self.account_id.clone(),
            next,
        }
        .encode()
    }
}

/// One watched entry, with the resume token right after it.
fn watch_message(
    account_id: &AccountId,
    entry: ledger::Entry,
    next: Vec<u64>,
) -> pb::WatchAccountResponse {
    let resume_token = WatchToken {
        account_id: account_id.clone(),
        next,
    }
    .encode();
    let entry = entry_message(account_id, entry, None);
    pb::WatchAccountResponse {
        transaction: entry.transaction,
        direction: entry.direction,
        balance_after: entry.balance_after,
        resume_token,
        sequence: entry.sequence,
        shard: entry.shard,
    }
}
