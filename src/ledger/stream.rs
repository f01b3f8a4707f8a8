//! Reading the tables' DynamoDB Streams: what one stream record says
//! happened, decided by the key layout (see the module's `# Layout`). The
//! event publisher (`crate::events`) turns these into events; it never
//! reads an attribute itself.
//!
//! Every item either moves money or is one of the documented items that
//! do not ([`NoMovement`]). Anything else — an item of a shape the ledger
//! never writes, a change the ledger never makes (an entry modified, any
//! item removed), an attribute missing — is an error, never a skip.

use super::layout::{
    AccountsItem, StoredEntry, StoredRecord, build_error, entry_pk, owner_pk, payment_pk, sdk_error,
};
use super::{
    Direction, Hold, HoldState, Ledger, LedgerError, Tables, Transaction, TransactionKind,
};
use aws_sdk_dynamodb::types::{AttributeValue, StreamSpecification, StreamViewType};
use std::collections::HashMap;

/// An item's key or image, as a stream record carries it.
pub type Image = HashMap<String, AttributeValue>;

/// The stream view both tables need: a hold's capture and void are told
/// from a refund's later tally on the same record only by the old image.
/// template.yaml must declare it on both tables (a test checks).
pub const STREAM_VIEW_TYPE: &str = "NEW_AND_OLD_IMAGES";

/// What happened to an item, as a stream record's `eventName` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

impl ChangeKind {
    /// `INSERT`, `MODIFY` or `REMOVE`; None for anything else.
    pub fn parse(event_name: &str) -> Option<Self> {
        match event_name {
            "INSERT" => Some(Self::Insert),
            "MODIFY" => Some(Self::Modify),
            "REMOVE" => Some(Self::Remove),
            _ => None,
        }
    }
}

/// One stream record: which table, what happened, and the item's key and
/// images (an image the record lacks is empty).
#[derive(Debug, Clone, Copy)]
pub struct StreamChange<'a> {
    pub table_name: &'a str,
    pub kind: ChangeKind,
    pub keys: &'a Image,
    pub old_image: &'a Image,
    pub new_image: &'a Image,
}

/// An account as it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedAccount {
    pub account_id: String,
    pub display_name: String,
    pub currency: String,
    /// The `sub` of the identity that opened it.
    pub owner: String,
    pub opening_balance_minor: i64,
    pub balance_shards: u32,
    pub created_at_ms: i64,
}

/// One history entry as posted to one balance shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedEntry {
    pub account_id: String,
    pub shard: u32,
    /// Its position in the shard's history (1 = oldest), gap-free.
    pub sequence: u64,
    pub direction: Direction,
    /// What this shard gave or got (for a payment drawn from several
    /// shards of a sharded sender, this shard's part).
    pub amount_minor: i64,
    /// The shard's balance right after it (for an ordinary account, the
    /// account's balance).
    pub balance_after_minor: i64,
    /// The transaction it belongs to.
    pub payment: Transaction,
}

/// What one stream record means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerChange {
    AccountOpened(OpenedAccount),
    PaymentCommitted(Transaction),
    RefundCommitted(Transaction),
    /// The hold as placed (state Open).
    HoldAuthorized(Hold),
    /// The hold as captured, and its capture as a transaction.
    HoldCaptured {
        hold: Hold,
        capture: Transaction,
    },
    HoldVoided(Hold),
    EntryPosted(PostedEntry),
    NoMovement(NoMovement),
}

/// The items whose changes move no money, by the key layout. The money
/// they follow is moved, and told, by items of the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMovement {
    /// A balance shard's state in the accounts table changed (balance,
    /// version, holds, a reshard's count), or a further shard item was
    /// created: every such change is the accounts-table side of a
    /// transaction whose ledger-table items (entries, records) tell it.
    ShardState,
    /// A fence (`P#<sender>`/`K#<key>` with `fence`): GetPayment with
    /// finalize closed a key under which nothing happened.
    Fence,
    /// An owner's account count (`O#<owner>`/`COUNT`).
    OwnerCount,
    /// A payment's or capture's refunded total was raised: the refund's
    /// own record (and its entries) tell the refund.
    RefundedTotal,
}

impl NoMovement {
    /// In a word, for logs and docs.
    pub fn as_str(self) -> &'static str {
        match self {
            NoMovement::ShardState => "shard-state",
            NoMovement::Fence => "fence",
            NoMovement::OwnerCount => "owner-count",
            NoMovement::RefundedTotal => "refunded-total",
        }
    }
}

fn unexpected(what: impl std::fmt::Display) -> LedgerError {
    LedgerError::Internal(format!("stream record: {what}"))
}

/// Decodes one stream record of either table.
pub fn decode(tables: &Tables, change: StreamChange<'_>) -> Result<LedgerChange, LedgerError> {
    if change.table_name == tables.accounts {
        decode_accounts(change)
    } else if change.table_name == tables.ledger {
        decode_ledger(change)
    } else {
        Err(unexpected(format_args!(
            "table {:?} is neither the accounts table {:?} nor the ledger table {:?}",
            change.table_name, tables.accounts, tables.ledger
        )))
    }
}

fn decode_accounts(change: StreamChange<'_>) -> Result<LedgerChange, LedgerError> {
    match change.kind {
        ChangeKind::Insert => match AccountsItem::from_item(change.new_image)? {
            AccountsItem::Account(facts, _) => Ok(LedgerChange::AccountOpened(OpenedAccount {
                account_id: facts.account_id,
                display_name: facts.display_name,
                currency: facts.currency,
                owner: facts.owner,
                opening_balance_minor: facts.opening_balance_minor,
                balance_shards: facts.shards,
                created_at_ms: facts.created_at_ms,
            })),
            AccountsItem::Shard { .. } => Ok(LedgerChange::NoMovement(NoMovement::ShardState)),
        },
        ChangeKind::Modify => {
            // Decoded all the same: an item of the accounts table that the
            // ledger cannot read is an error, not a skip.
            AccountsItem::from_item(change.new_image)?;
            Ok(LedgerChange::NoMovement(NoMovement::ShardState))
        }
        ChangeKind::Remove => Err(unexpected(
            "an item of the accounts table was removed; the ledger never removes one",
        )),
    }
}

fn decode_ledger(change: StreamChange<'_>) -> Result<LedgerChange, LedgerError> {
    let pk = match change.keys.get("pk") {
        Some(AttributeValue::S(pk)) => pk.as_str(),
        _ => return Err(unexpected("a ledger-table record without a string pk")),
    };
    if pk.starts_with(&entry_pk("", 0)) {
        return match change.kind {
            ChangeKind::Insert => Ok(LedgerChange::EntryPosted(posted(StoredEntry::from_item(
                change.new_image,
            )?))),
            _ => Err(unexpected(format_args!(
                "history entry {pk:?} was modified or removed; entries are written once"
            ))),
        };
    }
    if pk.starts_with(&payment_pk("")) {
        return decode_record(change);
    }
    if pk.starts_with(&owner_pk("")) && change.kind != ChangeKind::Remove {
        return Ok(LedgerChange::NoMovement(NoMovement::OwnerCount));
    }
    Err(unexpected(format_args!(
        "{:?} of ledger-table item {pk:?}, which the ledger never makes",
        change.kind
    )))
}

/// A payment, hold, refund or fence record (`P#<sender>`).
fn decode_record(change: StreamChange<'_>) -> Result<LedgerChange, LedgerError> {
    let new = match change.kind {
        ChangeKind::Remove => return Err(unexpected("a payment record was removed")),
        _ => StoredRecord::from_item(change.new_image)?,
    };
    if change.kind == ChangeKind::Insert {
        return match new {
            StoredRecord::Fence(_) => Ok(LedgerChange::NoMovement(NoMovement::Fence)),
            StoredRecord::Hold(hold) if hold.state == HoldState::Open => Ok(
                LedgerChange::HoldAuthorized(hold.view(hold.payment.created_at_ms)),
            ),
            StoredRecord::Transfer { payment, .. } if payment.kind == TransactionKind::Payment => {
                Ok(LedgerChange::PaymentCommitted(payment))
            }
            StoredRecord::Transfer { payment, .. } if payment.kind == TransactionKind::Refund => {
                Ok(LedgerChange::RefundCommitted(payment))
            }
            other => Err(unexpected(format_args!(
                "a {} record was created in a state the ledger never creates",
                other.kind_name()
            ))),
        };
    }
    let old = StoredRecord::from_item(change.old_image)?;
    match (old, new) {
        (StoredRecord::Hold(before), StoredRecord::Hold(after))
            if before.state == HoldState::Open && after.state != HoldState::Open =>
        {
            let hold = after.view(after.settled_at_ms);
            match (after.state, after.capture()) {
                (HoldState::Captured, Some(capture)) => {
                    Ok(LedgerChange::HoldCaptured { hold, capture })
                }
                (HoldState::Voided, _) => Ok(LedgerChange::HoldVoided(hold)),
                _ => Err(unexpected("a hold left OPEN for a state it cannot reach")),
            }
        }
        (StoredRecord::Hold(before), StoredRecord::Hold(after))
            if before.state == after.state && after.refunded_minor > before.refunded_minor =>
        {
            Ok(LedgerChange::NoMovement(NoMovement::RefundedTotal))
        }
        (
            StoredRecord::Transfer {
                refunded_minor: before,
                ..
            },
            StoredRecord::Transfer {
                refunded_minor: after,
                ..
            },
        ) if after > before => Ok(LedgerChange::NoMovement(NoMovement::RefundedTotal)),
        (old, new) => Err(unexpected(format_args!(
            "a {} record changed into a {} record in a way the ledger never changes one",
            old.kind_name(),
            new.kind_name()
        ))),
    }
}

fn posted(entry: StoredEntry) -> PostedEntry {
    PostedEntry {
        account_id: entry.account_id,
        shard: entry.shard,
        sequence: entry.sequence,
        direction: entry.direction,
        amount_minor: entry.amount_minor,
        balance_after_minor: entry.balance_after_minor,
        payment: entry.payment,
    }
}

impl Ledger {
    /// Turns on both tables' streams ([`STREAM_VIEW_TYPE`]) where they are
    /// off: for DynamoDB Local and tests (deployed tables get theirs from
    /// template.yaml).
    pub async fn enable_streams(&self) -> Result<(), LedgerError> {
        for table in [&self.tables.accounts, &self.tables.ledger] {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            let enabled = described
                .table()
                .and_then(|t| t.stream_specification())
                .is_some_and(|s| s.stream_enabled());
            if enabled {
                continue;
            }
            self.client
                .update_table()
                .table_name(table)
                .stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(StreamViewType::from(STREAM_VIEW_TYPE))
                        .build()
                        .map_err(build_error)?,
                )
                .send()
                .await
                .map_err(|e| sdk_error("UpdateTable", e))?;
        }
        Ok(())
    }
}

impl Direction {
    /// `DEBIT` or `CREDIT`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Debit => "DEBIT",
            Direction::Credit => "CREDIT",
        }
    }
}

impl TransactionKind {
    /// `PAYMENT`, `CAPTURE`, `REFUND` or `OPENING`.
    pub fn name(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::layout::{HoldRecord, Item, RecordLegs, n, record_item};

    fn tables() -> Tables {
        Tables {
            accounts: "acc".into(),
            ledger: "led".into(),
        }
    }

    fn payment(kind: TransactionKind) -> Transaction {
        Transaction {
            transaction_id: "t1".into(),
            sender_id: "alice".into(),
            recipient_id: "bob".into(),
            amount_minor: 250,
            currency: "EUR".into(),
            memo: "tea".into(),
            created_at_ms: 1_000,
            kind,
            refund_of: String::new(),
        }
    }

    fn keys(item: &Item) -> Item {
        item.iter()
            .filter(|(k, _)| *k == "pk" || *k == "sk")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn decode_ledger_item(
        kind: ChangeKind,
        old: &Item,
        new: &Item,
    ) -> Result<LedgerChange, LedgerError> {
        let keys = keys(if new.is_empty() { old } else { new });
        decode(
            &tables(),
            StreamChange {
                table_name: "led",
                kind,
                keys: &keys,
                old_image: old,
                new_image: new,
            },
        )
    }

    /// A hold record as the ledger leaves it: put open, then updated by
    /// a capture or a void (which set what `to_item` does not write).
    fn hold(state: HoldState, refunded_minor: i64) -> Item {
        let mut item = HoldRecord {
            idempotency_key: "k".into(),
            payment: payment(TransactionKind::Capture),
            expires_at_ms: 9_000,
            shard: 0,
            state,
            captured_minor: 0,
            settled_at_ms: 0,
            capture_round: String::new(),
            refunded_minor: 0,
        }
        .to_item();
        if state != HoldState::Open {
            item.insert("settled_at".into(), n(2_000));
        }
        if state == HoldState::Captured {
            item.insert("captured_amount".into(), n(200));
        }
        if refunded_minor > 0 {
            item.insert("refunded".into(), n(refunded_minor));
        }
        item
    }

    #[test]
    fn records_decode_by_kind_and_transition() {
        let legs = RecordLegs {
            debits: vec![(0, 2, 250)],
            credit: (0, 3),
        };
        let empty = Item::new();
        let paid = record_item(&payment(TransactionKind::Payment), "k", &legs);
        assert_eq!(
            decode_ledger_item(ChangeKind::Insert, &empty, &paid).unwrap(),
            LedgerChange::PaymentCommitted(payment(TransactionKind::Payment))
        );
        let mut refunded = paid.clone();
        refunded.insert("refunded".into(), n(10));
        assert_eq!(
            decode_ledger_item(ChangeKind::Modify, &paid, &refunded).unwrap(),
            LedgerChange::NoMovement(NoMovement::RefundedTotal)
        );
        // The same image twice is a change the ledger never makes.
        assert!(decode_ledger_item(ChangeKind::Modify, &paid, &paid).is_err());
        assert!(decode_ledger_item(ChangeKind::Remove, &paid, &empty).is_err());

        let open = hold(HoldState::Open, 0);
        assert!(matches!(
            decode_ledger_item(ChangeKind::Insert, &empty, &open).unwrap(),
            LedgerChange::HoldAuthorized(h) if h.state == HoldState::Open && h.amount_minor == 250
        ));
        let captured = hold(HoldState::Captured, 0);
        match decode_ledger_item(ChangeKind::Modify, &open, &captured).unwrap() {
            LedgerChange::HoldCaptured { hold, capture } => {
                assert_eq!(hold.state, HoldState::Captured);
                assert_eq!(capture.amount_minor, 200);
                assert_eq!(capture.created_at_ms, 2_000);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode_ledger_item(ChangeKind::Modify, &open, &hold(HoldState::Voided, 0)).unwrap(),
            LedgerChange::HoldVoided(h) if h.state == HoldState::Voided && h.settled_at_ms == 2_000
        ));
        assert_eq!(
            decode_ledger_item(
                ChangeKind::Modify,
                &captured,
                &hold(HoldState::Captured, 50)
            )
            .unwrap(),
            LedgerChange::NoMovement(NoMovement::RefundedTotal)
        );
    }

    #[test]
    fn unknown_items_are_errors_not_skips() {
        let empty = Item::new();
        let stray = Item::from([
            ("pk".to_owned(), super::super::layout::s("X#1")),
            ("sk".to_owned(), super::super::layout::s("1")),
        ]);
        assert!(decode_ledger_item(ChangeKind::Insert, &empty, &stray).is_err());
        // A record lacking what a payment record has.
        let broken = Item::from([
            ("pk".to_owned(), super::super::layout::s("P#alice")),
            ("sk".to_owned(), super::super::layout::s("K#k")),
        ]);
        assert!(decode_ledger_item(ChangeKind::Insert, &empty, &broken).is_err());
        let other_table = decode(
            &tables(),
            StreamChange {
                table_name: "elsewhere",
                kind: ChangeKind::Insert,
                keys: &stray,
                old_image: &empty,
                new_image: &stray,
            },
        );
        assert!(other_table.is_err());
    }
}
