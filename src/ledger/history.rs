//! Reading an account's history, newest first, merged over its shards.

use super::layout::{StoredEntry, entry_pk, entry_sk, s, sdk_error};
use super::{Account, Entry, Ledger, LedgerError};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use std::collections::VecDeque;

/// History entries read per Query; a page is read in chunks of this size so
/// that streaming starts before the whole page is read.
pub const HISTORY_CHUNK_MAX: u32 = 100;
/// Most Query calls for one chunk. DynamoDB may stop a Query early (1 MB);
/// a chunk of 100 small entries never needs more than one, so hitting this
/// bound means something is wrong.
const QUERY_CALLS_PER_CHUNK_MAX: u32 = 8;

/// A position in one account's history and the entries read ahead of it.
///
/// An ordinary account's history is its one shard's, in sequence order. A
/// sharded account's history interleaves its shards by entry time (each
/// shard's entries are in strictly increasing time, see `payments`), ties
/// broken by transaction id and shard; the parts of one payment drawn from
/// several shards have the same time and id, so they are adjacent and come
/// out as one entry. Its `balance_after` is the sum over shards of each
/// shard's balance at that point, which is exact: every shard's balance
/// after its newest entry at or before the point is that entry's stored
/// `balance_after` (0 before its first entry).
#[derive(Debug)]
pub struct HistoryCursor {
    account_id: String,
    shards: Vec<ShardCursor>,
}

#[derive(Debug)]
struct ShardCursor {
    /// Entries with a sequence below this are not read yet.
    unread_below: u64,
    /// Read ahead, newest first.
    buffer: VecDeque<StoredEntry>,
}

/// Where an entry of shard `shard` falls in an account's history merged
/// over its shards (the order above): by time, then transaction id, then
/// shard. The parts of one payment drawn from several shards share time and
/// id, so they are adjacent in it. [`super::watch`] walks the same order
/// forwards.
pub(super) fn merge_key(entry: &StoredEntry, shard: usize) -> (i64, &str, usize) {
    (
        entry.payment.created_at_ms,
        &entry.payment.transaction_id,
        shard,
    )
}

impl ShardCursor {
    fn exhausted(&self) -> bool {
        self.buffer.is_empty() && self.unread_below <= 1
    }

    /// The cursor a page token carries: entries below it come next.
    fn position(&self) -> u64 {
        self.buffer
            .front()
            .map_or(self.unread_below, |e| e.sequence + 1)
    }
}

impl HistoryCursor {
    /// Starts at the newest entry of `account` (a consistent snapshot), or
    /// at `cursors` from a page token (one per shard), never past the
    /// snapshot. None when the cursors do not fit the account's shards.
    ///
    /// A token issued before a reshard has fewer cursors than the account
    /// has shards now. The shards it lacks were added after the snapshot
    /// its first page was read from (that snapshot would have shown them
    /// otherwise, see `shards`), so all their entries are newer than the
    /// listing: they start exhausted, and the pages go on exactly as they
    /// would have. More cursors than shards fit no account (a count never
    /// goes down).
    pub fn new(account: &Account, cursors: Option<&[u64]>) -> Option<Self> {
        let newest: Vec<u64> = account.shard_versions.iter().map(|v| v + 1).collect();
        let start = match cursors {
            None => newest,
            Some(c) if c.len() <= newest.len() => newest
                .iter()
                .enumerate()
                .map(|(k, n)| c.get(k).map_or(1, |c| (*c).min(*n)))
                .collect(),
            Some(_) => return None,
        };
        Some(Self {
            account_id: account.account_id.clone(),
            shards: start
                .into_iter()
                .map(|unread_below| ShardCursor {
                    unread_below,
                    buffer: VecDeque::new(),
                })
                .collect(),
        })
    }

    /// Where the history continues after the entries returned so far, one
    /// cursor per shard; None when nothing older is left.
    pub fn position(&self) -> Option<Vec<u64>> {
        let cursors: Vec<u64> = self.shards.iter().map(ShardCursor::position).collect();
        cursors.iter().any(|&c| c > 1).then_some(cursors)
    }

    /// The next older entry, reading ahead up to `read_ahead` entries of a
    /// shard at a time (at most [`HISTORY_CHUNK_MAX`]).
    pub async fn next(
        &mut self,
        ledger: &Ledger,
        read_ahead: u32,
    ) -> Result<Option<Entry>, LedgerError> {
        let read_ahead = read_ahead.clamp(1, HISTORY_CHUNK_MAX);
        for shard in 0..self.shards.len() {
            self.fill(ledger, shard, read_ahead).await?;
        }
        // The newest head over all shards.
        let Some(first) = (0..self.shards.len())
            .filter_map(|k| self.shards[k].buffer.front().map(|e| (k, e)))
            .max_by_key(|(k, e)| merge_key(e, *k))
            .map(|(k, _)| k)
        else {
            return Ok(None);
        };
        let head = self.shards[first]
            .buffer
            .pop_front()
            .ok_or_else(|| LedgerError::Internal("history head vanished".into()))?;
        // The other parts of the same payment, at the heads of their shards.
        let mut lowest = (first, head.sequence);
        let mut taken = vec![first];
        let mut parts_after: Vec<(usize, i64)> = Vec::new();
        for k in 0..self.shards.len() {
            if k != first
                && self.shards[k]
                    .buffer
                    .front()
                    .is_some_and(|e| e.payment.transaction_id == head.payment.transaction_id)
            {
                let part = self.shards[k].buffer.pop_front();
                if let Some(part) = part {
                    if k < lowest.0 {
                        lowest = (k, part.sequence);
                    }
                    taken.push(k);
                    parts_after.push((k, part.balance_after_minor));
                }
            }
        }
        parts_after.push((first, head.balance_after_minor));
        // The balance after a sharded entry needs the next head of every
        // shard it took (an ordinary account's entry carries its own).
        if self.shards.len() > 1 {
            for &k in &taken {
                self.fill(ledger, k, read_ahead).await?;
            }
        }
        let mut balance_after_minor = 0i64;
        for (k, cursor) in self.shards.iter().enumerate() {
            let shard_balance = match parts_after.iter().find(|(s, _)| *s == k) {
                Some((_, after)) => *after,
                None => cursor.buffer.front().map_or(0, |e| e.balance_after_minor),
            };
            balance_after_minor = balance_after_minor.saturating_add(shard_balance);
        }
        Ok(Some(Entry {
            shard: u32::try_from(lowest.0).unwrap_or(u32::MAX),
            sequence: lowest.1,
            direction: head.direction,
            payment: head.payment,
            balance_after_minor,
        }))
    }

    /// Reads the next chunk of a shard when nothing of it is read ahead.
    async fn fill(&mut self, ledger: &Ledger, shard: usize, limit: u32) -> Result<(), LedgerError> {
        let cursor = &mut self.shards[shard];
        if !cursor.buffer.is_empty() || cursor.exhausted() {
            return Ok(());
        }
        // Boxed: the Query's future is large (the SDK's), and `next` is
        // awaited once per entry, mostly without reading; unboxed, every
        // entry would build and move a future of that size.
        let chunk = Box::pin(ledger.history_chunk(
            &self.account_id,
            u32::try_from(shard).unwrap_or(u32::MAX),
            cursor.unread_below,
            limit,
        ))
        .await?;
        match chunk.last() {
            Some(oldest) if oldest.sequence < cursor.unread_below => {
                cursor.unread_below = oldest.sequence;
            }
            Some(_) => return Err(LedgerError::Internal("history query went backwards".into())),
            // Nothing below: the shard is done.
            None => cursor.unread_below = 1,
        }
        cursor.buffer.extend(chunk);
        Ok(())
    }
}

impl Ledger {
    /// Reads up to `limit` (at most [`HISTORY_CHUNK_MAX`]) entries of one
    /// shard's history with sequence below `before_sequence`, newest first.
    async fn history_chunk(
        &self,
        account_id: &str,
        shard: u32,
        before_sequence: u64,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, LedgerError> {
        let limit = limit.min(HISTORY_CHUNK_MAX);
        if before_sequence <= 1 {
            return Ok(Vec::new());
        }
        self.shard_entries(account_id, shard, (1, before_sequence - 1), false, limit)
            .await
    }

    /// Up to `limit` entries of one shard's history with sequences in
    /// `range` (both ends included), oldest first when `forward`, with a
    /// strongly consistent Query on the shard's own partition: the one
    /// read of history entries, for pages and for watches.
    pub(super) async fn shard_entries(
        &self,
        account_id: &str,
        shard: u32,
        (from, to): (u64, u64),
        forward: bool,
        limit: u32,
    ) -> Result<Vec<StoredEntry>, LedgerError> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity(limit as usize);
        let mut start_key = None;
        for _ in 0..QUERY_CALLS_PER_CHUNK_MAX {
            let output = self
                .client
                .query()
                .table_name(&self.tables.ledger)
                .key_condition_expression("pk = :pk AND sk BETWEEN :oldest AND :newest")
                .expression_attribute_values(":pk", s(entry_pk(account_id, shard)))
                .expression_attribute_values(":oldest", s(entry_sk(from)))
                .expression_attribute_values(":newest", s(entry_sk(to)))
                .scan_index_forward(forward)
                .consistent_read(true)
                .limit(i32::try_from(limit as usize - entries.len()).unwrap_or(1))
                .set_exclusive_start_key(start_key)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            for item in output.items() {
                entries.push(StoredEntry::from_item(item)?);
            }
            start_key = output.last_evaluated_key().cloned();
            if start_key.is_none() || entries.len() >= limit as usize {
                return Ok(entries);
            }
        }
        Err(LedgerError::Internal(format!(
            "history of {account_id} shard {shard} needed more than {QUERY_CALLS_PER_CHUNK_MAX} queries for {limit} entries"
        )))
    }
}
