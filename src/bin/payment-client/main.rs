//! payment-client: a command-line client for the payment service.

mod print;

use clap::{Parser, Subcommand};
use payment::auth::{DevToken, mint_dev_token};
use payment::client::{connect_grpc, connect_grpc_web};
use payment::domain::parse_money;
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use print::*;
use serde_json::json;
use std::process::ExitCode;
use std::time::Duration;
use tonic::client::GrpcService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Calls the payment service. Amounts are decimals in the account's
/// currency (12.34 EUR is 1234 minor units); they are converted exactly.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The service's URL; a path (as with cargo lambda watch) prefixes every call.
    #[arg(
        long,
        global = true,
        env = "PAYMENT_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    endpoint: String,
    /// Speak gRPC-Web over HTTP/1.1 (as through API Gateway) instead of native gRPC.
    #[arg(long, global = true)]
    grpc_web: bool,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Bearer token (JWT) sent with every call; see the `token` command for a dev token.
    #[arg(long, global = true, env = "PAYMENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Deadline of each call, sent as grpc-timeout (e.g. 500ms, 10s).
    #[arg(long, global = true, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Audit the whole ledger, reading DynamoDB directly (admin only: needs AWS
    /// credentials allowed to Scan the tables; PAYMENT_ACCOUNTS_TABLE,
    /// PAYMENT_LEDGER_TABLE, AWS_REGION, AWS_ENDPOINT_URL_DYNAMODB as for the
    /// server). Exits non-zero if anything does not add up.
    Audit {
        /// Parallel Scan segments per table (1-64).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        segments: u32,
    },
    /// Mint a development token signed with PAYMENT_DEV_JWT_SECRET (HS256) and print it.
    Token {
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
    },
    /// Open an account.
    AddAccount {
        /// The new account's id: 1-128 characters of [A-Za-z0-9._:@-].
        account_id: String,
        /// ISO 4217 currency code.
        #[arg(long, default_value = "EUR")]
        currency: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Opening balance as a decimal, e.g. 100.00.
        #[arg(long, default_value = "0")]
        initial_balance: String,
        /// Balance shards (1-64): more than 1 for an account that many
        /// independent callers pay at once, e.g. a merchant
        /// (docs/hot-accounts.md).
        #[arg(long, default_value_t = 1)]
        shards: i32,
    },
    /// Pay from one account to another, exactly once per idempotency key.
    Pay {
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
    },
    /// Show an account and its balance.
    Balance { account_id: String },
    /// Stream an account's history, newest first.
    History {
        account_id: String,
        /// Entries to stream (0 means the server's default of 50; at most 1000).
        #[arg(long, default_value_t = 0)]
        page_size: i32,
        /// Continue after the entry this token came with.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Reserve money of an account for a recipient (a hold), to capture or
    /// void later; it is released by itself when it expires.
    Authorize {
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
    },
    /// Capture a hold (its recipient's owner or an admin): move all of it,
    /// or --amount of it, to the recipient; the rest is released.
    Capture {
        #[command(flatten)]
        hold: RefArgs,
        /// How much to move, as a decimal in the hold's currency; all of it when omitted.
        #[arg(long)]
        amount: Option<String>,
    },
    /// Void a hold (its recipient's owner or an admin): release all of it.
    Void {
        #[command(flatten)]
        hold: RefArgs,
    },
    /// Refund a payment or capture (its recipient's owner or an admin):
    /// return all that is left of it, or --amount, to its sender.
    Refund {
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
    },
    /// Look up a payment, hold or refund: what happened to it, without
    /// making it again (e.g. after DEADLINE_EXCEEDED).
    Payment {
        #[command(flatten)]
        payment: RefArgs,
        /// A final answer (the sender's owner or an admin, by --sender and
        /// --sender-key): when nothing is stored under the key, fence it, so
        /// that the call with it never happens, not even if its write is
        /// still on its way. A fenced key is never usable again.
        #[arg(long, requires = "sender")]
        finalize: bool,
    },
    /// List the caller's accounts (an admin: everyone's), by id.
    Accounts {
        /// Accounts per page (0 means the server's default of 50; at most 100).
        #[arg(long, default_value_t = 0)]
        page_size: i32,
        /// Continue after the page this token came with.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Admin only: the accounts of this owner.
        #[arg(long, default_value = "")]
        owner: String,
        /// Follow the page tokens to the end (at most 1000 pages).
        #[arg(long)]
        all: bool,
    },
    /// Raise an account's balance shards (admin only), while it is being
    /// paid; a count can only go up (docs/hot-accounts.md).
    SetShards {
        account_id: String,
        /// The count of balance shards it should have (1-64, at least what it has).
        count: i32,
    },
}

/// A payment, hold or refund: by its transaction id, or by the account
/// that made it and the idempotency key it was made with.
#[derive(Debug, clap::Args)]
struct RefArgs {
    /// The transaction id (for a hold, the hold id).
    #[arg(required_unless_present = "sender", conflicts_with = "sender")]
    transaction_id: Option<String>,
    /// Or: the account that made it (the paying account)...
    #[arg(long, requires = "sender_key")]
    sender: Option<String>,
    /// ...and the idempotency key it was made with.
    #[arg(long, requires = "sender")]
    sender_key: Option<String>,
}

impl RefArgs {
    fn to_pb(&self) -> Option<pb::PaymentRef> {
        Some(pb::PaymentRef {
            transaction_id: self.transaction_id.clone().unwrap_or_default(),
            sender_id: self.sender.clone().unwrap_or_default(),
            idempotency_key: self.sender_key.clone().unwrap_or_default(),
        })
    }
}

/// Pages `accounts --all` follows at most.
const ACCOUNT_PAGES_MAX: usize = 1000;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Token {
        sub,
        admin,
        ttl,
        secret,
        issuer,
        audience,
    } = &cli.command
    {
        let options = DevToken {
            sub,
            admin: *admin,
            ttl: *ttl,
            issuer: issuer.as_deref(),
            audience: audience
                .as_deref()
                .and_then(|list| list.split(',').map(str::trim).find(|a| !a.is_empty())),
        };
        return match mint_dev_token(secret.as_bytes(), &options) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Audit { segments } = &cli.command {
        return audit(*segments, cli.json).await;
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
            match err.downcast_ref::<tonic::Status>() {
                Some(status) => {
                    let report = ErrorReport::of(status);
                    if cli.json {
                        println!("{}", report.json());
                    }
                    eprintln!("{}", report.text());
                }
                None => {
                    if cli.json {
                        println!("{}", json!({"error": {"message": err.to_string()}}));
                    }
                    eprintln!("error: {err}");
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn request<T>(message: T, cli: &Cli) -> Result<tonic::Request<T>, BoxError> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(cli.timeout);
    if let Some(token) = cli.token.as_deref().filter(|t| !t.trim().is_empty()) {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| "--token is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

async fn run<T>(mut client: PaymentServiceClient<T>, cli: &Cli) -> Result<(), BoxError>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    match &cli.command {
        // Handled in main, without connecting to the service.
        Command::Token { .. } | Command::Audit { .. } => {}
        Command::AddAccount {
            account_id,
            currency,
            name,
            initial_balance,
            shards,
        } => {
            let initial_balance = parse_money(initial_balance, currency)
                .map_err(|e| format!("--initial-balance: {e}"))?;
            let response = client
                .add_account(request(
                    pb::AddAccountRequest {
                        account_id: account_id.clone(),
                        display_name: name.clone(),
                        currency: currency.clone(),
                        initial_balance,
                        balance_shards: *shards,
                    },
                    cli,
                )?)
                .await?
                .into_inner();
            print_account("opened", &response.account.unwrap_or_default(), cli.json);
        }
        Command::Pay {
            from,
            to,
            amount,
            currency,
            memo,
            key,
        } => {
            let amount = parse_money(amount, currency).map_err(|e| format!("--amount: {e}"))?;
            let key = fresh_key(key.as_deref(), cli.json);
            let response = client
                .make_payment(request(
                    pb::MakePaymentRequest {
                        idempotency_key: key.clone(),
                        sender_id: from.clone(),
                        recipient_id: to.clone(),
                        amount,
                        currency: currency.clone(),
                        memo: memo.clone(),
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
        }
        Command::Balance { account_id } => {
            let response = client
                .get_account_balance(request(
                    pb::GetAccountBalanceRequest {
                        account_id: account_id.clone(),
                    },
                    cli,
                )?)
                .await?
                .into_inner();
            print_account("account", &response.account.unwrap_or_default(), cli.json);
        }
        Command::History {
            account_id,
            page_size,
            page_token,
        } => {
            let mut stream = client
                .get_transaction_history(request(
                    pb::GetTransactionHistoryRequest {
                        account_id: account_id.clone(),
                        page_size: *page_size,
                        page_token: page_token.clone(),
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
        }
        Command::Authorize {
            from,
            to,
            amount,
            currency,
            expires_in,
            memo,
            key,
        } => {
            let amount = parse_money(amount, currency).map_err(|e| format!("--amount: {e}"))?;
            let key = fresh_key(key.as_deref(), cli.json);
            let response = client
                .authorize_payment(request(
                    pb::AuthorizePaymentRequest {
                        idempotency_key: key.clone(),
                        sender_id: from.clone(),
                        recipient_id: to.clone(),
                        amount,
                        currency: currency.clone(),
                        memo: memo.clone(),
                        expires_in_seconds: i64::try_from(expires_in.as_secs()).unwrap_or(i64::MAX),
                    },
                    cli,
                )?)
                .await?
                .into_inner();
            let hold = response.hold.unwrap_or_default();
            if cli.json {
                let mut value = hold_json(&hold);
                value["replayed"] = json!(response.replayed);
                println!("{value}");
            } else {
                let verb = replay_verb(response.replayed, "authorized");
                println!("{verb}: {}", hold_text(&hold));
            }
        }
        Command::Capture { hold, amount } => {
            let amount = amount_of(&mut client, amount.as_deref(), &hold.to_pb(), cli).await?;
            let response = client
                .capture_hold(request(
                    pb::CaptureHoldRequest {
                        hold: hold.to_pb(),
                        amount,
                    },
                    cli,
                )?)
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
        }
        Command::Void { hold } => {
            let response = client
                .void_hold(request(pb::VoidHoldRequest { hold: hold.to_pb() }, cli)?)
                .await?
                .into_inner();
            let held = response.hold.unwrap_or_default();
            if cli.json {
                let mut value = hold_json(&held);
                value["replayed"] = json!(response.replayed);
                println!("{value}");
            } else {
                let verb = replay_verb(response.replayed, "voided");
                println!("{verb}: {}", hold_text(&held));
            }
        }
        Command::Refund {
            payment,
            amount,
            memo,
            key,
        } => {
            let amount = amount_of(&mut client, amount.as_deref(), &payment.to_pb(), cli).await?;
            let key = fresh_key(key.as_deref(), cli.json);
            let response = client
                .refund_payment(request(
                    pb::RefundPaymentRequest {
                        idempotency_key: key.clone(),
                        payment: payment.to_pb(),
                        amount,
                        memo: memo.clone(),
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
                    payment::domain::format_money(response.refunded_total, &tx.currency),
                    tx.refund_of
                );
            }
        }
        Command::Payment { payment, finalize } => {
            let answer = client
                .get_payment(request(
                    pb::GetPaymentRequest {
                        payment: payment.to_pb(),
                        finalize: *finalize,
                    },
                    cli,
                )?)
                .await;
            let response = match answer {
                Ok(response) => response.into_inner(),
                // The final answer "never": not an error of the lookup.
                Err(status) if *finalize && is_fenced(&status) => {
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
                    return Ok(());
                }
                Err(status) => return Err(status.into()),
            };
            if cli.json {
                let mut value = json!({
                    "transaction": response.transaction.as_ref().map(transaction_json),
                    "hold": response.hold.as_ref().map(hold_json),
                    "idempotency_key": response.idempotency_key,
                    "refunded_total": response.refunded_total,
                });
                if *finalize {
                    value["final"] = json!("committed");
                }
                println!("{value}");
            } else {
                if *finalize {
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
                            payment::domain::format_money(response.refunded_total, &tx.currency)
                        );
                    }
                }
                if !response.idempotency_key.is_empty() {
                    println!("idempotency key: {}", response.idempotency_key);
                }
            }
        }
        Command::Accounts {
            page_size,
            page_token,
            owner,
            all,
        } => {
            let mut token = page_token.clone();
            let mut count = 0usize;
            for _ in 0..ACCOUNT_PAGES_MAX {
                let response = client
                    .list_accounts(request(
                        pb::ListAccountsRequest {
                            page_size: *page_size,
                            page_token: token.clone(),
                            owner: owner.clone(),
                        },
                        cli,
                    )?)
                    .await?
                    .into_inner();
                count += response.accounts.len();
                for account in &response.accounts {
                    print_account("account", account, cli.json);
                }
                token = response.next_page_token;
                if token.is_empty() || !all {
                    break;
                }
            }
            if !cli.json {
                let noun = if count == 1 { "account" } else { "accounts" };
                if token.is_empty() {
                    println!("{count} {noun}; that is all");
                } else {
                    println!("{count} {noun}; more with --page-token {token}");
                }
            }
        }
        Command::SetShards { account_id, count } => {
            let response = client
                .set_balance_shards(request(
                    pb::SetBalanceShardsRequest {
                        account_id: account_id.clone(),
                        balance_shards: *count,
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
            } else {
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
            }
        }
    }
    Ok(())
}

async fn audit(segments: u32, as_json: bool) -> ExitCode {
    let ledger = payment::ledger::Ledger::new(
        payment::config::dynamodb_client().await,
        payment::config::tables_from_env(),
    );
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let progress = |what: &str, n: u64| bar.set_message(format!("scanning: {n} {what}"));
    let result = ledger.audit(segments, &progress).await;
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: audit failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    if as_json {
        println!(
            "{}",
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
        );
    } else {
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
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Whether a GetPayment answer says the key is fenced: NOT_FOUND, reason
/// KEY_FENCED.
fn is_fenced(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound
        && ErrorReport::of(status).reason.as_deref() == Some("KEY_FENCED")
}

/// "paid", or on a replay "already paid (replayed, nothing moved)".
fn replay_verb(replayed: bool, done: &str) -> String {
    if replayed {
        format!("already {done} (replayed, nothing moved)")
    } else {
        done.to_owned()
    }
}

/// The idempotency key given, or a new one, printed so that the caller can
/// retry with it.
fn fresh_key(key: Option<&str>, as_json: bool) -> String {
    let key = key.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    if !as_json {
        println!("idempotency key: {key}");
    }
    key
}

/// A decimal --amount in the currency of the payment or hold it is of
/// (looked up), in minor units; 0 (all of it) when omitted.
async fn amount_of<T>(
    client: &mut PaymentServiceClient<T>,
    amount: Option<&str>,
    payment: &Option<pb::PaymentRef>,
    cli: &Cli,
) -> Result<i64, BoxError>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<BoxError>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<BoxError> + Send,
{
    let Some(text) = amount else {
        return Ok(0);
    };
    let found = client
        .get_payment(request(
            pb::GetPaymentRequest {
                payment: payment.clone(),
                finalize: false,
            },
            cli,
        )?)
        .await?
        .into_inner();
    let currency = found
        .hold
        .map(|h| h.currency)
        .or(found.transaction.map(|t| t.currency))
        .ok_or("the service found no such payment or hold")?;
    Ok(parse_money(text, &currency).map_err(|e| format!("--amount: {e}"))?)
}
