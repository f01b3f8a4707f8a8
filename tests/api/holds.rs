//! Holds, refunds and lookups: one test per rule, through the real server
//! and DynamoDB Local, on both entry points where a caller is concerned.

use crate::harness::TestApp;
use crate::helpers::*;
use payment::pb;
use tonic::Code;

pub fn hold_order(
    key: &str,
    from: &str,
    to: &str,
    amount: i64,
    seconds: i64,
) -> pb::AuthorizePaymentRequest {
    pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: "EUR".into(),
        memo: "hold".into(),
        expires_in_seconds: seconds,
    }
}

pub fn by_key(sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        sender_id: sender.into(),
        idempotency_key: key.into(),
        ..Default::default()
    })
}

pub fn by_id(id: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        transaction_id: id.into(),
        ..Default::default()
    })
}

pub async fn account(client: &mut Client, id: &str) -> pb::Account {
    client
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
}

#[tokio::test]
async fn a_hold_reserves_money_and_its_capture_moves_it_once() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 10_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    let placed = c
        .authorize_payment(hold_order("h1", &a, &b, 6_000, 3600))
        .await
        .unwrap()
        .into_inner();
    assert!(!placed.replayed);
    let hold = placed.hold.unwrap();
    assert_eq!(hold.state, pb::HoldState::Open as i32);
    let acct = account(&mut c, &a).await;
    assert_eq!(
        (acct.balance, acct.held, acct.available),
        (10_000, 6_000, 4_000)
    );
    // Only available money can be spent.
    assert_code(
        pay(&mut c, order("p1", &a, &b, 4_001)).await,
        Code::FailedPrecondition,
        "40.00 EUR available",
    );
    pay(&mut c, order("p2", &a, &b, 4_000)).await.unwrap();
    // A replay of the hold is the same hold.
    let again = c
        .authorize_payment(hold_order("h1", &a, &b, 6_000, 3600))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.hold.unwrap().hold_id, hold.hold_id);
    let captured = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!captured.replayed);
    let tx = captured.transaction.unwrap();
    assert_eq!(tx.transaction_id, hold.hold_id);
    assert_eq!(tx.amount, 5_000);
    assert_eq!(tx.kind, pb::TransactionKind::Capture as i32);
    let acct = account(&mut c, &a).await;
    assert_eq!((acct.balance, acct.held, acct.available), (1_000, 0, 1_000));
    assert_eq!(balance(&mut c, &b).await.unwrap(), 9_000);
    // Once: the same capture is a replay, another amount is refused.
    let replay = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_id(&hold.hold_id),
            amount: 5_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(replay.replayed);
    assert_code(
        c.capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 0,
        })
        .await,
        Code::FailedPrecondition,
        "captured already",
    );
    assert_code(
        c.void_hold(pb::VoidHoldRequest {
            hold: by_key(&a, "h1"),
        })
        .await,
        Code::FailedPrecondition,
        "captured already",
    );
    // Refund part of the capture, then the rest, then nothing more.
    let refund = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r1".into(),
            payment: by_id(&hold.hold_id),
            amount: 2_000,
            memo: "partial".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refund.refunded_total, 2_000);
    let rtx = refund.transaction.unwrap();
    assert_eq!(rtx.kind, pb::TransactionKind::Refund as i32);
    assert_eq!(rtx.refund_of, hold.hold_id);
    assert_eq!(
        (rtx.sender_id.as_str(), rtx.recipient_id.as_str()),
        (b.as_str(), a.as_str())
    );
    assert_code(
        c.refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r2".into(),
            payment: by_key(&a, "h1"),
            amount: 3_001,
            memo: String::new(),
        })
        .await,
        Code::FailedPrecondition,
        "exceeds what is left",
    );
    let rest = c
        .refund_payment(pb::RefundPaymentRequest {
            idempotency_key: "r3".into(),
            payment: by_key(&a, "h1"),
            amount: 0,
            memo: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.transaction.unwrap().amount, 3_000);
    assert_eq!(rest.refunded_total, 5_000);
    assert_eq!(balance(&mut c, &a).await.unwrap(), 6_000);
    assert_eq!(balance(&mut c, &b).await.unwrap(), 4_000);
    let found = c
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&a, "h1"),
            finalize: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.refunded_total, 5_000);
    assert_eq!(found.hold.unwrap().state, pb::HoldState::Captured as i32);
    let refund_found = c
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&b, "r1"),
            finalize: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refund_found.transaction.unwrap().refund_of, hold.hold_id);
    let history = history_all(&mut c, &a).await;
    check_balance_chain(&a, 6_000, &history);
    let kinds: Vec<i32> = history
        .iter()
        .map(|e| e.transaction.as_ref().unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        [
            pb::TransactionKind::Refund as i32,
            pb::TransactionKind::Refund as i32,
            pb::TransactionKind::Capture as i32,
            pb::TransactionKind::Payment as i32,
            pb::TransactionKind::Opening as i32,
        ]
    );
    // The listing may lag a just opened account (payment.proto): polled.
    let listed = eventually(
        LISTING_LAG_MAX,
        || {
            let mut c = c.clone();
            async move {
                c.list_accounts(pb::ListAccountsRequest {
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
            }
        },
        |l| l.accounts.iter().any(|x| x.account_id == a),
    )
    .await;
    assert!(listed.accounts.iter().any(|x| x.account_id == a));
}

/// How long ListAccounts may lag a just opened account before a test
/// gives up: the contract allows "a moment"; this only bounds a failure.
const LISTING_LAG_MAX: std::time::Duration = std::time::Duration::from_secs(10);

type WebClient = crate::harness::AuthedClient<payment::client::GrpcWebTransport>;

fn as_user(url: &str, sub: &str, admin: bool) -> WebClient {
    crate::harness::web_client(
        url,
        crate::harness::Bearer::new(&crate::harness::token(sub, admin)),
    )
}

/// The reason of a status's ErrorInfo.
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

fn refuse<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    why: &str,
) -> tonic::Status {
    let status = result.expect_err("expected a refusal");
    assert_eq!(status.code(), code, "{why}: {status:?}");
    assert_eq!(reason(&status), why, "{status:?}");
    status
}

async fn open(client: &mut WebClient, id: &str, initial: i64) {
    client
        .add_account(pb::AddAccountRequest {
            account_id: id.into(),
            display_name: id.into(),
            currency: "EUR".into(),
            initial_balance: initial,
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn web_account(client: &mut WebClient, id: &str) -> pb::Account {
    client
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
}

/// Who may do what with holds, refunds and lookups, and the reasons a
/// program reads, through one entry point at `url` (gRPC-Web).
pub(crate) async fn caller_rules(url: &str) {
    let (alice_sub, bob_sub, eve_sub) = (unique("alice"), unique("bob"), unique("eve"));
    let mut alice = as_user(url, &alice_sub, false);
    let mut bob = as_user(url, &bob_sub, false);
    let mut eve = as_user(url, &eve_sub, false);
    let mut admin = as_user(url, &unique("admin"), true);
    let (a, b, e, funding) = (unique("a"), unique("b"), unique("e"), unique("fund"));
    open(&mut alice, &a, 0).await;
    open(&mut bob, &b, 0).await;
    open(&mut eve, &e, 0).await;
    open(&mut admin, &funding, 100_000).await;
    admin
        .make_payment(order("fund-a", &funding, &a, 10_000))
        .await
        .unwrap();

    // Only the sender's owner places a hold on its money.
    refuse(
        bob.authorize_payment(hold_order("h-bob", &a, &b, 100, 600))
            .await,
        Code::PermissionDenied,
        "NOT_ACCOUNT_OWNER",
    );
    let over = refuse(
        alice
            .authorize_payment(hold_order("h-big", &a, &b, 10_001, 600))
            .await,
        Code::FailedPrecondition,
        "INSUFFICIENT_FUNDS",
    );
    {
        use tonic_types::StatusExt;
        let info = over.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.metadata["available_minor"], "10000");
        assert_eq!(info.metadata["needed_minor"], "10001");
        assert!(
            over.message().contains("100.00 EUR available"),
            "{}",
            over.message()
        );
    }
    let hold = alice
        .authorize_payment(hold_order("h1", &a, &b, 3_000, 600))
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    let held = web_account(&mut alice, &a).await;
    assert_eq!((held.held, held.available), (3_000, 7_000));
    // A payment and a hold share the sender's key space.
    refuse(
        alice.make_payment(order("h1", &a, &b, 5)).await,
        Code::AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
    );
    refuse(
        alice
            .authorize_payment(hold_order("h1", &a, &b, 3_001, 600))
            .await,
        Code::AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
    );
    // The sender's owner sees the hold but may not capture or void it; a
    // stranger cannot tell it exists.
    let seen = alice
        .get_payment(pb::GetPaymentRequest {
            payment: by_id(&hold.hold_id),
            finalize: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen.hold.unwrap().state, pb::HoldState::Open as i32);
    refuse(
        alice
            .capture_hold(pb::CaptureHoldRequest {
                hold: by_key(&a, "h1"),
                amount: 0,
            })
            .await,
        Code::PermissionDenied,
        "NOT_ALLOWED",
    );
    refuse(
        alice
            .void_hold(pb::VoidHoldRequest {
                hold: by_key(&a, "h1"),
            })
            .await,
        Code::PermissionDenied,
        "NOT_ALLOWED",
    );
    for result in [
        eve.get_payment(pb::GetPaymentRequest {
            payment: by_key(&a, "h1"),
            finalize: false,
        })
        .await
        .map(|_| ()),
        eve.capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 0,
        })
        .await
        .map(|_| ()),
        eve.void_hold(pb::VoidHoldRequest {
            hold: by_id(&hold.hold_id),
        })
        .await
        .map(|_| ()),
    ] {
        refuse(result, Code::NotFound, "PAYMENT_NOT_FOUND");
    }
    refuse(
        bob.capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 3_001,
        })
        .await,
        Code::FailedPrecondition,
        "CAPTURE_EXCEEDS_HOLD",
    );
    // The recipient's owner captures part; the rest is released at once.
    let capture = bob
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h1"),
            amount: 2_500,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capture.hold.as_ref().unwrap().captured_amount, 2_500);
    let after = web_account(&mut alice, &a).await;
    assert_eq!(
        (after.balance, after.held, after.available),
        (7_500, 0, 7_500)
    );
    assert_eq!(web_account(&mut bob, &b).await.balance, 2_500);

    // A second hold, voided by an admin; the recipient may void too.
    alice
        .authorize_payment(hold_order("h2", &a, &b, 1_000, 600))
        .await
        .unwrap();
    let voided = admin
        .void_hold(pb::VoidHoldRequest {
            hold: by_key(&a, "h2"),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!voided.replayed);
    assert_eq!(voided.hold.unwrap().state, pb::HoldState::Voided as i32);
    assert!(
        bob.void_hold(pb::VoidHoldRequest {
            hold: by_key(&a, "h2")
        })
        .await
        .unwrap()
        .into_inner()
        .replayed
    );
    refuse(
        bob.capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "h2"),
            amount: 0,
        })
        .await,
        Code::FailedPrecondition,
        "HOLD_VOIDED",
    );
    assert_eq!(web_account(&mut alice, &a).await.available, 7_500);

    // Refunds: only the recipient's owner (or an admin) returns money.
    let paid = alice
        .make_payment(order("p1", &a, &b, 1_000))
        .await
        .unwrap()
        .into_inner()
        .transaction
        .unwrap();
    let refund = |key: &str, amount: i64| pb::RefundPaymentRequest {
        idempotency_key: key.into(),
        payment: by_id(&paid.transaction_id),
        amount,
        memo: "sorry".into(),
    };
    refuse(
        alice.refund_payment(refund("r1", 100)).await,
        Code::PermissionDenied,
        "NOT_ALLOWED",
    );
    refuse(
        eve.refund_payment(refund("r1", 100)).await,
        Code::NotFound,
        "PAYMENT_NOT_FOUND",
    );
    let first = bob
        .refund_payment(refund("r1", 400))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.refunded_total, 400);
    assert!(!first.replayed);
    let again = bob
        .refund_payment(refund("r1", 400))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(again.transaction, first.transaction);
    refuse(
        bob.refund_payment(refund("r1", 401)).await,
        Code::AlreadyExists,
        "IDEMPOTENCY_KEY_REUSED",
    );
    let too_much = refuse(
        bob.refund_payment(refund("r2", 601)).await,
        Code::FailedPrecondition,
        "REFUND_EXCEEDS_PAYMENT",
    );
    assert!(
        too_much.message().contains("4.00 EUR of 10.00 EUR"),
        "{}",
        too_much.message()
    );
    admin.refund_payment(refund("r3", 0)).await.unwrap();
    // A refund appears in both histories, linked to the payment.
    for (client, account) in [(&mut alice, &a), (&mut bob, &b)] {
        let mut stream = client
            .get_transaction_history(pb::GetTransactionHistoryRequest {
                account_id: account.clone(),
                page_size: 2,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut linked = 0;
        while let Some(entry) = stream.message().await.unwrap() {
            let tx = entry.transaction.unwrap();
            assert_eq!(tx.kind, pb::TransactionKind::Refund as i32);
            assert_eq!(tx.refund_of, paid.transaction_id);
            linked += 1;
        }
        assert_eq!(linked, 2, "{account}");
    }
    let looked_up = alice
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&a, "p1"),
            finalize: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(looked_up.refunded_total, 1_000);

    // Lookups after a timeout: NOT_FOUND says the call never happened.
    refuse(
        alice
            .get_payment(pb::GetPaymentRequest {
                payment: by_key(&a, "never-sent"),
                finalize: false,
            })
            .await,
        Code::NotFound,
        "PAYMENT_NOT_FOUND",
    );

    // ListAccounts: one's own accounts; an admin's for any owner, or all.
    // (It may lag a just opened account: polled.)
    let mine = eventually(
        LISTING_LAG_MAX,
        || {
            let mut alice = alice.clone();
            async move {
                alice
                    .list_accounts(pb::ListAccountsRequest::default())
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |l| !l.accounts.is_empty(),
    )
    .await;
    let ids: Vec<&str> = mine
        .accounts
        .iter()
        .map(|x| x.account_id.as_str())
        .collect();
    assert_eq!(ids, [a.as_str()]);
    assert_eq!(mine.next_page_token, "");
    let field = refuse(
        alice
            .list_accounts(pb::ListAccountsRequest {
                owner: bob_sub.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "INVALID_FIELD",
    );
    {
        use tonic_types::StatusExt;
        let violations = field
            .get_error_details()
            .bad_request()
            .cloned()
            .unwrap()
            .field_violations;
        assert_eq!(violations[0].field, "owner");
    }
    let bobs = eventually(
        LISTING_LAG_MAX,
        || {
            let (mut admin, owner) = (admin.clone(), bob_sub.clone());
            async move {
                admin
                    .list_accounts(pb::ListAccountsRequest {
                        owner,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
            }
        },
        |l| !l.accounts.is_empty(),
    )
    .await;
    assert_eq!(bobs.accounts.len(), 1);
    assert_eq!(bobs.accounts[0].account_id, b);
}

#[tokio::test]
async fn callers_hold_capture_void_refund_and_look_up_only_what_is_theirs_on_the_server() {
    let app = TestApp::spawn().await;
    caller_rules(&app.url()).await;
}

/// How long the short hold lasts at first: room for three calls on a
/// loaded machine (if they took longer, the test sets the scene again with
/// a longer hold rather than assert on an expired one).
const SHORT_HOLD: std::time::Duration = std::time::Duration::from_secs(3);

#[tokio::test]
async fn an_expired_hold_frees_its_money_at_once_and_cannot_be_captured() {
    use payment::domain::{HoldOrder, PaymentOrder};
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let tester = payment::domain::Caller {
        sub: crate::harness::TESTER.into(),
        admin: true,
    };
    // Through the ledger, to expire in a few seconds (the API's minimum is
    // a minute). The "later" hold goes first, so that the short one's
    // window holds only the three calls that need it to be open. If a
    // loaded machine took longer than the hold for them, what they saw is
    // void (the hold may have expired under them): the scene is set again
    // on fresh accounts with a hold twice as long, so the outcome never
    // rests on the machine's speed.
    let mut lasts = SHORT_HOLD;
    let mut attempts = 0;
    let (a, b) = loop {
        attempts += 1;
        let (a, b) = (unique("a"), unique("b"));
        add(&mut c, &a, "EUR", 1_000).await.unwrap();
        add(&mut c, &b, "EUR", 0).await.unwrap();
        let short = |key: &str, amount: i64, ms: i64| HoldOrder {
            order: PaymentOrder::parse(key, &a, &b, amount, "EUR", "").unwrap(),
            expires_in_ms: ms,
        };
        app.ledger
            .authorize_payment(&short("later", 100, 600_000), &tester)
            .await
            .unwrap();
        // The server stamps the expiry from its clock after this instant,
        // so the hold is open at least until `open_until` (same machine,
        // same clock).
        let open_until = std::time::SystemTime::now() + lasts;
        app.ledger
            .authorize_payment(&short("soon", 800, lasts.as_millis() as i64), &tester)
            .await
            .unwrap();
        let held = account(&mut c, &a).await;
        let early = pay(&mut c, order("p-early", &a, &b, 101)).await;
        if std::time::SystemTime::now() >= open_until {
            assert!(
                lasts < SHORT_HOLD * 8,
                "three calls took longer than {lasts:?}"
            );
            eprintln!("the checks took longer than the {lasts:?} hold; again, twice as long");
            lasts *= 2;
            continue;
        }
        assert_eq!((held.held, held.available), (900, 100));
        assert_code(early, Code::FailedPrecondition, "available");
        break (a, b);
    };
    // Past the hold's own expiry, as the service stamped it.
    let expires_at = c
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&a, "soon"),
            finalize: false,
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap()
        .expires_at
        .unwrap();
    let expires_at = std::time::UNIX_EPOCH
        + std::time::Duration::new(expires_at.seconds as u64, expires_at.nanos as u32);
    if let Ok(left) = expires_at.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + std::time::Duration::from_millis(50)).await;
    }
    // Nothing has run since: the money is available again all the same.
    let freed = account(&mut c, &a).await;
    assert_eq!(
        (freed.balance, freed.held, freed.available),
        (1_000, 100, 900)
    );
    let status = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "soon"),
            amount: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::FailedPrecondition, "HOLD_EXPIRED")
    );
    let status = c
        .void_hold(pb::VoidHoldRequest {
            hold: by_key(&a, "soon"),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "HOLD_EXPIRED");
    let found = c
        .get_payment(pb::GetPaymentRequest {
            payment: by_key(&a, "soon"),
            finalize: false,
        })
        .await
        .unwrap()
        .into_inner()
        .hold
        .unwrap();
    assert_eq!(found.state, pb::HoldState::Expired as i32);
    assert_eq!(found.settled_at, found.expires_at);
    // The expired hold's money pays; the payment sweeps it from the shard.
    pay(&mut c, order("p-late", &a, &b, 900)).await.unwrap();
    let spent = account(&mut c, &a).await;
    assert_eq!((spent.balance, spent.held, spent.available), (100, 100, 0));
    let status = c
        .capture_hold(pb::CaptureHoldRequest {
            hold: by_key(&a, "soon"),
            amount: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "HOLD_EXPIRED");
    // The other hold still captures.
    c.capture_hold(pb::CaptureHoldRequest {
        hold: by_key(&a, "later"),
        amount: 0,
    })
    .await
    .unwrap();
    assert_eq!(balance(&mut c, &b).await.unwrap(), 1_000);
    let report = app.ledger.audit(2, &|_, _| {}).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.discrepancies);
    // Two holds per attempt; a set-aside attempt's "later" hold stays open.
    assert_eq!(
        (report.holds, report.holds_open),
        (2 * attempts, attempts - 1)
    );
}

#[tokio::test]
async fn open_holds_per_account_are_bounded_and_accounts_page_by_id() {
    let app = TestApp::spawn().await;
    let sub = unique("owner");
    let mut me = app.grpc_as(&sub, false).await;
    let mut admin = app.grpc().await;
    let mut ids: Vec<String> = (0..5).map(|i| format!("{}-{i}", unique("acct"))).collect();
    for id in &ids {
        add(&mut me, id, "EUR", 0).await.unwrap();
    }
    ids.sort();
    // The listing may lag just opened accounts (payment.proto): wait until
    // all five are listed, then page.
    eventually(
        LISTING_LAG_MAX,
        || {
            let mut me = me.clone();
            async move {
                me.list_accounts(pb::ListAccountsRequest {
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .accounts
                .len()
            }
        },
        |n| *n == ids.len(),
    )
    .await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let page = me
            .list_accounts(pb::ListAccountsRequest {
                page_size: 2,
                page_token: token.clone(),
                owner: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.accounts.len() <= 2);
        seen.extend(page.accounts.into_iter().map(|x| x.account_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3, "5 accounts, 2 a page");
    // A page that is exactly full is the last: no token to an empty page.
    let full = me
        .list_accounts(pb::ListAccountsRequest {
            page_size: 5,
            page_token: String::new(),
            owner: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.accounts.len(), 5);
    assert_eq!(full.next_page_token, "", "the full page is the last");
    // Funds and the hold limit.
    let funding = unique("fund");
    add(&mut admin, &funding, "EUR", 1_000).await.unwrap();
    pay(&mut admin, order("f", &funding, &ids[0], 1_000))
        .await
        .unwrap();
    for n in 0..payment::domain::HOLDS_OPEN_MAX {
        me.authorize_payment(hold_order(&format!("h{n}"), &ids[0], &ids[1], 1, 600))
            .await
            .unwrap();
    }
    let status = me
        .authorize_payment(hold_order("one-too-many", &ids[0], &ids[1], 1, 600))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::ResourceExhausted, "TOO_MANY_OPEN_HOLDS")
    );
    let acct = account(&mut me, &ids[0]).await;
    assert_eq!(acct.held, payment::domain::HOLDS_OPEN_MAX as i64);
}
