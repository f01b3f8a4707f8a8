//! Hot accounts and the one-request payment: a merchant paid by many
//! independent containers, sharded balances read and paid out exactly, and
//! what a payment costs in DynamoDB requests on a warm and a cold server.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::pb;
use std::collections::{HashMap, HashSet};
use tonic::Code;

async fn add_sharded(
    c: &mut Client,
    account_id: &str,
    shards: i32,
) -> Result<pb::Account, tonic::Status> {
    c.add_account(pb::AddAccountRequest {
        account_id: account_id.into(),
        display_name: "merchant".into(),
        currency: "EUR".into(),
        initial_balance: 0,
        balance_shards: shards,
    })
    .await
    .map(|r| r.into_inner().account.expect("account"))
}

const CONTAINERS: usize = 8;
const CUSTOMERS_PER_CONTAINER: usize = 2;
const PAYMENTS: usize = 320;
const OPENING: i64 = 1_000_000;
const MERCHANT_SHARDS: i32 = 16;
/// How long a test waits for the writes its gate holds to be in flight
/// together. They normally are within milliseconds; this only bounds a
/// failure (payments that queue behind each other never open the gate).
const GATE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// The Lambda shape: eight servers that share nothing in-process, each
/// serving one request at a time, all paying one merchant. Every payment
/// must commit (no ABORTED), and the ledger must stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merchant_paid_by_independent_containers_takes_every_payment() {
    let first = TestApp::spawn().await;
    let tables = first.ledger.tables().clone();
    let mut apps = vec![first];
    for _ in 1..CONTAINERS {
        apps.push(TestApp::serve(instance(&tables).0).await);
    }
    let mut admin = apps[0].grpc().await;
    let prefix = unique("merchant");
    let merchant = format!("{prefix}-shop");
    let account = add_sharded(&mut admin, &merchant, MERCHANT_SHARDS)
        .await
        .unwrap();
    assert_eq!(account.balance_shards, MERCHANT_SHARDS);
    let customers: Vec<String> = (0..CONTAINERS * CUSTOMERS_PER_CONTAINER)
        .map(|i| format!("{prefix}-c{i}"))
        .collect();
    for id in &customers {
        add(&mut admin, id, "EUR", OPENING).await.unwrap();
    }
    let mut callers = tokio::task::JoinSet::new();
    for (container, app) in apps.iter().enumerate() {
        let mut client = app.grpc().await;
        let (customers, merchant, prefix) = (customers.clone(), merchant.clone(), prefix.clone());
        callers.spawn(async move {
            let mut committed = Vec::new();
            // One request at a time per container, like a Lambda container.
            for n in (container..PAYMENTS).step_by(CONTAINERS) {
                let customer =
                    &customers[container * CUSTOMERS_PER_CONTAINER + n % CUSTOMERS_PER_CONTAINER];
                let amount = 1 + (n as i64 * 7919) % 1000;
                let reply = pay(
                    &mut client,
                    order(&format!("{prefix}-p{n}"), customer, &merchant, amount),
                )
                .await
                .unwrap_or_else(|s| panic!("payment {n} failed: {:?} {}", s.code(), s.message()));
                assert!(!reply.replayed);
                committed.push(reply.transaction.expect("transaction"));
            }
            committed
        });
    }
    let mut committed = HashMap::new();
    while let Some(joined) = callers.join_next().await {
        for tx in joined.unwrap() {
            committed.insert(tx.transaction_id.clone(), tx);
        }
    }
    assert_eq!(committed.len(), PAYMENTS, "every payment commits");
    let mut ids = customers.clone();
    ids.push(merchant.clone());
    check_exactly_once(
        &mut admin,
        &ids,
        OPENING * customers.len() as i64,
        &committed,
    )
    .await;
    let paid: i64 = committed.values().map(|t| t.amount).sum();
    assert_eq!(balance(&mut admin, &merchant).await.unwrap(), paid);
    // How the containers spread over the shards is printed, not asserted:
    // each container starts on a shard it draws at random (unseeded, in the
    // ledger) and moves only after it lost a race, so no spread is certain.
    // What the spread is for is asserted above: every payment committed.
    let mut shards_used: HashMap<i32, usize> = HashMap::new();
    for entry in history_all(&mut admin, &merchant).await {
        *shards_used.entry(entry.shard).or_default() += 1;
    }
    eprintln!("hot/containers: credits per shard {shards_used:?}");
    check_stored_shards(&tables, &merchant, MERCHANT_SHARDS as u32).await;
    let report = apps[0].ledger.audit(4, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    for app in apps {
        app.stop().await;
    }
}

/// A sharded account pays out more than any one shard holds: one payment
/// drawn from several shards, one entry in its history, and the history
/// pages and balance_after chain agree with the balance.
#[tokio::test]
async fn a_sharded_account_pays_out_across_shards_and_reads_exactly() {
    let tables = crate::harness::unique_tables();
    let gate = WriteGate::start(crate::harness::shared_dynamodb()).await;
    let ledger = ledger_via(&gate.url, &tables);
    crate::harness::create_tables_patiently(&ledger).await;
    let app = TestApp::serve(ledger).await;
    let mut c = app.grpc().await;
    let prefix = unique("payout");
    let shop = format!("{prefix}-shop");
    add_sharded(&mut c, &shop, 4).await.unwrap();
    let customers: Vec<String> = (0..3).map(|i| format!("{prefix}-c{i}")).collect();
    for id in &customers {
        add(&mut c, id, "EUR", 10_000).await.unwrap();
    }
    // The instance knows the shop is sharded, so credits to it do not queue
    // on it.
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 0);
    // Each customer's first payment is in flight together with the other
    // two (the gate holds their writes' replies until all three arrived),
    // so they credit three different shards; a customer's next payments
    // queue behind its first.
    gate.arm(customers.len());
    let mut committed = HashMap::new();
    let mut calls = tokio::task::JoinSet::new();
    for (i, id) in customers.iter().enumerate() {
        for k in 0..4 {
            let (mut c, id, shop, key) = (
                c.clone(),
                id.clone(),
                shop.clone(),
                format!("{prefix}-{i}-{k}"),
            );
            calls.spawn(async move { pay(&mut c, order(&key, &id, &shop, 1_000)).await });
        }
    }
    gate.opened(GATE_WAIT_MAX).await;
    while let Some(joined) = calls.join_next().await {
        let tx = joined.unwrap().unwrap().transaction.unwrap();
        committed.insert(tx.transaction_id.clone(), tx);
    }
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 12_000);
    let before = history_all(&mut c, &shop).await;
    let shards: HashSet<i32> = before.iter().map(|e| e.shard).collect();
    assert!(shards.len() >= 3, "credits on three shards: {shards:?}");
    let stored = stored_shards(&tables, &shop, 4).await;
    let largest_shard = stored.iter().map(|(_, b)| *b).max().unwrap();
    // More than any one shard holds, less than the account: several shards.
    let payout = largest_shard + 500;
    assert!(payout < 12_000, "{stored:?}");
    let reply = pay(
        &mut c,
        order(&format!("{prefix}-out"), &shop, &customers[0], payout),
    )
    .await
    .unwrap();
    let tx = reply.transaction.unwrap();
    committed.insert(tx.transaction_id.clone(), tx.clone());
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 12_000 - payout);
    // The whole account cannot be paid out twice.
    assert_code(
        pay(
            &mut c,
            order(&format!("{prefix}-too-much"), &shop, &customers[1], 12_000),
        )
        .await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    let history = history_all(&mut c, &shop).await;
    assert_eq!(history.len(), 13, "12 credits and one payout entry");
    let newest = &history[0];
    assert_eq!(
        newest.transaction.as_ref().unwrap().transaction_id,
        tx.transaction_id
    );
    assert_eq!(newest.direction, pb::Direction::Debit as i32);
    assert_eq!(newest.transaction.as_ref().unwrap().amount, payout);
    check_balance_chain(&shop, 12_000 - payout, &history);
    // Stored: one record naming parts on several shards, each part an entry
    // of the payout's transaction on its shard.
    let legs = stored_debit_legs(&tables, &shop, &format!("{prefix}-out")).await;
    assert!(legs.len() >= 2, "the payout drew from one shard: {legs:?}");
    assert_eq!(legs.iter().map(|l| l.2).sum::<i64>(), payout, "{legs:?}");
    for (shard, sequence, part) in &legs {
        let entries = stored_entries(&tables, &shop, *shard).await;
        let entry = entries
            .iter()
            .find(|e| e.sequence == *sequence)
            .unwrap_or_else(|| panic!("no entry {sequence} on shard {shard}: {entries:?}"));
        assert_eq!(
            (&entry.transaction_id, entry.debit, entry.amount),
            (&tx.transaction_id, true, *part)
        );
    }
    check_stored_shards(&tables, &shop, 4).await;
    // Paging by 2 gives the same entries in the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..20 {
        let page = history_page(&mut c, &shop, 2, &token).await.unwrap();
        token = page
            .last()
            .map(|e| e.next_page_token.clone())
            .unwrap_or_default();
        paged.extend(page);
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, history);
    let mut ids = customers.clone();
    ids.push(shop.clone());
    check_exactly_once(&mut c, &ids, 30_000, &committed).await;
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    // A token from the sharded history does not fit an ordinary account.
    let other = &customers[2];
    let shop_token = history_page(&mut c, &shop, 1, "").await.unwrap()[0]
        .next_page_token
        .clone();
    assert_code(
        history_page(&mut c, other, 1, &shop_token).await,
        Code::InvalidArgument,
        "another account",
    );
}

/// What a payment costs: one TransactWriteItems on a warm instance; a cold
/// instance reads both accounts once first; a stale instance learns the
/// new state from the failed write itself, without a read.
#[tokio::test]
async fn a_warm_payment_costs_one_dynamodb_request() {
    let tables = crate::harness::unique_tables();
    let (warm, counter) = instance(&tables);
    crate::harness::create_tables_patiently(&warm).await;
    let app = TestApp::serve(warm).await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let cost = |before: std::collections::BTreeMap<String, u64>| {
        let now = counter.snapshot();
        now.iter()
            .filter_map(|(op, n)| {
                let d = n - before.get(op).copied().unwrap_or(0);
                (d > 0).then(|| (op.clone(), d))
            })
            .collect::<Vec<_>>()
    };
    let tx = |n: u64| vec![("TransactWriteItems".to_owned(), n)];
    for k in ["k1", "k2", "k3"] {
        let before = counter.snapshot();
        pay(&mut c, order(k, &a, &b, 10)).await.unwrap();
        assert_eq!(cost(before), tx(1), "a warm payment is one write");
    }
    let before = counter.snapshot();
    assert!(pay(&mut c, order("k1", &a, &b, 10)).await.unwrap().replayed);
    assert_eq!(
        cost(before),
        tx(1),
        "a replay is answered by the failed write"
    );
    let before = counter.snapshot();
    assert_eq!(balance(&mut c, &a).await.unwrap(), 970);
    assert_eq!(
        cost(before),
        vec![("GetItem".to_owned(), 1)],
        "a balance is one strongly consistent read"
    );

    // A second instance (a cold container) on the same tables.
    let (cold, cold_counter) = instance(&tables);
    let other = TestApp::serve(cold).await;
    let mut o = other.grpc().await;
    let before = cold_counter.total();
    pay(&mut o, order("k4", &a, &b, 10)).await.unwrap();
    let snapshot = cold_counter.snapshot();
    assert_eq!(cold_counter.total() - before, 2, "{snapshot:?}");
    assert_eq!(snapshot.get("BatchGetItem"), Some(&1));
    let before = cold_counter.total();
    pay(&mut o, order("k5", &a, &b, 10)).await.unwrap();
    assert_eq!(cold_counter.total() - before, 1, "warm now");

    // The first instance's memory of a and b is stale now: its write fails
    // and returns the current items, and the next round commits.
    let before = counter.snapshot();
    let reply = pay(&mut c, order("k6", &a, &b, 10)).await.unwrap();
    assert!(!reply.replayed);
    assert_eq!(cost(before), tx(2), "stale: a failed write, then the write");
    assert_eq!(balance(&mut c, &a).await.unwrap(), 940);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 60);
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    other.stop().await;
    app.stop().await;
}

/// A merchant refunds more than any one of its shards has: the refund draws
/// from several shards in one transaction, and balances and history stay
/// exact.
///
/// The shard balances are built on purpose: four payments to the shop (of
/// 40.00 and three of 20.00, from four senders) are in flight together, held
/// by a gate in front of DynamoDB until all four writes arrived, so they
/// credit the four shards one each. A payout of 39.00 then leaves the
/// 40.00 shard at 1.00, and no shard holds the 40.00 the refund takes.
#[tokio::test]
async fn a_sharded_merchant_refunds_across_shards() {
    let tables = crate::harness::unique_tables();
    let gate = WriteGate::start(crate::harness::shared_dynamodb()).await;
    let ledger = ledger_via(&gate.url, &tables);
    crate::harness::create_tables_patiently(&ledger).await;
    let app = TestApp::serve(ledger).await;
    let mut c = app.grpc().await;
    let prefix = unique("refund-shards");
    let shop = format!("{prefix}-shop");
    add_sharded(&mut c, &shop, 4).await.unwrap();
    let (buyer, others) = (format!("{prefix}-buyer"), format!("{prefix}-others"));
    add(&mut c, &buyer, "EUR", 10_000).await.unwrap();
    add(&mut c, &others, "EUR", 0).await.unwrap();
    let customers: Vec<String> = (0..3).map(|i| format!("{prefix}-c{i}")).collect();
    for customer in &customers {
        add(&mut c, customer, "EUR", 2_000).await.unwrap();
    }
    // Known as sharded by the instance: credits to it do not queue on it.
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 0);
    gate.arm(4);
    let mut calls = tokio::task::JoinSet::new();
    let payers = std::iter::once((&buyer, 4_000)).chain(customers.iter().map(|c| (c, 2_000)));
    for (payer, amount) in payers {
        let (mut c, request) = (c.clone(), order("to-shop", payer, &shop, amount));
        calls.spawn(async move { pay(&mut c, request).await });
    }
    gate.opened(GATE_WAIT_MAX).await;
    let mut big = None;
    while let Some(joined) = calls.join_next().await {
        let tx = joined.unwrap().unwrap().transaction.unwrap();
        if tx.sender_id == buyer {
            big = Some(tx);
        }
    }
    let big = big.expect("the big payment");
    let stored = stored_shards(&tables, &shop, 4).await;
    let mut balances: Vec<i64> = stored.iter().map(|(_, b)| *b).collect();
    balances.sort();
    assert_eq!(
        balances,
        [2_000, 2_000, 2_000, 4_000],
        "one credit per shard: {stored:?}"
    );
    let big_shard = stored.iter().position(|(_, b)| *b == 4_000).unwrap();
    // Drain the shard that took the big payment to 1.00: the only shard
    // that covers 39.00, so the payout takes it alone.
    let drain = pay(
        &mut c,
        order(&format!("{prefix}-drain"), &shop, &others, 3_900),
    )
    .await
    .unwrap();
    assert!(!drain.replayed);
    let before = stored_shards(&tables, &shop, 4).await;
    let expected: Vec<i64> = (0..4)
        .map(|k| if k == big_shard { 100 } else { 2_000 })
        .collect();
    assert_eq!(
        before.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
        expected,
        "the drain took the 40.00 shard alone"
    );
    let refund = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: format!("{prefix}-refund"),
            payment: Some(pb::PaymentRef {
                transaction_id: big.transaction_id.clone(),
                ..Default::default()
            }),
            amount: 0,
            memo: "returned".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let refund_tx = refund.transaction.unwrap();
    assert_eq!((refund_tx.amount, refund.refunded_total), (4_000, 4_000));
    // One transaction: its record names every part, each part is an entry
    // of the refund on its shard with the shard's next version, and no
    // other shard changed.
    let legs = stored_debit_legs(&tables, &shop, &format!("{prefix}-refund")).await;
    assert!(legs.len() >= 2, "the refund drew from one shard: {legs:?}");
    assert_eq!(legs.iter().map(|l| l.2).sum::<i64>(), 4_000, "{legs:?}");
    let after = stored_shards(&tables, &shop, 4).await;
    for shard in 0..4u32 {
        let (version, balance) = before[shard as usize];
        match legs.iter().find(|l| l.0 == shard) {
            Some(&(_, sequence, part)) => {
                assert!(part > 0 && part <= balance, "{legs:?} {before:?}");
                assert_eq!(after[shard as usize], (version + 1, balance - part));
                assert_eq!(sequence, version + 1);
                let entries = stored_entries(&tables, &shop, shard).await;
                let entry = entries.last().unwrap();
                assert_eq!(
                    (
                        &entry.transaction_id,
                        entry.sequence,
                        entry.debit,
                        entry.amount
                    ),
                    (&refund_tx.transaction_id, sequence, true, part),
                    "shard {shard}"
                );
            }
            None => assert_eq!(after[shard as usize], (version, balance), "shard {shard}"),
        }
    }
    assert_eq!(balance(&mut c, &buyer).await.unwrap(), 10_000);
    let total = 10_000 - 3_900 - 4_000;
    assert_eq!(balance(&mut c, &shop).await.unwrap(), total);
    // The history shows the refund once, as one debit of the whole amount.
    let history = history_all(&mut c, &shop).await;
    let shown: Vec<_> = history
        .iter()
        .filter(|e| e.transaction.as_ref().unwrap().transaction_id == refund_tx.transaction_id)
        .collect();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(shown[0].direction, pb::Direction::Debit as i32);
    assert_eq!(shown[0].transaction.as_ref().unwrap().amount, 4_000);
    check_balance_chain(&shop, total, &history);
    check_stored_shards(&tables, &shop, 4).await;
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
}

/// What holds and refunds cost in DynamoDB requests: on a warm server (it
/// knows the accounts and the records it wrote) one TransactWriteItems
/// each, like a payment; on a cold one (a new container) what it must read
/// first. The counts are asserted, and printed for docs/api.md.
#[tokio::test]
async fn what_holds_and_refunds_cost_in_dynamodb_requests() {
    let tables = crate::harness::unique_tables();
    let (warm, counter) = instance(&tables);
    crate::harness::create_tables_patiently(&warm).await;
    let app = TestApp::serve(warm).await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 10_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let hold = |key: &str| pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: a.clone(),
        recipient_id: b.clone(),
        amount: 1_000,
        currency: "EUR".into(),
        memo: String::new(),
        expires_in_seconds: 600,
    };
    let by_key = |key: &str| {
        Some(pb::PaymentRef {
            sender_id: a.clone(),
            idempotency_key: key.into(),
            ..Default::default()
        })
    };
    let capture = |key: &str| pb::CaptureHoldRequest {
        hold: by_key(key),
        amount: 0,
    };
    let refund = |key: &str, of: &str| pb::RefundPaymentRequest {
        idempotency_key: key.into(),
        payment: by_key(of),
        amount: 100,
        memo: String::new(),
    };
    let writes = |n: u64| vec![("TransactWriteItems".to_owned(), n)];
    let mut costs = Vec::new();

    // Warm: the server opened both accounts.
    let before = counter.snapshot();
    c.authorize_payment(hold("h1")).await.unwrap();
    assert_eq!(cost(&counter, before), writes(1), "authorize, warm");
    let before = counter.snapshot();
    let replay = c.authorize_payment(hold("h1")).await.unwrap().into_inner();
    assert!(replay.replayed);
    assert_eq!(
        cost(&counter, before),
        writes(1),
        "a replayed authorize is answered by the failed write"
    );
    let before = counter.snapshot();
    c.capture_hold(capture("h1")).await.unwrap();
    assert_eq!(cost(&counter, before), writes(1), "capture, warm");
    c.authorize_payment(hold("h2")).await.unwrap();
    let before = counter.snapshot();
    c.void_hold(pb::VoidHoldRequest { hold: by_key("h2") })
        .await
        .unwrap();
    assert_eq!(cost(&counter, before), writes(1), "void, warm");
    let paid = pay(&mut c, order("p", &a, &b, 500))
        .await
        .unwrap()
        .transaction
        .unwrap();
    let before = counter.snapshot();
    c.refund_payment(refund("r1", "p")).await.unwrap();
    assert_eq!(cost(&counter, before), writes(1), "refund, warm");
    let before = counter.snapshot();
    c.refund_payment(refund("r2", "p")).await.unwrap();
    assert_eq!(
        cost(&counter, before),
        writes(1),
        "a second refund of the payment, warm"
    );
    let before = counter.snapshot();
    c.get_payment(pb::GetPaymentRequest {
        payment: Some(pb::PaymentRef {
            transaction_id: paid.transaction_id,
            ..Default::default()
        }),
        finalize: false,
    })
    .await
    .unwrap();
    let lookup = counter.snapshot().values().sum::<u64>() - before.values().sum::<u64>();
    assert_eq!(lookup, 2, "a lookup by id: the index, then the record");
    costs.push("warm: authorize 1, capture 1, void 1, refund 1, lookup by id 2".to_owned());

    // Cold: a second instance that has never seen the accounts or records.
    let (cold, cold_counter) = instance(&tables);
    let other = TestApp::serve(cold).await;
    let mut o = other.grpc().await;
    // A hold the first instance places; the cold one captures it below.
    c.authorize_payment(hold("h4")).await.unwrap();
    let before = cold_counter.snapshot();
    o.authorize_payment(hold("h3")).await.unwrap();
    assert_eq!(
        cost(&cold_counter, before),
        vec![
            ("BatchGetItem".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1)
        ],
        "authorize, cold: both accounts and the key's record in one read"
    );
    // A hold this instance did not place, on accounts it now knows.
    let before = cold_counter.snapshot();
    o.capture_hold(capture("h4")).await.unwrap();
    let capture_cold = cost(&cold_counter, before);
    assert_eq!(
        capture_cold,
        vec![
            ("GetItem".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1)
        ],
        "capture of another instance's hold: its record, then the write"
    );
    let before = cold_counter.snapshot();
    o.refund_payment(refund("r3", "p")).await.unwrap();
    assert_eq!(
        cost(&cold_counter, before),
        vec![
            ("GetItem".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1)
        ],
        "refund of another instance's payment: its record, then the write"
    );
    // The first instance's memory of b's shard and of the payment is stale
    // now: one failed write returns both, and the next commits.
    let before = counter.snapshot();
    c.refund_payment(refund("r4", "p")).await.unwrap();
    assert_eq!(cost(&counter, before), writes(2), "refund, stale");
    costs.push(format!(
        "cold: authorize 2 (BatchGetItem + write), capture {capture_cold:?}"
    ));
    eprintln!("DynamoDB requests per call: {}", costs.join("; "));
    assert_eq!(
        balance(&mut c, &a).await.unwrap(),
        10_000 - 1_000 - 500 + 400 - 1_000
    );
    assert_eq!(
        balance(&mut c, &b).await.unwrap(),
        1_000 + 500 - 400 + 1_000
    );
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    other.stop().await;
    app.stop().await;
}

/// A void on an instance that has never seen the hold's accounts reads
/// only the record, then writes once: the hold's entry in its shard, and
/// (for a caller who is not an admin) that the caller owns the recipient,
/// are conditions of that write. Two requests, as for an admin; a caller
/// who may not void the hold is refused as on a warm instance, and nothing
/// is written.
#[tokio::test]
async fn a_void_on_a_cold_instance_reads_only_the_record() {
    use crate::holds::{by_key, hold_order};
    let tables = crate::harness::unique_tables();
    let (warm, _) = instance(&tables);
    crate::harness::create_tables_patiently(&warm).await;
    let app = TestApp::serve(warm).await;
    let (alice, bob) = (unique("alice"), unique("bob"));
    let mut al = app.grpc_as(&alice, false).await;
    let mut bo = app.grpc_as(&bob, false).await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut al, &a, "EUR", 0).await.unwrap();
    add(&mut bo, &b, "EUR", 0).await.unwrap();
    let (mut admin, bank) = (app.grpc().await, unique("bank"));
    add(&mut admin, &bank, "EUR", 10_000).await.unwrap();
    pay(&mut admin, order("fund", &bank, &a, 10_000))
        .await
        .unwrap();
    for key in ["h1", "h2", "h3"] {
        al.authorize_payment(hold_order(key, &a, &b, 1_000, 600))
            .await
            .unwrap();
    }
    let void = |key: &str| pb::VoidHoldRequest {
        hold: by_key(&a, key),
    };
    let read_then_write = vec![
        ("GetItem".to_owned(), 1),
        ("TransactWriteItems".to_owned(), 1),
    ];

    // Refused on cold instances, each new: nothing is written.
    let eve = unique("eve");
    for (sub, code, needle) in [
        (eve.as_str(), Code::NotFound, "hold"),
        (alice.as_str(), Code::PermissionDenied, "may not void"),
    ] {
        let (cold, _) = instance(&tables);
        let other = TestApp::serve(cold).await;
        let mut o = other.grpc_as(sub, false).await;
        assert_code(o.void_hold(void("h1")).await, code, needle);
        other.stop().await;
    }
    let held = |account: pb::Account| (account.balance, account.held);
    let account = |id: String| pb::GetAccountBalanceRequest { account_id: id };
    let a_now = al.get_account_balance(account(a.clone())).await.unwrap();
    assert_eq!(
        held(a_now.into_inner().account.unwrap()),
        (10_000, 3_000),
        "every hold still reserves its money"
    );

    // The recipient's owner, on a cold instance: the record, then the write.
    let (cold, counter) = instance(&tables);
    let other = TestApp::serve(cold).await;
    let mut o = other.grpc_as(&bob, false).await;
    let before = counter.snapshot();
    let voided = o.void_hold(void("h1")).await.unwrap().into_inner();
    assert_eq!(cost(&counter, before), read_then_write, "void, cold");
    assert!(!voided.replayed);
    assert_eq!(
        voided.hold.unwrap().state,
        pb::HoldState::Voided as i32,
        "voided by this call"
    );
    let again = o.void_hold(void("h1")).await.unwrap().into_inner();
    assert!(again.replayed, "a second void answers the first");
    other.stop().await;

    // An admin, on another cold instance: the same two requests.
    let (cold, counter) = instance(&tables);
    let other = TestApp::serve(cold).await;
    let mut o = other.grpc().await;
    let before = counter.snapshot();
    o.void_hold(void("h2")).await.unwrap();
    assert_eq!(
        cost(&counter, before),
        read_then_write,
        "void by an admin, cold"
    );
    other.stop().await;

    // The first instance's memory of a's shard is stale now: it still
    // pays and captures correctly.
    pay(&mut al, order("p", &a, &b, 2_000)).await.unwrap();
    bo.capture_hold(pb::CaptureHoldRequest {
        hold: by_key(&a, "h3"),
        amount: 0,
    })
    .await
    .unwrap();
    let a_now = al.get_account_balance(account(a.clone())).await.unwrap();
    assert_eq!(held(a_now.into_inner().account.unwrap()), (7_000, 0));
    let b_now = bo.get_account_balance(account(b.clone())).await.unwrap();
    assert_eq!(held(b_now.into_inner().account.unwrap()), (3_000, 0));
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    app.stop().await;
}
