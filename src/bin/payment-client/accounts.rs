//! Accounts: open one, show one with its balance, list the caller's.

use crate::args::Cli;
use crate::call::{BoxError, Channel, Client, money_arg, request};
use crate::print::print_account;
use payment::pb;

/// Pages `accounts --all` follows at most.
const ACCOUNT_PAGES_MAX: usize = 1000;

// add-account
#[derive(Debug, clap::Args)]
pub struct AddAccountArgs {
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
}

// accounts
#[derive(Debug, clap::Args)]
pub struct AccountsArgs {
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
}

pub async fn add_account<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &AddAccountArgs,
) -> Result<(), BoxError> {
    let initial_balance = money_arg("--initial-balance", &args.initial_balance, &args.currency)?;
    let response = client
        .add_account(request(
            pb::AddAccountRequest {
                account_id: args.account_id.clone(),
                display_name: args.name.clone(),
                currency: args.currency.clone(),
                initial_balance,
                balance_shards: args.shards,
            },
            cli,
        )?)
        .await?
        .into_inner();
    print_account("opened", &response.account.unwrap_or_default(), cli.json);
    Ok(())
}

pub async fn balance<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    account_id: &str,
) -> Result<(), BoxError> {
    let response = client
        .get_account_balance(request(
            pb::GetAccountBalanceRequest {
                account_id: account_id.to_owned(),
            },
            cli,
        )?)
        .await?
        .into_inner();
    print_account("account", &response.account.unwrap_or_default(), cli.json);
    Ok(())
}

/// One page of the caller's accounts, or with --all every page, and how
/// many there were.
pub async fn accounts<T: Channel>(
    client: &mut Client<T>,
    cli: &Cli,
    args: &AccountsArgs,
) -> Result<(), BoxError> {
    let mut token = args.page_token.clone();
    let mut count = 0usize;
    for _ in 0..ACCOUNT_PAGES_MAX {
        let response = client
            .list_accounts(request(
                pb::ListAccountsRequest {
                    page_size: args.page_size,
                    page_token: token.clone(),
                    owner: args.owner.clone(),
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
        if token.is_empty() || !args.all {
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
    Ok(())
}
