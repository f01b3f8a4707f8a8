//! The conditions a transfer puts on a balance shard: its version, its
//! holds exactly as read, a debit covered by its balance and a credit within
//! its share of the balance limit.

use super::transfer::Leg;
use crate::domain::{BALANCE_SHARDS_MAX, shard_balance_max_minor};
use crate::ledger::layout::{
    Item, ShardState, build_error, holds_value, n, need_value, s, shard_key,
};
use crate::ledger::{Direction, Ledger, LedgerError};
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, Update};
use std::collections::HashMap;

impl Ledger {
    /// An update of one shard by a transfer: the version and, for a debit,
    /// the holds exactly as known, the debit covered by the balance and the
    /// credit within the shard's share of the balance limit.
    pub(super) fn shard_update(
        &self,
        account_id: &str,
        leg: &Leg,
        direction: Direction,
        write_need: bool,
        room: Room,
    ) -> Result<Update, LedgerError> {
        let (before, after) = (&leg.before, &leg.after);
        let mut values = HashMap::from([
            (":amount".to_owned(), n(leg.part_minor)),
            (":version".to_owned(), n(before.version)),
            (":next_version".to_owned(), n(after.version)),
            (":at".to_owned(), n(after.updated_at_ms)),
        ]);
        let (mut update, mut condition) = match direction {
            Direction::Debit => (
                "SET balance = balance - :amount, version = :next_version, updated_at = :at"
                    .to_owned(),
                "version = :version AND balance >= :amount".to_owned(),
            ),
            Direction::Credit => (
                "SET balance = balance + :amount, version = :next_version, updated_at = :at"
                    .to_owned(),
                format!("version = :version AND {}", credit_room(room, &mut values)),
            ),
        };
        if write_need {
            update.push_str(", need = :need");
            values.insert(":need".into(), need_value(&after.need));
        }
        if direction == Direction::Debit {
            // A debit spends only available money, computed from the holds
            // as known: they must be exactly these.
            condition.push_str(" AND ");
            condition.push_str(&holds_pin(before, &mut values));
            if after.holds_rev != before.holds_rev {
                update.push_str(&holds_set(after, &mut values));
            }
        }
        Update::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(shard_key(account_id, leg.shard)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)
    }
}

/// What a credit must leave room for: `amount_minor` within the shard's
/// share of the balance limit, for an account of `shards` shards as the
/// writer knows it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Room {
    pub shards: u32,
    pub amount_minor: i64,
}

impl Room {
    pub(super) const NONE: Room = Room {
        shards: 1,
        amount_minor: 0,
    };
}

/// The condition that a credit stays within its shard's share of the
/// balance limit, exactly, whatever count of shards the writer believes.
///
/// The share is the limit divided by the account's shard count, and a
/// reshard only raises the count (after checking that every old shard
/// already fits the new, smaller share). So a credit that leaves the shard
/// within the smallest share there is (that of [`BALANCE_SHARDS_MAX`]
/// shards) fits whatever the count is now, and needs no more: a writer that
/// still believes the old count commits. Only a credit past that share
/// depends on the count, and then it is conditioned on it: the shard's
/// `shards` attribute is the writer's count, or absent (a shard of an
/// account never resharded, whose count is the one it opened with).
fn credit_room(room: Room, values: &mut Item) -> String {
    let own = shard_balance_max_minor(room.shards) - room.amount_minor;
    let least = shard_balance_max_minor(BALANCE_SHARDS_MAX) - room.amount_minor;
    values.insert(":room".into(), n(own));
    if room.shards >= BALANCE_SHARDS_MAX {
        return "balance <= :room".into();
    }
    values.insert(":least_room".into(), n(least));
    values.insert(":shards".into(), n(room.shards));
    "(balance <= :least_room OR (balance <= :room AND (attribute_not_exists(shards) OR shards = :shards)))".into()
}

/// The condition that a shard's holds are still as `before` knew them.
pub(in crate::ledger) fn holds_pin(before: &ShardState, values: &mut Item) -> String {
    if before.holds_rev == 0 {
        "attribute_not_exists(holds_rev)".to_owned()
    } else {
        values.insert(":holds_rev".into(), n(before.holds_rev));
        "holds_rev = :holds_rev".to_owned()
    }
}

/// The part of a SET that writes a shard's holds as `after` has them
/// (", holds = ..., holds_rev = ..."); an empty map is written as such.
pub(in crate::ledger) fn holds_set(after: &ShardState, values: &mut Item) -> String {
    values.insert(":holds".into(), holds_value(&after.holds));
    values.insert(":next_holds_rev".into(), n(after.holds_rev));
    ", holds = :holds, holds_rev = :next_holds_rev".to_owned()
}
