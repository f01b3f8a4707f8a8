//! Where an instance sends its calls' records besides the log line.

use super::record::log;
use super::{CallRecord, emf, traces};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where an entry point sends its records besides the log line:
/// payment-server's Prometheus series
/// ([`prometheus::PrometheusMetrics`](super::prometheus::PrometheusMetrics))
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
    pub(super) fn cold_start(&self) -> bool {
        !self.served.load(Ordering::Relaxed) && !self.served.swap(true, Ordering::Relaxed)
    }

    pub(super) fn emit(&self, record: &CallRecord) {
        log(record);
        if let Some(sink) = &self.sink {
            sink.record(record);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
