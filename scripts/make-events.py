#!/usr/bin/env python3
"""Writes events/*.json: API Gateway HTTP API (payload format 2.0) events
with real gRPC-Web bodies, at least one per method of the contract plus a
CORS preflight, for `cargo lambda invoke --data-file events/<name>.json`
and for the tests.

Invoked in the order of the methods in the proto (file names break ties),
the events tell one story that succeeds from end to end on empty tables:
alice and bob open accounts, alice pays bob, places two holds for him, bob
captures part of one and voids the other, refunds part of the payment,
the payment (also with finalize, for its final answer) and bob's accounts
are looked up, and an admin raises alice's balance shards.

The protobuf messages are encoded here by hand (strings, varints and
nested messages are all they use), so this needs nothing but Python. Run it
again after changing a request message or adding a method;
tests/api/lambda.rs invokes every file in events/ and fails if a method of
the contract has no event.
"""
import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICE = "/payment.v1.PaymentService/"


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes it
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(field: int, value: str) -> bytes:
    data = value.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data if data else b""


def int64(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value) if value else b""


def boolean(field: int, value: bool) -> bytes:
    return int64(field, int(value))


def message(field: int, value: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(value)) + value


def payment_ref(sender: str, key: str) -> bytes:
    """A PaymentRef naming a payment or hold by (sender_id, idempotency_key)."""
    return string(2, sender) + string(3, key)


def frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


def event(method: str, message: bytes, sub: str, scope: str = "", text: bool = False) -> dict:
    path = SERVICE + method
    content_type = "application/grpc-web-text" if text else "application/grpc-web+proto"
    body = frame(message)
    if text:
        # grpc-web-text: the body is base64 text, and API Gateway hands the
        # function its bytes base64-encoded once more.
        body = base64.b64encode(body)
    claims = {"sub": sub, "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_EXAMPLE",
              "client_id": "example-client", "token_use": "access", "exp": "4102444800"}
    if scope:
        claims["scope"] = scope
    return {
        "version": "2.0",
        "routeKey": "POST /payment.v1.PaymentService/{method}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": content_type,
            "content-type": content_type,
            "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "origin": "http://localhost:5173",
            "x-grpc-web": "1",
            "x-user-agent": "grpc-web-javascript/0.1",
            "authorization": "Bearer <checked by the API Gateway JWT authorizer>",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "authorizer": {"jwt": {"claims": claims, "scopes": scope.split() if scope else None}},
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.10", "userAgent": "example"},
            "requestId": f"example-{method}",
            "routeKey": "POST /payment.v1.PaymentService/{method}",
            "stage": "$default",
            "time": "25/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795680000000,
        },
        "pathParameters": {"method": method},
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


def preflight() -> dict:
    path = SERVICE + "MakePayment"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
            "access-control-request-method": "POST",
            "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "origin": "http://localhost:5173",
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abcdef1234",
            "http": {"method": "OPTIONS", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.10", "userAgent": "example"},
            "requestId": "example-preflight", "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:08:00:00 +0000", "timeEpoch": 1795680000000,
        },
        "isBase64Encoded": False,
    }


EVENTS = {
    # An admin opens alice's account with 100.00 EUR (an opening balance creates money).
    "add-account-alice": event("AddAccount",
                               string(1, "alice") + string(2, "Alice") + string(3, "EUR") + int64(4, 10000),
                               sub="alice", scope="payments/admin"),
    "add-account-bob": event("AddAccount", string(1, "bob") + string(2, "Bob") + string(3, "EUR"), sub="bob"),
    "make-payment": event("MakePayment",
                          string(1, "event-payment-1") + string(2, "alice") + string(3, "bob")
                          + int64(4, 1234) + string(5, "EUR") + string(6, "lunch"),
                          sub="alice"),
    "get-account-balance": event("GetAccountBalance", string(1, "alice"), sub="alice"),
    "get-account-balance-text": event("GetAccountBalance", string(1, "bob"), sub="bob", text=True),
    "get-transaction-history": event("GetTransactionHistory", string(1, "alice") + int64(2, 10), sub="alice"),
    "get-transaction-history-text": event("GetTransactionHistory", string(1, "bob"), sub="bob", text=True),
    # alice holds 5.00 for bob (captured below) and 2.00 (voided below), for an hour.
    "authorize-payment": event("AuthorizePayment",
                               string(1, "event-hold-1") + string(2, "alice") + string(3, "bob")
                               + int64(4, 500) + string(5, "EUR") + string(6, "deposit") + int64(7, 3600),
                               sub="alice"),
    "authorize-payment-to-void": event("AuthorizePayment",
                                       string(1, "event-hold-2") + string(2, "alice") + string(3, "bob")
                                       + int64(4, 200) + string(5, "EUR") + int64(7, 3600),
                                       sub="alice"),
    # bob, the recipient, captures 3.00 of the first hold and voids the second.
    "capture-hold": event("CaptureHold", message(1, payment_ref("alice", "event-hold-1")) + int64(2, 300),
                          sub="bob"),
    "void-hold": event("VoidHold", message(1, payment_ref("alice", "event-hold-2")), sub="bob"),
    # bob refunds 2.34 of alice's payment.
    "refund-payment": event("RefundPayment",
                            string(1, "event-refund-1") + message(2, payment_ref("alice", "event-payment-1"))
                            + int64(3, 234) + string(4, "sorry"),
                            sub="bob"),
    "get-payment": event("GetPayment", message(1, payment_ref("alice", "event-payment-1")), sub="alice"),
    # The final answer for the payment's key (finalize): it committed, so
    # that is the answer, and nothing is fenced.
    "get-payment-finalize": event("GetPayment",
                                  message(1, payment_ref("alice", "event-payment-1")) + boolean(2, True),
                                  sub="alice"),
    "list-accounts": event("ListAccounts", b"", sub="bob"),
    "list-accounts-text": event("ListAccounts", int64(1, 10), sub="alice", text=True),
    # An admin raises alice's balance shards from 1 to 4: her money stays, over more shards.
    "set-balance-shards": event("SetBalanceShards", string(1, "alice") + int64(2, 4),
                                sub="alice", scope="payments/admin"),
    "cors-preflight": preflight(),
}

if __name__ == "__main__":
    out = ROOT / "events"
    out.mkdir(exist_ok=True)
    for name, value in EVENTS.items():
        (out / f"{name}.json").write_text(json.dumps(value, indent=2) + "\n")
        print(f"events/{name}.json")
