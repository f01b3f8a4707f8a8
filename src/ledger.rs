//! The ledger: the only module that knows the DynamoDB layout and conditions.
//!
//! # Layout
//!
//! Accounts table (key `account_id`): one item per account with its
//! `balance`, `version` (the number of history entries so far, which is also
//! the sequence of the newest entry), currency, owner and opening balance.
//!
//! Ledger table (key `pk`, `sk`):
//! - history entry: `pk = "A#<account>"`, `sk = "E#<sequence, 20 digits>"`,
//!   one per side of every payment plus the opening credit;
//! - payment record: `pk = "P#<sender>"`, `sk = "K#<idempotency key>"`, the
//!   durable idempotency record of a payment, with the sequences of its two
//!   entries.
//!
//! # Why money is never created or lost
//!
//! A payment reads both accounts and the idempotency record in one strongly
//! consistent BatchGetItem, then commits one TransactWriteItems with five
//! writes: both account updates, both history entries and the payment record.
//! Each account update is conditioned on the `version` that was read, so the
//! entry sequence numbers are exact and a concurrent change sends the payment
//! round again; the debit is also conditioned on `balance >= amount` and the
//! credit on the balance limit, so no balance goes negative or past the limit
//! even if the code above had a bug; the payment record and the entries are
//! conditioned on not existing, so a payment applies at most once per key.

use crate::domain::{AccountId, BALANCE_MAX_MINOR, Currency, NewAccount, PaymentOrder};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes,
    Put, ScalarAttributeType, TransactWriteItem, Update,
};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Item = HashMap<String, AttributeValue>;

/// Most rounds one payment takes (read, then conditional write) before the
/// caller gets ABORTED. Each round that fails lost a race to another payment
/// on the same account; with the backoff below, ten rounds span about a
/// second, long enough for bursts and short enough for a caller to retry.
pub const PAYMENT_ATTEMPTS_MAX: u32 = 10;
/// Backoff before the second round; doubles each round up to the cap, and
/// each wait is drawn uniformly from zero to that bound (full jitter).
const BACKOFF_BASE: Duration = Duration::from_millis(4);
const BACKOFF_CAP: Duration = Duration::from_millis(200);
/// History entries read per Query; a page is read in chunks of this size so
/// that streaming starts before the whole page is read.
pub const HISTORY_CHUNK_MAX: u32 = 100;
/// Most Query calls for one chunk. DynamoDB may stop a Query early (1 MB);
/// a chunk of 100 small entries never needs more than one, so hitting this
/// bound means something is wrong.
const QUERY_CALLS_PER_CHUNK_MAX: u32 = 8;

/// Names of the two DynamoDB tables.
#[derive(Debug, Clone)]
pub struct Tables {
    pub accounts: String,
    pub ledger: String,
}

/// Everything that can go wrong in the ledger. Status codes are decided from
/// this in one place (`crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("account {0:?} already exists")]
    AccountExists(String),
    #[error("{role} account {account_id:?} does not exist")]
    AccountNotFound {
        role: &'static str,
        account_id: String,
    },
    #[error(
        "{role} account {account_id:?} holds {account_currency}, but the payment is in {currency}"
    )]
    CurrencyMismatch {
        role: &'static str,
        account_id: String,
        account_currency: String,
        currency: String,
    },
    #[error(
        "insufficient funds: sender account {account_id:?} holds {balance_minor} minor units, the payment needs {amount_minor}"
    )]
    InsufficientFunds {
        account_id: String,
        balance_minor: i64,
        amount_minor: i64,
    },
    #[error(
        "recipient account {account_id:?} would exceed the balance limit of {BALANCE_MAX_MINOR} minor units"
    )]
    BalanceLimit { account_id: String },
    #[error(
        "idempotency key {key:?} was already used by sender {sender_id:?} for a different payment; use a new key for a new payment"
    )]
    IdempotencyKeyReused { key: String, sender_id: String },
    #[error("the caller does not own sender account {account_id:?}")]
    NotOwner { account_id: String },
    #[error(
        "the payment lost {attempts} races with concurrent payments on the same accounts; retry with the same idempotency key"
    )]
    Contended { attempts: u32 },
    #[error("DynamoDB is unavailable or throttling: {0}")]
    Unavailable(String),
    #[error("ledger error: {0}")]
    Internal(String),
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub account_id: String,
    pub display_name: String,
    pub currency: String,
    pub balance_minor: i64,
    pub created_at_ms: i64,
    pub owner: String,
    /// Number of history entries; the newest entry's sequence.
    pub version: u64,
    pub opening_balance_minor: i64,
}

/// A committed payment (or an opening credit, with an empty sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub transaction_id: String,
    pub sender_id: String,
    pub recipient_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Debit,
    Credit,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Debit => "DEBIT",
            Direction::Credit => "CREDIT",
        }
    }
}

/// One side of a payment in one account's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sequence: u64,
    pub direction: Direction,
    pub payment: Payment,
    pub balance_after_minor: i64,
}

/// The result of MakePayment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOutcome {
    pub payment: Payment,
    pub replayed: bool,
}

/// The DynamoDB ledger. Cheap to clone: it holds the SDK client.
#[derive(Debug, Clone)]
pub struct Ledger {
    client: Client,
    tables: Tables,
    locks: std::sync::Arc<AccountLocks>,
}

/// Shards of the in-process lock table: a fixed size, so memory stays
/// bounded however many accounts there are.
const ACCOUNT_LOCK_SHARDS: usize = 1024;

/// In-process queueing of payments that touch the same account.
///
/// Correctness never depends on it: the DynamoDB conditions alone keep the
/// ledger exact across processes (and Lambda containers, which serve one
/// request at a time). It only stops payments inside one server from racing
/// each other in DynamoDB, where all but one of them would lose the round
/// and come back, wasting requests.
struct AccountLocks {
    shards: Vec<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for AccountLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountLocks({} shards)", self.shards.len())
    }
}

impl AccountLocks {
    fn new() -> Self {
        Self {
            shards: (0..ACCOUNT_LOCK_SHARDS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    fn shard(account_id: &str) -> usize {
        // FNV-1a: stable and cheap; the distribution only affects queueing.
        let hash = account_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        (hash % ACCOUNT_LOCK_SHARDS as u64) as usize
    }

    /// Locks the shards of both accounts, in index order (no deadlock).
    async fn lock_pair(&self, a: &str, b: &str) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        let (mut first, mut second) = (Self::shard(a), Self::shard(b));
        if first > second {
            std::mem::swap(&mut first, &mut second);
        }
        let mut guards = vec![self.shards[first].lock().await];
        if second != first {
            guards.push(self.shards[second].lock().await);
        }
        guards
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn entry_pk(account_id: &str) -> String {
    format!("A#{account_id}")
}

fn entry_sk(sequence: u64) -> String {
    format!("E#{sequence:020}")
}

fn payment_pk(sender_id: &str) -> String {
    format!("P#{sender_id}")
}

fn payment_sk(key: &str) -> String {
    format!("K#{key}")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn new_transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn get_s(item: &Item, name: &str) -> Result<String, LedgerError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(LedgerError::Internal(format!(
            "stored item lacks string attribute {name}"
        ))),
    }
}

fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, LedgerError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| {
            LedgerError::Internal(format!("stored attribute {name} is out of range: {v}"))
        }),
        _ => Err(LedgerError::Internal(format!(
            "stored item lacks number attribute {name}"
        ))),
    }
}

impl Account {
    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        Ok(Self {
            account_id: get_s(item, "account_id")?,
            display_name: get_s(item, "display_name")?,
            currency: get_s(item, "currency")?,
            balance_minor: get_n(item, "balance")?,
            created_at_ms: get_n(item, "created_at")?,
            owner: get_s(item, "owner")?,
            version: get_n(item, "version")?,
            opening_balance_minor: get_n(item, "opening_balance")?,
        })
    }

    fn to_item(&self) -> Item {
        HashMap::from([
            ("account_id".into(), s(&self.account_id)),
            ("display_name".into(), s(&self.display_name)),
            ("currency".into(), s(&self.currency)),
            ("balance".into(), n(self.balance_minor)),
            ("created_at".into(), n(self.created_at_ms)),
            ("owner".into(), s(&self.owner)),
            ("version".into(), n(self.version)),
            ("opening_balance".into(), n(self.opening_balance_minor)),
        ])
    }
}

impl Payment {
    fn attributes(&self) -> Item {
        HashMap::from([
            ("transaction_id".into(), s(&self.transaction_id)),
            ("sender_id".into(), s(&self.sender_id)),
            ("recipient_id".into(), s(&self.recipient_id)),
            ("amount".into(), n(self.amount_minor)),
            ("currency".into(), s(&self.currency)),
            ("memo".into(), s(&self.memo)),
            ("created_at".into(), n(self.created_at_ms)),
        ])
    }

    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        Ok(Self {
            transaction_id: get_s(item, "transaction_id")?,
            sender_id: get_s(item, "sender_id")?,
            recipient_id: get_s(item, "recipient_id")?,
            amount_minor: get_n(item, "amount")?,
            currency: get_s(item, "currency")?,
            memo: get_s(item, "memo")?,
            created_at_ms: get_n(item, "created_at")?,
        })
    }

    /// Whether a stored payment was made by the same order (same key and
    /// sender are implied by the record's key).
    fn matches(&self, order: &PaymentOrder) -> bool {
        self.recipient_id == order.recipient_id.as_str()
            && self.amount_minor == order.amount_minor
            && self.currency == order.currency.as_str()
            && self.memo == order.memo
    }
}

impl Entry {
    fn to_item(&self, account_id: &str) -> Item {
        let mut item = self.payment.attributes();
        item.extend([
            ("pk".into(), s(entry_pk(account_id))),
            ("sk".into(), s(entry_sk(self.sequence))),
            ("account_id".into(), s(account_id)),
            ("sequence".into(), n(self.sequence)),
            ("direction".into(), s(self.direction.as_str())),
            ("balance_after".into(), n(self.balance_after_minor)),
        ]);
        item
    }

    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        let direction = match get_s(item, "direction")?.as_str() {
            "DEBIT" => Direction::Debit,
            "CREDIT" => Direction::Credit,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored entry has direction {other:?}"
                )));
            }
        };
        Ok(Self {
            sequence: get_n(item, "sequence")?,
            direction,
            payment: Payment::from_item(item)?,
            balance_after_minor: get_n(item, "balance_after")?,
        })
    }
}

/// Maps an SDK error of any operation: throttling, timeouts and connection
/// failures are UNAVAILABLE (retryable); a missing table is UNAVAILABLE too,
/// since it is an operator's error that the caller cannot fix; anything else
/// is a bug in the request we built.
fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = service.err().message().unwrap_or("");
            match code {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "LimitExceededException" => {
                    LedgerError::Unavailable(format!("{operation}: {code}: {message}"))
                }
                "ResourceNotFoundException" => LedgerError::Unavailable(format!(
                    "{operation}: a ledger table does not exist ({message}); create the tables (payment-server --create-tables, or sam deploy)"
                )),
                _ => LedgerError::Internal(format!("{operation}: {code}: {message}")),
            }
        }
        _ => LedgerError::Unavailable(format!(
            "{operation}: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&err)
        )),
    }
}

/// How a failed payment transaction should go on.
enum TransactFailure {
    /// Lost a race or was throttled inside the transaction: read again.
    Retry,
    Fatal(LedgerError),
}

fn classify_transact_error<R: std::fmt::Debug>(
    err: SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> TransactFailure {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    if let SdkError::ServiceError(service) = &err {
        match service.err() {
            E::TransactionCanceledException(cancelled) => {
                let retryable = cancelled.cancellation_reasons().iter().all(|reason| {
                    matches!(
                        reason.code(),
                        None | Some(
                            "None"
                                | "ConditionalCheckFailed"
                                | "TransactionConflict"
                                | "ThrottlingError"
                                | "ProvisionedThroughputExceeded"
                        )
                    )
                });
                if retryable {
                    return TransactFailure::Retry;
                }
            }
            E::TransactionInProgressException(_) => {
                return TransactFailure::Retry;
            }
            _ => {}
        }
    }
    TransactFailure::Fatal(sdk_error("TransactWriteItems", err))
}

/// Full-jitter exponential backoff before round `attempt` (1-based).
fn backoff(attempt: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_CAP);
    let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(rand::random_range(0..=bound_us))
}

impl Ledger {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            locks: std::sync::Arc::new(AccountLocks::new()),
        }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The key schema of each table: (table name, [(attribute, HASH|RANGE)]).
    /// All key attributes are strings and there are no indexes. template.yaml
    /// must declare exactly this (a test checks it).
    pub fn key_schemas(&self) -> [(&str, &'static [(&'static str, &'static str)]); 2] {
        [
            (&self.tables.accounts, &[("account_id", "HASH")]),
            (&self.tables.ledger, &[("pk", "HASH"), ("sk", "RANGE")]),
        ]
    }

    /// Creates both tables if they are missing (for DynamoDB Local and
    /// tests; deployed tables come from template.yaml).
    pub async fn create_tables(&self) -> Result<(), LedgerError> {
        for (table, keys) in self.key_schemas() {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (name, key_type) in keys {
                request = request
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(*name)
                            .key_type(KeyType::from(*key_type))
                            .build()
                            .map_err(|e| LedgerError::Internal(e.to_string()))?,
                    )
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(*name)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .map_err(|e| LedgerError::Internal(e.to_string()))?,
                    );
            }
            match request.send().await {
                Ok(_) => tracing::info!(table, "created table"),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_in_use_exception()) =>
                {
                    tracing::debug!(table, "table exists")
                }
                Err(err) => return Err(sdk_error("CreateTable", err)),
            }
        }
        Ok(())
    }

    /// Opens an account, with its opening credit as history entry 1 when the
    /// initial balance is positive. One conditional write: ALREADY_EXISTS
    /// comes from DynamoDB's condition, not from a read before the write.
    pub async fn add_account(&self, new: &NewAccount, owner: &str) -> Result<Account, LedgerError> {
        let opening = new.initial_balance_minor;
        let account = Account {
            account_id: new.account_id.as_str().to_owned(),
            display_name: new.display_name.clone(),
            currency: new.currency.as_str().to_owned(),
            balance_minor: opening,
            created_at_ms: now_ms(),
            owner: owner.to_owned(),
            version: u64::from(opening > 0),
            opening_balance_minor: opening,
        };
        let not_exists = "attribute_not_exists(account_id)";
        let exists = || LedgerError::AccountExists(account.account_id.clone());
        if opening == 0 {
            return match self
                .client
                .put_item()
                .table_name(&self.tables.accounts)
                .set_item(Some(account.to_item()))
                .condition_expression(not_exists)
                .send()
                .await
            {
                Ok(_) => Ok(account),
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Err(exists())
                }
                Err(err) => Err(sdk_error("PutItem", err)),
            };
        }
        let entry = Entry {
            sequence: 1,
            direction: Direction::Credit,
            payment: Payment {
                transaction_id: new_transaction_id(),
                sender_id: String::new(),
                recipient_id: account.account_id.clone(),
                amount_minor: opening,
                currency: account.currency.clone(),
                memo: "opening balance".into(),
                created_at_ms: account.created_at_ms,
            },
            balance_after_minor: opening,
        };
        let put_account = Put::builder()
            .table_name(&self.tables.accounts)
            .set_item(Some(account.to_item()))
            .condition_expression(not_exists)
            .build()
            .map_err(|e| LedgerError::Internal(e.to_string()))?;
        let put_entry = self.put_new(entry.to_item(&account.account_id))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put_account).build())
            .transact_items(TransactWriteItem::builder().put(put_entry).build())
            .client_request_token(uuid::Uuid::new_v4().to_string())
            .send()
            .await;
        match result {
            Ok(_) => Ok(account),
            Err(err) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
                let account_taken = match err.as_service_error() {
                    Some(E::TransactionCanceledException(cancelled)) => cancelled
                        .cancellation_reasons()
                        .first()
                        .is_some_and(|r| r.code() == Some("ConditionalCheckFailed")),
                    _ => false,
                };
                if account_taken {
                    Err(exists())
                } else {
                    Err(sdk_error("TransactWriteItems", err))
                }
            }
        }
    }

    fn put_new(&self, item: Item) -> Result<Put, LedgerError> {
        Put::builder()
            .table_name(&self.tables.ledger)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| LedgerError::Internal(e.to_string()))
    }

    /// Reads one account with a strongly consistent GetItem.
    pub async fn get_account(&self, account_id: &AccountId) -> Result<Account, LedgerError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.accounts)
            .key("account_id", s(account_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        match output.item() {
            Some(item) => Account::from_item(item),
            None => Err(LedgerError::AccountNotFound {
                role: "the",
                account_id: account_id.as_str().to_owned(),
            }),
        }
    }

    /// Moves money exactly once per (sender, idempotency key). Two DynamoDB
    /// requests per round: one BatchGetItem and one TransactWriteItems.
    /// `payer` must own the sender account.
    pub async fn make_payment(
        &self,
        order: &PaymentOrder,
        payer: Payer<'_>,
    ) -> Result<PaymentOutcome, LedgerError> {
        let _queued = self
            .locks
            .lock_pair(order.sender_id.as_str(), order.recipient_id.as_str())
            .await;
        for attempt in 1..=PAYMENT_ATTEMPTS_MAX {
            if attempt > 1 {
                tokio::time::sleep(backoff(attempt - 1)).await;
            }
            let snapshot = match self.read_payment_snapshot(order).await? {
                Some(snapshot) => snapshot,
                None => continue, // DynamoDB left keys unprocessed: throttled.
            };
            if let Some(stored) = snapshot.stored {
                check_owner(&snapshot.sender, &payer, order)?;
                return if stored.matches(order) {
                    Ok(PaymentOutcome {
                        payment: stored,
                        replayed: true,
                    })
                } else {
                    Err(LedgerError::IdempotencyKeyReused {
                        key: order.idempotency_key.as_str().to_owned(),
                        sender_id: order.sender_id.as_str().to_owned(),
                    })
                };
            }
            // Ownership first: an unknown sender is "not yours", so that
            // nobody can probe which account ids exist.
            check_owner(&snapshot.sender, &payer, order)?;
            let sender = snapshot
                .sender
                .ok_or_else(|| LedgerError::AccountNotFound {
                    role: "sender",
                    account_id: order.sender_id.as_str().to_owned(),
                })?;
            let recipient = snapshot
                .recipient
                .ok_or_else(|| LedgerError::AccountNotFound {
                    role: "recipient",
                    account_id: order.recipient_id.as_str().to_owned(),
                })?;
            check_payable(order, &sender, &recipient)?;
            let payment = Payment {
                transaction_id: new_transaction_id(),
                sender_id: sender.account_id.clone(),
                recipient_id: recipient.account_id.clone(),
                amount_minor: order.amount_minor,
                currency: order.currency.as_str().to_owned(),
                memo: order.memo.clone(),
                created_at_ms: now_ms(),
            };
            let items = self.payment_writes(order, &sender, &recipient, &payment)?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                // Makes the SDK's own retries of this exact request (after a
                // timeout, say) idempotent; each round gets a fresh token.
                .client_request_token(uuid::Uuid::new_v4().to_string())
                .send()
                .await;
            match result {
                Ok(_) => {
                    return Ok(PaymentOutcome {
                        payment,
                        replayed: false,
                    });
                }
                Err(err) => match classify_transact_error(err) {
                    TransactFailure::Retry => {
                        tracing::debug!(attempt, "payment round lost a race; reading again");
                    }
                    TransactFailure::Fatal(err) => return Err(err),
                },
            }
        }
        Err(LedgerError::Contended {
            attempts: PAYMENT_ATTEMPTS_MAX,
        })
    }

    /// One strongly consistent BatchGetItem for both accounts and the
    /// payment record. None when DynamoDB left keys unprocessed.
    async fn read_payment_snapshot(
        &self,
        order: &PaymentOrder,
    ) -> Result<Option<PaymentSnapshot>, LedgerError> {
        let accounts = KeysAndAttributes::builder()
            .keys(HashMap::from([(
                "account_id".into(),
                s(order.sender_id.as_str()),
            )]))
            .keys(HashMap::from([(
                "account_id".into(),
                s(order.recipient_id.as_str()),
            )]))
            .consistent_read(true)
            .build()
            .map_err(|e| LedgerError::Internal(e.to_string()))?;
        let record = KeysAndAttributes::builder()
            .keys(HashMap::from([
                ("pk".into(), s(payment_pk(order.sender_id.as_str()))),
                ("sk".into(), s(payment_sk(order.idempotency_key.as_str()))),
            ]))
            .consistent_read(true)
            .build()
            .map_err(|e| LedgerError::Internal(e.to_string()))?;
        let output = self
            .client
            .batch_get_item()
            .request_items(&self.tables.accounts, accounts)
            .request_items(&self.tables.ledger, record)
            .send()
            .await
            .map_err(|e| sdk_error("BatchGetItem", e))?;
        if output.unprocessed_keys().is_some_and(|u| !u.is_empty()) {
            return Ok(None);
        }
        let mut snapshot = PaymentSnapshot {
            sender: None,
            recipient: None,
            stored: None,
        };
        let responses = output.responses();
        for item in responses
            .and_then(|r| r.get(&self.tables.accounts))
            .into_iter()
            .flatten()
        {
            let account = Account::from_item(item)?;
            if account.account_id == order.sender_id.as_str() {
                snapshot.sender = Some(account);
            } else if account.account_id == order.recipient_id.as_str() {
                snapshot.recipient = Some(account);
            }
        }
        if let Some(item) = responses
            .and_then(|r| r.get(&self.tables.ledger))
            .and_then(|items| items.first())
        {
            snapshot.stored = Some(Payment::from_item(item)?);
        }
        Ok(Some(snapshot))
    }

    fn payment_writes(
        &self,
        order: &PaymentOrder,
        sender: &Account,
        recipient: &Account,
        payment: &Payment,
    ) -> Result<Vec<TransactWriteItem>, LedgerError> {
        let amount = payment.amount_minor;
        let sender_entry = Entry {
            sequence: sender.version + 1,
            direction: Direction::Debit,
            payment: payment.clone(),
            balance_after_minor: sender.balance_minor - amount,
        };
        let recipient_entry = Entry {
            sequence: recipient.version + 1,
            direction: Direction::Credit,
            payment: payment.clone(),
            balance_after_minor: recipient.balance_minor + amount,
        };
        let debit = self.account_update(
            sender,
            "SET balance = balance - :amount, version = :next_version",
            "version = :version AND balance >= :amount",
            amount,
        )?;
        let credit = self.account_update(
            recipient,
            "SET balance = balance + :amount, version = :next_version",
            "version = :version AND balance <= :room",
            amount,
        )?;
        let mut record = payment.attributes();
        record.extend([
            ("pk".into(), s(payment_pk(&payment.sender_id))),
            ("sk".into(), s(payment_sk(order.idempotency_key.as_str()))),
            ("idempotency_key".into(), s(order.idempotency_key.as_str())),
            ("sender_sequence".into(), n(sender_entry.sequence)),
            ("recipient_sequence".into(), n(recipient_entry.sequence)),
        ]);
        Ok(vec![
            TransactWriteItem::builder().update(debit).build(),
            TransactWriteItem::builder().update(credit).build(),
            TransactWriteItem::builder()
                .put(self.put_new(record)?)
                .build(),
            TransactWriteItem::builder()
                .put(self.put_new(sender_entry.to_item(&sender.account_id))?)
                .build(),
            TransactWriteItem::builder()
                .put(self.put_new(recipient_entry.to_item(&recipient.account_id))?)
                .build(),
        ])
    }

    fn account_update(
        &self,
        account: &Account,
        update: &str,
        condition: &str,
        amount_minor: i64,
    ) -> Result<Update, LedgerError> {
        let mut values = HashMap::from([
            (":amount".to_owned(), n(amount_minor)),
            (":version".to_owned(), n(account.version)),
            (":next_version".to_owned(), n(account.version + 1)),
        ]);
        if condition.contains(":room") {
            values.insert(":room".into(), n(BALANCE_MAX_MINOR - amount_minor));
        }
        Update::builder()
            .table_name(&self.tables.accounts)
            .key("account_id", s(&account.account_id))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| LedgerError::Internal(e.to_string()))
    }

    /// Reads up to `limit` (at most [`HISTORY_CHUNK_MAX`]) entries of the
    /// account's history with sequence below `before_sequence`, newest first,
    /// with a strongly consistent Query on the account's own partition.
    pub async fn history_chunk(
        &self,
        account_id: &AccountId,
        before_sequence: u64,
        limit: u32,
    ) -> Result<Vec<Entry>, LedgerError> {
        let limit = limit.min(HISTORY_CHUNK_MAX);
        if before_sequence <= 1 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity(limit as usize);
        let mut start_key = None;
        for _ in 0..QUERY_CALLS_PER_CHUNK_MAX {
            let output = self
                .client
                .query()
                .table_name(&self.tables.ledger)
                .key_condition_expression("pk = :pk AND sk BETWEEN :oldest AND :newest")
                .expression_attribute_values(":pk", s(entry_pk(account_id.as_str())))
                .expression_attribute_values(":oldest", s(entry_sk(1)))
                .expression_attribute_values(":newest", s(entry_sk(before_sequence - 1)))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(i32::try_from(limit as usize - entries.len()).unwrap_or(1))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for item in output.items() {
                entries.push(Entry::from_item(item)?);
            }
            start_key = output.last_evaluated_key().cloned();
            if start_key.is_none() || entries.len() >= limit as usize {
                return Ok(entries);
            }
        }
        Err(LedgerError::Internal(format!(
            "history of {account_id} needed more than {QUERY_CALLS_PER_CHUNK_MAX} queries for {limit} entries"
        )))
    }
}

struct PaymentSnapshot {
    sender: Option<Account>,
    recipient: Option<Account>,
    stored: Option<Payment>,
}

fn check_owner(
    sender: &Option<Account>,
    payer: &Payer<'_>,
    order: &PaymentOrder,
) -> Result<(), LedgerError> {
    match sender {
        Some(account) if account.owner == payer.sub => Ok(()),
        // Admins may know which accounts exist.
        None if payer.admin => Err(LedgerError::AccountNotFound {
            role: "sender",
            account_id: order.sender_id.as_str().to_owned(),
        }),
        // For anyone else an unknown sender is reported as not owned, so
        // that nobody can probe which account ids exist.
        _ => Err(LedgerError::NotOwner {
            account_id: order.sender_id.as_str().to_owned(),
        }),
    }
}

/// Who asks for a payment: only the sender account's owner may pay from it.
#[derive(Debug, Clone, Copy)]
pub struct Payer<'a> {
    pub sub: &'a str,
    pub admin: bool,
}

fn check_payable(
    order: &PaymentOrder,
    sender: &Account,
    recipient: &Account,
) -> Result<(), LedgerError> {
    let currency: &Currency = &order.currency;
    for (role, account) in [("sender", sender), ("recipient", recipient)] {
        if account.currency != currency.as_str() {
            return Err(LedgerError::CurrencyMismatch {
                role,
                account_id: account.account_id.clone(),
                account_currency: account.currency.clone(),
                currency: currency.as_str().to_owned(),
            });
        }
    }
    if sender.balance_minor < order.amount_minor {
        return Err(LedgerError::InsufficientFunds {
            account_id: sender.account_id.clone(),
            balance_minor: sender.balance_minor,
            amount_minor: order.amount_minor,
        });
    }
    if recipient.balance_minor > BALANCE_MAX_MINOR - order.amount_minor {
        return Err(LedgerError::BalanceLimit {
            account_id: recipient.account_id.clone(),
        });
    }
    Ok(())
}

/// Most parallel Scan segments an audit may use.
pub const AUDIT_SEGMENTS_MAX: u32 = 64;
/// Most discrepancies an audit lists (it counts them all).
pub const AUDIT_LISTED_MAX: usize = 1000;

/// What an audit found; see [`Ledger::audit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub accounts: u64,
    pub entries: u64,
    pub payments: u64,
    pub total_balance_minor: i128,
    pub total_opening_minor: i128,
    /// Up to [`AUDIT_LISTED_MAX`] discrepancies, in words.
    pub discrepancies: Vec<String>,
    pub discrepancies_total: u64,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.discrepancies_total == 0
    }

    fn flag(&mut self, what: String) {
        self.discrepancies_total += 1;
        if self.discrepancies.len() < AUDIT_LISTED_MAX {
            self.discrepancies.push(what);
        }
    }
}

#[derive(Default)]
struct AccountTally {
    entries: u64,
    sequence_max: u64,
    sum_minor: i128,
    newest_balance_after: Option<i64>,
    opening_minor: Option<i64>,
}

#[derive(Default)]
struct PaymentTally {
    record: Option<(Payment, u64, u64)>,
    /// (account, sequence, direction, amount, currency) of each entry seen.
    entries: Vec<(String, u64, Direction, i64, String)>,
}

impl Ledger {
    /// Reads every item of a table with `segments` parallel Scan segments,
    /// strongly consistent, calling `seen` with the running item count.
    async fn scan_all(
        &self,
        table: &str,
        segments: u32,
        seen: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<Item>, LedgerError> {
        let segments = segments.clamp(1, AUDIT_SEGMENTS_MAX);
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for segment in 0..segments {
            let (client, table, counter) = (self.client.clone(), table.to_owned(), counter.clone());
            tasks.spawn(async move {
                let mut items = Vec::new();
                let mut start_key = None;
                loop {
                    let output = client
                        .scan()
                        .table_name(&table)
                        .segment(segment as i32)
                        .total_segments(segments as i32)
                        .consistent_read(true)
                        .set_exclusive_start_key(start_key)
                        .send()
                        .await
                        .map_err(|e| sdk_error("Scan", e))?;
                    let page = output.items().to_vec();
                    counter.fetch_add(page.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    items.extend(page);
                    start_key = output.last_evaluated_key().cloned();
                    if start_key.is_none() {
                        return Ok::<_, LedgerError>(items);
                    }
                }
            });
        }
        let mut all = Vec::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    None => break,
                    Some(Ok(items)) => all.extend(items?),
                    Some(Err(e)) => return Err(LedgerError::Internal(format!("scan task failed: {e}"))),
                },
                _ = ticker.tick() => seen(counter.load(std::sync::atomic::Ordering::Relaxed)),
            }
        }
        seen(counter.load(std::sync::atomic::Ordering::Relaxed));
        Ok(all)
    }

    /// Walks the whole ledger with parallel Scan segments and checks that
    /// every account's balance equals the sum of its history (with gapless
    /// sequences and a matching newest balance_after), that every payment
    /// has exactly its two entries with matching amounts, that every entry
    /// belongs to a payment or is an opening credit, and that the sum of all
    /// balances equals the sum of all opening balances.
    ///
    /// It reads a moving ledger item by item, not as a snapshot: run it when
    /// no payments are in flight, or re-run it on a discrepancy. Memory grows
    /// with the number of accounts and payments.
    pub async fn audit(
        &self,
        segments: u32,
        progress: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<AuditReport, LedgerError> {
        let account_items = self
            .scan_all(&self.tables.accounts, segments, &|n| {
                progress("accounts", n)
            })
            .await?;
        let ledger_items = self
            .scan_all(&self.tables.ledger, segments, &|n| {
                progress("ledger items", n)
            })
            .await?;
        let mut report = AuditReport::default();
        let mut accounts = HashMap::new();
        for item in &account_items {
            let account = Account::from_item(item)?;
            report.accounts += 1;
            report.total_balance_minor += i128::from(account.balance_minor);
            report.total_opening_minor += i128::from(account.opening_balance_minor);
            accounts.insert(account.account_id.clone(), account);
        }
        let mut tallies: HashMap<String, AccountTally> = HashMap::new();
        let mut payments: HashMap<String, PaymentTally> = HashMap::new();
        for item in &ledger_items {
            let pk = get_s(item, "pk")?;
            if pk.starts_with("A#") {
                report.entries += 1;
                let entry = Entry::from_item(item)?;
                let account_id = get_s(item, "account_id")?;
                let tally = tallies.entry(account_id.clone()).or_default();
                tally.entries += 1;
                tally.sequence_max = tally.sequence_max.max(entry.sequence);
                let amount = i128::from(entry.payment.amount_minor);
                tally.sum_minor += match entry.direction {
                    Direction::Debit => -amount,
                    Direction::Credit => amount,
                };
                if accounts
                    .get(&account_id)
                    .is_some_and(|a| a.version == entry.sequence)
                {
                    tally.newest_balance_after = Some(entry.balance_after_minor);
                }
                if entry.payment.sender_id.is_empty() {
                    if entry.sequence != 1 || entry.direction != Direction::Credit {
                        report.flag(format!(
                            "account {account_id}: entry {} has no sender but is not the opening credit",
                            entry.sequence
                        ));
                    }
                    tally.opening_minor = Some(entry.payment.amount_minor);
                    continue;
                }
                payments
                    .entry(entry.payment.transaction_id.clone())
                    .or_default()
                    .entries
                    .push((
                        account_id,
                        entry.sequence,
                        entry.direction,
                        entry.payment.amount_minor,
                        entry.payment.currency.clone(),
                    ));
            } else if pk.starts_with("P#") {
                report.payments += 1;
                let payment = Payment::from_item(item)?;
                let sender_sequence = get_n(item, "sender_sequence")?;
                let recipient_sequence = get_n(item, "recipient_sequence")?;
                let tx_id = payment.transaction_id.clone();
                payments.entry(tx_id).or_default().record =
                    Some((payment, sender_sequence, recipient_sequence));
            } else {
                report.flag(format!("ledger item with unknown key {pk}"));
            }
        }
        let mut account_ids: Vec<_> = accounts.keys().cloned().collect();
        account_ids.sort();
        for id in &account_ids {
            let account = &accounts[id];
            let tally = tallies.remove(id).unwrap_or_default();
            if account.balance_minor < 0 {
                report.flag(format!(
                    "account {id}: negative balance {}",
                    account.balance_minor
                ));
            }
            if tally.sum_minor != i128::from(account.balance_minor) {
                report.flag(format!(
                    "account {id}: balance {} but its history sums to {}",
                    account.balance_minor, tally.sum_minor
                ));
            }
            if tally.entries != account.version || tally.sequence_max != account.version {
                report.flag(format!(
                    "account {id}: version {} but {} entries up to sequence {}",
                    account.version, tally.entries, tally.sequence_max
                ));
            }
            if account.version > 0 && tally.newest_balance_after != Some(account.balance_minor) {
                report.flag(format!(
                    "account {id}: newest entry's balance_after {:?} differs from balance {}",
                    tally.newest_balance_after, account.balance_minor
                ));
            }
            let opening = tally.opening_minor.unwrap_or(0);
            if opening != account.opening_balance_minor {
                report.flag(format!(
                    "account {id}: opening balance {} but opening credit {opening}",
                    account.opening_balance_minor
                ));
            }
        }
        let mut orphans: Vec<_> = tallies.into_keys().collect();
        orphans.sort();
        for id in orphans {
            report.flag(format!("history entries for unknown account {id}"));
        }
        let mut tx_ids: Vec<_> = payments.keys().cloned().collect();
        tx_ids.sort();
        for tx_id in tx_ids {
            let tally = &payments[&tx_id];
            let Some((payment, sender_sequence, recipient_sequence)) = &tally.record else {
                report.flag(format!(
                    "transaction {tx_id}: entries without a payment record"
                ));
                continue;
            };
            let expected = [
                (&payment.sender_id, *sender_sequence, Direction::Debit),
                (
                    &payment.recipient_id,
                    *recipient_sequence,
                    Direction::Credit,
                ),
            ];
            let matches = tally.entries.len() == 2
                && expected.iter().all(|(account, sequence, direction)| {
                    tally.entries.iter().any(|(a, s, d, amount, currency)| {
                        a == *account
                            && s == sequence
                            && d == direction
                            && *amount == payment.amount_minor
                            && *currency == payment.currency
                    })
                });
            if !matches {
                report.flag(format!(
                    "transaction {tx_id}: expected a debit of {} at {}#{} and a credit at {}#{}, found {:?}",
                    payment.amount_minor,
                    payment.sender_id,
                    sender_sequence,
                    payment.recipient_id,
                    recipient_sequence,
                    tally.entries
                ));
            }
        }
        if report.total_balance_minor != report.total_opening_minor {
            report.flag(format!(
                "all balances sum to {} but all opening balances to {}: money was created or lost",
                report.total_balance_minor, report.total_opening_minor
            ));
        }
        Ok(report)
    }
}
