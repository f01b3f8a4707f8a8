//! The bad-input matrix: one table of requests at and just past every limit,
//! with wrong wire types, malformed protobuf, broken framing, wrong content
//! types and huge bodies, each sent through every transport: native gRPC
//! (raw HTTP/2), gRPC-Web binary and text (raw HTTP/1.1), and the Lambda
//! handler with both gRPC-Web encodings (API Gateway events).
//!
//! The framing, size, wire-type and garbage rows are generated for every
//! method of the contract by walking `pb::METHODS` (see [`every_method_rows`]),
//! so a method added to the proto is in the matrix without anyone adding it.
//!
//! Every case states its expected answer. For each case and transport the
//! test checks the code (and that the message names the field), that nothing
//! answers INTERNAL, UNKNOWN or an HTTP 5xx, that the server still serves a
//! valid call right after, and that the ledger's tables are exactly as
//! before, except for the at-the-limit cases that are meant to succeed,
//! whose one effect (an account opened, a payment made) is checked item by
//! item. Each transport gets fresh tables, so every case runs the same way
//! on each. `PAYMENT_MATRIX_VERBOSE=1` prints every answer (with
//! `--nocapture`).

use crate::harness::{TESTER, TestApp, fresh_ledger, shared_dynamodb, token};
use crate::helpers::grpc_web::{
    TRAILERS_FLAG, frame, frame_flagged, frame_header, parse_frames, percent_decode, split_body,
    text_body,
};
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use payment::domain::Caller;
use payment::domain::{AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR, PageToken};
use payment::guard::REQUEST_BYTES_MAX;
use payment::ledger::Ledger;
use payment::pb;
use payment::stack::HttpService;
use prost::Message;
use std::collections::BTreeMap;
use std::time::Instant;
use tonic::Code;

// ---------------------------------------------------------------------------
// Raw requests and their replies, whatever the transport.
// ---------------------------------------------------------------------------

/// A reply reduced to what the matrix checks.
#[derive(Debug, Default)]
pub struct Reply {
    pub http_status: u16,
    /// grpc-status from the trailers, or from the headers of a
    /// trailers-only reply; None when the reply is not gRPC at all.
    pub grpc_status: Option<i32>,
    /// grpc-message, percent-decoded.
    pub message: String,
    /// The data messages of the reply.
    pub messages: Vec<Bytes>,
}

impl Reply {
    pub fn code(&self) -> Option<Code> {
        self.grpc_status.map(Code::from_i32)
    }
}

fn header_str(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Builds a [`Reply`] from an HTTP reply: gRPC-Web bodies (binary or text)
/// carry their trailers in a final frame, native gRPC ones in HTTP/2
/// trailers.
fn reply_from(
    http_status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    http_trailers: Option<&http::HeaderMap>,
) -> Reply {
    let content_type = header_str(headers, "content-type").unwrap_or_default();
    let (messages, frame_trailers) = split_body(&content_type, body);
    let find = |name: &str| {
        frame_trailers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| http_trailers.and_then(|t| header_str(t, name)))
            .or_else(|| header_str(headers, name))
    };
    let grpc_status = find("grpc-status").map(|s| {
        s.parse::<i32>()
            .unwrap_or_else(|_| panic!("grpc-status {s:?} is not a number"))
    });
    Reply {
        http_status,
        grpc_status,
        message: find("grpc-message")
            .map(|m| percent_decode(&m))
            .unwrap_or_default(),
        messages,
    }
}

/// One raw HTTP request over HTTP/2 without TLS (prior knowledge, as gRPC
/// clients do), or over HTTP/1.1. Unlike tonic's channel, this keeps no
/// timer of its own for `grpc-timeout`, so the server's answer is seen.
pub async fn send(
    http2: bool,
    base: &str,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<Reply, String> {
    let mut builder = HttpClient::builder(TokioExecutor::new());
    builder.http2_only(http2);
    let client = builder.build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|e| format!("body: {e:?}"))?;
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    Ok(reply_from(
        parts.status.as_u16(),
        &parts.headers,
        &bytes,
        trailers.as_ref(),
    ))
}

// ---------------------------------------------------------------------------
// Transports.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// application/grpc over HTTP/2 to the server.
    Native,
    /// application/grpc-web+proto over HTTP/1.1 to the server.
    WebBinary,
    /// application/grpc-web-text over HTTP/1.1 to the server.
    WebText,
    /// An API Gateway event with a gRPC-Web binary body, to the handler.
    LambdaBinary,
    /// An API Gateway event with a gRPC-Web text body, to the handler.
    LambdaText,
}

impl Transport {
    const ALL: [Transport; 5] = [
        Transport::Native,
        Transport::WebBinary,
        Transport::WebText,
        Transport::LambdaBinary,
        Transport::LambdaText,
    ];

    fn name(self) -> &'static str {
        match self {
            Transport::Native => "native gRPC (HTTP/2)",
            Transport::WebBinary => "gRPC-Web binary (HTTP/1.1)",
            Transport::WebText => "gRPC-Web text (HTTP/1.1)",
            Transport::LambdaBinary => "Lambda handler, gRPC-Web binary",
            Transport::LambdaText => "Lambda handler, gRPC-Web text",
        }
    }
    fn text(self) -> bool {
        matches!(self, Transport::WebText | Transport::LambdaText)
    }
    fn lambda(self) -> bool {
        matches!(self, Transport::LambdaBinary | Transport::LambdaText)
    }
    fn grpc_content_type(self) -> &'static str {
        match self {
            Transport::Native => "application/grpc",
            Transport::WebBinary | Transport::LambdaBinary => "application/grpc-web+proto",
            Transport::WebText | Transport::LambdaText => "application/grpc-web-text",
        }
    }
}

/// Where the requests of one transport go, with the ledger behind it.
struct Target {
    transport: Transport,
    ledger: Ledger,
    /// The server, for the server transports.
    app: Option<TestApp>,
    /// The handler's service, for the Lambda transports.
    lambda: Option<HttpService>,
}

/// The HTTP parts of one request, before the transport encodes it.
struct Outgoing<'a> {
    method: http::Method,
    path: String,
    /// None: no content-type header at all.
    content_type: Option<&'a str>,
    extra: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
}

impl Target {
    async fn new(transport: Transport) -> Target {
        if transport.lambda() {
            let ledger = fresh_ledger().await;
            let lambda = payment::stack::http_service(
                payment::service::PaymentApi::new(
                    ledger.clone(),
                    payment::auth::Authenticator::ApiGateway,
                ),
                "*",
            )
            .await
            .expect("http service");
            Target {
                transport,
                ledger,
                app: None,
                lambda: Some(lambda),
            }
        } else {
            let app = TestApp::spawn().await;
            Target {
                transport,
                ledger: app.ledger.clone(),
                app: Some(app),
                lambda: None,
            }
        }
    }

    async fn request(&self, out: Outgoing<'_>) -> Result<Reply, String> {
        match (&self.app, &self.lambda) {
            (Some(app), _) => {
                let auth = format!("Bearer {}", token(TESTER, true));
                let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
                if let Some(ct) = out.content_type {
                    headers.push(("content-type", ct));
                }
                if self.transport == Transport::Native {
                    headers.push(("te", "trailers"));
                } else {
                    headers.push(("x-grpc-web", "1"));
                    if self.transport.text() {
                        headers.push(("accept", "application/grpc-web-text"));
                    }
                }
                headers.extend(out.extra.iter().copied());
                send(
                    self.transport == Transport::Native,
                    &app.url(),
                    out.method,
                    &out.path,
                    &headers,
                    out.body,
                )
                .await
            }
            (None, Some(service)) => Ok(self.invoke(service, out).await),
            (None, None) => unreachable!("a target has a server or a handler"),
        }
    }

    /// Through `payment::lambda::handle`, as API Gateway would call it, with
    /// the authorizer's claims for TESTER, an admin.
    async fn invoke(&self, service: &HttpService, out: Outgoing<'_>) -> Reply {
        let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events/get-account-balance.json");
        let mut event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(template).expect("event file"))
                .expect("event json");
        event["rawPath"] = out.path.clone().into();
        event["requestContext"]["http"]["path"] = out.path.clone().into();
        event["requestContext"]["http"]["method"] = out.method.as_str().into();
        event["pathParameters"]["method"] = out.path.rsplit('/').next().unwrap_or("").into();
        event["requestContext"]["authorizer"]["jwt"]["claims"] =
            serde_json::json!({"sub": TESTER, "scope": "openid payments/admin"});
        let headers = event["headers"].as_object_mut().expect("headers");
        headers.remove("authorization");
        match out.content_type {
            Some(ct) => {
                headers.insert("content-type".into(), ct.into());
            }
            None => {
                headers.remove("content-type");
            }
        }
        if self.transport.text() {
            headers.insert("accept".into(), "application/grpc-web-text".into());
        }
        for (k, v) in &out.extra {
            headers.insert((*k).into(), (*v).into());
        }
        event["body"] = B64.encode(&out.body).into();
        event["isBase64Encoded"] = true.into();
        let response = crate::lambda::invoke_raw(service, &event.to_string()).await;
        let (parts, bytes) = response.into_parts();
        reply_from(parts.status.as_u16(), &parts.headers, &bytes, None)
    }
}

// ---------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------

const SERVICE: &str = "/payment.v1.PaymentService/";
const ADD: &str = "AddAccount";
const PAY: &str = "MakePayment";
const BALANCE: &str = "GetAccountBalance";
const HISTORY: &str = "GetTransactionHistory";
const AUTHORIZE: &str = "AuthorizePayment";
const CAPTURE: &str = "CaptureHold";
const VOID: &str = "VoidHold";
const REFUND: &str = "RefundPayment";
const LOOKUP: &str = "GetPayment";
const LIST: &str = "ListAccounts";
const SHARDS: &str = "SetBalanceShards";
const WATCH: &str = "WatchAccount";

/// Fixture accounts, opened on every transport's fresh tables by TESTER.
const A: &str = "mx-a";
const B: &str = "mx-b";
const RICH: &str = "mx-rich";
const SINK: &str = "mx-sink";
/// An ordinary account (one balance shard), raised to the most shards.
const WIDE: &str = "mx-wide";
/// An account opened with four balance shards.
const FOUR: &str = "mx-four";
const A_OPENING: i64 = 1_000_000;
const FIXTURE_PAYMENTS: i64 = 5;

/// An existing account whose id has exactly 128 characters.
fn id128_existing() -> String {
    format!("mx-{}", "e".repeat(125))
}

/// What goes in the HTTP body.
#[derive(Clone)]
enum Body {
    /// One message: the transport frames it (and base64-encodes it for text).
    Message(Vec<u8>),
    /// These gRPC frame bytes (base64-encoded by text transports).
    Frames(Vec<u8>),
    /// These exact HTTP body bytes, on every transport.
    Raw(Vec<u8>),
}

/// What the HTTP request looks like, apart from the body.
#[derive(Clone, Copy)]
enum Http {
    /// A normal gRPC request for the transport.
    Grpc,
    /// This content-type instead of the transport's.
    ContentType(&'static str),
    /// No content-type header.
    NoContentType,
    /// Another HTTP method.
    Method(&'static str),
    /// One extra header.
    Header(&'static str, &'static str),
}

/// What a successful at-the-limit case must have done to the tables.
#[derive(Clone, Debug)]
enum Effect {
    /// Nothing (a read).
    Nothing,
    /// A new account with this id and opening balance.
    Opened { account: String, balance: i64 },
    /// One payment.
    Paid {
        from: &'static str,
        to: &'static str,
        amount: i64,
    },
    /// One hold placed (no money moves; the sender's shard records it).
    Held {
        from: &'static str,
        to: &'static str,
        amount: i64,
    },
    /// An account's balance shards raised from `from` to `to`: every old
    /// shard told the new count, the new ones put empty, no money moved.
    Resharded {
        account: &'static str,
        from: u32,
        to: u32,
    },
}

#[derive(Clone, Debug)]
enum Expect {
    /// OK, with this effect.
    Ok(Effect),
    /// This gRPC status, its message containing the needle (a field name
    /// for validation errors).
    Status(Code, &'static str),
    /// A plain HTTP 4xx reply: the request is not gRPC.
    Http4xx,
}

#[derive(Clone)]
struct Case {
    name: String,
    method: &'static str,
    http: Http,
    body: Body,
    expect: Expect,
    /// The transports the case applies to; empty means all.
    only: &'static [Transport],
}

fn case(name: impl Into<String>, method: &'static str, body: Body, expect: Expect) -> Case {
    Case {
        name: name.into(),
        method,
        http: Http::Grpc,
        body,
        expect,
        only: &[],
    }
}

impl Case {
    fn http(mut self, http: Http) -> Self {
        self.http = http;
        self
    }
    fn only(mut self, transports: &'static [Transport]) -> Self {
        self.only = transports;
        self
    }
    fn applies_to(&self, t: Transport) -> bool {
        self.only.is_empty() || self.only.contains(&t)
    }
}

fn status(code: Code, needle: &'static str) -> Expect {
    Expect::Status(code, needle)
}
fn http_4xx() -> Expect {
    Expect::Http4xx
}
/// These message bytes, framed by the transport.
fn wire(message: Vec<u8>) -> Body {
    Body::Message(message)
}
fn frames(bytes: Vec<u8>) -> Body {
    Body::Frames(bytes)
}
fn raw(bytes: Vec<u8>) -> Body {
    Body::Raw(bytes)
}
fn invalid(field: &'static str) -> Expect {
    Expect::Status(Code::InvalidArgument, field)
}
fn ok() -> Expect {
    Expect::Ok(Effect::Nothing)
}
fn opened(account: &str, balance: i64) -> Expect {
    Expect::Ok(Effect::Opened {
        account: account.into(),
        balance,
    })
}
fn paid(from: &'static str, to: &'static str, amount: i64) -> Expect {
    Expect::Ok(Effect::Paid { from, to, amount })
}
fn held(from: &'static str, to: &'static str, amount: i64) -> Expect {
    Expect::Ok(Effect::Held { from, to, amount })
}
fn resharded(account: &'static str, from: u32, to: u32) -> Expect {
    Expect::Ok(Effect::Resharded { account, from, to })
}

fn msg(m: impl Message) -> Body {
    Body::Message(m.encode_to_vec())
}

fn open(id: &str, name: &str, currency: &str, initial: i64) -> Body {
    msg(pb::AddAccountRequest {
        account_id: id.into(),
        display_name: name.into(),
        currency: currency.into(),
        initial_balance: initial,
        ..Default::default()
    })
}

fn payment(key: &str, from: &str, to: &str, amount: i64, currency: &str, memo: &str) -> Body {
    msg(pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: currency.into(),
        memo: memo.into(),
    })
}

fn pay_ok(key: &str) -> Body {
    payment(key, A, B, 1, "EUR", "")
}

fn read(id: &str) -> Body {
    msg(pb::GetAccountBalanceRequest {
        account_id: id.into(),
    })
}

fn history(id: &str, page_size: i32, page_token: &str) -> Body {
    msg(pb::GetTransactionHistoryRequest {
        account_id: id.into(),
        page_size,
        page_token: page_token.into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn hold(
    key: &str,
    from: &str,
    to: &str,
    amount: i64,
    currency: &str,
    memo: &str,
    seconds: i64,
) -> Body {
    msg(pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: currency.into(),
        memo: memo.into(),
        expires_in_seconds: seconds,
    })
}

fn named(id: &str, sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        transaction_id: id.into(),
        sender_id: sender.into(),
        idempotency_key: key.into(),
    })
}

fn capture(reference: Option<pb::PaymentRef>, amount: i64) -> Body {
    msg(pb::CaptureHoldRequest {
        hold: reference,
        amount,
    })
}

fn void(reference: Option<pb::PaymentRef>) -> Body {
    msg(pb::VoidHoldRequest { hold: reference })
}

fn refund(key: &str, reference: Option<pb::PaymentRef>, amount: i64, memo: &str) -> Body {
    msg(pb::RefundPaymentRequest {
        idempotency_key: key.into(),
        payment: reference,
        amount,
        memo: memo.into(),
    })
}

fn lookup(reference: Option<pb::PaymentRef>) -> Body {
    msg(pb::GetPaymentRequest {
        payment: reference,
        finalize: false,
    })
}

fn list(page_size: i32, page_token: &str, owner: &str) -> Body {
    msg(pb::ListAccountsRequest {
        page_size,
        page_token: page_token.into(),
        owner: owner.into(),
    })
}

fn shards(id: &str, balance_shards: i32) -> Body {
    msg(pb::SetBalanceShardsRequest {
        account_id: id.into(),
        balance_shards,
    })
}

fn watch(id: &str, resume_token: &str, max_seconds: i32) -> Body {
    msg(pb::WatchAccountRequest {
        account_id: id.into(),
        resume_token: resume_token.into(),
        max_seconds,
    })
}

/// A protobuf varint.
fn varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(v, &mut out);
    out
}

/// A protobuf tag.
fn tag(field: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(field << 3 | u32::from(wire_type)))
}

/// A length-delimited field.
fn bytes_field(field: u32, value: &[u8]) -> Vec<u8> {
    let mut out = tag(field, 2);
    out.extend(varint(value.len() as u64));
    out.extend_from_slice(value);
    out
}

/// `message` plus an unknown length-delimited field 15 so that its frame is
/// exactly `frame_len` bytes long.
fn padded_to(message: Vec<u8>, frame_len: usize) -> Vec<u8> {
    let room = frame_len - 5 - message.len();
    // tag (1 byte) + length varint + padding = room
    for len_bytes in 1..=5 {
        let Some(pad) = room.checked_sub(1 + len_bytes) else {
            continue;
        };
        if varint(pad as u64).len() == len_bytes {
            let mut out = message.clone();
            out.extend(bytes_field(15, &vec![b'p'; pad]));
            assert_eq!(out.len() + 5, frame_len);
            return frame(&out);
        }
    }
    panic!("cannot pad to {frame_len}");
}

/// The bad-input matrix, one row per case: name, method, body, expected
/// answer (and, after a row, the HTTP variation and the transports it is
/// limited to). Accounts opened by OK rows have ids starting with "mo-";
/// fixture accounts (see [`seed`]) start with "mx-".
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Transport::*;
    let x129 = "x".repeat(129);
    let id128_new = format!("mo-{}", "n".repeat(125));
    let (n256, n257, m256, m257) = ("n".repeat(256), "n".repeat(257), "m".repeat(256), "m".repeat(257));
    let e128 = "é".repeat(128); // 128 chars, 256 bytes
    let e128_a = format!("{e128}a"); // 129 chars, 257 bytes
    let emoji64 = "😀".repeat(64); // 64 chars, 256 bytes
    let euro85_ab = format!("{}ab", "€".repeat(85)); // 87 chars, 257 bytes
    let (k128, k129) = ("k".repeat(128), "k".repeat(129));
    let h128 = "h".repeat(128);
    let valid_balance = pb::GetAccountBalanceRequest { account_id: A.into() }.encode_to_vec();
    let valid_frame = frame(&valid_balance);
    let huge_announced = [&frame_header(0, u32::MAX)[..], &valid_balance].concat();
    let two_frames = [valid_frame.clone(), valid_frame.clone()].concat();
    let trailing = [valid_frame.clone(), vec![0]].concat();
    let foreign_token = PageToken {
        account_id: payment::domain::AccountId::parse("page_token", B).expect("id"),
        before_sequence: 2,
        other_shards: Vec::new(),
    }
    .encode();
    let tok = |text: String| URL_SAFE_NO_PAD.encode(text);
    let mut text_cut = text_body(&valid_frame);
    text_cut.truncate(text_cut.len() - 2);
    let at_limit = padded_to(valid_balance.clone(), REQUEST_BYTES_MAX);
    let over_limit = padded_to(valid_balance.clone(), REQUEST_BYTES_MAX + 1);
    let big = |bytes| padded_to(valid_balance.clone(), bytes);
    let too_large = || status(Code::ResourceExhausted, "larger than");
    let compressed = || status(Code::Unimplemented, "compressed");

    let mut rows = vec![
        // AddAccount: account_id, currency, initial_balance, display_name (a byte limit).
        case("AddAccount account_id of 128 chars",            ADD, open(&id128_new, "", "EUR", 0),        opened(&id128_new, 0)),
        case("AddAccount account_id of 129 chars",            ADD, open(&x129, "", "EUR", 0),             invalid("account_id")),
        case("AddAccount account_id empty",                   ADD, open("", "", "EUR", 0),                invalid("account_id")),
        case("AddAccount account_id with a space",            ADD, open("has space", "", "EUR", 0),       invalid("account_id")),
        case("AddAccount account_id with a slash",            ADD, open("a/b", "", "EUR", 0),             invalid("account_id")),
        case("AddAccount account_id with a NUL",              ADD, open("a\0b", "", "EUR", 0),            invalid("account_id")),
        case("AddAccount account_id of 128 two-byte chars",   ADD, open(&e128, "", "EUR", 0),             invalid("account_id")),
        case("AddAccount account_id of four-byte chars",      ADD, open(&"😀".repeat(10), "", "EUR", 0),  invalid("account_id")),
        case("AddAccount currency lower case",                ADD, open("mo-c1", "", "eur", 0),           invalid("currency")),
        case("AddAccount currency of 4 letters",              ADD, open("mo-c2", "", "EURO", 0),          invalid("currency")),
        case("AddAccount currency empty",                     ADD, open("mo-c3", "", "", 0),              invalid("currency")),
        case("AddAccount currency one 3-byte char",           ADD, open("mo-c4", "", "€", 0),             invalid("currency")),
        case("AddAccount initial_balance -1",                 ADD, open("mo-i1", "", "EUR", -1),          invalid("initial_balance")),
        case("AddAccount initial_balance 0",                  ADD, open("mo-zero", "", "EUR", 0),         opened("mo-zero", 0)),
        case("AddAccount initial_balance 10^15",              ADD, open("mo-max", "", "EUR", BALANCE_MAX_MINOR), opened("mo-max", BALANCE_MAX_MINOR)),
        case("AddAccount initial_balance 10^15+1",            ADD, open("mo-i2", "", "EUR", BALANCE_MAX_MINOR + 1), invalid("initial_balance")),
        case("AddAccount initial_balance i64::MIN",           ADD, open("mo-i3", "", "EUR", i64::MIN),    invalid("initial_balance")),
        case("AddAccount initial_balance i64::MAX",           ADD, open("mo-i4", "", "EUR", i64::MAX),    invalid("initial_balance")),
        case("AddAccount display_name of 256 bytes",          ADD, open("mo-n1", &n256, "EUR", 0),        opened("mo-n1", 0)),
        case("AddAccount display_name of 257 bytes",          ADD, open("mo-n2", &n257, "EUR", 0),        invalid("display_name")),
        case("AddAccount display_name 128 two-byte chars",    ADD, open("mo-n3", &e128, "EUR", 0),        opened("mo-n3", 0)),
        case("AddAccount display_name 64 four-byte chars",    ADD, open("mo-n4", &emoji64, "EUR", 0),     opened("mo-n4", 0)),
        case("AddAccount display_name 129 chars, 257 bytes",  ADD, open("mo-n5", &e128_a, "EUR", 0),      invalid("display_name")),
        case("AddAccount display_name 87 chars, 257 bytes",   ADD, open("mo-n6", &euro85_ab, "EUR", 0),   invalid("display_name")),
        case("AddAccount display_name with a control char",   ADD, open("mo-n7", "bell\u{7}", "EUR", 0),  invalid("display_name")),

        // MakePayment: every field. OK rows pay from the fixture accounts.
        case("MakePayment idempotency_key of 128 chars",      PAY, pay_ok(&k128),                         paid(A, B, 1)),
        case("MakePayment idempotency_key of 129 chars",      PAY, pay_ok(&k129),                         invalid("idempotency_key")),
        case("MakePayment idempotency_key empty",             PAY, pay_ok(""),                            invalid("idempotency_key")),
        case("MakePayment idempotency_key with a slash",      PAY, pay_ok("k/1"),                         invalid("idempotency_key")),
        case("MakePayment idempotency_key not ASCII",         PAY, pay_ok("ключ"),                        invalid("idempotency_key")),
        case("MakePayment sender_id of 129 chars",            PAY, payment("k-s1", &x129, B, 1, "EUR", ""),  invalid("sender_id")),
        case("MakePayment sender_id with a space",            PAY, payment("k-s2", "a b", B, 1, "EUR", ""),  invalid("sender_id")),
        case("MakePayment recipient_id of 129 chars",         PAY, payment("k-r1", A, &x129, 1, "EUR", ""),  invalid("recipient_id")),
        case("MakePayment recipient_id empty",                PAY, payment("k-r2", A, "", 1, "EUR", ""),     invalid("recipient_id")),
        case("MakePayment recipient_id equal to sender_id",   PAY, payment("k-r3", A, A, 1, "EUR", ""),      invalid("recipient_id")),
        case("MakePayment amount 0",                          PAY, payment("k-a0", A, B, 0, "EUR", ""),      invalid("amount")),
        case("MakePayment amount 1",                          PAY, payment("k-a1", A, B, 1, "EUR", ""),      paid(A, B, 1)),
        case("MakePayment amount 10^15",                      PAY, payment("k-a2", RICH, SINK, AMOUNT_MAX_MINOR, "EUR", ""), paid(RICH, SINK, AMOUNT_MAX_MINOR)),
        case("MakePayment amount 10^15+1",                    PAY, payment("k-a3", A, B, AMOUNT_MAX_MINOR + 1, "EUR", ""), invalid("amount")),
        case("MakePayment amount -1",                         PAY, payment("k-a4", A, B, -1, "EUR", ""),     invalid("amount")),
        case("MakePayment amount i64::MIN",                   PAY, payment("k-a5", A, B, i64::MIN, "EUR", ""), invalid("amount")),
        case("MakePayment amount i64::MAX",                   PAY, payment("k-a6", A, B, i64::MAX, "EUR", ""), invalid("amount")),
        case("MakePayment currency of 2 letters",             PAY, payment("k-c1", A, B, 1, "EU", ""),       invalid("currency")),
        case("MakePayment currency with a trailing space",    PAY, payment("k-c2", A, B, 1, "EUR ", ""),     invalid("currency")),
        case("MakePayment memo of 256 bytes",                 PAY, payment("k-m1", A, B, 1, "EUR", &m256),   paid(A, B, 1)),
        case("MakePayment memo of 257 bytes",                 PAY, payment("k-m2", A, B, 1, "EUR", &m257),   invalid("memo")),
        case("MakePayment memo 64 four-byte chars",           PAY, payment("k-m3", A, B, 1, "EUR", &emoji64), paid(A, B, 1)),
        case("MakePayment memo 87 chars, 257 bytes",          PAY, payment("k-m4", A, B, 1, "EUR", &euro85_ab), invalid("memo")),
        case("MakePayment memo with an escape char",          PAY, payment("k-m5", A, B, 1, "EUR", "\u{1b}[31m"), invalid("memo")),

        // GetAccountBalance and GetTransactionHistory.
        case("GetAccountBalance account_id of 128 chars",     BALANCE, read(&id128_existing()),           ok()),
        case("GetAccountBalance account_id of 129 chars",     BALANCE, read(&x129),                       invalid("account_id")),
        case("GetAccountBalance account_id empty",            BALANCE, read(""),                          invalid("account_id")),
        case("GetAccountBalance account_id with a quote",     BALANCE, read("a\"b"),                      invalid("account_id")),
        case("GetTransactionHistory account_id of 129 chars", HISTORY, history(&x129, 0, ""),             invalid("account_id")),
        case("GetTransactionHistory page_size -1",            HISTORY, history(A, -1, ""),                invalid("page_size")),
        case("GetTransactionHistory page_size 0",             HISTORY, history(A, 0, ""),                 ok()),
        case("GetTransactionHistory page_size 1",             HISTORY, history(A, 1, ""),                 ok()),
        case("GetTransactionHistory page_size 1000",          HISTORY, history(A, 1000, ""),              ok()),
        case("GetTransactionHistory page_size 1001",          HISTORY, history(A, 1001, ""),              invalid("page_size")),
        case("GetTransactionHistory page_size i32::MIN",      HISTORY, history(A, i32::MIN, ""),          invalid("page_size")),
        case("GetTransactionHistory page_size i32::MAX",      HISTORY, history(A, i32::MAX, ""),          invalid("page_size")),
        case("GetTransactionHistory page_token not base64",   HISTORY, history(A, 0, "not a token!"),     invalid("page_token")),
        case("GetTransactionHistory page_token of 513 bytes", HISTORY, history(A, 0, &"A".repeat(513)),   invalid("page_token")),
        case("GetTransactionHistory foreign page_token",      HISTORY, history(A, 0, &foreign_token),     invalid("page_token: belongs to another account")),
        case("GetTransactionHistory page_token version v2",   HISTORY, history(A, 0, &tok(format!("v2|{A}|2"))),  invalid("page_token")),
        case("GetTransactionHistory page_token leading 0",    HISTORY, history(A, 0, &tok(format!("v1|{A}|02"))), invalid("page_token")),
        case("GetTransactionHistory page_token extra part",   HISTORY, history(A, 0, &tok(format!("v1|{A}|2|x"))), invalid("page_token")),
        case("GetTransactionHistory page_token sequence 1",   HISTORY, history(A, 0, &tok(format!("v1|{A}|1"))),  invalid("page_token")),
        case("GetTransactionHistory page_token u64::MAX",     HISTORY, history(A, 0, &tok(format!("v1|{A}|{}", u64::MAX))), ok()),
        case("GetTransactionHistory page_token u64::MAX+1",   HISTORY, history(A, 0, &tok(format!("v1|{A}|18446744073709551616"))), invalid("page_token")),

        // WatchAccount: every field. The OK rows watch for a second: from now
        // (only the last message), and from A's first entry (every entry,
        // then the last message; behind API Gateway the long poll ends
        // with the first poll's entries).
        case("WatchAccount account_id of 129 chars",          WATCH, watch(&x129, "", 1),                 invalid("account_id")),
        case("WatchAccount account_id empty",                 WATCH, watch("", "", 1),                    invalid("account_id")),
        case("WatchAccount max_seconds -1",                   WATCH, watch(A, "", -1),                    invalid("max_seconds")),
        case("WatchAccount max_seconds 1",                    WATCH, watch(A, "", 1),                     ok()),
        case("WatchAccount max_seconds 301",                  WATCH, watch(A, "", 301),                   invalid("max_seconds")),
        case("WatchAccount max_seconds i32::MIN",             WATCH, watch(A, "", i32::MIN),              invalid("max_seconds")),
        case("WatchAccount max_seconds i32::MAX",             WATCH, watch(A, "", i32::MAX),              invalid("max_seconds")),
        case("WatchAccount resume_token at the first entry",  WATCH, watch(A, &tok(format!("w1|{A}|1")), 1), ok()),
        case("WatchAccount resume_token not base64",          WATCH, watch(A, "not a token!", 1),         invalid("resume_token")),
        case("WatchAccount resume_token of 2049 bytes",       WATCH, watch(A, &"A".repeat(2049), 1),      invalid("resume_token")),
        case("WatchAccount foreign resume_token",             WATCH, watch(A, &tok(format!("w1|{B}|1")), 1), invalid("resume_token: belongs to a watch of another account")),
        case("WatchAccount page_token as resume_token",       WATCH, watch(A, &tok(format!("v1|{A}|2")), 1), invalid("resume_token")),
        case("WatchAccount resume_token cursor 0",            WATCH, watch(A, &tok(format!("w1|{A}|0")), 1), invalid("resume_token")),
        case("WatchAccount resume_token leading 0",           WATCH, watch(A, &tok(format!("w1|{A}|01")), 1), invalid("resume_token")),
        case("WatchAccount resume_token ahead of the history", WATCH, watch(A, &tok(format!("w1|{A}|1000000")), 1), invalid("resume_token: does not fit")),
        case("WatchAccount resume_token u64::MAX",            WATCH, watch(A, &tok(format!("w1|{A}|{}", u64::MAX)), 1), invalid("resume_token: does not fit")),
        case("WatchAccount resume_token u64::MAX+1",          WATCH, watch(A, &tok(format!("w1|{A}|18446744073709551616")), 1), invalid("resume_token")),
        case("WatchAccount resume_token of 2 shards for 1",   WATCH, watch(A, &tok(format!("w1|{A}|1.1")), 1), invalid("resume_token: does not fit")),
        case("WatchAccount resume_token of 65 shards",        WATCH, watch(A, &tok(format!("w1|{A}|{}", vec!["1"; 65].join("."))), 1), invalid("resume_token")),
        case("WatchAccount of an account that does not exist", WATCH, watch("mx-nobody", "", 1),          status(Code::NotFound, "mx-nobody")),

        // Wrong wire types, malformed protobuf, invalid UTF-8 (prost names the field).
        case("string field sent as a varint",                 ADD, wire([tag(1, 0), varint(7)].concat()),  invalid("AddAccountRequest.account_id")),
        case("int64 field sent as length-delimited",          PAY, wire(bytes_field(4, b"\x01")),          invalid("MakePaymentRequest.amount")),
        case("string field sent as fixed32",                  PAY, wire([tag(6, 5), vec![1, 2, 3, 4]].concat()), invalid("MakePaymentRequest.memo")),
        case("int32 field sent as fixed64",                   HISTORY, wire([tag(2, 1), vec![0; 8]].concat()), invalid("GetTransactionHistoryRequest.page_size")),
        case("account_id not UTF-8",                          BALANCE, wire(bytes_field(1, &[0xff, 0xfe])), invalid("GetAccountBalanceRequest.account_id")),
        case("memo in Latin-1, not UTF-8",                    PAY, wire(bytes_field(6, b"caf\xe9")),       invalid("MakePaymentRequest.memo")),
        case("display_name with an overlong UTF-8 encoding",  ADD, wire(bytes_field(2, &[0xc0, 0x80])),    invalid("AddAccountRequest.display_name")),
        case("display_name with an encoded surrogate",        ADD, wire(bytes_field(2, &[0xed, 0xa0, 0x80])), invalid("AddAccountRequest.display_name")),
        case("not protobuf (wire type 7)",                    BALANCE, wire(vec![0x0f, 0xff]),             invalid("GetAccountBalanceRequest")),
        case("field number 0",                                PAY, wire(vec![0x00, 0x00]),                 invalid("MakePaymentRequest")),
        case("truncated varint",                              PAY, wire(vec![0x20, 0xff]),                 invalid("MakePaymentRequest.amount")),
        case("varint of 11 bytes",                            PAY, wire([tag(4, 0), vec![0xff; 10], vec![0x01]].concat()), invalid("MakePaymentRequest.amount")),
        case("string longer than the message",                ADD, wire(vec![0x0a, 0x05, b'a']),           invalid("AddAccountRequest.account_id")),
        case("JSON instead of protobuf",                      BALANCE, wire(br#"{"account_id":"mx-a"}"#.to_vec()), invalid("GetAccountBalanceRequest")),
        case("empty message (account_id missing)",            BALANCE, wire(vec![]),                      invalid("account_id")),
        case("an unknown field is ignored",                   BALANCE, wire([valid_balance.clone(), bytes_field(99, b"x")].concat()), ok()),
        case("a field twice: the last one counts",            BALANCE, wire([bytes_field(1, b"a b"), bytes_field(1, A.as_bytes())].concat()), ok()),

        // Framing and size beyond the rows every method gets (see every_method_rows).
        case("frame of the largest length a header holds",    BALANCE, frames(huge_announced),             invalid("truncated")),
        case("two frames of a valid request",                 BALANCE, frames(two_frames),                 invalid("exactly one")),
        case("a byte after a valid frame",                    BALANCE, frames(trailing),                   invalid("exactly one")),
        case("compressed flag and grpc-encoding gzip",        BALANCE, frames(frame_flagged(1, &valid_balance)), compressed())
            .http(Http::Header("grpc-encoding", "gzip")),
        case("unknown flag 2",                                BALANCE, frames(frame_flagged(2, &valid_balance)), invalid("flag")),
        case("body of exactly the size limit",                BALANCE, frames(at_limit),                   ok()),
        case("body 1 byte over the size limit, valid inside", BALANCE, frames(over_limit),                 too_large()),
        case("body of 8 MB",                                  ADD,     frames(big(8 << 20)),               too_large()),

        // Content types, HTTP methods, unknown methods, the text encoding.
        case("content-type application/json",                 BALANCE, raw(br#"{"account_id":"mx-a"}"#.to_vec()), http_4xx())
            .http(Http::ContentType("application/json")),
        case("content-type text/plain",                       BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::ContentType("text/plain")),
        case("no content-type",                               BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::NoContentType),
        case("GET",                                           BALANCE, raw(vec![]),                        http_4xx())
            .http(Http::Method("GET")),
        case("PUT",                                           BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::Method("PUT")),
        case("application/grpc over HTTP/1.1",                BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::ContentType("application/grpc")).only(&[WebBinary, LambdaBinary]),
        case("content-type application/grpc-web+json",        BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::ContentType("application/grpc-web+json")).only(&[WebBinary, LambdaBinary]),
        case("content-type application/grpc-web",             BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::ContentType("application/grpc-web")).only(&[WebBinary, LambdaBinary]),
        case("content-type application/grpc-web-text+proto",  BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::ContentType("application/grpc-web-text+proto")).only(&[WebText, LambdaText]),
        case("gRPC-Web over HTTP/2",                          BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::ContentType("application/grpc-web+proto")).only(&[Native]),
        case("content-type application/grpc+json",            BALANCE, frames(frame(br#"{"account_id":"mx-a"}"#)), invalid("GetAccountBalanceRequest"))
            .http(Http::ContentType("application/grpc+json")).only(&[Native]),
        // AuthorizePayment: the payment's fields and the expiry, at and past
        // each limit. The 10^15 hold is on SINK, which the MakePayment row
        // of 10^15 above filled.
        case("AuthorizePayment expires_in_seconds 60",        AUTHORIZE, hold("h-ok1", A, B, 1, "EUR", "", 60),     held(A, B, 1)),
        case("AuthorizePayment expires_in_seconds 30 days",   AUTHORIZE, hold("h-ok2", A, B, 1, "EUR", "", 2_592_000), held(A, B, 1)),
        case("AuthorizePayment amount 10^15",                 AUTHORIZE, hold("h-ok3", SINK, RICH, AMOUNT_MAX_MINOR, "EUR", "", 60), held(SINK, RICH, AMOUNT_MAX_MINOR)),
        case("AuthorizePayment idempotency_key of 128 chars", AUTHORIZE, hold(&h128, A, B, 1, "EUR", "", 60),       held(A, B, 1)),
        case("AuthorizePayment memo of 256 bytes",            AUTHORIZE, hold("h-ok4", A, B, 1, "EUR", &m256, 60),  held(A, B, 1)),
        case("AuthorizePayment expires_in_seconds 59",        AUTHORIZE, hold("h-e1", A, B, 1, "EUR", "", 59),      invalid("expires_in_seconds")),
        case("AuthorizePayment expires_in_seconds 30 days+1", AUTHORIZE, hold("h-e2", A, B, 1, "EUR", "", 2_592_001), invalid("expires_in_seconds")),
        case("AuthorizePayment expires_in_seconds 0",         AUTHORIZE, hold("h-e3", A, B, 1, "EUR", "", 0),       invalid("expires_in_seconds")),
        case("AuthorizePayment expires_in_seconds i64::MIN",  AUTHORIZE, hold("h-e4", A, B, 1, "EUR", "", i64::MIN), invalid("expires_in_seconds")),
        case("AuthorizePayment amount 0",                     AUTHORIZE, hold("h-a1", A, B, 0, "EUR", "", 60),      invalid("amount")),
        case("AuthorizePayment amount 10^15+1",               AUTHORIZE, hold("h-a2", A, B, AMOUNT_MAX_MINOR + 1, "EUR", "", 60), invalid("amount")),
        case("AuthorizePayment idempotency_key of 129 chars", AUTHORIZE, hold(&k129, A, B, 1, "EUR", "", 60),       invalid("idempotency_key")),
        case("AuthorizePayment recipient_id equal to sender", AUTHORIZE, hold("h-r1", A, A, 1, "EUR", "", 60),      invalid("recipient_id")),
        case("AuthorizePayment memo of 257 bytes",            AUTHORIZE, hold("h-m1", A, B, 1, "EUR", &m257, 60),   invalid("memo")),
        case("AuthorizePayment currency lower case",          AUTHORIZE, hold("h-c1", A, B, 1, "eur", "", 60),      invalid("currency")),
        case("AuthorizePayment more than is available",       AUTHORIZE, hold("h-f1", A, B, A_OPENING, "EUR", "", 60), status(Code::FailedPrecondition, "insufficient funds")),
        // CaptureHold, VoidHold: the hold is named one way, amounts bounded.
        case("CaptureHold hold missing",                      CAPTURE, capture(None, 0),                            invalid("hold")),
        case("CaptureHold hold named two ways",               CAPTURE, capture(named("t-1", A, "k"), 0),            invalid("hold.transaction_id")),
        case("CaptureHold hold key without sender",           CAPTURE, capture(named("", "", "k"), 0),              invalid("hold.sender_id")),
        case("CaptureHold hold sender without key",           CAPTURE, capture(named("", A, ""), 0),                invalid("hold.idempotency_key")),
        case("CaptureHold transaction_id of 129 chars",       CAPTURE, capture(named(&x129, "", ""), 0),            invalid("hold.transaction_id")),
        case("CaptureHold amount -1",                         CAPTURE, capture(named("t-1", "", ""), -1),           invalid("amount")),
        case("CaptureHold amount 10^15+1",                    CAPTURE, capture(named("t-1", "", ""), AMOUNT_MAX_MINOR + 1), invalid("amount")),
        case("CaptureHold unknown hold",                      CAPTURE, capture(named("", A, "no-such-hold"), 0),    status(Code::NotFound, "no hold")),
        case("VoidHold hold missing",                         VOID, void(None),                                     invalid("hold")),
        case("VoidHold sender_id with a space",               VOID, void(named("", "a b", "k")),                    invalid("hold.sender_id")),
        case("VoidHold unknown hold id",                      VOID, void(named("t-unknown", "", "")),               status(Code::NotFound, "no hold")),
        // RefundPayment.
        case("RefundPayment idempotency_key empty",           REFUND, refund("", named("t-1", "", ""), 0, ""),      invalid("idempotency_key")),
        case("RefundPayment payment missing",                 REFUND, refund("r-1", None, 0, ""),                   invalid("payment")),
        case("RefundPayment amount -5",                       REFUND, refund("r-2", named("t-1", "", ""), -5, ""),  invalid("amount")),
        case("RefundPayment memo of 257 bytes",               REFUND, refund("r-3", named("t-1", "", ""), 0, &m257), invalid("memo")),
        case("RefundPayment unknown payment",                 REFUND, refund("r-4", named("", A, "no-such"), 1, ""), status(Code::NotFound, "no payment")),
        case("RefundPayment a fixture payment, too much",     REFUND, refund("r-5", named("", A, "fixture-0"), 11, ""), status(Code::FailedPrecondition, "exceeds")),
        // GetPayment.
        case("GetPayment payment missing",                    LOOKUP, lookup(None),                                 invalid("payment")),
        case("GetPayment payment empty",                      LOOKUP, lookup(named("", "", "")),                    invalid("payment.transaction_id")),
        case("GetPayment key of 129 chars",                   LOOKUP, lookup(named("", A, &k129)),                  invalid("payment.idempotency_key")),
        case("GetPayment unknown key",                        LOOKUP, lookup(named("", A, "no-such")),              status(Code::NotFound, "no payment")),
        case("GetPayment a fixture payment",                  LOOKUP, lookup(named("", A, "fixture-1")),            ok()),
        // ListAccounts.
        case("ListAccounts page_size 100",                    LIST, list(100, "", ""),                              ok()),
        case("ListAccounts page_size 101",                    LIST, list(101, "", ""),                              invalid("page_size")),
        case("ListAccounts page_size -1",                     LIST, list(-1, "", ""),                               invalid("page_size")),
        case("ListAccounts page_token garbage",               LIST, list(0, "!!", ""),                              invalid("page_token")),
        case("ListAccounts page_token of another listing",    LIST, list(0, &tok(format!("l1|o{}|mx-a", URL_SAFE_NO_PAD.encode("other"))), ""), invalid("page_token")),
        case("ListAccounts owner of 257 bytes",               LIST, list(0, "", &m257),                             invalid("owner")),
        // SetBalanceShards: account_id, balance_shards 1 to 64, never fewer
        // than the account has. TESTER is an admin.
        case("SetBalanceShards balance_shards 0",             SHARDS, shards(A, 0),                                 invalid("balance_shards")),
        case("SetBalanceShards balance_shards 65",            SHARDS, shards(A, 65),                                invalid("balance_shards")),
        case("SetBalanceShards balance_shards -1",            SHARDS, shards(A, -1),                                invalid("balance_shards")),
        case("SetBalanceShards balance_shards i32::MIN",      SHARDS, shards(A, i32::MIN),                          invalid("balance_shards")),
        case("SetBalanceShards balance_shards i32::MAX",      SHARDS, shards(A, i32::MAX),                          invalid("balance_shards")),
        case("SetBalanceShards account_id empty",             SHARDS, shards("", 2),                                invalid("account_id")),
        case("SetBalanceShards account_id of 129 chars",      SHARDS, shards(&x129, 2),                             invalid("account_id")),
        case("SetBalanceShards account_id with a space",      SHARDS, shards("has space", 2),                       invalid("account_id")),
        case("SetBalanceShards unknown account",              SHARDS, shards("mo-no-such", 2),                      status(Code::NotFound, "does not exist")),
        case("SetBalanceShards balance_shards 1, as it has",  SHARDS, shards(A, 1),                                 ok()),
        case("SetBalanceShards account_id of 128 chars",      SHARDS, shards(&id128_existing(), 1),                 ok()),
        case("SetBalanceShards 4 shards, as it has",          SHARDS, shards(FOUR, 4),                              ok()),
        case("SetBalanceShards fewer than it has",            SHARDS, shards(FOUR, 2),                              status(Code::FailedPrecondition, FOUR)),
        case("SetBalanceShards 4 shards to 8",                SHARDS, shards(FOUR, 8),                              resharded(FOUR, 4, 8)),
        case("SetBalanceShards balance_shards 64",            SHARDS, shards(WIDE, 64),                             resharded(WIDE, 1, 64)),
        case("unknown method",                                "Steal", frames(valid_frame.clone()),        status(Code::Unimplemented, "")),
        case("unknown service",                               "",      frames(valid_frame.clone()),        status(Code::Unimplemented, "")),
        case("malformed grpc-timeout is ignored",             BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::Header("grpc-timeout", "soon")),
        case("invalid base64",                                BALANCE, raw(b"!!!not base64!!!".to_vec()),  invalid("request body"))
            .only(&[WebText, LambdaText]),
        case("base64 cut in the middle of a quad",            BALANCE, raw(text_cut),                      invalid("request body"))
            .only(&[WebText, LambdaText]),
        case("binary frame sent as grpc-web-text",            BALANCE, raw(valid_frame.clone()),           invalid("request body"))
            .only(&[WebText, LambdaText]),
    ];
    rows.extend(every_method_rows());
    rows
}

/// What each generated row checks, for [`the_matrix_is_well_formed`]: one
/// row per kind for every method of the contract whose request is one
/// message. The kinds come in the order [`every_method_rows`] builds them.
const EVERY_METHOD_ROWS: [&str; 13] = [
    "empty body",
    "3-byte body",
    "frame announcing 1 byte more than sent",
    "frame announcing 4 GiB",
    "two frames",
    "a byte after the frame",
    "compressed flag",
    "trailer flag on a request frame",
    "body 1 byte over the size limit",
    "body of 1 MB",
    "not protobuf (wire type 7)",
    "first field with the wrong wire type",
    "first field running past the message",
];

/// The rows of [`EVERY_METHOD_ROWS`] that only the text transports get.
const EVERY_METHOD_TEXT_ROWS: [&str; 1] = ["invalid base64"];

/// The framing, size, wire-type and garbage rows of every method of the
/// contract, walked from `pb::METHODS`: the guard must answer each before
/// tonic does (tonic would say INTERNAL or UNKNOWN). Rows are named
/// "<method>: <kind>". The wire-type rows name the message and field that
/// prost reports, read from the contract's descriptors.
fn every_method_rows() -> Vec<Case> {
    use Transport::*;
    let empty = frame(&[]);
    let short = frame_header(0, 1).to_vec();
    let huge = frame_header(0, u32::MAX).to_vec();
    let too_large = || status(Code::ResourceExhausted, "larger than");
    let mut rows = Vec::new();
    for method in pb::METHODS.iter().filter(|m| !m.client_streaming) {
        let m = method.name;
        let (field, number, length_delimited) = first_field(method.input_type);
        let short_name = method.input_type.rsplit('.').next().expect("a name");
        // prost names the struct and the field that failed.
        let field_needle: &'static str =
            Box::leak(format!("{short_name}.{field}").into_boxed_str());
        let (wrong_wire, past_end) = if length_delimited {
            // A varint where a length-delimited value belongs; a length
            // that runs past the end of the message.
            (
                [tag(number, 0), varint(1)].concat(),
                [tag(number, 2), vec![5, b'a']].concat(),
            )
        } else {
            // A length-delimited value where a varint belongs; a varint
            // cut off at the end of the message.
            (
                bytes_field(number, b"\x01"),
                [tag(number, 0), vec![0xff]].concat(),
            )
        };
        let rows_of_method = [
            (EVERY_METHOD_ROWS[0], frames(vec![]), invalid("empty")),
            (
                EVERY_METHOD_ROWS[1],
                frames(vec![0, 0, 0]),
                invalid("truncated"),
            ),
            (
                EVERY_METHOD_ROWS[2],
                frames(short.clone()),
                invalid("truncated"),
            ),
            (
                EVERY_METHOD_ROWS[3],
                frames(huge.clone()),
                invalid("truncated"),
            ),
            (
                EVERY_METHOD_ROWS[4],
                frames([empty.clone(), empty.clone()].concat()),
                invalid("exactly one"),
            ),
            (
                EVERY_METHOD_ROWS[5],
                frames([empty.clone(), vec![0]].concat()),
                invalid("exactly one"),
            ),
            (
                EVERY_METHOD_ROWS[6],
                frames(frame_flagged(1, &[])),
                status(Code::Unimplemented, "compressed"),
            ),
            (
                EVERY_METHOD_ROWS[7],
                frames(frame_flagged(TRAILERS_FLAG, &[])),
                invalid("flag"),
            ),
            (
                EVERY_METHOD_ROWS[8],
                frames(padded_to(vec![], REQUEST_BYTES_MAX + 1)),
                too_large(),
            ),
            (
                EVERY_METHOD_ROWS[9],
                frames(padded_to(vec![], 1 << 20)),
                too_large(),
            ),
            (
                EVERY_METHOD_ROWS[10],
                wire(vec![0x0f, 0xff]),
                invalid(method.input_type),
            ),
            (
                EVERY_METHOD_ROWS[11],
                wire(wrong_wire),
                invalid(field_needle),
            ),
            (EVERY_METHOD_ROWS[12], wire(past_end), invalid(field_needle)),
        ];
        for (kind, body, expect) in rows_of_method {
            rows.push(case(format!("{m}: {kind}"), m, body, expect));
        }
        rows.push(
            case(
                format!("{m}: {}", EVERY_METHOD_TEXT_ROWS[0]),
                m,
                raw(b"!!!not base64!!!".to_vec()),
                invalid("request body"),
            )
            .only(&[WebText, LambdaText]),
        );
    }
    rows
}

/// The first field (lowest number) of a request type of the contract: its
/// name, its number, and whether its wire type is length-delimited
/// (strings, bytes, messages) rather than a varint.
fn first_field(input_type: &str) -> (String, u32, bool) {
    use prost_types::field_descriptor_proto::Type;
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).expect("descriptors");
    let (package, name) = input_type.rsplit_once('.').expect("a full name");
    let message = set
        .file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{input_type} is not in the descriptors"));
    let field = message
        .field
        .iter()
        .min_by_key(|f| f.number())
        .unwrap_or_else(|| panic!("{input_type} has no field"));
    let length_delimited = matches!(field.r#type(), Type::String | Type::Bytes | Type::Message);
    let wire_ok = length_delimited
        || matches!(
            field.r#type(),
            Type::Int32
                | Type::Int64
                | Type::Uint32
                | Type::Uint64
                | Type::Sint32
                | Type::Sint64
                | Type::Bool
                | Type::Enum
        );
    assert!(
        wire_ok,
        "{input_type}.{}: teach first_field its wire type",
        field.name()
    );
    (
        field.name().to_owned(),
        field.number() as u32,
        length_delimited,
    )
}

/// The path of a case's method: the contract's, or one in the payment
/// service that does not exist ("" is a service that does not exist).
fn path_of(method: &str) -> String {
    if method.is_empty() {
        "/other.v1.Other/Call".into()
    } else if let Some(m) = pb::METHODS.iter().find(|m| m.name == method) {
        m.path.into()
    } else {
        format!("{SERVICE}{method}")
    }
}

/// The HTTP request of `case` on `transport`.
fn outgoing(case: &Case, transport: Transport) -> Outgoing<'static> {
    let frames = match &case.body {
        Body::Message(m) => Some(frame(m)),
        Body::Frames(f) => Some(f.clone()),
        Body::Raw(_) => None,
    };
    let body = match (&case.body, frames) {
        (Body::Raw(raw), _) => raw.clone(),
        (_, Some(f)) if transport.text() => text_body(&f),
        (_, Some(f)) => f,
        (_, None) => unreachable!(),
    };
    let mut out = Outgoing {
        method: http::Method::POST,
        path: path_of(case.method),
        content_type: Some(transport.grpc_content_type()),
        extra: vec![],
        body,
    };
    match case.http {
        Http::Grpc => {}
        Http::ContentType(ct) => out.content_type = Some(ct),
        Http::NoContentType => out.content_type = None,
        Http::Method(m) => out.method = m.parse().expect("method"),
        Http::Header(k, v) => out.extra.push((k, v)),
    }
    out
}

// ---------------------------------------------------------------------------
// The tables before and after.
// ---------------------------------------------------------------------------

/// Every item of both tables, by key, attributes in order.
type Snapshot = BTreeMap<String, BTreeMap<String, AttributeValue>>;

async fn snapshot(client: &aws_sdk_dynamodb::Client, ledger: &Ledger) -> Snapshot {
    let tables = ledger.tables();
    let mut all = Snapshot::new();
    for (table, label) in [(&tables.accounts, "account"), (&tables.ledger, "ledger")] {
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let key = if label == "account" {
                    format!("account|{}", s_attr(item, "account_id"))
                } else {
                    format!("ledger|{}|{}", s_attr(item, "pk"), s_attr(item, "sk"))
                };
                let attributes = item.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                all.insert(key, attributes);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    all
}

fn s_attr(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("item without string {name}: {other:?}"),
    }
}

fn balance_in(snapshot: &Snapshot, account: &str) -> i64 {
    match snapshot[&format!("account|{account}")].get("balance") {
        Some(AttributeValue::N(n)) => n.parse().expect("balance is a number"),
        other => panic!("{account}: balance {other:?}"),
    }
}

/// The keys added, removed and changed between two snapshots.
fn diff(before: &Snapshot, after: &Snapshot) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    let changed = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

/// Checks that the tables changed by exactly `effect`.
fn check_effect(name: &str, effect: &Effect, before: &Snapshot, after: &Snapshot) {
    let (added, removed, changed) = diff(before, after);
    assert!(removed.is_empty(), "{name}: items removed: {removed:?}");
    match effect {
        Effect::Nothing => {
            assert!(
                added.is_empty() && changed.is_empty(),
                "{name}: a read changed the tables: added {added:?}, changed {changed:?}"
            );
        }
        Effect::Opened { account, balance } => {
            let mut expected = vec![format!("account|{account}")];
            if *balance > 0 {
                expected.push(format!("ledger|A#{account}|E#{:020}", 1));
            }
            expected.sort();
            assert_eq!(added, expected, "{name}: items added");
            assert!(changed.is_empty(), "{name}: items changed: {changed:?}");
            assert_eq!(balance_in(after, account), *balance, "{name}");
        }
        Effect::Paid { from, to, amount } => {
            let mut expected_changed = vec![format!("account|{from}"), format!("account|{to}")];
            expected_changed.sort();
            assert_eq!(changed, expected_changed, "{name}: items changed");
            assert_eq!(added.len(), 3, "{name}: items added: {added:?}");
            assert!(
                added
                    .iter()
                    .any(|k| k.starts_with(&format!("ledger|P#{from}|"))),
                "{name}: no payment record in {added:?}"
            );
            for account in [from, to] {
                assert!(
                    added
                        .iter()
                        .any(|k| k.starts_with(&format!("ledger|A#{account}|E#"))),
                    "{name}: no entry for {account} in {added:?}"
                );
            }
            assert_eq!(
                balance_in(after, from),
                balance_in(before, from) - amount,
                "{name}: sender"
            );
            assert_eq!(
                balance_in(after, to),
                balance_in(before, to) + amount,
                "{name}: recipient"
            );
        }
        Effect::Held { from, .. } => {
            assert_eq!(
                changed,
                vec![format!("account|{from}")],
                "{name}: items changed"
            );
            assert_eq!(added.len(), 1, "{name}: items added: {added:?}");
            assert!(
                added[0].starts_with(&format!("ledger|P#{from}|")),
                "{name}: no hold record in {added:?}"
            );
            assert_eq!(
                balance_in(after, from),
                balance_in(before, from),
                "{name}: a hold moves no money"
            );
        }
        Effect::Resharded { account, from, to } => {
            let key = |shard: u32| shard_key(account, shard);
            let mut new_shards: Vec<String> = (*from..*to).map(key).collect();
            new_shards.sort();
            let mut old_shards: Vec<String> = (0..*from).map(key).collect();
            old_shards.sort();
            assert_eq!(added, new_shards, "{name}: items added");
            assert_eq!(changed, old_shards, "{name}: items changed");
            let count = AttributeValue::N(to.to_string());
            for shard in 0..*to {
                assert_eq!(
                    after[&key(shard)].get("shards"),
                    Some(&count),
                    "{name}: shard {shard} has the new count"
                );
            }
            // No shard's version or balance changes: no money moves, and
            // no history sequence gets a gap.
            let state = |snapshot: &Snapshot, shard: u32| {
                let item = &snapshot[&key(shard)];
                (item.get("version").cloned(), item.get("balance").cloned())
            };
            for shard in 0..*from {
                assert_eq!(
                    state(after, shard),
                    state(before, shard),
                    "{name}: old shard {shard}"
                );
            }
            let empty = (
                Some(AttributeValue::N("0".into())),
                Some(AttributeValue::N("0".into())),
            );
            for shard in *from..*to {
                assert_eq!(state(after, shard), empty, "{name}: new shard {shard}");
            }
            assert_eq!(
                total_balance(after, account),
                total_balance(before, account),
                "{name}: a reshard moves no money"
            );
        }
    }
}

/// The key of an account's shard in a [`Snapshot`]: shard 0 is the
/// account's own item.
fn shard_key(account: &str, shard: u32) -> String {
    if shard == 0 {
        format!("account|{account}")
    } else {
        format!("account|{account}#{shard}")
    }
}

/// An account's balance over all its shards.
fn total_balance(snapshot: &Snapshot, account: &str) -> i64 {
    let shard_prefix = format!("account|{account}#");
    snapshot
        .iter()
        .filter(|(k, _)| **k == shard_key(account, 0) || k.starts_with(&shard_prefix))
        .map(|(k, item)| match item.get("balance") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().expect("balance is a number"),
            other => panic!("{k}: balance {other:?}"),
        })
        .sum()
}

/// The request message of a case: its message, or the first frame's.
fn request_message(name: &str, case: &Case) -> Vec<u8> {
    let framed = match &case.body {
        Body::Message(m) => return m.clone(),
        Body::Frames(f) | Body::Raw(f) => f,
    };
    let (messages, trailers) = parse_frames(framed);
    assert!(
        messages.len() == 1 && trailers.is_empty() && framed[0] == 0,
        "{name}: not one data frame"
    );
    messages[0].to_vec()
}

/// A watch of an ordinary account that ran its bound: the entries after
/// its resume token, oldest first, each with its own token, then the last
/// message with only the token after all of them.
fn check_watch_reply(name: &str, case: &Case, reply: &Reply, before: &Snapshot) {
    let asked =
        pb::WatchAccountRequest::decode(request_message(name, case).as_slice()).expect("request");
    let messages: Vec<pb::WatchAccountResponse> = reply
        .messages
        .iter()
        .map(|m| pb::WatchAccountResponse::decode(m.clone()).expect("WatchAccountResponse"))
        .collect();
    let (last, entries) = messages.split_last().expect("at least the last message");
    assert!(
        last.transaction.is_none(),
        "{name}: the last message is no entry"
    );
    let after =
        |sequence: u64| URL_SAFE_NO_PAD.encode(format!("w1|{}|{sequence}", asked.account_id));
    let newest = entries_in(before, &asked.account_id);
    let first = if asked.resume_token.is_empty() {
        newest + 1
    } else {
        1
    };
    assert_eq!(
        entries.len() as u64,
        newest + 1 - first,
        "{name}: every entry after the token"
    );
    for (entry, sequence) in entries.iter().zip(first..) {
        assert_eq!(entry.sequence as u64, sequence, "{name}: oldest first");
        assert!(entry.transaction.is_some(), "{name}: entry {sequence}");
        assert_eq!(entry.resume_token, after(sequence + 1), "{name}: its token");
    }
    assert_eq!(
        last.resume_token,
        after(newest + 1),
        "{name}: the last token"
    );
}

/// How many history entries an (unsharded) account has in a snapshot.
fn entries_in(snapshot: &Snapshot, account: &str) -> u64 {
    let prefix = format!("ledger|A#{account}|E#");
    snapshot.keys().filter(|k| k.starts_with(&prefix)).count() as u64
}

/// The replies of an OK case decode as the method's response, and say what
/// the tables (`before`, as the call found them) hold.
fn check_ok_reply(name: &str, case: &Case, effect: &Effect, reply: &Reply, before: &Snapshot) {
    let one = || {
        assert_eq!(reply.messages.len(), 1, "{name}: unary reply");
        reply.messages[0].clone()
    };
    match case.method {
        ADD => {
            let account = pb::AddAccountResponse::decode(one())
                .expect("AddAccountResponse")
                .account
                .expect("account");
            if let Effect::Opened {
                account: id,
                balance,
            } = effect
            {
                assert_eq!((&account.account_id, account.balance), (id, *balance));
            }
        }
        PAY => {
            let response = pb::MakePaymentResponse::decode(one()).expect("MakePaymentResponse");
            assert!(!response.replayed, "{name}: a new key replayed");
            if let Effect::Paid { from, to, amount } = effect {
                let tx = response.transaction.expect("transaction");
                assert_eq!(
                    (tx.sender_id.as_str(), tx.recipient_id.as_str(), tx.amount),
                    (*from, *to, *amount),
                    "{name}"
                );
            }
        }
        BALANCE => {
            let asked =
                pb::GetAccountBalanceRequest::decode(request_message(name, case).as_slice())
                    .expect("request");
            let account = pb::GetAccountBalanceResponse::decode(one())
                .expect("GetAccountBalanceResponse")
                .account
                .expect("account");
            assert_eq!(account.account_id, asked.account_id, "{name}: account id");
            assert_eq!(
                account.balance,
                balance_in(before, &asked.account_id),
                "{name}: balance"
            );
            assert_eq!(
                (
                    account.currency.as_str(),
                    account.display_name.as_str(),
                    account.owner.as_str()
                ),
                ("EUR", "fixture", TESTER),
                "{name}: account facts"
            );
        }
        HISTORY => check_history_reply(name, case, reply, before),
        WATCH => check_watch_reply(name, case, reply, before),
        AUTHORIZE => {
            let response =
                pb::AuthorizePaymentResponse::decode(one()).expect("AuthorizePaymentResponse");
            assert!(!response.replayed, "{name}: a new key replayed");
            let hold = response.hold.expect("hold");
            if let Effect::Held { from, to, amount } = effect {
                assert_eq!(
                    (
                        hold.sender_id.as_str(),
                        hold.recipient_id.as_str(),
                        hold.amount
                    ),
                    (*from, *to, *amount),
                    "{name}"
                );
            }
            assert_eq!(hold.state, pb::HoldState::Open as i32, "{name}: state");
        }
        LOOKUP => {
            let found = pb::GetPaymentResponse::decode(one()).expect("GetPaymentResponse");
            let tx = found.transaction.expect("transaction");
            assert_eq!(
                (tx.sender_id.as_str(), tx.recipient_id.as_str(), tx.amount),
                (A, B, 11),
                "{name}"
            );
            assert_eq!(found.idempotency_key, "fixture-1", "{name}");
        }
        LIST => {
            let listed = pb::ListAccountsResponse::decode(one()).expect("ListAccountsResponse");
            let ids: Vec<&str> = listed
                .accounts
                .iter()
                .map(|a| a.account_id.as_str())
                .collect();
            let mut expected: Vec<String> = before
                .keys()
                .filter_map(|k| k.strip_prefix("account|"))
                .filter(|k| !k.contains('#'))
                .map(str::to_owned)
                .collect();
            expected.sort();
            assert_eq!(ids, expected, "{name}: every account, by id");
            for account in &listed.accounts {
                assert_eq!(
                    account.balance,
                    balance_in(before, &account.account_id),
                    "{name}"
                );
                // The AuthorizePayment rows hold money of A and SINK.
                assert!(account.held >= 0, "{name}: held {}", account.held);
                assert_eq!(
                    account.available,
                    account.balance - account.held,
                    "{name}: available is what is not held"
                );
                if ![A, SINK].contains(&account.account_id.as_str()) {
                    assert_eq!(
                        account.held, 0,
                        "{name}: {} holds nothing",
                        account.account_id
                    );
                }
            }
        }
        SHARDS => {
            let asked = pb::SetBalanceShardsRequest::decode(request_message(name, case).as_slice())
                .expect("request");
            let response =
                pb::SetBalanceShardsResponse::decode(one()).expect("SetBalanceShardsResponse");
            assert_eq!(
                response.raised,
                matches!(effect, Effect::Resharded { .. }),
                "{name}: raised"
            );
            let account = response.account.expect("account");
            assert_eq!(
                (account.account_id.as_str(), account.balance_shards),
                (asked.account_id.as_str(), asked.balance_shards),
                "{name}: the account, with the count asked for"
            );
            assert_eq!(
                account.balance,
                total_balance(before, &asked.account_id),
                "{name}: the same money"
            );
        }
        other => panic!("{name}: OK from {other}"),
    }
}

/// A first page of history: the newest entries of the account, newest first,
/// gapless, as many as the page holds, balances that add up to the balance.
fn check_history_reply(name: &str, case: &Case, reply: &Reply, before: &Snapshot) {
    let asked = pb::GetTransactionHistoryRequest::decode(request_message(name, case).as_slice())
        .expect("request");
    let id = asked.account_id.as_str();
    let total = entries_in(before, id);
    assert!(total > 0, "{name}: {id} has no entries in the table");
    let page_size = match asked.page_size {
        0 => u64::from(payment::domain::PAGE_SIZE_DEFAULT),
        n => u64::try_from(n).expect("an OK page_size is positive"),
    };
    // Every OK history case reads from the newest entry: no token, or one
    // past every sequence (u64::MAX).
    let entries: Vec<pb::GetTransactionHistoryResponse> = reply
        .messages
        .iter()
        .map(|m| pb::GetTransactionHistoryResponse::decode(m.clone()).expect("history entry"))
        .collect();
    assert_eq!(
        entries.len() as u64,
        total.min(page_size),
        "{name}: entries on the page"
    );
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence as u64).collect();
    let want: Vec<u64> = (0..entries.len() as u64).map(|i| total - i).collect();
    assert_eq!(sequences, want, "{name}: newest first, without gaps");
    assert_eq!(
        entries[0].balance_after,
        balance_in(before, id),
        "{name}: the newest entry ends at the balance"
    );
    for (i, e) in entries.iter().enumerate() {
        let tx = e.transaction.as_ref().expect("transaction");
        assert_eq!(e.shard, 0, "{name}: an unsharded account");
        let signed = match pb::Direction::try_from(e.direction) {
            Ok(pb::Direction::Debit) => {
                assert_eq!(tx.sender_id, id, "{name}: a debit is sent by {id}");
                -tx.amount
            }
            Ok(pb::Direction::Credit) => {
                assert_eq!(tx.recipient_id, id, "{name}: a credit is received by {id}");
                tx.amount
            }
            other => panic!("{name}: direction {other:?}"),
        };
        assert!(tx.amount > 0, "{name}: amount {}", tx.amount);
        assert_eq!(tx.currency, "EUR", "{name}");
        if let Some(older) = entries.get(i + 1) {
            assert_eq!(
                older.balance_after,
                e.balance_after - signed,
                "{name}: entry {} follows from entry {}",
                e.sequence,
                older.sequence
            );
        } else if e.sequence == 1 {
            assert_eq!(
                e.balance_after, signed,
                "{name}: the first entry opens from zero"
            );
        }
        assert_eq!(
            e.next_page_token.is_empty(),
            e.sequence == 1,
            "{name}: a page token continues after entry {} unless it is the oldest",
            e.sequence
        );
    }
}

// ---------------------------------------------------------------------------
// Running the matrix.
// ---------------------------------------------------------------------------

/// Opens the fixture accounts directly on the ledger, owned by TESTER.
async fn seed(ledger: &Ledger) {
    use payment::domain::{NewAccount, PaymentOrder};
    for (id, balance, shards) in [
        (A.to_owned(), A_OPENING, 0),
        (B.to_owned(), 0, 0),
        (RICH.to_owned(), BALANCE_MAX_MINOR, 0),
        (SINK.to_owned(), 0, 0),
        (id128_existing(), 0, 0),
        (WIDE.to_owned(), 0, 0),
        (FOUR.to_owned(), 0, 4),
    ] {
        let new =
            NewAccount::parse(&id, "fixture", "EUR", balance, shards).expect("fixture account");
        ledger
            .add_account(&new, TESTER, false)
            .await
            .expect("open fixture");
    }
    for n in 0..FIXTURE_PAYMENTS {
        let order = PaymentOrder::parse(&format!("fixture-{n}"), A, B, 10 + n, "EUR", "")
            .expect("fixture payment");
        ledger
            .make_payment(
                &order,
                &Caller {
                    sub: TESTER.into(),
                    admin: true,
                },
            )
            .await
            .expect("fixture payment");
    }
}

/// A valid read through the same transport: the server still serves.
async fn still_serving(target: &Target, after: &str) {
    let probe = Case {
        name: "probe".into(),
        method: BALANCE,
        http: Http::Grpc,
        body: read(A),
        expect: ok(),
        only: &[],
    };
    let reply = target
        .request(outgoing(&probe, target.transport))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{}: not serving after {after}: {e}",
                target.transport.name()
            )
        });
    assert_eq!(
        (reply.http_status, reply.code()),
        (200, Some(Code::Ok)),
        "{}: not serving after {after}: {}",
        target.transport.name(),
        reply.message
    );
    let account = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .expect("balance")
        .account
        .expect("account");
    assert_eq!(account.account_id, A);
}

async fn run_matrix(transport: Transport) {
    let started = Instant::now();
    let target = Target::new(transport).await;
    seed(&target.ledger).await;
    let client = crate::local_dynamodb::client(shared_dynamodb());
    let all = cases();
    let applicable: Vec<&Case> = all.iter().filter(|c| c.applies_to(transport)).collect();
    assert!(
        applicable.len() >= 40,
        "{}: only {} cases",
        transport.name(),
        applicable.len()
    );
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for case in &applicable {
        let name = format!("{} / {}", transport.name(), case.name);
        let before = snapshot(&client, &target.ledger).await;
        let reply = target
            .request(outgoing(case, transport))
            .await
            .unwrap_or_else(|e| panic!("{name}: no reply: {e}"));
        if std::env::var_os("PAYMENT_MATRIX_VERBOSE").is_some() {
            eprintln!(
                "{name}: HTTP {} {:?} {:?}",
                reply.http_status,
                reply.code(),
                reply.message
            );
        }
        // Never a server error, whatever the input.
        assert!(
            reply.http_status < 500,
            "{name}: HTTP {} ({})",
            reply.http_status,
            reply.message
        );
        assert!(
            !matches!(reply.code(), Some(Code::Internal | Code::Unknown)),
            "{name}: {:?} {}",
            reply.code(),
            reply.message
        );
        let label = match &case.expect {
            Expect::Http4xx => {
                assert!(
                    (400..500).contains(&reply.http_status),
                    "{name}: expected an HTTP 4xx, got HTTP {} with {:?} {}",
                    reply.http_status,
                    reply.code(),
                    reply.message
                );
                assert_eq!(reply.code(), None, "{name}: a gRPC status on a 4xx");
                "HTTP 4xx".to_owned()
            }
            Expect::Status(code, needle) => {
                assert_eq!(reply.http_status, 200, "{name}: HTTP status");
                assert_eq!(
                    reply.code(),
                    Some(*code),
                    "{name}: message {:?}",
                    reply.message
                );
                // Validation and framing errors explain themselves; tonic's
                // UNIMPLEMENTED for an unknown path has no message.
                assert!(
                    needle.is_empty() || !reply.message.is_empty(),
                    "{name}: no grpc-message"
                );
                assert!(
                    reply.message.contains(needle),
                    "{name}: message {:?} does not name {needle:?}",
                    reply.message
                );
                assert!(reply.messages.is_empty(), "{name}: data with an error");
                format!("{code:?}")
            }
            Expect::Ok(effect) => {
                assert_eq!(
                    (reply.http_status, reply.code()),
                    (200, Some(Code::Ok)),
                    "{name}: message {:?}",
                    reply.message
                );
                check_ok_reply(&name, case, effect, &reply, &before);
                "OK".to_owned()
            }
        };
        *counts.entry(label).or_default() += 1;
        let after = snapshot(&client, &target.ledger).await;
        let effect = match &case.expect {
            Expect::Ok(effect) => effect.clone(),
            _ => Effect::Nothing,
        };
        check_effect(&name, &effect, &before, &after);
        still_serving(&target, &case.name).await;
    }
    let report = target.ledger.audit(2, &|_, _| {}).await.expect("audit");
    assert!(
        report.is_clean(),
        "{}: {:?}",
        transport.name(),
        report.discrepancies
    );
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    eprintln!(
        "matrix [{}]: {} cases in {:.1?}: {}",
        transport.name(),
        applicable.len(),
        started.elapsed(),
        summary.join(", ")
    );
    if let Some(app) = target.app {
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_input_matrix_native_grpc() {
    run_matrix(Transport::Native).await;
}

#[tokio::test]
async fn bad_input_matrix_grpc_web_binary() {
    run_matrix(Transport::WebBinary).await;
}

#[tokio::test]
async fn bad_input_matrix_grpc_web_text() {
    run_matrix(Transport::WebText).await;
}

#[tokio::test]
async fn bad_input_matrix_lambda_binary() {
    run_matrix(Transport::LambdaBinary).await;
}

#[tokio::test]
async fn bad_input_matrix_lambda_text() {
    run_matrix(Transport::LambdaText).await;
}

/// The table itself: unique names and enough cases on every transport;
/// the generated framing, size, wire-type and garbage rows for every method
/// of the contract (`pb::METHODS`), on every transport; and OK rows that
/// write (open an account, pay, hold) use distinct account ids and
/// idempotency keys, so that each writes once per transport on fresh tables.
#[test]
fn the_matrix_is_well_formed() {
    let all = cases();
    let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate case names");
    for t in Transport::ALL {
        let n = all.iter().filter(|c| c.applies_to(t)).count();
        assert!(n >= 40, "{}: {n} cases", t.name());
    }
    // Every method whose request is one message has every generated row,
    // on every transport (the text-only rows on the text transports).
    let guarded: Vec<&pb::Method> = pb::METHODS.iter().filter(|m| !m.client_streaming).collect();
    assert_eq!(
        guarded.len(),
        pb::METHODS.len(),
        "a client-streaming method: decide its rows"
    );
    for method in &guarded {
        for kind in EVERY_METHOD_ROWS.iter().chain(&EVERY_METHOD_TEXT_ROWS) {
            let name = format!("{}: {kind}", method.name);
            let row = all
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("no row {name:?}"));
            assert_eq!(path_of(row.method), method.path, "{name}");
            for t in Transport::ALL {
                let wanted = !EVERY_METHOD_TEXT_ROWS.contains(kind) || t.text();
                assert_eq!(row.applies_to(t), wanted, "{name} on {}", t.name());
            }
            assert!(
                matches!(&row.expect, Expect::Status(code, _) if matches!(code, Code::InvalidArgument | Code::ResourceExhausted | Code::Unimplemented)),
                "{name}: a refusal"
            );
        }
    }
    // OK rows that write use distinct account ids and keys.
    let mut opened = Vec::new();
    let mut keys = Vec::new();
    let mut raised = Vec::new();
    for c in &all {
        match &c.expect {
            Expect::Ok(Effect::Opened { account, .. }) => opened.push(account.clone()),
            Expect::Ok(Effect::Resharded { account, .. }) => {
                assert_eq!(c.method, SHARDS, "{}: a reshard by {}", c.name, c.method);
                raised.push(*account);
            }
            Expect::Ok(Effect::Paid { .. } | Effect::Held { .. }) => {
                let message = request_message(&c.name, c);
                let (sender, key) = match c.method {
                    PAY => {
                        let r =
                            pb::MakePaymentRequest::decode(message.as_slice()).expect("payment");
                        (r.sender_id, r.idempotency_key)
                    }
                    AUTHORIZE => {
                        let r =
                            pb::AuthorizePaymentRequest::decode(message.as_slice()).expect("hold");
                        (r.sender_id, r.idempotency_key)
                    }
                    other => panic!("{}: a write by {other}", c.name),
                };
                keys.push((sender, key));
            }
            _ => {}
        }
    }
    let mut unique = opened.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        opened.len(),
        "account ids opened twice: {opened:?}"
    );
    let mut unique_keys = keys.clone();
    unique_keys.sort();
    unique_keys.dedup();
    assert_eq!(unique_keys.len(), keys.len(), "keys used twice: {keys:?}");
    let mut unique_raised = raised.clone();
    unique_raised.sort();
    unique_raised.dedup();
    assert_eq!(
        unique_raised.len(),
        raised.len(),
        "accounts resharded twice: {raised:?}"
    );
    // AuthorizePayment and SetBalanceShards have OK rows at their limits,
    // as the other writes do.
    for name in [
        "AuthorizePayment expires_in_seconds 60",
        "AuthorizePayment expires_in_seconds 30 days",
        "AuthorizePayment amount 10^15",
    ] {
        assert!(
            all.iter()
                .any(|c| c.name == name && matches!(c.expect, Expect::Ok(Effect::Held { .. }))),
            "no OK row {name:?}"
        );
    }
    assert!(
        all.iter()
            .any(|c| c.name == "SetBalanceShards balance_shards 64"
                && matches!(c.expect, Expect::Ok(Effect::Resharded { to: 64, .. }))),
        "no OK row raising to 64 shards"
    );
}
