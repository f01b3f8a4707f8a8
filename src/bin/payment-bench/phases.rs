//! The service phases: payments on fresh accounts (after the hold phases in
//! the hold-capture scenario), then balance reads and history pages, over
//! native gRPC or gRPC-Web; and the phase with metrics and tracing off of
//! --compare-metrics and --compare-tracing.

use crate::args::Scenario;
use crate::checks::{check_balances, check_holds_settled, promotion_seen};
use crate::direct::HISTORY_PAGE;
use crate::fleet::{Fleet, Observe};
use crate::holds::hold_phases;
use crate::measure::{CALL_TIMEOUT, Meters, Outcome, run_phase};
use crate::report::Phase;
use crate::run::Bench;
use crate::workload::Workload;
use crate::{BoxError, Transport};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use payment::settings::LedgerSettings;
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::metadata::AsciiMetadataValue;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

pub fn status_outcome(status: tonic::Status) -> Outcome {
    match status.code() {
        tonic::Code::FailedPrecondition => Outcome::Insufficient,
        tonic::Code::Aborted => Outcome::Aborted,
        _ => Outcome::Other(format!("{:?}: {}", status.code(), status.message())),
    }
}

pub fn authorized<T>(message: T, token: &AsciiMetadataValue) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// How the phases on one fleet run: under which label and shape, with how
/// many callers, quietly or with a progress bar, and what they meter.
pub struct Runner<'r, M> {
    pub shape: &'r str,
    pub label: &'r str,
    pub callers: u32,
    pub quiet: bool,
    pub meters: &'r M,
}

impl<M> Runner<'_, M> {
    /// Runs the phase named "`what` (label)": `calls` calls of `work`.
    pub async fn run<'a, F, Fut>(&self, what: &str, calls: u32, work: F) -> Phase
    where
        M: Fn() -> Meters<'a>,
        F: Fn(u32, u32, u32) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Outcome> + Send + 'static,
    {
        run_phase(
            &format!("{what} ({})", self.label),
            self.shape,
            calls,
            self.callers,
            self.quiet,
            (self.meters)(),
            work,
        )
        .await
    }
}

/// Opens the workload's accounts through `client`.
pub async fn open_accounts<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    workload: &Workload,
) -> Result<(), BoxError>
where
    T: Transport,
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
pub async fn read_accounts<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    workload: &Workload,
) -> Result<Vec<pb::Account>, BoxError>
where
    T: Transport,
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

/// The service phases on `fleet` over native gRPC or gRPC-Web: payments on
/// fresh accounts, then (with `reads`) balance reads, history pages and
/// health checks.
pub async fn service_phases(
    bench: &Bench,
    fleet: &Fleet,
    tag: &str,
    reads: bool,
) -> Result<Vec<Phase>, BoxError> {
    if bench.args.grpc_web {
        let (mut clients, mut health) = (Vec::new(), Vec::new());
        for endpoint in &fleet.endpoints {
            clients.push(payment::client::connect_grpc_web(endpoint)?);
            health.push(HealthClient::with_origin(
                payment::client::grpc_web_transport()?,
                payment::client::endpoint_uri(endpoint)?,
            ));
        }
        service_phases_over(bench, fleet, clients, health, tag, reads).await
    } else {
        // The health checks share each endpoint's connection with the calls.
        let (mut clients, mut health) = (Vec::new(), Vec::new());
        for endpoint in &fleet.endpoints {
            let channel = payment::client::connect_channel(endpoint).await?;
            clients.push(PaymentServiceClient::new(channel.clone()));
            health.push(HealthClient::new(channel));
        }
        service_phases_over(bench, fleet, clients, health, tag, reads).await
    }
}

async fn service_phases_over<T>(
    bench: &Bench,
    fleet: &Fleet,
    clients: Vec<PaymentServiceClient<T>>,
    health: Vec<HealthClient<T>>,
    tag: &str,
    reads: bool,
) -> Result<Vec<Phase>, BoxError>
where
    T: Transport,
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
    let runner = Runner {
        shape: &fleet.shape,
        label: &label,
        callers: args.callers(),
        quiet: args.json,
        meters: &meters,
    };
    // The hold-capture scenario measures its holds first, then payments on
    // fresh accounts of the same shape, so that the two compare in one run.
    let mut phases = Vec::new();
    let workload = if args.scenario == Scenario::HoldCapture {
        phases = hold_phases(bench, &clients, &workload, tag, &runner).await?;
        check_holds_settled(&mut first, &token, &workload, &phases[0], &label).await?;
        let payments = Workload::new(args, &bench.run_id, &format!("{tag}-pay"));
        open_accounts(&mut first, &token, &payments).await?;
        payments
    } else {
        workload
    };
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut payments = payments_phase(bench, &clients, &workload, tag, &runner).await;
    let accounts = read_accounts(&mut first, &token, &workload).await?;
    let balances: Vec<i64> = accounts.iter().map(|a| a.balance).collect();
    check_balances(&workload, &balances, &payments, &label)?;
    if workload.scenario == Scenario::Merchant && workload.merchant_shards <= 1 {
        payments.promotion = promotion_seen(&mut first, &token, &accounts[0], started_ms).await?;
    }
    phases.push(payments);
    if reads {
        phases.extend(read_phases(bench, &clients, &workload, &runner).await);
        if args.health_checks > 0 {
            phases.push(health_checks_phase(bench, health, &runner).await);
        }
    }
    Ok(phases)
}

/// --payments payments on the workload's accounts, as `workload.pick` says.
async fn payments_phase<'a, T, M>(
    bench: &Bench,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    tag: &str,
    runner: &Runner<'_, M>,
) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let pay = {
        let (clients, token, workload) = (clients.clone(), bench.token.clone(), workload.clone());
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
    runner.run("payments", bench.args.payments, pay).await
}

/// Balance reads and history pages on the workload's accounts.
async fn read_phases<'a, T, M>(
    bench: &Bench,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    runner: &Runner<'_, M>,
) -> Vec<Phase>
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let args = &bench.args;
    let mut phases = Vec::new();
    if args.reads > 0 {
        phases.push(balance_reads_phase(bench, clients, workload, runner).await);
    }
    if args.history_pages > 0 {
        phases.push(history_pages_phase(bench, clients, workload, runner).await);
    }
    phases
}

/// --reads balance reads, the accounts in turn.
async fn balance_reads_phase<'a, T, M>(
    bench: &Bench,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    runner: &Runner<'_, M>,
) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let (clients, token, ids) = (clients.clone(), bench.token.clone(), workload.ids.clone());
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
    runner.run("balance reads", bench.args.reads, read).await
}

/// --history-pages first history pages of 50 entries, the accounts in turn.
async fn history_pages_phase<'a, T, M>(
    bench: &Bench,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    runner: &Runner<'_, M>,
) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let (clients, token, ids) = (clients.clone(), bench.token.clone(), workload.ids.clone());
    let page = move |caller: u32, _round: u32, n: u32| {
        let mut client = clients[caller as usize % clients.len()].clone();
        let (token, ids) = (token.clone(), ids.clone());
        async move {
            let request = pb::GetTransactionHistoryRequest {
                account_id: ids[n as usize % ids.len()].clone(),
                page_size: HISTORY_PAGE as i32,
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
    runner
        .run("history pages", bench.args.history_pages, page)
        .await
}

/// --health-checks health checks: the same transport, callers and bearer
/// token as the other calls, with nothing behind them but the service's
/// own stack (HTTP, gRPC-Web, the guard, tonic's routing).
async fn health_checks_phase<'a, T, M>(
    bench: &Bench,
    health: Vec<HealthClient<T>>,
    runner: &Runner<'_, M>,
) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let (health, token) = (Arc::new(health), bench.token.clone());
    let check = move |caller: u32, _round: u32, _n: u32| {
        let mut client = health[caller as usize % health.len()].clone();
        let token = token.clone();
        async move {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            match client.check(authorized(request, &token)).await {
                Ok(reply) => match reply.into_inner().status() {
                    ServingStatus::Serving => Outcome::Ok(0),
                    other => Outcome::Other(format!("health status {}", other.as_str_name())),
                },
                Err(status) => status_outcome(status),
            }
        }
    };
    runner
        .run("health checks", bench.args.health_checks, check)
        .await
}

/// With --compare-metrics or --compare-tracing: the payments of the
/// measured phase through a service with metrics and tracing off (on fresh
/// accounts), as a fleet of the same shape; its first phase.
pub async fn observability_off_phase(
    bench: &Bench,
    service: &tokio::runtime::Handle,
    settings: &LedgerSettings,
    secret: &[u8],
    observed: &str,
) -> Result<Option<Phase>, BoxError> {
    let containers = bench.args.containers;
    let mut fleet =
        Fleet::start(service, containers, settings, secret, &Observe::default()).await?;
    fleet.shape.push_str(&format!(", {observed} off"));
    let measured = service_phases(bench, &fleet, "moff", false).await?;
    fleet.stop().await;
    Ok(measured.into_iter().next())
}
