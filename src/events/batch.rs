//! One invocation: a batch of stream records in, the earliest record to
//! retry out.
//!
//! With `ReportBatchItemFailures` on a stream, Lambda does not retry just
//! the records it is told: it checkpoints before the lowest sequence
//! number reported and delivers that record and every one after it again.
//! So the function reports exactly one record, the earliest that failed
//! (it could not be read, or its event was not put), and puts nothing
//! after it: each account's events then go out in stream order. Events of
//! later records that shared a PutEvents call with the failed one may have
//! been put already; they are put again on the retry, with the same ids.

use super::publisher::Publisher;
use super::records::{RecordError, event_of};
use super::schema::Detail;
use crate::ledger::Tables;
use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};

/// The most records one invocation takes: the event source mapping's
/// BatchSize in template.yaml (a test checks they agree). A larger batch
/// is refused whole, which Lambda retries and bisects.
pub const BATCH_RECORDS_MAX: usize = 100;

/// Why a whole batch failed (the invocation fails; Lambda retries it).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("record {event_id} has no dynamodb.SequenceNumber, so it cannot be reported")]
    NoSequenceNumber { event_id: String },
    #[error("the batch has {records} records, more than BatchSize {BATCH_RECORDS_MAX}")]
    TooManyRecords { records: usize },
}

/// Handles one batch: puts the events of its records in order, and reports
/// the earliest record that failed, if any.
pub async fn handle(
    publisher: &Publisher,
    tables: &Tables,
    event: &Event,
) -> Result<DynamoDbEventResponse, BatchError> {
    let records = &event.records;
    if records.len() > BATCH_RECORDS_MAX {
        return Err(BatchError::TooManyRecords {
            records: records.len(),
        });
    }
    let mut sequence_numbers = Vec::with_capacity(records.len());
    for record in records {
        let sequence_number =
            record
                .change
                .sequence_number
                .clone()
                .ok_or_else(|| BatchError::NoSequenceNumber {
                    event_id: record.event_id.clone(),
                })?;
        sequence_numbers.push(sequence_number);
    }
    // The events of the records before the first unreadable one, each with
    // the index of its record.
    let mut details: Vec<Detail> = Vec::new();
    let mut record_of: Vec<usize> = Vec::new();
    let mut failed: Option<usize> = None;
    for (index, record) in records.iter().enumerate() {
        match event_of(tables, record) {
            Ok(Some(detail)) => {
                details.push(detail);
                record_of.push(index);
            }
            Ok(None) => {}
            Err(err) => {
                report_unreadable(&err);
                failed = Some(index);
                break;
            }
        }
    }
    if let Some(failure) = publisher.publish(&details).await {
        let record = record_of[failure.index];
        tracing::error!(
            event_id = %details[failure.index].id,
            record = %records[record].event_id,
            reason = %failure.reason,
            "event not put; the stream retries from its record"
        );
        failed = Some(failed.map_or(record, |f| f.min(record)));
    }
    let put = match failed {
        None => details.len(),
        Some(record) => record_of.iter().take_while(|r| **r < record).count(),
    };
    tracing::info!(
        records = records.len(),
        events = details.len(),
        put_before_failure = put,
        failed_record = failed.map(|r| records[r].event_id.as_str()),
        "stream batch handled"
    );
    let mut response = DynamoDbEventResponse::default();
    if let Some(record) = failed {
        response
            .batch_item_failures
            .push(failure_item(&sequence_numbers[record]));
    }
    Ok(response)
}

fn report_unreadable(err: &RecordError) {
    tracing::error!(error = %err, "stream record cannot be read; the stream retries from it");
}

fn failure_item(sequence_number: &str) -> DynamoDbBatchItemFailure {
    let mut item = DynamoDbBatchItemFailure::default();
    item.item_identifier = Some(sequence_number.to_owned());
    item
}
