#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

The seeds are committed; run this again only to change them
(`python3 fuzz/make_seeds.py`). Each seed is a small, named input that
reaches one path: a valid call of each kind, and each way of being wrong
that the code names. Regression seeds for fixed bugs are not written here;
they live in the corpus as `regression-*` files and are kept.

grpc_web_event seeds are the events of events/ and variants of them;
grpc_web_body seeds are a selector byte, a path byte and a body (see
fuzz_targets/grpc_web_body.rs); page_token seeds are text lines (see
fuzz_targets/page_token.rs); token_verification seeds are a mode byte
and a header and claims in JSON (see fuzz_targets/token_verification.rs);
validation seeds are encoded the way the
`arbitrary` crate (1.x) decodes fuzz_targets/validation.rs's `Input`, and
`cargo fuzz fmt validation <seed>` prints what one decodes to.
"""

import base64
import copy
import json
import pathlib
import struct

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


# -- protobuf, by hand (the request messages are strings and varints) -------


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(n, v) for n, v in fields if v not in ("", 0, b""))


def frame(payload, flag=0):
    return bytes([flag]) + struct.pack(">I", len(payload)) + payload


ADD_ACCOUNT = message((1, "alice"), (2, "Alice"), (3, "EUR"), (4, 10000))
MAKE_PAYMENT = message(
    (1, "event-payment-1"), (2, "alice"), (3, "bob"), (4, 1234), (5, "EUR"), (6, "lunch")
)
GET_BALANCE = message((1, "alice"))
TOKEN_ALICE_42 = base64.urlsafe_b64encode(b"v1|alice|42").rstrip(b"=").decode()
GET_HISTORY = message((1, "alice"), (2, 10), (3, TOKEN_ALICE_42))
REF_HOLD = message((2, "alice"), (3, "event-hold-1"))
REF_PAYMENT = message((2, "alice"), (3, "event-payment-1"))
AUTHORIZE = message(
    (1, "event-hold-1"), (2, "alice"), (3, "bob"), (4, 500), (5, "EUR"), (6, "deposit"), (7, 3600)
)
CAPTURE = message((1, REF_HOLD), (2, 300))
VOID = message((1, REF_HOLD))
REFUND = message((1, "event-refund-1"), (2, REF_PAYMENT), (3, 234), (4, "sorry"))
LOOKUP = message((1, REF_PAYMENT))
LIST = message((1, 10), (3, "alice"))
SET_SHARDS = message((1, "alice"), (2, 4))
BAD_WIRE_TYPE = bytes([0x0F, 0x01])
BAD_UTF8 = bytes([0x0A, 0x02, 0xFF, 0xFE])

# -- grpc_web_event ----------------------------------------------------------


def events():
    for path in sorted((ROOT / "events").glob("*.json")):
        write("grpc_web_event", path.name, path.read_bytes())

    base = json.loads((ROOT / "events" / "make-payment.json").read_text())

    def variant(name, body=None, base64_encoded=True, **changes):
        e = copy.deepcopy(base)
        if body is not None:
            e["body"] = base64.b64encode(body).decode() if base64_encoded else body
            e["isBase64Encoded"] = base64_encoded
        headers = changes.pop("headers", {})
        e["headers"].update(headers)
        for k in [k for k, v in e["headers"].items() if v is None]:
            del e["headers"][k]
        if "method" in changes:
            e["requestContext"]["http"]["method"] = changes.pop("method")
        if changes.pop("no_authorizer", False):
            del e["requestContext"]["authorizer"]
        if "path" in changes:
            e["rawPath"] = e["requestContext"]["http"]["path"] = changes.pop("path")
        assert not changes, changes
        write("grpc_web_event", name, json.dumps(e, indent=1))

    variant(
        "variant-reply-shapes.json",
        headers={"x-fuzz-response": "2", "x-fuzz-echo-request": "make-payment"},
    )
    variant(
        "variant-text-in-binary-out.json",
        body=base64.b64encode(frame(GET_BALANCE)),
        path="/payment.v1.PaymentService/GetAccountBalance",
        headers={
            "content-type": "application/grpc-web-text",
            "accept": "application/grpc-web+proto",
            "x-fuzz-response": "3",
        },
    )
    variant(
        "variant-text-body-not-base64-encoded.json",
        body=base64.b64encode(frame(GET_BALANCE)).decode(),
        base64_encoded=False,
        path="/payment.v1.PaymentService/GetAccountBalance",
        headers={
            "content-type": "application/grpc-web-text+proto",
            "accept": "application/grpc-web-text+proto",
        },
    )
    variant("variant-no-authorizer.json", no_authorizer=True)
    variant("variant-get.json", method="GET")
    variant("variant-truncated-frame.json", body=frame(MAKE_PAYMENT)[:-3])
    variant(
        "variant-unknown-method.json",
        body=frame(BAD_WIRE_TYPE),
        path="/payment.v1.PaymentService/Refund",
    )
    variant(
        "variant-native-grpc-on-http1.json",
        headers={"content-type": "application/grpc", "accept": None},
    )
    variant("variant-text-plain.json", headers={"content-type": "text/plain"})
    variant(
        "variant-admin-scope.json",
        headers={"x-fuzz-echo-1": "a", "x-fuzz-echo-2": "b"},
    )
    e = json.loads((CORPUS / "grpc_web_event" / "variant-admin-scope.json").read_text())
    e["requestContext"]["authorizer"]["jwt"]["claims"]["scope"] = "openid payments/admin"
    write("grpc_web_event", "variant-admin-scope.json", json.dumps(e, indent=1))

    # Events lambda_http 1.3 panicked on while converting them (the function
    # now converts events itself and answers each with HTTP 400): a host that
    # is no valid URL host, a raw query string with characters a URI may not
    # hold, a body flagged base64 that is not.
    e = copy.deepcopy(base)
    e["headers"]["host"] = "exa mple.com"
    write("grpc_web_event", "upstream-panic-host.json", json.dumps(e, indent=1))
    e = copy.deepcopy(base)
    e["rawQueryString"] = "a b"
    write("grpc_web_event", "upstream-panic-query.json", json.dumps(e, indent=1))
    e = copy.deepcopy(base)
    e["body"] = "not base64!"
    write("grpc_web_event", "upstream-panic-base64-body.json", json.dumps(e, indent=1))


# -- grpc_web_body -----------------------------------------------------------

CT_WEB, CT_WEB_PROTO, CT_WEB_TEXT, CT_GRPC = range(4)
# The path byte indexes the target's paths: four that are not methods of
# the contract, then pb::METHODS in the order of the proto.
UNKNOWN, OTHER_SERVICE, BARE_PREFIX, EXTRA_SEGMENT = range(4)
(ADD, PAY, BALANCE, HISTORY, AUTHORIZE_PATH, CAPTURE_PATH, VOID_PATH, REFUND_PATH, LOOKUP_PATH,
 LIST_PATH, SHARDS_PATH) = range(4, 15)


def selector(content_type, path, shape=0, http2=False):
    return bytes([content_type | shape << 5 | (0x80 if http2 else 0), path])


def bodies():
    w = lambda name, sel, body: write("grpc_web_body", name, sel + body)
    w("add-account", selector(CT_WEB_PROTO, ADD), frame(ADD_ACCOUNT))
    w("make-payment", selector(CT_WEB, PAY), frame(MAKE_PAYMENT))
    w("get-balance", selector(CT_WEB_PROTO, BALANCE, shape=1), frame(GET_BALANCE))
    w("get-history", selector(CT_WEB_PROTO, HISTORY, shape=3), frame(GET_HISTORY))
    w("text-add-account", selector(CT_WEB_TEXT, ADD), base64.b64encode(frame(ADD_ACCOUNT)))
    w("authorize-payment", selector(CT_WEB_PROTO, AUTHORIZE_PATH), frame(AUTHORIZE))
    w("capture-hold", selector(CT_WEB_PROTO, CAPTURE_PATH, shape=1), frame(CAPTURE))
    w("void-hold", selector(CT_WEB, VOID_PATH), frame(VOID))
    w("refund-payment", selector(CT_WEB_PROTO, REFUND_PATH), frame(REFUND))
    w("get-payment", selector(CT_GRPC, LOOKUP_PATH, http2=True), frame(LOOKUP))
    w("text-list-accounts", selector(CT_WEB_TEXT, LIST_PATH, shape=3), base64.b64encode(frame(LIST)))
    w("capture-hold-bad-wire-type", selector(CT_WEB_PROTO, CAPTURE_PATH), frame(bytes([0x0B])))
    w("list-accounts-empty", selector(CT_WEB_PROTO, LIST_PATH), b"")
    w("set-balance-shards", selector(CT_WEB_PROTO, SHARDS_PATH, shape=1), frame(SET_SHARDS))
    w(
        "text-padding-inside",
        selector(CT_WEB_TEXT, BALANCE),
        base64.b64encode(frame(b"")) + base64.b64encode(frame(GET_BALANCE)),
    )
    w("text-not-base64", selector(CT_WEB_TEXT, BALANCE), b"AAAA*AAA")
    w("text-ragged", selector(CT_WEB_TEXT, BALANCE), base64.b64encode(frame(GET_BALANCE))[:-1])
    w("native-grpc-http2", selector(CT_GRPC, PAY, shape=2, http2=True), frame(MAKE_PAYMENT))
    w("native-grpc-http1", selector(CT_GRPC, PAY), frame(MAKE_PAYMENT))
    w("empty", selector(CT_WEB_PROTO, PAY), b"")
    w("short-header", selector(CT_WEB_PROTO, PAY), b"\x00\x00\x00")
    w("compressed", selector(CT_WEB_PROTO, PAY), frame(MAKE_PAYMENT, flag=1))
    w("trailers-flag", selector(CT_WEB_PROTO, PAY), frame(b"grpc-status:0\r\n", flag=0x80))
    w("truncated", selector(CT_WEB_PROTO, PAY), frame(MAKE_PAYMENT)[:-1])
    w("two-frames", selector(CT_WEB_PROTO, BALANCE), frame(GET_BALANCE) * 2)
    w("bad-wire-type", selector(CT_WEB_PROTO, HISTORY), frame(BAD_WIRE_TYPE))
    w("bad-utf8", selector(CT_WEB_PROTO, BALANCE), frame(BAD_UTF8))
    w("unknown-method", selector(CT_WEB_PROTO, UNKNOWN, shape=2), frame(BAD_WIRE_TYPE))
    w("other-service", selector(CT_WEB_PROTO, OTHER_SERVICE), frame(b""))
    w("bare-prefix", selector(CT_WEB_PROTO, BARE_PREFIX), frame(b""))
    w("extra-segment", selector(CT_WEB_PROTO, EXTRA_SEGMENT), frame(BAD_WIRE_TYPE))
    # One byte over the guard's limit (REQUEST_BYTES_MAX = 16 KiB).
    big = message((1, "alice"), (6, "m" * (16 * 1024 - 16)))
    w("over-the-limit", selector(CT_WEB_PROTO, PAY), frame(big + b"\x00" * (16 * 1024 - 4 - len(big))))


# -- page_token ---------------------------------------------------------------


def token(plaintext):
    return base64.urlsafe_b64encode(plaintext.encode()).rstrip(b"=").decode()


def page_tokens():
    w = lambda name, text: write("page_token", name, text)
    w("plain-valid", "palice\nv1|alice|42\n10\n42")
    w("raw-valid", f"ralice\n{token('v1|alice|42')}\n0\n7")
    w("raw-empty-token", "ralice\n\n1000\n2")
    w("raw-foreign", f"rbob\n{token('v1|alice|42')}\n5")
    w("raw-padded", f"ralice\n{token('v1|alice|42')}==\n5")
    w("raw-not-base64", "ralice\n!!!\n-1")
    w("raw-standard-alphabet", "ralice\n+/+/\n1001")
    w("plain-sequence-1", "palice\nv1|alice|1\n\n1")
    w("plain-leading-zero", "palice\nv1|alice|042")
    w("plain-plus", "palice\nv1|alice|+42")
    w("plain-version-2", "palice\nv2|alice|3")
    w("plain-max", "palice\nv1|alice|18446744073709551615\n\n18446744073709551615")
    w("plain-overflow", "palice\nv1|alice|18446744073709551616")
    w("plain-extra-part", "palice\nv1|alice|3|4")
    w("plain-bad-account", "palice\nv1|al ice|3")
    long_id = "a" * 127 + "@"
    w("plain-longest", f"p{long_id}\nv1|{long_id}|18446744073709551615\n1000\n18446744073709551615")


# -- validation (arbitrary 1.x encoding of Input) -----------------------------

VARIANTS = ["NewAccount", "Payment", "History", "GrpcTimeout", "Money", "Message"]


def tag(variant):
    i = VARIANTS.index(variant)
    # The derive picks variant (u32 * count) >> 32; aim at the bucket's middle.
    return struct.pack("<I", ((2 * i + 1) << 32) // (2 * len(VARIANTS)))


def size_bytes(remaining):
    if remaining <= 1:
        return 0
    if remaining <= 0x100:
        return 1
    if remaining <= 0x10001:
        return 2
    return 4


def encode(variant, *fields):
    """Fields: ("str", s) / ("bytes", b) / ("i64", n) / ("i32", n) / ("u8", n).

    The last field takes the rest of the input. A sized field's length is
    read from the end of what remains, big-endian over 1, 2 or 4 bytes
    depending on how much remains, and taken modulo (remaining - size bytes
    + 1); everything else is read from the front, integers little-endian.
    """
    front = []
    for kind, value in fields[:-1]:
        if kind == "str":
            front.append(("sized", value.encode()))
        elif kind == "bytes":
            front.append(("sized", value))
        else:
            fmt = {"i64": "<q", "i32": "<i", "u8": "<B"}[kind]
            front.append(("fixed", struct.pack(fmt, value)))
    kind, last = fields[-1]
    last = last.encode() if kind == "str" else last
    if kind in ("i64", "i32", "u8"):
        last = struct.pack({"i64": "<q", "i32": "<i", "u8": "<B"}[kind], last)

    # Guess the width of each length, then check it against what remains.
    widths = [1 if k == "sized" else 0 for k, _ in front]
    for _ in range(4):
        total = 4 + sum(len(v) for _, v in front) + len(last) + sum(widths)
        remaining = total - 4
        new = []
        for (k, v), width in zip(front, widths):
            if k == "sized":
                new.append(size_bytes(remaining))
                remaining -= new[-1] + len(v)
            else:
                new.append(0)
                remaining -= len(v)
        if new == widths:
            break
        widths = new
    body = bytearray(tag(variant))
    back = []
    remaining = total - 4
    for (k, v), width in zip(front, widths):
        if k == "sized":
            max_size = remaining - width
            assert len(v) <= max_size
            # Only as many of the bytes as the range needs are read.
            used = min(width, max(1, (max_size.bit_length() + 7) // 8))
            back.append(len(v).to_bytes(used, "big") + bytes(width - used) if width else b"")
            remaining -= width + len(v)
        else:
            remaining -= len(v)
        body += v
    body += last
    for b in reversed(back):
        body += b
    return bytes(body)


def validations():
    w = lambda name, data: write("validation", name, data)
    s = lambda v: ("str", v)
    w("new-account", encode("NewAccount", s("alice"), s("Alice"), s("EUR"), ("i64", 10000)))
    w(
        "new-account-limits",
        encode(
            "NewAccount",
            s("a" * 127 + "@"),
            s("é" * 128),
            s("KWD"),
            ("i64", 10**15),
        ),
    )
    w("new-account-control", encode("NewAccount", s("bob"), s("Bob\x07"), s("EUR"), ("i64", 0)))
    w(
        "payment",
        encode("Payment", s("key-1"), s("alice"), s("bob"), ("i64", 1234), s("EUR"), s("lunch")),
    )
    w(
        "payment-self",
        encode("Payment", s("k"), s("alice"), s("alice"), ("i64", 1), s("JPY"), s("tab\tnl\n")),
    )
    w(
        "payment-max",
        encode("Payment", s("k"), s("a"), s("b"), ("i64", 10**15 + 1), s("EUR"), s("")),
    )
    w("history", encode("History", s("alice"), ("i32", 10), s(token("v1|alice|42"))))
    w("history-default", encode("History", s("alice"), ("i32", 0), s("")))
    w("history-too-big", encode("History", s("alice"), ("i32", 1001), s(token("v1|alice|1"))))
    for value in ["5S", "100m", "99999999H", "123456789S", "1.5S", "5s"]:
        w(f"timeout-{value.replace('.', '_')}", encode("GrpcTimeout", s(value)))
    w("money-eur", encode("Money", s("EUR"), ("i64", 1234), s("12.34")))
    w("money-jpy", encode("Money", s("JPY"), ("i64", 500), s("500.")))
    w("money-clf", encode("Money", s("CLF"), ("i64", -1), s(" 0.0001 ")))
    w("money-overflow", encode("Money", s("KWD"), ("i64", 2**63 - 1), s("9223372036854775.808")))
    w("money-bad-currency", encode("Money", s("eur"), ("i64", 5), s("1,5")))
    m = lambda kind, payload: encode("Message", ("u8", kind), ("bytes", payload))
    w("message-add-account", m(0, ADD_ACCOUNT))
    w("message-make-payment", m(1, MAKE_PAYMENT))
    w("message-get-balance", m(2, GET_BALANCE))
    w("message-get-history", m(3, GET_HISTORY))
    w("message-bad-utf8", m(2, BAD_UTF8))
    w("message-authorize-payment", m(4, AUTHORIZE))
    w("message-capture-hold", m(5, CAPTURE))
    w("message-void-hold-by-id", m(6, message((1, message((1, "hold-1"))))))
    w("message-refund-payment", m(7, REFUND))
    w("message-get-payment", m(8, LOOKUP))
    w("message-list-accounts", m(9, LIST))
    w("message-set-balance-shards", m(10, SET_SHARDS))
    w("message-set-balance-shards-65", m(10, message((1, "alice"), (2, 65))))
    longest = message(
        (1, "k" * 128),
        (2, "s" * 128),
        (3, "r" * 128),
        (4, 10**15),
        (5, "EUR"),
        (6, "m" * 256),
    )
    w("message-largest-payment", m(1, longest))


# -- token_verification -------------------------------------------------------

ISSUER = "https://issuer.example.com"
AUDIENCE = "payments"
FAR_FUTURE = 4102444800  # 2100-01-01


def token_verifications():
    def w(name, mode, header, claims):
        text = json.dumps(header, separators=(",", ":")) + "\n"
        text += claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
        write("token_verification", name, mode + text)

    ok = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": FAR_FUTURE}
    cognito = {"iss": ISSUER, "client_id": AUDIENCE, "token_use": "access", "sub": "alice",
               "exp": FAR_FUTURE, "scope": "openid payments/admin"}
    hs, rs, es = {"alg": "HS256", "typ": "JWT"}, {"alg": "RS256", "kid": "rsa"}, {"alg": "ES256", "kid": "ec"}
    w("hs256-ok", "h", hs, ok)
    w("hs256-cognito-access", "h", hs, cognito)
    w("hs256-cognito-id-token", "h", hs, {**cognito, "token_use": "id", "aud": AUDIENCE})
    w("hs256-aud-list", "h", hs, {**ok, "aud": ["other", AUDIENCE]})
    w("hs256-nbf-future", "h", hs, {**ok, "nbf": FAR_FUTURE})
    w("hs256-nbf-past", "h", hs, {**ok, "nbf": 1})
    w("hs256-expired", "h", hs, {**ok, "exp": 1})
    w("hs256-wrong-issuer", "h", hs, {**ok, "iss": "https://other.example.com"})
    w("hs256-no-sub", "h", hs, {k: v for k, v in ok.items() if k != "sub"})
    w("hs256-control-sub", "h", hs, {**ok, "sub": "a\u0000b"})
    w("hs256-kid-of-rsa", "h", {"alg": "HS256", "kid": "rsa"}, ok)
    w("hs256-not-json", "h", hs, "{\"sub\":")
    w("rs256-ok", "r", rs, ok)
    w("rs256-cognito-access", "r", rs, cognito)
    w("rs256-kid-of-ec", "r", {"alg": "RS256", "kid": "ec"}, ok)
    w("rs256-unknown-kid", "r", {"alg": "RS256", "kid": "rotated"}, ok)
    w("es256-ok", "e", es, ok)
    w("es256-no-kid", "e", {"alg": "ES256"}, ok)
    write("token_verification", "free-alg-none",
          b"xeyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjo0MTAyNDQ0ODAwfQ.")
    write("token_verification", "free-three-parts", b"xa.b.c")


def main():
    events()
    bodies()
    page_tokens()
    validations()
    token_verifications()


if __name__ == "__main__":
    main()
