//! payment-bench: a payment workload against the service (gRPC or gRPC-Web),
//! and in the same run the same DynamoDB requests issued directly by the
//! ledger with no service in between: the physical limit on this machine.
//!
//! Without `--endpoint` it starts the service itself on 127.0.0.1, so it can
//! count the service's DynamoDB requests and measure its CPU time. The
//! service runs on a runtime (threads) of its own, apart from the load
//! generator's, either as one server or, with `--containers K`, as K
//! independent instances in the Lambda shape: each with its own DynamoDB
//! client, ledger and service, on its own port, answering one call at a
//! time, with the callers spread over them. DynamoDB is configured the
//! standard AWS way (AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
//!
//! Scenarios: `accounts` pays between random accounts (optionally with hot
//! ones); `merchant` has N customers pay one merchant, each caller paying
//! from customers of its own, so that the merchant is the only account two
//! callers share. The benchmark opens its own accounts (prefix
//! `bench-<run id>`), checks after every payment phase that no money was
//! created or lost in them (and in the merchant scenario that the merchant
//! received exactly the committed payments), optionally audits the whole
//! ledger (`--audit`), and prints per phase payments/s, latency percentiles,
//! ABORTED, DynamoDB requests and rounds per payment, the service's CPU per
//! payment, and the ratios between the shapes.

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use payment::auth::{Authenticator, DevToken, JwtVerifier, mint_dev_token};
use payment::config::{self, RequestCounter};
use payment::domain::{AccountId, HOLDS_OPEN_MAX, NewAccount, PaymentOrder};
use payment::ledger::{Ledger, LedgerError, Payer, Tables};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use payment::service::PaymentApi;
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::client::GrpcService;
use tonic::metadata::AsciiMetadataValue;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The identity the benchmark acts as (it owns the accounts it opens).
const BENCH_SUB: &str = "payment-bench";
/// Each paying account opens with this many minor units, so that the small
/// random amounts below rarely hit insufficient funds.
const OPENING_MINOR: i64 = 100_000_000;
/// Payment amounts are drawn from 1..=AMOUNT_MAX_MINOR.
const AMOUNT_MAX_MINOR: i64 = 1_000;
/// Most time one call may take before the benchmark counts it as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The DynamoDB operation of one payment round (one commit attempt).
const ROUND_OPERATION: &str = "TransactWriteItems";
/// What the service CPU figure includes, printed with it.
const CPU_MEANS: &str = "user+system CPU time of the service runtime's threads (its workers and any blocking threads; /proc/self/task/<tid>/schedstat): HTTP/2 or HTTP/1.1, gRPC(-Web), token checks, the ledger and the AWS SDK client (SigV4 signing, HTTP to DynamoDB); not DynamoDB Local (another process) nor the load generator's clients (their own runtime). The direct phase runs on the same runtime: the ledger and the SDK plus the benchmark's own loop";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Payments between random accounts (--accounts, --hot-percent).
    Accounts,
    /// --customers customers pay one merchant account.
    Merchant,
    /// Holds between --accounts accounts (--payments of them, each sender
    /// in turn), then half of them captured (alternately in full and in
    /// part), the other half voided, and half of each capture refunded.
    HoldCapture,
}

/// Measures the payment service against the physical limit (direct DynamoDB).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A running service; omitted: the benchmark starts one on 127.0.0.1.
    #[arg(long)]
    endpoint: Option<String>,
    /// Speak gRPC-Web over HTTP/1.1 instead of native gRPC.
    #[arg(long)]
    grpc_web: bool,
    /// Bearer token for --endpoint (an admin token: the benchmark opens
    /// accounts with opening balances); default: minted from PAYMENT_DEV_JWT_SECRET.
    #[arg(long, env = "PAYMENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// What the payments look like.
    #[arg(long, value_enum, default_value_t = Scenario::Accounts)]
    scenario: Scenario,
    /// Accounts to pay between, in the accounts scenario (2-10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    accounts: u32,
    /// Customers paying the merchant, in the merchant scenario (1-10000);
    /// each caller pays from its own share of them, so needs at least as
    /// many customers as callers.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    customers: u32,
    /// The merchant account's balance_shards (AddAccountRequest), 0-64.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=64))]
    merchant_shards: u32,
    /// Run the service as K independent containers (1-64): K instances with
    /// their own DynamoDB client, ledger and service, each on its own port
    /// and answering one call at a time, the callers spread over them.
    /// 1: one server answering every caller at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    containers: u32,
    /// With --containers K > 1: first run the same payments through one
    /// server (on fresh accounts), and report K containers / one server.
    #[arg(long)]
    compare_one_server: bool,
    /// First run the same payments (on fresh accounts) through a service
    /// without metrics, then the measured phases with payment-server's
    /// Prometheus metrics on, and report the service's CPU per payment of
    /// both and their ratio (the cost of the per-call record).
    #[arg(long)]
    compare_metrics: bool,
    /// Worker threads of the service runtime (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    service_threads: Option<u32>,
    /// Concurrent callers, 1-1024 (default: 32, or K with --containers K > 1,
    /// one caller per container).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    callers: Option<u32>,
    /// Payments per phase (1-1000000).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    payments: u32,
    /// Percent of payments whose sender and recipient are hot accounts (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    hot_percent: u32,
    /// How many of the accounts are hot.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    hot_accounts: u32,
    /// Balance reads to time after the payments (0 to skip).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    reads: u32,
    /// History pages (50 entries each) to time (0 to skip).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    history_pages: u32,
    /// Payments made directly before measuring, untimed, to warm up
    /// DynamoDB Local's JVM (0 to skip).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    warmup: u32,
    /// Skip the direct (no service) phase.
    #[arg(long)]
    no_direct: bool,
    /// At the end, audit the whole ledger (the tables of
    /// PAYMENT_ACCOUNTS_TABLE / PAYMENT_LEDGER_TABLE) and fail unless clean.
    #[arg(long)]
    audit: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn callers(&self) -> u32 {
        self.callers.unwrap_or(if self.containers > 1 {
            self.containers
        } else {
            32
        })
    }

    fn transport(&self) -> &'static str {
        if self.grpc_web { "gRPC-Web" } else { "gRPC" }
    }
}

// ---------------------------------------------------------------------------
// The workload: which accounts exist and who pays whom.

/// The accounts of one phase and who pays whom. Index 0 is the merchant in
/// the merchant scenario.
#[derive(Debug, Clone)]
struct Workload {
    scenario: Scenario,
    ids: Arc<Vec<String>>,
    callers: u32,
    hot_accounts: u32,
    hot_percent: u32,
    merchant_shards: u32,
}

impl Workload {
    /// Fresh accounts for a phase tagged `tag`.
    fn new(args: &Args, run_id: &str, tag: &str) -> Workload {
        let ids = match args.scenario {
            Scenario::Accounts | Scenario::HoldCapture => (0..args.accounts)
                .map(|i| format!("{run_id}-{tag}-{i}"))
                .collect(),
            Scenario::Merchant => std::iter::once(format!("{run_id}-{tag}-merchant"))
                .chain((0..args.customers).map(|i| format!("{run_id}-{tag}-c{i}")))
                .collect(),
        };
        Workload {
            scenario: args.scenario,
            ids: Arc::new(ids),
            callers: args.callers(),
            hot_accounts: args.hot_accounts,
            hot_percent: args.hot_percent,
            merchant_shards: args.merchant_shards,
        }
    }

    fn is_merchant(&self, index: usize) -> bool {
        self.scenario == Scenario::Merchant && index == 0
    }

    fn opening_minor(&self, index: usize) -> i64 {
        if self.is_merchant(index) {
            0
        } else {
            OPENING_MINOR
        }
    }

    fn balance_shards(&self, index: usize) -> i32 {
        if self.is_merchant(index) {
            self.merchant_shards as i32
        } else {
            0
        }
    }

    /// What all the accounts together hold, always.
    fn total_minor(&self) -> i128 {
        (0..self.ids.len())
            .map(|i| i128::from(self.opening_minor(i)))
            .sum()
    }

    /// (sender, recipient, amount) of the `round`-th payment of `caller`.
    fn pick(&self, caller: u32, round: u32) -> (usize, usize, i64) {
        let mut rng = rand::rng();
        let amount = rng.random_range(1..=AMOUNT_MAX_MINOR);
        match self.scenario {
            Scenario::Accounts | Scenario::HoldCapture => {
                let accounts = self.ids.len() as u32;
                let hot = self.hot_accounts.min(accounts);
                let range = if hot >= 2 && rng.random_ratio(self.hot_percent, 100) {
                    hot
                } else {
                    accounts
                };
                let from = rng.random_range(0..range);
                let mut to = rng.random_range(0..range - 1);
                if to >= from {
                    to += 1;
                }
                (from as usize, to as usize, amount)
            }
            Scenario::Merchant => {
                // Caller c pays from customers c, c + callers, c + 2 callers...
                // in turn: nobody else pays from them.
                let customers = self.ids.len() as u32 - 1;
                let own = (customers - caller).div_ceil(self.callers);
                let customer = caller + self.callers * (round % own);
                (1 + customer as usize, 0, amount)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Measuring.

/// CPU time of a set of threads (a runtime's), from Linux's per-thread
/// accounting: threads register when they start; a thread that stops leaves
/// its time behind.
#[derive(Debug, Clone, Default)]
struct ThreadCpu(Arc<Mutex<ThreadCpuState>>);

#[derive(Debug, Default)]
struct ThreadCpuState {
    live: Vec<u32>,
    stopped_ns: u64,
}

impl ThreadCpu {
    fn thread_started(&self) {
        if let (Some(tid), Ok(mut state)) = (current_tid(), self.0.lock()) {
            state.live.push(tid);
        }
    }

    fn thread_stopping(&self) {
        if let (Some(tid), Ok(mut state)) = (current_tid(), self.0.lock()) {
            state.stopped_ns += thread_cpu_ns(tid).unwrap_or(0);
            state.live.retain(|t| *t != tid);
        }
    }

    /// CPU time so far of every thread registered, or None where Linux's
    /// /proc does not tell.
    fn total_ns(&self) -> Option<u64> {
        let state = self.0.lock().ok()?;
        let mut total = state.stopped_ns;
        for tid in &state.live {
            total += thread_cpu_ns(*tid)?;
        }
        Some(total)
    }
}

/// This thread's id, from /proc/thread-self (a link to `<pid>/task/<tid>`).
fn current_tid() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// User+system CPU time of thread `tid` of this process: schedstat's first
/// field (nanoseconds), else stat's utime+stime (clock ticks of 10 ms).
fn thread_cpu_ns(tid: u32) -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        && let Some(ns) = text.split_whitespace().next().and_then(|f| f.parse().ok())
    {
        return Some(ns);
    }
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // 3rd field of the line, utime and stime the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000_000)
}

#[derive(Debug, Default)]
struct Phase {
    name: String,
    /// How the service ran: "1 server", "8 containers", "direct".
    shape: String,
    calls: u64,
    ok: u64,
    insufficient: u64,
    aborted: u64,
    other_errors: u64,
    /// Sum of the amounts of the committed payments.
    committed_minor: i128,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// The service's DynamoDB requests during the phase, per operation.
    dynamodb: Option<BTreeMap<String, u64>>,
    /// The service's CPU time during the phase.
    cpu: Option<Duration>,
    /// The merchant's promotion to balance shards during the phase, when it
    /// was opened ordinary and the service promoted it.
    promotion: Option<Promoted>,
}

/// When the service promoted the merchant (opened as an ordinary account)
/// to balance shards, as its history shows it: the first credit on a shard
/// other than 0 is the first payment after the promotion.
#[derive(Debug, Clone, Copy)]
struct Promoted {
    shards: i32,
    /// Payments the merchant took before that first credit.
    payments_before: usize,
    /// The time of that credit, from the start of the phase.
    ms_into_phase: i64,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies.len() - 1) * p) / 100;
        self.latencies[index].as_secs_f64() * 1000.0
    }

    fn max_ms(&self) -> f64 {
        self.latencies
            .last()
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }

    fn dynamodb_requests(&self) -> Option<u64> {
        self.dynamodb.as_ref().map(|d| d.values().sum())
    }

    /// Per successful call (a committed payment, a read).
    fn per_ok(&self, value: f64) -> Option<f64> {
        (self.ok > 0).then(|| value / self.ok as f64)
    }

    fn requests_per_ok(&self) -> Option<f64> {
        self.per_ok(self.dynamodb_requests()? as f64)
    }

    /// TransactWriteItems requests (commit attempts) per committed payment.
    fn rounds_per_ok(&self) -> Option<f64> {
        let rounds = self.dynamodb.as_ref()?.get(ROUND_OPERATION).copied();
        self.per_ok(rounds.unwrap_or(0) as f64)
    }

    fn cpu_ms_per_ok(&self) -> Option<f64> {
        self.per_ok(self.cpu?.as_secs_f64() * 1000.0)
    }

    fn is_payments(&self) -> bool {
        self.name.starts_with("payments")
    }

    fn json(&self) -> serde_json::Value {
        let unit = if self.is_payments() {
            "payments"
        } else {
            "calls"
        };
        json!({
            "phase": self.name,
            "shape": self.shape,
            "calls": self.calls,
            "ok": self.ok,
            "insufficient_funds": self.insufficient,
            "aborted": self.aborted,
            "other_errors": self.other_errors,
            "seconds": self.elapsed.as_secs_f64(),
            format!("{unit}_per_second"): self.per_second(),
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.max_ms(),
            "dynamodb_requests": self.dynamodb_requests(),
            "dynamodb_requests_by_operation": self.dynamodb,
            "dynamodb_requests_per_call": self.dynamodb_requests().map(|r| r as f64 / self.calls.max(1) as f64),
            format!("dynamodb_requests_per_{}", if self.is_payments() { "payment" } else { "ok_call" }): self.requests_per_ok(),
            "rounds_per_payment": if self.is_payments() { self.rounds_per_ok() } else { None },
            "service_cpu_ms": self.cpu.map(|c| c.as_secs_f64() * 1000.0),
            "merchant_promoted": self.promotion.map(|p| json!({
                "shards": p.shards,
                "payments_before": p.payments_before,
                "ms_into_phase": p.ms_into_phase,
            })),
            format!("service_cpu_ms_per_{}", if self.is_payments() { "payment" } else { "ok_call" }): self.cpu_ms_per_ok(),
        })
    }

    fn print(&self) {
        let unit = if self.is_payments() {
            "payments"
        } else {
            "calls"
        };
        println!(
            "{:<34} {:>8.1} {unit}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ok {}  insufficient {}  aborted {}  errors {}",
            self.name,
            self.per_second(),
            self.percentile_ms(50),
            self.percentile_ms(99),
            self.max_ms(),
            self.ok,
            self.insufficient,
            self.aborted,
            self.other_errors,
        );
        let per = if self.is_payments() {
            "payment"
        } else {
            "call"
        };
        let mut details = Vec::new();
        if let (Some(per_ok), Some(by_op)) = (self.requests_per_ok(), &self.dynamodb) {
            let ops: Vec<String> = by_op
                .iter()
                .map(|(op, n)| format!("{op} {:.2}", *n as f64 / self.ok.max(1) as f64))
                .collect();
            details.push(format!(
                "DynamoDB requests/{per} {per_ok:.2} ({})",
                ops.join(", ")
            ));
        }
        if self.is_payments()
            && let Some(rounds) = self.rounds_per_ok()
        {
            details.push(format!("rounds/payment {rounds:.2}"));
        }
        if let Some(cpu) = self.cpu_ms_per_ok() {
            let whose = if self.shape == "direct" {
                "direct CPU"
            } else {
                "service CPU"
            };
            details.push(format!("{whose} {cpu:.2} ms/{per}"));
        }
        if let Some(p) = self.promotion {
            details.push(format!(
                "merchant promoted to {} shards after {} payments, {} ms into the phase",
                p.shards, p.payments_before, p.ms_into_phase
            ));
        }
        if !details.is_empty() {
            println!("{:<34} {}", "", details.join("  "));
        }
    }
}

/// The merchant's promotion during a phase that started at `started_ms`
/// (wall clock), read from its history: None when it was not promoted.
async fn promotion_seen<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    merchant: &pb::Account,
    started_ms: i64,
) -> Result<Option<Promoted>, BoxError>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    if merchant.balance_shards <= 1 {
        return Ok(None);
    }
    // (time, shard) of every entry, newest first; bounded by the pages.
    let mut entries = Vec::new();
    let mut token_text = String::new();
    for _ in 0..1_000 {
        let request = pb::GetTransactionHistoryRequest {
            account_id: merchant.account_id.clone(),
            page_size: 1_000,
            page_token: token_text.clone(),
        };
        let mut stream = client
            .get_transaction_history(authorized(request, token))
            .await?
            .into_inner();
        let mut next = String::new();
        while let Some(entry) = stream.message().await? {
            let at = entry
                .transaction
                .as_ref()
                .and_then(|t| t.created_at)
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
            entries.push((at, entry.shard));
            next = entry.next_page_token;
        }
        if next.is_empty() {
            break;
        }
        token_text = next;
    }
    let Some(first_sharded) = entries
        .iter()
        .filter(|(_, shard)| *shard > 0)
        .map(|(at, _)| *at)
        .min()
    else {
        return Ok(None);
    };
    Ok(Some(Promoted {
        shards: merchant.balance_shards,
        payments_before: entries.iter().filter(|(at, _)| *at < first_sharded).count(),
        ms_into_phase: first_sharded - started_ms,
    }))
}

enum Outcome {
    /// Committed (a payment of this amount), or a read that succeeded (0).
    Ok(i64),
    Insufficient,
    Aborted,
    Other(String),
}

/// What a phase measures besides latency: the service's DynamoDB requests
/// and its CPU time.
struct Meters<'a> {
    requests: Option<&'a (dyn Fn() -> BTreeMap<String, u64> + Sync)>,
    cpu: Option<&'a ThreadCpu>,
}

/// Runs `calls` calls of `work(caller, round, n)` with `callers` concurrent
/// workers: caller `caller`'s `round`-th call is the `n`-th of the phase.
async fn run_phase<F, Fut>(
    name: &str,
    shape: &str,
    calls: u32,
    callers: u32,
    quiet: bool,
    meters: Meters<'_>,
    work: F,
) -> Phase
where
    F: Fn(u32, u32, u32) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send,
{
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(calls))
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:<34} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(name.to_owned());
    let requests_before = meters.requests.map(|r| r());
    let cpu_before = meters.cpu.and_then(ThreadCpu::total_ns);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let (work, next, bar) = (work.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            let mut phase = Phase::default();
            for round in 0.. {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= calls as usize {
                    break;
                }
                let call_started = Instant::now();
                let outcome = tokio::time::timeout(CALL_TIMEOUT, work(caller, round, n as u32))
                    .await
                    .unwrap_or_else(|_| Outcome::Other("timed out".into()));
                phase.latencies.push(call_started.elapsed());
                phase.calls += 1;
                match outcome {
                    Outcome::Ok(amount) => {
                        phase.ok += 1;
                        phase.committed_minor += i128::from(amount);
                    }
                    Outcome::Insufficient => phase.insufficient += 1,
                    Outcome::Aborted => phase.aborted += 1,
                    Outcome::Other(why) => {
                        if phase.other_errors == 0 {
                            bar.println(format!("error: {why}"));
                        }
                        phase.other_errors += 1;
                    }
                }
                bar.inc(1);
            }
            phase
        });
    }
    let mut total = Phase {
        name: name.to_owned(),
        shape: shape.to_owned(),
        ..Default::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let phase = joined.unwrap_or_default();
        total.calls += phase.calls;
        total.ok += phase.ok;
        total.insufficient += phase.insufficient;
        total.aborted += phase.aborted;
        total.other_errors += phase.other_errors;
        total.committed_minor += phase.committed_minor;
        total.latencies.extend(phase.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    if let (Some(requests), Some(before)) = (meters.requests, requests_before) {
        let mut delta = requests();
        for (op, n) in &mut delta {
            *n -= before.get(op).copied().unwrap_or(0);
        }
        delta.retain(|_, n| *n > 0);
        total.dynamodb = Some(delta);
    }
    if let (Some(cpu), Some(before)) = (meters.cpu, cpu_before) {
        total.cpu = cpu
            .total_ns()
            .map(|now| Duration::from_nanos(now.saturating_sub(before)));
    }
    bar.finish_and_clear();
    total
}

// ---------------------------------------------------------------------------
// The service, as one server or as K containers.

/// One service instance: its own DynamoDB client (with its own request
/// counter), ledger, authenticator and service, on its own port.
struct Instance {
    endpoint: String,
    counter: RequestCounter,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The service as the callers see it: one endpoint per instance (a started
/// fleet), or a running service given with --endpoint (nothing counted).
struct Fleet {
    endpoints: Vec<String>,
    instances: Vec<Instance>,
    shape: String,
}

impl Fleet {
    fn external(endpoint: &str) -> Fleet {
        Fleet {
            endpoints: vec![endpoint.to_owned()],
            instances: Vec::new(),
            shape: "external".into(),
        }
    }

    /// Starts `containers` instances on the service runtime: with 1, one
    /// server answering every call at once; with more, each answers one
    /// call at a time.
    async fn start(
        service: &tokio::runtime::Handle,
        containers: u32,
        tables: &Tables,
        secret: &[u8],
        metrics: bool,
    ) -> Result<Fleet, BoxError> {
        let limit = (containers > 1).then_some(1);
        let mut instances = Vec::new();
        for _ in 0..containers {
            let (tables, secret) = (tables.clone(), secret.to_vec());
            let instance = service
                .spawn(async move { start_instance(tables, secret, limit, metrics).await })
                .await??;
            instances.push(instance);
        }
        Ok(Fleet {
            endpoints: instances.iter().map(|i| i.endpoint.clone()).collect(),
            instances,
            shape: shape_name(containers),
        })
    }

    fn is_counted(&self) -> bool {
        !self.instances.is_empty()
    }

    /// The DynamoDB requests of every instance so far, per operation.
    fn requests(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for instance in &self.instances {
            for (op, n) in instance.counter.snapshot() {
                *all.entry(op).or_default() += n;
            }
        }
        all
    }

    async fn stop(self) {
        for instance in self.instances {
            let _ = instance.stop.send(());
            let _ = instance.task.await;
        }
    }
}

fn shape_name(containers: u32) -> String {
    if containers == 1 {
        "1 server".into()
    } else {
        format!("{containers} containers")
    }
}

/// Runs on the service runtime, so that the instance's sockets and its
/// DynamoDB client's connections are driven by that runtime's threads.
async fn start_instance(
    tables: Tables,
    secret: Vec<u8>,
    limit: Option<usize>,
    metrics: bool,
) -> Result<Instance, BoxError> {
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        config::dynamodb_config()
            .await
            .interceptor(counter.clone())
            .build(),
    );
    // PAYMENT_PROMOTE_SHARDS as the server and the Lambda read it (off
    // shows what an ordinary merchant meets without promotion).
    let ledger = Ledger::new(client, tables).with_promotion(config::promotion_from_env()?);
    let auth = Authenticator::Jwt(Arc::new(
        JwtVerifier::new(None, None).with_dev_secret(&secret)?,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // As `payment-server --metrics-listen` runs it (its scrape endpoint
    // idle, its upkeep on).
    let telemetry = if metrics {
        payment::telemetry::prometheus::listen("127.0.0.1:0".parse()?).await?
    } else {
        payment::telemetry::Telemetry::off()
    };
    let api = PaymentApi::new(ledger, auth).with_telemetry(telemetry);
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(err) = payment::server::serve_limited(listener, api, "*", limit, shutdown).await
        {
            eprintln!("service instance failed: {err}");
        }
    });
    Ok(Instance {
        endpoint,
        counter,
        stop,
        task,
    })
}

// ---------------------------------------------------------------------------
// The phases.

fn status_outcome(status: tonic::Status) -> Outcome {
    match status.code() {
        tonic::Code::FailedPrecondition => Outcome::Insufficient,
        tonic::Code::Aborted => Outcome::Aborted,
        _ => Outcome::Other(format!("{:?}: {}", status.code(), status.message())),
    }
}

fn authorized<T>(message: T, token: &AsciiMetadataValue) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// What every phase needs.
struct Bench {
    args: Args,
    run_id: String,
    token: AsciiMetadataValue,
    /// The service runtime's threads (None with --endpoint).
    cpu: Option<ThreadCpu>,
}

/// Opens the workload's accounts through `client`.
async fn open_accounts<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    workload: &Workload,
) -> Result<(), BoxError>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    for (index, id) in workload.ids.iter().enumerate() {
        client
            .add_account(authorized(
                pb::AddAccountRequest {
                    account_id: id.clone(),
                    display_name: "bench".into(),
                    currency: "EUR".into(),
                    initial_balance: workload.opening_minor(index),
                    balance_shards: workload.balance_shards(index),
                },
                token,
            ))
            .await?;
    }
    Ok(())
}

/// The workload's accounts as the service shows them, in order.
async fn read_accounts<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    workload: &Workload,
) -> Result<Vec<pb::Account>, BoxError>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let mut accounts = Vec::with_capacity(workload.ids.len());
    for id in workload.ids.iter() {
        let account = client
            .get_account_balance(authorized(
                pb::GetAccountBalanceRequest {
                    account_id: id.clone(),
                },
                token,
            ))
            .await?
            .into_inner()
            .account
            .ok_or("no account in reply")?;
        accounts.push(account);
    }
    Ok(accounts)
}

/// Conservation after a payment phase: the accounts hold together exactly
/// what they opened with, none is negative, and in the merchant scenario the
/// merchant holds exactly the committed payments (when every outcome is
/// known: a call that timed out may or may not have committed).
fn check_balances(
    workload: &Workload,
    balances: &[i64],
    phase: &Phase,
    what: &str,
) -> Result<(), BoxError> {
    for (id, balance) in workload.ids.iter().zip(balances) {
        if *balance < 0 {
            return Err(format!("conservation check failed ({what}): {id} is negative").into());
        }
    }
    let total: i128 = balances.iter().map(|b| i128::from(*b)).sum();
    if total != workload.total_minor() {
        return Err(format!(
            "conservation check failed ({what}): accounts hold {total}, opened with {}",
            workload.total_minor()
        )
        .into());
    }
    if workload.scenario == Scenario::Merchant
        && phase.other_errors == 0
        && i128::from(balances[0]) != phase.committed_minor
    {
        return Err(format!(
            "merchant check failed ({what}): the merchant holds {}, the committed payments sum to {}",
            balances[0], phase.committed_minor
        )
        .into());
    }
    Ok(())
}

/// The service phases on `fleet` over native gRPC or gRPC-Web: payments on
/// fresh accounts, then (with `reads`) balance reads and history pages.
async fn service_phases(
    bench: &Bench,
    fleet: &Fleet,
    tag: &str,
    reads: bool,
) -> Result<Vec<Phase>, BoxError> {
    if bench.args.grpc_web {
        let clients = fleet
            .endpoints
            .iter()
            .map(|e| payment::client::connect_grpc_web(e))
            .collect::<Result<Vec<_>, _>>()?;
        service_phases_over(bench, fleet, clients, tag, reads).await
    } else {
        let mut clients = Vec::new();
        for endpoint in &fleet.endpoints {
            clients.push(payment::client::connect_grpc(endpoint).await?);
        }
        service_phases_over(bench, fleet, clients, tag, reads).await
    }
}

async fn service_phases_over<T>(
    bench: &Bench,
    fleet: &Fleet,
    clients: Vec<PaymentServiceClient<T>>,
    tag: &str,
    reads: bool,
) -> Result<Vec<Phase>, BoxError>
where
    T: GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let args = &bench.args;
    let token = bench.token.clone();
    let workload = Workload::new(args, &bench.run_id, tag);
    let clients = Arc::new(clients);
    let mut first = clients[0].clone();
    open_accounts(&mut first, &token, &workload).await?;
    let requests = || fleet.requests();
    let meters = || Meters {
        requests: fleet
            .is_counted()
            .then_some(&requests as &(dyn Fn() -> BTreeMap<String, u64> + Sync)),
        cpu: if fleet.is_counted() {
            bench.cpu.as_ref()
        } else {
            None
        },
    };
    let label = format!("{}, {}", args.transport(), fleet.shape);
    // The hold-capture scenario measures its holds first, then payments on
    // fresh accounts of the same shape, so that the two compare in one run.
    let mut phases = Vec::new();
    let workload = if args.scenario == Scenario::HoldCapture {
        phases = hold_phases(bench, fleet, &clients, &workload, tag, &label, &meters).await?;
        check_holds_settled(&mut first, &token, &workload, &phases[0], &label).await?;
        let payments = Workload::new(args, &bench.run_id, &format!("{tag}-pay"));
        open_accounts(&mut first, &token, &payments).await?;
        payments
    } else {
        workload
    };
    let pay = {
        let (clients, token, workload) = (clients.clone(), token.clone(), workload.clone());
        let key = format!("{}-{tag}", bench.run_id);
        move |caller: u32, round: u32, n: u32| {
            let mut client = clients[caller as usize % clients.len()].clone();
            let (token, workload, key) = (token.clone(), workload.clone(), key.clone());
            async move {
                let (from, to, amount) = workload.pick(caller, round);
                let request = pb::MakePaymentRequest {
                    idempotency_key: format!("{key}-{n}"),
                    sender_id: workload.ids[from].clone(),
                    recipient_id: workload.ids[to].clone(),
                    amount,
                    currency: "EUR".into(),
                    memo: String::new(),
                };
                match client.make_payment(authorized(request, &token)).await {
                    Ok(_) => Outcome::Ok(amount),
                    Err(status) => status_outcome(status),
                }
            }
        }
    };
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut payments = run_phase(
        &format!("payments ({label})"),
        &fleet.shape,
        args.payments,
        args.callers(),
        args.json,
        meters(),
        pay,
    )
    .await;
    let accounts = read_accounts(&mut first, &token, &workload).await?;
    let balances: Vec<i64> = accounts.iter().map(|a| a.balance).collect();
    check_balances(&workload, &balances, &payments, &label)?;
    if workload.scenario == Scenario::Merchant && workload.merchant_shards <= 1 {
        payments.promotion = promotion_seen(&mut first, &token, &accounts[0], started_ms).await?;
    }
    phases.push(payments);
    if reads {
        phases.extend(read_phases(bench, fleet, &clients, &workload, &label, &meters).await);
    }
    Ok(phases)
}

/// The amount of the `n`-th hold of the hold-capture scenario: 1-1000 minor
/// units, known to every phase without storing it.
fn hold_amount(n: u32) -> i64 {
    1 + (i64::from(n) * 7919) % AMOUNT_MAX_MINOR
}

/// What the refund of the `m`-th capture returns: half of it, at least 1.
fn refunded_amount(m: u32) -> i64 {
    (captured_amount(m) / 2).max(1)
}

/// The sender and recipient (indexes into the accounts) of the `n`-th hold:
/// each account in turn, paying the next.
fn hold_parties(n: u32, accounts: u32) -> (usize, usize) {
    ((n % accounts) as usize, ((n + 1) % accounts) as usize)
}

/// What the `m`-th capture (of hold 2m) moves: all of the hold for even m,
/// half of it (at least 1) for odd m.
fn captured_amount(m: u32) -> i64 {
    let held = hold_amount(2 * m);
    if m.is_multiple_of(2) {
        held
    } else {
        (held / 2).max(1)
    }
}

/// The hold-capture scenario on fresh accounts: `authorize` places
/// --payments holds (sender n mod accounts, recipient the next account);
/// `capture` captures the even ones, alternately in full and in part;
/// `void` voids the odd ones; `refund` refunds half of each capture. Each
/// call refers to its hold by (sender, idempotency key), as a client that
/// kept only its key would.
async fn hold_phases<'a, T, M>(
    bench: &Bench,
    fleet: &Fleet,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    tag: &str,
    label: &str,
    meters: &M,
) -> Result<Vec<Phase>, BoxError>
where
    T: GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
    M: Fn() -> Meters<'a>,
{
    let args = &bench.args;
    let key = Arc::new(format!("{}-{tag}", bench.run_id));
    let accounts = workload.ids.len() as u32;
    let sender = move |n: u32| hold_parties(n, accounts).0;
    let recipient = move |n: u32| hold_parties(n, accounts).1;
    let by_key = {
        let (key, ids) = (key.clone(), workload.ids.clone());
        move |n: u32| {
            Some(pb::PaymentRef {
                sender_id: ids[sender(n)].clone(),
                idempotency_key: format!("{key}-h{n}"),
                ..Default::default()
            })
        }
    };
    let client_of = {
        let clients = clients.clone();
        move |caller: u32| clients[caller as usize % clients.len()].clone()
    };
    let token = bench.token.clone();
    let mut phases = Vec::new();

    let authorize = {
        let (client_of, token, ids, key) = (
            client_of.clone(),
            token.clone(),
            workload.ids.clone(),
            key.clone(),
        );
        move |caller: u32, _round: u32, n: u32| {
            let (mut client, token) = (client_of(caller), token.clone());
            let request = pb::AuthorizePaymentRequest {
                idempotency_key: format!("{key}-h{n}"),
                sender_id: ids[sender(n)].clone(),
                recipient_id: ids[recipient(n)].clone(),
                amount: hold_amount(n),
                currency: "EUR".into(),
                memo: String::new(),
                expires_in_seconds: 3600,
            };
            async move {
                match client.authorize_payment(authorized(request, &token)).await {
                    Ok(_) => Outcome::Ok(hold_amount(n)),
                    Err(status) => status_outcome(status),
                }
            }
        }
    };
    let holds = args.payments;
    phases.push(
        run_phase(
            &format!("authorize ({label})"),
            &fleet.shape,
            holds,
            args.callers(),
            args.json,
            meters(),
            authorize,
        )
        .await,
    );

    let capture = {
        let (client_of, token, by_key) = (client_of.clone(), token.clone(), by_key.clone());
        move |caller: u32, _round: u32, m: u32| {
            let (mut client, token) = (client_of(caller), token.clone());
            let request = pb::CaptureHoldRequest {
                hold: by_key(2 * m),
                amount: if m.is_multiple_of(2) {
                    0
                } else {
                    captured_amount(m)
                },
            };
            async move {
                match client.capture_hold(authorized(request, &token)).await {
                    Ok(reply) => {
                        let moved = reply.into_inner().transaction.map_or(0, |t| t.amount);
                        if moved == captured_amount(m) {
                            Outcome::Ok(moved)
                        } else {
                            Outcome::Other(format!(
                                "capture {m} moved {moved}, not {}",
                                captured_amount(m)
                            ))
                        }
                    }
                    Err(status) => status_outcome(status),
                }
            }
        }
    };
    phases.push(
        run_phase(
            &format!("capture ({label})"),
            &fleet.shape,
            holds.div_ceil(2),
            args.callers(),
            args.json,
            meters(),
            capture,
        )
        .await,
    );

    let void = {
        let (client_of, token, by_key) = (client_of.clone(), token.clone(), by_key.clone());
        move |caller: u32, _round: u32, m: u32| {
            let (mut client, token) = (client_of(caller), token.clone());
            let request = pb::VoidHoldRequest {
                hold: by_key(2 * m + 1),
            };
            async move {
                match client.void_hold(authorized(request, &token)).await {
                    Ok(_) => Outcome::Ok(0),
                    Err(status) => status_outcome(status),
                }
            }
        }
    };
    phases.push(
        run_phase(
            &format!("void ({label})"),
            &fleet.shape,
            holds / 2,
            args.callers(),
            args.json,
            meters(),
            void,
        )
        .await,
    );

    let refund = {
        let (client_of, token, by_key, key) = (
            client_of.clone(),
            token.clone(),
            by_key.clone(),
            key.clone(),
        );
        move |caller: u32, _round: u32, m: u32| {
            let (mut client, token) = (client_of(caller), token.clone());
            let amount = refunded_amount(m);
            let request = pb::RefundPaymentRequest {
                idempotency_key: format!("{key}-r{m}"),
                payment: by_key(2 * m),
                amount,
                memo: String::new(),
            };
            async move {
                match client.refund_payment(authorized(request, &token)).await {
                    Ok(_) => Outcome::Ok(amount),
                    Err(status) => status_outcome(status),
                }
            }
        }
    };
    phases.push(
        run_phase(
            &format!("refund ({label})"),
            &fleet.shape,
            holds.div_ceil(2),
            args.callers(),
            args.json,
            meters(),
            refund,
        )
        .await,
    );
    Ok(phases)
}

/// After the hold-capture phases: the accounts hold together exactly what
/// they opened with, none is negative, and none holds anything any more
/// (every hold was captured or voided). With every hold placed, each
/// account's balance is also exactly what its holds, captures and refunds
/// say it must be.
async fn check_holds_settled<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    workload: &Workload,
    authorize: &Phase,
    label: &str,
) -> Result<(), BoxError>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let mut balances = Vec::new();
    for account in read_accounts(client, token, workload).await? {
        if account.held != 0 {
            return Err(format!(
                "hold check failed ({label}): {} still holds {} after every hold was captured or voided",
                account.account_id, account.held
            )
            .into());
        }
        balances.push(account.balance);
    }
    check_balances(workload, &balances, authorize, label)?;
    if authorize.ok == authorize.calls {
        let accounts = workload.ids.len() as u32;
        let mut expected: Vec<i64> = (0..workload.ids.len())
            .map(|i| workload.opening_minor(i))
            .collect();
        for m in 0..authorize.calls.div_ceil(2) as u32 {
            let n = 2 * m;
            let (from, to) = hold_parties(n, accounts);
            let net = captured_amount(m) - refunded_amount(m);
            expected[from] -= net;
            expected[to] += net;
        }
        if expected != balances {
            return Err(format!(
                "hold check failed ({label}): the balances are not what the captures and refunds make them"
            )
            .into());
        }
    }
    Ok(())
}

/// Balance reads and history pages on the workload's accounts.
async fn read_phases<'a, T, M>(
    bench: &Bench,
    fleet: &Fleet,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    label: &str,
    meters: &M,
) -> Vec<Phase>
where
    T: GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
    M: Fn() -> Meters<'a>,
{
    let args = &bench.args;
    let token = bench.token.clone();
    let mut phases = Vec::new();
    if args.reads > 0 {
        let (clients, token, ids) = (clients.clone(), token.clone(), workload.ids.clone());
        let read = move |caller: u32, _round: u32, n: u32| {
            let mut client = clients[caller as usize % clients.len()].clone();
            let (token, ids) = (token.clone(), ids.clone());
            async move {
                let request = pb::GetAccountBalanceRequest {
                    account_id: ids[n as usize % ids.len()].clone(),
                };
                match client
                    .get_account_balance(authorized(request, &token))
                    .await
                {
                    Ok(_) => Outcome::Ok(0),
                    Err(status) => status_outcome(status),
                }
            }
        };
        phases.push(
            run_phase(
                &format!("balance reads ({label})"),
                &fleet.shape,
                args.reads,
                args.callers(),
                args.json,
                meters(),
                read,
            )
            .await,
        );
    }
    if args.history_pages > 0 {
        let (clients, token, ids) = (clients.clone(), token.clone(), workload.ids.clone());
        let page = move |caller: u32, _round: u32, n: u32| {
            let mut client = clients[caller as usize % clients.len()].clone();
            let (token, ids) = (token.clone(), ids.clone());
            async move {
                let request = pb::GetTransactionHistoryRequest {
                    account_id: ids[n as usize % ids.len()].clone(),
                    page_size: 50,
                    page_token: String::new(),
                };
                let mut stream = match client
                    .get_transaction_history(authorized(request, &token))
                    .await
                {
                    Ok(response) => response.into_inner(),
                    Err(status) => return status_outcome(status),
                };
                loop {
                    match stream.message().await {
                        Ok(Some(_)) => {}
                        Ok(None) => return Outcome::Ok(0),
                        Err(status) => return status_outcome(status),
                    }
                }
            }
        };
        phases.push(
            run_phase(
                &format!("history pages ({label})"),
                &fleet.shape,
                args.history_pages,
                args.callers(),
                args.json,
                meters(),
                page,
            )
            .await,
        );
    }
    phases
}

/// An account of the direct phase, opened as the service phases open it.
fn direct_account(workload: &Workload, index: usize) -> Result<NewAccount, BoxError> {
    Ok(NewAccount::parse(
        &workload.ids[index],
        "bench",
        "EUR",
        workload.opening_minor(index),
        workload.balance_shards(index),
    )?)
}

/// The direct phase: the same payments through one ledger in-process, run
/// on the service runtime (its CPU is measured the same way).
async fn direct_phase(
    bench: Arc<Bench>,
    ledger: Ledger,
    counter: RequestCounter,
    tag: &'static str,
    payments: u32,
) -> Result<Phase, BoxError> {
    let args = &bench.args;
    let workload = Workload::new(args, &bench.run_id, tag);
    for index in 0..workload.ids.len() {
        ledger
            .add_account(&direct_account(&workload, index)?, BENCH_SUB, false)
            .await?;
    }
    let name = format!("payments ({tag} DynamoDB)");
    let work = {
        let (ledger, workload) = (ledger.clone(), workload.clone());
        let key = format!("{}-{tag}", bench.run_id);
        move |caller: u32, round: u32, n: u32| {
            let (ledger, workload, key) = (ledger.clone(), workload.clone(), key.clone());
            async move {
                let (from, to, amount) = workload.pick(caller, round);
                let order = match PaymentOrder::parse(
                    &format!("{key}-{n}"),
                    &workload.ids[from],
                    &workload.ids[to],
                    amount,
                    "EUR",
                    "",
                ) {
                    Ok(order) => order,
                    Err(err) => return Outcome::Other(err.to_string()),
                };
                let payer = Payer {
                    sub: BENCH_SUB,
                    admin: true,
                };
                match ledger.make_payment(&order, payer).await {
                    Ok(_) => Outcome::Ok(amount),
                    Err(LedgerError::InsufficientFunds { .. }) => Outcome::Insufficient,
                    Err(LedgerError::Contended { .. }) => Outcome::Aborted,
                    Err(err) => Outcome::Other(err.to_string()),
                }
            }
        }
    };
    let requests = || counter.snapshot();
    let phase = run_phase(
        &name,
        "direct",
        payments,
        args.callers(),
        args.json,
        Meters {
            requests: Some(&requests),
            cpu: bench.cpu.as_ref(),
        },
        work,
    )
    .await;
    let mut balances = Vec::new();
    for id in workload.ids.iter() {
        balances.push(
            ledger
                .get_account(&AccountId::parse("account_id", id)?)
                .await?
                .balance_minor,
        );
    }
    check_balances(&workload, &balances, &phase, &format!("{tag} DynamoDB"))?;
    Ok(phase)
}

// ---------------------------------------------------------------------------

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if let Some(endpoint) = &args.endpoint
        && args.containers > 1
    {
        return Err(format!(
            "--containers starts the service itself: it does not go with --endpoint {endpoint}"
        )
        .into());
    }
    if let Some(endpoint) = &args.endpoint
        && args.compare_metrics
    {
        return Err(format!(
            "--compare-metrics starts the service itself: it does not go with --endpoint {endpoint}"
        )
        .into());
    }
    if args.scenario == Scenario::Merchant && args.customers < args.callers() {
        return Err(format!(
            "the merchant scenario gives each caller customers of its own: --customers {} is fewer than the {} callers",
            args.customers,
            args.callers()
        )
        .into());
    }
    if args.scenario == Scenario::HoldCapture
        && u64::from(args.payments) > u64::from(args.accounts) * HOLDS_OPEN_MAX as u64
    {
        return Err(format!(
            "the hold-capture scenario keeps every hold open until the capture phase, and an account holds at most {HOLDS_OPEN_MAX} open holds: --payments {} needs --accounts {} or more",
            args.payments,
            u64::from(args.payments).div_ceil(HOLDS_OPEN_MAX as u64)
        )
        .into());
    }
    let cpu = ThreadCpu::default();
    let service_threads = args.service_threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |n| n as usize,
    );
    let service_runtime = {
        let (start, stop) = (cpu.clone(), cpu.clone());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(service_threads)
            .thread_name("payment-service")
            .on_thread_start(move || start.thread_started())
            .on_thread_stop(move || stop.thread_stopping())
            .enable_all()
            .build()?
    };
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-load")
        .enable_all()
        .build()?;
    let result = load_runtime.block_on(run(
        args,
        cpu,
        service_threads,
        service_runtime.handle().clone(),
    ));
    service_runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn run(
    args: Args,
    cpu: ThreadCpu,
    service_threads: usize,
    service: tokio::runtime::Handle,
) -> Result<(), BoxError> {
    let run_id = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let tables = config::tables_from_env();
    // The direct phases' ledger, created on the service runtime like the
    // service's own.
    let counter = RequestCounter::default();
    let ledger = {
        let (counter, tables) = (counter.clone(), tables.clone());
        service
            .spawn(async move {
                let client = aws_sdk_dynamodb::Client::from_conf(
                    config::dynamodb_config().await.interceptor(counter).build(),
                );
                Ledger::new(client, tables)
            })
            .await?
    };
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let (token, fleet) = match &args.endpoint {
        Some(endpoint) => {
            let token = match &args.token {
                Some(token) => token.clone(),
                None => {
                    let secret = std::env::var("PAYMENT_DEV_JWT_SECRET")
                        .map_err(|_| "with --endpoint, give --token (an admin token) or PAYMENT_DEV_JWT_SECRET")?;
                    bench_token(secret.as_bytes())?
                }
            };
            (token, Some(Fleet::external(endpoint)))
        }
        None => {
            let create = ledger.clone();
            service
                .spawn(async move { create.create_tables().await })
                .await??;
            (bench_token(secret.as_bytes())?, None)
        }
    };
    let bench = Arc::new(Bench {
        token: format!("Bearer {token}").parse()?,
        run_id: run_id.clone(),
        cpu: cpu.total_ns().is_some().then_some(cpu),
        args,
    });
    let args = &bench.args;
    let compare = args.compare_one_server && args.containers > 1;
    if !args.json {
        let load = match args.scenario {
            Scenario::Accounts => format!(
                "{} accounts, {}% hot over {}",
                args.accounts, args.hot_percent, args.hot_accounts
            ),
            Scenario::Merchant => format!(
                "{} customers paying one merchant ({} balance shards)",
                args.customers, args.merchant_shards
            ),
            Scenario::HoldCapture => format!(
                "{} accounts placing holds, half captured (in full and in part) and refunded by half, half voided",
                args.accounts
            ),
        };
        let shape = match &fleet {
            Some(_) => format!("the service at {}", args.endpoint.as_deref().unwrap_or("")),
            None if compare => format!(
                "1 server, then {} containers (one call at a time each)",
                args.containers
            ),
            None if args.containers > 1 => {
                format!("{} containers (one call at a time each)", args.containers)
            }
            None => "1 server".into(),
        };
        println!(
            "payment-bench {run_id}: {load}, {} caller{}, {} payments per phase, via {} to {shape}; {service_threads} service threads (and the direct phase's)",
            args.callers(),
            if args.callers() == 1 { "" } else { "s" },
            args.payments,
            args.transport(),
        );
    }
    if args.warmup > 0 {
        service
            .spawn(direct_phase(
                bench.clone(),
                ledger.clone(),
                counter.clone(),
                "warmup",
                args.warmup,
            ))
            .await??;
    }
    let mut phases = Vec::new();
    let mut one_server = None;
    if compare {
        let fleet = Fleet::start(&service, 1, &tables, secret.as_bytes(), false).await?;
        let measured = service_phases(&bench, &fleet, "one", false).await?;
        fleet.stop().await;
        one_server = measured.into_iter().next();
    }
    let metrics_off = match &fleet {
        Some(_) => None,
        None if args.compare_metrics => {
            metrics_off_phase(&bench, &service, &tables, secret.as_bytes()).await?
        }
        None => None,
    };
    let fleet = match fleet {
        Some(fleet) => fleet,
        None => {
            let metrics = args.compare_metrics;
            let mut fleet = Fleet::start(
                &service,
                args.containers,
                &tables,
                secret.as_bytes(),
                metrics,
            )
            .await?;
            if metrics {
                fleet.shape.push_str(", metrics on");
            }
            fleet
        }
    };
    phases.extend(service_phases(&bench, &fleet, "svc", true).await?);
    let endpoints = fleet.endpoints.clone();
    fleet.stop().await;
    let direct = if args.no_direct || args.scenario == Scenario::HoldCapture {
        None
    } else {
        Some(
            service
                .spawn(direct_phase(
                    bench.clone(),
                    ledger.clone(),
                    counter.clone(),
                    "direct",
                    args.payments,
                ))
                .await??,
        )
    };
    let audit = if args.audit {
        let ledger = ledger.clone();
        Some(
            service
                .spawn(async move { ledger.audit(4, &|_, _| {}).await })
                .await??,
        )
    } else {
        None
    };
    let main = &phases[0];
    // CPU per payment with metrics over without (the same payments).
    let metrics_cpu = metrics_off
        .as_ref()
        .and_then(|off| Some((main.cpu_ms_per_ok()?, off.cpu_ms_per_ok()?)));
    let service_over_direct = direct
        .as_ref()
        .map(|d| main.per_second() / d.per_second().max(1e-9));
    let containers_over_one_server = one_server
        .as_ref()
        .map(|o| main.per_second() / o.per_second().max(1e-9));
    let one_server_over_direct = one_server
        .as_ref()
        .zip(direct.as_ref())
        .map(|(o, d)| o.per_second() / d.per_second().max(1e-9));
    // Hold-capture: each hold phase's throughput over the payments' (the
    // same service, accounts and callers, in this run).
    let over_payments: Vec<(String, f64)> = match phases.iter().find(|p| p.is_payments()) {
        Some(payments) if args.scenario == Scenario::HoldCapture => phases
            .iter()
            .filter(|p| {
                ["authorize", "capture", "void", "refund"]
                    .iter()
                    .any(|n| p.name.starts_with(n))
            })
            .map(|p| {
                let name = p.name.split(' ').next().unwrap_or_default().to_owned();
                (name, p.per_second() / payments.per_second().max(1e-9))
            })
            .collect(),
        _ => Vec::new(),
    };
    if args.json {
        let all: Vec<_> = one_server
            .iter()
            .chain(&metrics_off)
            .chain(&phases)
            .chain(&direct)
            .map(Phase::json)
            .collect();
        println!(
            "{}",
            json!({
                "run_id": run_id,
                "scenario": args.scenario.to_possible_value().map(|v| v.get_name().to_owned()),
                "transport": args.transport(),
                "endpoint": endpoints.first(),
                "endpoints": endpoints,
                "containers": args.containers,
                "one_call_at_a_time": args.containers > 1,
                "service_threads": service_threads,
                "accounts": args.accounts,
                "customers": args.customers,
                "merchant_shards": args.merchant_shards,
                "callers": args.callers(),
                "payments": args.payments,
                "hot_percent": args.hot_percent,
                "hot_accounts": args.hot_accounts,
                "phases": all,
                "service_over_direct": service_over_direct,
                "one_server_over_direct": one_server_over_direct,
                "containers_over_one_server": containers_over_one_server,
                "service_cpu_ms_per_payment_metrics_on_off": metrics_cpu.map(|(on, off)| json!({
                    "on": on,
                    "off": off,
                    "ratio": on / off.max(1e-9),
                })),
                "throughput_over_payments": over_payments.iter().cloned().collect::<BTreeMap<_, _>>(),
                "service_cpu_measures": bench.cpu.as_ref().map(|_| CPU_MEANS),
                "conservation": "ok",
                "audit": audit.as_ref().map(|a| json!({
                    "clean": a.is_clean(),
                    "accounts": a.accounts,
                    "entries": a.entries,
                    "payments": a.payments,
                    "discrepancies": a.discrepancies_total,
                    "currencies": a.currencies.iter().map(|(currency, t)| (currency.clone(), json!({
                        "accounts": t.accounts,
                        "balance_minor": t.balance_minor.to_string(),
                        "opening_minor": t.opening_minor.to_string(),
                    }))).collect::<serde_json::Map<_, _>>(),
                })),
            })
        );
    } else {
        for phase in one_server
            .iter()
            .chain(&metrics_off)
            .chain(&phases)
            .chain(&direct)
        {
            phase.print();
        }
        if let Some((on, off)) = metrics_cpu {
            println!(
                "service CPU per payment, metrics on / off: {on:.3} / {off:.3} ms = {:.3}",
                on / off.max(1e-9)
            );
        }
        if let Some(ratio) = containers_over_one_server {
            println!(
                "{} containers / 1 server throughput: {ratio:.2}",
                args.containers
            );
        }
        if let Some(ratio) = one_server_over_direct {
            println!("1 server / direct throughput: {ratio:.2}");
        }
        for (name, ratio) in &over_payments {
            println!("{name} / payments throughput: {ratio:.2}");
        }
        if let Some(ratio) = service_over_direct {
            println!("{} / direct throughput: {ratio:.2}", main.shape);
        }
        if bench.cpu.is_some() {
            println!("CPU: {CPU_MEANS}");
        }
        println!(
            "conservation: ok (after every payment phase, its accounts hold exactly their opening balances)"
        );
        if let Some(audit) = &audit {
            println!(
                "audit: {} ({} accounts, {} history entries, {} payments, {} discrepancies)",
                if audit.is_clean() {
                    "clean"
                } else {
                    "NOT CLEAN"
                },
                audit.accounts,
                audit.entries,
                audit.payments,
                audit.discrepancies_total
            );
            for (currency, totals) in &audit.currencies {
                println!(
                    "audit {currency}: {} accounts, balances sum to {} minor units, opening balances to {}{}",
                    totals.accounts,
                    totals.balance_minor,
                    totals.opening_minor,
                    if totals.balance_minor == totals.opening_minor {
                        ""
                    } else {
                        " (NOT CONSERVED)"
                    }
                );
            }
        }
    }
    if let Some(audit) = audit.filter(|a| !a.is_clean()) {
        for what in audit.discrepancies.iter().take(20) {
            eprintln!("audit: {what}");
        }
        return Err(format!(
            "the audit found {} discrepancies",
            audit.discrepancies_total
        )
        .into());
    }
    Ok(())
}

/// With --compare-metrics: the payments of the measured phase through a
/// service with metrics off (on fresh accounts), as a fleet of the same
/// shape; its first phase.
async fn metrics_off_phase(
    bench: &Bench,
    service: &tokio::runtime::Handle,
    tables: &Tables,
    secret: &[u8],
) -> Result<Option<Phase>, BoxError> {
    let containers = bench.args.containers;
    let mut fleet = Fleet::start(service, containers, tables, secret, false).await?;
    fleet.shape.push_str(", metrics off");
    let measured = service_phases(bench, &fleet, "moff", false).await?;
    fleet.stop().await;
    Ok(measured.into_iter().next())
}

fn bench_token(secret: &[u8]) -> Result<String, BoxError> {
    Ok(mint_dev_token(
        secret,
        &DevToken {
            sub: BENCH_SUB,
            admin: true,
            ttl: Duration::from_secs(3600),
            ..Default::default()
        },
    )?)
}
