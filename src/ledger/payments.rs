//! MakePayment: its plan and its conditions, over the shared round
//! ([`super::round`]). On a warm instance a payment is one
//! TransactWriteItems, and so is its replay (answered by the failed write).

use super::clock::new_transaction_id;
use super::known::CreditSlot;
use super::layout::{Item, ShardState, StoredRecord, record_item, record_key};
use super::replay::{Call, replayed};
use super::round::{
    DEBIT_SHARDS_MAX, Next, Party, RecordRead, Rounds, Settled, Start, Transfer, plan_debits,
    refusal,
};
use super::{Caller, Ledger, LedgerError, PaymentOutcome, Transaction, TransactionKind};
use crate::domain::{PaymentOrder, shard_balance_max_minor};

/// What a round of a payment writes, before the transfer is built: the
/// debits (shard, state, part), the credit (shard, state), and the clock
/// that decided them.
type Planned = (Vec<Debit>, (u32, ShardState), i64);

/// One debit of the sender: its shard, the shard's state and the part.
type Debit = (u32, ShardState, i64);

/// What one round of a payment works on: both parties as known, and the
/// payment's record as read in this round.
struct Parties {
    sender: Party,
    recipient: Party,
    record: RecordRead<StoredRecord>,
}

/// One payment call, across its rounds.
struct PaymentCall<'a> {
    order: &'a PaymentOrder,
    caller: &'a Caller,
    /// The key of the payment's record.
    key: Item,
    /// The transaction ids this call's rounds wrote under the key.
    own_ids: Vec<String>,
    /// The recipient's shard this call credits, once taken.
    slot: Option<CreditSlot>,
    verified: Verified,
}

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
        let mut call = PaymentCall {
            order,
            caller,
            key: record_key(sender_id, order.idempotency_key.as_str()),
            own_ids: Vec::new(),
            slot: None,
            verified: Verified::default(),
        };
        let mut rounds = Rounds::new();
        while rounds.next().await.is_some() {
            if let Next::Done(outcome) = self.payment_round(&mut call, &mut rounds).await? {
                return Ok(outcome);
            }
        }
        let stored = self.stored_or_exhausted(&call.key, &rounds).await?;
        answer(order, &call.own_ids, stored)
    }

    /// One round: plan from what is known, write the transfer and the
    /// record, and settle what DynamoDB answered.
    async fn payment_round(
        &self,
        call: &mut PaymentCall<'_>,
        rounds: &mut Rounds,
    ) -> Result<Next<PaymentOutcome>, LedgerError> {
        let mut round = match self.start_round(call.order, call.caller, &call.key).await? {
            Start::Stored(stored) => {
                return answer(call.order, &call.own_ids, stored).map(Next::Done);
            }
            Start::Parties {
                sender,
                recipient,
                record,
            } => Parties {
                sender: *sender,
                recipient: *recipient,
                record,
            },
        };
        let (debits, credit, now) = match self.plan(call, &mut round).await? {
            Ok(planned) => planned,
            Err(err) => {
                let stored = self.stored_or(err, &call.key, round.record).await?;
                return answer(call.order, &call.own_ids, stored).map(Next::Done);
            }
        };
        let payment = new_payment(call.order, now);
        let shards = round.recipient.facts.shards;
        let transfer = Transfer::plan(payment, debits, credit, shards, now);
        call.own_ids.push(transfer.payment.transaction_id.clone());
        let put = self.put_record(record_item(
            &transfer.payment,
            call.order.idempotency_key.as_str(),
            &transfer.legs(),
        ))?;
        let items = self.transfer_items(&transfer, vec![put])?;
        let written = self.transact(items).await?;
        let record_at = transfer.debits.len() + 1;
        match self.settle(written, rounds, &call.key, record_at).await? {
            Settled::Committed => Ok(Next::Done(self.paid(call.order, transfer))),
            Settled::Unknown { cause, read: None } => Err(LedgerError::OutcomeUnknown { cause }),
            // The key is taken, or the write committed after all: the
            // record answers.
            Settled::Unknown {
                read: Some(stored), ..
            }
            | Settled::Taken(stored) => answer(call.order, &call.own_ids, stored).map(Next::Done),
            Settled::Again(reasons) => {
                if self.learn_from_transfer(&transfer, &reasons) {
                    // Lost the credit shard to another writer that
                    // sticks to it: move to the quietest.
                    let lost = transfer.credit.shard;
                    self.move_credit(&round.recipient.facts, lost, &mut call.slot)
                        .await?;
                }
                tracing::debug!("payment round lost a race; going again");
                Ok(Next::Again)
            }
        }
    }

    /// A committed payment: its shards and its record remembered.
    fn paid(&self, order: &PaymentOrder, transfer: Transfer) -> PaymentOutcome {
        self.observe_transfer(&transfer);
        self.known.remember_record(&StoredRecord::Transfer {
            idempotency_key: order.idempotency_key.as_str().to_owned(),
            payment: transfer.payment.clone(),
            refunded_minor: 0,
        });
        PaymentOutcome {
            payment: transfer.payment,
            replayed: false,
        }
    }

    /// Plans a round from what is known, reading only what is missing; a
    /// refusal (insufficient funds, balance limit) is only given after the
    /// shards concerned were read fresh in this call. The outer error is a
    /// failure to read; the inner one a refusal.
    async fn plan(
        &self,
        call: &mut PaymentCall<'_>,
        round: &mut Parties,
    ) -> Result<Result<Planned, LedgerError>, LedgerError> {
        let credit_shard = self.credit_shard(&round.recipient.facts, &mut call.slot);
        let sender_all = round.sender.all_shards();
        // What the sender needs first: shard 0 for an ordinary account; a
        // sharded sender's known shards are tried before reading them all.
        let sender = &round.sender;
        let sender_first: &[u32] = if sender.facts.shards == 1 || sender.known_count() == 0 {
            &sender_all
        } else {
            &[]
        };
        self.fill(
            &mut [
                (&mut round.sender, sender_first),
                (&mut round.recipient, &[credit_shard]),
            ],
            None,
        )
        .await?;
        let now = super::clock::now_ms();
        let debits = match self.sender_debits(call, round, now).await? {
            Ok(debits) => debits,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let credit_shard = match self.credit_with_room(call, round, credit_shard).await? {
            Ok(shard) => shard,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let credit = round.recipient.shards[credit_shard as usize]
            .clone()
            .ok_or_else(|| LedgerError::Internal("credit shard state missing".into()))?;
        Ok(Ok((debits, (credit_shard, credit), now)))
    }

    /// The sender's debits at `now`, after reading its shards not known
    /// yet, and all of them fresh once in the call before refusing.
    async fn sender_debits(
        &self,
        call: &mut PaymentCall<'_>,
        round: &mut Parties,
        now: i64,
    ) -> Result<Result<Vec<Debit>, LedgerError>, LedgerError> {
        let amount = call.order.amount_minor;
        let sender = &mut round.sender;
        loop {
            match plan_debits(sender, amount, now) {
                Some(debits) => return Ok(Ok(debits)),
                // Unknown shards, some perhaps just seen in a reshard.
                None if sender.known_count() < sender.shards.len() => {
                    let all = sender.all_shards();
                    self.fill(&mut [(&mut *sender, &all)], None).await?;
                }
                None if !call.verified.sender => {
                    // Before refusing, read the sender fresh, and the
                    // record with it: a replay is answered from it.
                    call.verified.sender = true;
                    sender.forget_shards();
                    let all = sender.all_shards();
                    round.record = self
                        .fill_with_record(&mut [(&mut *sender, &all)], &call.key)
                        .await?;
                }
                None => {
                    let refused = refusal(sender, amount, "payment", DEBIT_SHARDS_MAX, now);
                    return Ok(Err(refused));
                }
            }
        }
    }

    /// The recipient's shard to credit: `credit_shard` when it is known to
    /// have room; else, once every shard of the recipient was read (fresh
    /// the first time in the call, with the record), the first with room.
    async fn credit_with_room(
        &self,
        call: &mut PaymentCall<'_>,
        round: &mut Parties,
        credit_shard: u32,
    ) -> Result<Result<u32, LedgerError>, LedgerError> {
        let amount = call.order.amount_minor;
        let recipient = &mut round.recipient;
        if has_room(recipient, credit_shard, amount) {
            return Ok(Ok(credit_shard));
        }
        if !call.verified.recipient {
            call.verified.recipient = true;
            recipient.forget_shards();
        }
        let all = recipient.all_shards();
        round.record = self
            .fill_with_record(&mut [(&mut *recipient, &all)], &call.key)
            .await?;
        self.fill_raised(recipient).await?;
        let roomy = recipient
            .all_shards()
            .into_iter()
            .find(|&k| has_room(recipient, k, amount));
        Ok(roomy.ok_or_else(|| LedgerError::BalanceLimit {
            account_id: recipient.facts.account_id.clone(),
        }))
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
