//! Shared harness code for the fuzz targets in `fuzz_targets/`.
//!
//! The HTTP targets run requests through the Lambda adapter
//! ([`payment::lambda`]: its event conversion, `handle` and the API Gateway
//! response) and the real HTTP stack (CORS, gRPC-Web,
//! [`payment::guard::RequestGuard`]) with a dummy in place of the tonic
//! routes: no DynamoDB, no network. The dummy records what reached it and
//! echoes it back, so that the checks below can hold the stack to its
//! contract:
//!
//! * no event panics the conversion or the handler (there is no panic
//!   tolerance anywhere: a panic is a crash); an event that cannot be an HTTP
//!   request gets HTTP 400 with INVALID_ARGUMENT in its headers; the
//!   response always serializes (as the Lambda runtime must send it);
//! * otherwise the stack never answers 5xx and never sends a gRPC status
//!   other than OK (from the dummy) or the guard's INVALID_ARGUMENT,
//!   RESOURCE_EXHAUSTED and UNIMPLEMENTED (the guard's promise: no input
//!   produces INTERNAL);
//! * for the single-message methods (every unary and server-streaming method
//!   of the contract, health Check and Watch) the inner service is reached
//!   exactly when the request is a
//!   POST with a gRPC(-Web) content type whose (decoded) body is one
//!   uncompressed frame of at most `REQUEST_BYTES_MAX` bytes that decodes as
//!   the method's request message; what reaches it is that frame, unchanged;
//! * any other path (reflection, unknown methods) reaches the inner service
//!   whenever it is a POST with a gRPC(-Web) content type, with its body
//!   streamed unchanged (or failing, when its base64 is bad or it passes
//!   `STREAMED_REQUEST_BYTES_MAX`);
//! * every gRPC-Web reply is well formed: data frames, then exactly one
//!   trailers frame, last, carrying grpc-status (or a trailers-only reply
//!   with grpc-status in the headers and no body); the dummy's data and
//!   trailers arrive unchanged;
//! * the API Gateway authorizer's claims reach the inner service exactly as
//!   the event's request context has them, and from nowhere else; the
//!   service's `Authenticator::ApiGateway` accepts a caller from them
//!   exactly by its documented rules.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as EventBody;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Method, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use http_body_util::Full;
use payment::auth::{ADMIN_SCOPE, Authenticator, AuthorizerClaims, SUB_BYTES_MAX};
use payment::guard::{REQUEST_BYTES_MAX, STREAMED_REQUEST_BYTES_MAX};
use payment::pb;
use payment::stack::HttpService;
use prost::Message;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

/// The request header that picks the dummy's reply shape ("0" to "3").
pub const SHAPE_HEADER: &str = "x-fuzz-response";
/// Request headers with this prefix come back as trailers of the reply.
pub const ECHO_PREFIX: &str = "x-fuzz-echo";

/// Standard base64 that accepts padding or none, as tonic-web decodes it.
const BASE64_WEB: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------
// Set-up, done once per process.

thread_local! {
    static REACHED: RefCell<Option<Reached>> = const { RefCell::new(None) };
}

/// The current-thread runtime every target runs on, built once.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// The real HTTP stack of the server and the Lambda
/// (`payment::stack::http_service`) with [`dummy`] in place of the routes.
pub fn service() -> HttpService {
    static SERVICE: OnceLock<HttpService> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            oracle_covers_the_contract();
            tower::ServiceBuilder::new()
                .option_layer(payment::stack::cors("*").expect("CORS for any origin"))
                .layer(tonic_web::GrpcWebLayer::new())
                .layer(payment::guard::RequestGuardLayer::default())
                .service(axum::Router::new().fallback_service(tower::service_fn(dummy)))
        })
        .clone()
}

// ---------------------------------------------------------------------------
// Lambda events.

/// Sends an API Gateway HTTP API (v2) event, as the Lambda runtime hands it
/// to the function (JSON), through `payment::lambda::handle_event`, and
/// checks everything listed in the module documentation. Panics (a fuzzer
/// crash) on a breach.
pub fn exercise_event(event: serde_json::Value) {
    // What the stack must do, from the converted request; the conversion's
    // own promise (400, nothing reached) when there is none.
    let expected = match payment::lambda::request_from_event(event.clone()) {
        Ok(request) => Some(Expected::of(&request, authorizer_claims(&event))),
        Err(_) => None,
    };
    REACHED.with(|r| r.borrow_mut().take());
    let response = runtime().block_on(payment::lambda::handle_event(service(), event));
    let reached = REACHED.with(|r| r.borrow_mut().take());
    let response = as_http(response);
    trace_line(&response, &reached);
    match expected {
        Some(expected) => expected.check(response, reached),
        None => {
            assert!(
                reached.is_none(),
                "an unconvertible event reached the service"
            );
            assert_eq!(response.status(), 400, "{response:?}");
            let status = tonic::Status::from_header_map(response.headers())
                .expect("a rejected event carries grpc-status");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(!status.message().is_empty());
            assert!(response.body().is_empty());
        }
    }
}

/// The API Gateway response as API Gateway reads it, after checking that it
/// serializes (the runtime sends it as JSON; a failure there is a 500).
fn as_http(response: ApiGatewayV2httpResponse) -> http::Response<Bytes> {
    serde_json::to_vec(&response).expect("the API Gateway response serializes");
    assert!(
        response.multi_value_headers.is_empty(),
        "payload format 2.0 has no multi-value headers"
    );
    let body = match (&response.body, response.is_base64_encoded) {
        (None, _) => Bytes::new(),
        (Some(EventBody::Binary(bytes)), true) => Bytes::copy_from_slice(bytes),
        (Some(EventBody::Empty), _) => Bytes::new(),
        (Some(other), encoded) => {
            panic!("the Lambda adapter returns binary bodies only: {other:?} (base64 {encoded})")
        }
    };
    let mut out = http::Response::new(body);
    *out.status_mut() =
        http::StatusCode::from_u16(u16::try_from(response.status_code).expect("a 16-bit status"))
            .expect("a valid status");
    *out.headers_mut() = response.headers;
    out
}

// ---------------------------------------------------------------------------
// The dummy inner service.

/// What reached the inner service.
#[derive(Debug, Clone)]
pub struct Reached {
    pub path: String,
    pub body: Bytes,
    /// The (streamed) body ended in an error; `body` is then empty.
    pub body_failed: bool,
    pub claims: Option<HashMap<String, String>>,
    pub shape: u8,
    pub echoed: HeaderMap,
}

/// Stands in for the tonic routes: records the request and answers with its
/// body echoed as the reply message, in one of four shapes picked by the
/// `x-fuzz-response` header:
/// 0. the message, then trailers (grpc-status 0 and the x-fuzz-echo* headers);
/// 1. trailers-only: grpc-status 0 in the headers, no body;
/// 2. as 0, plus a data frame after the trailers (a broken stream, which the
///    guard's `EndAfterTrailers` must cut off);
/// 3. as 0 with the message split in two data frames.
async fn dummy(
    request: http::Request<axum::body::Body>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    let (parts, body) = request.into_parts();
    // A streamed body (reflection, unknown paths) may fail: bad base64, or
    // past its limit. The dummy then echoes nothing.
    let (body, body_failed) = match body.collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    let shape = parts
        .headers
        .get(SHAPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u8>().ok())
        .unwrap_or(0)
        % 4;
    let mut echoed = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name.as_str().starts_with(ECHO_PREFIX) {
            echoed.append(name.clone(), value.clone());
        }
    }
    let claims = parts
        .extensions
        .get::<AuthorizerClaims>()
        .map(|c| c.0.clone());
    check_api_gateway_caller(claims.as_ref()).await;
    REACHED.with(|r| {
        *r.borrow_mut() = Some(Reached {
            path: parts.uri.path().to_owned(),
            body: body.clone(),
            body_failed,
            claims,
            shape,
            echoed: echoed.clone(),
        })
    });

    let mut trailers = echoed;
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut frames = VecDeque::new();
    let response = http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/grpc");
    let response = match shape {
        1 => response.header("grpc-status", "0"),
        _ => {
            let echo = Bytes::from(framed(&body));
            if shape == 3 {
                let mut first = echo.clone();
                let second = first.split_off(first.len() / 2);
                frames.push_back(Frame::data(first));
                frames.push_back(Frame::data(second));
            } else {
                frames.push_back(Frame::data(echo));
            }
            frames.push_back(Frame::trailers(trailers));
            if shape == 2 {
                frames.push_back(Frame::data(Bytes::from_static(b"after the trailers")));
            }
            response
        }
    };
    Ok(response
        .body(tonic::body::Body::new(Frames(frames)))
        .expect("a valid response"))
}

/// What the service does first with a Lambda call: find the caller in the
/// authorizer's claims (`Authenticator::ApiGateway`). A caller is accepted
/// exactly when `sub` is 1 to SUB_BYTES_MAX bytes without control
/// characters, and is an admin exactly when `scope` lists ADMIN_SCOPE.
async fn check_api_gateway_caller(claims: Option<&HashMap<String, String>>) {
    let mut request = tonic::Request::new(());
    if let Some(claims) = claims {
        request
            .extensions_mut()
            .insert(AuthorizerClaims(claims.clone()));
    }
    let caller = Authenticator::ApiGateway.caller(&request).await;
    let sub = claims.and_then(|c| c.get("sub"));
    let valid = sub.is_some_and(|s| {
        !s.is_empty() && s.len() <= SUB_BYTES_MAX && !s.chars().any(char::is_control)
    });
    match caller {
        Ok(caller) => {
            assert!(valid, "caller {caller:?} accepted from claims {claims:?}");
            assert_eq!(Some(&caller.sub), sub);
            let scope = claims.and_then(|c| c.get("scope"));
            let admin = scope.is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
            assert_eq!(caller.admin, admin, "admin from scope {scope:?}");
        }
        Err(status) => {
            assert!(!valid, "claims {claims:?} rejected: {status:?}");
            assert_eq!(status.code(), tonic::Code::Unauthenticated);
        }
    }
}

/// A body made of the given frames.
struct Frames(VecDeque<Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

// ---------------------------------------------------------------------------
// Running a request and checking the reply.

/// Sends `request` through `payment::lambda::handle` and the API Gateway
/// response it becomes, and checks everything listed in the module
/// documentation. Panics (a fuzzer crash) on a breach.
pub fn exercise(request: http::Request<Full<Bytes>>) {
    let expected = Expected::of(&request, None);
    if trace() {
        eprintln!(
            "{} {} content-type {:?}",
            request.method(),
            request.uri(),
            request.headers().get(http::header::CONTENT_TYPE)
        );
    }
    REACHED.with(|r| r.borrow_mut().take());
    let response = runtime().block_on(payment::lambda::handle(service(), request));
    let reached = REACHED.with(|r| r.borrow_mut().take());
    let response = as_http(payment::lambda::api_gateway_response(response));
    trace_line(&response, &reached);
    expected.check(response, reached);
}

/// With PAYMENT_FUZZ_TRACE, what came out and whether the service was reached.
fn trace_line(response: &http::Response<Bytes>, reached: &Option<Reached>) {
    if trace() {
        eprintln!(
            "  HTTP {}, grpc-status {:?}, {} body bytes; inner service {}",
            response.status().as_u16(),
            response.headers().get("grpc-status"),
            response.body().len(),
            match reached {
                Some(r) => format!(
                    "reached at {} with {} bytes (failed: {}), claims {:?}",
                    r.path,
                    r.body.len(),
                    r.body_failed,
                    r.claims
                ),
                None => "not reached".to_owned(),
            }
        );
    }
}

/// PAYMENT_FUZZ_TRACE=1 prints one line per request: what went in, what
/// came out, whether the inner service was reached (for replaying inputs).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os(payment::settings::FUZZ_TRACE_ENV).is_some())
}

/// What the stack must do with a request, worked out from the request alone.
#[derive(Debug)]
struct Expected {
    reach: Reach,
    /// The reply is gRPC-Web text (base64) rather than binary.
    text_reply: bool,
    /// The authorizer's claims the inner service must see, read from the
    /// event's JSON (None: no claims object there).
    claims: Option<HashMap<String, String>>,
}

/// Whether and how the inner service must be reached.
#[derive(Debug)]
enum Reach {
    /// Not at all: the guard, tonic-web or CORS answers.
    No,
    /// With exactly this (decoded) body.
    With(Bytes),
    /// With a streamed body that fails (bad base64, or over its limit).
    Failing,
}

impl Expected {
    fn of(request: &http::Request<Full<Bytes>>, claims: Option<HashMap<String, String>>) -> Self {
        let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
        let content_type = header(http::header::CONTENT_TYPE);
        let grpc_web = matches!(
            content_type,
            Some(
                "application/grpc-web"
                    | "application/grpc-web+proto"
                    | "application/grpc-web-text"
                    | "application/grpc-web-text+proto"
            )
        );
        let body = runtime()
            .block_on(request.body().clone().collect())
            .map(|c| c.to_bytes())
            .unwrap_or_else(|never| match never {});
        // Native gRPC is passed through on HTTP/2 only; tonic-web answers
        // anything else on HTTP/1 with 400.
        let native = request.version() == Version::HTTP_2
            && content_type.is_some_and(|ct| ct.starts_with("application/grpc"));
        let accepted = request.method() == Method::POST && (grpc_web || native);
        let decoded = if grpc_web
            && matches!(
                content_type,
                Some("application/grpc-web-text" | "application/grpc-web-text+proto")
            ) {
            // tonic-web decodes the 4-aligned part and fails on a remainder.
            if body.len().is_multiple_of(4) {
                BASE64_WEB.decode(&body).ok().map(Bytes::from)
            } else {
                None
            }
        } else {
            Some(body)
        };
        let path = request.uri().path();
        let reach = match (accepted, decoded) {
            (false, _) => Reach::No,
            (true, decoded) if single_message_method(path).is_some() => {
                match decoded.filter(|bytes| valid_request(path, bytes)) {
                    Some(frame) => Reach::With(frame),
                    None => Reach::No,
                }
            }
            (true, Some(bytes)) if bytes.len() <= STREAMED_REQUEST_BYTES_MAX => Reach::With(bytes),
            (true, _) => Reach::Failing,
        };
        Expected {
            reach,
            text_reply: grpc_web
                && matches!(
                    header(http::header::ACCEPT),
                    Some("application/grpc-web-text" | "application/grpc-web-text+proto")
                ),
            claims,
        }
    }

    fn check(self, response: http::Response<Bytes>, reached: Option<Reached>) {
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "HTTP {status} from the stack: {response:?}"
        );
        match (&self.reach, &reached) {
            (Reach::With(body), Some(reached)) => {
                assert!(!reached.body_failed, "the inner service got a failing body");
                assert_eq!(&reached.body, body, "the inner service got another body");
            }
            (Reach::Failing, Some(reached)) => {
                assert!(
                    reached.body_failed,
                    "a body that must fail did not: {reached:?}"
                );
            }
            (Reach::No, None) => {}
            (Reach::No, Some(reached)) => panic!(
                "the inner service was reached by a request the guard must reject: {reached:?}"
            ),
            (reach, None) => panic!(
                "a request ({reach:?}) did not reach the inner service: {:?} {:?}",
                response.status(),
                response.headers()
            ),
        }
        if let Some(reached) = &reached {
            match &self.claims {
                Some(claims) => assert_eq!(
                    reached.claims.as_ref(),
                    Some(claims),
                    "the authorizer's claims did not reach the inner service unchanged"
                ),
                None => assert!(
                    reached.claims.as_ref().is_none_or(HashMap::is_empty),
                    "claims from nowhere reached the inner service: {:?}",
                    reached.claims
                ),
            }
        }

        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = match content_type.as_str() {
            "application/grpc-web-text+proto" => true,
            "application/grpc-web+proto" => false,
            _ => {
                // Not gRPC-Web: plain errors (405, 415, 400) and preflights,
                // or native gRPC, whose trailers a buffered Lambda reply drops.
                if reached.is_some() && content_type != "application/grpc" {
                    panic!("the dummy's reply lost its gRPC content type: {content_type:?}");
                }
                return;
            }
        };
        if reached.is_some() {
            assert_eq!(
                text, self.text_reply,
                "reply encoding does not follow accept"
            );
        }
        let body = response.body().clone();
        let body = if text { decode_text_reply(&body) } else { body };
        let reply = parse_grpc_web_reply(body);

        let header_status = response.headers().get("grpc-status").cloned();
        let status = match (&reply.trailers, header_status) {
            (Some(trailers), None) => trailers
                .get("grpc-status")
                .cloned()
                .expect("the trailers frame has no grpc-status"),
            (None, Some(status)) => {
                assert!(reply.data.is_empty(), "a trailers-only reply has a body");
                status
            }
            (Some(_), Some(_)) => panic!("grpc-status in the headers and in a trailers frame"),
            (None, None) => panic!("a gRPC-Web reply without grpc-status: {response:?}"),
        };
        let code: i32 = status
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("grpc-status is a number");
        match &reached {
            Some(reached) => {
                assert_eq!(code, 0, "the dummy's OK became {code}");
                if reached.shape == 1 {
                    assert!(reply.trailers.is_none() && reply.data.is_empty());
                } else {
                    assert_eq!(
                        reply.data,
                        framed(&reached.body),
                        "the dummy's reply came back changed"
                    );
                    let trailers = reply.trailers.as_ref().expect("trailers");
                    for (name, value) in &reached.echoed {
                        assert!(
                            trailers.get_all(name).iter().any(|v| v == value),
                            "trailer {name}: {value:?} was lost"
                        );
                    }
                }
            }
            None => assert!(
                matches!(code, 3 | 8 | 12),
                "a rejected request got grpc-status {code} (expected 3, 8 or 12)"
            ),
        }
    }
}

/// The claims of an API Gateway v2 JWT authorizer in the event's JSON, if
/// it has a claims object of strings.
fn authorizer_claims(event: &serde_json::Value) -> Option<HashMap<String, String>> {
    event
        .pointer("/requestContext/authorizer/jwt/claims")?
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// `message` as one uncompressed gRPC frame.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The methods whose request is one message, which the guard reads and
/// checks (stated here independently of the guard and of `pb::METHODS`,
/// the table it uses): the request type's decoder, by path.
/// [`oracle_covers_the_contract`] fails every target at start-up when a
/// method of the contract is missing here.
fn single_message_method(path: &str) -> Option<fn(&[u8]) -> bool> {
    fn decodes<M: Message + Default>(message: &[u8]) -> bool {
        M::decode(message).is_ok()
    }
    Some(match path {
        "/payment.v1.PaymentService/AddAccount" => decodes::<pb::AddAccountRequest>,
        "/payment.v1.PaymentService/MakePayment" => decodes::<pb::MakePaymentRequest>,
        "/payment.v1.PaymentService/GetAccountBalance" => decodes::<pb::GetAccountBalanceRequest>,
        "/payment.v1.PaymentService/GetTransactionHistory" => {
            decodes::<pb::GetTransactionHistoryRequest>
        }
        "/payment.v1.PaymentService/AuthorizePayment" => decodes::<pb::AuthorizePaymentRequest>,
        "/payment.v1.PaymentService/CaptureHold" => decodes::<pb::CaptureHoldRequest>,
        "/payment.v1.PaymentService/VoidHold" => decodes::<pb::VoidHoldRequest>,
        "/payment.v1.PaymentService/RefundPayment" => decodes::<pb::RefundPaymentRequest>,
        "/payment.v1.PaymentService/GetPayment" => decodes::<pb::GetPaymentRequest>,
        "/payment.v1.PaymentService/ListAccounts" => decodes::<pb::ListAccountsRequest>,
        "/payment.v1.PaymentService/SetBalanceShards" => decodes::<pb::SetBalanceShardsRequest>,
        "/payment.v1.PaymentService/WatchAccount" => decodes::<pb::WatchAccountRequest>,
        "/grpc.health.v1.Health/Check" | "/grpc.health.v1.Health/Watch" => {
            decodes::<tonic_health::pb::HealthCheckRequest>
        }
        _ => return None,
    })
}

/// Panics unless the oracle ([`single_message_method`]) has every method of
/// the contract whose request is one message, and none whose client
/// streams: a method added to the proto must be added to the oracle.
pub fn oracle_covers_the_contract() {
    for method in pb::METHODS {
        assert_eq!(
            single_message_method(method.path).is_some(),
            !method.client_streaming,
            "{}: add it to single_message_method in fuzz/src/lib.rs",
            method.path
        );
    }
}

/// Whether the guard must pass `body` for `path`, a single-message method:
/// one uncompressed frame of at most REQUEST_BYTES_MAX bytes, holding the
/// method's request message.
pub fn valid_request(path: &str, body: &[u8]) -> bool {
    let Some(decodes) = single_message_method(path) else {
        return false;
    };
    if body.len() > REQUEST_BYTES_MAX || body.len() < 5 || body[0] != 0 {
        return false;
    }
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let message = &body[5..];
    message.len() == length && decodes(message)
}

/// A gRPC-Web text reply: base64 chunks, each padded on its own (tonic-web
/// encodes frame by frame), so decoded in groups of four characters.
fn decode_text_reply(body: &[u8]) -> Bytes {
    assert!(
        body.len().is_multiple_of(4),
        "a gRPC-Web text reply of {} characters is not whole base64 groups",
        body.len()
    );
    let mut out = Vec::with_capacity(body.len() / 4 * 3);
    for group in body.chunks(4) {
        let decoded = BASE64_WEB
            .decode(group)
            .unwrap_or_else(|e| panic!("a gRPC-Web text reply is not base64: {e}"));
        out.extend_from_slice(&decoded);
    }
    Bytes::from(out)
}

struct Reply {
    /// The data frames, headers included, as sent.
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
}

/// Splits a binary gRPC-Web reply into its frames; panics unless it is data
/// frames followed by at most one trailers frame, which must come last.
fn parse_grpc_web_reply(mut body: Bytes) -> Reply {
    let mut reply = Reply {
        data: Vec::new(),
        trailers: None,
    };
    while body.has_remaining() {
        assert!(
            reply.trailers.is_none(),
            "data after the trailers frame in a gRPC-Web reply"
        );
        assert!(body.len() >= 5, "a truncated gRPC-Web frame header");
        let header = body.split_to(5);
        let flag = header[0];
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        assert!(body.len() >= length, "a truncated gRPC-Web frame");
        let payload = body.split_to(length);
        match flag {
            0 => {
                reply.data.extend_from_slice(&header);
                reply.data.extend_from_slice(&payload);
            }
            0x80 => reply.trailers = Some(parse_trailers(&payload)),
            _ => panic!("gRPC-Web frame flag {flag:#x}"),
        }
    }
    reply
}

fn parse_trailers(block: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    let text = block
        .strip_suffix(b"\r\n")
        .expect("the trailers block ends with CRLF");
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .expect("a trailer line has a colon");
        let name = http::HeaderName::from_bytes(&line[..colon]).expect("a trailer name");
        let value = HeaderValue::from_bytes(&line[colon + 1..]).expect("a trailer value");
        map.append(name, value);
    }
    map
}

// ---------------------------------------------------------------------------
// Helpers for the other targets.

/// URL-safe base64 without padding, the page token alphabet.
pub fn base64_url(bytes: &[u8]) -> String {
    general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
