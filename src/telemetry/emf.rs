//! The Lambda's records as CloudWatch Embedded Metric Format: one JSON line
//! per call on stdout, which CloudWatch Logs turns into metrics
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//!
//! Written by hand with serde_json: the format is one object with a fixed
//! shape, and a serializer of our own adds no crate, no thread and no work
//! at start-up to the function.

use super::CallRecord;
use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::Mutex;

/// The dimension sets of every record: the whole service, by code, by
/// method, by method and code. Ids are never dimensions.
pub const DIMENSIONS: [&[&str]; 4] = [
    &["Service"],
    &["Service", "Code"],
    &["Service", "Method"],
    &["Service", "Method", "Code"],
];

/// Every metric a record can carry (FirstMessageLatency only on streamed
/// calls): the names the template's alarms and dashboard may use, which
/// tests/template.rs and the cloud test check against this list.
pub const METRICS: [&str; 10] = [
    "Calls",
    "Latency",
    "FirstMessageLatency",
    "DynamoDBRequests",
    "Rounds",
    "Conflicts",
    "ConsumedWCU",
    "ConsumedRCU",
    "ColdStart",
    "OutcomeUnknown",
];

const COUNT: &str = "Count";
const MILLISECONDS: &str = "Milliseconds";

/// Writes one EMF line per call to its writer (stdout on Lambda; a buffer
/// in tests).
pub struct EmfWriter {
    namespace: String,
    service: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for EmfWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfWriter")
            .field("namespace", &self.namespace)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl EmfWriter {
    pub fn new(namespace: &str, service: &str, out: impl Write + Send + 'static) -> Self {
        Self {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            out: Mutex::new(Box::new(out)),
        }
    }

    /// Namespace and service from the settings
    /// ([`crate::settings::MetricsSettings`]).
    pub fn from_settings(
        settings: &crate::settings::MetricsSettings,
        out: impl Write + Send + 'static,
    ) -> Self {
        Self::new(&settings.namespace, &settings.service, out)
    }

    /// Writes `record`'s line, stamped now, in one write.
    pub fn write(&self, record: &CallRecord) {
        let mut line = self.line(record, now_ms()).to_string();
        line.push('\n');
        if let Ok(mut out) = self.out.lock() {
            // A log line that cannot be written has nowhere to be reported.
            let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
        }
    }

    /// The EMF object of `record` at `timestamp_ms` (ms since the epoch).
    pub fn line(&self, record: &CallRecord, timestamp_ms: u64) -> Value {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let c = &record.counts;
        let mut metrics: Vec<(&str, &str, Value)> = vec![
            ("Calls", COUNT, json!(1)),
            ("Latency", MILLISECONDS, json!(ms(record.latency))),
            ("DynamoDBRequests", COUNT, json!(c.requests)),
            ("Rounds", COUNT, json!(c.rounds)),
            ("Conflicts", COUNT, json!(c.conflicts)),
            ("ConsumedWCU", COUNT, json!(c.wcu)),
            ("ConsumedRCU", COUNT, json!(c.rcu)),
            ("ColdStart", COUNT, json!(u8::from(record.cold_start))),
            (
                "OutcomeUnknown",
                COUNT,
                json!(u8::from(record.outcome_unknown())),
            ),
        ];
        if record.streamed
            && let Some(first) = record.first_message
        {
            metrics.push(("FirstMessageLatency", MILLISECONDS, json!(ms(first))));
        }
        let definitions: Vec<Value> = metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut object = Map::new();
        object.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": DIMENSIONS,
                    "Metrics": definitions,
                }],
            }),
        );
        object.insert("Service".into(), json!(self.service));
        object.insert("Method".into(), json!(record.method));
        object.insert("Code".into(), json!(record.code));
        for (name, _, value) in metrics {
            object.insert(name.into(), value);
        }
        object.insert("Transport".into(), json!(record.transport.as_str()));
        object.insert("Reason".into(), json!(record.reason));
        if let Some(caller) = &record.caller {
            object.insert("Caller".into(), json!(caller));
        }
        if let Some(invocation) = &record.invocation {
            object.insert("RequestId".into(), json!(invocation.request_id));
            if let Some(trace_id) = &invocation.trace_id {
                object.insert("TraceId".into(), json!(trace_id));
            }
        }
        Value::Object(object)
    }
}

impl super::Sink for EmfWriter {
    fn record(&self, record: &CallRecord) {
        self.write(record);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{Counts, Invocation, Transport};
    use std::time::Duration;

    fn record() -> CallRecord {
        CallRecord {
            method: "MakePayment",
            code: "FAILED_PRECONDITION",
            reason: "INSUFFICIENT_FUNDS".into(),
            transport: Transport::Lambda,
            latency: Duration::from_micros(12_500),
            first_message: None,
            counts: Counts {
                requests: 3,
                rounds: 1,
                conflicts: 0,
                wcu: 4.0,
                rcu: 1.5,
            },
            cold_start: true,
            caller: Some("alice".into()),
            invocation: Some(Invocation {
                request_id: "req-1".into(),
                trace_id: Some("Root=1-abc".into()),
            }),
            trace_id: None,
            streamed: false,
        }
    }

    #[test]
    fn a_streamed_record_carries_exactly_the_listed_metrics() {
        let writer = EmfWriter::new("Ns", "svc", std::io::sink());
        let streamed = CallRecord {
            streamed: true,
            first_message: Some(Duration::from_millis(3)),
            ..record()
        };
        let line = writer.line(&streamed, 0);
        let mut names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|m| m.iter().filter_map(|d| d["Name"].as_str()).collect())
            .unwrap_or_default();
        names.sort_unstable();
        let mut listed = METRICS.to_vec();
        listed.sort_unstable();
        assert_eq!(names, listed);
    }

    #[test]
    fn a_record_is_one_emf_object_with_the_contracts_metrics_and_dimensions() {
        let writer = EmfWriter::new("Ns", "svc", std::io::sink());
        let line = writer.line(&record(), 1_700_000_000_123);
        let expected = json!({
            "_aws": {
                "Timestamp": 1_700_000_000_123u64,
                "CloudWatchMetrics": [{
                    "Namespace": "Ns",
                    "Dimensions": [["Service"], ["Service", "Code"], ["Service", "Method"], ["Service", "Method", "Code"]],
                    "Metrics": [
                        {"Name": "Calls", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds"},
                        {"Name": "DynamoDBRequests", "Unit": "Count"},
                        {"Name": "Rounds", "Unit": "Count"},
                        {"Name": "Conflicts", "Unit": "Count"},
                        {"Name": "ConsumedWCU", "Unit": "Count"},
                        {"Name": "ConsumedRCU", "Unit": "Count"},
                        {"Name": "ColdStart", "Unit": "Count"},
                        {"Name": "OutcomeUnknown", "Unit": "Count"},
                    ],
                }],
            },
            "Service": "svc",
            "Method": "MakePayment",
            "Code": "FAILED_PRECONDITION",
            "Calls": 1,
            "Latency": 12.5,
            "DynamoDBRequests": 3,
            "Rounds": 1,
            "Conflicts": 0,
            "ConsumedWCU": 4.0,
            "ConsumedRCU": 1.5,
            "ColdStart": 1,
            "OutcomeUnknown": 0,
            "Transport": "lambda",
            "Reason": "INSUFFICIENT_FUNDS",
            "Caller": "alice",
            "RequestId": "req-1",
            "TraceId": "Root=1-abc",
        });
        assert_eq!(line, expected);
    }

    #[test]
    fn a_streamed_call_carries_its_first_message_latency_and_outcome_unknown_counts() {
        let writer = EmfWriter::new("Ns", "svc", std::io::sink());
        let mut streamed = record();
        streamed.method = "GetTransactionHistory";
        streamed.streamed = true;
        streamed.first_message = Some(Duration::from_millis(3));
        streamed.reason = "OUTCOME_UNKNOWN".into();
        streamed.invocation = None;
        let line = writer.line(&streamed, 1);
        assert_eq!(line["FirstMessageLatency"], json!(3.0));
        assert_eq!(line["OutcomeUnknown"], json!(1));
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"FirstMessageLatency"));
        assert!(line.get("RequestId").is_none() && line.get("TraceId").is_none());
    }

    #[test]
    fn each_record_is_written_as_one_line() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = EmfWriter::new("Ns", "svc", buf.clone());
        writer.write(&record());
        writer.write(&record());
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for line in lines {
            let value: Value = serde_json::from_str(line).unwrap();
            assert!(value["_aws"]["Timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        }
    }
}
