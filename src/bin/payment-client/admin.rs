//! What operators do: mint a development token, audit the ledger and
//! create its tables (these three without calling the service), and raise
//! an account's balance shards.

use crate::args::Cli;
use crate::call::{BoxError, Channel, Client, request};
use crate::print::{account_json, print_account};
use payment::auth::{DevToken, mint_dev_token};
use payment::ledger::AuditReport;
use payment::pb;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;

// audit
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Parallel Scan segments per table (1-64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    segments: u32,
}

// token
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The caller's identity (the JWT sub claim).
    #[arg(long)]
    sub: String,
    /// Add the payments/admin scope (may set opening balances, read every account).
    #[arg(long)]
    admin: bool,
    /// Lifetime of the token, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// The shared dev secret the server was started with.
    #[arg(long, env = "PAYMENT_DEV_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// iss claim, if the server checks one (PAYMENT_JWT_ISSUER).
    #[arg(long, env = "PAYMENT_JWT_ISSUER")]
    issuer: Option<String>,
    /// aud claim, if the server checks one (PAYMENT_JWT_AUDIENCE; of a
    /// comma-separated list, the first).
    #[arg(long, env = "PAYMENT_JWT_AUDIENCE")]
    audience: Option<String>,
}

// set-shards
#[derive(Debug, clap::Args)]
pub struct SetShardsArgs {
    account_id: String,
    /// The count of balance shards it should have (1-64, at least what it has).
    count: i32,
}

/// Prints a development token, without calling the service.
pub fn token(args: &TokenArgs) -> ExitCode {
    let options = DevToken {
        sub: &args.sub,
        admin: args.admin,
        ttl: args.ttl,
        issuer: args.issuer.as_deref(),
        audience: args
            .audience
            .as_deref()
            .and_then(|list| list.split(',').map(str::trim).find(|a| !a.is_empty())),
    };
    match mint_dev_token(args.secret.as_bytes(), &options) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The ledger in DynamoDB, configured as the server's (its tables and the
/// AWS variables), for the commands that do not call the service.
async fn direct_ledger() -> Result<payment::ledger::Ledger, ExitCode> {
    match payment::settings::Settings::from_env() {
        Ok(settings) => Ok(payment::ledger::Ledger::from_settings(
            payment::config::dynamodb_client().await,
            &settings.ledger,
        )),
        Err(err) => {
            eprintln!("error: {err}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Creates the ledger's tables with their indexes where they are missing
/// (`Ledger::create_tables`, as `payment-server --create-tables` does).
pub async fn create_tables() -> ExitCode {
    let ledger = match direct_ledger().await {
        Ok(ledger) => ledger,
        Err(code) => return code,
    };
    match ledger.create_tables().await {
        Ok(()) => {
            let tables = ledger.tables();
            println!("tables {} and {} exist", tables.accounts, tables.ledger);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot create the tables: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Audits the ledger in DynamoDB; fails unless it is clean.
pub async fn audit(args: &AuditArgs, as_json: bool) -> ExitCode {
    let ledger = match direct_ledger().await {
        Ok(ledger) => ledger,
        Err(code) => return code,
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = |what: &str, n: u64| bar.set_message(format!("scanning: {n} {what}"));
    let result = ledger.audit(args.segments, &progress).await;
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: audit failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    if as_json {
        println!("{}", audit_json(&report));
    } else {
        print_audit(&report);
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn audit_json(report: &AuditReport) -> serde_json::Value {
    json!({
        "clean": report.is_clean(),
        "accounts": report.accounts,
        "entries": report.entries,
        "payments": report.payments,
        "total_balance_minor": report.total_balance_minor.to_string(),
        "total_opening_minor": report.total_opening_minor.to_string(),
        "currencies": report.currencies.iter().map(|(currency, t)| (currency.clone(), json!({
            "accounts": t.accounts,
            "balance_minor": t.balance_minor.to_string(),
            "opening_minor": t.opening_minor.to_string(),
            "held_minor": t.held_minor.to_string(),
        }))).collect::<serde_json::Map<_, _>>(),
        "discrepancies_total": report.discrepancies_total,
        "discrepancies": report.discrepancies,
    })
}

fn print_audit(report: &AuditReport) {
    println!(
        "audited {} accounts, {} history entries, {} payments, {} holds ({} open), {} refunds",
        report.accounts,
        report.entries,
        report.payments,
        report.holds,
        report.holds_open,
        report.refunds
    );
    for (currency, totals) in &report.currencies {
        println!(
            "{currency}: {} accounts; balances sum to {} minor units, opening balances to {}; {} held",
            totals.accounts, totals.balance_minor, totals.opening_minor, totals.held_minor
        );
    }
    for line in &report.discrepancies {
        println!("DISCREPANCY: {line}");
    }
    if report.is_clean() {
        println!(
            "clean: every balance equals its history and, in every currency, no money was created or lost"
        );
    } else {
        println!("{} discrepancies", report.discrepancies_total);
    }
}

pub async fn set_shards<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &SetShardsArgs,
) -> Result<(), BoxError> {
    let response = client
        .set_balance_shards(request(
            pb::SetBalanceShardsRequest {
                account_id: args.account_id.clone(),
                balance_shards: args.count,
            },
            cli,
        )?)
        .await?
        .into_inner();
    let account = response.account.unwrap_or_default();
    if cli.json {
        let mut value = account_json(&account);
        value["raised"] = json!(response.raised);
        println!("{value}");
        return Ok(());
    }
    let shards = account.balance_shards;
    if response.raised {
        println!(
            "raised: {} now has {shards} balance shards",
            account.account_id
        );
    } else {
        println!(
            "unchanged: {} has {shards} balance shards already",
            account.account_id
        );
    }
    print_account("account", &account, false);
    Ok(())
}
