//! RefundPayment: money of a payment (or of a captured hold) back from its
//! recipient to its sender.
//!
//! A refund is a transfer of kind REFUND from the payment's recipient to
//! its sender, with its own record `P#<recipient>` / `K#<refund key>` and
//! `refund_of` naming the payment. In the same transaction the payment's
//! record gains the amount in `refunded`, conditioned on `refunded` being
//! exactly what the refund planned from. So the refunds of one payment
//! commit one after another, each checked against the payment's amount:
//! they never add up to more, however many arrive at once. On a warm
//! instance (it knows the payment's record and both accounts) a refund is
//! one TransactWriteItems; a stale `refunded` costs one failed write, which
//! returns the record as it is.

use super::clock::new_transaction_id;
use super::holds::clock;
use super::layout::{Item, ShardState, StoredRecord, n, record_item, record_key};
use super::records::describe;
use super::replay::{Call, replayed};
use super::round::{
    DEBIT_SHARDS_MAX, Next, Party, Plan, RecordRead, Rounds, Settled, Transfer, plan_debits,
    reason, refusal,
};
use super::{Caller, HoldState, Ledger, LedgerError, RefundOutcome, Transaction, TransactionKind};
use crate::domain::{RefundOrder, shard_balance_max_minor};
use aws_sdk_dynamodb::types::TransactWriteItem;
use std::collections::HashMap;

/// One RefundPayment call, across its rounds. The refund pays from the
/// payment's recipient to its sender.
struct RefundCall<'a> {
    order: &'a RefundOrder,
    /// The refunded payment's record, and whether it was read fresh in
    /// this call (else it is what this instance remembers).
    found: StoredRecord,
    fresh: bool,
    /// The payment's sender and recipient.
    sender_id: String,
    recipient_id: String,
    /// The key of the refund's own record.
    refund_key: Item,
    /// The transaction ids this call's rounds wrote under the refund key.
    own_ids: Vec<String>,
    /// Whether the payer was read fresh before a refusal.
    verified: bool,
}

/// One debit of the payer: its shard, the shard's state and the part.
type Debit = (u32, ShardState, i64);

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
    fn of(record: &StoredRecord) -> Result<Self, LedgerError> {
        let key = record.key();
        match record {
            StoredRecord::Transfer {
                payment,
                refunded_minor,
                ..
            } => {
                if payment.kind == TransactionKind::Refund {
                    return Err(LedgerError::NotRefundable {
                        transaction_id: payment.transaction_id.clone(),
                        why: "it is a refund itself; make a payment to send money back",
                    });
                }
                Ok(Self {
                    key,
                    transaction_id: payment.transaction_id.clone(),
                    sender_id: payment.sender_id.clone(),
                    recipient_id: payment.recipient_id.clone(),
                    amount_minor: payment.amount_minor,
                    currency: payment.currency.clone(),
                    refunded_minor: *refunded_minor,
                })
            }
            StoredRecord::Hold(hold) => {
                if hold.state != HoldState::Captured {
                    return Err(LedgerError::NotRefundable {
                        transaction_id: hold.payment.transaction_id.clone(),
                        why: "it is a hold that was not captured, so it moved no money; void it instead",
                    });
                }
                Ok(Self {
                    key,
                    transaction_id: hold.payment.transaction_id.clone(),
                    sender_id: hold.payment.sender_id.clone(),
                    recipient_id: hold.payment.recipient_id.clone(),
                    amount_minor: hold.captured_minor,
                    currency: hold.payment.currency.clone(),
                    refunded_minor: hold.refunded_minor,
                })
            }
            StoredRecord::Fence(_) => Err(LedgerError::Internal(
                "a fence was taken for a payment to refund".into(),
            )),
        }
    }

    fn left(&self) -> i64 {
        self.amount_minor - self.refunded_minor
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

/// The record with `refunded` raised by `amount`, as this instance now
/// knows it.
fn with_refunded(record: StoredRecord, amount: i64) -> StoredRecord {
    match record {
        StoredRecord::Transfer {
            idempotency_key,
            payment,
            refunded_minor,
        } => StoredRecord::Transfer {
            idempotency_key,
            payment,
            refunded_minor: refunded_minor + amount,
        },
        StoredRecord::Hold(mut hold) => {
            hold.refunded_minor += amount;
            StoredRecord::Hold(hold)
        }
        fence @ StoredRecord::Fence(_) => fence,
    }
}

/// Where a refund of `amount` credits the payment's sender: its known
/// shard with the least balance, refused with the balance limit when even
/// that one lacks room.
fn refund_credit(
    payee: &Party,
    amount: i64,
    sender_id: &str,
) -> Result<(u32, ShardState), LedgerError> {
    let room = shard_balance_max_minor(payee.facts.shards) - amount;
    let credit = payee
        .shards
        .iter()
        .enumerate()
        .filter_map(|(k, s)| Some((u32::try_from(k).ok()?, s.clone()?)))
        .min_by_key(|(k, s)| (s.balance_minor, *k))
        .ok_or_else(|| LedgerError::Internal("refunded sender's shard not read".into()))?;
    if credit.1.balance_minor > room {
        return Err(LedgerError::BalanceLimit {
            account_id: sender_id.to_owned(),
        });
    }
    Ok(credit)
}

/// The refund's transaction, made at `now`: `amount` of `original` from
/// its recipient back to its sender.
fn new_refund(order: &RefundOrder, original: &Refundable, amount: i64, now: i64) -> Transaction {
    Transaction {
        transaction_id: new_transaction_id(),
        sender_id: original.recipient_id.clone(),
        recipient_id: original.sender_id.clone(),
        amount_minor: amount,
        currency: original.currency.clone(),
        memo: order.memo.clone(),
        created_at_ms: now,
        kind: TransactionKind::Refund,
        refund_of: original.transaction_id.clone(),
    }
}

impl Ledger {
    /// Refunds all or part of a payment, exactly once per (the payment's
    /// recipient, refund idempotency key). Only the recipient's owner or an
    /// admin may.
    pub async fn refund_payment(
        &self,
        order: &RefundOrder,
        caller: &Caller,
    ) -> Result<RefundOutcome, LedgerError> {
        let mut call = self.refund_call(order, caller).await?;
        let _queued = self
            .locks
            .lock_pair(&call.recipient_id, &call.sender_id)
            .await;
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            if let Next::Done(outcome) = self.refund_round(&mut call, &mut rounds).await? {
                return Ok(outcome);
            }
        }
        let stored = self.stored_or_exhausted(&call.refund_key, &rounds).await?;
        let original = Refundable::of(&call.found)?;
        self.answer(&call, &original, stored).await
    }

    /// The payment an order names, once the caller may refund it.
    async fn refund_call<'a>(
        &self,
        order: &'a RefundOrder,
        caller: &Caller,
    ) -> Result<RefundCall<'a>, LedgerError> {
        let not_found = || LedgerError::PaymentNotFound {
            what: "payment",
            name: describe(&order.payment),
        };
        let (found, fresh) = self.recall_record(&order.payment).await?;
        // A fenced key names no payment (and never will).
        let Some(found) = found.filter(|r| !matches!(r, StoredRecord::Fence(_))) else {
            return Err(not_found());
        };
        let (sender_id, recipient_id) = {
            let (s, r) = found.parties();
            (s.to_owned(), r.to_owned())
        };
        let refund_key = record_key(&recipient_id, order.idempotency_key.as_str());
        // Who may see it decides between NOT_FOUND and PERMISSION_DENIED
        // before anything about its state is told.
        self.refund_access(caller, [&recipient_id, &sender_id], &refund_key, not_found)
            .await?;
        Ok(RefundCall {
            order,
            found,
            fresh,
            sender_id,
            recipient_id,
            refund_key,
            own_ids: Vec::new(),
            verified: false,
        })
    }

    /// One round: plan from what is known, write the refund with the raise
    /// of the payment's refunded total, and settle what DynamoDB answered.
    async fn refund_round(
        &self,
        call: &mut RefundCall<'_>,
        rounds: &mut Rounds,
    ) -> Result<Next<RefundOutcome>, LedgerError> {
        let original = self.refundable(call).await?;
        // The refund pays from the original recipient to the sender.
        let ([payer, payee], record) = self
            .parties(
                [&call.recipient_id, &call.sender_id],
                call.refund_key.clone(),
            )
            .await?;
        if let RecordRead::Found(stored) = record {
            return self.answer(call, &original, stored).await.map(Next::Done);
        }
        let (Some(payer), Some(payee)) = (payer, payee) else {
            return Err(LedgerError::Internal(
                "a party of a payment vanished".into(),
            ));
        };
        let amount = call.order.amount_minor.unwrap_or(original.left());
        if amount <= 0 || amount > original.left() {
            return self.beyond_left(call, &original, amount).await;
        }
        let plan = self.refund_plan(call, &original, payer, payee, amount);
        let transfer = match plan.await? {
            Plan::Write(transfer) => transfer,
            Plan::Stored(stored) => {
                return self.answer(call, &original, *stored).await.map(Next::Done);
            }
        };
        call.own_ids.push(transfer.payment.transaction_id.clone());
        let (put, raise) = self.refund_records(&transfer, call.order, &original)?;
        let items = self.transfer_items(&transfer, vec![put, raise])?;
        let written = self.transact(items).await?;
        let records_from = transfer.debits.len() + 1;
        match self
            .settle(written, rounds, &call.refund_key, records_from)
            .await?
        {
            Settled::Committed => Ok(Next::Done(self.refunded(call, &original, transfer))),
            Settled::Unknown { cause, read: None } => Err(LedgerError::OutcomeUnknown { cause }),
            // The refund key is taken, or the write committed after all:
            // the record answers.
            Settled::Unknown {
                read: Some(stored), ..
            }
            | Settled::Taken(stored) => self.answer(call, &original, stored).await.map(Next::Done),
            Settled::Again(reasons) => {
                let raised = reason(&reasons, records_from + 1);
                if raised.failed() {
                    // Another refund of the payment committed first.
                    self.take_raised(call, raised.item()).await?;
                }
                self.learn_from_transfer(&transfer, &reasons);
                tracing::debug!("refund round lost a race; going again");
                Ok(Next::Again)
            }
        }
    }

    /// What can be refunded of the payment. A remembered record is read
    /// fresh before it refuses.
    async fn refundable(&self, call: &mut RefundCall<'_>) -> Result<Refundable, LedgerError> {
        match Refundable::of(&call.found) {
            Err(_) if !call.fresh => {
                call.found = self.reread(&call.found).await?;
                call.fresh = true;
                Refundable::of(&call.found)
            }
            other => other,
        }
    }

    /// A refund of `amount` that `original` does not have left (or of
    /// nothing): once the payment was read fresh, refused, unless a refund
    /// under this key is what took the rest.
    async fn beyond_left(
        &self,
        call: &mut RefundCall<'_>,
        original: &Refundable,
        amount: i64,
    ) -> Result<Next<RefundOutcome>, LedgerError> {
        if !call.fresh {
            call.found = self.reread(&call.found).await?;
            call.fresh = true;
            return Ok(Next::Again);
        }
        if let Some(stored) = self.read_record(&call.refund_key).await? {
            return self.answer(call, original, stored).await.map(Next::Done);
        }
        let requested_minor = amount.max(call.order.amount_minor.unwrap_or(0));
        Err(original.exceeds(requested_minor))
    }

    /// Plans the refund of `amount` from what is known of the payer (the
    /// payment's recipient) and the payee (its sender), reading only what
    /// is missing.
    async fn refund_plan(
        &self,
        call: &mut RefundCall<'_>,
        original: &Refundable,
        mut payer: Party,
        mut payee: Party,
        amount: i64,
    ) -> Result<Plan<Transfer>, LedgerError> {
        let payer_all = payer.all_shards();
        let payee_first: Vec<u32> = if payee.known_count() == 0 {
            vec![0]
        } else {
            Vec::new()
        };
        let first: &[u32] = if payer.known_count() == 0 || payer.facts.shards == 1 {
            &payer_all
        } else {
            &[]
        };
        self.fill(&mut [(&mut payer, first), (&mut payee, &payee_first)], None)
            .await?;
        let now = clock();
        let debits = match self.refund_debits(call, &mut payer, amount, now).await? {
            Plan::Write(debits) => debits,
            Plan::Stored(stored) => return Ok(Plan::Stored(stored)),
        };
        // The payment's sender is credited on its known shard with the
        // most room.
        let credit = refund_credit(&payee, amount, &original.sender_id)?;
        let refund = new_refund(call.order, original, amount, now);
        let shards = payee.facts.shards;
        Ok(Plan::Write(Transfer::plan(
            refund, debits, credit, shards, now,
        )))
    }

    /// The payer's debits at `now`, after reading its shards not known
    /// yet, and all of them fresh once in the call (with the refund's
    /// record: a replay is answered from it) before refusing.
    async fn refund_debits(
        &self,
        call: &mut RefundCall<'_>,
        payer: &mut Party,
        amount: i64,
        now: i64,
    ) -> Result<Plan<Vec<Debit>>, LedgerError> {
        loop {
            match plan_debits(payer, amount, now) {
                Some(debits) => return Ok(Plan::Write(debits)),
                // Unknown shards, some perhaps just seen in a reshard.
                None if payer.known_count() < payer.shards.len() => {
                    let all = payer.all_shards();
                    self.fill(&mut [(&mut *payer, &all)], None).await?;
                }
                None if !call.verified => {
                    call.verified = true;
                    payer.forget_shards();
                    let all = payer.all_shards();
                    if let RecordRead::Found(stored) = self
                        .fill_with_record(&mut [(&mut *payer, &all)], &call.refund_key)
                        .await?
                    {
                        return Ok(Plan::Stored(Box::new(stored)));
                    }
                }
                None => return Err(self.refund_refusal(call, payer, amount, now).await?),
            }
        }
    }

    /// Why a payer whose shards were all read fresh cannot refund `amount`:
    /// concurrent refunds may have taken what is left since the payment was
    /// read (if so, that is the answer), else what the payer lacks. The
    /// outer error is a failure to read the payment.
    async fn refund_refusal(
        &self,
        call: &mut RefundCall<'_>,
        payer: &Party,
        amount: i64,
        now: i64,
    ) -> Result<LedgerError, LedgerError> {
        call.found = self.reread(&call.found).await?;
        let original = Refundable::of(&call.found)?;
        if amount > original.left() || (call.order.amount_minor.is_none() && original.left() == 0) {
            return Ok(original.exceeds(amount));
        }
        Ok(refusal(payer, amount, "refund", DEBIT_SHARDS_MAX, now))
    }

    /// A committed refund: its shards remembered, and the payment's record
    /// with its refunded total raised.
    fn refunded(
        &self,
        call: &RefundCall<'_>,
        original: &Refundable,
        transfer: Transfer,
    ) -> RefundOutcome {
        self.observe_transfer(&transfer);
        let amount = transfer.payment.amount_minor;
        let refunded_total_minor = original.refunded_minor + amount;
        self.known
            .remember_record(&with_refunded(call.found.clone(), amount));
        RefundOutcome {
            refund: transfer.payment,
            replayed: false,
            refunded_total_minor,
        }
    }

    /// The payment's record after another refund raised its refunded total
    /// first: as DynamoDB returned it with the failure, else read fresh.
    async fn take_raised(
        &self,
        call: &mut RefundCall<'_>,
        item: Option<&Item>,
    ) -> Result<(), LedgerError> {
        call.found = match item {
            Some(item) => {
                let record = StoredRecord::from_item(item)?;
                self.known.remember_record(&record);
                record
            }
            None => self.reread(&call.found).await?,
        };
        call.fresh = true;
        Ok(())
    }

    /// Refuses a caller who is neither an admin nor the owner of the
    /// payment's recipient (`parties[0]`): PERMISSION_DENIED for the
    /// sender's owner, who may see the payment, NOT_FOUND for anyone else.
    async fn refund_access(
        &self,
        caller: &Caller,
        parties: [&str; 2],
        refund_key: &Item,
        not_found: impl Fn() -> LedgerError,
    ) -> Result<(), LedgerError> {
        if caller.admin {
            return Ok(());
        }
        let ([payer, payee], _) = self.parties(parties, refund_key.clone()).await?;
        if payer.is_some_and(|r| r.facts.owner == caller.sub) {
            return Ok(());
        }
        if payee.is_some_and(|s| s.facts.owner == caller.sub) {
            return Err(LedgerError::NotAllowed {
                what: "the sender's owner may not refund a payment".into(),
                who: "the recipient's owner or an admin",
            });
        }
        Err(not_found())
    }

    /// A refund's two record items: its own record under the refund key,
    /// and the raise of the payment's refunded total, conditioned on the
    /// total this round read.
    fn refund_records(
        &self,
        transfer: &Transfer,
        order: &RefundOrder,
        original: &Refundable,
    ) -> Result<(TransactWriteItem, TransactWriteItem), LedgerError> {
        let put = self.put_record(record_item(
            &transfer.payment,
            order.idempotency_key.as_str(),
            &transfer.legs(),
        ))?;
        let (condition, mut values) = if original.refunded_minor == 0 {
            ("attribute_not_exists(refunded)", Item::new())
        } else {
            (
                "refunded = :seen",
                HashMap::from([(":seen".to_owned(), n(original.refunded_minor))]),
            )
        };
        values.insert(":amount".into(), n(transfer.payment.amount_minor));
        values.insert(":zero".into(), n(0));
        let raise = self.record_update(
            original.key.clone(),
            "SET refunded = if_not_exists(refunded, :zero) + :amount",
            condition,
            &[],
            values,
        )?;
        Ok((put, raise))
    }

    /// A record read fresh by its own key, remembered.
    async fn reread(&self, record: &StoredRecord) -> Result<StoredRecord, LedgerError> {
        self.read_record(&record.key())
            .await?
            .ok_or_else(|| LedgerError::Internal("refunded record vanished".into()))
    }
}

impl Ledger {
    /// The answer when a record is already stored under a refund's key (see
    /// [`super::replay`]). The payment's refunded total is read fresh: what
    /// this instance remembers of it may predate the stored refund, and the
    /// total it answers must count that refund.
    async fn answer(
        &self,
        call: &RefundCall<'_>,
        original: &Refundable,
        stored: StoredRecord,
    ) -> Result<RefundOutcome, LedgerError> {
        let refund = Call::Refund {
            order: call.order,
            refund_of: &original.transaction_id,
            payer: &original.recipient_id,
        };
        let replayed = replayed(refund, &call.own_ids, &stored)?;
        let StoredRecord::Transfer { payment, .. } = stored else {
            return Err(LedgerError::Internal(
                "a hold or a fence answered a refund's key".into(),
            ));
        };
        let refunded_total_minor = match self.read_record(&original.key).await? {
            Some(fresh) => {
                let total = Refundable::of(&fresh)?.refunded_minor;
                self.known.remember_record(&fresh);
                total
            }
            None => {
                return Err(LedgerError::Internal(
                    "a refunded payment's record vanished".into(),
                ));
            }
        };
        Ok(RefundOutcome {
            refund: payment,
            replayed,
            refunded_total_minor,
        })
    }
}
