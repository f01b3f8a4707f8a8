//! The identifiers callers choose: accounts and idempotency keys.

use super::fields::{InvalidField, parse_id};
use std::fmt;

/// An account's identifier: 1 to [`ID_LEN_MAX`](super::ID_LEN_MAX)
/// characters of `[A-Za-z0-9._:@-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidField> {
        parse_id(field, value).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A caller-chosen key that makes a payment happen at most once per sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        Self::parse_field("idempotency_key", value)
    }
    /// As [`parse`](Self::parse), for a request field with another name.
    pub(super) fn parse_field(field: &'static str, value: &str) -> Result<Self, InvalidField> {
        parse_id(field, value).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who makes a call, as its token said: the subject (`sub`, stored as the
/// owner of the accounts it opens) and whether it holds the admin scope.
/// The ledger acts for it: only an account's owner, or an admin, may pay
/// from the account, settle its holds or see its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub sub: String,
    pub admin: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ID_LEN_MAX;

    #[test]
    fn account_ids_accept_the_allowed_alphabet_up_to_the_limit() {
        assert!(AccountId::parse("account_id", "alice.b_c:d@e-f9").is_ok());
        assert!(AccountId::parse("account_id", &"a".repeat(ID_LEN_MAX)).is_ok());
        let too_long = AccountId::parse("account_id", &"a".repeat(ID_LEN_MAX + 1)).unwrap_err();
        assert_eq!(too_long.field, "account_id");
        assert!(too_long.reason.contains("129 characters"));
        assert_eq!(
            AccountId::parse("sender_id", "").unwrap_err().to_string(),
            "sender_id: is required"
        );
        for bad in ["a b", "a/b", "ä", "a#b", "a|b", "a\u{0}"] {
            assert!(AccountId::parse("account_id", bad).is_err(), "{bad:?}");
        }
    }
}
