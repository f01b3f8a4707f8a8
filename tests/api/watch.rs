//! WatchAccount: a watcher sees payments made by other clients, a sharded
//! merchant paid by eight independent instances is watched exactly once
//! (resharded while watched), the Lambda long poll ends with its first
//! entries or empty at its bound, and each ends with a token to resume
//! from without loss or duplicates. On native gRPC and gRPC-Web (the
//! server) and the Lambda handler.

use crate::harness::{AuthedClient, TESTER, TestApp, token, web_client};
use crate::helpers::grpc_web::frame;
use crate::helpers::*;
use crate::lambda::{event_file, invoke, lambda_service, with_body};
use payment::pb;
use prost::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tonic::Code;

/// How long a test waits for one watched message before it fails. Entries
/// normally arrive within a poll (about a second at most); this bounds
/// only a failure, on a machine loaded by parallel tests.
const MESSAGE_WAIT_MAX: Duration = Duration::from_secs(60);

/// A watcher's client, on native gRPC or gRPC-Web.
enum Watcher {
    Grpc(Client),
    Web(Box<AuthedClient<payment::client::GrpcWebTransport>>),
}

impl Watcher {
    async fn new(app: &TestApp, sub: &str, admin: bool, web: bool) -> Watcher {
        if web {
            Watcher::Web(Box::new(web_client(
                &app.url(),
                crate::harness::Bearer::new(&token(sub, admin)),
            )))
        } else {
            Watcher::Grpc(app.grpc_as(sub, admin).await)
        }
    }

    /// Opens a watch: the stream, once the service has fixed where it
    /// starts.
    async fn open(
        &mut self,
        account_id: &str,
        resume_token: &str,
        max_seconds: i32,
    ) -> Result<tonic::Streaming<pb::WatchAccountResponse>, tonic::Status> {
        let request = pb::WatchAccountRequest {
            account_id: account_id.into(),
            resume_token: resume_token.into(),
            max_seconds,
        };
        let reply = match self {
            Watcher::Grpc(c) => c.watch_account(request).await?,
            Watcher::Web(c) => c.watch_account(request).await?,
        };
        Ok(reply.into_inner())
    }

    /// A whole watch call, every message to its end.
    async fn watch(
        &mut self,
        account_id: &str,
        resume_token: &str,
        max_seconds: i32,
    ) -> Result<Vec<pb::WatchAccountResponse>, tonic::Status> {
        let mut stream = self.open(account_id, resume_token, max_seconds).await?;
        let mut messages = Vec::new();
        while let Some(message) = next(&mut stream).await? {
            messages.push(message);
        }
        Ok(messages)
    }

    /// The token of "now": a one-second watch from now that sees nothing
    /// ends with it. A watch resumed from it sees everything after this
    /// call began, so that what a test does next is certainly watched.
    async fn now(&mut self, account_id: &str) -> String {
        let messages = self.watch(account_id, "", 1).await.expect("watch from now");
        let last = messages.last().expect("the last message");
        assert!(last.transaction.is_none(), "{messages:?}");
        assert!(!last.resume_token.is_empty());
        last.resume_token.clone()
    }
}

/// The next message of a watch, within [`MESSAGE_WAIT_MAX`].
async fn next(
    stream: &mut tonic::Streaming<pb::WatchAccountResponse>,
) -> Result<Option<pb::WatchAccountResponse>, tonic::Status> {
    tokio::time::timeout(MESSAGE_WAIT_MAX, stream.message())
        .await
        .unwrap_or_else(|_| panic!("no watch message within {MESSAGE_WAIT_MAX:?}"))
}

async fn a_watcher_sees_a_payment_made_by_another_client(web: bool) {
    let app = TestApp::spawn().await;
    let mut admin = app.grpc().await;
    let (owner, payer, shop) = (unique("owner"), unique("payer"), unique("shop"));
    add(&mut admin, &payer, "EUR", 10_000).await.unwrap();
    let mut owner_client = app.grpc_as(&owner, false).await;
    add(&mut owner_client, &shop, "EUR", 0).await.unwrap();

    // The shop's owner watches; another client (an admin) pays the shop.
    let mut watcher = Watcher::new(&app, &owner, false, web).await;
    let start = watcher.now(&shop).await;
    let mut stream = watcher.open(&shop, &start, 60).await.unwrap();
    let paid = pay(&mut admin, order(&unique("k"), &payer, &shop, 1_234))
        .await
        .unwrap()
        .transaction
        .unwrap();
    let seen = next(&mut stream).await.unwrap().expect("the payment");
    assert_eq!(seen.transaction.as_ref(), Some(&paid), "the exact payment");
    assert_eq!(
        (
            seen.direction,
            seen.balance_after,
            seen.sequence,
            seen.shard
        ),
        (pb::Direction::Credit as i32, 1_234, 1, 0)
    );
    drop(stream);

    // Paid again while nobody watches: a watch resumed from the entry's
    // token sees that payment, and only it, then ends at its bound with
    // the token after it.
    let again = pay(&mut admin, order(&unique("k"), &payer, &shop, 766))
        .await
        .unwrap()
        .transaction
        .unwrap();
    let messages = watcher.watch(&shop, &seen.resume_token, 1).await.unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].transaction.as_ref(), Some(&again));
    assert_eq!(
        (messages[0].balance_after, messages[0].sequence),
        (2_000, 2)
    );
    assert!(messages[1].transaction.is_none());
    assert_eq!(messages[1].resume_token, messages[0].resume_token);

    // Nobody else may watch it, nor learn whether an account exists; an
    // admin may.
    let mut stranger = Watcher::new(&app, &unique("stranger"), false, web).await;
    for account in [shop.clone(), unique("ghost")] {
        let status = stranger.watch(&account, "", 1).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }
    let mut admin_watcher = Watcher::new(&app, TESTER, true, web).await;
    let messages = admin_watcher
        .watch(&shop, &messages[1].resume_token, 1)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1, "nothing new: {messages:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_watcher_sees_a_payment_made_by_another_client_over_grpc() {
    a_watcher_sees_a_payment_made_by_another_client(false).await;
}

#[tokio::test]
async fn a_watcher_sees_a_payment_made_by_another_client_over_grpc_web() {
    a_watcher_sees_a_payment_made_by_another_client(true).await;
}

const INSTANCES: usize = 8;
const PAYMENTS_PER_INSTANCE: usize = 12;
const MERCHANT_SHARDS: i32 = 8;
/// What an admin raises the merchant to while it is paid and watched.
const MERCHANT_SHARDS_RAISED: i32 = 12;
const CUSTOMER_OPENING: i64 = 1_000_000;

/// Reads a watch until it has sent `count` entries.
async fn watched_entries(
    mut stream: tonic::Streaming<pb::WatchAccountResponse>,
    count: usize,
) -> Vec<pb::WatchAccountResponse> {
    let mut entries = Vec::new();
    while entries.len() < count {
        let message = next(&mut stream)
            .await
            .unwrap_or_else(|s| panic!("the watch failed: {s:?}"))
            .unwrap_or_else(|| panic!("the watch ended after {} entries", entries.len()));
        assert!(message.transaction.is_some(), "an entry: {message:?}");
        entries.push(message);
    }
    entries
}

/// Eight servers that share nothing in-process (like Lambda containers)
/// pay one sharded merchant at once, and an admin raises its shards midway;
/// then the merchant pays nearly all of it out, drawing from several
/// shards at once. A watcher on native gRPC and one on gRPC-Web, on two of
/// the instances, see every payment exactly once, each shard's entries in
/// sequence order, the payout as one entry, and the balance after the last
/// entry is what is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sharded_merchant_paid_by_eight_instances_is_watched_exactly_once() {
    let first = TestApp::spawn().await;
    let tables = first.ledger.tables().clone();
    let mut apps = vec![first];
    for _ in 1..INSTANCES {
        apps.push(TestApp::serve(instance(&tables).0).await);
    }
    let mut admin = apps[0].grpc().await;
    let prefix = unique("watched");
    let merchant = format!("{prefix}-shop");
    let opened = admin
        .add_account(pb::AddAccountRequest {
            account_id: merchant.clone(),
            display_name: "merchant".into(),
            currency: "EUR".into(),
            initial_balance: 0,
            balance_shards: MERCHANT_SHARDS,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.account.unwrap().balance_shards, MERCHANT_SHARDS);
    let customers: Vec<String> = (0..INSTANCES).map(|i| format!("{prefix}-c{i}")).collect();
    for id in &customers {
        add(&mut admin, id, "EUR", CUSTOMER_OPENING).await.unwrap();
    }

    let total = INSTANCES * PAYMENTS_PER_INSTANCE;
    let mut grpc_watcher = Watcher::new(&apps[1], TESTER, true, false).await;
    let mut web_watcher = Watcher::new(&apps[2], TESTER, true, true).await;
    let start = grpc_watcher.now(&merchant).await;
    let grpc_stream = grpc_watcher.open(&merchant, &start, 300).await.unwrap();
    let web_stream = web_watcher.open(&merchant, &start, 300).await.unwrap();
    let grpc_seen = tokio::spawn(watched_entries(grpc_stream, total + 1));
    let web_seen = tokio::spawn(watched_entries(web_stream, total + 1));

    let mut payers = tokio::task::JoinSet::new();
    for (i, app) in apps.iter().enumerate() {
        let mut client = app.grpc().await;
        let (customer, merchant, prefix) = (customers[i].clone(), merchant.clone(), prefix.clone());
        payers.spawn(async move {
            let mut committed = Vec::new();
            // One request at a time per instance, like a Lambda container.
            for n in 0..PAYMENTS_PER_INSTANCE {
                if i == 0 && n == PAYMENTS_PER_INSTANCE / 2 {
                    let raised = client
                        .set_balance_shards(pb::SetBalanceShardsRequest {
                            account_id: merchant.clone(),
                            balance_shards: MERCHANT_SHARDS_RAISED,
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    assert!(raised.raised);
                }
                let amount = 1 + ((i * PAYMENTS_PER_INSTANCE + n) as i64 * 7919) % 1000;
                let key = format!("{prefix}-p{i}-{n}");
                let reply = pay(&mut client, order(&key, &customer, &merchant, amount))
                    .await
                    .unwrap_or_else(|s| panic!("payment {key}: {:?} {}", s.code(), s.message()));
                committed.push(reply.transaction.expect("transaction"));
            }
            committed
        });
    }
    let mut committed: HashMap<String, pb::Transaction> = HashMap::new();
    while let Some(joined) = payers.join_next().await {
        for tx in joined.unwrap() {
            committed.insert(tx.transaction_id.clone(), tx);
        }
    }
    assert_eq!(committed.len(), total, "every payment commits");
    let paid: i64 = committed.values().map(|t| t.amount).sum();
    // The merchant pays out all but one cent: more than one shard holds, so
    // one payment drawn from several shards, one entry in the watch.
    let payout = pay(
        &mut admin,
        order(
            &format!("{prefix}-payout"),
            &merchant,
            &customers[0],
            paid - 1,
        ),
    )
    .await
    .unwrap()
    .transaction
    .unwrap();

    for (what, seen, watcher) in [
        ("gRPC", grpc_seen.await.unwrap(), &mut grpc_watcher),
        ("gRPC-Web", web_seen.await.unwrap(), &mut web_watcher),
    ] {
        // The payout is one debit entry; order across shards follows entry
        // times, which writers' clocks set, so it is found by id.
        let (payouts, credits): (Vec<_>, Vec<_>) = seen
            .iter()
            .partition(|m| m.transaction.as_ref() == Some(&payout));
        assert_eq!(payouts.len(), 1, "{what}: the payout, once");
        assert_eq!(payouts[0].direction, pb::Direction::Debit as i32, "{what}");
        let ids: HashSet<&str> = credits
            .iter()
            .map(|m| m.transaction.as_ref().unwrap().transaction_id.as_str())
            .collect();
        assert_eq!(ids.len(), total, "{what}: each payment once");
        for message in &credits {
            let tx = message.transaction.as_ref().unwrap();
            assert_eq!(
                Some(tx),
                committed.get(&tx.transaction_id),
                "{what}: the exact payment"
            );
            assert_eq!(message.direction, pb::Direction::Credit as i32, "{what}");
        }
        // After every entry, the balance is what is left: one cent.
        let last = seen.last().unwrap();
        assert_eq!(last.balance_after, 1, "{what}: the balance after all");
        // Within a shard, entries come in sequence order, with no gap.
        let mut by_shard: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for message in &seen {
            by_shard
                .entry(message.shard)
                .or_default()
                .push(message.sequence);
        }
        for (shard, sequences) in &by_shard {
            let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
            assert_eq!(sequences, &expected, "{what}: shard {shard}");
        }
        // Resumed from the last entry: nothing more, and the same token.
        let after = watcher
            .watch(&merchant, &last.resume_token, 1)
            .await
            .unwrap();
        assert_eq!(after.len(), 1, "{what}: nothing after the last: {after:?}");
        assert!(after[0].transaction.is_none());
        eprintln!(
            "watch/sharded {what}: entries per shard {by_shard:?}, payout at shard {} sequence {}",
            payouts[0].shard, payouts[0].sequence
        );
    }
    assert_eq!(balance(&mut admin, &merchant).await.unwrap(), 1);
    for app in apps {
        app.stop().await;
    }
}

/// A WatchAccount event of `sub` (the watch-account event of events/, as
/// alice), with this request.
fn watch_event(account_id: &str, resume_token: &str, max_seconds: i32) -> String {
    let request = pb::WatchAccountRequest {
        account_id: account_id.into(),
        resume_token: resume_token.into(),
        max_seconds,
    };
    with_body(
        &event_file("watch-account"),
        "/payment.v1.PaymentService/WatchAccount",
        &frame(&request.encode_to_vec()),
        false,
    )
}

async fn long_poll(
    service: &payment::stack::HttpService,
    event: &str,
) -> Vec<pb::WatchAccountResponse> {
    let reply = invoke(service, event).await;
    assert_eq!(
        (reply.http_status, reply.code().as_str()),
        (200, "0"),
        "{reply:?}"
    );
    reply.decoded()
}

/// Behind API Gateway a watch is a long poll: from now with a bound of a
/// second it ends empty, with the token of now; started before a payment,
/// it ends with that payment and the token after it; resumed from there, it
/// ends empty again with the same token.
#[tokio::test]
async fn the_lambda_long_poll_ends_with_the_first_entries_or_empty_at_its_bound() {
    let service = lambda_service(crate::harness::fresh_ledger().await).await;
    for name in ["add-account-alice", "add-account-bob"] {
        let reply = invoke(&service, &event_file(name)).await;
        assert_eq!(reply.code(), "0", "{name}: {reply:?}");
    }
    let empty = long_poll(&service, &watch_event("alice", "", 1)).await;
    assert_eq!(empty.len(), 1, "ended empty: {empty:?}");
    assert!(empty[0].transaction.is_none());
    let now = empty[0].resume_token.clone();
    assert!(!now.is_empty(), "with a token to resume from");

    // The poll waits up to its bound (0: the Lambda's, 15 s); a payment
    // made meanwhile ends it.
    let polling = {
        let (service, event) = (service.clone(), watch_event("alice", &now, 0));
        tokio::spawn(async move { long_poll(&service, &event).await })
    };
    let paid = invoke(&service, &event_file("make-payment")).await;
    assert_eq!(paid.code(), "0", "{paid:?}");
    let paid = pb::MakePaymentResponse::decode(paid.messages[0].clone())
        .unwrap()
        .transaction
        .unwrap();
    let polled = tokio::time::timeout(MESSAGE_WAIT_MAX, polling)
        .await
        .expect("the long poll ended")
        .unwrap();
    assert_eq!(polled.len(), 2, "the payment, then the end: {polled:?}");
    assert_eq!(polled[0].transaction.as_ref(), Some(&paid));
    assert_eq!(
        (
            polled[0].direction,
            polled[0].balance_after,
            polled[0].sequence
        ),
        (pb::Direction::Debit as i32, 10_000 - 1_234, 2)
    );
    assert!(polled[1].transaction.is_none());
    assert_eq!(polled[1].resume_token, polled[0].resume_token);

    let empty = long_poll(&service, &watch_event("alice", &polled[1].resume_token, 1)).await;
    assert_eq!(empty.len(), 1, "ended empty: {empty:?}");
    assert!(empty[0].transaction.is_none());
    assert_eq!(empty[0].resume_token, polled[1].resume_token);
}

/// Payments a latency measurement makes.
const LATENCY_SAMPLES: usize = 12;
/// Longest gap before each of them: a little over the idle poll pause, so
/// that the payments fall anywhere in a watcher's pause.
const LATENCY_GAP_MAX_MS: u64 = 1_500;

/// A watcher on payment-server receives payments one at a time, each the
/// exact payment; the time from each payment's commit (its MakePayment
/// answered) to its entry received is printed for docs/watch.md, not
/// asserted: `cargo test --test api watch::latency -- --nocapture`.
#[tokio::test]
async fn latency_of_a_watcher_on_the_server_is_printed() {
    use rand::Rng as _;
    let app = TestApp::spawn().await;
    let mut admin = app.grpc().await;
    let (payer, shop) = (unique("payer"), unique("shop"));
    add(&mut admin, &payer, "EUR", 1_000_000).await.unwrap();
    add(&mut admin, &shop, "EUR", 0).await.unwrap();
    let mut watcher = Watcher::new(&app, TESTER, true, false).await;
    let start = watcher.now(&shop).await;
    let mut stream = watcher.open(&shop, &start, 300).await.unwrap();
    let mut rng = seeded_rng(test_seed("watch latency"));
    let mut latencies = Vec::with_capacity(LATENCY_SAMPLES);
    for n in 0..LATENCY_SAMPLES {
        // Load shaping, not synchronisation: where in its pause the watcher
        // is when the payment commits.
        let gap = rng.random_range(0..LATENCY_GAP_MAX_MS);
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let paid = pay(&mut admin, order(&format!("lat-{n}"), &payer, &shop, 100))
            .await
            .unwrap()
            .transaction;
        let committed = std::time::Instant::now();
        let seen = next(&mut stream).await.unwrap().expect("the payment");
        latencies.push(committed.elapsed());
        assert_eq!(seen.transaction, paid, "payment {n}");
        assert_eq!(seen.balance_after, 100 * (n as i64 + 1));
    }
    latencies.sort();
    let at = |q: usize| latencies[(latencies.len() - 1) * q / 100];
    eprintln!(
        "watch/latency on payment-server, commit to entry received, {LATENCY_SAMPLES} payments: min {:?} p50 {:?} p90 {:?} max {:?}",
        latencies[0],
        at(50),
        at(90),
        latencies[latencies.len() - 1]
    );
    drop(stream);
    app.stop().await;
}

/// An idle watcher's reads are bounded by its backoff: one account read to
/// start, then polls whose pauses double from 200 ms to 1 s; each poll of
/// an ordinary account is one GetItem. Counted by the instance's own
/// request counter over a call of a few seconds (fewer polls on a slow
/// machine, never more).
#[tokio::test]
async fn an_idle_watcher_reads_at_most_once_a_second_after_its_backoff() {
    const SECONDS: u64 = 5;
    let ledger = crate::harness::fresh_ledger().await;
    let (instance, counter) = instance(ledger.tables());
    let app = TestApp::serve(instance).await;
    let mut admin = app.grpc().await;
    let shop = unique("shop");
    add(&mut admin, &shop, "EUR", 0).await.unwrap();
    let mut watcher = Watcher::new(&app, TESTER, true, false).await;
    let before = counter.snapshot();
    let messages = watcher.watch(&shop, "", SECONDS as i32).await.unwrap();
    assert_eq!(messages.len(), 1, "nothing happened: {messages:?}");
    let sent = cost(&counter, before);
    let requests: u64 = sent.iter().map(|(_, n)| n).sum();
    // Polls at 0, 0.2, 0.6, 1.4, then at most one a second, and one at
    // the bound.
    let polls_max = 4 + SECONDS + 1;
    eprintln!("watch/idle: {SECONDS} s idle, requests by operation {sent:?}");
    assert!(
        sent.iter().all(|(op, _)| op == "GetItem"),
        "an ordinary account's poll is one GetItem: {sent:?}"
    );
    assert!(
        requests <= 1 + polls_max,
        "{requests} requests in {SECONDS} s: {sent:?}"
    );
    app.stop().await;
}

/// A server that stops ends its open watches with their resume token (OK)
/// instead of draining until their bound; the watch resumes from that
/// token on the next server without losing an entry.
#[tokio::test]
async fn a_stopping_server_ends_its_watches_with_their_token() {
    let app = TestApp::spawn().await;
    let tables = app.ledger.tables().clone();
    let mut admin = app.grpc().await;
    let (payer, shop) = (unique("payer"), unique("shop"));
    add(&mut admin, &payer, "EUR", 10_000).await.unwrap();
    add(&mut admin, &shop, "EUR", 0).await.unwrap();
    let mut watcher = Watcher::new(&app, TESTER, true, false).await;
    let start = watcher.now(&shop).await;
    let stream = watcher.open(&shop, &start, 300).await.unwrap();
    let reading = tokio::spawn(async move {
        let mut stream = stream;
        let mut messages = Vec::new();
        while let Some(message) = next(&mut stream).await.expect("ends OK") {
            messages.push(message);
        }
        messages
    });
    // The drain waits for the watch no longer than its next pause.
    tokio::time::timeout(MESSAGE_WAIT_MAX, app.stop())
        .await
        .expect("the server stopped without waiting out the watch's 300 s");
    let messages = tokio::time::timeout(MESSAGE_WAIT_MAX, reading)
        .await
        .expect("the watch ended")
        .unwrap();
    assert_eq!(messages.len(), 1, "only the last message: {messages:?}");
    assert!(messages[0].transaction.is_none());
    assert_eq!(
        messages[0].resume_token, start,
        "nothing happened meanwhile"
    );

    // Paid while no server ran a watch; the next server's watch resumes.
    let next_app = TestApp::serve(instance(&tables).0).await;
    let mut admin = next_app.grpc().await;
    let paid = pay(&mut admin, order(&unique("k"), &payer, &shop, 42))
        .await
        .unwrap()
        .transaction;
    let mut watcher = Watcher::new(&next_app, TESTER, true, false).await;
    let messages = watcher
        .watch(&shop, &messages[0].resume_token, 1)
        .await
        .unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].transaction, paid);
    next_app.stop().await;
}
