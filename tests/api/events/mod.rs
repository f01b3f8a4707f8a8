//! payment-events on DynamoDB Local's real streams: calls through the
//! service, the tables' stream records read with GetRecords and handed to
//! the library's handler in Lambda's event shape, and PutEvents answered by
//! a small bus on 127.0.0.1 that speaks EventBridge's JSON protocol to the
//! real SDK client and fails the entries a test chooses.

mod bus;
mod cloud;
mod expected;
mod movements;
mod streams;

pub(crate) use cloud::events_reach_a_subscribed_queue;

use crate::harness::{TestApp, fresh_ledger};
use crate::helpers::*;
use bus::{BUS, FakeBus};
use expected::*;
use movements::make_movements;
use payment::events;
use payment::events::schema::{Body, Detail, EntryPosted, SOURCE};
use payment::pb;
use std::collections::{BTreeMap, BTreeSet};
use streams::*;

/// A ledger with streams on, served; its tables; a client as TESTER; and
/// two accounts opened through it: alice with 10,000 and bob with nothing.
struct Scene {
    app: TestApp,
    tables: payment::ledger::Tables,
    c: Client,
    alice: String,
    bob: String,
    /// alice's and bob's accounts, as opened.
    opened: [pb::Account; 2],
}

async fn scene() -> Scene {
    let ledger = fresh_ledger().await;
    ledger.enable_streams().await.expect("streams on");
    let app = TestApp::serve(ledger).await;
    let tables = app.ledger.tables().clone();
    let mut c = app.grpc().await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let opened = [
        add(&mut c, &alice, "EUR", 10_000).await.unwrap(),
        add(&mut c, &bob, "EUR", 0).await.unwrap(),
    ];
    Scene {
        app,
        tables,
        c,
        alice,
        bob,
        opened,
    }
}

/// The stream records that make the events `ids`, from both tables, run
/// through the handler as the event source mapping runs them (batches of
/// `batch`) to a bus that refuses nothing: none is reported, and what the
/// bus accepted is returned.
async fn publish_all(
    tables: &payment::ledger::Tables,
    ids: &BTreeSet<String>,
    batch: usize,
) -> Vec<bus::Received> {
    let [accounts, ledger] = records_making(tables, ids).await;
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    for records in [&accounts, &ledger] {
        assert!(
            run_mapping(&publisher, tables, records, batch, 2)
                .await
                .is_empty()
        );
    }
    bus.accepted()
}

// ---------------------------------------------------------------------------
// The tests.

/// A known sequence of calls makes exactly these events: each movement
/// once, with its stable id and every field, each account's entries in
/// sequence order, and a replayed payment adds nothing.
#[tokio::test]
async fn each_movement_makes_exactly_its_event() {
    let Scene {
        app: _app,
        tables,
        mut c,
        alice,
        bob,
        opened: [alice_account, bob_account],
    } = scene().await;
    let movements = make_movements(&mut c, &alice, &bob).await;

    // What the events must be, from the service's own answers.
    let mut expected: Vec<Detail> = vec![opened(&alice_account), opened(&bob_account)];
    expected.extend(movement_events(&movements));
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
    let accepted = publish_all(&tables, &ids, 100).await;
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
    for ((account, _), sequences) in sequences_in_order(accepted.iter().map(|r| &r.detail)) {
        let n = sequences.len() as u64;
        assert_eq!(sequences, (1..=n).collect::<Vec<_>>(), "{account}");
    }
}

/// A sharded merchant: every shard's entries once, in sequence order, each
/// shard's balance a running sum, and each payment's parts adding up.
#[tokio::test]
async fn a_sharded_account_posts_each_shard_in_sequence() {
    let Scene {
        app: _app,
        tables,
        mut c,
        alice,
        bob,
        ..
    } = scene().await;
    let merchant = unique("merchant");
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
    // Small batches: the order must hold across invocations too.
    let accepted = publish_all(&tables, &ids, 7).await;
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
    let mut by_shard: BTreeMap<u32, Vec<&EntryPosted>> = BTreeMap::new();
    for e in &merchant_entries {
        by_shard.entry(e.shard).or_default().push(e);
    }
    check_shards_in_sequence(&by_shard);
    check_payment_parts(&merchant_entries, &incoming, &payout.transaction_id);
    check_stored_entries(&tables, &merchant, &by_shard).await;
    check_payments_committed(&accepted, &incoming, &payout);
    // And the shards' balances add up to the account's.
    let last_balances: i64 = by_shard
        .values()
        .map(|entries| entries.last().map_or(0, |e| e.balance_after_minor))
        .sum();
    assert_eq!(last_balances, balance(&mut c, &merchant).await.unwrap());
}

/// Once each, every shard from sequence 1 without a gap, in put order, its
/// balance a running sum.
fn check_shards_in_sequence(by_shard: &BTreeMap<u32, Vec<&EntryPosted>>) {
    assert!(by_shard.keys().all(|s| *s < 4));
    for (shard, entries) in by_shard {
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
}

/// Each incoming payment: one credit of 100 in one shard; the payout:
/// debits from one or more shards adding up to 700, one per shard.
fn check_payment_parts(merchant_entries: &[EntryPosted], incoming: &[String], payout: &str) {
    for t in incoming {
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
    let parts: Vec<&EntryPosted> = merchant_entries
        .iter()
        .filter(|e| e.transaction.transaction_id == payout)
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
}

/// Exactly what each shard stored, entry by entry (helpers::stored_entries
/// reads the shard's history straight from DynamoDB Local).
async fn check_stored_entries(
    tables: &payment::ledger::Tables,
    merchant: &str,
    by_shard: &BTreeMap<u32, Vec<&EntryPosted>>,
) {
    for shard in 0..4u32 {
        let stored: Vec<(u64, String, bool, i64, i64)> = stored_entries(tables, merchant, shard)
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
}

/// The payments themselves, each once, exactly.
fn check_payments_committed(
    accepted: &[bus::Received],
    incoming: &[String],
    payout: &pb::Transaction,
) {
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
            Body::PaymentCommitted(transfer(payout)),
        )
    );
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
    let Scene {
        app: _app,
        tables,
        mut c,
        alice,
        bob,
        ..
    } = scene().await;
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
    let failing = format!("payment.committed/{}", payments[1]);
    let at = made
        .iter()
        .position(|id| id.as_deref() == Some(failing.as_str()))
        .expect("the chosen event's record");
    let case = Failing {
        tables,
        ledger,
        made,
        failing,
        at,
    };
    fails_once(&case).await;
    fails_always(&case).await;
}

/// The ledger's stream records of a few payments, and the one whose event
/// the bus refuses.
struct Failing {
    tables: payment::ledger::Tables,
    ledger: Vec<serde_json::Value>,
    /// The event each record makes, if any.
    made: Vec<Option<String>>,
    failing: String,
    /// The failing event's record.
    at: usize,
}

/// The bus refuses the event once: its record is reported, then
/// re-delivered from; every event is put once, in sequence order.
async fn fails_once(case: &Failing) {
    let Failing {
        tables,
        ledger,
        made,
        failing,
        at: failing_record,
    } = case;
    let failing_record = *failing_record;
    let every_id: BTreeSet<String> = made.iter().flatten().cloned().collect();
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    bus.fail(failing, 1);
    let first = events::handle(&publisher, tables, &batch(ledger))
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
            .any(|r| r.detail.id == *failing && !r.accepted)
    );
    let calls_before = calls.len();
    let second = events::handle(&publisher, tables, &batch(&ledger[failing_record..]))
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
    for ((account, _), sequences) in sequences_in_order(accepted.iter().map(|r| &r.detail)) {
        let n = sequences.len() as u64;
        assert_eq!(sequences, (1..=n).collect::<Vec<_>>(), "{account}");
    }
}

/// The bus always refuses the event: every attempt reports it and puts
/// nothing after it; the mapping gives it (and what follows it in its
/// batch) up.
async fn fails_always(case: &Failing) {
    let Failing {
        tables,
        ledger,
        made,
        failing,
        at: failing_record,
    } = case;
    let failing_record = *failing_record;
    let bus = FakeBus::start().await;
    let publisher = bus.publisher();
    bus.fail(failing, usize::MAX);
    let given_up = run_mapping(&publisher, tables, ledger, ledger.len(), 2).await;
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
        .filter(|r| r.detail.id == *failing)
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
        .filter(|call| call.iter().any(|r| r.detail.id == *failing))
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
    let Scene {
        app: _app,
        tables,
        mut c,
        alice,
        bob,
        ..
    } = scene().await;
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
