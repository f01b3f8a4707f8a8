//! The flags (clap), what they default to and which combinations the
//! benchmark refuses.

use crate::BoxError;
use clap::{Parser, ValueEnum};
use payment::domain::HOLDS_OPEN_MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
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
#[derive(Debug, Clone, Parser)]
#[command(version)]
pub struct Args {
    /// A running service; omitted: the benchmark starts one on 127.0.0.1.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Speak gRPC-Web over HTTP/1.1 instead of native gRPC.
    #[arg(long)]
    pub grpc_web: bool,
    /// Bearer token for --endpoint (an admin token: the benchmark opens
    /// accounts with opening balances); default: minted from PAYMENT_DEV_JWT_SECRET.
    #[arg(long, env = "PAYMENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// What the payments look like.
    #[arg(long, value_enum, default_value_t = Scenario::Accounts)]
    pub scenario: Scenario,
    /// Accounts to pay between, in the accounts scenario (2-10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub accounts: u32,
    /// Customers paying the merchant, in the merchant scenario (1-10000);
    /// each caller pays from its own share of them, so needs at least as
    /// many customers as callers.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub customers: u32,
    /// The merchant account's balance_shards (AddAccountRequest), 0-64.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub merchant_shards: u32,
    /// Run the service as K independent containers (1-64): K instances with
    /// their own DynamoDB client, ledger and service, each on its own port
    /// and answering one call at a time, the callers spread over them.
    /// 1: one server answering every caller at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub containers: u32,
    /// With --containers K > 1: first run the same payments through one
    /// server (on fresh accounts), and report K containers / one server.
    #[arg(long)]
    pub compare_one_server: bool,
    /// First run the same payments (on fresh accounts) through a service
    /// without metrics, then the measured phases with payment-server's
    /// Prometheus metrics on, and report the service's CPU per payment of
    /// both and their ratio (the cost of the per-call record).
    #[arg(long)]
    pub compare_metrics: bool,
    /// First run the same payments (on fresh accounts) through a service
    /// without tracing (and without metrics, with --compare-metrics), then
    /// the measured phases with tracing on: a span per call and per
    /// DynamoDB request, exported over OTLP/gRPC to a receiver the
    /// benchmark runs on loopback; report the service's CPU per payment of
    /// both and their ratio (the cost of the traces).
    #[arg(long)]
    pub compare_tracing: bool,
    /// Worker threads of the service runtime (default: the number of CPUs).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub service_threads: Option<u32>,
    /// Concurrent callers, 1-1024 (default: 32, or K with --containers K > 1,
    /// one caller per container).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub callers: Option<u32>,
    /// Payments per phase (1-1000000).
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub payments: u32,
    /// Percent of payments whose sender and recipient are hot accounts (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub hot_percent: u32,
    /// How many of the accounts are hot.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub hot_accounts: u32,
    /// Balance reads to time after the payments (0 to skip).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub reads: u32,
    /// History pages (50 entries each) to time (0 to skip).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub history_pages: u32,
    /// Health checks (grpc.health.v1.Health/Check, with the same callers
    /// and bearer token) to time after the reads, 0 to skip: what a call
    /// costs the service's HTTP/2 (or HTTP/1.1) stack, tonic and the guard
    /// with no ledger behind it. No direct phase compares with them.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub health_checks: u32,
    /// Payments made directly before measuring, untimed, to warm up
    /// DynamoDB Local's JVM (0 to skip).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub warmup: u32,
    /// Skip the direct (no service) phase.
    #[arg(long)]
    pub no_direct: bool,
    /// Split the measured service phases and the direct phases into legs
    /// (1-16), run alternately (service, direct, direct, service, service,
    /// ...), each leg on fresh accounts with its share of --payments,
    /// --reads, --history-pages and --health-checks; each kind of call is
    /// reported summed over its legs. The machine's drift during a run
    /// (DynamoDB Local's JIT, other tenants) then falls on the service and
    /// the direct calls alike instead of on whichever runs first. 1: the
    /// service phases, then the direct ones.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub legs: u32,
    /// At the end, audit the whole ledger (the tables of
    /// PAYMENT_ACCOUNTS_TABLE / PAYMENT_LEDGER_TABLE) and fail unless clean.
    #[arg(long)]
    pub audit: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    pub fn callers(&self) -> u32 {
        self.callers.unwrap_or(if self.containers > 1 {
            self.containers
        } else {
            32
        })
    }

    /// What --compare-metrics and --compare-tracing turn on in the
    /// measured phases (None: neither).
    pub fn observed(&self) -> Option<&'static str> {
        match (self.compare_metrics, self.compare_tracing) {
            (false, false) => None,
            (true, false) => Some("metrics"),
            (false, true) => Some("tracing"),
            (true, true) => Some("metrics and tracing"),
        }
    }

    pub fn transport(&self) -> &'static str {
        if self.grpc_web { "gRPC-Web" } else { "gRPC" }
    }

    /// Refuses the combinations the benchmark cannot run, before anything
    /// starts.
    pub fn check(&self) -> Result<(), BoxError> {
        if let Some(endpoint) = &self.endpoint
            && self.containers > 1
        {
            return Err(format!(
                "--containers starts the service itself: it does not go with --endpoint {endpoint}"
            )
            .into());
        }
        if let Some(endpoint) = &self.endpoint
            && (self.compare_metrics || self.compare_tracing)
        {
            return Err(format!(
                "--compare-metrics and --compare-tracing start the service themselves: they do not go with --endpoint {endpoint}"
            )
            .into());
        }
        if self.scenario == Scenario::Merchant && self.customers < self.callers() {
            return Err(format!(
                "the merchant scenario gives each caller customers of its own: --customers {} is fewer than the {} callers",
                self.customers,
                self.callers()
            )
            .into());
        }
        if self.legs > 1 && self.legs > self.payments {
            return Err(format!(
                "--legs {} splits --payments {} into legs of at least one payment each: give fewer legs or more payments",
                self.legs, self.payments
            )
            .into());
        }
        if self.legs > 1 && self.scenario == Scenario::HoldCapture {
            return Err(
                "--legs alternates the service phases with direct ones, which the hold-capture scenario has none of: leave --legs at 1".into(),
            );
        }
        if self.legs > 1 && self.scenario == Scenario::Merchant && self.merchant_shards <= 1 {
            return Err(format!(
                "--legs opens a fresh merchant in each leg, and a merchant opened ordinary (--merchant-shards {}) is promoted once: each leg would measure its own promotion; leave --legs at 1",
                self.merchant_shards
            )
            .into());
        }
        if self.scenario == Scenario::HoldCapture
            && u64::from(self.payments) > u64::from(self.accounts) * HOLDS_OPEN_MAX as u64
        {
            return Err(format!(
                "the hold-capture scenario keeps every hold open until the capture phase, and an account holds at most {HOLDS_OPEN_MAX} open holds: --payments {} needs --accounts {} or more",
                self.payments,
                u64::from(self.payments).div_ceil(HOLDS_OPEN_MAX as u64)
            )
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Result<(), String> {
        let args =
            Args::try_parse_from(std::iter::once("payment-bench").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        args.check().map_err(|e| e.to_string())
    }

    #[test]
    fn legs_are_refused_where_they_cannot_alternate() {
        assert!(check(&["--legs", "4"]).is_ok());
        assert!(check(&["--legs", "17"]).unwrap_err().contains("--legs"));
        let few = check(&["--legs", "4", "--payments", "3"]).unwrap_err();
        assert!(
            few.contains("--legs 4") && few.contains("--payments 3"),
            "{few}"
        );
        let holds = check(&["--legs", "2", "--scenario", "hold-capture"]).unwrap_err();
        assert!(holds.contains("hold-capture"), "{holds}");
        let promoted = [
            "--legs",
            "2",
            "--scenario",
            "merchant",
            "--merchant-shards",
            "1",
        ];
        assert!(check(&promoted).unwrap_err().contains("promoted"));
        assert!(check(&["--scenario", "merchant", "--merchant-shards", "1"]).is_ok());
    }
}
