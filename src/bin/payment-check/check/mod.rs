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
//! Parts: [`fleet`] (the processes), [`proxy`] (the fault proxy),
//! [`clients`] (the workload and the record of calls), [`model`] (the
//! checks), [`report`]. `src/bin/payment-check.rs` is the command line.

pub mod clients;
pub mod fleet;
pub mod model;
pub mod proxy;
pub mod report;

use clients::{AccountSpec, Call, Fate, Recorder, Request, Reshard, Shared, Workload};
use fleet::{DynamoLocal, Instance, InstanceSpec};
use proxy::{FaultCounts, FaultPlan, FaultProxy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use report::{AuditSummary, Report};
use std::collections::BTreeSet;
use std::path::PathBuf;
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

/// Which faults a run injects.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub delay: bool,
    pub drop_reply: bool,
    pub late_write: bool,
    pub reset: bool,
    /// Kill and restart DynamoDB Local (`kills` times).
    pub kill: bool,
    /// Skew the clocks of half the instances.
    pub skew: bool,
}

impl Faults {
    pub const NAMES: [&'static str; 6] =
        ["delay", "drop-reply", "late-write", "reset", "kill", "skew"];

    /// From a comma-separated list of [`Faults::NAMES`], `all` or `none`.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => {
                    faults = Faults {
                        delay: true,
                        drop_reply: true,
                        late_write: true,
                        reset: true,
                        kill: true,
                        skew: true,
                    }
                }
                "none" => faults = Faults::default(),
                "delay" => faults.delay = true,
                "drop-reply" => faults.drop_reply = true,
                "late-write" => faults.late_write = true,
                "reset" => faults.reset = true,
                "kill" => faults.kill = true,
                "skew" => faults.skew = true,
                other => {
                    return Err(format!(
                        "--faults: {other:?} is not a fault; name some of {} (comma-separated), all or none",
                        Faults::NAMES.join(", ")
                    ));
                }
            }
        }
        Ok(faults)
    }

    pub fn names(&self) -> Vec<String> {
        let on = [
            self.delay,
            self.drop_reply,
            self.late_write,
            self.reset,
            self.kill,
            self.skew,
        ];
        Faults::NAMES
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(n, _)| (*n).to_owned())
            .collect()
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    pub instances: usize,
    pub clients: usize,
    pub operations: usize,
    /// Call deadlines are drawn from this range (ms).
    pub deadline_ms: (u64, u64),
    pub faults: Faults,
    /// Times DynamoDB Local is killed and restarted (with `kill`).
    pub kills: u32,
    /// Largest clock skew of an instance, ms (with `skew`).
    pub skew_max_ms: i64,
    /// Ordinary accounts per currency (each currency also has one sharded).
    pub accounts_per_currency: usize,
    /// The shard count the instances promote a hot ordinary account to
    /// (their `PAYMENT_PROMOTE_SHARDS`), or None: promotion off.
    pub promote_shards: Option<u32>,
    pub server_bin: PathBuf,
    pub dynamodb_script: PathBuf,
    /// Where logs and DynamoDB's data go (a fresh folder under it).
    pub workdir: PathBuf,
    /// Print progress on stderr.
    pub progress: bool,
    /// The command line that repeats this run (for the report).
    pub reproduce: String,
}

/// The currencies of a run: money is conserved in each.
const CURRENCIES: [&str; 2] = ["EUR", "USD"];
const OPENING_MINOR: i64 = 50_000;
const SHARDED_OPENING_MINOR: i64 = 20_000;
const SHARDS: u32 = 4;
/// What the admin raises an ordinary account to, and a sharded one to.
const RESHARD_ORDINARY: u32 = 4;
const RESHARD_SHARDED: u32 = 8;

fn accounts(per_currency: usize) -> Vec<AccountSpec> {
    let mut accounts = Vec::new();
    for currency in CURRENCIES {
        let prefix = currency.to_lowercase();
        for i in 0..per_currency {
            accounts.push(AccountSpec {
                id: format!("{prefix}-{i}"),
                currency: currency.into(),
                opening_shards: 1,
                opening_minor: OPENING_MINOR,
            });
        }
        accounts.push(AccountSpec {
            id: format!("{prefix}-shop"),
            currency: currency.into(),
            opening_shards: SHARDS,
            opening_minor: SHARDED_OPENING_MINOR,
        });
    }
    accounts
}

/// The admin's SetBalanceShards calls, drawn from the seed: once a
/// quarter to two fifths of the operations are done, an ordinary account
/// to [`RESHARD_ORDINARY`] and a sharded one to [`RESHARD_SHARDED`]; once
/// 55 to 75 % are done, another ordinary account and the other sharded one
/// likewise, the first ordinary account again to the same count (answered
/// unchanged, unless a promotion raised it past) and the first sharded one
/// to its opening count (fewer than it has by then: refused).
fn reshard_plan(rng: &mut StdRng, accounts: &[AccountSpec], operations: usize) -> Vec<Reshard> {
    let ordinary: Vec<&AccountSpec> = accounts.iter().filter(|a| a.opening_shards == 1).collect();
    let sharded: Vec<&AccountSpec> = accounts.iter().filter(|a| a.opening_shards > 1).collect();
    if ordinary.is_empty() || sharded.is_empty() {
        return Vec::new();
    }
    let first = operations * rng.random_range(25..=40usize) / 100;
    let second = operations * rng.random_range(55..=75usize) / 100;
    let o1 = rng.random_range(0..ordinary.len());
    let o2 = (o1 + rng.random_range(1..ordinary.len().max(2))) % ordinary.len();
    let s1 = rng.random_range(0..sharded.len());
    let s2 = (s1 + 1) % sharded.len();
    let at = |at_done: usize, account: &AccountSpec, shards: u32| Reshard {
        at_done,
        account: account.id.clone(),
        shards,
    };
    vec![
        at(first, ordinary[o1], RESHARD_ORDINARY),
        at(first, sharded[s1], RESHARD_SHARDED),
        at(second, ordinary[o2], RESHARD_ORDINARY),
        at(second, sharded[s2], RESHARD_SHARDED),
        at(second, ordinary[o1], RESHARD_ORDINARY),
        at(second, sharded[s1], sharded[s1].opening_shards),
    ]
}

/// The fault plan of the proxies.
fn plan(faults: &Faults, deadline_max_ms: u64) -> FaultPlan {
    let mut plan = FaultPlan::none();
    if faults.delay {
        plan.delay_per_mille = 100;
        plan.delay_max = Duration::from_millis(deadline_max_ms / 2);
    }
    if faults.drop_reply {
        plan.drop_reply_per_mille = 20;
    }
    if faults.late_write {
        plan.late_write_per_mille = 60;
        // After the longest deadline: the call was cut off by then.
        plan.late_after = (
            Duration::from_millis(deadline_max_ms + 200),
            Duration::from_millis(deadline_max_ms * 3 + 1_000),
        );
    }
    if faults.reset {
        plan.reset_per_mille = 20;
    }
    plan
}

/// Runs the checker: start everything, drive the clients, check, report.
pub async fn run(config: Config) -> Result<Report, BoxError> {
    let started = Instant::now();
    let workdir = config.workdir.join(format!(
        "payment-check-{}-{}",
        config.seed,
        std::process::id()
    ));
    std::fs::create_dir_all(workdir.join("dynamodb"))?;
    let progress = |what: &str| {
        if config.progress {
            eprintln!(
                "payment-check [{:>4} s] {what}",
                started.elapsed().as_secs()
            );
        }
    };
    progress(&format!(
        "starting DynamoDB Local (data in {})",
        workdir.join("dynamodb").display()
    ));
    let mut local = DynamoLocal::start(
        &config.dynamodb_script,
        fleet::port_for_restarts(config.seed),
        &workdir.join("dynamodb"),
        &workdir.join("dynamodb-local.log"),
    )
    .await?;
    let tables = payment::settings::Settings::from_env()?.ledger.tables;
    let ledger = payment::ledger::Ledger::new(
        crate::local_dynamodb::client(&local.endpoint()),
        tables.clone(),
    );
    let mut created = ledger.create_tables().await;
    for _ in 0..3 {
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        created = ledger.create_tables().await;
    }
    created?;

    let mut rng = StdRng::seed_from_u64(config.seed);
    progress(&format!("starting {} instances", config.instances));
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
    let mut channels = Vec::new();
    for instance in &instances {
        channels.push(
            tonic::transport::Endpoint::from_shared(instance.endpoint.clone())?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
                .connect_lazy(),
        );
    }
    // Tokens outlive the longest run.
    let token = clients::check_token(Duration::from_secs(24 * 3600))?;
    let accounts = Arc::new(accounts(config.accounts_per_currency));
    progress(&format!("opening {} accounts", accounts.len()));
    open_accounts(&channels[0], &token, &accounts).await?;

    let reshards = reshard_plan(&mut rng, &accounts, config.operations);
    let recorder = Arc::new(Recorder::new(Instant::now()));
    let shared = Arc::new(Shared::new(
        channels,
        token,
        recorder.clone(),
        Workload {
            seed: config.seed,
            clients: config.clients,
            operations: config.operations,
            deadline_ms: config.deadline_ms,
            accounts: accounts.clone(),
            amount_max: 5_000,
            hold_expiry_s: (60, 90),
            reshards,
        },
    ));
    let plan = plan(&config.faults, config.deadline_ms.1);
    for instance in &instances {
        instance.proxy.set_plan(plan.clone());
    }
    progress(&format!(
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
    // DynamoDB Local is killed when the clients are 1/(k+1), 2/(k+1)...
    // of the way through: by progress, not by time, so a slow machine and
    // a fast one kill it at the same point of the workload.
    let kills = if config.faults.kill { config.kills } else { 0 };
    let mut next_kill = 1;
    let mut last_report = Instant::now();
    while !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = recorder.done();
        if next_kill <= kills
            && done * (kills as usize + 1) >= config.operations * next_kill as usize
        {
            progress(&format!(
                "{done} operations done: stopping DynamoDB Local (kill {next_kill} of {kills})"
            ));
            restart_dynamodb(&mut local, &instances).await?;
            progress("DynamoDB Local is back, with its data");
            next_kill += 1;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            progress(&format!("{done} of {} operations done", config.operations));
        }
    }
    for task in tasks {
        task.await?;
    }
    progress("clients done; stopping faults and delivering late writes");
    for instance in &instances {
        instance.proxy.set_plan(FaultPlan::none());
    }
    drain(&instances, |p| p.late_pending()).await;
    drain(&instances, |p| p.in_flight()).await;

    // Keys still open: their final answer, now that nothing fails.
    let (mut calls, mut keyed) = recorder.take();
    let open: Vec<usize> = (0..keyed.len())
        .filter(|&i| keyed[i].fate == Fate::Open)
        .collect();
    if !open.is_empty() {
        progress(&format!(
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
                &shared,
                config.clients,
                attempt as usize % instances.len(),
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
    let (late_calls, _) = recorder.take();
    calls.extend(late_calls);
    calls.sort_by_key(|c| c.id);

    progress("reading the ledger and checking");
    let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
    for call in &calls {
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
    let truth = model::read_truth(&ledger, &accounts, &keys).await?;
    let (mut anomalies, coverage) = model::check(&calls, &keyed, &truth, config.promote_shards);
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
    for instance in &mut instances {
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
    let mut faults = FaultCounts::default();
    for instance in &instances {
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
        elapsed_s: started.elapsed().as_secs(),
        skews_ms: instances.iter().map(|i| i.skew_ms).collect(),
        dynamodb_restarts: local.restarts,
        faults,
        faults_enabled: config.faults.names(),
        outcomes: Report::outcomes_of(&calls),
        coverage,
        audit: Some(AuditSummary {
            clean: audit.is_clean(),
            accounts: audit.accounts,
            entries: audit.entries,
            payments: audit.payments,
            discrepancies: audit.discrepancies.iter().take(50).cloned().collect(),
        }),
        fence_seen,
        anomalies,
        anomaly_calls,
        workdir: workdir.display().to_string(),
    };
    drop(instances);
    local.kill();
    if report.passed() {
        let _ = std::fs::remove_dir_all(&workdir);
    } else {
        // Every call, one JSON object a line, and the ledger as it ended.
        let lines: Vec<String> = calls
            .iter()
            .filter_map(|c| serde_json::to_string(c).ok())
            .collect();
        let _ = std::fs::write(workdir.join("calls.jsonl"), lines.join("\n") + "\n");
        let _ = std::fs::write(workdir.join("ledger.txt"), model::describe(&truth));
    }
    Ok(report)
}

/// Opens the run's accounts through one instance (before any fault).
async fn open_accounts(
    channel: &tonic::transport::Channel,
    token: &tonic::metadata::AsciiMetadataValue,
    accounts: &[AccountSpec],
) -> Result<(), BoxError> {
    use payment::pb::{self, payment_service_client::PaymentServiceClient};
    let mut client = PaymentServiceClient::new(channel.clone());
    for spec in accounts {
        let mut last = None;
        // AddAccount sent again by its owner with the same parameters
        // answers the account: safe to repeat.
        for _ in 0..5 {
            let mut request = tonic::Request::new(pb::AddAccountRequest {
                account_id: spec.id.clone(),
                display_name: spec.id.clone(),
                currency: spec.currency.clone(),
                initial_balance: spec.opening_minor,
                balance_shards: spec.opening_shards as i32,
            });
            request
                .metadata_mut()
                .insert("authorization", token.clone());
            request.set_timeout(Duration::from_secs(20));
            match client.add_account(request).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(status) => last = Some(status),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Some(status) = last {
            return Err(format!(
                "opening account {}: {:?}: {}",
                spec.id,
                status.code(),
                status.message()
            )
            .into());
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_names_all_and_none() {
        let all = Faults::parse("all").unwrap();
        assert_eq!(all.names(), Faults::NAMES.to_vec());
        assert!(Faults::parse("none").unwrap().names().is_empty());
        assert!(Faults::parse("").unwrap().names().is_empty());
        let some = Faults::parse("late-write, kill").unwrap();
        assert_eq!(some.names(), ["late-write", "kill"]);
        let err = Faults::parse("delay,flood").unwrap_err();
        assert!(err.starts_with("--faults: \"flood\""), "{err}");
    }

    #[test]
    fn late_writes_go_out_after_the_longest_deadline() {
        let every = plan(&Faults::parse("all").unwrap(), 1_500);
        assert!(every.late_after.0 > Duration::from_millis(1_500));
        assert!(every.late_after.1 >= every.late_after.0);
        let none = plan(&Faults::default(), 1_500);
        assert_eq!(
            none.delay_per_mille
                + none.drop_reply_per_mille
                + none.late_write_per_mille
                + none.reset_per_mille,
            0
        );
    }
}
