//! Watching an account: its new history entries as they commit, call after
//! call, each call resuming where the last one ended.

use crate::args::Cli;
use crate::call::{BoxError, Channel, Client, request};
use crate::print::print_entry;
use payment::pb;
use serde_json::json;
use std::time::Duration;

/// Most calls one `watch --calls` makes.
const CALLS_MAX: u32 = 10_000;

// watch
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    account_id: String,
    /// Continue right after the entry (or the call) this token came with;
    /// without it, watch from now.
    #[arg(long, default_value = "")]
    resume_token: String,
    /// How long each call lasts, in seconds: 0 for the service's bound (300
    /// on payment-server; behind API Gateway each call is a long poll of at
    /// most 15 that ends with the first entries).
    #[arg(long, default_value_t = 0)]
    max_seconds: i32,
    /// Calls to make, each resuming from the last one's token (1 to 10000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(CALLS_MAX)))]
    calls: u32,
}

/// Watches, printing each entry as it arrives, then the token to resume
/// from.
pub async fn watch<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &WatchArgs,
) -> Result<(), BoxError> {
    let mut resume_token = args.resume_token.clone();
    // Each call may last its bound; --timeout is the slack on top of it.
    let bound = match u64::try_from(args.max_seconds) {
        Ok(seconds) if seconds > 0 => seconds,
        _ => u64::from(payment::domain::WATCH_SECONDS_MAX),
    };
    let mut call_cli_timeout = cli.timeout + Duration::from_secs(bound);
    call_cli_timeout = call_cli_timeout.min(Duration::from_secs(3600));
    for _ in 0..args.calls {
        let mut call = request(
            pb::WatchAccountRequest {
                account_id: args.account_id.clone(),
                resume_token: resume_token.clone(),
                max_seconds: args.max_seconds,
            },
            cli,
        )?;
        call.set_timeout(call_cli_timeout);
        let mut stream = client.watch_account(call).await?.into_inner();
        while let Some(message) = stream.message().await? {
            resume_token.clone_from(&message.resume_token);
            if message.transaction.is_some() {
                print_watched(message, cli.json);
            }
        }
    }
    if cli.json {
        println!("{}", json!({ "resume_token": resume_token }));
    } else {
        println!("watch ended; resume with --resume-token {resume_token}");
    }
    Ok(())
}

fn print_watched(message: pb::WatchAccountResponse, as_json: bool) {
    let entry = pb::GetTransactionHistoryResponse {
        transaction: message.transaction,
        direction: message.direction,
        balance_after: message.balance_after,
        next_page_token: String::new(),
        sequence: message.sequence,
        shard: message.shard,
    };
    if !as_json {
        print_entry(&entry, false);
        return;
    }
    let mut value = crate::print::entry_json(&entry);
    value["resume_token"] = json!(message.resume_token);
    println!("{value}");
}
