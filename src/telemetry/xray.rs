//! The Lambda's spans as X-Ray segment documents, sent over UDP to the
//! X-Ray daemon Lambda runs under active tracing
//! (<https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html>,
//! <https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html>).
//!
//! Each span is one independent subsegment document: Lambda owns the
//! function's segment (the `Parent` of the invocation's trace header), so
//! the call's span is a subsegment of it and each DynamoDB attempt a
//! subsegment of the call's, in the `aws` namespace, which X-Ray's service
//! map shows as DynamoDB.
//!
//! Written here with serde_json rather than with opentelemetry-aws's
//! `xray-exporter`: that exporter validates names with the `regex` crate
//! (with Unicode classes), which would add to the function's binary and
//! compile its expressions in the first traced call; these documents have
//! a fixed shape.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Map, json};
use std::net::{SocketAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

/// The header of every datagram to the daemon.
pub const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The daemon's address from `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or the
/// X-Ray SDKs' `tcp:host:port udp:host:port` form (UDP is what segments
/// use).
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(value.trim());
    udp.parse().ok()
}

/// Sends each span, as it ends, as one datagram to the daemon.
#[derive(Debug)]
pub struct XrayDaemon {
    socket: UdpSocket,
}

impl XrayDaemon {
    /// A socket of its own, connected to `daemon` (so that a send is one
    /// syscall and never blocks: a lost datagram is a lost span, not a
    /// slower call).
    pub fn new(daemon: SocketAddr) -> std::io::Result<Self> {
        let any: SocketAddr = if daemon.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(any)?;
        socket.set_nonblocking(true)?;
        socket.connect(daemon)?;
        Ok(Self { socket })
    }
}

impl SpanExporter for XrayDaemon {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut failed = None;
        for span in &batch {
            let Some(document) = subsegment(span) else {
                continue;
            };
            let datagram = format!("{DAEMON_HEADER}{document}");
            if let Err(err) = self.socket.send(datagram.as_bytes()) {
                failed = Some(err);
            }
        }
        match failed {
            None => Ok(()),
            Some(err) => Err(OTelSdkError::InternalFailure(format!(
                "sending a segment to the X-Ray daemon: {err}"
            ))),
        }
    }
}

/// An X-Ray trace id from an OpenTelemetry one: `1-` the first 8 hex
/// digits (the trace's start, in seconds) `-` the other 24.
pub fn xray_trace_id(trace_id: opentelemetry::TraceId) -> String {
    let hex = trace_id.to_string();
    format!("1-{}-{}", &hex[..8], &hex[8..])
}

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => json!(b),
        Value::I64(n) => json!(n),
        Value::F64(x) => json!(x),
        other => json!(other.to_string()),
    }
}

/// An annotation key as X-Ray takes it (letters, digits, underscores):
/// `payment.reason` is `reason`, `rpc.grpc.status_code` `rpc_grpc_status_code`.
fn annotation_key(key: &Key) -> String {
    key.as_str()
        .strip_prefix("payment.")
        .unwrap_or(key.as_str())
        .replace('.', "_")
}

/// The subsegment document of `span`, or None when it was not sampled.
pub fn subsegment(span: &SpanData) -> Option<serde_json::Value> {
    let context = &span.span_context;
    if !context.is_sampled() || span.parent_span_id == opentelemetry::SpanId::INVALID {
        // Lambda owns the segment: a span with no parent has no place.
        return None;
    }
    let mut document = Map::new();
    document.insert("type".into(), json!("subsegment"));
    document.insert("id".into(), json!(context.span_id().to_string()));
    document.insert("trace_id".into(), json!(xray_trace_id(context.trace_id())));
    document.insert("parent_id".into(), json!(span.parent_span_id.to_string()));
    document.insert("start_time".into(), json!(seconds(span.start_time)));
    document.insert("end_time".into(), json!(seconds(span.end_time)));
    let aws_call = attribute(span, "rpc.system").is_some_and(|v| v.as_str() == "aws-api");
    if aws_call && span.span_kind == SpanKind::Client {
        aws_subsegment(span, &mut document);
    } else {
        call_subsegment(span, &mut document);
    }
    Some(serde_json::Value::Object(document))
}

/// A DynamoDB attempt: named after the service, in the `aws` namespace,
/// with its operation, region, request id and HTTP status.
fn aws_subsegment(span: &SpanData, document: &mut Map<String, serde_json::Value>) {
    let text = |key: &str| attribute(span, key).map(|v| v.as_str().into_owned());
    document.insert(
        "name".into(),
        json!(text("rpc.service").unwrap_or_else(|| "AWS".into())),
    );
    document.insert("namespace".into(), json!("aws"));
    let mut aws = Map::new();
    if let Some(operation) = text("rpc.method") {
        aws.insert("operation".into(), json!(operation));
    }
    if let Some(region) = text("cloud.region") {
        aws.insert("region".into(), json!(region));
    }
    if let Some(id) = text("aws.request_id") {
        aws.insert("request_id".into(), json!(id));
    }
    if let Some(Value::I64(attempt)) = attribute(span, "payment.attempt") {
        aws.insert("retries".into(), json!((attempt - 1).max(0)));
    }
    document.insert("aws".into(), serde_json::Value::Object(aws));
    let status = match attribute(span, "http.response.status_code") {
        Some(Value::I64(status)) => Some(*status),
        _ => None,
    };
    if let Some(status) = status {
        document.insert("http".into(), json!({"response": {"status": status}}));
    }
    let error = text("error.type");
    let throttled = status == Some(429)
        || error
            .as_deref()
            .is_some_and(|e| e.contains("Throttl") || e.contains("ProvisionedThroughputExceeded"));
    match status {
        _ if throttled => {
            document.insert("error".into(), json!(true));
            document.insert("throttle".into(), json!(true));
        }
        Some(400..=499) => {
            document.insert("error".into(), json!(true));
        }
        Some(200..=399) if error.is_none() => {}
        _ => {
            document.insert("fault".into(), json!(true));
        }
    }
}

/// A call of the service: named after its span, its gRPC code, reason,
/// transport and cold start as annotations (indexed: a filter expression
/// such as `annotation.code = "ABORTED"` finds them), its DynamoDB counts
/// as metadata.
fn call_subsegment(span: &SpanData, document: &mut Map<String, serde_json::Value>) {
    const ANNOTATED: [&str; 6] = [
        "rpc.method",
        "payment.code",
        "payment.reason",
        "payment.transport",
        "payment.cold_start",
        "rpc.grpc.status_code",
    ];
    document.insert("name".into(), json!(span.name));
    let mut annotations = Map::new();
    let mut metadata = Map::new();
    for kv in &span.attributes {
        let key = kv.key.as_str();
        if ANNOTATED.contains(&key) {
            annotations.insert(annotation_key(&kv.key), json_value(&kv.value));
        } else if key.starts_with("payment.") {
            metadata.insert(annotation_key(&kv.key), json_value(&kv.value));
        }
    }
    document.insert("annotations".into(), serde_json::Value::Object(annotations));
    document.insert(
        "metadata".into(),
        json!({ "payment": serde_json::Value::Object(metadata) }),
    );
    let code = match attribute(span, "rpc.grpc.status_code") {
        Some(Value::I64(code)) => *code,
        _ => 0,
    };
    if matches!(span.status, Status::Error { .. }) {
        document.insert("fault".into(), json!(true));
    } else if code != 0 {
        document.insert("error".into(), json!(true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_address_is_host_port_or_the_sdk_form() {
        assert_eq!(
            daemon_address("169.254.79.129:2000"),
            Some("169.254.79.129:2000".parse().unwrap())
        );
        assert_eq!(
            daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2001"),
            Some("127.0.0.2:2001".parse().unwrap())
        );
        assert_eq!(daemon_address("localhost"), None);
    }

    #[test]
    fn trace_ids_are_written_the_x_ray_way() {
        let id = opentelemetry::TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap();
        assert_eq!(xray_trace_id(id), "1-5759e988-bd862e3fe1be46a994272793");
    }
}
