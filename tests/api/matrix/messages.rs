//! The bytes the rows send: each method's request message from its
//! fields, and protobuf and frames written by hand (varints, tags, a field
//! of the wrong wire type, a frame padded to an exact size).

use super::table::{A, B, Body};
use crate::helpers::grpc_web::frame;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use payment::pb;
use prost::Message;

pub(super) fn msg(m: impl Message) -> Body {
    Body::Message(m.encode_to_vec())
}

pub(super) fn open(id: &str, name: &str, currency: &str, initial: i64) -> Body {
    msg(pb::AddAccountRequest {
        account_id: id.into(),
        display_name: name.into(),
        currency: currency.into(),
        initial_balance: initial,
        ..Default::default()
    })
}

pub(super) fn payment(
    key: &str,
    from: &str,
    to: &str,
    amount: i64,
    currency: &str,
    memo: &str,
) -> Body {
    msg(pb::MakePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: currency.into(),
        memo: memo.into(),
    })
}

pub(super) fn pay_ok(key: &str) -> Body {
    payment(key, A, B, 1, "EUR", "")
}

pub(super) fn read(id: &str) -> Body {
    msg(pb::GetAccountBalanceRequest {
        account_id: id.into(),
    })
}

pub(super) fn history(id: &str, page_size: i32, page_token: &str) -> Body {
    msg(pb::GetTransactionHistoryRequest {
        account_id: id.into(),
        page_size,
        page_token: page_token.into(),
    })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn hold(
    key: &str,
    from: &str,
    to: &str,
    amount: i64,
    currency: &str,
    memo: &str,
    seconds: i64,
) -> Body {
    msg(pb::AuthorizePaymentRequest {
        idempotency_key: key.into(),
        sender_id: from.into(),
        recipient_id: to.into(),
        amount,
        currency: currency.into(),
        memo: memo.into(),
        expires_in_seconds: seconds,
    })
}

pub(super) fn named(id: &str, sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        transaction_id: id.into(),
        sender_id: sender.into(),
        idempotency_key: key.into(),
    })
}

pub(super) fn capture(reference: Option<pb::PaymentRef>, amount: i64) -> Body {
    msg(pb::CaptureHoldRequest {
        hold: reference,
        amount,
    })
}

pub(super) fn void(reference: Option<pb::PaymentRef>) -> Body {
    msg(pb::VoidHoldRequest { hold: reference })
}

pub(super) fn refund(
    key: &str,
    reference: Option<pb::PaymentRef>,
    amount: i64,
    memo: &str,
) -> Body {
    msg(pb::RefundPaymentRequest {
        idempotency_key: key.into(),
        payment: reference,
        amount,
        memo: memo.into(),
    })
}

pub(super) fn lookup(reference: Option<pb::PaymentRef>) -> Body {
    msg(pb::GetPaymentRequest {
        payment: reference,
        finalize: false,
    })
}

pub(super) fn list(page_size: i32, page_token: &str, owner: &str) -> Body {
    msg(pb::ListAccountsRequest {
        page_size,
        page_token: page_token.into(),
        owner: owner.into(),
    })
}

pub(super) fn shards(id: &str, balance_shards: i32) -> Body {
    msg(pb::SetBalanceShardsRequest {
        account_id: id.into(),
        balance_shards,
    })
}

pub(super) fn watch(id: &str, resume_token: &str, max_seconds: i32) -> Body {
    msg(pb::WatchAccountRequest {
        account_id: id.into(),
        resume_token: resume_token.into(),
        max_seconds,
    })
}

/// A protobuf varint.
pub(super) fn varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(v, &mut out);
    out
}

/// A protobuf tag.
pub(super) fn tag(field: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(field << 3 | u32::from(wire_type)))
}

/// A length-delimited field.
pub(super) fn bytes_field(field: u32, value: &[u8]) -> Vec<u8> {
    let mut out = tag(field, 2);
    out.extend(varint(value.len() as u64));
    out.extend_from_slice(value);
    out
}

/// `message` plus an unknown length-delimited field 15 so that its frame is
/// exactly `frame_len` bytes long.
pub(super) fn padded_to(message: Vec<u8>, frame_len: usize) -> Vec<u8> {
    let room = frame_len - 5 - message.len();
    // tag (1 byte) + length varint + padding = room
    for len_bytes in 1..=5 {
        let Some(pad) = room.checked_sub(1 + len_bytes) else {
            continue;
        };
        if varint(pad as u64).len() == len_bytes {
            let mut out = message.clone();
            out.extend(bytes_field(15, &vec![b'p'; pad]));
            assert_eq!(out.len() + 5, frame_len);
            return frame(&out);
        }
    }
    panic!("cannot pad to {frame_len}");
}

/// A token of the service's own form (page, listing or watch): the text
/// in URL-safe base64.
pub(super) fn tok(text: String) -> String {
    URL_SAFE_NO_PAD.encode(text)
}
