//! Running one timed phase: `calls` calls spread over concurrent callers,
//! their outcomes and latencies, and what the service spent meanwhile
//! (DynamoDB requests, CPU time).

use crate::cpu::ThreadCpu;
use crate::report::Phase;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Most time one call may take before the benchmark counts it as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Outcome {
    /// Committed (a payment of this amount), or a read that succeeded (0).
    Ok(i64),
    Insufficient,
    Aborted,
    Other(String),
}

/// What a phase measures besides latency: the service's DynamoDB requests
/// and its CPU time.
pub struct Meters<'a> {
    pub requests: Option<&'a (dyn Fn() -> BTreeMap<String, u64> + Sync)>,
    pub cpu: Option<&'a ThreadCpu>,
}

/// Runs `calls` calls of `work(caller, round, n)` with `callers` concurrent
/// workers: caller `caller`'s `round`-th call is the `n`-th of the phase.
pub async fn run_phase<F, Fut>(
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
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let bar = progress_bar(name, calls, quiet);
    let requests_before = meters.requests.map(|r| r());
    let cpu_before = meters.cpu.and_then(ThreadCpu::total_ns);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let (work, next, bar) = (work.clone(), next.clone(), bar.clone());
        tasks.spawn(caller_calls(caller, calls, work, next, bar));
    }
    let mut total = Phase {
        name: name.to_owned(),
        shape: shape.to_owned(),
        ..Default::default()
    };
    while let Some(joined) = tasks.join_next().await {
        add_caller(&mut total, joined.unwrap_or_default());
    }
    total.elapsed = started.elapsed();
    total.latencies.sort();
    add_meters(&mut total, &meters, requests_before, cpu_before);
    bar.finish_and_clear();
    total
}

fn progress_bar(name: &str, calls: u32, quiet: bool) -> ProgressBar {
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
    bar
}

/// One caller's share of a phase: it takes the next call number until
/// `calls` are taken, one call at a time.
async fn caller_calls<F, Fut>(
    caller: u32,
    calls: u32,
    work: F,
    next: Arc<AtomicUsize>,
    bar: ProgressBar,
) -> Phase
where
    F: Fn(u32, u32, u32) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
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
}

/// Adds one caller's counts and latencies to the phase's.
fn add_caller(total: &mut Phase, phase: Phase) {
    total.add_calls(&phase);
    total.latencies.extend(phase.latencies);
}

/// The service's DynamoDB requests and CPU time since the phase started.
fn add_meters(
    total: &mut Phase,
    meters: &Meters<'_>,
    requests_before: Option<BTreeMap<String, u64>>,
    cpu_before: Option<u64>,
) {
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
}
