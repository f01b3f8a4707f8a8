//! The ledger's clock: every time it stores or compares (entry times, hold
//! expiries) comes from here, and the ids of new transactions.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The ledger's clock: every time it stores or compares (entry times, hold
/// expiries) comes from here, plus the test-only skew below.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        .saturating_add(TEST_CLOCK_SKEW_MS.load(Ordering::Relaxed))
}

/// The largest test-only clock skew, either way
/// ([`crate::settings::LedgerSettings::test_clock_skew_ms`]).
pub const TEST_CLOCK_SKEW_MAX_MS: i64 = 60_000;

/// TEST ONLY: the skew of this process's ledger clock, in milliseconds; 0
/// unless the settings set one.
static TEST_CLOCK_SKEW_MS: AtomicI64 = AtomicI64::new(0);

/// TEST ONLY: shifts this process's ledger clock (every ledger's in it) by
/// `ms` milliseconds (negative: behind; clamped to
/// ±[`TEST_CLOCK_SKEW_MAX_MS`]), so that the history checker (payment-check)
/// can run instances whose clocks disagree.
/// [`Ledger::from_settings`](super::Ledger::from_settings) sets it from the
/// settings; never set it in production.
pub fn set_test_clock_skew(ms: i64) {
    TEST_CLOCK_SKEW_MS.store(
        ms.clamp(-TEST_CLOCK_SKEW_MAX_MS, TEST_CLOCK_SKEW_MAX_MS),
        Ordering::Relaxed,
    );
}

pub(super) fn new_transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
