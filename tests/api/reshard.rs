//! Resharding an account while it is paid: SetBalanceShards, the promotion
//! of a hot ordinary account, writers and readers that still believe the
//! old count, and page tokens issued before the change.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::domain::Caller;
use payment::domain::{AccountId, NewAccount, PaymentOrder};
use payment::ledger::{Ledger, Promotion, Tables};
use payment::pb;
use payment::telemetry::RequestCounter;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::Code;

/// The tests' admin, as the ledger takes it.
fn admin() -> Caller {
    Caller {
        sub: crate::harness::TESTER.into(),
        admin: true,
    }
}

/// An instance of [`instance`] with promotion set as given.
fn instance_promoting(tables: &Tables, promotion: Option<Promotion>) -> (Ledger, RequestCounter) {
    let (ledger, counter) = instance(tables);
    (ledger.with_promotion(promotion), counter)
}

async fn open(ledger: &Ledger, id: &str, opening: i64, shards: i32) {
    let new = NewAccount::parse(id, "reshard test", "EUR", opening, shards).expect("new account");
    ledger
        .add_account(&new, crate::harness::TESTER, false)
        .await
        .expect("account opens");
}

async fn pay_direct(
    ledger: &Ledger,
    key: &str,
    from: &str,
    to: &str,
    amount: i64,
) -> Result<payment::ledger::Transaction, payment::ledger::LedgerError> {
    let order = PaymentOrder::parse(key, from, to, amount, "EUR", "").expect("order");
    ledger
        .make_payment(&order, &admin())
        .await
        .map(|outcome| outcome.payment)
}

async fn shards_of(ledger: &Ledger, id: &str) -> (u32, i64) {
    let account = ledger
        .get_account(&AccountId::parse("account_id", id).unwrap())
        .await
        .expect("account");
    (account.shards(), account.balance_minor)
}

async fn set_shards(
    c: &mut Client,
    account_id: &str,
    balance_shards: i32,
) -> Result<pb::SetBalanceShardsResponse, tonic::Status> {
    c.set_balance_shards(pb::SetBalanceShardsRequest {
        account_id: account_id.into(),
        balance_shards,
    })
    .await
    .map(|r| r.into_inner())
}

async fn audit_clean(ledger: &Ledger) {
    let report = ledger.audit(2, &|_, _| {}).await.expect("the audit runs");
    assert!(report.is_clean(), "audit: {:?}", report.discrepancies);
}

/// SetBalanceShards raises the count, answers the same count unchanged,
/// refuses to lower it or to leave a shard over its new share, and is for
/// admins only; the new shards exist as items, and the balance is kept.
#[tokio::test]
async fn set_balance_shards_only_raises_and_only_for_admins() {
    let app = TestApp::spawn().await;
    let mut admin = app.grpc().await;
    let prefix = unique("set-shards");
    let (shop, buyer, rich) = (
        format!("{prefix}-shop"),
        format!("{prefix}-buyer"),
        format!("{prefix}-rich"),
    );
    add(&mut admin, &shop, "EUR", 0).await.unwrap();
    add(&mut admin, &buyer, "EUR", 10_000).await.unwrap();
    pay(
        &mut admin,
        order(&format!("{prefix}-p1"), &buyer, &shop, 700),
    )
    .await
    .unwrap();

    let mut owner = app.grpc_as("someone", false).await;
    assert_code(
        set_shards(&mut owner, &shop, 8).await,
        Code::PermissionDenied,
        "only an admin",
    );
    assert_code(
        set_shards(&mut admin, &shop, 65).await,
        Code::InvalidArgument,
        "balance_shards",
    );
    assert_code(
        set_shards(&mut admin, &format!("{prefix}-nobody"), 8).await,
        Code::NotFound,
        "nobody",
    );

    let raised = set_shards(&mut admin, &shop, 8).await.unwrap();
    assert!(raised.raised);
    let account = raised.account.expect("account");
    assert_eq!((account.balance_shards, account.balance), (8, 700));
    // Every shard exists, the old one with its version and money.
    let stored = stored_shards(app.ledger.tables(), &shop, 8).await;
    assert_eq!(stored[0], (1, 700));
    assert!(stored[1..].iter().all(|&s| s == (0, 0)), "{stored:?}");

    let again = set_shards(&mut admin, &shop, 8).await.unwrap();
    assert!(!again.raised);
    assert_eq!(again.account.expect("account").balance_shards, 8);
    let lower = set_shards(&mut admin, &shop, 4).await;
    assert_code(lower, Code::FailedPrecondition, "can only be raised");

    // 4 * 10^14 fits an ordinary account's share and two shards' (5 * 10^14
    // each), not four shards' (2.5 * 10^14).
    add(&mut admin, &rich, "EUR", 400_000_000_000_000)
        .await
        .unwrap();
    assert_code(
        set_shards(&mut admin, &rich, 4).await,
        Code::FailedPrecondition,
        "more than its share",
    );
    assert_eq!(
        stored_shards(app.ledger.tables(), &rich, 1).await[0].1,
        4e14 as i64
    );
    let two = set_shards(&mut admin, &rich, 2).await.unwrap();
    assert_eq!(two.account.expect("account").balance_shards, 2);
    audit_clean(&app.ledger).await;
}

/// Writers that still believe the old count: a small credit commits on
/// shard 0 in one request, conditioned on its version; a credit that
/// needs the share of the old count fails once, learns the new count from
/// the item it gets back, and commits on a shard with room. A reader that
/// remembers fewer shards reads the new ones too.
#[tokio::test]
async fn a_writer_with_a_stale_shard_count_commits_correctly() {
    let first = TestApp::spawn().await;
    let tables = first.ledger.tables().clone();
    let (stale, counter) = instance_promoting(&tables, None);
    let (other, _) = instance_promoting(&tables, None);
    let prefix = unique("stale");
    let (small, big, buyer) = (
        format!("{prefix}-small"),
        format!("{prefix}-big"),
        format!("{prefix}-buyer"),
    );
    open(&other, &small, 0, 1).await;
    open(&other, &big, 400_000_000_000_000, 1).await;
    open(&other, &buyer, 900_000_000_000_000, 1).await;
    // The stale instance pays both merchants: it knows them as ordinary.
    for (n, to) in [&small, &big].into_iter().enumerate() {
        pay_direct(&stale, &format!("{prefix}-warm{n}"), &buyer, to, 1_000)
            .await
            .unwrap();
    }
    other
        .raise_shards(&AccountId::parse("account_id", &small).unwrap(), 8)
        .await
        .unwrap();
    other
        .raise_shards(&AccountId::parse("account_id", &big).unwrap(), 2)
        .await
        .unwrap();

    // A small credit: one request, on shard 0 (the writer knows no other).
    let before = counter.snapshot();
    pay_direct(&stale, &format!("{prefix}-small2"), &buyer, &small, 2_000)
        .await
        .unwrap();
    assert_eq!(
        cost(&counter, before),
        vec![("TransactWriteItems".to_owned(), 1)]
    );
    assert_eq!(stored_shards(&tables, &small, 1).await[0], (2, 3_000));

    // A credit of 2 * 10^14 needs more than any shard of 64 may hold: it is
    // conditioned on the count the writer believes (1), fails, and goes to
    // shard 1 (shard 0 has no room left in its share of 5 * 10^14).
    let big_pay = pay_direct(&stale, &format!("{prefix}-big2"), &buyer, &big, 2e14 as i64)
        .await
        .unwrap();
    assert_eq!(big_pay.amount_minor, 2e14 as i64);
    let stored = stored_shards(&tables, &big, 2).await;
    assert_eq!(stored, vec![(2, 4e14 as i64 + 1_000), (1, 2e14 as i64)]);
    // No shard has room for 4 * 10^14 more, though the account's limit
    // would: each shard holds at most half of it.
    let refused = pay_direct(&stale, &format!("{prefix}-big3"), &buyer, &big, 4e14 as i64).await;
    assert!(
        matches!(
            refused,
            Err(payment::ledger::LedgerError::BalanceLimit { .. })
        ),
        "{refused:?}"
    );

    // A reader that remembers 2 shards of an account now raised to 4 reads
    // the 2 new ones once the first read shows the count: two BatchGetItems.
    let mid = format!("{prefix}-mid");
    open(&other, &mid, 0, 2).await;
    pay_direct(&other, &format!("{prefix}-mid1"), &buyer, &mid, 500)
        .await
        .unwrap();
    assert_eq!(shards_of(&stale, &mid).await, (2, 500));
    other
        .raise_shards(&AccountId::parse("account_id", &mid).unwrap(), 4)
        .await
        .unwrap();
    pay_direct(&other, &format!("{prefix}-mid2"), &buyer, &mid, 600)
        .await
        .unwrap();
    let before = counter.snapshot();
    assert_eq!(shards_of(&stale, &mid).await, (4, 1_100));
    assert_eq!(cost(&counter, before), vec![("BatchGetItem".to_owned(), 2)]);
    audit_clean(&first.ledger).await;
}

/// A page token issued before a reshard pages on through exactly the
/// entries that were older than its first page, none of the new ones and
/// none twice; a fresh listing then shows every entry once.
#[tokio::test]
async fn a_page_token_from_before_a_reshard_still_pages_correctly() {
    for shards_before in [1, 2] {
        let app = TestApp::spawn().await;
        // A second instance, which pays after the reshard on new shards.
        let (fresh, _) = instance_promoting(app.ledger.tables(), None);
        let other = TestApp::serve(fresh).await;
        let mut c = app.grpc().await;
        let mut c2 = other.grpc().await;
        let prefix = unique("token");
        let (shop, buyer) = (format!("{prefix}-shop"), format!("{prefix}-buyer"));
        c.add_account(pb::AddAccountRequest {
            account_id: shop.clone(),
            currency: "EUR".into(),
            balance_shards: shards_before,
            ..Default::default()
        })
        .await
        .unwrap();
        add(&mut c, &buyer, "EUR", 1_000_000).await.unwrap();
        for n in 0..12 {
            pay(
                &mut c,
                order(&format!("{prefix}-a{n}"), &buyer, &shop, 10 + n),
            )
            .await
            .unwrap();
        }
        let before: Vec<String> = history_all(&mut c, &shop)
            .await
            .iter()
            .map(|e| e.transaction.as_ref().unwrap().transaction_id.clone())
            .collect();
        assert_eq!(before.len(), 12);
        let first_page = history_page(&mut c, &shop, 5, "").await.unwrap();
        let token = first_page.last().unwrap().next_page_token.clone();

        set_shards(&mut c, &shop, 8).await.unwrap();
        for n in 0..10 {
            let client = if n % 2 == 0 { &mut c } else { &mut c2 };
            pay(
                client,
                order(&format!("{prefix}-b{n}"), &buyer, &shop, 100 + n),
            )
            .await
            .unwrap();
        }

        let mut rest = Vec::new();
        let mut token = token;
        for _ in 0..10 {
            let page = history_page(&mut c2, &shop, 3, &token).await.unwrap();
            rest.extend(
                page.iter()
                    .map(|e| e.transaction.as_ref().unwrap().transaction_id.clone()),
            );
            match page.last() {
                Some(last) if !last.next_page_token.is_empty() => {
                    token = last.next_page_token.clone()
                }
                _ => break,
            }
        }
        assert_eq!(rest, before[5..], "shards before: {shards_before}");

        let all = history_all(&mut c2, &shop).await;
        let ids: HashSet<&str> = all
            .iter()
            .map(|e| e.transaction.as_ref().unwrap().transaction_id.as_str())
            .collect();
        assert_eq!((all.len(), ids.len()), (22, 22));
        let total = balance(&mut c2, &shop).await.unwrap();
        assert_eq!(
            total,
            (0..12).map(|n| 10 + n).sum::<i64>() + (0..10).map(|n| 100 + n).sum::<i64>()
        );
        check_balance_chain(&shop, total, &all);
        audit_clean(&app.ledger).await;
    }
}

/// Payments into an ordinary merchant from four independent instances,
/// one call at a time each, while an admin raises its shards twice in the
/// middle of the run: every payment commits exactly once, the money is
/// conserved, every history entry is there once, and the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resharding_under_concurrent_payments_conserves_money_and_history() {
    const INSTANCES: usize = 4;
    const PAYMENTS: usize = 160;
    const OPENING: i64 = 1_000_000;
    // Promotion off: the reshards of this test are the admin's alone.
    let tables = crate::harness::fresh_ledger().await.tables().clone();
    let mut apps = Vec::new();
    for _ in 0..INSTANCES {
        apps.push(TestApp::serve(instance_promoting(&tables, None).0).await);
    }
    let mut admin = apps[0].grpc().await;
    let prefix = unique("reshard-run");
    let shop = format!("{prefix}-shop");
    add(&mut admin, &shop, "EUR", 0).await.unwrap();
    let customers: Vec<String> = (0..INSTANCES * 2)
        .map(|i| format!("{prefix}-c{i}"))
        .collect();
    for id in &customers {
        add(&mut admin, id, "EUR", OPENING).await.unwrap();
    }
    let done = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(tokio::sync::Notify::new());
    let mut callers = tokio::task::JoinSet::new();
    for (k, app) in apps.iter().enumerate() {
        let mut client = app.grpc().await;
        let (customers, shop, prefix) = (customers.clone(), shop.clone(), prefix.clone());
        let (done, progress) = (done.clone(), progress.clone());
        callers.spawn(async move {
            let mut committed = Vec::new();
            for n in (k..PAYMENTS).step_by(INSTANCES) {
                let customer = &customers[k * 2 + n % 2];
                let request = order(&format!("{prefix}-p{n}"), customer, &shop, 1 + n as i64);
                // ABORTED is safe to retry with the same key; it is bounded.
                let mut reply = None;
                for _ in 0..8 {
                    match pay(&mut client, request.clone()).await {
                        Ok(r) => {
                            reply = Some(r);
                            break;
                        }
                        Err(s) if s.code() == Code::Aborted => continue,
                        Err(s) => panic!("payment {n}: {:?} {}", s.code(), s.message()),
                    }
                }
                let reply = reply.unwrap_or_else(|| panic!("payment {n} stayed ABORTED"));
                committed.push(reply.transaction.expect("transaction"));
                done.fetch_add(1, Ordering::SeqCst);
                progress.notify_waiters();
            }
            committed
        });
    }
    // The reshards, at fixed points of the run.
    for (after, shards) in [(PAYMENTS / 4, 16), (PAYMENTS / 2, 32)] {
        while done.load(Ordering::SeqCst) < after {
            let notified = progress.notified();
            if done.load(Ordering::SeqCst) >= after {
                break;
            }
            notified.await;
        }
        let raised = set_shards(&mut admin, &shop, shards).await.unwrap();
        assert_eq!(raised.account.expect("account").balance_shards, shards);
    }
    let mut committed = HashMap::new();
    while let Some(joined) = callers.join_next().await {
        for tx in joined.unwrap() {
            committed.insert(tx.transaction_id.clone(), tx);
        }
    }
    assert_eq!(committed.len(), PAYMENTS);
    let mut ids = customers.clone();
    ids.push(shop.clone());
    check_exactly_once(
        &mut admin,
        &ids,
        OPENING * customers.len() as i64,
        &committed,
    )
    .await;
    let total: i64 = (0..PAYMENTS).map(|n| 1 + n as i64).sum();
    assert_eq!(balance(&mut admin, &shop).await.unwrap(), total);
    check_stored_shards(&tables, &shop, 32).await;
    audit_clean(&apps[0].ledger).await;
}

/// An instance that keeps losing credit races on an ordinary account
/// promotes it, once, to the configured count; the payment that triggers
/// it commits, and so do the writers that still believe the old count.
/// With promotion off the account stays ordinary.
#[tokio::test]
async fn an_ordinary_account_that_loses_races_is_promoted_once() {
    let first = TestApp::spawn().await;
    let tables = first.ledger.tables().clone();
    let promotion = Promotion {
        shards: 8,
        lost_races: 3,
        // Long enough that the test never depends on how fast it runs.
        window: std::time::Duration::from_secs(3600),
    };
    for promote in [true, false] {
        let (loser, _) = instance_promoting(&tables, promote.then_some(promotion));
        let (winner, _) = instance_promoting(&tables, None);
        let prefix = unique("promote");
        let (shop, a, b) = (
            format!("{prefix}-shop"),
            format!("{prefix}-a"),
            format!("{prefix}-b"),
        );
        open(&winner, &shop, 0, 1).await;
        open(&winner, &a, 100_000, 1).await;
        open(&winner, &b, 100_000, 1).await;
        let mut total = 0;
        pay_direct(&loser, &format!("{prefix}-warm"), &a, &shop, 5)
            .await
            .unwrap();
        total += 5;
        // Each round: the winner moves shard 0 on, so the loser's memory of
        // it is stale and its next payment loses exactly one race.
        for n in 0..6 {
            pay_direct(&winner, &format!("{prefix}-w{n}"), &b, &shop, 7)
                .await
                .unwrap();
            pay_direct(&loser, &format!("{prefix}-l{n}"), &a, &shop, 11)
                .await
                .unwrap();
            total += 18;
            let expected = if promote && n >= 2 { 8 } else { 1 };
            assert_eq!(
                shards_of(&first.ledger, &shop).await,
                (expected, total),
                "after round {n}, promotion {promote}"
            );
        }
    }
    audit_clean(&first.ledger).await;
}
