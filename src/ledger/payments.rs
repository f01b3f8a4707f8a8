//! MakePayment: its plan and its conditions, over the shared round
//! ([`super::round`]). On a warm instance a payment is one
//! TransactWriteItems, and so is its replay (answered by the failed write).

use super::clock::new_transaction_id;
use super::layout::{Item, StoredRecord, record_item, record_key};
use super::replay::{Call, replayed};
use super::round::{
    DEBIT_SHARDS_MAX, Party, RecordRead, Rounds, Start, Transfer, Written, plan_debits, reason,
    refusal,
};
use super::{Caller, Ledger, LedgerError, PaymentOutcome, Transaction, TransactionKind};
use crate::domain::{PaymentOrder, shard_balance_max_minor};
use aws_sdk_dynamodb::types::TransactWriteItem;

/// What a round of a payment writes, before the transfer is built: the
/// debits (shard, state, part), the credit (shard, state), and the clock
/// that decided them.
type Planned = (
    Vec<(u32, super::layout::ShardState, i64)>,
    (u32, super::layout::ShardState),
    i64,
);

impl Ledger {
    /// Moves money exactly once per (sender, idempotency key). A warm
    /// instance that knows both accounts' shards commits with a single
    /// TransactWriteItems; it reads only what it does not know, or what a
    /// failed write told it was stale. `caller` must own the sender account.
    pub async fn make_payment(
        &self,
        order: &PaymentOrder,
        caller: &Caller,
    ) -> Result<PaymentOutcome, LedgerError> {
        let sender_id = order.sender_id.as_str();
        let recipient_id = order.recipient_id.as_str();
        let _queued = self.queue_transfer(sender_id, recipient_id).await;
        let key = record_key(sender_id, order.idempotency_key.as_str());
        let mut own_ids: Vec<String> = Vec::new();
        let mut slot = None;
        let mut verified = Verified::default();
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            // The payment record as read in this round, if it was read.
            let (mut sender, mut recipient, mut record) =
                match self.start_round(order, caller, &key).await? {
                    Start::Stored(stored) => return answer(order, &own_ids, stored),
                    Start::Parties {
                        sender,
                        recipient,
                        record,
                    } => (*sender, *recipient, record),
                };
            let credit_shard = self.credit_shard(&recipient.facts, &mut slot);
            let (debits, credit, now) = match self
                .plan(
                    order,
                    &mut sender,
                    &mut recipient,
                    credit_shard,
                    &mut verified,
                    &mut record,
                )
                .await?
            {
                Ok(planned) => planned,
                Err(err) => {
                    return answer(order, &own_ids, self.stored_or(err, &key, record).await?);
                }
            };
            let payment = new_payment(order, now);
            let transfer = Transfer::plan(payment, debits, credit, recipient.facts.shards, now);
            own_ids.push(transfer.payment.transaction_id.clone());
            let put = self.put_record(record_item(
                &transfer.payment,
                order.idempotency_key.as_str(),
                &transfer.legs(),
            ))?;
            let items: Vec<TransactWriteItem> = self.transfer_items(&transfer, vec![put])?;
            match self.transact(items).await? {
                Written::Committed => {
                    self.observe_transfer(&transfer);
                    self.known.remember_record(&StoredRecord::Transfer {
                        idempotency_key: order.idempotency_key.as_str().to_owned(),
                        payment: transfer.payment.clone(),
                        refunded_minor: 0,
                    });
                    return Ok(PaymentOutcome {
                        payment: transfer.payment,
                        replayed: false,
                    });
                }
                // A timeout, a dropped connection, a 5xx: the write may or
                // may not have committed. The record says which.
                Written::Unknown(cause) => {
                    return match self.read_record(&key).await {
                        Ok(Some(stored)) => answer(order, &own_ids, stored),
                        Ok(None) | Err(_) => Err(LedgerError::OutcomeUnknown { cause }),
                    };
                }
                Written::Cancelled(reasons) => {
                    rounds.met(&reasons)?;
                    // The key is taken: its record answers.
                    let put = reason(&reasons, transfer.debits.len() + 1);
                    if let Some(stored) = self.taken(put, &key).await? {
                        return answer(order, &own_ids, stored);
                    }
                    if self.learn_from_transfer(&transfer, &reasons) {
                        // Lost the credit shard to another writer that
                        // sticks to it: move to the quietest.
                        self.move_credit(&recipient.facts, transfer.credit.shard, &mut slot)
                            .await?;
                    }
                    tracing::debug!("payment round lost a race; going again");
                }
            }
        }
        // The last round may have committed after all (a TransactionInProgress
        // answer, say): the record says.
        match self.read_record(&key).await {
            Ok(Some(stored)) => answer(order, &own_ids, stored),
            _ => Err(rounds.exhausted()),
        }
    }

    /// Plans a round from what is known, reading only what is missing; a
    /// refusal (insufficient funds, balance limit) is only given after the
    /// shards concerned were read fresh in this call. The outer error is a
    /// failure to read; the inner one a refusal.
    async fn plan(
        &self,
        order: &PaymentOrder,
        sender: &mut Party,
        recipient: &mut Party,
        credit_shard: u32,
        verified: &mut Verified,
        record: &mut RecordRead<StoredRecord>,
    ) -> Result<Result<Planned, LedgerError>, LedgerError> {
        let amount = order.amount_minor;
        let sender_all = sender.all_shards();
        let key = record_key(order.sender_id.as_str(), order.idempotency_key.as_str());
        let mut credit_shard = credit_shard;
        // What the sender needs first: shard 0 for an ordinary account; a
        // sharded sender's known shards are tried before reading them all.
        let sender_first: &[u32] = if sender.facts.shards == 1 || sender.known_count() == 0 {
            &sender_all
        } else {
            &[]
        };
        self.fill(
            &mut [
                (&mut *sender, sender_first),
                (&mut *recipient, &[credit_shard]),
            ],
            None,
        )
        .await?;
        let now = super::clock::now_ms();
        let debits = loop {
            match plan_debits(sender, amount, now) {
                Some(debits) => break debits,
                // Unknown shards, some perhaps just seen in a reshard.
                None if sender.known_count() < sender.shards.len() => {
                    let all = sender.all_shards();
                    self.fill(&mut [(&mut *sender, &all)], None).await?;
                }
                None if !verified.sender => {
                    // Before refusing, read the sender fresh, and the
                    // record with it: a replay is answered from it.
                    verified.sender = true;
                    sender.forget_shards();
                    let all = sender.all_shards();
                    *record = self
                        .fill_with_record(&mut [(&mut *sender, &all)], &key)
                        .await?;
                }
                None => {
                    return Ok(Err(refusal(
                        sender,
                        amount,
                        "payment",
                        DEBIT_SHARDS_MAX,
                        now,
                    )));
                }
            }
        };
        if !has_room(recipient, credit_shard, amount) {
            if !verified.recipient {
                verified.recipient = true;
                recipient.forget_shards();
            }
            let all = recipient.all_shards();
            *record = self
                .fill_with_record(&mut [(&mut *recipient, &all)], &key)
                .await?;
            self.fill_raised(recipient).await?;
            match recipient
                .all_shards()
                .into_iter()
                .find(|&k| has_room(recipient, k, amount))
            {
                Some(shard) => credit_shard = shard,
                None => {
                    return Ok(Err(LedgerError::BalanceLimit {
                        account_id: recipient.facts.account_id.clone(),
                    }));
                }
            }
        }
        let credit = recipient.shards[credit_shard as usize]
            .clone()
            .ok_or_else(|| LedgerError::Internal("credit shard state missing".into()))?;
        Ok(Ok((debits, (credit_shard, credit), now)))
    }

    /// The record stored under a key, strongly consistent.
    pub(super) async fn read_record(
        &self,
        key: &Item,
    ) -> Result<Option<StoredRecord>, LedgerError> {
        let record = self.read_record_item(key.clone()).await?;
        if let Some(record) = &record {
            self.known.remember_record(record);
        }
        Ok(record)
    }
}

/// Whether a shard of `party` is known to have room for a credit of
/// `amount` within its share of the balance limit.
pub(super) fn has_room(party: &Party, shard: u32, amount: i64) -> bool {
    let room = shard_balance_max_minor(party.facts.shards) - amount;
    party
        .shards
        .get(shard as usize)
        .and_then(Option::as_ref)
        .is_some_and(|s| s.balance_minor <= room)
}

/// Which parties' shards were read fresh before a refusal.
#[derive(Debug, Default)]
struct Verified {
    sender: bool,
    recipient: bool,
}

/// The answer when a record is stored under the order's key (see
/// [`super::replay`]).
fn answer(
    order: &PaymentOrder,
    own_ids: &[String],
    stored: StoredRecord,
) -> Result<PaymentOutcome, LedgerError> {
    let replayed = replayed(Call::Payment(order), own_ids, &stored)?;
    match stored {
        StoredRecord::Transfer { payment, .. } => Ok(PaymentOutcome { payment, replayed }),
        StoredRecord::Hold(_) | StoredRecord::Fence(_) => Err(LedgerError::Internal(
            "a hold or a fence answered a payment's key".into(),
        )),
    }
}

/// The transaction a payment round commits, made at `now`.
fn new_payment(order: &PaymentOrder, now: i64) -> Transaction {
    Transaction {
        transaction_id: new_transaction_id(),
        sender_id: order.sender_id.as_str().to_owned(),
        recipient_id: order.recipient_id.as_str().to_owned(),
        amount_minor: order.amount_minor,
        currency: order.currency.as_str().to_owned(),
        memo: order.memo.clone(),
        created_at_ms: now,
        kind: TransactionKind::Payment,
        refund_of: String::new(),
    }
}
