//! The command line: the options every command takes, and the commands,
//! each with its own arguments in the file of its group.

use crate::accounts::{AccountsArgs, AddAccountArgs};
use crate::admin::{AuditArgs, SetShardsArgs, TokenArgs};
use crate::holds::{AuthorizeArgs, CaptureArgs, VoidArgs};
use crate::lookups::{HistoryArgs, PaymentArgs};
use crate::payments::{PayArgs, RefundArgs};
use crate::watch::WatchArgs;
use clap::{Parser, Subcommand};
use payment::pb;
use std::time::Duration;

/// Calls the payment service. Amounts are decimals in the account's
/// currency (12.34 EUR is 1234 minor units); they are converted exactly.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// The service's URL; a path (as with cargo lambda watch) prefixes every call.
    #[arg(
        long,
        global = true,
        env = "PAYMENT_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,
    /// Speak gRPC-Web over HTTP/1.1 (as through API Gateway) instead of native gRPC.
    #[arg(long, global = true)]
    pub grpc_web: bool,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bearer token (JWT) sent with every call; see the `token` command for a dev token.
    #[arg(long, global = true, env = "PAYMENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Deadline of each call, sent as grpc-timeout (e.g. 500ms, 10s).
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit the whole ledger, reading DynamoDB directly (admin only: needs AWS
    /// credentials allowed to Scan the tables; PAYMENT_ACCOUNTS_TABLE,
    /// PAYMENT_LEDGER_TABLE, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB as for the
    /// server). Exits non-zero if anything does not add up.
    Audit(AuditArgs),
    /// Create the ledger's tables, with their indexes, where they are missing
    /// (for DynamoDB Local; deployed tables come from template.yaml). Reads
    /// DynamoDB directly, configured as for `audit`.
    CreateTables,
    /// Mint a development token signed with PAYMENT_DEV_JWT_SECRET (HS256) and print it.
    Token(TokenArgs),
    /// Open an account.
    AddAccount(AddAccountArgs),
    /// Pay from one account to another, exactly once per idempotency key.
    Pay(PayArgs),
    /// Show an account and its balance.
    Balance { account_id: String },
    /// Stream an account's history, newest first.
    History(HistoryArgs),
    /// Watch an account: print its new history entries as they commit,
    /// oldest first, then the token to resume from (docs/watch.md).
    Watch(WatchArgs),
    /// Reserve money of an account for a recipient (a hold), to capture or
    /// void later; it is released by itself when it expires.
    Authorize(AuthorizeArgs),
    /// Capture a hold (its recipient's owner or an admin): move all of it,
    /// or --amount of it, to the recipient; the rest is released.
    Capture(CaptureArgs),
    /// Void a hold (its recipient's owner or an admin): release all of it.
    Void(VoidArgs),
    /// Refund a payment or capture (its recipient's owner or an admin):
    /// return all that is left of it, or --amount, to its sender.
    Refund(RefundArgs),
    /// Look up a payment, hold or refund: what happened to it, without
    /// making it again (e.g. after DEADLINE_EXCEEDED).
    Payment(PaymentArgs),
    /// List the caller's accounts (an admin: everyone's), by id.
    Accounts(AccountsArgs),
    /// Raise an account's balance shards (admin only), while it is being
    /// paid; a count can only go up (docs/hot-accounts.md).
    SetShards(SetShardsArgs),
}

/// A payment, hold or refund: by its transaction id, or by the account
/// that made it and the idempotency key it was made with.
#[derive(Debug, clap::Args)]
pub struct RefArgs {
    /// The transaction id (for a hold, the hold id).
    #[arg(required_unless_present = "sender", conflicts_with = "sender")]
    pub transaction_id: Option<String>,
    /// Or: the account that made it (the paying account)...
    #[arg(long, requires = "sender_key")]
    pub sender: Option<String>,
    /// ...and the idempotency key it was made with.
    #[arg(long, requires = "sender")]
    pub sender_key: Option<String>,
}

impl RefArgs {
    pub fn to_pb(&self) -> Option<pb::PaymentRef> {
        Some(pb::PaymentRef {
            transaction_id: self.transaction_id.clone().unwrap_or_default(),
            sender_id: self.sender.clone().unwrap_or_default(),
            idempotency_key: self.sender_key.clone().unwrap_or_default(),
        })
    }
}
