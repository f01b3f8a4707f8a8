//! The audit of each transaction: its record against its entries, and
//! each refund against what it refunds.

use super::{AuditReport, Moved, Seen};
use crate::ledger::layout::StoredEntry;
use crate::ledger::{Direction, Transaction, TransactionKind};
use std::collections::{BTreeSet, HashMap};

/// An entry's place and size: (account, shard, sequence, direction,
/// amount, currency).
type EntryKey = (String, u32, u64, Direction, i64, String);

pub(super) fn check(
    seen: &Seen,
    by_tx: &HashMap<&str, Vec<&StoredEntry>>,
    report: &mut AuditReport,
) {
    let tx_ids: BTreeSet<&str> = by_tx
        .keys()
        .copied()
        .chain(seen.moved.keys().map(String::as_str))
        .collect();
    for tx_id in tx_ids {
        let entries = by_tx.get(tx_id).map_or(&[][..], Vec::as_slice);
        let Some(moved) = seen.moved.get(tx_id) else {
            report.flag(format!(
                "transaction {tx_id}: entries without a payment record"
            ));
            continue;
        };
        check_legs(report, tx_id, moved, entries);
        for entry in entries {
            check_embedded(report, tx_id, &moved.payment, entry);
        }
    }
    check_refunds(seen, report);
}

/// The record's legs name exactly the entries found: each debit part on
/// its shard and sequence of the sender, summing to the amount, and the
/// whole amount credited to the recipient.
fn check_legs(report: &mut AuditReport, tx_id: &str, moved: &Moved, entries: &[&StoredEntry]) {
    let (payment, legs) = (&moved.payment, &moved.legs);
    let mut expected: Vec<EntryKey> = legs
        .debits
        .iter()
        .map(|(shard, sequence, part)| {
            (
                payment.sender_id.clone(),
                *shard,
                *sequence,
                Direction::Debit,
                *part,
                payment.currency.clone(),
            )
        })
        .collect();
    expected.push((
        payment.recipient_id.clone(),
        legs.credit.0,
        legs.credit.1,
        Direction::Credit,
        payment.amount_minor,
        payment.currency.clone(),
    ));
    let parts: i128 = legs.debits.iter().map(|(_, _, p)| i128::from(*p)).sum();
    let mut found: Vec<EntryKey> = entries
        .iter()
        .map(|e| {
            (
                e.account_id.clone(),
                e.shard,
                e.sequence,
                e.direction,
                e.amount_minor,
                e.payment.currency.clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    expected.sort_by(|a, b| (&a.0, a.1, a.2).cmp(&(&b.0, b.1, b.2)));
    if found != expected || parts != i128::from(payment.amount_minor) {
        report.flag(format!(
            "transaction {tx_id}: expected entries {expected:?} (debits summing to {}), found {found:?}",
            payment.amount_minor
        ));
    }
}

/// Every entry carries its transaction as the record says it:
/// transaction id, parties, amount, currency, memo, kind, refund_of and
/// time (the history shows the entry's copy; GetPayment the record's).
fn check_embedded(
    report: &mut AuditReport,
    tx_id: &str,
    record: &Transaction,
    entry: &StoredEntry,
) {
    let differences = differences(&entry.payment, record);
    if !differences.is_empty() {
        report.flag(format!(
            "transaction {tx_id}: entry {} of account {} shard {} differs from its record in {}",
            entry.sequence,
            entry.account_id,
            entry.shard,
            differences.join(", ")
        ));
    }
}

/// The fields in which an entry's copy of a transaction differs from the
/// record's, as `field entry-value (record record-value)`.
fn differences(entry: &Transaction, record: &Transaction) -> Vec<String> {
    let mut found = Vec::new();
    let mut compare = |field: &str, a: String, b: String| {
        if a != b {
            found.push(format!("{field} {a} (record {b})"));
        }
    };
    let quoted = |s: &str| format!("{s:?}");
    compare(
        "transaction_id",
        quoted(&entry.transaction_id),
        quoted(&record.transaction_id),
    );
    compare(
        "sender_id",
        quoted(&entry.sender_id),
        quoted(&record.sender_id),
    );
    compare(
        "recipient_id",
        quoted(&entry.recipient_id),
        quoted(&record.recipient_id),
    );
    compare(
        "amount",
        entry.amount_minor.to_string(),
        record.amount_minor.to_string(),
    );
    compare(
        "currency",
        quoted(&entry.currency),
        quoted(&record.currency),
    );
    compare("memo", quoted(&entry.memo), quoted(&record.memo));
    compare(
        "created_at",
        entry.created_at_ms.to_string(),
        record.created_at_ms.to_string(),
    );
    compare(
        "kind",
        format!("{:?}", entry.kind),
        format!("{:?}", record.kind),
    );
    compare(
        "refund_of",
        quoted(&entry.refund_of),
        quoted(&record.refund_of),
    );
    found
}

/// Every refund mirrors what it refunds, a payment or a captured hold:
/// from its recipient back to its sender, in its currency, a positive
/// amount; and the refunds of each sum to its `refunded`, never above its
/// amount (for a captured hold, the amount captured).
fn check_refunds(seen: &Seen, report: &mut AuditReport) {
    let mut found: HashMap<&str, i128> = HashMap::new();
    for (refund_id, moved) in &seen.moved {
        let refund = &moved.payment;
        if refund.kind != TransactionKind::Refund {
            continue;
        }
        let original = seen
            .moved
            .get(&refund.refund_of)
            .map(|m| &m.payment)
            .filter(|p| matches!(p.kind, TransactionKind::Payment | TransactionKind::Capture));
        let Some(original) = original else {
            report.flag(format!(
                "refund {refund_id} names {:?}, which is not a payment or a captured hold",
                refund.refund_of
            ));
            continue;
        };
        *found.entry(&original.transaction_id).or_default() += i128::from(refund.amount_minor);
        let mut wrong = Vec::new();
        if (refund.sender_id.as_str(), refund.recipient_id.as_str())
            != (original.recipient_id.as_str(), original.sender_id.as_str())
        {
            wrong.push(format!(
                "it goes from {:?} to {:?}, not from {:?} back to {:?}",
                refund.sender_id, refund.recipient_id, original.recipient_id, original.sender_id
            ));
        }
        if refund.currency != original.currency {
            wrong.push(format!(
                "it is in {}, not {}",
                refund.currency, original.currency
            ));
        }
        if refund.amount_minor <= 0 {
            wrong.push(format!(
                "its amount {} is not positive",
                refund.amount_minor
            ));
        }
        if !wrong.is_empty() {
            report.flag(format!(
                "refund {refund_id} does not mirror {} {}: {}",
                match original.kind {
                    TransactionKind::Capture => "captured hold",
                    _ => "payment",
                },
                original.transaction_id,
                wrong.join("; ")
            ));
        }
    }
    for (tx_id, moved) in &seen.moved {
        let payment = &moved.payment;
        if !matches!(
            payment.kind,
            TransactionKind::Payment | TransactionKind::Capture
        ) {
            continue;
        }
        let sum = found.get(tx_id.as_str()).copied().unwrap_or(0);
        let recorded = moved.refunded_minor;
        if sum != i128::from(recorded) || recorded > payment.amount_minor || recorded < 0 {
            report.flag(format!(
                "transaction {tx_id}: refunded {recorded} of {} recorded, but its refunds sum to {sum}",
                payment.amount_minor
            ));
        }
    }
}
