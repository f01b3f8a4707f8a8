//! The Lambda entry point: every events/ file through the handler, both
//! gRPC-Web encodings, and a stream that fails midway.

use crate::harness::{TestApp, fresh_ledger, shared_dynamodb};
use crate::helpers::grpc_web::{WebReply, frame, frame_header, text_body};
use crate::helpers::*;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use payment::ledger::Ledger;
use payment::pb;
use payment::service::PaymentApi;
use payment::stack::{HttpService, http_service};
use prost::Message;

pub fn event_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(format!("{name}.json"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One event through `payment::lambda::handle_event`, and its answer as
/// the Lambda runtime hands it to API Gateway (the response JSON), read back
/// the way API Gateway reads it: status, headers, body (base64-decoded when
/// `isBase64Encoded`).
pub async fn invoke_raw(service: &HttpService, event_json: &str) -> http::Response<Vec<u8>> {
    let event: serde_json::Value = serde_json::from_str(event_json).expect("event JSON");
    let response = payment::lambda::handle_event(service.clone(), event).await;
    let json = serde_json::to_value(&response).expect("the response serializes");
    let mut reply = http::Response::new(match json["body"].as_str() {
        None => vec![],
        Some(body) if json["isBase64Encoded"] == true => B64.decode(body).expect("base64 body"),
        Some(body) => body.as_bytes().to_vec(),
    });
    *reply.status_mut() = http::StatusCode::from_u16(
        json["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .expect("statusCode"),
    )
    .expect("an HTTP status");
    for (name, value) in json["headers"].as_object().expect("headers") {
        let value = value.as_str().expect("one string per header");
        reply.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(value).expect("header value"),
        );
    }
    reply
}

pub async fn invoke(service: &HttpService, event_json: &str) -> WebReply {
    let (parts, body) = invoke_raw(service, event_json).await.into_parts();
    WebReply::from_parts(parts, &body)
}

pub async fn lambda_service(ledger: Ledger) -> HttpService {
    http_service(
        PaymentApi::new(ledger, payment::auth::Authenticator::ApiGateway),
        "*",
    )
    .await
    .unwrap()
}

/// Every file in events/, by name (without `.json`), parsed.
fn all_events() -> std::collections::BTreeMap<String, serde_json::Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut events = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("a name");
        let name = name
            .strip_suffix(".json")
            .unwrap_or_else(|| panic!("events/{name}: not a .json event"));
        let event = serde_json::from_str(&event_file(name))
            .unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
        events.insert(name.to_owned(), event);
    }
    events
}

/// The replies of one pass over events/, by file name.
struct EventReplies(std::collections::BTreeMap<String, WebReply>);

impl EventReplies {
    /// The one message of `name`'s reply, decoded.
    fn one<M: Message + Default>(&self, name: &str) -> M {
        let reply = self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("events/{name}.json is gone; update this test"));
        assert_eq!(reply.messages.len(), 1, "{name}");
        M::decode(reply.messages[0].clone()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// Every file in events/ (enumerated, not listed here) through the handler
/// on empty tables, in the order of the contract's methods (file names
/// break ties), as tests/contract_files.rs generates them to tell one story:
/// each RPC event answers OK, in the encoding it asked for, the two writes
/// replay when sent again, and the CORS preflight is answered. Fails if
/// a method of the contract (`pb::METHODS`) has no event, or an event is
/// for a path that is not a method.
#[tokio::test]
async fn every_event_file_invokes_cleanly() {
    let service = lambda_service(fresh_ledger().await).await;
    let events = all_events();
    let path_of =
        |event: &serde_json::Value| event["rawPath"].as_str().unwrap_or_default().to_owned();
    for method in pb::METHODS {
        assert!(
            events.values().any(|e| path_of(e) == method.path),
            "no event in events/ for {}: add one to story() in tests/contract_files.rs",
            method.name
        );
    }
    let is_preflight =
        |event: &serde_json::Value| event["requestContext"]["http"]["method"] == "OPTIONS";
    let position = |event: &serde_json::Value| {
        pb::METHODS
            .iter()
            .position(|m| m.path == path_of(event))
            .unwrap_or(usize::MAX)
    };
    let mut order: Vec<&String> = events.keys().collect();
    order.sort_by_key(|name| {
        (
            is_preflight(&events[*name]),
            position(&events[*name]),
            (*name).clone(),
        )
    });
    let mut replies = EventReplies(Default::default());
    let mut preflights = 0;
    for name in order {
        let event = &events[name];
        if is_preflight(event) {
            let reply = invoke(&service, &event.to_string()).await;
            assert_eq!(reply.http_status, 200, "{name}");
            assert_eq!(reply.headers["access-control-allow-origin"], "*", "{name}");
            assert!(
                reply.headers["access-control-allow-headers"]
                    .to_str()
                    .unwrap()
                    .contains("authorization"),
                "{name}"
            );
            preflights += 1;
            continue;
        }
        assert!(
            position(event) < pb::METHODS.len(),
            "events/{name}.json: {} is not a method of the contract",
            path_of(event)
        );
        let reply = invoke(&service, &event.to_string()).await;
        assert_eq!(
            (reply.http_status, reply.code().as_str()),
            (200, "0"),
            "events/{name}.json: {}",
            reply.grpc_message()
        );
        let content_type = |headers: &http::HeaderMap| {
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let asked = event["headers"]["content-type"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(
            asked == "application/grpc-web-text",
            content_type(&reply.headers).starts_with("application/grpc-web-text"),
            "{name}: answered in the encoding it was asked in"
        );
        replies.0.insert(name.clone(), reply);
        // A retry after a lost reply, right away: answered from what the
        // first call did.
        if ["add-account-alice", "make-payment"].contains(&name.as_str()) {
            let retry = invoke(&service, &event.to_string()).await;
            assert_eq!(
                retry.code(),
                "0",
                "{name} retried: {}",
                retry.grpc_message()
            );
            replies.0.insert(format!("{name} (retry)"), retry);
        }
    }
    assert_eq!(preflights, 1, "the CORS preflight event");

    // What the story did, event by event.
    let account: pb::AddAccountResponse = replies.one("add-account-alice");
    let account = account.account.unwrap();
    assert_eq!(
        (account.account_id.as_str(), account.balance),
        ("alice", 10_000)
    );
    // The same event again: the same account back, opened once.
    let again: pb::AddAccountResponse = replies.one("add-account-alice (retry)");
    assert_eq!(again.account.unwrap(), account);
    let paid: pb::MakePaymentResponse = replies.one("make-payment");
    assert!(!paid.replayed);
    let payment = paid.transaction.unwrap();
    assert_eq!(payment.amount, 1_234);
    let again: pb::MakePaymentResponse = replies.one("make-payment (retry)");
    assert!(again.replayed);
    assert_eq!(again.transaction.as_ref(), Some(&payment));

    let alice: pb::GetAccountBalanceResponse = replies.one("get-account-balance");
    assert_eq!(alice.account.unwrap().balance, 10_000 - 1_234);
    let bob: pb::GetAccountBalanceResponse = replies.one("get-account-balance-text");
    assert_eq!(bob.account.unwrap().balance, 1_234);
    for (name, expected) in [
        ("get-transaction-history", vec![2, 1]),
        ("get-transaction-history-text", vec![1]),
    ] {
        let sequences: Vec<i64> = replies.0[name]
            .decoded::<pb::GetTransactionHistoryResponse>()
            .iter()
            .map(|e| e.sequence)
            .collect();
        assert_eq!(sequences, expected, "{name}");
    }

    let placed: pb::AuthorizePaymentResponse = replies.one("authorize-payment");
    let hold = placed.hold.unwrap();
    assert_eq!((hold.amount, hold.state), (500, pb::HoldState::Open as i32));
    let captured: pb::CaptureHoldResponse = replies.one("capture-hold");
    assert_eq!(
        (
            captured.hold.unwrap().state,
            captured.transaction.unwrap().amount
        ),
        (pb::HoldState::Captured as i32, 300)
    );
    let voided: pb::VoidHoldResponse = replies.one("void-hold");
    assert_eq!(voided.hold.unwrap().state, pb::HoldState::Voided as i32);
    let refunded: pb::RefundPaymentResponse = replies.one("refund-payment");
    let refund = refunded.transaction.unwrap();
    assert_eq!(
        (refund.kind, refund.amount, refund.refund_of.as_str()),
        (
            pb::TransactionKind::Refund as i32,
            234,
            payment.transaction_id.as_str()
        )
    );
    let found: pb::GetPaymentResponse = replies.one("get-payment");
    assert_eq!(found.transaction.as_ref(), Some(&payment));
    assert_eq!(found.refunded_total, 234);
    // bob: 1,234 + 300 - 234; alice: 10,000 - 1,234 - 300 + 234, nothing held.
    let listed: pb::ListAccountsResponse = replies.one("list-accounts");
    let listed: Vec<(&str, i64)> = listed
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.balance))
        .collect();
    assert_eq!(listed, [("bob", 1_300)], "bob's own accounts");
    let listed: pb::ListAccountsResponse = replies.one("list-accounts-text");
    let listed: Vec<(&str, i64, i64)> = listed
        .accounts
        .iter()
        .map(|a| (a.account_id.as_str(), a.balance, a.held))
        .collect();
    assert_eq!(listed, [("alice", 8_700, 0)], "alice's own accounts");
    // An admin raises alice's balance shards: the same money over 4 shards.
    let raised: pb::SetBalanceShardsResponse = replies.one("set-balance-shards");
    assert!(raised.raised);
    let alice = raised.account.unwrap();
    assert_eq!(
        (
            alice.account_id.as_str(),
            alice.balance,
            alice.balance_shards
        ),
        ("alice", 8_700, 4)
    );
    // alice watches from her first entry: the long poll ends at once with
    // her four entries, oldest first, and the token after them (one cursor
    // per shard she has now).
    let watched: Vec<pb::WatchAccountResponse> = replies.0["watch-account"].decoded();
    let (last, entries) = watched.split_last().expect("messages");
    let seen: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| (e.sequence, e.balance_after))
        .collect();
    assert_eq!(
        seen,
        [(1, 10_000), (2, 8_766), (3, 8_466), (4, 8_700)],
        "alice's entries"
    );
    assert!(last.transaction.is_none());
    assert_eq!(
        B64URL.decode(&last.resume_token).unwrap(),
        b"w1|alice|5.1.1.1".to_vec()
    );
}

/// An API Gateway event (events/make-payment.json's) for `method` of the
/// contract with `message` as its gRPC-Web body, from `sub` (the
/// authorizer's claims) with `bearer` in its headers.
pub fn rpc_event(method: &str, message: &[u8], sub: &str, bearer: &str) -> serde_json::Value {
    let path = format!("/payment.v1.PaymentService/{method}");
    let json = with_body(&event_file("make-payment"), &path, &frame(message), false);
    let mut event: serde_json::Value = serde_json::from_str(&json).unwrap();
    event["pathParameters"]["method"] = method.into();
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub.into();
    event["headers"]["authorization"] = format!("Bearer {bearer}").into();
    event
}

/// An event like the history event, with another body.
pub fn with_body(event_json: &str, path: &str, body: &[u8], text: bool) -> String {
    let mut event: serde_json::Value = serde_json::from_str(event_json).unwrap();
    let encoded = if text { text_body(body) } else { body.to_vec() };
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
        (
            with_body(
                &base,
                balance,
                &[&frame_header(0, 9)[..], &[1]].concat(),
                false,
            ),
            "3",
        ),
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

/// Events lambda_http 1.3 panicked on while converting them (so the
/// invocation failed and API Gateway answered 500): each gets HTTP 400 with
/// INVALID_ARGUMENT naming the field, in the headers where a gRPC-Web client
/// reads it, and never reaches the service.
#[tokio::test]
async fn events_that_cannot_be_requests_get_400_naming_the_field() {
    let ledger = fresh_ledger().await;
    let service = lambda_service(ledger.clone()).await;
    let base: serde_json::Value = serde_json::from_str(&event_file("add-account-alice")).unwrap();
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut event = base.clone();
        change(&mut event);
        event.to_string()
    };
    let seed = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/grpc_web_event")
            .join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a host that is not a valid host",
            with(&|e| e["headers"]["host"] = "exa mple.com".into()),
            "host",
        ),
        (
            "a host with user information",
            with(&|e| e["headers"]["host"] = "user@example.com".into()),
            "host",
        ),
        (
            "no host header and a bad domainName",
            with(&|e| {
                e["headers"].as_object_mut().unwrap().remove("host");
                e["requestContext"]["domainName"] = "bad host".into();
            }),
            "host",
        ),
        (
            "a rawQueryString a URI cannot hold",
            with(&|e| e["rawQueryString"] = "a b".into()),
            "rawQueryString",
        ),
        (
            "a rawQueryString with a fragment",
            with(&|e| e["rawQueryString"] = "a=1#frag".into()),
            "rawQueryString",
        ),
        (
            "a rawPath a URI cannot hold",
            with(&|e| e["rawPath"] = "/payment.v1.PaymentService/Add Account".into()),
            "rawPath",
        ),
        (
            "a rawPath without its leading slash",
            with(&|e| e["rawPath"] = "payment.v1.PaymentService/AddAccount".into()),
            "rawPath",
        ),
        (
            "isBase64Encoded with a body that is not base64",
            with(&|e| e["body"] = "not base64!".into()),
            "isBase64Encoded",
        ),
        (
            "not an API Gateway v2 event at all",
            r#"{"requestContext": {"http": {"method": "NOT A METHOD"}}}"#.to_owned(),
            "payload format 2.0",
        ),
        (
            "seed upstream-panic-host",
            seed("upstream-panic-host.json"),
            "host",
        ),
        (
            "seed upstream-panic-query",
            seed("upstream-panic-query.json"),
            "rawQueryString",
        ),
        (
            "seed upstream-panic-base64-body",
            seed("upstream-panic-base64-body.json"),
            "isBase64Encoded",
        ),
    ];
    for (name, event, field) in cases {
        let reply = invoke(&service, &event).await;
        assert_eq!(reply.http_status, 400, "{name}");
        // As a gRPC client reads it (grpc-message percent-decoded).
        let status = tonic::Status::from_header_map(&reply.headers).expect("grpc-status");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{name}");
        assert!(
            status.message().contains(field),
            "{name}: {:?} does not name {field}",
            status.message()
        );
        assert_eq!(
            reply.headers["content-type"], "application/grpc-web+proto",
            "{name}"
        );
        assert!(
            reply.messages.is_empty() && reply.trailers.is_empty(),
            "{name}"
        );
    }
    // Nothing reached the service: alice was never opened. Asked of the
    // ledger itself: re-opening her would prove nothing (AddAccount retried
    // with the same fields answers OK with the existing account), and the
    // event's caller, not an admin, is told PERMISSION_DENIED for an
    // account that does not exist as for one that is not theirs.
    let alice = payment::domain::AccountId::parse("account_id", "alice").unwrap();
    match ledger.get_account(&alice).await {
        Err(payment::ledger::LedgerError::AccountNotFound { .. }) => {}
        other => panic!("alice must not exist: {other:?}"),
    }
}

/// What API Gateway does send: a host with a port (local emulators), no
/// host header at all, plain HTTP behind a proxy, a query string, UTF-8 in
/// a header, an unencoded body. All of it converts.
#[tokio::test]
async fn events_with_unusual_but_valid_fields_convert() {
    let service = lambda_service(fresh_ledger().await).await;
    let base: serde_json::Value = serde_json::from_str(&event_file("get-account-balance")).unwrap();
    type Change = fn(&mut serde_json::Value);
    let changes: Vec<(&str, Change)> = vec![
        ("a host with a port", |e: &mut serde_json::Value| {
            e["headers"]["host"] = "abcdef1234.execute-api.localhost:4566".into()
        }),
        ("no host header", |e: &mut serde_json::Value| {
            e["headers"].as_object_mut().unwrap().remove("host");
        }),
        ("no host at all", |e: &mut serde_json::Value| {
            e["headers"].as_object_mut().unwrap().remove("host");
            e["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("domainName");
        }),
        ("x-forwarded-proto http", |e: &mut serde_json::Value| {
            e["headers"]["x-forwarded-proto"] = "http".into()
        }),
        ("a query string", |e: &mut serde_json::Value| {
            e["rawQueryString"] = "a=1&b=%20two".into()
        }),
        ("UTF-8 in a header", |e: &mut serde_json::Value| {
            e["headers"]["x-caller-name"] = "José".into()
        }),
        ("cookies", |e: &mut serde_json::Value| {
            e["cookies"] = serde_json::json!(["a=1", "b=2"])
        }),
    ];
    for (name, change) in changes {
        let mut event = base.clone();
        change(&mut event);
        let reply = invoke(&service, &event.to_string()).await;
        // The call ran: alice, no admin, may not read an account she does
        // not own (here: that does not exist).
        assert_eq!(
            (reply.http_status, reply.code().as_str()),
            (200, "7"),
            "{name}: {}",
            reply.grpc_message()
        );
    }
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
    let dynamodb = crate::local_dynamodb::client(shared_dynamodb());
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
