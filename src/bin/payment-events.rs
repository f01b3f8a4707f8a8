//! payment-events: publishes the ledger's money movements to an EventBridge
//! bus, reading the tables' DynamoDB Streams through Lambda event source
//! mappings (`payment::events`, docs/events.md). The publisher is built once
//! per container; each batch answers with the earliest record to retry.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{LambdaEvent, service_fn};
use payment::settings::Settings;
use payment::{config, events};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("payment-events: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env()?;
    config::init_tracing(settings.log_format);
    let publisher = events::Publisher::connect(settings.event_bus()?).await;
    let tables = settings.ledger.tables;
    tracing::info!(bus = publisher.bus_name(), ?tables, "payment-events ready");
    let (publisher, tables) = (&publisher, &tables);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        // A whole-batch failure fails the invocation: Lambda retries
        // (and bisects) the batch.
        events::handle(publisher, tables, &event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
