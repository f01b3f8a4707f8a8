//! payment-bench: a payment workload against the service (gRPC or gRPC-Web),
//! and in the same run the same DynamoDB requests issued directly by the
//! ledger with no service in between: the physical limit on this machine.
//!
//! Without `--endpoint` it starts the service itself on 127.0.0.1, so it can
//! count the service's DynamoDB requests and measure its CPU time. The
//! service runs on a runtime (threads) of its own, apart from the load
//! generator's, either as one server or, with `--containers K`, as K
//! independent instances in the Lambda shape: each with its own DynamoDB
//! client, ledger and service, on its own port, answering one call at a
//! time, with the callers spread over them. DynamoDB is configured the
//! standard AWS way (AWS_ENDPOINT_URL_DYNAMODB for DynamoDB Local).
//!
//! Scenarios: `accounts` pays between random accounts (optionally with hot
//! ones); `merchant` has N customers pay one merchant, each caller paying
//! from customers of its own, so that the merchant is the only account two
//! callers share. The benchmark opens its own accounts (prefix
//! `bench-<run id>`), checks after every payment phase that no money was
//! created or lost in them (and in the merchant scenario that the merchant
//! received exactly the committed payments), optionally audits the whole
//! ledger (`--audit`), and prints per phase payments/s, latency percentiles,
//! ABORTED, DynamoDB requests and rounds per payment, the service's CPU per
//! payment, and the ratios between the shapes. Balance reads, history
//! pages and health checks (`--health-checks`: the service's own stack with
//! nothing behind it) follow the payments.
//!
//! The files, one idea each: `args` (the flags), `workload` (accounts and
//! who pays whom), `fleet` (one server or K containers), `measure` (running
//! one timed phase), `phases`, `holds` and `direct` (the phases), `checks`
//! (conservation and promotion), `cpu` (per-thread CPU time), `report`
//! (printing and JSON), `run` (one whole run, phase after phase) and
//! `otlp_receiver` (where the spans go when tracing's cost is measured; the
//! tests use it too).

mod args;
mod checks;
mod cpu;
mod direct;
mod fleet;
mod holds;
mod measure;
mod otlp_receiver;
mod phases;
mod report;
mod run;
mod workload;

use args::Args;
use clap::Parser;
use cpu::ThreadCpu;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A client transport the phases can call through: tonic's `Channel`
/// (native gRPC) or the gRPC-Web client, with the bounds tonic's generated
/// client asks of it, written once.
trait Transport:
    tonic::client::GrpcService<
        tonic::body::Body,
        Future: Send,
        Error: Into<BoxError>,
        ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                          + Send
                          + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Transport for T where
    T: tonic::client::GrpcService<
            tonic::body::Body,
            Future: Send,
            Error: Into<BoxError>,
            ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                              + Send
                              + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    args.check()?;
    // Logs as payment-server writes them (RUST_LOG, scripts/bench.sh sets
    // warn): without a subscriber every span the libraries open would fall
    // back to the `log` crate, a cost the server does not pay.
    payment::config::init_tracing(payment::settings::LogFormat::Text);
    let cpu = ThreadCpu::default();
    let service_threads = args.service_threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |n| n as usize,
    );
    let service_runtime = {
        let (start, stop) = (cpu.clone(), cpu.clone());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(service_threads)
            .thread_name("payment-service")
            .on_thread_start(move || start.thread_started())
            .on_thread_stop(move || stop.thread_stopping())
            .enable_all()
            .build()?
    };
    let load_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-load")
        .enable_all()
        .build()?;
    let result = load_runtime.block_on(run::run(
        args,
        cpu,
        service_threads,
        service_runtime.handle().clone(),
    ));
    service_runtime.shutdown_timeout(Duration::from_secs(5));
    result
}
