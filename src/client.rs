//! Connecting to the service as a client, natively (HTTP/2 gRPC) or over
//! gRPC-Web (HTTP/1.1, as browsers and API Gateway speak it). Used by the
//! CLI, the benchmark and the tests.

use crate::pb::payment_service_client::PaymentServiceClient;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tonic::body::Body;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_web::{GrpcWebCall, GrpcWebClientLayer, GrpcWebClientService};

/// Time to open a connection to the service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A gRPC-Web transport over HTTP/1.1 (with TLS for https endpoints).
pub type GrpcWebTransport = GrpcWebClientService<
    HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, GrpcWebCall<Body>>,
>;

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
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .build();
    let http = HttpClient::builder(TokioExecutor::new()).build(https);
    Ok(GrpcWebClientLayer::new().layer(http))
}

use tower::Layer as _;
