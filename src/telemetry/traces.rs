//! Traces: one OpenTelemetry span per call, and under it one span per
//! DynamoDB request attempt the call made.
//!
//! The spans are made here by hand with the OpenTelemetry API and SDK (no
//! `tracing` layer in between): [`Traces::start_call`] opens the call's
//! span when the call arrives, the [`super::CallMeter`] interceptor of the
//! ledger's DynamoDB client opens and closes a child span around each
//! attempt it sees (the call's span travels with the call's meter, in the
//! task-local), and the call's record closes the call's span.
//!
//! Each entry point has its own exporter:
//! - payment-server: OTLP (gRPC or HTTP/protobuf), configured by the
//!   standard `OTEL_*` settings, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set ([`Traces::otlp_from_env`]);
//!   the call continues an incoming W3C `traceparent`.
//! - payment-lambda: X-Ray segment documents over UDP to the X-Ray daemon
//!   that Lambda runs when active tracing is on (`AWS_XRAY_DAEMON_ADDRESS`,
//!   [`super::xray`]); the call continues the invocation's trace (its
//!   `Lambda-Runtime-Trace-Id`), and only when Lambda sampled it.
//!
//! With no exporter there is no [`Traces`] at all: no span is made, and the
//! interceptor finds nothing to do (zero cost when off).
//!
//! Attributes never hold a token, an amount, an account id or the caller:
//! the call's log line carries the trace id, and ids stay there.

use super::{CallRecord, Invocation, Transport};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, SpanExporter};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The gRPC service every call's span names (`rpc.service`).
pub const RPC_SERVICE: &str = "payment.v1.PaymentService";

/// The tracer's instrumentation scope.
const SCOPE: &str = "payment";

/// The service name when `OTEL_SERVICE_NAME` does not set one.
pub const SERVICE_NAME_DEFAULT: &str = "payment-server";

/// The setting Lambda gives the X-Ray daemon's address in.
pub const XRAY_DAEMON_ADDRESS_ENV: &str = "AWS_XRAY_DAEMON_ADDRESS";

/// How long payment-server waits for its last spans to be exported when it
/// stops.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a call's parent span comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// A W3C `traceparent` header of the request (payment-server).
    TraceContext,
    /// The X-Ray trace header of the Lambda invocation
    /// ([`Invocation::trace_id`]).
    Xray,
}

/// A setting that does not configure traces.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    #[error(
        "OTEL_TRACES_EXPORTER={0:?}: payment-server exports traces over OTLP only (set otlp, or none)"
    )]
    Exporter(String),
    #[error(
        "{0}: {1:?} is not an OTLP endpoint: give an http:// URL (https:// only with OTEL_EXPORTER_OTLP_PROTOCOL=grpc)"
    )]
    Endpoint(&'static str, String),
    #[error("the OTLP span exporter: {0}")]
    Build(String),
    #[error(
        "{XRAY_DAEMON_ADDRESS_ENV}={0:?} is not an address of the X-Ray daemon (host:port, or udp:host:port)"
    )]
    XrayAddress(String),
    #[error("the X-Ray daemon's socket: {0}")]
    Socket(#[from] std::io::Error),
}

/// A service instance's tracer: its spans, where they go, and where a
/// call's parent comes from.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// Reads a call's parent, as `parent` says where it comes from (a
    /// function chosen once, so that a binary links only the one it uses).
    extract: fn(&tonic::metadata::MetadataMap, Option<&Invocation>) -> Context,
    shut_down: AtomicBool,
}

/// An environment variable, trimmed; None when unset or empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

const OTEL_ENDPOINTS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
const OTEL_PROTOCOLS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];

impl Traces {
    /// payment-server's: OTLP when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, unless `OTEL_SDK_DISABLED=true`
    /// or `OTEL_TRACES_EXPORTER=none`; None (no tracing at all) otherwise.
    /// Everything else is the standard settings as the OpenTelemetry SDK
    /// reads them: `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the
    /// default, or `grpc`), `..._HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`,
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
    /// (default `parentbased_always_on`) and `OTEL_BSP_*`. Must be called
    /// on a tokio runtime, which then runs the exports.
    pub fn otlp_from_env() -> Result<Option<Self>, TracesError> {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match env("OTEL_TRACES_EXPORTER").map(|v| v.to_ascii_lowercase()) {
            None => {}
            Some(v) if v == "otlp" => {}
            Some(v) if v == "none" => return Ok(None),
            Some(v) => return Err(TracesError::Exporter(v)),
        }
        let Some((name, endpoint)) = OTEL_ENDPOINTS
            .iter()
            .find_map(|name| env(name).map(|value| (*name, value)))
        else {
            return Ok(None);
        };
        let grpc = OTEL_PROTOCOLS
            .iter()
            .find_map(|name| env(name))
            .is_some_and(|p| p.eq_ignore_ascii_case("grpc"));
        // The HTTP exporter's client (hyper's) speaks plain HTTP only.
        let scheme_ok =
            endpoint.starts_with("http://") || (grpc && endpoint.starts_with("https://"));
        if !scheme_ok {
            return Err(TracesError::Endpoint(name, endpoint));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .build()
            .map_err(|e| TracesError::Build(e.to_string()))?;
        Ok(Some(Self::batched(exporter, None)))
    }

    /// OTLP over gRPC to `endpoint` (e.g. `http://127.0.0.1:4317`), under
    /// `service_name`: what payment-bench exports to with tracing on. Must
    /// be called on a tokio runtime, which then runs the exports.
    pub fn otlp_grpc(endpoint: &str, service_name: &str) -> Result<Self, TracesError> {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| TracesError::Build(e.to_string()))?;
        Ok(Self::batched(exporter, Some(service_name)))
    }

    /// The spans batched by the SDK's batch processor (its own thread, which
    /// a span's end does not wake: spans wait in its queue until a batch is
    /// full or its delay is up), each batch exported as a task on the
    /// current tokio runtime ([`OnRuntime`]): the OTLP clients need the
    /// runtime, and the exports' CPU is the service's. Must be called on a
    /// tokio runtime.
    fn batched(exporter: impl SpanExporter + 'static, service_name: Option<&str>) -> Self {
        use opentelemetry_sdk::trace::BatchSpanProcessor;
        let exporter = OnRuntime {
            inner: std::sync::Arc::new(exporter),
            runtime: tokio::runtime::Handle::current(),
        };
        let processor = BatchSpanProcessor::builder(exporter).build();
        let name = service_name
            .map(str::to_owned)
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| SERVICE_NAME_DEFAULT.to_owned());
        let mut resource = opentelemetry_sdk::Resource::builder();
        let named_by_attributes =
            env("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
        if service_name.is_some() || !named_by_attributes {
            resource = resource.with_service_name(name);
        }
        // The sampler is the SDK's default: OTEL_TRACES_SAMPLER, else
        // parent-based always-on.
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build();
        Self::new(provider, Parent::TraceContext)
    }

    /// payment-lambda's: X-Ray when Lambda runs the daemon
    /// (`AWS_XRAY_DAEMON_ADDRESS` set, as it is under active tracing);
    /// None otherwise.
    pub fn xray_from_env() -> Result<Option<Self>, TracesError> {
        let Some(address) = env(XRAY_DAEMON_ADDRESS_ENV) else {
            return Ok(None);
        };
        let daemon =
            super::xray::daemon_address(&address).ok_or(TracesError::XrayAddress(address))?;
        Ok(Some(Self::xray(daemon)?))
    }

    /// Segment documents to the X-Ray daemon at `daemon` (UDP), each span
    /// sent as it ends: a Lambda container is frozen between invocations,
    /// so nothing may wait in a queue. Only calls whose invocation Lambda
    /// sampled are traced: a call with no trace header, or `Sampled=0`,
    /// makes no span.
    pub fn xray(daemon: std::net::SocketAddr) -> Result<Self, TracesError> {
        let exporter = super::xray::XrayDaemon::new(daemon)?;
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
            .with_resource(opentelemetry_sdk::Resource::builder_empty().build())
            .build();
        Ok(Self::new(provider, Parent::Xray))
    }

    /// A tracer over `provider` (tests: the SDK's in-memory exporter).
    pub fn new(provider: SdkTracerProvider, parent: Parent) -> Self {
        let tracer = provider.tracer(SCOPE);
        let extract = match parent {
            Parent::TraceContext => traceparent_of,
            Parent::Xray => xray_parent_of,
        };
        Self {
            provider,
            tracer,
            extract,
            shut_down: AtomicBool::new(false),
        }
    }

    /// Exports what is queued and stops; blocks up to [`SHUTDOWN_TIMEOUT`]
    /// (call it off the runtime's workers, e.g. in `spawn_blocking`).
    pub fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Err(err) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %err, "traces: the last spans may not have been exported");
        }
    }

    /// Opens the span of a call of `method` that arrived with `metadata`
    /// (its `traceparent`) or as the Lambda invocation `invocation` (its
    /// X-Ray header).
    pub(crate) fn start_call(
        &self,
        method: &'static str,
        transport: Transport,
        metadata: &tonic::metadata::MetadataMap,
        invocation: Option<&Invocation>,
    ) -> CallTrace {
        let parent = (self.extract)(metadata, invocation);
        let mut attributes = vec![
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", RPC_SERVICE),
            KeyValue::new("rpc.method", method),
            KeyValue::new("payment.transport", transport.as_str()),
        ];
        if let Some(invocation) = invocation {
            attributes.push(KeyValue::new(
                "faas.invocation_id",
                invocation.request_id.clone(),
            ));
        }
        let span = self
            .tracer
            .span_builder(format!("{RPC_SERVICE}/{method}"))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        CallTrace {
            tracer: self.tracer.clone(),
            cx: parent.with_span(span),
        }
    }
}

impl Drop for Traces {
    /// The SDK shuts a provider down when its last handle goes, and the
    /// batch processor's shutdown blocks until its last export, a task on
    /// the runtime, is done: on the thread of a current-thread runtime that
    /// would wait out the timeout. So unless [`Traces::shutdown`] ran, the last spans are
    /// exported from a thread of its own, which then holds that last
    /// handle.
    fn drop(&mut self) {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let provider = self.provider.clone();
        let spawned = std::thread::Builder::new()
            .name("traces-shutdown".into())
            .spawn(move || {
                let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "traces: the last spans were dropped");
        }
    }
}

/// An exporter whose exports run as tasks on a tokio runtime, for the
/// batch processor's thread to wait on.
///
/// The SDK's other batch processor, a task on the runtime itself, takes
/// each ended span as a message that wakes its task: a wake-up (often a
/// thread's) per span, which cost more CPU per payment than making and
/// exporting the spans did.
#[derive(Debug)]
struct OnRuntime<E> {
    inner: std::sync::Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        let inner = std::sync::Arc::clone(&self.inner);
        let export = self.runtime.spawn(async move { inner.export(batch).await });
        match export.await {
            Ok(result) => result,
            Err(err) => Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                format!("the export task: {err}"),
            )),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        // Called when the provider is built, before any export holds a
        // clone of the exporter.
        if let Some(inner) = std::sync::Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The parent in a W3C `traceparent` header, if any.
fn traceparent_of(metadata: &tonic::metadata::MetadataMap, _: Option<&Invocation>) -> Context {
    opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Metadata(metadata))
}

/// The parent in the Lambda invocation's X-Ray trace header, if any
/// (`Root=1-…;Parent=…;Sampled=…`, read by opentelemetry-aws).
fn xray_parent_of(_: &tonic::metadata::MetadataMap, invocation: Option<&Invocation>) -> Context {
    invocation
        .and_then(|i| i.trace_id.as_deref())
        .and_then(opentelemetry_aws::trace::xray_propagator::span_context_from_str)
        .map(|remote| Context::new().with_remote_span_context(remote))
        .unwrap_or_default()
}

/// A request's gRPC metadata as the propagator reads it.
struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The span of one call in progress (in its meter, so that the DynamoDB
/// interceptor finds it in the task-local).
#[derive(Debug, Clone)]
pub struct CallTrace {
    tracer: SdkTracer,
    cx: Context,
}

/// gRPC codes that are the server's fault: the call's span gets an error
/// status (as OpenTelemetry's gRPC conventions have it for server spans).
fn server_fault(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unknown | DeadlineExceeded | Unimplemented | Internal | Unavailable | DataLoss
    )
}

impl CallTrace {
    /// The trace id (32 hex digits) for the call's log line, when the
    /// call's span has one.
    pub fn trace_id(&self) -> Option<String> {
        let span = self.cx.span();
        let context = span.span_context();
        context.is_valid().then(|| context.trace_id().to_string())
    }

    /// Closes the call's span with what its record says.
    pub(crate) fn end(&self, record: &CallRecord, code: tonic::Code) {
        let span = self.cx.span();
        if !span.is_recording() {
            return;
        }
        let c = &record.counts;
        let mut attributes = vec![
            KeyValue::new("rpc.grpc.status_code", code as i64),
            KeyValue::new("payment.code", record.code),
            KeyValue::new("payment.dynamodb_requests", c.requests as i64),
            KeyValue::new("payment.rounds", c.rounds as i64),
            KeyValue::new("payment.conflicts", c.conflicts as i64),
            KeyValue::new("payment.consumed_wcu", c.wcu),
            KeyValue::new("payment.consumed_rcu", c.rcu),
            KeyValue::new("payment.cold_start", record.cold_start),
        ];
        if !record.reason.is_empty() {
            attributes.push(KeyValue::new("payment.reason", record.reason.clone()));
        }
        if let Some(first) = record.first_message {
            attributes.push(KeyValue::new(
                "payment.first_message_ms",
                first.as_secs_f64() * 1000.0,
            ));
        }
        span.set_attributes(attributes);
        if server_fault(code) {
            span.set_status(Status::error(record.code));
        }
        span.end();
    }

    /// Opens the span of one DynamoDB request attempt, a child of the
    /// call's.
    pub(crate) fn start_attempt(
        &self,
        operation: &str,
        attempt: Option<u32>,
        region: Option<&str>,
    ) -> AttemptSpan {
        let mut attributes = vec![
            KeyValue::new("rpc.system", "aws-api"),
            KeyValue::new("rpc.service", "DynamoDB"),
            KeyValue::new("rpc.method", operation.to_owned()),
            KeyValue::new("db.system.name", "aws.dynamodb"),
        ];
        if let Some(attempt) = attempt {
            attributes.push(KeyValue::new("payment.attempt", i64::from(attempt)));
        }
        if let Some(region) = region {
            attributes.push(KeyValue::new("cloud.region", region.to_owned()));
        }
        let span = self
            .tracer
            .span_builder(format!("DynamoDB.{operation}"))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        AttemptSpan(Mutex::new(Some(span)))
    }
}

/// The span of the DynamoDB attempt in flight, kept in the SDK's
/// configuration bag from the attempt's start to its end. A request
/// abandoned midway (the call's deadline) ends its span when dropped.
#[derive(Debug)]
pub struct AttemptSpan(Mutex<Option<opentelemetry_sdk::trace::Span>>);

impl aws_smithy_types::config_bag::Storable for AttemptSpan {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// How one DynamoDB attempt ended.
#[derive(Debug, Default)]
pub(crate) struct AttemptEnd<'a> {
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// DynamoDB's request id (`x-amzn-requestid`).
    pub request_id: Option<&'a str>,
    /// The error's code (e.g. `TransactionCanceledException`), or a kind of
    /// failure with no answer (`timeout`, `io`, ...).
    pub error: Option<String>,
}

impl AttemptSpan {
    /// Closes the attempt's span.
    pub(crate) fn end(&self, end: AttemptEnd<'_>) {
        let Some(mut span) = self.0.lock().ok().and_then(|mut s| s.take()) else {
            return;
        };
        if !span.is_recording() {
            return;
        }
        if let Some(status) = end.status {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(id) = end.request_id {
            span.set_attribute(KeyValue::new("aws.request_id", id.to_owned()));
        }
        let failed = end.error.is_some() || end.status.is_none_or(|s| s >= 400);
        if failed {
            let kind = end
                .error
                .or_else(|| end.status.map(|s| s.to_string()))
                .unwrap_or_else(|| "no answer".to_owned());
            span.set_attribute(KeyValue::new("error.type", kind.clone()));
            span.set_status(Status::error(kind));
        }
        span.end();
    }
}

#[cfg(test)]
mod tests;
