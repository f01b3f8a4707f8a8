//! What a caller asks the ledger to do, validated: open an account, set its
//! shards, pay, hold, refund, and which payment a call is about.

use super::fields::{InvalidField, parse_id, parse_text};
use super::ids::{AccountId, IdempotencyKey};
use super::limits::{
    BALANCE_MAX_MINOR, BALANCE_SHARDS_MAX, HOLD_SECONDS_MAX, HOLD_SECONDS_MIN,
    shard_balance_max_minor,
};
use super::money::{Currency, parse_amount, parse_amount_or_all};

/// A validated request to open an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub account_id: AccountId,
    pub display_name: String,
    pub currency: Currency,
    pub initial_balance_minor: i64,
    /// 1 for an ordinary account, up to [`BALANCE_SHARDS_MAX`].
    pub balance_shards: u32,
}

impl NewAccount {
    pub fn parse(
        account_id: &str,
        display_name: &str,
        currency: &str,
        initial_balance_minor: i64,
        balance_shards: i32,
    ) -> Result<Self, InvalidField> {
        let account_id = AccountId::parse("account_id", account_id)?;
        let display_name = parse_text("display_name", display_name)?;
        let currency = Currency::parse("currency", currency)?;
        let balance_shards = match u32::try_from(balance_shards) {
            Ok(0) => 1,
            Ok(n) if n <= BALANCE_SHARDS_MAX => n,
            _ => {
                return Err(InvalidField::new(
                    "balance_shards",
                    format!(
                        "is {balance_shards}; it must be between 0 (meaning 1) and {BALANCE_SHARDS_MAX}"
                    ),
                ));
            }
        };
        // The shards share the balance limit equally, so that their sum can
        // never pass it; the opening balance lands in shard 0.
        let limit = shard_balance_max_minor(balance_shards);
        if !(0..=limit).contains(&initial_balance_minor) {
            return Err(InvalidField::new(
                "initial_balance",
                format!(
                    "is {initial_balance_minor}; it must be between 0 and {limit} minor units{}",
                    if balance_shards > 1 {
                        format!(
                            " (the balance limit of {BALANCE_MAX_MINOR} shared by {balance_shards} shards)"
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        Ok(Self {
            account_id,
            display_name,
            currency,
            initial_balance_minor,
            balance_shards,
        })
    }
}

/// A validated SetBalanceShards: the account and the count it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardsOrder {
    pub account_id: AccountId,
    /// 1 to [`BALANCE_SHARDS_MAX`].
    pub balance_shards: u32,
}

impl ShardsOrder {
    pub fn parse(account_id: &str, balance_shards: i32) -> Result<Self, InvalidField> {
        let account_id = AccountId::parse("account_id", account_id)?;
        let balance_shards = match u32::try_from(balance_shards) {
            Ok(n) if (1..=BALANCE_SHARDS_MAX).contains(&n) => n,
            _ => {
                return Err(InvalidField::new(
                    "balance_shards",
                    format!("is {balance_shards}; it must be between 1 and {BALANCE_SHARDS_MAX}"),
                ));
            }
        };
        Ok(Self {
            account_id,
            balance_shards,
        })
    }
}

/// A validated request to move money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOrder {
    pub idempotency_key: IdempotencyKey,
    pub sender_id: AccountId,
    pub recipient_id: AccountId,
    pub amount_minor: i64,
    pub currency: Currency,
    pub memo: String,
}

impl PaymentOrder {
    pub fn parse(
        idempotency_key: &str,
        sender_id: &str,
        recipient_id: &str,
        amount_minor: i64,
        currency: &str,
        memo: &str,
    ) -> Result<Self, InvalidField> {
        let idempotency_key = IdempotencyKey::parse(idempotency_key)?;
        let sender_id = AccountId::parse("sender_id", sender_id)?;
        let recipient_id = AccountId::parse("recipient_id", recipient_id)?;
        if sender_id == recipient_id {
            return Err(InvalidField::new(
                "recipient_id",
                "equals sender_id; an account cannot pay itself",
            ));
        }
        let amount_minor = parse_amount(amount_minor)?;
        let currency = Currency::parse("currency", currency)?;
        let memo = parse_text("memo", memo)?;
        Ok(Self {
            idempotency_key,
            sender_id,
            recipient_id,
            amount_minor,
            currency,
            memo,
        })
    }
}

/// Which payment, hold or refund a call is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentRef {
    /// By the transaction id the service assigned (a hold's id for a hold).
    Id(String),
    /// By the paying account and the idempotency key of the call.
    Key {
        sender_id: AccountId,
        idempotency_key: IdempotencyKey,
    },
}

impl PaymentRef {
    /// `fields` names the three request fields (transaction_id, sender_id,
    /// idempotency_key) as the caller sees them, e.g. "hold.sender_id".
    pub fn parse(
        fields: [&'static str; 3],
        transaction_id: &str,
        sender_id: &str,
        idempotency_key: &str,
    ) -> Result<Self, InvalidField> {
        let [id_field, sender_field, key_field] = fields;
        if !transaction_id.is_empty() {
            if !sender_id.is_empty() || !idempotency_key.is_empty() {
                return Err(InvalidField::new(
                    id_field,
                    format!(
                        "is set together with {sender_field}/{key_field}; name the payment one way only"
                    ),
                ));
            }
            return parse_id(id_field, transaction_id).map(Self::Id);
        }
        if sender_id.is_empty() && idempotency_key.is_empty() {
            return Err(InvalidField::new(
                id_field,
                format!("is required, or else {sender_field} with {key_field}"),
            ));
        }
        Ok(Self::Key {
            sender_id: AccountId::parse(sender_field, sender_id)?,
            idempotency_key: IdempotencyKey::parse_field(key_field, idempotency_key)?,
        })
    }
}

/// A validated AuthorizePayment: a payment order and how long it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldOrder {
    pub order: PaymentOrder,
    pub expires_in_ms: i64,
}

impl HoldOrder {
    pub fn parse(order: PaymentOrder, expires_in_seconds: i64) -> Result<Self, InvalidField> {
        if !(HOLD_SECONDS_MIN..=HOLD_SECONDS_MAX).contains(&expires_in_seconds) {
            return Err(InvalidField::new(
                "expires_in_seconds",
                format!(
                    "is {expires_in_seconds}; a hold lasts {HOLD_SECONDS_MIN} seconds (one minute) to {HOLD_SECONDS_MAX} (30 days)"
                ),
            ));
        }
        Ok(Self {
            order,
            expires_in_ms: expires_in_seconds * 1000,
        })
    }
}

/// A validated RefundPayment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOrder {
    pub idempotency_key: IdempotencyKey,
    pub payment: PaymentRef,
    /// None: all of what is left unrefunded.
    pub amount_minor: Option<i64>,
    pub memo: String,
}

impl RefundOrder {
    pub fn parse(
        idempotency_key: &str,
        payment: PaymentRef,
        amount_minor: i64,
        memo: &str,
    ) -> Result<Self, InvalidField> {
        Ok(Self {
            idempotency_key: IdempotencyKey::parse(idempotency_key)?,
            payment,
            amount_minor: parse_amount_or_all(amount_minor)?,
            memo: parse_text("memo", memo)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_accounts_check_every_field() {
        assert!(NewAccount::parse("a", "Alice", "EUR", 0, 0).is_ok());
        let field = |r: Result<NewAccount, InvalidField>| r.unwrap_err().field;
        assert_eq!(
            NewAccount::parse("a", "", "EUR", 0, 0)
                .unwrap()
                .balance_shards,
            1
        );
        assert_eq!(
            NewAccount::parse("a", "", "EUR", 0, 64)
                .unwrap()
                .balance_shards,
            64
        );
        assert_eq!(
            field(NewAccount::parse("a", "", "EUR", 0, 65)),
            "balance_shards"
        );
        assert_eq!(
            field(NewAccount::parse("a", "", "EUR", 0, -1)),
            "balance_shards"
        );
        let shard_max = shard_balance_max_minor(4);
        assert_eq!(shard_max * 4, BALANCE_MAX_MINOR);
        assert!(NewAccount::parse("a", "", "EUR", shard_max, 4).is_ok());
        assert_eq!(
            field(NewAccount::parse("a", "", "EUR", shard_max + 1, 4)),
            "initial_balance"
        );
        assert!(NewAccount::parse("a", "", "EUR", BALANCE_MAX_MINOR, 0).is_ok());
        assert_eq!(field(NewAccount::parse("", "x", "EUR", 0, 0)), "account_id");
        assert_eq!(
            field(NewAccount::parse("a", &"x".repeat(257), "EUR", 0, 0)),
            "display_name"
        );
        assert_eq!(
            field(NewAccount::parse("a", "bell\u{7}", "EUR", 0, 0)),
            "display_name"
        );
        assert_eq!(field(NewAccount::parse("a", "x", "eur", 0, 0)), "currency");
        assert_eq!(
            field(NewAccount::parse("a", "x", "EUR", -1, 0)),
            "initial_balance"
        );
        assert_eq!(
            field(NewAccount::parse("a", "x", "EUR", BALANCE_MAX_MINOR + 1, 0)),
            "initial_balance"
        );
        // 256 bytes of multi-byte text is at the limit, one more byte is past it.
        assert!(NewAccount::parse("a", &"é".repeat(128), "EUR", 0, 0).is_ok());
        assert!(NewAccount::parse("a", &format!("{}x", "é".repeat(128)), "EUR", 0, 0).is_err());
    }

    #[test]
    fn payment_orders_check_every_field() {
        assert!(PaymentOrder::parse("k", "a", "b", 1, "EUR", "rent").is_ok());
        let field = |r: Result<PaymentOrder, InvalidField>| r.unwrap_err().field;
        assert_eq!(
            field(PaymentOrder::parse("", "a", "b", 1, "EUR", "")),
            "idempotency_key"
        );
        assert_eq!(
            field(PaymentOrder::parse("k", "", "b", 1, "EUR", "")),
            "sender_id"
        );
        assert_eq!(
            field(PaymentOrder::parse("k", "a", "", 1, "EUR", "")),
            "recipient_id"
        );
        assert_eq!(
            field(PaymentOrder::parse("k", "a", "a", 1, "EUR", "")),
            "recipient_id"
        );
        assert_eq!(
            field(PaymentOrder::parse("k", "a", "b", 0, "EUR", "")),
            "amount"
        );
        assert_eq!(
            field(PaymentOrder::parse("k", "a", "b", -5, "EUR", "")),
            "amount"
        );
        assert_eq!(
            field(PaymentOrder::parse("k", "a", "b", 1, "", "")),
            "currency"
        );
        assert_eq!(
            field(PaymentOrder::parse(
                "k",
                "a",
                "b",
                1,
                "EUR",
                &"m".repeat(257)
            )),
            "memo"
        );
    }

    #[test]
    fn a_payment_is_named_one_way_only() {
        const F: [&str; 3] = ["p.transaction_id", "p.sender_id", "p.idempotency_key"];
        assert_eq!(
            PaymentRef::parse(F, "t-1", "", ""),
            Ok(PaymentRef::Id("t-1".into()))
        );
        assert!(matches!(
            PaymentRef::parse(F, "", "alice", "k1"),
            Ok(PaymentRef::Key { .. })
        ));
        assert_eq!(
            PaymentRef::parse(F, "t", "alice", "").unwrap_err().field,
            "p.transaction_id"
        );
        assert_eq!(
            PaymentRef::parse(F, "", "", "").unwrap_err().field,
            "p.transaction_id"
        );
        assert_eq!(
            PaymentRef::parse(F, "", "alice", "").unwrap_err().field,
            "p.idempotency_key"
        );
        assert_eq!(
            PaymentRef::parse(F, "", "", "k").unwrap_err().field,
            "p.sender_id"
        );
        assert_eq!(
            PaymentRef::parse(F, "a b", "", "").unwrap_err().field,
            "p.transaction_id"
        );
    }

    #[test]
    fn holds_last_a_minute_to_thirty_days() {
        let order = PaymentOrder::parse("k", "a", "b", 5, "EUR", "").unwrap();
        for bad in [0, 59, HOLD_SECONDS_MAX + 1, -1, i64::MAX] {
            let err = HoldOrder::parse(order.clone(), bad).unwrap_err();
            assert_eq!(err.field, "expires_in_seconds");
        }
        assert_eq!(
            HoldOrder::parse(order.clone(), 60).unwrap().expires_in_ms,
            60_000
        );
        assert!(HoldOrder::parse(order, HOLD_SECONDS_MAX).is_ok());
    }
}
