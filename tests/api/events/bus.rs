//! A bus on 127.0.0.1 that speaks EventBridge's PutEvents (awsJson1_1)
//! to the real SDK client, and refuses the entries a test chooses.

use payment::events::Publisher;
use payment::events::schema::Detail;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The bus name the publisher is given.
pub(super) const BUS: &str = "payments-test-bus";

/// One entry as the bus received it, and whether it accepted it.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) detail: Detail,
    pub(super) detail_type: String,
    pub(super) source: String,
    pub(super) bus: String,
    pub(super) accepted: bool,
}

#[derive(Debug, Default)]
struct BusState {
    /// Every PutEvents call, its entries in order.
    calls: Vec<Vec<Received>>,
    /// Entries to refuse, by detail id: how many more times.
    fail: HashMap<String, usize>,
}

pub(super) struct FakeBus {
    url: String,
    state: Arc<Mutex<BusState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeBus {
    pub(super) async fn start() -> FakeBus {
        let state = Arc::new(Mutex::new(BusState::default()));
        let shared = state.clone();
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: bytes::Bytes| {
                let state = shared.clone();
                async move { put_events(&state, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake bus");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake bus");
        });
        FakeBus { url, state, task }
    }

    /// A publisher whose real EventBridge client talks to this bus.
    pub(super) fn publisher(&self) -> Publisher {
        use aws_sdk_eventbridge::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_eventbridge::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("local", "local", None, None, "static"))
            .build();
        Publisher::new(aws_sdk_eventbridge::Client::from_conf(config), BUS)
    }

    pub(super) fn fail(&self, id: &str, times: usize) {
        self.state.lock().unwrap().fail.insert(id.to_owned(), times);
    }

    pub(super) fn calls(&self) -> Vec<Vec<Received>> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Every accepted event, in the order the bus accepted them.
    pub(super) fn accepted(&self) -> Vec<Received> {
        self.calls()
            .into_iter()
            .flatten()
            .filter(|r| r.accepted)
            .collect()
    }
}

/// PutEvents (awsJson1_1): `{"Entries": [...]}` in; per entry an EventId
/// or an ErrorCode out, in order, as EventBridge answers.
fn put_events(
    state: &Mutex<BusState>,
    body: &[u8],
) -> (
    http::StatusCode,
    [(http::header::HeaderName, &'static str); 1],
    String,
) {
    let json_type = (http::header::CONTENT_TYPE, "application/x-amz-json-1.1");
    let request: serde_json::Value = serde_json::from_slice(body).expect("PutEvents JSON");
    let entries = request["Entries"].as_array().expect("Entries").clone();
    let bytes: usize = entries
        .iter()
        .map(|e| {
            14 + e["Source"].as_str().unwrap_or("").len()
                + e["DetailType"].as_str().unwrap_or("").len()
                + e["Detail"].as_str().unwrap_or("").len()
        })
        .sum();
    if entries.is_empty() || entries.len() > 10 || bytes > 256 * 1024 {
        // As EventBridge refuses a call over its limits: the test fails on it.
        let error = serde_json::json!({
            "__type": "ValidationException",
            "message": format!("{} entries, {bytes} bytes", entries.len()),
        });
        return (
            http::StatusCode::BAD_REQUEST,
            [json_type],
            error.to_string(),
        );
    }
    let mut state = state.lock().unwrap();
    let mut call = Vec::new();
    let mut results = Vec::new();
    for entry in &entries {
        let detail: Detail =
            serde_json::from_str(entry["Detail"].as_str().expect("Detail")).expect("a Detail");
        let refuse = match state.fail.get_mut(&detail.id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        results.push(if refuse {
            serde_json::json!({"ErrorCode": "InternalFailure", "ErrorMessage": "chosen by the test"})
        } else {
            serde_json::json!({"EventId": uuid::Uuid::new_v4().to_string()})
        });
        call.push(Received {
            detail,
            detail_type: entry["DetailType"].as_str().unwrap_or("").to_owned(),
            source: entry["Source"].as_str().unwrap_or("").to_owned(),
            bus: entry["EventBusName"].as_str().unwrap_or("").to_owned(),
            accepted: !refuse,
        });
    }
    state.calls.push(call);
    let failed = results
        .iter()
        .filter(|r| r.get("ErrorCode").is_some())
        .count();
    let reply = serde_json::json!({"FailedEntryCount": failed, "Entries": results});
    (http::StatusCode::OK, [json_type], reply.to_string())
}
