//! Payments: pay, and refund a payment or capture.

use crate::args::{Cli, RefArgs};
use crate::call::{
    BoxError, Channel, Client, amount_of, fresh_key, money_arg, replay_verb, request,
};
use crate::print::{transaction_json, transaction_text};
use payment::domain::format_money;
use payment::pb;
use serde_json::json;

// pay
#[derive(Debug, clap::Args)]
pub struct PayArgs {
    /// The account to debit.
    #[arg(long)]
    from: String,
    /// The account to credit.
    #[arg(long)]
    to: String,
    /// The amount as a decimal, e.g. 12.34.
    #[arg(long)]
    amount: String,
    /// ISO 4217 currency code.
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Free text for both parties.
    #[arg(long, default_value = "")]
    memo: String,
    /// Idempotency key; generated (and printed) when omitted. Reuse it to retry safely.
    #[arg(long)]
    key: Option<String>,
}

// refund
#[derive(Debug, clap::Args)]
pub struct RefundArgs {
    #[command(flatten)]
    payment: RefArgs,
    /// How much to return, as a decimal in the payment's currency; all that is left when omitted.
    #[arg(long)]
    amount: Option<String>,
    /// Free text for both parties.
    #[arg(long, default_value = "")]
    memo: String,
    /// The refund's own idempotency key (in the refunding account's key
    /// space); generated (and printed) when omitted. Reuse it to retry safely.
    #[arg(long)]
    key: Option<String>,
}

pub async fn pay<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &PayArgs,
) -> Result<(), BoxError> {
    let amount = money_arg("--amount", &args.amount, &args.currency)?;
    let key = fresh_key(args.key.as_deref(), cli.json);
    let response = client
        .make_payment(request(
            pb::MakePaymentRequest {
                idempotency_key: key.clone(),
                sender_id: args.from.clone(),
                recipient_id: args.to.clone(),
                amount,
                currency: args.currency.clone(),
                memo: args.memo.clone(),
            },
            cli,
        )?)
        .await?
        .into_inner();
    let tx = response.transaction.unwrap_or_default();
    if cli.json {
        let mut value = transaction_json(&tx);
        value["replayed"] = json!(response.replayed);
        value["idempotency_key"] = json!(key);
        println!("{value}");
    } else {
        let verb = replay_verb(response.replayed, "paid");
        println!("{}", transaction_text(&verb, &tx));
    }
    Ok(())
}

pub async fn refund<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &RefundArgs,
) -> Result<(), BoxError> {
    let payment = args.payment.to_pb();
    let amount = amount_of(client, args.amount.as_deref(), &payment, cli).await?;
    let key = fresh_key(args.key.as_deref(), cli.json);
    let response = client
        .refund_payment(request(
            pb::RefundPaymentRequest {
                idempotency_key: key.clone(),
                payment,
                amount,
                memo: args.memo.clone(),
            },
            cli,
        )?)
        .await?
        .into_inner();
    let tx = response.transaction.unwrap_or_default();
    if cli.json {
        let mut value = transaction_json(&tx);
        value["replayed"] = json!(response.replayed);
        value["refunded_total"] = json!(response.refunded_total);
        value["idempotency_key"] = json!(key);
        println!("{value}");
    } else {
        let verb = replay_verb(response.replayed, "refunded");
        println!("{}", transaction_text(&verb, &tx));
        println!(
            "refunded so far: {} of {}",
            format_money(response.refunded_total, &tx.currency),
            tx.refund_of
        );
    }
    Ok(())
}
