//! Connecting to the service as a client, natively (HTTP/2 gRPC) or over
//! gRPC-Web (HTTP/1.1, as browsers and API Gateway speak it). Used by the
//! CLI, the benchmark and the tests.

use crate::pb::payment_service_client::PaymentServiceClient;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::body::Body;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_web::{GrpcWebCall, GrpcWebClientLayer, GrpcWebClientService};

/// Time to open a connection to the service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC-Web transport over HTTP/1.1 (with TLS for https endpoints).
pub type GrpcWebTransport = GrpcWebClientService<
    NotGrpcAsStatus<
        HttpClient<
            hyper_rustls::HttpsConnector<HttpConnector<LocalhostResolver>>,
            GrpcWebCall<Body>,
        >,
    >,
>;

/// Most of an answer that is not gRPC-Web that is read, to quote it.
pub const NOT_GRPC_BODY_MAX: usize = 1024;
/// Longest wait for such an answer's body.
const NOT_GRPC_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Turns an HTTP answer that is not gRPC-Web (API Gateway's own `401
/// {"message":"Unauthorized"}`, a proxy's 502 page) into the gRPC status the
/// gRPC spec maps its HTTP status to (doc/http-grpc-status-mapping.md:
/// 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
/// UNIMPLEMENTED, 429/502/503/504 UNAVAILABLE, else UNKNOWN), with the
/// HTTP status and the start of the body in its message. Without it, the
/// gRPC-Web decoder reads the body as frames and fails with INTERNAL.
#[derive(Clone, Debug)]
pub struct NotGrpcAsStatus<S>(S);

/// The gRPC code of an HTTP status that came without a gRPC status.
pub fn code_of_http_status(status: http::StatusCode) -> tonic::Code {
    match status.as_u16() {
        400 => tonic::Code::Internal,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::Unimplemented,
        429 | 502 | 503 | 504 => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for NotGrpcAsStatus<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let response = answer.await?;
            let content_type = response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let is_grpc = content_type.starts_with("application/grpc");
            if is_grpc || response.headers().contains_key("grpc-status") {
                return Ok(response.map(Body::new));
            }
            let http_status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), NOT_GRPC_BODY_MAX);
            let text = match tokio::time::timeout(
                NOT_GRPC_BODY_TIMEOUT,
                http_body_util::BodyExt::collect(body),
            )
            .await
            {
                Ok(Ok(collected)) => String::from_utf8_lossy(&collected.to_bytes())
                    .trim()
                    .to_owned(),
                _ => String::new(),
            };
            let code = if http_status == http::StatusCode::OK {
                tonic::Code::Unknown
            } else {
                code_of_http_status(http_status)
            };
            let what = if content_type.is_empty() {
                "no content type".to_owned()
            } else {
                content_type
            };
            let mut message =
                format!("the endpoint answered HTTP {http_status} ({what}), not gRPC-Web");
            if !text.is_empty() {
                message.push_str(&format!(": {text}"));
            }
            Ok(tonic::Status::new(code, message).into_http())
        })
    }
}

/// The system's resolver, except that `localhost` and every name under it
/// are the loopback address, as RFC 6761 (6.3) has it and browsers do.
/// glibc leaves `*.localhost` to DNS, which does not know them; the local
/// AWS emulator of `make cloud` serves an API at
/// `http://<api-id>.execute-api.localhost:<port>`.
#[derive(Clone, Debug)]
pub struct LocalhostResolver(GaiResolver);

impl Default for LocalhostResolver {
    fn default() -> Self {
        Self(GaiResolver::new())
    }
}

impl tower::Service<Name> for LocalhostResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        if host == "localhost" || host.ends_with(".localhost") {
            let loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
            return Box::pin(async move { Ok(vec![loopback].into_iter()) });
        }
        let lookup = self.0.call(name);
        Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
    }
}

/// Parses an endpoint URL; a path (such as `/lambda-url/payment-lambda`)
/// becomes the prefix of every call's path.
pub fn endpoint_uri(endpoint: &str) -> Result<http::Uri, BoxError> {
    let uri: http::Uri = endpoint.trim_end_matches('/').parse()?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(format!("endpoint {endpoint:?} must be an http:// or https:// URL").into()),
    }
}

/// A native gRPC client (HTTP/2; TLS with the system's roots for https).
pub async fn connect_grpc(endpoint: &str) -> Result<PaymentServiceClient<Channel>, BoxError> {
    Ok(PaymentServiceClient::new(connect_channel(endpoint).await?))
}

/// The HTTP/2 channel of [`connect_grpc`].
pub async fn connect_channel(endpoint: &str) -> Result<Channel, BoxError> {
    let uri = endpoint_uri(endpoint)?;
    let mut builder = Endpoint::from(uri.clone()).connect_timeout(CONNECT_TIMEOUT);
    if uri.scheme_str() == Some("https") {
        builder = builder.tls_config(ClientTlsConfig::new().with_native_roots())?;
    }
    Ok(builder.connect().await?)
}

/// A gRPC-Web client (binary `application/grpc-web+proto`) over HTTP/1.1.
pub fn connect_grpc_web(
    endpoint: &str,
) -> Result<PaymentServiceClient<GrpcWebTransport>, BoxError> {
    let uri = endpoint_uri(endpoint)?;
    Ok(PaymentServiceClient::with_origin(
        grpc_web_transport()?,
        uri,
    ))
}

/// The HTTP/1.1 transport of [`connect_grpc_web`] (https or http).
pub fn grpc_web_transport() -> Result<GrpcWebTransport, BoxError> {
    let mut http = HttpConnector::new_with_resolver(LocalhostResolver::default());
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let http = HttpClient::builder(TokioExecutor::new()).build(https);
    Ok(GrpcWebClientLayer::new().layer(NotGrpcAsStatus(http)))
}

use tower::Layer as _;
