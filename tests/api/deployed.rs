//! What the function answers as deployed, through the crate's gRPC-Web
//! client, checked the same way under `cargo lambda watch`
//! (lambda_watch.rs) and on the local cloud (cloud/): a retried payment
//! replays, history pages continue after an entry, and the error codes
//! come through as gRPC statuses.

use crate::harness::AuthedClient;
use crate::helpers::{assert_code, unique};
use payment::client::GrpcWebTransport;
use payment::pb;
use tonic::Code;

/// The crate's gRPC-Web client, with a bearer token.
pub type WebClient = AuthedClient<GrpcWebTransport>;

/// A payment and its retry: the retry is answered from the first call's
/// record, as a replay of the same transaction.
pub async fn a_retry_replays(web: &mut WebClient, order: pb::MakePaymentRequest) {
    let first = web.make_payment(order.clone()).await.unwrap().into_inner();
    let again = web.make_payment(order).await.unwrap().into_inner();
    assert!(!first.replayed && again.replayed, "the retry is a replay");
    assert_eq!(first.transaction, again.transaction);
}

/// The history of `account`, which has three entries, in pages: newest
/// first, and a page token continues after an entry, to the opening and no
/// further.
pub async fn history_pages_continue(web: &mut WebClient, account: &str) {
    let mut stream = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: account.into(),
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut page = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        page.push(entry);
    }
    assert_eq!(page.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3, 2]);
    let mut rest = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: account.into(),
            page_size: 0,
            page_token: page[1].next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let last = rest.message().await.unwrap().unwrap();
    assert_eq!((last.sequence, last.next_page_token.as_str()), (1, ""));
    assert!(rest.message().await.unwrap().is_none());
}

/// The error codes, from the function through whatever is in front of it:
/// an account that does not exist, an invalid id, insufficient funds, a
/// key reused for another payment, an account opened twice, a payment to
/// itself, a forged page token. `order(key, amount)` is a payment from
/// `account`, which holds less than 1,000,000; `keys` are a new key, the
/// key of a payment already made (for another amount than 1), and another
/// new key.
pub async fn errors_come_through(
    web: &mut WebClient,
    account: &str,
    order: impl Fn(&str, i64) -> pb::MakePaymentRequest,
    keys: [&str; 3],
) {
    let [too_much, reused, to_itself] = keys;
    let balance_of = |id: &str| pb::GetAccountBalanceRequest {
        account_id: id.into(),
    };
    let ghost = unique("ghost");
    assert_code(
        web.get_account_balance(balance_of(&ghost)).await,
        Code::NotFound,
        &ghost,
    );
    assert_code(
        web.get_account_balance(balance_of("bad id")).await,
        Code::InvalidArgument,
        "account_id",
    );
    assert_code(
        web.make_payment(order(too_much, 1_000_000)).await,
        Code::FailedPrecondition,
        "insufficient funds",
    );
    assert_code(
        web.make_payment(order(reused, 1)).await,
        Code::AlreadyExists,
        "different payment",
    );
    assert_code(
        web.add_account(pb::AddAccountRequest {
            account_id: account.into(),
            currency: "EUR".into(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "already exists",
    );
    let mut self_pay = order(to_itself, 1);
    self_pay.recipient_id = account.into();
    assert_code(
        web.make_payment(self_pay).await,
        Code::InvalidArgument,
        "recipient_id",
    );
    let mut stream = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: account.into(),
            page_size: 5,
            page_token: "forged".into(),
        })
        .await;
    if let Ok(s) = &mut stream {
        // The status may come as the stream's first (and only) item.
        let status = s.get_mut().message().await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    } else {
        assert_code(stream.map(|_| ()), Code::InvalidArgument, "page_token");
    }
}
