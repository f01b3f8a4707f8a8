//! ok_is_one_effect: every OK answer is one committed effect as asked,
//! every effect in the histories was asked for, and no call is answered
//! INTERNAL.

use super::Checker;
use crate::check::clients::{Call, Class, Reply, Request};
use payment::ledger::{Direction, Found, HoldState, TransactionKind};
use std::collections::HashSet;

impl Checker<'_> {
    pub(super) fn ok_is_one_effect(&mut self) {
        const CHECK: &str = "ok_is_one_effect";
        for call in self.calls {
            if call.answer.class != Class::Ok {
                continue;
            }
            let problems = self.ok_problems(call);
            for what in problems {
                self.anomaly(
                    CHECK,
                    format!("call {} ({}): {what}", call.id, call.request.kind()),
                    vec![call.id],
                );
            }
        }
        // Every entry in a history is an effect some call asked for.
        let mut asked: HashSet<String> = HashSet::new();
        for found in self.truth.keys.values().flatten() {
            match found {
                Found::Transfer { payment, .. } => {
                    asked.insert(payment.transaction_id.clone());
                }
                Found::Hold { hold, .. } => {
                    asked.insert(hold.hold_id.clone());
                }
            }
        }
        let mut unasked = Vec::new();
        for (id, account) in &self.truth.accounts {
            for entry in &account.entries {
                if entry.payment.kind != TransactionKind::Opening
                    && !asked.contains(&entry.payment.transaction_id)
                {
                    unasked.push(format!(
                        "{id}: entry {}/{} {}",
                        entry.shard, entry.sequence, entry.payment.transaction_id
                    ));
                }
            }
        }
        for what in unasked {
            self.anomaly(
                CHECK,
                format!("an effect no call's key holds: {what}"),
                vec![],
            );
        }
    }

    /// What is wrong with an OK answer, against the stored records and the
    /// histories: the check of its request's kind, if the reply fits it.
    fn ok_problems(&self, call: &Call) -> Vec<String> {
        type OkCheck<C> = fn(&C, &Request, &Reply) -> Option<Vec<String>>;
        let by_kind: [OkCheck<Self>; 7] = [
            Self::paid,
            Self::held,
            Self::captured,
            Self::voided,
            Self::refunded,
            Self::found,
            Self::read_or_resharded,
        ];
        let (request, reply) = (&call.request, call.answer.reply.as_ref());
        if let Some(answered) = reply {
            for check in by_kind {
                if let Some(problems) = check(self, request, answered) {
                    return problems;
                }
            }
        }
        vec![format!("answer {reply:?} does not fit request {request:?}")]
    }

    /// A transfer must be in both histories exactly once, as answered.
    fn once(
        &self,
        txid: &str,
        sender: &str,
        recipient: &str,
        amount: i64,
        problems: &mut Vec<String>,
    ) {
        let entries = self.entries_of(txid);
        let debits: Vec<_> = entries
            .iter()
            .filter(|(a, e)| *a == sender && e.direction == Direction::Debit)
            .collect();
        let credits: Vec<_> = entries
            .iter()
            .filter(|(a, e)| *a == recipient && e.direction == Direction::Credit)
            .collect();
        if debits.len() != 1 || credits.len() != 1 || entries.len() != 2 {
            problems.push(format!(
                "transaction {txid} is in the histories {} times ({} debits of {sender}, {} credits of {recipient}), not once each",
                entries.len(),
                debits.len(),
                credits.len()
            ));
        }
        for (account, entry) in entries {
            if entry.payment.amount_minor != amount {
                problems.push(format!(
                    "transaction {txid} moved {} in {account}'s history, not {amount}",
                    entry.payment.amount_minor
                ));
            }
        }
    }

    /// MakePayment: answered as asked, its key holds it, it moved once.
    fn paid(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let (
            Request::Pay {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
            },
            Reply::Transfer { tx, .. },
        ) = (request, reply)
        else {
            return None;
        };
        let mut problems = Vec::new();
        if (&tx.sender, &tx.recipient, tx.amount, &tx.currency, tx.kind)
            != (sender, recipient, *amount, currency, 1)
        {
            problems.push(format!("answered {tx:?} for the payment asked"));
        }
        match self.stored(sender, key) {
            Some(Found::Transfer { payment, .. })
                if payment.transaction_id == tx.id
                    && payment.amount_minor == *amount
                    && &payment.recipient_id == recipient
                    && &payment.memo == memo
                    && payment.kind == TransactionKind::Payment => {}
            other => problems.push(format!(
                "key {sender}/{key} holds {other:?}, not payment {}",
                tx.id
            )),
        }
        self.once(&tx.id, sender, recipient, *amount, &mut problems);
        Some(problems)
    }

    /// AuthorizePayment: answered as asked, and its key holds the hold
    /// answered, expiry included.
    fn held(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let (
            Request::Authorize {
                key,
                sender,
                recipient,
                amount,
                expires_in_s,
                ..
            },
            Reply::Hold { hold, .. },
        ) = (request, reply)
        else {
            return None;
        };
        let mut problems = Vec::new();
        if (&hold.sender, &hold.recipient, hold.amount) != (sender, recipient, *amount) {
            problems.push(format!("answered {hold:?} for the hold asked"));
        }
        // The hold answered is the one asked for, expiry included.
        match self.stored(sender, key) {
            Some(Found::Hold { hold: stored, .. })
                if stored.hold_id == hold.id
                    && stored.amount_minor == *amount
                    && stored.expires_at_ms == hold.expires_at_ms
                    && stored.expires_at_ms - stored.created_at_ms == expires_in_s * 1000 => {}
            other => problems.push(format!(
                "key {sender}/{key} holds {other:?}, not hold {}",
                hold.id
            )),
        }
        Some(problems)
    }

    /// CaptureHold: the hold is captured as answered, and its capture
    /// moved once.
    fn captured(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let (
            Request::Capture {
                sender,
                key,
                amount,
            },
            Reply::Hold { hold, capture, .. },
        ) = (request, reply)
        else {
            return None;
        };
        let mut problems = Vec::new();
        match self.stored(sender, key) {
            Some(Found::Hold {
                hold: stored,
                capture: Some(stored_capture),
                ..
            }) if stored.state == HoldState::Captured
                && stored.captured_minor == hold.captured
                && (*amount == 0 || *amount == hold.captured)
                && capture
                    .as_ref()
                    .is_some_and(|c| c.id == stored_capture.transaction_id) =>
            {
                self.once(
                    &stored.hold_id,
                    &stored.sender_id,
                    &stored.recipient_id,
                    stored.captured_minor,
                    &mut problems,
                );
            }
            other => problems.push(format!(
                "capture answered {hold:?} but the hold is {other:?}"
            )),
        }
        Some(problems)
    }

    /// VoidHold: the hold is voided.
    fn voided(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let (Request::Void { sender, key }, Reply::Hold { .. }) = (request, reply) else {
            return None;
        };
        Some(match self.stored(sender, key) {
            Some(Found::Hold { hold, .. }) if hold.state == HoldState::Voided => vec![],
            other => vec![format!("void answered OK but the hold is {other:?}")],
        })
    }

    /// RefundPayment: its key holds the refund of the payment named, its
    /// total covers it, and it moved once.
    fn refunded(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let (
            Request::Refund {
                key,
                payer,
                payment_sender,
                payment_key,
                amount,
                ..
            },
            Reply::Transfer {
                tx, refunded_total, ..
            },
        ) = (request, reply)
        else {
            return None;
        };
        let mut problems = Vec::new();
        let refunded_of = self.txid_of(payment_sender, payment_key);
        match self.stored(payer, key) {
            Some(Found::Transfer { payment, .. })
                if payment.transaction_id == tx.id
                    && payment.kind == TransactionKind::Refund
                    && Some(&payment.refund_of) == refunded_of.as_ref()
                    && payment.amount_minor == tx.amount
                    && (*amount == 0 || *amount == tx.amount) => {}
            other => problems.push(format!(
                "refund key {payer}/{key} holds {other:?}, not refund {}",
                tx.id
            )),
        }
        if *refunded_total < tx.amount {
            problems.push(format!(
                "refunded_total {refunded_total} is below the refund's own {}",
                tx.amount
            ));
        }
        self.once(&tx.id, payer, payment_sender, tx.amount, &mut problems);
        Some(problems)
    }

    /// GetPayment: it found what the key holds.
    fn found(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let (Request::Lookup { sender, key, .. }, Reply::Found { tx, hold, .. }) = (request, reply)
        else {
            return None;
        };
        let answered = hold
            .as_ref()
            .map(|h| h.id.clone())
            .or_else(|| tx.as_ref().map(|t| t.id.clone()));
        let stored = self.txid_of(sender, key);
        Some(if stored.is_none() || answered != stored {
            vec![format!(
                "lookup of {sender}/{key} found {answered:?}, the key holds {stored:?}"
            )]
        } else {
            vec![]
        })
    }

    /// Balance reads and pages (checked by `balances` and `pages`), and
    /// SetBalanceShards (by `shards` and `balances`): nothing here.
    fn read_or_resharded(&self, request: &Request, reply: &Reply) -> Option<Vec<String>> {
        let fits = matches!(
            (request, reply),
            (
                Request::Balance { .. } | Request::History { .. },
                Reply::Balance { .. } | Reply::Page { .. }
            ) | (Request::SetShards { .. }, Reply::Shards { .. })
        );
        fits.then(Vec::new)
    }

    /// The service never answers INTERNAL for a request (only for broken
    /// stored data, which is an anomaly too).
    pub(super) fn service_errors(&mut self) {
        let internal: Vec<usize> = self
            .calls
            .iter()
            .filter(|c| c.answer.code == "Internal" && c.answer.reason == "INTERNAL")
            .map(|c| c.id)
            .collect();
        for id in internal {
            self.anomaly(
                "ok_is_one_effect",
                format!("call {id} was answered INTERNAL"),
                vec![id],
            );
        }
    }
}
