//! payment-client, the binary, against the real server: the hold, refund,
//! lookup, listing, set-shards and watch commands, their text and JSON, and the
//! error reasons, amounts and field violations they print. The client runs
//! as a child process (blocking one worker thread), so the server needs
//! another.

use crate::harness::{TestApp, token};
use crate::helpers::unique;
use std::process::{Command, Output};

struct Cli {
    endpoint: String,
    grpc_web: bool,
}

impl Cli {
    fn run(&self, token: &str, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_payment-client"));
        command.args(["--endpoint", &self.endpoint, "--token", token]);
        if self.grpc_web {
            command.arg("--grpc-web");
        }
        command
            .args(args)
            .env_remove("PAYMENT_TOKEN")
            .env_remove("PAYMENT_ENDPOINT")
            .output()
            .expect("payment-client runs")
    }

    /// Runs a command that must succeed; its standard output.
    fn ok(&self, token: &str, args: &[&str]) -> String {
        let output = self.run(token, args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "payment-client {args:?}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs a --json command that must succeed; its one JSON document.
    fn json(&self, token: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.ok(token, &all);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Runs a command that must fail; its standard error.
    fn fails(&self, token: &str, args: &[&str]) -> String {
        let output = self.run(token, args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?} must fail: {output:?}"
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

async fn holds_refunds_and_lookups_through_the_client(grpc_web: bool) {
    let app = TestApp::spawn().await;
    let cli = Cli {
        endpoint: app.url(),
        grpc_web,
    };
    let (alice_sub, bob_sub) = (unique("alice"), unique("bob"));
    let (alice, bob) = (token(&alice_sub, false), token(&bob_sub, false));
    let (a, b) = (unique("a"), unique("b"));
    cli.ok(
        &token(&alice_sub, true),
        &["add-account", &a, "--initial-balance", "100.00"],
    );
    cli.ok(&bob, &["add-account", &b]);

    // authorize: the hold, and the account's available and held money.
    let out = cli.ok(
        &alice,
        &[
            "authorize",
            "--from",
            &a,
            "--to",
            &b,
            "--amount",
            "30.00",
            "--expires-in",
            "2h",
            "--memo",
            "ride 42",
            "--key",
            "ride-42",
        ],
    );
    assert!(out.contains("idempotency key: ride-42"), "{out}");
    assert!(out.contains("authorized: hold "), "{out}");
    assert!(
        out.contains(&format!("OPEN 30.00 EUR from {a} to {b}")),
        "{out}"
    );
    let out = cli.ok(&alice, &["balance", &a]);
    assert!(
        out.contains("balance 100.00 EUR  available 70.00 EUR  held 30.00 EUR"),
        "{out}"
    );
    let shown = cli.json(&alice, &["balance", &a]);
    assert_eq!(
        (&shown["balance"], &shown["held"], &shown["available"]),
        (&10_000.into(), &3_000.into(), &7_000.into())
    );

    // payment: the lookup by sender and key finds the open hold.
    let found = cli.json(
        &alice,
        &["payment", "--sender", &a, "--sender-key", "ride-42"],
    );
    assert_eq!(found["hold"]["state"], "OPEN", "{found}");
    assert_eq!(found["hold"]["amount"], 3_000);
    let hold_id = found["hold"]["hold_id"].as_str().unwrap().to_owned();

    // capture: part of it, in the hold's currency; then once only.
    let out = cli.ok(&bob, &["capture", &hold_id, "--amount", "12.50"]);
    assert!(
        out.contains(&format!("captured: 12.50 EUR from {a} to {b}")),
        "{out}"
    );
    assert!(out.contains("CAPTURED 30.00 EUR"), "{out}");
    let again = cli.json(&bob, &["capture", &hold_id, "--amount", "12.50"]);
    assert_eq!(again["replayed"], true, "{again}");
    assert_eq!(cli.json(&alice, &["balance", &a])["balance"], 8_750);
    assert_eq!(cli.json(&bob, &["balance", &b])["balance"], 1_250);
    let err = cli.fails(&bob, &["void", &hold_id]);
    assert!(err.contains("reason: HOLD_ALREADY_CAPTURED"), "{err}");

    // void: a second hold, released; then it cannot be captured.
    cli.ok(
        &alice,
        &[
            "authorize",
            "--from",
            &a,
            "--to",
            &b,
            "--amount",
            "5.00",
            "--key",
            "h2",
        ],
    );
    let out = cli.ok(&bob, &["void", "--sender", &a, "--sender-key", "h2"]);
    assert!(out.contains("voided: hold "), "{out}");
    assert!(out.contains("VOIDED 5.00 EUR"), "{out}");
    let err = cli.fails(&bob, &["capture", "--sender", &a, "--sender-key", "h2"]);
    assert!(err.contains("FAILED_PRECONDITION"), "{err}");
    assert!(err.contains("reason: HOLD_VOIDED"), "{err}");
    let shown = cli.json(&alice, &["balance", &a]);
    assert_eq!(
        (&shown["held"], &shown["available"]),
        (&0.into(), &8_750.into())
    );

    // refund: part of a payment, linked to it; more than is left is refused
    // with the amounts in the payment's currency.
    cli.ok(
        &alice,
        &[
            "pay", "--from", &a, "--to", &b, "--amount", "20.00", "--key", "p1",
        ],
    );
    let out = cli.ok(
        &bob,
        &[
            "refund",
            "--sender",
            &a,
            "--sender-key",
            "p1",
            "--amount",
            "5.00",
            "--memo",
            "broken cup",
            "--key",
            "r1",
        ],
    );
    assert!(
        out.contains(&format!("refunded: 5.00 EUR from {b} to {a}")),
        "{out}"
    );
    assert!(out.contains("refunded so far: 5.00 EUR of "), "{out}");
    let err = cli.fails(
        &bob,
        &[
            "refund",
            "--sender",
            &a,
            "--sender-key",
            "p1",
            "--amount",
            "50.00",
        ],
    );
    assert!(err.contains("reason: REFUND_EXCEEDS_PAYMENT"), "{err}");
    assert!(err.contains("refundable: 15.00 EUR"), "{err}");
    assert!(err.contains("requested: 50.00 EUR"), "{err}");
    let payment = cli.json(&alice, &["payment", "--sender", &a, "--sender-key", "p1"]);
    assert_eq!(payment["refunded_total"], 500, "{payment}");
    let payment_id = payment["transaction"]["transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_id = cli.json(&bob, &["payment", &payment_id]);
    assert_eq!(by_id["transaction"]["amount"], 2_000, "{by_id}");
    let history = cli.ok(&alice, &["history", &a]);
    assert!(
        history.contains(&format!("refund of {payment_id}  \"broken cup\"")),
        "{history}"
    );
    assert!(
        history.contains(&format!("capture of hold {hold_id}")),
        "{history}"
    );

    // Insufficient funds, in the account's currency, readable by a program.
    let err = cli.fails(
        &alice,
        &["authorize", "--from", &a, "--to", &b, "--amount", "500.00"],
    );
    assert!(err.contains("reason: INSUFFICIENT_FUNDS"), "{err}");
    assert!(err.contains("available: 72.50 EUR"), "{err}");
    assert!(err.contains("needed: 500.00 EUR"), "{err}");
    let output = cli.run(
        &alice,
        &[
            "--json",
            "authorize",
            "--from",
            &a,
            "--to",
            &b,
            "--amount",
            "500.00",
        ],
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("the error as JSON");
    assert_eq!(report["error"]["code"], "FAILED_PRECONDITION");
    assert_eq!(report["error"]["reason"], "INSUFFICIENT_FUNDS");
    assert_eq!(report["error"]["metadata"]["available_minor"], "7250");

    // A field violation names the field.
    let err = cli.fails(
        &alice,
        &[
            "authorize",
            "--from",
            &a,
            "--to",
            &b,
            "--amount",
            "1",
            "--expires-in",
            "40d",
        ],
    );
    assert!(err.contains("INVALID_ARGUMENT"), "{err}");
    assert!(err.contains("field expires_in_seconds: "), "{err}");

    // payment --finalize: the final answer for a key. A committed one is
    // its record; an unused one is fenced, for good.
    let out = cli.ok(
        &alice,
        &[
            "payment",
            "--sender",
            &a,
            "--sender-key",
            "p1",
            "--finalize",
        ],
    );
    assert!(
        out.starts_with("final: committed; this is what the call with the key did\n"),
        "{out}"
    );
    assert!(out.contains("payment: 20.00 EUR from"), "{out}");
    let final_answer = cli.json(
        &alice,
        &[
            "payment",
            "--sender",
            &a,
            "--sender-key",
            "p1",
            "--finalize",
        ],
    );
    assert_eq!(final_answer["final"], "committed", "{final_answer}");
    assert_eq!(
        final_answer["transaction"]["transaction_id"],
        payment_id.as_str()
    );
    let out = cli.ok(
        &alice,
        &[
            "payment",
            "--sender",
            &a,
            "--sender-key",
            "lost-1",
            "--finalize",
        ],
    );
    assert_eq!(
        out.trim(),
        format!(
            "final: the call with idempotency key lost-1 of {a} did not happen and never will (the key is fenced); decide afresh, with a new key"
        )
    );
    let fenced = cli.json(
        &alice,
        &[
            "payment",
            "--sender",
            &a,
            "--sender-key",
            "lost-1",
            "--finalize",
        ],
    );
    assert_eq!(fenced["final"], "fenced", "{fenced}");
    assert_eq!(fenced["idempotency_key"], "lost-1", "{fenced}");
    // The fenced key: a lookup without --finalize says so, and a payment
    // with it is refused.
    let err = cli.fails(
        &alice,
        &["payment", "--sender", &a, "--sender-key", "lost-1"],
    );
    assert!(err.contains("error: NOT_FOUND: "), "{err}");
    assert!(err.contains("reason: KEY_FENCED"), "{err}");
    let err = cli.fails(
        &alice,
        &[
            "pay", "--from", &a, "--to", &b, "--amount", "1.00", "--key", "lost-1",
        ],
    );
    assert!(err.contains("error: FAILED_PRECONDITION: "), "{err}");
    assert!(err.contains("use a new key"), "{err}");
    assert!(err.contains("reason: KEY_FENCED"), "{err}");
    assert!(err.contains("idempotency_key: lost-1"), "{err}");
    // Someone else's key: GetPayment's answer, and nothing fenced.
    let err = cli.fails(
        &bob,
        &[
            "payment",
            "--sender",
            &a,
            "--sender-key",
            "lost-2",
            "--finalize",
        ],
    );
    assert!(err.contains("reason: PAYMENT_NOT_FOUND"), "{err}");
    // --finalize needs a key.
    let output = cli.run(&alice, &["payment", &payment_id, "--finalize"]);
    assert!(!output.status.success(), "{output:?}");

    // accounts: the caller's own, paged.
    let out = cli.ok(&alice, &["accounts"]);
    assert!(out.contains(&format!("account {a}")), "{out}");
    assert!(!out.contains(&format!("account {b}")), "{out}");
    assert!(out.contains("1 account; that is all"), "{out}");

    // set-shards: an admin raises a's balance shards, the same money over
    // more shards; the same count again changes nothing; fewer is refused,
    // and so is anyone but an admin.
    let admin = token(&alice_sub, true);
    let out = cli.ok(&admin, &["set-shards", &a, "4"]);
    assert!(
        out.starts_with(&format!("raised: {a} now has 4 balance shards\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("account {a}: balance 72.50 EUR  opened ")),
        "{out}"
    );
    assert!(out.contains("(4 balance shards)"), "{out}");
    let out = cli.ok(&admin, &["set-shards", &a, "4"]);
    assert!(
        out.starts_with(&format!("unchanged: {a} has 4 balance shards already\n")),
        "{out}"
    );
    let again = cli.json(&admin, &["set-shards", &a, "4"]);
    assert_eq!(
        (
            &again["raised"],
            &again["balance_shards"],
            &again["balance"]
        ),
        (&false.into(), &4.into(), &7_250.into()),
        "{again}"
    );
    let err = cli.fails(&admin, &["set-shards", &a, "2"]);
    assert!(err.contains("error: FAILED_PRECONDITION: "), "{err}");
    assert!(err.contains("reason: SHARDS_CANNOT_SHRINK"), "{err}");
    assert!(err.contains("asked: 2"), "{err}");
    let err = cli.fails(&alice, &["set-shards", &a, "8"]);
    assert!(err.contains("error: PERMISSION_DENIED: "), "{err}");
    assert!(err.contains("reason: NOT_ALLOWED"), "{err}");
    let err = cli.fails(&admin, &["set-shards", &a, "65"]);
    assert!(err.contains("field balance_shards: "), "{err}");
    assert_eq!(cli.json(&alice, &["balance", &a])["balance_shards"], 4);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_holds_refunds_and_looks_up_over_grpc() {
    holds_refunds_and_lookups_through_the_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_holds_refunds_and_looks_up_over_grpc_web() {
    holds_refunds_and_lookups_through_the_client(true).await;
}

/// `payment-client watch`: from now (nothing yet: only the token), then
/// resumed from that token after a payment (the entry, then the token
/// after it), in text and JSON, and over two calls with --calls; a bad
/// --max-seconds names the field.
async fn watch_through_the_client(grpc_web: bool) {
    let app = TestApp::spawn().await;
    let cli = Cli {
        endpoint: app.url(),
        grpc_web,
    };
    let owner_sub = unique("owner");
    let (admin, owner) = (token(&unique("admin"), true), token(&owner_sub, false));
    let (payer, shop) = (unique("payer"), unique("shop"));
    cli.ok(
        &admin,
        &["add-account", &payer, "--initial-balance", "100.00"],
    );
    cli.ok(&owner, &["add-account", &shop]);

    let now = cli.json(&owner, &["watch", &shop, "--max-seconds", "1"]);
    let now = now["resume_token"].as_str().expect("a token").to_owned();
    cli.ok(
        &admin,
        &[
            "pay", "--from", &payer, "--to", &shop, "--amount", "12.34", "--key", "w-1",
        ],
    );
    let out = cli.ok(
        &owner,
        &["watch", &shop, "--resume-token", &now, "--max-seconds", "1"],
    );
    assert!(out.contains("CREDIT"), "{out}");
    assert!(out.contains("12.34 EUR"), "{out}");
    assert!(out.contains(&format!("from {payer}")), "{out}");
    assert!(
        out.contains("watch ended; resume with --resume-token "),
        "{out}"
    );

    // JSON: one line per entry, with its token, then the token to go on.
    let out = cli.ok(
        &owner,
        &[
            "--json",
            "watch",
            &shop,
            "--resume-token",
            &now,
            "--max-seconds",
            "1",
            "--calls",
            "2",
        ],
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["transaction"]["amount"], 1234, "{out}");
    assert_eq!(lines[0]["direction"], "CREDIT", "{out}");
    assert_eq!(lines[0]["balance_after"], 1234, "{out}");
    assert_eq!(lines[1]["resume_token"], lines[0]["resume_token"], "{out}");

    let err = cli.fails(&owner, &["watch", &shop, "--max-seconds", "301"]);
    assert!(err.contains("field max_seconds: "), "{err}");
    let err = cli.fails(&owner, &["watch", &payer, "--max-seconds", "1"]);
    assert!(err.contains("error: PERMISSION_DENIED: "), "{err}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_watches_over_grpc() {
    watch_through_the_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_watches_over_grpc_web() {
    watch_through_the_client(true).await;
}

/// `payment-client create-tables` makes the ledger's two tables with every
/// index `Ledger::create_tables` gives them (scripts/bench-cold-start.sh
/// uses it), and succeeds again when they exist.
#[tokio::test]
async fn create_tables_makes_both_tables_with_their_indexes() {
    let tables = crate::harness::unique_tables();
    let run = || {
        let output = Command::new(env!("CARGO_BIN_EXE_payment-client"))
            .arg("create-tables")
            .env(
                "AWS_ENDPOINT_URL_DYNAMODB",
                crate::harness::shared_dynamodb(),
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("PAYMENT_ACCOUNTS_TABLE", &tables.accounts)
            .env("PAYMENT_LEDGER_TABLE", &tables.ledger)
            .output()
            .expect("payment-client runs");
        assert!(output.status.success(), "create-tables: {output:?}");
    };
    run();
    run();
    let client = crate::local_dynamodb::client(crate::harness::shared_dynamodb());
    let ledger = payment::ledger::Ledger::new(client.clone(), tables.clone());
    for ((table, keys), indexes) in ledger.key_schemas().into_iter().zip(ledger.index_schemas()) {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{table}: {e:?}"))
            .table
            .expect("a table");
        let key_names: Vec<&str> = described
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect();
        let expected: Vec<&str> = keys.iter().map(|(name, _)| *name).collect();
        assert_eq!(key_names, expected, "{table}: keys");
        let mut index_names: Vec<&str> = described
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name())
            .collect();
        index_names.sort_unstable();
        let mut expected: Vec<&str> = indexes.iter().map(|(name, _)| *name).collect();
        expected.sort_unstable();
        assert_eq!(index_names, expected, "{table}: indexes");
    }
}
