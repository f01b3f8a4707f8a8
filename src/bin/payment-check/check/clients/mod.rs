//! The workload: N clients issuing a seeded random mix of every operation
//! through the instances, following the contract's retry rules, and the
//! record of every call they made.
//!
//! The retry rules, as the contract gives them to a client:
//! - MakePayment, AuthorizePayment, RefundPayment: after an ambiguous
//!   answer (DEADLINE_EXCEEDED, UNAVAILABLE, ABORTED, a broken connection)
//!   send the same call with the same key again, up to
//!   [`KEYED_ATTEMPTS_MAX`] times; if the key's fate is still open (every
//!   answer ambiguous, or a refusal after an ambiguous answer, which says
//!   nothing of the earlier attempt's write), ask GetPayment with
//!   `finalize` for the final answer: found (committed) or NOT_FOUND
//!   KEY_FENCED (never). The key is never used again after that.
//! - CaptureHold, VoidHold: the same call again, up to the same bound (a
//!   repeated capture or void replays); the hold's final state tells.
//! - Reads are not retried: each answer is checked as it came.
//! - SetBalanceShards (the admin's, see [`run_admin`]): the same call
//!   again after an ambiguous answer, up to [`ADMIN_ATTEMPTS_MAX`] times;
//!   it is idempotent, so the final shard count tells.
//!
//! Now and then a client reuses the key of a hold it placed for another
//! call with the hold's own parties, amount and memo: a MakePayment, or an
//! AuthorizePayment with another expiry (a client that mixes up its kept
//! keys). The contract answers ALREADY_EXISTS, IDEMPOTENCY_KEY_REUSED, and
//! never the hold as if it were the call's replay; the checks hold it to
//! that (see [`KeyedOp::reuse`]).

//!
//! Parts: [`record`] (what a call asked and was answered, and the record
//! of every call), [`client`] (a client's choices and the retry rules),
//! [`rpc`] (one call as its RPC).

mod client;
pub mod record;
mod rpc;

pub use client::{fate_of_final_lookup, run_admin, run_client};
pub use record::{Answer, Call, Class, Fate, KeyedOp, PageEntry, Recorder, Reply, Request};
pub use rpc::call_instance;

use super::fleet::DEV_SECRET;
use payment::auth::{DevToken, mint_dev_token};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;

/// The caller every client acts as: an admin who owns every account (only
/// a sender's owner may pay from it; an admin may capture, void, refund).
pub const CHECK_SUB: &str = "payment-check";
/// Most calls of one keyed operation before it asks for the final answer
/// (each operation draws its own number, 1 to this).
pub const KEYED_ATTEMPTS_MAX: u32 = 4;
/// GetPayment calls with finalize for one key before the client leaves it
/// to the end of the run (DynamoDB Local may be down for a while).
pub const FINALIZE_ATTEMPTS_MAX: u32 = 12;
/// The pause before a retry is drawn from this range (ms).
const RETRY_PAUSE_MS: (u64, u64) = (20, 400);
/// How long past its deadline the client waits for an answer before it
/// gives up on the call itself (a hang detector, not a speed limit).
const CLIENT_GRACE: Duration = Duration::from_secs(10);
/// Longest page a client asks for.
const PAGE_SIZE_MAX: i32 = 12;
/// Most SetBalanceShards calls of one admin operation (each retry after an
/// ambiguous answer; DynamoDB Local may be down for a while).
pub const ADMIN_ATTEMPTS_MAX: u32 = 8;
/// The admin's extra pause before a retry (ms), on top of the usual one.
const ADMIN_PAUSE_MS: u64 = 500;

/// One account of the run, as it opens. Its shard count may rise during
/// the run (SetBalanceShards, or an instance promoting it): what it is at
/// a moment is in the answers and, at the end, in the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSpec {
    pub id: String,
    pub currency: String,
    /// The balance shards it opens with.
    pub opening_shards: u32,
    pub opening_minor: i64,
}

/// An admin's SetBalanceShards of the workload: once `at_done` operations
/// are done, raise `account` to `shards` (which may also be its count or
/// fewer, to see those answered).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reshard {
    pub at_done: usize,
    pub account: String,
    pub shards: u32,
}

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct Workload {
    pub seed: u64,
    pub clients: usize,
    pub operations: usize,
    pub deadline_ms: (u64, u64),
    pub accounts: Arc<Vec<AccountSpec>>,
    /// Largest amount of a payment or hold.
    pub amount_max: i64,
    /// Hold expiries are drawn from this range (s); 60 is the least.
    pub hold_expiry_s: (i64, i64),
    /// The admin's SetBalanceShards calls, in order (see [`run_admin`]).
    pub reshards: Vec<Reshard>,
}

/// A bearer token for [`CHECK_SUB`], valid for `ttl`.
pub fn check_token(ttl: Duration) -> Result<tonic::metadata::AsciiMetadataValue, String> {
    let token = mint_dev_token(
        DEV_SECRET.as_bytes(),
        &DevToken {
            sub: CHECK_SUB,
            admin: true,
            ttl,
            ..Default::default()
        },
    )?;
    format!("Bearer {token}")
        .parse()
        .map_err(|_| "token is not a header value".to_owned())
}

/// What the clients share: the instances' channels, the token, the record.
pub struct Shared {
    pub channels: Vec<Channel>,
    pub token: tonic::metadata::AsciiMetadataValue,
    pub recorder: Arc<Recorder>,
    pub workload: Workload,
    /// The most balance shards any answer showed of each account so far
    /// (a count only rises), for the clients' choices.
    pub shards_seen: Mutex<HashMap<String, u32>>,
}

impl Shared {
    pub fn new(
        channels: Vec<Channel>,
        token: tonic::metadata::AsciiMetadataValue,
        recorder: Arc<Recorder>,
        workload: Workload,
    ) -> Shared {
        Shared {
            channels,
            token,
            recorder,
            workload,
            shards_seen: Mutex::new(HashMap::new()),
        }
    }

    /// The account's balance shards as far as the answers so far showed:
    /// its opening count, or more once it was resharded.
    pub fn shards_of(&self, account: &AccountSpec) -> u32 {
        let seen = self
            .shards_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account.id)
            .copied()
            .unwrap_or(0);
        account.opening_shards.max(seen)
    }

    /// Notes the shard count an answer showed (a balance read, a
    /// reshard's answer, or a page with entries on higher shards).
    pub(super) fn saw_shards(&self, request: &Request, answer: &Answer) {
        let (account, shards) = match (request, &answer.reply) {
            (Request::Balance { account }, Some(Reply::Balance { shards, .. }))
            | (Request::SetShards { account, .. }, Some(Reply::Shards { shards, .. })) => {
                (account, *shards)
            }
            (Request::History { account, .. }, Some(Reply::Page { entries, .. })) => {
                match entries.iter().map(|e| e.shard.saturating_add(1)).max() {
                    Some(shards) => (account, shards),
                    None => return,
                }
            }
            _ => return,
        };
        let mut seen = self.shards_seen.lock().unwrap_or_else(|e| e.into_inner());
        let known = seen.entry(account.clone()).or_default();
        *known = (*known).max(shards);
    }
}
