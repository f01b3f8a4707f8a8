//! The emulator's own DynamoDB against DynamoDB Local, on what the ledger
//! relies on: each is asked the same questions, and must answer the same.

use super::stack::Cloud;
use aws_sdk_dynamodb::types::{
    AttributeValue as V, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure as Rv,
    TransactWriteItem, Update,
};
use std::collections::HashMap;

/// The emulator's DynamoDB answers as DynamoDB Local does.
pub(super) async fn emulated_dynamodb_matches_dynamodb_local(cloud: &Cloud) {
    let local = dynamodb_semantics(&crate::local_dynamodb::client(
        crate::harness::shared_dynamodb(),
    ))
    .await;
    let emulated = dynamodb_semantics(&crate::local_dynamodb::client(&cloud.get("endpoint"))).await;
    eprintln!("cloud: DynamoDB Local: {local:#?}");
    assert_eq!(
        emulated, local,
        "the emulator's DynamoDB differs from DynamoDB Local"
    );
}

/// What the ledger relies on from DynamoDB, observed on one endpoint as
/// text: a transaction cancelled by its conditions (the reasons per item,
/// with the failing item's values under ReturnValuesOnConditionCheckFailure
/// ALL_OLD), a conditional put on an existing item (with its old values), a
/// condition on a number (`balance >= amount`), and a ClientRequestToken
/// reused with the same and with other parameters.
async fn dynamodb_semantics(client: &aws_sdk_dynamodb::Client) -> Vec<String> {
    let ledger = payment::ledger::Ledger::new(client.clone(), crate::harness::unique_tables());
    // A JVM just started may take a while to create its first tables.
    let mut created = ledger.create_tables().await;
    for _ in 0..3 {
        if created.is_ok() {
            break;
        }
        created = ledger.create_tables().await;
    }
    created.expect("create tables");
    let table = ledger.tables().accounts.clone();
    for (id, balance) in [("x", 10), ("y", 0)] {
        client
            .put_item()
            .table_name(&table)
            .set_item(Some(item(id, balance)))
            .send()
            .await
            .expect("put");
    }
    let mut seen = vec![conditional_put(client, &table).await];
    seen.extend(cancelled_transaction(client, &table).await);
    seen.extend(request_token_reused(client, &table).await);
    let balance = client
        .get_item()
        .table_name(&table)
        .key("account_id", V::S("x".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("get")
        .item
        .and_then(|i| i.get("balance").cloned());
    seen.push(format!("balance after: {balance:?}"));
    seen
}

/// An item of the accounts table with just an id and a balance.
fn item(id: &str, balance: i64) -> HashMap<String, V> {
    [
        ("account_id".to_owned(), V::S(id.into())),
        ("balance".to_owned(), V::N(balance.to_string())),
    ]
    .into_iter()
    .collect()
}

/// The debit of x, on the condition `balance >= :amount`.
fn debit(table: &str, amount: i64) -> Update {
    Update::builder()
        .table_name(table)
        .key("account_id", V::S("x".into()))
        .update_expression("SET balance = balance - :amount")
        .condition_expression("balance >= :amount")
        .expression_attribute_values(":amount", V::N(amount.to_string()))
        .return_values_on_condition_check_failure(Rv::AllOld)
        .build()
        .unwrap()
}

/// A conditional put on an existing item, with its old values.
async fn conditional_put(client: &aws_sdk_dynamodb::Client, table: &str) -> String {
    let err = client
        .put_item()
        .table_name(table)
        .set_item(Some(item("x", 99)))
        .condition_expression("attribute_not_exists(account_id)")
        .return_values_on_condition_check_failure(Rv::AllOld)
        .send()
        .await
        .expect_err("the item exists");
    let service = err.into_service_error();
    format!(
        "put: conditional check failed {}, old balance {:?}",
        service.is_conditional_check_failed_exception(),
        match &service {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) =>
                e.item().and_then(|i| i.get("balance")).cloned(),
            _ => None,
        }
    )
}

/// A transaction whose debit fails `balance >= :amount`: reasons per item.
async fn cancelled_transaction(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let credit = Update::builder()
        .table_name(table)
        .key("account_id", V::S("y".into()))
        .update_expression("SET balance = balance + :amount")
        .expression_attribute_values(":amount", V::N(11.to_string()))
        .build()
        .unwrap();
    let record = Put::builder()
        .table_name(table)
        .set_item(Some(item("record", 0)))
        .condition_expression("attribute_not_exists(account_id)")
        .build()
        .unwrap();
    let err = client
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .update(debit(table, 11))
                .build(),
        )
        .transact_items(TransactWriteItem::builder().update(credit).build())
        .transact_items(TransactWriteItem::builder().put(record).build())
        .send()
        .await
        .expect_err("insufficient funds");
    match err.into_service_error() {
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
            e.cancellation_reasons()
                .iter()
                .map(|reason| {
                    format!(
                        "transaction: reason {:?}, old balance {:?}",
                        reason.code(),
                        reason.item().and_then(|i| i.get("balance"))
                    )
                })
                .collect()
        }
        other => vec![format!("transaction: not cancelled: {other:?}")],
    }
}

/// A condition check on another item, then a ClientRequestToken reused
/// with the same items and with other items.
async fn request_token_reused(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let token = uuid::Uuid::new_v4().to_string();
    let check = ConditionCheck::builder()
        .table_name(table)
        .key("account_id", V::S("y".into()))
        .condition_expression("attribute_exists(account_id)")
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for (what, amount) in [
        ("first", 4),
        ("same token, same items", 4),
        ("same token, other items", 5),
    ] {
        let result = client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .update(debit(table, amount))
                    .build(),
            )
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(check.clone())
                    .build(),
            )
            .client_request_token(&token)
            .send()
            .await;
        seen.push(format!(
            "token {what}: {}",
            match result {
                Ok(_) => "ok".to_owned(),
                Err(err) => err
                    .into_service_error()
                    .meta()
                    .code()
                    .unwrap_or("?")
                    .to_owned(),
            }
        ));
    }
    seen
}
