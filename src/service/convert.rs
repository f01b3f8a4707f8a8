//! Conversions between the domain and ledger types and the protobuf
//! messages of the contract.

use crate::domain::{AccountId, InvalidField, PageToken, PaymentRef};
use crate::ledger;
use crate::pb;

pub(super) fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

pub(super) fn account_message(account: ledger::Account) -> pb::Account {
    let balance_shards = i32::try_from(account.shards()).unwrap_or(i32::MAX);
    pb::Account {
        held: account.held_minor,
        available: account.available_minor(),
        account_id: account.account_id,
        display_name: account.display_name,
        currency: account.currency,
        balance: account.balance_minor,
        created_at: Some(timestamp(account.created_at_ms)),
        owner: account.owner,
        balance_shards,
    }
}

pub(super) fn transaction_message(payment: ledger::Transaction) -> pb::Transaction {
    pb::Transaction {
        kind: match payment.kind {
            ledger::TransactionKind::Payment => pb::TransactionKind::Payment,
            ledger::TransactionKind::Capture => pb::TransactionKind::Capture,
            ledger::TransactionKind::Refund => pb::TransactionKind::Refund,
            ledger::TransactionKind::Opening => pb::TransactionKind::Opening,
        } as i32,
        refund_of: payment.refund_of,
        transaction_id: payment.transaction_id,
        sender_id: payment.sender_id,
        recipient_id: payment.recipient_id,
        amount: payment.amount_minor,
        currency: payment.currency,
        memo: payment.memo,
        created_at: Some(timestamp(payment.created_at_ms)),
    }
}

pub(super) fn hold_message(hold: ledger::Hold) -> pb::Hold {
    let optional_time = |ms: i64| (ms > 0).then(|| timestamp(ms));
    pb::Hold {
        hold_id: hold.hold_id,
        sender_id: hold.sender_id,
        recipient_id: hold.recipient_id,
        amount: hold.amount_minor,
        currency: hold.currency,
        memo: hold.memo,
        created_at: Some(timestamp(hold.created_at_ms)),
        expires_at: Some(timestamp(hold.expires_at_ms)),
        state: match hold.state {
            ledger::HoldState::Open => pb::HoldState::Open,
            ledger::HoldState::Captured => pb::HoldState::Captured,
            ledger::HoldState::Voided => pb::HoldState::Voided,
            ledger::HoldState::Expired => pb::HoldState::Expired,
        } as i32,
        captured_amount: hold.captured_minor,
        settled_at: optional_time(hold.settled_at_ms),
        idempotency_key: hold.idempotency_key,
    }
}

/// The field names of a request's `hold` reference.
pub(super) const HOLD_REF: [&str; 4] = [
    "hold",
    "hold.transaction_id",
    "hold.sender_id",
    "hold.idempotency_key",
];
/// The field names of a request's `payment` reference.
pub(super) const PAYMENT_REF: [&str; 4] = [
    "payment",
    "payment.transaction_id",
    "payment.sender_id",
    "payment.idempotency_key",
];

/// A PaymentRef of a request; `fields` name the reference and its three
/// fields ([`HOLD_REF`], [`PAYMENT_REF`]).
pub(super) fn payment_ref(
    fields: [&'static str; 4],
    reference: Option<&pb::PaymentRef>,
) -> Result<PaymentRef, InvalidField> {
    let [field, id, sender, key] = fields;
    let reference =
        reference.ok_or_else(|| InvalidField::new(field, "is required: name the payment"))?;
    PaymentRef::parse(
        [id, sender, key],
        &reference.transaction_id,
        &reference.sender_id,
        &reference.idempotency_key,
    )
}

/// One history entry, with the token that continues right after it.
pub(super) fn entry_message(
    account_id: &AccountId,
    entry: ledger::Entry,
    position: Option<Vec<u64>>,
) -> pb::GetTransactionHistoryResponse {
    let next_page_token = position.map_or_else(String::new, |cursors| {
        PageToken {
            account_id: account_id.clone(),
            before_sequence: cursors[0],
            other_shards: cursors[1..].to_vec(),
        }
        .encode()
    });
    pb::GetTransactionHistoryResponse {
        transaction: Some(transaction_message(entry.payment)),
        direction: match entry.direction {
            ledger::Direction::Debit => pb::Direction::Debit,
            ledger::Direction::Credit => pb::Direction::Credit,
        } as i32,
        balance_after: entry.balance_after_minor,
        next_page_token,
        sequence: i64::try_from(entry.sequence).unwrap_or(i64::MAX),
        shard: i32::try_from(entry.shard).unwrap_or(i32::MAX),
    }
}
