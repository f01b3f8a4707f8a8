//! One stream record in, at most one event out. What a record means is the
//! ledger's to say (`crate::ledger::stream`); here it becomes an event with
//! its stable id. A record the ledger cannot read is an error.

use super::schema::{
    AccountOpened, Body, Detail, EntryPosted, HoldCaptured, HoldFacts, HoldVoided, SCHEMA_VERSION,
    Transaction, Transfer,
};
use crate::ledger::stream::{self, ChangeKind, Image, LedgerChange, StreamChange};
use crate::ledger::{self, Hold, LedgerError, Tables};
use aws_lambda_events::event::dynamodb::EventRecord;

/// Why a stream record made no event. Every one is reported, never skipped.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record {event_id}: no eventSourceARN, so no table")]
    NoSource { event_id: String },
    #[error("record {event_id}: eventSourceARN {arn:?} names no DynamoDB table stream")]
    BadSource { event_id: String, arn: String },
    #[error("record {event_id}: eventName {name:?} is not INSERT, MODIFY or REMOVE")]
    EventName { event_id: String, name: String },
    #[error("record {event_id}: {source}")]
    Ledger {
        event_id: String,
        #[source]
        source: LedgerError,
    },
}

/// The table of a stream's ARN:
/// `arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>`.
pub fn table_of_stream_arn(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":table/")?;
    let (table, _) = rest.split_once("/stream/")?;
    (!table.is_empty()).then_some(table)
}

/// The event a stream record makes, if it records a money movement (None:
/// one of the ledger's documented non-money items).
pub fn event_of(tables: &Tables, record: &EventRecord) -> Result<Option<Detail>, RecordError> {
    let event_id = || record.event_id.clone();
    let arn = record
        .event_source_arn
        .as_deref()
        .ok_or_else(|| RecordError::NoSource {
            event_id: event_id(),
        })?;
    let table_name = table_of_stream_arn(arn).ok_or_else(|| RecordError::BadSource {
        event_id: event_id(),
        arn: arn.to_owned(),
    })?;
    let kind = ChangeKind::parse(&record.event_name).ok_or_else(|| RecordError::EventName {
        event_id: event_id(),
        name: record.event_name.clone(),
    })?;
    let keys = Image::from(record.change.keys.clone());
    let old_image = Image::from(record.change.old_image.clone());
    let new_image = Image::from(record.change.new_image.clone());
    let change = stream::decode(
        tables,
        StreamChange {
            table_name,
            kind,
            keys: &keys,
            old_image: &old_image,
            new_image: &new_image,
        },
    )
    .map_err(|source| RecordError::Ledger {
        event_id: event_id(),
        source,
    })?;
    Ok(detail_of(change))
}

/// The event of a decoded change, with its stable id.
pub fn detail_of(change: LedgerChange) -> Option<Detail> {
    let (id, occurred_at_ms, body) = match change {
        LedgerChange::NoMovement(_) => return None,
        LedgerChange::PaymentCommitted(p) => (
            format!("payment.committed/{}", p.transaction_id),
            p.created_at_ms,
            Body::PaymentCommitted(transfer(p)),
        ),
        LedgerChange::RefundCommitted(p) => (
            format!("refund.committed/{}", p.transaction_id),
            p.created_at_ms,
            Body::RefundCommitted(transfer(p)),
        ),
        LedgerChange::HoldAuthorized(h) => (
            format!("hold.authorized/{}", h.hold_id),
            h.created_at_ms,
            Body::HoldAuthorized(hold_facts(h)),
        ),
        LedgerChange::HoldCaptured { hold, capture } => (
            format!("hold.captured/{}", hold.hold_id),
            capture.created_at_ms,
            Body::HoldCaptured(HoldCaptured {
                transaction_id: capture.transaction_id,
                captured_minor: capture.amount_minor,
                captured_at_ms: capture.created_at_ms,
                hold: hold_facts(hold),
            }),
        ),
        LedgerChange::HoldVoided(h) => (
            format!("hold.voided/{}", h.hold_id),
            h.settled_at_ms,
            Body::HoldVoided(HoldVoided {
                voided_at_ms: h.settled_at_ms,
                hold: hold_facts(h),
            }),
        ),
        LedgerChange::AccountOpened(a) => (
            format!("account.opened/{}", a.account_id),
            a.created_at_ms,
            Body::AccountOpened(AccountOpened {
                account_id: a.account_id,
                display_name: a.display_name,
                currency: a.currency,
                owner: a.owner,
                opening_balance_minor: a.opening_balance_minor,
                balance_shards: a.balance_shards,
                created_at_ms: a.created_at_ms,
            }),
        ),
        LedgerChange::EntryPosted(e) => (
            format!("entry.posted/{}/{}/{}", e.account_id, e.shard, e.sequence),
            e.payment.created_at_ms,
            Body::EntryPosted(EntryPosted {
                account_id: e.account_id,
                shard: e.shard,
                sequence: e.sequence,
                direction: e.direction.name().to_owned(),
                amount_minor: e.amount_minor,
                currency: e.payment.currency.clone(),
                balance_after_minor: e.balance_after_minor,
                transaction: Transaction {
                    transaction_id: e.payment.transaction_id,
                    kind: e.payment.kind.name().to_owned(),
                    sender_id: e.payment.sender_id,
                    recipient_id: e.payment.recipient_id,
                    amount_minor: e.payment.amount_minor,
                    memo: e.payment.memo,
                    created_at_ms: e.payment.created_at_ms,
                    refund_of: e.payment.refund_of,
                },
            }),
        ),
    };
    Some(Detail {
        schema_version: SCHEMA_VERSION,
        id,
        occurred_at_ms,
        body,
    })
}

fn transfer(p: ledger::Transaction) -> Transfer {
    Transfer {
        transaction_id: p.transaction_id,
        sender_id: p.sender_id,
        recipient_id: p.recipient_id,
        amount_minor: p.amount_minor,
        currency: p.currency,
        memo: p.memo,
        created_at_ms: p.created_at_ms,
        refund_of: p.refund_of,
    }
}

fn hold_facts(h: Hold) -> HoldFacts {
    HoldFacts {
        hold_id: h.hold_id,
        sender_id: h.sender_id,
        recipient_id: h.recipient_id,
        amount_minor: h.amount_minor,
        currency: h.currency,
        memo: h.memo,
        created_at_ms: h.created_at_ms,
        expires_at_ms: h.expires_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arns_name_their_table() {
        assert_eq!(
            table_of_stream_arn(
                "arn:aws:dynamodb:us-east-1:123456789012:table/payment-ledger/stream/2026-12-07T13:00:00.000"
            ),
            Some("payment-ledger")
        );
        assert_eq!(
            table_of_stream_arn("arn:aws:dynamodb:us-east-1:1:table/x"),
            None
        );
        assert_eq!(table_of_stream_arn("arn:aws:sqs:us-east-1:1:q"), None);
    }
}
