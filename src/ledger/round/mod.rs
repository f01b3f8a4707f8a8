//! One write round, shared by every operation that writes.
//!
//! Every change of money (a payment, a hold placed, captured or voided, a
//! refund, an account opened) is planned from what this instance knows,
//! written as one TransactWriteItems, and, when DynamoDB cancels it, read
//! back from the cancellation reasons and tried again, a bounded number of
//! times. This module owns the parts of that loop that do not depend on the
//! operation, one file each:
//! - [`rounds`]: the bound and the backoff ([`Rounds`]);
//! - [`transact`]: sending one transaction and reading every cancellation
//!   reason into a [`transact::Reason`], remembering the account items a
//!   failed condition returned;
//! - [`party`]: the parties as known ([`Party`]), the reads of what is not,
//!   the start of a round that pays from its sender, and the sender-ownership
//!   and currency checks;
//! - [`transfer`] and [`conditions`]: the debits, the credit and the entries
//!   of a transfer, built once for payments, captures and refunds, and the
//!   conditions on each shard they touch;
//! - [`records`]: the call's record as a round read it, a key another call
//!   took, a refusal that a stored record overrides;
//! - [`settle`]: how a round ends ([`Settled`]), and what the call does next
//!   ([`Next`]).
//!
//! Each operation's own file keeps only its plan and its conditions: a
//! short loop over [`Rounds`], and one round as a function that plans,
//! writes, and matches on how its write settled.

mod conditions;
mod party;
mod records;
mod rounds;
mod settle;
mod transact;
mod transfer;

pub(super) use conditions::{holds_pin, holds_set};
pub(super) use party::{Party, Start};
pub(super) use records::RecordRead;
pub use rounds::PAYMENT_ATTEMPTS_MAX;
pub(super) use rounds::Rounds;
pub(super) use settle::{Next, Plan, Settled};
pub(super) use transact::{Reason, Written, reason};
pub(super) use transfer::{DEBIT_SHARDS_MAX, Transfer, plan_debits, refusal};
