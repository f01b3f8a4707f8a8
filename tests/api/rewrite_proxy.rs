//! A loopback HTTP proxy in front of DynamoDB Local that answers chosen
//! TransactWriteItems requests itself, the way DynamoDB answers when it
//! cancels a transaction, and passes every other request through unchanged.
//!
//! DynamoDB Local rarely produces TransactionConflict, never throttles, and
//! gives ValidationError only for a request that is really wrong, so this is
//! how the tests make a ledger meet each reason on purpose. A test arms the proxy with a
//! [`Fault`] for the next N TransactWriteItems, or for every one until it
//! disarms it. A rewritten request never reaches DynamoDB Local: like a
//! cancelled transaction, it writes nothing.
//!
//! It can also hold one TransactWriteItems ([`RewriteProxy::arm_hold`]) and
//! deliver it to DynamoDB Local only when the test says
//! ([`RewriteProxy::deliver_held`]), long after its caller gave up: a write
//! that was on the wire when its call was cut off, and lands late.
//!
//! The SDK speaks HTTP/1.1 with JSON bodies; the operation is named by the
//! `X-Amz-Target` header. The tests at the bottom check, with the SDK
//! itself, that a rewritten answer parses as the error it imitates.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};

/// The `X-Amz-Target` of the requests the proxy may rewrite.
pub const TRANSACT_WRITE_ITEMS: &str = "DynamoDB_20120810.TransactWriteItems";

/// Largest request or reply body the proxy reads (DynamoDB's own request
/// limit is 16 MB; a transaction is at most 4 MB).
const BODY_MAX: usize = 16 * 1024 * 1024;

/// How long [`RewriteProxy::arm_race`] holds the first write's reply while
/// waiting for the second write; past it the reply goes out anyway and the
/// race is marked as not met.
const RACE_WAIT_MAX: Duration = Duration::from_secs(10);

/// Which items of a cancelled transaction carry the fault's code; every
/// other item gets `None`, as DynamoDB reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    First,
    Last,
    Index(usize),
    All,
}

impl At {
    fn covers(self, i: usize, items: usize) -> bool {
        match self {
            At::First => i == 0,
            At::Last => i + 1 == items,
            At::Index(k) => i == k,
            At::All => true,
        }
    }
}

/// The answer the proxy gives instead of DynamoDB's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 400 TransactionCanceledException with one reason per item of
    /// the request: `code` at `at`, `None` elsewhere.
    Cancel { code: &'static str, at: At },
    /// HTTP 400 TransactionInProgressException.
    InProgress,
}

/// How many TransactWriteItems requests an armed fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The next n, then the proxy passes everything through again.
    Next(usize),
    /// Every one, until [`RewriteProxy::disarm`].
    Every,
}

/// A race between two writes, staged by [`RewriteProxy::arm_race`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Race {
    Off,
    /// The next write goes to DynamoDB, and its reply waits for the second.
    WaitingForFirst {
        at: At,
    },
    /// The first write is in flight (its reply held); the next write is
    /// answered with TransactionConflict on `at`.
    FirstInFlight {
        at: At,
    },
}

#[derive(Debug)]
struct Rules {
    fault: Option<(Fault, Times)>,
    /// Whether the next TransactWriteItems is held (see
    /// [`RewriteProxy::arm_hold`]).
    hold_next: bool,
    race: Race,
    /// Released when the second write of a race has been answered.
    race_release: Arc<Notify>,
    /// Whether the last race's second write came before its first reply.
    race_met: bool,
    /// TransactWriteItems answered by the proxy, and passed through.
    rewritten: usize,
    forwarded_writes: usize,
    /// One line per rewritten request: how many items, which reasons.
    log: Vec<String>,
}

struct Shared {
    upstream: String,
    client: HttpClient<HttpConnector, Full<Bytes>>,
    rules: Mutex<Rules>,
    /// The write being held, taken out by [`RewriteProxy::deliver_held`]:
    /// it stays here whether or not its caller still waits.
    held: Mutex<Option<Held>>,
    /// Whether a write is being held (for [`RewriteProxy::held`]).
    holding: watch::Sender<bool>,
}

/// A held TransactWriteItems: the request as it came, and where its reply
/// goes if its caller still waits for it.
struct Held {
    parts: http::request::Parts,
    body: Bytes,
    reply: oneshot::Sender<Response>,
}

/// What DynamoDB answered a held write once it was delivered.
#[derive(Debug)]
pub struct Delivered {
    pub status: u16,
    pub body: Value,
}

impl Delivered {
    /// The cancellation reasons of a cancelled transaction (empty for any
    /// other answer), each as DynamoDB sent it (`Code`, and `Item` when the
    /// request asked for the old item).
    pub fn cancellation_reasons(&self) -> Vec<Value> {
        self.body
            .get("CancellationReasons")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

/// What one TransactWriteItems request gets.
enum Action {
    Forward,
    Answer(Fault),
    /// Forwarded; its reply waits until the race's second write came.
    ForwardAndHold(Arc<Notify>),
    /// Answered with a conflict, then the held first reply is let go.
    AnswerAndRelease(Fault, Arc<Notify>),
    /// Not forwarded until [`RewriteProxy::deliver_held`].
    Hold,
}

/// The proxy: listens on 127.0.0.1 on a free port until dropped.
pub struct RewriteProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl RewriteProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:port`),
    /// passing everything through until armed.
    pub async fn start(upstream: &str) -> RewriteProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = HttpClient::builder(TokioExecutor::new()).build(connector);
        let shared = Arc::new(Shared {
            upstream,
            client,
            rules: Mutex::new(Rules {
                fault: None,
                hold_next: false,
                race: Race::Off,
                race_release: Arc::new(Notify::new()),
                race_met: false,
                rewritten: 0,
                forwarded_writes: 0,
                log: Vec::new(),
            }),
            held: Mutex::new(None),
            holding: watch::channel(false).0,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        // Small replies on a kept-alive connection: without NODELAY a reply
        // can wait out the client's delayed ACK.
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|socket| {
            let _ = socket.set_nodelay(true);
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RewriteProxy { url, shared, task }
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.shared.rules.lock().expect("proxy rules")
    }

    /// Answers the next TransactWriteItems requests (`times`) with `fault`,
    /// replacing whatever was armed, and resets the counts.
    pub fn arm(&self, fault: Fault, times: Times) {
        let mut rules = self.rules();
        rules.fault = Some((fault, times));
        rules.rewritten = 0;
        rules.forwarded_writes = 0;
        rules.log.clear();
    }

    /// Stages a race: the next TransactWriteItems goes to DynamoDB but its
    /// reply is held until another TransactWriteItems arrives; that second
    /// one is answered with TransactionConflict on `at` (what DynamoDB
    /// answers a transaction that meets one in progress on the same item),
    /// then the first reply goes out. Later writes pass through.
    pub fn arm_race(&self, at: At) {
        let mut rules = self.rules();
        rules.fault = None;
        rules.race = Race::WaitingForFirst { at };
        rules.race_release = Arc::new(Notify::new());
        rules.race_met = false;
        rules.rewritten = 0;
        rules.forwarded_writes = 0;
        rules.log.clear();
    }

    /// Holds the next TransactWriteItems: it is not sent to DynamoDB Local
    /// until [`Self::deliver_held`], however long that takes and whether or
    /// not its caller still waits. Other requests pass meanwhile.
    pub fn arm_hold(&self) {
        self.rules().hold_next = true;
    }

    /// Waits until a write is held and returns its body, as the SDK sent
    /// it; panics after `within` (a hang detector: the write never came).
    pub async fn held(&self, within: Duration) -> String {
        let mut holding = self.shared.holding.subscribe();
        tokio::time::timeout(within, holding.wait_for(|h| *h))
            .await
            .unwrap_or_else(|_| panic!("no TransactWriteItems was held within {within:?}"))
            .expect("proxy");
        let held = self.shared.held.lock().expect("held write");
        let held = held.as_ref().expect("a held write");
        String::from_utf8_lossy(&held.body).into_owned()
    }

    /// Whether a write is held and not yet delivered.
    pub fn holding(&self) -> bool {
        *self.shared.holding.borrow()
    }

    /// Sends the held write to DynamoDB Local now, hands DynamoDB's reply to
    /// its caller if that still waits, and returns the reply. Panics when
    /// no write is held.
    pub async fn deliver_held(&self) -> Delivered {
        let held = self
            .shared
            .held
            .lock()
            .expect("held write")
            .take()
            .expect("a held write to deliver");
        self.shared.holding.send_replace(false);
        self.rules().forwarded_writes += 1;
        let reply = forward(&self.shared, held.parts, held.body).await;
        let (parts, body) = reply.into_parts();
        let body = axum::body::to_bytes(body, BODY_MAX)
            .await
            .expect("DynamoDB's reply to the held write");
        let mut copy = Response::builder().status(parts.status);
        for (name, value) in &parts.headers {
            copy = copy.header(name, value);
        }
        // Gone when its caller gave up (the call was cut off): fine.
        let _ = held
            .reply
            .send(copy.body(Body::from(body.clone())).expect("response"));
        Delivered {
            status: parts.status.as_u16(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// Passes everything through from now on.
    pub fn disarm(&self) {
        let mut rules = self.rules();
        rules.fault = None;
        rules.hold_next = false;
        rules.race = Race::Off;
        rules.race_release.notify_one();
    }

    /// TransactWriteItems answered by the proxy since it was last armed.
    pub fn rewritten(&self) -> usize {
        self.rules().rewritten
    }

    /// TransactWriteItems passed to DynamoDB since the proxy was last armed.
    pub fn forwarded_writes(&self) -> usize {
        self.rules().forwarded_writes
    }

    /// What the proxy answered since it was last armed, one line a request.
    pub fn log(&self) -> Vec<String> {
        self.rules().log.clone()
    }

    /// Whether the last race was met: its second write arrived while the
    /// first write's reply was held.
    pub fn race_met(&self) -> bool {
        self.rules().race_met
    }
}

impl Drop for RewriteProxy {
    fn drop(&mut self) {
        self.disarm();
        self.task.abort();
    }
}

impl Rules {
    /// What the next TransactWriteItems gets; counts it.
    fn decide(&mut self) -> Action {
        if self.hold_next {
            self.hold_next = false;
            return Action::Hold;
        }
        match self.race {
            Race::WaitingForFirst { at } => {
                self.race = Race::FirstInFlight { at };
                self.forwarded_writes += 1;
                return Action::ForwardAndHold(self.race_release.clone());
            }
            Race::FirstInFlight { at } => {
                self.race = Race::Off;
                self.race_met = true;
                self.rewritten += 1;
                return Action::AnswerAndRelease(
                    Fault::Cancel {
                        code: "TransactionConflict",
                        at,
                    },
                    self.race_release.clone(),
                );
            }
            Race::Off => {}
        }
        match self.fault {
            Some((fault, Times::Every)) => {
                self.rewritten += 1;
                Action::Answer(fault)
            }
            Some((fault, Times::Next(n))) if n > 0 => {
                self.fault = (n > 1).then_some((fault, Times::Next(n - 1)));
                self.rewritten += 1;
                Action::Answer(fault)
            }
            _ => {
                self.fault = None;
                self.forwarded_writes += 1;
                Action::Forward
            }
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_MAX).await {
        Ok(body) => body,
        Err(err) => return bad_gateway(format!("proxy: reading the request: {err}")),
    };
    let is_write = parts
        .headers
        .get("x-amz-target")
        .is_some_and(|t| t.as_bytes() == TRANSACT_WRITE_ITEMS.as_bytes());
    if !is_write {
        return forward(&shared, parts, body).await;
    }
    let action = shared.rules.lock().expect("proxy rules").decide();
    match action {
        Action::Forward => forward(&shared, parts, body).await,
        Action::Answer(fault) => answer(&shared, fault, &body),
        Action::ForwardAndHold(release) => {
            let reply = forward(&shared, parts, body).await;
            if tokio::time::timeout(RACE_WAIT_MAX, release.notified())
                .await
                .is_err()
            {
                let mut rules = shared.rules.lock().expect("proxy rules");
                rules.race = Race::Off;
                rules.fault = None;
                rules
                    .log
                    .push(format!("race: no second write within {RACE_WAIT_MAX:?}"));
            }
            reply
        }
        Action::AnswerAndRelease(fault, release) => {
            let reply = answer(&shared, fault, &body);
            release.notify_one();
            reply
        }
        Action::Hold => {
            let (reply, replied) = oneshot::channel();
            *shared.held.lock().expect("held write") = Some(Held { parts, body, reply });
            shared.holding.send_replace(true);
            // If the caller gives up first, this future is dropped and the
            // write stays held.
            replied
                .await
                .unwrap_or_else(|_| bad_gateway("proxy: the held write was dropped".into()))
        }
    }
}

/// The proxy's own answer to a TransactWriteItems, as DynamoDB words it.
fn answer(shared: &Shared, fault: Fault, body: &[u8]) -> Response {
    let items = transact_items(body);
    let (error_type, payload, line) = match fault {
        Fault::Cancel { code, at } => {
            let codes: Vec<&str> = (0..items)
                .map(|i| if at.covers(i, items) { code } else { "None" })
                .collect();
            let reasons: Vec<Value> = codes
                .iter()
                .map(|&c| match c {
                    "None" => json!({ "Code": "None" }),
                    c => json!({ "Code": c, "Message": reason_message(c) }),
                })
                .collect();
            let message = format!(
                "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                codes.join(", ")
            );
            (
                "TransactionCanceledException",
                json!({
                    "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                    "Message": message,
                    "CancellationReasons": reasons,
                }),
                format!("cancelled {items} items: {codes:?}"),
            )
        }
        Fault::InProgress => (
            "TransactionInProgressException",
            json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionInProgressException",
                "Message": "Transaction is in progress",
            }),
            format!("in progress ({items} items)"),
        ),
    };
    shared.rules.lock().expect("proxy rules").log.push(line);
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
        .header(
            "x-amzn-errortype",
            format!("com.amazonaws.dynamodb.v20120810#{error_type}"),
        )
        .body(Body::from(payload.to_string()))
        .expect("response")
}

/// The number of items in a TransactWriteItems request body.
fn transact_items(body: &[u8]) -> usize {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("TransactItems")?.as_array().map(Vec::len))
        .unwrap_or(0)
}

/// DynamoDB's words for each reason it gives.
fn reason_message(code: &str) -> &'static str {
    match code {
        "TransactionConflict" => "Transaction is ongoing for the item",
        "ThrottlingError" => {
            "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically scaling your table or index so please try again shortly."
        }
        "ValidationError" => "One or more parameter values were invalid: Type mismatch for key",
        "ConditionalCheckFailed" => "The conditional request failed",
        _ => "A reason this proxy made up",
    }
}

/// Sends the request on to DynamoDB Local as it came, and its reply back.
async fn forward(shared: &Shared, parts: http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        // The body is sent whole: hyper sets its length.
        if !is_framing(name) {
            builder = builder.header(name, value);
        }
    }
    let request = match builder.body(Full::new(body)) {
        Ok(request) => request,
        Err(err) => return bad_gateway(format!("proxy: building the request: {err}")),
    };
    let reply = match shared.client.request(request).await {
        Ok(reply) => reply,
        Err(err) => return bad_gateway(format!("proxy: DynamoDB Local: {err}")),
    };
    let (parts, body) = reply.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return bad_gateway(format!("proxy: reading DynamoDB's reply: {err}")),
    };
    let mut response = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        if !is_framing(name) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(body)).expect("response")
}

fn is_framing(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

fn bad_gateway(message: String) -> Response {
    Response::builder()
        .status(502)
        .body(Body::from(message))
        .expect("response")
}

// The proxy's own tests: the SDK reads each rewritten answer as the error it
// imitates, with the codes set, and everything else passes through.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};

/// A table with a string key `pk`, made through `client`. On a cold
/// DynamoDB Local the first attempt can outlast the SDK's 3 s attempt
/// timeout and its retry finds the table made: that is fine.
async fn scratch_table(client: &aws_sdk_dynamodb::Client) -> String {
    let table = format!("t-{}-proxy", uuid::Uuid::new_v4().simple());
    let made = client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| e.into_service_error());
    match made {
        Ok(_) => {}
        Err(e) if e.is_resource_in_use_exception() => {}
        Err(e) => panic!("create table through the proxy: {e:?}"),
    }
    table
}

/// One TransactWriteItems putting an item per id.
async fn put_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    ids: &[&str],
) -> Result<(), TransactWriteItemsError> {
    let items = ids
        .iter()
        .map(|id| {
            let put = Put::builder()
                .table_name(table)
                .item("pk", AttributeValue::S((*id).to_owned()))
                .build()
                .expect("put");
            TransactWriteItem::builder().put(put).build()
        })
        .collect();
    client
        .transact_write_items()
        .set_transact_items(Some(items))
        .client_request_token(uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .map(drop)
        .map_err(|e| e.into_service_error())
}

/// The reason codes of a cancelled transaction; panics on any other error.
#[track_caller]
fn cancellation_codes(result: Result<(), TransactWriteItemsError>) -> Vec<String> {
    match result {
        Err(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
            assert!(
                cancelled
                    .message()
                    .unwrap_or_default()
                    .starts_with("Transaction cancelled, please refer cancellation reasons"),
                "{cancelled:?}"
            );
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|r| {
                    let code = r.code().unwrap_or("<no code>").to_owned();
                    if code != "None" {
                        assert!(r.message().is_some(), "{code} without a message: {r:?}");
                    }
                    code
                })
                .collect()
        }
        other => panic!("expected TransactionCanceledException, got {other:?}"),
    }
}

async fn exists(client: &aws_sdk_dynamodb::Client, table: &str, id: &str) -> bool {
    client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(id.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem through the proxy")
        .item()
        .is_some()
}

#[tokio::test]
async fn rewritten_writes_parse_as_the_sdk_errors_they_imitate_and_the_rest_passes_through() {
    let proxy = RewriteProxy::start(crate::harness::shared_dynamodb()).await;
    let client = crate::local_dynamodb::client(&proxy.url);
    let table = scratch_table(&client).await;

    // A conflict on the last item, once: one reason per item, in order, and
    // nothing written.
    proxy.arm(
        Fault::Cancel {
            code: "TransactionConflict",
            at: At::Last,
        },
        Times::Next(1),
    );
    let codes = cancellation_codes(put_all(&client, &table, &["a", "b", "c"]).await);
    assert_eq!(codes, ["None", "None", "TransactionConflict"]);
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (1, 0));
    assert!(
        !exists(&client, &table, "a").await,
        "a rewritten write wrote"
    );
    // Spent: the same write now reaches DynamoDB Local and commits.
    put_all(&client, &table, &["a", "b", "c"])
        .await
        .expect("passes through");
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (1, 1));
    assert!(exists(&client, &table, "c").await);

    // Every write until disarmed, on every item; reads pass meanwhile.
    proxy.arm(
        Fault::Cancel {
            code: "ThrottlingError",
            at: At::All,
        },
        Times::Every,
    );
    for _ in 0..3 {
        let codes = cancellation_codes(put_all(&client, &table, &["d", "e"]).await);
        assert_eq!(codes, ["ThrottlingError", "ThrottlingError"]);
        assert!(exists(&client, &table, "a").await, "a read was not passed");
    }
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (3, 0));
    proxy.disarm();
    put_all(&client, &table, &["d", "e"])
        .await
        .expect("passes once disarmed");
    assert!(exists(&client, &table, "e").await);

    // The next two, at a chosen item, with a code the SDK does not know.
    proxy.arm(
        Fault::Cancel {
            code: "SomethingNew",
            at: At::Index(1),
        },
        Times::Next(2),
    );
    for _ in 0..2 {
        let codes = cancellation_codes(put_all(&client, &table, &["f", "g", "h"]).await);
        assert_eq!(codes, ["None", "SomethingNew", "None"]);
    }
    put_all(&client, &table, &["f", "g", "h"])
        .await
        .expect("the third passes");
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (2, 1));
    assert_eq!(proxy.log().len(), 2, "{:?}", proxy.log());

    // A transaction in progress: the SDK itself retries it (with the same
    // ClientRequestToken), so one such answer never reaches the caller...
    proxy.arm(Fault::InProgress, Times::Next(1));
    put_all(&client, &table, &["i"])
        .await
        .expect("the SDK's retry passes");
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (1, 1));
    assert!(exists(&client, &table, "i").await);
    // ...and the caller sees it only when every attempt of the SDK got it.
    let attempts = payment::config::DYNAMODB_ATTEMPTS_MAX as usize;
    proxy.arm(Fault::InProgress, Times::Next(attempts));
    match put_all(&client, &table, &["j"]).await {
        Err(TransactWriteItemsError::TransactionInProgressException(_)) => {}
        other => panic!("expected TransactionInProgressException, got {other:?}"),
    }
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (attempts, 0));
    assert!(!exists(&client, &table, "j").await);

    // A race: the first write commits but its reply waits for the second,
    // which meets it in flight and is told TransactionConflict.
    proxy.arm_race(At::All);
    let (one, two) = tokio::join!(
        put_all(&client, &table, &["r1", "r2"]),
        put_all(&client, &table, &["r3", "r4"])
    );
    assert!(proxy.race_met(), "{:?}", proxy.log());
    let (won, lost, lost_ids) = match (one, two) {
        (Ok(()), lost) => ("r1", lost, ["r3", "r4"]),
        (lost, Ok(())) => ("r3", lost, ["r1", "r2"]),
        both => panic!("one write of the race commits: {both:?}"),
    };
    assert_eq!(
        cancellation_codes(lost),
        ["TransactionConflict", "TransactionConflict"]
    );
    assert!(exists(&client, &table, won).await);
    assert!(!exists(&client, &table, lost_ids[0]).await);
    assert_eq!((proxy.rewritten(), proxy.forwarded_writes()), (1, 1));
}

#[tokio::test]
async fn a_held_write_reaches_dynamodb_only_when_delivered_even_after_its_caller_left() {
    let proxy = RewriteProxy::start(crate::harness::shared_dynamodb()).await;
    let client = crate::local_dynamodb::client(&proxy.url);
    let table = scratch_table(&client).await;

    // Held while its caller waits; delivered, the caller gets DynamoDB's
    // own answer.
    proxy.arm_hold();
    let deliver = async {
        proxy.held(Duration::from_secs(60)).await;
        assert!(!exists(&client, &table, "w1").await, "a held write wrote");
        proxy.deliver_held().await
    };
    let (written, delivered) = tokio::join!(put_all(&client, &table, &["w1"]), deliver);
    written.expect("the caller gets DynamoDB's answer");
    assert_eq!(delivered.status, 200, "{:?}", delivered.body);
    assert!(exists(&client, &table, "w1").await);

    // Held, and its caller gives up: nothing is written until the proxy
    // delivers it, long after.
    proxy.arm_hold();
    let gave_up = tokio::select! {
        _ = put_all(&client, &table, &["w2"]) => false,
        body = proxy.held(Duration::from_secs(60)) => {
            assert!(body.contains("w2"), "{body}");
            true
        }
    };
    assert!(gave_up, "the write was answered while held");
    assert!(proxy.holding());
    assert!(!exists(&client, &table, "w2").await, "a held write wrote");
    let delivered = proxy.deliver_held().await;
    assert_eq!(delivered.status, 200, "{:?}", delivered.body);
    assert!(delivered.cancellation_reasons().is_empty());
    assert!(exists(&client, &table, "w2").await, "the delivered write");
    assert!(!proxy.holding());
}
