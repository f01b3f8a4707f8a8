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

pub mod emf;
pub mod prometheus;
mod requests;
pub mod traces;
pub mod xray;

pub use requests::RequestCounter;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_stream::Stream;
use tonic::{Code, Status};

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

/// What DynamoDB work one call did. Capacity is in millionths of a unit
/// (DynamoDB reports halves and quarters), so that it adds up atomically.
/// With tracing on it also carries the call's span, the parent of the
/// DynamoDB attempts' spans.
#[derive(Debug, Default)]
pub struct Meter {
    trace: Option<traces::CallTrace>,
    requests: AtomicU64,
    rounds: AtomicU64,
    conflicts: AtomicU64,
    wcu_micro: AtomicU64,
    rcu_micro: AtomicU64,
}

/// A [`Meter`] read out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// HTTP requests sent to DynamoDB (every attempt, SDK retries included).
    pub requests: u64,
    /// TransactWriteItems the ledger sent (its write rounds).
    pub rounds: u64,
    /// Rounds DynamoDB cancelled (a condition failed because another writer
    /// got there first, a TransactionConflict, throttling).
    pub conflicts: u64,
    /// Write capacity units DynamoDB reported consumed.
    pub wcu: f64,
    /// Read capacity units DynamoDB reported consumed.
    pub rcu: f64,
}

const MICRO: f64 = 1_000_000.0;

impl Meter {
    /// A meter for a call traced as `trace`.
    pub fn traced(trace: Option<traces::CallTrace>) -> Self {
        Self {
            trace,
            ..Self::default()
        }
    }

    pub fn counts(&self) -> Counts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            requests: load(&self.requests),
            rounds: load(&self.rounds),
            conflicts: load(&self.conflicts),
            wcu: load(&self.wcu_micro) as f64 / MICRO,
            rcu: load(&self.rcu_micro) as f64 / MICRO,
        }
    }

    fn add_capacity(&self, read: f64, write: f64) {
        let micro = |units: f64| (units.max(0.0) * MICRO).round() as u64;
        self.rcu_micro.fetch_add(micro(read), Ordering::Relaxed);
        self.wcu_micro.fetch_add(micro(write), Ordering::Relaxed);
    }
}

tokio::task_local! {
    /// The meter of the call the current task works for.
    static METER: Arc<Meter>;
}

/// Runs `work` with `meter` as the current call's meter: what `work` does
/// (and only that, however many calls run on the runtime) is counted in it.
pub fn metered<F: Future>(meter: Arc<Meter>, work: F) -> impl Future<Output = F::Output> {
    METER.scope(meter, work)
}

/// The current call's meter, to carry into a task the call spawns.
pub fn current_meter() -> Arc<Meter> {
    METER
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(Meter::default()))
}

fn with_meter(f: impl FnOnce(&Meter)) {
    let _ = METER.try_with(|meter| f(meter));
}

/// The ledger sent a TransactWriteItems.
pub(crate) fn count_round() {
    with_meter(|m| {
        m.rounds.fetch_add(1, Ordering::Relaxed);
    });
}

/// DynamoDB cancelled a TransactWriteItems the ledger sent.
pub(crate) fn count_conflict() {
    with_meter(|m| {
        m.conflicts.fetch_add(1, Ordering::Relaxed);
    });
}

/// The SDK interceptor that feeds the current call's [`Meter`]: one
/// request per attempt sent, and the consumed capacity of every answer
/// (the ledger asks for it with ReturnConsumedCapacity TOTAL). Requests
/// made outside a call (table setup, the audit, the benchmark's own reads)
/// are not counted anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallMeter;

/// The interceptor's name, to find it in a client's configuration.
pub const CALL_METER: &str = "CallMeter";

impl aws_sdk_dynamodb::config::Intercept for CallMeter {
    fn name(&self) -> &'static str {
        CALL_METER
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let _ = METER.try_with(|meter| {
            if let Some(trace) = &meter.trace {
                let span = attempt_span(trace, cfg);
                cfg.interceptor_state().store_put(span);
            }
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Some(span) = cfg.load::<traces::AttemptSpan>() {
            span.end(attempt_end(context));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        with_meter(|m| {
            m.requests.fetch_add(1, Ordering::Relaxed);
        });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<
            '_,
        >,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Ok(output) = context.output_or_error() {
            let (read, write) = consumed(output);
            if read > 0.0 || write > 0.0 {
                with_meter(|m| m.add_capacity(read, write));
            }
        }
        Ok(())
    }
}

/// The span of the attempt about to be made, with the operation's name,
/// the attempt's number and the region from the SDK's configuration.
fn attempt_span(
    trace: &traces::CallTrace,
    cfg: &aws_sdk_dynamodb::config::ConfigBag,
) -> traces::AttemptSpan {
    use aws_smithy_runtime_api::client::orchestrator::Metadata;
    use aws_smithy_runtime_api::client::retries::RequestAttempts;
    let operation = cfg.load::<Metadata>().map_or("DynamoDB", |m| m.name());
    let attempt = cfg.load::<RequestAttempts>().map(|a| a.attempts());
    let region = cfg
        .load::<aws_sdk_dynamodb::config::Region>()
        .map(|r| r.as_ref());
    trace.start_attempt(operation, attempt, region)
}

/// How an attempt ended: its HTTP status, request id, and error code.
fn attempt_end<'a>(
    context: &'a aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
) -> traces::AttemptEnd<'a> {
    let response = context.response();
    let error = match context.output_or_error() {
        Some(Err(err)) => Some(error_code(err)),
        _ => None,
    };
    traces::AttemptEnd {
        status: response.map(|r| r.status().as_u16()),
        request_id: response.and_then(|r| r.headers().get("x-amzn-requestid")),
        error,
    }
}

/// The code of a failed attempt: DynamoDB's error code for the operations
/// the ledger sends (e.g. `TransactionCanceledException`), else the kind
/// of failure (`timeout`, `io`, ...).
fn error_code(
    err: &aws_smithy_runtime_api::client::orchestrator::OrchestratorError<
        aws_smithy_runtime_api::client::interceptors::context::Error,
    >,
) -> String {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    use aws_sdk_dynamodb::operation as op;
    let Some(error) = err.as_operation_error() else {
        return if err.is_timeout_error() {
            "timeout"
        } else if err.is_connector_error() {
            "io"
        } else if err.is_response_error() {
            "response"
        } else {
            "other"
        }
        .to_owned();
    };
    macro_rules! code {
        ($($error:ty),*) => {
            $(if let Some(e) = error.downcast_ref::<$error>() {
                return e.code().unwrap_or("unknown").to_owned();
            })*
        };
    }
    code!(
        op::transact_write_items::TransactWriteItemsError,
        op::get_item::GetItemError,
        op::batch_get_item::BatchGetItemError,
        op::query::QueryError,
        op::put_item::PutItemError,
        op::update_item::UpdateItemError,
        op::delete_item::DeleteItemError,
        op::scan::ScanError
    );
    "unknown".to_owned()
}

/// The (read, write) capacity units an operation's output reports. With
/// TOTAL, DynamoDB may give only `CapacityUnits`: they are read units for
/// a read operation and write units for a write.
fn consumed(output: &aws_smithy_runtime_api::client::interceptors::context::Output) -> (f64, f64) {
    use aws_sdk_dynamodb::operation as op;
    use aws_sdk_dynamodb::types::ConsumedCapacity;
    fn sum<'a>(all: impl IntoIterator<Item = &'a ConsumedCapacity>, read_op: bool) -> (f64, f64) {
        all.into_iter().fold((0.0, 0.0), |(r, w), c| {
            let (read, write) = match (c.read_capacity_units(), c.write_capacity_units()) {
                (None, None) => {
                    let units = c.capacity_units().unwrap_or(0.0);
                    if read_op { (units, 0.0) } else { (0.0, units) }
                }
                (read, write) => (read.unwrap_or(0.0), write.unwrap_or(0.0)),
            };
            (r + read, w + write)
        })
    }
    if let Some(o) = output.downcast_ref::<op::get_item::GetItemOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) = output.downcast_ref::<op::query::QueryOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) = output.downcast_ref::<op::batch_get_item::BatchGetItemOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) = output.downcast_ref::<op::scan::ScanOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) =
        output.downcast_ref::<op::transact_write_items::TransactWriteItemsOutput>()
    {
        sum(o.consumed_capacity(), false)
    } else if let Some(o) = output.downcast_ref::<op::put_item::PutItemOutput>() {
        sum(o.consumed_capacity(), false)
    } else if let Some(o) = output.downcast_ref::<op::update_item::UpdateItemOutput>() {
        sum(o.consumed_capacity(), false)
    } else if let Some(o) = output.downcast_ref::<op::delete_item::DeleteItemOutput>() {
        sum(o.consumed_capacity(), false)
    } else {
        (0.0, 0.0)
    }
}

/// `client` with the [`CallMeter`] interceptor (unless it has it already).
pub fn metered_client(client: aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::Intercept as _;
    if client
        .config()
        .interceptors()
        .any(|i| i.name() == CALL_METER)
    {
        return client;
    }
    aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(CallMeter).build())
}

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

/// Where an entry point sends its records besides the log line:
/// payment-server's Prometheus series ([`prometheus::PrometheusMetrics`])
/// or payment-lambda's EMF lines ([`emf::EmfWriter`]). A binary links only
/// the one it builds.
pub trait Sink: std::fmt::Debug + Send + Sync {
    fn record(&self, record: &CallRecord);
}

/// A service instance's telemetry: its sink (none: the log line only) and
/// whether it has served a call yet (cold starts).
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    sink: Option<Arc<dyn Sink>>,
    traces: Option<Arc<traces::Traces>>,
    served: Arc<AtomicBool>,
}

impl Telemetry {
    /// The log line only.
    pub fn off() -> Self {
        Self::default()
    }

    pub fn with_sink(sink: Arc<dyn Sink>) -> Self {
        Self {
            sink: Some(sink),
            ..Self::default()
        }
    }

    /// The same, with a span per call exported by `traces` (None: off).
    pub fn with_traces(mut self, traces: Option<Arc<traces::Traces>>) -> Self {
        self.traces = traces;
        self
    }

    /// The tracer, when tracing is on.
    pub fn traces(&self) -> Option<&Arc<traces::Traces>> {
        self.traces.as_ref()
    }

    /// payment-lambda's: EMF on stdout when running under Lambda
    /// (`AWS_LAMBDA_FUNCTION_NAME` set) unless the settings turn it off, with
    /// their namespace and service ([`crate::settings::MetricsSettings`]).
    /// Spans to the X-Ray daemon when Lambda runs one
    /// ([`traces::Traces::xray_from_env`]).
    pub fn lambda(metrics: &crate::settings::MetricsSettings) -> Result<Self, traces::TracesError> {
        let under_lambda =
            std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok_and(|name| !name.is_empty());
        let telemetry = if under_lambda && metrics.emf {
            Self::with_sink(Arc::new(emf::EmfWriter::from_settings(
                metrics,
                std::io::stdout(),
            )))
        } else {
            Self::off()
        };
        Ok(telemetry.with_traces(traces::Traces::xray_from_env()?.map(Arc::new)))
    }

    /// True once: for the first call this instance serves.
    fn cold_start(&self) -> bool {
        !self.served.load(Ordering::Relaxed) && !self.served.swap(true, Ordering::Relaxed)
    }

    fn emit(&self, record: &CallRecord) {
        log(record);
        if let Some(sink) = &self.sink {
            sink.record(record);
        }
    }
}

/// The call's log line: every field of its record.
fn log(record: &CallRecord) {
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
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
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

/// One call in progress: made when it arrives, ended by
/// [`Call::finish`] (or, for a streamed answer, by its [`Metered`]
/// stream's end).
#[derive(Debug)]
pub struct Call {
    method: &'static str,
    started: Instant,
    transport: Transport,
    invocation: Option<Invocation>,
    meter: Arc<Meter>,
    telemetry: Telemetry,
    caller: Option<String>,
    streamed: bool,
}

impl Call {
    /// A call of `method` arriving as `request` (its transport and Lambda
    /// invocation are request extensions; native gRPC when unmarked).
    pub fn start<T>(
        telemetry: &Telemetry,
        method: &'static str,
        request: &tonic::Request<T>,
    ) -> Self {
        let started = Instant::now();
        let extensions = request.extensions();
        let transport = extensions
            .get::<Transport>()
            .copied()
            .unwrap_or(Transport::Grpc);
        let invocation = extensions.get::<Invocation>().cloned();
        let trace = telemetry.traces.as_ref().map(|traces| {
            traces.start_call(method, transport, request.metadata(), invocation.as_ref())
        });
        Self {
            method,
            started,
            transport,
            invocation,
            meter: Arc::new(Meter::traced(trace)),
            telemetry: telemetry.clone(),
            caller: None,
            streamed: false,
        }
    }

    /// The call as started at `started` (a call refused before it reached
    /// the service, timed from its arrival).
    pub fn since(mut self, started: Instant) -> Self {
        self.started = started;
        self
    }

    /// The call's meter, for [`metered`].
    pub fn meter(&self) -> Arc<Meter> {
        self.meter.clone()
    }

    /// Who is calling (an id: it goes to the log line and EMF properties).
    pub fn set_caller(&mut self, sub: &str) {
        self.caller = Some(sub.to_owned());
    }

    fn record(self, status: Option<&Status>, first_message: Option<Duration>) -> CallRecord {
        let code = status.map_or(Code::Ok, Status::code);
        let trace = self.meter.trace.clone();
        let record = CallRecord {
            method: self.method,
            code: code_name(code),
            reason: status.map(reason_of).unwrap_or_default(),
            transport: self.transport,
            latency: self.started.elapsed(),
            first_message,
            counts: self.meter.counts(),
            cold_start: self.telemetry.cold_start(),
            caller: self.caller,
            invocation: self.invocation,
            trace_id: trace.as_ref().and_then(traces::CallTrace::trace_id),
            streamed: self.streamed,
        };
        if let Some(trace) = trace {
            trace.end(&record, code);
        }
        record
    }

    /// Ends a unary call (or a streamed one refused before its stream).
    pub fn finish<T>(self, result: &Result<T, Status>) {
        let telemetry = self.telemetry.clone();
        telemetry.emit(&self.record(result.as_ref().err(), None));
    }

    /// Ends a streamed call when `stream` ends: the record is made then,
    /// with the time to the first message and the stream's final status.
    pub fn finish_stream<S>(mut self, stream: S) -> Metered<S> {
        self.streamed = true;
        Metered {
            inner: stream,
            call: Some(self),
            first_message: None,
            failed: None,
        }
    }
}

/// A streamed answer that records its call when it ends: at its last
/// message, at an error, or when dropped early (the caller went away:
/// CANCELLED).
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    call: Option<Call>,
    first_message: Option<Duration>,
    failed: Option<Status>,
}

impl<S> Metered<S> {
    fn end(&mut self, cancelled: bool) {
        let Some(call) = self.call.take() else {
            return;
        };
        let status = match (self.failed.take(), cancelled) {
            (Some(status), _) => Some(status),
            (None, true) => Some(Status::cancelled("the caller went away")),
            (None, false) => None,
        };
        let telemetry = call.telemetry.clone();
        telemetry.emit(&call.record(status.as_ref(), self.first_message));
    }
}

impl<S, T> Stream for Metered<S>
where
    S: Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                if self.first_message.is_none() {
                    let started = self.call.as_ref().map(|c| c.started);
                    self.first_message = started.map(|s| s.elapsed());
                }
            }
            Poll::Ready(Some(Err(status))) => {
                self.failed = Some(status.clone());
                self.end(false);
            }
            Poll::Ready(None) => self.end(false),
            Poll::Pending => {}
        }
        polled
    }
}

impl<S> Drop for Metered<S> {
    fn drop(&mut self) {
        self.end(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_meter_counts_only_its_own_calls_work() {
        let (a, b) = (Arc::new(Meter::default()), Arc::new(Meter::default()));
        let work = |rounds: u64, conflicts: u64| async move {
            for _ in 0..rounds {
                count_round();
                tokio::task::yield_now().await;
            }
            for _ in 0..conflicts {
                count_conflict();
            }
        };
        // Interleaved on one runtime, and in a task one of them spawns.
        let spawned = tokio::spawn(metered(b.clone(), async move {
            let meter = current_meter();
            tokio::spawn(metered(meter, work(2, 0))).await.unwrap();
        }));
        tokio::join!(
            metered(a.clone(), work(3, 1)),
            metered(b.clone(), work(5, 2))
        );
        spawned.await.unwrap();
        count_round(); // outside any call: counted nowhere
        assert_eq!((a.counts().rounds, a.counts().conflicts), (3, 1));
        assert_eq!((b.counts().rounds, b.counts().conflicts), (7, 2));
    }

    #[test]
    fn capacity_adds_up_exactly_in_halves() {
        let meter = Meter::default();
        meter.add_capacity(0.5, 2.0);
        meter.add_capacity(1.5, 0.0);
        meter.add_capacity(0.0, 4.0);
        let counts = meter.counts();
        assert_eq!((counts.rcu, counts.wcu), (2.0, 6.0));
    }

    #[test]
    fn capacity_is_read_from_every_output_the_ledger_gets() {
        use aws_sdk_dynamodb::operation as op;
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        use aws_smithy_runtime_api::client::interceptors::context::Output;
        let total = |units: f64| ConsumedCapacity::builder().capacity_units(units).build();
        let split = ConsumedCapacity::builder()
            .capacity_units(3.0)
            .read_capacity_units(1.0)
            .write_capacity_units(2.0)
            .build();
        let get = op::get_item::GetItemOutput::builder()
            .consumed_capacity(total(1.0))
            .build();
        assert_eq!(consumed(&Output::erase(get)), (1.0, 0.0));
        let write = op::transact_write_items::TransactWriteItemsOutput::builder()
            .consumed_capacity(total(4.0))
            .consumed_capacity(total(2.0))
            .build();
        assert_eq!(consumed(&Output::erase(write)), (0.0, 6.0));
        let batch = op::batch_get_item::BatchGetItemOutput::builder()
            .consumed_capacity(total(0.5))
            .consumed_capacity(split)
            .build();
        assert_eq!(consumed(&Output::erase(batch)), (1.5, 2.0));
        let none = op::put_item::PutItemOutput::builder().build();
        assert_eq!(consumed(&Output::erase(none)), (0.0, 0.0));
    }

    #[test]
    fn every_ledger_client_has_the_call_meter_once() {
        use aws_sdk_dynamodb::config::Intercept as _;
        let meters = |client: &aws_sdk_dynamodb::Client| {
            client
                .config()
                .interceptors()
                .filter(|i| i.name() == CALL_METER)
                .count()
        };
        let shared = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let configured = aws_sdk_dynamodb::Client::from_conf(
            crate::config::metered_dynamodb_config(&shared).build(),
        );
        assert_eq!(meters(&configured), 1, "the configuration adds it");
        assert_eq!(meters(&metered_client(configured)), 1);
        let bare = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        assert_eq!(meters(&bare), 0);
        assert_eq!(meters(&metered_client(bare)), 1, "the ledger adds it");
    }

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::Unauthenticated), "UNAUTHENTICATED");
    }

    #[test]
    fn cold_start_is_the_first_call_only() {
        let telemetry = Telemetry::off();
        let clone = telemetry.clone();
        assert!(telemetry.cold_start());
        assert!(!clone.cold_start());
        assert!(!telemetry.cold_start());
        assert!(
            Telemetry::off().cold_start(),
            "another instance starts cold"
        );
    }

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
