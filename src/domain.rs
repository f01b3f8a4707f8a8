//! The pure domain: money, identifiers, limits, validation and page tokens.
//!
//! Nothing here does I/O. Every value that reaches the ledger has been parsed
//! by one of the constructors below, so the ledger never sees bad input. Every
//! limit is a named constant with the reason for its value.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt;
use std::time::Duration;

/// Longest account id or idempotency key, in characters. Long enough for a
/// UUID with a prefix or an e-mail address, short enough to keep DynamoDB
/// keys (at most 2048 bytes for a partition key) small.
pub const ID_LEN_MAX: usize = 128;
/// Longest display name or memo, in bytes of UTF-8. Free text travels in
/// every history entry, so it is kept small.
pub const TEXT_BYTES_MAX: usize = 256;
/// Largest amount of one payment, in minor units: 10^15 (10 trillion EUR in
/// cents). Leaves head room below i64::MAX so that no sum of two balances or
/// amounts can overflow.
pub const AMOUNT_MAX_MINOR: i64 = 1_000_000_000_000_000;
/// Largest balance an account may hold, in minor units. A payment that would
/// push the recipient past it is refused.
pub const BALANCE_MAX_MINOR: i64 = 1_000_000_000_000_000;
/// History entries streamed when the caller asks for page_size 0.
/// Most balance shards one account may have. Enough for about twice as
/// many concurrent writers as shards at 32 independent containers, the
/// shape docs/hot-accounts.md measures; and the shards' cursors still fit a
/// page token. One payment draws from at most 48 of them (the ledger's
/// transaction item limit).
pub const BALANCE_SHARDS_MAX: u32 = 64;
/// Most accounts one (non-admin) owner may open: enough for any person or
/// business, and a bound on what one stolen or scripted identity can fill
/// the tables with. Past it AddAccount answers RESOURCE_EXHAUSTED.
pub const OWNER_ACCOUNTS_MAX: u32 = 1000;
pub const PAGE_SIZE_DEFAULT: u32 = 50;
/// Most history entries one call streams. 1000 entries of at most ~1 KiB
/// each stay well below API Gateway's 6 MB response limit.
pub const PAGE_SIZE_MAX: u32 = 1000;
/// Longest page token accepted, in bytes; real ones are far shorter.
pub const PAGE_TOKEN_BYTES_MAX: usize = 2048;

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

fn parse_id(field: &'static str, value: &str) -> Result<String, InvalidField> {
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

fn parse_text(field: &'static str, value: &str) -> Result<String, InvalidField> {
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

/// An account's identifier: 1 to [`ID_LEN_MAX`] characters of `[A-Za-z0-9._:@-]`.
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
        parse_id("idempotency_key", value).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    /// Currencies not listed have two, which is what most have.
    pub fn minor_unit_digits(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn truncate_for_message(value: &str) -> String {
    value.chars().take(16).collect()
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

/// The most one balance shard of an account with `shards` shards may hold:
/// an equal share of [`BALANCE_MAX_MINOR`], so that the shards together
/// never hold more than the limit.
pub fn shard_balance_max_minor(shards: u32) -> i64 {
    BALANCE_MAX_MINOR / i64::from(shards.max(1))
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

/// A validated request for a page of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub account_id: AccountId,
    pub page_size: u32,
    /// Continue with entries older than this sequence number (of shard 0);
    /// None starts from the newest entry.
    pub before_sequence: Option<u64>,
    /// For a sharded account, where the other shards continue (see
    /// [`PageToken`]); empty otherwise.
    pub other_shards: Vec<u64>,
}

impl HistoryPage {
    pub fn parse(account_id: &str, page_size: i32, page_token: &str) -> Result<Self, InvalidField> {
        let account_id = AccountId::parse("account_id", account_id)?;
        let page_size = match u32::try_from(page_size) {
            Ok(0) => PAGE_SIZE_DEFAULT,
            Ok(n) if n <= PAGE_SIZE_MAX => n,
            _ => {
                return Err(InvalidField::new(
                    "page_size",
                    format!(
                        "is {page_size}; it must be between 0 (meaning {PAGE_SIZE_DEFAULT}) and {PAGE_SIZE_MAX}"
                    ),
                ));
            }
        };
        let (before_sequence, other_shards) = if page_token.is_empty() {
            (None, Vec::new())
        } else {
            let token = PageToken::decode(page_token, &account_id)?;
            (Some(token.before_sequence), token.other_shards)
        };
        Ok(Self {
            account_id,
            page_size,
            before_sequence,
            other_shards,
        })
    }
}

/// Where a history stream continues: right after (older than) the entry
/// with sequence `before_sequence` of shard 0, for one account, and for a
/// sharded account before `other_shards[k - 1]` in each shard k >= 1 (1
/// there means that shard has nothing older). Encoded as URL-safe base64 of
/// `v1|<account_id>|<sequence>` for an ordinary account and
/// `v2|<account_id>|<shard 0>.<shard 1>...` for a sharded one; the account
/// id in it makes a token from another account's history an error instead
/// of a silent wrong page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub account_id: AccountId,
    pub before_sequence: u64,
    /// Empty for an ordinary account.
    pub other_shards: Vec<u64>,
}

const PAGE_TOKEN_VERSION: &str = "v1";
const PAGE_TOKEN_VERSION_SHARDED: &str = "v2";

/// A cursor as it appears in a token: decimal, no sign, no leading zero.
fn parse_cursor(text: &str) -> Option<u64> {
    if text.starts_with(['0', '+']) {
        return None;
    }
    text.parse().ok()
}

impl PageToken {
    pub fn encode(&self) -> String {
        if self.other_shards.is_empty() {
            return URL_SAFE_NO_PAD.encode(format!(
                "{PAGE_TOKEN_VERSION}|{}|{}",
                self.account_id, self.before_sequence
            ));
        }
        let cursors: Vec<String> = std::iter::once(self.before_sequence)
            .chain(self.other_shards.iter().copied())
            .map(|c| c.to_string())
            .collect();
        URL_SAFE_NO_PAD.encode(format!(
            "{PAGE_TOKEN_VERSION_SHARDED}|{}|{}",
            self.account_id,
            cursors.join(".")
        ))
    }

    /// The cursor of every shard, shard 0 first.
    pub fn cursors(&self) -> Vec<u64> {
        std::iter::once(self.before_sequence)
            .chain(self.other_shards.iter().copied())
            .collect()
    }

    pub fn decode(token: &str, account_id: &AccountId) -> Result<Self, InvalidField> {
        let malformed = || {
            InvalidField::new(
                "page_token",
                "is not a token this service issued; pass a next_page_token from an earlier response, or an empty string to start from the newest entry",
            )
        };
        if token.len() > PAGE_TOKEN_BYTES_MAX {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let mut parts = text.split('|');
        let (Some(version), Some(account), Some(position), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let token_account = AccountId::parse("page_token", account).map_err(|_| malformed())?;
        if version != PAGE_TOKEN_VERSION && version != PAGE_TOKEN_VERSION_SHARDED {
            return Err(malformed());
        }
        if &token_account != account_id {
            return Err(InvalidField::new(
                "page_token",
                "belongs to another account's history; start with an empty page_token",
            ));
        }
        if version == PAGE_TOKEN_VERSION {
            // Sequences start at 1, and a token continues before an existing
            // entry, so a valid token carries at least 2. Leading zeros and
            // signs are rejected so that every position has exactly one token.
            let before_sequence = parse_cursor(position)
                .filter(|&c| c >= 2)
                .ok_or_else(malformed)?;
            return Ok(Self {
                account_id: token_account,
                before_sequence,
                other_shards: Vec::new(),
            });
        }
        // Sharded: 2 to BALANCE_SHARDS_MAX cursors, each at least 1 (that
        // shard is done), and at least one shard with something older.
        let cursors = position
            .split('.')
            .map(parse_cursor)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(malformed)?;
        let shards = u32::try_from(cursors.len()).map_err(|_| malformed())?;
        if !(2..=BALANCE_SHARDS_MAX).contains(&shards)
            || cursors.contains(&0)
            || cursors.iter().all(|&c| c < 2)
        {
            return Err(malformed());
        }
        Ok(Self {
            account_id: token_account,
            before_sequence: cursors[0],
            other_shards: cursors[1..].to_vec(),
        })
    }
}

/// Parses a gRPC `grpc-timeout` header value: at most 8 digits and a unit
/// (H, M, S, m, u, n), as the gRPC over HTTP/2 spec defines it.
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Formats minor units as a decimal in the currency, e.g. `1234` EUR as
/// `12.34 EUR`, with integer arithmetic only.
/// A time in milliseconds since the Unix epoch as RFC 3339 UTC, to the
/// second, for messages.
pub fn format_time_ms(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

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
/// (`1234` for EUR), exactly: no floating point, and more fraction digits
/// than the currency has is an error rather than a rounding.
pub fn parse_money(text: &str, currency: &str) -> Result<i64, String> {
    let digits = Currency::parse("currency", currency)
        .map_err(|e| e.to_string())?
        .minor_unit_digits() as usize;
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(format!("{text:?} is not a decimal amount such as 12.34"));
    }
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

/// Shortest hold: one minute. Shorter holds expire before a person could
/// capture them.
pub const HOLD_SECONDS_MIN: i64 = 60;
/// Longest hold: 30 days, what card networks allow for most authorisations.
pub const HOLD_SECONDS_MAX: i64 = 30 * 24 * 3600;
/// Most open holds on one balance shard (one ordinary account). They live
/// in the shard's item, which every debit rewrites, so each hold costs
/// write capacity on every payment of the account; 32 keep the item under
/// about 4 KB.
pub const HOLDS_OPEN_MAX: usize = 32;
/// ListAccounts page sizes: one page is one index query and one
/// BatchGetItem of at most 100 keys.
pub const LIST_PAGE_SIZE_DEFAULT: u32 = 50;
pub const LIST_PAGE_SIZE_MAX: u32 = 100;

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
            idempotency_key: IdempotencyKey(parse_id(key_field, idempotency_key)?),
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

/// Whose accounts a ListAccounts call lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every account (admins).
    All,
    /// One owner's.
    Owner(String),
}

/// A validated ListAccounts page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsPage {
    pub listing: Listing,
    pub page_size: u32,
    /// Continue after this account id.
    pub after: Option<AccountId>,
}

const LIST_TOKEN_VERSION: &str = "l1";

impl AccountsPage {
    /// `owner` is the request's owner field, `caller`/`admin` who asks:
    /// anyone but an admin lists their own accounts only.
    pub fn parse(
        caller: &str,
        admin: bool,
        owner: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Self, InvalidField> {
        let listing = match (admin, owner.is_empty()) {
            (true, true) => Listing::All,
            (true, false) => Listing::Owner(parse_text("owner", owner)?),
            (false, true) => Listing::Owner(caller.to_owned()),
            (false, false) if owner == caller => Listing::Owner(caller.to_owned()),
            (false, false) => {
                return Err(InvalidField::new(
                    "owner",
                    "may only be set by an admin; leave it empty to list your own accounts",
                ));
            }
        };
        let page_size = match u32::try_from(page_size) {
            Ok(0) => LIST_PAGE_SIZE_DEFAULT,
            Ok(n) if n <= LIST_PAGE_SIZE_MAX => n,
            _ => {
                return Err(InvalidField::new(
                    "page_size",
                    format!(
                        "is {page_size}; it must be between 0 (meaning {LIST_PAGE_SIZE_DEFAULT}) and {LIST_PAGE_SIZE_MAX}"
                    ),
                ));
            }
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(Self::decode_token(page_token, &listing)?)
        };
        Ok(Self {
            listing,
            page_size,
            after,
        })
    }

    fn listing_tag(listing: &Listing) -> String {
        match listing {
            Listing::All => "*".to_owned(),
            Listing::Owner(owner) => format!("o{}", URL_SAFE_NO_PAD.encode(owner)),
        }
    }

    /// The token that continues a listing after `last`.
    pub fn token_after(&self, last: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{LIST_TOKEN_VERSION}|{}|{last}",
            Self::listing_tag(&self.listing)
        ))
    }

    fn decode_token(token: &str, listing: &Listing) -> Result<AccountId, InvalidField> {
        let malformed = || {
            InvalidField::new(
                "page_token",
                "is not a token this service issued; pass next_page_token from the previous page, or an empty string for the first page",
            )
        };
        if token.len() > PAGE_TOKEN_BYTES_MAX {
            return Err(malformed());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| malformed())?;
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let mut parts = text.split('|');
        let (Some(LIST_TOKEN_VERSION), Some(tag), Some(last), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if tag != Self::listing_tag(listing) {
            return Err(InvalidField::new(
                "page_token",
                "belongs to another listing (another owner); start with an empty page_token",
            ));
        }
        AccountId::parse("page_token", last).map_err(|_| malformed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn page_tokens_round_trip_and_reject_forgeries() {
        let alice = AccountId::parse("a", "alice").unwrap();
        let bob = AccountId::parse("a", "bob").unwrap();
        let token = PageToken {
            account_id: alice.clone(),
            before_sequence: 42,
            other_shards: Vec::new(),
        };
        let text = token.encode();
        assert_eq!(PageToken::decode(&text, &alice), Ok(token));
        let foreign = PageToken::decode(&text, &bob).unwrap_err();
        assert!(foreign.reason.contains("another account"));
        let forged = |raw: &str| PageToken::decode(&URL_SAFE_NO_PAD.encode(raw), &alice);
        for raw in [
            "v1|alice|1",
            "v1|alice|0",
            "v1|alice|-3",
            "v1|alice|+3",
            "v1|alice|03",
            "v1|alice|x",
            "v1|alice|99999999999999999999999",
            "v2|alice|3",
            "v1|alice",
            "v1|alice|3|4",
            "v1|al ice|3",
        ] {
            assert_eq!(forged(raw).unwrap_err().field, "page_token", "{raw}");
        }
        for raw in ["!!!", "", "dj F8", &"A".repeat(PAGE_TOKEN_BYTES_MAX + 1)] {
            assert!(PageToken::decode(raw, &alice).is_err(), "{raw}");
        }
    }

    #[test]
    fn history_pages_default_and_bound_the_page_size() {
        assert_eq!(
            HistoryPage::parse("a", 0, "").unwrap().page_size,
            PAGE_SIZE_DEFAULT
        );
        assert_eq!(HistoryPage::parse("a", 1000, "").unwrap().page_size, 1000);
        assert_eq!(
            HistoryPage::parse("a", 1001, "").unwrap_err().field,
            "page_size"
        );
        assert_eq!(
            HistoryPage::parse("a", -1, "").unwrap_err().field,
            "page_size"
        );
        assert_eq!(
            HistoryPage::parse("a", 5, "zz").unwrap_err().field,
            "page_token"
        );
        let a = AccountId::parse("a", "a").unwrap();
        let token = PageToken {
            account_id: a,
            before_sequence: 7,
            other_shards: Vec::new(),
        }
        .encode();
        assert_eq!(
            HistoryPage::parse("a", 5, &token).unwrap().before_sequence,
            Some(7)
        );
    }

    #[test]
    fn grpc_timeouts_follow_the_spec() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "123456789S", "-1S", "1.5S", "５S"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn money_formats_and_parses_exactly() {
        assert_eq!(format_money(1234, "EUR"), "12.34 EUR");
        assert_eq!(format_money(5, "EUR"), "0.05 EUR");
        assert_eq!(format_money(-5, "USD"), "-0.05 USD");
        assert_eq!(format_money(500, "JPY"), "500 JPY");
        assert_eq!(format_money(1, "KWD"), "0.001 KWD");
        assert_eq!(format_money(i64::MIN, "EUR"), "-92233720368547758.08 EUR");
        assert_eq!(parse_money("12.34", "EUR"), Ok(1234));
        assert_eq!(parse_money("12.3", "EUR"), Ok(1230));
        assert_eq!(parse_money("12", "EUR"), Ok(1200));
        assert_eq!(parse_money("0.07", "EUR"), Ok(7));
        assert_eq!(parse_money("500", "JPY"), Ok(500));
        // 0.1 + 0.2 style float errors cannot happen: every digit is exact.
        assert_eq!(parse_money("0.30", "EUR"), Ok(30));
        for bad in [
            "",
            "1.234",
            "-1",
            "1,5",
            "1e3",
            ".5",
            "99999999999999999999",
        ] {
            assert!(parse_money(bad, "EUR").is_err(), "{bad}");
        }
        assert!(parse_money("1.5", "JPY").is_err());
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

    #[test]
    fn zero_means_all_and_negative_is_refused() {
        assert_eq!(parse_amount_or_all(0), Ok(None));
        assert_eq!(parse_amount_or_all(7), Ok(Some(7)));
        assert_eq!(parse_amount_or_all(-1).unwrap_err().field, "amount");
        assert!(parse_amount_or_all(AMOUNT_MAX_MINOR + 1).is_err());
    }

    #[test]
    fn account_listings_are_their_callers_and_tokens_stay_in_their_listing() {
        let own = AccountsPage::parse("alice", false, "", 0, "").unwrap();
        assert_eq!(own.listing, Listing::Owner("alice".into()));
        assert_eq!(own.page_size, LIST_PAGE_SIZE_DEFAULT);
        assert_eq!(
            AccountsPage::parse("alice", false, "bob", 0, "")
                .unwrap_err()
                .field,
            "owner"
        );
        let all = AccountsPage::parse("root", true, "", 100, "").unwrap();
        assert_eq!(all.listing, Listing::All);
        for bad in [-1, 101] {
            assert_eq!(
                AccountsPage::parse("alice", false, "", bad, "")
                    .unwrap_err()
                    .field,
                "page_size"
            );
        }
        let token = own.token_after("acct-7");
        let next = AccountsPage::parse("alice", false, "", 10, &token).unwrap();
        assert_eq!(next.after.unwrap().as_str(), "acct-7");
        // Bob cannot continue Alice's listing, nor an admin's listing of all.
        let err = AccountsPage::parse("bob", false, "", 10, &token).unwrap_err();
        assert!(err.reason.contains("another listing"), "{err}");
        assert!(AccountsPage::parse("root", true, "", 10, &token).is_err());
        assert!(AccountsPage::parse("alice", false, "", 10, "garbage!").is_err());
        assert!(AccountsPage::parse("alice", false, "", 10, &"A".repeat(3000)).is_err());
    }
}
