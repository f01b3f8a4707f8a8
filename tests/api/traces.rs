//! Traces as they leave the service: payment-server (the binary, configured
//! by the standard OTEL_* settings) exporting over OTLP to a receiver on
//! loopback, and the Lambda's handler sending X-Ray segment documents to a
//! UDP socket standing in for the X-Ray daemon. The checks read what was
//! exported: a span per call continuing the caller's trace (an incoming
//! `traceparent`, the invocation's X-Ray header), a child span per DynamoDB
//! request, as many as the call's record counts, and no token, amount or
//! account id anywhere.

use crate::harness::{
    Bearer, DEV_SECRET, TESTER, TestApp, create_tables_patiently, free_port, shared_dynamodb,
    token, unique_tables,
};
use crate::helpers::grpc_web::WebReply;
use crate::helpers::*;
use crate::lambda::rpc_event;
use crate::otlp_receiver::{OtlpReceiver, Received};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use payment::pb::payment_service_client::PaymentServiceClient;
use payment::service::PaymentApi;
use payment::telemetry::traces::Traces;
use payment::telemetry::{Invocation, Telemetry};
use prost::Message;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Amounts that no id or count spells by chance: none may be exported.
const OPENING: i64 = 271_828_182;
const PAYMENT: i64 = 31_415_927;
const TOO_MUCH: i64 = 987_654_321;

/// The caller's span, as a W3C traceparent names it.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(received: &'a Received, key: &str) -> Option<&'a AnyValue> {
    received
        .span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(received: &Received, key: &str) -> Option<String> {
    match attribute(received, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(received: &Received, key: &str) -> Option<i64> {
    match attribute(received, key)? {
        AnyValue::IntValue(n) => Some(*n),
        _ => None,
    }
}

/// Every string an exported span holds: its name and attribute values.
fn strings(received: &Received) -> Vec<String> {
    let mut all = vec![received.span.name.clone()];
    for kv in &received.span.attributes {
        if let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            all.push(match value {
                AnyValue::StringValue(s) => s.clone(),
                other => format!("{other:?}"),
            });
        }
    }
    all
}

/// payment-server, the binary, on a free port, exporting traces over OTLP
/// to `endpoint` the standard way, its log lines as JSON in a file;
/// killed when dropped.
struct Server {
    child: std::process::Child,
    url: String,
    log: tempfile_path::Path,
}

mod tempfile_path {
    /// A file path under the system's temporary directory, removed on drop.
    pub struct Path(pub std::path::PathBuf);

    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Server {
    fn start(tables: &payment::ledger::Tables, endpoint: &str) -> Server {
        let port = free_port();
        let log = tempfile_path::Path(std::env::temp_dir().join(format!(
            "payment-server-traces-{}.log",
            uuid::Uuid::new_v4().simple()
        )));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_payment-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_ENDPOINT_URL_DYNAMODB", shared_dynamodb())
            .env("PAYMENT_DEV_JWT_SECRET", DEV_SECRET)
            .env("PAYMENT_LISTEN", format!("127.0.0.1:{port}"))
            .env("PAYMENT_ACCOUNTS_TABLE", &tables.accounts)
            .env("PAYMENT_LEDGER_TABLE", &tables.ledger)
            .env("PAYMENT_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_SERVICE_NAME", "payment-traces-test")
            // Export within a tenth of a second rather than five.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log.0).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "payment-server exited: {}",
                std::fs::read_to_string(&server.log.0).unwrap_or_default()
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "payment-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The JSON log lines so far.
    fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log.0)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `message` with `traceparent` (and the bearer the client adds).
fn traced<T>(message: T, traceparent: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
}

#[tokio::test]
async fn the_server_exports_a_span_per_call_with_its_dynamodb_requests_continuing_the_caller() {
    let receiver = OtlpReceiver::start(true).await.unwrap();
    let tables = unique_tables();
    let (ledger, _) = instance(&tables);
    create_tables_patiently(&ledger).await;
    let server = Server::start(&tables, receiver.endpoint());
    let channel = payment::client::connect_channel(&server.url).await.unwrap();
    let bearer = token(TESTER, true);
    let mut c = PaymentServiceClient::with_interceptor(channel, Bearer::new(&bearer));
    let (a, b) = (unique("tr-a"), unique("tr-b"));
    add(&mut c, &a, "EUR", OPENING).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();

    let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    c.make_payment(traced(order("traced", &a, &b, PAYMENT), &traceparent))
        .await
        .unwrap();
    assert_code(
        pay(&mut c, order("too-much", &a, &b, TOO_MUCH)).await,
        tonic::Code::FailedPrecondition,
        "",
    );
    // A caller that did not sample its trace: continued, and not exported.
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    c.make_payment(traced(order("unsampled", &a, &b, PAYMENT), unsampled))
        .await
        .unwrap();

    // Two accounts, two payments made, one refused: four call spans.
    let spans = eventually(
        Duration::from_secs(20),
        || async { receiver.spans() },
        |spans| {
            spans
                .iter()
                .filter(|s| s.span.kind == SpanKind::Server as i32)
                .count()
                >= 4
        },
    )
    .await;
    let calls: Vec<&Received> = spans
        .iter()
        .filter(|s| s.span.kind == SpanKind::Server as i32)
        .collect();
    assert_eq!(calls.len(), 4, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.service_name, "payment-traces-test");
        for value in strings(span) {
            for secret in [
                bearer.as_str(),
                &PAYMENT.to_string(),
                &OPENING.to_string(),
                &TOO_MUCH.to_string(),
                a.as_str(),
                b.as_str(),
                TESTER,
            ] {
                assert!(!value.contains(secret), "{secret:?} exported in {span:#?}");
            }
        }
    }
    let methods: Vec<String> = calls
        .iter()
        .map(|s| text(s, "rpc.method").unwrap())
        .collect();
    assert_eq!(
        methods,
        ["AddAccount", "AddAccount", "MakePayment", "MakePayment"]
    );

    // The traced payment: the caller's trace, the caller's span its parent.
    let payment = calls[2];
    assert_eq!(hex(&payment.span.trace_id), CALLER_TRACE);
    assert_eq!(hex(&payment.span.parent_span_id), CALLER_SPAN);
    assert_eq!(payment.span.name, "payment.v1.PaymentService/MakePayment");
    assert_eq!(text(payment, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(int(payment, "rpc.grpc.status_code"), Some(0));
    assert_eq!(text(payment, "payment.transport").as_deref(), Some("grpc"));
    // The refused one: a trace of its own, its code and reason.
    let refused = calls[3];
    assert_ne!(hex(&refused.span.trace_id), CALLER_TRACE);
    assert!(refused.span.parent_span_id.is_empty(), "a root span");
    assert_eq!(int(refused, "rpc.grpc.status_code"), Some(9));
    assert_eq!(
        text(refused, "payment.reason").as_deref(),
        Some("INSUFFICIENT_FUNDS")
    );
    assert!(
        !spans
            .iter()
            .any(|s| hex(&s.span.trace_id) == "11111111111111111111111111111111"),
        "an unsampled trace was exported"
    );

    // Each call's children: one span per DynamoDB request it made, as many
    // as its record counts, in its trace.
    for call in &calls {
        let children: Vec<&Received> = spans
            .iter()
            .filter(|s| s.span.parent_span_id == call.span.span_id)
            .collect();
        let requests = int(call, "payment.dynamodb_requests").unwrap();
        assert!(requests >= 1, "{call:#?}");
        assert_eq!(children.len() as i64, requests, "{call:#?}\n{children:#?}");
        for child in children {
            assert_eq!(child.span.trace_id, call.span.trace_id);
            assert_eq!(child.span.kind, SpanKind::Client as i32);
            let operation = text(child, "rpc.method").unwrap();
            assert_eq!(child.span.name, format!("DynamoDB.{operation}"));
            assert_eq!(text(child, "rpc.system").as_deref(), Some("aws-api"));
            assert_eq!(text(child, "rpc.service").as_deref(), Some("DynamoDB"));
            assert_eq!(int(child, "http.response.status_code"), Some(200));
            assert_eq!(int(child, "payment.attempt"), Some(1), "no retries here");
            assert!(text(child, "aws.request_id").is_some_and(|id| !id.is_empty()));
            assert!(child.span.start_time_unix_nano >= call.span.start_time_unix_nano);
            assert!(child.span.end_time_unix_nano <= call.span.end_time_unix_nano);
        }
    }
    let payment_operations: Vec<String> = spans
        .iter()
        .filter(|s| s.span.parent_span_id == payment.span.span_id)
        .map(|s| text(s, "rpc.method").unwrap())
        .collect();
    assert!(
        payment_operations.contains(&"TransactWriteItems".to_owned()),
        "{payment_operations:?}"
    );

    // The call's log line carries the trace id.
    let lines = server.log_lines();
    let logged: Vec<&str> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "call" && l["fields"]["method"] == "MakePayment")
        .filter_map(|l| l["fields"]["trace_id"].as_str())
        .collect();
    assert_eq!(
        logged,
        [
            CALLER_TRACE,
            hex(&refused.span.trace_id).as_str(),
            "11111111111111111111111111111111"
        ],
        "{lines:#?}"
    );
}

/// A UDP socket on loopback standing in for the X-Ray daemon.
struct Daemon(tokio::net::UdpSocket);

impl Daemon {
    async fn start() -> Daemon {
        Daemon(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    /// The segment documents received until none comes for a while.
    async fn documents(&self) -> Vec<Value> {
        let mut documents = Vec::new();
        let mut buffer = vec![0u8; 65_536];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(500), self.0.recv(&mut buffer)).await
        {
            let datagram = std::str::from_utf8(&buffer[..n]).expect("UTF-8");
            let (header, document) = datagram.split_once('\n').expect("a header line");
            assert_eq!(header, r#"{"format": "json", "version": 1}"#);
            documents.push(serde_json::from_str(document).expect("a JSON document"));
        }
        documents
    }
}

/// The gRPC status of a Lambda reply.
fn status_of(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> String {
    let json = serde_json::to_value(response).unwrap();
    let body = json["body"]
        .as_str()
        .map_or_else(Vec::new, |b| B64.decode(b).expect("base64"));
    let mut parts = http::Response::new(()).into_parts().0;
    for (name, value) in json["headers"].as_object().unwrap() {
        parts.headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.as_str().unwrap().parse().unwrap(),
        );
    }
    WebReply::from_parts(parts, &body).code().to_owned()
}

#[tokio::test]
async fn the_lambda_sends_x_ray_subsegments_under_the_invocations_trace() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("xr-a"), unique("xr-b"));
    add(&mut c, &a, "EUR", OPENING).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    // The function: a container of its own, tracing to our "daemon".
    let daemon = Daemon::start().await;
    let traces = Traces::xray(daemon.0.local_addr().unwrap()).unwrap();
    let (ledger, _) = instance(app.ledger.tables());
    let api = PaymentApi::new(ledger, payment::auth::Authenticator::ApiGateway)
        .with_telemetry(Telemetry::off().with_traces(Some(Arc::new(traces))));
    let service = payment::stack::http_service(api, "*").await.unwrap();
    let bearer = format!("secret-token-{}", uuid::Uuid::new_v4().simple());

    // As Lambda passes it: the trace's start (now, in seconds) in its id,
    // the function's segment as the parent.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let root = format!(
        "1-{now:08x}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..24]
    );
    let function_segment = "53995c3f42cd8ad8";
    let invoke = |key: &str, amount: i64, sampled: u8| {
        let message = order(key, &a, &b, amount).encode_to_vec();
        let invocation = Invocation {
            request_id: format!("request-{key}"),
            trace_id: Some(format!(
                "Root={root};Parent={function_segment};Sampled={sampled};Lineage=a87bd80c:1"
            )),
        };
        payment::lambda::handle_invocation(
            service.clone(),
            rpc_event("MakePayment", &message, TESTER, &bearer),
            invocation,
        )
    };
    assert_eq!(status_of(&invoke("paid", PAYMENT, 1).await), "0");
    let paid = daemon.documents().await;
    assert_eq!(status_of(&invoke("too-much", TOO_MUCH, 1).await), "9");
    let refused = daemon.documents().await;
    assert_eq!(status_of(&invoke("not-sampled", PAYMENT, 0).await), "0");
    assert!(
        daemon.documents().await.is_empty(),
        "Lambda did not sample that invocation"
    );

    for (documents, code, reason) in [
        (&paid, "OK", None),
        (&refused, "FAILED_PRECONDITION", Some("INSUFFICIENT_FUNDS")),
    ] {
        let all = serde_json::to_string(documents).unwrap();
        for secret in [
            bearer.as_str(),
            &PAYMENT.to_string(),
            &TOO_MUCH.to_string(),
            a.as_str(),
            b.as_str(),
            TESTER,
        ] {
            assert!(!all.contains(secret), "{secret:?} sent in {all}");
        }
        let calls: Vec<&Value> = documents
            .iter()
            .filter(|d| d["parent_id"] == function_segment)
            .collect();
        assert_eq!(
            calls.len(),
            1,
            "one subsegment of the function's: {documents:#?}"
        );
        let call = calls[0];
        assert_eq!(call["type"], "subsegment");
        assert_eq!(call["trace_id"], root.as_str());
        assert_eq!(call["name"], "payment.v1.PaymentService/MakePayment");
        assert_eq!(call["annotations"]["code"], code);
        assert_eq!(call["annotations"]["rpc_method"], "MakePayment");
        assert_eq!(call["annotations"]["transport"], "lambda");
        assert_eq!(
            call["annotations"].get("reason").and_then(Value::as_str),
            reason
        );
        assert_eq!(call.get("error").is_some(), code != "OK", "{call}");
        assert!(call.get("fault").is_none());
        let (start, end) = (
            call["start_time"].as_f64().unwrap(),
            call["end_time"].as_f64().unwrap(),
        );
        assert!(start <= end && (start - now as f64).abs() < 600.0, "{call}");
        let requests = call["metadata"]["payment"]["dynamodb_requests"]
            .as_i64()
            .unwrap();
        let children: Vec<&Value> = documents
            .iter()
            .filter(|d| d["parent_id"] == call["id"])
            .collect();
        assert!(requests >= 1);
        assert_eq!(children.len() as i64, requests, "{documents:#?}");
        assert_eq!(documents.len() as i64, 1 + requests);
        for child in children {
            assert_eq!(child["type"], "subsegment");
            assert_eq!(child["trace_id"], root.as_str());
            assert_eq!(child["name"], "DynamoDB");
            assert_eq!(child["namespace"], "aws");
            assert_eq!(child["http"]["response"]["status"], 200);
            assert!(child["aws"]["operation"].is_string());
            assert!(child["aws"]["request_id"].is_string());
            assert!(child.get("error").is_none() && child.get("fault").is_none());
        }
    }
    let paid_operations: Vec<&str> = paid
        .iter()
        .filter_map(|d| d["aws"]["operation"].as_str())
        .collect();
    assert!(
        paid_operations.contains(&"TransactWriteItems"),
        "{paid_operations:?}"
    );
}

#[tokio::test]
async fn the_bench_compares_the_service_with_metrics_and_tracing_on_and_off() {
    let tables = unique_tables();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_payment-bench"))
        .args([
            "--compare-metrics",
            "--compare-tracing",
            "--accounts",
            "5",
            "--callers",
            "2",
            "--payments",
            "20",
            "--warmup",
            "0",
            "--reads",
            "0",
            "--history-pages",
            "0",
            "--no-direct",
            "--json",
        ])
        .env("AWS_ENDPOINT_URL_DYNAMODB", shared_dynamodb())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("PAYMENT_ACCOUNTS_TABLE", &tables.accounts)
        .env("PAYMENT_LEDGER_TABLE", &tables.ledger)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run payment-bench");
    assert!(
        output.status.success(),
        "payment-bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let compared = &report["service_cpu_ms_per_payment_on_off"];
    assert_eq!(compared["observed"], "metrics and tracing", "{report}");
    for side in ["on", "off", "ratio"] {
        assert!(compared[side].as_f64().is_some_and(|x| x > 0.0), "{report}");
    }
    let shapes: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["shape"].as_str())
        .collect();
    assert_eq!(
        shapes,
        [
            "1 server, metrics and tracing off",
            "1 server, metrics and tracing on"
        ],
        "{report}"
    );
    // Exported for real: at least a span per payment and one per
    // DynamoDB request of it (the account openings add more).
    let spans = report["spans_exported"].as_u64().expect("spans_exported");
    assert!(spans >= 2 * 20, "{report}");
}
