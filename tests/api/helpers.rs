//! Small wrappers over the generated client, so that tests read like the rules.

use payment::pb;
use payment::pb::payment_service_client::PaymentServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub mod grpc_web;

pub type Client = crate::harness::AuthedClient<Channel>;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn add(
    client: &mut Client,
    account_id: &str,
    currency: &str,
    initial_balance: i64,
) -> Result<pb::Account, Status> {
    client
        .add_account(pb::AddAccountRequest {
            account_id: account_id.into(),
            display_name: format!("{account_id} display"),
            currency: currency.into(),
            initial_balance,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().account.expect("account in response"))
}

pub fn order(key: &str, from: &str, to: &str, amount: i64) -> pb::MakePaymentRequest {
    pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: "EUR".into(),
        memo: "test".into(),
    }
}

pub async fn pay(
    client: &mut Client,
    request: pb::MakePaymentRequest,
) -> Result<pb::MakePaymentResponse, Status> {
    client.make_payment(request).await.map(|r| r.into_inner())
}

pub async fn balance(client: &mut Client, account_id: &str) -> Result<i64, Status> {
    client
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: account_id.into(),
        })
        .await
        .map(|r| r.into_inner().account.expect("account").balance)
}

/// Any transport the generated client runs on: a tonic channel (native
/// gRPC) or the crate's gRPC-Web transport, behind the bearer interceptor
/// or not.
pub trait ClientTransport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Error: Into<BoxError>,
        ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                          + Send
                          + 'static,
    >
{
}

impl<T> ClientTransport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Error: Into<BoxError>,
            ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                              + Send
                              + 'static,
        >
{
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One call of GetTransactionHistory, all its messages.
pub async fn history_page<T: ClientTransport>(
    client: &mut PaymentServiceClient<T>,
    account_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<Vec<pb::GetTransactionHistoryResponse>, Status> {
    let mut stream = client
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: account_id.into(),
            page_size,
            page_token: page_token.into(),
        })
        .await?
        .into_inner();
    let mut entries = Vec::new();
    while let Some(entry) = stream.message().await? {
        entries.push(entry);
    }
    Ok(entries)
}

/// The whole history, newest first, following page tokens.
pub async fn history_all<T: ClientTransport>(
    client: &mut PaymentServiceClient<T>,
    account_id: &str,
) -> Vec<pb::GetTransactionHistoryResponse> {
    let mut all = Vec::new();
    let mut token = String::new();
    // Bounded: 100 pages of 1000 entries is far more than any test makes.
    for _ in 0..100 {
        let page = history_page(client, account_id, 1000, &token)
            .await
            .expect("history page");
        let Some(last) = page.last() else { break };
        token = last.next_page_token.clone();
        all.extend(page);
        if token.is_empty() {
            return all;
        }
    }
    all
}

#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    match result {
        Ok(value) => panic!("expected {code:?} mentioning {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "message: {}", status.message());
            assert!(
                status.message().contains(needle),
                "{code:?} message {:?} does not mention {needle:?}",
                status.message()
            );
        }
    }
}

/// Balance recomputed from the history: credits minus debits.
pub fn history_sum(entries: &[pb::GetTransactionHistoryResponse]) -> i64 {
    entries
        .iter()
        .map(|e| {
            let amount = e.transaction.as_ref().expect("transaction").amount;
            if e.direction == pb::Direction::Debit as i32 {
                -amount
            } else {
                amount
            }
        })
        .sum()
}

/// Reads every account's full history and checks that it reconciles with
/// its balance, that balances are never negative, that the total is
/// conserved, and that the committed payments are exactly the entries.
pub async fn check_exactly_once(
    c: &mut Client,
    ids: &[String],
    opening_total: i64,
    committed: &std::collections::HashMap<String, pb::Transaction>,
) {
    let mut total = 0;
    let mut debits: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut credits: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for id in ids {
        let balance = balance(c, id).await.unwrap();
        assert!(balance >= 0, "{id} went negative: {balance}");
        total += balance;
        let history = history_all(c, id).await;
        assert_eq!(
            history_sum(&history),
            balance,
            "{id}'s history does not add up to its balance"
        );
        check_balance_chain(id, balance, &history);
        for (i, entry) in history.iter().enumerate() {
            if entry.shard == 0 && history.iter().all(|e| e.shard == 0) {
                assert_eq!(
                    entry.sequence as usize,
                    history.len() - i,
                    "{id}: gap in sequences"
                );
            }
            assert!(entry.balance_after >= 0);
            let tx = entry.transaction.as_ref().unwrap();
            if tx.sender_id.is_empty() {
                continue; // opening credit
            }
            let side = if entry.direction == pb::Direction::Debit as i32 {
                assert_eq!(&tx.sender_id, id);
                &mut debits
            } else {
                assert_eq!(&tx.recipient_id, id);
                &mut credits
            };
            *side.entry(tx.transaction_id.clone()).or_default() += 1;
            let original = committed
                .get(&tx.transaction_id)
                .unwrap_or_else(|| panic!("entry for a payment nobody was told about: {tx:?}"));
            assert_eq!(original, tx);
        }
    }
    assert_eq!(total, opening_total, "money was created or lost");
    for tx_id in committed.keys() {
        assert_eq!(
            debits.get(tx_id),
            Some(&1),
            "{tx_id} debited {:?} times",
            debits.get(tx_id)
        );
        assert_eq!(
            credits.get(tx_id),
            Some(&1),
            "{tx_id} credited {:?} times",
            credits.get(tx_id)
        );
    }
    assert_eq!(debits.len(), committed.len());
    assert_eq!(credits.len(), committed.len());
}

/// Signed amount of one history entry: credits positive, debits negative.
fn signed_amount(entry: &pb::GetTransactionHistoryResponse) -> i64 {
    let amount = entry.transaction.as_ref().expect("transaction").amount;
    if entry.direction == pb::Direction::Debit as i32 {
        -amount
    } else {
        amount
    }
}

/// Every balance_after in a whole history (newest first) follows from the
/// entries below it: the newest equals the balance, each is the one below
/// plus its own amount, and the oldest is its own amount.
///
/// It also checks each shard's sequences, which are its entries' numbers
/// 1, 2, 3, ... with no gaps. An ordinary account's history shows every
/// entry, so its sequences must be exactly n, n-1, ..., 1. A sharded
/// account's history shows a payment drawn from several shards as one entry
/// (named by its lowest shard), so the parts on its other shards are not
/// shown: there each shard's sequences must strictly decrease and end at 1
/// (a shard's first entry is a credit, always shown on its own), and the
/// sequences missing in all add up to no more than the debits could hide.
/// [`check_stored_shards`] checks a sharded account's stored entries
/// without gaps.
#[track_caller]
pub fn check_balance_chain(id: &str, balance: i64, history: &[pb::GetTransactionHistoryResponse]) {
    if let Some(newest) = history.first() {
        assert_eq!(newest.balance_after, balance, "{id}: newest balance_after");
    } else {
        assert_eq!(balance, 0, "{id}: a balance without history");
    }
    for (i, entry) in history.iter().enumerate() {
        let below = history.get(i + 1).map_or(0, |e| e.balance_after);
        assert_eq!(
            entry.balance_after,
            below + signed_amount(entry),
            "{id}: entry {i} (shard {} sequence {}) does not follow from the one below",
            entry.shard,
            entry.sequence
        );
        assert!(entry.balance_after >= 0, "{id}: negative balance_after");
    }
    let mut per_shard: std::collections::BTreeMap<i32, Vec<i64>> = Default::default();
    for entry in history {
        per_shard
            .entry(entry.shard)
            .or_default()
            .push(entry.sequence);
    }
    let sharded = per_shard.keys().any(|&k| k != 0);
    let mut missing = 0;
    for (shard, sequences) in &per_shard {
        assert!(
            sequences.windows(2).all(|w| w[0] > w[1]),
            "{id}: shard {shard} sequences out of order: {sequences:?}"
        );
        assert_eq!(
            sequences.last(),
            Some(&1),
            "{id}: shard {shard}'s oldest entry is not its first: {sequences:?}"
        );
        let gaps = sequences[0] - sequences.len() as i64;
        assert!(
            sharded || gaps == 0,
            "{id}: gap in sequences: {sequences:?}"
        );
        missing += gaps;
    }
    if sharded {
        // A payment drawn from k shards hides k - 1 parts.
        let shards = per_shard.keys().max().map_or(1, |&k| i64::from(k) + 1);
        let debits = history
            .iter()
            .filter(|e| e.direction == pb::Direction::Debit as i32)
            .count() as i64;
        assert!(
            missing <= debits * (shards - 1),
            "{id}: {missing} sequences missing, more than {debits} debits over {shards} shards can hide: {per_shard:?}"
        );
    }
}

/// A seed for a test's random choices: `PAYMENT_TEST_SEED` if set, else a
/// random one. It is printed (cargo test shows a failed test's output), so
/// that a failure can be replayed with `PAYMENT_TEST_SEED=<seed>`.
pub fn test_seed(test: &str) -> u64 {
    let seed = match std::env::var("PAYMENT_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PAYMENT_TEST_SEED={text:?} is not a u64")),
        Err(_) => rand::random(),
    };
    eprintln!("{test}: random choices from seed {seed} (replay with PAYMENT_TEST_SEED={seed})");
    seed
}

/// A seeded generator for a test's random choices (see [`test_seed`]).
pub fn seeded_rng(seed: u64) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Polls `read` until `done` accepts what it returns, for a read that the
/// contract allows to lag a write (ListAccounts may miss a just opened
/// account for a moment). Gives up, with the last value, after `within`.
pub async fn eventually<T: std::fmt::Debug, F, Fut>(
    within: std::time::Duration,
    mut read: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = std::time::Instant::now();
    loop {
        let value = read().await;
        if done(&value) || started.elapsed() >= within {
            return value;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A DynamoDB client straight to the test binary's DynamoDB Local, to read
/// what the ledger stored without going through the service.
pub fn direct_dynamodb() -> aws_sdk_dynamodb::Client {
    crate::local_dynamodb::client(crate::harness::shared_dynamodb())
}

/// One shard of a sharded account as stored: (version, balance).
pub async fn stored_shards(
    tables: &payment::ledger::Tables,
    account_id: &str,
    shards: u32,
) -> Vec<(u64, i64)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = direct_dynamodb();
    let mut states = Vec::new();
    for shard in 0..shards {
        let key = if shard == 0 {
            account_id.to_owned()
        } else {
            format!("{account_id}#{shard}")
        };
        let item = client
            .get_item()
            .table_name(&tables.accounts)
            .key("account_id", AttributeValue::S(key.clone()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem of a shard")
            .item
            .unwrap_or_else(|| panic!("no item {key}"));
        states.push((number(&item, "version") as u64, number(&item, "balance")));
    }
    states
}

fn number(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    name: &str,
) -> i64 {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(n)) => n.parse().expect("number"),
        other => panic!("attribute {name} is {other:?}"),
    }
}

fn string(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
    name: &str,
) -> String {
    match item.get(name) {
        Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) => s.clone(),
        other => panic!("attribute {name} is {other:?}"),
    }
}

/// One stored history entry of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub sequence: u64,
    pub transaction_id: String,
    pub debit: bool,
    /// This shard's part of the payment.
    pub amount: i64,
    pub balance_after: i64,
}

/// Every stored entry of one shard of an account, oldest first.
pub async fn stored_entries(
    tables: &payment::ledger::Tables,
    account_id: &str,
    shard: u32,
) -> Vec<StoredEntry> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let pk = if shard == 0 {
        format!("A#{account_id}")
    } else {
        format!("A#{account_id}#{shard}")
    };
    let client = direct_dynamodb();
    let mut entries = Vec::new();
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(&tables.ledger)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Query of a shard's entries");
        for item in page.items() {
            entries.push(StoredEntry {
                sequence: number(item, "sequence") as u64,
                transaction_id: string(item, "transaction_id"),
                debit: string(item, "direction") == "DEBIT",
                amount: number(item, "entry_amount"),
                balance_after: number(item, "balance_after"),
            });
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return entries;
        }
    }
}

/// The debit legs a payment's (or refund's) record names, read from
/// DynamoDB: (shard, sequence, amount) of each part. The record is written
/// in the same transaction as the parts, so the legs are the transaction's.
pub async fn stored_debit_legs(
    tables: &payment::ledger::Tables,
    sender_id: &str,
    idempotency_key: &str,
) -> Vec<(u32, u64, i64)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = direct_dynamodb()
        .get_item()
        .table_name(&tables.ledger)
        .key("pk", AttributeValue::S(format!("P#{sender_id}")))
        .key("sk", AttributeValue::S(format!("K#{idempotency_key}")))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem of a record")
        .item
        .unwrap_or_else(|| panic!("no record of {sender_id}/{idempotency_key}"));
    let Some(AttributeValue::L(legs)) = item.get("debit_legs") else {
        panic!("record without debit_legs: {item:?}");
    };
    legs.iter()
        .map(|leg| {
            let AttributeValue::S(text) = leg else {
                panic!("debit leg {leg:?}")
            };
            let parts: Vec<&str> = text.split(':').collect();
            assert_eq!(parts.len(), 3, "debit leg {text}");
            (
                parts[0].parse().expect("shard"),
                parts[1].parse().expect("sequence"),
                parts[2].parse().expect("amount"),
            )
        })
        .collect()
}

/// A sharded account's stored entries, shard by shard: sequences exactly
/// 1..=version with no gaps, each balance_after the one below plus its own
/// part, and the newest equal to the shard's stored balance.
pub async fn check_stored_shards(tables: &payment::ledger::Tables, account_id: &str, shards: u32) {
    let states = stored_shards(tables, account_id, shards).await;
    for (shard, (version, balance)) in (0..shards).zip(states) {
        let entries = stored_entries(tables, account_id, shard).await;
        let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
        assert_eq!(
            sequences,
            (1..=version).collect::<Vec<_>>(),
            "{account_id} shard {shard} (version {version}): sequences with a gap"
        );
        let mut running = 0;
        for e in &entries {
            running += if e.debit { -e.amount } else { e.amount };
            assert_eq!(
                e.balance_after, running,
                "{account_id} shard {shard} sequence {}",
                e.sequence
            );
        }
        assert_eq!(
            running, balance,
            "{account_id} shard {shard}: stored balance"
        );
    }
}

/// A loopback TCP proxy in front of DynamoDB Local that, once armed with
/// `n`, holds the reply of every TransactWriteItems until `n` different
/// ones (by ClientRequestToken: a round's own retries by the SDK share it)
/// have arrived; then, and before it is armed, everything passes untouched.
///
/// A payment holds its credit shard from before its write until the
/// write's reply, so when the gate opens, `n` payments hold one at the
/// same moment: the credits overlap in flight by construction, not by
/// the scheduler's luck.
pub struct WriteGate {
    pub url: String,
    state: std::sync::Arc<GateState>,
    accept: tokio::task::JoinHandle<()>,
}

struct GateState {
    /// Distinct writes needed to open; 0 when not armed.
    needed: std::sync::atomic::AtomicUsize,
    tokens: std::sync::Mutex<std::collections::HashSet<String>>,
    open: tokio::sync::watch::Sender<bool>,
}

impl WriteGate {
    pub async fn start(upstream: &str) -> WriteGate {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = std::sync::Arc::new(GateState {
            needed: std::sync::atomic::AtomicUsize::new(0),
            tokens: Default::default(),
            open: tokio::sync::watch::channel(true).0,
        });
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                tokio::spawn(Self::relay(inbound, outbound, shared.clone()));
            }
        });
        WriteGate { url, state, accept }
    }

    /// Closes the gate until `n` distinct TransactWriteItems have arrived.
    pub fn arm(&self, n: usize) {
        self.state.tokens.lock().unwrap().clear();
        self.state
            .needed
            .store(n, std::sync::atomic::Ordering::SeqCst);
        self.state.open.send_replace(n == 0);
    }

    /// Waits until the gate opened; panics after `within` (the writes it
    /// waits for never overlapped: they queued behind each other).
    pub async fn opened(&self, within: std::time::Duration) {
        let mut open = self.state.open.subscribe();
        tokio::time::timeout(within, open.wait_for(|o| *o))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the gate saw only {} of {} writes in flight together within {within:?}",
                    self.state.tokens.lock().unwrap().len(),
                    self.state.needed.load(std::sync::atomic::Ordering::SeqCst)
                )
            })
            .expect("gate");
    }

    fn saw_write(state: &GateState, token: String) {
        let mut tokens = state.tokens.lock().unwrap();
        tokens.insert(token);
        let needed = state.needed.load(std::sync::atomic::Ordering::SeqCst);
        if needed > 0 && tokens.len() >= needed {
            state.open.send_replace(true);
        }
    }

    /// One connection: requests up, replies down (HTTP/1.1, one request at
    /// a time, so the reply that follows a write is the write's).
    async fn relay(
        inbound: tokio::net::TcpStream,
        outbound: tokio::net::TcpStream,
        state: std::sync::Arc<GateState>,
    ) {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut from_client, mut to_client) = inbound.into_split();
        let (mut from_dynamodb, mut to_dynamodb) = outbound.into_split();
        let write_pending = std::sync::Arc::new(AtomicBool::new(false));
        let pending = write_pending.clone();
        let up_state = state.clone();
        let up = async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut request: Vec<u8> = Vec::new();
            let mut counted = false;
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                if chunk.starts_with(b"POST ") {
                    request.clear();
                    counted = false;
                }
                request.extend_from_slice(chunk);
                let text = String::from_utf8_lossy(&request);
                let is_write = text.contains("DynamoDB_20120810.TransactWriteItems");
                // Before the bytes go up, so the reply cannot overtake it.
                pending.store(is_write, Ordering::SeqCst);
                if is_write && !counted {
                    const FIELD: &str = "\"ClientRequestToken\":\"";
                    if let Some(at) = text.find(FIELD)
                        && let Some(len) = text[at + FIELD.len()..].find('"')
                    {
                        let token = text[at + FIELD.len()..at + FIELD.len() + len].to_owned();
                        counted = true;
                        Self::saw_write(&up_state, token);
                    }
                }
                if to_dynamodb.write_all(chunk).await.is_err() {
                    return;
                }
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut open = state.open.subscribe();
            loop {
                let n = match from_dynamodb.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if write_pending.load(Ordering::SeqCst) && open.wait_for(|o| *o).await.is_err() {
                    return;
                }
                if to_client.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    }
}

impl Drop for WriteGate {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A ledger on `tables` that reaches DynamoDB through `url` (a proxy),
/// with the SDK's timeouts raised to a minute: a request a test's proxy
/// holds on purpose is not cut off by a timeout meant for production.
pub fn ledger_via(url: &str, tables: &payment::ledger::Tables) -> payment::ledger::Ledger {
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    let patient = TimeoutConfig::builder()
        .operation_attempt_timeout(std::time::Duration::from_secs(60))
        .operation_timeout(std::time::Duration::from_secs(60))
        .build();
    payment::ledger::Ledger::new(
        aws_sdk_dynamodb::Client::from_conf(
            crate::local_dynamodb::config(url)
                .timeout_config(patient)
                .build(),
        ),
        tables.clone(),
    )
}

/// A ledger instance with its own client (and so its own memory of
/// accounts) on the given tables, like one Lambda container, counting its
/// DynamoDB requests; promotion as by default.
pub fn instance(
    tables: &payment::ledger::Tables,
) -> (payment::ledger::Ledger, payment::telemetry::RequestCounter) {
    let counter = payment::telemetry::RequestCounter::default();
    let config = crate::local_dynamodb::config(crate::harness::shared_dynamodb())
        .interceptor(counter.clone());
    let ledger = payment::ledger::Ledger::new(
        aws_sdk_dynamodb::Client::from_conf(config.build()),
        tables.clone(),
    );
    (ledger, counter)
}

/// The requests `counter` saw since `before`, by operation (only those
/// that grew).
pub fn cost(
    counter: &payment::telemetry::RequestCounter,
    before: std::collections::BTreeMap<String, u64>,
) -> Vec<(String, u64)> {
    counter
        .snapshot()
        .iter()
        .filter_map(|(op, n)| {
            let d = n - before.get(op).copied().unwrap_or(0);
            (d > 0).then(|| (op.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod checks {
    use super::*;

    fn entry(
        shard: i32,
        sequence: i64,
        amount: i64,
        after: i64,
    ) -> pb::GetTransactionHistoryResponse {
        pb::GetTransactionHistoryResponse {
            transaction: Some(pb::Transaction {
                amount,
                ..Default::default()
            }),
            direction: pb::Direction::Credit as i32,
            shard,
            sequence,
            balance_after: after,
            ..Default::default()
        }
    }

    #[test]
    fn a_contiguous_history_passes() {
        check_balance_chain(
            "a",
            6,
            &[entry(0, 3, 3, 6), entry(0, 2, 2, 3), entry(0, 1, 1, 1)],
        );
    }

    #[test]
    #[should_panic(expected = "gap in sequences")]
    fn a_gap_in_an_ordinary_account_is_found() {
        check_balance_chain(
            "a",
            6,
            &[entry(0, 5, 3, 6), entry(0, 3, 2, 3), entry(0, 1, 1, 1)],
        );
    }

    #[test]
    #[should_panic(expected = "sequences missing")]
    fn a_gap_no_debit_explains_is_found_in_a_sharded_account() {
        check_balance_chain(
            "a",
            6,
            &[entry(1, 3, 3, 6), entry(0, 1, 2, 3), entry(1, 1, 1, 1)],
        );
    }

    #[test]
    #[should_panic(expected = "oldest entry is not its first")]
    fn a_shard_that_does_not_start_at_one_is_found() {
        check_balance_chain("a", 3, &[entry(1, 2, 2, 3), entry(0, 1, 1, 1)]);
    }
}
