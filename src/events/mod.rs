//! Money movements as events on an EventBridge bus, from the tables'
//! DynamoDB Streams (the `payment-events` function; docs/events.md).
//!
//! - [`records`]: one stream record → at most one event, through the
//!   ledger's own reading of its items (`crate::ledger::stream`);
//! - [`schema`]: the events' versioned schema, `source` and `detail-type`;
//! - [`publisher`]: PutEvents, in order, within EventBridge's limits;
//! - [`batch`]: one invocation, reporting the earliest failed record so the
//!   stream retries from it (`batchItemFailures`).
//!
//! Guarantees: at least once (a record is retried until its event is put,
//! or, after the mapping's retries, sent to the on-failure queue; never
//! dropped); events carry stable ids, so duplicates can be told apart; a
//! shard's entries are put in sequence order, and each carries its
//! sequence, so a consumer can order and check for gaps.

pub mod batch;
pub mod publisher;
pub mod records;
pub mod schema;

pub use batch::{BATCH_RECORDS_MAX, BatchError, handle};
pub use publisher::Publisher;
pub use schema::{Body, Detail, SCHEMA_VERSION, SOURCE};
