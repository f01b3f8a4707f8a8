//! A seeded fault proxy between one service instance and DynamoDB Local.
//!
//! The AWS SDK speaks HTTP/1.1 with JSON bodies to DynamoDB Local; the
//! operation is named by `X-Amz-Target`. The proxy reads each request
//! whole, then, by a draw from its own seeded generator:
//! - **delay**: waits up to [`FaultPlan::delay_max`], then forwards;
//! - **drop-reply**: forwards the request, lets DynamoDB answer, and breaks
//!   the connection instead of passing the reply on (the write may have
//!   committed; the instance cannot tell);
//! - **late-write** (writes only): forwards the write only after
//!   [`FaultPlan::late_after`], longer than any caller's deadline, from a
//!   task of its own, so it reaches DynamoDB after the instance's call was
//!   cut off and gave up on it (the interleaving of issue 18: a write on the
//!   wire commits after its caller was told DEADLINE_EXCEEDED);
//! - **reset**: breaks the connection without forwarding anything.
//!
//! A broken connection is an HTTP reply whose body fails: hyper then closes
//! the connection without finishing the reply, which the SDK sees as a
//! connection error, as it would a reset. Faults are counted by kind.
//!
//! During a blackout (the run stops DynamoDB Local) every request is
//! broken at once and late writes wait for the blackout to end, so nothing
//! is acknowledged within DynamoDB Local's durability lag before it is
//! killed (see PITFALLS: killed within about 100 ms of acknowledging a
//! write, it can lose it; that is its durability, not the service's).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest request or reply body the proxy reads (DynamoDB's own request
/// limit is 16 MB).
const BODY_MAX: usize = 16 * 1024 * 1024;
/// How often a late write waiting out a blackout looks again.
const BLACKOUT_POLL: Duration = Duration::from_millis(50);

/// How often each fault strikes, in requests per thousand (late writes: per
/// thousand writes), and how long delays and late writes last.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub delay_per_mille: u32,
    pub delay_max: Duration,
    pub drop_reply_per_mille: u32,
    pub late_write_per_mille: u32,
    /// A late write goes out after a time drawn from this range.
    pub late_after: (Duration, Duration),
    pub reset_per_mille: u32,
}

impl FaultPlan {
    /// No faults: everything passes through.
    pub fn none() -> FaultPlan {
        FaultPlan {
            delay_per_mille: 0,
            delay_max: Duration::ZERO,
            drop_reply_per_mille: 0,
            late_write_per_mille: 0,
            late_after: (Duration::ZERO, Duration::ZERO),
            reset_per_mille: 0,
        }
    }
}

/// What the proxies did, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FaultCounts {
    pub delay: u64,
    pub drop_reply: u64,
    pub late_write: u64,
    /// Late writes that DynamoDB then accepted (HTTP 200): each committed
    /// after its caller had been cut off.
    pub late_write_accepted: u64,
    pub reset: u64,
    /// Requests broken because DynamoDB Local was being stopped.
    pub blackout: u64,
    /// Requests passed to DynamoDB Local.
    pub forwarded: u64,
}

impl FaultCounts {
    pub fn add(&mut self, other: &FaultCounts) {
        self.delay += other.delay;
        self.drop_reply += other.drop_reply;
        self.late_write += other.late_write;
        self.late_write_accepted += other.late_write_accepted;
        self.reset += other.reset;
        self.blackout += other.blackout;
        self.forwarded += other.forwarded;
    }
}

#[derive(Default)]
struct Counters {
    delay: AtomicU64,
    drop_reply: AtomicU64,
    late_write: AtomicU64,
    late_write_accepted: AtomicU64,
    reset: AtomicU64,
    blackout: AtomicU64,
    forwarded: AtomicU64,
    /// Requests on their way to DynamoDB Local or waiting for its reply.
    in_flight: AtomicU64,
    /// Late writes not yet delivered.
    late_pending: AtomicU64,
}

struct Shared {
    upstream: String,
    client: HttpClient<HttpConnector, Full<Bytes>>,
    rng: Mutex<StdRng>,
    plan: Mutex<FaultPlan>,
    blackout: AtomicBool,
    counters: Counters,
}

/// What one request gets.
enum Action {
    Forward,
    Delay(Duration),
    DropReply,
    LateWrite(Duration),
    Reset,
}

/// One proxy: listens on 127.0.0.1 on a free port until dropped.
pub struct FaultProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:port`) that
    /// passes everything through until given a plan.
    pub async fn start(upstream: &str, seed: u64) -> std::io::Result<FaultProxy> {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            upstream,
            client: HttpClient::builder(TokioExecutor::new()).build(connector),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            plan: Mutex::new(FaultPlan::none()),
            blackout: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|socket| {
            let _ = socket.set_nodelay(true);
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FaultProxy { url, shared, task })
    }

    /// Faults from now on, by `plan`.
    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut current) = self.shared.plan.lock() {
            *current = plan;
        }
    }

    /// Breaks every request (true) or lets them through again (false).
    pub fn set_blackout(&self, on: bool) {
        self.shared.blackout.store(on, Ordering::SeqCst);
    }

    /// Requests forwarded and not yet answered by DynamoDB Local.
    pub fn in_flight(&self) -> u64 {
        self.shared.counters.in_flight.load(Ordering::SeqCst)
    }

    /// Late writes not yet delivered.
    pub fn late_pending(&self) -> u64 {
        self.shared.counters.late_pending.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultCounts {
            delay: get(&c.delay),
            drop_reply: get(&c.drop_reply),
            late_write: get(&c.late_write),
            late_write_accepted: get(&c.late_write_accepted),
            reset: get(&c.reset),
            blackout: get(&c.blackout),
            forwarded: get(&c.forwarded),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Shared {
    fn decide(&self, is_write: bool) -> Action {
        let plan = match self.plan.lock() {
            Ok(plan) => plan.clone(),
            Err(_) => return Action::Forward,
        };
        let Ok(mut rng) = self.rng.lock() else {
            return Action::Forward;
        };
        // One draw per request decides its fate; the order of the kinds is
        // fixed, so a seed gives the same sequence of fates.
        let draw = rng.random_range(0..1000u32);
        let mut bound = 0;
        let mut hit = |per_mille: u32| {
            bound += per_mille;
            draw < bound
        };
        if hit(plan.reset_per_mille) {
            return Action::Reset;
        }
        if hit(plan.drop_reply_per_mille) {
            return Action::DropReply;
        }
        if is_write && hit(plan.late_write_per_mille) {
            let (low, high) = plan.late_after;
            let ms = rng.random_range(
                low.as_millis() as u64..=high.as_millis().max(low.as_millis()) as u64,
            );
            return Action::LateWrite(Duration::from_millis(ms));
        }
        if hit(plan.delay_per_mille) && !plan.delay_max.is_zero() {
            let ms = rng.random_range(1..=plan.delay_max.as_millis().max(1) as u64);
            return Action::Delay(Duration::from_millis(ms));
        }
        Action::Forward
    }
}

/// Whether a DynamoDB operation writes.
fn is_write(target: &str) -> bool {
    [
        "TransactWriteItems",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
    ]
    .iter()
    .any(|op| target.ends_with(&format!(".{op}")))
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_MAX).await {
        Ok(body) => body,
        Err(_) => return broken(),
    };
    if shared.blackout.load(Ordering::SeqCst) {
        shared.counters.blackout.fetch_add(1, Ordering::SeqCst);
        return broken();
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default();
    let counters = &shared.counters;
    match shared.decide(is_write(target)) {
        Action::Forward => forward(&shared, parts, body).await,
        Action::Delay(wait) => {
            counters.delay.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(wait).await;
            forward(&shared, parts, body).await
        }
        Action::Reset => {
            counters.reset.fetch_add(1, Ordering::SeqCst);
            broken()
        }
        Action::DropReply => {
            counters.drop_reply.fetch_add(1, Ordering::SeqCst);
            // Forwarded from a task of its own, so that it completes even
            // if the instance gives up first.
            let task_shared = shared.clone();
            let _ = tokio::spawn(async move { forward(&task_shared, parts, body).await }).await;
            broken()
        }
        Action::LateWrite(after) => {
            counters.late_write.fetch_add(1, Ordering::SeqCst);
            counters.late_pending.fetch_add(1, Ordering::SeqCst);
            let task_shared = shared.clone();
            let delivery = tokio::spawn(async move {
                tokio::time::sleep(after).await;
                while task_shared.blackout.load(Ordering::SeqCst) {
                    tokio::time::sleep(BLACKOUT_POLL).await;
                }
                let reply = forward(&task_shared, parts, body).await;
                if reply.status() == http::StatusCode::OK {
                    task_shared
                        .counters
                        .late_write_accepted
                        .fetch_add(1, Ordering::SeqCst);
                }
                task_shared
                    .counters
                    .late_pending
                    .fetch_sub(1, Ordering::SeqCst);
                reply
            });
            // The instance gave up long before (its call's deadline); if it
            // is somehow still waiting, it gets the reply.
            delivery.await.unwrap_or_else(|_| broken())
        }
    }
}

async fn forward(shared: &Shared, parts: http::request::Parts, body: Bytes) -> Response {
    let counters = &shared.counters;
    counters.forwarded.fetch_add(1, Ordering::SeqCst);
    // Counted down however the forward ends: hyper drops a handler whose
    // caller went away.
    struct InFlight<'a>(&'a AtomicU64);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    counters.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&counters.in_flight);
    forward_once(shared, parts, body).await
}

async fn forward_once(shared: &Shared, parts: http::request::Parts, body: Bytes) -> Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("http://{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        if !is_framing(name) {
            builder = builder.header(name, value);
        }
    }
    let Ok(request) = builder.body(Full::new(body)) else {
        return broken();
    };
    let reply = match shared.client.request(request).await {
        Ok(reply) => reply,
        // DynamoDB Local is down: what a load balancer in front of it says.
        Err(_) => return bad_gateway(),
    };
    let (parts, body) = reply.into_parts();
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return broken();
    };
    let mut response = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        if !is_framing(name) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(body)).unwrap_or_else(|_| broken())
}

fn is_framing(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection" | "keep-alive"
    )
}

fn bad_gateway() -> Response {
    let mut response = Response::new(Body::from("proxy: DynamoDB Local is unreachable"));
    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
    response
}

/// A reply whose body fails at once: hyper breaks the connection.
fn broken() -> Response {
    let failing = tokio_stream::once(Err::<Bytes, std::io::Error>(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "fault proxy: connection broken",
    )));
    Response::new(Body::from_stream(failing))
}
