//! Every bound the domain enforces, with the reason for its value.

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
/// History entries streamed when the caller asks for page_size 0.
pub const PAGE_SIZE_DEFAULT: u32 = 50;
/// Most history entries one call streams. 1000 entries of at most ~1 KiB
/// each stay well below API Gateway's 6 MB response limit.
pub const PAGE_SIZE_MAX: u32 = 1000;
/// Longest page token accepted, in bytes; real ones are far shorter.
pub const PAGE_TOKEN_BYTES_MAX: usize = 2048;
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

/// Longest a WatchAccount call streams on payment-server, in seconds: five
/// minutes. Long enough that a browser tab reconnects rarely (each call
/// costs one account read to start), short enough that a server draining
/// for a deploy waits for its watches at most this long.
pub const WATCH_SECONDS_MAX: u32 = 300;
/// Longest a WatchAccount long poll waits for an entry behind API Gateway,
/// in seconds. An HTTP API buffers the reply and cuts the integration at
/// 30 s, and the function's own Timeout is 20 s (template.yaml): 15 s
/// leaves 5 s for the call's first read and its last poll, so the call
/// ends with its resume token before Lambda would end the invocation.
pub const WATCH_LONG_POLL_SECONDS_MAX: u32 = 15;
/// Most history entries a resume_token may be behind the account (over all
/// its shards) for WatchAccount to catch up: 10 entries per second for a
/// quarter of an hour, or 100 reads of a shard's history. Further behind,
/// the watcher gets OUT_OF_RANGE (RESUME_TOKEN_TOO_OLD) and catches up with
/// GetTransactionHistory, which pages, instead of a watch that would spend
/// its first minutes replaying the past.
pub const WATCH_RESUME_BEHIND_MAX: u64 = 10_000;

/// The most one balance shard of an account with `shards` shards may hold:
/// an equal share of [`BALANCE_MAX_MINOR`], so that the shards together
/// never hold more than the limit.
pub fn shard_balance_max_minor(shards: u32) -> i64 {
    BALANCE_MAX_MINOR / i64::from(shards.max(1))
}
