//! Small wrappers over the generated client, so that tests read like the rules.

use payment::pb;
use tonic::transport::Channel;
use tonic::{Code, Status};

pub type Client = crate::harness::AuthedClient<Channel>;

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn add(
    client: &mut Client,
    account_id: &str,
    currency: &str,
    initial_balance: i64,
) -> Result<pb::Account, Status> {
    client
        .add_account(pb::AddAccountRequest {
            account_id: account_id.into(),
            display_name: format!("{account_id} display"),
            currency: currency.into(),
            initial_balance,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().account.expect("account in response"))
}

pub fn order(key: &str, from: &str, to: &str, amount: i64) -> pb::MakePaymentRequest {
    pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: "EUR".into(),
        memo: "test".into(),
    }
}

pub async fn pay(
    client: &mut Client,
    request: pb::MakePaymentRequest,
) -> Result<pb::MakePaymentResponse, Status> {
    client.make_payment(request).await.map(|r| r.into_inner())
}

pub async fn balance(client: &mut Client, account_id: &str) -> Result<i64, Status> {
    client
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: account_id.into(),
        })
        .await
        .map(|r| r.into_inner().account.expect("account").balance)
}

/// One call of GetTransactionHistory, all its messages.
pub async fn history_page(
    client: &mut Client,
    account_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<Vec<pb::GetTransactionHistoryResponse>, Status> {
    let mut stream = client
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: account_id.into(),
            page_size,
            page_token: page_token.into(),
        })
        .await?
        .into_inner();
    let mut entries = Vec::new();
    while let Some(entry) = stream.message().await? {
        entries.push(entry);
    }
    Ok(entries)
}

/// The whole history, newest first, following page tokens.
pub async fn history_all(
    client: &mut Client,
    account_id: &str,
) -> Vec<pb::GetTransactionHistoryResponse> {
    let mut all = Vec::new();
    let mut token = String::new();
    // Bounded: 100 pages of 1000 entries is far more than any test makes.
    for _ in 0..100 {
        let page = history_page(client, account_id, 1000, &token)
            .await
            .expect("history page");
        let Some(last) = page.last() else { break };
        token = last.next_page_token.clone();
        all.extend(page);
        if token.is_empty() {
            return all;
        }
    }
    all
}

#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, needle: &str) {
    match result {
        Ok(value) => panic!("expected {code:?} mentioning {needle:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "message: {}", status.message());
            assert!(
                status.message().contains(needle),
                "{code:?} message {:?} does not mention {needle:?}",
                status.message()
            );
        }
    }
}

/// Balance recomputed from the history: credits minus debits.
pub fn history_sum(entries: &[pb::GetTransactionHistoryResponse]) -> i64 {
    entries
        .iter()
        .map(|e| {
            let amount = e.transaction.as_ref().expect("transaction").amount;
            if e.direction == pb::Direction::Debit as i32 {
                -amount
            } else {
                amount
            }
        })
        .sum()
}

/// Reads every account's full history and checks that it reconciles with
/// its balance, that balances are never negative, that the total is
/// conserved, and that the committed payments are exactly the entries.
pub async fn check_exactly_once(
    c: &mut Client,
    ids: &[String],
    opening_total: i64,
    committed: &std::collections::HashMap<String, pb::Transaction>,
) {
    let mut total = 0;
    let mut debits: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut credits: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for id in ids {
        let balance = balance(c, id).await.unwrap();
        assert!(balance >= 0, "{id} went negative: {balance}");
        total += balance;
        let history = history_all(c, id).await;
        assert_eq!(
            history_sum(&history),
            balance,
            "{id}'s history does not add up to its balance"
        );
        check_balance_chain(id, balance, &history);
        for (i, entry) in history.iter().enumerate() {
            if entry.shard == 0 && history.iter().all(|e| e.shard == 0) {
                assert_eq!(
                    entry.sequence as usize,
                    history.len() - i,
                    "{id}: gap in sequences"
                );
            }
            assert!(entry.balance_after >= 0);
            let tx = entry.transaction.as_ref().unwrap();
            if tx.sender_id.is_empty() {
                continue; // opening credit
            }
            let side = if entry.direction == pb::Direction::Debit as i32 {
                assert_eq!(&tx.sender_id, id);
                &mut debits
            } else {
                assert_eq!(&tx.recipient_id, id);
                &mut credits
            };
            *side.entry(tx.transaction_id.clone()).or_default() += 1;
            let original = committed
                .get(&tx.transaction_id)
                .unwrap_or_else(|| panic!("entry for a payment nobody was told about: {tx:?}"));
            assert_eq!(original, tx);
        }
    }
    assert_eq!(total, opening_total, "money was created or lost");
    for tx_id in committed.keys() {
        assert_eq!(
            debits.get(tx_id),
            Some(&1),
            "{tx_id} debited {:?} times",
            debits.get(tx_id)
        );
        assert_eq!(
            credits.get(tx_id),
            Some(&1),
            "{tx_id} credited {:?} times",
            credits.get(tx_id)
        );
    }
    assert_eq!(debits.len(), committed.len());
    assert_eq!(credits.len(), committed.len());
}

/// Signed amount of one history entry: credits positive, debits negative.
fn signed_amount(entry: &pb::GetTransactionHistoryResponse) -> i64 {
    let amount = entry.transaction.as_ref().expect("transaction").amount;
    if entry.direction == pb::Direction::Debit as i32 {
        -amount
    } else {
        amount
    }
}

/// Every balance_after in a whole history (newest first) follows from the
/// entries below it: the newest equals the balance, each is the one below
/// plus its own amount, and the oldest is its own amount. For a sharded
/// account it also checks that the shards' sequences have no gaps.
#[track_caller]
pub fn check_balance_chain(id: &str, balance: i64, history: &[pb::GetTransactionHistoryResponse]) {
    if let Some(newest) = history.first() {
        assert_eq!(newest.balance_after, balance, "{id}: newest balance_after");
    } else {
        assert_eq!(balance, 0, "{id}: a balance without history");
    }
    for (i, entry) in history.iter().enumerate() {
        let below = history.get(i + 1).map_or(0, |e| e.balance_after);
        assert_eq!(
            entry.balance_after,
            below + signed_amount(entry),
            "{id}: entry {i} (shard {} sequence {}) does not follow from the one below",
            entry.shard,
            entry.sequence
        );
        assert!(entry.balance_after >= 0, "{id}: negative balance_after");
    }
    let mut per_shard: std::collections::BTreeMap<i32, Vec<i64>> = Default::default();
    for entry in history {
        per_shard
            .entry(entry.shard)
            .or_default()
            .push(entry.sequence);
    }
    for (shard, sequences) in per_shard {
        assert!(
            sequences.windows(2).all(|w| w[0] > w[1]),
            "{id}: shard {shard} sequences out of order: {sequences:?}"
        );
    }
}
