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
    for n in 0..20 {
        let _ = pay(
            &mut c,
            order(
                &format!("k{n}"),
                &ids[n % 4],
                &ids[(n + 1) % 4],
                37 + n as i64,
            ),
        )
        .await;
    }
    let report = app.ledger.audit(3, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    assert_eq!(report.accounts, 4);
    assert_eq!(report.total_balance_minor, 6_000);
    assert_eq!(report.total_opening_minor, 6_000);
    assert!(report.payments > 0);
    assert_eq!(report.entries, 3 + 2 * report.payments);

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
    assert!(
        text.contains("expected a debit") || text.contains("found"),
        "{text}"
    );
}
