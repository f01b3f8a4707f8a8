//! Reading what happened: a payment, hold or refund looked up (with
//! --finalize, a final answer for a key), and an account's history.

use crate::args::{Cli, RefArgs};
use crate::call::{BoxError, Channel, Client, request};
use crate::print::{
    ErrorReport, hold_json, hold_text, kind_name, print_entry, transaction_json, transaction_text,
};
use payment::domain::format_money;
use payment::pb;
use serde_json::json;

// history
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    account_id: String,
    /// Entries to stream (0 means the server's default of 50; at most 1000).
    #[arg(long, default_value_t = 0)]
    page_size: i32,
    /// Continue after the entry this token came with.
    #[arg(long, default_value = "")]
    page_token: String,
}

// payment
#[derive(Debug, clap::Args)]
pub struct PaymentArgs {
    #[command(flatten)]
    payment: RefArgs,
    /// A final answer (the sender's owner or an admin, by --sender and
    /// --sender-key): when nothing is stored under the key, fence it, so
    /// that the call with it never happens, not even if its write is
    /// still on its way. A fenced key is never usable again.
    #[arg(long, requires = "sender")]
    finalize: bool,
}

/// Streams one page of history, then says where it continues.
pub async fn history<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &HistoryArgs,
) -> Result<(), BoxError> {
    let mut stream = client
        .get_transaction_history(request(
            pb::GetTransactionHistoryRequest {
                account_id: args.account_id.clone(),
                page_size: args.page_size,
                page_token: args.page_token.clone(),
            },
            cli,
        )?)
        .await?
        .into_inner();
    let mut last_token = String::new();
    let mut count = 0u32;
    while let Some(entry) = stream.message().await? {
        count += 1;
        last_token.clone_from(&entry.next_page_token);
        print_entry(&entry, cli.json);
    }
    if !cli.json {
        if last_token.is_empty() {
            println!("{count} entries; this is the whole history");
        } else {
            println!("{count} entries; more with --page-token {last_token}");
        }
    }
    Ok(())
}

pub async fn payment<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &PaymentArgs,
) -> Result<(), BoxError> {
    let answer = client
        .get_payment(request(
            pb::GetPaymentRequest {
                payment: args.payment.to_pb(),
                finalize: args.finalize,
            },
            cli,
        )?)
        .await;
    match answer {
        Ok(response) => print_found(&response.into_inner(), args.finalize, cli),
        // The final answer "never": not an error of the lookup.
        Err(status) if args.finalize && is_fenced(&status) => print_fenced(&args.payment, cli),
        Err(status) => return Err(status.into()),
    }
    Ok(())
}

/// Whether a GetPayment answer says the key is fenced: NOT_FOUND, reason
/// KEY_FENCED.
fn is_fenced(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound
        && ErrorReport::of(status).reason.as_deref() == Some("KEY_FENCED")
}

fn print_fenced(payment: &RefArgs, cli: &Cli) {
    let (sender, key) = (
        payment.sender.as_deref().unwrap_or_default(),
        payment.sender_key.as_deref().unwrap_or_default(),
    );
    if cli.json {
        println!(
            "{}",
            json!({"final": "fenced", "sender_id": sender, "idempotency_key": key})
        );
    } else {
        println!(
            "final: the call with idempotency key {key} of {sender} did not happen and never will (the key is fenced); decide afresh, with a new key"
        );
    }
}

fn print_found(response: &pb::GetPaymentResponse, finalize: bool, cli: &Cli) {
    if cli.json {
        let mut value = json!({
            "transaction": response.transaction.as_ref().map(transaction_json),
            "hold": response.hold.as_ref().map(hold_json),
            "idempotency_key": response.idempotency_key,
            "refunded_total": response.refunded_total,
        });
        if finalize {
            value["final"] = json!("committed");
        }
        println!("{value}");
        return;
    }
    if finalize {
        println!("final: committed; this is what the call with the key did");
    }
    if let Some(hold) = &response.hold {
        println!("{}", hold_text(hold));
    }
    if let Some(tx) = &response.transaction {
        println!(
            "{}",
            transaction_text(&kind_name(tx.kind).to_lowercase(), tx)
        );
        if response.refunded_total > 0 {
            println!(
                "refunded: {}",
                format_money(response.refunded_total, &tx.currency)
            );
        }
    }
    if !response.idempotency_key.is_empty() {
        println!("idempotency key: {}", response.idempotency_key);
    }
}
