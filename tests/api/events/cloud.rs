//! On the local cloud (tests/api/cloud/ deploys the stack and calls this):
//! the real path, stream → event source mapping → payment-events → bus →
//! rule → a team's SQS queue.

use super::expected::*;
use super::movements::make_movements;
use crate::helpers::{history_all, unique};
use payment::events;
use payment::events::schema::{Body, Detail, SOURCE};
use payment::pb;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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
    let mut expected = Vec::new();
    for (id, balance) in [(&a, 10_000), (&b, 0)] {
        let account = web
            .add_account(pb::AddAccountRequest {
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
            .unwrap();
        expected.push(opened(&account));
    }
    let movements = make_movements(&mut web, &a, &b).await;
    expected.extend(movement_events(&movements));
    for id in [&a, &b] {
        let history = history_all(&mut web, id).await;
        expected.extend(entries_from_history(id, &history));
    }
    let expected: BTreeMap<String, Detail> =
        expected.into_iter().map(|d| (d.id.clone(), d)).collect();
    assert_eq!(expected.len(), 8 + 4 + 3);

    let delivered = receive_until_complete(cloud, &queue, &expected).await;
    // Only this test's accounts' events (other calls of the cloud test may
    // still be on their way).
    let delivered: Vec<Delivered> = delivered
        .into_iter()
        .filter(|d| concerns(&d.detail, &[&a, &b]))
        .collect();
    check_delivered(&delivered, &expected);
    let payment_event = delivered
        .iter()
        .find(|d| d.detail.id == format!("payment.committed/{}", movements.payment.transaction_id))
        .unwrap();
    eprintln!(
        "cloud: a payment's commit to its event in the subscribed queue: {} ms (ledger time {} → SQS SentTimestamp {})",
        payment_event.sent_ms - payment_event.detail.occurred_at_ms,
        payment_event.detail.occurred_at_ms,
        payment_event.sent_ms
    );
}

/// Reads the queue until every expected event is there.
async fn receive_until_complete(
    cloud: &crate::cloud::Cloud,
    queue: &str,
    expected: &BTreeMap<String, Detail>,
) -> Vec<Delivered> {
    let started = std::time::Instant::now();
    let mut delivered: Vec<Delivered> = Vec::new();
    loop {
        let page: Vec<serde_json::Value> =
            serde_json::from_str(&cloud.cloud_py(&["receive", queue])).expect("receive JSON");
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
            return delivered;
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
}

/// Whether an event is about one of these accounts.
fn concerns(d: &Detail, accounts: &[&str]) -> bool {
    let parties = match &d.body {
        Body::PaymentCommitted(t) | Body::RefundCommitted(t) => [&t.sender_id, &t.recipient_id],
        Body::HoldAuthorized(h) => [&h.sender_id, &h.recipient_id],
        Body::HoldCaptured(h) => [&h.hold.sender_id, &h.hold.recipient_id],
        Body::HoldVoided(h) => [&h.hold.sender_id, &h.hold.recipient_id],
        Body::AccountOpened(o) => [&o.account_id, &o.account_id],
        Body::EntryPosted(e) => [&e.account_id, &e.account_id],
    };
    parties.iter().any(|p| accounts.contains(&p.as_str()))
}

/// The events delivered for the test's accounts: each in EventBridge's
/// envelope, exactly as expected, a repeat the same event under the same
/// id, and each account's entries in sequence order.
fn check_delivered(delivered: &[Delivered], expected: &BTreeMap<String, Detail>) {
    // The envelope, in EventBridge's conventions.
    for d in delivered {
        assert_eq!(d.envelope["source"], SOURCE, "{:?}", d.envelope);
        assert_eq!(d.envelope["detail-type"], d.detail.body.detail_type());
        assert_eq!(d.detail.schema_version, events::SCHEMA_VERSION);
    }
    // Every event exactly as expected; a repeat carries the same id and the
    // same detail; the replayed payment made nothing new.
    let mut by_id: BTreeMap<String, Detail> = BTreeMap::new();
    for d in delivered {
        if let Some(before) = by_id.insert(d.detail.id.clone(), d.detail.clone()) {
            assert_eq!(before, d.detail, "one id, two different events");
        }
    }
    assert_eq!(&by_id, expected);
    // Per account, after dropping repeats: each shard's entries in sequence
    // order, 1, 2, 3... (on AWS an SQS standard queue may reorder them; the
    // sequence is what a consumer orders by).
    let order = sequences_in_order(delivered.iter().map(|d| &d.detail));
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
}
