//! Test harness: a real DynamoDB Local (AWS's emulator) and a real server on
//! 127.0.0.1, per test with fresh tables.
//!
//! One DynamoDB Local process serves the whole test binary; it is started on
//! first use on a free port and killed when the test process exits
//! (PR_SET_PDEATHSIG). If it cannot start, the tests fail loudly: nothing is
//! skipped and nothing is mocked.

use payment::auth::{Authenticator, DevToken, JwtVerifier, mint_dev_token};
use payment::ledger::{Ledger, Tables};
use payment::pb::payment_service_client::PaymentServiceClient;
use payment::service::PaymentApi;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The HS256 secret the test servers accept (dev mode).
pub const DEV_SECRET: &str = "test-secret-test-secret-test-secret";

/// A dev token for `sub`, valid for an hour.
pub fn token(sub: &str, admin: bool) -> String {
    mint_dev_token(
        DEV_SECRET.as_bytes(),
        &DevToken {
            sub,
            admin,
            ttl: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .expect("mint token")
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::AsciiMetadataValue>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self(Some(
            format!("Bearer {token}").parse().expect("header value"),
        ))
    }
    pub fn none() -> Self {
        Self(None)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type AuthedClient<T> = PaymentServiceClient<InterceptedService<T, Bearer>>;

/// The authenticator of the test servers: the dev secret.
pub fn dev_auth() -> Authenticator {
    Authenticator::Jwt(std::sync::Arc::new(
        JwtVerifier::new(None, None)
            .with_dev_secret(DEV_SECRET.as_bytes())
            .expect("dev secret"),
    ))
}

/// The caller most tests act as: an admin (so it may set opening balances)
/// who owns the accounts it opens.
pub const TESTER: &str = "tester";

/// How long DynamoDB Local may take to start accepting connections.
const DYNAMODB_START_TIMEOUT: Duration = Duration::from_secs(60);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A DynamoDB Local process.
pub struct DynamoLocal {
    pub port: u16,
    child: Child,
}

impl DynamoLocal {
    /// Starts DynamoDB Local on `port`, in memory or with its files in
    /// `data_dir`, and waits until it accepts connections.
    pub fn start(port: u16, data_dir: Option<&Path>) -> DynamoLocal {
        let script = repo_root().join("scripts/dynamodb-local.sh");
        let mut command = Command::new(&script);
        command.arg(port.to_string());
        if let Some(dir) = data_dir {
            command.arg(dir);
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; it asks the kernel to kill the
        // child when the thread that spawned it exits.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start DynamoDB Local with {}: {e}; run scripts/setup.sh first",
                script.display()
            )
        });
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "DynamoDB Local exited with {status} before listening on port {port}; run scripts/setup.sh (it needs java)"
                );
            }
            assert!(
                started.elapsed() < DYNAMODB_START_TIMEOUT,
                "DynamoDB Local did not listen on 127.0.0.1:{port} within {DYNAMODB_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        DynamoLocal { port, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The endpoint of the DynamoDB Local shared by this test binary.
pub fn shared_dynamodb() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread that lives as long as the process owns the child, so the
        // parent-death signal fires only when the test binary exits.
        std::thread::spawn(move || {
            let mut local = DynamoLocal::start(free_port(), None);
            tx.send(local.endpoint()).expect("test harness gone");
            let _ = local.child.wait();
        });
        rx.recv_timeout(DYNAMODB_START_TIMEOUT + Duration::from_secs(5))
            .expect("DynamoDB Local did not start; see the panic above")
    })
}

/// Fresh, unique table names, so tests never see each other's data.
pub fn unique_tables() -> Tables {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Tables {
        accounts: format!("t-{id}-accounts"),
        ledger: format!("t-{id}-ledger"),
    }
}

/// A ledger with new tables on the shared DynamoDB Local.
pub async fn fresh_ledger() -> Ledger {
    let client = crate::local_dynamodb::client(shared_dynamodb());
    let ledger = Ledger::new(client, unique_tables());
    create_tables_patiently(&ledger).await;
    ledger
}

/// Creates a test's tables, trying up to three times: on a machine loaded by
/// parallel tests, DynamoDB Local (one JVM for all of them) can miss the
/// SDK's 8 s timeout for a CreateTable. CreateTable is idempotent here (an
/// existing table is fine), so trying again is safe.
pub async fn create_tables_patiently(ledger: &Ledger) {
    for attempt in 1..=3 {
        match ledger.create_tables().await {
            Ok(()) => return,
            Err(err) if attempt < 3 => eprintln!("create tables, attempt {attempt}: {err}"),
            Err(err) => panic!("create tables: {err}"),
        }
    }
}

/// A payment-server serving `ledger` on 127.0.0.1 on a free port until
/// dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub ledger: Ledger,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::serve(fresh_ledger().await).await
    }

    pub async fn serve(ledger: Ledger) -> TestApp {
        Self::serve_with(ledger, dev_auth()).await
    }

    pub async fn serve_with(ledger: Ledger, auth: Authenticator) -> TestApp {
        payment::config::init_tracing(payment::settings::LogFormat::Text);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let api = PaymentApi::new(ledger.clone(), auth);
        let task = tokio::spawn(async move {
            payment::server::serve(listener, api, "*", async {
                let _ = rx.await;
            })
            .await
            .expect("server failed");
        });
        TestApp {
            addr,
            ledger,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A native gRPC client acting as [`TESTER`], an admin.
    pub async fn grpc(&self) -> AuthedClient<Channel> {
        self.grpc_with(Bearer::new(&token(TESTER, true))).await
    }

    /// A native gRPC client acting as `sub`.
    pub async fn grpc_as(&self, sub: &str, admin: bool) -> AuthedClient<Channel> {
        self.grpc_with(Bearer::new(&token(sub, admin))).await
    }

    pub async fn grpc_with(&self, bearer: Bearer) -> AuthedClient<Channel> {
        let channel = payment::client::connect_channel(&self.url())
            .await
            .expect("connect");
        PaymentServiceClient::with_interceptor(channel, bearer)
    }

    /// A gRPC-Web client acting as [`TESTER`], an admin.
    pub fn grpc_web(&self) -> AuthedClient<payment::client::GrpcWebTransport> {
        web_client(&self.url(), Bearer::new(&token(TESTER, true)))
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A gRPC-Web client for `url` with `bearer`.
pub fn web_client(url: &str, bearer: Bearer) -> AuthedClient<payment::client::GrpcWebTransport> {
    let uri = payment::client::endpoint_uri(url).expect("url");
    let transport = payment::client::grpc_web_transport().expect("transport");
    PaymentServiceClient::with_origin(InterceptedService::new(transport, bearer), uri)
}

/// The Lambda function run by `cargo lambda watch` (cargo-lambda from
/// scripts/setup-serverless.sh), on 127.0.0.1 on a free port, against
/// `ledger`'s tables on the shared DynamoDB Local. Stopped when dropped.
pub struct LambdaWatch {
    pub port: u16,
    child: Child,
}

/// How long `cargo lambda watch` may take to build and serve the function.
const LAMBDA_WATCH_START_TIMEOUT: Duration = Duration::from_secs(300);

impl LambdaWatch {
    pub async fn start(ledger: &Ledger) -> LambdaWatch {
        let port = free_port();
        let tools = repo_root().join(".tools/venv/bin");
        assert!(
            tools.join("cargo-lambda").exists(),
            "cargo-lambda is not installed; run scripts/setup-serverless.sh"
        );
        let path = format!(
            "{}:{}",
            tools.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let tables = ledger.tables();
        let env_vars = format!(
            "AWS_ENDPOINT_URL_DYNAMODB={},AWS_REGION=us-east-1,AWS_ACCESS_KEY_ID=local,AWS_SECRET_ACCESS_KEY=local,PAYMENT_ACCOUNTS_TABLE={},PAYMENT_LEDGER_TABLE={},PAYMENT_DEV_JWT_SECRET={DEV_SECRET}",
            shared_dynamodb(),
            tables.accounts,
            tables.ledger
        );
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("lambda-watch-{port}.log")))
                .expect("log file");
        let mut command = Command::new("cargo");
        command
            .current_dir(repo_root())
            .env("PATH", path)
            .args([
                "lambda",
                "watch",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
            ])
            .arg(port.to_string())
            .args([
                "--ignore-changes",
                "--disable-cors",
                "--bin",
                "payment-lambda",
                "--env-vars",
            ])
            .arg(env_vars)
            .stdout(Stdio::null())
            .stderr(log)
            // Its own process group, so that drop stops the function too.
            .process_group(0);
        let child = command.spawn().expect("cannot run cargo lambda watch");
        let watch = LambdaWatch { port, child };
        watch.wait_ready().await;
        watch
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/lambda-url/payment-lambda", self.port)
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let mut client = web_client(&self.url(), Bearer::new(&token(TESTER, true)));
            let probe = client
                .get_account_balance(payment::pb::GetAccountBalanceRequest {
                    account_id: "readiness-probe".into(),
                })
                .await;
            match probe {
                Err(status) if status.code() == tonic::Code::NotFound => return,
                other => {
                    assert!(
                        started.elapsed() < LAMBDA_WATCH_START_TIMEOUT,
                        "cargo lambda watch did not serve the function within {LAMBDA_WATCH_START_TIMEOUT:?}: last answer {other:?}; log in {}",
                        std::env::temp_dir()
                            .join(format!("lambda-watch-{}.log", self.port))
                            .display()
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

impl Drop for LambdaWatch {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGTERM);
        }
        std::thread::sleep(Duration::from_millis(200));
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
