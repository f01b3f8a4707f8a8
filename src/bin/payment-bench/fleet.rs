//! The service, as one server or as K containers (or a running service
//! given with --endpoint).

use crate::BoxError;
use payment::auth::{Authenticator, JwtVerifier};
use payment::config;
use payment::ledger::Ledger;
use payment::service::PaymentApi;
use payment::settings::LedgerSettings;
use payment::telemetry::RequestCounter;
use payment::telemetry::traces::Traces;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What the instances record besides their log line: payment-server's
/// Prometheus metrics, and traces exported over OTLP/gRPC to an endpoint.
#[derive(Debug, Clone, Default)]
pub struct Observe {
    pub metrics: bool,
    pub traces_to: Option<String>,
}

/// One service instance: its own DynamoDB client (with its own request
/// counter), ledger, authenticator and service, on its own port.
struct Instance {
    endpoint: String,
    counter: RequestCounter,
    traces: Option<Arc<Traces>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// The service as the callers see it: one endpoint per instance (a started
/// fleet), or a running service given with --endpoint (nothing counted).
pub struct Fleet {
    pub endpoints: Vec<String>,
    instances: Vec<Instance>,
    pub shape: String,
}

impl Fleet {
    pub fn external(endpoint: &str) -> Fleet {
        Fleet {
            endpoints: vec![endpoint.to_owned()],
            instances: Vec::new(),
            shape: "external".into(),
        }
    }

    /// Starts `containers` instances on the service runtime: with 1, one
    /// server answering every call at once; with more, each answers one
    /// call at a time.
    pub async fn start(
        service: &tokio::runtime::Handle,
        containers: u32,
        settings: &LedgerSettings,
        secret: &[u8],
        observe: &Observe,
    ) -> Result<Fleet, BoxError> {
        let limit = (containers > 1).then_some(1);
        let mut instances = Vec::new();
        for _ in 0..containers {
            let (settings, secret, observe) = (settings.clone(), secret.to_vec(), observe.clone());
            let instance = service
                .spawn(async move { start_instance(settings, secret, limit, observe).await })
                .await??;
            instances.push(instance);
        }
        Ok(Fleet {
            endpoints: instances.iter().map(|i| i.endpoint.clone()).collect(),
            instances,
            shape: shape_name(containers),
        })
    }

    pub fn is_counted(&self) -> bool {
        !self.instances.is_empty()
    }

    /// The DynamoDB requests of every instance so far, per operation.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for instance in &self.instances {
            for (op, n) in instance.counter.snapshot() {
                *all.entry(op).or_default() += n;
            }
        }
        all
    }

    /// Stops every instance, after exporting their last spans.
    pub async fn stop(self) {
        for instance in self.instances {
            let _ = instance.stop.send(());
            let _ = instance.task.await;
            if let Some(traces) = instance.traces {
                let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
            }
        }
    }
}

fn shape_name(containers: u32) -> String {
    if containers == 1 {
        "1 server".into()
    } else {
        format!("{containers} containers")
    }
}

/// Runs on the service runtime, so that the instance's sockets and its
/// DynamoDB client's connections are driven by that runtime's threads.
async fn start_instance(
    settings: LedgerSettings,
    secret: Vec<u8>,
    limit: Option<usize>,
    observe: Observe,
) -> Result<Instance, BoxError> {
    let counter = RequestCounter::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        config::dynamodb_config()
            .await
            .interceptor(counter.clone())
            .build(),
    );
    // The ledger's settings as the server and the Lambda read them (with
    // PAYMENT_PROMOTE_SHARDS=off: what an ordinary merchant meets without
    // promotion).
    let ledger = Ledger::from_settings(client, &settings);
    let auth = Authenticator::Jwt(Arc::new(
        JwtVerifier::new(None, None).with_dev_secret(&secret)?,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // As `payment-server --metrics-listen` runs it (its scrape endpoint
    // idle, its upkeep on).
    let telemetry = if observe.metrics {
        payment::telemetry::prometheus::listen("127.0.0.1:0".parse()?).await?
    } else {
        payment::telemetry::Telemetry::off()
    };
    // As payment-server runs it with OTEL_EXPORTER_OTLP_ENDPOINT set: the
    // SDK's batch processor as a task on this (the service's) runtime.
    let traces = match &observe.traces_to {
        Some(endpoint) => Some(Arc::new(Traces::otlp_grpc(endpoint, "payment-bench")?)),
        None => None,
    };
    let telemetry = telemetry.with_traces(traces.clone());
    let api = PaymentApi::new(ledger, auth).with_telemetry(telemetry);
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(err) = payment::server::serve_limited(listener, api, "*", limit, shutdown).await
        {
            eprintln!("service instance failed: {err}");
        }
    });
    Ok(Instance {
        endpoint,
        counter,
        traces,
        stop,
        task,
    })
}
