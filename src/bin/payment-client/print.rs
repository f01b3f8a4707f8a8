//! How payment-client shows what the service answered: one line of text
//! per thing for a person, or one JSON object per line with --json.

use payment::domain::format_money;
use payment::pb;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic_types::StatusExt as _;

pub fn time_text(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else {
        return "-".into();
    };
    let Ok(seconds) = u64::try_from(ts.seconds) else {
        return ts.to_string();
    };
    let at = std::time::UNIX_EPOCH
        + Duration::from_secs(seconds)
        + Duration::from_nanos(u64::try_from(ts.nanos).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

/// `NotFound` as gRPC spells it: `NOT_FOUND`.
pub fn screaming(code: &str) -> String {
    let mut out = String::new();
    for (i, c) in code.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// An enum value's name without its prefix: `HOLD_STATE_OPEN` is `OPEN`.
fn short_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_owned()
}

pub fn kind_name(kind: i32) -> String {
    pb::TransactionKind::try_from(kind)
        .map(|k| short_name(k.as_str_name(), "TRANSACTION_KIND_"))
        .unwrap_or_else(|_| kind.to_string())
}

fn hold_state_name(state: i32) -> String {
    pb::HoldState::try_from(state)
        .map(|s| short_name(s.as_str_name(), "HOLD_STATE_"))
        .unwrap_or_else(|_| state.to_string())
}

pub fn account_json(a: &pb::Account) -> Value {
    json!({
        "account_id": a.account_id,
        "display_name": a.display_name,
        "currency": a.currency,
        "balance": a.balance,
        "held": a.held,
        "available": a.available,
        "owner": a.owner,
        "created_at": time_text(a.created_at.as_ref()),
        "balance_shards": a.balance_shards,
    })
}

pub fn print_account(what: &str, a: &pb::Account, as_json: bool) {
    if as_json {
        println!("{}", account_json(a));
        return;
    }
    let name = if a.display_name.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.display_name)
    };
    let held = if a.held != 0 {
        format!(
            "  available {}  held {}",
            format_money(a.available, &a.currency),
            format_money(a.held, &a.currency)
        )
    } else {
        String::new()
    };
    let shards = if a.balance_shards > 1 {
        format!("  ({} balance shards)", a.balance_shards)
    } else {
        String::new()
    };
    println!(
        "{what} {}{name}: balance {}{held}  opened {}{shards}",
        a.account_id,
        format_money(a.balance, &a.currency),
        time_text(a.created_at.as_ref())
    );
}

pub fn transaction_json(tx: &pb::Transaction) -> Value {
    json!({
        "transaction_id": tx.transaction_id,
        "kind": kind_name(tx.kind),
        "sender_id": tx.sender_id,
        "recipient_id": tx.recipient_id,
        "amount": tx.amount,
        "currency": tx.currency,
        "memo": tx.memo,
        "created_at": time_text(tx.created_at.as_ref()),
        "refund_of": tx.refund_of,
    })
}

/// "paid 2.00 EUR from alice to bob  transaction T  at TIME", with what the
/// transaction is when it is not a payment.
pub fn transaction_text(verb: &str, tx: &pb::Transaction) -> String {
    let of = if tx.refund_of.is_empty() {
        String::new()
    } else {
        format!("  refund of {}", tx.refund_of)
    };
    format!(
        "{verb}: {} from {} to {}  transaction {}  at {}{of}",
        format_money(tx.amount, &tx.currency),
        tx.sender_id,
        tx.recipient_id,
        tx.transaction_id,
        time_text(tx.created_at.as_ref())
    )
}

pub fn hold_json(h: &pb::Hold) -> Value {
    json!({
        "hold_id": h.hold_id,
        "state": hold_state_name(h.state),
        "sender_id": h.sender_id,
        "recipient_id": h.recipient_id,
        "amount": h.amount,
        "currency": h.currency,
        "memo": h.memo,
        "created_at": time_text(h.created_at.as_ref()),
        "expires_at": time_text(h.expires_at.as_ref()),
        "captured_amount": h.captured_amount,
        "settled_at": time_text(h.settled_at.as_ref()),
        "idempotency_key": h.idempotency_key,
    })
}

/// "hold H: OPEN 25.00 EUR from alice to bob  expires TIME" and, once it is
/// settled, what became of it.
pub fn hold_text(h: &pb::Hold) -> String {
    let state = hold_state_name(h.state);
    let settled = match pb::HoldState::try_from(h.state) {
        Ok(pb::HoldState::Captured) => format!(
            "  captured {} at {}",
            format_money(h.captured_amount, &h.currency),
            time_text(h.settled_at.as_ref())
        ),
        Ok(pb::HoldState::Voided) => format!("  voided at {}", time_text(h.settled_at.as_ref())),
        _ => String::new(),
    };
    format!(
        "hold {}: {state} {} from {} to {}  expires {}{settled}",
        h.hold_id,
        format_money(h.amount, &h.currency),
        h.sender_id,
        h.recipient_id,
        time_text(h.expires_at.as_ref()),
    )
}

fn direction_name(direction: i32) -> String {
    pb::Direction::try_from(direction)
        .map(|d| short_name(d.as_str_name(), "DIRECTION_"))
        .unwrap_or_else(|_| direction.to_string())
}

/// A history entry as JSON (a watched entry adds its resume token).
pub fn entry_json(entry: &pb::GetTransactionHistoryResponse) -> Value {
    let tx = entry.transaction.clone().unwrap_or_default();
    json!({
        "sequence": entry.sequence,
        "shard": entry.shard,
        "direction": direction_name(entry.direction),
        "balance_after": entry.balance_after,
        "next_page_token": entry.next_page_token,
        "transaction": transaction_json(&tx),
    })
}

pub fn print_entry(entry: &pb::GetTransactionHistoryResponse, as_json: bool) {
    let tx = entry.transaction.clone().unwrap_or_default();
    let direction = direction_name(entry.direction);
    if as_json {
        println!("{}", entry_json(entry));
        return;
    }
    let (sign, other) = if direction == "DEBIT" {
        ("-", format!("to {}", tx.recipient_id))
    } else if tx.sender_id.is_empty() {
        ("+", "opening balance".to_owned())
    } else {
        ("+", format!("from {}", tx.sender_id))
    };
    let what = match pb::TransactionKind::try_from(tx.kind) {
        Ok(pb::TransactionKind::Capture) => format!("  capture of hold {}", tx.transaction_id),
        Ok(pb::TransactionKind::Refund) => format!("  refund of {}", tx.refund_of),
        _ => String::new(),
    };
    let memo = if tx.memo.is_empty() || tx.sender_id.is_empty() {
        String::new()
    } else {
        format!("  \"{}\"", tx.memo)
    };
    let position = if entry.shard > 0 {
        format!("{}:{}", entry.shard, entry.sequence)
    } else {
        entry.sequence.to_string()
    };
    println!(
        "#{position:<4} {}  {:<6} {sign}{:>16}  balance {:>16}  {other}{what}{memo}  [{}]",
        time_text(tx.created_at.as_ref()),
        direction,
        format_money(tx.amount, &tx.currency),
        format_money(entry.balance_after, &tx.currency),
        tx.transaction_id,
    );
}

/// What an error's details say, in order: the reason, its metadata (amounts
/// in `*_minor` formatted in the metadata's `currency`), and the fields a
/// BadRequest names.
pub struct ErrorReport {
    pub code: String,
    pub message: String,
    pub reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub violations: Vec<(String, String)>,
}

impl ErrorReport {
    pub fn of(status: &tonic::Status) -> ErrorReport {
        let details = status.get_error_details();
        let (reason, metadata) = match details.error_info() {
            Some(info) => (
                Some(info.reason.clone()),
                info.metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            None => (None, BTreeMap::new()),
        };
        let violations = details
            .bad_request()
            .map(|b| {
                b.field_violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect()
            })
            .unwrap_or_default();
        ErrorReport {
            code: screaming(&format!("{:?}", status.code())),
            message: status.message().to_owned(),
            reason,
            metadata,
            violations,
        }
    }

    /// The metadata for a person: `available_minor` = 1700 with currency
    /// EUR reads `available: 17.00 EUR`.
    fn readable_metadata(&self) -> Vec<(String, String)> {
        let currency = self.metadata.get("currency");
        self.metadata
            .iter()
            .filter(|(key, _)| !(currency.is_some() && key.as_str() == "currency"))
            .map(|(key, value)| {
                match (key.strip_suffix("_minor"), currency, value.parse::<i64>()) {
                    (Some(name), Some(currency), Ok(minor)) => {
                        (name.to_owned(), format_money(minor, currency))
                    }
                    _ => (key.clone(), value.clone()),
                }
            })
            .collect()
    }

    pub fn json(&self) -> Value {
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "reason": self.reason,
            "metadata": self.metadata,
            "field_violations": self.violations.iter()
                .map(|(field, description)| json!({"field": field, "description": description}))
                .collect::<Vec<_>>(),
        }})
    }

    /// `error: CODE: message`, then one indented line per detail.
    pub fn text(&self) -> String {
        let mut out = format!("error: {}: {}", self.code, self.message);
        if let Some(reason) = &self.reason {
            out.push_str(&format!("\n  reason: {reason}"));
        }
        for (key, value) in self.readable_metadata() {
            out.push_str(&format!("\n  {key}: {value}"));
        }
        for (field, description) in &self.violations {
            out.push_str(&format!("\n  field {field}: {description}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn an_error_shows_its_reason_amounts_in_currency_and_fields() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "INSUFFICIENT_FUNDS",
            "payment.v1",
            [
                ("account_id".to_owned(), "bob".to_owned()),
                ("currency".to_owned(), "EUR".to_owned()),
                ("available_minor".to_owned(), "1700".to_owned()),
                ("needed_minor".to_owned(), "100000".to_owned()),
            ],
        );
        details.add_bad_request_violation("amount", "is too much");
        let status = tonic::Status::with_error_details(
            tonic::Code::FailedPrecondition,
            "insufficient funds",
            details,
        );
        let report = ErrorReport::of(&status);
        assert_eq!(
            report.text(),
            "error: FAILED_PRECONDITION: insufficient funds\n  reason: INSUFFICIENT_FUNDS\n  \
             account_id: bob\n  available: 17.00 EUR\n  needed: 1000.00 EUR\n  field amount: is too much"
        );
        let json = report.json();
        assert_eq!(json["error"]["reason"], "INSUFFICIENT_FUNDS");
        assert_eq!(json["error"]["metadata"]["available_minor"], "1700");
        assert_eq!(json["error"]["field_violations"][0]["field"], "amount");
    }

    #[test]
    fn an_error_without_details_is_one_line() {
        let report = ErrorReport::of(&tonic::Status::unavailable("down"));
        assert_eq!(report.text(), "error: UNAVAILABLE: down");
        assert_eq!(report.json()["error"]["reason"], Value::Null);
    }

    #[test]
    fn minor_amounts_without_a_currency_stay_as_they_are() {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            "BALANCE_LIMIT",
            "payment.v1",
            [("limit_minor".to_owned(), "5".to_owned())],
        );
        let status =
            tonic::Status::with_error_details(tonic::Code::FailedPrecondition, "limit", details);
        assert!(ErrorReport::of(&status).text().ends_with("limit_minor: 5"));
    }
}
