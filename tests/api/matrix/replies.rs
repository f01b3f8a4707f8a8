//! The answers of the OK rows: each decodes as its method's response and
//! says what the tables (as the call found them) hold: the account opened,
//! the payment or hold made, the balance, the newest history page, every
//! watched entry after the token, the listing, the shards raised.

use super::effects::{Snapshot, balance_in, entries_in, total_balance};
use super::table::*;
use crate::harness::TESTER;
use crate::helpers::grpc_web::{WebReply, parse_frames};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use payment::pb;
use prost::Message;

/// The replies of an OK case decode as the method's response, and say what
/// the tables (`before`, as the call found them) hold.
pub(super) fn check_ok_reply(
    name: &str,
    case: &Case,
    effect: &Effect,
    reply: &WebReply,
    before: &Snapshot,
) {
    let one = || {
        assert_eq!(reply.messages.len(), 1, "{name}: unary reply");
        reply.messages[0].clone()
    };
    match case.method {
        ADD => check_opened(effect, one()),
        PAY => check_paid(name, effect, one()),
        BALANCE => check_balance(name, case, one(), before),
        HISTORY => check_history_reply(name, case, reply, before),
        WATCH => check_watch_reply(name, case, reply, before),
        AUTHORIZE => check_held(name, effect, one()),
        LOOKUP => check_lookup(name, one()),
        LIST => check_list(name, one(), before),
        SHARDS => check_resharded(name, case, effect, one(), before),
        other => panic!("{name}: OK from {other}"),
    }
}

/// The request message of a case: its message, or the first frame's.
pub(super) fn request_message(name: &str, case: &Case) -> Vec<u8> {
    let framed = match &case.body {
        Body::Message(m) => return m.clone(),
        Body::Frames(f) | Body::Raw(f) => f,
    };
    let (messages, trailers) = parse_frames(framed);
    assert!(
        messages.len() == 1 && trailers.is_empty() && framed[0] == 0,
        "{name}: not one data frame"
    );
    messages[0].to_vec()
}

/// AddAccount: the account opened, with its opening balance.
fn check_opened(effect: &Effect, message: Bytes) {
    let account = pb::AddAccountResponse::decode(message)
        .expect("AddAccountResponse")
        .account
        .expect("account");
    if let Effect::Opened {
        account: id,
        balance,
    } = effect
    {
        assert_eq!((&account.account_id, account.balance), (id, *balance));
    }
}

/// MakePayment: a new payment (not a replay), between the parties asked.
fn check_paid(name: &str, effect: &Effect, message: Bytes) {
    let response = pb::MakePaymentResponse::decode(message).expect("MakePaymentResponse");
    assert!(!response.replayed, "{name}: a new key replayed");
    if let Effect::Paid { from, to, amount } = effect {
        let tx = response.transaction.expect("transaction");
        assert_eq!(
            (tx.sender_id.as_str(), tx.recipient_id.as_str(), tx.amount),
            (*from, *to, *amount),
            "{name}"
        );
    }
}

/// GetAccountBalance: the fixture account asked for, with its balance.
fn check_balance(name: &str, case: &Case, message: Bytes, before: &Snapshot) {
    let asked = pb::GetAccountBalanceRequest::decode(request_message(name, case).as_slice())
        .expect("request");
    let account = pb::GetAccountBalanceResponse::decode(message)
        .expect("GetAccountBalanceResponse")
        .account
        .expect("account");
    assert_eq!(account.account_id, asked.account_id, "{name}: account id");
    assert_eq!(
        account.balance,
        balance_in(before, &asked.account_id),
        "{name}: balance"
    );
    assert_eq!(
        (
            account.currency.as_str(),
            account.display_name.as_str(),
            account.owner.as_str()
        ),
        ("EUR", "fixture", TESTER),
        "{name}: account facts"
    );
}

/// AuthorizePayment: a new open hold, between the parties asked.
fn check_held(name: &str, effect: &Effect, message: Bytes) {
    let response = pb::AuthorizePaymentResponse::decode(message).expect("AuthorizePaymentResponse");
    assert!(!response.replayed, "{name}: a new key replayed");
    let hold = response.hold.expect("hold");
    if let Effect::Held { from, to, amount } = effect {
        assert_eq!(
            (
                hold.sender_id.as_str(),
                hold.recipient_id.as_str(),
                hold.amount
            ),
            (*from, *to, *amount),
            "{name}"
        );
    }
    assert_eq!(hold.state, pb::HoldState::Open as i32, "{name}: state");
}

/// GetPayment: the fixture payment asked for by its key.
fn check_lookup(name: &str, message: Bytes) {
    let found = pb::GetPaymentResponse::decode(message).expect("GetPaymentResponse");
    let tx = found.transaction.expect("transaction");
    assert_eq!(
        (tx.sender_id.as_str(), tx.recipient_id.as_str(), tx.amount),
        (A, B, 11),
        "{name}"
    );
    assert_eq!(found.idempotency_key, "fixture-1", "{name}");
}

/// ListAccounts: every account, by id, with its balance, held and available.
fn check_list(name: &str, message: Bytes, before: &Snapshot) {
    let listed = pb::ListAccountsResponse::decode(message).expect("ListAccountsResponse");
    let ids: Vec<&str> = listed
        .accounts
        .iter()
        .map(|a| a.account_id.as_str())
        .collect();
    let mut expected: Vec<String> = before
        .keys()
        .filter_map(|k| k.strip_prefix("account|"))
        .filter(|k| !k.contains('#'))
        .map(str::to_owned)
        .collect();
    expected.sort();
    assert_eq!(ids, expected, "{name}: every account, by id");
    for account in &listed.accounts {
        assert_eq!(
            account.balance,
            balance_in(before, &account.account_id),
            "{name}"
        );
        // The AuthorizePayment rows hold money of A and SINK.
        assert!(account.held >= 0, "{name}: held {}", account.held);
        assert_eq!(
            account.available,
            account.balance - account.held,
            "{name}: available is what is not held"
        );
        if ![A, SINK].contains(&account.account_id.as_str()) {
            assert_eq!(
                account.held, 0,
                "{name}: {} holds nothing",
                account.account_id
            );
        }
    }
}

/// SetBalanceShards: the account with the count asked for, raised or not,
/// and the same money.
fn check_resharded(name: &str, case: &Case, effect: &Effect, message: Bytes, before: &Snapshot) {
    let asked = pb::SetBalanceShardsRequest::decode(request_message(name, case).as_slice())
        .expect("request");
    let response = pb::SetBalanceShardsResponse::decode(message).expect("SetBalanceShardsResponse");
    assert_eq!(
        response.raised,
        matches!(effect, Effect::Resharded { .. }),
        "{name}: raised"
    );
    let account = response.account.expect("account");
    assert_eq!(
        (account.account_id.as_str(), account.balance_shards),
        (asked.account_id.as_str(), asked.balance_shards),
        "{name}: the account, with the count asked for"
    );
    assert_eq!(
        account.balance,
        total_balance(before, &asked.account_id),
        "{name}: the same money"
    );
}

/// A watch of an ordinary account that ran its bound: the entries after
/// its resume token, oldest first, each with its own token, then the last
/// message with only the token after all of them.
fn check_watch_reply(name: &str, case: &Case, reply: &WebReply, before: &Snapshot) {
    let asked =
        pb::WatchAccountRequest::decode(request_message(name, case).as_slice()).expect("request");
    let messages: Vec<pb::WatchAccountResponse> = reply.decoded();
    let (last, entries) = messages.split_last().expect("at least the last message");
    assert!(
        last.transaction.is_none(),
        "{name}: the last message is no entry"
    );
    let after =
        |sequence: u64| URL_SAFE_NO_PAD.encode(format!("w1|{}|{sequence}", asked.account_id));
    let newest = entries_in(before, &asked.account_id);
    let first = if asked.resume_token.is_empty() {
        newest + 1
    } else {
        1
    };
    assert_eq!(
        entries.len() as u64,
        newest + 1 - first,
        "{name}: every entry after the token"
    );
    for (entry, sequence) in entries.iter().zip(first..) {
        assert_eq!(entry.sequence as u64, sequence, "{name}: oldest first");
        assert!(entry.transaction.is_some(), "{name}: entry {sequence}");
        assert_eq!(entry.resume_token, after(sequence + 1), "{name}: its token");
    }
    assert_eq!(
        last.resume_token,
        after(newest + 1),
        "{name}: the last token"
    );
}

/// A first page of history: the newest entries of the account, newest first,
/// gapless, as many as the page holds, balances that add up to the balance.
fn check_history_reply(name: &str, case: &Case, reply: &WebReply, before: &Snapshot) {
    let asked = pb::GetTransactionHistoryRequest::decode(request_message(name, case).as_slice())
        .expect("request");
    let id = asked.account_id.as_str();
    let total = entries_in(before, id);
    assert!(total > 0, "{name}: {id} has no entries in the table");
    let page_size = match asked.page_size {
        0 => u64::from(payment::domain::PAGE_SIZE_DEFAULT),
        n => u64::try_from(n).expect("an OK page_size is positive"),
    };
    // Every OK history case reads from the newest entry: no token, or one
    // past every sequence (u64::MAX).
    let entries: Vec<pb::GetTransactionHistoryResponse> = reply.decoded();
    assert_eq!(
        entries.len() as u64,
        total.min(page_size),
        "{name}: entries on the page"
    );
    let sequences: Vec<u64> = entries.iter().map(|e| e.sequence as u64).collect();
    let want: Vec<u64> = (0..entries.len() as u64).map(|i| total - i).collect();
    assert_eq!(sequences, want, "{name}: newest first, without gaps");
    assert_eq!(
        entries[0].balance_after,
        balance_in(before, id),
        "{name}: the newest entry ends at the balance"
    );
    for (i, e) in entries.iter().enumerate() {
        let tx = e.transaction.as_ref().expect("transaction");
        assert_eq!(e.shard, 0, "{name}: an unsharded account");
        let signed = match pb::Direction::try_from(e.direction) {
            Ok(pb::Direction::Debit) => {
                assert_eq!(tx.sender_id, id, "{name}: a debit is sent by {id}");
                -tx.amount
            }
            Ok(pb::Direction::Credit) => {
                assert_eq!(tx.recipient_id, id, "{name}: a credit is received by {id}");
                tx.amount
            }
            other => panic!("{name}: direction {other:?}"),
        };
        assert!(tx.amount > 0, "{name}: amount {}", tx.amount);
        assert_eq!(tx.currency, "EUR", "{name}");
        if let Some(older) = entries.get(i + 1) {
            assert_eq!(
                older.balance_after,
                e.balance_after - signed,
                "{name}: entry {} follows from entry {}",
                e.sequence,
                older.sequence
            );
        } else if e.sequence == 1 {
            assert_eq!(
                e.balance_after, signed,
                "{name}: the first entry opens from zero"
            );
        }
        assert_eq!(
            e.next_page_token.is_empty(),
            e.sequence == 1,
            "{name}: a page token continues after entry {} unless it is the oldest",
            e.sequence
        );
    }
}
