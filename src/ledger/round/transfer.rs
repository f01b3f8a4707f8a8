//! A transfer as one round writes it: the sender's debits, the
//! recipient's credit and their history entries, planned and built once for
//! payments, captures and refunds, and what a cancelled one teaches.

use super::conditions::Room;
use super::party::Party;
use super::transact::{Reason, reason};
use crate::ledger::layout::{RecordLegs, ShardState, StoredEntry};
use crate::ledger::shards::merged_needs;
use crate::ledger::{Direction, Ledger, LedgerError, Transaction};
use aws_sdk_dynamodb::types::TransactWriteItem;

/// Most shards one payment may draw from: their updates and entries, with
/// the credit, its entry and the payment record, fill 2 * 48 + 3 = 99 of
/// the 100 items a transaction may hold (a refund, which also updates the
/// refunded payment's record, fills all 100). A sharded account pays out at
/// most what its 48 richest shards hold in one payment.
pub(in crate::ledger) const DEBIT_SHARDS_MAX: usize = 48;

impl Ledger {
    /// The items of a transfer, in this order: the debited shards, the
    /// credited shard, `records` (the operation's own record writes), then
    /// the history entries. See [`Transfer`].
    pub(in crate::ledger) fn transfer_items(
        &self,
        transfer: &Transfer,
        records: Vec<TransactWriteItem>,
    ) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let payment = &transfer.payment;
        let sender = &payment.sender_id;
        let recipient = &payment.recipient_id;
        let multi = transfer.debits.len() > 1;
        let mut items = Vec::new();
        let mut entries = Vec::new();
        for leg in &transfer.debits {
            let update = self.shard_update(sender, leg, Direction::Debit, multi, Room::NONE)?;
            items.push(TransactWriteItem::builder().update(update).build());
            entries.push(StoredEntry {
                account_id: sender.clone(),
                shard: leg.shard,
                sequence: leg.after.version,
                direction: Direction::Debit,
                amount_minor: leg.part_minor,
                balance_after_minor: leg.after.balance_minor,
                payment: payment.clone(),
            });
        }
        let credit = &transfer.credit;
        let room = Room {
            shards: transfer.recipient_shards,
            amount_minor: payment.amount_minor,
        };
        let update = self.shard_update(recipient, credit, Direction::Credit, false, room)?;
        items.push(TransactWriteItem::builder().update(update).build());
        entries.push(StoredEntry {
            account_id: recipient.clone(),
            shard: credit.shard,
            sequence: credit.after.version,
            direction: Direction::Credit,
            amount_minor: payment.amount_minor,
            balance_after_minor: credit.after.balance_minor,
            payment: payment.clone(),
        });
        items.extend(records);
        for entry in entries {
            items.push(
                TransactWriteItem::builder()
                    .put(self.put_new(entry.to_item())?)
                    .build(),
            );
        }
        Ok(items)
    }

    /// Remembers the shards a committed transfer wrote.
    pub(in crate::ledger) fn observe_transfer(&self, transfer: &Transfer) {
        for leg in &transfer.debits {
            self.known
                .observe(&transfer.payment.sender_id, leg.shard, &leg.after);
        }
        self.known.observe(
            &transfer.payment.recipient_id,
            transfer.credit.shard,
            &transfer.credit.after,
        );
    }

    /// After a cancelled transfer: a shard whose condition failed without
    /// returning its item, or an entry that failed alone (this instance's
    /// memory is wrong in a way the items did not show), is forgotten, so
    /// the next round reads it. Returns whether the credit shard was lost.
    pub(in crate::ledger) fn learn_from_transfer(
        &self,
        transfer: &Transfer,
        reasons: &[Reason],
    ) -> bool {
        let legs = transfer.debits.len() + 1;
        let touched = transfer
            .debits
            .iter()
            .map(|leg| (transfer.payment.sender_id.as_str(), leg.shard))
            .chain(std::iter::once((
                transfer.payment.recipient_id.as_str(),
                transfer.credit.shard,
            )));
        let mut stale_shard = false;
        for (i, (account_id, shard)) in touched.enumerate() {
            let reason = reason(reasons, i);
            if reason.failed() {
                stale_shard = true;
                if reason.item().is_none() {
                    self.known.forget(account_id, shard);
                }
            }
        }
        let entries_from = reasons.len().saturating_sub(legs);
        if !stale_shard && (entries_from..reasons.len()).any(|i| reason(reasons, i).failed()) {
            for leg in &transfer.debits {
                self.known.forget(&transfer.payment.sender_id, leg.shard);
            }
            self.known
                .forget(&transfer.payment.recipient_id, transfer.credit.shard);
        }
        !reason(reasons, legs - 1).is_none()
    }
}

/// One shard a transfer touches: its state before and after, and what it
/// gives or gets.
#[derive(Debug, Clone)]
pub(in crate::ledger) struct Leg {
    pub shard: u32,
    pub before: ShardState,
    pub after: ShardState,
    pub part_minor: i64,
}

/// A transfer as one round writes it: `payment` (whose `created_at_ms` is
/// the entries' time) from its sender's `debits` to one `credit` shard of
/// its recipient, which has `recipient_shards` shards.
#[derive(Debug, Clone)]
pub(in crate::ledger) struct Transfer {
    pub payment: Transaction,
    pub debits: Vec<Leg>,
    pub credit: Leg,
    pub recipient_shards: u32,
}

impl Transfer {
    /// Plans the legs: `debits` (shard, state, part) of the sender, and the
    /// recipient's `credit` shard. `now` is the clock that decided what the
    /// sender may spend; the holds expired by then are swept with it (never
    /// with the entry time, which another writer's clock may have pushed
    /// ahead). The entries' time is set into `payment`: now, but strictly
    /// after the newest entry of every shard touched.
    pub(in crate::ledger) fn plan(
        mut payment: Transaction,
        debits: Vec<(u32, ShardState, i64)>,
        credit: (u32, ShardState),
        recipient_shards: u32,
        now: i64,
    ) -> Self {
        let at = debits
            .iter()
            .map(|(_, s, _)| s.updated_at_ms)
            .chain(std::iter::once(credit.1.updated_at_ms))
            .map(|t| t.saturating_add(1))
            .fold(now, i64::max);
        payment.created_at_ms = at;
        let legs: Vec<(u32, &ShardState)> = debits.iter().map(|(k, st, _)| (*k, st)).collect();
        let needs = merged_needs(&legs);
        let debits = debits
            .iter()
            .map(|(shard, before, part)| {
                let swept = before.swept(now);
                Leg {
                    shard: *shard,
                    after: ShardState {
                        version: before.version + 1,
                        balance_minor: before.balance_minor - part,
                        updated_at_ms: at,
                        need: needs.get(shard).cloned().unwrap_or_default(),
                        holds_rev: before.holds_rev + u64::from(swept.is_some()),
                        holds: swept.unwrap_or_else(|| before.holds.clone()),
                        told_shards: before.told_shards,
                    },
                    before: before.clone(),
                    part_minor: *part,
                }
            })
            .collect();
        let (shard, before) = credit;
        let credit = Leg {
            shard,
            after: ShardState {
                version: before.version + 1,
                balance_minor: before.balance_minor + payment.amount_minor,
                updated_at_ms: at,
                ..before.clone()
            },
            before,
            part_minor: payment.amount_minor,
        };
        Self {
            payment,
            debits,
            credit,
            recipient_shards,
        }
    }

    /// Where the transfer's entries are, for its record.
    pub(in crate::ledger) fn legs(&self) -> RecordLegs {
        RecordLegs {
            debits: self
                .debits
                .iter()
                .map(|leg| (leg.shard, leg.after.version, leg.part_minor))
                .collect(),
            credit: (self.credit.shard, self.credit.after.version),
        }
    }
}

/// Why a sender that is fully known cannot pay `amount`: too little
/// available, or enough but spread over more shards than one transaction
/// can take (`shards_max`: one for a hold).
pub(in crate::ledger) fn refusal(
    sender: &Party,
    amount: i64,
    what: &'static str,
    shards_max: usize,
    now: i64,
) -> LedgerError {
    let states = || sender.shards.iter().flatten();
    let available_minor: i64 = states().map(|s| s.available_at(now).max(0)).sum();
    if available_minor >= amount {
        let mut richest: Vec<i64> = states().map(|s| s.available_at(now).max(0)).collect();
        richest.sort_unstable_by(|a, b| b.cmp(a));
        return LedgerError::SpreadOverShards {
            account_id: sender.facts.account_id.clone(),
            shards_max,
            payable_minor: richest.iter().take(shards_max).sum(),
        };
    }
    LedgerError::InsufficientFunds {
        account_id: sender.facts.account_id.clone(),
        what,
        currency: sender.facts.currency.clone(),
        available_minor,
        held_minor: states().map(|s| s.held_at(now)).sum(),
        amount_minor: amount,
    }
}

/// Which shards of the sender give what: one shard when a known one has
/// the whole amount available (the richest), else the richest first until
/// covered, once every shard is known. None when the known shards do not
/// cover it. Only available money counts: holds that have not expired at
/// `now` reserve theirs.
pub(in crate::ledger) fn plan_debits(
    sender: &Party,
    amount: i64,
    now: i64,
) -> Option<Vec<(u32, ShardState, i64)>> {
    let mut known: Vec<(u32, &ShardState)> = sender
        .shards
        .iter()
        .enumerate()
        .filter_map(|(k, s)| Some((u32::try_from(k).ok()?, s.as_ref()?)))
        .collect();
    known.sort_by_key(|(k, s)| (std::cmp::Reverse(s.available_at(now)), *k));
    if let Some((k, state)) = known.first()
        && state.available_at(now) >= amount
    {
        return Some(vec![(*k, (*state).clone(), amount)]);
    }
    if known.len() < sender.shards.len() {
        return None;
    }
    let mut left = amount;
    let mut debits = Vec::new();
    for (k, state) in known.into_iter().take(DEBIT_SHARDS_MAX) {
        if left == 0 {
            break;
        }
        let part = state.available_at(now).max(0).min(left);
        if part > 0 {
            debits.push((k, state.clone(), part));
            left -= part;
        }
    }
    let mut debits = (left == 0).then_some(debits)?;
    debits.sort_by_key(|(k, _, _)| *k);
    Some(debits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::layout::AccountFacts;

    #[test]
    fn expired_holds_are_swept_with_the_clock_that_planned_the_debit() {
        use crate::ledger::layout::HoldSlot;
        // A shard whose newest entry is an hour ahead of this instance's
        // clock (another writer's clock ran ahead).
        let ahead = 3_600_000;
        let now = 1_000_000;
        let state = ShardState {
            version: 3,
            balance_minor: 1_000,
            updated_at_ms: now + ahead,
            holds: [(
                "h".to_owned(),
                HoldSlot {
                    amount_minor: 400,
                    expires_at_ms: now + 60_000,
                },
            )]
            .into(),
            holds_rev: 1,
            ..ShardState::default()
        };
        let sender = Party {
            facts: AccountFacts {
                account_id: "a".into(),
                display_name: String::new(),
                currency: "EUR".into(),
                created_at_ms: 0,
                owner: String::new(),
                opening_balance_minor: 0,
                shards: 1,
            },
            shards: vec![Some(state.clone())],
        };
        let debits = plan_debits(&sender, 600, now).unwrap();
        let payment = Transaction {
            transaction_id: "t".into(),
            sender_id: "a".into(),
            recipient_id: "b".into(),
            amount_minor: 600,
            currency: "EUR".into(),
            memo: String::new(),
            created_at_ms: 0,
            kind: crate::ledger::TransactionKind::Payment,
            refund_of: String::new(),
        };
        let transfer = Transfer::plan(payment, debits, (0, ShardState::default()), 1, now);
        // The entry comes after the shard's newest, but the hold, which
        // has not expired at this instance's now, is kept.
        assert_eq!(transfer.payment.created_at_ms, now + ahead + 1);
        let after = &transfer.debits[0].after;
        assert_eq!(after.holds.len(), 1);
        assert_eq!(after.holds_rev, 1);
        assert_eq!(after.balance_minor, 400);
        // Once it has expired at the planning clock, it is swept.
        let later = now + 60_000;
        let debits = plan_debits(&sender, 1_000, later).unwrap();
        let transfer = Transfer::plan(
            transfer.payment.clone(),
            debits,
            (0, ShardState::default()),
            1,
            later,
        );
        assert!(transfer.debits[0].after.holds.is_empty());
        assert_eq!(transfer.debits[0].after.holds_rev, 2);
    }
}
