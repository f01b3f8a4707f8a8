//! What a phase measured and how the run reports it: one line (and a line
//! of details) per phase and the ratios between the shapes as text, or one
//! JSON object with --json.

use crate::args::{Args, Scenario};
use crate::cpu::CPU_MEANS;
use clap::ValueEnum;
use payment::ledger::AuditReport;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The DynamoDB operation of one payment round (one commit attempt).
const ROUND_OPERATION: &str = "TransactWriteItems";

#[derive(Debug, Default)]
pub struct Phase {
    pub name: String,
    /// How the service ran: "1 server", "8 containers", "direct".
    pub shape: String,
    pub calls: u64,
    pub ok: u64,
    pub insufficient: u64,
    pub aborted: u64,
    pub other_errors: u64,
    /// Sum of the amounts of the committed payments.
    pub committed_minor: i128,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// The service's DynamoDB requests during the phase, per operation.
    pub dynamodb: Option<BTreeMap<String, u64>>,
    /// The service's CPU time during the phase.
    pub cpu: Option<Duration>,
    /// The merchant's promotion to balance shards during the phase, when it
    /// was opened ordinary and the service promoted it.
    pub promotion: Option<Promoted>,
}

/// Adds each phase of a leg to the phase of the same name in `total`, or
/// appends it (a leg whose share of some calls is 0 has no such phase).
pub fn add_leg_phases(total: &mut Vec<Phase>, leg: Vec<Phase>) {
    for phase in leg {
        match total.iter_mut().find(|p| p.name == phase.name) {
            Some(sum) => sum.add_leg(phase),
            None => total.push(phase),
        }
    }
}

/// When the service promoted the merchant (opened as an ordinary account)
/// to balance shards, as its history shows it: the first credit on a shard
/// other than 0 is the first payment after the promotion.
#[derive(Debug, Clone, Copy)]
pub struct Promoted {
    pub shards: i32,
    /// Payments the merchant took before that first credit.
    pub payments_before: usize,
    /// The time of that credit, from the start of the phase.
    pub ms_into_phase: i64,
}

impl Phase {
    /// Adds the outcomes counted in `other` (a caller's share, a leg).
    pub fn add_calls(&mut self, other: &Phase) {
        self.calls += other.calls;
        self.ok += other.ok;
        self.insufficient += other.insufficient;
        self.aborted += other.aborted;
        self.other_errors += other.other_errors;
        self.committed_minor += other.committed_minor;
    }

    /// Adds a later leg of the same phase (--legs): the counts, the time,
    /// the latencies, the DynamoDB requests and the CPU are summed, so the
    /// rates and the per-call figures are those of all the legs together.
    pub fn add_leg(&mut self, leg: Phase) {
        self.add_calls(&leg);
        self.elapsed += leg.elapsed;
        self.latencies.extend(leg.latencies);
        self.latencies.sort();
        self.dynamodb = match (self.dynamodb.take(), leg.dynamodb) {
            (Some(mut sum), Some(more)) => {
                for (op, n) in more {
                    *sum.entry(op).or_default() += n;
                }
                Some(sum)
            }
            _ => None,
        };
        self.cpu = self.cpu.zip(leg.cpu).map(|(a, b)| a + b);
        self.promotion = self.promotion.or(leg.promotion);
    }

    pub fn per_second(&self) -> f64 {
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

    pub fn cpu_ms_per_ok(&self) -> Option<f64> {
        self.per_ok(self.cpu?.as_secs_f64() * 1000.0)
    }

    pub fn is_payments(&self) -> bool {
        self.name.starts_with("payments")
    }

    /// What was called, the name without the shape: "payments", "balance
    /// reads", "history pages".
    fn kind(&self) -> &str {
        self.name.split(" (").next().unwrap_or(&self.name)
    }

    pub fn json(&self) -> serde_json::Value {
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

    pub fn print(&self) {
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
        let details = self.details();
        if !details.is_empty() {
            println!("{:<34} {}", "", details.join("  "));
        }
    }

    /// The second line of `print`: DynamoDB requests, rounds and CPU per
    /// call, and the merchant's promotion.
    fn details(&self) -> Vec<String> {
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
            details.push(if ops.is_empty() {
                format!("DynamoDB requests/{per} 0")
            } else {
                format!("DynamoDB requests/{per} {per_ok:.2} ({})", ops.join(", "))
            });
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
        details
    }
}

/// The first line of a text run: what it runs and on which shape.
/// `external`: against --endpoint; `compare`: one server first.
pub fn print_banner(
    args: &Args,
    run_id: &str,
    external: bool,
    compare: bool,
    service_threads: usize,
) {
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
    let shape = if external {
        format!("the service at {}", args.endpoint.as_deref().unwrap_or(""))
    } else if compare {
        format!(
            "1 server, then {} containers (one call at a time each)",
            args.containers
        )
    } else if args.containers > 1 {
        format!("{} containers (one call at a time each)", args.containers)
    } else {
        "1 server".into()
    };
    let legs = if args.legs > 1 {
        format!(
            " (the service's and the direct ones in {} alternating legs each)",
            args.legs
        )
    } else {
        String::new()
    };
    println!(
        "payment-bench {run_id}: {load}, {} caller{}, {} payments per phase{legs}, via {} to {shape}; {service_threads} service threads (and the direct phase's)",
        args.callers(),
        if args.callers() == 1 { "" } else { "s" },
        args.payments,
        args.transport(),
    );
}

/// Everything a run measured, to print at its end.
pub struct Report<'r> {
    pub run_id: &'r str,
    pub args: &'r Args,
    pub service_threads: usize,
    pub endpoints: &'r [String],
    /// With --compare-one-server: the payments through one server.
    pub one_server: Option<Phase>,
    /// With --compare-metrics or --compare-tracing: the payments with
    /// metrics and tracing off.
    pub observed_off: Option<Phase>,
    /// With --compare-tracing: the spans the benchmark's OTLP receiver got
    /// from the measured fleet.
    pub spans_exported: Option<u64>,
    /// The measured service phases; the first is the payments (or, in the
    /// hold-capture scenario, the holds).
    pub phases: Vec<Phase>,
    /// The direct phases: the payments, then the reads (balance reads,
    /// history pages) the service phases made.
    pub direct: Vec<Phase>,
    pub audit: Option<&'r AuditReport>,
    /// Whether the service's CPU time was measured.
    pub cpu_measured: bool,
}

/// One kind of call (payments, balance reads, history pages) through the
/// service against the same calls through the ledger directly, in one run.
struct OverDirect {
    kind: String,
    /// Throughput through the service / directly.
    throughput: f64,
    /// CPU per call through the service and directly (ms), when measured.
    cpu_ms: Option<(f64, f64)>,
}

impl OverDirect {
    fn json(&self) -> serde_json::Value {
        json!({
            "calls": self.kind,
            "service_over_direct": self.throughput,
            "service_cpu_ms_per_call": self.cpu_ms.map(|c| c.0),
            "direct_cpu_ms_per_call": self.cpu_ms.map(|c| c.1),
            "service_cpu_ms_over_direct": self.cpu_ms.map(|(s, d)| s - d),
        })
    }

    fn print(&self, shape: &str) {
        let per = if self.kind == "payments" {
            "payment"
        } else {
            "call"
        };
        let cpu = self.cpu_ms.map_or_else(String::new, |(s, d)| {
            format!(
                "; CPU per {per}: service {s:.3} ms, direct {d:.3} ms, service - direct {:+.3} ms",
                s - d
            )
        });
        println!(
            "{}: {shape} / direct throughput {:.2}{cpu}",
            self.kind, self.throughput
        );
    }
}

/// The ratios between the shapes and phases of one run.
struct Ratios {
    /// CPU per payment with metrics and/or tracing on, and with them off
    /// (the same payments).
    observed_cpu: Option<(f64, f64)>,
    service_over_direct: Option<f64>,
    /// Each measured phase against the direct phase of the same calls.
    over_direct: Vec<OverDirect>,
    containers_over_one_server: Option<f64>,
    one_server_over_direct: Option<f64>,
    /// Hold-capture: each hold phase's throughput over the payments' (the
    /// same service, accounts and callers, in this run).
    over_payments: Vec<(String, f64)>,
}

impl Report<'_> {
    fn ratios(&self) -> Ratios {
        let main = &self.phases[0];
        let observed_cpu = self
            .observed_off
            .as_ref()
            .and_then(|off| Some((main.cpu_ms_per_ok()?, off.cpu_ms_per_ok()?)));
        let service_over_direct = self
            .direct
            .first()
            .map(|d| main.per_second() / d.per_second().max(1e-9));
        let over_direct = self
            .phases
            .iter()
            .filter_map(|phase| {
                let direct = self.direct.iter().find(|d| d.kind() == phase.kind())?;
                Some(OverDirect {
                    kind: phase.kind().to_owned(),
                    throughput: phase.per_second() / direct.per_second().max(1e-9),
                    cpu_ms: phase.cpu_ms_per_ok().zip(direct.cpu_ms_per_ok()),
                })
            })
            .collect();
        let containers_over_one_server = self
            .one_server
            .as_ref()
            .map(|o| main.per_second() / o.per_second().max(1e-9));
        let one_server_over_direct = self
            .one_server
            .as_ref()
            .zip(self.direct.first())
            .map(|(o, d)| o.per_second() / d.per_second().max(1e-9));
        Ratios {
            observed_cpu,
            service_over_direct,
            over_direct,
            containers_over_one_server,
            one_server_over_direct,
            over_payments: self.over_payments(),
        }
    }

    fn over_payments(&self) -> Vec<(String, f64)> {
        match self.phases.iter().find(|p| p.is_payments()) {
            Some(payments) if self.args.scenario == Scenario::HoldCapture => self
                .phases
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
        }
    }

    /// Every phase, in the order they ran.
    fn all_phases(&self) -> impl Iterator<Item = &Phase> {
        self.one_server
            .iter()
            .chain(&self.observed_off)
            .chain(&self.phases)
            .chain(&self.direct)
    }

    /// The run as one JSON object on stdout.
    pub fn print_json(&self) {
        let args = self.args;
        let ratios = self.ratios();
        let all: Vec<_> = self.all_phases().map(Phase::json).collect();
        println!(
            "{}",
            json!({
                "run_id": self.run_id,
                "scenario": args.scenario.to_possible_value().map(|v| v.get_name().to_owned()),
                "transport": args.transport(),
                "endpoint": self.endpoints.first(),
                "endpoints": self.endpoints,
                "containers": args.containers,
                "one_call_at_a_time": args.containers > 1,
                "service_threads": self.service_threads,
                "accounts": args.accounts,
                "customers": args.customers,
                "merchant_shards": args.merchant_shards,
                "callers": args.callers(),
                "payments": args.payments,
                "legs": args.legs,
                "hot_percent": args.hot_percent,
                "hot_accounts": args.hot_accounts,
                "phases": all,
                "service_over_direct": ratios.service_over_direct,
                "one_server_over_direct": ratios.one_server_over_direct,
                "over_direct": ratios.over_direct.iter().map(OverDirect::json).collect::<Vec<_>>(),
                "containers_over_one_server": ratios.containers_over_one_server,
                "service_cpu_ms_per_payment_on_off": ratios.observed_cpu.map(|(on, off)| json!({
                    "observed": args.observed(),
                    "on": on,
                    "off": off,
                    "ratio": on / off.max(1e-9),
                })),
                "spans_exported": self.spans_exported,
                "throughput_over_payments": ratios.over_payments.iter().cloned().collect::<BTreeMap<_, _>>(),
                "service_cpu_measures": self.cpu_measured.then_some(CPU_MEANS),
                "conservation": "ok",
                "audit": self.audit.map(audit_json),
            })
        );
    }

    /// The run as text on stdout: a line per phase, then the ratios, what
    /// the CPU figure means, conservation and the audit.
    pub fn print_text(&self) {
        let ratios = self.ratios();
        for phase in self.all_phases() {
            phase.print();
        }
        if let Some((on, off)) = ratios.observed_cpu {
            println!(
                "service CPU per payment, {} on / off: {on:.3} / {off:.3} ms = {:.3}",
                self.args.observed().unwrap_or("nothing"),
                on / off.max(1e-9)
            );
        }
        if let Some(spans) = self.spans_exported {
            println!(
                "tracing: {spans} spans exported over OTLP/gRPC to the benchmark's receiver on 127.0.0.1 (a span per call and per DynamoDB request)"
            );
        }
        if let Some(ratio) = ratios.containers_over_one_server {
            println!(
                "{} containers / 1 server throughput: {ratio:.2}",
                self.args.containers
            );
        }
        if let Some(ratio) = ratios.one_server_over_direct {
            println!("1 server / direct throughput: {ratio:.2}");
        }
        for (name, ratio) in &ratios.over_payments {
            println!("{name} / payments throughput: {ratio:.2}");
        }
        // The payments' service / direct ratio is the first of these lines.
        for over in &ratios.over_direct {
            over.print(&self.phases[0].shape);
        }
        if self.cpu_measured {
            println!("CPU: {CPU_MEANS}");
        }
        println!(
            "conservation: ok (after every payment phase, its accounts hold exactly their opening balances)"
        );
        if let Some(audit) = self.audit {
            print_audit(audit);
        }
    }
}

fn audit_json(a: &AuditReport) -> serde_json::Value {
    json!({
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
    })
}

fn print_audit(audit: &AuditReport) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(name: &str, ok: u64, ms: u64, cpu_ms: u64, requests: u64) -> Phase {
        Phase {
            name: name.into(),
            shape: "1 server".into(),
            calls: ok + 1,
            ok,
            aborted: 1,
            committed_minor: i128::from(ok) * 10,
            elapsed: Duration::from_millis(ms),
            latencies: vec![Duration::from_millis(ms); ok as usize],
            dynamodb: Some(BTreeMap::from([(ROUND_OPERATION.to_owned(), requests)])),
            cpu: Some(Duration::from_millis(cpu_ms)),
            ..Default::default()
        }
    }

    #[test]
    fn legs_add_up_to_one_phase() {
        let mut total = vec![leg("payments (gRPC, 1 server)", 10, 1000, 20, 12)];
        add_leg_phases(
            &mut total,
            vec![
                leg("payments (gRPC, 1 server)", 30, 1000, 40, 30),
                leg("history pages (gRPC, 1 server)", 2, 100, 3, 2),
            ],
        );
        assert_eq!(total.len(), 2);
        let payments = &total[0];
        assert_eq!((payments.calls, payments.ok, payments.aborted), (42, 40, 2));
        assert_eq!(payments.committed_minor, 400);
        // 40 payments in 2 s, 60 ms of CPU over 40 payments.
        assert!((payments.per_second() - 20.0).abs() < 1e-9);
        assert_eq!(payments.cpu_ms_per_ok(), Some(1.5));
        assert_eq!(payments.rounds_per_ok(), Some(1.05));
        assert_eq!(payments.latencies.len(), 40);
        assert!(payments.latencies.is_sorted());
        assert_eq!(total[1].ok, 2);
    }
}
