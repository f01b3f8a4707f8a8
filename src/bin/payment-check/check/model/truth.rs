//! The ledger as the run ended, read directly (and in words, for a failed
//! run's folder).

use super::{AccountTruth, TRUTH_READ_AHEAD, Truth};
use crate::check::clients::AccountSpec;
use payment::domain::{AccountId, Caller, IdempotencyKey, PaymentRef};
use payment::ledger::{Found, HistoryCursor, Ledger, LedgerError};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The ledger as it ended, in words (kept beside a failed run's calls).
pub fn describe(truth: &Truth) -> String {
    let mut text = String::new();
    for (id, account) in &truth.accounts {
        text.push_str(&format!(
            "account {id} balance {} shards {} (opened with {})\n",
            account.balance, account.shards, account.spec.opening_shards
        ));
        for e in &account.entries {
            let p = &e.payment;
            text.push_str(&format!(
                "  {}/{} {:?} {} {:?} {} -> {} at {} after {} refund_of {}\n",
                e.shard,
                e.sequence,
                e.direction,
                p.transaction_id,
                p.kind,
                p.sender_id,
                p.recipient_id,
                p.created_at_ms,
                e.balance_after_minor,
                p.refund_of
            ));
        }
    }
    let mut keys: Vec<_> = truth.keys.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for ((sender, key), found) in keys {
        let what = match found {
            None => "nothing".to_owned(),
            Some(Found::Transfer { payment, .. }) => {
                format!("{:?} {}", payment.kind, payment.transaction_id)
            }
            Some(Found::Hold { hold, .. }) => format!("hold {} {:?}", hold.hold_id, hold.state),
        };
        text.push_str(&format!("key {sender}/{key}: {what}\n"));
    }
    text
}

/// The checker reads as an admin.
fn admin() -> Caller {
    Caller {
        sub: crate::check::clients::CHECK_SUB.into(),
        admin: true,
    }
}

/// Reads the accounts, their whole histories and every key directly.
pub async fn read_truth(
    ledger: &Ledger,
    accounts: &[AccountSpec],
    keys: &BTreeSet<(String, String)>,
) -> Result<Truth, LedgerError> {
    let mut truth = Truth {
        accounts: BTreeMap::new(),
        keys: HashMap::new(),
    };
    for spec in accounts {
        let id = AccountId::parse("account_id", &spec.id)
            .map_err(|e| LedgerError::Internal(e.to_string()))?;
        let account = ledger.get_account(&id).await?;
        let mut cursor = HistoryCursor::new(&account, None)
            .ok_or_else(|| LedgerError::Internal(format!("no history cursor for {}", spec.id)))?;
        let mut entries = Vec::new();
        while let Some(entry) = cursor.next(ledger, TRUTH_READ_AHEAD).await? {
            entries.push(entry);
        }
        entries.reverse();
        truth.accounts.insert(
            spec.id.clone(),
            AccountTruth {
                spec: spec.clone(),
                shards: account.shards(),
                balance: account.balance_minor,
                entries,
            },
        );
    }
    for (sender, key) in keys {
        let (Ok(sender_id), Ok(idempotency_key)) = (
            AccountId::parse("sender_id", sender),
            IdempotencyKey::parse(key),
        ) else {
            continue;
        };
        let reference = PaymentRef::Key {
            sender_id,
            idempotency_key,
        };
        let found = match ledger.get_payment(&reference, &admin()).await {
            Ok(found) => Some(found),
            Err(err) => {
                // NOT_FOUND (a fence included, however the ledger names
                // it): nothing committed under the key.
                let status = tonic::Status::from(err);
                if status.code() != tonic::Code::NotFound {
                    return Err(LedgerError::Internal(format!(
                        "reading key {sender}/{key}: {}",
                        status.message()
                    )));
                }
                None
            }
        };
        truth.keys.insert((sender.clone(), key.clone()), found);
    }
    Ok(truth)
}
