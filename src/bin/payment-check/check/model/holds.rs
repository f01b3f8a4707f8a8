//! hold_ends_once: every hold ends once, as its answers said.

use super::{Checker, Coverage, state_number};
use crate::check::clients::{Call, Class, Reply, Request};
use payment::ledger::{Found, Hold, HoldState, Transaction};
use std::collections::HashMap;

impl Checker<'_> {
    pub(super) fn holds(&mut self, coverage: &mut Coverage) {
        let mut found = Vec::new();
        // The capture or void operation aimed at each hold (a client aims
        // at most one at a hold), and the OK answers about it.
        let mut aimed: HashMap<(String, String), Vec<&Call>> = HashMap::new();
        for call in self.calls {
            if let Request::Capture { sender, key, .. } | Request::Void { sender, key } =
                &call.request
            {
                aimed
                    .entry((sender.clone(), key.clone()))
                    .or_default()
                    .push(call);
            }
        }
        for ((sender, key), stored) in &self.truth.keys {
            let Some(Found::Hold { hold, capture, .. }) = stored else {
                continue;
            };
            match hold.state {
                HoldState::Captured => coverage.holds_captured += 1,
                HoldState::Voided => coverage.holds_voided += 1,
                HoldState::Expired => coverage.holds_expired += 1,
                HoldState::Open => coverage.holds_open += 1,
            }
            let calls = aimed
                .get(&(sender.clone(), key.clone()))
                .cloned()
                .unwrap_or_default();
            let ids: Vec<usize> = calls.iter().map(|c| c.id).collect();
            if let Some(what) = self.hold_money(hold, capture.as_ref()) {
                found.push((what, ids.clone()));
            }
            found.extend(Self::hold_answers(hold, &calls));
            if let Some(what) = Self::hold_asked_for(hold, &calls) {
                found.push((what, ids.clone()));
            }
        }
        for (what, calls) in found {
            self.anomaly("hold_ends_once", what, calls);
        }
    }

    /// A captured hold moved its captured amount once (its capture is in
    /// both histories); any other moved nothing.
    fn hold_money(&self, hold: &Hold, capture: Option<&Transaction>) -> Option<String> {
        let in_histories = self.entries_of(&hold.hold_id).len();
        match (hold.state, capture) {
            (HoldState::Captured, Some(c))
                if in_histories != 2
                    || c.amount_minor != hold.captured_minor
                    || hold.captured_minor > hold.amount_minor =>
            {
                Some(format!(
                    "hold {} captured {} of {}: its capture is in the histories {in_histories} times",
                    hold.hold_id, hold.captured_minor, hold.amount_minor
                ))
            }
            (HoldState::Captured, Some(_)) => None,
            (HoldState::Captured, None) => Some(format!(
                "hold {} is captured without a capture",
                hold.hold_id
            )),
            (_, _) if in_histories != 0 => Some(format!(
                "hold {} is {:?} but moved money ({in_histories} history entries)",
                hold.hold_id, hold.state
            )),
            _ => None,
        }
    }

    /// Every OK answer about the hold agrees with how it ended.
    fn hold_answers(hold: &Hold, calls: &[&Call]) -> Vec<(String, Vec<usize>)> {
        let mut found = Vec::new();
        let ended = state_number(hold.state);
        for call in calls {
            let Some(Reply::Hold { hold: answered, .. }) = &call.answer.reply else {
                // A definite refusal of a capture or void: the hold did
                // not end that way by that call; its op's other calls
                // (retries) may have.
                continue;
            };
            let agrees =
                answered.state == ended && (ended != 2 || answered.captured == hold.captured_minor);
            if !agrees {
                found.push((
                    format!(
                        "call {} answered the hold {} state {} (captured {}), but it ended in state {ended} (captured {})",
                        call.id, hold.hold_id, answered.state, answered.captured, hold.captured_minor
                    ),
                    vec![call.id],
                ));
            }
        }
        found
    }

    /// A hold ended by a capture or void nobody asked for, or asked for
    /// and definitely refused every time.
    fn hold_asked_for(hold: &Hold, calls: &[&Call]) -> Option<String> {
        let by_capture = calls
            .iter()
            .any(|c| matches!(c.request, Request::Capture { .. }));
        let by_void = calls
            .iter()
            .any(|c| matches!(c.request, Request::Void { .. }));
        let all_refused =
            !calls.is_empty() && calls.iter().all(|c| c.answer.class == Class::Refused);
        let wrong = match hold.state {
            HoldState::Captured => !by_capture || all_refused,
            HoldState::Voided => !by_void || all_refused,
            _ => false,
        };
        wrong.then(|| {
            format!(
                "hold {} ended {:?} though no call that was not refused asked for it",
                hold.hold_id, hold.state
            )
        })
    }
}
