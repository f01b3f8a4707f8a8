//! payment-server: the payment service as a standalone gRPC + gRPC-Web server.

use clap::Parser;
use payment::settings::{self, AuthMode, Settings};
use payment::telemetry::traces::Traces;
use payment::{auth::Authenticator, config, ledger::Ledger, server, service::PaymentApi, stack};
use std::net::SocketAddr;
use std::sync::Arc;

/// Serves the payment ledger over native gRPC (HTTP/2) and gRPC-Web
/// (HTTP/1.1) on one port. DynamoDB is configured the standard AWS way
/// (AWS_REGION, credentials chain, AWS_ENDPOINT_URL_DYNAMODB). Callers are
/// verified from their bearer JWT: PAYMENT_DEV_JWT_SECRET (HS256, local
/// development) or PAYMENT_JWKS_URL / PAYMENT_JWKS_FILE (RS256/ES256, with
/// PAYMENT_JWT_ISSUER and PAYMENT_JWT_AUDIENCE required); see
/// docs/security.md. Traces go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is
/// set, with the standard OTEL_* settings (docs/observability.md). Every
/// PAYMENT_* variable is in docs/operating.md.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "PAYMENT_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Create the DynamoDB tables if they are missing (for DynamoDB Local), then serve.
    #[arg(long)]
    create_tables: bool,
    /// Origins allowed to call from a browser (CORS): a comma-separated list
    /// such as https://app.example.com, or *. Default: PAYMENT_CORS_ORIGINS,
    /// else none (CORS off).
    #[arg(long)]
    cors_origins: Option<String>,
    /// Answer at most this many calls at a time (1-1024), the others
    /// waiting their turn; 1 serves like one Lambda container (the history
    /// checker's instances). Default: no limit.
    #[arg(long, env = "PAYMENT_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    concurrency: Option<u32>,
    /// Serve Prometheus metrics at http://ADDR/metrics (a listener of its
    /// own, e.g. 127.0.0.1:9464). Default: off.
    #[arg(long, env = "PAYMENT_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Display, not Debug: configuration errors say what to set.
            eprintln!("payment-server: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Configuration errors stop the start-up before anything else happens.
    let mut settings = Settings::from_env()?;
    if let Some(origins) = args.cors_origins {
        stack::cors(&origins)?;
        settings.cors_origins = origins;
    }
    config::init_tracing(settings.log_format);
    if settings.ledger.test_clock_skew_ms != 0 {
        tracing::warn!(
            skew_ms = settings.ledger.test_clock_skew_ms,
            "the ledger's clock is skewed by the test-only {}",
            settings::TEST_CLOCK_SKEW_ENV
        );
    }
    if settings.auth.mode == AuthMode::ApiGateway {
        return Err(format!(
            "{}=apigateway is only for the Lambda behind API Gateway; payment-server verifies bearer tokens itself ({}=jwt)",
            settings::AUTH_MODE_ENV,
            settings::AUTH_MODE_ENV
        )
        .into());
    }
    let auth = Authenticator::from_settings(&settings.auth).await?;
    let ledger = Ledger::from_settings(config::dynamodb_client().await, &settings.ledger);
    if args.create_tables {
        ledger.create_tables().await?;
    }
    let traces = Traces::otlp_from_env()?.map(Arc::new);
    if traces.is_some() {
        tracing::info!("traces: a span per call, exported over OTLP (OTEL_EXPORTER_OTLP_*)");
    }
    let telemetry = match args.metrics_listen {
        Some(addr) => payment::telemetry::prometheus::listen(addr).await?,
        None => payment::telemetry::Telemetry::off(),
    }
    .with_traces(traces.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(address = %listener.local_addr()?, tables = ?ledger.tables(), "payment-server listening");
    server::serve_limited(
        listener,
        PaymentApi::new(ledger, auth).with_telemetry(telemetry),
        &settings.cors_origins,
        args.concurrency.map(|n| n as usize),
        shutdown_signal(),
    )
    .await?;
    if let Some(traces) = traces {
        // The last spans, exported off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    tracing::info!("payment-server stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight calls");
}
