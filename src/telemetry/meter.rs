//! The meter of a call: the DynamoDB work done on its behalf, counted in a
//! task-local so that concurrent calls on one runtime count apart.

use super::traces;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What DynamoDB work one call did. Capacity is in millionths of a unit
/// (DynamoDB reports halves and quarters), so that it adds up atomically.
/// With tracing on it also carries the call's span, the parent of the
/// DynamoDB attempts' spans.
#[derive(Debug, Default)]
pub struct Meter {
    pub(super) trace: Option<traces::CallTrace>,
    pub(super) requests: AtomicU64,
    rounds: AtomicU64,
    conflicts: AtomicU64,
    wcu_micro: AtomicU64,
    rcu_micro: AtomicU64,
}

/// A [`Meter`] read out.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// HTTP requests sent to DynamoDB (every attempt, SDK retries included).
    pub requests: u64,
    /// TransactWriteItems the ledger sent (its write rounds).
    pub rounds: u64,
    /// Rounds DynamoDB cancelled (a condition failed because another writer
    /// got there first, a TransactionConflict, throttling).
    pub conflicts: u64,
    /// Write capacity units DynamoDB reported consumed.
    pub wcu: f64,
    /// Read capacity units DynamoDB reported consumed.
    pub rcu: f64,
}

const MICRO: f64 = 1_000_000.0;

impl Meter {
    /// A meter for a call traced as `trace`.
    pub fn traced(trace: Option<traces::CallTrace>) -> Self {
        Self {
            trace,
            ..Self::default()
        }
    }

    pub fn counts(&self) -> Counts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            requests: load(&self.requests),
            rounds: load(&self.rounds),
            conflicts: load(&self.conflicts),
            wcu: load(&self.wcu_micro) as f64 / MICRO,
            rcu: load(&self.rcu_micro) as f64 / MICRO,
        }
    }

    pub(super) fn add_capacity(&self, read: f64, write: f64) {
        let micro = |units: f64| (units.max(0.0) * MICRO).round() as u64;
        self.rcu_micro.fetch_add(micro(read), Ordering::Relaxed);
        self.wcu_micro.fetch_add(micro(write), Ordering::Relaxed);
    }
}

tokio::task_local! {
    /// The meter of the call the current task works for.
    static METER: Arc<Meter>;
}

/// Runs `work` with `meter` as the current call's meter: what `work` does
/// (and only that, however many calls run on the runtime) is counted in it.
pub fn metered<F: Future>(meter: Arc<Meter>, work: F) -> impl Future<Output = F::Output> {
    METER.scope(meter, work)
}

/// The current call's meter, to carry into a task the call spawns.
pub fn current_meter() -> Arc<Meter> {
    METER
        .try_with(Arc::clone)
        .unwrap_or_else(|_| Arc::new(Meter::default()))
}

pub(super) fn with_meter(f: impl FnOnce(&Meter)) {
    let _ = METER.try_with(|meter| f(meter));
}

/// The ledger sent a TransactWriteItems.
pub(crate) fn count_round() {
    with_meter(|m| {
        m.rounds.fetch_add(1, Ordering::Relaxed);
    });
}

/// DynamoDB cancelled a TransactWriteItems the ledger sent.
pub(crate) fn count_conflict() {
    with_meter(|m| {
        m.conflicts.fetch_add(1, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_meter_counts_only_its_own_calls_work() {
        let (a, b) = (Arc::new(Meter::default()), Arc::new(Meter::default()));
        let work = |rounds: u64, conflicts: u64| async move {
            for _ in 0..rounds {
                count_round();
                tokio::task::yield_now().await;
            }
            for _ in 0..conflicts {
                count_conflict();
            }
        };
        // Interleaved on one runtime, and in a task one of them spawns.
        let spawned = tokio::spawn(metered(b.clone(), async move {
            let meter = current_meter();
            tokio::spawn(metered(meter, work(2, 0))).await.unwrap();
        }));
        tokio::join!(
            metered(a.clone(), work(3, 1)),
            metered(b.clone(), work(5, 2))
        );
        spawned.await.unwrap();
        count_round(); // outside any call: counted nowhere
        assert_eq!((a.counts().rounds, a.counts().conflicts), (3, 1));
        assert_eq!((b.counts().rounds, b.counts().conflicts), (7, 2));
    }

    #[test]
    fn capacity_adds_up_exactly_in_halves() {
        let meter = Meter::default();
        meter.add_capacity(0.5, 2.0);
        meter.add_capacity(1.5, 0.0);
        meter.add_capacity(0.0, 4.0);
        let counts = meter.counts();
        assert_eq!((counts.rcu, counts.wcu), (2.0, 6.0));
    }
}
