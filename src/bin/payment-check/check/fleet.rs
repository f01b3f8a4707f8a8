//! The processes of a checker run: DynamoDB Local with its data on disk
//! (stopped and started again during the run), and K payment-server
//! instances, separate processes each answering one call at a time (like
//! Lambda containers), each reaching DynamoDB through its own fault proxy.

use super::proxy::FaultProxy;
use payment::settings;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long DynamoDB Local or an instance may take to listen. A bound on
/// a hang, not on speed: a loaded machine starts a JVM in seconds.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The DEV secret the instances accept tokens signed with (HS256).
pub const DEV_SECRET: &str = "payment-check-dev-secret-0123456789";

/// Asks the kernel to kill the child when the thread that spawned it goes
/// (PR_SET_PDEATHSIG), so a checker that dies leaves no process behind.
/// The crate's one unsafe block: `pre_exec` is unsafe because its closure
/// runs between fork and exec.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits until 127.0.0.1:`port` accepts connections, failing if `child`
/// exits first.
async fn wait_listening(port: u16, child: &mut Child, what: &str) -> Result<(), BoxError> {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            return Err(
                format!("{what} exited with {status} before listening on port {port}").into(),
            );
        }
        if started.elapsed() > START_TIMEOUT {
            return Err(format!(
                "{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free port below the kernel's ephemeral range, so that no outgoing
/// connection takes it while DynamoDB Local is down between a stop and a
/// start. Falls back to any free port.
pub fn port_for_restarts(seed: u64) -> u16 {
    use rand::{Rng, SeedableRng};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (
        low.saturating_sub(12_000).max(1024),
        low.saturating_sub(1_000),
    );
    // Not the run's seed alone: two runs at once must not pick one port.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ u64::from(std::process::id()));
    for _ in 0..100 {
        if from >= to {
            break;
        }
        let port = rng.random_range(from..to);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// DynamoDB Local, through scripts/dynamodb-local.sh, with its data in a
/// folder, so that stopping and starting it keeps the tables.
pub struct DynamoLocal {
    pub port: u16,
    script: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pub restarts: u32,
}

impl DynamoLocal {
    pub async fn start(
        script: &Path,
        port: u16,
        data_dir: &Path,
        log: &Path,
    ) -> Result<DynamoLocal, BoxError> {
        let mut local = DynamoLocal {
            port,
            script: script.to_owned(),
            data_dir: data_dir.to_owned(),
            log: log.to_owned(),
            child: None,
            restarts: 0,
        };
        local.spawn().await?;
        Ok(local)
    }

    async fn spawn(&mut self) -> Result<(), BoxError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(&self.script);
        command
            .arg(self.port.to_string())
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut command);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start DynamoDB Local with {}: {e}; run scripts/setup.sh first",
                self.script.display()
            )
        })?;
        wait_listening(self.port, &mut child, "DynamoDB Local").await?;
        self.child = Some(child);
        Ok(())
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: the script execs java, so this is the JVM).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills it and starts it again on the same port and data.
    pub async fn restart(&mut self) -> Result<(), BoxError> {
        self.kill();
        self.restarts += 1;
        self.spawn().await
    }
}

impl Drop for DynamoLocal {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to start one instance.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub server_bin: PathBuf,
    pub log: PathBuf,
    pub accounts_table: String,
    pub ledger_table: String,
    /// The test-only clock skew of its ledger, in ms.
    pub skew_ms: i64,
    /// The shard count it promotes a hot ordinary account to, or None:
    /// promotion off.
    pub promote_shards: Option<u32>,
}

/// One payment-server process and the proxy it reaches DynamoDB through.
pub struct Instance {
    pub index: usize,
    pub endpoint: String,
    pub skew_ms: i64,
    pub proxy: FaultProxy,
    child: Child,
}

impl Instance {
    pub async fn start(
        index: usize,
        spec: &InstanceSpec,
        proxy: FaultProxy,
    ) -> Result<Instance, BoxError> {
        let port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)?;
        let mut command = Command::new(&spec.server_bin);
        command
            .env_clear()
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--concurrency")
            .arg("1")
            .env("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env(settings::ACCOUNTS_TABLE_ENV, &spec.accounts_table)
            .env(settings::LEDGER_TABLE_ENV, &spec.ledger_table)
            .env(settings::DEV_JWT_SECRET_ENV, DEV_SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        command.env(
            settings::PROMOTE_SHARDS_ENV,
            spec.promote_shards
                .map_or_else(|| "off".to_owned(), |n| n.to_string()),
        );
        if spec.skew_ms != 0 {
            command.env(settings::TEST_CLOCK_SKEW_ENV, spec.skew_ms.to_string());
        }
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", spec.server_bin.display()))?;
        wait_listening(
            port,
            &mut child,
            &format!("instance {index} ({})", spec.server_bin.display()),
        )
        .await?;
        Ok(Instance {
            index,
            endpoint: format!("http://127.0.0.1:{port}"),
            skew_ms: spec.skew_ms,
            proxy,
            child,
        })
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
