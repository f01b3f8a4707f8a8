//! The audit of holds: reserved exactly while open, and captured within
//! their amount by a transfer of exactly what was captured.

use super::{AuditReport, Seen};
use crate::ledger::layout::StoredEntry;
use crate::ledger::{Direction, HoldState};
use std::collections::HashMap;

pub(super) fn check(
    seen: &Seen,
    by_tx: &HashMap<&str, Vec<&StoredEntry>>,
    now: i64,
    report: &mut AuditReport,
) {
    check_reserved(seen, now, report);
    check_captures(seen, by_tx, report);
}

/// Every hold a shard keeps is covered by its balance, is an open hold of
/// this account on this shard, and is as its record says; every open hold
/// that has not expired is kept by its shard.
fn check_reserved(seen: &Seen, now: i64, report: &mut AuditReport) {
    for (id, account) in &seen.accounts {
        let Some(facts) = &account.facts else {
            continue;
        };
        for (&shard, state) in &account.shards {
            let balance = state.balance_minor;
            let reserved: i128 = state
                .holds
                .values()
                .map(|h| i128::from(h.amount_minor))
                .sum();
            if reserved > i128::from(balance) {
                report.flag(format!(
                    "account {id} shard {shard}: holds reserve {reserved} but the balance is {balance}"
                ));
            }
            for (key, slot) in &state.holds {
                match seen.holds.get(&(id.clone(), key.clone())) {
                    Some(hold)
                        if hold.state == HoldState::Open
                            && hold.shard == shard
                            && hold.payment.amount_minor == slot.amount_minor
                            && hold.expires_at_ms == slot.expires_at_ms =>
                    {
                        if slot.expires_at_ms > now {
                            report.held_minor += i128::from(slot.amount_minor);
                            report
                                .currencies
                                .entry(facts.currency.clone())
                                .or_default()
                                .held_minor += i128::from(slot.amount_minor);
                        }
                    }
                    Some(hold) => report.flag(format!(
                        "account {id} shard {shard}: keeps hold {key:?} ({} until {}) but its record says {:?} of {} on shard {} until {}",
                        slot.amount_minor,
                        slot.expires_at_ms,
                        hold.state,
                        hold.payment.amount_minor,
                        hold.shard,
                        hold.expires_at_ms
                    )),
                    None => report.flag(format!(
                        "account {id} shard {shard}: keeps hold {key:?} without a hold record"
                    )),
                }
            }
        }
    }
    for ((sender, key), hold) in &seen.holds {
        if hold.state_at(now) != HoldState::Open {
            continue;
        }
        report.holds_open += 1;
        let kept = seen
            .accounts
            .get(sender)
            .and_then(|a| a.shards.get(&hold.shard))
            .and_then(|s| s.holds.get(key));
        if kept.is_none() {
            report.flag(format!(
                "hold {} of {sender} ({key:?}) is open until {} but its shard {} does not reserve it",
                hold.payment.transaction_id, hold.expires_at_ms, hold.shard
            ));
        }
    }
}

/// A captured hold captured between 1 and its amount, and its capture
/// moved exactly that: debited from the sender and credited to the
/// recipient. A hold not captured records no capture.
fn check_captures(seen: &Seen, by_tx: &HashMap<&str, Vec<&StoredEntry>>, report: &mut AuditReport) {
    for hold in seen.holds.values() {
        let hold_id = &hold.payment.transaction_id;
        let (captured, held) = (hold.captured_minor, hold.payment.amount_minor);
        if hold.state != HoldState::Captured {
            if captured != 0 {
                report.flag(format!(
                    "hold {hold_id} is {:?} but records a capture of {captured}",
                    hold.state
                ));
            }
            continue;
        }
        if captured <= 0 || captured > held {
            report.flag(format!(
                "hold {hold_id}: captured {captured} of a hold of {held}: a capture takes 1 to the amount held"
            ));
        }
        let entries = by_tx.get(hold_id.as_str()).map_or(&[][..], Vec::as_slice);
        let moved = |direction: Direction, account: &str| -> i128 {
            entries
                .iter()
                .filter(|e| e.direction == direction && e.account_id == account)
                .map(|e| i128::from(e.amount_minor))
                .sum()
        };
        let debited = moved(Direction::Debit, &hold.payment.sender_id);
        let credited = moved(Direction::Credit, &hold.payment.recipient_id);
        let captured_wide = i128::from(captured);
        if debited != captured_wide || credited != captured_wide {
            report.flag(format!(
                "hold {hold_id}: captured_amount {captured} but its capture took {debited} from {} and gave {credited} to {}",
                hold.payment.sender_id, hold.payment.recipient_id
            ));
        }
    }
}
