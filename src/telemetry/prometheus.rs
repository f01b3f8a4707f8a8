//! payment-server's records as Prometheus series, served in the text
//! exposition format at `/metrics` on a listener of their own
//! (`--metrics-listen`).
//!
//! The series are kept by metrics-exporter-prometheus's recorder, used
//! directly rather than installed as the process's global `metrics`
//! recorder: each service instance owns its series (tests run several
//! servers in one process and count exactly), and a server without
//! `--metrics-listen` pays nothing.

use super::CallRecord;
use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

pub const CALLS: &str = "payment_calls_total";
pub const CALL_DURATION: &str = "payment_call_duration_seconds";
pub const FIRST_MESSAGE: &str = "payment_first_message_seconds";
pub const DYNAMODB_REQUESTS: &str = "payment_dynamodb_requests_total";
pub const ROUNDS: &str = "payment_rounds_total";
pub const CONFLICTS: &str = "payment_conflicts_total";
pub const CONSUMED_WCU: &str = "payment_consumed_wcu_total";
pub const CONSUMED_RCU: &str = "payment_consumed_rcu_total";
pub const COLD_STARTS: &str = "payment_cold_starts_total";
pub const OUTCOME_UNKNOWN: &str = "payment_outcome_unknown_total";

/// Histogram buckets (seconds): 1 ms to 10 s, about three per decade.
const BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// How often histogram samples are folded into their buckets when nobody
/// scrapes (a scrape folds them too), so that memory stays bounded.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// The series of one service instance.
pub struct PrometheusMetrics {
    recorder: PrometheusRecorder,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusMetrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS_SECONDS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let describe = |name: &'static str, text: &'static str| {
            recorder.describe_counter(name.into(), None, text.into());
        };
        describe(CALLS, "Calls answered, by method and gRPC code.");
        describe(
            CALL_DURATION,
            "Time from a call's arrival to its answer (a streamed call: to its end).",
        );
        describe(
            FIRST_MESSAGE,
            "Time from a streamed call's arrival to its first message.",
        );
        describe(
            DYNAMODB_REQUESTS,
            "HTTP requests sent to DynamoDB, every attempt.",
        );
        describe(ROUNDS, "TransactWriteItems the ledger sent.");
        describe(
            CONFLICTS,
            "TransactWriteItems DynamoDB cancelled (races the ledger went round again for).",
        );
        describe(
            CONSUMED_WCU,
            "Write capacity units DynamoDB reported consumed (a gauge that only rises: units come in fractions).",
        );
        describe(
            CONSUMED_RCU,
            "Read capacity units DynamoDB reported consumed (a gauge that only rises: units come in fractions).",
        );
        describe(
            COLD_STARTS,
            "Calls that were the first this process served.",
        );
        describe(
            OUTCOME_UNKNOWN,
            "Calls answered with reason OUTCOME_UNKNOWN (a write that may or may not have committed).",
        );
        // Present from the start, so that an alert on them sees zeros.
        recorder
            .register_counter(&Key::from_static_name(COLD_STARTS), &METADATA)
            .increment(0);
        Self { recorder }
    }

    /// Adds one call's record to the series.
    pub fn add(&self, record: &CallRecord) {
        let method = || Label::new("method", record.method);
        let by_method = |name: &'static str| Key::from_parts(name, vec![method()]);
        let by_code = |name: &'static str| {
            Key::from_parts(name, vec![method(), Label::new("code", record.code)])
        };
        let counter =
            |key: Key, n: u64| self.recorder.register_counter(&key, &METADATA).increment(n);
        let rising = |key: Key, units: f64| {
            self.recorder
                .register_gauge(&key, &METADATA)
                .increment(units)
        };
        let c = &record.counts;
        counter(by_code(CALLS), 1);
        self.recorder
            .register_histogram(&by_code(CALL_DURATION), &METADATA)
            .record(record.latency.as_secs_f64());
        if let Some(first) = record.first_message {
            self.recorder
                .register_histogram(&by_method(FIRST_MESSAGE), &METADATA)
                .record(first.as_secs_f64());
        }
        counter(by_method(DYNAMODB_REQUESTS), c.requests);
        counter(by_method(ROUNDS), c.rounds);
        counter(by_method(CONFLICTS), c.conflicts);
        rising(by_method(CONSUMED_WCU), c.wcu);
        rising(by_method(CONSUMED_RCU), c.rcu);
        counter(
            Key::from_static_name(COLD_STARTS),
            u64::from(record.cold_start),
        );
        counter(
            by_method(OUTCOME_UNKNOWN),
            u64::from(record.outcome_unknown()),
        );
    }

    /// The handle that renders the series.
    pub fn handle(&self) -> PrometheusHandle {
        self.recorder.handle()
    }

    /// The series in the text exposition format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

impl super::Sink for PrometheusMetrics {
    fn record(&self, record: &CallRecord) {
        self.add(record);
    }
}

/// Binds `addr` and serves `GET /metrics` there for the process's life;
/// the telemetry that feeds it.
pub async fn listen(addr: std::net::SocketAddr) -> std::io::Result<super::Telemetry> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
    let metrics = std::sync::Arc::new(PrometheusMetrics::new());
    tokio::spawn(serve(listener, metrics.handle(), std::future::pending()));
    Ok(super::Telemetry::with_sink(metrics))
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, and
/// folds histogram samples every few seconds in between.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Counts, Transport};

    fn record(method: &'static str, code: &'static str, requests: u64) -> CallRecord {
        CallRecord {
            method,
            code,
            reason: String::new(),
            transport: Transport::Grpc,
            latency: Duration::from_millis(7),
            first_message: None,
            counts: Counts {
                requests,
                rounds: 1,
                conflicts: 0,
                wcu: 2.0,
                rcu: 0.5,
            },
            cold_start: false,
            caller: Some("someone".into()),
            invocation: None,
            trace_id: None,
            streamed: false,
        }
    }

    #[test]
    fn records_become_series_by_method_and_code_without_ids() {
        let metrics = PrometheusMetrics::new();
        metrics.add(&record("MakePayment", "OK", 2));
        metrics.add(&record("MakePayment", "OK", 3));
        metrics.add(&record("MakePayment", "ABORTED", 4));
        let text = metrics.render();
        for line in [
            r#"payment_calls_total{method="MakePayment",code="OK"} 2"#,
            r#"payment_calls_total{method="MakePayment",code="ABORTED"} 1"#,
            r#"payment_call_duration_seconds_count{method="MakePayment",code="OK"} 2"#,
            r#"payment_call_duration_seconds_bucket{method="MakePayment",code="OK",le="0.01"} 2"#,
            r#"payment_dynamodb_requests_total{method="MakePayment"} 9"#,
            r#"payment_rounds_total{method="MakePayment"} 3"#,
            r#"payment_consumed_wcu_total{method="MakePayment"} 6"#,
            r#"payment_consumed_rcu_total{method="MakePayment"} 1.5"#,
            "payment_cold_starts_total 0",
            r#"payment_outcome_unknown_total{method="MakePayment"} 0"#,
            "# TYPE payment_call_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(!text.contains("someone"));
    }
}
