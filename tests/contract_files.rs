//! events/ and the fuzz seeds in fuzz/corpus/, generated from the contract:
//! one generator, and a test that fails when the committed files are not
//! exactly what it writes.
//!
//! The generator walks `pb::METHODS` (build.rs reads it from the proto): the
//! path of every event and the path byte of every `grpc_web_body` seed come
//! from it, as does the kind byte of every `validation` message seed; the
//! requests are the generated prost messages, framed by the tests' one
//! gRPC-Web helper (tests/api/helpers/grpc_web.rs). Every method must have an
//! event in [`story`]; a method with no seed of its own in [`body_seeds`] or
//! [`validation_seeds`] gets one from the request of its first event. So a
//! method added to the proto fails this test until the story has an event
//! for it, and then has its event and seeds.
//!
//! After changing the story, a seed or the proto:
//!
//! ```sh
//! WRITE_CONTRACT_FILES=1 cargo test --test contract_files
//! ```
//!
//! writes every file (and removes the ones it no longer writes, except the
//! `regression-*` seeds of fixed bugs, which are kept as committed).

#[path = "api/helpers/grpc_web.rs"]
#[allow(dead_code)]
mod grpc_web;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use grpc_web::{frame, frame_flagged};
use payment::pb;
use prost::Message;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The variable that makes the test write the files instead of checking them.
const WRITE: &str = "WRITE_CONTRACT_FILES";
/// The directories the generator owns, relative to the repository.
const EVENTS: &str = "events";
const CORPUS: &str = "fuzz/corpus";
/// Seeds kept as committed: inputs of bugs that were found and fixed.
const REGRESSION_PREFIX: &str = "regression-";

#[test]
fn events_and_fuzz_seeds_are_what_the_contract_generates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = generate();
    let owned = owned_files(root, &generated);
    if std::env::var_os(WRITE).is_some_and(|v| v == "1") {
        for path in owned.keys().filter(|p| !generated.contains_key(*p)) {
            std::fs::remove_file(root.join(path)).expect("remove a stale file");
        }
        for (path, bytes) in &generated {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
            std::fs::write(&path, bytes).expect("write a generated file");
        }
        return;
    }
    let mut wrong = Vec::new();
    for (path, bytes) in &generated {
        match owned.get(path) {
            None => wrong.push(format!("{} is missing", path.display())),
            Some(committed) if committed != bytes => {
                wrong.push(format!("{} differs", path.display()))
            }
            Some(_) => {}
        }
    }
    for path in owned.keys().filter(|p| !generated.contains_key(*p)) {
        wrong.push(format!("{} is not generated", path.display()));
    }
    assert!(
        wrong.is_empty(),
        "events/ and fuzz/corpus/ are not what tests/contract_files.rs generates \
         ({WRITE}=1 cargo test --test contract_files writes them):\n  {}",
        wrong.join("\n  ")
    );
}

/// The committed files of the directories the generator writes into, by
/// path relative to the repository (regression seeds left out).
fn owned_files(root: &Path, generated: &Files) -> Files {
    let mut dirs: Vec<PathBuf> = generated
        .keys()
        .map(|p| p.parent().expect("a directory").to_owned())
        .collect();
    dirs.dedup();
    let mut files = Files::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().into_string().expect("a UTF-8 name");
            if name.starts_with(REGRESSION_PREFIX) || !entry.path().is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path()).expect("a committed file");
            files.insert(dir.join(name), bytes);
        }
    }
    files
}

type Files = BTreeMap<PathBuf, Vec<u8>>;

/// Every file the generator writes, by path relative to the repository.
fn generate() -> Files {
    let story = story();
    for method in pb::METHODS {
        assert!(
            story.iter().any(|e| e.method == method.name),
            "no event for {} in story() in tests/contract_files.rs: add one, \
             then run {WRITE}=1 cargo test --test contract_files",
            method.name
        );
    }
    let mut files = Files::new();
    let mut add = |dir: &str, name: &str, bytes: Vec<u8>| {
        let path = Path::new(dir).join(name);
        assert!(files.insert(path, bytes).is_none(), "{dir}/{name} twice");
    };
    for event in &story {
        add(EVENTS, &format!("{}.json", event.name), event.file());
    }
    add(EVENTS, "cors-preflight.json", preflight_file());
    for (name, bytes) in event_seeds(&story) {
        add(&format!("{CORPUS}/grpc_web_event"), &name, bytes);
    }
    for (name, bytes) in body_seeds(&story) {
        add(&format!("{CORPUS}/grpc_web_body"), &name, bytes);
    }
    for (name, text) in page_token_seeds() {
        add(&format!("{CORPUS}/page_token"), name, text.into_bytes());
    }
    for (name, bytes) in validation_seeds(&story) {
        add(&format!("{CORPUS}/validation"), &name, bytes);
    }
    for (name, bytes) in token_verification_seeds() {
        add(&format!("{CORPUS}/token_verification"), name, bytes);
    }
    files
}

// ---------------------------------------------------------------------------
// Methods of the contract.
// ---------------------------------------------------------------------------

fn method(name: &str) -> &'static pb::Method {
    pb::METHODS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not a method of the contract"))
}

/// The position of a method in the contract (`pb::METHODS`, in the order
/// of the proto).
fn position(name: &str) -> usize {
    pb::METHODS
        .iter()
        .position(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not a method of the contract"))
}

/// `CaptureHold` as `capture-hold`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

// ---------------------------------------------------------------------------
// JSON with its keys in the order written (serde_json sorts a Value's).
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Json {
    Object(Vec<(String, Json)>),
    Value(Value),
}

impl Json {
    fn get_mut(&mut self, key: &str) -> &mut Json {
        let Json::Object(pairs) = self else {
            panic!("{key}: not an object")
        };
        &mut pairs
            .iter_mut()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no {key}"))
            .1
    }
    fn at(&mut self, path: &[&str]) -> &mut Json {
        path.iter().fold(self, |json, key| json.get_mut(key))
    }
    /// Replaces `key`'s value where it is, or adds it at the end.
    fn set(&mut self, key: &str, value: impl Into<Json>) {
        let Json::Object(pairs) = self else {
            panic!("{key}: not an object")
        };
        let value = value.into();
        match pairs.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => pairs.push((key.to_owned(), value)),
        }
    }
    fn remove(&mut self, key: &str) {
        let Json::Object(pairs) = self else {
            panic!("{key}: not an object")
        };
        pairs.retain(|(k, _)| k != key);
    }
}

impl<T: Into<Value>> From<T> for Json {
    fn from(value: T) -> Json {
        Json::Value(value.into())
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Value(v) => v.serialize(serializer),
            Json::Object(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

fn object(pairs: Vec<(&str, Json)>) -> Json {
    Json::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// Indented JSON, `indent` spaces a level.
fn pretty(json: &Json, indent: usize) -> Vec<u8> {
    let spaces = " ".repeat(indent);
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(spaces.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    json.serialize(&mut serializer).expect("JSON");
    out
}

/// Compact JSON.
fn compact(json: &Json) -> String {
    serde_json::to_string(json).expect("JSON")
}

// ---------------------------------------------------------------------------
// events/: API Gateway HTTP API (payload 2.0) events with gRPC-Web bodies.
// ---------------------------------------------------------------------------

/// One event of the story: a call of `method` by `sub`.
struct Event {
    name: &'static str,
    method: &'static str,
    request: Vec<u8>,
    sub: &'static str,
    scope: &'static str,
    text: bool,
}

impl Event {
    fn json(&self) -> Json {
        let path = method(self.method).path;
        let content_type = if self.text {
            "application/grpc-web-text"
        } else {
            "application/grpc-web+proto"
        };
        let mut body = frame(&self.request);
        if self.text {
            // grpc-web-text: the body is base64 text, and API Gateway hands
            // the function its bytes base64-encoded once more.
            body = grpc_web::text_body(&body);
        }
        let mut claims = object(vec![
            ("sub", self.sub.into()),
            (
                "iss",
                "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE".into(),
            ),
            ("client_id", "example-client".into()),
            ("token_use", "access".into()),
            ("exp", "4102444800".into()),
        ]);
        let scopes = if self.scope.is_empty() {
            Value::Null
        } else {
            claims.set("scope", self.scope);
            self.scope.split_whitespace().collect::<Vec<_>>().into()
        };
        let route = "POST /payment.v1.PaymentService/{method}";
        object(vec![
            ("version", "2.0".into()),
            ("routeKey", route.into()),
            ("rawPath", path.into()),
            ("rawQueryString", "".into()),
            (
                "headers",
                object(vec![
                    ("accept", content_type.into()),
                    ("content-type", content_type.into()),
                    ("host", HOST.into()),
                    ("origin", "http://localhost:5173".into()),
                    ("x-grpc-web", "1".into()),
                    ("x-user-agent", "grpc-web-javascript/0.1".into()),
                    (
                        "authorization",
                        "Bearer <checked by the API Gateway JWT authorizer>".into(),
                    ),
                ]),
            ),
            (
                "requestContext",
                request_context(
                    "POST",
                    path,
                    &format!("example-{}", self.method),
                    route,
                    Some(object(vec![(
                        "jwt",
                        object(vec![("claims", claims), ("scopes", scopes.into())]),
                    )])),
                ),
            ),
            (
                "pathParameters",
                object(vec![("method", self.method.into())]),
            ),
            ("body", B64.encode(body).into()),
            ("isBase64Encoded", true.into()),
        ])
    }

    fn file(&self) -> Vec<u8> {
        let mut out = pretty(&self.json(), 2);
        out.push(b'\n');
        out
    }
}

const HOST: &str = "abcdef1234.execute-api.us-east-1.amazonaws.com";

fn request_context(
    http_method: &str,
    path: &str,
    request_id: &str,
    route: &str,
    authorizer: Option<Json>,
) -> Json {
    let mut pairs = vec![
        ("accountId", "123456789012".into()),
        ("apiId", "abcdef1234".into()),
    ];
    if let Some(authorizer) = authorizer {
        pairs.push(("authorizer", authorizer));
    }
    pairs.extend([
        ("domainName", HOST.into()),
        ("domainPrefix", "abcdef1234".into()),
        (
            "http",
            object(vec![
                ("method", http_method.into()),
                ("path", path.into()),
                ("protocol", "HTTP/1.1".into()),
                ("sourceIp", "192.0.2.10".into()),
                ("userAgent", "example".into()),
            ]),
        ),
        ("requestId", request_id.into()),
        ("routeKey", route.into()),
        ("stage", "$default".into()),
        ("time", "25/Nov/2026:08:00:00 +0000".into()),
        ("timeEpoch", 1_795_680_000_000_u64.into()),
    ]);
    object(pairs)
}

/// events/cors-preflight.json.
fn preflight_file() -> Vec<u8> {
    let mut out = pretty(&preflight(), 2);
    out.push(b'\n');
    out
}

/// A CORS preflight of MakePayment.
fn preflight() -> Json {
    let path = method("MakePayment").path;
    object(vec![
        ("version", "2.0".into()),
        ("routeKey", "$default".into()),
        ("rawPath", path.into()),
        ("rawQueryString", "".into()),
        (
            "headers",
            object(vec![
                (
                    "access-control-request-headers",
                    "authorization,content-type,x-grpc-web,x-user-agent".into(),
                ),
                ("access-control-request-method", "POST".into()),
                ("host", HOST.into()),
                ("origin", "http://localhost:5173".into()),
            ]),
        ),
        (
            "requestContext",
            request_context("OPTIONS", path, "example-preflight", "$default", None),
        ),
        ("isBase64Encoded", false.into()),
    ])
}

fn by_key(sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        sender_id: sender.into(),
        idempotency_key: key.into(),
        ..Default::default()
    })
}

fn add_account(id: &str, name: &str, initial_balance: i64) -> Vec<u8> {
    pb::AddAccountRequest {
        account_id: id.into(),
        display_name: name.into(),
        currency: "EUR".into(),
        initial_balance,
        ..Default::default()
    }
    .encode_to_vec()
}

fn make_payment(key: &str, sender: &str, recipient: &str, amount: i64, memo: &str) -> Vec<u8> {
    pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: sender.into(),
        recipient_id: recipient.into(),
        amount,
        currency: "EUR".into(),
        memo: memo.into(),
    }
    .encode_to_vec()
}

fn authorize(key: &str, amount: i64, memo: &str) -> Vec<u8> {
    pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: "alice".into(),
        recipient_id: "bob".into(),
        amount,
        currency: "EUR".into(),
        memo: memo.into(),
        expires_in_seconds: 3600,
    }
    .encode_to_vec()
}

fn balance(id: &str) -> Vec<u8> {
    pb::GetAccountBalanceRequest {
        account_id: id.into(),
    }
    .encode_to_vec()
}

fn history(id: &str, page_size: i32, page_token: &str) -> Vec<u8> {
    pb::GetTransactionHistoryRequest {
        account_id: id.into(),
        page_size,
        page_token: page_token.into(),
    }
    .encode_to_vec()
}

fn capture(sender: &str, key: &str, amount: i64) -> Vec<u8> {
    pb::CaptureHoldRequest {
        hold: by_key(sender, key),
        amount,
    }
    .encode_to_vec()
}

fn void(hold: Option<pb::PaymentRef>) -> Vec<u8> {
    pb::VoidHoldRequest { hold }.encode_to_vec()
}

fn refund() -> Vec<u8> {
    pb::RefundPaymentRequest {
        idempotency_key: "event-refund-1".into(),
        payment: by_key("alice", "event-payment-1"),
        amount: 234,
        memo: "sorry".into(),
    }
    .encode_to_vec()
}

fn lookup(finalize: bool) -> Vec<u8> {
    pb::GetPaymentRequest {
        payment: by_key("alice", "event-payment-1"),
        finalize,
    }
    .encode_to_vec()
}

fn list(page_size: i32, owner: &str) -> Vec<u8> {
    pb::ListAccountsRequest {
        page_size,
        owner: owner.into(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn set_shards(id: &str, balance_shards: i32) -> Vec<u8> {
    pb::SetBalanceShardsRequest {
        account_id: id.into(),
        balance_shards,
    }
    .encode_to_vec()
}

fn watch(id: &str, resume_token: &str, max_seconds: i32) -> Vec<u8> {
    pb::WatchAccountRequest {
        account_id: id.into(),
        resume_token: resume_token.into(),
        max_seconds,
    }
    .encode_to_vec()
}

/// The events, at least one per method. Invoked in the order of the
/// methods in the proto (file names break ties), they tell one story that
/// succeeds from end to end on empty tables (tests/api/lambda.rs runs it):
/// alice and bob open accounts, alice pays bob, places two holds for him,
/// bob captures part of one and voids the other, refunds part of the
/// payment, the payment (also with finalize, for its final answer) and
/// bob's accounts are looked up, an admin raises alice's balance shards,
/// and alice watches her account from its first entry (a long poll behind
/// API Gateway: it ends at once with every entry so far).
fn story() -> Vec<Event> {
    let event = |name, method, request, sub| Event {
        name,
        method,
        request,
        sub,
        scope: "",
        text: false,
    };
    let admin = |e: Event| Event {
        scope: "payments/admin",
        ..e
    };
    let text = |e: Event| Event { text: true, ..e };
    vec![
        // An admin opens alice's account with 100.00 EUR (an opening
        // balance creates money).
        admin(event(
            "add-account-alice",
            "AddAccount",
            add_account("alice", "Alice", 10000),
            "alice",
        )),
        event(
            "add-account-bob",
            "AddAccount",
            add_account("bob", "Bob", 0),
            "bob",
        ),
        event(
            "make-payment",
            "MakePayment",
            make_payment("event-payment-1", "alice", "bob", 1234, "lunch"),
            "alice",
        ),
        event(
            "get-account-balance",
            "GetAccountBalance",
            balance("alice"),
            "alice",
        ),
        text(event(
            "get-account-balance-text",
            "GetAccountBalance",
            balance("bob"),
            "bob",
        )),
        event(
            "get-transaction-history",
            "GetTransactionHistory",
            history("alice", 10, ""),
            "alice",
        ),
        text(event(
            "get-transaction-history-text",
            "GetTransactionHistory",
            history("bob", 0, ""),
            "bob",
        )),
        // alice holds 5.00 for bob (captured below) and 2.00 (voided
        // below), for an hour.
        event(
            "authorize-payment",
            "AuthorizePayment",
            authorize("event-hold-1", 500, "deposit"),
            "alice",
        ),
        event(
            "authorize-payment-to-void",
            "AuthorizePayment",
            authorize("event-hold-2", 200, ""),
            "alice",
        ),
        // bob, the recipient, captures 3.00 of the first hold and voids the
        // second.
        event(
            "capture-hold",
            "CaptureHold",
            capture("alice", "event-hold-1", 300),
            "bob",
        ),
        event(
            "void-hold",
            "VoidHold",
            void(by_key("alice", "event-hold-2")),
            "bob",
        ),
        // bob refunds 2.34 of alice's payment.
        event("refund-payment", "RefundPayment", refund(), "bob"),
        event("get-payment", "GetPayment", lookup(false), "alice"),
        // The final answer for the payment's key (finalize): it committed,
        // so that is the answer, and nothing is fenced.
        event("get-payment-finalize", "GetPayment", lookup(true), "alice"),
        event("list-accounts", "ListAccounts", list(0, ""), "bob"),
        text(event(
            "list-accounts-text",
            "ListAccounts",
            list(10, ""),
            "alice",
        )),
        // An admin raises alice's balance shards from 1 to 4: her money
        // stays, over more shards.
        admin(event(
            "set-balance-shards",
            "SetBalanceShards",
            set_shards("alice", 4),
            "alice",
        )),
        event(
            "watch-account",
            "WatchAccount",
            watch("alice", &URL_SAFE_NO_PAD.encode("w1|alice|1"), 5),
            "alice",
        ),
    ]
}

/// The request of a method's first event: its seed when it has none of
/// its own.
fn first_request<'a>(story: &'a [Event], method: &str) -> &'a [u8] {
    &story
        .iter()
        .find(|e| e.method == method)
        .expect("every method has an event")
        .request
}

// ---------------------------------------------------------------------------
// Seed requests (fuzz/corpus).
// ---------------------------------------------------------------------------

/// The page token of (alice, 42).
fn token_alice_42() -> String {
    URL_SAFE_NO_PAD.encode("v1|alice|42")
}

fn seed_history() -> Vec<u8> {
    history("alice", 10, &token_alice_42())
}

fn seed_void() -> Vec<u8> {
    void(by_key("alice", "event-hold-1"))
}

const BAD_WIRE_TYPE: &[u8] = &[0x0f, 0x01];
const BAD_UTF8: &[u8] = &[0x0a, 0x02, 0xff, 0xfe];

// ---------------------------------------------------------------------------
// grpc_web_event: the events and variants of make-payment.
// ---------------------------------------------------------------------------

fn event_seeds(story: &[Event]) -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = story
        .iter()
        .map(|e| (format!("{}.json", e.name), e.file()))
        .collect();
    seeds.push(("cors-preflight.json".into(), preflight_file()));
    let base = story
        .iter()
        .find(|e| e.name == "make-payment")
        .expect("the make-payment event")
        .json();
    let balance_path = method("GetAccountBalance").path;
    let mut variant = |name: &str, change: &dyn Fn(&mut Json)| {
        let mut e = base.clone();
        change(&mut e);
        seeds.push((name.to_owned(), pretty(&e, 1)));
    };
    let body = |e: &mut Json, body: &[u8]| {
        e.set("body", B64.encode(body));
        e.set("isBase64Encoded", true);
    };
    let headers = |e: &mut Json, pairs: &[(&str, &str)]| {
        for (k, v) in pairs {
            e.get_mut("headers").set(k, *v);
        }
    };
    let path = |e: &mut Json, path: &str| {
        e.set("rawPath", path);
        e.at(&["requestContext", "http"]).set("path", path);
    };
    let balance_frame = frame(&balance("alice"));
    variant("variant-reply-shapes.json", &|e| {
        headers(
            e,
            &[
                ("x-fuzz-response", "2"),
                ("x-fuzz-echo-request", "make-payment"),
            ],
        )
    });
    variant("variant-text-in-binary-out.json", &|e| {
        body(e, &grpc_web::text_body(&balance_frame));
        headers(
            e,
            &[
                ("content-type", "application/grpc-web-text"),
                ("accept", "application/grpc-web+proto"),
                ("x-fuzz-response", "3"),
            ],
        );
        path(e, balance_path);
    });
    variant("variant-text-body-not-base64-encoded.json", &|e| {
        e.set("body", B64.encode(&balance_frame));
        e.set("isBase64Encoded", false);
        headers(
            e,
            &[
                ("content-type", "application/grpc-web-text+proto"),
                ("accept", "application/grpc-web-text+proto"),
            ],
        );
        path(e, balance_path);
    });
    variant("variant-no-authorizer.json", &|e| {
        e.get_mut("requestContext").remove("authorizer")
    });
    variant("variant-get.json", &|e| {
        e.at(&["requestContext", "http"]).set("method", "GET")
    });
    variant("variant-truncated-frame.json", &|e| {
        let mut framed = frame(first_request(story, "MakePayment"));
        framed.truncate(framed.len() - 3);
        body(e, &framed);
    });
    variant("variant-unknown-method.json", &|e| {
        body(e, &frame(BAD_WIRE_TYPE));
        path(e, "/payment.v1.PaymentService/Refund");
    });
    variant("variant-native-grpc-on-http1.json", &|e| {
        headers(e, &[("content-type", "application/grpc")]);
        e.get_mut("headers").remove("accept");
    });
    variant("variant-text-plain.json", &|e| {
        headers(e, &[("content-type", "text/plain")])
    });
    variant("variant-admin-scope.json", &|e| {
        headers(e, &[("x-fuzz-echo-1", "a"), ("x-fuzz-echo-2", "b")]);
        e.at(&["requestContext", "authorizer", "jwt", "claims"])
            .set("scope", "openid payments/admin");
    });
    // Events lambda_http 1.3 panicked on while converting them (the
    // function now converts events itself and answers each with HTTP 400):
    // a host that is no valid URL host, a raw query string with characters
    // a URI may not hold, a body flagged base64 that is not.
    variant("upstream-panic-host.json", &|e| {
        headers(e, &[("host", "exa mple.com")])
    });
    variant("upstream-panic-query.json", &|e| {
        e.set("rawQueryString", "a b")
    });
    variant("upstream-panic-base64-body.json", &|e| {
        e.set("body", "not base64!")
    });
    seeds
}

// ---------------------------------------------------------------------------
// grpc_web_body: a selector byte, a path byte, then a body (see
// fuzz/fuzz_targets/grpc_web_body.rs).
// ---------------------------------------------------------------------------

/// The content types of the selector's low bits.
#[derive(Clone, Copy)]
enum ContentType {
    Web = 0,
    WebProto = 1,
    WebText = 2,
    Grpc = 3,
}

/// The paths of the target that are not methods of the contract, by their
/// path byte; the methods of `pb::METHODS` follow them.
const UNKNOWN: u8 = 0;
const OTHER_SERVICE: u8 = 1;
const BARE_PREFIX: u8 = 2;
const EXTRA_SEGMENT: u8 = 3;
const OTHER_PATHS: u8 = 4;

/// The path byte of a method of the contract.
fn path_byte(name: &str) -> u8 {
    OTHER_PATHS + u8::try_from(position(name)).expect("at most 252 methods")
}

/// The first two bytes of a seed: content type, reply shape and HTTP/2,
/// then the path.
fn selector(content_type: ContentType, path: u8, shape: u8, http2: bool) -> Vec<u8> {
    vec![
        content_type as u8 | shape << 5 | if http2 { 0x80 } else { 0 },
        path,
    ]
}

#[rustfmt::skip]
fn body_seeds(story: &[Event]) -> Vec<(String, Vec<u8>)> {
    use ContentType::*;
    let p = path_byte;
    let sel = |ct, path, shape| selector(ct, path, shape, false);
    let text = |message: &[u8]| grpc_web::text_body(&frame(message));
    let pay = make_payment("event-payment-1", "alice", "bob", 1234, "lunch");
    let get_balance = balance("alice");
    let seeds: Vec<(&str, &str, Vec<u8>, Vec<u8>)> = vec![
        // name, the method whose request it is (or ""), selector, body
        ("add-account", "AddAccount", sel(WebProto, p("AddAccount"), 0), frame(&add_account("alice", "Alice", 10000))),
        ("make-payment", "MakePayment", sel(Web, p("MakePayment"), 0), frame(&pay)),
        ("get-balance", "GetAccountBalance", sel(WebProto, p("GetAccountBalance"), 1), frame(&get_balance)),
        ("get-history", "GetTransactionHistory", sel(WebProto, p("GetTransactionHistory"), 3), frame(&seed_history())),
        ("text-add-account", "AddAccount", sel(WebText, p("AddAccount"), 0), text(&add_account("alice", "Alice", 10000))),
        ("authorize-payment", "AuthorizePayment", sel(WebProto, p("AuthorizePayment"), 0), frame(&authorize("event-hold-1", 500, "deposit"))),
        ("capture-hold", "CaptureHold", sel(WebProto, p("CaptureHold"), 1), frame(&capture("alice", "event-hold-1", 300))),
        ("void-hold", "VoidHold", sel(Web, p("VoidHold"), 0), frame(&seed_void())),
        ("refund-payment", "RefundPayment", sel(WebProto, p("RefundPayment"), 0), frame(&refund())),
        ("get-payment", "GetPayment", selector(Grpc, p("GetPayment"), 0, true), frame(&lookup(false))),
        ("text-list-accounts", "ListAccounts", sel(WebText, p("ListAccounts"), 3), text(&list(10, "alice"))),
        ("capture-hold-bad-wire-type", "", sel(WebProto, p("CaptureHold"), 0), frame(&[0x0b])),
        ("list-accounts-empty", "", sel(WebProto, p("ListAccounts"), 0), vec![]),
        ("set-balance-shards", "SetBalanceShards", sel(WebProto, p("SetBalanceShards"), 1), frame(&set_shards("alice", 4))),
        ("text-padding-inside", "", sel(WebText, p("GetAccountBalance"), 0), [text(&[]), text(&get_balance)].concat()),
        ("text-not-base64", "", sel(WebText, p("GetAccountBalance"), 0), b"AAAA*AAA".to_vec()),
        ("text-ragged", "", sel(WebText, p("GetAccountBalance"), 0), { let mut t = text(&get_balance); t.pop(); t }),
        ("native-grpc-http2", "", selector(Grpc, p("MakePayment"), 2, true), frame(&pay)),
        ("native-grpc-http1", "", sel(Grpc, p("MakePayment"), 0), frame(&pay)),
        ("empty", "", sel(WebProto, p("MakePayment"), 0), vec![]),
        ("short-header", "", sel(WebProto, p("MakePayment"), 0), vec![0, 0, 0]),
        ("compressed", "", sel(WebProto, p("MakePayment"), 0), frame_flagged(1, &pay)),
        ("trailers-flag", "", sel(WebProto, p("MakePayment"), 0), frame_flagged(grpc_web::TRAILERS_FLAG, b"grpc-status:0\r\n")),
        ("truncated", "", sel(WebProto, p("MakePayment"), 0), { let mut f = frame(&pay); f.pop(); f }),
        ("two-frames", "", sel(WebProto, p("GetAccountBalance"), 0), frame(&get_balance).repeat(2)),
        ("bad-wire-type", "", sel(WebProto, p("GetTransactionHistory"), 0), frame(BAD_WIRE_TYPE)),
        ("bad-utf8", "", sel(WebProto, p("GetAccountBalance"), 0), frame(BAD_UTF8)),
        ("unknown-method", "", sel(WebProto, UNKNOWN, 2), frame(BAD_WIRE_TYPE)),
        ("other-service", "", sel(WebProto, OTHER_SERVICE, 0), frame(&[])),
        ("bare-prefix", "", sel(WebProto, BARE_PREFIX, 0), frame(&[])),
        ("extra-segment", "", sel(WebProto, EXTRA_SEGMENT, 0), frame(BAD_WIRE_TYPE)),
        // One byte over the guard's limit (REQUEST_BYTES_MAX, 16 KiB): a
        // payment whose memo fills it, then zero bytes.
        ("over-the-limit", "", sel(WebProto, p("MakePayment"), 0), over_the_limit()),
    ];
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for method in pb::METHODS {
        if !seeds.iter().any(|(_, m, _, _)| *m == method.name) {
            let body = frame(first_request(story, method.name));
            out.push((kebab(method.name), [sel(WebProto, p(method.name), 0), body].concat()));
        }
    }
    out.extend(seeds.into_iter().map(|(name, _, selector, body)| (name.to_owned(), [selector, body].concat())));
    out
}

/// A MakePayment frame one byte over the guard's 16 KiB: idempotency key
/// "alice", a memo of 'm's, then zero bytes.
fn over_the_limit() -> Vec<u8> {
    const LIMIT: usize = 16 * 1024;
    let big = pb::MakePaymentRequest {
        idempotency_key: "alice".into(),
        memo: "m".repeat(LIMIT - 16),
        ..Default::default()
    }
    .encode_to_vec();
    let padding = vec![0; LIMIT - 4 - big.len()];
    frame(&[big, padding].concat())
}

// ---------------------------------------------------------------------------
// page_token: `<mode><account>\n<token>\n<page_size>\n<sequence>` lines.
// ---------------------------------------------------------------------------

fn page_token_seeds() -> Vec<(&'static str, String)> {
    let token = |plain: &str| URL_SAFE_NO_PAD.encode(plain);
    let valid = token("v1|alice|42");
    let long_id = format!("{}@", "a".repeat(127));
    vec![
        ("plain-valid", "palice\nv1|alice|42\n10\n42".into()),
        ("raw-valid", format!("ralice\n{valid}\n0\n7")),
        ("raw-empty-token", "ralice\n\n1000\n2".into()),
        ("raw-foreign", format!("rbob\n{valid}\n5")),
        ("raw-padded", format!("ralice\n{valid}==\n5")),
        ("raw-not-base64", "ralice\n!!!\n-1".into()),
        ("raw-standard-alphabet", "ralice\n+/+/\n1001".into()),
        ("plain-sequence-1", "palice\nv1|alice|1\n\n1".into()),
        ("plain-leading-zero", "palice\nv1|alice|042".into()),
        ("plain-plus", "palice\nv1|alice|+42".into()),
        ("plain-version-2", "palice\nv2|alice|3".into()),
        (
            "plain-max",
            "palice\nv1|alice|18446744073709551615\n\n18446744073709551615".into(),
        ),
        (
            "plain-overflow",
            "palice\nv1|alice|18446744073709551616".into(),
        ),
        ("plain-extra-part", "palice\nv1|alice|3|4".into()),
        ("plain-bad-account", "palice\nv1|al ice|3".into()),
        (
            "plain-longest",
            format!("p{long_id}\nv1|{long_id}|18446744073709551615\n1000\n18446744073709551615"),
        ),
        // WatchAccount's resume tokens, on the same skeleton.
        ("plain-watch-valid", "palice\nw1|alice|5".into()),
        ("plain-watch-sharded", "palice\nw1|alice|5.1.1.1".into()),
        ("plain-watch-cursor-0", "palice\nw1|alice|5.0".into()),
        ("plain-watch-foreign", "pbob\nw1|alice|5".into()),
    ]
}

// ---------------------------------------------------------------------------
// validation: inputs encoded the way the `arbitrary` crate (1.x) decodes
// fuzz/fuzz_targets/validation.rs's `Input` (`cargo fuzz fmt validation
// <seed>` prints what one decodes to).
// ---------------------------------------------------------------------------

/// The variants of `Input`, in their order.
const VARIANTS: [&str; 6] = [
    "NewAccount",
    "Payment",
    "History",
    "GrpcTimeout",
    "Money",
    "Message",
];

/// A field of an `Input` variant.
enum Field {
    /// A string or bytes: a length, then its bytes.
    Sized(Vec<u8>),
    /// An integer, little-endian.
    Fixed(Vec<u8>),
}

fn s(value: &str) -> Field {
    Field::Sized(value.as_bytes().to_vec())
}
fn i64_(value: i64) -> Field {
    Field::Fixed(value.to_le_bytes().to_vec())
}
fn i32_(value: i32) -> Field {
    Field::Fixed(value.to_le_bytes().to_vec())
}

/// How many bytes `arbitrary` reads for a length when `remaining` bytes remain.
fn size_bytes(remaining: usize) -> usize {
    match remaining {
        0..=1 => 0,
        2..=0x100 => 1,
        0x101..=0x10001 => 2,
        _ => 4,
    }
}

/// An `Input` of this variant. The last field takes the rest of the input.
/// A sized field's length is read from the end of what remains, big-endian
/// over 1, 2 or 4 bytes depending on how much remains, and taken modulo
/// (remaining - size bytes + 1); everything else is read from the front,
/// integers little-endian. The derive picks the variant as
/// `(u32 * count) >> 32`, so the tag aims at the middle of its bucket.
fn arbitrary_input(variant: &str, mut fields: Vec<Field>) -> Vec<u8> {
    let index = VARIANTS
        .iter()
        .position(|v| *v == variant)
        .expect("a variant") as u64;
    let tag = u32::try_from(((2 * index + 1) << 32) / (2 * VARIANTS.len() as u64)).expect("u32");
    let last = match fields.pop().expect("a field") {
        Field::Sized(v) | Field::Fixed(v) => v,
    };
    let front = fields;
    let len = |f: &Field| match f {
        Field::Sized(v) | Field::Fixed(v) => v.len(),
    };
    // Guess the width of each length, then check it against what remains.
    let mut widths: Vec<usize> = front
        .iter()
        .map(|f| usize::from(matches!(f, Field::Sized(_))))
        .collect();
    let mut total = 0;
    for _ in 0..4 {
        total =
            4 + front.iter().map(len).sum::<usize>() + last.len() + widths.iter().sum::<usize>();
        let mut remaining = total - 4;
        let mut new = Vec::new();
        for field in &front {
            match field {
                Field::Sized(v) => {
                    new.push(size_bytes(remaining));
                    remaining -= new.last().expect("pushed") + v.len();
                }
                Field::Fixed(v) => {
                    new.push(0);
                    remaining -= v.len();
                }
            }
        }
        if new == widths {
            break;
        }
        widths = new;
    }
    let mut body = tag.to_le_bytes().to_vec();
    let mut back = Vec::new();
    let mut remaining = total - 4;
    for (field, width) in front.iter().zip(&widths) {
        match field {
            Field::Sized(v) => {
                let max_size = remaining - width;
                assert!(v.len() <= max_size, "a field longer than what remains");
                if *width > 0 {
                    // Only as many of the bytes as the range needs are read.
                    let needed = (usize::BITS - max_size.leading_zeros()).div_ceil(8) as usize;
                    let used = (*width).min(needed.max(1));
                    let length = v.len().to_be_bytes();
                    let mut bytes = length[length.len() - used..].to_vec();
                    bytes.resize(*width, 0);
                    back.push(bytes);
                }
                remaining -= width + v.len();
                body.extend_from_slice(v);
            }
            Field::Fixed(v) => {
                remaining -= v.len();
                body.extend_from_slice(v);
            }
        }
    }
    body.extend_from_slice(&last);
    for bytes in back.iter().rev() {
        body.extend_from_slice(bytes);
    }
    body
}

#[rustfmt::skip]
fn validation_seeds(story: &[Event]) -> Vec<(String, Vec<u8>)> {
    let token = |plain: &str| URL_SAFE_NO_PAD.encode(plain);
    let input = arbitrary_input;
    let mut seeds: Vec<(String, Vec<u8>)> = vec![
        ("new-account", input("NewAccount", vec![s("alice"), s("Alice"), s("EUR"), i64_(10000)])),
        (
            "new-account-limits",
            input(
                "NewAccount",
                vec![s(&format!("{}@", "a".repeat(127))), s(&"é".repeat(128)), s("KWD"), i64_(10_i64.pow(15))],
            ),
        ),
        ("new-account-control", input("NewAccount", vec![s("bob"), s("Bob\x07"), s("EUR"), i64_(0)])),
        ("payment", input("Payment", vec![s("key-1"), s("alice"), s("bob"), i64_(1234), s("EUR"), s("lunch")])),
        ("payment-self", input("Payment", vec![s("k"), s("alice"), s("alice"), i64_(1), s("JPY"), s("tab\tnl\n")])),
        ("payment-max", input("Payment", vec![s("k"), s("a"), s("b"), i64_(10_i64.pow(15) + 1), s("EUR"), s("")])),
        ("history", input("History", vec![s("alice"), i32_(10), s(&token("v1|alice|42"))])),
        ("history-default", input("History", vec![s("alice"), i32_(0), s("")])),
        ("history-too-big", input("History", vec![s("alice"), i32_(1001), s(&token("v1|alice|1"))])),
    ]
    .into_iter()
    .map(|(name, bytes)| (name.to_owned(), bytes))
    .collect();
    for value in ["5S", "100m", "99999999H", "123456789S", "1.5S", "5s"] {
        seeds.push((
            format!("timeout-{}", value.replace('.', "_")),
            input("GrpcTimeout", vec![s(value)]),
        ));
    }
    seeds.extend(
        [
            ("money-eur", input("Money", vec![s("EUR"), i64_(1234), s("12.34")])),
            ("money-jpy", input("Money", vec![s("JPY"), i64_(500), s("500.")])),
            ("money-clf", input("Money", vec![s("CLF"), i64_(-1), s(" 0.0001 ")])),
            (
                "money-overflow",
                input("Money", vec![s("KWD"), i64_(i64::MAX), s("9223372036854775.808")]),
            ),
            ("money-bad-currency", input("Money", vec![s("eur"), i64_(5), s("1,5")])),
        ]
        .map(|(name, bytes)| (name.to_owned(), bytes)),
    );
    // A request message: the kind byte picks the method, in the order of
    // the contract.
    let message = |method: &str, request: &[u8]| {
        let kind = u8::try_from(position(method)).expect("at most 256 methods");
        input("Message", vec![Field::Fixed(vec![kind]), Field::Sized(request.to_vec())])
    };
    let largest_payment = pb::MakePaymentRequest {
        idempotency_key: "k".repeat(128),
        sender_id: "s".repeat(128),
        recipient_id: "r".repeat(128),
        amount: 10_i64.pow(15),
        currency: "EUR".into(),
        memo: "m".repeat(256),
    }
    .encode_to_vec();
    let void_by_id = void(Some(pb::PaymentRef {
        transaction_id: "hold-1".into(),
        ..Default::default()
    }));
    let messages: Vec<(&str, &str, Vec<u8>)> = vec![
        ("message-add-account", "AddAccount", add_account("alice", "Alice", 10000)),
        ("message-make-payment", "MakePayment", make_payment("event-payment-1", "alice", "bob", 1234, "lunch")),
        ("message-get-balance", "GetAccountBalance", balance("alice")),
        ("message-get-history", "GetTransactionHistory", seed_history()),
        ("message-bad-utf8", "GetAccountBalance", BAD_UTF8.to_vec()),
        ("message-authorize-payment", "AuthorizePayment", authorize("event-hold-1", 500, "deposit")),
        ("message-capture-hold", "CaptureHold", capture("alice", "event-hold-1", 300)),
        ("message-void-hold-by-id", "VoidHold", void_by_id),
        ("message-refund-payment", "RefundPayment", refund()),
        ("message-get-payment", "GetPayment", lookup(false)),
        ("message-list-accounts", "ListAccounts", list(10, "alice")),
        ("message-set-balance-shards", "SetBalanceShards", set_shards("alice", 4)),
        ("message-set-balance-shards-65", "SetBalanceShards", set_shards("alice", 65)),
        ("message-largest-payment", "MakePayment", largest_payment),
    ];
    for method in pb::METHODS {
        if !messages.iter().any(|(_, m, _)| *m == method.name) {
            let name = format!("message-{}", kebab(method.name));
            seeds.push((name, message(method.name, first_request(story, method.name))));
        }
    }
    for (name, method, request) in &messages {
        seeds.push(((*name).to_owned(), message(method, request)));
    }
    seeds
}

// ---------------------------------------------------------------------------
// token_verification: a mode byte, then `<header JSON>\n<claims JSON>`, or
// `x` and a raw token.
// ---------------------------------------------------------------------------

fn token_verification_seeds() -> Vec<(&'static str, Vec<u8>)> {
    const ISSUER: &str = "https://issuer.example.com";
    const AUDIENCE: &str = "payments";
    const FAR_FUTURE: u64 = 4_102_444_800; // 2100-01-01
    let claims = |pairs: Vec<(&str, Json)>| object(pairs);
    let ok = claims(vec![
        ("iss", ISSUER.into()),
        ("aud", AUDIENCE.into()),
        ("sub", "alice".into()),
        ("exp", FAR_FUTURE.into()),
    ]);
    let cognito = claims(vec![
        ("iss", ISSUER.into()),
        ("client_id", AUDIENCE.into()),
        ("token_use", "access".into()),
        ("sub", "alice".into()),
        ("exp", FAR_FUTURE.into()),
        ("scope", "openid payments/admin".into()),
    ]);
    let with = |base: &Json, key: &str, value: Json| {
        let mut out = base.clone();
        out.set(key, value);
        out
    };
    let without = |base: &Json, key: &str| {
        let mut out = base.clone();
        out.remove(key);
        out
    };
    let header = |alg: &str, kid: Option<&str>, typ: bool| {
        let mut pairs = vec![("alg", alg.into())];
        if typ {
            pairs.push(("typ", "JWT".into()));
        }
        if let Some(kid) = kid {
            pairs.push(("kid", kid.into()));
        }
        object(pairs)
    };
    let hs = header("HS256", None, true);
    let rs = header("RS256", Some("rsa"), false);
    let es = header("ES256", Some("ec"), false);
    let seed = |mode: &str, header: &Json, claims: String| {
        format!("{mode}{}\n{claims}", compact(header)).into_bytes()
    };
    let signed = |mode: &str, header: &Json, claims: &Json| seed(mode, header, compact(claims));
    vec![
        ("hs256-ok", signed("h", &hs, &ok)),
        ("hs256-cognito-access", signed("h", &hs, &cognito)),
        (
            "hs256-cognito-id-token",
            signed(
                "h",
                &hs,
                &with(
                    &with(&cognito, "token_use", "id".into()),
                    "aud",
                    AUDIENCE.into(),
                ),
            ),
        ),
        (
            "hs256-aud-list",
            signed("h", &hs, &with(&ok, "aud", vec!["other", AUDIENCE].into())),
        ),
        (
            "hs256-nbf-future",
            signed("h", &hs, &with(&ok, "nbf", FAR_FUTURE.into())),
        ),
        (
            "hs256-nbf-past",
            signed("h", &hs, &with(&ok, "nbf", 1.into())),
        ),
        (
            "hs256-expired",
            signed("h", &hs, &with(&ok, "exp", 1.into())),
        ),
        (
            "hs256-wrong-issuer",
            signed(
                "h",
                &hs,
                &with(&ok, "iss", "https://other.example.com".into()),
            ),
        ),
        ("hs256-no-sub", signed("h", &hs, &without(&ok, "sub"))),
        (
            "hs256-control-sub",
            signed("h", &hs, &with(&ok, "sub", "a\u{0}b".into())),
        ),
        (
            "hs256-kid-of-rsa",
            signed("h", &header("HS256", Some("rsa"), false), &ok),
        ),
        ("hs256-not-json", seed("h", &hs, "{\"sub\":".into())),
        ("rs256-ok", signed("r", &rs, &ok)),
        ("rs256-cognito-access", signed("r", &rs, &cognito)),
        (
            "rs256-kid-of-ec",
            signed("r", &header("RS256", Some("ec"), false), &ok),
        ),
        (
            "rs256-unknown-kid",
            signed("r", &header("RS256", Some("rotated"), false), &ok),
        ),
        ("es256-ok", signed("e", &es, &ok)),
        (
            "es256-no-kid",
            signed("e", &header("ES256", None, false), &ok),
        ),
        (
            "free-alg-none",
            b"xeyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.".to_vec(),
        ),
        ("free-three-parts", b"xa.b.c".to_vec()),
    ]
}
