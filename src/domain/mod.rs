//! The pure domain: money, identifiers, limits, validation and page tokens.
//!
//! Nothing here does I/O. Every value that reaches the ledger has been parsed
//! by one of the constructors below, so the ledger never sees bad input. Every
//! limit is a named constant with the reason for its value.
//!
//! One file per idea: `limits` (every bound), `fields` (what a bad field is;
//! identifiers and free text), `ids` (account ids, idempotency keys,
//! the caller), `money`
//! (currencies, amounts, decimal text), `orders` (what a caller asks the
//! ledger to do), `pages` (history and account pages and their tokens) and
//! `time` (grpc-timeout, times in messages). Everything is re-exported here,
//! so callers name `crate::domain::X` and never the file.

mod fields;
mod ids;
mod limits;
mod money;
mod orders;
mod pages;
mod time;

pub use fields::InvalidField;
pub use ids::{AccountId, Caller, IdempotencyKey};
pub use limits::{
    AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR, BALANCE_SHARDS_MAX, HOLD_SECONDS_MAX, HOLD_SECONDS_MIN,
    HOLDS_OPEN_MAX, ID_LEN_MAX, LIST_PAGE_SIZE_DEFAULT, LIST_PAGE_SIZE_MAX, OWNER_ACCOUNTS_MAX,
    PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_TOKEN_BYTES_MAX, TEXT_BYTES_MAX,
    WATCH_LONG_POLL_SECONDS_MAX, WATCH_RESUME_BEHIND_MAX, WATCH_SECONDS_MAX,
    shard_balance_max_minor,
};
pub use money::{Currency, format_money, parse_amount, parse_amount_or_all, parse_money};
pub use orders::{HoldOrder, NewAccount, PaymentOrder, PaymentRef, RefundOrder, ShardsOrder};
pub use pages::{AccountsPage, HistoryPage, Listing, PageToken, WatchRequest, WatchToken};
pub use time::{format_time_ms, parse_grpc_timeout};
