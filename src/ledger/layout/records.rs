//! The ledger table's records (`P#<sender>`, `K#<idempotency key>`):
//! payments and refunds with where their entries are, holds, and fences.

use super::attributes::{Item, get_n, get_n_or, get_s, n, s};
use super::keys::{payment_pk, payment_sk, record_key};
use crate::ledger::{HoldState, LedgerError, Transaction, TransactionKind};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Where a payment's entries are: (shard, sequence, amount) of each debit
/// and the credit's (shard, sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) struct RecordLegs {
    pub debits: Vec<(u32, u64, i64)>,
    pub credit: (u32, u64),
}

pub(in crate::ledger) fn record_item(payment: &Transaction, key: &str, legs: &RecordLegs) -> Item {
    let mut item = payment.attributes();
    item.extend(legs_attributes(legs));
    item.extend([
        ("pk".into(), s(payment_pk(&payment.sender_id))),
        ("sk".into(), s(payment_sk(key))),
        ("idempotency_key".into(), s(key)),
        ("record_txid".into(), s(&payment.transaction_id)),
    ]);
    item
}

/// The attributes that say where a transfer's entries are.
pub(in crate::ledger) fn legs_attributes(legs: &RecordLegs) -> Item {
    HashMap::from([
        ("sender_sequence".into(), n(legs.debits[0].1)),
        ("recipient_sequence".into(), n(legs.credit.1)),
        ("recipient_shard".into(), n(legs.credit.0)),
        (
            "debit_legs".into(),
            AttributeValue::L(
                legs.debits
                    .iter()
                    .map(|(shard, sequence, amount)| s(format!("{shard}:{sequence}:{amount}")))
                    .collect(),
            ),
        ),
    ])
}

/// A hold as its record keeps it (`P#<sender>`, `K#<key>`, `kind = HOLD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) struct HoldRecord {
    pub idempotency_key: String,
    /// The hold's own facts: its id, parties, amount, memo and when it was
    /// placed (kind is Capture: the id is its capture's too).
    pub payment: Transaction,
    pub expires_at_ms: i64,
    /// The sender's balance shard that reserves the money.
    pub shard: u32,
    /// As stored: Open, Captured or Voided (an expired hold is stored Open).
    pub state: HoldState,
    pub captured_minor: i64,
    pub settled_at_ms: i64,
    /// The capture round that captured it (a fresh id per round).
    pub capture_round: String,
    pub refunded_minor: i64,
}

impl HoldRecord {
    /// Its state at `now_ms`: an open hold past its expiry is expired.
    pub(in crate::ledger) fn state_at(&self, now_ms: i64) -> HoldState {
        match self.state {
            HoldState::Open if self.expires_at_ms <= now_ms => HoldState::Expired,
            state => state,
        }
    }

    pub(in crate::ledger) fn to_item(&self) -> Item {
        let mut item = self.payment.attributes();
        item.extend([
            ("pk".into(), s(payment_pk(&self.payment.sender_id))),
            ("sk".into(), s(payment_sk(&self.idempotency_key))),
            ("idempotency_key".into(), s(&self.idempotency_key)),
            ("record_txid".into(), s(&self.payment.transaction_id)),
            ("hold".into(), AttributeValue::Bool(true)),
            ("expires_at".into(), n(self.expires_at_ms)),
            ("hold_shard".into(), n(self.shard)),
            ("state".into(), s(self.state.as_str())),
        ]);
        item
    }

    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        Ok(Self {
            idempotency_key: get_s(item, "idempotency_key")?,
            payment: Transaction::from_item(item)?,
            expires_at_ms: get_n(item, "expires_at")?,
            shard: get_n(item, "hold_shard")?,
            state: HoldState::parse(&get_s(item, "state")?)?,
            captured_minor: get_n_or(item, "captured_amount", 0)?,
            settled_at_ms: get_n_or(item, "settled_at", 0)?,
            capture_round: match item.get("capture_round") {
                Some(AttributeValue::S(id)) => id.clone(),
                _ => String::new(),
            },
            refunded_minor: get_n_or(item, "refunded", 0)?,
        })
    }
}

impl HoldState {
    pub(in crate::ledger) fn as_str(self) -> &'static str {
        match self {
            HoldState::Open => "OPEN",
            HoldState::Captured => "CAPTURED",
            HoldState::Voided => "VOIDED",
            HoldState::Expired => "EXPIRED",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "OPEN" => HoldState::Open,
            "CAPTURED" => HoldState::Captured,
            "VOIDED" => HoldState::Voided,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored hold has state {other:?}"
                )));
            }
        })
    }
}

/// A fence (`P#<sender>` / `K#<key>`, `fence = true`): what GetPayment
/// with finalize stores under a key where nothing was stored, on condition
/// that nothing is. Every payment, hold and refund record is put on the
/// same condition, so no call with a fenced key can ever commit, not even
/// one whose write is still on the wire. It has no `record_txid` (the
/// transaction index never finds it) and moves no money. It is never
/// removed: a fenced key is never free again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) struct Fence {
    pub sender_id: String,
    pub idempotency_key: String,
    pub fenced_at_ms: i64,
    /// The `sub` of the caller who fenced it (the sender's owner or an
    /// admin).
    pub fenced_by: String,
}

impl Fence {
    pub(in crate::ledger) fn to_item(&self) -> Item {
        HashMap::from([
            ("pk".into(), s(payment_pk(&self.sender_id))),
            ("sk".into(), s(payment_sk(&self.idempotency_key))),
            ("fence".into(), AttributeValue::Bool(true)),
            ("sender_id".into(), s(&self.sender_id)),
            ("idempotency_key".into(), s(&self.idempotency_key)),
            ("fenced_at".into(), n(self.fenced_at_ms)),
            ("fenced_by".into(), s(&self.fenced_by)),
        ])
    }

    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        Ok(Self {
            sender_id: get_s(item, "sender_id")?,
            idempotency_key: get_s(item, "idempotency_key")?,
            fenced_at_ms: get_n(item, "fenced_at")?,
            fenced_by: get_s(item, "fenced_by")?,
        })
    }
}

/// Any record of the ledger table's `P#` partitions, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::ledger) enum StoredRecord {
    /// A payment or a refund, with how much of it was refunded.
    Transfer {
        idempotency_key: String,
        payment: Transaction,
        refunded_minor: i64,
    },
    Hold(HoldRecord),
    /// A fenced key: no call with it happened, and none ever will.
    Fence(Fence),
}

impl StoredRecord {
    pub(in crate::ledger) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        if item.contains_key("fence") {
            return Fence::from_item(item).map(Self::Fence);
        }
        if item.contains_key("hold") {
            return HoldRecord::from_item(item).map(Self::Hold);
        }
        Ok(Self::Transfer {
            idempotency_key: get_s(item, "idempotency_key")?,
            payment: Transaction::from_item(item)?,
            refunded_minor: get_n_or(item, "refunded", 0)?,
        })
    }

    /// The idempotency key it was made with.
    pub(in crate::ledger) fn idempotency_key(&self) -> &str {
        match self {
            StoredRecord::Transfer {
                idempotency_key, ..
            } => idempotency_key,
            StoredRecord::Hold(hold) => &hold.idempotency_key,
            StoredRecord::Fence(fence) => &fence.idempotency_key,
        }
    }

    /// The transaction id of the payment, hold or refund; None for a
    /// fence, which is no transaction.
    pub(in crate::ledger) fn transaction_id(&self) -> Option<&str> {
        match self {
            StoredRecord::Transfer { payment, .. } => Some(&payment.transaction_id),
            StoredRecord::Hold(hold) => Some(&hold.payment.transaction_id),
            StoredRecord::Fence(_) => None,
        }
    }

    /// The paying and the paid account (a fence: its sender, and no one).
    pub(in crate::ledger) fn parties(&self) -> (&str, &str) {
        let payment = match self {
            StoredRecord::Transfer { payment, .. } => payment,
            StoredRecord::Hold(hold) => &hold.payment,
            StoredRecord::Fence(fence) => return (&fence.sender_id, ""),
        };
        (&payment.sender_id, &payment.recipient_id)
    }

    /// What it is, in a word a program can read: "payment", "hold",
    /// "refund", "fence" (or "opening").
    pub(in crate::ledger) fn kind_name(&self) -> &'static str {
        match self {
            StoredRecord::Hold(_) => "hold",
            StoredRecord::Fence(_) => "fence",
            StoredRecord::Transfer { payment, .. } => match payment.kind {
                TransactionKind::Payment => "payment",
                TransactionKind::Refund => "refund",
                TransactionKind::Capture => "capture",
                TransactionKind::Opening => "opening",
            },
        }
    }

    /// The record's key: `P#<sender>`, `K#<idempotency key>`.
    pub(in crate::ledger) fn key(&self) -> Item {
        let (sender, key) = match self {
            StoredRecord::Transfer {
                idempotency_key,
                payment,
                ..
            } => (&payment.sender_id, idempotency_key),
            StoredRecord::Hold(hold) => (&hold.payment.sender_id, &hold.idempotency_key),
            StoredRecord::Fence(fence) => (&fence.sender_id, &fence.idempotency_key),
        };
        record_key(sender, key)
    }
}

/// The legs of a stored payment record; records written before sharding
/// have one debit and one credit, both in shard 0.
pub(in crate::ledger) fn record_legs(item: &Item) -> Result<RecordLegs, LedgerError> {
    let malformed =
        || LedgerError::Internal("stored payment record has malformed debit_legs".into());
    let debits = match item.get("debit_legs") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|leg| {
                let AttributeValue::S(text) = leg else {
                    return Err(malformed());
                };
                let mut parts = text.split(':');
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(shard), Some(sequence), Some(amount), None) => Ok((
                        shard.parse().map_err(|_| malformed())?,
                        sequence.parse().map_err(|_| malformed())?,
                        amount.parse().map_err(|_| malformed())?,
                    )),
                    _ => Err(malformed()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![(0, get_n(item, "sender_sequence")?, get_n(item, "amount")?)],
    };
    if debits.is_empty() {
        return Err(malformed());
    }
    Ok(RecordLegs {
        debits,
        credit: (
            get_n_or(item, "recipient_shard", 0)?,
            get_n(item, "recipient_sequence")?,
        ),
    })
}
