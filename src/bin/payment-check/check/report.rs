//! The report of a run: operations by kind and outcome, faults injected by
//! kind, what each check covered, and the anomalies with their calls; as
//! text or as one JSON object.

use super::clients::Call;
use super::model::{Anomaly, CHECKS, Coverage};
use super::proxy::FaultCounts;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;

/// Most anomalies the text report prints in full (the JSON has them all).
const ANOMALIES_PRINTED_MAX: usize = 30;

/// The audit's summary.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    pub clean: bool,
    pub accounts: u64,
    pub entries: u64,
    pub payments: u64,
    pub discrepancies: Vec<String>,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    /// The command line that repeats the run's choices.
    pub reproduce: String,
    pub instances: usize,
    pub clients: usize,
    pub operations: usize,
    pub calls: usize,
    pub elapsed_s: u64,
    /// Each instance's clock skew, ms.
    pub skews_ms: Vec<i64>,
    pub dynamodb_restarts: u32,
    pub faults: FaultCounts,
    /// Faults the run was asked to inject.
    pub faults_enabled: Vec<String>,
    /// Call kind -> outcome ("OK", or code/reason) -> count.
    pub outcomes: BTreeMap<String, BTreeMap<String, u64>>,
    pub coverage: Coverage,
    pub audit: Option<AuditSummary>,
    /// Whether a final lookup ever answered KEY_FENCED (the fence is in
    /// force on the servers of this run).
    pub fence_seen: bool,
    pub anomalies: Vec<Anomaly>,
    /// The calls the anomalies name.
    pub anomaly_calls: Vec<Call>,
    /// Where the run's logs and DynamoDB data are (kept when it failed).
    pub workdir: String,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// Call kind -> outcome -> count.
    pub fn outcomes_of(calls: &[Call]) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut outcomes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for call in calls {
            let outcome = if call.answer.reason.is_empty() {
                call.answer.code.clone()
            } else {
                format!("{} {}", call.answer.code, call.answer.reason)
            };
            *outcomes
                .entry(call.request.kind().to_owned())
                .or_default()
                .entry(outcome)
                .or_default() += 1;
        }
        outcomes
    }

    pub fn json(&self) -> serde_json::Value {
        let mut value =
            serde_json::to_value(self).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        if let Some(object) = value.as_object_mut() {
            object.insert("passed".into(), json!(self.passed()));
            object.insert(
                "checks".into(),
                json!(
                    CHECKS
                        .iter()
                        .map(|(name, what)| json!({
                            "check": name,
                            "what": what,
                            "anomalies": self.anomalies.iter().filter(|a| a.check == *name).count(),
                        }))
                        .collect::<Vec<_>>()
                ),
            );
        }
        value
    }

    /// The text report, section by section.
    pub fn print(&self) {
        self.print_run();
        self.print_outcomes();
        self.print_coverage();
        self.print_notes();
        self.print_checks();
        self.print_anomalies();
        self.print_verdict();
    }

    /// The run's shape, and the faults asked for and injected.
    fn print_run(&self) {
        println!(
            "payment-check: seed {}, {} instances (one call at a time each), {} clients, {} operations, {} calls, {} s",
            self.seed, self.instances, self.clients, self.operations, self.calls, self.elapsed_s
        );
        println!("clock skews (ms): {:?}", self.skews_ms);
        println!(
            "faults enabled: {}",
            if self.faults_enabled.is_empty() {
                "none".into()
            } else {
                self.faults_enabled.join(", ")
            }
        );
        let f = &self.faults;
        println!(
            "faults injected: delay {}, drop-reply {}, late-write {} (accepted by DynamoDB after the caller gave up: {}), reset {}, DynamoDB Local killed and restarted {} times (requests broken meanwhile: {}); {} requests reached DynamoDB",
            f.delay,
            f.drop_reply,
            f.late_write,
            f.late_write_accepted,
            f.reset,
            self.dynamodb_restarts,
            f.blackout,
            f.forwarded
        );
    }

    /// Operations by kind and outcome.
    fn print_outcomes(&self) {
        println!("operations by kind and outcome:");
        for (kind, outcomes) in &self.outcomes {
            let list: Vec<String> = outcomes.iter().map(|(o, n)| format!("{o} {n}")).collect();
            println!("  {kind:<9} {}", list.join(", "));
        }
    }

    /// What the checks covered, reshards included.
    fn print_coverage(&self) {
        let c = &self.coverage;
        println!(
            "covered: {} balance reads checked ({} with too many cuts to check), {} history pages, keys: {} committed, {} fenced, {} NOT_FOUND unfenced, {} hold keys reused for another call; holds: {} captured, {} voided, {} expired, {} open; {} refunds",
            c.balance_reads_checked,
            c.balance_reads_unchecked,
            c.pages_checked,
            c.keys_committed,
            c.keys_fenced,
            c.keys_not_found_unfenced,
            c.keys_reused,
            c.holds_captured,
            c.holds_voided,
            c.holds_expired,
            c.holds_open,
            c.refunds
        );
        let resharded: Vec<String> = c
            .accounts_resharded
            .iter()
            .map(|a| {
                format!(
                    "{} {} -> {} ({})",
                    a.account, a.opening_shards, a.final_shards, a.by
                )
            })
            .collect();
        println!(
            "reshards: {} SetBalanceShards operations (calls answered: {} raised, {} unchanged, {} refused); accounts resharded during the run: {}; {} balance reads and history pages of them checked",
            c.reshard_ops,
            c.reshards_raised,
            c.reshards_unchanged,
            c.reshards_refused,
            if resharded.is_empty() {
                "none".to_owned()
            } else {
                resharded.join(", ")
            },
            c.resharded_account_reads
        );
    }

    /// Whether the fence was seen, money per currency, and the audit.
    fn print_notes(&self) {
        let c = &self.coverage;
        if !self.fence_seen {
            println!(
                "note: no final lookup answered KEY_FENCED: the servers do not fence (GetPayment finalize), so a key whose final answer was NOT_FOUND may still commit"
            );
        }
        for (currency, (start, end)) in &c.money {
            println!("conservation {currency}: {start} at the start, {end} at the end");
        }
        if let Some(audit) = &self.audit {
            println!(
                "audit: {} ({} accounts, {} entries, {} payments, {} discrepancies)",
                if audit.clean { "clean" } else { "NOT CLEAN" },
                audit.accounts,
                audit.entries,
                audit.payments,
                audit.discrepancies.len()
            );
        }
    }

    /// Each check, ok or FAIL.
    fn print_checks(&self) {
        for (name, what) in CHECKS {
            let n = self.anomalies.iter().filter(|a| a.check == name).count();
            println!(
                "  [{}] {name}: {what}{}",
                if n == 0 { "ok" } else { "FAIL" },
                if n == 0 {
                    String::new()
                } else {
                    format!(" ({n} anomalies)")
                }
            );
        }
    }

    /// The anomalies (the first [`ANOMALIES_PRINTED_MAX`]), each with its
    /// calls.
    fn print_anomalies(&self) {
        for anomaly in self.anomalies.iter().take(ANOMALIES_PRINTED_MAX) {
            println!("ANOMALY {}: {}", anomaly.check, anomaly.what);
            for id in &anomaly.calls {
                if let Some(call) = self.anomaly_calls.iter().find(|c| c.id == *id) {
                    println!(
                        "    call {} op {} client {} instance {} [{} .. {} µs, deadline {} ms] {} -> {}",
                        call.id,
                        call.op,
                        call.client,
                        call.instance,
                        call.invoked_us,
                        call.completed_us,
                        call.deadline_ms,
                        serde_json::to_string(&call.request).unwrap_or_default(),
                        serde_json::to_string(&call.answer).unwrap_or_default()
                    );
                }
            }
        }
        if self.anomalies.len() > ANOMALIES_PRINTED_MAX {
            println!(
                "... and {} more anomalies (--json lists them all)",
                self.anomalies.len() - ANOMALIES_PRINTED_MAX
            );
        }
    }

    /// PASSED, or FAILED and how to repeat it.
    fn print_verdict(&self) {
        if self.passed() {
            println!("PASSED: 0 anomalies");
        } else {
            println!(
                "FAILED: {} anomalies with seed {}; reproduce the choices with: {}",
                self.anomalies.len(),
                self.seed,
                self.reproduce
            );
            println!("logs and DynamoDB data kept in {}", self.workdir);
        }
    }
}
