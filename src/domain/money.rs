//! Money: currencies, amounts in minor units, and decimal text, all in
//! integer arithmetic.

use super::fields::{InvalidField, truncate_for_message};
use super::limits::AMOUNT_MAX_MINOR;
use std::fmt;

/// The ISO 4217 currencies whose minor unit is not a hundredth, with the
/// digits it has. testdata/money-vectors.json lists the same, and the web
/// app's table is checked against it too.
const MINOR_UNIT_DIGITS: [(&str, u32); 26] = [
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("UYI", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    ("CLF", 4),
    ("UYW", 4),
];

/// An ISO 4217 alphabetic code: exactly three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidField> {
        match value.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => Ok(Self([*a, *b, *c])),
            _ => Err(InvalidField::new(
                field,
                format!(
                    "{:?} is not an ISO 4217 code; expected three upper-case letters such as \"EUR\"",
                    truncate_for_message(value)
                ),
            )),
        }
    }
    pub fn as_str(&self) -> &str {
        // The constructor admits ASCII letters only.
        std::str::from_utf8(&self.0).expect("currency is ASCII")
    }
    /// Digits after the decimal point of the currency's minor unit (ISO 4217).
    /// Currencies not in [`MINOR_UNIT_DIGITS`] have two, which is what most have.
    pub fn minor_unit_digits(&self) -> u32 {
        MINOR_UNIT_DIGITS
            .iter()
            .find(|(code, _)| *code == self.as_str())
            .map_or(2, |&(_, digits)| digits)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A positive amount of money in minor units, at most [`AMOUNT_MAX_MINOR`].
pub fn parse_amount(value: i64) -> Result<i64, InvalidField> {
    if !(1..=AMOUNT_MAX_MINOR).contains(&value) {
        return Err(InvalidField::new(
            "amount",
            format!("is {value}; it must be between 1 and {AMOUNT_MAX_MINOR} minor units"),
        ));
    }
    Ok(value)
}

/// An amount where 0 means "all of it": None for 0, else a valid amount.
pub fn parse_amount_or_all(value: i64) -> Result<Option<i64>, InvalidField> {
    if value == 0 {
        return Ok(None);
    }
    parse_amount(value).map(Some).map_err(|_| {
        InvalidField::new(
            "amount",
            format!(
                "is {value}; it must be 0 (meaning all of it) or between 1 and {AMOUNT_MAX_MINOR} minor units"
            ),
        )
    })
}

/// Formats minor units as a decimal in the currency, e.g. `1234` EUR as
/// `12.34 EUR`, with integer arithmetic only.
pub fn format_money(amount_minor: i64, currency: &str) -> String {
    let digits = Currency::parse("currency", currency)
        .map(|c| c.minor_unit_digits())
        .unwrap_or(2);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let scale = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / scale,
        abs % scale,
        width = digits as usize
    )
}

/// Parses a decimal amount such as `12.34` in the currency's minor units
/// (`1234` for EUR), exactly: no floating point, and never a guess. The
/// rule, which the web app follows too (testdata/money-vectors.json): ASCII
/// digits, optionally a `.` and one to as many digits as the currency has,
/// surrounding ASCII whitespace ignored. No sign, no lone point (`.5`,
/// `7.`: a lost digit?), and no more fraction digits than the currency
/// has, not even zeros (`1.500` EUR is one thousand five hundred in many
/// locales).
pub fn parse_money(text: &str, currency: &str) -> Result<i64, String> {
    let digits = Currency::parse("currency", currency)
        .map_err(|e| e.to_string())?
        .minor_unit_digits() as usize;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only(whole) || fraction.is_some_and(|f| !digits_only(f)) {
        return Err(format!(
            "{text:?} is not a decimal amount such as 12.34 (digits on both sides of one point)"
        ));
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > digits {
        return Err(format!(
            "{text:?} has {} decimals; {currency} has {digits}",
            fraction.len()
        ));
    }
    let too_large = || format!("{text:?} is too large");
    let scale = 10i64.pow(digits as u32);
    let whole: i64 = whole.parse().map_err(|_| too_large())?;
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<digits$}")
            .parse()
            .map_err(|_| too_large())?
    };
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_upper_case_letters() {
        assert_eq!(Currency::parse("currency", "EUR").unwrap().as_str(), "EUR");
        for bad in ["", "eur", "EU", "EURO", "E1R", "ÄUR"] {
            let err = Currency::parse("currency", bad).unwrap_err();
            assert_eq!(err.field, "currency");
        }
        assert_eq!(Currency::parse("c", "JPY").unwrap().minor_unit_digits(), 0);
        assert_eq!(Currency::parse("c", "KWD").unwrap().minor_unit_digits(), 3);
    }

    #[test]
    fn amounts_are_positive_and_bounded() {
        assert_eq!(parse_amount(1), Ok(1));
        assert_eq!(parse_amount(AMOUNT_MAX_MINOR), Ok(AMOUNT_MAX_MINOR));
        for bad in [0, -1, i64::MIN, AMOUNT_MAX_MINOR + 1, i64::MAX] {
            assert_eq!(parse_amount(bad).unwrap_err().field, "amount");
        }
    }

    #[test]
    fn zero_means_all_and_negative_is_refused() {
        assert_eq!(parse_amount_or_all(0), Ok(None));
        assert_eq!(parse_amount_or_all(7), Ok(Some(7)));
        assert_eq!(parse_amount_or_all(-1).unwrap_err().field, "amount");
        assert!(parse_amount_or_all(AMOUNT_MAX_MINOR + 1).is_err());
    }

    #[test]
    fn money_formats_and_parses_exactly() {
        assert_eq!(format_money(1234, "EUR"), "12.34 EUR");
        assert_eq!(format_money(i64::MIN, "EUR"), "-92233720368547758.08 EUR");
        assert_eq!(parse_money("12.34", "EUR"), Ok(1234));
        // 0.1 + 0.2 style float errors cannot happen: every digit is exact.
        assert_eq!(parse_money("0.30", "EUR"), Ok(30));
        for bad in [
            "",
            "1.234",
            "-1",
            "1,5",
            "1e3",
            ".5",
            "7.",
            "99999999999999999999",
        ] {
            assert!(parse_money(bad, "EUR").is_err(), "{bad}");
        }
        assert!(parse_money("1.5", "JPY").is_err());
        assert!(parse_money("5.00", "JPY").is_err());
    }

    /// testdata/money-vectors.json, which the web app's tests read too.
    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../testdata/money-vectors.json"))
            .expect("money vectors are JSON")
    }

    fn minor(value: &serde_json::Value) -> i64 {
        let text = value.as_str().expect("minor units are strings");
        text.parse().expect("minor units fit an i64")
    }

    #[test]
    fn every_exponent_either_side_knows_is_in_the_shared_vectors() {
        let vectors = vectors();
        let listed = vectors["exponents"].as_object().expect("exponents");
        for (code, digits) in listed {
            let currency = Currency::parse("currency", code).expect(code);
            assert_eq!(
                u64::from(currency.minor_unit_digits()),
                digits.as_u64().expect("digits"),
                "{code}"
            );
        }
        for (code, digits) in MINOR_UNIT_DIGITS {
            assert_eq!(
                listed.get(code).and_then(|d| d.as_u64()),
                Some(u64::from(digits)),
                "{code} is missing from or differs in the vectors"
            );
        }
    }

    #[test]
    fn decimal_amounts_follow_the_shared_vectors() {
        let vectors = vectors();
        for case in vectors["parse"].as_array().expect("parse vectors") {
            let text = case["text"].as_str().expect("text");
            let currency = case["currency"].as_str().expect("currency");
            let parsed = parse_money(text, currency);
            if case.get("refused").is_some() {
                assert!(parsed.is_err(), "{text:?} {currency}: {parsed:?}, {case}");
            } else {
                assert_eq!(parsed, Ok(minor(&case["minor"])), "{text:?} {currency}");
                // What the service prints reads back the same.
                let shown = format_money(minor(&case["minor"]), currency);
                let number = shown.strip_suffix(&format!(" {currency}")).expect("suffix");
                assert_eq!(parse_money(number, currency), parsed, "{shown}");
            }
        }
    }

    #[test]
    fn money_formats_as_the_shared_vectors_say() {
        let vectors = vectors();
        for case in vectors["format"].as_array().expect("format vectors") {
            let currency = case["currency"].as_str().expect("currency");
            assert_eq!(
                format_money(minor(&case["minor"]), currency),
                case["text"].as_str().expect("text"),
                "{case}"
            );
        }
    }
}
