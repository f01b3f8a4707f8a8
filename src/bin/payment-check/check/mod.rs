//! payment-check: a history checker for the Lambda shape under faults
//! (issue 18, part 3).
//!
//! One run starts DynamoDB Local with its data on disk, K payment-server
//! processes each answering one call at a time (like Lambda containers),
//! each reaching DynamoDB through its own seeded fault proxy, some with
//! their ledger clock skewed (a test-only setting); drives N clients with a
//! seeded random mix of every operation under short deadlines, following
//! the contract's retry rules; kills and restarts DynamoDB Local during the
//! run; reshards accounts during the run (an admin's SetBalanceShards at
//! seeded points, and the instances' own promotion of hot ordinary
//! accounts, which is on); records every call; then checks the history
//! against the ledger as it ends up and against a model of it, and reports.
//!
//! An account's shard count is not fixed: the checks take what the account
//! is from the ledger at the end and from the answers (see [`model`]).
//!
//! Parts: [`config`] (a run's settings), [`setup`] (its accounts, reshards
//! and fault plan), [`fleet`] (the processes), [`proxy`] (the fault proxy),
//! [`clients`] (the workload and the record of calls), [`model`] (the
//! checks), [`report`]; here, [`run`], phase by phase.
//! `src/bin/payment-check/main.rs` is the command line.

pub mod clients;
mod config;
pub mod fleet;
pub mod model;
pub mod proxy;
pub mod report;
mod setup;

pub use config::{Config, Faults};

use clients::{Call, Fate, KeyedOp, Recorder, Request, Shared, Workload};
use fleet::{DynamoLocal, Instance, InstanceSpec};
use payment::ledger::{Ledger, Tables};
use proxy::{FaultCounts, FaultPlan, FaultProxy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use report::{AuditSummary, Report};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the proxies refuse everything before DynamoDB Local is killed:
/// longer than DynamoDB Local's durability lag (under 100 ms measured idle;
/// thirty times that for a loaded machine), so that it never loses a write
/// it acknowledged. Its loss would be DynamoDB Local's, not the service's.
pub const KILL_QUIET: Duration = Duration::from_secs(3);
/// Longest wait for requests in flight to finish before a kill, and for
/// late writes to be delivered at the end (a hang detector).
const DRAIN_MAX: Duration = Duration::from_secs(120);
/// Final lookups for keys still open at the end, once faults stopped.
const END_FINALIZE_ATTEMPTS: u32 = 20;

/// Progress lines on stderr (unless quiet), timed from the run's start.
struct Progress {
    started: Instant,
    on: bool,
}

impl Progress {
    fn say(&self, what: &str) {
        if self.on {
            eprintln!(
                "payment-check [{:>4} s] {what}",
                self.started.elapsed().as_secs()
            );
        }
    }
}

/// What the checks found, and what they read.
struct Checked {
    anomalies: Vec<model::Anomaly>,
    coverage: model::Coverage,
    audit: AuditSummary,
    truth: model::Truth,
}

/// Runs the checker: start everything, drive the clients, check, report.
pub async fn run(config: Config) -> Result<Report, BoxError> {
    let progress = Progress {
        started: Instant::now(),
        on: config.progress,
    };
    let workdir = config.workdir.join(format!(
        "payment-check-{}-{}",
        config.seed,
        std::process::id()
    ));
    std::fs::create_dir_all(workdir.join("dynamodb"))?;
    let (mut local, ledger) = start_dynamodb(&config, &workdir, &progress).await?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut instances = start_instances(
        &config,
        &mut rng,
        &local,
        ledger.tables(),
        &workdir,
        &progress,
    )
    .await?;
    let shared = prepare_clients(&config, &mut rng, &instances, &progress).await?;
    drive(&config, &shared, &mut local, &instances, &progress).await?;
    let (calls, keyed) = finish_open_keys(&config, &shared, instances.len(), &progress).await;
    progress.say("reading the ledger and checking");
    let checked = check_history(&config, &ledger, &shared, &calls, &keyed, &mut instances).await?;
    let (report, truth) = report_of(
        &config,
        &progress,
        &workdir,
        &instances,
        local.restarts,
        &calls,
        checked,
    );
    drop(instances);
    local.kill();
    keep_or_remove(&report, &workdir, &calls, &truth);
    Ok(report)
}

/// Starts DynamoDB Local on the run's folder, and creates the tables
/// (again, while it is still starting).
async fn start_dynamodb(
    config: &Config,
    workdir: &Path,
    progress: &Progress,
) -> Result<(DynamoLocal, Ledger), BoxError> {
    progress.say(&format!(
        "starting DynamoDB Local (data in {})",
        workdir.join("dynamodb").display()
    ));
    let local = DynamoLocal::start(
        &config.dynamodb_script,
        fleet::port_for_restarts(config.seed),
        &workdir.join("dynamodb"),
        &workdir.join("dynamodb-local.log"),
    )
    .await?;
    let tables = payment::settings::Settings::from_env()?.ledger.tables;
    let ledger = Ledger::new(crate::local_dynamodb::client(&local.endpoint()), tables);
    let mut created = ledger.create_tables().await;
    for _ in 0..3 {
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        created = ledger.create_tables().await;
    }
    created?;
    Ok((local, ledger))
}

/// Starts the instances, each behind its own fault proxy; odd ones with a
/// skewed clock (with the skew fault).
async fn start_instances(
    config: &Config,
    rng: &mut StdRng,
    local: &DynamoLocal,
    tables: &Tables,
    workdir: &Path,
    progress: &Progress,
) -> Result<Vec<Instance>, BoxError> {
    progress.say(&format!("starting {} instances", config.instances));
    let mut instances = Vec::new();
    for index in 0..config.instances {
        // Odd instances run with a skewed clock.
        let skew_ms = if config.faults.skew && index % 2 == 1 && config.skew_max_ms > 0 {
            rng.random_range(-config.skew_max_ms..=config.skew_max_ms)
        } else {
            0
        };
        let proxy =
            FaultProxy::start(&local.endpoint(), config.seed ^ ((index as u64 + 1) << 32)).await?;
        let spec = InstanceSpec {
            server_bin: config.server_bin.clone(),
            log: workdir.join(format!("instance-{index}.log")),
            accounts_table: tables.accounts.clone(),
            ledger_table: tables.ledger.clone(),
            skew_ms,
            promote_shards: config.promote_shards,
        };
        instances.push(Instance::start(index, &spec, proxy).await?);
    }
    Ok(instances)
}

/// Connects to the instances, opens the accounts (before any fault) and
/// draws the admin's reshards: what the clients share.
async fn prepare_clients(
    config: &Config,
    rng: &mut StdRng,
    instances: &[Instance],
    progress: &Progress,
) -> Result<Arc<Shared>, BoxError> {
    let mut channels = Vec::new();
    for instance in instances {
        channels.push(
            tonic::transport::Endpoint::from_shared(instance.endpoint.clone())?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect_lazy(),
        );
    }
    // Tokens outlive the longest run.
    let token = clients::check_token(Duration::from_secs(24 * 3600))?;
    let accounts = Arc::new(setup::accounts(config.accounts_per_currency));
    progress.say(&format!("opening {} accounts", accounts.len()));
    setup::open_accounts(&channels[0], &token, &accounts).await?;
    let reshards = setup::reshard_plan(rng, &accounts, config.operations);
    let recorder = Arc::new(Recorder::new(Instant::now()));
    Ok(Arc::new(Shared::new(
        channels,
        token,
        recorder,
        Workload {
            seed: config.seed,
            clients: config.clients,
            operations: config.operations,
            deadline_ms: config.deadline_ms,
            accounts,
            amount_max: 5_000,
            hold_expiry_s: (60, 90),
            reshards,
        },
    )))
}

/// Turns the faults on, runs the clients and the admin to the end,
/// killing DynamoDB Local on the way; then stops the faults and lets the
/// late writes and the requests in flight finish.
async fn drive(
    config: &Config,
    shared: &Arc<Shared>,
    local: &mut DynamoLocal,
    instances: &[Instance],
    progress: &Progress,
) -> Result<(), BoxError> {
    let plan = setup::plan(&config.faults, config.deadline_ms.1);
    for instance in instances {
        instance.proxy.set_plan(plan.clone());
    }
    progress.say(&format!(
        "running {} operations from {} clients, faults: {}",
        config.operations,
        config.clients,
        config.faults.names().join(", ")
    ));
    let mut tasks = Vec::new();
    for index in 0..config.clients {
        tasks.push(tokio::spawn(clients::run_client(shared.clone(), index)));
    }
    // The admin, recorded as the client after the end's final lookups.
    tasks.push(tokio::spawn(clients::run_admin(
        shared.clone(),
        config.clients + 1,
    )));
    watch_and_kill(config, &shared.recorder, &tasks, local, instances, progress).await?;
    for task in tasks {
        task.await?;
    }
    progress.say("clients done; stopping faults and delivering late writes");
    for instance in instances {
        instance.proxy.set_plan(FaultPlan::none());
    }
    drain(instances, |p| p.late_pending()).await;
    drain(instances, |p| p.in_flight()).await;
    Ok(())
}

/// Until the tasks finish: reports progress, and kills DynamoDB Local
/// when the clients are 1/(k+1), 2/(k+1)... of the way through: by
/// progress, not by time, so a slow machine and a fast one kill it at the
/// same point of the workload.
async fn watch_and_kill(
    config: &Config,
    recorder: &Recorder,
    tasks: &[tokio::task::JoinHandle<()>],
    local: &mut DynamoLocal,
    instances: &[Instance],
    progress: &Progress,
) -> Result<(), BoxError> {
    let kills = if config.faults.kill { config.kills } else { 0 };
    let mut next_kill = 1;
    let mut last_report = Instant::now();
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = recorder.done();
        if next_kill <= kills
            && done * (kills as usize + 1) >= config.operations * next_kill as usize
        {
            progress.say(&format!(
                "{done} operations done: stopping DynamoDB Local (kill {next_kill} of {kills})"
            ));
            restart_dynamodb(local, instances).await?;
            progress.say("DynamoDB Local is back, with its data");
            next_kill += 1;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            progress.say(&format!("{done} of {} operations done", config.operations));
        }
    }
    Ok(())
}

/// Keys still open: their final answer, now that nothing fails. Returns
/// every call of the run, in order, and the keyed operations.
async fn finish_open_keys(
    config: &Config,
    shared: &Shared,
    instances: usize,
    progress: &Progress,
) -> (Vec<Call>, Vec<KeyedOp>) {
    let (mut calls, mut keyed) = shared.recorder.take();
    let open: Vec<usize> = (0..keyed.len())
        .filter(|&i| keyed[i].fate == Fate::Open)
        .collect();
    if !open.is_empty() {
        progress.say(&format!(
            "{} keys without a final answer: asking again",
            open.len()
        ));
    }
    for i in open {
        let (sender, key, op) = (keyed[i].sender.clone(), keyed[i].key.clone(), keyed[i].op);
        for attempt in 0..END_FINALIZE_ATTEMPTS {
            let request = Request::Lookup {
                sender: sender.clone(),
                key: key.clone(),
                finalize: true,
            };
            let answer = clients::call_instance(
                shared,
                config.clients,
                attempt as usize % instances,
                op,
                5_000,
                request,
            )
            .await;
            if let Some(fate) = clients::fate_of_final_lookup(&answer) {
                keyed[i].fate = fate;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let (late_calls, _) = shared.recorder.take();
    calls.extend(late_calls);
    calls.sort_by_key(|c| c.id);
    (calls, keyed)
}

/// Every (paying account, key) the calls named, refunded payments' too.
fn keys_of(calls: &[Call]) -> BTreeSet<(String, String)> {
    let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
    for call in calls {
        if let Some((sender, key)) = call.request.key() {
            keys.insert((sender.to_owned(), key.to_owned()));
        }
        if let Request::Refund {
            payment_sender,
            payment_key,
            ..
        } = &call.request
        {
            keys.insert((payment_sender.clone(), payment_key.clone()));
        }
    }
    keys
}

/// Reads the ledger as it ended and checks the history against it and
/// the model; the audit's discrepancies and any instance that died are
/// anomalies too.
async fn check_history(
    config: &Config,
    ledger: &Ledger,
    shared: &Shared,
    calls: &[Call],
    keyed: &[KeyedOp],
    instances: &mut [Instance],
) -> Result<Checked, BoxError> {
    let accounts = &shared.workload.accounts;
    let truth = model::read_truth(ledger, accounts, &keys_of(calls)).await?;
    let (mut anomalies, coverage) = model::check(calls, keyed, &truth, config.promote_shards);
    let audit = ledger.audit(4, &|_, _| {}).await?;
    if !audit.is_clean() {
        for what in audit.discrepancies.iter().take(50) {
            anomalies.push(model::Anomaly {
                check: "audit_clean",
                what: what.clone(),
                calls: vec![],
            });
        }
    }
    let mut died = Vec::new();
    for instance in instances.iter_mut() {
        if !instance.running() {
            died.push(instance.index);
        }
    }
    for index in died {
        anomalies.push(model::Anomaly {
            check: "ok_is_one_effect",
            what: format!("instance {index} exited during the run (see instance-{index}.log)"),
            calls: vec![],
        });
    }
    let audit = AuditSummary {
        clean: audit.is_clean(),
        accounts: audit.accounts,
        entries: audit.entries,
        payments: audit.payments,
        discrepancies: audit.discrepancies.iter().take(50).cloned().collect(),
    };
    Ok(Checked {
        anomalies,
        coverage,
        audit,
        truth,
    })
}

/// The report of the run, and the ledger as it ended.
fn report_of(
    config: &Config,
    progress: &Progress,
    workdir: &Path,
    instances: &[Instance],
    dynamodb_restarts: u32,
    calls: &[Call],
    checked: Checked,
) -> (Report, model::Truth) {
    let Checked {
        anomalies,
        coverage,
        audit,
        truth,
    } = checked;
    let mut faults = FaultCounts::default();
    for instance in instances {
        faults.add(&instance.proxy.counts());
    }
    let fence_seen = calls.iter().any(|c| c.answer.reason == "KEY_FENCED");
    let involved: BTreeSet<usize> = anomalies
        .iter()
        .flat_map(|a| a.calls.iter().copied())
        .collect();
    let anomaly_calls: Vec<Call> = calls
        .iter()
        .filter(|c| involved.contains(&c.id))
        .cloned()
        .collect();
    let report = Report {
        seed: config.seed,
        reproduce: config.reproduce.clone(),
        instances: instances.len(),
        clients: config.clients,
        operations: config.operations,
        calls: calls.len(),
        elapsed_s: progress.started.elapsed().as_secs(),
        skews_ms: instances.iter().map(|i| i.skew_ms).collect(),
        dynamodb_restarts,
        faults,
        faults_enabled: config.faults.names(),
        outcomes: Report::outcomes_of(calls),
        coverage,
        audit: Some(audit),
        fence_seen,
        anomalies,
        anomaly_calls,
        workdir: workdir.display().to_string(),
    };
    (report, truth)
}

/// Removes the run's folder after a pass; after a failure, keeps it and
/// adds every call (one JSON object a line) and the ledger as it ended.
fn keep_or_remove(report: &Report, workdir: &Path, calls: &[Call], truth: &model::Truth) {
    if report.passed() {
        let _ = std::fs::remove_dir_all(workdir);
    } else {
        let lines: Vec<String> = calls
            .iter()
            .filter_map(|c| serde_json::to_string(c).ok())
            .collect();
        let _ = std::fs::write(workdir.join("calls.jsonl"), lines.join("\n") + "\n");
        let _ = std::fs::write(workdir.join("ledger.txt"), model::describe(truth));
    }
}

/// Waits (bounded) until `pending` is 0 on every proxy.
async fn drain(instances: &[Instance], pending: impl Fn(&FaultProxy) -> u64) {
    let started = Instant::now();
    while instances.iter().any(|i| pending(&i.proxy) > 0) && started.elapsed() < DRAIN_MAX {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stops DynamoDB Local without losing an acknowledged write, and starts
/// it again on its data: the proxies break every request, the requests in
/// flight finish, [`KILL_QUIET`] passes, then SIGKILL and a restart.
async fn restart_dynamodb(local: &mut DynamoLocal, instances: &[Instance]) -> Result<(), BoxError> {
    for instance in instances {
        instance.proxy.set_blackout(true);
    }
    drain(instances, |p| p.in_flight()).await;
    tokio::time::sleep(KILL_QUIET).await;
    let restarted = local.restart().await;
    for instance in instances {
        instance.proxy.set_blackout(false);
    }
    restarted
}
