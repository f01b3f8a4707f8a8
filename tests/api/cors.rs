//! CORS: off unless origins are configured, on both entry points; the
//! payment-server binary's default; bad origin lists stop the start-up.

use crate::harness::{DEV_SECRET, free_port, shared_dynamodb, token, unique_tables};
use crate::helpers::grpc_web::{WebReply, frame, raw_at};
use payment::auth::Authenticator;
use payment::ledger::{Ledger, Tables};
use payment::pb;
use payment::service::PaymentApi;
use prost::Message;
use std::time::{Duration, Instant};

const BALANCE: &str = "/payment.v1.PaymentService/GetAccountBalance";
const DEV_ORIGIN: &str = "http://localhost:5173";

fn preflight_headers(origin: &str) -> [(&str, &str); 3] {
    [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        ),
    ]
}

fn allowed_origin(reply: &WebReply) -> Option<String> {
    reply
        .headers
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// payment-server (the binary) on a free port; killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    base: String,
}

impl ServerProcess {
    fn start(tables: &Tables, extra_env: &[(&str, &str)]) -> ServerProcess {
        let port = free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_payment-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_ENDPOINT_URL_DYNAMODB", shared_dynamodb())
            .env("PAYMENT_DEV_JWT_SECRET", DEV_SECRET)
            .env("PAYMENT_LISTEN", format!("127.0.0.1:{port}"))
            .env("PAYMENT_ACCOUNTS_TABLE", &tables.accounts)
            .env("PAYMENT_LEDGER_TABLE", &tables.ledger)
            .envs(extra_env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "payment-server exited"
            );
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "payment-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    async fn preflight(&self, origin: &str) -> WebReply {
        raw_at(
            &self.base,
            http::Method::OPTIONS,
            BALANCE,
            &preflight_headers(origin),
            vec![],
        )
        .await
    }

    async fn call(&self, origin: &str) -> WebReply {
        let auth = format!("Bearer {}", token("tester", true));
        let body = frame(
            &pb::GetAccountBalanceRequest {
                account_id: "nobody".into(),
            }
            .encode_to_vec(),
        );
        raw_at(
            &self.base,
            http::Method::POST,
            BALANCE,
            &[
                ("content-type", "application/grpc-web+proto"),
                ("origin", origin),
                ("authorization", &auth),
            ],
            body,
        )
        .await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn payment_server_sends_no_cors_headers_unless_origins_are_configured() {
    // No tables: the calls' own answers do not matter here, their headers do.
    let tables = unique_tables();
    let server = ServerProcess::start(&tables, &[]);
    let preflight = server.preflight(DEV_ORIGIN).await;
    assert_eq!(allowed_origin(&preflight), None);
    assert!(
        preflight
            .headers
            .get("access-control-allow-headers")
            .is_none(),
        "{:?}",
        preflight.headers
    );
    // Not answered as a preflight: tonic-web refuses it (a 4xx, never a 5xx).
    assert!(
        (400..500).contains(&preflight.http_status),
        "HTTP {}",
        preflight.http_status
    );
    let call = server.call(DEV_ORIGIN).await;
    assert!(call.grpc_status().is_some(), "a gRPC-Web reply");
    assert_eq!(allowed_origin(&call), None);
    drop(server);

    let server = ServerProcess::start(
        &tables,
        &[(
            "PAYMENT_CORS_ORIGINS",
            "https://app.example.com, http://localhost:5173",
        )],
    );
    let preflight = server.preflight(DEV_ORIGIN).await;
    assert_eq!(preflight.http_status, 200);
    assert_eq!(allowed_origin(&preflight).as_deref(), Some(DEV_ORIGIN));
    let call = server.call(DEV_ORIGIN).await;
    assert_eq!(allowed_origin(&call).as_deref(), Some(DEV_ORIGIN));
    // An origin not on the list gets no permission.
    let other = server.preflight("https://evil.example.com").await;
    assert_eq!(allowed_origin(&other), None);
    let call = server.call("https://evil.example.com").await;
    assert_eq!(allowed_origin(&call), None);
}

#[test]
fn a_bad_origin_list_stops_the_start_up() {
    for origins in [
        "app.example.com",
        "https://app.example.com/path",
        "https://a.example.com,*",
    ] {
        let (status, stderr) = crate::tokens::run_until_exit(
            env!("CARGO_BIN_EXE_payment-server"),
            &[
                ("PAYMENT_DEV_JWT_SECRET", DEV_SECRET),
                ("PAYMENT_CORS_ORIGINS", origins),
            ],
        );
        assert!(!status.success(), "{origins}");
        assert!(
            stderr.contains("PAYMENT_CORS_ORIGINS"),
            "{origins}: {stderr}"
        );
    }
}

#[tokio::test]
async fn the_lambda_stack_sends_no_cors_headers_unless_origins_are_configured() {
    let preflight_event = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/cors-preflight.json"),
    )
    .unwrap();
    // Tables are not needed: only preflights are sent.
    let ledger = Ledger::new(
        crate::local_dynamodb::client(shared_dynamodb()),
        unique_tables(),
    );
    // What payment-lambda runs with PAYMENT_CORS_ORIGINS unset, then set.
    let unset = payment::settings::Settings::from_lookup(|_| None).unwrap();
    let default = unset.cors_origins;
    for (origins, expected) in [
        (default.as_str(), None),
        ("https://app.example.com", None),
        (DEV_ORIGIN, Some(DEV_ORIGIN)),
    ] {
        let service = payment::stack::http_service(
            PaymentApi::new(ledger.clone(), Authenticator::ApiGateway),
            origins,
        )
        .await
        .unwrap();
        let response = crate::lambda::invoke_raw(&service, &preflight_event).await;
        let status = response.status().as_u16();
        assert!(status < 500, "{origins:?}: HTTP {status}");
        let allowed = response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap());
        assert_eq!(allowed, expected, "{origins:?}");
    }
}
