//! Holds: authorize one, capture it, void it.

use crate::args::{Cli, RefArgs};
use crate::call::{
    BoxError, Channel, Client, amount_of, fresh_key, money_arg, replay_verb, request,
};
use crate::print::{hold_json, hold_text, transaction_json, transaction_text};
use payment::pb;
use serde_json::json;
use std::time::Duration;

// authorize
#[derive(Debug, clap::Args)]
pub struct AuthorizeArgs {
    /// The account whose money is held.
    #[arg(long)]
    from: String,
    /// The account that may capture it.
    #[arg(long)]
    to: String,
    /// The amount as a decimal, e.g. 12.34.
    #[arg(long)]
    amount: String,
    /// ISO 4217 currency code.
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// How long the hold lasts, 1m to 30d (whole seconds).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    expires_in: Duration,
    /// Free text for both parties.
    #[arg(long, default_value = "")]
    memo: String,
    /// Idempotency key (shared with payments of the sender); generated
    /// (and printed) when omitted. Reuse it to retry safely.
    #[arg(long)]
    key: Option<String>,
}

// capture
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    #[command(flatten)]
    hold: RefArgs,
    /// How much to move, as a decimal in the hold's currency; all of it when omitted.
    #[arg(long)]
    amount: Option<String>,
}

// void
#[derive(Debug, clap::Args)]
pub struct VoidArgs {
    #[command(flatten)]
    hold: RefArgs,
}

pub async fn authorize<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &AuthorizeArgs,
) -> Result<(), BoxError> {
    let amount = money_arg("--amount", &args.amount, &args.currency)?;
    let key = fresh_key(args.key.as_deref(), cli.json);
    let response = client
        .authorize_payment(request(
            pb::AuthorizePaymentRequest {
                idempotency_key: key.clone(),
                sender_id: args.from.clone(),
                recipient_id: args.to.clone(),
                amount,
                currency: args.currency.clone(),
                memo: args.memo.clone(),
                expires_in_seconds: i64::try_from(args.expires_in.as_secs()).unwrap_or(i64::MAX),
            },
            cli,
        )?)
        .await?
        .into_inner();
    print_hold(
        &response.hold.unwrap_or_default(),
        response.replayed,
        "authorized",
        cli,
    );
    Ok(())
}

pub async fn capture<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &CaptureArgs,
) -> Result<(), BoxError> {
    let hold = args.hold.to_pb();
    let amount = amount_of(client, args.amount.as_deref(), &hold, cli).await?;
    let response = client
        .capture_hold(request(pb::CaptureHoldRequest { hold, amount }, cli)?)
        .await?
        .into_inner();
    let held = response.hold.unwrap_or_default();
    let tx = response.transaction.unwrap_or_default();
    if cli.json {
        println!(
            "{}",
            json!({"hold": hold_json(&held), "transaction": transaction_json(&tx), "replayed": response.replayed})
        );
    } else {
        let verb = replay_verb(response.replayed, "captured");
        println!("{}", transaction_text(&verb, &tx));
        println!("{}", hold_text(&held));
    }
    Ok(())
}

pub async fn void<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &VoidArgs,
) -> Result<(), BoxError> {
    let response = client
        .void_hold(request(
            pb::VoidHoldRequest {
                hold: args.hold.to_pb(),
            },
            cli,
        )?)
        .await?
        .into_inner();
    print_hold(
        &response.hold.unwrap_or_default(),
        response.replayed,
        "voided",
        cli,
    );
    Ok(())
}

/// A hold an authorize or a void answered with: its JSON with `replayed`,
/// or "<verb>: <hold>".
fn print_hold(hold: &pb::Hold, replayed: bool, done: &str, cli: &Cli) {
    if cli.json {
        let mut value = hold_json(hold);
        value["replayed"] = json!(replayed);
        println!("{value}");
    } else {
        let verb = replay_verb(replayed, done);
        println!("{verb}: {}", hold_text(hold));
    }
}
