//! Keys: where each item lives. The accounts table is keyed by account id
//! (`<account>#<shard>` for shard items); the ledger table by `pk`/`sk`:
//! `A#<account>[#<shard>]`/`E#<sequence>` for history entries,
//! `P#<sender>`/`K#<idempotency key>` for payment, hold and refund records
//! and fences, `O#<owner>`/`COUNT` for an owner's account count. Plus the
//! indexes' names.

use super::attributes::{Item, s};
use std::collections::HashMap;

/// Key of shard `shard` of an account in the accounts table: the account's
/// own id for shard 0, `<account>#<shard>` for the others (`#` cannot occur
/// in an account id, so these never collide with an account).
pub(in crate::ledger) fn shard_key(account_id: &str, shard: u32) -> String {
    if shard == 0 {
        account_id.to_owned()
    } else {
        format!("{account_id}#{shard}")
    }
}

/// Partition of one shard's history.
pub(in crate::ledger) fn entry_pk(account_id: &str, shard: u32) -> String {
    format!("A#{}", shard_key(account_id, shard))
}

pub(in crate::ledger) fn entry_sk(sequence: u64) -> String {
    format!("E#{sequence:020}")
}

pub(in crate::ledger) fn payment_pk(sender_id: &str) -> String {
    format!("P#{sender_id}")
}

pub(in crate::ledger) fn payment_sk(key: &str) -> String {
    format!("K#{key}")
}

/// The item counting an owner's accounts: `pk = "O#<owner>"`, `sk = "COUNT"`.
pub(in crate::ledger) fn owner_pk(owner: &str) -> String {
    format!("O#{owner}")
}

pub(in crate::ledger) const OWNER_SK: &str = "COUNT";

/// The value of `listed` on every account item: the partition of the
/// all-accounts index.
pub(in crate::ledger) const LISTED: &str = "ACCOUNT";
/// Index of account items by owner (`owner`, `account_id`), keys only.
pub(in crate::ledger) const OWNER_INDEX: &str = "by-owner";
/// Index of all account items (`listed`, `account_id`), keys only.
pub(in crate::ledger) const LISTED_INDEX: &str = "all-accounts";
/// Index of payment, hold and refund records by transaction id
/// (`record_txid`), keys only. Entries do not carry `record_txid`.
pub(in crate::ledger) const TXID_INDEX: &str = "by-transaction";

/// The key of the record of (sender, idempotency key).
pub(in crate::ledger) fn record_key(sender_id: &str, key: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(payment_pk(sender_id))),
        ("sk".to_owned(), s(payment_sk(key))),
    ])
}
