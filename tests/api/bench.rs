//! payment-bench runs end to end (a tiny run on the shared DynamoDB Local):
//! every shape it measures, its JSON, its conservation checks and the audit.
//! Nothing here asserts a timing or a throughput.

use crate::harness::{shared_dynamodb, unique_tables};
use std::process::Command;

fn bench(args: &[&str]) -> serde_json::Value {
    let tables = unique_tables();
    let output = Command::new(env!("CARGO_BIN_EXE_payment-bench"))
        .args(args)
        .args(["--json", "--audit"])
        .env("AWS_ENDPOINT_URL_DYNAMODB", shared_dynamodb())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("PAYMENT_ACCOUNTS_TABLE", &tables.accounts)
        .env("PAYMENT_LEDGER_TABLE", &tables.ledger)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run payment-bench");
    assert!(
        output.status.success(),
        "payment-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "payment-bench printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn phase<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no phase {name:?} in {report}"))
}

#[track_caller]
fn assert_payments_phase(phase: &serde_json::Value, payments: u64) {
    assert_eq!(phase["calls"], payments, "{phase}");
    let ok = phase["ok"].as_u64().expect("ok");
    let aborted = phase["aborted"].as_u64().expect("aborted");
    assert_eq!(phase["other_errors"], 0, "{phase}");
    assert_eq!(ok + aborted, payments, "{phase}");
    // How many calls lose to contention (ABORTED) depends on the machine's
    // speed, so only "some committed" is asserted here; that the committed
    // ones are exactly what is stored is checked against the audit.
    assert!(ok > 0, "{phase}");
    // Every committed payment took at least one TransactWriteItems, and the
    // service ran on threads whose CPU time the bench reads.
    assert!(phase["rounds_per_payment"].as_f64().expect("rounds") >= 1.0);
    assert!(
        phase["dynamodb_requests_per_payment"]
            .as_f64()
            .expect("requests")
            >= 1.0
    );
    assert!(phase["service_cpu_ms_per_payment"].as_f64().expect("cpu") > 0.0);
}

/// Every health check answered SERVING, with no DynamoDB request behind it,
/// and the service's CPU measured for it.
#[track_caller]
fn assert_health_checks(phase: &serde_json::Value, checks: u64) {
    assert_eq!(phase["calls"], checks, "{phase}");
    assert_eq!(phase["ok"], checks, "{phase}");
    assert_eq!(phase["other_errors"], 0, "{phase}");
    assert_eq!(phase["dynamodb_requests"], 0, "{phase}");
    assert!(phase["service_cpu_ms_per_ok_call"].as_f64().expect("cpu") > 0.0);
}

#[tokio::test]
async fn bench_merchant_containers_against_one_server_and_direct() {
    let report = bench(&[
        "--scenario",
        "merchant",
        "--customers",
        "8",
        "--containers",
        "4",
        "--compare-one-server",
        "--payments",
        "40",
        "--warmup",
        "0",
        "--reads",
        "8",
        "--history-pages",
        "2",
    ]);
    assert_eq!(report["callers"], 4, "one caller per container");
    assert_eq!(report["one_call_at_a_time"], true);
    assert_payments_phase(phase(&report, "payments (gRPC, 1 server)"), 40);
    assert_payments_phase(phase(&report, "payments (gRPC, 4 containers)"), 40);
    assert_payments_phase(phase(&report, "payments (direct DynamoDB)"), 40);
    assert_eq!(
        phase(&report, "balance reads (gRPC, 4 containers)")["ok"],
        8
    );
    assert_eq!(
        phase(&report, "history pages (gRPC, 4 containers)")["ok"],
        2
    );
    // The same reads straight through the ledger, on the direct phase's
    // accounts, and each kind of call set against its direct twin.
    assert_eq!(phase(&report, "balance reads (direct DynamoDB)")["ok"], 8);
    assert_eq!(phase(&report, "history pages (direct DynamoDB)")["ok"], 2);
    let over = report["over_direct"].as_array().expect("over_direct");
    let kinds: Vec<&str> = over.iter().filter_map(|o| o["calls"].as_str()).collect();
    assert_eq!(
        kinds,
        ["payments", "balance reads", "history pages"],
        "{report}"
    );
    for o in over {
        assert!(o["service_over_direct"].as_f64().is_some(), "{o}");
        let (service, direct, over) = (
            o["service_cpu_ms_per_call"].as_f64().expect("service cpu"),
            o["direct_cpu_ms_per_call"].as_f64().expect("direct cpu"),
            o["service_cpu_ms_over_direct"]
                .as_f64()
                .expect("cpu over direct"),
        );
        assert!(service > 0.0 && direct > 0.0, "{o}");
        assert!((service - direct - over).abs() < 1e-9, "{o}");
    }
    for ratio in [
        "containers_over_one_server",
        "one_server_over_direct",
        "service_over_direct",
    ] {
        assert!(report[ratio].as_f64().is_some(), "{ratio} in {report}");
    }
    // Conservation: payment-bench exits non-zero when its check fails (and
    // `bench` asserts the exit status); the "conservation" field of its
    // JSON is a constant, so it is not what is checked. The audit counts
    // the payments stored, which must be exactly those the phases were
    // told committed (ABORTED ones moved nothing).
    assert_eq!(report["audit"]["clean"], true, "{report}");
    // 8 customers and a merchant in each of the three phases.
    assert_eq!(report["audit"]["accounts"], 27);
    let ok: u64 = [
        "payments (gRPC, 1 server)",
        "payments (gRPC, 4 containers)",
        "payments (direct DynamoDB)",
    ]
    .iter()
    .map(|name| phase(&report, name)["ok"].as_u64().expect("ok"))
    .sum();
    assert_eq!(report["audit"]["payments"], ok, "{report}");
}

#[tokio::test]
async fn bench_accounts_over_grpc_web() {
    let report = bench(&[
        "--grpc-web",
        "--accounts",
        "5",
        "--callers",
        "3",
        "--payments",
        "30",
        "--warmup",
        "5",
        "--reads",
        "0",
        "--history-pages",
        "0",
        "--health-checks",
        "12",
    ]);
    assert_eq!(report["transport"], "gRPC-Web");
    let phases = report["phases"].as_array().expect("phases");
    assert_eq!(
        phases.len(),
        3,
        "payments and health checks through 1 server, payments direct"
    );
    assert_health_checks(phase(&report, "health checks (gRPC-Web, 1 server)"), 12);
    let over = report["over_direct"].as_array().expect("over_direct");
    assert_eq!(
        over.len(),
        1,
        "health checks have no direct phase: {report}"
    );
    let service = phase(&report, "payments (gRPC-Web, 1 server)");
    assert_eq!(service["calls"], 30);
    assert_eq!(service["other_errors"], 0);
    assert_eq!(
        service["ok"].as_u64().unwrap()
            + service["aborted"].as_u64().unwrap()
            + service["insufficient_funds"].as_u64().unwrap(),
        30
    );
    assert!(report["containers_over_one_server"].is_null());
    assert_eq!(report["audit"]["clean"], true, "{report}");
}

#[tokio::test]
async fn bench_alternates_service_and_direct_in_legs() {
    // 21 payments, 5 reads and 2 pages in 3 legs: 7 payments per leg,
    // reads 2, 2, 1 and pages 1, 1, 0; each leg on fresh accounts.
    let report = bench(&[
        "--accounts",
        "4",
        "--callers",
        "2",
        "--payments",
        "21",
        "--legs",
        "3",
        "--warmup",
        "0",
        "--reads",
        "5",
        "--history-pages",
        "2",
        "--health-checks",
        "4",
    ]);
    assert_eq!(report["legs"], 3);
    let phases = report["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 7, "each kind once per shape: {report}");
    // Checks 2, 1, 1 over the legs, through the service only.
    assert_health_checks(phase(&report, "health checks (gRPC, 1 server)"), 4);
    for shape in ["gRPC, 1 server", "direct DynamoDB"] {
        assert_payments_phase(phase(&report, &format!("payments ({shape})")), 21);
        assert_eq!(phase(&report, &format!("balance reads ({shape})"))["ok"], 5);
        assert_eq!(phase(&report, &format!("history pages ({shape})"))["ok"], 2);
    }
    let over = report["over_direct"].as_array().expect("over_direct");
    assert_eq!(over.len(), 3, "{report}");
    // Fresh accounts in every leg, for the service and the direct calls:
    // 3 legs x 2 x 4 accounts, every committed payment stored once.
    assert_eq!(report["audit"]["clean"], true, "{report}");
    assert_eq!(report["audit"]["accounts"], 24, "{report}");
    let ok: u64 = ["payments (gRPC, 1 server)", "payments (direct DynamoDB)"]
        .iter()
        .map(|name| phase(&report, name)["ok"].as_u64().expect("ok"))
        .sum();
    assert_eq!(report["audit"]["payments"], ok, "{report}");
}

#[tokio::test]
async fn bench_hold_capture_counts_the_requests_of_each_call() {
    let report = bench(&[
        "--scenario",
        "hold-capture",
        "--accounts",
        "4",
        "--callers",
        "4",
        "--payments",
        "20",
        "--warmup",
        "0",
        "--reads",
        "0",
        "--history-pages",
        "0",
    ]);
    assert_eq!(report["scenario"], "hold-capture");
    // 20 holds; the even ones captured (and half of each refunded), the odd
    // ones voided; every call succeeded, at the DynamoDB requests that
    // tests/api/hot.rs asserts for one call alone.
    for (name, calls, requests) in [
        ("authorize", 20, 1.0),
        ("capture", 10, 1.0),
        ("void", 10, 1.0),
        ("refund", 10, 1.0),
    ] {
        let phase = phase(&report, &format!("{name} (gRPC, 1 server)"));
        assert_eq!(
            (&phase["calls"], &phase["ok"]),
            (&calls.into(), &calls.into()),
            "{phase}"
        );
        assert_eq!(phase["dynamodb_requests_per_call"], requests, "{phase}");
        assert!(
            report["throughput_over_payments"][name].as_f64().is_some(),
            "{report}"
        );
    }
    assert_payments_phase(phase(&report, "payments (gRPC, 1 server)"), 20);
    assert!(
        report["phases"].as_array().unwrap().len() == 5,
        "no direct phase"
    );
    assert_eq!(report["audit"]["clean"], true, "{report}");
}
