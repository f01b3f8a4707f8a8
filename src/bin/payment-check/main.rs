//! payment-check: the history checker (see check/ and docs/operating.md,
//! "History checker"). Runs the service in the Lambda shape under faults, records
//! what every client was told, checks it against the ledger and a model,
//! and exits non-zero on any anomaly.

mod check;
mod local_dynamodb;

use check::{Config, Faults};
use clap::Parser;
use std::path::PathBuf;

/// Runs K one-call-at-a-time payment-server processes against DynamoDB
/// Local through fault proxies, drives N clients with a seeded random mix
/// of every operation, and checks every answer.
#[derive(Debug, Parser)]
// A later flag overrides an earlier one: `make check CHECK_ARGS="--seed N"`
// follows the Makefile's own --seed.
#[command(version, args_override_self = true)]
struct Args {
    /// Seed of every random choice (workload, faults, skews); default: new.
    #[arg(long)]
    seed: Option<u64>,
    /// Service instances, each a payment-server process answering one call
    /// at a time (1-64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    instances: u32,
    /// Concurrent clients (1-256).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    clients: u32,
    /// Operations in all (1-1000000); a keyed one may take several calls.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    operations: u32,
    /// Shortest call deadline, ms (50-60000).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    deadline_min_ms: u64,
    /// Longest call deadline, ms (50-60000).
    #[arg(long, default_value_t = 1_500, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    deadline_max_ms: u64,
    /// Faults to inject: some of delay, drop-reply, late-write, reset,
    /// kill, skew (comma-separated), all or none.
    #[arg(long, default_value = "all")]
    faults: String,
    /// Times DynamoDB Local is killed and restarted, with the kill fault (0-100).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=100))]
    kills: u32,
    /// Largest clock skew of an instance, ms, with the skew fault (0-60000;
    /// the design assumes well under a second).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i64).range(0..=60_000))]
    skew_max_ms: i64,
    /// Ordinary accounts per currency (2-1000); each currency also has one
    /// account with 4 balance shards. During the run an admin raises some
    /// of them (SetBalanceShards), and the instances may promote hot ones.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=1000))]
    accounts: u32,
    /// The shard count the instances promote a hot ordinary account to
    /// (their PAYMENT_PROMOTE_SHARDS: 2-64), or off.
    #[arg(long, default_value = "64", value_parser = parse_promote_shards)]
    promote_shards: PromoteShards,
    /// The payment-server binary; default: the one beside this binary.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Where the run's folder (logs, DynamoDB data) goes; default: the
    /// system's temp folder. It is removed after a run that passed.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

/// `--promote-shards`: a count, or off (None).
#[derive(Debug, Clone, Copy)]
struct PromoteShards(Option<u32>);

impl std::fmt::Display for PromoteShards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("off"),
        }
    }
}

fn parse_promote_shards(text: &str) -> Result<PromoteShards, String> {
    let max = payment::domain::BALANCE_SHARDS_MAX;
    match text.trim() {
        "off" => Ok(PromoteShards(None)),
        n => match n.parse::<u32>() {
            Ok(n) if (2..=max).contains(&n) => Ok(PromoteShards(Some(n))),
            _ => Err(format!(
                "{n:?} is not a shard count: give 2 to {max}, or off"
            )),
        },
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(err) => {
            eprintln!("payment-check: {err}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
    if args.deadline_min_ms > args.deadline_max_ms {
        return Err(format!(
            "--deadline-min-ms {} is above --deadline-max-ms {}",
            args.deadline_min_ms, args.deadline_max_ms
        )
        .into());
    }
    let faults = Faults::parse(&args.faults)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let server_bin = match &args.server_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("cannot tell where payment-check is")?
            .join("payment-server"),
    };
    if !server_bin.exists() {
        return Err(format!(
            "{} does not exist: build it (cargo build --bin payment-server) or give --server-bin",
            server_bin.display()
        )
        .into());
    }
    let reproduce = format!(
        "payment-check --seed {seed} --instances {} --clients {} --operations {} --deadline-min-ms {} --deadline-max-ms {} --faults {} --kills {} --skew-max-ms {} --accounts {} --promote-shards {}",
        args.instances,
        args.clients,
        args.operations,
        args.deadline_min_ms,
        args.deadline_max_ms,
        if faults.names().is_empty() {
            "none".to_owned()
        } else {
            faults.names().join(",")
        },
        args.kills,
        args.skew_max_ms,
        args.accounts,
        args.promote_shards
    );
    let config = Config {
        seed,
        instances: args.instances as usize,
        clients: args.clients as usize,
        operations: args.operations as usize,
        deadline_ms: (args.deadline_min_ms, args.deadline_max_ms),
        faults,
        kills: args.kills,
        skew_max_ms: args.skew_max_ms,
        accounts_per_currency: args.accounts as usize,
        promote_shards: args.promote_shards.0,
        server_bin,
        dynamodb_script: PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("scripts/dynamodb-local.sh"),
        workdir: args.workdir.clone().unwrap_or_else(std::env::temp_dir),
        progress: !args.quiet,
        reproduce,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(check::run(config))?;
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    if !report.passed() {
        eprintln!(
            "payment-check: FAILED with seed {seed}: {}",
            report.reproduce
        );
    }
    Ok(report.passed())
}
