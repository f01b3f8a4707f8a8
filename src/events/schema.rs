//! The events' schema, version [`SCHEMA_VERSION`] (docs/events.md shows
//! each type). The `detail` of every event is a [`Detail`]: its stable
//! `id`, the schema version, the time of the movement, a `type` and that
//! type's fields. Amounts are minor units with their currency; no event
//! carries a token of any kind.

use serde::{Deserialize, Serialize};

/// The events' `source`: the reverse-DNS-like name EventBridge's rules
/// match on (an `aws.` prefix is reserved for AWS).
pub const SOURCE: &str = "payment.ledger";

/// Raised when a field changes meaning or goes away; new fields may be
/// added within a version, so consumers must ignore fields they do not know.
pub const SCHEMA_VERSION: u32 = 1;

/// What every event's `detail` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    pub schema_version: u32,
    /// Derived from what the event describes (e.g. `payment.committed/<transaction id>`,
    /// `entry.posted/<account>/<shard>/<sequence>`): the same movement
    /// always has the same id, so a consumer deduplicates on it. (The
    /// envelope's own `id` is EventBridge's, new for every put.)
    pub id: String,
    /// When the movement happened (the ledger's clock), in ms since the epoch.
    pub occurred_at_ms: i64,
    #[serde(flatten)]
    pub body: Body,
}

/// The event's type (`detail.type`) and its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Body {
    #[serde(rename = "payment.committed")]
    PaymentCommitted(Transfer),
    #[serde(rename = "refund.committed")]
    RefundCommitted(Transfer),
    #[serde(rename = "hold.authorized")]
    HoldAuthorized(HoldFacts),
    #[serde(rename = "hold.captured")]
    HoldCaptured(HoldCaptured),
    #[serde(rename = "hold.voided")]
    HoldVoided(HoldVoided),
    #[serde(rename = "account.opened")]
    AccountOpened(AccountOpened),
    #[serde(rename = "entry.posted")]
    EntryPosted(EntryPosted),
}

impl Body {
    /// `detail.type`, e.g. `payment.committed`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::PaymentCommitted(_) => "payment.committed",
            Body::RefundCommitted(_) => "refund.committed",
            Body::HoldAuthorized(_) => "hold.authorized",
            Body::HoldCaptured(_) => "hold.captured",
            Body::HoldVoided(_) => "hold.voided",
            Body::AccountOpened(_) => "account.opened",
            Body::EntryPosted(_) => "entry.posted",
        }
    }

    /// The envelope's `detail-type`, in EventBridge's style: a short
    /// phrase, title case.
    pub fn detail_type(&self) -> &'static str {
        match self {
            Body::PaymentCommitted(_) => "Payment Committed",
            Body::RefundCommitted(_) => "Refund Committed",
            Body::HoldAuthorized(_) => "Hold Authorized",
            Body::HoldCaptured(_) => "Hold Captured",
            Body::HoldVoided(_) => "Hold Voided",
            Body::AccountOpened(_) => "Account Opened",
            Body::EntryPosted(_) => "Entry Posted",
        }
    }
}

/// A payment or a refund, as committed. A refund's sender is the refunded
/// payment's recipient, and `refund_of` names the payment (or capture).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub transaction_id: String,
    pub sender_id: String,
    pub recipient_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refund_of: String,
}

/// A hold as placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldFacts {
    pub hold_id: String,
    pub sender_id: String,
    pub recipient_id: String,
    /// What the hold reserves.
    pub amount_minor: i64,
    pub currency: String,
    pub memo: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// A captured hold: the capture is a transaction whose id is the hold's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCaptured {
    #[serde(flatten)]
    pub hold: HoldFacts,
    /// The capture's transaction id (the hold's id).
    pub transaction_id: String,
    pub captured_minor: i64,
    pub captured_at_ms: i64,
}

/// A voided hold: its money is available to the sender again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldVoided {
    #[serde(flatten)]
    pub hold: HoldFacts,
    pub voided_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountOpened {
    pub account_id: String,
    pub display_name: String,
    pub currency: String,
    /// The `sub` of the identity that opened it (an identifier, not a token).
    pub owner: String,
    pub opening_balance_minor: i64,
    pub balance_shards: u32,
    pub created_at_ms: i64,
}

/// One history entry of one balance shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPosted {
    pub account_id: String,
    /// 0 for an ordinary account.
    pub shard: u32,
    /// The entry's place in the shard's history: 1, 2, 3... without gaps.
    pub sequence: u64,
    /// `DEBIT` or `CREDIT`.
    pub direction: String,
    /// What this shard gave or got (a payment drawn from several shards of
    /// a sharded sender posts one entry per shard, each with its part).
    pub amount_minor: i64,
    pub currency: String,
    /// The shard's balance right after the entry: for an ordinary account,
    /// the account's balance.
    pub balance_after_minor: i64,
    pub transaction: Transaction,
}

/// The transaction an entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub transaction_id: String,
    /// `PAYMENT`, `CAPTURE`, `REFUND` or `OPENING`.
    pub kind: String,
    /// Empty for an opening balance.
    pub sender_id: String,
    pub recipient_id: String,
    /// The whole transaction's amount.
    pub amount_minor: i64,
    pub memo: String,
    pub created_at_ms: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refund_of: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `detail` shown in docs/events.md (each ```json block, or its
    /// `detail`) is read as this schema and written back unchanged: the
    /// page cannot drift from the code.
    #[test]
    fn the_documented_examples_are_the_schema() {
        let page = include_str!("../../docs/events.md");
        let mut types = std::collections::BTreeSet::new();
        for block in page.split("```json\n").skip(1) {
            let json = block.split("\n```").next().expect("a closed block");
            let value: serde_json::Value = serde_json::from_str(json).expect("JSON");
            let detail = if value.get("schema_version").is_some() {
                value
            } else if value.get("version").is_some() {
                value["detail"].clone()
            } else {
                // An event pattern, not an event.
                continue;
            };
            let parsed: Detail =
                serde_json::from_value(detail.clone()).unwrap_or_else(|e| panic!("{e}: {detail}"));
            assert_eq!(serde_json::to_value(&parsed).unwrap(), detail);
            assert_eq!(parsed.schema_version, SCHEMA_VERSION);
            assert!(
                parsed
                    .id
                    .starts_with(&format!("{}/", parsed.body.type_name()))
            );
            types.insert(parsed.body.type_name());
        }
        assert_eq!(types.len(), 7, "an example of each type: {types:?}");
    }
}
