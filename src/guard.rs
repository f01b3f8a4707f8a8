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
mod tests;
