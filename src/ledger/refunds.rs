//! RefundPayment: money of a payment (or of a captured hold) back from its
//! recipient to its sender.
//!
//! A refund is a transfer of kind REFUND from the payment's recipient to
//! its sender, with its own record `P#<recipient>` / `K#<refund key>` and
//! `refund_of` naming the payment. In the same transaction the payment's
//! record gains the amount in `refunded`, conditioned on `refunded` being
//! exactly what the refund read. So the refunds of one payment commit one
//! after another, each checked against the payment's amount: they never
//! add up to more, however many arrive at once.

use super::holds::describe;
use super::layout::{Item, RecordLegs, StoredRecord, n, now_ms, record_item, record_key};
use super::payments::{PAYMENT_ATTEMPTS_MAX, backoff, plan_debits, refusal};
use super::transfers::{Round, Written, round_time};
use super::{HoldState, Ledger, LedgerError, Payer, Payment, RefundOutcome, TransferKind};
use crate::domain::{RefundOrder, shard_balance_max_minor};
use aws_sdk_dynamodb::types::TransactWriteItem;
use std::collections::HashMap;

/// What can be refunded of a record: its key, transaction id, parties,
/// amount and currency, and how much was refunded already.
struct Refundable {
    key: Item,
    transaction_id: String,
    sender_id: String,
    recipient_id: String,
    amount_minor: i64,
    currency: String,
    refunded_minor: i64,
}

impl Refundable {
    fn of(record: StoredRecord) -> Result<Self, LedgerError> {
        let key = record.key();
        match record {
            StoredRecord::Transfer {
                payment,
                refunded_minor,
                ..
            } => {
                if payment.kind == TransferKind::Refund {
                    return Err(LedgerError::NotRefundable {
                        transaction_id: payment.transaction_id,
                        why: "it is a refund itself; make a payment to send money back",
                    });
                }
                Ok(Self {
                    key,
                    transaction_id: payment.transaction_id,
                    sender_id: payment.sender_id,
                    recipient_id: payment.recipient_id,
                    amount_minor: payment.amount_minor,
                    currency: payment.currency,
                    refunded_minor,
                })
            }
            StoredRecord::Hold(hold) => {
                if hold.state != HoldState::Captured {
                    return Err(LedgerError::NotRefundable {
                        transaction_id: hold.payment.transaction_id,
                        why: "it is a hold that was not captured, so it moved no money; void it instead",
                    });
                }
                Ok(Self {
                    key,
                    transaction_id: hold.payment.transaction_id,
                    sender_id: hold.payment.sender_id,
                    recipient_id: hold.payment.recipient_id,
                    amount_minor: hold.captured_minor,
                    currency: hold.payment.currency,
                    refunded_minor: hold.refunded_minor,
                })
            }
        }
    }

    fn exceeds(&self, requested_minor: i64) -> LedgerError {
        LedgerError::RefundExceedsPayment {
            transaction_id: self.transaction_id.clone(),
            amount_minor: self.amount_minor,
            refunded_minor: self.refunded_minor,
            requested_minor,
            currency: self.currency.clone(),
        }
    }
}

impl Ledger {
    /// Refunds all or part of a payment, exactly once per (the payment's
    /// recipient, refund idempotency key). Only the recipient's owner or an
    /// admin may.
    pub async fn refund_payment(
        &self,
        order: &RefundOrder,
        caller: Payer<'_>,
    ) -> Result<RefundOutcome, LedgerError> {
        let not_found = || LedgerError::PaymentNotFound {
            what: "payment",
            name: describe(&order.payment),
        };
        let Some(found) = self.find_record(&order.payment).await? else {
            return Err(not_found());
        };
        // Who may see it decides between NOT_FOUND and PERMISSION_DENIED
        // before anything about its state is told.
        let (sender_id, recipient_id) = match &found {
            StoredRecord::Transfer { payment, .. } => {
                (payment.sender_id.clone(), payment.recipient_id.clone())
            }
            StoredRecord::Hold(hold) => (
                hold.payment.sender_id.clone(),
                hold.payment.recipient_id.clone(),
            ),
        };
        if !caller.admin {
            let (sender, recipient) =
                tokio::try_join!(self.facts(&sender_id), self.facts(&recipient_id))?;
            if recipient.is_none_or(|r| r.owner != caller.sub) {
                if sender.is_some_and(|s| s.owner == caller.sub) {
                    return Err(LedgerError::NotAllowed {
                        what: "the sender's owner may not refund a payment".into(),
                        who: "the recipient's owner or an admin",
                    });
                }
                return Err(not_found());
            }
        }
        let mut original = Refundable::of(found)?;
        let refund_key = record_key(&original.recipient_id, order.idempotency_key.as_str());
        let _queued = self
            .locks
            .lock_pair(&original.recipient_id, &original.sender_id)
            .await;
        let mut own_ids: Vec<String> = Vec::new();
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
                match self.read_record_item(original.key.clone()).await? {
                    Some(record) => original = Refundable::of(record)?,
                    None => return Err(LedgerError::Internal("refunded record vanished".into())),
                }
            }
            // The refund pays from the original recipient to the sender.
            let (payer, payee, stored) = tokio::try_join!(
                self.fresh_party(&original.recipient_id),
                self.fresh_party(&original.sender_id),
                self.read_record_item(refund_key.clone())
            )?;
            if let Some(stored) = stored {
                return answer_stored_refund(order, &original, &own_ids, stored);
            }
            let (Some(payer), Some(payee)) = (payer, payee) else {
                return Err(LedgerError::Internal(
                    "a party of a payment vanished".into(),
                ));
            };
            let left = original.amount_minor - original.refunded_minor;
            let amount = order.amount_minor.unwrap_or(left);
            if amount <= 0 || amount > left {
                return Err(original.exceeds(amount.max(order.amount_minor.unwrap_or(0))));
            }
            let now = now_ms();
            let Some(debits) = plan_debits(&payer, amount, now) else {
                // Concurrent refunds may have taken what is left since the
                // payment was read: if so, that is the answer.
                if let Some(record) = self.read_record_item(original.key.clone()).await? {
                    original = Refundable::of(record)?;
                    let left = original.amount_minor - original.refunded_minor;
                    if amount > left || (order.amount_minor.is_none() && left == 0) {
                        return Err(original.exceeds(amount));
                    }
                }
                return Err(refusal(&payer, amount, "refund", now));
            };
            let Some(credit) = payee.shards[0].clone() else {
                return Err(LedgerError::Internal(
                    "refunded sender's shard not read".into(),
                ));
            };
            // A sharded sender is credited on the shard with the most room.
            let (credit_shard, credit) = payee
                .shards
                .iter()
                .enumerate()
                .filter_map(|(k, s)| Some((u32::try_from(k).ok()?, s.clone()?)))
                .min_by_key(|(k, s)| (s.balance_minor, *k))
                .unwrap_or((0, credit));
            if credit.balance_minor > shard_balance_max_minor(payee.facts.shards) - amount {
                return Err(LedgerError::BalanceLimit {
                    account_id: original.sender_id.clone(),
                });
            }
            let at = round_time(
                debits
                    .iter()
                    .map(|(_, s, _)| s)
                    .chain(std::iter::once(&credit)),
            );
            let refund = Payment {
                transaction_id: super::layout::new_transaction_id(),
                sender_id: original.recipient_id.clone(),
                recipient_id: original.sender_id.clone(),
                amount_minor: amount,
                currency: original.currency.clone(),
                memo: order.memo.clone(),
                created_at_ms: at,
                kind: TransferKind::Refund,
                refund_of: original.transaction_id.clone(),
            };
            own_ids.push(refund.transaction_id.clone());
            // A debit of several shards (a merchant refunding more than one
            // shard holds) writes `need`, as MakePayment does (see shards).
            let legs: Vec<(u32, &super::layout::ShardState)> =
                debits.iter().map(|(k, s, _)| (*k, s)).collect();
            let needs = super::shards::merged_needs(&legs);
            let debit_rounds: Vec<_> = debits
                .iter()
                .map(|(k, before, part)| {
                    let swept = before.swept(at);
                    let after = super::layout::ShardState {
                        version: before.version + 1,
                        balance_minor: before.balance_minor - part,
                        updated_at_ms: at,
                        holds_rev: before.holds_rev + u64::from(swept.is_some()),
                        holds: swept.unwrap_or_else(|| before.holds.clone()),
                        need: needs.get(k).cloned().unwrap_or_default(),
                    };
                    (*k, before.clone(), after, *part)
                })
                .collect();
            let mut round = Round {
                sender: payer.facts.clone(),
                recipient: payee.facts.clone(),
                payment: refund.clone(),
                debits: debit_rounds,
                credit: (credit_shard, credit),
                records: Vec::new(),
            };
            let legs = RecordLegs {
                debits: round
                    .debits
                    .iter()
                    .map(|(k, _, after, part)| (*k, after.version, *part))
                    .collect(),
                credit: (round.credit.0, round.credit.1.version + 1),
            };
            round.records.push(
                TransactWriteItem::builder()
                    .put(self.put_new(record_item(
                        &refund,
                        order.idempotency_key.as_str(),
                        &legs,
                    ))?)
                    .build(),
            );
            let (condition, mut values) = if original.refunded_minor == 0 {
                ("attribute_not_exists(refunded)", Item::new())
            } else {
                (
                    "refunded = :seen",
                    HashMap::from([(":seen".to_owned(), n(original.refunded_minor))]),
                )
            };
            values.insert(":amount".into(), n(amount));
            values.insert(":zero".into(), n(0));
            round.records.push(self.record_update(
                original.key.clone(),
                "SET refunded = if_not_exists(refunded, :zero) + :amount",
                condition,
                &[],
                values,
            )?);
            match self.write_round(&round).await? {
                Written::Committed => {
                    return Ok(RefundOutcome {
                        refund,
                        replayed: false,
                        refunded_total_minor: original.refunded_minor + amount,
                    });
                }
                Written::Unknown(cause) => {
                    return match self.read_record_item(refund_key.clone()).await {
                        Ok(Some(stored)) => {
                            answer_stored_refund(order, &original, &own_ids, stored)
                        }
                        _ => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
                Written::Refused { .. } => {
                    tracing::debug!(attempt, "refund round lost a race; going again");
                }
            }
        }
        Err(LedgerError::Contended {
            attempts: PAYMENT_ATTEMPTS_MAX,
        })
    }
}

/// The answer when a record is already stored under a refund's key.
fn answer_stored_refund(
    order: &RefundOrder,
    original: &Refundable,
    own_ids: &[String],
    stored: StoredRecord,
) -> Result<RefundOutcome, LedgerError> {
    let reused = || LedgerError::IdempotencyKeyReused {
        key: order.idempotency_key.as_str().to_owned(),
        sender_id: original.recipient_id.clone(),
    };
    let StoredRecord::Transfer { payment, .. } = stored else {
        return Err(reused());
    };
    let own = own_ids.contains(&payment.transaction_id);
    let same = payment.kind == TransferKind::Refund
        && payment.refund_of == original.transaction_id
        && payment.memo == order.memo
        && order.amount_minor.is_none_or(|a| a == payment.amount_minor);
    if !own && !same {
        return Err(reused());
    }
    Ok(RefundOutcome {
        refund: payment,
        replayed: !own,
        refunded_total_minor: original.refunded_minor,
    })
}
