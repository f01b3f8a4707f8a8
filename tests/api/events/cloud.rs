//! On the local cloud (tests/api/cloud.rs deploys the stack and calls
//! this): the real path, stream → event source mapping → payment-events →
//! bus → rule → a team's SQS queue.

use super::expected::*;
use crate::helpers::unique;
use crate::holds::{by_id, hold_order};
use payment::events;
use payment::events::schema::{Body, Detail, HoldCaptured, HoldVoided, SOURCE};
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
