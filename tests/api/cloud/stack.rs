//! The deployed stack: scripts/cloud.sh brings it up (build, emulator,
//! `sam deploy`) and takes it down, scripts/cloud.py asks the emulator about
//! it; [`Gateway`] is the raw way in, requests to the API through the
//! emulator's address with the API named in the Host header.

use super::{ORIGIN, repo_root};
use crate::helpers::grpc_web::{WebReply, raw_at, request_body, request_headers};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long building the function, starting the emulator and deploying may
/// take (the build may first wait for cargo's lock).
const CLOUD_START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the emulator may take to show an invocation in the function's logs.
const LOG_DELAY_MAX: Duration = Duration::from_secs(15);
/// Each call through the gateway (a cold start included).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The deployed stack: scripts/cloud.sh running in its own process group,
/// stopped (with the function processes) when dropped.
pub(crate) struct Cloud {
    child: Child,
    dir: PathBuf,
    state: serde_json::Value,
}

impl Cloud {
    pub(super) async fn start() -> Cloud {
        let dir = repo_root().join(".data/cloud-e2e");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cloud dir");
        let state_file = dir.join("state.json");
        let log = std::fs::File::create(dir.join("cloud.log")).expect("log");
        let child = Command::new(repo_root().join("scripts/cloud.sh"))
            .current_dir(repo_root())
            .env("CLOUD_DIR", ".data/cloud-e2e")
            .env("PAYMENT_CLOUD_PORT", "0")
            // The debug build cargo made for this test: a release build would
            // add minutes to every run.
            .env(
                "PAYMENT_CLOUD_LAMBDA_BIN",
                env!("CARGO_BIN_EXE_payment-lambda"),
            )
            .env(
                "PAYMENT_CLOUD_EVENTS_BIN",
                env!("CARGO_BIN_EXE_payment-events"),
            )
            .env("PAYMENT_CLOUD_ORIGINS", ORIGIN)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("cannot run scripts/cloud.sh");
        let mut cloud = Cloud {
            child,
            dir,
            state: serde_json::Value::Null,
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&state_file)
                && let Ok(state) = serde_json::from_str(&text)
            {
                cloud.state = state;
                break;
            }
            if let Ok(Some(status)) = cloud.child.try_wait() {
                panic!(
                    "scripts/cloud.sh exited with {status} before the stack was up; see {}",
                    cloud.dir.join("cloud.log").display()
                );
            }
            assert!(
                started.elapsed() < CLOUD_START_TIMEOUT,
                "the stack was not up within {CLOUD_START_TIMEOUT:?}; see {}",
                cloud.dir.join("cloud.log").display()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "cloud: stack up after {:.1} s (build, emulator start, sam deploy)",
            started.elapsed().as_secs_f64()
        );
        cloud
    }

    pub(super) fn get(&self, key: &str) -> String {
        match &self.state[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => panic!("state.json has no {key}: {other:?}"),
        }
    }

    /// The API as the stack's ApiUrl output names it:
    /// http://<api-id>.execute-api.localhost:<port>.
    pub(crate) fn api_url(&self) -> String {
        self.get("api_url")
    }

    /// The emulator's address, and the Host header that reaches the API
    /// there (for raw requests).
    pub(super) fn gateway(&self) -> Gateway {
        let api = self.api_url();
        let host = api.trim_start_matches("http://").to_owned();
        Gateway {
            base: self.get("endpoint"),
            host,
        }
    }

    /// scripts/cloud.py against this stack.
    pub(crate) fn cloud_py(&self, args: &[&str]) -> String {
        let output = Command::new(repo_root().join("scripts/cloud-py.sh"))
            .current_dir(repo_root())
            .env("CLOUD_STATE", self.dir.join("state.json"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("scripts/cloud-py.sh");
        assert!(
            output.status.success(),
            "cloud.py {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    pub(crate) fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["token"];
        all.extend_from_slice(args);
        self.cloud_py(&all)
    }

    /// How many times the function has run so far.
    fn invocations(&self) -> u64 {
        self.cloud_py(&["invocations"]).parse().expect("a count")
    }

    /// Waits until the function's logs show at least `expected` invocations
    /// and then stop growing (they arrive a little after the answers), and
    /// returns the count.
    pub(super) async fn invocations_settled(&self, expected: u64) -> u64 {
        let started = Instant::now();
        let mut last = self.invocations();
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let count = self.invocations();
            if (count >= expected && count == last) || started.elapsed() > LOG_DELAY_MAX {
                return count;
            }
            last = count;
        }
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // scripts/cloud.sh stops the emulator and each function process by pid.
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Last resort: the whole process group.
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// The API, raw, through the emulator's address (the Host header names it).
pub(super) struct Gateway {
    pub(super) base: String,
    pub(super) host: String,
}

impl Gateway {
    /// One raw request to the API through the emulator (Host header names it).
    pub(super) async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> WebReply {
        let mut all = vec![("host", self.host.as_str())];
        all.extend_from_slice(headers);
        tokio::time::timeout(CALL_TIMEOUT, raw_at(&self.base, method, path, &all, body))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {CALL_TIMEOUT:?}"))
    }

    /// A gRPC-Web request (binary or text) of `method` with this body and
    /// these headers besides gRPC-Web's own.
    pub(super) async fn call(
        &self,
        method: &str,
        text: bool,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> WebReply {
        let mut all = request_headers(text);
        all.extend_from_slice(headers);
        let path = format!("/payment.v1.PaymentService/{method}");
        self.send(http::Method::POST, &path, &all, body).await
    }

    /// A gRPC-Web call (binary) of `method` with `message` and
    /// `authorization`, from the allowed origin.
    pub(super) async fn rpc(
        &self,
        method: &str,
        message: Vec<u8>,
        authorization: Option<&str>,
    ) -> WebReply {
        let mut headers = vec![("origin", ORIGIN)];
        if let Some(value) = authorization {
            headers.push(("authorization", value));
        }
        self.call(method, false, request_body(&message, false), &headers)
            .await
    }

    /// A grpc-web-text call: base64 request, base64 reply decoded chunk by chunk.
    pub(super) async fn rpc_text(&self, method: &str, message: Vec<u8>, token: &str) -> WebReply {
        let authorization = format!("Bearer {token}");
        let headers = [("authorization", authorization.as_str())];
        self.call(method, true, request_body(&message, true), &headers)
            .await
    }
}
