//! One test per rule of the ledger, through the real server and DynamoDB Local.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::domain::{AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR};
use payment::pb;
use std::time::Duration;
use tonic::Code;

#[tokio::test]
async fn add_account_creates_once_and_opening_balance_is_the_first_credit() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let id = unique("alice");
    let account = add(&mut c, &id, "EUR", 10_000).await.unwrap();
    assert_eq!(account.account_id, id);
    assert_eq!(account.balance, 10_000);
    assert_eq!(account.currency, "EUR");
    assert!(account.created_at.is_some());
    assert_code(add(&mut c, &id, "EUR", 0).await, Code::AlreadyExists, &id);
    assert_code(
        add(&mut c, &id, "USD", 5).await,
        Code::AlreadyExists,
        "already exists",
    );
    // The failed duplicates changed nothing.
    assert_eq!(balance(&mut c, &id).await.unwrap(), 10_000);
    let history = history_all(&mut c, &id).await;
    assert_eq!(history.len(), 1);
    let opening = &history[0];
    assert_eq!(opening.direction, pb::Direction::Credit as i32);
    assert_eq!(opening.balance_after, 10_000);
    assert_eq!(opening.sequence, 1);
    assert_eq!(opening.next_page_token, "");
    let tx = opening.transaction.as_ref().unwrap();
    assert_eq!(
        (tx.sender_id.as_str(), tx.recipient_id.as_str(), tx.amount),
        ("", id.as_str(), 10_000)
    );
    // A zero opening balance makes no history entry.
    let empty = unique("empty");
    add(&mut c, &empty, "EUR", 0).await.unwrap();
    assert!(history_all(&mut c, &empty).await.is_empty());
}

#[tokio::test]
async fn payment_moves_money_and_records_both_sides() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 10_000).await.unwrap();
    add(&mut c, &b, "EUR", 500).await.unwrap();
    let response = pay(&mut c, order("k1", &a, &b, 1_234)).await.unwrap();
    assert!(!response.replayed);
    let tx = response.transaction.unwrap();
    assert_eq!(
        (tx.sender_id.as_str(), tx.recipient_id.as_str()),
        (a.as_str(), b.as_str())
    );
    assert_eq!(
        (tx.amount, tx.currency.as_str(), tx.memo.as_str()),
        (1_234, "EUR", "test")
    );
    assert!(!tx.transaction_id.is_empty());
    assert_eq!(balance(&mut c, &a).await.unwrap(), 8_766);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 1_734);

    let ha = history_all(&mut c, &a).await;
    let hb = history_all(&mut c, &b).await;
    assert_eq!(ha.len(), 2);
    assert_eq!(hb.len(), 2);
    assert_eq!(ha[0].direction, pb::Direction::Debit as i32);
    assert_eq!(ha[0].balance_after, 8_766);
    assert_eq!(hb[0].direction, pb::Direction::Credit as i32);
    assert_eq!(hb[0].balance_after, 1_734);
    assert_eq!(ha[0].transaction.as_ref().unwrap(), &tx);
    assert_eq!(hb[0].transaction.as_ref().unwrap(), &tx);
    assert_eq!(history_sum(&ha), 8_766);
    assert_eq!(history_sum(&hb), 1_734);
}

#[tokio::test]
async fn unknown_accounts_are_not_found_and_never_created() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, ghost) = (unique("a"), unique("ghost"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    assert_code(
        pay(&mut c, order("k1", &a, &ghost, 10)).await,
        Code::NotFound,
        "recipient",
    );
    assert_code(
        pay(&mut c, order("k2", &ghost, &a, 10)).await,
        Code::NotFound,
        "sender",
    );
    assert_code(balance(&mut c, &ghost).await, Code::NotFound, &ghost);
    assert_code(
        history_page(&mut c, &ghost, 0, "").await,
        Code::NotFound,
        &ghost,
    );
    assert_eq!(balance(&mut c, &a).await.unwrap(), 1_000);
    assert_eq!(history_all(&mut c, &a).await.len(), 1);
}

#[tokio::test]
async fn insufficient_funds_is_failed_precondition_and_moves_nothing() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 100).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    assert_code(
        pay(&mut c, order("k1", &a, &b, 101)).await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    // Exactly the whole balance is fine, then nothing is left.
    pay(&mut c, order("k2", &a, &b, 100)).await.unwrap();
    assert_code(
        pay(&mut c, order("k3", &a, &b, 1)).await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    assert_eq!(balance(&mut c, &a).await.unwrap(), 0);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 100);
    // The refused key was not consumed: it can pay once funds arrive.
    assert_code(
        pay(&mut c, order("back", &b, &a, 101)).await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    pay(&mut c, order("back", &b, &a, 50)).await.unwrap();
    pay(&mut c, order("k1", &a, &b, 40)).await.unwrap();
}

#[tokio::test]
async fn currency_must_match_both_accounts() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (eur, usd, eur2) = (unique("eur"), unique("usd"), unique("eur2"));
    add(&mut c, &eur, "EUR", 1_000).await.unwrap();
    add(&mut c, &usd, "USD", 1_000).await.unwrap();
    add(&mut c, &eur2, "EUR", 0).await.unwrap();
    assert_code(
        pay(&mut c, order("k1", &eur, &usd, 10)).await,
        Code::FailedPrecondition,
        "holds USD",
    );
    let mut usd_order = order("k2", &eur, &eur2, 10);
    usd_order.currency = "USD".into();
    assert_code(
        pay(&mut c, usd_order).await,
        Code::FailedPrecondition,
        "holds EUR",
    );
    for id in [&eur, &usd] {
        assert_eq!(balance(&mut c, id).await.unwrap(), 1_000);
    }
}

#[tokio::test]
async fn self_payment_is_invalid() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let a = unique("a");
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    assert_code(
        pay(&mut c, order("k1", &a, &a, 10)).await,
        Code::InvalidArgument,
        "recipient_id",
    );
    assert_eq!(balance(&mut c, &a).await.unwrap(), 1_000);
    assert_eq!(history_all(&mut c, &a).await.len(), 1);
}

#[tokio::test]
async fn repeated_key_replays_and_different_parameters_are_refused() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b, d) = (unique("a"), unique("b"), unique("d"));
    for id in [&a, &b, &d] {
        add(&mut c, id, "EUR", 1_000).await.unwrap();
    }
    let first = pay(&mut c, order("same", &a, &b, 100)).await.unwrap();
    let again = pay(&mut c, order("same", &a, &b, 100)).await.unwrap();
    assert!(!first.replayed);
    assert!(again.replayed);
    assert_eq!(first.transaction, again.transaction);
    for changed in [
        order("same", &a, &b, 101),
        order("same", &a, &d, 100),
        pb::MakePaymentRequest {
            memo: "other".into(),
            ..order("same", &a, &b, 100)
        },
    ] {
        assert_code(
            pay(&mut c, changed).await,
            Code::AlreadyExists,
            "different payment",
        );
    }
    // The key is scoped to its sender: another sender may use it.
    let other = pay(&mut c, order("same", &b, &a, 7)).await.unwrap();
    assert!(!other.replayed);
    assert_eq!(balance(&mut c, &a).await.unwrap(), 907);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 1_093);
    assert_eq!(balance(&mut c, &d).await.unwrap(), 1_000);
    assert_code(
        pay(&mut c, order("", &a, &b, 1)).await,
        Code::InvalidArgument,
        "idempotency_key: is required",
    );
}

#[tokio::test]
async fn replay_works_long_after_the_first_call_from_the_durable_record() {
    // The key is stored in the ledger table, not only as a DynamoDB
    // ClientRequestToken (which DynamoDB keeps for ten minutes, and which
    // each round draws afresh anyway): a new server with a new ledger and
    // a new DynamoDB client, so nothing of the first one's process state
    // (known accounts, queues, connections), still replays. "Long after"
    // is what this stands for: a test cannot wait the ten minutes, but
    // with no state left the replay can only come from the record.
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let first = pay(&mut c, order("durable", &a, &b, 250)).await.unwrap();
    let tables = app.ledger.tables().clone();
    app.stop().await;
    let app = TestApp::serve(payment::ledger::Ledger::new(
        crate::local_dynamodb::client(crate::harness::shared_dynamodb()),
        tables,
    ))
    .await;
    let mut c = app.grpc().await;
    let again = pay(&mut c, order("durable", &a, &b, 250)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.transaction, first.transaction);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 250);
}

#[tokio::test]
async fn balances_never_exceed_the_limit() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (rich, full) = (unique("rich"), unique("full"));
    add(&mut c, &rich, "EUR", BALANCE_MAX_MINOR).await.unwrap();
    add(&mut c, &full, "EUR", BALANCE_MAX_MINOR - 5)
        .await
        .unwrap();
    pay(&mut c, order("k1", &rich, &full, 5)).await.unwrap();
    assert_code(
        pay(&mut c, order("k2", &rich, &full, 1)).await,
        Code::FailedPrecondition,
        "balance limit",
    );
    assert_eq!(balance(&mut c, &full).await.unwrap(), BALANCE_MAX_MINOR);
    assert_eq!(balance(&mut c, &rich).await.unwrap(), BALANCE_MAX_MINOR - 5);
}

#[tokio::test]
async fn every_field_is_bounded_with_a_message_naming_it() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let long_id = "x".repeat(129);
    let at_limit_id = format!("{}-{}", "y".repeat(95), uuid::Uuid::new_v4().simple());
    assert_eq!(at_limit_id.len(), 128, "at the limit, one under long_id");
    add(&mut c, &at_limit_id, "EUR", 0).await.unwrap();

    let bad_accounts = [
        ("", "EUR", 0, "account_id"),
        (long_id.as_str(), "EUR", 0, "account_id"),
        ("has space", "EUR", 0, "account_id"),
        ("new", "eur", 0, "currency"),
        ("new", "EURO", 0, "currency"),
        ("new", "", 0, "currency"),
        ("new", "EUR", -1, "initial_balance"),
        ("new", "EUR", BALANCE_MAX_MINOR + 1, "initial_balance"),
        ("new", "EUR", i64::MIN, "initial_balance"),
    ];
    for (id, currency, initial, field) in bad_accounts {
        assert_code(
            add(&mut c, id, currency, initial).await,
            Code::InvalidArgument,
            field,
        );
    }
    let long_name = pb::AddAccountRequest {
        account_id: "new".into(),
        display_name: "n".repeat(257),
        currency: "EUR".into(),
        initial_balance: 0,
        ..Default::default()
    };
    assert_code(
        c.add_account(long_name).await.map(|_| ()),
        Code::InvalidArgument,
        "display_name",
    );

    let bad_payments = [
        (
            pb::MakePaymentRequest {
                idempotency_key: "k".repeat(129),
                ..order("", &a, &b, 1)
            },
            "idempotency_key",
        ),
        (
            pb::MakePaymentRequest {
                idempotency_key: "k/1".into(),
                ..order("", &a, &b, 1)
            },
            "idempotency_key",
        ),
        (order("k", "", &b, 1), "sender_id"),
        (order("k", &a, "", 1), "recipient_id"),
        (order("k", &a, &b, 0), "amount"),
        (order("k", &a, &b, -10), "amount"),
        (order("k", &a, &b, AMOUNT_MAX_MINOR + 1), "amount"),
        (order("k", &a, &b, i64::MAX), "amount"),
        (
            pb::MakePaymentRequest {
                currency: "E".into(),
                ..order("k", &a, &b, 1)
            },
            "currency",
        ),
        (
            pb::MakePaymentRequest {
                memo: "m".repeat(257),
                ..order("k", &a, &b, 1)
            },
            "memo",
        ),
    ];
    for (request, field) in bad_payments {
        assert_code(pay(&mut c, request).await, Code::InvalidArgument, field);
    }
    for (size, token, field) in [
        (-1, "", "page_size"),
        (1001, "", "page_size"),
        (0, "not-a-token", "page_token"),
    ] {
        assert_code(
            history_page(&mut c, &a, size, token).await,
            Code::InvalidArgument,
            field,
        );
    }
    assert_code(
        balance(&mut c, "").await,
        Code::InvalidArgument,
        "account_id",
    );
    // Nothing of the above moved money.
    assert_eq!(balance(&mut c, &a).await.unwrap(), 1_000);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 0);
}

#[tokio::test]
async fn history_is_newest_first_paged_and_resumable() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b, other) = (unique("a"), unique("b"), unique("other"));
    add(&mut c, &a, "EUR", 1_000_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    add(&mut c, &other, "EUR", 100).await.unwrap();
    let payments = 120;
    for i in 1..=payments {
        pay(&mut c, order(&format!("k{i}"), &a, &b, i))
            .await
            .unwrap();
    }
    // page_size 0 means 50.
    let first = history_page(&mut c, &a, 0, "").await.unwrap();
    assert_eq!(first.len(), 50);
    let sequences: Vec<i64> = first.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (72..=121).rev().collect::<Vec<_>>());
    assert_eq!(first[0].transaction.as_ref().unwrap().amount, 120);
    // Resume from the middle of a page: each token continues right after its entry.
    let resumed = history_page(&mut c, &a, 3, &first[9].next_page_token)
        .await
        .unwrap();
    let resumed_seq: Vec<i64> = resumed.iter().map(|e| e.sequence).collect();
    assert_eq!(resumed_seq, vec![111, 110, 109]);
    assert_eq!(resumed[0], first[10]);
    // The whole history, paged, has every entry once, and reconciles.
    let all = history_all(&mut c, &a).await;
    assert_eq!(all.len(), 121);
    assert_eq!(all.last().unwrap().next_page_token, "");
    assert_eq!(history_sum(&all), balance(&mut c, &a).await.unwrap());
    let mut balance_walk = 0;
    for entry in all.iter().rev() {
        balance_walk += history_sum(std::slice::from_ref(entry));
        assert_eq!(
            entry.balance_after, balance_walk,
            "entry {}",
            entry.sequence
        );
    }
    // Page sizes are bounded, and a token is tied to its account.
    assert_eq!(history_page(&mut c, &a, 1000, "").await.unwrap().len(), 121);
    assert_code(
        history_page(&mut c, &other, 10, &first[0].next_page_token).await,
        Code::InvalidArgument,
        "another account",
    );
}

#[tokio::test]
async fn a_deadline_shorter_than_the_work_is_deadline_exceeded() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    // Through the gRPC-Web client, which sends grpc-timeout but keeps no
    // timer of its own: tonic's native client would give up first with a
    // CANCELLED of its own making, before the server's answer arrives.
    let mut web = app.grpc_web();
    let mut request = tonic::Request::new(order("deadline", &a, &b, 10));
    request.set_timeout(Duration::from_micros(1));
    let status = web.make_payment(request).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::DeadlineExceeded,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("same idempotency key"),
        "{}",
        status.message()
    );
    // Each method's message says what the cut-off means for it.
    let mut request = tonic::Request::new(pb::AddAccountRequest {
        account_id: unique("late"),
        currency: "EUR".into(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_micros(1));
    let status = web.add_account(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status.message().contains("send the same AddAccount again")
            && !status.message().contains("idempotency"),
        "{}",
        status.message()
    );
    let mut request = tonic::Request::new(pb::GetAccountBalanceRequest {
        account_id: a.clone(),
    });
    request.set_timeout(Duration::from_micros(1));
    let status = web.get_account_balance(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert!(
        status.message().contains("nothing was changed"),
        "{}",
        status.message()
    );
    // Whatever happened is whole: a retry with the same key settles it, once.
    let retry = pay(&mut c, order("deadline", &a, &b, 10)).await.unwrap();
    assert_eq!(balance(&mut c, &a).await.unwrap(), 990);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 10);
    assert_eq!(
        history_all(&mut c, &b).await.len(),
        1,
        "replayed: {}",
        retry.replayed
    );
}

#[tokio::test]
async fn dynamodb_unreachable_is_unavailable() {
    // A ledger pointing at a closed port on loopback.
    let port = crate::harness::free_port();
    let client = crate::local_dynamodb::client(&format!("http://127.0.0.1:{port}"));
    let ledger = payment::ledger::Ledger::new(client, crate::harness::unique_tables());
    let app = TestApp::serve(ledger).await;
    let mut c = app.grpc().await;
    assert_code(balance(&mut c, "a").await, Code::Unavailable, "retry");
    assert_code(
        pay(&mut c, order("k", "a", "b", 1)).await,
        Code::Unavailable,
        "same idempotency key",
    );
    assert_code(
        add(&mut c, "a", "EUR", 0).await,
        Code::Unavailable,
        "unavailable",
    );
    assert_code(
        history_page(&mut c, "a", 0, "").await,
        Code::Unavailable,
        "unavailable",
    );
}

#[tokio::test]
async fn missing_tables_are_unavailable_not_internal() {
    let client = crate::local_dynamodb::client(crate::harness::shared_dynamodb());
    let ledger = payment::ledger::Ledger::new(client, crate::harness::unique_tables());
    let app = TestApp::serve(ledger).await;
    let mut c = app.grpc().await;
    // Reads by key.
    assert_code(balance(&mut c, "a").await, Code::Unavailable, "unavailable");
    assert_code(
        history_page(&mut c, "a", 10, "").await,
        Code::Unavailable,
        "unavailable",
    );
    assert_code(
        pay(&mut c, order("k", "a", "b", 1)).await,
        Code::Unavailable,
        "unavailable",
    );
    // Writes: a PutItem (an empty account) and a TransactWriteItems (an
    // account with an opening balance, which writes its entry too).
    assert_code(
        add(&mut c, "a", "EUR", 0).await,
        Code::Unavailable,
        "unavailable",
    );
    assert_code(
        add(&mut c, "b", "EUR", 100).await,
        Code::Unavailable,
        "unavailable",
    );
    // Queries on the indexes.
    assert_code(
        c.list_accounts(pb::ListAccountsRequest {
            page_size: 10,
            ..Default::default()
        })
        .await,
        Code::Unavailable,
        "unavailable",
    );
    assert_code(
        c.get_payment(pb::GetPaymentRequest {
            payment: Some(pb::PaymentRef {
                transaction_id: uuid::Uuid::now_v7().to_string(),
                ..Default::default()
            }),
            finalize: false,
        })
        .await,
        Code::Unavailable,
        "unavailable",
    );
}

/// A retried AddAccount (its reply lost) gets the account it opened; the
/// same id with other parameters, or for another owner, stays taken.
#[tokio::test]
async fn add_account_retried_by_its_owner_returns_the_account() {
    let app = TestApp::spawn().await;
    let mut alice = app.grpc_as("alice-owner", false).await;
    let mut bob = app.grpc_as("bob-owner", false).await;
    let id = unique("retry");
    let first = add(&mut alice, &id, "EUR", 0).await.unwrap();
    let again = add(&mut alice, &id, "EUR", 0).await.unwrap();
    assert_eq!(again, first, "the same account, not a second one");
    assert_code(
        add(&mut alice, &id, "USD", 0).await,
        Code::AlreadyExists,
        &id,
    );
    assert_code(add(&mut bob, &id, "EUR", 0).await, Code::AlreadyExists, &id);
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
}

/// One owner may open at most OWNER_ACCOUNTS_MAX accounts; an admin is not
/// counted.
#[tokio::test]
async fn an_owner_may_open_a_bounded_number_of_accounts() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let app = TestApp::spawn().await;
    let owner = unique("many");
    let mut c = app.grpc_as(&owner, false).await;
    add(&mut c, &unique("first"), "EUR", 0).await.unwrap();
    // Pretend the owner opened all but one of their accounts already (the
    // count is one item; opening a thousand accounts here would be slow).
    crate::local_dynamodb::client(crate::harness::shared_dynamodb())
        .update_item()
        .table_name(&app.ledger.tables().ledger)
        .key("pk", AttributeValue::S(format!("O#{owner}")))
        .key("sk", AttributeValue::S("COUNT".into()))
        .update_expression("SET accounts = :n")
        .expression_attribute_values(
            ":n",
            AttributeValue::N((payment::domain::OWNER_ACCOUNTS_MAX - 1).to_string()),
        )
        .send()
        .await
        .unwrap();
    add(&mut c, &unique("last"), "EUR", 0).await.unwrap();
    assert_code(
        add(&mut c, &unique("one-too-many"), "EUR", 0).await,
        Code::ResourceExhausted,
        "the most one owner may open",
    );
    let mut admin = app.grpc().await;
    add(&mut admin, &unique("admin-opened"), "EUR", 0)
        .await
        .unwrap();
}

/// Account ids are case-sensitive: "Alice" and "alice" are two accounts.
#[tokio::test]
async fn account_ids_are_case_sensitive() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let base = unique("case");
    let (upper, lower) = (base.to_uppercase(), base.to_lowercase());
    add(&mut c, &upper, "EUR", 100).await.unwrap();
    add(&mut c, &lower, "EUR", 0).await.unwrap();
    pay(&mut c, order(&unique("k"), &upper, &lower, 40))
        .await
        .unwrap();
    assert_eq!(balance(&mut c, &upper).await.unwrap(), 60);
    assert_eq!(balance(&mut c, &lower).await.unwrap(), 40);
}
