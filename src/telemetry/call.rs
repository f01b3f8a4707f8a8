//! A call in progress, from its arrival to its record: a unary answer, or a
//! streamed one recorded when its stream ends.

use super::{CallRecord, Invocation, Meter, Telemetry, Transport, code_name, reason_of, traces};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_stream::Stream;
use tonic::{Code, Status};

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
        let trace = telemetry.traces().map(|traces| {
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

    /// The call's meter, for [`metered`](super::metered).
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
