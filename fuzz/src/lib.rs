//! Shared harness code for the fuzz targets in `fuzz_targets/`.
//!
//! The HTTP targets run requests through the Lambda adapter
//! ([`payment::lambda::handle`]) and the real HTTP stack (CORS, gRPC-Web,
//! [`payment::guard::RequestGuard`]) with a dummy in place of the tonic
//! routes: no DynamoDB, no network. The dummy records what reached it and
//! echoes it back, so that the checks below can hold the stack to its
//! contract:
//!
//! * `handle` never panics, never answers 5xx and never sends a gRPC status
//!   other than OK (from the dummy) or the guard's INVALID_ARGUMENT,
//!   RESOURCE_EXHAUSTED and UNIMPLEMENTED (the guard's promise: no input
//!   produces INTERNAL);
//! * the inner service is reached exactly when the request is a POST with a
//!   gRPC(-Web) content type whose (decoded) body is one uncompressed frame of
//!   at most `REQUEST_BYTES_MAX` bytes that decodes as the method's request
//!   message; what reaches it is that frame, unchanged;
//! * every gRPC-Web reply is well formed: data frames, then exactly one
//!   trailers frame, last, carrying grpc-status (or a trailers-only reply
//!   with grpc-status in the headers and no body); the dummy's data and
//!   trailers arrive unchanged;
//! * the API Gateway authorizer's claims reach the inner service exactly as
//!   the event's request context has them, and from nowhere else; the
//!   service's `Authenticator::ApiGateway` accepts a caller from them
//!   exactly by its documented rules.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Method, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use lambda_http::Body as LambdaBody;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use payment::auth::{ADMIN_SCOPE, Authenticator, AuthorizerClaims, SUB_BYTES_MAX};
use payment::guard::REQUEST_BYTES_MAX;
use payment::pb;
use payment::server::HttpService;
use prost::Message;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// The request header that picks the dummy's reply shape ("0" to "3").
pub const SHAPE_HEADER: &str = "x-fuzz-response";
/// Request headers with this prefix come back as trailers of the reply.
pub const ECHO_PREFIX: &str = "x-fuzz-echo";

const SERVICE_PREFIX: &str = "/payment.v1.PaymentService/";

/// Standard base64 that accepts padding or none, as tonic-web decodes it.
const BASE64_WEB: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------
// Set-up, done once per process.

/// Call from each target's `init:`. Installs the panic filter that lets
/// [`parse_event`] survive panics inside lambda_http (see there).
pub fn init() {
    let abort_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if TOLERATE_PANIC.with(Cell::get) {
            return;
        }
        abort_hook(info)
    }));
}

thread_local! {
    static TOLERATE_PANIC: Cell<bool> = const { Cell::new(false) };
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
/// (`payment::server::http_service`) with [`dummy`] in place of the routes.
pub fn service() -> HttpService {
    static SERVICE: OnceLock<HttpService> = OnceLock::new();
    SERVICE
        .get_or_init(|| {
            tower::ServiceBuilder::new()
                .option_layer(payment::server::cors("*").expect("CORS for any origin"))
                .layer(tonic_web::GrpcWebLayer::new())
                .layer(payment::guard::RequestGuardLayer)
                .service(axum::Router::new().fallback_service(tower::service_fn(dummy)))
        })
        .clone()
}

// ---------------------------------------------------------------------------
// Lambda events.

/// Parses an API Gateway HTTP API (v2) event the way the Lambda runtime does.
///
/// `None` when lambda_http itself panicked: it does on events whose host
/// header, path or query make no valid URI, and on an `isBase64Encoded` body
/// that is not base64 (`Url::parse(..).unwrap()`, `.expect("failed to build
/// request")`, `.expect("failed to decode aws base64 encoded body")` in
/// lambda_http 1.3 / aws_lambda_events 1.2). That is upstream code, before
/// the payment service sees anything, and the Lambda runtime turns it into an
/// invocation error (HTTP 500 from API Gateway), not a crash; it is tolerated
/// here so that fuzzing goes on past it. Set PAYMENT_FUZZ_STRICT_LAMBDA=1 to
/// stop on it instead.
pub fn parse_event(text: &str) -> Option<Result<lambda_http::Request, ()>> {
    static STRICT: OnceLock<bool> = OnceLock::new();
    if *STRICT.get_or_init(|| std::env::var_os("PAYMENT_FUZZ_STRICT_LAMBDA").is_some()) {
        return Some(lambda_http::request::from_str(text).map_err(drop));
    }
    TOLERATE_PANIC.with(|t| t.set(true));
    let parsed = std::panic::catch_unwind(|| lambda_http::request::from_str(text).map_err(drop));
    TOLERATE_PANIC.with(|t| t.set(false));
    match parsed {
        Ok(parsed) => Some(parsed),
        Err(_) => {
            static NOTED: AtomicBool = AtomicBool::new(false);
            if !NOTED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "note: lambda_http panicked while converting an event (upstream; tolerated, \
                     PAYMENT_FUZZ_STRICT_LAMBDA=1 stops on it)"
                );
            }
            None
        }
    }
}

// ---------------------------------------------------------------------------
// The dummy inner service.

/// What reached the inner service.
#[derive(Debug, Clone)]
pub struct Reached {
    pub path: String,
    pub body: Bytes,
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
    let body = body
        .collect()
        .await
        .expect("the guard passes a complete body")
        .to_bytes();
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
            if shape == 3 {
                let mut first = body.clone();
                let second = first.split_off(first.len() / 2);
                frames.push_back(Frame::data(first));
                frames.push_back(Frame::data(second));
            } else {
                frames.push_back(Frame::data(body));
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

/// Sends `request` through `payment::lambda::handle` and checks everything
/// listed in the module documentation. Panics (a fuzzer crash) on a breach.
pub fn exercise(request: lambda_http::Request) {
    let expected = Expected::of(&request);
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
    REACHED.with(|r| r.borrow_mut().take());
    let response = match runtime().block_on(payment::lambda::handle(service(), request)) {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let reached = REACHED.with(|r| r.borrow_mut().take());
    if trace() {
        eprintln!(
            "{method} {uri} content-type {content_type:?}: HTTP {}, grpc-status {:?}, \
             {} body bytes; inner service {}",
            response.status().as_u16(),
            response.headers().get("grpc-status"),
            match response.body() {
                LambdaBody::Binary(b) => b.len(),
                _ => 0,
            },
            match &reached {
                Some(r) => format!("reached with {} bytes, claims {:?}", r.body.len(), r.claims),
                None => "not reached".to_owned(),
            }
        );
    }
    expected.check(response, reached);
}

/// PAYMENT_FUZZ_TRACE=1 prints one line per request: what went in, what
/// came out, whether the inner service was reached (for replaying inputs).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("PAYMENT_FUZZ_TRACE").is_some())
}

/// What the stack must do with a request, worked out from the request alone.
#[derive(Debug)]
struct Expected {
    /// The frame the inner service must receive; None: it must not be reached.
    frame: Option<Bytes>,
    /// The reply is gRPC-Web text (base64) rather than binary.
    text_reply: bool,
    claims: Option<HashMap<String, String>>,
}

impl Expected {
    fn of(request: &lambda_http::Request) -> Self {
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
        let body: &[u8] = match request.body() {
            LambdaBody::Empty => b"",
            LambdaBody::Text(text) => text.as_bytes(),
            LambdaBody::Binary(bytes) => bytes,
            _ => unreachable!("lambda_http::Body has three variants"),
        };
        let decoded = if !grpc_web {
            // Native gRPC is passed through on HTTP/2 only; tonic-web answers
            // anything else on HTTP/1 with 400.
            (request.version() == Version::HTTP_2
                && content_type.is_some_and(|ct| ct.starts_with("application/grpc")))
            .then(|| Bytes::copy_from_slice(body))
        } else if matches!(
            content_type,
            Some("application/grpc-web-text" | "application/grpc-web-text+proto")
        ) {
            // tonic-web decodes the 4-aligned part and fails on a remainder.
            if body.len() % 4 == 0 {
                BASE64_WEB.decode(body).ok().map(Bytes::from)
            } else {
                None
            }
        } else {
            Some(Bytes::copy_from_slice(body))
        };
        let frame = decoded
            .filter(|_| request.method() == Method::POST)
            .filter(|bytes| valid_request(request.uri().path(), bytes));
        Expected {
            frame,
            text_reply: grpc_web
                && matches!(
                    header(http::header::ACCEPT),
                    Some("application/grpc-web-text" | "application/grpc-web-text+proto")
                ),
            claims: authorizer_claims(request),
        }
    }

    fn check(self, response: http::Response<LambdaBody>, reached: Option<Reached>) {
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "HTTP {status} from the stack: {response:?}"
        );
        assert!(
            !matches!(response.body(), LambdaBody::Text(_)),
            "the Lambda adapter returns binary bodies only"
        );
        match (&self.frame, &reached) {
            (Some(frame), Some(reached)) => {
                assert_eq!(&reached.body, frame, "the inner service got another body");
                assert_eq!(
                    reached.claims, self.claims,
                    "the authorizer's claims did not reach the inner service unchanged"
                );
            }
            (None, None) => {}
            (Some(frame), None) => panic!(
                "a valid request ({} byte frame) did not reach the inner service: {:?} {:?}",
                frame.len(),
                response.status(),
                response.headers()
            ),
            (None, Some(reached)) => panic!(
                "the inner service was reached by a request the guard must reject: {reached:?}"
            ),
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
        let body = match response.body() {
            LambdaBody::Binary(bytes) => Bytes::copy_from_slice(bytes),
            _ => Bytes::new(),
        };
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
                        reply.data, reached.body,
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

/// The claims of an API Gateway v2 JWT authorizer in the event, if any.
fn authorizer_claims(request: &lambda_http::Request) -> Option<HashMap<String, String>> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            Some(context.authorizer.as_ref()?.jwt.as_ref()?.claims.clone())
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Whether the guard must pass `body` for `path`: one uncompressed frame of
/// at most REQUEST_BYTES_MAX bytes, holding the method's request message.
pub fn valid_request(path: &str, body: &[u8]) -> bool {
    if body.len() > REQUEST_BYTES_MAX || body.len() < 5 || body[0] != 0 {
        return false;
    }
    let length = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let message = &body[5..];
    if message.len() != length {
        return false;
    }
    match path.strip_prefix(SERVICE_PREFIX) {
        Some("AddAccount") => pb::AddAccountRequest::decode(message).is_ok(),
        Some("MakePayment") => pb::MakePaymentRequest::decode(message).is_ok(),
        Some("GetAccountBalance") => pb::GetAccountBalanceRequest::decode(message).is_ok(),
        Some("GetTransactionHistory") => pb::GetTransactionHistoryRequest::decode(message).is_ok(),
        _ => true,
    }
}

/// A gRPC-Web text reply: base64 chunks, each padded on its own (tonic-web
/// encodes frame by frame), so decoded in groups of four characters.
fn decode_text_reply(body: &[u8]) -> Bytes {
    assert!(
        body.len() % 4 == 0,
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
