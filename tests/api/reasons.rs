//! Every reason DynamoDB gives for cancelling a transaction, forced on every
//! operation that writes one, and the code the caller gets for it.
//!
//! DynamoDB cancels a TransactWriteItems with one reason per item:
//! ConditionalCheckFailed, TransactionConflict, ThrottlingError,
//! ValidationError or None, or refuses it with TransactionInProgress.
//! DynamoDB Local rarely produces any but the first, so a proxy in front of
//! it ([`RewriteProxy`]) answers chosen writes itself. The rule:
//! - a conflict, throttling, a transaction in progress or a reason nobody
//!   knows yet is retried by the ledger with backoff: once, the call
//!   succeeds and moves the money once; on every attempt, the caller gets
//!   ABORTED (CONTENDED) for a conflict or UNAVAILABLE (LEDGER_UNAVAILABLE)
//!   for throttling, nothing has changed, and the same call sent again
//!   succeeds;
//! - a ValidationError means DynamoDB found our request invalid: nothing was
//!   written and a retry would not help, so it is INTERNAL, naming it;
//! - never INTERNAL for anything else.
//!
//! Each operation has one function that sets up its preconditions and says
//! what the call changes ([`prepare`]); [`cases`] is the table of (fault,
//! how often, expected outcome), run against each operation.
//!
//! Three more tests race AddAccounts: 32 by one owner at once, and the same
//! one twice at once, against DynamoDB Local itself (which serialises them,
//! so these guard more than they reproduce); and, through the proxy, a
//! client's retry whose write meets its first call's write in flight and is
//! told TransactionConflict, as DynamoDB does.

use crate::harness::{TestApp, create_tables_patiently, shared_dynamodb, unique_tables};
use crate::helpers::*;
use crate::holds::{by_key, hold_order, reason};
use crate::rewrite_proxy::{At, Fault, RewriteProxy, Times};
use payment::ledger::Ledger;
use payment::pb;
use std::time::{Duration, Instant};
use tonic::{Code, Status};

/// Longest one call may take: ten rounds with backoff are about a second,
/// and the SDK gives up on a request after 8 s.
const CALL_TIME_MAX: Duration = Duration::from_secs(30);
/// Longest the accounts index may lag behind a committed AddAccount.
const INDEX_LAG_MAX: Duration = Duration::from_secs(10);
/// Retries of one AddAccount that got a retryable code.
const RETRIES_MAX: usize = 20;

/// What the caller should get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// OK, not a replay, and the change made exactly once.
    Done,
    /// Refused with this code and ErrorInfo reason (and, if set, a message
    /// naming this), nothing changed. When the code is retryable, the same
    /// call sent again (the proxy disarmed) succeeds and changes it once.
    Refused {
        code: Code,
        reason: &'static str,
        names: Option<&'static str>,
    },
}

const CONTENDED: Expect = Expect::Refused {
    code: Code::Aborted,
    reason: "CONTENDED",
    names: None,
};
const UNAVAILABLE: Expect = Expect::Refused {
    code: Code::Unavailable,
    reason: "LEDGER_UNAVAILABLE",
    names: None,
};
const INVALID_REQUEST: Expect = Expect::Refused {
    code: Code::Internal,
    reason: "INTERNAL",
    names: Some("ValidationError"),
};

/// One row: the proxy answers `times` TransactWriteItems with `fault`.
#[derive(Debug, Clone, Copy)]
struct Case {
    fault: Fault,
    times: Times,
    expect: Expect,
}

const fn cancel(code: &'static str, at: At) -> Fault {
    Fault::Cancel { code, at }
}

const ONCE: Times = Times::Next(1);
/// The SDK retries a TransactionInProgressException itself (with the same
/// ClientRequestToken); the ledger sees one only when each of the SDK's
/// attempts got it. "Once" for the ledger is this many for the proxy.
const SDK_ATTEMPTS: Times = Times::Next(payment::config::DYNAMODB_ATTEMPTS_MAX as usize);
const EVERY: Times = Times::Every;

/// The table every operation runs.
fn cases() -> Vec<Case> {
    let row = |fault, times, expect| Case {
        fault,
        times,
        expect,
    };
    vec![
        row(cancel("TransactionConflict", At::First), ONCE, Expect::Done),
        row(cancel("TransactionConflict", At::Last), ONCE, Expect::Done),
        row(cancel("TransactionConflict", At::Last), EVERY, CONTENDED),
        row(cancel("ThrottlingError", At::First), ONCE, Expect::Done),
        row(cancel("ThrottlingError", At::First), EVERY, UNAVAILABLE),
        row(Fault::InProgress, SDK_ATTEMPTS, Expect::Done),
        row(cancel("ValidationError", At::First), ONCE, INVALID_REQUEST),
        row(cancel("SomethingNew", At::First), ONCE, Expect::Done),
        // A real reason (provisioned tables) outside the five the ledger
        // names: never INTERNAL either.
        row(
            cancel("ProvisionedThroughputExceeded", At::Last),
            ONCE,
            Expect::Done,
        ),
    ]
}

/// The operations that write with TransactWriteItems.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// A counted account: opened by a non-admin, so its transaction puts the
    /// account and raises the owner's count.
    AddAccount,
    MakePayment,
    AuthorizePayment,
    CaptureHold,
    VoidHold,
    RefundPayment,
}

/// One call, ready to send.
enum Call {
    /// The owner's client, and the request.
    Add(Client, pb::AddAccountRequest),
    Pay(pb::MakePaymentRequest),
    Authorize(pb::AuthorizePaymentRequest),
    Capture(pb::CaptureHoldRequest),
    Void(pb::VoidHoldRequest),
    Refund(pb::RefundPaymentRequest),
}

impl Call {
    /// Sends the call; OK says whether the answer is a replay.
    async fn send(&self, admin: &Client) -> Result<bool, Status> {
        let mut c = admin.clone();
        let call = async {
            match self {
                Call::Add(owner, r) => owner.clone().add_account(r.clone()).await.map(|_| false),
                Call::Pay(r) => c
                    .make_payment(r.clone())
                    .await
                    .map(|a| a.get_ref().replayed),
                Call::Authorize(r) => c
                    .authorize_payment(r.clone())
                    .await
                    .map(|a| a.get_ref().replayed),
                Call::Capture(r) => c
                    .capture_hold(r.clone())
                    .await
                    .map(|a| a.get_ref().replayed),
                Call::Void(r) => c.void_hold(r.clone()).await.map(|a| a.get_ref().replayed),
                Call::Refund(r) => c
                    .refund_payment(r.clone())
                    .await
                    .map(|a| a.get_ref().replayed),
            }
        };
        tokio::time::timeout(CALL_TIME_MAX, call)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("the test's own call limit")))
    }
}

/// What a test can see of the call's effect, read with strong consistency.
#[derive(Debug, Clone, PartialEq, Eq)]
struct World {
    /// Each account's (balance, held), None when it does not exist.
    accounts: Vec<(String, Option<(i64, i64)>)>,
    /// Each (sender, key)'s record as GetPayment shows it, in words.
    records: Vec<((String, String), String)>,
}

/// An operation set up to be called once.
struct Scenario {
    call: Call,
    /// The world once the call has been made exactly once.
    after: World,
    /// For AddAccount: the owner's client and every account it should list
    /// once the call has been made.
    listing: Option<(Client, Vec<String>)>,
}

/// A server whose ledger reaches DynamoDB Local through the proxy.
struct Env {
    proxy: RewriteProxy,
    app: TestApp,
    admin: Client,
}

impl Env {
    async fn start() -> Env {
        let tables = unique_tables();
        let direct = Ledger::new(
            crate::local_dynamodb::client(shared_dynamodb()),
            tables.clone(),
        );
        create_tables_patiently(&direct).await;
        let proxy = RewriteProxy::start(shared_dynamodb()).await;
        let app = TestApp::serve(Ledger::new(
            crate::local_dynamodb::client(&proxy.url),
            tables,
        ))
        .await;
        let admin = app.grpc().await;
        Env { proxy, app, admin }
    }
}

fn world(accounts: &[(&str, Option<(i64, i64)>)], records: &[(&str, &str, &str)]) -> World {
    World {
        accounts: accounts
            .iter()
            .map(|(id, state)| ((*id).to_owned(), *state))
            .collect(),
        records: records
            .iter()
            .map(|(sender, key, words)| {
                (
                    ((*sender).to_owned(), (*key).to_owned()),
                    (*words).to_owned(),
                )
            })
            .collect(),
    }
}

/// Sets up the preconditions of one call of `op` (through the proxy,
/// disarmed), with fresh accounts and keys: one function per operation.
async fn prepare(env: &Env, op: Op) -> Result<Scenario, String> {
    match op {
        Op::AddAccount => add_account(env).await,
        Op::MakePayment => make_payment(env).await,
        Op::AuthorizePayment => authorize_payment(env).await,
        Op::CaptureHold => capture_hold(env).await,
        Op::VoidHold => void_hold(env).await,
        Op::RefundPayment => refund_payment(env).await,
    }
}

fn setup_failed(what: &'static str) -> impl Fn(Status) -> String {
    move |s| format!("setup: {what}: {:?} {}", s.code(), s.message())
}

/// Sender `a` with 100.00 EUR and recipient `b` with nothing, opened by the
/// admin; and a fresh idempotency key.
async fn two_accounts(env: &Env) -> Result<(String, String, String), String> {
    let mut c = env.admin.clone();
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 10_000)
        .await
        .map_err(setup_failed("open a"))?;
    add(&mut c, &b, "EUR", 0)
        .await
        .map_err(setup_failed("open b"))?;
    Ok((a, b, unique("key")))
}

/// A hold of 40.00 EUR from `a` to `b` under `key`.
async fn place_hold(env: &Env, a: &str, b: &str, key: &str) -> Result<(), String> {
    env.admin
        .clone()
        .authorize_payment(hold_order(key, a, b, 4_000, 3600))
        .await
        .map(drop)
        .map_err(setup_failed("the hold"))
}

fn hold(state: &str, captured: i64) -> String {
    format!("hold {state} 4000 captured {captured}")
}

/// A counted account: a non-admin owner, who has one account already,
/// opens a second.
async fn add_account(env: &Env) -> Result<Scenario, String> {
    let owner = unique("owner");
    let mut owner_client = env.app.grpc_as(&owner, false).await;
    let first = unique("first");
    add(&mut owner_client, &first, "EUR", 0)
        .await
        .map_err(setup_failed("the owner's first account"))?;
    let id = unique("new");
    let request = pb::AddAccountRequest {
        account_id: id.clone(),
        display_name: "counted".into(),
        currency: "EUR".into(),
        ..Default::default()
    };
    let mut listed = vec![first.clone(), id.clone()];
    listed.sort();
    Ok(Scenario {
        call: Call::Add(owner_client.clone(), request),
        after: world(&[(&first, Some((0, 0))), (&id, Some((0, 0)))], &[]),
        listing: Some((owner_client, listed)),
    })
}

/// 25.00 EUR from `a` to `b`.
async fn make_payment(env: &Env) -> Result<Scenario, String> {
    let (a, b, key) = two_accounts(env).await?;
    Ok(Scenario {
        call: Call::Pay(order(&key, &a, &b, 2_500)),
        after: world(
            &[(&a, Some((7_500, 0))), (&b, Some((2_500, 0)))],
            &[(&a, &key, "TRANSACTION_KIND_PAYMENT 2500 refunded 0")],
        ),
        listing: None,
    })
}

/// A hold of 40.00 EUR from `a` to `b`.
async fn authorize_payment(env: &Env) -> Result<Scenario, String> {
    let (a, b, key) = two_accounts(env).await?;
    Ok(Scenario {
        call: Call::Authorize(hold_order(&key, &a, &b, 4_000, 3600)),
        after: world(
            &[(&a, Some((10_000, 4_000))), (&b, Some((0, 0)))],
            &[(&a, &key, &hold("HOLD_STATE_OPEN", 0))],
        ),
        listing: None,
    })
}

/// 30.00 EUR captured of a hold of 40.00.
async fn capture_hold(env: &Env) -> Result<Scenario, String> {
    let (a, b, key) = two_accounts(env).await?;
    place_hold(env, &a, &b, &key).await?;
    Ok(Scenario {
        call: Call::Capture(pb::CaptureHoldRequest {
            hold: by_key(&a, &key),
            amount: 3_000,
        }),
        after: world(
            &[(&a, Some((7_000, 0))), (&b, Some((3_000, 0)))],
            &[(&a, &key, &hold("HOLD_STATE_CAPTURED", 3_000))],
        ),
        listing: None,
    })
}

/// A hold of 40.00 EUR voided.
async fn void_hold(env: &Env) -> Result<Scenario, String> {
    let (a, b, key) = two_accounts(env).await?;
    place_hold(env, &a, &b, &key).await?;
    Ok(Scenario {
        call: Call::Void(pb::VoidHoldRequest {
            hold: by_key(&a, &key),
        }),
        after: world(
            &[(&a, Some((10_000, 0))), (&b, Some((0, 0)))],
            &[(&a, &key, &hold("HOLD_STATE_VOIDED", 0))],
        ),
        listing: None,
    })
}

/// 20.00 EUR refunded of a payment of 50.00.
async fn refund_payment(env: &Env) -> Result<Scenario, String> {
    let (a, b, key) = two_accounts(env).await?;
    pay(&mut env.admin.clone(), order(&key, &a, &b, 5_000))
        .await
        .map_err(setup_failed("the payment"))?;
    let refund_key = unique("refund");
    Ok(Scenario {
        call: Call::Refund(pb::RefundPaymentRequest {
            idempotency_key: refund_key.clone(),
            payment: by_key(&a, &key),
            amount: 2_000,
            memo: "refund".into(),
        }),
        after: world(
            &[(&a, Some((7_000, 0))), (&b, Some((3_000, 0)))],
            &[
                (&a, &key, "TRANSACTION_KIND_PAYMENT 5000 refunded 2000"),
                (&b, &refund_key, "TRANSACTION_KIND_REFUND 2000 refunded 0"),
            ],
        ),
        listing: None,
    })
}

/// The accounts and records of `like`, as they are now.
async fn observe(c: &Client, like: &World) -> Result<World, String> {
    let mut c = c.clone();
    let mut now = World {
        accounts: Vec::new(),
        records: Vec::new(),
    };
    for (id, _) in &like.accounts {
        let state = match c
            .get_account_balance(pb::GetAccountBalanceRequest {
                account_id: id.clone(),
            })
            .await
        {
            Ok(r) => {
                let account = r.into_inner().account.ok_or("no account in answer")?;
                Some((account.balance, account.held))
            }
            Err(s) if s.code() == Code::NotFound => None,
            Err(s) => return Err(format!("reading {id}: {s:?}")),
        };
        now.accounts.push((id.clone(), state));
    }
    for ((sender, key), _) in &like.records {
        let words = match c
            .get_payment(pb::GetPaymentRequest {
                payment: by_key(sender, key),
                finalize: false,
            })
            .await
        {
            Ok(r) => describe(&r.into_inner()),
            Err(s) if s.code() == Code::NotFound => "none".to_owned(),
            Err(s) => return Err(format!("looking up {key}: {s:?}")),
        };
        now.records.push(((sender.clone(), key.clone()), words));
    }
    Ok(now)
}

/// A record in words: a hold by its state and amounts, a payment or refund
/// by its kind, amount and how much of it was refunded.
fn describe(found: &pb::GetPaymentResponse) -> String {
    if let Some(hold) = &found.hold {
        let state = pb::HoldState::try_from(hold.state).map_or("?", |s| s.as_str_name());
        return format!(
            "hold {state} {} captured {}",
            hold.amount, hold.captured_amount
        );
    }
    match &found.transaction {
        Some(tx) => {
            let kind = pb::TransactionKind::try_from(tx.kind).map_or("?", |k| k.as_str_name());
            format!("{kind} {} refunded {}", tx.amount, found.refunded_total)
        }
        None => "neither a hold nor a transaction".to_owned(),
    }
}

/// Polls the owner's listing until it is exactly `expected` (the index may
/// lag a just opened account), for at most [`INDEX_LAG_MAX`].
async fn listing_settles(owner: &Client, expected: &[String]) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let listed = list_own(owner).await?;
        if listed == expected {
            return Ok(());
        }
        if started.elapsed() > INDEX_LAG_MAX {
            return Err(format!(
                "ListAccounts shows {listed:?} after {INDEX_LAG_MAX:?}, expected {expected:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every account the caller owns, by id (sorted, duplicates kept).
async fn list_own(owner: &Client) -> Result<Vec<String>, String> {
    let mut owner = owner.clone();
    let mut ids = Vec::new();
    let mut token = String::new();
    // Bounded: ten pages of 100 is more than any test here opens.
    for _ in 0..10 {
        let page = owner
            .list_accounts(pb::ListAccountsRequest {
                page_size: 100,
                page_token: token.clone(),
                owner: String::new(),
            })
            .await
            .map_err(|s| format!("ListAccounts: {s:?}"))?
            .into_inner();
        ids.extend(page.accounts.into_iter().map(|a| a.account_id));
        token = page.next_page_token;
        if token.is_empty() {
            ids.sort();
            return Ok(ids);
        }
    }
    Err("ListAccounts did not end within ten pages".into())
}

macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

/// The change is there, exactly once.
async fn check_done(env: &Env, scenario: &Scenario) -> Result<(), String> {
    let now = observe(&env.admin, &scenario.after).await?;
    ensure!(
        now == scenario.after,
        "after the call: {now:?}, expected {:?}",
        scenario.after
    );
    if let Some((owner, expected)) = &scenario.listing {
        listing_settles(owner, expected).await?;
    }
    Ok(())
}

/// Runs one row against one operation.
async fn run_case(env: &Env, op: Op, case: &Case) -> Result<(), String> {
    let scenario = prepare(env, op).await?;
    let before = observe(&env.admin, &scenario.after).await?;
    ensure!(
        before != scenario.after,
        "setup: the world already looks as the call should leave it: {before:?}"
    );
    env.proxy.arm(case.fault, case.times);
    let result = scenario.call.send(&env.admin).await;
    let (rewritten, forwarded, log) = (
        env.proxy.rewritten(),
        env.proxy.forwarded_writes(),
        env.proxy.log(),
    );
    env.proxy.disarm();
    let seen = format!(
        "(the proxy answered {rewritten} writes: {}; passed {forwarded})",
        summary(&log)
    );
    match case.times {
        Times::Next(n) => ensure!(
            rewritten == n,
            "the fault was to answer {n} writes {seen}; answer {result:?}"
        ),
        Times::Every => ensure!(
            rewritten >= 1,
            "the call wrote nothing {seen}; answer {result:?}"
        ),
    }
    match case.expect {
        Expect::Done => {
            match result {
                Ok(false) => {}
                Ok(true) => return Err(format!("OK but marked replayed {seen}")),
                Err(s) => {
                    return Err(format!(
                        "expected OK, got {:?} {} (reason {:?}) {seen}",
                        s.code(),
                        s.message(),
                        reason(&s)
                    ));
                }
            }
            check_done(env, &scenario).await
        }
        Expect::Refused {
            code,
            reason: why,
            names,
        } => {
            let status = match result {
                Ok(replayed) => {
                    return Err(format!(
                        "expected {code:?} ({why}), got OK (replayed {replayed}) {seen}"
                    ));
                }
                Err(status) => status,
            };
            ensure!(
                status.code() == code && reason(&status) == why,
                "expected {code:?} ({why}), got {:?} {:?} (reason {:?}) {seen}",
                status.code(),
                status.message(),
                reason(&status)
            );
            if let Some(word) = names {
                ensure!(
                    status.message().contains(word),
                    "{code:?} message {:?} does not name {word}",
                    status.message()
                );
            }
            let now = observe(&env.admin, &scenario.after).await?;
            ensure!(now == before, "refused, yet changed: {before:?} -> {now:?}");
            if matches!(code, Code::Aborted | Code::Unavailable) {
                // Retryable: the same call again succeeds, once.
                match scenario.call.send(&env.admin).await {
                    Ok(false) => {}
                    other => return Err(format!("the retry answered {other:?}")),
                }
                check_done(env, &scenario).await?;
            }
            Ok(())
        }
    }
}

/// The proxy's log with repeated lines counted: "3 x cancelled ...".
fn summary(log: &[String]) -> String {
    let mut runs: Vec<(usize, &str)> = Vec::new();
    for line in log {
        match runs.last_mut() {
            Some((n, last)) if *last == line.as_str() => *n += 1,
            _ => runs.push((1, line)),
        }
    }
    let runs: Vec<String> = runs
        .into_iter()
        .map(|(n, line)| format!("{n} x {line}"))
        .collect();
    format!("[{}]", runs.join("; "))
}

/// Runs every row of [`cases`] against `op`, one after another on one
/// server and proxy, each with fresh accounts; reports every row that
/// fails, not only the first.
async fn run_table(op: Op) {
    let env = Env::start().await;
    let cases = cases();
    let mut failed = Vec::new();
    for (row, case) in cases.iter().enumerate() {
        let outcome = run_case(&env, op, case).await;
        eprintln!(
            "{op:?} row {row} {:?} x {:?} -> {:?}: {}",
            case.fault,
            case.times,
            case.expect,
            match &outcome {
                Ok(()) => "pass".to_owned(),
                Err(why) => format!("FAIL: {why}"),
            }
        );
        if let Err(why) = outcome {
            failed.push(format!(
                "row {row}: {:?} x {:?}, expected {:?}: {why}",
                case.fault, case.times, case.expect
            ));
        }
    }
    env.app.stop().await;
    assert!(
        failed.is_empty(),
        "{op:?}: {} of {} rows failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_account_counted_meets_every_cancellation_reason() {
    run_table(Op::AddAccount).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_payment_meets_every_cancellation_reason() {
    run_table(Op::MakePayment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_payment_meets_every_cancellation_reason() {
    run_table(Op::AuthorizePayment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_hold_meets_every_cancellation_reason() {
    run_table(Op::CaptureHold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn void_hold_meets_every_cancellation_reason() {
    run_table(Op::VoidHold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_payment_meets_every_cancellation_reason() {
    run_table(Op::RefundPayment).await;
}

/// The codes a caller may be told to retry after.
fn retryable(code: Code) -> bool {
    matches!(code, Code::Aborted | Code::Unavailable)
}

const CONCURRENT_ADDS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_add_accounts_by_one_owner_never_answer_internal() {
    let app = TestApp::spawn().await;
    let owner = unique("owner");
    let client = app.grpc_as(&owner, false).await;
    let prefix = unique("acct");
    let ids: Vec<String> = (0..CONCURRENT_ADDS)
        .map(|i| format!("{prefix}-{i:02}"))
        .collect();
    // All sent before any is awaited.
    let mut calls = tokio::task::JoinSet::new();
    for id in &ids {
        let (mut c, id) = (client.clone(), id.clone());
        calls.spawn(async move {
            let answer = tokio::time::timeout(CALL_TIME_MAX, add(&mut c, &id, "EUR", 0))
                .await
                .unwrap_or_else(|_| panic!("AddAccount {id} took over {CALL_TIME_MAX:?}"));
            (id, answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = calls.join_next().await {
        answers.push(joined.expect("caller"));
    }
    answers.sort_by(|x, y| x.0.cmp(&y.0));
    let wrong: Vec<String> = answers
        .iter()
        .filter_map(|(id, a)| match a {
            Ok(account) if account.account_id == *id && account.owner == owner => None,
            Err(s) if retryable(s.code()) => None,
            other => Some(format!("{id}: {other:?}")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "answers other than OK or a retryable code: {wrong:#?}"
    );
    let retried: Vec<&String> = answers
        .iter()
        .filter(|(_, a)| a.is_err())
        .map(|(id, _)| id)
        .collect();
    eprintln!(
        "{} of {CONCURRENT_ADDS} concurrent AddAccounts answered OK; retrying {retried:?}",
        CONCURRENT_ADDS - retried.len()
    );
    // Every account that answered OK exists now.
    let mut c = app.grpc_as(&owner, false).await;
    for (id, answer) in &answers {
        if answer.is_ok() {
            assert_eq!(
                balance(&mut c, id).await.map_err(|s| s.code()),
                Ok(0),
                "{id} answered OK"
            );
        }
    }
    // A caller told to retry does, with the same request, until it is
    // opened (the same owner with the same fields gets the account).
    for id in retried {
        let mut last = None;
        for _ in 0..RETRIES_MAX {
            match add(&mut c, id, "EUR", 0).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(s) if retryable(s.code()) => last = Some(s),
                Err(s) => panic!("{id}: the retry answered {s:?}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            last.is_none(),
            "{id}: still {last:?} after {RETRIES_MAX} retries"
        );
    }
    // The owner has exactly these accounts, each once.
    listing_settles(&c, &ids)
        .await
        .expect("the owner's listing");
    app.stop().await;
}

fn twin_request(id: &str) -> pb::AddAccountRequest {
    pb::AddAccountRequest {
        account_id: id.to_owned(),
        display_name: "twin".into(),
        currency: "EUR".into(),
        ..Default::default()
    }
}

/// Both calls OK with the same account, which exists once.
async fn check_twins(
    c: &mut Client,
    id: &str,
    owner: &str,
    first: Result<tonic::Response<pb::AddAccountResponse>, Status>,
    second: Result<tonic::Response<pb::AddAccountResponse>, Status>,
) {
    let said = |call: &str, s: Status| {
        panic!(
            "{call}: {:?} {:?} (reason {:?})",
            s.code(),
            s.message(),
            reason(&s)
        )
    };
    let first = first.unwrap_or_else(|s| said("the first call", s));
    let second = second.unwrap_or_else(|s| said("the second call", s));
    let (first, second) = (first.into_inner().account, second.into_inner().account);
    let first = first.expect("account");
    assert_eq!(
        (first.account_id.as_str(), first.owner.as_str()),
        (id, owner)
    );
    assert_eq!(Some(first), second, "both calls answer the same account");
    assert_eq!(balance(c, id).await.map_err(|s| s.code()), Ok(0));
    listing_settles(c, &[id.to_owned()])
        .await
        .expect("one account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_add_account_twice_at_once_opens_it_once() {
    let app = TestApp::spawn().await;
    let owner = unique("owner");
    let mut c = app.grpc_as(&owner, false).await;
    let id = unique("twin");
    let (mut one, mut two) = (c.clone(), c.clone());
    let (first, second) = tokio::join!(
        one.add_account(twin_request(&id)),
        two.add_account(twin_request(&id))
    );
    check_twins(&mut c, &id, &owner, first, second).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_add_account_that_meets_the_first_in_flight_opens_it_once() {
    // The client's first call has reached DynamoDB but its answer is late
    // (the client gave up at its deadline); the client sends the same call
    // again, whose write meets the first's transaction in progress. DynamoDB
    // answers such a write TransactionConflict, on both items.
    let env = Env::start().await;
    let owner = unique("owner");
    let mut c = env.app.grpc_as(&owner, false).await;
    let id = unique("twin");
    env.proxy.arm_race(At::All);
    let mut one = c.clone();
    let request = twin_request(&id);
    let first = tokio::spawn(async move { one.add_account(request).await });
    let started = Instant::now();
    while env.proxy.forwarded_writes() == 0 {
        assert!(
            started.elapsed() < CALL_TIME_MAX,
            "the first AddAccount never wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = tokio::time::timeout(CALL_TIME_MAX, c.clone().add_account(twin_request(&id)))
        .await
        .expect("the retry took too long");
    let first = tokio::time::timeout(CALL_TIME_MAX, first)
        .await
        .expect("the first call took too long")
        .expect("first caller");
    assert!(
        env.proxy.race_met(),
        "the retry's write did not meet the first in flight: {:?}",
        env.proxy.log()
    );
    env.proxy.disarm();
    check_twins(&mut c, &id, &owner, first, second).await;
    env.app.stop().await;
}
