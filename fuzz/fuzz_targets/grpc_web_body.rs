//! Raw bytes as the body of a gRPC(-Web) call, straight into the Lambda
//! adapter and the real HTTP stack (see grpc_web_event), so that the fuzzer
//! spends its time on frame parsing, base64 decoding and protobuf decoding
//! rather than on JSON.
//!
//! Input: one selector byte, one path byte, then the body.
//! * selector bits 0-1, content type (and accept): application/grpc-web,
//!   application/grpc-web+proto, application/grpc-web-text, application/grpc;
//! * selector bits 5-6, the dummy's reply shape (see `payment_ledger_fuzz`);
//! * selector bit 7, HTTP/2 instead of HTTP/1.1 (native gRPC is served on
//!   HTTP/2 only);
//! * the path byte, modulo the number of paths: an unknown method, another
//!   service's method, the bare service prefix, a method with a trailing
//!   segment, then every method of the contract (`pb::METHODS`, in the
//!   order of the proto), so a method added to the proto is fuzzed too.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc",
];

/// The paths that are not methods of the contract; `pb::METHODS` follow.
const OTHER_PATHS: [&str; 4] = [
    "/payment.v1.PaymentService/NoSuchMethod",
    "/grpc.health.v1.Health/Check",
    "/payment.v1.PaymentService/",
    "/payment.v1.PaymentService/MakePayment/extra",
];

fuzz_target!(|data: &[u8]| {
    let [selector, path, body @ ..] = data else {
        return;
    };
    let selector = *selector;
    let content_type = CONTENT_TYPES[usize::from(selector & 0b11)];
    let methods = payment::pb::METHODS;
    let path = match usize::from(*path) % (OTHER_PATHS.len() + methods.len()) {
        i if i < OTHER_PATHS.len() => OTHER_PATHS[i],
        i => methods[i - OTHER_PATHS.len()].path,
    };
    let shape = (selector >> 5) & 0b11;
    let version = if selector & 0x80 != 0 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!(
            "https://abcdef1234.execute-api.us-east-1.amazonaws.com{path}"
        ))
        .version(version)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, content_type)
        .header("x-grpc-web", "1")
        .header(payment_ledger_fuzz::SHAPE_HEADER, shape.to_string())
        .header("x-fuzz-echo-selector", selector.to_string())
        .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
            body,
        )))
        .expect("a valid request");
    payment_ledger_fuzz::exercise(request);
});
