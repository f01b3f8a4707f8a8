//! A small OTLP/gRPC trace receiver on loopback: where payment-bench sends
//! the service's spans when it measures tracing's cost (so that the export
//! is real: protobuf over HTTP/2 to a socket), and what the tests read the
//! exported spans back from. It is the collector's side of
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export`, built from
//! the opentelemetry-proto types; it keeps the spans or only counts them.
//!
//! Not the library's: a module of payment-bench, which the tests include
//! too (`#[path]` in tests/api/main.rs). Each uses part of it.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Spans a receiver keeps at most (the rest are counted only).
pub const KEPT_SPANS_MAX: usize = 100_000;

/// One span as received, with the service name of its resource.
#[derive(Debug, Clone)]
pub struct Received {
    pub service_name: String,
    pub span: Span,
}

#[derive(Debug, Default)]
struct Store {
    keep: bool,
    count: AtomicU64,
    spans: Mutex<Vec<Received>>,
}

#[derive(Debug, Clone)]
struct Collector(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let store = &self.0;
        for resource_spans in request.into_inner().resource_spans {
            let service_name = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                let n = scope_spans.spans.len() as u64;
                store.count.fetch_add(n, Ordering::Relaxed);
                if !store.keep {
                    continue;
                }
                if let Ok(mut kept) = store.spans.lock() {
                    let room = KEPT_SPANS_MAX.saturating_sub(kept.len());
                    kept.extend(
                        scope_spans
                            .spans
                            .into_iter()
                            .take(room)
                            .map(|span| Received {
                                service_name: service_name.clone(),
                                span,
                            }),
                    );
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// A running receiver; stopped when [`OtlpReceiver::stop`]ped or dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    endpoint: String,
    store: Arc<Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Listens on 127.0.0.1 (a free port), on the current runtime. With
    /// `keep`, keeps the spans (up to [`KEPT_SPANS_MAX`]); otherwise counts
    /// them only.
    pub async fn start(keep: bool) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let store = Arc::new(Store {
            keep,
            ..Store::default()
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let service = TraceServiceServer::new(Collector(store.clone()));
        let task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(err) = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
            {
                tracing::warn!(error = %err, "the OTLP receiver stopped");
            }
        });
        Ok(Self {
            endpoint,
            store,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Its URL, e.g. `http://127.0.0.1:43171` (the OTLP/gRPC endpoint).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Spans received so far.
    pub fn count(&self) -> u64 {
        self.store.count.load(Ordering::Relaxed)
    }

    /// The spans kept so far (with `keep`).
    pub fn spans(&self) -> Vec<Received> {
        self.store
            .spans
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Stops listening and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
