//! Raising an account's balance shards while it is being paid (see
//! docs/hot-accounts.md): by an admin's SetBalanceShards, or by an instance
//! that sees an ordinary account lose too many races (its promotion).
//!
//! # One transaction
//!
//! From `old` shards to `new` (`old < new <= 64`), in one TransactWriteItems:
//! - every old shard gets `shards = new`, conditioned on still having the
//!   old count (the account's own item) or none other (a shard item), and
//!   on its balance fitting the new, smaller share of the balance limit;
//! - every new shard is put empty, with `shards = new`, at version 0.
//!
//! No shard's version changes, so no history sequence gets a gap and no
//! writer's round is spoilt by the reshard itself (DynamoDB may still
//! cancel either side when both touch an item at the same moment).
//!
//! # Why it is safe while writers still believe the old count
//!
//! - **Money and history:** every write stays conditioned on the version of
//!   each shard it touches; a writer that knows only the old shards writes
//!   only to them, correctly.
//! - **The balance limit:** after the reshard every shard holds at most the
//!   new share: the old ones were checked by the reshard's own conditions,
//!   and a credit stays within the smallest share there is or is
//!   conditioned on the count it assumed (`round::conditions::credit_room`).
//! - **Readers:** every shard item carries the new count from the reshard
//!   on, so a snapshot that read any item after the reshard reads the new
//!   shards too, and one that read every item before it is a snapshot of
//!   that moment, when the new shards did not exist (`shards`). A page
//!   token from before the reshard lacks the new shards, whose entries are
//!   all newer than its listing (`history`).
//!
//! Lowering is refused: the shards to remove would have to hand their
//! money, holds and history to the others, and nothing needs it (an idle
//! shard costs one item and one more key in a balance read).

use super::clock::now_ms;
use super::layout::{
    AccountFacts, AccountsItem, ShardState, build_error, n, s, shard_item, shard_key,
};
use super::round::{Rounds, Written};
use super::{Account, Ledger, LedgerError};
use crate::domain::{AccountId, BALANCE_SHARDS_MAX, shard_balance_max_minor};
use aws_sdk_dynamodb::types::{
    Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

/// What a reshard did.
#[derive(Debug, Clone)]
pub struct Resharded {
    /// The account after the call, a consistent snapshot.
    pub account: Account,
    /// Whether the count was raised now (false: it was at the count asked
    /// already). After an answer that was lost, true when the count is
    /// there, by this call or another.
    pub raised: bool,
}

impl Ledger {
    /// Raises an account's balance shards to `shards` (1 to
    /// [`BALANCE_SHARDS_MAX`], checked by the domain), online and
    /// idempotently: asking for the count it has is answered with the
    /// account; asking for fewer is refused (see the module docs).
    pub async fn raise_shards(
        &self,
        account_id: &AccountId,
        shards: u32,
    ) -> Result<Resharded, LedgerError> {
        let id = account_id.as_str();
        let shards = shards.clamp(1, BALANCE_SHARDS_MAX);
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            let Some((facts, _)) = self.read_account_item(id).await? else {
                return Err(LedgerError::AccountNotFound {
                    role: "the",
                    account_id: id.to_owned(),
                });
            };
            if facts.shards == shards {
                let account = self.snapshot(&facts).await?;
                return Ok(Resharded {
                    account,
                    raised: false,
                });
            }
            if facts.shards > shards {
                return Err(LedgerError::ShardsCannotShrink {
                    account_id: id.to_owned(),
                    shards: facts.shards,
                    asked: shards,
                });
            }
            let items = self.reshard_items(&facts, shards)?;
            match self.transact(items).await? {
                Written::Committed => {
                    return self.resharded(&facts, shards).await;
                }
                Written::Cancelled(reasons) => {
                    rounds.met(&reasons)?;
                    // An old shard that holds more than the new share: the
                    // item came back with the failure, as it is now.
                    let share = shard_balance_max_minor(shards);
                    for reason in reasons.iter().take(facts.shards as usize) {
                        let Some(item) = reason.item() else { continue };
                        let (shard, state) = match AccountsItem::from_item(item)? {
                            AccountsItem::Account(_, state) => (0, state),
                            AccountsItem::Shard { shard, state, .. } => (shard, state),
                        };
                        if state.balance_minor > share {
                            return Err(LedgerError::ShardOverShare {
                                account_id: id.to_owned(),
                                shard,
                                balance_minor: state.balance_minor,
                                share_minor: share,
                                currency: facts.currency.clone(),
                            });
                        }
                    }
                    // Otherwise the count changed under this round (another
                    // reshard), or another writer held an item: go again.
                }
                Written::Unknown(cause) => {
                    return match self.read_account_item(id).await {
                        Ok(Some((now, _))) if now.shards >= shards => {
                            self.resharded(&now, now.shards).await
                        }
                        _ => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
            }
        }
        Err(rounds.exhausted())
    }

    /// The answer once the count is `shards`: the account read afresh.
    async fn resharded(&self, facts: &AccountFacts, shards: u32) -> Result<Resharded, LedgerError> {
        let raised = AccountFacts {
            shards,
            ..facts.clone()
        };
        self.known.remember(&raised);
        Ok(Resharded {
            account: self.snapshot(&raised).await?,
            raised: true,
        })
    }

    /// The items of a reshard from `facts.shards` to `shards` (see the
    /// module docs): at most 64, within DynamoDB's 100.
    fn reshard_items(
        &self,
        facts: &AccountFacts,
        shards: u32,
    ) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let id = &facts.account_id;
        let share = shard_balance_max_minor(shards);
        let mut items = Vec::with_capacity(shards as usize);
        for shard in 0..facts.shards {
            let condition = if shard == 0 {
                "shards = :old AND balance <= :share"
            } else {
                "attribute_exists(shard_of) AND balance <= :share AND (attribute_not_exists(shards) OR shards = :old)"
            };
            let update = Update::builder()
                .table_name(&self.tables.accounts)
                .key("account_id", s(shard_key(id, shard)))
                .update_expression("SET shards = :new")
                .condition_expression(condition)
                .expression_attribute_values(":new", n(shards))
                .expression_attribute_values(":old", n(facts.shards))
                .expression_attribute_values(":share", n(share))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        let empty = ShardState {
            updated_at_ms: now_ms(),
            told_shards: shards,
            ..ShardState::default()
        };
        for shard in facts.shards..shards {
            let put = Put::builder()
                .table_name(&self.tables.accounts)
                .set_item(Some(shard_item(id, shard, &empty)))
                .condition_expression("attribute_not_exists(account_id)")
                .build()
                .map_err(build_error)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(items)
    }

    /// After a lost credit race on an ordinary account: counts it, and when
    /// the races lost reach the threshold, promotes the account to the
    /// configured count of shards, once per account and instance (see
    /// [`super::Promotion`]). A promotion that fails is logged and
    /// may be tried again after as many lost races; the call that lost the
    /// race goes on either way.
    pub(super) async fn promote_if_hot(&self, account_id: &str) {
        let Some(promotion) = self.promotion else {
            return;
        };
        if self.known.shard_count(account_id) != Some(1)
            || !self.known.lost_race(account_id, &promotion)
        {
            return;
        }
        let Ok(id) = AccountId::parse("account_id", account_id) else {
            return;
        };
        match self.raise_shards(&id, promotion.shards).await {
            Ok(done) => tracing::info!(
                account_id,
                shards = done.account.shards(),
                raised = done.raised,
                "promoted a hot account to balance shards"
            ),
            // Raised past the target already, by an admin or another
            // instance: nothing to do.
            Err(LedgerError::ShardsCannotShrink { .. }) => {}
            Err(err) => {
                self.known.promotion_failed(account_id);
                tracing::warn!(account_id, %err, "promoting a hot account failed; will try again");
            }
        }
    }
}
