//! Final answers after a cut-off: GetPayment with finalize fences a key
//! where nothing is stored, and a write of that key can then never commit.
//!
//! The late-write tests hold a call's TransactWriteItems in a proxy
//! ([`RewriteProxy::arm_hold`]) in front of DynamoDB Local, so that the call
//! is cut off by its deadline while its write has not reached DynamoDB; the
//! key is fenced; then the proxy delivers the write, as a socket buffer or
//! a thawed Lambda container would. DynamoDB must cancel it, and no money
//! may move. Each step waits for the one before it (the proxy says when it
//! holds the write): nothing rests on timing.

use crate::harness::{
    Bearer, TESTER, TestApp, create_tables_patiently, token, unique_tables, web_client,
};
use crate::helpers::*;
use crate::rewrite_proxy::RewriteProxy;
use payment::ledger::Ledger;
use payment::pb;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The deadline of a call that is cut off. Its write is held until after
/// it, so it only needs to be long enough for the call to reach its write
/// on a loaded machine.
const CUT_OFF: Duration = Duration::from_secs(3);
/// A hang detector, not a speed limit: how long a call may take to send
/// its write to the proxy.
const HELD_WITHIN: Duration = Duration::from_secs(60);

const ALICE: &str = "alice";
const SHOP_OWNER: &str = "shop-owner";
const OPENING: i64 = 10_000;
const AMOUNT: i64 = 1_000;

/// The call whose write lands late.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Payment,
    Hold,
    Refund,
}

/// A sender (alice's) and a recipient (the shop's) on fresh tables; a
/// server that reaches DynamoDB through the proxy, and another instance
/// straight to DynamoDB (cold: it knows nothing the first one learnt).
struct World {
    proxy: RewriteProxy,
    app: TestApp,
    other: TestApp,
    direct: Ledger,
    alice: String,
    shop: String,
    /// The key of a committed payment from alice to the shop, for refunds.
    paid_key: String,
}

impl World {
    async fn new() -> World {
        let tables = unique_tables();
        let direct = Ledger::new(
            crate::local_dynamodb::client(crate::harness::shared_dynamodb()),
            tables.clone(),
        );
        create_tables_patiently(&direct).await;
        let (alice, shop) = (unique("alice"), unique("shop"));
        for (id, owner, balance) in [(&alice, ALICE, OPENING), (&shop, SHOP_OWNER, 0)] {
            let new = payment::domain::NewAccount::parse(id, "fence", "EUR", balance, 0)
                .expect("account");
            direct
                .add_account(&new, owner, false)
                .await
                .expect("open account");
        }
        let proxy = RewriteProxy::start(crate::harness::shared_dynamodb()).await;
        // Patient SDK timeouts: the held write is cut off by the call's
        // deadline, never by the SDK's own timeout and retry.
        let app = TestApp::serve(ledger_via(&proxy.url, &tables)).await;
        let other = TestApp::serve(direct.clone()).await;
        // A payment that a refund can refund; through the proxy's server,
        // which then knows both accounts and the payment.
        let paid_key = unique("paid");
        let mut c = app.grpc_as(ALICE, false).await;
        pay(&mut c, order(&paid_key, &alice, &shop, 3 * AMOUNT))
            .await
            .expect("the payment to refund");
        World {
            proxy,
            app,
            other,
            direct,
            alice,
            shop,
            paid_key,
        }
    }

    /// Who pays in a call of `kind`, and that account's owner: the sender,
    /// or for a refund the refunded payment's recipient (its key space).
    fn payer(&self, kind: Kind) -> (&str, &str) {
        match kind {
            Kind::Payment | Kind::Hold => (&self.alice, ALICE),
            Kind::Refund => (&self.shop, SHOP_OWNER),
        }
    }

    /// A call of `kind` with `key` on `app`, as the payer's owner, with a
    /// deadline when given. Over gRPC-Web: a native tonic channel also
    /// enforces `grpc-timeout` itself and may answer CANCELLED a moment
    /// before the service answers DEADLINE_EXCEEDED; the gRPC-Web client
    /// leaves the deadline to the service alone.
    async fn call(
        &self,
        app: &TestApp,
        kind: Kind,
        key: &str,
        deadline: Option<Duration>,
    ) -> Result<(), Status> {
        let mut c = web_client(&app.url(), Bearer::new(&token(self.payer(kind).1, false)));
        fn with<T>(message: T, deadline: Option<Duration>) -> tonic::Request<T> {
            let mut request = tonic::Request::new(message);
            if let Some(deadline) = deadline {
                request.set_timeout(deadline);
            }
            request
        }
        match kind {
            Kind::Payment => c
                .make_payment(with(order(key, &self.alice, &self.shop, AMOUNT), deadline))
                .await
                .map(drop),
            Kind::Hold => {
                let o = order(key, &self.alice, &self.shop, AMOUNT);
                c.authorize_payment(with(
                    pb::AuthorizePaymentRequest {
                        idempotency_key: o.idempotency_key,
                        sender_id: o.sender_id,
                        recipient_id: o.recipient_id,
                        amount: o.amount,
                        currency: o.currency,
                        memo: o.memo,
                        expires_in_seconds: 600,
                    },
                    deadline,
                ))
                .await
                .map(drop)
            }
            Kind::Refund => c
                .refund_payment(with(
                    pb::RefundPaymentRequest {
                        idempotency_key: key.into(),
                        payment: Some(by_key(&self.alice, &self.paid_key)),
                        amount: AMOUNT,
                        memo: "late".into(),
                    },
                    deadline,
                ))
                .await
                .map(drop),
        }
    }

    /// Both balances, both histories' lengths, and a clean audit's counts.
    async fn money(&self) -> (i64, i64, usize, usize, u64, u64, u64) {
        let mut c = self.other.grpc().await;
        let report = self.direct.audit(4, &|_, _| {}).await.expect("audit");
        assert!(
            report.is_clean(),
            "audit: {} discrepancies: {:?}",
            report.discrepancies_total,
            report.discrepancies
        );
        (
            balance(&mut c, &self.alice).await.expect("balance"),
            balance(&mut c, &self.shop).await.expect("balance"),
            history_all(&mut c, &self.alice).await.len(),
            history_all(&mut c, &self.shop).await.len(),
            report.payments,
            report.holds,
            report.refunds,
        )
    }

    async fn stop(self) {
        self.app.stop().await;
        self.other.stop().await;
    }
}

fn by_key(sender_id: &str, key: &str) -> pb::PaymentRef {
    pb::PaymentRef {
        transaction_id: String::new(),
        sender_id: sender_id.into(),
        idempotency_key: key.into(),
    }
}

/// GetPayment by (sender, key) on `app` as `sub`.
async fn lookup(
    app: &TestApp,
    sub: &str,
    sender_id: &str,
    key: &str,
    finalize: bool,
) -> Result<pb::GetPaymentResponse, Status> {
    let mut c = app.grpc_as(sub, false).await;
    c.get_payment(pb::GetPaymentRequest {
        payment: Some(by_key(sender_id, key)),
        finalize,
    })
    .await
    .map(|r| r.into_inner())
}

/// A refusal's code, reason and metadata.
#[track_caller]
fn refusal<T: std::fmt::Debug>(
    result: Result<T, Status>,
) -> (Code, String, HashMap<String, String>) {
    let status = result.expect_err("a refusal");
    let info = status.get_error_details().error_info().cloned();
    let info = info.unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"));
    (status.code(), info.reason, info.metadata)
}

/// NOT_FOUND, KEY_FENCED, naming the key: the call never happened.
#[track_caller]
fn assert_never_happened<T: std::fmt::Debug>(
    result: Result<T, Status>,
    sender_id: &str,
    key: &str,
) {
    let (code, reason, metadata) = refusal(result);
    assert_eq!((code, reason.as_str()), (Code::NotFound, "KEY_FENCED"));
    assert_eq!(metadata["sender_id"], sender_id);
    assert_eq!(metadata["idempotency_key"], key);
}

/// FAILED_PRECONDITION, KEY_FENCED: the key cannot be used.
#[track_caller]
fn assert_key_fenced<T: std::fmt::Debug>(result: Result<T, Status>, sender_id: &str, key: &str) {
    let status = result.as_ref().err().map(|s| s.message().to_owned());
    let (code, reason, metadata) = refusal(result);
    assert_eq!(
        (code, reason.as_str()),
        (Code::FailedPrecondition, "KEY_FENCED")
    );
    assert_eq!(metadata["sender_id"], sender_id);
    assert_eq!(metadata["idempotency_key"], key);
    let message = status.unwrap_or_default();
    assert!(message.contains("use a new key"), "{message}");
}

/// The held write, delivered after the fence, was cancelled by DynamoDB
/// because of the fence alone: the one failed condition is the record's
/// put, and the item it met is the fence at the call's key.
#[track_caller]
fn assert_refused_by_the_fence(
    delivered: &crate::rewrite_proxy::Delivered,
    payer: &str,
    key: &str,
) {
    assert_eq!(delivered.status, 400, "{:?}", delivered.body);
    let kind = delivered.body["__type"].as_str().unwrap_or_default();
    assert!(
        kind.ends_with("#TransactionCanceledException"),
        "{:?}",
        delivered.body
    );
    let reasons = delivered.cancellation_reasons();
    let failed: Vec<&Value> = reasons.iter().filter(|r| r["Code"] != "None").collect();
    assert_eq!(failed.len(), 1, "one failed condition: {reasons:?}");
    assert_eq!(failed[0]["Code"], "ConditionalCheckFailed", "{reasons:?}");
    let item = &failed[0]["Item"];
    assert_eq!(item["fence"]["BOOL"], true, "{item:?}");
    assert_eq!(item["pk"]["S"], format!("P#{payer}"), "{item:?}");
    assert_eq!(item["sk"]["S"], format!("K#{key}"), "{item:?}");
}

/// The late-write test of one kind of call: cut off while its write is
/// held, fenced, then the write delivered.
async fn a_late_write_after_its_key_was_fenced_never_commits(kind: Kind) {
    let world = World::new().await;
    let (payer, owner) = world.payer(kind);
    let before = world.money().await;
    let key = unique("late");

    world.proxy.arm_hold();
    let (cut, held) = tokio::join!(
        world.call(&world.app, kind, &key, Some(CUT_OFF)),
        world.proxy.held(HELD_WITHIN)
    );
    assert!(held.contains(&format!("K#{key}")), "{kind:?}: held {held}");
    let (code, reason, _) = refusal(cut);
    assert_eq!(
        (code, reason.as_str()),
        (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
        "{kind:?}"
    );
    assert!(world.proxy.holding(), "the write is still on its way");

    // Without finalize, NOT_FOUND only says "not yet".
    let (code, reason, _) = refusal(lookup(&world.other, owner, payer, &key, false).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "PAYMENT_NOT_FOUND")
    );
    // With it, the answer is final.
    assert_never_happened(
        lookup(&world.app, owner, payer, &key, true).await,
        payer,
        &key,
    );

    // Now the write lands: DynamoDB cancels it, and nothing moved.
    let delivered = world.proxy.deliver_held().await;
    assert_refused_by_the_fence(&delivered, payer, &key);
    assert_eq!(world.money().await, before, "{kind:?}: money moved");

    // The same call again, with the same key, on either instance (the one
    // that made it, warm, and another, cold): the key is spent for good.
    for app in [&world.app, &world.other] {
        assert_key_fenced(world.call(app, kind, &key, None).await, payer, &key);
    }
    // Every lookup, with or without finalize, gives the same final answer.
    for finalize in [false, true] {
        assert_never_happened(
            lookup(&world.other, owner, payer, &key, finalize).await,
            payer,
            &key,
        );
    }
    assert_eq!(world.money().await, before, "{kind:?}: money moved");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_payment_write_after_its_key_was_fenced_never_commits() {
    a_late_write_after_its_key_was_fenced_never_commits(Kind::Payment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_hold_write_after_its_key_was_fenced_never_commits() {
    a_late_write_after_its_key_was_fenced_never_commits(Kind::Hold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_refund_write_after_its_key_was_fenced_never_commits() {
    a_late_write_after_its_key_was_fenced_never_commits(Kind::Refund).await;
}

/// A call still running (no deadline) whose write meets a fence answers
/// KEY_FENCED from its own failed write, and moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_whose_write_meets_a_fence_answers_key_fenced() {
    let world = World::new().await;
    for kind in [Kind::Payment, Kind::Hold, Kind::Refund] {
        let (payer, owner) = world.payer(kind);
        let before = world.money().await;
        let key = unique("inflight");
        world.proxy.arm_hold();
        let call = world.call(&world.app, kind, &key, None);
        let fence_then_deliver = async {
            world.proxy.held(HELD_WITHIN).await;
            assert_never_happened(
                lookup(&world.other, owner, payer, &key, true).await,
                payer,
                &key,
            );
            world.proxy.deliver_held().await
        };
        let (answer, delivered) = tokio::join!(call, fence_then_deliver);
        assert_refused_by_the_fence(&delivered, payer, &key);
        assert_key_fenced(answer, payer, &key);
        assert_eq!(world.money().await, before, "{kind:?}: money moved");
    }
    world.stop().await;
}

#[tokio::test]
async fn finalize_on_a_committed_key_answers_its_record_and_fences_nothing() {
    let world = World::new().await;
    let answer = |r: Result<pb::GetPaymentResponse, Status>| {
        let r = r.expect("the record");
        (r.transaction, r.idempotency_key)
    };
    let plain = answer(lookup(&world.other, ALICE, &world.alice, &world.paid_key, false).await);
    // Twice, by the owner and by an admin: the same record each time.
    for (sub, app) in [
        (ALICE, &world.app),
        (ALICE, &world.other),
        (TESTER, &world.other),
    ] {
        let mut c = app.grpc_as(sub, sub == TESTER).await;
        let found = c
            .get_payment(pb::GetPaymentRequest {
                payment: Some(by_key(&world.alice, &world.paid_key)),
                finalize: true,
            })
            .await;
        assert_eq!(answer(found.map(|r| r.into_inner())), plain, "{sub}");
    }
    assert_eq!(plain.0.expect("transaction").amount, 3 * AMOUNT);
    // The key still replays its payment: a record is never replaced.
    let mut c = world.other.grpc_as(ALICE, false).await;
    let replay = pay(
        &mut c,
        order(&world.paid_key, &world.alice, &world.shop, 3 * AMOUNT),
    )
    .await
    .expect("replay");
    assert!(replay.replayed);
    world.stop().await;
}

#[tokio::test]
async fn finalize_by_anyone_but_the_senders_owner_or_an_admin_fences_nothing() {
    let world = World::new().await;
    let key = unique("free");
    // A stranger, and the recipient's owner: GetPayment's NOT_FOUND, which
    // says nothing of the key.
    for sub in ["mallory", SHOP_OWNER] {
        let (code, reason, _) = refusal(lookup(&world.other, sub, &world.alice, &key, true).await);
        assert_eq!(
            (code, reason.as_str()),
            (Code::NotFound, "PAYMENT_NOT_FOUND"),
            "{sub}"
        );
    }
    // The key is still free: alice pays with it.
    world
        .call(&world.other, Kind::Payment, &key, None)
        .await
        .expect("the key was not fenced");
    // An unknown sender has no key to fence, even for an admin.
    let ghost = unique("ghost");
    let mut admin = world.other.grpc().await;
    let found = admin
        .get_payment(pb::GetPaymentRequest {
            payment: Some(by_key(&ghost, &key)),
            finalize: true,
        })
        .await;
    let (code, reason, _) = refusal(found);
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "PAYMENT_NOT_FOUND")
    );
    world.stop().await;
}

#[tokio::test]
async fn a_fenced_key_answers_the_same_to_every_lookup_and_refuses_every_call() {
    let world = World::new().await;
    let key = unique("fenced");
    let alice = &world.alice;
    // Fenced twice (the second finds the first): the same answer.
    for _ in 0..2 {
        assert_never_happened(
            lookup(&world.other, ALICE, alice, &key, true).await,
            alice,
            &key,
        );
    }
    // Without finalize, for the owner and an admin: KEY_FENCED.
    assert_never_happened(
        lookup(&world.app, ALICE, alice, &key, false).await,
        alice,
        &key,
    );
    let mut admin = world.other.grpc().await;
    let found = admin
        .get_payment(pb::GetPaymentRequest {
            payment: Some(by_key(alice, &key)),
            finalize: false,
        })
        .await;
    assert_never_happened(found, alice, &key);
    // Anyone else learns nothing of it.
    let (code, reason, _) = refusal(lookup(&world.other, "mallory", alice, &key, false).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "PAYMENT_NOT_FOUND")
    );
    // A payment and a hold with it: KEY_FENCED, before anything else
    // (even a payment that could not be paid).
    for kind in [Kind::Payment, Kind::Hold] {
        assert_key_fenced(world.call(&world.app, kind, &key, None).await, alice, &key);
    }
    let mut c = world.other.grpc_as(ALICE, false).await;
    assert_key_fenced(
        pay(&mut c, order(&key, alice, &world.shop, 10 * OPENING)).await,
        alice,
        &key,
    );
    // Captures, voids and refunds of it: there is no such payment or hold.
    let mut shop = world.other.grpc_as(SHOP_OWNER, false).await;
    let (code, reason, _) = refusal(
        shop.capture_hold(pb::CaptureHoldRequest {
            hold: Some(by_key(alice, &key)),
            amount: 0,
        })
        .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "PAYMENT_NOT_FOUND")
    );
    let (code, reason, _) = refusal(
        shop.void_hold(pb::VoidHoldRequest {
            hold: Some(by_key(alice, &key)),
        })
        .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "PAYMENT_NOT_FOUND")
    );
    let (code, reason, _) = refusal(
        shop.refund_payment(pb::RefundPaymentRequest {
            idempotency_key: unique("refund"),
            payment: Some(by_key(alice, &key)),
            amount: 0,
            memo: String::new(),
        })
        .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (Code::NotFound, "PAYMENT_NOT_FOUND")
    );
    world.stop().await;
}

#[tokio::test]
async fn finalize_needs_a_key_not_a_transaction_id() {
    let world = World::new().await;
    let mut c = world.other.grpc_as(ALICE, false).await;
    let paid = c
        .get_payment(pb::GetPaymentRequest {
            payment: Some(by_key(&world.alice, &world.paid_key)),
            finalize: false,
        })
        .await
        .expect("the payment")
        .into_inner();
    let status = c
        .get_payment(pb::GetPaymentRequest {
            payment: Some(pb::PaymentRef {
                transaction_id: paid.transaction.expect("transaction").transaction_id,
                ..Default::default()
            }),
            finalize: true,
        })
        .await
        .expect_err("INVALID_ARGUMENT");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let violations = status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].field, "payment.transaction_id");
    assert!(
        status.message().contains("finalize"),
        "{}",
        status.message()
    );
    world.stop().await;
}
