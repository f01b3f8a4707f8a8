//! One whole run, phase after phase: the direct ledger and the token, the
//! warm-up, the comparison phases, the measured fleet and the direct
//! phases (in --legs legs, alternately), the audit and the report.

use crate::BoxError;
use crate::args::{Args, Scenario};
use crate::cpu::ThreadCpu;
use crate::direct::{direct_phase, direct_read_phases};
use crate::fleet::{Fleet, Observe};
use crate::otlp_receiver::OtlpReceiver;
use crate::phases::{observability_off_phase, service_phases};
use crate::report::{self, Phase, Report, add_leg_phases};
use payment::auth::{DevToken, mint_dev_token};
use payment::config;
use payment::ledger::{AuditReport, Ledger, Tables};
use payment::settings::{DEV_JWT_SECRET_ENV, LedgerSettings, Settings};
use payment::telemetry::RequestCounter;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::AsciiMetadataValue;

/// The identity the benchmark acts as (it owns the accounts it opens).
pub const BENCH_SUB: &str = "payment-bench";

/// What every phase needs.
#[derive(Clone)]
pub struct Bench {
    pub args: Args,
    pub run_id: String,
    pub token: AsciiMetadataValue,
    /// The service runtime's threads (None with --endpoint).
    pub cpu: Option<ThreadCpu>,
}

impl Bench {
    /// Leg `leg` of --legs: its share of the calls, and a run id of its
    /// own, so that its accounts and idempotency keys are fresh (the run's
    /// own with one leg).
    fn leg(&self, leg: u32) -> Arc<Bench> {
        let legs = self.args.legs;
        let mut bench = self.clone();
        if legs > 1 {
            bench.run_id = format!("{}-l{leg}", self.run_id);
            let share = |total: u32| total / legs + u32::from(leg < total % legs);
            bench.args.payments = share(self.args.payments);
            bench.args.reads = share(self.args.reads);
            bench.args.history_pages = share(self.args.history_pages);
            bench.args.health_checks = share(self.args.health_checks);
        }
        Arc::new(bench)
    }
}

/// What the phases after the setup share: the direct ledger and its
/// request counter, the ledger's settings and the fleet's secret.
struct Direct {
    ledger: Ledger,
    counter: RequestCounter,
    settings: LedgerSettings,
    secret: String,
}

/// The phases before the measured one: with --compare-one-server, the
/// payments through one server; with --compare-metrics or
/// --compare-tracing, with metrics and tracing off.
struct Comparisons {
    one_server: Option<Phase>,
    observed_off: Option<Phase>,
}

/// The measured phases, the direct phases, the fleet's endpoints, and the
/// spans it exported (with --compare-tracing).
struct Measured {
    phases: Vec<Phase>,
    direct: Vec<Phase>,
    endpoints: Vec<String>,
    spans_exported: Option<u64>,
}

pub async fn run(
    args: Args,
    cpu: ThreadCpu,
    service_threads: usize,
    service: tokio::runtime::Handle,
) -> Result<(), BoxError> {
    let (bench, direct, fleet) = prepare(args, cpu, &service).await?;
    let args = &bench.args;
    let compare = args.compare_one_server && args.containers > 1;
    if !args.json {
        report::print_banner(
            args,
            &bench.run_id,
            fleet.is_some(),
            compare,
            service_threads,
        );
    }
    if args.warmup > 0 {
        service
            .spawn(direct_phase(
                bench.clone(),
                direct.ledger.clone(),
                direct.counter.clone(),
                "warmup",
                args.warmup,
            ))
            .await??;
    }
    let comparisons = comparisons(&bench, &service, &direct, compare, fleet.is_some()).await?;
    let measured = measured(&bench, &service, &direct, fleet).await?;
    let audit = audit_ledger(args, &service, &direct.ledger).await?;
    let report = Report {
        run_id: &bench.run_id,
        args,
        service_threads,
        endpoints: &measured.endpoints,
        one_server: comparisons.one_server,
        observed_off: comparisons.observed_off,
        spans_exported: measured.spans_exported,
        phases: measured.phases,
        direct: measured.direct,
        audit: audit.as_ref(),
        cpu_measured: bench.cpu.is_some(),
    };
    if args.json {
        report.print_json();
    } else {
        report.print_text();
    }
    audit_clean(audit)
}

/// The run's id, the direct ledger, the token and the service given with
/// --endpoint (None: the benchmark starts its own).
async fn prepare(
    args: Args,
    cpu: ThreadCpu,
    service: &tokio::runtime::Handle,
) -> Result<(Arc<Bench>, Direct, Option<Fleet>), BoxError> {
    let run_id = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    // The fleet's instances are built from the ledger's settings as the
    // server's ledger is; the direct ledger uses their tables.
    let settings = Settings::from_env()?;
    let counter = RequestCounter::default();
    let ledger = direct_ledger(service, &counter, &settings.ledger.tables).await?;
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let dev_secret = settings.auth.dev_secret.as_deref();
    let (token, fleet) = token_and_fleet(&args, service, &ledger, &secret, dev_secret).await?;
    let bench = Arc::new(Bench {
        token: format!("Bearer {token}").parse()?,
        run_id,
        cpu: cpu.total_ns().is_some().then_some(cpu),
        args,
    });
    let direct = Direct {
        ledger,
        counter,
        settings: settings.ledger,
        secret,
    };
    Ok((bench, direct, fleet))
}

/// The comparison phases the arguments ask for (`compare`: with one
/// server), on fleets of their own; none against a service given with
/// --endpoint (`external`) but the one-server one.
async fn comparisons(
    bench: &Bench,
    service: &tokio::runtime::Handle,
    direct: &Direct,
    compare: bool,
    external: bool,
) -> Result<Comparisons, BoxError> {
    let secret = direct.secret.as_bytes();
    let one_server = if compare {
        one_server_phase(bench, service, &direct.settings, secret).await?
    } else {
        None
    };
    let observed_off = match (external, bench.args.observed()) {
        (false, Some(observed)) => {
            observability_off_phase(bench, service, &direct.settings, secret, observed).await?
        }
        _ => None,
    };
    Ok(Comparisons {
        one_server,
        observed_off,
    })
}

/// The measured phases, through the service given with --endpoint or a
/// fleet of --containers started here (with --compare-tracing, sending
/// its spans to a receiver on this, the load generator's, runtime, so
/// that receiving costs the service nothing), and the direct phases: in
/// --legs legs, service then direct in even legs and direct then service
/// in odd ones.
async fn measured(
    bench: &Arc<Bench>,
    service: &tokio::runtime::Handle,
    direct: &Direct,
    fleet: Option<Fleet>,
) -> Result<Measured, BoxError> {
    let receiver = match (&fleet, bench.args.compare_tracing) {
        (None, true) => Some(OtlpReceiver::start(false).await?),
        _ => None,
    };
    let fleet = match fleet {
        Some(fleet) => fleet,
        None => {
            let traces_to = receiver.as_ref().map(|r| r.endpoint().to_owned());
            let secret = direct.secret.as_bytes();
            measured_fleet(&bench.args, service, &direct.settings, secret, traces_to).await?
        }
    };
    let (mut phases, mut direct_sum) = (Vec::new(), Vec::new());
    for leg in 0..bench.args.legs {
        let bench = bench.leg(leg);
        let service_first = leg % 2 == 0;
        if service_first {
            add_leg_phases(
                &mut phases,
                service_phases(&bench, &fleet, "svc", true).await?,
            );
        }
        let last = direct_phases(&bench, service, &direct.ledger, &direct.counter).await?;
        add_leg_phases(&mut direct_sum, last);
        if !service_first {
            add_leg_phases(
                &mut phases,
                service_phases(&bench, &fleet, "svc", true).await?,
            );
        }
    }
    let endpoints = fleet.endpoints.clone();
    fleet.stop().await;
    let spans_exported = match receiver {
        Some(receiver) => {
            let count = receiver.count();
            receiver.stop().await;
            Some(count)
        }
        None => None,
    };
    Ok(Measured {
        phases,
        direct: direct_sum,
        endpoints,
        spans_exported,
    })
}

/// The direct phases' ledger, created on the service runtime like the
/// service's own.
async fn direct_ledger(
    service: &tokio::runtime::Handle,
    counter: &RequestCounter,
    tables: &Tables,
) -> Result<Ledger, BoxError> {
    let (counter, tables) = (counter.clone(), tables.clone());
    Ok(service
        .spawn(async move {
            let client = aws_sdk_dynamodb::Client::from_conf(
                config::dynamodb_config().await.interceptor(counter).build(),
            );
            Ledger::new(client, tables)
        })
        .await?)
}

/// The token the callers present, and the service given with --endpoint
/// (None: the benchmark starts its own, on tables it creates here).
async fn token_and_fleet(
    args: &Args,
    service: &tokio::runtime::Handle,
    ledger: &Ledger,
    secret: &str,
    dev_secret: Option<&str>,
) -> Result<(String, Option<Fleet>), BoxError> {
    Ok(match &args.endpoint {
        Some(endpoint) => {
            let token = match &args.token {
                Some(token) => token.clone(),
                None => {
                    let secret = dev_secret.ok_or_else(|| {
                        format!(
                            "with --endpoint, give --token (an admin token) or {}",
                            DEV_JWT_SECRET_ENV
                        )
                    })?;
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
    })
}

/// With --compare-one-server (and --containers K > 1): the payments of the
/// measured phase through one server first (on fresh accounts); its first
/// phase.
async fn one_server_phase(
    bench: &Bench,
    service: &tokio::runtime::Handle,
    settings: &LedgerSettings,
    secret: &[u8],
) -> Result<Option<Phase>, BoxError> {
    let fleet = Fleet::start(service, 1, settings, secret, &Observe::default()).await?;
    let measured = service_phases(bench, &fleet, "one", false).await?;
    fleet.stop().await;
    Ok(measured.into_iter().next())
}

/// The fleet of the measured phases: --containers instances, with
/// payment-server's metrics on under --compare-metrics, and traces to
/// `traces_to` under --compare-tracing.
async fn measured_fleet(
    args: &Args,
    service: &tokio::runtime::Handle,
    settings: &LedgerSettings,
    secret: &[u8],
    traces_to: Option<String>,
) -> Result<Fleet, BoxError> {
    let observe = Observe {
        metrics: args.compare_metrics,
        traces_to,
    };
    let mut fleet = Fleet::start(service, args.containers, settings, secret, &observe).await?;
    if let Some(observed) = args.observed() {
        fleet.shape.push_str(&format!(", {observed} on"));
    }
    Ok(fleet)
}

/// The direct phases of a leg, unless --no-direct or the
/// hold-capture scenario: the payments, then the reads the service phases
/// made (--reads, --history-pages) on the direct payments' accounts.
async fn direct_phases(
    bench: &Arc<Bench>,
    service: &tokio::runtime::Handle,
    ledger: &Ledger,
    counter: &RequestCounter,
) -> Result<Vec<Phase>, BoxError> {
    let args = &bench.args;
    if args.no_direct || args.scenario == Scenario::HoldCapture {
        return Ok(Vec::new());
    }
    let (bench, ledger, counter) = (bench.clone(), ledger.clone(), counter.clone());
    service
        .spawn(async move {
            let payments = direct_phase(
                bench.clone(),
                ledger.clone(),
                counter.clone(),
                "direct",
                bench.args.payments,
            )
            .await?;
            let reads = direct_read_phases(bench, ledger, counter, "direct").await?;
            Ok::<_, BoxError>(std::iter::once(payments).chain(reads).collect())
        })
        .await?
}

/// With --audit: the whole ledger's audit, on the service runtime.
async fn audit_ledger(
    args: &Args,
    service: &tokio::runtime::Handle,
    ledger: &Ledger,
) -> Result<Option<AuditReport>, BoxError> {
    if !args.audit {
        return Ok(None);
    }
    let ledger = ledger.clone();
    Ok(Some(
        service
            .spawn(async move { ledger.audit(4, &|_, _| {}).await })
            .await??,
    ))
}

/// Fails the run when the audit found discrepancies, after listing the
/// first of them.
fn audit_clean(audit: Option<AuditReport>) -> Result<(), BoxError> {
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
