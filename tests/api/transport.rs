//! The transports: gRPC-Web (binary and text) on the same port as native
//! gRPC, malformed bodies, CORS, health and reflection.

use crate::harness::TestApp;
use crate::helpers::grpc_web::{WebReply, frame, raw_at, request_body, request_headers};
use crate::helpers::*;
use bytes::Bytes;
use payment::pb;
use prost::Message;
use std::time::Duration;
use tonic::Code;

async fn raw(
    app: &TestApp,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> WebReply {
    raw_at(&app.url(), method, path, headers, body).await
}

/// `authorization: Bearer <token of TESTER, an admin>`.
static TESTER_AUTH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "Bearer {}",
        crate::harness::token(crate::harness::TESTER, true)
    )
});

/// A binary gRPC-Web request's headers, as TESTER.
static WEB_HEADERS: std::sync::LazyLock<Vec<(&str, &str)>> = std::sync::LazyLock::new(|| {
    let mut headers = request_headers(false);
    headers.push(("authorization", TESTER_AUTH.as_str()));
    headers
});
const BALANCE: &str = "/payment.v1.PaymentService/GetAccountBalance";
const HISTORY: &str = "/payment.v1.PaymentService/GetTransactionHistory";

/// The crate's gRPC-Web client (payment::client) makes every call of the
/// contract ([`every_call`] walks `pb::METHODS`), after a streamed reply
/// whose messages and trailer arrive together and two errors.
#[tokio::test]
async fn grpc_web_client_makes_every_call() {
    let app = TestApp::spawn().await;
    let mut web = app.grpc_web();
    let (a, b) = (unique("a"), unique("b"));
    for (id, initial) in [(&a, 5_000), (&b, 0)] {
        web.add_account(pb::AddAccountRequest {
            account_id: id.clone(),
            display_name: "web".into(),
            currency: "EUR".into(),
            initial_balance: initial,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for i in 0..3 {
        web.make_payment(order(&format!("w{i}"), &a, &b, 100))
            .await
            .unwrap();
    }
    let account = web
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: a.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(account.balance, 4_700);
    // A streamed reply whose messages and trailer arrive together: every
    // message and then a clean end (regression guard for lost trailers).
    let mut stream = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: a.clone(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        sequences.push(entry.sequence);
    }
    assert_eq!(sequences, vec![4, 3, 2, 1]);
    let status = web
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: unique("ghost"),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = web
        .make_payment(order("w9", &a, &b, 1_000_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("insufficient funds"));
    // Every method of the contract, each checked, with the same client.
    every_call(&mut web, crate::harness::TESTER, "gRPC-Web client").await;
}

// ---------------------------------------------------------------------------
// Every method of the contract, over any transport.
// ---------------------------------------------------------------------------

/// A way to call the service: one request message in, the reply's messages
/// (one for a unary call) or its status out. The tests that claim "every
/// call" run [`every_call`] over one of these.
#[allow(async_fn_in_trait)]
pub trait Caller {
    async fn call(
        &mut self,
        method: &'static pb::Method,
        request: Vec<u8>,
    ) -> Result<Vec<Bytes>, tonic::Status>;
}

/// The contract's method called `name`; fails the test if there is none.
pub fn method(name: &str) -> &'static pb::Method {
    pb::METHODS
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} is not a method of the contract"))
}

/// The names of the contract's methods, from `pb::METHODS`.
pub fn contract_methods() -> std::collections::BTreeSet<&'static str> {
    pb::METHODS.iter().map(|m| m.name).collect()
}

/// The service's generated client (native gRPC or the crate's gRPC-Web
/// transport): each method of the contract through its typed call. A
/// method without a case here fails the test that calls it.
impl<T: ClientTransport> Caller for pb::payment_service_client::PaymentServiceClient<T> {
    async fn call(
        &mut self,
        method: &'static pb::Method,
        request: Vec<u8>,
    ) -> Result<Vec<Bytes>, tonic::Status> {
        fn decode<M: Message + Default>(request: &[u8]) -> M {
            M::decode(request).expect("a request of the method's type")
        }
        fn one<M: Message>(reply: tonic::Response<M>) -> Vec<Bytes> {
            vec![Bytes::from(reply.into_inner().encode_to_vec())]
        }
        async fn all<M: Message>(
            mut stream: tonic::Streaming<M>,
        ) -> Result<Vec<Bytes>, tonic::Status> {
            let mut messages = Vec::new();
            while let Some(message) = stream.message().await? {
                messages.push(Bytes::from(message.encode_to_vec()));
            }
            Ok(messages)
        }
        let r = request.as_slice();
        Ok(match method.name {
            "AddAccount" => one(self.add_account(decode::<pb::AddAccountRequest>(r)).await?),
            "MakePayment" => one(self
                .make_payment(decode::<pb::MakePaymentRequest>(r))
                .await?),
            "GetAccountBalance" => one(self
                .get_account_balance(decode::<pb::GetAccountBalanceRequest>(r))
                .await?),
            "GetTransactionHistory" => {
                all(self
                    .get_transaction_history(decode::<pb::GetTransactionHistoryRequest>(r))
                    .await?
                    .into_inner())
                .await?
            }
            "AuthorizePayment" => one(self
                .authorize_payment(decode::<pb::AuthorizePaymentRequest>(r))
                .await?),
            "CaptureHold" => one(self
                .capture_hold(decode::<pb::CaptureHoldRequest>(r))
                .await?),
            "VoidHold" => one(self.void_hold(decode::<pb::VoidHoldRequest>(r)).await?),
            "RefundPayment" => one(self
                .refund_payment(decode::<pb::RefundPaymentRequest>(r))
                .await?),
            "GetPayment" => one(self.get_payment(decode::<pb::GetPaymentRequest>(r)).await?),
            "ListAccounts" => one(self
                .list_accounts(decode::<pb::ListAccountsRequest>(r))
                .await?),
            "SetBalanceShards" => one(self
                .set_balance_shards(decode::<pb::SetBalanceShardsRequest>(r))
                .await?),
            "WatchAccount" => {
                all(self
                    .watch_account(decode::<pb::WatchAccountRequest>(r))
                    .await?
                    .into_inner())
                .await?
            }
            other => panic!("the typed client has no case for {other}: add one"),
        })
    }
}

/// Raw gRPC-Web over HTTP/1.1 (binary or text) to `base` with these
/// headers (authorization, and a Host for a gateway), bounded in time.
pub struct RawWeb {
    pub base: String,
    pub text: bool,
    pub headers: Vec<(String, String)>,
}

/// How long one raw call may take before the test fails (a cold start
/// through an emulated gateway included).
const RAW_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl Caller for RawWeb {
    async fn call(
        &mut self,
        method: &'static pb::Method,
        request: Vec<u8>,
    ) -> Result<Vec<Bytes>, tonic::Status> {
        let mut headers = request_headers(self.text);
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let body = request_body(&request, self.text);
        let reply = tokio::time::timeout(
            RAW_CALL_TIMEOUT,
            raw_at(&self.base, http::Method::POST, method.path, &headers, body),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: no answer within {RAW_CALL_TIMEOUT:?}", method.path));
        assert_eq!(reply.http_status, 200, "{}: {reply:?}", method.path);
        if self.text {
            let content_type = reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                content_type.starts_with("application/grpc-web-text"),
                "{}: a text request answered {content_type:?}",
                method.path
            );
        }
        let code = reply
            .grpc_code()
            .unwrap_or_else(|| panic!("{}: no grpc-status: {reply:?}", method.path));
        match code {
            Code::Ok => Ok(reply.messages),
            code => {
                assert!(
                    reply.messages.is_empty(),
                    "{}: data with an error",
                    method.path
                );
                Err(tonic::Status::new(code, reply.message()))
            }
        }
    }
}

/// A valid request for every method of the contract, about `account` (an
/// account id) and `key` (an idempotency key): what a call needs to get
/// past decoding and validation. Fails if the map is not exactly the
/// contract's methods.
pub fn valid_requests(account: &str, key: &str) -> Vec<(&'static pb::Method, Vec<u8>)> {
    let by_key = || {
        Some(pb::PaymentRef {
            sender_id: account.into(),
            idempotency_key: key.into(),
            ..Default::default()
        })
    };
    let requests: Vec<(&str, Vec<u8>)> = vec![
        (
            "AddAccount",
            pb::AddAccountRequest {
                account_id: format!("{account}-new"),
                currency: "EUR".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "MakePayment",
            pb::MakePaymentRequest {
                idempotency_key: key.into(),
                sender_id: account.into(),
                recipient_id: format!("{account}-to"),
                amount: 1,
                currency: "EUR".into(),
                memo: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "GetAccountBalance",
            pb::GetAccountBalanceRequest {
                account_id: account.into(),
            }
            .encode_to_vec(),
        ),
        (
            "GetTransactionHistory",
            pb::GetTransactionHistoryRequest {
                account_id: account.into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "AuthorizePayment",
            pb::AuthorizePaymentRequest {
                idempotency_key: key.into(),
                sender_id: account.into(),
                recipient_id: format!("{account}-to"),
                amount: 1,
                currency: "EUR".into(),
                memo: String::new(),
                expires_in_seconds: 600,
            }
            .encode_to_vec(),
        ),
        (
            "CaptureHold",
            pb::CaptureHoldRequest {
                hold: by_key(),
                amount: 0,
            }
            .encode_to_vec(),
        ),
        (
            "VoidHold",
            pb::VoidHoldRequest { hold: by_key() }.encode_to_vec(),
        ),
        (
            "RefundPayment",
            pb::RefundPaymentRequest {
                idempotency_key: key.into(),
                payment: by_key(),
                amount: 0,
                memo: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "GetPayment",
            pb::GetPaymentRequest {
                payment: by_key(),
                finalize: false,
            }
            .encode_to_vec(),
        ),
        (
            "ListAccounts",
            pb::ListAccountsRequest::default().encode_to_vec(),
        ),
        (
            "SetBalanceShards",
            pb::SetBalanceShardsRequest {
                account_id: account.into(),
                balance_shards: 2,
            }
            .encode_to_vec(),
        ),
        (
            "WatchAccount",
            pb::WatchAccountRequest {
                account_id: account.into(),
                resume_token: String::new(),
                max_seconds: 1,
            }
            .encode_to_vec(),
        ),
    ];
    let names: std::collections::BTreeSet<&str> = requests.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), requests.len(), "a method listed twice");
    assert_eq!(
        names,
        contract_methods(),
        "valid_requests has exactly the contract's methods"
    );
    requests.into_iter().map(|(n, r)| (method(n), r)).collect()
}

/// One pass through [`every_call`]: the caller, and the methods called so far.
struct Calls<'a, C> {
    caller: &'a mut C,
    called: std::collections::BTreeSet<&'static str>,
    what: &'a str,
}

impl<C: Caller> Calls<'_, C> {
    async fn raw(
        &mut self,
        name: &str,
        request: impl Message,
    ) -> Result<Vec<Bytes>, tonic::Status> {
        let method = method(name);
        self.called.insert(method.name);
        self.caller.call(method, request.encode_to_vec()).await
    }

    /// A unary call that must succeed, its reply decoded.
    async fn ok<R: Message + Default>(&mut self, name: &str, request: impl Message) -> R {
        let messages = self
            .raw(name, request)
            .await
            .unwrap_or_else(|s| panic!("{}: {name}: {:?} {}", self.what, s.code(), s.message()));
        assert_eq!(messages.len(), 1, "{}: {name}: one reply", self.what);
        R::decode(messages[0].clone()).expect("the method's reply type")
    }

    async fn account(&mut self, id: &str) -> pb::Account {
        let request = pb::GetAccountBalanceRequest {
            account_id: id.into(),
        };
        let reply: pb::GetAccountBalanceResponse = self.ok("GetAccountBalance", request).await;
        reply.account.expect("account")
    }
}

/// Calls every method of the contract through `caller`, as an admin whose
/// subject is `owner`, and checks each answer: two accounts, a payment and
/// its replay, a balance, the history, a hold captured in part, a hold
/// voided, a refund, two lookups, the owner's listing, balance shards
/// raised (and not lowered) and an error. Fails if a method of
/// `pb::METHODS` was not called, so a method added to the proto must be
/// added here.
pub async fn every_call(caller: &mut impl Caller, owner: &str, what: &str) {
    let mut calls = Calls {
        caller,
        called: Default::default(),
        what,
    };
    let (a, b) = (unique("every-a"), unique("every-b"));
    for (id, initial) in [(&a, 10_000), (&b, 0)] {
        let opened: pb::AddAccountResponse = calls
            .ok(
                "AddAccount",
                pb::AddAccountRequest {
                    account_id: id.clone(),
                    display_name: "every call".into(),
                    currency: "EUR".into(),
                    initial_balance: initial,
                    ..Default::default()
                },
            )
            .await;
        let account = opened.account.expect("account");
        assert_eq!(
            (account.balance, account.owner.as_str()),
            (initial, owner),
            "{what}"
        );
    }
    // A watch of a from now: it ends at its bound (a second) with only the
    // token to resume from, and the payment below is what comes after it.
    let watch = |resume_token: String| pb::WatchAccountRequest {
        account_id: a.clone(),
        resume_token,
        max_seconds: 1,
    };
    let watched = calls
        .raw("WatchAccount", watch(String::new()))
        .await
        .unwrap_or_else(|s| panic!("{what}: WatchAccount: {s:?}"));
    let watched: Vec<pb::WatchAccountResponse> = watched
        .iter()
        .map(|m| pb::WatchAccountResponse::decode(m.clone()).expect("watch message"))
        .collect();
    assert_eq!(watched.len(), 1, "{what}: nothing happened: {watched:?}");
    assert!(watched[0].transaction.is_none(), "{what}");
    let resume_token = watched[0].resume_token.clone();
    assert!(!resume_token.is_empty(), "{what}: a token to resume from");
    let order = pb::MakePaymentRequest {
        idempotency_key: "p1".into(),
        sender_id: a.clone(),
        recipient_id: b.clone(),
        amount: 2_500,
        currency: "EUR".into(),
        memo: "every call".into(),
    };
    let paid: pb::MakePaymentResponse = calls.ok("MakePayment", order.clone()).await;
    let again: pb::MakePaymentResponse = calls.ok("MakePayment", order).await;
    assert!(
        !paid.replayed && again.replayed,
        "{what}: the retry is a replay"
    );
    assert_eq!(paid.transaction, again.transaction, "{what}");
    let payment = paid.transaction.expect("transaction");
    assert_eq!(calls.account(&a).await.balance, 7_500, "{what}");

    let history = calls
        .raw(
            "GetTransactionHistory",
            pb::GetTransactionHistoryRequest {
                account_id: a.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|s| panic!("{what}: GetTransactionHistory: {s:?}"));
    let sequences: Vec<i64> = history
        .iter()
        .map(|m| {
            pb::GetTransactionHistoryResponse::decode(m.clone())
                .expect("entry")
                .sequence
        })
        .collect();
    assert_eq!(sequences, [2, 1], "{what}: newest first");
    // The watch resumed from its token: the payment, exactly, then the last
    // message, whose token is the payment's.
    let watched = calls
        .raw("WatchAccount", watch(resume_token))
        .await
        .unwrap_or_else(|s| panic!("{what}: WatchAccount: {s:?}"));
    let watched: Vec<pb::WatchAccountResponse> = watched
        .iter()
        .map(|m| pb::WatchAccountResponse::decode(m.clone()).expect("watch message"))
        .collect();
    assert_eq!(
        watched.len(),
        2,
        "{what}: the payment, then the end: {watched:?}"
    );
    let entry = &watched[0];
    assert_eq!(entry.transaction.as_ref(), Some(&payment), "{what}");
    assert_eq!(
        (
            entry.direction,
            entry.balance_after,
            entry.sequence,
            entry.shard
        ),
        (pb::Direction::Debit as i32, 7_500, 2, 0),
        "{what}"
    );
    assert!(watched[1].transaction.is_none(), "{what}");
    assert_eq!(watched[1].resume_token, entry.resume_token, "{what}");

    // A hold captured in part, another voided.
    let hold = |key: &str, amount: i64| pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: a.clone(),
        recipient_id: b.clone(),
        amount,
        currency: "EUR".into(),
        memo: "every call".into(),
        expires_in_seconds: 600,
    };
    let placed: pb::AuthorizePaymentResponse =
        calls.ok("AuthorizePayment", hold("h1", 1_000)).await;
    let first_hold = placed.hold.expect("hold");
    assert_eq!(
        (first_hold.state, first_hold.amount),
        (pb::HoldState::Open as i32, 1_000),
        "{what}"
    );
    let held = calls.account(&a).await;
    assert_eq!(
        (held.balance, held.held, held.available),
        (7_500, 1_000, 6_500),
        "{what}"
    );
    let captured: pb::CaptureHoldResponse = calls
        .ok(
            "CaptureHold",
            pb::CaptureHoldRequest {
                hold: Some(pb::PaymentRef {
                    transaction_id: first_hold.hold_id.clone(),
                    ..Default::default()
                }),
                amount: 600,
            },
        )
        .await;
    let captured_hold = captured.hold.expect("hold");
    assert_eq!(
        (captured_hold.state, captured_hold.captured_amount),
        (pb::HoldState::Captured as i32, 600),
        "{what}"
    );
    let capture = captured.transaction.expect("transaction");
    assert_eq!(
        (
            capture.amount,
            capture.kind,
            capture.transaction_id.as_str()
        ),
        (
            600,
            pb::TransactionKind::Capture as i32,
            first_hold.hold_id.as_str()
        ),
        "{what}"
    );
    let _: pb::AuthorizePaymentResponse = calls.ok("AuthorizePayment", hold("h2", 500)).await;
    let voided: pb::VoidHoldResponse = calls
        .ok(
            "VoidHold",
            pb::VoidHoldRequest {
                hold: Some(pb::PaymentRef {
                    sender_id: a.clone(),
                    idempotency_key: "h2".into(),
                    ..Default::default()
                }),
            },
        )
        .await;
    assert_eq!(
        voided.hold.expect("hold").state,
        pb::HoldState::Voided as i32,
        "{what}"
    );

    // A refund of part of the payment, and the payment and refund looked up.
    let refunded: pb::RefundPaymentResponse = calls
        .ok(
            "RefundPayment",
            pb::RefundPaymentRequest {
                idempotency_key: "r1".into(),
                payment: Some(pb::PaymentRef {
                    sender_id: a.clone(),
                    idempotency_key: "p1".into(),
                    ..Default::default()
                }),
                amount: 1_000,
                memo: "every call".into(),
            },
        )
        .await;
    let refund = refunded.transaction.expect("transaction");
    assert_eq!(
        (
            refund.kind,
            refund.amount,
            refund.sender_id.as_str(),
            refund.refund_of.as_str()
        ),
        (
            pb::TransactionKind::Refund as i32,
            1_000,
            b.as_str(),
            payment.transaction_id.as_str()
        ),
        "{what}"
    );
    assert_eq!(refunded.refunded_total, 1_000, "{what}");
    let found: pb::GetPaymentResponse = calls
        .ok(
            "GetPayment",
            pb::GetPaymentRequest {
                payment: Some(pb::PaymentRef {
                    sender_id: a.clone(),
                    idempotency_key: "p1".into(),
                    ..Default::default()
                }),
                finalize: false,
            },
        )
        .await;
    assert_eq!(found.transaction.as_ref(), Some(&payment), "{what}");
    assert_eq!(found.refunded_total, 1_000, "{what}");
    let found: pb::GetPaymentResponse = calls
        .ok(
            "GetPayment",
            pb::GetPaymentRequest {
                payment: Some(pb::PaymentRef {
                    transaction_id: refund.transaction_id.clone(),
                    ..Default::default()
                }),
                finalize: false,
            },
        )
        .await;
    assert_eq!(found.transaction.as_ref(), Some(&refund), "{what}");

    // a: 10,000 - 2,500 - 600 + 1,000; b: 2,500 + 600 - 1,000; nothing held.
    let (a_now, b_now) = (calls.account(&a).await, calls.account(&b).await);
    assert_eq!((a_now.balance, a_now.held), (7_900, 0), "{what}");
    assert_eq!((b_now.balance, b_now.held), (2_100, 0), "{what}");

    // The owner's accounts. The listing comes from an index that may lag a
    // just opened account by a moment (the contract says so): read it
    // again until both accounts are in, within a bound.
    let mut listed = Vec::new();
    for _ in 0..50 {
        listed = list_all(&mut calls, owner).await;
        if [&a, &b]
            .iter()
            .all(|id| listed.iter().any(|x| &&x.account_id == id))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (id, balance) in [(&a, 7_900), (&b, 2_100)] {
        let account = listed
            .iter()
            .find(|x| &x.account_id == id)
            .unwrap_or_else(|| panic!("{what}: {id} is not in its owner's listing"));
        assert_eq!(
            (account.balance, account.owner.as_str()),
            (balance, owner),
            "{what}"
        );
    }
    assert!(
        listed.iter().all(|x| x.owner == owner),
        "{what}: another owner's account listed"
    );

    // a's balance shards raised (an admin's call): the same money over more
    // shards; the same count again changes nothing; fewer is refused.
    let shards = |balance_shards: i32| pb::SetBalanceShardsRequest {
        account_id: a.clone(),
        balance_shards,
    };
    let raised: pb::SetBalanceShardsResponse = calls.ok("SetBalanceShards", shards(4)).await;
    let account = raised.account.expect("account");
    assert!(raised.raised, "{what}: 1 to 4 shards is a raise");
    assert_eq!(
        (
            account.account_id.as_str(),
            account.balance_shards,
            account.balance,
            account.held
        ),
        (a.as_str(), 4, 7_900, 0),
        "{what}"
    );
    let again: pb::SetBalanceShardsResponse = calls.ok("SetBalanceShards", shards(4)).await;
    let account = again.account.expect("account");
    assert!(!again.raised, "{what}: the count it has is no raise");
    assert_eq!(
        (account.balance_shards, account.balance),
        (4, 7_900),
        "{what}"
    );
    let status = calls
        .raw("SetBalanceShards", shards(2))
        .await
        .expect_err("fewer shards");
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{what}: {}",
        status.message()
    );
    assert!(
        status.message().contains(&a),
        "{what}: {}",
        status.message()
    );
    let a_now = calls.account(&a).await;
    assert_eq!(
        (a_now.balance_shards, a_now.balance, a_now.available),
        (4, 7_900, 7_900),
        "{what}"
    );

    // An error comes back as its status.
    let ghost = unique("ghost");
    let status = calls
        .raw(
            "GetAccountBalance",
            pb::GetAccountBalanceRequest {
                account_id: ghost.clone(),
            },
        )
        .await
        .expect_err("an unknown account");
    assert_eq!(
        status.code(),
        Code::NotFound,
        "{what}: {}",
        status.message()
    );
    assert!(
        status.message().contains(&ghost),
        "{what}: {}",
        status.message()
    );

    assert_eq!(
        calls.called,
        contract_methods(),
        "{what}: every method of the contract is called"
    );
}

/// Every page of `owner`'s accounts.
async fn list_all<C: Caller>(calls: &mut Calls<'_, C>, owner: &str) -> Vec<pb::Account> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page: pb::ListAccountsResponse = calls
            .ok(
                "ListAccounts",
                pb::ListAccountsRequest {
                    page_size: 100,
                    page_token: token,
                    owner: owner.into(),
                },
            )
            .await;
        all.extend(page.accounts);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
    panic!("{}: more than 1000 pages of accounts", calls.what);
}

#[tokio::test]
async fn grpc_web_text_replies_decode_chunk_by_chunk() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    pay(&mut c, order("t1", &a, &b, 10)).await.unwrap();
    let mut text = request_headers(true);
    text.push(("authorization", TESTER_AUTH.as_str()));
    let request = pb::GetTransactionHistoryRequest {
        account_id: a.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let body = request_body(&request.encode_to_vec(), true);
    let reply = raw(&app, http::Method::POST, HISTORY, &text, body).await;
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        reply.grpc_status().as_deref(),
        Some("0"),
        "{}",
        reply.grpc_message()
    );
    let entries: Vec<pb::GetTransactionHistoryResponse> = reply.decoded();
    assert_eq!(
        entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![2, 1]
    );

    let request = pb::GetAccountBalanceRequest {
        account_id: b.clone(),
    };
    let body = request_body(&request.encode_to_vec(), true);
    let reply = raw(&app, http::Method::POST, BALANCE, &text, body).await;
    let account = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(account.balance, 10);
}

#[tokio::test]
async fn malformed_grpc_web_requests_get_a_clear_status_never_internal() {
    let web: &[(&str, &str)] = &WEB_HEADERS;
    let app = TestApp::spawn().await;
    let valid = frame(
        &pb::GetAccountBalanceRequest {
            account_id: "a".into(),
        }
        .encode_to_vec(),
    );
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() - 1);
    let mut two_messages = valid.clone();
    two_messages.extend_from_slice(&valid);
    let text = [
        ("content-type", "application/grpc-web-text"),
        ("x-grpc-web", "1"),
    ];
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        ("empty body", web, vec![], "3"),
        ("short header", web, vec![0, 0, 0], "3"),
        ("truncated message", web, truncated, "3"),
        ("two messages for a unary call", web, two_messages, "3"),
        ("not protobuf", web, frame(&[0x0f, 0xff, 0xff]), "3"),
        (
            "invalid UTF-8 in a string",
            web,
            frame(&[0x0a, 0x02, 0xff, 0xfe]),
            "3",
        ),
        (
            "compressed flag",
            web,
            {
                let mut f = valid.clone();
                f[0] = 1;
                f
            },
            "12",
        ),
        (
            "unknown flag",
            web,
            {
                let mut f = valid.clone();
                f[0] = 0x40;
                f
            },
            "3",
        ),
        ("oversized", web, frame(&vec![b'a'; 100_000]), "8"),
        ("invalid base64", &text, b"!!!not base64!!!".to_vec(), "3"),
    ];
    for (name, headers, body, expected) in cases {
        let reply = raw(&app, http::Method::POST, BALANCE, headers, body).await;
        assert_eq!(reply.http_status, 200, "{name}");
        assert_eq!(
            reply.grpc_status().as_deref(),
            Some(expected),
            "{name}: {}",
            reply.grpc_message()
        );
        assert!(!reply.grpc_message().is_empty(), "{name}: no message");
    }
    // Not gRPC at all: plain HTTP errors.
    let json = raw(
        &app,
        http::Method::POST,
        BALANCE,
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    // tonic-web answers 400 to HTTP/1.1 that is not gRPC-Web; the guard 415 over HTTP/2.
    assert!(
        json.http_status == 400 || json.http_status == 415,
        "JSON answered {}",
        json.http_status
    );
    let get = raw(&app, http::Method::GET, BALANCE, &[], vec![]).await;
    assert!(
        (400..500).contains(&get.http_status),
        "GET answered {}",
        get.http_status
    );
    // Unknown method: UNIMPLEMENTED.
    let unknown = raw(
        &app,
        http::Method::POST,
        "/payment.v1.PaymentService/Steal",
        web,
        valid.clone(),
    )
    .await;
    assert_eq!(unknown.grpc_status().as_deref(), Some("12"));
    // The server is still fine.
    let ok = raw(&app, http::Method::POST, BALANCE, web, valid).await;
    assert_eq!(
        ok.grpc_status().as_deref(),
        Some("5"),
        "{}",
        ok.grpc_message()
    );
}

#[tokio::test]
async fn cors_preflight_allows_grpc_web_headers() {
    let app = TestApp::spawn().await;
    let reply = raw(
        &app,
        http::Method::OPTIONS,
        BALANCE,
        &[
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent,authorization",
            ),
        ],
        vec![],
    )
    .await;
    assert_eq!(reply.http_status, 200);
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), "*");
    for h in [
        "content-type",
        "x-grpc-web",
        "authorization",
        "grpc-timeout",
    ] {
        assert!(header("access-control-allow-headers").contains(h), "{h}");
    }
    let actual = raw(
        &app,
        http::Method::POST,
        BALANCE,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("origin", "http://localhost:5173"),
        ],
        frame(
            &pb::GetAccountBalanceRequest {
                account_id: "nobody".into(),
            }
            .encode_to_vec(),
        ),
    )
    .await;
    let exposed = actual
        .headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let app = TestApp::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "payment.v1.PaymentService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"payment.v1.PaymentService"), "{names:?}");

    // The older version too (both are built on their first call).
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_client::ServerReflectionClient as AlphaClient,
        server_reflection_request::MessageRequest as AlphaMessageRequest,
        server_reflection_response::MessageResponse as AlphaMessageResponse,
    };
    let request = AlphaRequest {
        host: String::new(),
        message_request: Some(AlphaMessageRequest::FileContainingSymbol(
            "payment.v1.PaymentService".into(),
        )),
    };
    let mut replies = AlphaClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(AlphaMessageResponse::FileDescriptorResponse(files)) = reply.message_response else {
        panic!("unexpected v1alpha reflection reply: {reply:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

/// Every connection the server accepts has TCP_NODELAY set (read back from
/// the server's own sockets, in this process). Without it a server-streamed
/// call stalls: the reply's headers go out when the handler returns, and the
/// entries and trailers written after the Query wait (Nagle) for the ACK of
/// the headers, which the client delays by up to 40 ms. The option is
/// checked rather than the stall timed, so that no load makes this pass or
/// fail.
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    let app = TestApp::spawn().await;
    let mut native = app.grpc().await;
    let mut web = app.grpc_web();
    for client_result in [
        native
            .get_account_balance(pb::GetAccountBalanceRequest {
                account_id: unique("missing"),
            })
            .await
            .map(drop),
        web.get_account_balance(pb::GetAccountBalanceRequest {
            account_id: unique("missing"),
        })
        .await
        .map(drop),
    ] {
        assert_eq!(client_result.unwrap_err().code(), Code::NotFound);
    }
    let accepted = server_sockets(app.addr);
    assert!(
        accepted.len() >= 2,
        "expected the native and the gRPC-Web connection, found {accepted:?}"
    );
    for (fd, nodelay) in accepted {
        assert!(nodelay, "accepted socket fd {fd} has no TCP_NODELAY");
    }
}

/// This process's connected TCP sockets whose local address is `server`
/// (the server's side of its accepted connections), each with whether
/// TCP_NODELAY is set.
fn server_sockets(server: std::net::SocketAddr) -> Vec<(i32, bool)> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(fd) = entry
            .expect("fd entry")
            .file_name()
            .to_string_lossy()
            .parse::<i32>()
        else {
            continue;
        };
        let is_socket = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the fd is open in this process for the duration of this
        // loop body (the server keeps its connections open); we only read
        // socket options and addresses, never close it.
        let socket = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(socket) = socket.try_clone_to_owned() else {
            continue; // closed meanwhile
        };
        let std_socket = std::net::TcpStream::from(socket);
        let (Ok(local), Ok(_peer)) = (std_socket.local_addr(), std_socket.peer_addr()) else {
            continue; // not a connected TCP socket (a listener, a Unix socket)
        };
        if local != server {
            continue;
        }
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a c_int of the stated length.
        let rc = unsafe {
            libc::getsockopt(
                std_socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt TCP_NODELAY on fd {fd}");
        found.push((fd, value != 0));
    }
    found
}

/// An HTTP/1.1 endpoint that answers every request with `raw`, as an API
/// gateway or a proxy does before any gRPC service is reached.
async fn answering(raw: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut request)).await;
            let _ = socket.write_all(raw.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, task)
}

#[tokio::test]
async fn an_answer_that_is_not_grpc_web_reads_as_the_status_its_http_status_maps_to() {
    for (raw, code, needle) in [
        (
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 26\r\nconnection: close\r\n\r\n{\"message\":\"Unauthorized\"}",
            Code::Unauthenticated,
            "HTTP 401 Unauthorized (application/json), not gRPC-Web: {\"message\":\"Unauthorized\"}",
        ),
        (
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<h1>502</h1>\n",
            Code::Unavailable,
            "HTTP 502 Bad Gateway (text/html), not gRPC-Web: <h1>502</h1>",
        ),
        (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            Code::Unimplemented,
            "HTTP 404 Not Found (no content type), not gRPC-Web",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\nconnection: close\r\n\r\n<html>",
            Code::Unknown,
            "HTTP 200 OK (text/html), not gRPC-Web: <html>",
        ),
    ] {
        let (url, server) = answering(raw).await;
        let mut client = payment::client::connect_grpc_web(&url).unwrap();
        let status = client
            .get_account_balance(pb::GetAccountBalanceRequest {
                account_id: "a".into(),
            })
            .await
            .expect_err("not a gRPC answer");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(needle), "{status:?}");
        server.abort();
    }
}
