//! Putting events on the bus with PutEvents, in order, in calls of at most
//! [`PUT_EVENTS_ENTRIES_MAX`] entries and [`PUT_EVENTS_BYTES_MAX`] bytes.
//! A call with a failed entry is the last one: what follows waits for the
//! stream's retry, so that events are put in stream order.

use super::schema::{Detail, SOURCE};
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::ops::Range;

/// Entries one PutEvents call takes (EventBridge's limit).
pub const PUT_EVENTS_ENTRIES_MAX: usize = 10;
/// Bytes of entries one PutEvents call takes, and so the most one event
/// may be (EventBridge's limit, counted its way: see [`entry_size`]). Our
/// events are bounded far below it: every string in them is an id of at
/// most 128 characters or a text of at most 256 bytes.
pub const PUT_EVENTS_BYTES_MAX: usize = 256 * 1024;

/// How many attempts the SDK makes at one PutEvents call (throttling and
/// 5xx); entries that fail inside a successful call are not retried here
/// but by the stream (see `super::batch`).
pub const PUT_EVENTS_ATTEMPTS_MAX: u32 = 3;

/// How long one PutEvents call may take, its attempts included. A batch
/// is at most `BATCH_RECORDS_MAX / PUT_EVENTS_ENTRIES_MAX` calls, made one
/// after another: the function's Timeout in template.yaml covers them all
/// (a test checks).
pub const PUT_EVENTS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What went wrong with the first event that was not put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its index in what was given to [`Publisher::publish`].
    pub index: usize,
    pub reason: String,
}

/// Puts events on one bus.
#[derive(Debug, Clone)]
pub struct Publisher {
    client: aws_sdk_eventbridge::Client,
    bus_name: String,
}

impl Publisher {
    pub fn new(client: aws_sdk_eventbridge::Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    /// A publisher to `bus_name` (the settings' event bus,
    /// [`crate::settings::Settings::event_bus`]), with a client configured
    /// the standard AWS way (`AWS_ENDPOINT_URL_EVENTBRIDGE` or
    /// `AWS_ENDPOINT_URL` for a local endpoint) and bounded retries and
    /// timeouts.
    pub async fn connect(bus_name: &str) -> Self {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(crate::config::https_client(
                crate::config::TlsRoots::from_env(),
            ))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(PUT_EVENTS_ATTEMPTS_MAX),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(2))
                    .operation_attempt_timeout(std::time::Duration::from_secs(5))
                    .operation_timeout(PUT_EVENTS_TIMEOUT)
                    .build(),
            )
            .load()
            .await;
        Self::new(aws_sdk_eventbridge::Client::new(&shared), bus_name)
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    /// Puts `details` in order. None when all were put; else the first
    /// that was not (those before it were put; of those after it, some in
    /// the same call may have been put, and none of the later calls was
    /// made).
    pub async fn publish(&self, details: &[Detail]) -> Option<Failure> {
        let mut entries = Vec::with_capacity(details.len());
        let mut sizes = Vec::with_capacity(details.len());
        for (index, detail) in details.iter().enumerate() {
            let (entry, size) = match self.entry(detail) {
                Ok(built) => built,
                Err(reason) => return Some(Failure { index, reason }),
            };
            if size > PUT_EVENTS_BYTES_MAX {
                return Some(Failure {
                    index,
                    reason: format!(
                        "event {} is {size} bytes, more than PutEvents takes ({PUT_EVENTS_BYTES_MAX})",
                        detail.id
                    ),
                });
            }
            entries.push(entry);
            sizes.push(size);
        }
        for range in chunks(&sizes) {
            if let Some(failure) = self.put(&entries[range.clone()], range.start).await {
                return Some(failure);
            }
        }
        None
    }

    fn entry(&self, detail: &Detail) -> Result<(PutEventsRequestEntry, usize), String> {
        let json = serde_json::to_string(detail)
            .map_err(|e| format!("event {} cannot be written as JSON: {e}", detail.id))?;
        let detail_type = detail.body.detail_type();
        let size = entry_size(detail_type, &json);
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(SOURCE)
            .detail_type(detail_type)
            .detail(json)
            .time(DateTime::from_millis(detail.occurred_at_ms))
            .build();
        Ok((entry, size))
    }

    /// One PutEvents call; `first` is the index of its first entry.
    async fn put(&self, entries: &[PutEventsRequestEntry], first: usize) -> Option<Failure> {
        let output = match self
            .client
            .put_events()
            .set_entries(Some(entries.to_vec()))
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                return Some(Failure {
                    index: first,
                    reason: format!(
                        "PutEvents failed: {}",
                        aws_sdk_eventbridge::error::DisplayErrorContext(&err)
                    ),
                });
            }
        };
        let results = output.entries();
        if results.len() != entries.len() {
            return Some(Failure {
                index: first,
                reason: format!(
                    "PutEvents answered {} results for {} entries",
                    results.len(),
                    entries.len()
                ),
            });
        }
        results.iter().enumerate().find_map(|(k, result)| {
            result.error_code().map(|code| Failure {
                index: first + k,
                reason: format!(
                    "PutEvents refused the entry: {code}: {}",
                    result.error_message().unwrap_or("")
                ),
            })
        })
    }
}

/// An entry's size as EventBridge counts it against its limits: 14 bytes
/// for the time, plus the UTF-8 bytes of the source, the detail type and
/// the detail (we set no resources).
pub fn entry_size(detail_type: &str, detail_json: &str) -> usize {
    14 + SOURCE.len() + detail_type.len() + detail_json.len()
}

/// Consecutive ranges of entries, each within both PutEvents limits
/// (every size is at most [`PUT_EVENTS_BYTES_MAX`]).
pub fn chunks(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, size) in sizes.iter().enumerate() {
        if index > start
            && (index - start == PUT_EVENTS_ENTRIES_MAX || bytes + size > PUT_EVENTS_BYTES_MAX)
        {
            ranges.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_both_limits_and_the_order() {
        assert!(chunks(&[]).is_empty());
        assert_eq!(chunks(&[100; 25]), vec![0..10, 10..20, 20..25]);
        let big = PUT_EVENTS_BYTES_MAX / 2;
        assert_eq!(chunks(&[big, big, 1, big]), vec![0..2, 2..4]);
        assert_eq!(
            chunks(&[PUT_EVENTS_BYTES_MAX, 1, PUT_EVENTS_BYTES_MAX]),
            vec![0..1, 1..2, 2..3]
        );
    }
}
