//! AddAccount, GetAccountBalance, ListAccounts and SetBalanceShards.

use super::convert::account_message;
use super::{PaymentApi, unary};
use crate::auth::Caller;
use crate::domain::{AccountId, AccountsPage, NewAccount, ShardsOrder};
use crate::error::{CutOff, ServiceError};
use crate::ledger::{self, LedgerError};
use crate::pb;
use tonic::{Request, Response};

impl PaymentApi {
    /// The owner, or an admin, may read an account. Anyone else gets
    /// PERMISSION_DENIED whether or not the account exists, so that account
    /// ids cannot be probed; an admin gets NOT_FOUND for an unknown one.
    pub(super) async fn readable_account(
        &self,
        caller: &Caller,
        account_id: &AccountId,
    ) -> Result<ledger::Account, ServiceError> {
        let denied = || ServiceError::NotAccountReader {
            caller: caller.sub.clone(),
            account_id: account_id.to_string(),
        };
        match self.ledger.get_account(account_id).await {
            Ok(account) if account.owner == caller.sub || caller.admin => Ok(account),
            Ok(_) => Err(denied()),
            Err(LedgerError::AccountNotFound { .. }) if !caller.admin => Err(denied()),
            Err(err) => Err(err.into()),
        }
    }

    pub(super) async fn add_account_call(
        &self,
        caller: &Caller,
        request: Request<pb::AddAccountRequest>,
    ) -> Result<Response<pb::AddAccountResponse>, ServiceError> {
        unary(
            request,
            CutOff::Account,
            |r| {
                let new = NewAccount::parse(
                    &r.account_id,
                    &r.display_name,
                    &r.currency,
                    r.initial_balance,
                    r.balance_shards,
                )?;
                if new.initial_balance_minor > 0 && !caller.admin {
                    return Err(ServiceError::AdminOnly {
                        field: "initial_balance",
                    });
                }
                Ok(new)
            },
            |new| async move {
                Ok(self
                    .ledger
                    .add_account(&new, &caller.sub, !caller.admin)
                    .await?)
            },
            |account| pb::AddAccountResponse {
                account: Some(account_message(account)),
            },
        )
        .await
    }

    pub(super) async fn get_account_balance_call(
        &self,
        caller: &Caller,
        request: Request<pb::GetAccountBalanceRequest>,
    ) -> Result<Response<pb::GetAccountBalanceResponse>, ServiceError> {
        unary(
            request,
            CutOff::Read,
            |r| Ok(AccountId::parse("account_id", &r.account_id)?),
            |account_id| async move { self.readable_account(caller, &account_id).await },
            |account| pb::GetAccountBalanceResponse {
                account: Some(account_message(account)),
            },
        )
        .await
    }

    pub(super) async fn list_accounts_call(
        &self,
        caller: &Caller,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, ServiceError> {
        unary(
            request,
            CutOff::Read,
            |r| {
                Ok(AccountsPage::parse(
                    &caller.sub,
                    caller.admin,
                    &r.owner,
                    r.page_size,
                    &r.page_token,
                )?)
            },
            |page| async move {
                let (accounts, after) = self.ledger.list_accounts(&page).await?;
                Ok(pb::ListAccountsResponse {
                    accounts: accounts.into_iter().map(account_message).collect(),
                    next_page_token: after.map_or_else(String::new, |last| page.token_after(&last)),
                })
            },
            |reply| reply,
        )
        .await
    }

    pub(super) async fn set_balance_shards_call(
        &self,
        caller: &Caller,
        request: Request<pb::SetBalanceShardsRequest>,
    ) -> Result<Response<pb::SetBalanceShardsResponse>, ServiceError> {
        unary(
            request,
            CutOff::Shards,
            |r| {
                let order = ShardsOrder::parse(&r.account_id, r.balance_shards)?;
                if !caller.admin {
                    return Err(LedgerError::NotAllowed {
                        what: "raising an account's balance shards".into(),
                        who: "an admin",
                    }
                    .into());
                }
                Ok(order)
            },
            |order| async move {
                Ok(self
                    .ledger
                    .raise_shards(&order.account_id, order.balance_shards)
                    .await?)
            },
            |done| pb::SetBalanceShardsResponse {
                account: Some(account_message(done.account)),
                raised: done.raised,
            },
        )
        .await
    }
}
