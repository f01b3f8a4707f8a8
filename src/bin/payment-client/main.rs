//! payment-client: a command-line client for the payment service.
//!
//! This file parses the command line and dispatches; each command group
//! lives in a file of its own: `accounts`, `payments`, `holds`, `lookups`
//! (payments looked up, history), `watch` (new entries as they commit) and
//! `admin` (tokens, audit, tables, shards), over what they share in `call`
//! and `print`.

mod accounts;
mod admin;
mod args;
mod call;
mod holds;
mod lookups;
mod payments;
mod print;
mod watch;

use args::{Cli, Command};
use call::{BoxError, Channel, Client};
use clap::Parser;
use payment::client::{connect_grpc, connect_grpc_web};
use print::ErrorReport;
use serde_json::json;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // These three do not call the service.
    match &cli.command {
        Command::Token(args) => return admin::token(args),
        Command::Audit(args) => return admin::audit(args, cli.json).await,
        Command::CreateTables => return admin::create_tables().await,
        _ => {}
    }
    let result = if cli.grpc_web {
        match connect_grpc_web(&cli.endpoint) {
            Ok(client) => run(client, &cli).await,
            Err(err) => Err(err),
        }
    } else {
        match connect_grpc(&cli.endpoint).await {
            Ok(client) => run(client, &cli).await,
            Err(err) => Err(format!("cannot connect to {}: {err}", cli.endpoint).into()),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err, cli.json);
            ExitCode::FAILURE
        }
    }
}

/// Runs a command that calls the service.
async fn run<T: Channel>(mut client: Client<T>, cli: &Cli) -> Result<(), BoxError> {
    let client = &mut client;
    match &cli.command {
        // Handled in main, without connecting to the service.
        Command::Token(_) | Command::Audit(_) | Command::CreateTables => Ok(()),
        Command::AddAccount(args) => accounts::add_account(client, cli, args).await,
        Command::Balance { account_id } => accounts::balance(client, cli, account_id).await,
        Command::Accounts(args) => accounts::accounts(client, cli, args).await,
        Command::Pay(args) => payments::pay(client, cli, args).await,
        Command::Refund(args) => payments::refund(client, cli, args).await,
        Command::Authorize(args) => holds::authorize(client, cli, args).await,
        Command::Capture(args) => holds::capture(client, cli, args).await,
        Command::Void(args) => holds::void(client, cli, args).await,
        Command::Payment(args) => lookups::payment(client, cli, args).await,
        Command::History(args) => lookups::history(client, cli, args).await,
        Command::SetShards(args) => admin::set_shards(client, cli, args).await,
        Command::Watch(args) => watch::watch(client, cli, args).await,
    }
}

/// A failed command on standard error (and with --json, as JSON on
/// standard output): a gRPC status with its reason and details, or the
/// error's message.
fn report(err: &BoxError, as_json: bool) {
    match err.downcast_ref::<tonic::Status>() {
        Some(status) => {
            let report = ErrorReport::of(status);
            if as_json {
                println!("{}", report.json());
            }
            eprintln!("{}", report.text());
        }
        None => {
            if as_json {
                println!("{}", json!({"error": {"message": err.to_string()}}));
            }
            eprintln!("error: {err}");
        }
    }
}
