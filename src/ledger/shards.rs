//! The hot-account mechanism: balance shards (see docs/hot-accounts.md).
//!
//! An account opened with `shards` > 1 keeps its balance in that many
//! items, each with its own version and its own history partition. A
//! credit touches exactly one shard, so independent writers paying the
//! same merchant each take a shard instead of queueing on one item. A debit
//! takes one shard when one holds enough, else several in one transaction.
//!
//! # A consistent balance over shards
//!
//! Reading all shards with one strongly consistent BatchGetItem sees every
//! payment committed before the read, but the items are read one by one:
//! a debit that took two shards at once could be seen in one shard and not
//! yet in the other. So a debit of several shards writes into each of them
//! `need`: for every other shard it touched, the version that shard reached
//! with it (merged with what the shard needed already). A set of shard
//! states is a consistent snapshot exactly when every shard's version is at
//! least what every other shard's `need` asks of it; [`Ledger::snapshot`]
//! re-reads the shards that lag until that holds. Such debits are rare
//! (a merchant paying out more than one shard holds), so it almost never
//! costs a second read.

use super::clock::now_ms;
use super::layout::{
    AccountFacts, AccountsItem, Item, ShardState, build_error, s, sdk_error, shard_key,
};
use super::{Account, Ledger, LedgerError};
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnConsumedCapacity};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use crate::domain::BALANCE_SHARDS_MAX;

/// Most BatchGetItem calls one read makes while DynamoDB leaves keys
/// unprocessed (throttling) or shards lag behind a multi-shard debit.
const READ_ROUNDS_MAX: u32 = 6;
/// Pause between such rounds.
const READ_ROUND_PAUSE: Duration = Duration::from_millis(5);
/// BatchGetItem takes at most 100 keys; one account has at most 64 shards.
const BATCH_KEYS_MAX: usize = 100;

impl Ledger {
    /// Reads items of the accounts table by key with strongly consistent
    /// BatchGetItems (retrying unprocessed keys), decoded. Missing keys are
    /// simply absent from the result.
    pub(super) async fn read_accounts_items(
        &self,
        keys: &[String],
    ) -> Result<Vec<AccountsItem>, LedgerError> {
        Ok(self.read_items(keys, None).await?.0)
    }

    /// Like [`Self::read_accounts_items`], and in the same BatchGetItem the
    /// ledger item with key `record` (a payment record), if given.
    pub(super) async fn read_items(
        &self,
        keys: &[String],
        record: Option<Item>,
    ) -> Result<(Vec<AccountsItem>, Option<Item>), LedgerError> {
        let mut pending: Vec<Item> = keys
            .iter()
            .map(|k| HashMap::from([("account_id".to_owned(), s(k))]))
            .collect();
        pending.dedup();
        let mut pending_record = record;
        let mut found = Vec::new();
        let mut found_record = None;
        for round in 0..READ_ROUNDS_MAX {
            if pending.is_empty() && pending_record.is_none() {
                return Ok((found, found_record));
            }
            if round > 0 {
                tokio::time::sleep(READ_ROUND_PAUSE * round).await;
            }
            let batch: Vec<Item> = pending
                .drain(..pending.len().min(BATCH_KEYS_MAX - 1))
                .collect();
            let mut request = self.client.batch_get_item();
            if !batch.is_empty() {
                request = request.request_items(
                    &self.tables.accounts,
                    KeysAndAttributes::builder()
                        .set_keys(Some(batch))
                        .consistent_read(true)
                        .build()
                        .map_err(build_error)?,
                );
            }
            if let Some(key) = pending_record.take() {
                request = request.request_items(
                    &self.tables.ledger,
                    KeysAndAttributes::builder()
                        .keys(key)
                        .consistent_read(true)
                        .build()
                        .map_err(build_error)?,
                );
            }
            let output = request
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            let responses = output.responses();
            for item in responses
                .and_then(|r| r.get(&self.tables.accounts))
                .into_iter()
                .flatten()
            {
                found.push(AccountsItem::from_item(item)?);
            }
            if let Some(item) = responses
                .and_then(|r| r.get(&self.tables.ledger))
                .and_then(|items| items.first())
            {
                found_record = Some(item.clone());
            }
            if let Some(unprocessed) = output.unprocessed_keys() {
                if let Some(left) = unprocessed.get(&self.tables.accounts) {
                    pending.extend(left.keys().iter().cloned());
                }
                if let Some(left) = unprocessed.get(&self.tables.ledger) {
                    pending_record = left.keys().first().cloned();
                }
            }
        }
        if pending.is_empty() && pending_record.is_none() {
            Ok((found, found_record))
        } else {
            Err(LedgerError::Unavailable(
                "BatchGetItem: DynamoDB kept leaving keys unprocessed (throttling)".into(),
            ))
        }
    }

    /// Reads the given shards of an account and remembers them.
    pub(super) async fn read_shards(
        &self,
        account_id: &str,
        shards: &[u32],
    ) -> Result<BTreeMap<u32, ShardState>, LedgerError> {
        let keys: Vec<String> = shards.iter().map(|&k| shard_key(account_id, k)).collect();
        let mut states = BTreeMap::new();
        for item in self.read_accounts_items(&keys).await? {
            let (shard, state) = match item {
                AccountsItem::Account(facts, state) if facts.account_id == account_id => {
                    self.known.remember(&facts);
                    (0, state)
                }
                AccountsItem::Shard {
                    account_id: of,
                    shard,
                    state,
                } if of == account_id => (shard, state),
                _ => continue,
            };
            self.known.observe(account_id, shard, &state);
            states.insert(shard, state);
        }
        Ok(states)
    }

    /// The state of every shard of an account (shard 0 first), one
    /// consistent snapshot, with its facts: one strongly consistent GetItem
    /// for an ordinary account, else [`Self::snapshot_states`].
    pub(super) async fn account_states(
        &self,
        account_id: &str,
    ) -> Result<(AccountFacts, BTreeMap<u32, ShardState>), LedgerError> {
        let known = self.known.get(account_id).map(|k| k.facts);
        let facts = match known {
            Some(facts) if facts.shards > 1 => facts,
            // An ordinary account: one strongly consistent GetItem, always.
            _ => match self.read_account_item(account_id).await? {
                Some((facts, state)) if facts.shards == 1 => {
                    return Ok((facts, BTreeMap::from([(0, state)])));
                }
                Some((facts, _)) => facts,
                None => {
                    return Err(LedgerError::AccountNotFound {
                        role: "the",
                        account_id: account_id.to_owned(),
                    });
                }
            },
        };
        self.snapshot_states(&facts).await
    }

    /// A consistent snapshot of every shard of an account (see the module
    /// docs): usually one BatchGetItem. `facts` may hold a count of shards
    /// from before a reshard: every shard item read after a reshard shows
    /// the new count, and then the new shards are read too. (If every item
    /// was read before the reshard, the new shards did not exist yet: the
    /// snapshot is of that moment, and complete.)
    pub(super) async fn snapshot(&self, facts: &AccountFacts) -> Result<Account, LedgerError> {
        let (facts, states) = self.snapshot_states(facts).await?;
        Ok(account_from(&facts, states.values()))
    }

    /// [`Self::snapshot`] as each shard's state (shard 0 first), with the
    /// facts it found (their count of shards raised by a reshard it saw).
    pub(super) async fn snapshot_states(
        &self,
        facts: &AccountFacts,
    ) -> Result<(AccountFacts, BTreeMap<u32, ShardState>), LedgerError> {
        let mut facts = facts.clone();
        let all: Vec<u32> = (0..facts.shards).collect();
        let mut states = self.read_shards(&facts.account_id, &all).await?;
        for _ in 0..READ_ROUNDS_MAX {
            let told = states.values().map(|s| s.told_shards).max().unwrap_or(0);
            if told > facts.shards {
                let added: Vec<u32> = (facts.shards..told.min(BALANCE_SHARDS_MAX)).collect();
                facts.shards = told.min(BALANCE_SHARDS_MAX);
                states.extend(self.read_shards(&facts.account_id, &added).await?);
                continue;
            }
            if states.len() != facts.shards as usize {
                return Err(LedgerError::Internal(format!(
                    "account {} has {} shards but {} shard items",
                    facts.account_id,
                    facts.shards,
                    states.len()
                )));
            }
            let lagging = lagging_shards(&states);
            if lagging.is_empty() {
                return Ok((facts, states));
            }
            tokio::time::sleep(READ_ROUND_PAUSE).await;
            states.extend(self.read_shards(&facts.account_id, &lagging).await?);
        }
        Err(LedgerError::Unavailable(format!(
            "the shards of account {} kept changing while being read; retry",
            facts.account_id
        )))
    }
}

/// The shards whose version is below what another shard needs of it.
fn lagging_shards(states: &BTreeMap<u32, ShardState>) -> Vec<u32> {
    let mut lagging: Vec<u32> = states
        .values()
        .flat_map(|state| state.need.iter())
        .filter(|(shard, version)| states.get(shard).is_some_and(|s| s.version < **version))
        .map(|(shard, _)| *shard)
        .collect();
    lagging.sort_unstable();
    lagging.dedup();
    lagging
}

pub(super) fn account_from<'a>(
    facts: &AccountFacts,
    states: impl Iterator<Item = &'a ShardState>,
) -> Account {
    let now = now_ms();
    let mut balance_minor = 0i64;
    let mut held_minor = 0i64;
    let mut shard_versions = Vec::with_capacity(facts.shards as usize);
    for state in states {
        // Each shard holds at most its share of the limit: no overflow.
        balance_minor = balance_minor.saturating_add(state.balance_minor);
        held_minor = held_minor.saturating_add(state.held_at(now));
        shard_versions.push(state.version);
    }
    Account {
        account_id: facts.account_id.clone(),
        display_name: facts.display_name.clone(),
        currency: facts.currency.clone(),
        balance_minor,
        created_at_ms: facts.created_at_ms,
        owner: facts.owner.clone(),
        opening_balance_minor: facts.opening_balance_minor,
        shard_versions,
        held_minor,
    }
}

/// The `need` each shard of a multi-shard debit carries after it: what it
/// needed before, raised to the new version of every other shard taken.
pub(super) fn merged_needs(legs: &[(u32, &ShardState)]) -> BTreeMap<u32, BTreeMap<u32, u64>> {
    legs.iter()
        .map(|(shard, state)| {
            let mut need = state.need.clone();
            if legs.len() > 1 {
                for (other, other_state) in legs {
                    if other != shard {
                        let next = other_state.version + 1;
                        let slot = need.entry(*other).or_insert(next);
                        *slot = (*slot).max(next);
                    }
                }
            }
            (*shard, need)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(version: u64, need: &[(u32, u64)]) -> ShardState {
        ShardState {
            version,
            balance_minor: 0,
            updated_at_ms: 0,
            need: need.iter().copied().collect(),
            ..ShardState::default()
        }
    }

    #[test]
    fn a_shard_lags_when_another_needs_a_newer_version_of_it() {
        let states = BTreeMap::from([
            (0, state(5, &[(1, 3)])),
            (1, state(2, &[])),
            (2, state(9, &[])),
        ]);
        assert_eq!(lagging_shards(&states), vec![1]);
        let states = BTreeMap::from([(0, state(5, &[(1, 3)])), (1, state(3, &[(0, 5)]))]);
        assert!(lagging_shards(&states).is_empty());
    }

    #[test]
    fn needs_of_a_multi_shard_debit_point_at_each_other_and_keep_the_old() {
        let a = state(4, &[(2, 7)]);
        let b = state(10, &[]);
        let needs = merged_needs(&[(0, &a), (1, &b)]);
        assert_eq!(needs[&0], BTreeMap::from([(1, 11), (2, 7)]));
        assert_eq!(needs[&1], BTreeMap::from([(0, 5)]));
        // A single-shard debit or credit leaves need as it was.
        assert_eq!(merged_needs(&[(0, &a)])[&0], a.need);
    }
}
