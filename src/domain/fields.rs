//! What a request field that failed validation looks like, and the checks
//! every kind of field shares: identifiers and free text.

use super::limits::{ID_LEN_MAX, TEXT_BYTES_MAX};

/// A request field that failed validation: the field's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: &'static str,
    pub reason: String,
}

impl InvalidField {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// An identifier: 1 to [`ID_LEN_MAX`] characters of `[A-Za-z0-9._:@-]`.
pub(super) fn parse_id(field: &'static str, value: &str) -> Result<String, InvalidField> {
    if value.is_empty() {
        return Err(InvalidField::new(field, "is required"));
    }
    let len = value.chars().count();
    if len > ID_LEN_MAX {
        return Err(InvalidField::new(
            field,
            format!("is {len} characters long; at most {ID_LEN_MAX} are allowed"),
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')))
    {
        return Err(InvalidField::new(
            field,
            format!("contains {bad:?}; only letters, digits and . _ : @ - are allowed"),
        ));
    }
    Ok(value.to_owned())
}

/// Free text (a display name, a memo): at most [`TEXT_BYTES_MAX`] bytes,
/// printable apart from newlines and tabs.
pub(super) fn parse_text(field: &'static str, value: &str) -> Result<String, InvalidField> {
    if value.len() > TEXT_BYTES_MAX {
        return Err(InvalidField::new(
            field,
            format!(
                "is {} bytes long; at most {TEXT_BYTES_MAX} bytes are allowed",
                value.len()
            ),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(InvalidField::new(
            field,
            "contains control characters; only printable text, newlines and tabs are allowed",
        ));
    }
    Ok(value.to_owned())
}

/// The start of a value quoted in a message, so that a huge value does not
/// make a huge message.
pub(super) fn truncate_for_message(value: &str) -> String {
    value.chars().take(16).collect()
}
