//! The DynamoDB layout: keys, item codecs and error mapping. Nothing else in
//! the crate builds or reads an item.

use super::{Direction, HoldState, Ledger, LedgerError, Payment, TransferKind};
use crate::domain::PaymentOrder;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
};
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) type Item = HashMap<String, AttributeValue>;

/// A table's indexes: (index name, [(attribute, HASH|RANGE)]).
pub type IndexSchemas = &'static [(&'static str, &'static [(&'static str, &'static str)])];

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// FNV-1a: stable and cheap, for spreading accounts over in-process slots.
pub(super) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Key of shard `shard` of an account in the accounts table: the account's
/// own id for shard 0, `<account>#<shard>` for the others (`#` cannot occur
/// in an account id, so these never collide with an account).
pub(super) fn shard_key(account_id: &str, shard: u32) -> String {
    if shard == 0 {
        account_id.to_owned()
    } else {
        format!("{account_id}#{shard}")
    }
}

/// Partition of one shard's history.
pub(super) fn entry_pk(account_id: &str, shard: u32) -> String {
    format!("A#{}", shard_key(account_id, shard))
}

pub(super) fn entry_sk(sequence: u64) -> String {
    format!("E#{sequence:020}")
}

pub(super) fn payment_pk(sender_id: &str) -> String {
    format!("P#{sender_id}")
}

pub(super) fn payment_sk(key: &str) -> String {
    format!("K#{key}")
}

/// The item counting an owner's accounts: `pk = "O#<owner>"`, `sk = "COUNT"`.
pub(super) fn owner_pk(owner: &str) -> String {
    format!("O#{owner}")
}

pub(super) const OWNER_SK: &str = "COUNT";

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
/// (negative: behind), so that the history checker (src/check) can run
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

pub(super) fn get_s(item: &Item, name: &str) -> Result<String, LedgerError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(LedgerError::Internal(format!(
            "stored item lacks string attribute {name}"
        ))),
    }
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, LedgerError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| {
            LedgerError::Internal(format!("stored attribute {name} is out of range: {v}"))
        }),
        _ => Err(LedgerError::Internal(format!(
            "stored item lacks number attribute {name}"
        ))),
    }
}

/// A number attribute that items written before it existed lack.
fn get_n_or<T: std::str::FromStr>(item: &Item, name: &str, default: T) -> Result<T, LedgerError> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(default)
    }
}

/// The state of one balance shard, as of its `version`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct ShardState {
    pub version: u64,
    pub balance_minor: i64,
    /// Time of the newest entry; the next entry's time is later.
    pub updated_at_ms: i64,
    /// For each other shard, the version it must have reached for a
    /// snapshot that includes this shard's version (see `shards`).
    pub need: BTreeMap<u32, u64>,
    /// The holds reserving money of this shard, by the hold's idempotency
    /// key (see `holds`). Expired ones stay until a write sweeps them.
    pub holds: BTreeMap<String, HoldSlot>,
    /// Raised by every change of `holds`; every debit is conditioned on it.
    pub holds_rev: u64,
    /// The account's shard count as this item was last told (its `shards`
    /// attribute): always on the account's own item; on a shard item only
    /// once the account was resharded (0 before). A reshard sets it on
    /// every shard at once, so any item read after a reshard shows the new
    /// count (see `reshard`).
    pub told_shards: u32,
}

/// One hold as its shard keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HoldSlot {
    pub amount_minor: i64,
    pub expires_at_ms: i64,
}

impl ShardState {
    /// Money of the shard reserved by holds that have not expired at `now_ms`.
    pub(super) fn held_at(&self, now_ms: i64) -> i64 {
        self.holds
            .values()
            .filter(|h| h.expires_at_ms > now_ms)
            .map(|h| h.amount_minor)
            .sum()
    }

    /// What a debit may take from the shard at `now_ms`.
    pub(super) fn available_at(&self, now_ms: i64) -> i64 {
        self.balance_minor - self.held_at(now_ms)
    }

    /// The holds left after sweeping the expired ones, if any expired.
    pub(super) fn swept(&self, now_ms: i64) -> Option<BTreeMap<String, HoldSlot>> {
        if self.holds.values().all(|h| h.expires_at_ms > now_ms) {
            return None;
        }
        Some(
            self.holds
                .iter()
                .filter(|(_, h)| h.expires_at_ms > now_ms)
                .map(|(k, h)| (k.clone(), *h))
                .collect(),
        )
    }
}

pub(super) fn holds_value(holds: &BTreeMap<String, HoldSlot>) -> AttributeValue {
    AttributeValue::M(
        holds
            .iter()
            .map(|(key, h)| {
                (
                    key.clone(),
                    AttributeValue::M(HashMap::from([
                        ("a".to_owned(), n(h.amount_minor)),
                        ("e".to_owned(), n(h.expires_at_ms)),
                    ])),
                )
            })
            .collect(),
    )
}

fn holds_from(item: &Item) -> Result<BTreeMap<String, HoldSlot>, LedgerError> {
    let mut holds = BTreeMap::new();
    if let Some(AttributeValue::M(map)) = item.get("holds") {
        for (key, value) in map {
            let AttributeValue::M(slot) = value else {
                return Err(LedgerError::Internal(
                    "stored holds map is malformed".into(),
                ));
            };
            holds.insert(
                key.clone(),
                HoldSlot {
                    amount_minor: get_n(slot, "a")?,
                    expires_at_ms: get_n(slot, "e")?,
                },
            );
        }
    }
    Ok(holds)
}

impl ShardState {
    fn from_item(item: &Item, created_at_ms: i64) -> Result<Self, LedgerError> {
        let mut need = BTreeMap::new();
        if let Some(AttributeValue::M(map)) = item.get("need") {
            for (shard, version) in map {
                let (Ok(shard), AttributeValue::N(version)) = (shard.parse::<u32>(), version)
                else {
                    return Err(LedgerError::Internal("stored need map is malformed".into()));
                };
                let version = version.parse().map_err(|_| {
                    LedgerError::Internal("stored need version is malformed".into())
                })?;
                need.insert(shard, version);
            }
        }
        Ok(Self {
            version: get_n(item, "version")?,
            balance_minor: get_n(item, "balance")?,
            updated_at_ms: get_n_or(item, "updated_at", created_at_ms)?,
            need,
            holds: holds_from(item)?,
            holds_rev: get_n_or(item, "holds_rev", 0)?,
            told_shards: get_n_or(item, "shards", 0)?,
        })
    }

    fn attributes(&self) -> Item {
        let mut item = HashMap::from([
            ("version".into(), n(self.version)),
            ("balance".into(), n(self.balance_minor)),
            ("updated_at".into(), n(self.updated_at_ms)),
        ]);
        if !self.need.is_empty() {
            item.insert("need".into(), need_value(&self.need));
        }
        if !self.holds.is_empty() {
            item.insert("holds".into(), holds_value(&self.holds));
        }
        if self.holds_rev > 0 {
            item.insert("holds_rev".into(), n(self.holds_rev));
        }
        if self.told_shards > 0 {
            item.insert("shards".into(), n(self.told_shards));
        }
        item
    }
}

pub(super) fn need_value(need: &BTreeMap<u32, u64>) -> AttributeValue {
    AttributeValue::M(
        need.iter()
            .map(|(shard, version)| (shard.to_string(), n(version)))
            .collect(),
    )
}

/// What an instance knows about an account once it is open. All of it
/// never changes except `shards`, which a reshard only ever raises (see
/// `reshard`): a remembered count is a lower bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AccountFacts {
    pub account_id: String,
    pub display_name: String,
    pub currency: String,
    pub created_at_ms: i64,
    pub owner: String,
    pub opening_balance_minor: i64,
    pub shards: u32,
}

/// One item of the accounts table, decoded.
pub(super) enum AccountsItem {
    /// An account's own item: its facts and shard 0.
    Account(AccountFacts, ShardState),
    /// Shard `shard` (1 or more) of account `account_id`.
    Shard {
        account_id: String,
        shard: u32,
        state: ShardState,
    },
}

impl AccountsItem {
    pub(super) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        if item.contains_key("shard_of") {
            return Ok(Self::Shard {
                account_id: get_s(item, "shard_of")?,
                shard: get_n(item, "shard")?,
                state: ShardState::from_item(item, 0)?,
            });
        }
        let created_at_ms = get_n(item, "created_at")?;
        let facts = AccountFacts {
            account_id: get_s(item, "account_id")?,
            display_name: get_s(item, "display_name")?,
            currency: get_s(item, "currency")?,
            created_at_ms,
            owner: get_s(item, "owner")?,
            opening_balance_minor: get_n(item, "opening_balance")?,
            shards: get_n_or(item, "shards", 1)?,
        };
        Ok(Self::Account(
            facts,
            ShardState::from_item(item, created_at_ms)?,
        ))
    }
}

pub(super) fn account_item(facts: &AccountFacts, shard0: &ShardState) -> Item {
    let mut item = shard0.attributes();
    item.extend([
        ("account_id".into(), s(&facts.account_id)),
        ("display_name".into(), s(&facts.display_name)),
        ("currency".into(), s(&facts.currency)),
        ("created_at".into(), n(facts.created_at_ms)),
        ("owner".into(), s(&facts.owner)),
        ("opening_balance".into(), n(facts.opening_balance_minor)),
        ("shards".into(), n(facts.shards)),
        // The key of the all-accounts index (shard items lack it).
        ("listed".into(), s(LISTED)),
    ]);
    item
}

/// The value of `listed` on every account item: the partition of the
/// all-accounts index.
pub(super) const LISTED: &str = "ACCOUNT";
/// Index of account items by owner (`owner`, `account_id`), keys only.
pub(super) const OWNER_INDEX: &str = "by-owner";
/// Index of all account items (`listed`, `account_id`), keys only.
pub(super) const LISTED_INDEX: &str = "all-accounts";
/// Index of payment, hold and refund records by transaction id
/// (`record_txid`), keys only. Entries do not carry `record_txid`.
pub(super) const TXID_INDEX: &str = "by-transaction";

pub(super) fn shard_item(account_id: &str, shard: u32, state: &ShardState) -> Item {
    let mut item = state.attributes();
    item.extend([
        ("account_id".into(), s(shard_key(account_id, shard))),
        ("shard_of".into(), s(account_id)),
        ("shard".into(), n(shard)),
    ]);
    item
}

impl Payment {
    pub(super) fn attributes(&self) -> Item {
        let mut item = HashMap::from([
            ("transaction_id".into(), s(&self.transaction_id)),
            ("sender_id".into(), s(&self.sender_id)),
            ("recipient_id".into(), s(&self.recipient_id)),
            ("amount".into(), n(self.amount_minor)),
            ("currency".into(), s(&self.currency)),
            ("memo".into(), s(&self.memo)),
            ("created_at".into(), n(self.created_at_ms)),
        ]);
        if self.kind != TransferKind::Payment {
            item.insert("kind".into(), s(self.kind.as_str()));
        }
        if !self.refund_of.is_empty() {
            item.insert("refund_of".into(), s(&self.refund_of));
        }
        item
    }

    pub(super) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        let sender_id = get_s(item, "sender_id")?;
        let kind = match item.get("kind") {
            Some(AttributeValue::S(kind)) => TransferKind::parse(kind)?,
            _ if sender_id.is_empty() => TransferKind::Opening,
            _ => TransferKind::Payment,
        };
        Ok(Self {
            transaction_id: get_s(item, "transaction_id")?,
            sender_id,
            recipient_id: get_s(item, "recipient_id")?,
            amount_minor: get_n(item, "amount")?,
            currency: get_s(item, "currency")?,
            memo: get_s(item, "memo")?,
            created_at_ms: get_n(item, "created_at")?,
            kind,
            refund_of: match item.get("refund_of") {
                Some(AttributeValue::S(id)) => id.clone(),
                _ => String::new(),
            },
        })
    }

    /// Whether a stored payment was made by the same order (same key and
    /// sender are implied by the record's key).
    pub(super) fn matches(&self, order: &PaymentOrder) -> bool {
        self.recipient_id == order.recipient_id.as_str()
            && self.amount_minor == order.amount_minor
            && self.currency == order.currency.as_str()
            && self.memo == order.memo
    }
}

impl TransferKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            TransferKind::Payment => "PAYMENT",
            TransferKind::Capture => "CAPTURE",
            TransferKind::Refund => "REFUND",
            TransferKind::Opening => "OPENING",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "PAYMENT" => TransferKind::Payment,
            "CAPTURE" => TransferKind::Capture,
            "REFUND" => TransferKind::Refund,
            "OPENING" => TransferKind::Opening,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored transaction has kind {other:?}"
                )));
            }
        })
    }
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Debit => "DEBIT",
            Direction::Credit => "CREDIT",
        }
    }
}

/// One history entry as stored in one shard: `amount_minor` is what this
/// shard gave or got (for a payment drawn from several shards, its part),
/// and `balance_after_minor` is the shard's balance after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredEntry {
    pub account_id: String,
    pub shard: u32,
    pub sequence: u64,
    pub direction: Direction,
    pub amount_minor: i64,
    pub balance_after_minor: i64,
    pub payment: Payment,
}

impl StoredEntry {
    pub(super) fn to_item(&self) -> Item {
        let mut item = self.payment.attributes();
        item.extend([
            ("pk".into(), s(entry_pk(&self.account_id, self.shard))),
            ("sk".into(), s(entry_sk(self.sequence))),
            ("account_id".into(), s(&self.account_id)),
            ("shard".into(), n(self.shard)),
            ("sequence".into(), n(self.sequence)),
            ("direction".into(), s(self.direction.as_str())),
            ("entry_amount".into(), n(self.amount_minor)),
            ("balance_after".into(), n(self.balance_after_minor)),
        ]);
        item
    }

    pub(super) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        let direction = match get_s(item, "direction")?.as_str() {
            "DEBIT" => Direction::Debit,
            "CREDIT" => Direction::Credit,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored entry has direction {other:?}"
                )));
            }
        };
        let payment = Payment::from_item(item)?;
        Ok(Self {
            account_id: get_s(item, "account_id")?,
            shard: get_n_or(item, "shard", 0)?,
            sequence: get_n(item, "sequence")?,
            direction,
            amount_minor: get_n_or(item, "entry_amount", payment.amount_minor)?,
            balance_after_minor: get_n(item, "balance_after")?,
            payment,
        })
    }
}

/// Where a payment's entries are: (shard, sequence, amount) of each debit
/// and the credit's (shard, sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecordLegs {
    pub debits: Vec<(u32, u64, i64)>,
    pub credit: (u32, u64),
}

pub(super) fn record_item(payment: &Payment, key: &str, legs: &RecordLegs) -> Item {
    let mut item = payment.attributes();
    item.extend(legs_attributes(legs));
    item.extend([
        ("pk".into(), s(payment_pk(&payment.sender_id))),
        ("sk".into(), s(payment_sk(key))),
        ("idempotency_key".into(), s(key)),
        ("record_txid".into(), s(&payment.transaction_id)),
    ]);
    item
}

/// The attributes that say where a transfer's entries are.
pub(super) fn legs_attributes(legs: &RecordLegs) -> Item {
    HashMap::from([
        ("sender_sequence".into(), n(legs.debits[0].1)),
        ("recipient_sequence".into(), n(legs.credit.1)),
        ("recipient_shard".into(), n(legs.credit.0)),
        (
            "debit_legs".into(),
            AttributeValue::L(
                legs.debits
                    .iter()
                    .map(|(shard, sequence, amount)| s(format!("{shard}:{sequence}:{amount}")))
                    .collect(),
            ),
        ),
    ])
}

/// A hold as its record keeps it (`P#<sender>`, `K#<key>`, `kind = HOLD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HoldRecord {
    pub idempotency_key: String,
    /// The hold's own facts: its id, parties, amount, memo and when it was
    /// placed (kind is Capture: the id is its capture's too).
    pub payment: Payment,
    pub expires_at_ms: i64,
    /// The sender's balance shard that reserves the money.
    pub shard: u32,
    /// As stored: Open, Captured or Voided (an expired hold is stored Open).
    pub state: HoldState,
    pub captured_minor: i64,
    pub settled_at_ms: i64,
    /// The capture round that captured it (a fresh id per round).
    pub capture_round: String,
    pub refunded_minor: i64,
}

impl HoldRecord {
    /// Its state at `now_ms`: an open hold past its expiry is expired.
    pub(super) fn state_at(&self, now_ms: i64) -> HoldState {
        match self.state {
            HoldState::Open if self.expires_at_ms <= now_ms => HoldState::Expired,
            state => state,
        }
    }

    pub(super) fn to_item(&self) -> Item {
        let mut item = self.payment.attributes();
        item.extend([
            ("pk".into(), s(payment_pk(&self.payment.sender_id))),
            ("sk".into(), s(payment_sk(&self.idempotency_key))),
            ("idempotency_key".into(), s(&self.idempotency_key)),
            ("record_txid".into(), s(&self.payment.transaction_id)),
            ("hold".into(), AttributeValue::Bool(true)),
            ("expires_at".into(), n(self.expires_at_ms)),
            ("hold_shard".into(), n(self.shard)),
            ("state".into(), s(self.state.as_str())),
        ]);
        item
    }

    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        Ok(Self {
            idempotency_key: get_s(item, "idempotency_key")?,
            payment: Payment::from_item(item)?,
            expires_at_ms: get_n(item, "expires_at")?,
            shard: get_n(item, "hold_shard")?,
            state: HoldState::parse(&get_s(item, "state")?)?,
            captured_minor: get_n_or(item, "captured_amount", 0)?,
            settled_at_ms: get_n_or(item, "settled_at", 0)?,
            capture_round: match item.get("capture_round") {
                Some(AttributeValue::S(id)) => id.clone(),
                _ => String::new(),
            },
            refunded_minor: get_n_or(item, "refunded", 0)?,
        })
    }
}

impl HoldState {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            HoldState::Open => "OPEN",
            HoldState::Captured => "CAPTURED",
            HoldState::Voided => "VOIDED",
            HoldState::Expired => "EXPIRED",
        }
    }

    fn parse(text: &str) -> Result<Self, LedgerError> {
        Ok(match text {
            "OPEN" => HoldState::Open,
            "CAPTURED" => HoldState::Captured,
            "VOIDED" => HoldState::Voided,
            other => {
                return Err(LedgerError::Internal(format!(
                    "stored hold has state {other:?}"
                )));
            }
        })
    }
}

/// A fence (`P#<sender>` / `K#<key>`, `fence = true`): what GetPayment
/// with finalize stores under a key where nothing was stored, on condition
/// that nothing is. Every payment, hold and refund record is put on the
/// same condition, so no call with a fenced key can ever commit, not even
/// one whose write is still on the wire. It has no `record_txid` (the
/// transaction index never finds it) and moves no money. It is never
/// removed: a fenced key is never free again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fence {
    pub sender_id: String,
    pub idempotency_key: String,
    pub fenced_at_ms: i64,
    /// The `sub` of the caller who fenced it (the sender's owner or an
    /// admin).
    pub fenced_by: String,
}

impl Fence {
    pub(super) fn to_item(&self) -> Item {
        HashMap::from([
            ("pk".into(), s(payment_pk(&self.sender_id))),
            ("sk".into(), s(payment_sk(&self.idempotency_key))),
            ("fence".into(), AttributeValue::Bool(true)),
            ("sender_id".into(), s(&self.sender_id)),
            ("idempotency_key".into(), s(&self.idempotency_key)),
            ("fenced_at".into(), n(self.fenced_at_ms)),
            ("fenced_by".into(), s(&self.fenced_by)),
        ])
    }

    fn from_item(item: &Item) -> Result<Self, LedgerError> {
        Ok(Self {
            sender_id: get_s(item, "sender_id")?,
            idempotency_key: get_s(item, "idempotency_key")?,
            fenced_at_ms: get_n(item, "fenced_at")?,
            fenced_by: get_s(item, "fenced_by")?,
        })
    }
}

/// Any record of the ledger table's `P#` partitions, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StoredRecord {
    /// A payment or a refund, with how much of it was refunded.
    Transfer {
        idempotency_key: String,
        payment: Payment,
        refunded_minor: i64,
    },
    Hold(HoldRecord),
    /// A fenced key: no call with it happened, and none ever will.
    Fence(Fence),
}

impl StoredRecord {
    pub(super) fn from_item(item: &Item) -> Result<Self, LedgerError> {
        if item.contains_key("fence") {
            return Fence::from_item(item).map(Self::Fence);
        }
        if item.contains_key("hold") {
            return HoldRecord::from_item(item).map(Self::Hold);
        }
        Ok(Self::Transfer {
            idempotency_key: get_s(item, "idempotency_key")?,
            payment: Payment::from_item(item)?,
            refunded_minor: get_n_or(item, "refunded", 0)?,
        })
    }

    /// The idempotency key it was made with.
    pub(super) fn idempotency_key(&self) -> &str {
        match self {
            StoredRecord::Transfer {
                idempotency_key, ..
            } => idempotency_key,
            StoredRecord::Hold(hold) => &hold.idempotency_key,
            StoredRecord::Fence(fence) => &fence.idempotency_key,
        }
    }

    /// The transaction id of the payment, hold or refund; None for a
    /// fence, which is no transaction.
    pub(super) fn transaction_id(&self) -> Option<&str> {
        match self {
            StoredRecord::Transfer { payment, .. } => Some(&payment.transaction_id),
            StoredRecord::Hold(hold) => Some(&hold.payment.transaction_id),
            StoredRecord::Fence(_) => None,
        }
    }

    /// The paying and the paid account (a fence: its sender, and no one).
    pub(super) fn parties(&self) -> (&str, &str) {
        let payment = match self {
            StoredRecord::Transfer { payment, .. } => payment,
            StoredRecord::Hold(hold) => &hold.payment,
            StoredRecord::Fence(fence) => return (&fence.sender_id, ""),
        };
        (&payment.sender_id, &payment.recipient_id)
    }

    /// What it is, in a word a program can read: "payment", "hold",
    /// "refund", "fence" (or "opening").
    pub(super) fn kind_name(&self) -> &'static str {
        match self {
            StoredRecord::Hold(_) => "hold",
            StoredRecord::Fence(_) => "fence",
            StoredRecord::Transfer { payment, .. } => match payment.kind {
                TransferKind::Payment => "payment",
                TransferKind::Refund => "refund",
                TransferKind::Capture => "capture",
                TransferKind::Opening => "opening",
            },
        }
    }

    /// The record's key: `P#<sender>`, `K#<idempotency key>`.
    pub(super) fn key(&self) -> Item {
        let (sender, key) = match self {
            StoredRecord::Transfer {
                idempotency_key,
                payment,
                ..
            } => (&payment.sender_id, idempotency_key),
            StoredRecord::Hold(hold) => (&hold.payment.sender_id, &hold.idempotency_key),
            StoredRecord::Fence(fence) => (&fence.sender_id, &fence.idempotency_key),
        };
        record_key(sender, key)
    }
}

/// The key of the record of (sender, idempotency key).
pub(super) fn record_key(sender_id: &str, key: &str) -> Item {
    HashMap::from([
        ("pk".to_owned(), s(payment_pk(sender_id))),
        ("sk".to_owned(), s(payment_sk(key))),
    ])
}

/// The legs of a stored payment record; records written before sharding
/// have one debit and one credit, both in shard 0.
pub(super) fn record_legs(item: &Item) -> Result<RecordLegs, LedgerError> {
    let malformed =
        || LedgerError::Internal("stored payment record has malformed debit_legs".into());
    let debits = match item.get("debit_legs") {
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|leg| {
                let AttributeValue::S(text) = leg else {
                    return Err(malformed());
                };
                let mut parts = text.split(':');
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(shard), Some(sequence), Some(amount), None) => Ok((
                        shard.parse().map_err(|_| malformed())?,
                        sequence.parse().map_err(|_| malformed())?,
                        amount.parse().map_err(|_| malformed())?,
                    )),
                    _ => Err(malformed()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![(0, get_n(item, "sender_sequence")?, get_n(item, "amount")?)],
    };
    if debits.is_empty() {
        return Err(malformed());
    }
    Ok(RecordLegs {
        debits,
        credit: (
            get_n_or(item, "recipient_shard", 0)?,
            get_n(item, "recipient_sequence")?,
        ),
    })
}

/// The one list of DynamoDB error codes that say "not now": throttling,
/// limits and server-side failures. A caller may go again later; for a
/// write, the request may also have been carried out.
pub(super) fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException"
    )
}

/// Maps an SDK error of any operation: throttling, timeouts and connection
/// failures are UNAVAILABLE (retryable); a missing table is UNAVAILABLE too,
/// since it is an operator's error that the caller cannot fix; anything else
/// is a bug in the request we built.
pub(super) fn sdk_error<E, R>(operation: &str, err: SdkError<E, R>) -> LedgerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = service.err().message().unwrap_or("");
            match code {
                code if is_retryable_code(code) => {
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

pub(super) fn build_error(err: impl std::fmt::Display) -> LedgerError {
    LedgerError::Internal(format!("building a DynamoDB request: {err}"))
}

impl Ledger {
    /// The key schema of each table: (table name, [(attribute, HASH|RANGE)]).
    /// All key attributes are strings. template.yaml must declare exactly
    /// this (a test checks it), and the indexes of [`Self::index_schemas`].
    pub fn key_schemas(&self) -> [(&str, &'static [(&'static str, &'static str)]); 2] {
        [
            (&self.tables.accounts, &[("account_id", "HASH")]),
            (&self.tables.ledger, &[("pk", "HASH"), ("sk", "RANGE")]),
        ]
    }

    /// The global secondary indexes of each table, in the order of
    /// [`Self::key_schemas`]: (index name, [(attribute, HASH|RANGE)]), all
    /// with string keys and a KEYS_ONLY projection (whatever is found
    /// through them is then read from the table with strong consistency).
    pub fn index_schemas(&self) -> [IndexSchemas; 2] {
        [
            &[
                (OWNER_INDEX, &[("owner", "HASH"), ("account_id", "RANGE")]),
                (LISTED_INDEX, &[("listed", "HASH"), ("account_id", "RANGE")]),
            ],
            &[(TXID_INDEX, &[("record_txid", "HASH")])],
        ]
    }

    /// Creates both tables, with their indexes, if they are missing (for
    /// DynamoDB Local and tests; deployed tables come from template.yaml).
    pub async fn create_tables(&self) -> Result<(), LedgerError> {
        let key_element = |name: &str, key_type: &str| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(key_type))
                .build()
                .map_err(build_error)
        };
        for ((table, keys), indexes) in self.key_schemas().into_iter().zip(self.index_schemas()) {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            let mut attributes: Vec<&str> = Vec::new();
            for (name, key_type) in keys {
                request = request.key_schema(key_element(name, key_type)?);
                attributes.push(name);
            }
            for (index, index_keys) in indexes {
                let mut gsi = GlobalSecondaryIndex::builder()
                    .index_name(*index)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    );
                for (name, key_type) in *index_keys {
                    gsi = gsi.key_schema(key_element(name, key_type)?);
                    if !attributes.contains(name) {
                        attributes.push(name);
                    }
                }
                request = request.global_secondary_indexes(gsi.build().map_err(build_error)?);
            }
            for name in attributes {
                request = request.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(build_error)?,
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

    /// A Put of a new ledger item (an entry or a payment record).
    pub(super) fn put_new(&self, item: Item) -> Result<Put, LedgerError> {
        Put::builder()
            .table_name(&self.tables.ledger)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            )
            .build()
            .map_err(build_error)
    }
}
