//! The direct phase: the same payments through one ledger in-process, with
//! no service in between (the physical limit); also the untimed warm-up.

use crate::BoxError;
use crate::checks::check_balances;
use crate::measure::{Meters, Outcome, run_phase};
use crate::report::Phase;
use crate::run::{BENCH_SUB, Bench};
use crate::workload::Workload;
use payment::domain::Caller;
use payment::domain::{AccountId, NewAccount, PaymentOrder};
use payment::ledger::{Ledger, LedgerError};
use payment::telemetry::RequestCounter;
use std::sync::Arc;

/// An account of the direct phase, opened as the service phases open it.
fn direct_account(workload: &Workload, index: usize) -> Result<NewAccount, BoxError> {
    Ok(NewAccount::parse(
        &workload.ids[index],
        "bench",
        "EUR",
        workload.opening_minor(index),
        workload.balance_shards(index),
    )?)
}

/// The direct phase: the same payments through one ledger in-process, run
/// on the service runtime (its CPU is measured the same way).
pub async fn direct_phase(
    bench: Arc<Bench>,
    ledger: Ledger,
    counter: RequestCounter,
    tag: &'static str,
    payments: u32,
) -> Result<Phase, BoxError> {
    let args = &bench.args;
    let workload = Workload::new(args, &bench.run_id, tag);
    for index in 0..workload.ids.len() {
        ledger
            .add_account(&direct_account(&workload, index)?, BENCH_SUB, false)
            .await?;
    }
    let name = format!("payments ({tag} DynamoDB)");
    let work = {
        let (ledger, workload) = (ledger.clone(), workload.clone());
        let key = format!("{}-{tag}", bench.run_id);
        move |caller: u32, round: u32, n: u32| {
            let (ledger, workload, key) = (ledger.clone(), workload.clone(), key.clone());
            async move { direct_payment(&ledger, &workload, &key, caller, round, n).await }
        }
    };
    let requests = || counter.snapshot();
    let phase = run_phase(
        &name,
        "direct",
        payments,
        args.callers(),
        args.json,
        Meters {
            requests: Some(&requests),
            cpu: bench.cpu.as_ref(),
        },
        work,
    )
    .await;
    let balances = direct_balances(&ledger, &workload).await?;
    check_balances(&workload, &balances, &phase, &format!("{tag} DynamoDB"))?;
    Ok(phase)
}

/// The `n`-th payment of the phase (caller `caller`'s `round`-th), made by
/// the ledger itself.
async fn direct_payment(
    ledger: &Ledger,
    workload: &Workload,
    key: &str,
    caller: u32,
    round: u32,
    n: u32,
) -> Outcome {
    let (from, to, amount) = workload.pick(caller, round);
    let order = match PaymentOrder::parse(
        &format!("{key}-{n}"),
        &workload.ids[from],
        &workload.ids[to],
        amount,
        "EUR",
        "",
    ) {
        Ok(order) => order,
        Err(err) => return Outcome::Other(err.to_string()),
    };
    let caller = Caller {
        sub: BENCH_SUB.into(),
        admin: true,
    };
    match ledger.make_payment(&order, &caller).await {
        Ok(_) => Outcome::Ok(amount),
        Err(LedgerError::InsufficientFunds { .. }) => Outcome::Insufficient,
        Err(LedgerError::Contended { .. }) => Outcome::Aborted,
        Err(err) => Outcome::Other(err.to_string()),
    }
}

/// The workload's balances as the ledger holds them, in order.
async fn direct_balances(ledger: &Ledger, workload: &Workload) -> Result<Vec<i64>, BoxError> {
    let mut balances = Vec::new();
    for id in workload.ids.iter() {
        balances.push(
            ledger
                .get_account(&AccountId::parse("account_id", id)?)
                .await?
                .balance_minor,
        );
    }
    Ok(balances)
}
