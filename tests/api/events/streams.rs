//! DynamoDB Local's real streams, read as Lambda hands them to a function,
//! and Lambda's event source mapping as AWS documents it.

use crate::harness::shared_dynamodb;
use crate::helpers::direct_dynamodb;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use payment::events::{self, Publisher};
use payment::ledger::Tables;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long stream records may take to show up in GetRecords.
const STREAM_DELAY_MAX: Duration = Duration::from_secs(15);
/// GetRecords calls per shard per read (each returns up to 1000 records).
const GET_RECORDS_CALLS_MAX: usize = 50;

/// Every record so far of one table's stream, each in Lambda's event
/// record shape, in stream order (shard by shard, parents first).
async fn stream_records(table: &str) -> Vec<serde_json::Value> {
    let dynamodb = direct_dynamodb();
    let described = dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("DescribeTable");
    let arn = described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .expect("the table has a stream")
        .to_owned();
    let streams = streams_client();
    let stream = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .expect("DescribeStream");
    let mut records = Vec::new();
    for shard in stream
        .stream_description()
        .map(|d| d.shards())
        .unwrap_or_default()
    {
        let mut iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(shard.shard_id().expect("shard id"))
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("GetShardIterator")
            .shard_iterator;
        for _ in 0..GET_RECORDS_CALLS_MAX {
            let Some(current) = iterator.take() else {
                break;
            };
            let mut page = get_records(&current).await;
            let got = page["Records"].as_array().map_or(0, Vec::len);
            for mut record in page["Records"]
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default()
            {
                for image in ["Keys", "NewImage", "OldImage"] {
                    if let Some(map) = record["dynamodb"]
                        .get_mut(image)
                        .and_then(|m| m.as_object_mut())
                    {
                        map.values_mut().for_each(type_empty_maps);
                    }
                }
                // What Lambda adds to a stream record.
                record["eventSourceARN"] = serde_json::json!(arn);
                records.push(record);
            }
            iterator = page["NextShardIterator"].as_str().map(String::from);
            if got == 0 {
                break;
            }
        }
    }
    records
}

fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(shared_dynamodb())
            .credentials_provider(Credentials::new("local", "local", None, None, "static"))
            .build(),
    )
}

/// GetRecords, as JSON. Not through the SDK: DynamoDB Local's stream
/// writes an empty map attribute as `{}` where DynamoDB (and so Lambda's
/// event) writes `{"M":{}}`, and the SDK then cannot read the answer at all
/// ("Union did not contain a valid variant"). The ledger does store empty
/// maps (a shard's `holds` once its last hold is gone), so the records are
/// read raw and given their type back ([`type_empty_maps`]). Its records
/// are already in the shape Lambda hands a function, less `eventSourceARN`.
async fn get_records(iterator: &str) -> serde_json::Value {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = serde_json::json!({ "ShardIterator": iterator, "Limit": 1000 }).to_string();
    let request = http::Request::post(shared_dynamodb())
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "DynamoDBStreams_20120810.GetRecords")
        // DynamoDB Local (-sharedDb) reads the credential, not the signature.
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
        )
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("GetRecords request");
    let response = client.request(request).await.expect("GetRecords");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("GetRecords body")
        .to_bytes();
    assert!(
        status.is_success(),
        "GetRecords: {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).expect("GetRecords JSON")
}

/// An attribute value with every untyped `{}` in it made `{"M":{}}`.
fn type_empty_maps(value: &mut serde_json::Value) {
    let Some(object) = value.as_object_mut() else {
        return;
    };
    if object.is_empty() {
        object.insert("M".into(), serde_json::json!({}));
        return;
    }
    if let Some(map) = object.get_mut("M").and_then(|m| m.as_object_mut()) {
        map.values_mut().for_each(type_empty_maps);
    }
    if let Some(list) = object.get_mut("L").and_then(|l| l.as_array_mut()) {
        list.iter_mut().for_each(type_empty_maps);
    }
}

pub(super) fn batch(records: &[serde_json::Value]) -> StreamEvent {
    serde_json::from_value(serde_json::json!({ "Records": records }))
        .expect("Lambda's DynamoDB event shape")
}

pub(super) fn sequence_number(record: &serde_json::Value) -> String {
    record["dynamodb"]["SequenceNumber"]
        .as_str()
        .expect("SequenceNumber")
        .to_owned()
}

/// The ids of the events `records` make (what a handler would put).
pub(super) fn ids_of(tables: &Tables, records: &[serde_json::Value]) -> Vec<Option<String>> {
    batch(records)
        .records
        .iter()
        .map(|r| {
            events::records::event_of(tables, r)
                .expect("a readable record")
                .map(|d| d.id)
        })
        .collect()
}

/// Both tables' records, read again until they make every event of
/// `expected` (stream records may lag the write that made them).
pub(super) async fn records_making(
    tables: &Tables,
    expected: &BTreeSet<String>,
) -> [Vec<serde_json::Value>; 2] {
    let started = std::time::Instant::now();
    loop {
        let accounts = stream_records(&tables.accounts).await;
        let ledger = stream_records(&tables.ledger).await;
        let made: BTreeSet<String> = ids_of(tables, &accounts)
            .into_iter()
            .chain(ids_of(tables, &ledger))
            .flatten()
            .collect();
        if expected.is_subset(&made) {
            return [accounts, ledger];
        }
        assert!(
            started.elapsed() < STREAM_DELAY_MAX,
            "after {STREAM_DELAY_MAX:?} the streams still lack {:?}",
            expected.difference(&made).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lambda's event source mapping as AWS documents it for a stream with
/// ReportBatchItemFailures: batches of `batch_size` in order; on a reported
/// failure, the next batch starts at the lowest reported record; a batch
/// that fails `retries + 1` times in a row is given up (its records go to
/// the on-failure destination) and the mapping moves past it. Returns the
/// records given up, by sequence number.
pub(super) async fn run_mapping(
    publisher: &Publisher,
    tables: &Tables,
    records: &[serde_json::Value],
    batch_size: usize,
    retries: usize,
) -> Vec<String> {
    let mut given_up = Vec::new();
    let (mut position, mut failures_in_a_row) = (0, 0);
    // Bounded: each step either advances or counts a failure.
    for _ in 0..(records.len() + 1) * (retries + 2) {
        if position >= records.len() {
            return given_up;
        }
        let end = (position + batch_size).min(records.len());
        let response = events::handle(publisher, tables, &batch(&records[position..end]))
            .await
            .expect("the batch is handled");
        let reported: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone().expect("itemIdentifier"))
            .collect();
        let Some(first) = records[position..end]
            .iter()
            .position(|r| reported.contains(&sequence_number(r)))
        else {
            assert!(reported.is_empty(), "reported records not in the batch");
            position = end;
            failures_in_a_row = 0;
            continue;
        };
        failures_in_a_row += 1;
        if failures_in_a_row > retries {
            given_up.extend(records[position + first..end].iter().map(sequence_number));
            position = end;
            failures_in_a_row = 0;
        } else {
            position += first;
        }
    }
    panic!("the mapping did not finish");
}
