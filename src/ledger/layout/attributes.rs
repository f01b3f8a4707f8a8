//! Attribute values: the item type, and building and reading the string and
//! number attributes every codec uses.

use crate::ledger::LedgerError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub(in crate::ledger) type Item = HashMap<String, AttributeValue>;

pub(in crate::ledger) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(in crate::ledger) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(in crate::ledger) fn get_s(item: &Item, name: &str) -> Result<String, LedgerError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(LedgerError::Internal(format!(
            "stored item lacks string attribute {name}"
        ))),
    }
}

pub(in crate::ledger) fn get_n<T: std::str::FromStr>(
    item: &Item,
    name: &str,
) -> Result<T, LedgerError> {
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
pub(in crate::ledger) fn get_n_or<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    default: T,
) -> Result<T, LedgerError> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(default)
    }
}
