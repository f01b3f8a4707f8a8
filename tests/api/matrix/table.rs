//! The vocabulary of the table: the methods and fixture accounts a case
//! names, what a case sends (its body and HTTP variation) and what it
//! expects back (a status, a plain HTTP error, or OK with an effect on the
//! tables), and the short constructors the rows are written with.

use super::transports::Transport;
use tonic::Code;

pub(super) const SERVICE: &str = "/payment.v1.PaymentService/";
pub(super) const ADD: &str = "AddAccount";
pub(super) const PAY: &str = "MakePayment";
pub(super) const BALANCE: &str = "GetAccountBalance";
pub(super) const HISTORY: &str = "GetTransactionHistory";
pub(super) const AUTHORIZE: &str = "AuthorizePayment";
pub(super) const CAPTURE: &str = "CaptureHold";
pub(super) const VOID: &str = "VoidHold";
pub(super) const REFUND: &str = "RefundPayment";
pub(super) const LOOKUP: &str = "GetPayment";
pub(super) const LIST: &str = "ListAccounts";
pub(super) const SHARDS: &str = "SetBalanceShards";
pub(super) const WATCH: &str = "WatchAccount";

/// Fixture accounts, opened on every transport's fresh tables by TESTER.
pub(super) const A: &str = "mx-a";
pub(super) const B: &str = "mx-b";
pub(super) const RICH: &str = "mx-rich";
pub(super) const SINK: &str = "mx-sink";
/// An ordinary account (one balance shard), raised to the most shards.
pub(super) const WIDE: &str = "mx-wide";
/// An account opened with four balance shards.
pub(super) const FOUR: &str = "mx-four";
pub(super) const A_OPENING: i64 = 1_000_000;
pub(super) const FIXTURE_PAYMENTS: i64 = 5;

/// An existing account whose id has exactly 128 characters.
pub(super) fn id128_existing() -> String {
    format!("mx-{}", "e".repeat(125))
}

/// What goes in the HTTP body.
#[derive(Clone)]
pub(super) enum Body {
    /// One message: the transport frames it (and base64-encodes it for text).
    Message(Vec<u8>),
    /// These gRPC frame bytes (base64-encoded by text transports).
    Frames(Vec<u8>),
    /// These exact HTTP body bytes, on every transport.
    Raw(Vec<u8>),
}

/// What the HTTP request looks like, apart from the body.
#[derive(Clone, Copy)]
pub(super) enum Http {
    /// A normal gRPC request for the transport.
    Grpc,
    /// This content-type instead of the transport's.
    ContentType(&'static str),
    /// No content-type header.
    NoContentType,
    /// Another HTTP method.
    Method(&'static str),
    /// One extra header.
    Header(&'static str, &'static str),
}

/// What a successful at-the-limit case must have done to the tables.
#[derive(Clone, Debug)]
pub(super) enum Effect {
    /// Nothing (a read).
    Nothing,
    /// A new account with this id and opening balance.
    Opened { account: String, balance: i64 },
    /// One payment.
    Paid {
        from: &'static str,
        to: &'static str,
        amount: i64,
    },
    /// One hold placed (no money moves; the sender's shard records it).
    Held {
        from: &'static str,
        to: &'static str,
        amount: i64,
    },
    /// An account's balance shards raised from `from` to `to`: every old
    /// shard told the new count, the new ones put empty, no money moved.
    Resharded {
        account: &'static str,
        from: u32,
        to: u32,
    },
}

#[derive(Clone, Debug)]
pub(super) enum Expect {
    /// OK, with this effect.
    Ok(Effect),
    /// This gRPC status, its message containing the needle (a field name
    /// for validation errors).
    Status(Code, &'static str),
    /// A plain HTTP 4xx reply: the request is not gRPC.
    Http4xx,
}

#[derive(Clone)]
pub(super) struct Case {
    pub(super) name: String,
    pub(super) method: &'static str,
    pub(super) http: Http,
    pub(super) body: Body,
    pub(super) expect: Expect,
    /// The transports the case applies to; empty means all.
    pub(super) only: &'static [Transport],
}

pub(super) fn case(
    name: impl Into<String>,
    method: &'static str,
    body: Body,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        method,
        http: Http::Grpc,
        body,
        expect,
        only: &[],
    }
}

impl Case {
    pub(super) fn http(mut self, http: Http) -> Self {
        self.http = http;
        self
    }
    pub(super) fn only(mut self, transports: &'static [Transport]) -> Self {
        self.only = transports;
        self
    }
    pub(super) fn applies_to(&self, t: Transport) -> bool {
        self.only.is_empty() || self.only.contains(&t)
    }
}

pub(super) fn status(code: Code, needle: &'static str) -> Expect {
    Expect::Status(code, needle)
}
pub(super) fn http_4xx() -> Expect {
    Expect::Http4xx
}
/// These message bytes, framed by the transport.
pub(super) fn wire(message: Vec<u8>) -> Body {
    Body::Message(message)
}
pub(super) fn frames(bytes: Vec<u8>) -> Body {
    Body::Frames(bytes)
}
pub(super) fn raw(bytes: Vec<u8>) -> Body {
    Body::Raw(bytes)
}
pub(super) fn invalid(field: &'static str) -> Expect {
    Expect::Status(Code::InvalidArgument, field)
}
pub(super) fn ok() -> Expect {
    Expect::Ok(Effect::Nothing)
}
pub(super) fn opened(account: &str, balance: i64) -> Expect {
    Expect::Ok(Effect::Opened {
        account: account.into(),
        balance,
    })
}
pub(super) fn paid(from: &'static str, to: &'static str, amount: i64) -> Expect {
    Expect::Ok(Effect::Paid { from, to, amount })
}
pub(super) fn held(from: &'static str, to: &'static str, amount: i64) -> Expect {
    Expect::Ok(Effect::Held { from, to, amount })
}
pub(super) fn resharded(account: &'static str, from: u32, to: u32) -> Expect {
    Expect::Ok(Effect::Resharded { account, from, to })
}
