//! What the benchmark checks after its phases: that no money was created or
//! lost in its accounts, that every hold was settled as planned, and when
//! the service promoted the merchant to balance shards.

use crate::args::Scenario;
use crate::phases::{authorized, read_accounts};
use crate::report::{Phase, Promoted};
use crate::workload::{Workload, captured_amount, hold_parties, refunded_amount};
use crate::{BoxError, Transport};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use tonic::metadata::AsciiMetadataValue;

/// Conservation after a payment phase: the accounts hold together exactly
/// what they opened with, none is negative, and in the merchant scenario the
/// merchant holds exactly the committed payments (when every outcome is
/// known: a call that timed out may or may not have committed).
pub fn check_balances(
    workload: &Workload,
    balances: &[i64],
    phase: &Phase,
    what: &str,
) -> Result<(), BoxError> {
    for (id, balance) in workload.ids.iter().zip(balances) {
        if *balance < 0 {
            return Err(format!("conservation check failed ({what}): {id} is negative").into());
        }
    }
    let total: i128 = balances.iter().map(|b| i128::from(*b)).sum();
    if total != workload.total_minor() {
        return Err(format!(
            "conservation check failed ({what}): accounts hold {total}, opened with {}",
            workload.total_minor()
        )
        .into());
    }
    if workload.scenario == Scenario::Merchant
        && phase.other_errors == 0
        && i128::from(balances[0]) != phase.committed_minor
    {
        return Err(format!(
            "merchant check failed ({what}): the merchant holds {}, the committed payments sum to {}",
            balances[0], phase.committed_minor
        )
        .into());
    }
    Ok(())
}

/// After the hold-capture phases: the accounts hold together exactly what
/// they opened with, none is negative, and none holds anything any more
/// (every hold was captured or voided). With every hold placed, each
/// account's balance is also exactly what its holds, captures and refunds
/// say it must be.
pub async fn check_holds_settled<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    workload: &Workload,
    authorize: &Phase,
    label: &str,
) -> Result<(), BoxError>
where
    T: Transport,
{
    let mut balances = Vec::new();
    for account in read_accounts(client, token, workload).await? {
        if account.held != 0 {
            return Err(format!(
                "hold check failed ({label}): {} still holds {} after every hold was captured or voided",
                account.account_id, account.held
            )
            .into());
        }
        balances.push(account.balance);
    }
    check_balances(workload, &balances, authorize, label)?;
    if authorize.ok == authorize.calls && expected_after_holds(workload, authorize) != balances {
        return Err(format!(
            "hold check failed ({label}): the balances are not what the captures and refunds make them"
        )
        .into());
    }
    Ok(())
}

/// Each account's balance once the `authorize` phase's holds were captured
/// (the even ones), voided (the odd ones) and half of each capture refunded.
fn expected_after_holds(workload: &Workload, authorize: &Phase) -> Vec<i64> {
    let accounts = workload.ids.len() as u32;
    let mut expected: Vec<i64> = (0..workload.ids.len())
        .map(|i| workload.opening_minor(i))
        .collect();
    for m in 0..authorize.calls.div_ceil(2) as u32 {
        let n = 2 * m;
        let (from, to) = hold_parties(n, accounts);
        let net = captured_amount(m) - refunded_amount(m);
        expected[from] -= net;
        expected[to] += net;
    }
    expected
}

/// The merchant's promotion during a phase that started at `started_ms`
/// (wall clock), read from its history: None when it was not promoted.
pub async fn promotion_seen<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    merchant: &pb::Account,
    started_ms: i64,
) -> Result<Option<Promoted>, BoxError>
where
    T: Transport,
{
    if merchant.balance_shards <= 1 {
        return Ok(None);
    }
    let entries = merchant_entries(client, token, merchant).await?;
    let Some(first_sharded) = entries
        .iter()
        .filter(|(_, shard)| *shard > 0)
        .map(|(at, _)| *at)
        .min()
    else {
        return Ok(None);
    };
    Ok(Some(Promoted {
        shards: merchant.balance_shards,
        payments_before: entries.iter().filter(|(at, _)| *at < first_sharded).count(),
        ms_into_phase: first_sharded - started_ms,
    }))
}

/// (time, shard) of every entry of the merchant's history, newest first;
/// bounded by the pages.
async fn merchant_entries<T>(
    client: &mut PaymentServiceClient<T>,
    token: &AsciiMetadataValue,
    merchant: &pb::Account,
) -> Result<Vec<(i64, i32)>, BoxError>
where
    T: Transport,
{
    let mut entries = Vec::new();
    let mut token_text = String::new();
    for _ in 0..1_000 {
        let request = pb::GetTransactionHistoryRequest {
            account_id: merchant.account_id.clone(),
            page_size: 1_000,
            page_token: token_text.clone(),
        };
        let mut stream = client
            .get_transaction_history(authorized(request, token))
            .await?
            .into_inner();
        let mut next = String::new();
        while let Some(entry) = stream.message().await? {
            let at = entry
                .transaction
                .as_ref()
                .and_then(|t| t.created_at)
                .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
            entries.push((at, entry.shard));
            next = entry.next_page_token;
        }
        if next.is_empty() {
            break;
        }
        token_text = next;
    }
    Ok(entries)
}
