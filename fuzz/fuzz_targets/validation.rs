//! Request validation: `NewAccount::parse`, `PaymentOrder::parse`,
//! `HistoryPage::parse`, `HoldOrder::parse`, `PaymentRef::parse`,
//! `RefundOrder::parse`, `ShardsOrder::parse`, `parse_amount_or_all`,
//! `parse_grpc_timeout`, `parse_money` / `format_money`, and each request
//! message of the contract decoded with prost and then validated the way the
//! service does.
//!
//! Input: an [`Input`] built by `arbitrary` (derive). Properties: no panic;
//! each parser accepts exactly what an independent statement of the
//! documented rules (proto/payment/v1 and the constants in src/domain/)
//! accepts, and what it accepts is within those limits; money round-trips
//! exactly through format_money and parse_money; a valid MakePayment is
//! under 1 KiB encoded, as src/guard.rs assumes.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use payment::domain::{
    self, AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR, BALANCE_SHARDS_MAX, HistoryPage, HoldOrder,
    ID_LEN_MAX, NewAccount, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PageToken, PaymentOrder, PaymentRef,
    RefundOrder, ShardsOrder, TEXT_BYTES_MAX, WATCH_SECONDS_MAX, WatchRequest, WatchToken,
    parse_amount_or_all,
};
use payment::pb;
use prost::Message;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
enum Input {
    NewAccount {
        account_id: String,
        display_name: String,
        currency: String,
        initial_balance: i64,
    },
    Payment {
        idempotency_key: String,
        sender_id: String,
        recipient_id: String,
        amount: i64,
        currency: String,
        memo: String,
    },
    History {
        account_id: String,
        page_size: i32,
        page_token: String,
    },
    GrpcTimeout(String),
    Money {
        currency: String,
        amount: i64,
        text: String,
    },
    /// A protobuf message: `kind` picks one method of the contract
    /// (`pb::METHODS`, in the order of the proto), whose request message
    /// `bytes` are decoded as.
    Message {
        kind: u8,
        bytes: RawBytes,
    },
}

/// Bytes as they come: all the rest of the input when last (the derive for
/// `Vec<u8>` spends two input bytes per byte).
#[derive(Debug)]
struct RawBytes(Vec<u8>);

impl<'a> Arbitrary<'a> for RawBytes {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        <&[u8]>::arbitrary(u).map(|b| RawBytes(b.to_vec()))
    }
    fn arbitrary_take_rest(u: arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(RawBytes(u.take_rest().to_vec()))
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::NewAccount {
            account_id,
            display_name,
            currency,
            initial_balance,
        } => new_account(&account_id, &display_name, &currency, initial_balance),
        Input::Payment {
            idempotency_key,
            sender_id,
            recipient_id,
            amount,
            currency,
            memo,
        } => payment(
            &idempotency_key,
            &sender_id,
            &recipient_id,
            amount,
            &currency,
            &memo,
        ),
        Input::History {
            account_id,
            page_size,
            page_token,
        } => history(&account_id, page_size, &page_token),
        Input::GrpcTimeout(value) => grpc_timeout(&value),
        Input::Money {
            currency,
            amount,
            text,
        } => money(&currency, amount, &text),
        Input::Message { kind, bytes } => message(kind, &bytes.0),
    }
});

// The documented rules, stated independently of src/domain/.

/// 1 to 128 characters of [A-Za-z0-9._:@-].
fn valid_id(s: &str) -> bool {
    (1..=ID_LEN_MAX).contains(&s.chars().count())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_@-".contains(&b))
}

/// At most 256 bytes of UTF-8, no control characters but newline and tab.
fn valid_text(s: &str) -> bool {
    s.len() <= TEXT_BYTES_MAX && s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')
}

/// Three upper-case ASCII letters.
fn valid_currency(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn new_account(account_id: &str, display_name: &str, currency: &str, balance: i64) {
    let parsed = NewAccount::parse(account_id, display_name, currency, balance, 0);
    let valid = valid_id(account_id)
        && valid_text(display_name)
        && valid_currency(currency)
        && (0..=BALANCE_MAX_MINOR).contains(&balance);
    assert_eq!(parsed.is_ok(), valid, "NewAccount::parse: {parsed:?}");
    match parsed {
        Ok(a) => {
            assert_eq!(a.account_id.as_str(), account_id);
            assert_eq!(a.display_name, display_name);
            assert_eq!(a.currency.as_str(), currency);
            assert_eq!(a.initial_balance_minor, balance);
        }
        Err(e) => assert!(
            ["account_id", "display_name", "currency", "initial_balance"].contains(&e.field),
            "{e}"
        ),
    }
}

fn payment(key: &str, sender: &str, recipient: &str, amount: i64, currency: &str, memo: &str) {
    let parsed = PaymentOrder::parse(key, sender, recipient, amount, currency, memo);
    let valid = valid_id(key)
        && valid_id(sender)
        && valid_id(recipient)
        && sender != recipient
        && (1..=AMOUNT_MAX_MINOR).contains(&amount)
        && valid_currency(currency)
        && valid_text(memo);
    assert_eq!(parsed.is_ok(), valid, "PaymentOrder::parse: {parsed:?}");
    match parsed {
        Ok(p) => {
            assert_eq!(p.idempotency_key.as_str(), key);
            assert_eq!(p.sender_id.as_str(), sender);
            assert_eq!(p.recipient_id.as_str(), recipient);
            assert_eq!(p.amount_minor, amount);
            assert_eq!(p.currency.as_str(), currency);
            assert_eq!(p.memo, memo);
        }
        Err(e) => assert!(
            [
                "idempotency_key",
                "sender_id",
                "recipient_id",
                "amount",
                "currency",
                "memo"
            ]
            .contains(&e.field),
            "{e}"
        ),
    }
}

fn history(account_id: &str, page_size: i32, page_token: &str) {
    let parsed = HistoryPage::parse(account_id, page_size, page_token);
    let token = match domain::AccountId::parse("account_id", account_id) {
        Ok(id) if !page_token.is_empty() => PageToken::decode(page_token, &id).ok(),
        _ => None,
    };
    let valid = valid_id(account_id)
        && (0..=PAGE_SIZE_MAX as i64).contains(&i64::from(page_size))
        && (page_token.is_empty() || token.is_some());
    assert_eq!(parsed.is_ok(), valid, "HistoryPage::parse: {parsed:?}");
    if let Ok(page) = parsed {
        assert_eq!(page.account_id.as_str(), account_id);
        let expected = if page_size == 0 {
            PAGE_SIZE_DEFAULT
        } else {
            page_size as u32
        };
        assert_eq!(page.page_size, expected);
        assert!((1..=PAGE_SIZE_MAX).contains(&page.page_size));
        assert_eq!(page.before_sequence, token.map(|t| t.before_sequence));
    }
}

/// gRPC over HTTP/2: TimeoutValue is 1 to 8 ASCII digits, TimeoutUnit one of
/// H M S m u n.
fn grpc_timeout(value: &str) {
    let parsed = domain::parse_grpc_timeout(value);
    let b = value.as_bytes();
    let expected = if (2..=9).contains(&b.len()) && b[..b.len() - 1].iter().all(u8::is_ascii_digit)
    {
        let n: u128 = value[..b.len() - 1].parse().expect("digits");
        let nanos_per_unit: Option<u128> = match b[b.len() - 1] {
            b'H' => Some(3_600_000_000_000),
            b'M' => Some(60_000_000_000),
            b'S' => Some(1_000_000_000),
            b'm' => Some(1_000_000),
            b'u' => Some(1_000),
            b'n' => Some(1),
            _ => None,
        };
        nanos_per_unit.map(|unit| n * unit)
    } else {
        None
    };
    assert_eq!(
        parsed.map(|d| d.as_nanos()),
        expected,
        "parse_grpc_timeout({value:?}) = {parsed:?}"
    );
    if let Some(d) = parsed {
        assert!(d <= Duration::from_secs(99_999_999 * 3600));
    }
}

fn money(currency: &str, amount: i64, text: &str) {
    let digits = domain::Currency::parse("currency", currency)
        .ok()
        .map(|c| c.minor_unit_digits());
    // format_money accepts any amount and any currency string.
    let formatted = domain::format_money(amount, currency);
    assert!(formatted.ends_with(&format!(" {currency}")));

    if let Some(digits) = digits {
        assert!(digits <= 4);
        // The round trip, for amounts in 0..=10^15.
        let x = amount.rem_euclid(AMOUNT_MAX_MINOR + 1);
        for x in [x, 0, AMOUNT_MAX_MINOR] {
            let formatted = domain::format_money(x, currency);
            let number = formatted
                .strip_suffix(&format!(" {currency}"))
                .expect("the currency suffix");
            assert_eq!(
                domain::parse_money(number, currency),
                Ok(x),
                "format_money({x}, {currency}) = {formatted:?}"
            );
        }
    }

    // parse_money on arbitrary text: accepted amounts are non-negative and
    // format back to the same value.
    match domain::parse_money(text, currency) {
        Ok(value) => {
            let digits = digits.expect("parse_money accepted an invalid currency");
            assert!(value >= 0, "parse_money({text:?}) = {value}");
            let formatted = domain::format_money(value, currency);
            let number = formatted.strip_suffix(&format!(" {currency}")).unwrap();
            assert_eq!(domain::parse_money(number, currency), Ok(value));
            // Same value as the digits say, computed in u128.
            let t = text.trim();
            let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
            let expected = whole.parse::<u128>().unwrap() * 10u128.pow(digits)
                + format!("{fraction:0<width$}", width = digits as usize)
                    .parse::<u128>()
                    .unwrap_or(0);
            assert_eq!(value as u128, expected, "parse_money({text:?}, {currency})");
        }
        Err(_) => {
            if let Some(digits) = digits {
                // Reject only what is not a plain decimal (digits on both
                // sides of at most one point, ASCII whitespace around) with
                // at most the currency's decimals, or what does not fit an
                // i64 (testdata/money-vectors.json).
                let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
                let (whole, fraction) = match t.split_once('.') {
                    Some((whole, fraction)) => (whole, Some(fraction)),
                    None => (t, None),
                };
                let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let plain = digits_only(whole)
                    && fraction.is_none_or(digits_only)
                    && fraction.is_none_or(|f| f.len() <= digits as usize);
                let fraction = fraction.unwrap_or("");
                if plain {
                    let value = whole.parse::<u128>().ok().and_then(|w| {
                        w.checked_mul(10u128.pow(digits))?.checked_add(
                            format!("{fraction:0<width$}", width = digits as usize)
                                .parse::<u128>()
                                .unwrap_or(0),
                        )
                    });
                    assert!(
                        value.is_none_or(|v| v > i64::MAX as u128),
                        "parse_money({text:?}, {currency}) rejected {value:?}"
                    );
                }
            }
        }
    }
}

/// A hold lasts one minute to 30 days (proto: AuthorizePaymentRequest).
fn valid_expiry(seconds: i64) -> bool {
    (60..=30 * 24 * 3600).contains(&seconds)
}

/// A PaymentRef names a payment one way: by transaction_id alone, or by
/// sender_id with idempotency_key (proto: PaymentRef).
fn valid_ref(r: &pb::PaymentRef) -> bool {
    if r.transaction_id.is_empty() {
        valid_id(&r.sender_id) && valid_id(&r.idempotency_key)
    } else {
        r.sender_id.is_empty() && r.idempotency_key.is_empty() && valid_id(&r.transaction_id)
    }
}

/// The reference as the service parses it (src/service.rs `payment_ref`).
fn parse_ref(r: &pb::PaymentRef) -> Result<PaymentRef, domain::InvalidField> {
    PaymentRef::parse(
        ["ref.transaction_id", "ref.sender_id", "ref.idempotency_key"],
        &r.transaction_id,
        &r.sender_id,
        &r.idempotency_key,
    )
}

/// A present, valid reference: parsed exactly when the rules say so.
fn reference(r: Option<&pb::PaymentRef>) -> bool {
    let Some(r) = r else { return false };
    let parsed = parse_ref(r);
    assert_eq!(
        parsed.is_ok(),
        valid_ref(r),
        "PaymentRef::parse({r:?}): {parsed:?}"
    );
    parsed.is_ok()
}

/// 0 (all of it) or 1 to 10^15 (proto: CaptureHoldRequest, RefundPaymentRequest).
fn amount_or_all(amount: i64) -> bool {
    let parsed = parse_amount_or_all(amount);
    let valid = (0..=AMOUNT_MAX_MINOR).contains(&amount);
    assert_eq!(
        parsed.is_ok(),
        valid,
        "parse_amount_or_all({amount}): {parsed:?}"
    );
    valid
}

fn message(kind: u8, bytes: &[u8]) {
    // Every method of the contract, so that a method added to the proto
    // cannot go unfuzzed: its first input fails here until it has a case.
    let method = &pb::METHODS[usize::from(kind) % pb::METHODS.len()];
    match method.name {
        "AddAccount" => {
            let Ok(m) = pb::AddAccountRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            new_account(
                &m.account_id,
                &m.display_name,
                &m.currency,
                m.initial_balance,
            );
        }
        "MakePayment" => {
            let Ok(m) = pb::MakePaymentRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            payment(
                &m.idempotency_key,
                &m.sender_id,
                &m.recipient_id,
                m.amount,
                &m.currency,
                &m.memo,
            );
            if PaymentOrder::parse(
                &m.idempotency_key,
                &m.sender_id,
                &m.recipient_id,
                m.amount,
                &m.currency,
                &m.memo,
            )
            .is_ok()
            {
                // src/guard.rs: "The largest valid request ... is under 1 KiB."
                assert!(m.encoded_len() + 5 < 1024, "{} bytes", m.encoded_len());
            }
        }
        "GetAccountBalance" => {
            let Ok(m) = pb::GetAccountBalanceRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            let parsed = domain::AccountId::parse("account_id", &m.account_id);
            assert_eq!(parsed.is_ok(), valid_id(&m.account_id));
        }
        "GetTransactionHistory" => {
            let Ok(m) = pb::GetTransactionHistoryRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            history(&m.account_id, m.page_size, &m.page_token);
        }
        "AuthorizePayment" => {
            let Ok(m) = pb::AuthorizePaymentRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            payment(
                &m.idempotency_key,
                &m.sender_id,
                &m.recipient_id,
                m.amount,
                &m.currency,
                &m.memo,
            );
            let order = PaymentOrder::parse(
                &m.idempotency_key,
                &m.sender_id,
                &m.recipient_id,
                m.amount,
                &m.currency,
                &m.memo,
            );
            if let Ok(order) = order {
                let parsed = HoldOrder::parse(order, m.expires_in_seconds);
                assert_eq!(
                    parsed.is_ok(),
                    valid_expiry(m.expires_in_seconds),
                    "HoldOrder::parse: {parsed:?}"
                );
            }
        }
        "CaptureHold" => {
            let Ok(m) = pb::CaptureHoldRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            reference(m.hold.as_ref());
            amount_or_all(m.amount);
        }
        "VoidHold" => {
            let Ok(m) = pb::VoidHoldRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            reference(m.hold.as_ref());
        }
        "RefundPayment" => {
            let Ok(m) = pb::RefundPaymentRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            if reference(m.payment.as_ref()) {
                let payment = parse_ref(m.payment.as_ref().expect("checked")).expect("checked");
                let parsed = RefundOrder::parse(&m.idempotency_key, payment, m.amount, &m.memo);
                let valid =
                    valid_id(&m.idempotency_key) && amount_or_all(m.amount) && valid_text(&m.memo);
                assert_eq!(parsed.is_ok(), valid, "RefundOrder::parse: {parsed:?}");
            }
        }
        "GetPayment" => {
            let Ok(m) = pb::GetPaymentRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            reference(m.payment.as_ref());
        }
        "ListAccounts" => {
            // ListAccounts: who may list whose accounts is the service's
            // rule (tests/api cover it); here, the message only.
            let Ok(m) = pb::ListAccountsRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
        }
        "SetBalanceShards" => {
            // SetBalanceShards: that only an admin may, and never fewer than
            // the account has, are the service's and the ledger's rules
            // (tests/api cover them); here, the request's fields.
            let Ok(m) = pb::SetBalanceShardsRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            shards_order(&m.account_id, m.balance_shards);
        }
        "WatchAccount" => {
            let Ok(m) = pb::WatchAccountRequest::decode(bytes) else {
                return;
            };
            round_trips(&m);
            watch(&m.account_id, &m.resume_token, m.max_seconds);
        }
        other => panic!(
            "{other} ({}) is a method of the contract with no case in this oracle: add one",
            method.input_type
        ),
    }
}

/// An account id, a resume token of that account's watch (or none), and 0
/// to WATCH_SECONDS_MAX seconds (proto: WatchAccountRequest).
fn watch(account_id: &str, resume_token: &str, max_seconds: i32) {
    let parsed = WatchRequest::parse(account_id, resume_token, max_seconds);
    let token = match domain::AccountId::parse("account_id", account_id) {
        Ok(id) if !resume_token.is_empty() => WatchToken::decode(resume_token, &id).ok(),
        _ => None,
    };
    let valid = valid_id(account_id)
        && (0..=i64::from(WATCH_SECONDS_MAX)).contains(&i64::from(max_seconds))
        && (resume_token.is_empty() || token.is_some());
    assert_eq!(parsed.is_ok(), valid, "WatchRequest::parse: {parsed:?}");
    if let Ok(request) = parsed {
        assert_eq!(request.account_id.as_str(), account_id);
        assert_eq!(request.resume, token.map(|t| t.next));
        assert_eq!(
            request.max_seconds,
            u32::try_from(max_seconds).ok().filter(|&s| s > 0)
        );
        if let Some(cursors) = &request.resume {
            assert!((1..=BALANCE_SHARDS_MAX as usize).contains(&cursors.len()));
            assert!(cursors.iter().all(|&c| c >= 1));
        }
    }
}

/// An account id, and 1 to 64 balance shards (proto: SetBalanceShardsRequest).
fn shards_order(account_id: &str, balance_shards: i32) {
    let parsed = ShardsOrder::parse(account_id, balance_shards);
    let valid = valid_id(account_id)
        && (1..=i64::from(BALANCE_SHARDS_MAX)).contains(&i64::from(balance_shards));
    assert_eq!(parsed.is_ok(), valid, "ShardsOrder::parse: {parsed:?}");
    match parsed {
        Ok(order) => {
            assert_eq!(order.account_id.as_str(), account_id);
            assert_eq!(i64::from(order.balance_shards), i64::from(balance_shards));
        }
        Err(e) => assert!(["account_id", "balance_shards"].contains(&e.field), "{e}"),
    }
}

fn round_trips<M: Message + Default + PartialEq + std::fmt::Debug>(m: &M) {
    let again = M::decode(m.encode_to_vec().as_slice()).expect("re-encoded message decodes");
    assert_eq!(&again, m);
}
