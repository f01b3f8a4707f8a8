//! Opening accounts and reading them.

use super::clock::{new_transaction_id, now_ms};
use super::layout::{
    AccountFacts, AccountsItem, Item, OWNER_SK, ShardState, StoredEntry, account_item, build_error,
    n, owner_pk, s, sdk_error, shard_item,
};
use super::round::{Reason, Rounds, Written, reason};
use super::shards::account_from;
use super::{Account, Direction, Ledger, LedgerError, Transaction, TransactionKind};
use crate::domain::{AccountId, NewAccount, OWNER_ACCOUNTS_MAX};
use aws_sdk_dynamodb::types::{Put, ReturnConsumedCapacity, TransactWriteItem, Update};

/// Whether a stored account is what `new` would open for `owner`. Its
/// shard count may have been raised since (a reshard): a retry of the
/// call that opened it still gets it.
fn same_account(facts: &AccountFacts, new: &NewAccount, owner: &str) -> bool {
    facts.owner == owner
        && facts.display_name == new.display_name
        && facts.currency == new.currency.as_str()
        && facts.opening_balance_minor == new.initial_balance_minor
        && facts.shards >= new.balance_shards
}

/// An account as it opens: its facts, its shard 0 (with the opening
/// balance), the state its further shards open with, and whether the
/// owner's count of accounts goes up with it.
struct Opening {
    facts: AccountFacts,
    shard0: ShardState,
    empty: ShardState,
    counted: bool,
}

impl Opening {
    fn of(new: &NewAccount, owner: &str, counted: bool) -> Self {
        let opening = new.initial_balance_minor;
        let facts = AccountFacts {
            account_id: new.account_id.as_str().to_owned(),
            display_name: new.display_name.clone(),
            currency: new.currency.as_str().to_owned(),
            created_at_ms: now_ms(),
            owner: owner.to_owned(),
            opening_balance_minor: opening,
            shards: new.balance_shards,
        };
        let shard0 = ShardState {
            version: u64::from(opening > 0),
            balance_minor: opening,
            updated_at_ms: facts.created_at_ms,
            ..ShardState::default()
        };
        let empty = ShardState {
            updated_at_ms: facts.created_at_ms,
            ..ShardState::default()
        };
        Self {
            facts,
            shard0,
            empty,
            counted,
        }
    }

    /// The account as the call answers it.
    fn account(&self) -> Account {
        let further = std::iter::repeat_n(&self.empty, self.facts.shards as usize - 1);
        account_from(&self.facts, std::iter::once(&self.shard0).chain(further))
    }

    /// Why a cancelled opening ends the call, its reasons read by the order
    /// of [`Ledger::opening_items`]; Ok when another round may commit.
    fn refused(&self, reasons: &[Reason], rounds: &mut Rounds) -> Result<(), LedgerError> {
        if reason(reasons, 0).failed() {
            return Err(LedgerError::AccountExists(self.facts.account_id.clone()));
        }
        if self.counted && reason(reasons, 1).failed() {
            return Err(LedgerError::TooManyAccounts {
                owner: self.facts.owner.clone(),
                limit: OWNER_ACCOUNTS_MAX,
            });
        }
        rounds.met(reasons)?;
        if reasons.iter().any(|r| r.failed()) {
            // An entry or shard item of an account that does not exist
            // yet: only a half-written account could explain it, which one
            // transaction never leaves.
            return Err(LedgerError::Internal(
                "opening an account failed a condition on an item it creates".into(),
            ));
        }
        Ok(())
    }
}

impl Ledger {
    /// Opens an account, with its opening credit as history entry 1 of
    /// shard 0 when the initial balance is positive, and its further balance
    /// shards, all in one transaction (or one PutItem for an ordinary
    /// account that opens empty and is not counted). ALREADY_EXISTS comes
    /// from DynamoDB's condition, not from a read before the write; the same
    /// owner opening the same account again (a retry after a lost reply)
    /// gets the account. When `counted`, the owner's count of accounts goes
    /// up in the same transaction, conditioned on staying within
    /// [`OWNER_ACCOUNTS_MAX`].
    pub async fn add_account(
        &self,
        new: &NewAccount,
        owner: &str,
        counted: bool,
    ) -> Result<Account, LedgerError> {
        match self.open_account(new, owner, counted).await {
            Err(LedgerError::AccountExists(id)) => match self.read_account_item(&id).await? {
                Some((facts, _)) if same_account(&facts, new, owner) => {
                    self.get_account(&new.account_id).await
                }
                _ => Err(LedgerError::AccountExists(id)),
            },
            other => other,
        }
    }

    async fn open_account(
        &self,
        new: &NewAccount,
        owner: &str,
        counted: bool,
    ) -> Result<Account, LedgerError> {
        let opening = Opening::of(new, owner, counted);
        let account = opening.account();
        let facts = &opening.facts;
        if facts.opening_balance_minor == 0 && facts.shards == 1 && !counted {
            let root = account_item(facts, &opening.shard0);
            self.put_plain_account(root, &facts.account_id).await?;
            self.remember_new(&opening);
            return Ok(account);
        }
        let items = self.opening_items(&opening)?;
        self.write_opening(&opening, items).await?;
        Ok(account)
    }

    /// The items of an opening, in this order: the account's own item, the
    /// owner's count (when counted), the further shards, the opening entry
    /// (when the balance is positive).
    fn opening_items(&self, opening: &Opening) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let facts = &opening.facts;
        let root = account_item(facts, &opening.shard0);
        let mut items = vec![self.put_account_item(root)?];
        if opening.counted {
            items.push(self.count_owner_account(&facts.owner)?);
        }
        for shard in 1..facts.shards {
            let item = shard_item(&facts.account_id, shard, &opening.empty);
            items.push(self.put_account_item(item)?);
        }
        if facts.opening_balance_minor > 0 {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_new(opening_entry(facts).to_item())?)
                    .build(),
            );
        }
        Ok(items)
    }

    /// Writes an opening's items in one transaction. Both the account's put
    /// and the owner's counter are items other calls may hold at the same
    /// moment (two AddAccounts by one owner, or a retry while the first
    /// call is still in flight): such rounds go again after a pause, a
    /// bounded number of times.
    async fn write_opening(
        &self,
        opening: &Opening,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), LedgerError> {
        let account_id = &opening.facts.account_id;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            match self.transact(items.clone()).await? {
                Written::Committed => {
                    self.remember_new(opening);
                    return Ok(());
                }
                Written::Cancelled(reasons) => opening.refused(&reasons, &mut rounds)?,
                // No answer: whether it committed, the account says (the
                // same owner opening the same account gets it).
                Written::Unknown(cause) => {
                    return match self.read_account_item(account_id).await {
                        Ok(Some(_)) => Err(LedgerError::AccountExists(account_id.clone())),
                        _ => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
            }
        }
        Err(rounds.exhausted())
    }

    /// An account with no balance, one shard and no owner count: its root
    /// item alone, put on condition that the id is free.
    async fn put_plain_account(&self, root: Item, account_id: &str) -> Result<(), LedgerError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.accounts)
            .set_item(Some(root))
            .condition_expression("attribute_not_exists(account_id)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(LedgerError::AccountExists(account_id.to_owned()))
            }
            Err(err) => Err(sdk_error("PutItem", err)),
        }
    }

    fn remember_new(&self, opening: &Opening) {
        let facts = &opening.facts;
        self.known.remember(facts);
        self.known.observe(&facts.account_id, 0, &opening.shard0);
        for shard in 1..facts.shards {
            self.known.observe(&facts.account_id, shard, &opening.empty);
        }
    }

    /// The owner's account count, one item in the ledger table, raised by
    /// one unless it is at the limit.
    fn count_owner_account(&self, owner: &str) -> Result<TransactWriteItem, LedgerError> {
        let update = Update::builder()
            .table_name(&self.tables.ledger)
            .key("pk", s(owner_pk(owner)))
            .key("sk", s(OWNER_SK))
            .update_expression("ADD accounts :one")
            .condition_expression("attribute_not_exists(accounts) OR accounts < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(OWNER_ACCOUNTS_MAX))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn put_account_item(&self, item: Item) -> Result<TransactWriteItem, LedgerError> {
        let put = Put::builder()
            .table_name(&self.tables.accounts)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(account_id)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Reads one account: its balance is strongly consistent and includes
    /// every payment committed before the call. One GetItem for an ordinary
    /// account; for a sharded one a consistent snapshot of its shards (one
    /// BatchGetItem when its facts are known, after a GetItem otherwise).
    pub async fn get_account(&self, account_id: &AccountId) -> Result<Account, LedgerError> {
        let (facts, states) = self.account_states(account_id.as_str()).await?;
        Ok(account_from(&facts, states.values()))
    }

    /// One strongly consistent GetItem of an account's own item: its facts
    /// and shard 0, remembered.
    pub(super) async fn read_account_item(
        &self,
        account_id: &str,
    ) -> Result<Option<(AccountFacts, ShardState)>, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.accounts)
            .key("account_id", s(account_id))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        match output.item().map(AccountsItem::from_item).transpose()? {
            Some(AccountsItem::Account(facts, state)) => {
                self.known.remember(&facts);
                self.known.observe(account_id, 0, &state);
                Ok(Some((facts, state)))
            }
            _ => Ok(None),
        }
    }
}

/// The history entry of an account's opening balance: the first credit of
/// its shard 0.
fn opening_entry(facts: &AccountFacts) -> StoredEntry {
    let opening = facts.opening_balance_minor;
    StoredEntry {
        account_id: facts.account_id.clone(),
        shard: 0,
        sequence: 1,
        direction: Direction::Credit,
        amount_minor: opening,
        balance_after_minor: opening,
        payment: Transaction {
            transaction_id: new_transaction_id(),
            sender_id: String::new(),
            recipient_id: facts.account_id.clone(),
            amount_minor: opening,
            currency: facts.currency.clone(),
            memo: "opening balance".into(),
            created_at_ms: facts.created_at_ms,
            kind: TransactionKind::Opening,
            refund_of: String::new(),
        },
    }
}
