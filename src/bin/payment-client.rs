//! payment-client: a command-line client for the payment service.

use clap::{Parser, Subcommand};
use payment::auth::{DevToken, mint_dev_token};
use payment::client::{connect_grpc, connect_grpc_web};
use payment::domain::{format_money, parse_money};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
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
}

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
                    let code = format!("{:?}", status.code());
                    if cli.json {
                        println!(
                            "{}",
                            json!({"error": {"code": screaming(&code), "message": status.message()}})
                        );
                    }
                    eprintln!("error: {}: {}", screaming(&code), status.message());
                }
                None => eprintln!("error: {err}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// `NotFound` as gRPC spells it: `NOT_FOUND`.
fn screaming(code: &str) -> String {
    let mut out = String::new();
    for (i, c) in code.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
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
            print_account("opened", response.account.unwrap_or_default(), cli.json);
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
            let key = key
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            if !cli.json {
                println!("idempotency key: {key}");
            }
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
                let verb = if response.replayed {
                    "already paid (replayed, nothing moved)"
                } else {
                    "paid"
                };
                println!(
                    "{verb}: {} from {} to {}  transaction {}  at {}",
                    format_money(tx.amount, &tx.currency),
                    tx.sender_id,
                    tx.recipient_id,
                    tx.transaction_id,
                    time_text(tx.created_at.as_ref())
                );
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
            print_account("account", response.account.unwrap_or_default(), cli.json);
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
                "discrepancies_total": report.discrepancies_total,
                "discrepancies": report.discrepancies,
            })
        );
    } else {
        println!(
            "audited {} accounts, {} history entries, {} payments; balances sum to {} minor units, opening balances to {}",
            report.accounts,
            report.entries,
            report.payments,
            report.total_balance_minor,
            report.total_opening_minor
        );
        for line in &report.discrepancies {
            println!("DISCREPANCY: {line}");
        }
        if report.is_clean() {
            println!("clean: every balance equals its history and no money was created or lost");
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

fn time_text(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else {
        return "-".into();
    };
    let Ok(seconds) = u64::try_from(ts.seconds) else {
        return ts.to_string();
    };
    let at = std::time::UNIX_EPOCH
        + Duration::from_secs(seconds)
        + Duration::from_nanos(u64::try_from(ts.nanos).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

fn print_account(what: &str, a: pb::Account, as_json: bool) {
    if as_json {
        println!(
            "{}",
            json!({
                "account_id": a.account_id,
                "display_name": a.display_name,
                "currency": a.currency,
                "balance": a.balance,
                "owner": a.owner,
                "created_at": time_text(a.created_at.as_ref()),
                "balance_shards": a.balance_shards,
            })
        );
    } else {
        let name = if a.display_name.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.display_name)
        };
        let shards = if a.balance_shards > 1 {
            format!("  ({} balance shards)", a.balance_shards)
        } else {
            String::new()
        };
        println!(
            "{what} {}{name}: balance {}  opened {}{shards}",
            a.account_id,
            format_money(a.balance, &a.currency),
            time_text(a.created_at.as_ref())
        );
    }
}

fn transaction_json(tx: &pb::Transaction) -> serde_json::Value {
    json!({
        "transaction_id": tx.transaction_id,
        "sender_id": tx.sender_id,
        "recipient_id": tx.recipient_id,
        "amount": tx.amount,
        "currency": tx.currency,
        "memo": tx.memo,
        "created_at": time_text(tx.created_at.as_ref()),
    })
}

fn print_entry(entry: &pb::GetTransactionHistoryResponse, as_json: bool) {
    let tx = entry.transaction.clone().unwrap_or_default();
    let direction = pb::Direction::try_from(entry.direction)
        .map(|d| d.as_str_name().trim_start_matches("DIRECTION_").to_owned())
        .unwrap_or_else(|_| entry.direction.to_string());
    if as_json {
        println!(
            "{}",
            json!({
                "sequence": entry.sequence,
                "shard": entry.shard,
                "direction": direction,
                "balance_after": entry.balance_after,
                "next_page_token": entry.next_page_token,
                "transaction": transaction_json(&tx),
            })
        );
        return;
    }
    let (sign, other) = if direction == "DEBIT" {
        ("-", format!("to {}", tx.recipient_id))
    } else if tx.sender_id.is_empty() {
        ("+", "opening balance".to_owned())
    } else {
        ("+", format!("from {}", tx.sender_id))
    };
    let memo = if tx.memo.is_empty() || tx.sender_id.is_empty() {
        String::new()
    } else {
        format!("  \"{}\"", tx.memo)
    };
    let position = if entry.shard > 0 {
        format!("{}:{}", entry.shard, entry.sequence)
    } else {
        entry.sequence.to_string()
    };
    println!(
        "#{position:<4} {}  {:<6} {sign}{:>16}  balance {:>16}  {other}{memo}",
        time_text(tx.created_at.as_ref()),
        direction,
        format_money(tx.amount, &tx.currency),
        format_money(entry.balance_after, &tx.currency),
    );
}
