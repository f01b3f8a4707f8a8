//! The DynamoDB layout: keys, attributes, item codecs, the schema and error
//! mapping. Nothing else in the crate builds or reads an item.
//!
//! - [`keys`]: where each item lives, and the indexes' names;
//! - [`attributes`]: the item type and reading and writing attributes;
//! - the codecs, one per kind of item: [`accounts`] (account and shard
//!   items), [`entries`] (history entries) and [`records`] (payment, hold
//!   and refund records, fences);
//! - [`schema`]: the tables' keys and indexes, and creating them;
//! - [`errors`]: what a DynamoDB error means.

mod accounts;
mod attributes;
mod entries;
mod errors;
mod keys;
mod records;
mod schema;

pub(super) use accounts::{
    AccountFacts, AccountsItem, HoldSlot, ShardState, account_item, holds_value, need_value,
    shard_item,
};
pub(super) use attributes::{Item, get_n, get_s, n, s};
pub(super) use entries::StoredEntry;
pub(super) use errors::{build_error, is_retryable_code, sdk_error};
pub(super) use keys::{
    LISTED, LISTED_INDEX, OWNER_INDEX, OWNER_SK, TXID_INDEX, entry_pk, entry_sk, owner_pk,
    payment_pk, record_key, shard_key,
};
pub(super) use records::{
    Fence, HoldRecord, RecordLegs, StoredRecord, legs_attributes, record_item, record_legs,
};
pub use schema::IndexSchemas;
