//! Money: refund_within_payment and conservation.

use super::{Checker, Coverage, signed};
use payment::ledger::TransactionKind;
use std::collections::{HashMap, HashSet};

impl Checker<'_> {
    pub(super) fn refunds(&mut self, coverage: &mut Coverage) {
        let mut refunded: HashMap<String, i64> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut amounts: HashMap<String, i64> = HashMap::new();
        for account in self.truth.accounts.values() {
            for entry in &account.entries {
                let p = &entry.payment;
                if p.kind == TransactionKind::Refund && seen.insert(p.transaction_id.clone()) {
                    *refunded.entry(p.refund_of.clone()).or_default() += p.amount_minor;
                    coverage.refunds += 1;
                }
                if matches!(p.kind, TransactionKind::Payment | TransactionKind::Capture) {
                    amounts.insert(p.transaction_id.clone(), p.amount_minor);
                }
            }
        }
        let mut found = Vec::new();
        for (of, total) in &refunded {
            match amounts.get(of) {
                Some(amount) if total <= amount => {}
                Some(amount) => {
                    found.push(format!("payment {of} of {amount} was refunded {total}"))
                }
                None => found.push(format!(
                    "refunds of {total} name {of}, which is no payment or capture in the histories"
                )),
            }
        }
        for what in found {
            self.anomaly("refund_within_payment", what, vec![]);
        }
    }

    pub(super) fn conservation(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        for (id, account) in &self.truth.accounts {
            let (start, end) = coverage
                .money
                .entry(account.spec.currency.clone())
                .or_default();
            *start += account.spec.opening_minor;
            *end += account.balance;
            let sum: i64 = account.entries.iter().map(signed).sum();
            if sum != account.balance {
                found.push(format!(
                    "{id}: balance {} but its history sums to {sum}",
                    account.balance
                ));
            }
            if account.balance < 0 {
                found.push(format!("{id}: balance {} is negative", account.balance));
            }
        }
        for (currency, (start, end)) in &coverage.money {
            if start != end {
                found.push(format!(
                    "{currency}: {start} at the start, {end} at the end"
                ));
            }
        }
        for what in found {
            self.anomaly("conservation", what, vec![]);
        }
    }
}
