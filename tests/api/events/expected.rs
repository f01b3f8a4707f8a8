//! The events a test expects, built from the service's own answers.

use super::movements::{CAPTURED, Movements};
use payment::events;
use payment::events::schema::{
    AccountOpened, Body, Detail, EntryPosted, HoldCaptured, HoldFacts, HoldVoided, Transaction,
    Transfer,
};
use payment::pb;
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn ms(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("a timestamp");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

pub(super) fn detail(id: String, occurred_at_ms: i64, body: Body) -> Detail {
    Detail {
        schema_version: events::SCHEMA_VERSION,
        id,
        occurred_at_ms,
        body,
    }
}

/// The events of [`Movements`], each with its stable id and every field.
pub(super) fn movement_events(m: &Movements) -> Vec<Detail> {
    let Movements {
        payment,
        hold,
        captured,
        second,
        voided,
        refund,
    } = m;
    let capture = captured.transaction.clone().unwrap();
    let captured_hold = captured.hold.clone().unwrap();
    vec![
        detail(
            format!("payment.committed/{}", payment.transaction_id),
            ms(&payment.created_at),
            Body::PaymentCommitted(transfer(payment)),
        ),
        detail(
            format!("hold.authorized/{}", hold.hold_id),
            ms(&hold.created_at),
            Body::HoldAuthorized(hold_facts(hold)),
        ),
        detail(
            format!("hold.captured/{}", hold.hold_id),
            ms(&capture.created_at),
            Body::HoldCaptured(HoldCaptured {
                hold: hold_facts(&captured_hold),
                transaction_id: capture.transaction_id.clone(),
                captured_minor: CAPTURED,
                captured_at_ms: ms(&captured_hold.settled_at),
            }),
        ),
        detail(
            format!("hold.authorized/{}", second.hold_id),
            ms(&second.created_at),
            Body::HoldAuthorized(hold_facts(second)),
        ),
        detail(
            format!("hold.voided/{}", second.hold_id),
            ms(&voided.settled_at),
            Body::HoldVoided(HoldVoided {
                hold: hold_facts(voided),
                voided_at_ms: ms(&voided.settled_at),
            }),
        ),
        detail(
            format!("refund.committed/{}", refund.transaction_id),
            ms(&refund.created_at),
            Body::RefundCommitted(transfer(refund)),
        ),
    ]
}

pub(super) fn opened(account: &pb::Account) -> Detail {
    detail(
        format!("account.opened/{}", account.account_id),
        ms(&account.created_at),
        Body::AccountOpened(AccountOpened {
            account_id: account.account_id.clone(),
            display_name: account.display_name.clone(),
            currency: account.currency.clone(),
            owner: account.owner.clone(),
            opening_balance_minor: account.balance,
            balance_shards: account.balance_shards as u32,
            created_at_ms: ms(&account.created_at),
        }),
    )
}

pub(super) fn transfer(t: &pb::Transaction) -> Transfer {
    Transfer {
        transaction_id: t.transaction_id.clone(),
        sender_id: t.sender_id.clone(),
        recipient_id: t.recipient_id.clone(),
        amount_minor: t.amount,
        currency: t.currency.clone(),
        memo: t.memo.clone(),
        created_at_ms: ms(&t.created_at),
        refund_of: t.refund_of.clone(),
    }
}

pub(super) fn hold_facts(h: &pb::Hold) -> HoldFacts {
    HoldFacts {
        hold_id: h.hold_id.clone(),
        sender_id: h.sender_id.clone(),
        recipient_id: h.recipient_id.clone(),
        amount_minor: h.amount,
        currency: h.currency.clone(),
        memo: h.memo.clone(),
        created_at_ms: ms(&h.created_at),
        expires_at_ms: ms(&h.expires_at),
    }
}

pub(super) fn kind_name(kind: i32) -> &'static str {
    match pb::TransactionKind::try_from(kind).expect("a kind") {
        pb::TransactionKind::Payment => "PAYMENT",
        pb::TransactionKind::Capture => "CAPTURE",
        pb::TransactionKind::Refund => "REFUND",
        pb::TransactionKind::Opening => "OPENING",
        pb::TransactionKind::Unspecified => "UNSPECIFIED",
    }
}

/// The entry events of an ordinary account, from its history as the
/// service tells it.
pub(super) fn entries_from_history(
    account_id: &str,
    history: &[pb::GetTransactionHistoryResponse],
) -> Vec<Detail> {
    history
        .iter()
        .map(|h| {
            let t = h.transaction.as_ref().expect("transaction");
            detail(
                format!("entry.posted/{account_id}/{}/{}", h.shard, h.sequence),
                ms(&t.created_at),
                Body::EntryPosted(EntryPosted {
                    account_id: account_id.into(),
                    shard: h.shard as u32,
                    sequence: h.sequence as u64,
                    direction: if h.direction == pb::Direction::Debit as i32 {
                        "DEBIT".into()
                    } else {
                        "CREDIT".into()
                    },
                    amount_minor: t.amount,
                    currency: t.currency.clone(),
                    balance_after_minor: h.balance_after,
                    transaction: Transaction {
                        transaction_id: t.transaction_id.clone(),
                        kind: kind_name(t.kind).into(),
                        sender_id: t.sender_id.clone(),
                        recipient_id: t.recipient_id.clone(),
                        amount_minor: t.amount,
                        memo: t.memo.clone(),
                        created_at_ms: ms(&t.created_at),
                        refund_of: t.refund_of.clone(),
                    },
                }),
            )
        })
        .collect()
}

/// An entry event's (account, shard, sequence, direction, amount, balance after).
pub(super) fn entry_facts(d: &Detail) -> Option<(String, u32, u64, String, i64, i64)> {
    match &d.body {
        Body::EntryPosted(e) => Some((
            e.account_id.clone(),
            e.shard,
            e.sequence,
            e.direction.clone(),
            e.amount_minor,
            e.balance_after_minor,
        )),
        _ => None,
    }
}

/// Each (account, shard)'s entry sequences in the order they were put (or
/// delivered), after dropping repeats of an id.
pub(super) fn sequences_in_order<'a>(
    details: impl IntoIterator<Item = &'a Detail>,
) -> BTreeMap<(String, u32), Vec<u64>> {
    let mut seen = BTreeSet::new();
    let mut order: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for detail in details {
        if !seen.insert(detail.id.clone()) {
            continue;
        }
        if let Some((account, shard, sequence, ..)) = entry_facts(detail) {
            order.entry((account, shard)).or_default().push(sequence);
        }
    }
    order
}
