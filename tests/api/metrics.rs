//! One wide event per call: payment-server's Prometheus series scraped
//! from /metrics, and payment-lambda's EMF lines checked against the EMF
//! specification, after a known sequence of calls. Values are exact:
//! counts by method and code, and DynamoDB requests as a counting client
//! saw them (never timings).

use crate::harness::{Bearer, TESTER, TestApp, create_tables_patiently, token, unique_tables};
use crate::helpers::grpc_web::WebReply;
use crate::helpers::*;
use crate::lambda::rpc_event;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use payment::pb;
use payment::pb::payment_service_client::PaymentServiceClient;
use payment::service::PaymentApi;
use payment::telemetry::RequestCounter;
use payment::telemetry::emf::EmfWriter;
use payment::telemetry::prometheus::PrometheusMetrics;
use payment::telemetry::{Invocation, Telemetry};
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// Amounts no timing or count can spell by chance: none may appear in a
/// record.
const OPENING: i64 = 271_828_182;
const PAYMENT: i64 = 31_415_927;
const TOO_MUCH: i64 = 987_654_321;

/// Requests `counter` saw since `before`: (all, TransactWriteItems).
fn sent(counter: &RequestCounter, before: &BTreeMap<String, u64>) -> (u64, u64) {
    let grown = cost(counter, before.clone());
    let all = grown.iter().map(|(_, n)| n).sum();
    let rounds = grown
        .iter()
        .find(|(op, _)| op == "TransactWriteItems")
        .map_or(0, |(_, n)| *n);
    (all, rounds)
}

/// The sample values of a Prometheus text exposition, by series
/// (`name{labels}`).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// GET /metrics over plain HTTP/1.1.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("headers and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    body.to_owned()
}

#[tokio::test]
async fn the_server_counts_every_call_by_method_and_code_at_metrics() {
    let tables = unique_tables();
    let (ledger, counter) = instance(&tables);
    create_tables_patiently(&ledger).await;
    let metrics = Arc::new(PrometheusMetrics::new());
    let api = PaymentApi::new(ledger, crate::harness::dev_auth())
        .with_telemetry(Telemetry::with_sink(metrics.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(payment::server::serve(
        listener,
        api,
        "*",
        until_stopped(stopped.clone()),
    ));
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let scraper = tokio::spawn(payment::telemetry::prometheus::serve(
        metrics_listener,
        metrics.handle(),
        until_stopped(stopped),
    ));
    let channel = payment::client::connect_channel(&format!("http://{addr}"))
        .await
        .unwrap();
    let mut c = PaymentServiceClient::with_interceptor(channel, Bearer::new(&token(TESTER, true)));
    let (a, b) = (unique("m-a"), unique("m-b"));

    let before = counter.snapshot();
    add(&mut c, &a, "EUR", OPENING).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let (add_requests, _) = sent(&counter, &before);

    let before = counter.snapshot();
    for i in 0..3 {
        pay(&mut c, order(&format!("ok-{i}"), &a, &b, PAYMENT))
            .await
            .unwrap();
    }
    assert_code(
        pay(&mut c, order("too-much", &a, &b, TOO_MUCH)).await,
        Code::FailedPrecondition,
        "",
    );
    assert_code(
        pay(&mut c, order("negative", &a, &b, -PAYMENT)).await,
        Code::InvalidArgument,
        "amount",
    );
    let (pay_requests, pay_rounds) = sent(&counter, &before);

    let before = counter.snapshot();
    let entries = history_page(&mut c, &a, 10, "").await.unwrap();
    assert_eq!(entries.len(), 4, "the opening and three payments");
    let (history_requests, _) = sent(&counter, &before);

    // A call the request guard refuses before tonic decodes it (a message
    // that is not a GetAccountBalanceRequest) is recorded all the same.
    let refused = crate::helpers::grpc_web::raw_at(
        &format!("http://{addr}"),
        http::Method::POST,
        "/payment.v1.PaymentService/GetAccountBalance",
        &crate::helpers::grpc_web::request_headers(false),
        crate::helpers::grpc_web::request_body(&[0xff, 0xff, 0xff], false),
    )
    .await;
    assert_eq!(
        refused.grpc_code(),
        Some(Code::InvalidArgument),
        "{refused:?}"
    );

    let text = scrape(metrics_addr).await;
    let got = samples(&text);
    let value = |series: &str| {
        *got.get(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    let calls = [
        ("AddAccount", "OK", 2.0),
        ("MakePayment", "OK", 3.0),
        ("MakePayment", "FAILED_PRECONDITION", 1.0),
        ("MakePayment", "INVALID_ARGUMENT", 1.0),
        ("GetTransactionHistory", "OK", 1.0),
        ("GetAccountBalance", "INVALID_ARGUMENT", 1.0),
    ];
    for (method, code, n) in calls {
        let labels = format!(r#"{{method="{method}",code="{code}"}}"#);
        assert_eq!(
            value(&format!("payment_calls_total{labels}")),
            n,
            "{labels}"
        );
        assert_eq!(
            value(&format!("payment_call_duration_seconds_count{labels}")),
            n,
            "{labels}: one duration per call"
        );
    }
    let call_series = got
        .keys()
        .filter(|k| k.starts_with("payment_calls_total"))
        .count();
    assert_eq!(call_series, calls.len(), "no other calls:\n{text}");
    let first = r#"payment_first_message_seconds_count{method="GetTransactionHistory"}"#;
    assert_eq!(value(first), 1.0);
    for (method, requests) in [
        ("AddAccount", add_requests),
        ("MakePayment", pay_requests),
        ("GetTransactionHistory", history_requests),
    ] {
        let labels = format!(r#"{{method="{method}"}}"#);
        assert!(requests > 0, "{method} sent nothing");
        assert_eq!(
            value(&format!("payment_dynamodb_requests_total{labels}")),
            requests as f64,
            "{method}"
        );
        assert_eq!(
            value(&format!("payment_outcome_unknown_total{labels}")),
            0.0
        );
    }
    // One round per payment that was written; the refused and the invalid
    // one wrote nothing.
    assert_eq!(pay_rounds, 3);
    assert_eq!(value(r#"payment_rounds_total{method="MakePayment"}"#), 3.0);
    assert_eq!(
        value(r#"payment_conflicts_total{method="MakePayment"}"#),
        0.0
    );
    // Every request asked for its consumed capacity, and got it, as
    // DynamoDB Local counts it: 8 WCU a payment transaction (its items are
    // under 1 KB); the refusal read the sender fresh (1 RCU, strongly
    // consistent); the history read one Query page and the account.
    for (series, units) in [
        (r#"payment_consumed_wcu_total{method="MakePayment"}"#, 24.0),
        (r#"payment_consumed_rcu_total{method="MakePayment"}"#, 1.0),
        (
            r#"payment_consumed_wcu_total{method="GetTransactionHistory"}"#,
            0.0,
        ),
        (
            r#"payment_consumed_rcu_total{method="GetTransactionHistory"}"#,
            2.0,
        ),
    ] {
        assert_eq!(value(series), units, "{series}");
    }
    assert_eq!(value("payment_cold_starts_total"), 1.0);
    for id in [a.as_str(), b.as_str(), TESTER] {
        assert!(!text.contains(id), "{id} is in /metrics");
    }

    let _ = stop.send(true);
    server.await.unwrap().unwrap();
    scraper.await.unwrap().unwrap();
}

/// A writer tests can read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .expect("UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Checks one line against the EMF specification: an `_aws` object with an
/// integer millisecond timestamp and CloudWatchMetrics directives, each
/// with a namespace, dimension sets (arrays of at most 30 keys naming
/// string members of the root) and metric definitions (a name and a unit
/// CloudWatch knows, each with a number at the root).
fn check_emf(line: &str) -> Value {
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let root: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let object = root.as_object().expect("a JSON object");
    let aws = object["_aws"].as_object().expect("_aws");
    let timestamp = aws["Timestamp"].as_u64().expect("an integer Timestamp");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        timestamp <= now_ms && now_ms - timestamp < 600_000,
        "Timestamp {timestamp} is not milliseconds of now"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics");
    assert!(!directives.is_empty());
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace");
        assert!((1..=255).contains(&namespace.len()));
        let dimensions = directive["Dimensions"].as_array().expect("Dimensions");
        for set in dimensions {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30);
            for key in set {
                let key = key.as_str().expect("a dimension name");
                assert!(
                    object.get(key).is_some_and(Value::is_string),
                    "dimension {key} has no string value at the root: {line}"
                );
            }
        }
        let definitions = directive["Metrics"].as_array().expect("Metrics");
        assert!(!definitions.is_empty() && definitions.len() <= 100);
        for definition in definitions {
            let name = definition["Name"].as_str().expect("Name");
            let unit = definition["Unit"].as_str().expect("Unit");
            assert!(UNITS.contains(&unit), "unit {unit}");
            assert!(
                object.get(name).is_some_and(Value::is_number),
                "metric {name} has no number at the root: {line}"
            );
        }
    }
    root
}

#[tokio::test]
async fn the_lambda_writes_one_emf_line_per_call_without_a_token_or_an_amount() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("emf-a"), unique("emf-b"));
    add(&mut c, &a, "EUR", OPENING).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    // The function: its own ledger instance (a container), counting what
    // it sends, its EMF lines into a buffer.
    let (ledger, counter) = instance(app.ledger.tables());
    let out = Buffer::default();
    let telemetry = Telemetry::with_sink(Arc::new(EmfWriter::new(
        "TestPayments",
        "payment-test",
        out.clone(),
    )));
    let api =
        PaymentApi::new(ledger, payment::auth::Authenticator::ApiGateway).with_telemetry(telemetry);
    let service = payment::stack::http_service(api, "*").await.unwrap();
    let bearer = format!("secret-token-{}", uuid::Uuid::new_v4().simple());
    let payment = |key: &str, amount: i64| {
        let request = order(key, &a, &b, amount);
        ("MakePayment", request.encode_to_vec())
    };
    let history = pb::GetTransactionHistoryRequest {
        account_id: a.clone(),
        page_size: 10,
        page_token: String::new(),
    };
    let calls = [
        // The first call reads both accounts (one BatchGetItem, 2 RCU);
        // the instance then knows them.
        (payment("ok-0", PAYMENT), "0", "", 2.0),
        (payment("ok-1", PAYMENT), "0", "", 0.0),
        (payment("ok-2", PAYMENT), "0", "", 0.0),
        // A refusal is given after a fresh read of the sender.
        (
            payment("too-much", TOO_MUCH),
            "9",
            "INSUFFICIENT_FUNDS",
            1.0,
        ),
        (payment("negative", -PAYMENT), "3", "INVALID_FIELD", 0.0),
        // The account, then one Query page.
        (
            ("GetTransactionHistory", history.encode_to_vec()),
            "0",
            "",
            2.0,
        ),
    ];
    let mut expected = Vec::new();
    for (i, ((method, message), status, reason, rcu)) in calls.into_iter().enumerate() {
        let invocation = Invocation {
            request_id: format!("request-{i}"),
            trace_id: Some(format!(
                "Root=1-5759e988-bd862e3fe1be46a99427279{i};Sampled=1"
            )),
        };
        let before = counter.snapshot();
        let response = payment::lambda::handle_invocation(
            service.clone(),
            rpc_event(method, &message, TESTER, &bearer),
            invocation.clone(),
        )
        .await;
        let (requests, rounds) = sent(&counter, &before);
        let json = serde_json::to_value(&response).unwrap();
        // A trailers-only reply (an error) has no body.
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
        let reply = WebReply::from_parts(parts, &body);
        assert_eq!(
            reply.code(),
            status,
            "{method} {i}: {}",
            reply.grpc_message()
        );
        expected.push((method, status, reason, rcu, invocation, requests, rounds));
    }

    let lines = out.lines();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per call:\n{lines:#?}"
    );
    for (i, (line, (method, status, reason, rcu, invocation, requests, rounds))) in
        lines.iter().zip(expected).enumerate()
    {
        let record = check_emf(line);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "TestPayments");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([
                ["Service"],
                ["Service", "Code"],
                ["Service", "Method"],
                ["Service", "Method", "Code"]
            ])
        );
        let code = match status {
            "0" => "OK",
            "9" => "FAILED_PRECONDITION",
            "3" => "INVALID_ARGUMENT",
            other => panic!("status {other}"),
        };
        let streamed = method == "GetTransactionHistory";
        let wrote = rounds > 0;
        let expect = serde_json::json!({
            "Service": "payment-test",
            "Method": method,
            "Code": code,
            "Reason": reason,
            "Transport": "lambda",
            "RequestId": invocation.request_id,
            "TraceId": invocation.trace_id.unwrap(),
            "Caller": TESTER,
            "Calls": 1,
            "DynamoDBRequests": requests,
            "Rounds": rounds,
            "Conflicts": 0,
            "ColdStart": u8::from(i == 0),
            "OutcomeUnknown": 0,
        });
        for (key, value) in expect.as_object().unwrap() {
            assert_eq!(&record[key], value, "{key} of line {i}: {line}");
        }
        assert!(record["Latency"].as_f64().unwrap() >= 0.0);
        // As DynamoDB Local counts it: 8 WCU a payment transaction.
        let wcu = if wrote { 8.0 } else { 0.0 };
        assert_eq!(
            record["ConsumedWCU"].as_f64(),
            Some(wcu),
            "line {i}: {line}"
        );
        assert_eq!(
            record["ConsumedRCU"].as_f64(),
            Some(rcu),
            "line {i}: {line}"
        );
        assert_eq!(
            record.get("FirstMessageLatency").is_some(),
            streamed,
            "line {i}: {line}"
        );
        for secret in [
            bearer.clone(),
            OPENING.to_string(),
            PAYMENT.to_string(),
            TOO_MUCH.to_string(),
        ] {
            assert!(!line.contains(&secret), "{secret} in line {i}: {line}");
        }
    }
    // The payments the function wrote are there (the sequence was real).
    assert_eq!(
        history_page(&mut c, &b, 10, "").await.unwrap().len(),
        3,
        "three payments reached b"
    );
}
