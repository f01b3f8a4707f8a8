//! Checks every gRPC request body before tonic decodes it, so that bad input
//! gets a status that names the problem instead of tonic's INTERNAL.
//!
//! tonic answers an empty body, a truncated frame or undecodable protobuf
//! with INTERNAL (following grpc's own table); tonic-web does the same for
//! invalid base64. For a service with the rule "no input ever produces
//! INTERNAL", this layer reads the (small) body with a size limit, checks its
//! framing and decodes the message as the method's request type, and answers
//! INVALID_ARGUMENT or RESOURCE_EXHAUSTED itself when that fails.

use crate::pb;
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

const SERVICE_PREFIX: &str = "/payment.v1.PaymentService/";

/// The tower layer that adds [`RequestGuard`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestGuardLayer;

impl<S> Layer<S> for RequestGuardLayer {
    type Service = RequestGuard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestGuard { inner }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RequestGuard<S> {
    inner: S,
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
            match checked_body(parts.uri.path(), body).await {
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
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// A response body that ends right after its trailers.
///
/// Whoever reads a body to its end (lambda_http collects it) may poll again
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

async fn checked_body<B>(path: &str, body: B) -> Result<Bytes, Status>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let bytes = match Limited::new(body, REQUEST_BYTES_MAX).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Err(Status::resource_exhausted(format!(
                "request body is larger than {REQUEST_BYTES_MAX} bytes"
            )));
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
            return Err(Status::invalid_argument(format!(
                "request body could not be read: {reason}"
            )));
        }
    };
    let message = single_frame(&bytes)?;
    if let Some(method) = path.strip_prefix(SERVICE_PREFIX) {
        decodes_as(method, message)?;
    }
    Ok(bytes)
}

/// The one uncompressed length-prefixed message of a unary request.
fn single_frame(bytes: &Bytes) -> Result<Bytes, Status> {
    let mut rest = bytes.clone();
    if rest.is_empty() {
        return Err(Status::invalid_argument(
            "request body is empty; expected one length-prefixed protobuf message",
        ));
    }
    if rest.len() < 5 {
        return Err(Status::invalid_argument(
            "request body is truncated: a gRPC frame header has 5 bytes",
        ));
    }
    let flag = rest.get_u8();
    let length = rest.get_u32() as usize;
    match flag {
        0 => {}
        1 => {
            return Err(Status::unimplemented(
                "compressed requests are not supported; send uncompressed messages",
            ));
        }
        _ => {
            return Err(Status::invalid_argument(format!(
                "request frame has flag {flag}; expected 0 (an uncompressed message)"
            )));
        }
    }
    if rest.len() < length {
        return Err(Status::invalid_argument(format!(
            "request frame is truncated: its header announces {length} bytes, {} follow",
            rest.len()
        )));
    }
    if rest.len() > length {
        return Err(Status::invalid_argument(
            "request body has data after its one message; unary calls take exactly one",
        ));
    }
    Ok(rest)
}

fn decodes_as(method: &str, message: Bytes) -> Result<(), Status> {
    let (name, result) = match method {
        "AddAccount" => (
            "AddAccountRequest",
            pb::AddAccountRequest::decode(message).err(),
        ),
        "MakePayment" => (
            "MakePaymentRequest",
            pb::MakePaymentRequest::decode(message).err(),
        ),
        "GetAccountBalance" => (
            "GetAccountBalanceRequest",
            pb::GetAccountBalanceRequest::decode(message).err(),
        ),
        "GetTransactionHistory" => (
            "GetTransactionHistoryRequest",
            pb::GetTransactionHistoryRequest::decode(message).err(),
        ),
        // Unknown methods are left to tonic, which answers UNIMPLEMENTED.
        _ => return Ok(()),
    };
    match result {
        None => Ok(()),
        Some(err) => Err(Status::invalid_argument(format!(
            "request is not a valid payment.v1.{name}: {err}"
        ))),
    }
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
        for method in [
            "AddAccount",
            "MakePayment",
            "GetAccountBalance",
            "GetTransactionHistory",
        ] {
            let err = decodes_as(method, garbage.clone()).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{method}");
        }
        // A string field whose bytes are not UTF-8.
        let bad_utf8 = Bytes::from_static(&[0x0a, 0x02, 0xff, 0xfe]);
        assert!(decodes_as("GetAccountBalance", bad_utf8).is_err());
        assert!(decodes_as("Unknown", Bytes::from_static(&[0xff])).is_ok());
    }
}
