//! The ledger audit: clean on an honest ledger, and it finds tampering.

use crate::harness::{TestApp, shared_dynamodb};
use crate::helpers::*;
use aws_sdk_dynamodb::types::AttributeValue;

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
    let dynamodb = payment::config::local_dynamodb_client(shared_dynamodb());
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
    let dynamodb = payment::config::local_dynamodb_client(shared_dynamodb());
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
