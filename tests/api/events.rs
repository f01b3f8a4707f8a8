//! payment-events on DynamoDB Local's real streams: calls through the
//! service, the tables' stream records read with GetRecords and handed to
//! the library's handler in Lambda's event shape, and PutEvents answered by
//! a small bus on 127.0.0.1 that speaks EventBridge's JSON protocol to the
//! real SDK client and fails the entries a test chooses.

use crate::harness::{TestApp, fresh_ledger, shared_dynamodb};
use crate::helpers::*;
use crate::holds::{by_id, hold_order};
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use payment::events::schema::{
    AccountOpened, Body, Detail, EntryPosted, HoldCaptured, HoldFacts, HoldVoided, SOURCE,
    Transaction, Transfer,
};
use payment::events::{self, Publisher};
use payment::ledger::Tables;
use payment::pb;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long stream records may take to show up in GetRecords.
const STREAM_DELAY_MAX: Duration = Duration::from_secs(15);
/// GetRecords calls per shard per read (each returns up to 1000 records).
const GET_RECORDS_CALLS_MAX: usize = 50;
/// The bus name the publisher is given.
const BUS: &str = "payments-test-bus";

// ---------------------------------------------------------------------------
// A bus on 127.0.0.1 that speaks PutEvents.

/// One entry as the bus received it, and whether it accepted it.
#[derive(Debug, Clone)]
struct Received {
    detail: Detail,
    detail_type: String,
    source: String,
    bus: String,
    accepted: bool,
}

#[derive(Debug, Default)]
struct BusState {
    /// Every PutEvents call, its entries in order.
    calls: Vec<Vec<Received>>,
    /// Entries to refuse, by detail id: how many more times.
    fail: HashMap<String, usize>,
}

struct FakeBus {
    url: String,
    state: Arc<Mutex<BusState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBus {
    async fn start() -> FakeBus {
        let state = Arc::new(Mutex::new(BusState::default()));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: bytes::Bytes| {
                let state = shared.clone();
                async move { put_events(&state, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake bus");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake bus");
        });
        FakeBus { url, state, task }
    }

    /// A publisher whose real EventBridge client talks to this bus.
    fn publisher(&self) -> Publisher {
        use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("local", "local", None, None, "static"))
            .build();
        Publisher::new(aws_sdk_eventbridge::Client::from_conf(config), BUS)
    }

    fn fail(&self, id: &str, times: usize) {
        self.state.lock().unwrap().fail.insert(id.to_owned(), times);
    }

    fn calls(&self) -> Vec<Vec<Received>> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Every accepted event, in the order the bus accepted them.
    fn accepted(&self) -> Vec<Received> {
        self.calls()
            .into_iter()
            .flatten()
            .filter(|r| r.accepted)
            .collect()
    }
}

/// PutEvents (awsJson1_1): `{"Entries": [...]}` in; per entry an EventId
/// or an ErrorCode out, in order, as EventBridge answers.
fn put_events(
    state: &Mutex<BusState>,
    body: &[u8],
) -> (
    http::StatusCode,
    [(http::header::HeaderName, &'static str); 1],
    String,
) {
    let json_type = (http::header::CONTENT_TYPE, "application/x-amz-json-1.1");
    let request: serde_json::Value = serde_json::from_slice(body).expect("PutEvents JSON");
    let entries = request["Entries"].as_array().expect("Entries").clone();
    let bytes: usize = entries
        .iter()
        .map(|e| {
            14 + e["Source"].as_str().unwrap_or("").len()
                + e["DetailType"].as_str().unwrap_or("").len()
                + e["Detail"].as_str().unwrap_or("").len()
        })
        .sum();
    if entries.is_empty() || entries.len() > 10 || bytes > 256 * 1024 {
        // As EventBridge refuses a call over its limits: the test fails on it.
        let error = serde_json::json!({
            "__type": "ValidationException",
            "message": format!("{} entries, {bytes} bytes", entries.len()),
        });
        return (
            http::StatusCode::BAD_REQUEST,
            [json_type],
            error.to_string(),
        );
    }
    let mut state = state.lock().unwrap();
    let mut call = Vec::new();
    let mut results = Vec::new();
    for entry in &entries {
        let detail: Detail =
            serde_json::from_str(entry["Detail"].as_str().expect("Detail")).expect("a Detail");
        let refuse = match state.fail.get_mut(&detail.id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        results.push(if refuse {
            serde_json::json!({"ErrorCode": "InternalFailure", "ErrorMessage": "chosen by the test"})
        } else {
            serde_json::json!({"EventId": uuid::Uuid::new_v4().to_string()})
        });
        call.push(Received {
            detail,
            detail_type: entry["DetailType"].as_str().unwrap_or("").to_owned(),
            source: entry["Source"].as_str().unwrap_or("").to_owned(),
            bus: entry["EventBusName"].as_str().unwrap_or("").to_owned(),
            accepted: !refuse,
        });
    }
    state.calls.push(call);
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    let reply = serde_json::json!({"FailedEntryCount": failed, "Entries": results});
    (http::StatusCode::OK, [json_type], reply.to_string())
}

// ---------------------------------------------------------------------------
// DynamoDB Local's streams, read as Lambda would deliver them.

/// Every record so far of one table's stream, each in Lambda's event
/// record shape, in stream order (shard by shard, parents first).
async fn stream_records(table: &str) -> Vec<serde_json::Value> {
    let dynamodb = direct_dynamodb();
    let described = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable");
    let arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .expect("the table has a stream")
        .to_owned();
    let streams = streams_client();
    let stream = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("DescribeStream");
    let mut records = Vec::new();
    for shard in stream
        .stream_description()
        .map(|d| d.shards())
        .unwrap_or_default()
    {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().expect("shard id"))
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        for _ in 0..GET_RECORDS_CALLS_MAX {
            let Some(current) = iterator.take() else {
                break;
            };
            let mut page = get_records(&current).await;
            let got = page["Records"].as_array().map_or(0, Vec::len);
            for mut record in page["Records"]
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default()
            {
                for image in ["Keys", "NewImage", "OldImage"] {
                    if let Some(map) = record["dynamodb"]
                        .get_mut(image)
                        .and_then(|m| m.as_object_mut())
                    {
                        map.values_mut().for_each(type_empty_maps);
                    }
                }
                // What Lambda adds to a stream record.
                record["eventSourceARN"] = serde_json::json!(arn);
                records.push(record);
            }
            iterator = page["NextShardIterator"].as_str().map(String::from);
            if got == 0 {
                break;
            }
        }
    }
    records
}

fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(shared_dynamodb())
            .credentials_provider(Credentials::new("local", "local", None, None, "static"))
            .build(),
    )
}

/// GetRecords, as JSON. Not through the SDK: DynamoDB Local's stream
/// writes an empty map attribute as `{}` where DynamoDB (and so Lambda's
/// event) writes `{"M":{}}`, and the SDK then cannot read the answer at all
/// ("Union did not contain a valid variant"). The ledger does store empty
/// maps (a shard's `holds` once its last hold is gone), so the records are
/// read raw and given their type back ([`type_empty_maps`]). Its records
/// are already in the shape Lambda hands a function, less `eventSourceARN`.
async fn get_records(iterator: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = serde_json::json!({ "ShardIterator": iterator, "Limit": 1000 }).to_string();
    let request = http::Request::post(shared_dynamodb())
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "DynamoDBStreams_20120810.GetRecords")
        // DynamoDB Local (-sharedDb) reads the credential, not the signature.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("GetRecords request");
    let response = client.request(request).await.expect("GetRecords");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("GetRecords body")
        .to_bytes();
    assert!(
        status.is_success(),
        "GetRecords: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("GetRecords JSON")
}

/// An attribute value with every untyped `{}` in it made `{"M":{}}`.
fn type_empty_maps(value: &mut serde_json::Value) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    if object.is_empty() {
        object.insert("M".into(), serde_json::json!({}));
        return;
    }
    if let Some(map) = object.get_mut("M").and_then(|m| m.as_object_mut()) {
        map.values_mut().for_each(type_empty_maps);
    }
    if let Some(list) = object.get_mut("L").and_then(|l| l.as_array_mut()) {
        list.iter_mut().for_each(type_empty_maps);
    }
}

fn batch(records: &[serde_json::Value]) -> StreamEvent {
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .expect("Lambda's DynamoDB event shape")
}

fn sequence_number(record: &serde_json::Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .expect("SequenceNumber")
        .to_owned()
}

/// The ids of the events `records` make (what a handler would put).
fn ids_of(tables: &Tables, records: &[serde_json::Value]) -> Vec<Option<String>> {
    batch(records)
        .records
        .iter()
        .map(|r| {
            events::records::event_of(tables, r)
                .expect("a readable record")
                .map(|d| d.id)
        })
        .collect()
}

/// Both tables' records, read again until they make every event of
/// `expected` (stream records may lag the write that made them).
async fn records_making(
    tables: &Tables,
    expected: &BTreeSet<String>,
) -> [Vec<serde_json::Value>; 2] {
    let started = std::time::Instant::now();
    loop {
        let accounts = stream_records(&tables.accounts).await;
        let ledger = stream_records(&tables.ledger).await;
        let made: BTreeSet<String> = ids_of(tables, &accounts)
            .into_iter()
            .chain(ids_of(tables, &ledger))
            .flatten()
            .collect();
        if expected.is_subset(&made) {
            return [accounts, ledger];
        }
        assert!(
            started.elapsed() < STREAM_DELAY_MAX,
            "after {STREAM_DELAY_MAX:?} the streams still lack {:?}",
            expected.difference(&made).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lambda's event source mapping as AWS documents it for a stream with
/// ReportBatchItemFailures: batches of `batch_size` in order; on a reported
/// failure, the next batch starts at the lowest reported record; a batch
/// that fails `retries + 1` times in a row is given up (its records go to
/// the on-failure destination) and the mapping moves past it. Returns the
/// records given up, by sequence number.
async fn run_mapping(
    publisher: &Publisher,
    tables: &Tables,
    records: &[serde_json::Value],
    batch_size: usize,
    retries: usize,
) -> Vec<String> {
    let mut given_up = Vec::new();
    let (mut position, mut failures_in_a_row) = (0, 0);
    // Bounded: each step either advances or counts a failure.
    for _ in 0..(records.len() + 1) * (retries + 2) {
        if position >= records.len() {
            return given_up;
        }
        let end = (position + batch_size).min(records.len());
        let response = events::handle(publisher, tables, &batch(&records[position..end]))
            .await
            .expect("the batch is handled");
        let reported: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().expect("itemIdentifier"))
            .collect();
        let Some(first) = records[position..end]
            .iter()
            .position(|r| reported.contains(&sequence_number(r)))
        else {
            assert!(reported.is_empty(), "reported records not in the batch");
            position = end;
            failures_in_a_row = 0;
            continue;
        };
        failures_in_a_row += 1;
        if failures_in_a_row > retries {
            given_up.extend(records[position + first..end].iter().map(sequence_number));
            position = end;
            failures_in_a_row = 0;
        } else {
            position += first;
        }
    }
    panic!("the mapping did not finish");
}

// ---------------------------------------------------------------------------
// Expected events.

fn ms(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("a timestamp");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

fn detail(id: String, occurred_at_ms: i64, body: Body) -> Detail {
    Detail {
        schema_version: events::SCHEMA_VERSION,
        id,
        occurred_at_ms,
        body,
    }
}

fn opened(account: &pb::Account) -> Detail {
    detail(
        format!("account.opened/{}", account.account_id),
        ms(&account.created_at),
        Body::AccountOpened(AccountOpened {
            account_id: account.account_id.clone(),
            display_name: account.display_name.clone(),
            currency: account.currency.clone(),
            owner: account.owner.clone(),
            opening_balance_minor: account.balance,
            balance_shards: account.balance_shards as u32,
            created_at_ms: ms(&account.created_at),
        }),
    )
}

fn transfer(t: &pb::Transaction) -> Transfer {
    Transfer {
        transaction_id: t.transaction_id.clone(),
        sender_id: t.sender_id.clone(),
        recipient_id: t.recipient_id.clone(),
        amount_minor: t.amount,
        currency: t.currency.clone(),
        memo: t.memo.clone(),
        created_at_ms: ms(&t.created_at),
        refund_of: t.refund_of.clone(),
    }
}

fn hold_facts(h: &pb::Hold) -> HoldFacts {
    HoldFacts {
        hold_id: h.hold_id.clone(),
        sender_id: h.sender_id.clone(),
        recipient_id: h.recipient_id.clone(),
        amount_minor: h.amount,
        currency: h.currency.clone(),
        memo: h.memo.clone(),
        created_at_ms: ms(&h.created_at),
        expires_at_ms: ms(&h.expires_at),
    }
}

fn kind_name(kind: i32) -> &'static str {
    match pb::TransactionKind::try_from(kind).expect("a kind") {
        pb::TransactionKind::Payment => "PAYMENT",
        pb::TransactionKind::Capture => "CAPTURE",
        pb::TransactionKind::Refund => "REFUND",
        pb::TransactionKind::Opening => "OPENING",
        pb::TransactionKind::Unspecified => "UNSPECIFIED",
    }
}

/// The entry events of an ordinary account, from its history as the
/// service tells it.
fn entries_from_history(
    account_id: &str,
    history: &[pb::GetTransactionHistoryResponse],
) -> Vec<Detail> {
    history
        .iter()
        .map(|h| {
            let t = h.transaction.as_ref().expect("transaction");
            detail(
                format!("entry.posted/{account_id}/{}/{}", h.shard, h.sequence),
                ms(&t.created_at),
                Body::EntryPosted(EntryPosted {
                    account_id: account_id.into(),
                    shard: h.shard as u32,
                    sequence: h.sequence as u64,
                    direction: if h.direction == pb::Direction::Debit as i32 {
                        "DEBIT".into()
                    } else {
                        "CREDIT".into()
                    },
                    amount_minor: t.amount,
                    currency: t.currency.clone(),
                    balance_after_minor: h.balance_after,
                    transaction: Transaction {
                        transaction_id: t.transaction_id.clone(),
                        kind: kind_name(t.kind).into(),
                        sender_id: t.sender_id.clone(),
                        recipient_id: t.recipient_id.clone(),
                        amount_minor: t.amount,
                        memo: t.memo.clone(),
                        created_at_ms: ms(&t.created_at),
                        refund_of: t.refund_of.clone(),
                    },
                }),
            )
        })
        .collect()
}

/// An entry event's (account, shard, sequence, direction, amount, balance after).
fn entry_facts(d: &Detail) -> Option<(String, u32, u64, String, i64, i64)> {
    match &d.body {
        Body::EntryPosted(e) => Some((
            e.account_id.clone(),
            e.shard,
            e.sequence,
            e.direction.clone(),
            e.amount_minor,
            e.balance_after_minor,
        )),
        _ => None,
    }
}

/// Each (account, shard)'s entry sequences in the order they were put,
/// after dropping repeats of an id.
fn sequences_in_order(received: &[Received]) -> BTreeMap<(String, u32), Vec<u64>> {
    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for r in received {
        if !seen.insert(r.detail.id.clone()) {
            continue;
        }
        if let Some((account, shard, sequence, ..)) = entry_facts(&r.detail) {
            order.entry((account, shard)).or_default().push(sequence);
        }
    }
    order
}

/// A ledger with streams on, served.
async fn streamed_app() -> TestApp {
    let ledger = fresh_ledger().await;
    ledger.enable_streams().await.expect("streams on");
    TestApp::serve(ledger).await
}

// ---------------------------------------------------------------------------
// The tests.

/// A known sequence of calls makes exactly these events: each movement
/// once, with its stable id and every field, each account's entries in
/// sequence order, and a replayed payment adds nothing.
#[tokio::test]
async fn each_movement_makes_exactly_its_event() {
    let app = streamed_app().await;
    let tables = app.ledger.tables().clone();
    let mut c = app.grpc().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let alice_account = add(&mut c, &alice, "EUR", 10_000).await.unwrap();
    let bob_account = add(&mut c, &bob, "EUR", 0).await.unwrap();
    let paid = pay(&mut c, order("p1", &alice, &bob, 1_000)).await.unwrap();
    // The retry of the same call: answered from its record, nothing written.
    let replayed = pay(&mut c, order("p1", &alice, &bob, 1_000)).await.unwrap();
    assert!(replayed.replayed);
    assert_eq!(replayed.transaction, paid.transaction);
    let placed = c
        .authorize_payment(hold_order("h1", &alice, &bob, 2_000, 3600))
        .await
        .unwrap()
        .into_inner();
    let hold = placed.hold.unwrap();
    let captured = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_id(&hold.hold_id),
            amount: 1_500,
        })
        .await
        .unwrap()
        .into_inner();
    let second = c
        .authorize_payment(hold_order("h2", &alice, &bob, 500, 3600))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let voided = c
        .void_hold(pb::VoidHoldRequest {
            hold: by_id(&second.hold_id),
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let payment = paid.transaction.clone().unwrap();
    let refund = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r1".into(),
            payment: by_id(&payment.transaction_id),
            amount: 300,
            memo: "back".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .transaction
        .unwrap();

    // What the events must be, from the service's own answers.
    let capture = captured.transaction.clone().unwrap();
    let captured_hold = captured.hold.clone().unwrap();
    let mut expected: Vec<Detail> = vec![
        opened(&alice_account),
        opened(&bob_account),
        detail(
            format!("payment.committed/{}", payment.transaction_id),
            ms(&payment.created_at),
            Body::PaymentCommitted(transfer(&payment)),
        ),
        detail(
            format!("hold.authorized/{}", hold.hold_id),
            ms(&hold.created_at),
            Body::HoldAuthorized(hold_facts(&hold)),
        ),
        detail(
            format!("hold.captured/{}", hold.hold_id),
            ms(&capture.created_at),
            Body::HoldCaptured(HoldCaptured {
                hold: hold_facts(&captured_hold),
                transaction_id: capture.transaction_id.clone(),
                captured_minor: 1_500,
                captured_at_ms: ms(&captured_hold.settled_at),
            }),
        ),
        detail(
            format!("hold.authorized/{}", second.hold_id),
            ms(&second.created_at),
            Body::HoldAuthorized(hold_facts(&second)),
        ),
        detail(
            format!("hold.voided/{}", second.hold_id),
            ms(&voided.settled_at),
            Body::HoldVoided(HoldVoided {
                hold: hold_facts(&voided),
                voided_at_ms: ms(&voided.settled_at),
            }),
        ),
        detail(
            format!("refund.committed/{}", refund.transaction_id),
            ms(&refund.created_at),
            Body::RefundCommitted(transfer(&refund)),
        ),
    ];
    let alice_history = history_all(&mut c, &alice).await;
    let bob_history = history_all(&mut c, &bob).await;
    expected.extend(entries_from_history(&alice, &alice_history));
    expected.extend(entries_from_history(&bob, &bob_history));
    let expected: BTreeMap<String, Detail> =
        expected.into_iter().map(|d| (d.id.clone(), d)).collect();
    // 2 openings, a payment, 2 holds, a capture, a void, a refund, and the
    // entries: alice's opening, payment, capture and refund; bob's three.
    assert_eq!(expected.len(), 8 + 4 + 3);

    let ids: BTreeSet<String> = expected.keys().cloned().collect();
    let [accounts, ledger] = records_making(&tables, &ids).await;
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    for records in [&accounts, &ledger] {
        assert!(
            run_mapping(&publisher, &tables, records, 100, 2)
                .await
                .is_empty()
        );
    }

    let accepted = bus.accepted();
    for r in &accepted {
        assert_eq!(r.source, SOURCE);
        assert_eq!(r.bus, BUS);
        assert_eq!(r.detail_type, r.detail.body.detail_type());
    }
    // Nothing failed, so nothing was put twice: every movement once, the
    // replayed payment included.
    let got: BTreeMap<String, Detail> = accepted
        .iter()
        .map(|r| (r.detail.id.clone(), r.detail.clone()))
        .collect();
    assert_eq!(got.len(), accepted.len(), "an event was put twice");
    assert_eq!(got, expected);
    // The known sequence, spelled out: (sequence, direction, amount, balance after).
    let facts = |account: &str| -> Vec<(u64, String, i64, i64)> {
        let mut entries: Vec<_> = got
            .values()
            .filter_map(entry_facts)
            .filter(|e| e.0 == account)
            .map(|(_, _, sequence, direction, amount, after)| (sequence, direction, amount, after))
            .collect();
        entries.sort();
        entries
    };
    let entry = |s: u64, d: &str, a: i64, b: i64| (s, d.to_owned(), a, b);
    assert_eq!(
        facts(&alice),
        vec![
            entry(1, "CREDIT", 10_000, 10_000),
            entry(2, "DEBIT", 1_000, 9_000),
            entry(3, "DEBIT", 1_500, 7_500),
            entry(4, "CREDIT", 300, 7_800),
        ]
    );
    assert_eq!(
        facts(&bob),
        vec![
            entry(1, "CREDIT", 1_000, 1_000),
            entry(2, "CREDIT", 1_500, 2_500),
            entry(3, "DEBIT", 300, 2_200),
        ]
    );
    // Put in each account's sequence order.
    for ((account, _), sequences) in sequences_in_order(&accepted) {
        let n = sequences.len() as u64;
        assert_eq!(sequences, (1..=n).collect::<Vec<_>>(), "{account}");
    }
}

/// A sharded merchant: every shard's entries once, in sequence order, each
/// shard's balance a running sum, and each payment's parts adding up.
#[tokio::test]
async fn a_sharded_account_posts_each_shard_in_sequence() {
    let app = streamed_app().await;
    let tables = app.ledger.tables().clone();
    let mut c = app.grpc().await;
    let (alice, merchant, bob) = (unique("alice"), unique("merchant"), unique("bob"));
    add(&mut c, &alice, "EUR", 10_000).await.unwrap();
    add(&mut c, &bob, "EUR", 0).await.unwrap();
    let merchant_account = c
        .add_account(pb::AddAccountRequest {
            account_id: merchant.clone(),
            display_name: "Merchant".into(),
            currency: "EUR".into(),
            initial_balance: 0,
            balance_shards: 4,
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let mut incoming = Vec::new();
    for k in 0..8 {
        let paid = pay(&mut c, order(&format!("in{k}"), &alice, &merchant, 100))
            .await
            .unwrap();
        incoming.push(paid.transaction.unwrap().transaction_id);
    }
    let payout = pay(&mut c, order("out", &merchant, &bob, 700))
        .await
        .unwrap()
        .transaction
        .unwrap();

    let mut ids: BTreeSet<String> = incoming
        .iter()
        .chain([&payout.transaction_id])
        .map(|t| format!("payment.committed/{t}"))
        .collect();
    ids.insert(format!("account.opened/{merchant}"));
    let [accounts, ledger] = records_making(&tables, &ids).await;
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    // Small batches: the order must hold across invocations too.
    for records in [&accounts, &ledger] {
        assert!(
            run_mapping(&publisher, &tables, records, 7, 2)
                .await
                .is_empty()
        );
    }
    let accepted = bus.accepted();
    assert_eq!(
        accepted
            .iter()
            .find(|r| r.detail.id == format!("account.opened/{merchant}"))
            .map(|r| r.detail.clone()),
        Some(opened(&merchant_account))
    );
    let merchant_entries: Vec<EntryPosted> = accepted
        .iter()
        .filter_map(|r| match &r.detail.body {
            Body::EntryPosted(e) if e.account_id == merchant => Some(e.clone()),
            _ => None,
        })
        .collect();
    // Once each, every shard from sequence 1 without a gap, in put order.
    let mut by_shard: BTreeMap<u32, Vec<&EntryPosted>> = BTreeMap::new();
    for e in &merchant_entries {
        by_shard.entry(e.shard).or_default().push(e);
    }
    assert!(by_shard.keys().all(|s| *s < 4));
    for (shard, entries) in &by_shard {
        let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=entries.len() as u64).collect::<Vec<_>>(),
            "shard {shard}"
        );
        let mut balance = 0;
        for e in entries {
            balance += if e.direction == "CREDIT" {
                e.amount_minor
            } else {
                -e.amount_minor
            };
            assert_eq!(
                e.balance_after_minor, balance,
                "shard {shard} seq {}",
                e.sequence
            );
            assert_eq!(e.currency, "EUR");
        }
    }
    // Each incoming payment: one credit of 100 in one shard.
    for t in &incoming {
        let parts: Vec<&EntryPosted> = merchant_entries
            .iter()
            .filter(|e| &e.transaction.transaction_id == t)
            .collect();
        assert_eq!(parts.len(), 1, "{t}");
        assert_eq!(
            (parts[0].direction.as_str(), parts[0].amount_minor),
            ("CREDIT", 100)
        );
    }
    // The payout: debits from one or more shards adding up to 700, one per shard.
    let parts: Vec<&EntryPosted> = merchant_entries
        .iter()
        .filter(|e| e.transaction.transaction_id == payout.transaction_id)
        .collect();
    assert!(
        parts
            .iter()
            .all(|e| e.direction == "DEBIT" && e.transaction.amount_minor == 700)
    );
    assert_eq!(parts.iter().map(|e| e.amount_minor).sum::<i64>(), 700);
    let shards: BTreeSet<u32> = parts.iter().map(|e| e.shard).collect();
    assert_eq!(shards.len(), parts.len());
    assert_eq!(merchant_entries.len(), 8 + parts.len());
    // Exactly what each shard stored, entry by entry (helpers::stored_entries
    // reads the shard's history straight from DynamoDB Local).
    for shard in 0..4u32 {
        let stored: Vec<(u64, String, bool, i64, i64)> = stored_entries(&tables, &merchant, shard)
            .await
            .into_iter()
            .map(|e| {
                (
                    e.sequence,
                    e.transaction_id,
                    e.debit,
                    e.amount,
                    e.balance_after,
                )
            })
            .collect();
        let published: Vec<(u64, String, bool, i64, i64)> = by_shard
            .get(&shard)
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (
                            e.sequence,
                            e.transaction.transaction_id.clone(),
                            e.direction == "DEBIT",
                            e.amount_minor,
                            e.balance_after_minor,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(published, stored, "shard {shard}");
    }
    // The payments themselves, each once, exactly.
    let committed: BTreeMap<String, Detail> = accepted
        .iter()
        .filter(|r| matches!(r.detail.body, Body::PaymentCommitted(_)))
        .map(|r| (r.detail.id.clone(), r.detail.clone()))
        .collect();
    assert_eq!(
        committed.len(),
        accepted
            .iter()
            .filter(|r| matches!(r.detail.body, Body::PaymentCommitted(_)))
            .count()
    );
    assert_eq!(committed.len(), incoming.len() + 1);
    for t in incoming.iter().chain([&payout.transaction_id]) {
        let d = &committed[&format!("payment.committed/{t}")];
        let Body::PaymentCommitted(transfer) = &d.body else {
            unreachable!()
        };
        assert_eq!(&transfer.transaction_id, t);
        assert_eq!(transfer.currency, "EUR");
    }
    assert_eq!(
        committed[&format!("payment.committed/{}", payout.transaction_id)],
        detail(
            format!("payment.committed/{}", payout.transaction_id),
            ms(&payout.created_at),
            Body::PaymentCommitted(transfer(&payout)),
        )
    );
    // And the shards' balances add up to the account's.
    let last_balances: i64 = by_shard
        .values()
        .map(|entries| entries.last().map_or(0, |e| e.balance_after_minor))
        .sum();
    assert_eq!(last_balances, balance(&mut c, &merchant).await.unwrap());
}

/// The bus refuses one event of a batch once: the handler reports that
/// event's record, the mapping re-delivers from it, and only it and the
/// records after it are handled again; the events before it are put once.
/// An event the bus always refuses keeps its record reported on every
/// attempt, so the mapping's retries run out and it goes to the on-failure
/// destination (template.yaml's queue; tests/template.rs checks the wiring),
/// with nothing after it put meanwhile.
#[tokio::test]
async fn a_failed_put_is_retried_from_its_record_and_never_dropped() {
    let app = streamed_app().await;
    let tables = app.ledger.tables().clone();
    let mut c = app.grpc().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    add(&mut c, &alice, "EUR", 10_000).await.unwrap();
    add(&mut c, &bob, "EUR", 0).await.unwrap();
    let mut payments = Vec::new();
    for k in 0..4 {
        let paid = pay(&mut c, order(&format!("p{k}"), &alice, &bob, 100 + k))
            .await
            .unwrap();
        payments.push(paid.transaction.unwrap().transaction_id);
    }
    let ids: BTreeSet<String> = payments
        .iter()
        .map(|t| format!("payment.committed/{t}"))
        .collect();
    let [_, ledger] = records_making(&tables, &ids).await;
    let made = ids_of(&tables, &ledger);
    let every_id: BTreeSet<String> = made.iter().flatten().cloned().collect();
    let failing = format!("payment.committed/{}", payments[1]);
    let failing_record = made
        .iter()
        .position(|id| id.as_deref() == Some(failing.as_str()))
        .expect("the chosen event's record");

    // Once: reported, then re-delivered from its record.
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    bus.fail(&failing, 1);
    let first = events::handle(&publisher, &tables, &batch(&ledger))
        .await
        .unwrap();
    let reported: Vec<_> = first
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(reported, vec![sequence_number(&ledger[failing_record])]);
    // Nothing was put after the call that failed.
    let calls = bus.calls();
    let last_call = calls.last().unwrap();
    assert!(
        last_call
            .iter()
            .any(|r| r.detail.id == failing && !r.accepted)
    );
    let calls_before = calls.len();
    let second = events::handle(&publisher, &tables, &batch(&ledger[failing_record..]))
        .await
        .unwrap();
    assert!(second.batch_item_failures.is_empty());
    let retried: BTreeSet<String> = bus.calls()[calls_before..]
        .iter()
        .flatten()
        .map(|r| r.detail.id.clone())
        .collect();
    let from_failing: BTreeSet<String> = made[failing_record..].iter().flatten().cloned().collect();
    assert_eq!(
        retried, from_failing,
        "only the failed record and those after it"
    );
    let accepted = bus.accepted();
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &accepted {
        *times.entry(r.detail.id.as_str()).or_default() += 1;
    }
    assert_eq!(
        times.keys().map(|k| k.to_string()).collect::<BTreeSet<_>>(),
        every_id
    );
    for id in made[..failing_record].iter().flatten() {
        assert_eq!(times[id.as_str()], 1, "{id} was before the failure");
    }
    assert_eq!(times[failing.as_str()], 1);
    for ((account, _), sequences) in sequences_in_order(&accepted) {
        let n = sequences.len() as u64;
        assert_eq!(sequences, (1..=n).collect::<Vec<_>>(), "{account}");
    }

    // Always: every attempt reports it and puts nothing after it; the
    // mapping gives it (and what follows it in its batch) up.
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    bus.fail(&failing, usize::MAX);
    let given_up = run_mapping(&publisher, &tables, &ledger, ledger.len(), 2).await;
    assert_eq!(
        given_up,
        ledger[failing_record..]
            .iter()
            .map(sequence_number)
            .collect::<Vec<_>>()
    );
    let attempts = bus
        .calls()
        .iter()
        .flatten()
        .filter(|r| r.detail.id == failing)
        .count();
    assert_eq!(attempts, 3, "the first attempt and two retries");
    let put_after: Vec<String> = bus
        .accepted()
        .iter()
        .map(|r| r.detail.id.clone())
        .filter(|id| {
            made[failing_record + 1..]
                .iter()
                .flatten()
                .any(|later| later == id)
        })
        .collect();
    // Only what shared the failing call can have been put.
    let shared_call: BTreeSet<String> = bus
        .calls()
        .iter()
        .filter(|call| call.iter().any(|r| r.detail.id == failing))
        .flatten()
        .map(|r| r.detail.id.clone())
        .collect();
    assert!(
        put_after.iter().all(|id| shared_call.contains(id)),
        "{put_after:?}"
    );
}

/// A record the ledger cannot read is reported, not skipped.
#[tokio::test]
async fn an_unreadable_record_is_reported_not_skipped() {
    let app = streamed_app().await;
    let tables = app.ledger.tables().clone();
    let mut c = app.grpc().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    add(&mut c, &alice, "EUR", 10_000).await.unwrap();
    add(&mut c, &bob, "EUR", 0).await.unwrap();
    let paid = pay(&mut c, order("p", &alice, &bob, 100)).await.unwrap();
    let id = format!(
        "payment.committed/{}",
        paid.transaction.unwrap().transaction_id
    );
    let [_, mut ledger] = records_making(&tables, &BTreeSet::from([id.clone()])).await;
    let made = ids_of(&tables, &ledger);
    let broken = made
        .iter()
        .position(|m| m.as_deref() == Some(id.as_str()))
        .unwrap();
    // The record loses an attribute every payment record has.
    ledger[broken]["dynamodb"]["NewImage"]
        .as_object_mut()
        .unwrap()
        .remove("amount");
    let bus = FakeBus::start().await;
    let response = events::handle(&bus.publisher(), &tables, &batch(&ledger))
        .await
        .unwrap();
    let reported: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(reported, vec![sequence_number(&ledger[broken])]);
    let put: BTreeSet<String> = bus.accepted().into_iter().map(|r| r.detail.id).collect();
    let before: BTreeSet<String> = made[..broken].iter().flatten().cloned().collect();
    assert_eq!(put, before);
}

// ---------------------------------------------------------------------------
// On the local cloud (tests/api/cloud.rs deploys the stack and calls this):
// the real path, stream → event source mapping → payment-events → bus →
// rule → a team's SQS queue.

/// How long the events of a few calls may take to reach the queue.
const CLOUD_EVENT_DELAY_MAX: Duration = Duration::from_secs(90);

/// One message of the subscribed queue: EventBridge's envelope.
#[derive(Debug, Clone)]
struct Delivered {
    envelope: serde_json::Value,
    detail: Detail,
    sent_ms: i64,
}

/// A team subscribes a queue to the bus with a rule, then a payment (and
/// its replay), a hold and its capture, a hold and its void, a refund and
/// two accounts are made through API Gateway: their events reach the queue
/// with their types and fields, the same movement always under the same id,
/// and each account's entries in sequence order once repeats are dropped.
pub(crate) async fn events_reach_a_subscribed_queue(cloud: &crate::cloud::Cloud) {
    use crate::harness::{Bearer, web_client};
    let queue = cloud.cloud_py(&["subscribe", &unique("e2e-events")]);
    let admin = cloud.token(&["admin"]);
    let mut web = web_client(&cloud.api_url(), Bearer::new(&admin));
    let (a, b) = (unique("ev-a"), unique("ev-b"));
    let mut accounts = Vec::new();
    for (id, balance) in [(&a, 10_000), (&b, 0)] {
        accounts.push(
            web.add_account(pb::AddAccountRequest {
                account_id: id.clone(),
                display_name: format!("{id} display"),
                currency: "EUR".into(),
                initial_balance: balance,
                ..Default::default()
            })
            .await
            .expect("AddAccount")
            .into_inner()
            .account
            .unwrap(),
        );
    }
    let order = pb::MakePaymentRequest {
        idempotency_key: "e1".into(),
        sender_id: a.clone(),
        recipient_id: b.clone(),
        amount: 1_000,
        currency: "EUR".into(),
        memo: "event".into(),
    };
    let paid = web.make_payment(order.clone()).await.unwrap().into_inner();
    let replay = web.make_payment(order).await.unwrap().into_inner();
    assert!(replay.replayed);
    let payment = paid.transaction.unwrap();
    let hold = web
        .authorize_payment(hold_order("eh1", &a, &b, 2_000, 3600))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let captured = web
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_id(&hold.hold_id),
            amount: 1_500,
        })
        .await
        .unwrap()
        .into_inner();
    let second = web
        .authorize_payment(hold_order("eh2", &a, &b, 300, 3600))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let voided = web
        .void_hold(pb::VoidHoldRequest {
            hold: by_id(&second.hold_id),
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let refund = web
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "er1".into(),
            payment: by_id(&payment.transaction_id),
            amount: 400,
            memo: "back".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .transaction
        .unwrap();

    let capture = captured.transaction.clone().unwrap();
    let captured_hold = captured.hold.clone().unwrap();
    let mut expected: BTreeMap<String, Detail> = [
        opened(&opened_of(&accounts, &a)),
        opened(&opened_of(&accounts, &b)),
        detail(
            format!("payment.committed/{}", payment.transaction_id),
            ms(&payment.created_at),
            Body::PaymentCommitted(transfer(&payment)),
        ),
        detail(
            format!("hold.authorized/{}", hold.hold_id),
            ms(&hold.created_at),
            Body::HoldAuthorized(hold_facts(&hold)),
        ),
        detail(
            format!("hold.captured/{}", hold.hold_id),
            ms(&capture.created_at),
            Body::HoldCaptured(HoldCaptured {
                hold: hold_facts(&captured_hold),
                transaction_id: capture.transaction_id.clone(),
                captured_minor: 1_500,
                captured_at_ms: ms(&captured_hold.settled_at),
            }),
        ),
        detail(
            format!("hold.authorized/{}", second.hold_id),
            ms(&second.created_at),
            Body::HoldAuthorized(hold_facts(&second)),
        ),
        detail(
            format!("hold.voided/{}", second.hold_id),
            ms(&voided.settled_at),
            Body::HoldVoided(HoldVoided {
                hold: hold_facts(&voided),
                voided_at_ms: ms(&voided.settled_at),
            }),
        ),
        detail(
            format!("refund.committed/{}", refund.transaction_id),
            ms(&refund.created_at),
            Body::RefundCommitted(transfer(&refund)),
        ),
    ]
    .into_iter()
    .map(|d| (d.id.clone(), d))
    .collect();
    for id in [&a, &b] {
        let mut history = Vec::new();
        let mut token = String::new();
        for _ in 0..10 {
            let page = web
                .get_transaction_history(pb::GetTransactionHistoryRequest {
                    account_id: id.clone(),
                    page_size: 100,
                    page_token: token.clone(),
                })
                .await
                .unwrap();
            let mut stream = page.into_inner();
            let mut last = String::new();
            while let Some(entry) = stream.message().await.unwrap() {
                last = entry.next_page_token.clone();
                history.push(entry);
            }
            token = last;
            if token.is_empty() {
                break;
            }
        }
        expected.extend(
            entries_from_history(id, &history)
                .into_iter()
                .map(|d| (d.id.clone(), d)),
        );
    }
    assert_eq!(expected.len(), 8 + 4 + 3);

    // Read the queue until every expected event is there.
    let started = std::time::Instant::now();
    let mut delivered: Vec<Delivered> = Vec::new();
    loop {
        let page: Vec<serde_json::Value> =
            serde_json::from_str(&cloud.cloud_py(&["receive", &queue])).expect("receive JSON");
        for message in page {
            let envelope: serde_json::Value =
                serde_json::from_str(message["body"].as_str().expect("body")).expect("an event");
            let detail: Detail =
                serde_json::from_value(envelope["detail"].clone()).expect("a Detail");
            delivered.push(Delivered {
                envelope,
                detail,
                sent_ms: message["sent_ms"].as_i64().expect("sent_ms"),
            });
        }
        let got: BTreeSet<&String> = delivered.iter().map(|d| &d.detail.id).collect();
        if expected.keys().all(|id| got.contains(id)) {
            break;
        }
        assert!(
            started.elapsed() < CLOUD_EVENT_DELAY_MAX,
            "after {CLOUD_EVENT_DELAY_MAX:?} the queue lacks {:?}",
            expected
                .keys()
                .filter(|id| !got.contains(id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Only this test's accounts' events (other calls of the cloud test may
    // still be on their way).
    let ours = |d: &Detail| {
        let parties = match &d.body {
            Body::PaymentCommitted(t) | Body::RefundCommitted(t) => [&t.sender_id, &t.recipient_id],
            Body::HoldAuthorized(h) => [&h.sender_id, &h.recipient_id],
            Body::HoldCaptured(h) => [&h.hold.sender_id, &h.hold.recipient_id],
            Body::HoldVoided(h) => [&h.hold.sender_id, &h.hold.recipient_id],
            Body::AccountOpened(o) => [&o.account_id, &o.account_id],
            Body::EntryPosted(e) => [&e.account_id, &e.account_id],
        };
        parties.iter().any(|p| **p == a || **p == b)
    };
    let delivered: Vec<Delivered> = delivered.into_iter().filter(|d| ours(&d.detail)).collect();
    // The envelope, in EventBridge's conventions.
    for d in &delivered {
        assert_eq!(d.envelope["source"], SOURCE, "{:?}", d.envelope);
        assert_eq!(d.envelope["detail-type"], d.detail.body.detail_type());
        assert_eq!(d.detail.schema_version, events::SCHEMA_VERSION);
    }
    // Every event exactly as expected; a repeat carries the same id and the
    // same detail; the replayed payment made nothing new.
    let mut by_id: BTreeMap<String, Detail> = BTreeMap::new();
    for d in &delivered {
        if let Some(before) = by_id.insert(d.detail.id.clone(), d.detail.clone()) {
            assert_eq!(before, d.detail, "one id, two different events");
        }
    }
    assert_eq!(by_id, expected);
    // Per account, after dropping repeats: each shard's entries in sequence
    // order, 1, 2, 3... (on AWS an SQS standard queue may reorder them; the
    // sequence is what a consumer orders by).
    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for d in &delivered {
        if seen.insert(d.detail.id.clone())
            && let Some((account, shard, sequence, ..)) = entry_facts(&d.detail)
        {
            order.entry((account, shard)).or_default().push(sequence);
        }
    }
    assert_eq!(order.len(), 2);
    for ((account, _), sequences) in order {
        let mut sorted = sequences.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (1..=sequences.len() as u64).collect::<Vec<_>>(),
            "{account}"
        );
        assert_eq!(sequences, sorted, "{account}: in the order published");
    }
    let payment_event = delivered
        .iter()
        .find(|d| d.detail.id == format!("payment.committed/{}", payment.transaction_id))
        .unwrap();
    eprintln!(
        "cloud: a payment's commit to its event in the subscribed queue: {} ms (ledger time {} → SQS SentTimestamp {})",
        payment_event.sent_ms - payment_event.detail.occurred_at_ms,
        payment_event.detail.occurred_at_ms,
        payment_event.sent_ms
    );
}

fn opened_of(accounts: &[pb::Account], id: &str) -> pb::Account {
    accounts
        .iter()
        .find(|a| a.account_id == id)
        .cloned()
        .expect("an opened account")
}
