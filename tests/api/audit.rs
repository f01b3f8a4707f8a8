//! The ledger audit: clean on an honest ledger, and it finds tampering.

use crate::harness::{TestApp, shared_dynamodb};
use crate::helpers::*;
use aws_sdk_dynamodb::types::AttributeValue;
use payment::pb;

#[tokio::test]
async fn the_audit_is_clean_after_activity_and_finds_tampering() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let ids: Vec<String> = (0..4).map(|i| unique(&format!("acct{i}"))).collect();
    for (i, id) in ids.iter().enumerate() {
        add(&mut c, id, "EUR", 1_000 * i as i64).await.unwrap();
    }
    // Payments go round the four accounts; the two from an account without
    // enough money are refused, every other one moves its money once.
    let mut expected_balances = [0, 1_000, 2_000, 3_000];
    let mut paid = 0;
    for n in 0..20 {
        let (from, to, amount) = (n % 4, (n + 1) % 4, 37 + n as i64);
        let result = pay(
            &mut c,
            order(&format!("k{n}"), &ids[from], &ids[to], amount),
        )
        .await;
        if expected_balances[from] >= amount {
            let reply = result.unwrap_or_else(|e| panic!("payment {n}: {e:?}"));
            assert!(!reply.replayed, "payment {n}");
            let tx = reply.transaction.expect("a transaction");
            assert_eq!(
                (tx.sender_id.as_str(), tx.recipient_id.as_str(), tx.amount),
                (ids[from].as_str(), ids[to].as_str(), amount),
                "payment {n}"
            );
            expected_balances[from] -= amount;
            expected_balances[to] += amount;
            paid += 1;
        } else {
            let e = result.expect_err(&format!("payment {n} exceeds the sender's balance"));
            assert_eq!(
                e.code(),
                tonic::Code::FailedPrecondition,
                "payment {n}: {e:?}"
            );
            assert!(e.message().contains("insufficient funds"), "{e:?}");
        }
    }
    assert_eq!(
        paid, 18,
        "payments 0 and 4 are refused, the 18 others go through"
    );
    for (id, want) in ids.iter().zip(expected_balances) {
        assert_eq!(balance(&mut c, id).await.unwrap(), want, "{id}");
    }
    let report = app.ledger.audit(3, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    assert_eq!(report.accounts, 4);
    assert_eq!(report.total_balance_minor, 6_000);
    assert_eq!(report.total_opening_minor, 6_000);
    assert_eq!(report.payments, paid);
    // Three opening entries (the first account opens empty) and two per payment.
    assert_eq!(report.entries, 3 + 2 * paid);

    // Someone edits a balance behind the ledger's back.
    let dynamodb = crate::local_dynamodb::client(shared_dynamodb());
    dynamodb
        .update_item()
        .table_name(&app.ledger.tables().accounts)
        .key("account_id", AttributeValue::S(ids[1].clone()))
        .update_expression("SET balance = balance + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    // ... and deletes one side of a payment.
    let entry_pk = format!("A#{}", ids[2]);
    let newest = dynamodb
        .query()
        .table_name(&app.ledger.tables().ledger)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(entry_pk.clone()))
        .scan_index_forward(false)
        .limit(1)
        .send()
        .await
        .unwrap();
    let sk = newest.items()[0]["sk"].clone();
    let AttributeValue::S(deleted_tx) = newest.items()[0]["transaction_id"].clone() else {
        panic!("entry without a transaction id");
    };
    dynamodb
        .delete_item()
        .table_name(&app.ledger.tables().ledger)
        .key("pk", AttributeValue::S(entry_pk))
        .key("sk", sk)
        .send()
        .await
        .unwrap();
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(!report.is_clean());
    let text = report.discrepancies.join("\n");
    assert!(
        text.contains(&format!("account {}: balance", ids[1])),
        "{text}"
    );
    assert!(text.contains("money was created or lost"), "{text}");
    assert!(
        text.contains(&format!("account {}: version", ids[2])),
        "{text}"
    );
    // The deleted entry's transaction is named, with the deleted side
    // expected and not found.
    let line = report
        .discrepancies
        .iter()
        .find(|l| l.starts_with(&format!("transaction {deleted_tx}: expected entries")))
        .unwrap_or_else(|| panic!("no discrepancy names transaction {deleted_tx}: {text}"));
    let (expected, found) = line
        .split_once(", found ")
        .expect("expected ..., found ...");
    let side = format!("{:?}", ids[2]);
    assert!(expected.contains(&side), "{line}");
    assert!(!found.contains(&side), "{line}");
}

/// An item the ledger cannot read is reported, and the audit goes on to
/// check everything else.
#[tokio::test]
async fn the_audit_reports_malformed_items_and_goes_on() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("sound-a"), unique("sound-b"));
    add(&mut c, &a, "EUR", 500).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    pay(&mut c, order(&unique("k"), &a, &b, 200)).await.unwrap();
    let dynamodb = crate::local_dynamodb::client(shared_dynamodb());
    let broken_account = unique("broken");
    dynamodb
        .put_item()
        .table_name(&app.ledger.tables().accounts)
        .item("account_id", AttributeValue::S(broken_account.clone()))
        .item("balance", AttributeValue::S("not a number".into()))
        .send()
        .await
        .unwrap();
    let broken_entry = format!("A#{}", unique("nobody"));
    dynamodb
        .put_item()
        .table_name(&app.ledger.tables().ledger)
        .item("pk", AttributeValue::S(broken_entry.clone()))
        .item("sk", AttributeValue::S("E#1".into()))
        .send()
        .await
        .unwrap();
    let report = app
        .ledger
        .audit(2, &|_, _| {})
        .await
        .expect("the audit runs");
    let text = report.discrepancies.join("\n");
    assert!(
        text.contains(&broken_account) && text.contains("does not decode"),
        "{text}"
    );
    assert!(
        text.contains(&broken_entry) && text.contains("does not decode"),
        "{text}"
    );
    assert_eq!(
        report.discrepancies_total, 2,
        "only the two broken items: {text}"
    );
    assert_eq!(report.accounts, 2, "the sound accounts were still checked");
    assert_eq!(report.total_balance_minor, 500);
}

// Each check below: an honest ledger built through the service audits
// clean, then one item is edited directly in DynamoDB and the audit names
// that discrepancy in its own words.

/// The key of a ledger-table item: a history entry or a record.
type LedgerKey = (String, String);

fn entry_key(account_id: &str, shard: u32, sequence: u64) -> LedgerKey {
    let pk = if shard == 0 {
        format!("A#{account_id}")
    } else {
        format!("A#{account_id}#{shard}")
    };
    (pk, format!("E#{sequence:020}"))
}

fn record_key(sender_id: &str, idempotency_key: &str) -> LedgerKey {
    (format!("P#{sender_id}"), format!("K#{idempotency_key}"))
}

/// Sets attributes of an existing ledger-table item (the condition keeps
/// a wrong key from creating an item).
async fn tamper_ledger(app: &TestApp, key: &LedgerKey, set: &[(&str, AttributeValue)]) {
    let mut update = direct_dynamodb()
        .update_item()
        .table_name(&app.ledger.tables().ledger)
        .key("pk", AttributeValue::S(key.0.clone()))
        .key("sk", AttributeValue::S(key.1.clone()))
        .condition_expression("attribute_exists(pk)");
    let mut assignments = Vec::new();
    for (i, (name, value)) in set.iter().enumerate() {
        assignments.push(format!("#a{i} = :v{i}"));
        update = update
            .expression_attribute_names(format!("#a{i}"), *name)
            .expression_attribute_values(format!(":v{i}"), value.clone());
    }
    update
        .update_expression(format!("SET {}", assignments.join(", ")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("tampering with {key:?}: {e:?}"));
}

/// Runs `expression` (with `values`) on an existing item of the accounts
/// table.
async fn tamper_account(
    app: &TestApp,
    account_key: &str,
    expression: &str,
    values: &[(&str, AttributeValue)],
) {
    let mut update = direct_dynamodb()
        .update_item()
        .table_name(&app.ledger.tables().accounts)
        .key("account_id", AttributeValue::S(account_key.to_owned()))
        .condition_expression("attribute_exists(account_id)")
        .update_expression(expression);
    for (name, value) in values {
        update = update.expression_attribute_values(*name, value.clone());
    }
    update
        .send()
        .await
        .unwrap_or_else(|e| panic!("tampering with {account_key}: {e:?}"));
}

/// A number attribute of a ledger-table item.
async fn ledger_number(app: &TestApp, key: &LedgerKey, name: &str) -> i64 {
    let item = direct_dynamodb()
        .get_item()
        .table_name(&app.ledger.tables().ledger)
        .key("pk", AttributeValue::S(key.0.clone()))
        .key("sk", AttributeValue::S(key.1.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap_or_else(|| panic!("no item {key:?}"));
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        other => panic!("{key:?}: {name} is {other:?}"),
    }
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

async fn audit_clean(app: &TestApp) -> payment::ledger::AuditReport {
    let report = app
        .ledger
        .audit(2, &|_, _| {})
        .await
        .expect("the audit runs");
    assert!(
        report.is_clean(),
        "the honest ledger: {:?}",
        report.discrepancies
    );
    report
}

/// The audit of the tampered ledger, with the one discrepancy that starts
/// with `start` and contains every one of `words`.
async fn audit_reports(app: &TestApp, start: &str, words: &[&str]) -> payment::ledger::AuditReport {
    let report = app
        .ledger
        .audit(2, &|_, _| {})
        .await
        .expect("the audit runs");
    let text = report.discrepancies.join("\n");
    assert!(
        report
            .discrepancies
            .iter()
            .any(|line| line.starts_with(start) && words.iter().all(|w| line.contains(w))),
        "no discrepancy starts with {start:?} and says {words:?}:\n{text}"
    );
    report
}

fn paid_in(key: &str, from: &str, to: &str, amount: i64, currency: &str) -> pb::MakePaymentRequest {
    pb::MakePaymentRequest {
        currency: currency.into(),
        ..order(key, from, to, amount)
    }
}

/// Conservation is per currency: an account moved from EUR to USD keeps
/// the sum over all currencies equal, which a single total never notices.
#[tokio::test]
async fn conservation_is_checked_per_currency() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("eur-a"), unique("eur-b"));
    let (x, y) = (unique("usd-x"), unique("usd-y"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    add(&mut c, &x, "USD", 500).await.unwrap();
    add(&mut c, &y, "USD", 0).await.unwrap();
    pay(&mut c, paid_in("e1", &a, &b, 300, "EUR"))
        .await
        .unwrap();
    pay(&mut c, paid_in("u1", &x, &y, 200, "USD"))
        .await
        .unwrap();
    let report = audit_clean(&app).await;
    let totals = |currency: &str| {
        let t = &report.currencies[currency];
        (t.accounts, t.balance_minor, t.opening_minor)
    };
    assert_eq!(totals("EUR"), (2, 1_000, 1_000));
    assert_eq!(totals("USD"), (2, 500, 500));
    assert_eq!(report.currencies.len(), 2, "{:?}", report.currencies);

    // Account a (700 left of 1,000) now says it holds USD.
    tamper_account(&app, &a, "SET currency = :usd", &[(":usd", s("USD"))]).await;
    let report = audit_reports(
        &app,
        "EUR: the balances of its accounts sum to 300 but their opening balances to 0",
        &["money was created or lost in EUR"],
    )
    .await;
    audit_reports(
        &app,
        "USD: the balances of its accounts sum to 1200 but their opening balances to 1500",
        &["money was created or lost in USD"],
    )
    .await;
    assert_eq!(
        report.total_balance_minor, report.total_opening_minor,
        "over all currencies nothing seems lost"
    );
}

/// Every entry embeds its transaction exactly as its record says: an
/// entry whose parties, amount, kind, refund_of, memo or time were changed
/// is named with each field that differs.
#[tokio::test]
async fn an_entry_that_differs_from_its_record_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("emb-a"), unique("emb-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let tx = pay(&mut c, order("p1", &a, &b, 300))
        .await
        .unwrap()
        .transaction
        .unwrap();
    audit_clean(&app).await;

    // The recipient's entry (its first: b opened empty) is rewritten.
    let credit = entry_key(&b, 0, 1);
    let time = ledger_number(&app, &credit, "created_at").await;
    tamper_ledger(
        &app,
        &credit,
        &[
            ("recipient_id", s(&a)),
            ("amount", n(301)),
            ("kind", s("REFUND")),
            ("refund_of", s("nothing")),
            ("memo", s("changed")),
            ("created_at", n(time - 1)),
        ],
    )
    .await;
    audit_reports(
        &app,
        &format!(
            "transaction {}: entry 1 of account {b} shard 0 differs from its record in",
            tx.transaction_id
        ),
        &[
            &format!("recipient_id {a:?} (record {b:?})"),
            "amount 301 (record 300)",
            "kind Refund (record Payment)",
            "refund_of \"nothing\" (record \"\")",
            "memo \"changed\" (record \"test\")",
            &format!("created_at {} (record {time})", time - 1),
        ],
    )
    .await;
}

/// A refund goes from the payment's recipient back to its sender: a refund
/// record made to name another payment, whose parties it does not mirror,
/// is reported.
#[tokio::test]
async fn a_refund_that_does_not_mirror_its_payment_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b, other) = (unique("ref-a"), unique("ref-b"), unique("ref-o"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    add(&mut c, &other, "EUR", 1_000).await.unwrap();
    let paid = pay(&mut c, order("p1", &a, &b, 500))
        .await
        .unwrap()
        .transaction
        .unwrap();
    let elsewhere = pay(&mut c, order("p2", &other, &b, 400))
        .await
        .unwrap()
        .transaction
        .unwrap();
    let refund = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r1".into(),
            payment: Some(pb::PaymentRef {
                transaction_id: paid.transaction_id.clone(),
                ..Default::default()
            }),
            amount: 200,
            memo: "partly back".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .transaction
        .unwrap();
    audit_clean(&app).await;

    // The refund's record now says it refunds the other payment.
    tamper_ledger(
        &app,
        &record_key(&b, "r1"),
        &[("refund_of", s(&elsewhere.transaction_id))],
    )
    .await;
    audit_reports(
        &app,
        &format!(
            "refund {} does not mirror payment {}",
            refund.transaction_id, elsewhere.transaction_id
        ),
        &[&format!(
            "it goes from {b:?} to {a:?}, not from {b:?} back to {other:?}"
        )],
    )
    .await;
}

/// A hold of 600 captured for 500, and 100 of the capture refunded: the
/// honest ledger of the capture tests. Returns the hold's id.
async fn captured_hold(app: &TestApp, a: &str, b: &str) -> String {
    let mut c = app.grpc().await;
    add(&mut c, a, "EUR", 1_000).await.unwrap();
    add(&mut c, b, "EUR", 0).await.unwrap();
    let hold = c
        .authorize_payment(crate::holds::hold_order("h1", a, b, 600, 3_600))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    c.capture_hold(pb::CaptureHoldRequest {
        hold: crate::holds::by_id(&hold.hold_id),
        amount: 500,
    })
    .await
    .unwrap();
    c.refund_payment(pb::RefundPaymentRequest {
        idempotency_key: "r1".into(),
        payment: crate::holds::by_id(&hold.hold_id),
        amount: 100,
        memo: "partly back".into(),
    })
    .await
    .unwrap();
    let report = audit_clean(app).await;
    assert_eq!((report.holds, report.refunds), (1, 1));
    hold.hold_id
}

/// A capture takes at most what is held: a hold record whose amount was
/// lowered below what it captured is reported (nothing else notices: the
/// capture's transfer, entries and refunds all follow captured_amount).
#[tokio::test]
async fn a_capture_above_its_hold_is_reported() {
    let app = TestApp::spawn().await;
    let (a, b) = (unique("cap-a"), unique("cap-b"));
    let hold_id = captured_hold(&app, &a, &b).await;
    tamper_ledger(&app, &record_key(&a, "h1"), &[("amount", n(400))]).await;
    let report = audit_reports(
        &app,
        &format!("hold {hold_id}: captured 500 of a hold of 400"),
        &["a capture takes 1 to the amount held"],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// A captured hold's capture moved exactly captured_amount: a record that
/// says it captured less than its transfer moved is reported.
#[tokio::test]
async fn a_capture_that_moved_other_than_captured_amount_is_reported() {
    let app = TestApp::spawn().await;
    let (a, b) = (unique("cap-a"), unique("cap-b"));
    let hold_id = captured_hold(&app, &a, &b).await;
    tamper_ledger(&app, &record_key(&a, "h1"), &[("captured_amount", n(450))]).await;
    audit_reports(
        &app,
        &format!("hold {hold_id}: captured_amount 450 but its capture took 500 from {a} and gave 500 to {b}"),
        &[],
    )
    .await;
}

/// Every balance_after follows from the one before, not only the newest:
/// an entry in the middle of a history whose balance_after was changed is
/// reported where the chain breaks.
#[tokio::test]
async fn a_break_in_the_balance_after_chain_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("chain-a"), unique("chain-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    for (k, amount) in [100, 200, 300].into_iter().enumerate() {
        pay(&mut c, order(&format!("p{k}"), &a, &b, amount))
            .await
            .unwrap();
    }
    audit_clean(&app).await;

    // a: 1 opening 1,000; 2 pays 100 (900); 3 pays 200 (700); 4 pays 300 (400).
    tamper_ledger(&app, &entry_key(&a, 0, 2), &[("balance_after", n(950))]).await;
    audit_reports(
        &app,
        &format!("account {a}: entry 2 has balance_after 950, but the balance before it was 1000 and it debits 100, which leaves 900"),
        &["the balance_after chain breaks"],
    )
    .await;
}

/// Entry times strictly increase within a shard, in sequence order (the
/// sharded history merge orders by time): an opening credit moved after
/// the payment that follows it is reported (it has no record, so nothing
/// else compares its time).
#[tokio::test]
async fn entry_times_out_of_order_are_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("time-a"), unique("time-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    pay(&mut c, order("p1", &a, &b, 100)).await.unwrap();
    audit_clean(&app).await;

    let paid_at = ledger_number(&app, &entry_key(&a, 0, 2), "created_at").await;
    let later = paid_at + 1_000;
    tamper_ledger(&app, &entry_key(&a, 0, 1), &[("created_at", n(later))]).await;
    let report = audit_reports(
        &app,
        &format!("account {a}: entry 2 at {paid_at} ms is not after entry 1 at {later} ms"),
        &["entry times must strictly increase"],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// A consistent read of a sharded account relies on `need`: each shard a
/// debit took at once needs the others at least at that debit's entries.
/// A shard whose `need` was dropped after such a debit is reported.
///
/// The debit is built on purpose: two payments to a 2-shard shop are in
/// flight together (a gate in front of DynamoDB holds their writes' replies
/// until both arrived), so they credit one shard each; a payout of more
/// than either shard holds then takes both.
#[tokio::test]
async fn a_sharded_account_whose_need_misses_a_debit_is_reported() {
    let tables = crate::harness::unique_tables();
    let gate = WriteGate::start(shared_dynamodb()).await;
    let ledger = ledger_via(&gate.url, &tables);
    crate::harness::create_tables_patiently(&ledger).await;
    let app = TestApp::serve(ledger).await;
    let mut c = app.grpc().await;
    let prefix = unique("need");
    let shop = format!("{prefix}-shop");
    c.add_account(pb::AddAccountRequest {
        account_id: shop.clone(),
        display_name: "shop".into(),
        currency: "EUR".into(),
        initial_balance: 0,
        balance_shards: 2,
    })
    .await
    .unwrap();
    let customers: Vec<String> = (0..2).map(|i| format!("{prefix}-c{i}")).collect();
    for id in &customers {
        add(&mut c, id, "EUR", 1_000).await.unwrap();
    }
    // Known as sharded by the instance: credits to it do not queue on it.
    assert_eq!(balance(&mut c, &shop).await.unwrap(), 0);
    gate.arm(2);
    let mut calls = tokio::task::JoinSet::new();
    for id in &customers {
        let (mut c, request) = (c.clone(), order("to-shop", id, &shop, 1_000));
        calls.spawn(async move { pay(&mut c, request).await });
    }
    gate.opened(std::time::Duration::from_secs(60)).await;
    while let Some(joined) = calls.join_next().await {
        joined.unwrap().unwrap();
    }
    assert_eq!(
        stored_shards(&tables, &shop, 2).await,
        [(1, 1_000), (1, 1_000)],
        "one credit per shard"
    );
    let payout = pay(&mut c, order("payout", &shop, &customers[0], 1_500))
        .await
        .unwrap()
        .transaction
        .unwrap();
    let legs = stored_debit_legs(&tables, &shop, "payout").await;
    assert_eq!(legs.len(), 2, "the payout took both shards: {legs:?}");
    audit_clean(&app).await;

    // Shard 0 forgets that it needs shard 1 at the payout's version.
    tamper_account(&app, &shop, "REMOVE need", &[]).await;
    let report = audit_reports(
        &app,
        &format!(
            "account {shop} shard 0: needs shard 1 at version 0, but transaction {} debited both, shard 1 at sequence 2",
            payout.transaction_id
        ),
        &["a read could see one part of it and not the other"],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// The next entry of a shard is planned after its `updated_at`, so it may
/// never be before the shard's newest entry: a lowered one is reported.
#[tokio::test]
async fn an_updated_at_before_the_newest_entry_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("upd-a"), unique("upd-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    pay(&mut c, order("p1", &a, &b, 100)).await.unwrap();
    audit_clean(&app).await;

    let paid_at = ledger_number(&app, &entry_key(&a, 0, 2), "created_at").await;
    tamper_account(
        &app,
        &a,
        "SET updated_at = :earlier",
        &[(":earlier", n(paid_at - 1))],
    )
    .await;
    let report = audit_reports(
        &app,
        &format!(
            "account {a}: updated_at {} ms is before its newest entry's time {paid_at} ms",
            paid_at - 1
        ),
        &["a next entry could come before it"],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// Money moves only within a currency, which is what makes conservation
/// per currency mean something: an opening credit (it has no record to
/// compare with) made to say another currency is reported.
#[tokio::test]
async fn an_entry_in_another_currency_than_its_account_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let a = unique("cur-a");
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    audit_clean(&app).await;

    tamper_ledger(&app, &entry_key(&a, 0, 1), &[("currency", s("USD"))]).await;
    let report = audit_reports(
        &app,
        &format!("account {a}: entry 1 is in USD but the account holds EUR"),
        &[],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// A shop of two shards, clean, whose shard 0 is then made to need shard
/// `shard` at `version`.
async fn sharded_shop_needing(prefix: &str, shard: u32, version: i64) -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let shop = unique(prefix);
    c.add_account(pb::AddAccountRequest {
        account_id: shop.clone(),
        display_name: "shop".into(),
        currency: "EUR".into(),
        initial_balance: 500,
        balance_shards: 2,
    })
    .await
    .unwrap();
    audit_clean(&app).await;
    tamper_account(
        &app,
        &shop,
        "SET need = :need",
        &[(
            ":need",
            AttributeValue::M([(shard.to_string(), n(version))].into_iter().collect()),
        )],
    )
    .await;
    (app, shop)
}

/// A consistent read of a sharded account re-reads shards until each is
/// at the version the others need: a `need` of a version never reached
/// would keep every read of the account from ending, and is reported.
#[tokio::test]
async fn a_need_of_a_version_never_reached_is_reported() {
    let (app, shop) = sharded_shop_needing("need-shop", 1, 5).await;
    let report = audit_reports(
        &app,
        &format!(
            "account {shop} shard 0: needs shard 1 at version 5, which it has not reached (0)"
        ),
        &["a consistent read of the account never comes"],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// A payment record's kind is a payment or a refund: one that says it is a
/// capture (which only a hold's record carries) is reported.
#[tokio::test]
async fn a_payment_record_of_another_kind_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("kind-a"), unique("kind-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let paid = pay(&mut c, order("p1", &a, &b, 300))
        .await
        .unwrap()
        .transaction
        .unwrap();
    audit_clean(&app).await;

    tamper_ledger(&app, &record_key(&a, "p1"), &[("kind", s("CAPTURE"))]).await;
    audit_reports(
        &app,
        &format!(
            "payment record P#{a}: transaction {} has kind Capture, which no payment record has",
            paid.transaction_id
        ),
        &[],
    )
    .await;
}

/// Transaction ids are unique: a second record that names the first's id
/// is reported.
#[tokio::test]
async fn two_records_with_one_transaction_id_are_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("dup-a"), unique("dup-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let first = pay(&mut c, order("p1", &a, &b, 300))
        .await
        .unwrap()
        .transaction
        .unwrap();
    pay(&mut c, order("p2", &a, &b, 200)).await.unwrap();
    audit_clean(&app).await;

    tamper_ledger(
        &app,
        &record_key(&a, "p2"),
        &[("transaction_id", s(&first.transaction_id))],
    )
    .await;
    audit_reports(
        &app,
        &format!(
            "transaction {}: more than one record has this transaction id",
            first.transaction_id
        ),
        &[],
    )
    .await;
}

/// A hold that is still open records no capture.
#[tokio::test]
async fn an_open_hold_that_records_a_capture_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("open-a"), unique("open-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let hold = c
        .authorize_payment(crate::holds::hold_order("h1", &a, &b, 600, 3_600))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    audit_clean(&app).await;

    tamper_ledger(&app, &record_key(&a, "h1"), &[("captured_amount", n(100))]).await;
    let report = audit_reports(
        &app,
        &format!("hold {} is Open but records a capture of 100", hold.hold_id),
        &[],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// A shard's `need` names only other shards of its account: one naming a
/// shard the account does not have is reported.
#[tokio::test]
async fn a_need_of_a_shard_the_account_lacks_is_reported() {
    let (app, shop) = sharded_shop_needing("need-lack", 7, 1).await;
    let report = audit_reports(
        &app,
        &format!(
            "account {shop} shard 0: needs shard 7 at version 1, but that is not another shard of the account"
        ),
        &[],
    )
    .await;
    assert_eq!(report.discrepancies_total, 1, "{:?}", report.discrepancies);
}

/// No balance_after leaves the account's bounds: a negative one is
/// reported as such (besides the break in the chain it makes).
#[tokio::test]
async fn a_balance_after_outside_the_bounds_is_reported() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("bound-a"), unique("bound-b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    pay(&mut c, order("p1", &a, &b, 300)).await.unwrap();
    audit_clean(&app).await;

    tamper_ledger(&app, &entry_key(&a, 0, 1), &[("balance_after", n(-1))]).await;
    audit_reports(
        &app,
        &format!("account {a}: entry 1 leaves balance_after -1 outside 0..="),
        &[],
    )
    .await;
}
