//! The bound and the backoff of one operation's rounds.

use super::transact::Reason;
use crate::ledger::LedgerError;
use std::time::Duration;

/// Most rounds one operation takes before the caller gets ABORTED (or
/// UNAVAILABLE, when DynamoDB was throttling). A round fails when another
/// writer changed an item it touches; the failed write returns the items'
/// current state, so the next round usually commits. With the backoff
/// below, ten rounds span about a second.
pub const PAYMENT_ATTEMPTS_MAX: u32 = 10;
/// Backoff before a round that follows a conflict (two transactions on one
/// item at the same moment) or a second lost round; doubles each round up to
/// the cap, each wait drawn uniformly from zero to that bound (full jitter).
/// The first round that only learnt a newer version goes again at once.
const BACKOFF_BASE: Duration = Duration::from_millis(4);
const BACKOFF_CAP: Duration = Duration::from_millis(200);

/// Full-jitter exponential backoff before round `attempt` (1-based).
pub(in crate::ledger) fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=bound_us))
}

/// The bounded rounds of one operation.
#[derive(Debug, Default)]
pub(in crate::ledger) struct Rounds {
    attempt: u32,
    wait: bool,
    throttled: bool,
}

impl Rounds {
    pub(in crate::ledger) fn new() -> Self {
        Self::default()
    }

    /// Starts the next round (after the backoff, if the last round asked
    /// for one or it is not the second); None when the rounds are used up.
    pub(in crate::ledger) async fn next(&mut self) -> Option<u32> {
        if self.attempt >= PAYMENT_ATTEMPTS_MAX {
            return None;
        }
        if self.attempt > 1 || self.wait {
            tokio::time::sleep(backoff(self.attempt.max(1))).await;
        }
        self.attempt += 1;
        self.wait = false;
        Some(self.attempt)
    }

    /// Takes in what a cancelled round met: a conflict or throttling makes
    /// the next round wait. Returns the error for a request DynamoDB found
    /// invalid (nothing was written, and going again would not help).
    pub(in crate::ledger) fn met(&mut self, reasons: &[Reason]) -> Result<(), LedgerError> {
        self.throttled = false;
        for (index, reason) in reasons.iter().enumerate() {
            match reason {
                Reason::Busy { throttled } => {
                    self.wait = true;
                    self.throttled |= *throttled;
                }
                Reason::Invalid(message) => {
                    return Err(LedgerError::Rejected {
                        code: "ValidationError",
                        detail: format!("item {index}: {message}"),
                    });
                }
                Reason::None | Reason::Failed(_) => {}
            }
        }
        Ok(())
    }

    /// The answer once every round was refused: UNAVAILABLE when DynamoDB
    /// was throttling in the last one, else ABORTED.
    pub(in crate::ledger) fn exhausted(&self) -> LedgerError {
        if self.throttled {
            LedgerError::Unavailable(format!(
                "DynamoDB throttled {PAYMENT_ATTEMPTS_MAX} rounds of this call; retry with the same idempotency key after a pause"
            ))
        } else {
            LedgerError::Contended {
                attempts: PAYMENT_ATTEMPTS_MAX,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_end_with_the_right_error() {
        let mut rounds = Rounds::new();
        rounds.met(&[Reason::Busy { throttled: true }]).unwrap();
        assert!(matches!(rounds.exhausted(), LedgerError::Unavailable(_)));
        rounds.met(&[Reason::Busy { throttled: false }]).unwrap();
        assert!(matches!(
            rounds.exhausted(),
            LedgerError::Contended {
                attempts: PAYMENT_ATTEMPTS_MAX
            }
        ));
        let err = rounds.met(&[Reason::None, Reason::Invalid("x".into())]);
        assert!(
            matches!(err, Err(LedgerError::Rejected { code: "ValidationError", detail }) if detail.contains("item 1"))
        );
    }

    #[tokio::test]
    async fn rounds_are_bounded() {
        let mut rounds = Rounds::new();
        let mut count = 0;
        while rounds.next().await.is_some() {
            count += 1;
        }
        assert_eq!(count, PAYMENT_ATTEMPTS_MAX);
    }
}
