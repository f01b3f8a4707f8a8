//! A run's setup: its accounts, the admin's reshards and the proxies'
//! fault plan (all drawn from the seed), and the accounts opened.

use super::clients::{AccountSpec, Reshard};
use super::proxy::FaultPlan;
use super::{BoxError, Faults};
use rand::Rng;
use rand::rngs::StdRng;
use std::time::Duration;

/// The currencies of a run: money is conserved in each.
const CURRENCIES: [&str; 2] = ["EUR", "USD"];
const OPENING_MINOR: i64 = 50_000;
const SHARDED_OPENING_MINOR: i64 = 20_000;
const SHARDS: u32 = 4;
/// What the admin raises an ordinary account to, and a sharded one to.
const RESHARD_ORDINARY: u32 = 4;
const RESHARD_SHARDED: u32 = 8;

pub(super) fn accounts(per_currency: usize) -> Vec<AccountSpec> {
    let mut accounts = Vec::new();
    for currency in CURRENCIES {
        let prefix = currency.to_lowercase();
        for i in 0..per_currency {
            accounts.push(AccountSpec {
                id: format!("{prefix}-{i}"),
                currency: currency.into(),
                opening_shards: 1,
                opening_minor: OPENING_MINOR,
            });
        }
        accounts.push(AccountSpec {
            id: format!("{prefix}-shop"),
            currency: currency.into(),
            opening_shards: SHARDS,
            opening_minor: SHARDED_OPENING_MINOR,
        });
    }
    accounts
}

/// The admin's SetBalanceShards calls, drawn from the seed: once a
/// quarter to two fifths of the operations are done, an ordinary account
/// to [`RESHARD_ORDINARY`] and a sharded one to [`RESHARD_SHARDED`]; once
/// 55 to 75 % are done, another ordinary account and the other sharded one
/// likewise, the first ordinary account again to the same count (answered
/// unchanged, unless a promotion raised it past) and the first sharded one
/// to its opening count (fewer than it has by then: refused).
pub(super) fn reshard_plan(
    rng: &mut StdRng,
    accounts: &[AccountSpec],
    operations: usize,
) -> Vec<Reshard> {
    let ordinary: Vec<&AccountSpec> = accounts.iter().filter(|a| a.opening_shards == 1).collect();
    let sharded: Vec<&AccountSpec> = accounts.iter().filter(|a| a.opening_shards > 1).collect();
    if ordinary.is_empty() || sharded.is_empty() {
        return Vec::new();
    }
    let first = operations * rng.random_range(25..=40usize) / 100;
    let second = operations * rng.random_range(55..=75usize) / 100;
    let o1 = rng.random_range(0..ordinary.len());
    let o2 = (o1 + rng.random_range(1..ordinary.len().max(2))) % ordinary.len();
    let s1 = rng.random_range(0..sharded.len());
    let s2 = (s1 + 1) % sharded.len();
    let at = |at_done: usize, account: &AccountSpec, shards: u32| Reshard {
        at_done,
        account: account.id.clone(),
        shards,
    };
    vec![
        at(first, ordinary[o1], RESHARD_ORDINARY),
        at(first, sharded[s1], RESHARD_SHARDED),
        at(second, ordinary[o2], RESHARD_ORDINARY),
        at(second, sharded[s2], RESHARD_SHARDED),
        at(second, ordinary[o1], RESHARD_ORDINARY),
        at(second, sharded[s1], sharded[s1].opening_shards),
    ]
}

/// The fault plan of the proxies.
pub(super) fn plan(faults: &Faults, deadline_max_ms: u64) -> FaultPlan {
    let mut plan = FaultPlan::none();
    if faults.delay {
        plan.delay_per_mille = 100;
        plan.delay_max = Duration::from_millis(deadline_max_ms / 2);
    }
    if faults.drop_reply {
        plan.drop_reply_per_mille = 20;
    }
    if faults.late_write {
        plan.late_write_per_mille = 60;
        // After the longest deadline: the call was cut off by then.
        plan.late_after = (
            Duration::from_millis(deadline_max_ms + 200),
            Duration::from_millis(deadline_max_ms * 3 + 1_000),
        );
    }
    if faults.reset {
        plan.reset_per_mille = 20;
    }
    plan
}

/// Opens the run's accounts through one instance (before any fault).
pub(super) async fn open_accounts(
    channel: &tonic::transport::Channel,
    token: &tonic::metadata::AsciiMetadataValue,
    accounts: &[AccountSpec],
) -> Result<(), BoxError> {
    use payment::pb::{self, payment_service_client::PaymentServiceClient};
    let mut client = PaymentServiceClient::new(channel.clone());
    for spec in accounts {
        let mut last = None;
        // AddAccount sent again by its owner with the same parameters
        // answers the account: safe to repeat.
        for _ in 0..5 {
            let mut request = tonic::Request::new(pb::AddAccountRequest {
                account_id: spec.id.clone(),
                display_name: spec.id.clone(),
                currency: spec.currency.clone(),
                initial_balance: spec.opening_minor,
                balance_shards: spec.opening_shards as i32,
            });
            request
                .metadata_mut()
                .insert("authorization", token.clone());
            request.set_timeout(Duration::from_secs(20));
            match client.add_account(request).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(status) => last = Some(status),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Some(status) = last {
            return Err(format!(
                "opening account {}: {:?}: {}",
                spec.id,
                status.code(),
                status.message()
            )
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Faults;

    #[test]
    fn late_writes_go_out_after_the_longest_deadline() {
        let every = plan(&Faults::parse("all").unwrap(), 1_500);
        assert!(every.late_after.0 > Duration::from_millis(1_500));
        assert!(every.late_after.1 >= every.late_after.0);
        let none = plan(&Faults::default(), 1_500);
        assert_eq!(
            none.delay_per_mille
                + none.drop_reply_per_mille
                + none.late_write_per_mille
                + none.reset_per_mille,
            0
        );
    }
}
