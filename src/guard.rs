//! Checks every gRPC request with a single request message before tonic
//! decodes it, so that bad input gets a status that names the problem instead
//! of tonic's INTERNAL.
//!
//! tonic answers an empty body, a truncated frame or undecodable protobuf
//! with INTERNAL (following grpc's own table); tonic-web does the same for
//! invalid base64. For a service with the rule "no input ever produces
//! INTERNAL", this layer reads the (small) body of the methods whose request
//! is one message with a size limit, checks its framing and decodes the
//! message as the method's request type, and answers INVALID_ARGUMENT or
//! RESOURCE_EXHAUSTED itself when that fails. Those methods are every unary
//! and server-streaming method of the contract, taken from [`pb::METHODS`]
//! (which build.rs generates from proto/, so a new method is guarded with
//! nothing to remember), and health Check and Watch; see
//! [`single_message_request`].
//!
//! Every other path (reflection's bidirectional stream, unknown methods) is
//! passed on with its body streamed, never waited for: clients such as buf
//! curl, grpcurl or Postman keep the reflection stream open until they have
//! their answers, so waiting for its end would wait forever. The method is
//! told by its path alone, never by reading the body.

use crate::pb;
use crate::telemetry::{Call, Telemetry};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full, Limited};
use prost::Message;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// Largest request body accepted, in bytes. The largest valid request (a
/// MakePayment with every field at its limit) is under 1 KiB.
pub const REQUEST_BYTES_MAX: usize = 16 * 1024;

/// Largest request body passed on as a stream (reflection), in bytes, over
/// the whole stream. A reflection request is a symbol or file name, so a
/// client resolving a few hundred symbols on one stream stays far below it.
/// Beyond it the stream fails and the reflection service ends its reply.
pub const STREAMED_REQUEST_BYTES_MAX: usize = 1024 * 1024;

/// The tower layer that adds [`RequestGuard`].
#[derive(Debug, Clone, Default)]
pub struct RequestGuardLayer {
    telemetry: Telemetry,
}

impl RequestGuardLayer {
    /// A guard that records each call of the payment service it refuses
    /// through `telemetry`, as the service records the calls it answers.
    pub fn new(telemetry: Telemetry) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for RequestGuardLayer {
    type Service = RequestGuard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestGuard {
            inner,
            telemetry: self.telemetry.clone(),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RequestGuard<S> {
    inner: S,
    telemetry: Telemetry,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B, ResBody> Service<http::Request<B>> for RequestGuard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        // The clone that was made ready is the one that serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let telemetry = self.telemetry.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let is_grpc = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("application/grpc"));
            if parts.method != http::Method::POST {
                return Ok(plain_error(
                    http::StatusCode::METHOD_NOT_ALLOWED,
                    "gRPC calls are HTTP POST requests",
                ));
            }
            if !is_grpc {
                return Ok(plain_error(
                    http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "content-type must be application/grpc, application/grpc-web(+proto) or application/grpc-web-text",
                ));
            }
            let Some(request_type) = single_message_request(parts.uri.path()) else {
                // A streaming (or unknown) method: pass the body on as it
                // comes, never waiting for its end.
                let body = Body::new(Limited::new(body, STREAMED_REQUEST_BYTES_MAX));
                return Ok(inner
                    .call(http::Request::from_parts(parts, body))
                    .await?
                    .map(|body| Body::new(EndAfterTrailers::new(body))));
            };
            let arrived = std::time::Instant::now();
            match checked_body(request_type, body).await {
                Ok(bytes) => {
                    let request = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
                    Ok(inner
                        .call(request)
                        .await?
                        .map(|body| Body::new(EndAfterTrailers::new(body))))
                }
                Err(status) => {
                    tracing::info!(
                        path = parts.uri.path(),
                        code = ?status.code(),
                        message = status.message(),
                        "request rejected before decoding"
                    );
                    // A refused call of the payment service is still a
                    // call: it gets its record (and span) as if answered.
                    if let Some(method) = request_type.method {
                        let request =
                            tonic::Request::from_http(http::Request::from_parts(parts, ()));
                        Call::start(&telemetry, method, &request)
                            .since(arrived)
                            .finish::<()>(&Err(status.clone()));
                    }
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// A response body that ends right after its trailers.
///
/// Whoever reads a body to its end (the Lambda adapter collects it) may poll again
/// after the trailers frame; a failed stream then produced data frames after
/// the error trailer, which is malformed gRPC-Web. Ending the body after the
/// first trailers frame makes the trailer the last thing sent, always.
#[derive(Debug)]
pub struct EndAfterTrailers<B> {
    inner: B,
    done: bool,
}

impl<B> EndAfterTrailers<B> {
    pub fn new(inner: B) -> Self {
        Self { inner, done: false }
    }
}

impl<B> http_body::Body for EndAfterTrailers<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => self.done = true,
            Poll::Ready(None | Some(Err(_))) => self.done = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.done {
            http_body::SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

/// A plain HTTP error for requests that are not gRPC at all.
fn plain_error(status: http::StatusCode, message: &'static str) -> http::Response<Body> {
    let mut response =
        http::Response::new(Body::new(Full::new(Bytes::from_static(message.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request type of a method that takes exactly one request message
/// (unary and server-streaming methods), by its path: its full protobuf
/// name and a check that a message decodes as it. Every such method of the
/// contract ([`pb::METHODS`]) has one, and so have health Check and Watch,
/// the one service served that is not in proto/. `None` for every other
/// path, whose body the guard streams through unread.
pub fn single_message_request(path: &str) -> Option<RequestType> {
    if let Some(method) = pb::METHODS.iter().find(|m| m.path == path) {
        return (!method.client_streaming).then_some(RequestType {
            name: method.input_type,
            method: (method.service == crate::telemetry::traces::RPC_SERVICE)
                .then_some(method.name),
            decode: method.decode,
        });
    }
    match path {
        "/grpc.health.v1.Health/Check" | "/grpc.health.v1.Health/Watch" => Some(RequestType {
            name: "grpc.health.v1.HealthCheckRequest",
            method: None,
            decode: |message| tonic_health::pb::HealthCheckRequest::decode(message).map(drop),
        }),
        _ => None,
    }
}

/// See [`single_message_request`].
#[derive(Debug, Clone, Copy)]
pub struct RequestType {
    /// The full protobuf name, e.g. `payment.v1.AddAccountRequest`.
    pub name: &'static str,
    /// The payment service's method (its calls are recorded); None for
    /// health checks.
    method: Option<&'static str>,
    decode: Decode,
}

/// Checks that a message decodes as one request type.
type Decode = fn(Bytes) -> Result<(), prost::DecodeError>;

impl RequestType {
    fn check(&self, message: Bytes) -> Result<(), Status> {
        (self.decode)(message)
            .map_err(|err| malformed(format!("request is not a valid {}: {err}", self.name)))
    }
}

async fn checked_body<B>(request_type: RequestType, body: B) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, REQUEST_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(crate::error::ServiceError::RequestTooLarge {
                limit_bytes: REQUEST_BYTES_MAX,
            }
            .into());
        }
        Err(err) => {
            // tonic-web reports invalid base64 as a Status; say what it says,
            // not its code (INTERNAL), which would mislead.
            let reason = match err.downcast_ref::<Status>() {
                Some(status) => status
                    .message()
                    .trim_start_matches("tonic-web: ")
                    .to_owned(),
                None => err.to_string(),
            };
            return Err(malformed(format!(
                "request body could not be read: {reason}"
            )));
        }
    };
    request_type.check(single_frame(&bytes)?)?;
    Ok(bytes)
}

/// INVALID_ARGUMENT for a request that is not one well-formed message.
fn malformed(message: impl Into<String>) -> Status {
    crate::error::ServiceError::MalformedRequest(message.into()).into()
}

/// The one uncompressed length-prefixed message of a unary request.
fn single_frame(bytes: &Bytes) -> Result<Bytes, Status> {
    let mut rest = bytes.clone();
    if rest.is_empty() {
        return Err(malformed(
            "request body is empty; expected one length-prefixed protobuf message",
        ));
    }
    if rest.len() < 5 {
        return Err(malformed(
            "request body is truncated: a gRPC frame header has 5 bytes",
        ));
    }
    let flag = rest.get_u8();
    let length = rest.get_u32() as usize;
    match flag {
        0 => {}
        1 => {
            return Err(crate::error::ServiceError::CompressionUnsupported.into());
        }
        _ => {
            return Err(malformed(format!(
                "request frame has flag {flag}; expected 0 (an uncompressed message)"
            )));
        }
    }
    if rest.len() < length {
        return Err(malformed(format!(
            "request frame is truncated: its header announces {length} bytes, {} follow",
            rest.len()
        )));
    }
    if rest.len() > length {
        return Err(malformed(
            "request body has data after its one message; unary calls take exactly one",
        ));
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(flag: u8, payload: &[u8]) -> Bytes {
        let mut v = vec![flag];
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(payload);
        Bytes::from(v)
    }

    #[tokio::test]
    async fn bodies_end_after_their_trailers() {
        use http_body_util::StreamBody;
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
        let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(http_body::Frame::data(Bytes::from_static(b"one"))),
            Ok(http_body::Frame::trailers(trailers)),
            Ok(http_body::Frame::data(Bytes::from_static(
                b"after the trailer",
            ))),
        ];
        let body = EndAfterTrailers::new(StreamBody::new(tokio_stream::iter(frames)));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "13");
        assert_eq!(collected.to_bytes(), Bytes::from_static(b"one"));
    }

    #[test]
    fn frames_are_checked() {
        let ok = pb::GetAccountBalanceRequest {
            account_id: "a".into(),
        }
        .encode_to_vec();
        assert!(single_frame(&frame(0, &ok)).is_ok());
        let code = |b: Bytes| single_frame(&b).unwrap_err().code();
        assert_eq!(code(Bytes::new()), tonic::Code::InvalidArgument);
        assert_eq!(
            code(Bytes::from_static(&[0, 0])),
            tonic::Code::InvalidArgument
        );
        let mut truncated = frame(0, &ok).to_vec();
        truncated.pop();
        assert_eq!(code(Bytes::from(truncated)), tonic::Code::InvalidArgument);
        let mut trailing = frame(0, &ok).to_vec();
        trailing.push(0);
        assert_eq!(code(Bytes::from(trailing)), tonic::Code::InvalidArgument);
        assert_eq!(code(frame(1, &ok)), tonic::Code::Unimplemented);
        assert_eq!(code(frame(0x80, &ok)), tonic::Code::InvalidArgument);
    }

    #[test]
    fn messages_must_decode_as_the_method_request() {
        // Field 1 with wire type 7 does not exist in protobuf.
        let garbage = Bytes::from_static(&[0x0f, 0x01]);
        let paths = pb::METHODS
            .iter()
            .filter(|m| !m.client_streaming)
            .map(|m| m.path)
            .chain([
                "/grpc.health.v1.Health/Check",
                "/grpc.health.v1.Health/Watch",
            ]);
        for path in paths {
            let request_type = single_message_request(path).expect(path);
            let err = request_type.check(garbage.clone()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{path}");
            assert!(err.message().contains(request_type.name), "{path}");
            assert!(request_type.check(Bytes::new()).is_ok(), "{path}: empty");
        }
        // A string field whose bytes are not UTF-8.
        let bad_utf8 = Bytes::from_static(&[0x0a, 0x02, 0xff, 0xfe]);
        let balance = single_message_request("/payment.v1.PaymentService/GetAccountBalance");
        assert!(balance.unwrap().check(bad_utf8).is_err());
    }

    /// The methods of the contract, read from the descriptors that
    /// reflection serves (not from `pb::METHODS`): path, request type
    /// (without the leading dot) and whether the client streams.
    fn contract_methods() -> Vec<(String, String, bool)> {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let mut methods = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push((
                        format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                        method.input_type().trim_start_matches('.').to_owned(),
                        method.client_streaming(),
                    ));
                }
            }
        }
        methods
    }

    #[test]
    fn every_method_of_the_contract_is_guarded_with_its_request_type() {
        let contract = contract_methods();
        assert!(contract.len() >= 10, "{contract:?}");
        let table: Vec<&str> = pb::METHODS.iter().map(|m| m.path).collect();
        let walked: Vec<&str> = contract.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(table, walked, "pb::METHODS is the contract's methods");
        for (path, input_type, client_streaming) in &contract {
            match single_message_request(path) {
                Some(guarded) => {
                    assert!(
                        !client_streaming,
                        "{path}: a client stream must not be read whole"
                    );
                    assert_eq!(guarded.name, input_type, "{path}");
                }
                None => assert!(client_streaming, "{path} is not guarded"),
            }
        }
    }

    /// Sends `body` to `path` through the guard, in front of a service that
    /// counts the requests reaching it and answers OK.
    async fn through_guard(path: &str, body: Bytes) -> (Option<Status>, usize) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let reached = Arc::new(AtomicUsize::new(0));
        let counter = reached.clone();
        let inner = tower::service_fn(move |_request: http::Request<Body>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            }
        });
        let mut guard = RequestGuardLayer::default().layer(inner);
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .body(Full::new(body))
            .unwrap();
        let response = guard.call(request).await.unwrap();
        let status = Status::from_header_map(response.headers());
        (status, reached.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn every_guarded_method_refuses_bad_bodies_before_the_service() {
        let mut over_limit = frame(0, &vec![0; REQUEST_BYTES_MAX]).to_vec();
        over_limit.truncate(REQUEST_BYTES_MAX + 1);
        let truncated = frame(0, b"\x0a\x01a");
        let truncated = truncated.slice(..truncated.len() - 1);
        for (path, input_type, client_streaming) in contract_methods() {
            if client_streaming {
                continue;
            }
            let refusals = [
                (
                    "garbage",
                    frame(0, b"\x0f\xff"),
                    tonic::Code::InvalidArgument,
                    input_type.as_str(),
                ),
                (
                    "an empty body",
                    Bytes::new(),
                    tonic::Code::InvalidArgument,
                    "empty",
                ),
                (
                    "a truncated frame",
                    truncated.clone(),
                    tonic::Code::InvalidArgument,
                    "truncated",
                ),
                (
                    "a body over 16 KiB",
                    Bytes::from(over_limit.clone()),
                    tonic::Code::ResourceExhausted,
                    "larger than 16384 bytes",
                ),
            ];
            for (what, body, code, needle) in refusals {
                let (status, reached) = through_guard(&path, body).await;
                let status = status.unwrap_or_else(|| panic!("{path}, {what}: no grpc-status"));
                assert_eq!(status.code(), code, "{path}, {what}: {}", status.message());
                assert!(
                    status.message().contains(needle),
                    "{path}, {what}: {:?} does not name {needle:?}",
                    status.message()
                );
                assert_eq!(reached, 0, "{path}, {what}: reached the service");
            }
            // The garbage refusal names the request type (checked above);
            // a valid (empty) message goes through.
            let (status, reached) = through_guard(&path, frame(0, b"")).await;
            assert!(status.is_none(), "{path}: {status:?}");
            assert_eq!(
                reached, 1,
                "{path}: a valid request did not reach the service"
            );
        }
    }

    /// A request body that sends one frame and then never ends, as a
    /// reflection client keeping its stream open.
    struct OpenStream(Option<Bytes>);

    impl http_body::Body for OpenStream {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(data) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_stream_reaches_the_service_before_its_body_ends() {
        let inner = tower::service_fn(|request: http::Request<Body>| async move {
            // Answer with the first frame of the request, as reflection does.
            let first = request.into_body().frame().await;
            let data = first
                .expect("a frame")
                .expect("no error")
                .into_data()
                .unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(data)))
        });
        let mut guard = RequestGuardLayer::default().layer(inner);
        let message = frame(0, b"\x3a\x00");
        let request =
            http::Request::post("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
                .header(http::header::CONTENT_TYPE, "application/grpc")
                .body(OpenStream(Some(message.clone())))
                .unwrap();
        let response =
            tokio::time::timeout(std::time::Duration::from_secs(10), guard.call(request))
                .await
                .expect("the guard waited for the end of a streaming request")
                .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, message);
    }

    #[test]
    fn streaming_and_unknown_methods_are_not_read() {
        // Requests that are streams: reflection's, and any client-streaming
        // method of the contract.
        let streams = [
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ]
        .into_iter()
        .chain(
            pb::METHODS
                .iter()
                .filter(|m| m.client_streaming)
                .map(|m| m.path),
        );
        // Paths that name no method: near misses of the contract's paths.
        let unknown = [
            "/payment.v1.PaymentService/Refund",
            "/payment.v1.PaymentService/addAccount",
            "/payment.v1.PaymentService/",
            "/payment.v1.PaymentService/AddAccount/",
            "/payment.v1.PaymentService.AddAccount",
            "/payment.v1.Payments/AddAccount",
            "/other.v1.Other/Call",
            "/",
        ];
        for path in unknown {
            assert!(
                !pb::METHODS.iter().any(|m| m.path == path),
                "{path} is a method of the contract now; pick another unknown path"
            );
        }
        for path in streams.chain(unknown) {
            assert!(single_message_request(path).is_none(), "{path}");
        }
    }
}
