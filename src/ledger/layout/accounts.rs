//! The accounts table's items: an account's own item (its facts and shard
//! 0) and its shard items, each carrying one balance shard's state.

use super::attributes::{Item, get_n, get_n_or, get_s, n, s};
use super::keys::{LISTED, shard_key};
use crate::ledger::LedgerError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap};

/// The state of one balance shard, as of its `version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(in crate::ledger) struct ShardState {
    pub version: u64,
    pub balance_minor: i64,
    /// Time of the newest entry; the next entry's time is later.
    pub updated_at_ms: i64,
    /// For each other shard, the version it must have reached for a
    /// snapshot that includes this shard's version (see `shards`).
    pub need: BTreeMap<u32, u64>,
    /// The holds reserving money of this shard, by the hold's idempotency
    /// key (see `holds`). Expired ones stay until a write sweeps them.
    pub holds: BTreeMap<String, HoldSlot>,
    /// Raised by every change of `holds`; every debit is conditioned on it.
    pub holds_rev: u64,
    /// The account's shard count as this item was last told (its `shards`
    /// attribute): always on the account's own item; on a shard item only
    /// once the account was resharded (0 before). A reshard sets it on
    /// every shard at once, so any item read after a reshard shows the new
    /// count (see `reshard`).
    pub told_shards: u32,
}

/// One hold as its shard keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::ledger) struct HoldSlot {
    pub amount_minor: i64,
    pub expires_at_ms: i64,
}

pub(in crate::ledger) fn holds_value(holds: &BTreeMap<String, HoldSlot>) -> AttributeValue {
    AttributeValue::M(
        holds
            .iter()
            .map(|(key, h)| {
                (
                    key.clone(),
                    AttributeValue::M(HashMap::from([
                        ("a".to_owned(), n(h.amount_minor)),
                        ("e".to_owned(), n(h.expires_at_ms)),
                    ])),
                )
            })
            .collect(),
    )
}

fn holds_from(item: &Item) -> Result<BTreeMap<String, HoldSlot>, LedgerError> {
    let mut holds = BTreeMap::new();
    if let Some(AttributeValue::M(map)) = item.get("holds") {
        for (key, value) in map {
            let AttributeValue::M(slot) = value else {
                return Err(LedgerError::Internal(
                    "stored holds map is malformed".into(),
                ));
            };
            holds.insert(
                key.clone(),
                HoldSlot {
                    amount_minor: get_n(slot, "a")?,
                    expires_at_ms: get_n(slot, "e")?,
                },
            );
        }
    }
    Ok(holds)
}

impl ShardState {
    fn from_item(item: &Item, created_at_ms: i64) -> Result<Self, LedgerError> {
        let mut need = BTreeMap::new();
        if let Some(AttributeValue::M(map)) = item.get("need") {
            for (shard, version) in map {
                let (Ok(shard), AttributeValue::N(version)) = (shard.parse::<u32>(), version)
                else {
                    return Err(LedgerError::Internal("stored need map is malformed".into()));
                };
                let version = version.parse().map_err(|_| {
                    LedgerError::Internal("stored need version is malformed".into())
                })?;
                need.insert(shard, version);
            }
        }
        Ok(Self {
            version: get_n(item, "version")?,
            balance_minor: get_n(item, "balance")?,
            updated_at_ms: get_n_or(item, "updated_at", created_at_ms)?,
            need,
            holds: holds_from(item)?,
            holds_rev: get_n_or(item, "holds_rev", 0)?,
            told_shards: get_n_or(item, "shards", 0)?,
        })
    }

    fn attributes(&self) -> Item {
        let mut item = HashMap::from([
            ("version".into(), n(self.version)),
            ("balance".into(), n(self.balance_minor)),
            ("updated_at".into(), n(self.updated_at_ms)),
        ]);
        if !self.need.is_empty() {
            item.insert("need".into(), need_value(&self.need));
        }
        if !self.holds.is_empty() {
            item.insert("holds".into(), holds_value(&self.holds));
        }
        if self.holds_rev > 0 {
            item.insert("holds_rev".into(), n(self.holds_rev));
        }
        if self.told_shards > 0 {
            item.insert("shards".into(), n(self.told_shards));
        }
        item
    }
}

pub(in crate::ledger) fn need_value(need: &BTreeMap<u32, u64>) -> AttributeValue {
    AttributeValue::M(
        need.iter()
            .map(|(shard, version)| (shard.to_string(), n(version)))
            .collect(),
    )
}

/// What an instance knows about an account once it is open. All of it
/// never changes except `shards`, which a reshard only ever raises (see
/// `reshard`): a remembered count is a lower bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) struct AccountFacts {
    pub account_id: String,
    pub display_name: String,
    pub currency: String,
    pub created_at_ms: i64,
    pub owner: String,
    pub opening_balance_minor: i64,
    pub shards: u32,
}

/// One item of the accounts table, decoded.
pub(in crate::ledger) enum AccountsItem {
    /// An account's own item: its facts and shard 0.
    Account(AccountFacts, ShardState),
    /// Shard `shard` (1 or more) of account `account_id`.
    Shard {
        account_id: String,
        shard: u32,
        state: ShardState,
    },
}

impl AccountsItem {
    pub(in crate::ledger) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        if item.contains_key("shard_of") {
            return Ok(Self::Shard {
                account_id: get_s(item, "shard_of")?,
                shard: get_n(item, "shard")?,
                state: ShardState::from_item(item, 0)?,
            });
        }
        let created_at_ms = get_n(item, "created_at")?;
        let facts = AccountFacts {
            account_id: get_s(item, "account_id")?,
            display_name: get_s(item, "display_name")?,
            currency: get_s(item, "currency")?,
            created_at_ms,
            owner: get_s(item, "owner")?,
            opening_balance_minor: get_n(item, "opening_balance")?,
            shards: get_n_or(item, "shards", 1)?,
        };
        Ok(Self::Account(
            facts,
            ShardState::from_item(item, created_at_ms)?,
        ))
    }
}

pub(in crate::ledger) fn account_item(facts: &AccountFacts, shard0: &ShardState) -> Item {
    let mut item = shard0.attributes();
    item.extend([
        ("account_id".into(), s(&facts.account_id)),
        ("display_name".into(), s(&facts.display_name)),
        ("currency".into(), s(&facts.currency)),
        ("created_at".into(), n(facts.created_at_ms)),
        ("owner".into(), s(&facts.owner)),
        ("opening_balance".into(), n(facts.opening_balance_minor)),
        ("shards".into(), n(facts.shards)),
        // The key of the all-accounts index (shard items lack it).
        ("listed".into(), s(LISTED)),
    ]);
    item
}

pub(in crate::ledger) fn shard_item(account_id: &str, shard: u32, state: &ShardState) -> Item {
    let mut item = state.attributes();
    item.extend([
        ("account_id".into(), s(shard_key(account_id, shard))),
        ("shard_of".into(), s(account_id)),
        ("shard".into(), n(shard)),
    ]);
    item
}
