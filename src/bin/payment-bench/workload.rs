//! The workload: which accounts exist and who pays whom, and the amounts
//! and parties of the hold-capture scenario's holds, captures and refunds.

use crate::args::{Args, Scenario};
use rand::Rng;
use std::sync::Arc;

/// Each paying account opens with this many minor units, so that the small
/// random amounts below rarely hit insufficient funds.
pub const OPENING_MINOR: i64 = 100_000_000;
/// Payment amounts are drawn from 1..=AMOUNT_MAX_MINOR.
pub const AMOUNT_MAX_MINOR: i64 = 1_000;

/// The accounts of one phase and who pays whom. Index 0 is the merchant in
/// the merchant scenario.
#[derive(Debug, Clone)]
pub struct Workload {
    pub scenario: Scenario,
    pub ids: Arc<Vec<String>>,
    callers: u32,
    hot_accounts: u32,
    hot_percent: u32,
    pub merchant_shards: u32,
}

impl Workload {
    /// Fresh accounts for a phase tagged `tag`.
    pub fn new(args: &Args, run_id: &str, tag: &str) -> Workload {
        let ids = match args.scenario {
            Scenario::Accounts | Scenario::HoldCapture => (0..args.accounts)
                .map(|i| format!("{run_id}-{tag}-{i}"))
                .collect(),
            Scenario::Merchant => std::iter::once(format!("{run_id}-{tag}-merchant"))
                .chain((0..args.customers).map(|i| format!("{run_id}-{tag}-c{i}")))
                .collect(),
        };
        Workload {
            scenario: args.scenario,
            ids: Arc::new(ids),
            callers: args.callers(),
            hot_accounts: args.hot_accounts,
            hot_percent: args.hot_percent,
            merchant_shards: args.merchant_shards,
        }
    }

    fn is_merchant(&self, index: usize) -> bool {
        self.scenario == Scenario::Merchant && index == 0
    }

    pub fn opening_minor(&self, index: usize) -> i64 {
        if self.is_merchant(index) {
            0
        } else {
            OPENING_MINOR
        }
    }

    pub fn balance_shards(&self, index: usize) -> i32 {
        if self.is_merchant(index) {
            self.merchant_shards as i32
        } else {
            0
        }
    }

    /// What all the accounts together hold, always.
    pub fn total_minor(&self) -> i128 {
        (0..self.ids.len())
            .map(|i| i128::from(self.opening_minor(i)))
            .sum()
    }

    /// (sender, recipient, amount) of the `round`-th payment of `caller`.
    pub fn pick(&self, caller: u32, round: u32) -> (usize, usize, i64) {
        let mut rng = rand::rng();
        let amount = rng.random_range(1..=AMOUNT_MAX_MINOR);
        match self.scenario {
            Scenario::Accounts | Scenario::HoldCapture => {
                let accounts = self.ids.len() as u32;
                let hot = self.hot_accounts.min(accounts);
                let range = if hot >= 2 && rng.random_ratio(self.hot_percent, 100) {
                    hot
                } else {
                    accounts
                };
                let from = rng.random_range(0..range);
                let mut to = rng.random_range(0..range - 1);
                if to >= from {
                    to += 1;
                }
                (from as usize, to as usize, amount)
            }
            Scenario::Merchant => {
                // Caller c pays from customers c, c + callers, c + 2 callers...
                // in turn: nobody else pays from them.
                let customers = self.ids.len() as u32 - 1;
                let own = (customers - caller).div_ceil(self.callers);
                let customer = caller + self.callers * (round % own);
                (1 + customer as usize, 0, amount)
            }
        }
    }
}

/// The amount of the `n`-th hold of the hold-capture scenario: 1-1000 minor
/// units, known to every phase without storing it.
pub fn hold_amount(n: u32) -> i64 {
    1 + (i64::from(n) * 7919) % AMOUNT_MAX_MINOR
}

/// What the refund of the `m`-th capture returns: half of it, at least 1.
pub fn refunded_amount(m: u32) -> i64 {
    (captured_amount(m) / 2).max(1)
}

/// The sender and recipient (indexes into the accounts) of the `n`-th hold:
/// each account in turn, paying the next.
pub fn hold_parties(n: u32, accounts: u32) -> (usize, usize) {
    ((n % accounts) as usize, ((n + 1) % accounts) as usize)
}

/// What the `m`-th capture (of hold 2m) moves: all of the hold for even m,
/// half of it (at least 1) for odd m.
pub fn captured_amount(m: u32) -> i64 {
    let held = hold_amount(2 * m);
    if m.is_multiple_of(2) {
        held
    } else {
        (held / 2).max(1)
    }
}
