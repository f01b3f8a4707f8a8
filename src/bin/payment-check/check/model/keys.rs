//! The fates of keys (refusal_had_no_effect, key_reuse_refused,
//! ambiguous_resolved, fenced_never_commits) and lookups
//! (lookup_consistent).

use super::{Checker, Coverage};
use crate::check::clients::{Class, Fate, KeyedOp, Request};
use payment::ledger::Found;

impl Checker<'_> {
    pub(super) fn keyed_fates(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        for op in self.keyed {
            let stored = self.stored(&op.sender, &op.key).is_some();
            let calls: Vec<usize> = self
                .calls
                .iter()
                .filter(|c| c.op == op.op)
                .map(|c| c.id)
                .collect();
            if op.reuse {
                coverage.keys_reused += 1;
                found.extend(self.reuse_problems(op));
                if op.fate == Fate::Open {
                    found.push((
                        "ambiguous_resolved",
                        format!(
                            "key {}/{} has no final answer after every retry and final lookup",
                            op.sender, op.key
                        ),
                        calls,
                    ));
                }
                continue;
            }
            match (&op.fate, stored) {
                (Fate::Committed, _) => coverage.keys_committed += 1,
                (Fate::Refused, false) => {}
                (Fate::Refused, true) => found.push((
                    "refusal_had_no_effect",
                    format!("key {}/{} was refused (and never cut off) but committed", op.sender, op.key),
                    calls,
                )),
                (Fate::Fenced, false) => coverage.keys_fenced += 1,
                (Fate::Fenced, true) => found.push((
                    "fenced_never_commits",
                    format!("key {}/{} was fenced (NOT_FOUND KEY_FENCED) but committed", op.sender, op.key),
                    calls,
                )),
                (Fate::NotFoundUnfenced, false) => coverage.keys_not_found_unfenced += 1,
                (Fate::NotFoundUnfenced, true) => found.push((
                    "fenced_never_commits",
                    format!(
                        "key {}/{}: the final lookup answered NOT_FOUND (no fence) after the call was cut off, then the key committed: a late write",
                        op.sender, op.key
                    ),
                    calls,
                )),
                (Fate::Open, _) => found.push((
                    "ambiguous_resolved",
                    format!("key {}/{} has no final answer after every retry and final lookup", op.sender, op.key),
                    calls,
                )),
            }
        }
        for (check, what, calls) in found {
            self.anomaly(check, what, calls);
        }
    }

    /// What is wrong with an operation that reused a committed hold's key
    /// for another call: each of its calls must be answered ALREADY_EXISTS
    /// (IDEMPOTENCY_KEY_REUSED) or ambiguously, and the key must still
    /// hold the hold.
    fn reuse_problems(&self, op: &KeyedOp) -> Vec<(&'static str, String, Vec<usize>)> {
        const CHECK: &str = "key_reuse_refused";
        let mut problems = Vec::new();
        for call in self.calls.iter().filter(|c| c.op == op.op) {
            if matches!(call.request, Request::Lookup { .. }) {
                continue;
            }
            let refused_as_reuse = call.answer.code == "AlreadyExists"
                && call.answer.reason == "IDEMPOTENCY_KEY_REUSED";
            if call.answer.class == Class::Ambiguous || refused_as_reuse {
                continue;
            }
            let other = match &call.request {
                Request::Pay { .. } => "a payment".to_owned(),
                Request::Authorize { expires_in_s, .. } => {
                    format!("a hold expiring in {expires_in_s} s")
                }
                _ => "another call".to_owned(),
            };
            let answered = match &call.answer.reply {
                Some(reply) => format!("OK {reply:?}"),
                None => format!("{} {}", call.answer.code, call.answer.reason),
            };
            problems.push((
                CHECK,
                format!(
                    "call {} reused the key {}/{} of a committed hold for {other} and was answered {answered}, not ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED",
                    call.id, op.sender, op.key
                ),
                vec![call.id],
            ));
        }
        if !matches!(self.stored(&op.sender, &op.key), Some(Found::Hold { .. })) {
            problems.push((
                CHECK,
                format!(
                    "key {}/{} of a committed hold holds {:?} after it was reused",
                    op.sender,
                    op.key,
                    self.stored(&op.sender, &op.key)
                ),
                self.calls
                    .iter()
                    .filter(|c| c.op == op.op)
                    .map(|c| c.id)
                    .collect(),
            ));
        }
        problems
    }

    pub(super) fn lookups(&mut self) {
        let mut found = Vec::new();
        for call in self.calls {
            let Request::Lookup { sender, key, .. } = &call.request else {
                continue;
            };
            if call.answer.code != "NotFound" {
                continue;
            }
            // NOT_FOUND, yet the key was acknowledged before the lookup began.
            let acked_before = self.calls.iter().find(|c| {
                c.answer.class == Class::Ok
                    && c.completed_us < call.invoked_us
                    && match &c.request {
                        Request::Lookup {
                            sender: s, key: k, ..
                        } => s == sender && k == key,
                        other => other.key() == Some((sender.as_str(), key.as_str())),
                    }
            });
            if let Some(before) = acked_before {
                found.push((
                    format!("lookup of {sender}/{key} answered NOT_FOUND, but call {} had acknowledged it before", before.id),
                    vec![before.id, call.id],
                ));
            }
        }
        for (what, calls) in found {
            self.anomaly("lookup_consistent", what, calls);
        }
    }
}
