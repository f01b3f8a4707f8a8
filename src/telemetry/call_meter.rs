//! The SDK interceptor that feeds the current call's meter, and spans the
//! call's DynamoDB attempts when it is traced.

use super::meter::with_meter;
use super::traces;
use std::sync::atomic::Ordering;

/// The SDK interceptor that feeds the current call's [`Meter`](super::Meter): one
/// request per attempt sent, and the consumed capacity of every answer
/// (the ledger asks for it with ReturnConsumedCapacity TOTAL). Requests
/// made outside a call (table setup, the audit, the benchmark's own reads)
/// are not counted anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallMeter;

/// The interceptor's name, to find it in a client's configuration.
pub const CALL_METER: &str = "CallMeter";

impl aws_sdk_dynamodb::config::Intercept for CallMeter {
    fn name(&self) -> &'static str {
        CALL_METER
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        with_meter(|meter| {
            if let Some(trace) = &meter.trace {
                let span = attempt_span(trace, cfg);
                cfg.interceptor_state().store_put(span);
            }
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Some(span) = cfg.load::<traces::AttemptSpan>() {
            span.end(attempt_end(context));
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        with_meter(|m| {
            m.requests.fetch_add(1, Ordering::Relaxed);
        });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<
            '_,
        >,
        _runtime_components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if let Ok(output) = context.output_or_error() {
            let (read, write) = consumed(output);
            if read > 0.0 || write > 0.0 {
                with_meter(|m| m.add_capacity(read, write));
            }
        }
        Ok(())
    }
}

/// The span of the attempt about to be made, with the operation's name,
/// the attempt's number and the region from the SDK's configuration.
fn attempt_span(
    trace: &traces::CallTrace,
    cfg: &aws_sdk_dynamodb::config::ConfigBag,
) -> traces::AttemptSpan {
    use aws_smithy_runtime_api::client::orchestrator::Metadata;
    use aws_smithy_runtime_api::client::retries::RequestAttempts;
    let operation = cfg.load::<Metadata>().map_or("DynamoDB", |m| m.name());
    let attempt = cfg.load::<RequestAttempts>().map(|a| a.attempts());
    let region = cfg
        .load::<aws_sdk_dynamodb::config::Region>()
        .map(|r| r.as_ref());
    trace.start_attempt(operation, attempt, region)
}

/// How an attempt ended: its HTTP status, request id, and error code.
fn attempt_end<'a>(
    context: &'a aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
) -> traces::AttemptEnd<'a> {
    let response = context.response();
    let error = match context.output_or_error() {
        Some(Err(err)) => Some(error_code(err)),
        _ => None,
    };
    traces::AttemptEnd {
        status: response.map(|r| r.status().as_u16()),
        request_id: response.and_then(|r| r.headers().get("x-amzn-requestid")),
        error,
    }
}

/// The code of a failed attempt: DynamoDB's error code for the operations
/// the ledger sends (e.g. `TransactionCanceledException`), else the kind
/// of failure (`timeout`, `io`, ...).
fn error_code(
    err: &aws_smithy_runtime_api::client::orchestrator::OrchestratorError<
        aws_smithy_runtime_api::client::interceptors::context::Error,
    >,
) -> String {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    use aws_sdk_dynamodb::operation as op;
    let Some(error) = err.as_operation_error() else {
        return if err.is_timeout_error() {
            "timeout"
        } else if err.is_connector_error() {
            "io"
        } else if err.is_response_error() {
            "response"
        } else {
            "other"
        }
        .to_owned();
    };
    macro_rules! code {
        ($($error:ty),*) => {
            $(if let Some(e) = error.downcast_ref::<$error>() {
                return e.code().unwrap_or("unknown").to_owned();
            })*
        };
    }
    code!(
        op::transact_write_items::TransactWriteItemsError,
        op::get_item::GetItemError,
        op::batch_get_item::BatchGetItemError,
        op::query::QueryError,
        op::put_item::PutItemError,
        op::update_item::UpdateItemError,
        op::delete_item::DeleteItemError,
        op::scan::ScanError
    );
    "unknown".to_owned()
}

/// The (read, write) capacity units an operation's output reports. With
/// TOTAL, DynamoDB may give only `CapacityUnits`: they are read units for
/// a read operation and write units for a write.
fn consumed(output: &aws_smithy_runtime_api::client::interceptors::context::Output) -> (f64, f64) {
    use aws_sdk_dynamodb::operation as op;
    use aws_sdk_dynamodb::types::ConsumedCapacity;
    fn sum<'a>(all: impl IntoIterator<Item = &'a ConsumedCapacity>, read_op: bool) -> (f64, f64) {
        all.into_iter().fold((0.0, 0.0), |(r, w), c| {
            let (read, write) = match (c.read_capacity_units(), c.write_capacity_units()) {
                (None, None) => {
                    let units = c.capacity_units().unwrap_or(0.0);
                    if read_op { (units, 0.0) } else { (0.0, units) }
                }
                (read, write) => (read.unwrap_or(0.0), write.unwrap_or(0.0)),
            };
            (r + read, w + write)
        })
    }
    if let Some(o) = output.downcast_ref::<op::get_item::GetItemOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) = output.downcast_ref::<op::query::QueryOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) = output.downcast_ref::<op::batch_get_item::BatchGetItemOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) = output.downcast_ref::<op::scan::ScanOutput>() {
        sum(o.consumed_capacity(), true)
    } else if let Some(o) =
        output.downcast_ref::<op::transact_write_items::TransactWriteItemsOutput>()
    {
        sum(o.consumed_capacity(), false)
    } else if let Some(o) = output.downcast_ref::<op::put_item::PutItemOutput>() {
        sum(o.consumed_capacity(), false)
    } else if let Some(o) = output.downcast_ref::<op::update_item::UpdateItemOutput>() {
        sum(o.consumed_capacity(), false)
    } else if let Some(o) = output.downcast_ref::<op::delete_item::DeleteItemOutput>() {
        sum(o.consumed_capacity(), false)
    } else {
        (0.0, 0.0)
    }
}

/// `client` with the [`CallMeter`] interceptor (unless it has it already).
pub fn metered_client(client: aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::Intercept as _;
    if client
        .config()
        .interceptors()
        .any(|i| i.name() == CALL_METER)
    {
        return client;
    }
    aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(CallMeter).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_read_from_every_output_the_ledger_gets() {
        use aws_sdk_dynamodb::operation as op;
        use aws_sdk_dynamodb::types::ConsumedCapacity;
        use aws_smithy_runtime_api::client::interceptors::context::Output;
        let total = |units: f64| ConsumedCapacity::builder().capacity_units(units).build();
        let split = ConsumedCapacity::builder()
            .capacity_units(3.0)
            .read_capacity_units(1.0)
            .write_capacity_units(2.0)
            .build();
        let get = op::get_item::GetItemOutput::builder()
            .consumed_capacity(total(1.0))
            .build();
        assert_eq!(consumed(&Output::erase(get)), (1.0, 0.0));
        let write = op::transact_write_items::TransactWriteItemsOutput::builder()
            .consumed_capacity(total(4.0))
            .consumed_capacity(total(2.0))
            .build();
        assert_eq!(consumed(&Output::erase(write)), (0.0, 6.0));
        let batch = op::batch_get_item::BatchGetItemOutput::builder()
            .consumed_capacity(total(0.5))
            .consumed_capacity(split)
            .build();
        assert_eq!(consumed(&Output::erase(batch)), (1.5, 2.0));
        let none = op::put_item::PutItemOutput::builder().build();
        assert_eq!(consumed(&Output::erase(none)), (0.0, 0.0));
    }

    #[test]
    fn every_ledger_client_has_the_call_meter_once() {
        use aws_sdk_dynamodb::config::Intercept as _;
        let meters = |client: &aws_sdk_dynamodb::Client| {
            client
                .config()
                .interceptors()
                .filter(|i| i.name() == CALL_METER)
                .count()
        };
        let shared = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let configured = aws_sdk_dynamodb::Client::from_conf(
            crate::config::metered_dynamodb_config(&shared).build(),
        );
        assert_eq!(meters(&configured), 1, "the configuration adds it");
        assert_eq!(meters(&metered_client(configured)), 1);
        let bare = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .build(),
        );
        assert_eq!(meters(&bare), 0);
        assert_eq!(meters(&metered_client(bare)), 1, "the ledger adds it");
    }
}
