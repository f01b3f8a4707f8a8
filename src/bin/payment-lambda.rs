//! payment-lambda: the payment service as an AWS Lambda function behind API
//! Gateway (HTTP API, payload format 2.0) or a function URL, speaking
//! gRPC-Web. Everything costly is built once per container, before the
//! first event. The event is taken as raw JSON and converted by
//! `payment::lambda`, so that no event can fail the invocation (a 500 from
//! API Gateway).

use lambda_runtime::{LambdaEvent, service_fn};
use payment::settings::Settings;
use payment::{auth::Authenticator, config, ledger::Ledger, service::PaymentApi, stack};
use std::convert::Infallible;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Display, not Debug: configuration errors say what to set.
            eprintln!("payment-lambda: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env()?;
    config::init_tracing(settings.log_format);
    let ledger = Ledger::from_settings(config::dynamodb_client().await, &settings.ledger);
    let auth = Authenticator::from_settings(&settings.auth).await?;
    tracing::info!(auth = ?auth, "payment-lambda ready");
    let service = stack::http_service(
        PaymentApi::new(ledger, auth)
            .with_telemetry(payment::telemetry::Telemetry::lambda(&settings.metrics)?),
        &settings.cors_origins,
    )
    .await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let service = service.clone();
        async move {
            let invocation = payment::lambda::Invocation {
                request_id: event.context.request_id,
                trace_id: event.context.xray_trace_id,
            };
            let reply = payment::lambda::handle_invocation(service, event.payload, invocation);
            Ok::<_, Infallible>(reply.await)
        }
    }))
    .await
}
