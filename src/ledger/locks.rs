//! In-process queueing of payments that touch the same account.

/// Slots of the in-process lock table: a fixed size, so memory stays
/// bounded however many accounts there are.
const ACCOUNT_LOCK_SLOTS: usize = 1024;
/// Longest a payment waits for its turn: longer than a payment takes even
/// when a hot account is contended across servers (seconds), so the queue
/// keeps doing its work then; short enough that a stalled DynamoDB behind
/// another account sharing a lock slot cannot hold a payment for long.
/// Past it a payment goes on without the queue (which only saves requests).
const QUEUE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// In-process queueing of payments that touch the same account.
///
/// Correctness never depends on it: the DynamoDB conditions alone keep the
/// ledger exact across processes (and Lambda containers, which serve one
/// request at a time). It only stops payments inside one server from racing
/// each other in DynamoDB, where all but one of them would lose the round
/// and come back, wasting requests.
pub(super) struct AccountLocks {
    slots: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for AccountLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountLocks({} slots)", self.slots.len())
    }
}

impl AccountLocks {
    pub(super) fn new() -> Self {
        Self {
            slots: (0..ACCOUNT_LOCK_SLOTS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn slot(account_id: &str) -> usize {
        (fnv1a(account_id) % ACCOUNT_LOCK_SLOTS as u64) as usize
    }

    /// Waits (at most [`QUEUE_WAIT_MAX`]) for the turn of both accounts;
    /// empty when the wait ran out.
    pub(super) async fn lock_pair(&self, a: &str, b: &str) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(QUEUE_WAIT_MAX, self.lock_both(a, b))
            .await
            .unwrap_or_default()
    }

    /// Locks the slots of both accounts, in index order (no deadlock).
    async fn lock_both(&self, a: &str, b: &str) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let (mut first, mut second) = (Self::slot(a), Self::slot(b));
        if first > second {
            std::mem::swap(&mut first, &mut second);
        }
        let mut guards = vec![self.slots[first].lock().await];
        if second != first {
            guards.push(self.slots[second].lock().await);
        }
        guards
    }
}

/// FNV-1a: stable and cheap, for spreading accounts over in-process slots.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_payment_waits_its_turn_for_a_bounded_time_only() {
        let locks = AccountLocks::new();
        let held = locks.lock_pair("a", "b").await;
        assert!(!held.is_empty(), "a free pair is locked at once");
        let started = std::time::Instant::now();
        // Bounded: it gives up by itself. The outer limit only turns a wait
        // that never ends into a failure; at ten times the bound it cannot
        // be reached by a slow machine, only by a wait that is not bounded.
        let waited = tokio::time::timeout(QUEUE_WAIT_MAX * 10, locks.lock_pair("a", "c"))
            .await
            .expect("the wait for a held account is bounded");
        assert!(
            waited.is_empty(),
            "past the bound it goes on without the queue"
        );
        assert!(
            started.elapsed() >= QUEUE_WAIT_MAX,
            "it waited its turn first"
        );
        drop(held);
        assert!(!locks.lock_pair("a", "c").await.is_empty());
    }
}
