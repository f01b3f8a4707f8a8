//! The rows of the matrix, one group a method or a kind of input, in the
//! order they run: each transport runs them one after another on the same
//! tables, so a row may rely on the rows before it (the 10^15 hold is on
//! SINK, which the MakePayment row of 10^15 filled; ListAccounts sees the
//! holds of A and SINK). Accounts opened by OK rows have ids starting with
//! "mo-"; fixture accounts (see `seed`) start with "mx-".

use super::every_method::every_method_rows;
use super::messages::*;
use super::table::*;
use super::transports::Transport;
use crate::helpers::grpc_web::{frame, frame_flagged, frame_header, text_body};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use payment::domain::{AMOUNT_MAX_MINOR, BALANCE_MAX_MINOR, PageToken};
use payment::guard::REQUEST_BYTES_MAX;
use payment::pb;
use prost::Message;
use tonic::Code;

/// The bad-input matrix, one row per case: name, method, body, expected
/// answer (and, after a row, the HTTP variation and the transports it is
/// limited to).
pub(super) fn cases() -> Vec<Case> {
    [
        add_account_rows(),
        make_payment_rows(),
        read_rows(),
        watch_rows(),
        wire_type_rows(),
        framing_rows(),
        http_rows(),
        hold_rows(),
        refund_lookup_and_list_rows(),
        balance_shards_rows(),
        path_and_text_rows(),
        every_method_rows(),
    ]
    .concat()
}

/// 64 four-byte chars: 256 bytes, at the byte limit of names and memos.
fn emoji64() -> String {
    "😀".repeat(64)
}

/// 87 chars, 257 bytes: under the limit in chars, one byte past it.
fn euro85_ab() -> String {
    format!("{}ab", "€".repeat(85))
}

/// A valid GetAccountBalanceRequest, of fixture account A.
fn valid_balance() -> Vec<u8> {
    pb::GetAccountBalanceRequest {
        account_id: A.into(),
    }
    .encode_to_vec()
}

/// AddAccount: account_id, currency, initial_balance, display_name (a byte limit).
#[rustfmt::skip]
fn add_account_rows() -> Vec<Case> {
    let x129 = "x".repeat(129);
    let id128_new = format!("mo-{}", "n".repeat(125));
    let (n256, n257) = ("n".repeat(256), "n".repeat(257));
    let e128 = "é".repeat(128); // 128 chars, 256 bytes
    let e128_a = format!("{e128}a"); // 129 chars, 257 bytes
    let (emoji64, euro85_ab) = (emoji64(), euro85_ab());
    vec![
        case("AddAccount account_id of 128 chars",            ADD, open(&id128_new, "", "EUR", 0),        opened(&id128_new, 0)),
        case("AddAccount account_id of 129 chars",            ADD, open(&x129, "", "EUR", 0),             invalid("account_id")),
        case("AddAccount account_id empty",                   ADD, open("", "", "EUR", 0),                invalid("account_id")),
        case("AddAccount account_id with a space",            ADD, open("has space", "", "EUR", 0),       invalid("account_id")),
        case("AddAccount account_id with a slash",            ADD, open("a/b", "", "EUR", 0),             invalid("account_id")),
        case("AddAccount account_id with a NUL",              ADD, open("a\0b", "", "EUR", 0),            invalid("account_id")),
        case("AddAccount account_id of 128 two-byte chars",   ADD, open(&e128, "", "EUR", 0),             invalid("account_id")),
        case("AddAccount account_id of four-byte chars",      ADD, open(&"😀".repeat(10), "", "EUR", 0),  invalid("account_id")),
        case("AddAccount currency lower case",                ADD, open("mo-c1", "", "eur", 0),           invalid("currency")),
        case("AddAccount currency of 4 letters",              ADD, open("mo-c2", "", "EURO", 0),          invalid("currency")),
        case("AddAccount currency empty",                     ADD, open("mo-c3", "", "", 0),              invalid("currency")),
        case("AddAccount currency one 3-byte char",           ADD, open("mo-c4", "", "€", 0),             invalid("currency")),
        case("AddAccount initial_balance -1",                 ADD, open("mo-i1", "", "EUR", -1),          invalid("initial_balance")),
        case("AddAccount initial_balance 0",                  ADD, open("mo-zero", "", "EUR", 0),         opened("mo-zero", 0)),
        case("AddAccount initial_balance 10^15",              ADD, open("mo-max", "", "EUR", BALANCE_MAX_MINOR), opened("mo-max", BALANCE_MAX_MINOR)),
        case("AddAccount initial_balance 10^15+1",            ADD, open("mo-i2", "", "EUR", BALANCE_MAX_MINOR + 1), invalid("initial_balance")),
        case("AddAccount initial_balance i64::MIN",           ADD, open("mo-i3", "", "EUR", i64::MIN),    invalid("initial_balance")),
        case("AddAccount initial_balance i64::MAX",           ADD, open("mo-i4", "", "EUR", i64::MAX),    invalid("initial_balance")),
        case("AddAccount display_name of 256 bytes",          ADD, open("mo-n1", &n256, "EUR", 0),        opened("mo-n1", 0)),
        case("AddAccount display_name of 257 bytes",          ADD, open("mo-n2", &n257, "EUR", 0),        invalid("display_name")),
        case("AddAccount display_name 128 two-byte chars",    ADD, open("mo-n3", &e128, "EUR", 0),        opened("mo-n3", 0)),
        case("AddAccount display_name 64 four-byte chars",    ADD, open("mo-n4", &emoji64, "EUR", 0),     opened("mo-n4", 0)),
        case("AddAccount display_name 129 chars, 257 bytes",  ADD, open("mo-n5", &e128_a, "EUR", 0),      invalid("display_name")),
        case("AddAccount display_name 87 chars, 257 bytes",   ADD, open("mo-n6", &euro85_ab, "EUR", 0),   invalid("display_name")),
        case("AddAccount display_name with a control char",   ADD, open("mo-n7", "bell\u{7}", "EUR", 0),  invalid("display_name")),
    ]
}

/// MakePayment: every field. OK rows pay from the fixture accounts.
#[rustfmt::skip]
fn make_payment_rows() -> Vec<Case> {
    let x129 = "x".repeat(129);
    let (m256, m257) = ("m".repeat(256), "m".repeat(257));
    let (k128, k129) = ("k".repeat(128), "k".repeat(129));
    let (emoji64, euro85_ab) = (emoji64(), euro85_ab());
    vec![
        case("MakePayment idempotency_key of 128 chars",      PAY, pay_ok(&k128),                         paid(A, B, 1)),
        case("MakePayment idempotency_key of 129 chars",      PAY, pay_ok(&k129),                         invalid("idempotency_key")),
        case("MakePayment idempotency_key empty",             PAY, pay_ok(""),                            invalid("idempotency_key")),
        case("MakePayment idempotency_key with a slash",      PAY, pay_ok("k/1"),                         invalid("idempotency_key")),
        case("MakePayment idempotency_key not ASCII",         PAY, pay_ok("ключ"),                        invalid("idempotency_key")),
        case("MakePayment sender_id of 129 chars",            PAY, payment("k-s1", &x129, B, 1, "EUR", ""),  invalid("sender_id")),
        case("MakePayment sender_id with a space",            PAY, payment("k-s2", "a b", B, 1, "EUR", ""),  invalid("sender_id")),
        case("MakePayment recipient_id of 129 chars",         PAY, payment("k-r1", A, &x129, 1, "EUR", ""),  invalid("recipient_id")),
        case("MakePayment recipient_id empty",                PAY, payment("k-r2", A, "", 1, "EUR", ""),     invalid("recipient_id")),
        case("MakePayment recipient_id equal to sender_id",   PAY, payment("k-r3", A, A, 1, "EUR", ""),      invalid("recipient_id")),
        case("MakePayment amount 0",                          PAY, payment("k-a0", A, B, 0, "EUR", ""),      invalid("amount")),
        case("MakePayment amount 1",                          PAY, payment("k-a1", A, B, 1, "EUR", ""),      paid(A, B, 1)),
        case("MakePayment amount 10^15",                      PAY, payment("k-a2", RICH, SINK, AMOUNT_MAX_MINOR, "EUR", ""), paid(RICH, SINK, AMOUNT_MAX_MINOR)),
        case("MakePayment amount 10^15+1",                    PAY, payment("k-a3", A, B, AMOUNT_MAX_MINOR + 1, "EUR", ""), invalid("amount")),
        case("MakePayment amount -1",                         PAY, payment("k-a4", A, B, -1, "EUR", ""),     invalid("amount")),
        case("MakePayment amount i64::MIN",                   PAY, payment("k-a5", A, B, i64::MIN, "EUR", ""), invalid("amount")),
        case("MakePayment amount i64::MAX",                   PAY, payment("k-a6", A, B, i64::MAX, "EUR", ""), invalid("amount")),
        case("MakePayment currency of 2 letters",             PAY, payment("k-c1", A, B, 1, "EU", ""),       invalid("currency")),
        case("MakePayment currency with a trailing space",    PAY, payment("k-c2", A, B, 1, "EUR ", ""),     invalid("currency")),
        case("MakePayment memo of 256 bytes",                 PAY, payment("k-m1", A, B, 1, "EUR", &m256),   paid(A, B, 1)),
        case("MakePayment memo of 257 bytes",                 PAY, payment("k-m2", A, B, 1, "EUR", &m257),   invalid("memo")),
        case("MakePayment memo 64 four-byte chars",           PAY, payment("k-m3", A, B, 1, "EUR", &emoji64), paid(A, B, 1)),
        case("MakePayment memo 87 chars, 257 bytes",          PAY, payment("k-m4", A, B, 1, "EUR", &euro85_ab), invalid("memo")),
        case("MakePayment memo with an escape char",          PAY, payment("k-m5", A, B, 1, "EUR", "\u{1b}[31m"), invalid("memo")),
    ]
}

/// GetAccountBalance and GetTransactionHistory.
#[rustfmt::skip]
fn read_rows() -> Vec<Case> {
    let x129 = "x".repeat(129);
    let foreign_token = PageToken {
        account_id: payment::domain::AccountId::parse("page_token", B).expect("id"),
        before_sequence: 2,
        other_shards: Vec::new(),
    }
    .encode();
    vec![
        case("GetAccountBalance account_id of 128 chars",     BALANCE, read(&id128_existing()),           ok()),
        case("GetAccountBalance account_id of 129 chars",     BALANCE, read(&x129),                       invalid("account_id")),
        case("GetAccountBalance account_id empty",            BALANCE, read(""),                          invalid("account_id")),
        case("GetAccountBalance account_id with a quote",     BALANCE, read("a\"b"),                      invalid("account_id")),
        case("GetTransactionHistory account_id of 129 chars", HISTORY, history(&x129, 0, ""),             invalid("account_id")),
        case("GetTransactionHistory page_size -1",            HISTORY, history(A, -1, ""),                invalid("page_size")),
        case("GetTransactionHistory page_size 0",             HISTORY, history(A, 0, ""),                 ok()),
        case("GetTransactionHistory page_size 1",             HISTORY, history(A, 1, ""),                 ok()),
        case("GetTransactionHistory page_size 1000",          HISTORY, history(A, 1000, ""),              ok()),
        case("GetTransactionHistory page_size 1001",          HISTORY, history(A, 1001, ""),              invalid("page_size")),
        case("GetTransactionHistory page_size i32::MIN",      HISTORY, history(A, i32::MIN, ""),          invalid("page_size")),
        case("GetTransactionHistory page_size i32::MAX",      HISTORY, history(A, i32::MAX, ""),          invalid("page_size")),
        case("GetTransactionHistory page_token not base64",   HISTORY, history(A, 0, "not a token!"),     invalid("page_token")),
        case("GetTransactionHistory page_token of 513 bytes", HISTORY, history(A, 0, &"A".repeat(513)),   invalid("page_token")),
        case("GetTransactionHistory foreign page_token",      HISTORY, history(A, 0, &foreign_token),     invalid("page_token: belongs to another account")),
        case("GetTransactionHistory page_token version v2",   HISTORY, history(A, 0, &tok(format!("v2|{A}|2"))),  invalid("page_token")),
        case("GetTransactionHistory page_token leading 0",    HISTORY, history(A, 0, &tok(format!("v1|{A}|02"))), invalid("page_token")),
        case("GetTransactionHistory page_token extra part",   HISTORY, history(A, 0, &tok(format!("v1|{A}|2|x"))), invalid("page_token")),
        case("GetTransactionHistory page_token sequence 1",   HISTORY, history(A, 0, &tok(format!("v1|{A}|1"))),  invalid("page_token")),
        case("GetTransactionHistory page_token u64::MAX",     HISTORY, history(A, 0, &tok(format!("v1|{A}|{}", u64::MAX))), ok()),
        case("GetTransactionHistory page_token u64::MAX+1",   HISTORY, history(A, 0, &tok(format!("v1|{A}|18446744073709551616"))), invalid("page_token")),
    ]
}

/// WatchAccount: every field. The OK rows watch for a second: from now
/// (only the last message), and from A's first entry (every entry, then
/// the last message; behind API Gateway the long poll ends with the first
/// poll's entries).
#[rustfmt::skip]
fn watch_rows() -> Vec<Case> {
    let x129 = "x".repeat(129);
    vec![
        case("WatchAccount account_id of 129 chars",          WATCH, watch(&x129, "", 1),                 invalid("account_id")),
        case("WatchAccount account_id empty",                 WATCH, watch("", "", 1),                    invalid("account_id")),
        case("WatchAccount max_seconds -1",                   WATCH, watch(A, "", -1),                    invalid("max_seconds")),
        case("WatchAccount max_seconds 1",                    WATCH, watch(A, "", 1),                     ok()),
        case("WatchAccount max_seconds 301",                  WATCH, watch(A, "", 301),                   invalid("max_seconds")),
        case("WatchAccount max_seconds i32::MIN",             WATCH, watch(A, "", i32::MIN),              invalid("max_seconds")),
        case("WatchAccount max_seconds i32::MAX",             WATCH, watch(A, "", i32::MAX),              invalid("max_seconds")),
        case("WatchAccount resume_token at the first entry",  WATCH, watch(A, &tok(format!("w1|{A}|1")), 1), ok()),
        case("WatchAccount resume_token not base64",          WATCH, watch(A, "not a token!", 1),         invalid("resume_token")),
        case("WatchAccount resume_token of 2049 bytes",       WATCH, watch(A, &"A".repeat(2049), 1),      invalid("resume_token")),
        case("WatchAccount foreign resume_token",             WATCH, watch(A, &tok(format!("w1|{B}|1")), 1), invalid("resume_token: belongs to a watch of another account")),
        case("WatchAccount page_token as resume_token",       WATCH, watch(A, &tok(format!("v1|{A}|2")), 1), invalid("resume_token")),
        case("WatchAccount resume_token cursor 0",            WATCH, watch(A, &tok(format!("w1|{A}|0")), 1), invalid("resume_token")),
        case("WatchAccount resume_token leading 0",           WATCH, watch(A, &tok(format!("w1|{A}|01")), 1), invalid("resume_token")),
        case("WatchAccount resume_token ahead of the history", WATCH, watch(A, &tok(format!("w1|{A}|1000000")), 1), invalid("resume_token: does not fit")),
        case("WatchAccount resume_token u64::MAX",            WATCH, watch(A, &tok(format!("w1|{A}|{}", u64::MAX)), 1), invalid("resume_token: does not fit")),
        case("WatchAccount resume_token u64::MAX+1",          WATCH, watch(A, &tok(format!("w1|{A}|18446744073709551616")), 1), invalid("resume_token")),
        case("WatchAccount resume_token of 2 shards for 1",   WATCH, watch(A, &tok(format!("w1|{A}|1.1")), 1), invalid("resume_token: does not fit")),
        case("WatchAccount resume_token of 65 shards",        WATCH, watch(A, &tok(format!("w1|{A}|{}", vec!["1"; 65].join("."))), 1), invalid("resume_token")),
        case("WatchAccount of an account that does not exist", WATCH, watch("mx-nobody", "", 1),          status(Code::NotFound, "mx-nobody")),
    ]
}

/// Wrong wire types, malformed protobuf, invalid UTF-8 (prost names the field).
#[rustfmt::skip]
fn wire_type_rows() -> Vec<Case> {
    let valid_balance = valid_balance();
    vec![
        case("string field sent as a varint",                 ADD, wire([tag(1, 0), varint(7)].concat()),  invalid("AddAccountRequest.account_id")),
        case("int64 field sent as length-delimited",          PAY, wire(bytes_field(4, b"\x01")),          invalid("MakePaymentRequest.amount")),
        case("string field sent as fixed32",                  PAY, wire([tag(6, 5), vec![1, 2, 3, 4]].concat()), invalid("MakePaymentRequest.memo")),
        case("int32 field sent as fixed64",                   HISTORY, wire([tag(2, 1), vec![0; 8]].concat()), invalid("GetTransactionHistoryRequest.page_size")),
        case("account_id not UTF-8",                          BALANCE, wire(bytes_field(1, &[0xff, 0xfe])), invalid("GetAccountBalanceRequest.account_id")),
        case("memo in Latin-1, not UTF-8",                    PAY, wire(bytes_field(6, b"caf\xe9")),       invalid("MakePaymentRequest.memo")),
        case("display_name with an overlong UTF-8 encoding",  ADD, wire(bytes_field(2, &[0xc0, 0x80])),    invalid("AddAccountRequest.display_name")),
        case("display_name with an encoded surrogate",        ADD, wire(bytes_field(2, &[0xed, 0xa0, 0x80])), invalid("AddAccountRequest.display_name")),
        case("not protobuf (wire type 7)",                    BALANCE, wire(vec![0x0f, 0xff]),             invalid("GetAccountBalanceRequest")),
        case("field number 0",                                PAY, wire(vec![0x00, 0x00]),                 invalid("MakePaymentRequest")),
        case("truncated varint",                              PAY, wire(vec![0x20, 0xff]),                 invalid("MakePaymentRequest.amount")),
        case("varint of 11 bytes",                            PAY, wire([tag(4, 0), vec![0xff; 10], vec![0x01]].concat()), invalid("MakePaymentRequest.amount")),
        case("string longer than the message",                ADD, wire(vec![0x0a, 0x05, b'a']),           invalid("AddAccountRequest.account_id")),
        case("JSON instead of protobuf",                      BALANCE, wire(br#"{"account_id":"mx-a"}"#.to_vec()), invalid("GetAccountBalanceRequest")),
        case("empty message (account_id missing)",            BALANCE, wire(vec![]),                      invalid("account_id")),
        case("an unknown field is ignored",                   BALANCE, wire([valid_balance.clone(), bytes_field(99, b"x")].concat()), ok()),
        case("a field twice: the last one counts",            BALANCE, wire([bytes_field(1, b"a b"), bytes_field(1, A.as_bytes())].concat()), ok()),
    ]
}

/// Framing and size beyond the rows every method gets (see `every_method_rows`).
#[rustfmt::skip]
fn framing_rows() -> Vec<Case> {
    let valid_balance = valid_balance();
    let valid_frame = frame(&valid_balance);
    let huge_announced = [&frame_header(0, u32::MAX)[..], &valid_balance].concat();
    let two_frames = [valid_frame.clone(), valid_frame.clone()].concat();
    let trailing = [valid_frame.clone(), vec![0]].concat();
    let at_limit = padded_to(valid_balance.clone(), REQUEST_BYTES_MAX);
    let over_limit = padded_to(valid_balance.clone(), REQUEST_BYTES_MAX + 1);
    let big = |bytes| padded_to(valid_balance.clone(), bytes);
    let too_large = || status(Code::ResourceExhausted, "larger than");
    let compressed = || status(Code::Unimplemented, "compressed");
    vec![
        case("frame of the largest length a header holds",    BALANCE, frames(huge_announced),             invalid("truncated")),
        case("two frames of a valid request",                 BALANCE, frames(two_frames),                 invalid("exactly one")),
        case("a byte after a valid frame",                    BALANCE, frames(trailing),                   invalid("exactly one")),
        case("compressed flag and grpc-encoding gzip",        BALANCE, frames(frame_flagged(1, &valid_balance)), compressed())
            .http(Http::Header("grpc-encoding", "gzip")),
        case("unknown flag 2",                                BALANCE, frames(frame_flagged(2, &valid_balance)), invalid("flag")),
        case("body of exactly the size limit",                BALANCE, frames(at_limit),                   ok()),
        case("body 1 byte over the size limit, valid inside", BALANCE, frames(over_limit),                 too_large()),
        case("body of 8 MB",                                  ADD,     frames(big(8 << 20)),               too_large()),
    ]
}

/// Content types and HTTP methods: not gRPC is a plain HTTP 4xx.
#[rustfmt::skip]
fn http_rows() -> Vec<Case> {
    use Transport::*;
    let valid_frame = frame(&valid_balance());
    vec![
        case("content-type application/json",                 BALANCE, raw(br#"{"account_id":"mx-a"}"#.to_vec()), http_4xx())
            .http(Http::ContentType("application/json")),
        case("content-type text/plain",                       BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::ContentType("text/plain")),
        case("no content-type",                               BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::NoContentType),
        case("GET",                                           BALANCE, raw(vec![]),                        http_4xx())
            .http(Http::Method("GET")),
        case("PUT",                                           BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::Method("PUT")),
        case("application/grpc over HTTP/1.1",                BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::ContentType("application/grpc")).only(&[WebBinary, LambdaBinary]),
        case("content-type application/grpc-web+json",        BALANCE, frames(valid_frame.clone()),        http_4xx())
            .http(Http::ContentType("application/grpc-web+json")).only(&[WebBinary, LambdaBinary]),
        case("content-type application/grpc-web",             BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::ContentType("application/grpc-web")).only(&[WebBinary, LambdaBinary]),
        case("content-type application/grpc-web-text+proto",  BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::ContentType("application/grpc-web-text+proto")).only(&[WebText, LambdaText]),
        case("gRPC-Web over HTTP/2",                          BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::ContentType("application/grpc-web+proto")).only(&[Native]),
        case("content-type application/grpc+json",            BALANCE, frames(frame(br#"{"account_id":"mx-a"}"#)), invalid("GetAccountBalanceRequest"))
            .http(Http::ContentType("application/grpc+json")).only(&[Native]),
    ]
}

/// AuthorizePayment: the payment's fields and the expiry, at and past each
/// limit (the 10^15 hold is on SINK, which the MakePayment row of 10^15
/// filled); CaptureHold and VoidHold: the hold is named one way, amounts
/// bounded.
#[rustfmt::skip]
fn hold_rows() -> Vec<Case> {
    let x129 = "x".repeat(129);
    let (m256, m257) = ("m".repeat(256), "m".repeat(257));
    let (h128, k129) = ("h".repeat(128), "k".repeat(129));
    vec![
        case("AuthorizePayment expires_in_seconds 60",        AUTHORIZE, hold("h-ok1", A, B, 1, "EUR", "", 60),     held(A, B, 1)),
        case("AuthorizePayment expires_in_seconds 30 days",   AUTHORIZE, hold("h-ok2", A, B, 1, "EUR", "", 2_592_000), held(A, B, 1)),
        case("AuthorizePayment amount 10^15",                 AUTHORIZE, hold("h-ok3", SINK, RICH, AMOUNT_MAX_MINOR, "EUR", "", 60), held(SINK, RICH, AMOUNT_MAX_MINOR)),
        case("AuthorizePayment idempotency_key of 128 chars", AUTHORIZE, hold(&h128, A, B, 1, "EUR", "", 60),       held(A, B, 1)),
        case("AuthorizePayment memo of 256 bytes",            AUTHORIZE, hold("h-ok4", A, B, 1, "EUR", &m256, 60),  held(A, B, 1)),
        case("AuthorizePayment expires_in_seconds 59",        AUTHORIZE, hold("h-e1", A, B, 1, "EUR", "", 59),      invalid("expires_in_seconds")),
        case("AuthorizePayment expires_in_seconds 30 days+1", AUTHORIZE, hold("h-e2", A, B, 1, "EUR", "", 2_592_001), invalid("expires_in_seconds")),
        case("AuthorizePayment expires_in_seconds 0",         AUTHORIZE, hold("h-e3", A, B, 1, "EUR", "", 0),       invalid("expires_in_seconds")),
        case("AuthorizePayment expires_in_seconds i64::MIN",  AUTHORIZE, hold("h-e4", A, B, 1, "EUR", "", i64::MIN), invalid("expires_in_seconds")),
        case("AuthorizePayment amount 0",                     AUTHORIZE, hold("h-a1", A, B, 0, "EUR", "", 60),      invalid("amount")),
        case("AuthorizePayment amount 10^15+1",               AUTHORIZE, hold("h-a2", A, B, AMOUNT_MAX_MINOR + 1, "EUR", "", 60), invalid("amount")),
        case("AuthorizePayment idempotency_key of 129 chars", AUTHORIZE, hold(&k129, A, B, 1, "EUR", "", 60),       invalid("idempotency_key")),
        case("AuthorizePayment recipient_id equal to sender", AUTHORIZE, hold("h-r1", A, A, 1, "EUR", "", 60),      invalid("recipient_id")),
        case("AuthorizePayment memo of 257 bytes",            AUTHORIZE, hold("h-m1", A, B, 1, "EUR", &m257, 60),   invalid("memo")),
        case("AuthorizePayment currency lower case",          AUTHORIZE, hold("h-c1", A, B, 1, "eur", "", 60),      invalid("currency")),
        case("AuthorizePayment more than is available",       AUTHORIZE, hold("h-f1", A, B, A_OPENING, "EUR", "", 60), status(Code::FailedPrecondition, "insufficient funds")),
        // CaptureHold, VoidHold: the hold is named one way, amounts bounded.
        case("CaptureHold hold missing",                      CAPTURE, capture(None, 0),                            invalid("hold")),
        case("CaptureHold hold named two ways",               CAPTURE, capture(named("t-1", A, "k"), 0),            invalid("hold.transaction_id")),
        case("CaptureHold hold key without sender",           CAPTURE, capture(named("", "", "k"), 0),              invalid("hold.sender_id")),
        case("CaptureHold hold sender without key",           CAPTURE, capture(named("", A, ""), 0),                invalid("hold.idempotency_key")),
        case("CaptureHold transaction_id of 129 chars",       CAPTURE, capture(named(&x129, "", ""), 0),            invalid("hold.transaction_id")),
        case("CaptureHold amount -1",                         CAPTURE, capture(named("t-1", "", ""), -1),           invalid("amount")),
        case("CaptureHold amount 10^15+1",                    CAPTURE, capture(named("t-1", "", ""), AMOUNT_MAX_MINOR + 1), invalid("amount")),
        case("CaptureHold unknown hold",                      CAPTURE, capture(named("", A, "no-such-hold"), 0),    status(Code::NotFound, "no hold")),
        case("VoidHold hold missing",                         VOID, void(None),                                     invalid("hold")),
        case("VoidHold sender_id with a space",               VOID, void(named("", "a b", "k")),                    invalid("hold.sender_id")),
        case("VoidHold unknown hold id",                      VOID, void(named("t-unknown", "", "")),               status(Code::NotFound, "no hold")),
    ]
}

/// RefundPayment, GetPayment and ListAccounts.
#[rustfmt::skip]
fn refund_lookup_and_list_rows() -> Vec<Case> {
    let m257 = "m".repeat(257);
    let k129 = "k".repeat(129);
    vec![
        case("RefundPayment idempotency_key empty",           REFUND, refund("", named("t-1", "", ""), 0, ""),      invalid("idempotency_key")),
        case("RefundPayment payment missing",                 REFUND, refund("r-1", None, 0, ""),                   invalid("payment")),
        case("RefundPayment amount -5",                       REFUND, refund("r-2", named("t-1", "", ""), -5, ""),  invalid("amount")),
        case("RefundPayment memo of 257 bytes",               REFUND, refund("r-3", named("t-1", "", ""), 0, &m257), invalid("memo")),
        case("RefundPayment unknown payment",                 REFUND, refund("r-4", named("", A, "no-such"), 1, ""), status(Code::NotFound, "no payment")),
        case("RefundPayment a fixture payment, too much",     REFUND, refund("r-5", named("", A, "fixture-0"), 11, ""), status(Code::FailedPrecondition, "exceeds")),
        // GetPayment.
        case("GetPayment payment missing",                    LOOKUP, lookup(None),                                 invalid("payment")),
        case("GetPayment payment empty",                      LOOKUP, lookup(named("", "", "")),                    invalid("payment.transaction_id")),
        case("GetPayment key of 129 chars",                   LOOKUP, lookup(named("", A, &k129)),                  invalid("payment.idempotency_key")),
        case("GetPayment unknown key",                        LOOKUP, lookup(named("", A, "no-such")),              status(Code::NotFound, "no payment")),
        case("GetPayment a fixture payment",                  LOOKUP, lookup(named("", A, "fixture-1")),            ok()),
        // ListAccounts.
        case("ListAccounts page_size 100",                    LIST, list(100, "", ""),                              ok()),
        case("ListAccounts page_size 101",                    LIST, list(101, "", ""),                              invalid("page_size")),
        case("ListAccounts page_size -1",                     LIST, list(-1, "", ""),                               invalid("page_size")),
        case("ListAccounts page_token garbage",               LIST, list(0, "!!", ""),                              invalid("page_token")),
        case("ListAccounts page_token of another listing",    LIST, list(0, &tok(format!("l1|o{}|mx-a", URL_SAFE_NO_PAD.encode("other"))), ""), invalid("page_token")),
        case("ListAccounts owner of 257 bytes",               LIST, list(0, "", &m257),                             invalid("owner")),
    ]
}

/// SetBalanceShards: account_id, balance_shards 1 to 64, never fewer than
/// the account has. TESTER is an admin.
#[rustfmt::skip]
fn balance_shards_rows() -> Vec<Case> {
    let x129 = "x".repeat(129);
    vec![
        case("SetBalanceShards balance_shards 0",             SHARDS, shards(A, 0),                                 invalid("balance_shards")),
        case("SetBalanceShards balance_shards 65",            SHARDS, shards(A, 65),                                invalid("balance_shards")),
        case("SetBalanceShards balance_shards -1",            SHARDS, shards(A, -1),                                invalid("balance_shards")),
        case("SetBalanceShards balance_shards i32::MIN",      SHARDS, shards(A, i32::MIN),                          invalid("balance_shards")),
        case("SetBalanceShards balance_shards i32::MAX",      SHARDS, shards(A, i32::MAX),                          invalid("balance_shards")),
        case("SetBalanceShards account_id empty",             SHARDS, shards("", 2),                                invalid("account_id")),
        case("SetBalanceShards account_id of 129 chars",      SHARDS, shards(&x129, 2),                             invalid("account_id")),
        case("SetBalanceShards account_id with a space",      SHARDS, shards("has space", 2),                       invalid("account_id")),
        case("SetBalanceShards unknown account",              SHARDS, shards("mo-no-such", 2),                      status(Code::NotFound, "does not exist")),
        case("SetBalanceShards balance_shards 1, as it has",  SHARDS, shards(A, 1),                                 ok()),
        case("SetBalanceShards account_id of 128 chars",      SHARDS, shards(&id128_existing(), 1),                 ok()),
        case("SetBalanceShards 4 shards, as it has",          SHARDS, shards(FOUR, 4),                              ok()),
        case("SetBalanceShards fewer than it has",            SHARDS, shards(FOUR, 2),                              status(Code::FailedPrecondition, FOUR)),
        case("SetBalanceShards 4 shards to 8",                SHARDS, shards(FOUR, 8),                              resharded(FOUR, 4, 8)),
        case("SetBalanceShards balance_shards 64",            SHARDS, shards(WIDE, 64),                             resharded(WIDE, 1, 64)),
    ]
}

/// Unknown methods and services, a grpc-timeout that is not one, and the text encoding.
#[rustfmt::skip]
fn path_and_text_rows() -> Vec<Case> {
    use Transport::*;
    let valid_frame = frame(&valid_balance());
    let mut text_cut = text_body(&valid_frame);
    text_cut.truncate(text_cut.len() - 2);
    vec![
        case("unknown method",                                "Steal", frames(valid_frame.clone()),        status(Code::Unimplemented, "")),
        case("unknown service",                               "",      frames(valid_frame.clone()),        status(Code::Unimplemented, "")),
        case("malformed grpc-timeout is ignored",             BALANCE, frames(valid_frame.clone()),        ok())
            .http(Http::Header("grpc-timeout", "soon")),
        case("invalid base64",                                BALANCE, raw(b"!!!not base64!!!".to_vec()),  invalid("request body"))
            .only(&[WebText, LambdaText]),
        case("base64 cut in the middle of a quad",            BALANCE, raw(text_cut),                      invalid("request body"))
            .only(&[WebText, LambdaText]),
        case("binary frame sent as grpc-web-text",            BALANCE, raw(valid_frame.clone()),           invalid("request body"))
            .only(&[WebText, LambdaText]),
    ]
}
