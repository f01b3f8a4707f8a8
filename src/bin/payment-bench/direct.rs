//! The direct phases: the same payments, balance reads and history pages
//! through one ledger in-process, with no service in between (the physical
//! limit); also the untimed warm-up.

use crate::BoxError;
use crate::checks::check_balances;
use crate::measure::{Meters, Outcome, run_phase};
use crate::report::Phase;
use crate::run::{BENCH_SUB, Bench};
use crate::workload::Workload;
use payment::domain::Caller;
use payment::domain::{AccountId, NewAccount, PaymentOrder};
use payment::ledger::{HistoryCursor, Ledger, LedgerError};
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

/// After the direct payments of phase `tag`: `--reads` balance reads and
/// `--history-pages` first history pages of 50 entries on its accounts,
/// through the ledger calls the service makes for GetAccountBalance and
/// GetTransactionHistory, the accounts in turn as the service phases read
/// them.
pub async fn direct_read_phases(
    bench: Arc<Bench>,
    ledger: Ledger,
    counter: RequestCounter,
    tag: &'static str,
) -> Result<Vec<Phase>, BoxError> {
    let args = &bench.args;
    let ids: Arc<Vec<AccountId>> = Arc::new(
        Workload::new(args, &bench.run_id, tag)
            .ids
            .iter()
            .map(|id| AccountId::parse("account_id", id))
            .collect::<Result<_, _>>()?,
    );
    let requests = || counter.snapshot();
    let meters = || Meters {
        requests: Some(&requests),
        cpu: bench.cpu.as_ref(),
    };
    let (callers, quiet) = (args.callers(), args.json);
    let mut phases = Vec::new();
    if args.reads > 0 {
        let (ledger, ids) = (ledger.clone(), ids.clone());
        let read = move |_caller: u32, _round: u32, n: u32| {
            let (ledger, ids) = (ledger.clone(), ids.clone());
            async move { read_outcome(ledger.get_account(&ids[n as usize % ids.len()]).await) }
        };
        let name = format!("balance reads ({tag} DynamoDB)");
        phases.push(run_phase(&name, "direct", args.reads, callers, quiet, meters(), read).await);
    }
    if args.history_pages > 0 {
        let page = move |_caller: u32, _round: u32, n: u32| {
            let (ledger, ids) = (ledger.clone(), ids.clone());
            async move {
                read_outcome(
                    history_page(&ledger, &ids[n as usize % ids.len()], HISTORY_PAGE).await,
                )
            }
        };
        let name = format!("history pages ({tag} DynamoDB)");
        let pages = args.history_pages;
        phases.push(run_phase(&name, "direct", pages, callers, quiet, meters(), page).await);
    }
    Ok(phases)
}

/// A read's outcome: Ok (no amount) or the error, as the service phases count them.
fn read_outcome<T, E: std::fmt::Display>(result: Result<T, E>) -> Outcome {
    result.map_or_else(|err| Outcome::Other(err.to_string()), |_| Outcome::Ok(0))
}

/// Entries per history page, in the service's phase and the direct one.
pub const HISTORY_PAGE: u32 = 50;

/// The first `size` entries of an account's history, newest first, as
/// GetTransactionHistory reads them: the account, then its shards merged.
async fn history_page(ledger: &Ledger, id: &AccountId, size: u32) -> Result<usize, BoxError> {
    let account = ledger.get_account(id).await?;
    let mut cursor =
        HistoryCursor::new(&account, None).ok_or("the account's shards fit no cursor")?;
    let mut read = 0;
    while read < size {
        if cursor.next(ledger, size - read).await?.is_none() {
            break;
        }
        read += 1;
    }
    Ok(read as usize)
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
