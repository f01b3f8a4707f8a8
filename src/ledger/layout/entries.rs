//! History entries (`A#<account>[#<shard>]`, `E#<sequence>`) and the
//! transaction attributes they and the records share.

use super::attributes::{Item, get_n, get_n_or, get_s, n, s};
use super::keys::{entry_pk, entry_sk};
use crate::domain::PaymentOrder;
use crate::ledger::{Direction, LedgerError, Transaction, TransactionKind};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

impl Transaction {
    pub(in crate::ledger) fn attributes(&self) -> Item {
        let mut item = HashMap::from([
            ("transaction_id".into(), s(&self.transaction_id)),
            ("sender_id".into(), s(&self.sender_id)),
            ("recipient_id".into(), s(&self.recipient_id)),
            ("amount".into(), n(self.amount_minor)),
            ("currency".into(), s(&self.currency)),
            ("memo".into(), s(&self.memo)),
            ("created_at".into(), n(self.created_at_ms)),
        ]);
        if self.kind != TransactionKind::Payment {
            item.insert("kind".into(), s(self.kind.as_str()));
        }
        if !self.refund_of.is_empty() {
            item.insert("refund_of".into(), s(&self.refund_of));
        }
        item
    }

    pub(in crate::ledger) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        let sender_id = get_s(item, "sender_id")?;
        let kind = match item.get("kind") {
            Some(AttributeValue::S(kind)) => TransactionKind::parse(kind)?,
            _ if sender_id.is_empty() => TransactionKind::Opening,
            _ => TransactionKind::Payment,
        };
        Ok(Self {
            transaction_id: get_s(item, "transaction_id")?,
            sender_id,
            recipient_id: get_s(item, "recipient_id")?,
            amount_minor: get_n(item, "amount")?,
            currency: get_s(item, "currency")?,
            memo: get_s(item, "memo")?,
            created_at_ms: get_n(item, "created_at")?,
            kind,
            refund_of: match item.get("refund_of") {
                Some(AttributeValue::S(id)) => id.clone(),
                _ => String::new(),
            },
        })
    }

    /// Whether a stored payment was made by the same order (same key and
    /// sender are implied by the record's key).
    pub(in crate::ledger) fn matches(&self, order: &PaymentOrder) -> bool {
        self.recipient_id == order.recipient_id.as_str()
            && self.amount_minor == order.amount_minor
            && self.currency == order.currency.as_str()
            && self.memo == order.memo
    }
}

impl TransactionKind {
    pub(in crate::ledger) fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Payment => "PAYMENT",
            TransactionKind::Capture => "CAPTURE",
            TransactionKind::Refund => "REFUND",
            TransactionKind::Opening => "OPENING",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "PAYMENT" => TransactionKind::Payment,
            "CAPTURE" => TransactionKind::Capture,
            "REFUND" => TransactionKind::Refund,
            "OPENING" => TransactionKind::Opening,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored transaction has kind {other:?}"
                )));
            }
        })
    }
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Debit => "DEBIT",
            Direction::Credit => "CREDIT",
        }
    }
}

/// One history entry as stored in one shard: `amount_minor` is what this
/// shard gave or got (for a payment drawn from several shards, its part),
/// and `balance_after_minor` is the shard's balance after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) struct StoredEntry {
    pub account_id: String,
    pub shard: u32,
    pub sequence: u64,
    pub direction: Direction,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub payment: Transaction,
}

impl StoredEntry {
    pub(in crate::ledger) fn to_item(&self) -> Item {
        let mut item = self.payment.attributes();
        item.extend([
            ("pk".into(), s(entry_pk(&self.account_id, self.shard))),
            ("sk".into(), s(entry_sk(self.sequence))),
            ("account_id".into(), s(&self.account_id)),
            ("shard".into(), n(self.shard)),
            ("sequence".into(), n(self.sequence)),
            ("direction".into(), s(self.direction.as_str())),
            ("entry_amount".into(), n(self.amount_minor)),
            ("balance_after".into(), n(self.balance_after_minor)),
        ]);
        item
    }

    pub(in crate::ledger) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        let direction = match get_s(item, "direction")?.as_str() {
            "DEBIT" => Direction::Debit,
            "CREDIT" => Direction::Credit,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored entry has direction {other:?}"
                )));
            }
        };
        let payment = Transaction::from_item(item)?;
        Ok(Self {
            account_id: get_s(item, "account_id")?,
            shard: get_n_or(item, "shard", 0)?,
            sequence: get_n(item, "sequence")?,
            direction,
            amount_minor: get_n_or(item, "entry_amount", payment.amount_minor)?,
            balance_after_minor: get_n(item, "balance_after")?,
            payment,
        })
    }
}
