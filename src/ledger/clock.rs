//! The ledger's clock: every time it stores or compares (entry times, hold
//! expiries) comes from here, and the ids of new transactions.

use std::time::{SystemTime, UNIX_EPOCH};

/// The ledger's clock: every time it stores or compares (entry times, hold
/// expiries) comes from here, plus the test-only skew below.
pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        .saturating_add(test_clock_skew_ms())
}

/// TEST ONLY: shifts this process's ledger clock by this many milliseconds
/// (negative: behind), so that the history checker (payment-check) can run
/// instances whose clocks disagree. Never set it in production.
pub const TEST_CLOCK_SKEW_ENV: &str = "PAYMENT_TEST_CLOCK_SKEW_MS";
/// The largest skew [`TEST_CLOCK_SKEW_ENV`] takes, either way.
pub const TEST_CLOCK_SKEW_MAX_MS: i64 = 60_000;

/// [`TEST_CLOCK_SKEW_ENV`], read once: 0 when unset; an error naming the
/// setting when it is not an integer within the bound (payment-server
/// refuses to start then).
pub fn test_clock_skew() -> Result<i64, String> {
    static SKEW: std::sync::OnceLock<Result<i64, String>> = std::sync::OnceLock::new();
    SKEW.get_or_init(|| match std::env::var(TEST_CLOCK_SKEW_ENV) {
        Err(_) => Ok(0),
        Ok(text) => text
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|ms| ms.abs() <= TEST_CLOCK_SKEW_MAX_MS)
            .ok_or_else(|| {
                format!("{TEST_CLOCK_SKEW_ENV}: {text:?} is not a whole number of milliseconds from -{TEST_CLOCK_SKEW_MAX_MS} to {TEST_CLOCK_SKEW_MAX_MS} (a test-only setting)")
            }),
    })
    .clone()
}

fn test_clock_skew_ms() -> i64 {
    test_clock_skew().unwrap_or(0)
}

pub(super) fn new_transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
