//! payment-bench: a payment workload against the service (gRPC or gRPC-Web),
//! and in the same run the same DynamoDB requests issued directly by the
//! ledger with no service in between: the physical limit on this machine.
//!
//! Without `--endpoint` it starts the service itself on 127.0.0.1 (so it can
//! count the service's DynamoDB requests); DynamoDB is configured the
//! standard AWS way (AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local). It opens
//! its own accounts (prefix `bench-<run id>`), checks at the end that no
//! money was created or lost in them, and prints payments/s, latency
//! percentiles, the service/direct ratio and DynamoDB requests per payment.

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use payment::auth::{Authenticator, DevToken, JwtVerifier, mint_dev_token};
use payment::config::{self, RequestCounter};
use payment::domain::PaymentOrder;
use payment::ledger::{Ledger, LedgerError, Payer};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use payment::service::PaymentApi;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::client::GrpcService;
use tonic::metadata::AsciiMetadataValue;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The identity the benchmark acts as (it owns the accounts it opens).
const BENCH_SUB: &str = "payment-bench";
/// Each bench account opens with this many minor units, so that the small
/// random amounts below rarely hit insufficient funds.
const OPENING_MINOR: i64 = 100_000_000;
/// Payment amounts are drawn from 1..=AMOUNT_MAX_MINOR.
const AMOUNT_MAX_MINOR: i64 = 1_000;
/// Most time one call may take before the benchmark counts it as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Accounts to pay between (2-10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    accounts: u32,
    /// Concurrent callers (1-1024).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    callers: u32,
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
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default)]
struct Phase {
    name: String,
    calls: u64,
    ok: u64,
    insufficient: u64,
    aborted: u64,
    other_errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    dynamodb_requests: Option<u64>,
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

    fn json(&self, unit: &str) -> serde_json::Value {
        json!({
            "phase": self.name,
            "calls": self.calls,
            "ok": self.ok,
            "insufficient_funds": self.insufficient,
            "aborted": self.aborted,
            "other_errors": self.other_errors,
            "seconds": self.elapsed.as_secs_f64(),
            format!("{unit}_per_second"): self.per_second(),
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            "dynamodb_requests": self.dynamodb_requests,
            "dynamodb_requests_per_call": self.dynamodb_requests.map(|r| r as f64 / self.calls.max(1) as f64),
        })
    }

    fn print(&self, unit: &str) {
        println!(
            "{:<28} {:>9.1} {unit}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>8.2} ms  ok {}  insufficient {}  aborted {}  errors {}{}",
            self.name,
            self.per_second(),
            self.percentile_ms(50),
            self.percentile_ms(99),
            self.latencies
                .last()
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            self.ok,
            self.insufficient,
            self.aborted,
            self.other_errors,
            self.dynamodb_requests
                .map(|r| format!(
                    "  DynamoDB requests/call {:.2}",
                    r as f64 / self.calls.max(1) as f64
                ))
                .unwrap_or_default(),
        );
    }
}

enum Outcome {
    Ok,
    Insufficient,
    Aborted,
    Other(String),
}

/// Picks (sender, recipient) indexes: with `hot_percent` chance both among
/// the first `hot` accounts, else uniformly among all.
fn pick_pair(rng: &mut impl Rng, accounts: u32, hot: u32, hot_percent: u32) -> (u32, u32) {
    let hot = hot.min(accounts);
    let range = if hot >= 2 && rng.random_ratio(hot_percent, 100) {
        hot
    } else {
        accounts
    };
    let from = rng.random_range(0..range);
    let mut to = rng.random_range(0..range - 1);
    if to >= from {
        to += 1;
    }
    (from, to)
}

/// Runs `calls` calls of `work` with `callers` concurrent workers.
async fn run_phase<F, Fut>(name: &str, calls: u32, callers: u32, quiet: bool, work: F) -> Phase
where
    F: Fn(u32) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send,
{
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(calls))
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(name.to_owned());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let (work, next, bar) = (work.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            let mut phase = Phase::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= calls as usize {
                    return phase;
                }
                let call_started = Instant::now();
                let outcome = tokio::time::timeout(CALL_TIMEOUT, work(n as u32))
                    .await
                    .unwrap_or_else(|_| Outcome::Other("timed out".into()));
                phase.latencies.push(call_started.elapsed());
                phase.calls += 1;
                match outcome {
                    Outcome::Ok => phase.ok += 1,
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
        });
    }
    let mut total = Phase {
        name: name.to_owned(),
        ..Default::default()
    };
    while let Some(joined) = tasks.join_next().await {
        let phase = joined.unwrap_or_default();
        total.calls += phase.calls;
        total.ok += phase.ok;
        total.insufficient += phase.insufficient;
        total.aborted += phase.aborted;
        total.other_errors += phase.other_errors;
        total.latencies.extend(phase.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    bar.finish_and_clear();
    total
}

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

/// The service phases: open accounts, pay, read balances, read history,
/// then check conservation. Generic over the transport (gRPC or gRPC-Web).
async fn service_phases<T>(
    client: PaymentServiceClient<T>,
    token: AsciiMetadataValue,
    args: &Args,
    run_id: &str,
    label: &str,
    counter: Option<&RequestCounter>,
) -> Result<Vec<Phase>, BoxError>
where
    T: GrpcService<tonic::body::Body> + Clone + Send + Sync + 'static,
    T::Future: Send,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let ids: Arc<Vec<String>> = Arc::new(
        (0..args.accounts)
            .map(|i| format!("{run_id}-svc-{i}"))
            .collect(),
    );
    let mut c = client.clone();
    for id in ids.iter() {
        c.add_account(authorized(
            pb::AddAccountRequest {
                account_id: id.clone(),
                display_name: "bench".into(),
                currency: "EUR".into(),
                initial_balance: OPENING_MINOR,
                ..Default::default()
            },
            &token,
        ))
        .await?;
    }
    let (accounts, hot, hot_percent) = (args.accounts, args.hot_accounts, args.hot_percent);
    let run = run_id.to_owned();
    let pay = {
        let (client, token, ids) = (client.clone(), token.clone(), ids.clone());
        move |n: u32| {
            let (mut client, token, ids, run) =
                (client.clone(), token.clone(), ids.clone(), run.clone());
            async move {
                let (from, to, amount) = {
                    let mut rng = rand::rng();
                    let (from, to) = pick_pair(&mut rng, accounts, hot, hot_percent);
                    (from, to, rng.random_range(1..=AMOUNT_MAX_MINOR))
                };
                let request = pb::MakePaymentRequest {
                    idempotency_key: format!("{run}-svc-{n}"),
                    sender_id: ids[from as usize].clone(),
                    recipient_id: ids[to as usize].clone(),
                    amount,
                    currency: "EUR".into(),
                    memo: String::new(),
                };
                match client.make_payment(authorized(request, &token)).await {
                    Ok(_) => Outcome::Ok,
                    Err(status) => status_outcome(status),
                }
            }
        }
    };
    let before = counter.map(RequestCounter::total);
    let mut payments = run_phase(
        &format!("payments ({label})"),
        args.payments,
        args.callers,
        args.json,
        pay,
    )
    .await;
    payments.dynamodb_requests = counter.zip(before).map(|(c, b)| c.total() - b);
    let mut phases = vec![payments];
    if args.reads > 0 {
        let (client, token, ids) = (client.clone(), token.clone(), ids.clone());
        let read = move |n: u32| {
            let (mut client, token, ids) = (client.clone(), token.clone(), ids.clone());
            async move {
                let request = pb::GetAccountBalanceRequest {
                    account_id: ids[n as usize % ids.len()].clone(),
                };
                match client
                    .get_account_balance(authorized(request, &token))
                    .await
                {
                    Ok(_) => Outcome::Ok,
                    Err(status) => status_outcome(status),
                }
            }
        };
        phases.push(
            run_phase(
                &format!("balance reads ({label})"),
                args.reads,
                args.callers,
                args.json,
                read,
            )
            .await,
        );
    }
    if args.history_pages > 0 {
        let (client, token, ids) = (client.clone(), token.clone(), ids.clone());
        let page = move |n: u32| {
            let (mut client, token, ids) = (client.clone(), token.clone(), ids.clone());
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
                        Ok(None) => return Outcome::Ok,
                        Err(status) => return status_outcome(status),
                    }
                }
            }
        };
        phases.push(
            run_phase(
                &format!("history pages ({label})"),
                args.history_pages,
                args.callers,
                args.json,
                page,
            )
            .await,
        );
    }
    // Conservation: the bench accounts hold exactly what they opened with.
    let mut total: i128 = 0;
    for id in ids.iter() {
        let account = c
            .get_account_balance(authorized(
                pb::GetAccountBalanceRequest {
                    account_id: id.clone(),
                },
                &token,
            ))
            .await?
            .into_inner()
            .account
            .ok_or("no account in reply")?;
        if account.balance < 0 {
            return Err(format!("conservation check failed: {id} is negative").into());
        }
        total += i128::from(account.balance);
    }
    let expected = i128::from(OPENING_MINOR) * i128::from(args.accounts);
    if total != expected {
        return Err(format!(
            "conservation check failed: accounts hold {total}, opened with {expected}"
        )
        .into());
    }
    Ok(phases)
}

/// The direct phase: the same payments through the ledger in-process.
async fn direct_phase(
    ledger: Ledger,
    counter: &RequestCounter,
    args: &Args,
    run_id: &str,
    label: &str,
    payments: u32,
) -> Result<Phase, BoxError> {
    let ids: Arc<Vec<String>> = Arc::new(
        (0..args.accounts)
            .map(|i| format!("{run_id}-{label}-{i}"))
            .collect(),
    );
    for id in ids.iter() {
        let new = payment::domain::NewAccount::parse(id, "bench", "EUR", OPENING_MINOR, 0)?;
        ledger.add_account(&new, BENCH_SUB, false).await?;
    }
    let (accounts, hot, hot_percent) = (args.accounts, args.hot_accounts, args.hot_percent);
    let run = run_id.to_owned();
    let name = format!("payments ({label} DynamoDB)");
    let label = label.to_owned();
    let before = counter.total();
    let work = {
        let (ledger, ids) = (ledger.clone(), ids.clone());
        move |n: u32| {
            let (ledger, ids, run, label) =
                (ledger.clone(), ids.clone(), run.clone(), label.clone());
            async move {
                let (from, to, amount) = {
                    let mut rng = rand::rng();
                    let (from, to) = pick_pair(&mut rng, accounts, hot, hot_percent);
                    (from, to, rng.random_range(1..=AMOUNT_MAX_MINOR))
                };
                let order = match PaymentOrder::parse(
                    &format!("{run}-{label}-{n}"),
                    &ids[from as usize],
                    &ids[to as usize],
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
                    Ok(_) => Outcome::Ok,
                    Err(LedgerError::InsufficientFunds { .. }) => Outcome::Insufficient,
                    Err(LedgerError::Contended { .. }) => Outcome::Aborted,
                    Err(err) => Outcome::Other(err.to_string()),
                }
            }
        }
    };
    let mut phase = run_phase(&name, payments, args.callers, args.json, work).await;
    phase.dynamodb_requests = Some(counter.total() - before);
    let mut total: i128 = 0;
    for id in ids.iter() {
        total += i128::from(
            ledger
                .get_account(&payment::domain::AccountId::parse("account_id", id)?)
                .await?
                .balance_minor,
        );
    }
    if total != i128::from(OPENING_MINOR) * i128::from(args.accounts) {
        return Err(format!("conservation check failed in the direct phase: {total}").into());
    }
    Ok(phase)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let run_id = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        config::dynamodb_config()
            .await
            .interceptor(counter.clone())
            .build(),
    );
    let ledger = Ledger::new(client, config::tables_from_env());

    // The service: the given endpoint, or one started here.
    let (endpoint, token, mut server) = match &args.endpoint {
        Some(endpoint) => {
            let token = match &args.token {
                Some(token) => token.clone(),
                None => {
                    let secret = std::env::var("PAYMENT_DEV_JWT_SECRET")
                        .map_err(|_| "with --endpoint, give --token (an admin token) or PAYMENT_DEV_JWT_SECRET")?;
                    mint_dev_token(
                        secret.as_bytes(),
                        &DevToken {
                            sub: BENCH_SUB,
                            admin: true,
                            ttl: Duration::from_secs(3600),
                            ..Default::default()
                        },
                    )?
                }
            };
            (endpoint.clone(), token, None)
        }
        None => {
            ledger.create_tables().await?;
            let secret = uuid::Uuid::new_v4().simple().to_string();
            let auth = Authenticator::Jwt(Arc::new(
                JwtVerifier::new(None, None).with_dev_secret(secret.as_bytes())?,
            ));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let endpoint = format!("http://{}", listener.local_addr()?);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let api = PaymentApi::new(ledger.clone(), auth);
            let task = tokio::spawn(async move {
                let _ = payment::server::serve(listener, api, "*", async {
                    let _ = stopped.await;
                })
                .await;
            });
            let token = mint_dev_token(
                secret.as_bytes(),
                &DevToken {
                    sub: BENCH_SUB,
                    admin: true,
                    ttl: Duration::from_secs(3600),
                    ..Default::default()
                },
            )?;
            (endpoint, token, Some((stop, task)))
        }
    };
    let token: AsciiMetadataValue = format!("Bearer {token}").parse()?;
    let transport = if args.grpc_web { "gRPC-Web" } else { "gRPC" };
    if !args.json {
        println!(
            "payment-bench {run_id}: {} accounts, {} callers, {} payments, {}% hot over {} accounts, via {transport} at {endpoint}",
            args.accounts, args.callers, args.payments, args.hot_percent, args.hot_accounts
        );
    }
    if args.warmup > 0 {
        direct_phase(
            ledger.clone(),
            &counter,
            &args,
            &run_id,
            "warmup",
            args.warmup,
        )
        .await?;
    }
    // Only a service started here shares this process's request counter.
    let service_counter = server.as_ref().map(|_| &counter);
    let phases = if args.grpc_web {
        let client = payment::client::connect_grpc_web(&endpoint)?;
        service_phases(client, token, &args, &run_id, transport, service_counter).await?
    } else {
        let client = payment::client::connect_grpc(&endpoint).await?;
        service_phases(client, token, &args, &run_id, transport, service_counter).await?
    };
    let direct = if args.no_direct {
        None
    } else {
        Some(
            direct_phase(
                ledger.clone(),
                &counter,
                &args,
                &run_id,
                "direct",
                args.payments,
            )
            .await?,
        )
    };
    if let Some((stop, task)) = server.take() {
        let _ = stop.send(());
        let _ = task.await;
    }
    let ratio = direct
        .as_ref()
        .map(|d| phases[0].per_second() / d.per_second().max(1e-9));
    if args.json {
        let mut all: Vec<_> = phases
            .iter()
            .map(|p| {
                p.json(if p.name.starts_with("payments") {
                    "payments"
                } else {
                    "calls"
                })
            })
            .collect();
        if let Some(d) = &direct {
            all.push(d.json("payments"));
        }
        println!(
            "{}",
            json!({
                "run_id": run_id,
                "transport": transport,
                "endpoint": endpoint,
                "accounts": args.accounts,
                "callers": args.callers,
                "payments": args.payments,
                "hot_percent": args.hot_percent,
                "hot_accounts": args.hot_accounts,
                "phases": all,
                "service_over_direct": ratio,
                "conservation": "ok",
            })
        );
    } else {
        for phase in &phases {
            phase.print(if phase.name.starts_with("payments") {
                "payments"
            } else {
                "calls"
            });
        }
        if let Some(d) = &direct {
            d.print("payments");
        }
        if let Some(ratio) = ratio {
            println!("service / direct throughput: {ratio:.2}");
        }
        println!("conservation: ok (bench accounts hold exactly their opening balances)");
    }
    Ok(())
}
