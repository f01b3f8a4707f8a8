//! The Lambda entry point: every events/ file through the handler, both
//! gRPC-Web encodings, and a stream that fails midway.

use crate::harness::{TestApp, fresh_ledger, shared_dynamodb};
use crate::helpers::*;
use crate::transport::{WebReply, frame};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use payment::ledger::Ledger;
use payment::pb;
use payment::server::{HttpService, http_service};
use payment::service::PaymentApi;
use prost::Message;

fn event_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn invoke(service: &HttpService, event_json: &str) -> WebReply {
    let request = lambda_http::request::from_str(event_json).expect("event parses");
    let response = payment::lambda::handle(service.clone(), request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes: Vec<u8> = match body {
        lambda_http::Body::Empty => vec![],
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => panic!("unexpected body kind"),
    };
    WebReply::from_parts(parts, &bytes)
}

async fn lambda_service(ledger: Ledger) -> HttpService {
    http_service(
        PaymentApi::new(ledger, payment::auth::Authenticator::ApiGateway),
        "*",
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn every_event_file_invokes_cleanly() {
    let service = lambda_service(fresh_ledger().await).await;
    let reply = invoke(&service, &event_file("add-account-alice")).await;
    assert_eq!((reply.http_status, reply.code().as_str()), (200, "0"));
    let account = pb::AddAccountResponse::decode(reply.messages[0].clone())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(
        (account.account_id.as_str(), account.balance),
        ("alice", 10_000)
    );
    // The same event again: the account exists.
    assert_eq!(
        invoke(&service, &event_file("add-account-alice"))
            .await
            .code(),
        "6"
    );
    assert_eq!(
        invoke(&service, &event_file("add-account-bob"))
            .await
            .code(),
        "0"
    );

    let reply = invoke(&service, &event_file("make-payment")).await;
    assert_eq!(reply.code(), "0");
    let paid = pb::MakePaymentResponse::decode(reply.messages[0].clone()).unwrap();
    assert!(!paid.replayed);
    assert_eq!(paid.transaction.as_ref().unwrap().amount, 1_234);
    let again = pb::MakePaymentResponse::decode(
        invoke(&service, &event_file("make-payment")).await.messages[0].clone(),
    )
    .unwrap();
    assert!(again.replayed);

    let reply = invoke(&service, &event_file("get-account-balance")).await;
    let alice = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(alice.balance, 10_000 - 1_234);
    let reply = invoke(&service, &event_file("get-account-balance-text")).await;
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web-text")
    );
    let bob = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(bob.balance, 1_234);

    for (name, expected) in [
        ("get-transaction-history", vec![2, 1]),
        ("get-transaction-history-text", vec![1]),
    ] {
        let reply = invoke(&service, &event_file(name)).await;
        assert_eq!(reply.code(), "0", "{name}");
        let sequences: Vec<i64> = reply
            .messages
            .iter()
            .map(|m| {
                pb::GetTransactionHistoryResponse::decode(m.clone())
                    .unwrap()
                    .sequence
            })
            .collect();
        assert_eq!(sequences, expected, "{name}");
    }

    let reply = invoke(&service, &event_file("cors-preflight")).await;
    assert_eq!(reply.http_status, 200);
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    assert!(
        reply.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
}

/// An event like the history event, with another body.
fn with_body(event_json: &str, path: &str, body: &[u8], text: bool) -> String {
    let mut event: serde_json::Value = serde_json::from_str(event_json).unwrap();
    let encoded = if text {
        B64.encode(body).into_bytes()
    } else {
        body.to_vec()
    };
    event["body"] = B64.encode(encoded).into();
    event["rawPath"] = path.into();
    event["requestContext"]["http"]["path"] = path.into();
    event.to_string()
}

#[tokio::test]
async fn malformed_events_get_4xx_or_a_grpc_status_never_5xx() {
    let service = lambda_service(fresh_ledger().await).await;
    let base = event_file("get-account-balance");
    let balance = "/payment.v1.PaymentService/GetAccountBalance";
    let cases: Vec<(String, &str)> = vec![
        (with_body(&base, balance, &[], false), "3"),
        (with_body(&base, balance, &[0, 0, 0, 0, 9, 1], false), "3"),
        (with_body(&base, balance, &frame(&[0x0f, 0xff]), false), "3"),
        (
            with_body(&base, balance, &frame(&vec![b'x'; 64 * 1024]), false),
            "8",
        ),
        (
            with_body(&base, "/payment.v1.PaymentService/Nope", &frame(&[]), false),
            "12",
        ),
        (
            with_body(&base, "/other.Service/Call", &frame(&[]), false),
            "12",
        ),
    ];
    for (event, expected) in cases {
        let reply = invoke(&service, &event).await;
        assert_eq!(reply.http_status, 200);
        assert_eq!(reply.code(), expected);
    }
    // Invalid base64 inside a grpc-web-text body.
    let mut text: serde_json::Value =
        serde_json::from_str(&event_file("get-account-balance-text")).unwrap();
    text["body"] = B64.encode("@@@@ not base64").into();
    assert_eq!(invoke(&service, &text.to_string()).await.code(), "3");
    // Not gRPC-Web at all: wrong method, wrong content type.
    let mut get: serde_json::Value = serde_json::from_str(&base).unwrap();
    get["requestContext"]["http"]["method"] = "GET".into();
    let reply = invoke(&service, &get.to_string()).await;
    assert!(
        (400..500).contains(&reply.http_status),
        "GET gave {}",
        reply.http_status
    );
    let mut json: serde_json::Value = serde_json::from_str(&base).unwrap();
    json["headers"]["content-type"] = "application/json".into();
    let reply = invoke(&service, &json.to_string()).await;
    assert!(
        (400..500).contains(&reply.http_status),
        "JSON gave {}",
        reply.http_status
    );
}

#[tokio::test]
async fn a_stream_failing_midway_ends_with_one_trailer_through_the_lambda() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    for i in 0..104 {
        pay(&mut c, order(&format!("k{i}"), &a, &b, 1))
            .await
            .unwrap();
    }
    // Corrupt entry 3 of a's 105, so the second chunk of the stream fails
    // after the first 100 entries went out.
    let dynamodb = payment::config::local_dynamodb_client(shared_dynamodb());
    dynamodb
        .update_item()
        .table_name(&app.ledger.tables().ledger)
        .key("pk", AttributeValue::S(format!("A#{a}")))
        .key("sk", AttributeValue::S(format!("E#{:020}", 3)))
        .update_expression("SET direction = :bad")
        .expression_attribute_values(":bad", AttributeValue::S("SIDEWAYS".into()))
        .send()
        .await
        .unwrap();
    let service = lambda_service(app.ledger.clone()).await;
    let request = pb::GetTransactionHistoryRequest {
        account_id: a.clone(),
        page_size: 1000,
        page_token: String::new(),
    };
    let history = "/payment.v1.PaymentService/GetTransactionHistory";
    for text in [false, true] {
        let event = with_body(
            &event_file("get-transaction-history"),
            history,
            &frame(&request.encode_to_vec()),
            text,
        );
        let mut event: serde_json::Value = serde_json::from_str(&event).unwrap();
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] =
            crate::harness::TESTER.into();
        if text {
            event["headers"]["content-type"] = "application/grpc-web-text".into();
            event["headers"]["accept"] = "application/grpc-web-text".into();
        }
        // parse_frames asserts that no data frame follows the trailer frame.
        let reply = invoke(&service, &event.to_string()).await;
        assert_eq!(reply.messages.len(), 100, "text={text}");
        assert_eq!(reply.code(), "13", "text={text}");
        assert_eq!(
            reply
                .trailers
                .iter()
                .filter(|(k, _)| k == "grpc-status")
                .count(),
            1
        );
    }
    // The native gRPC client sees the same: 100 entries, then the error.
    let mut stream = c
        .get_transaction_history(request)
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("stream ended without the error"),
            Err(status) => break status,
        }
    };
    assert_eq!((received, status.code()), (100, tonic::Code::Internal));
}
