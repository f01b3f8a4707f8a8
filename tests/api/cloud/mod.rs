//! End to end on the local AWS cloud (`make cloud`): template.yaml deployed
//! with `sam deploy` to the ministack emulator on 127.0.0.1, called through
//! its API Gateway (the HTTP API, its JWT authorizer and CORS) with tokens
//! from its Cognito, the function running as deployed
//! (PAYMENT_AUTH_MODE=apigateway) on the emulator's DynamoDB.
//!
//! One deployment serves the whole test (a deploy takes about a minute). The
//! ledger's correctness is tested on DynamoDB Local elsewhere; here the
//! payment path's conditions, transactions and cancellation reasons run on
//! the emulator's DynamoDB too (replay, insufficient funds, a reused key).
//!
//! The parts: [`stack`] (the deployment and the raw way into it),
//! [`steps`] (the calls, step by step), [`dynamodb`] (the emulator's
//! DynamoDB against DynamoDB Local), [`observability`] (alarms, dashboard,
//! tracing and logs as deployed); the events part is in events/cloud.rs.

mod dynamodb;
mod observability;
mod stack;
mod steps;

pub(crate) use stack::Cloud;

use std::path::PathBuf;
use std::time::Duration;
use steps::Run;

/// The browser origin the deployment allows (AllowedOrigins).
const ORIGIN: &str = "http://localhost:5173";
/// The whole exercise once the stack is up (a few dozen calls).
const EXERCISE_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployed_stack_on_the_local_cloud_serves_every_call_behind_its_authorizer() {
    // DynamoDB Local (for the comparison at the end) starts while the stack deploys.
    let dynamodb_local = tokio::task::spawn_blocking(crate::harness::shared_dynamodb);
    let cloud = Cloud::start().await;
    dynamodb_local.await.expect("DynamoDB Local");
    tokio::time::timeout(EXERCISE_TIMEOUT, exercise(&cloud))
        .await
        .unwrap_or_else(|_| panic!("the calls did not finish within {EXERCISE_TIMEOUT:?}"));
    tokio::time::timeout(
        EXERCISE_TIMEOUT,
        crate::events::events_reach_a_subscribed_queue(&cloud),
    )
    .await
    .unwrap_or_else(|_| panic!("the events part did not finish within {EXERCISE_TIMEOUT:?}"));
    // What on-call gets: the alarms, the dashboard, X-Ray and JSON logs (the
    // log lines of every call above arrive a little after their answers).
    cloud.invocations_settled(1).await;
    observability::check_observability(&cloud);
    drop(cloud);
}

/// The calls, once the stack is up, in order: every RPC over gRPC-Web
/// binary with the service's own client, then over grpc-web-text raw; the
/// authorizer; identity from its claims only; CORS; payment-client; and the
/// emulator's DynamoDB against DynamoDB Local.
async fn exercise(cloud: &Cloud) {
    let mut run = Run::new(cloud);
    run.accounts_and_payments().await;
    run.history_errors_and_every_call().await;
    run.text_calls().await;
    run.every_call_as_text().await;
    run.authorizer().await;
    run.identity_from_claims().await;
    run.cors().await;
    run.payment_client().await;
    dynamodb::emulated_dynamodb_matches_dynamodb_local(cloud).await;
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// template.yaml, parsed.
fn template() -> serde_yaml_ng::Value {
    let path = repo_root().join("template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template")).expect("yaml")
}
