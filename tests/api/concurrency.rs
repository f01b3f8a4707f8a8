//! Money is conserved exactly under concurrency, and concurrent replays of
//! one payment apply it once.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::pb;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Mutex;
use tonic::Code;

const ACCOUNTS: usize = 20;
const CALLERS: usize = 32;
const PAYMENTS: usize = 5_000;
const OPENING: i64 = 50_000;
/// Share of payments (in percent) that touch one of the hot accounts.
const HOT_PERCENT: u32 = 50;
const HOT_ACCOUNTS: usize = 3;

#[derive(Default)]
struct Outcomes {
    committed: HashMap<String, pb::Transaction>,
    insufficient: usize,
    aborted: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_conserve_money_exactly() {
    let app = TestApp::spawn().await;
    // A second server on the same tables, with its own in-process queues, so
    // that payments also race across processes (as Lambda containers do) and
    // only the DynamoDB conditions keep the ledger exact.
    let twin = TestApp::serve(payment::ledger::Ledger::new(
        payment::config::local_dynamodb_client(crate::harness::shared_dynamodb()),
        app.ledger.tables().clone(),
    ))
    .await;
    let mut c = app.grpc().await;
    let twin_client = twin.grpc().await;
    let prefix = unique("conc");
    let ids: Vec<String> = (0..ACCOUNTS).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        add(&mut c, id, "EUR", OPENING).await.unwrap();
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..CALLERS {
        let (mut client, ids, next, outcomes, prefix) = (
            if caller % 2 == 0 {
                c.clone()
            } else {
                twin_client.clone()
            },
            ids.clone(),
            next.clone(),
            outcomes.clone(),
            prefix.clone(),
        );
        callers.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= PAYMENTS {
                    return;
                }
                let (from, to, amount) = {
                    let mut rng = rand::rng();
                    let pick = |rng: &mut rand::rngs::ThreadRng| {
                        if rng.random_ratio(HOT_PERCENT, 100) {
                            rng.random_range(0..HOT_ACCOUNTS)
                        } else {
                            rng.random_range(0..ACCOUNTS)
                        }
                    };
                    let from = pick(&mut rng);
                    let mut to = pick(&mut rng);
                    while to == from {
                        to = rng.random_range(0..ACCOUNTS);
                    }
                    (from, to, rng.random_range(1..=20_000))
                };
                let result = pay(
                    &mut client,
                    order(&format!("{prefix}-p{n}"), &ids[from], &ids[to], amount),
                )
                .await;
                let mut o = outcomes.lock().await;
                match result {
                    Ok(r) => {
                        assert!(!r.replayed);
                        let tx = r.transaction.unwrap();
                        assert!(o.committed.insert(tx.transaction_id.clone(), tx).is_none());
                    }
                    Err(s) if s.code() == Code::FailedPrecondition => o.insufficient += 1,
                    Err(s) if s.code() == Code::Aborted => o.aborted += 1,
                    Err(s) => panic!("unexpected status {s:?}"),
                }
            }
        });
    }
    while let Some(joined) = callers.join_next().await {
        joined.unwrap();
    }
    let o = outcomes.lock().await;
    assert_eq!(o.committed.len() + o.insufficient + o.aborted, PAYMENTS);
    assert!(
        o.committed.len() > PAYMENTS / 2,
        "too few payments went through: {}",
        o.committed.len()
    );
    eprintln!(
        "concurrency: {} committed, {} insufficient funds, {} aborted",
        o.committed.len(),
        o.insufficient,
        o.aborted
    );
    check_exactly_once(&mut c, &ids, OPENING * ACCOUNTS as i64, &o.committed).await;
    let report = app.ledger.audit(4, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replays_apply_each_payment_once() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let prefix = unique("replay");
    let ids: Vec<String> = (0..4).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        add(&mut c, id, "EUR", 1_000_000).await.unwrap();
    }
    const PAYMENTS_REPLAYED: usize = 150;
    const COPIES: usize = 3;
    // 16 payments (48 calls) in flight at a time, like a busy client pool.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(16 * COPIES));
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..PAYMENTS_REPLAYED {
        let (from, to) = (&ids[n % 4], &ids[(n + 1 + n / 4) % 4]);
        let to = if to == from { &ids[(n + 2) % 4] } else { to };
        let request = order(&format!("{prefix}-k{n}"), from, to, 1 + n as i64);
        for _ in 0..COPIES {
            let (mut client, request, in_flight) = (c.clone(), request.clone(), in_flight.clone());
            calls.spawn(async move {
                let _permit = in_flight.acquire().await.expect("semaphore");
                // ABORTED is the documented "retry with the same key".
                for _ in 0..5 {
                    match pay(&mut client, request.clone()).await {
                        Err(s) if s.code() == Code::Aborted => continue,
                        other => return (request.idempotency_key.clone(), other),
                    }
                }
                panic!("aborted five times in a row");
            });
        }
    }
    let mut by_key: HashMap<String, Vec<pb::MakePaymentResponse>> = HashMap::new();
    while let Some(joined) = calls.join_next().await {
        let (key, result) = joined.unwrap();
        by_key
            .entry(key)
            .or_default()
            .push(result.expect("payment failed"));
    }
    let mut committed = HashMap::new();
    for (key, responses) in &by_key {
        assert_eq!(responses.len(), COPIES);
        let first_time = responses.iter().filter(|r| !r.replayed).count();
        assert_eq!(
            first_time, 1,
            "{key}: {first_time} calls claim to have moved the money"
        );
        let ids: HashSet<_> = responses
            .iter()
            .map(|r| r.transaction.as_ref().unwrap().transaction_id.clone())
            .collect();
        assert_eq!(ids.len(), 1, "{key}: different transactions {ids:?}");
        let tx = responses[0].transaction.clone().unwrap();
        committed.insert(tx.transaction_id.clone(), tx);
    }
    assert_eq!(committed.len(), PAYMENTS_REPLAYED);
    check_exactly_once(&mut c, &ids, 4_000_000, &committed).await;
}
