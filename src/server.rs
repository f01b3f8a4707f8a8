//! The standalone server: native gRPC (HTTP/2) and gRPC-Web (HTTP/1.1) on
//! one port, with CORS, health checking and reflection.

use crate::guard::RequestGuardLayer;
use crate::pb::payment_service_server::PaymentServiceServer;
use crate::service::PaymentApi;
use axum::serve::ListenerExt as _;
use http::{HeaderName, HeaderValue, Method};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(3600);

/// The payment service plus the standard health and reflection services.
pub async fn routes(api: PaymentApi) -> Result<Routes, Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<PaymentServiceServer<PaymentApi>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Ok(Routes::new(PaymentServiceServer::new(api))
        .add_service(health)
        .add_service(reflection))
}

/// CORS for gRPC-Web browsers. `origins` is a comma-separated list, or `*`.
pub fn cors(origins: &str) -> CorsLayer {
    let allow_origin = if origins.trim() == "*" {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(names(&[
            "content-type",
            "x-grpc-web",
            "x-user-agent",
            "grpc-timeout",
            "authorization",
        ]))
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
        ]))
        .max_age(CORS_MAX_AGE)
}

/// The HTTP service both entry points run: CORS, then gRPC-Web translation,
/// then the request guard, then the gRPC routes.
pub async fn http_service(
    api: PaymentApi,
    cors_origins: &str,
) -> Result<HttpService, Box<dyn std::error::Error + Send + Sync>> {
    Ok(tower::ServiceBuilder::new()
        .layer(cors(cors_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(RequestGuardLayer)
        .service(routes(api).await?.prepare().into_axum_router()))
}

/// The type of [`http_service`].
pub type HttpService =
    tower_http::cors::Cors<tonic_web::GrpcWebService<crate::guard::RequestGuard<axum::Router>>>;

/// Serves until `shutdown` completes, then drains in-flight calls.
///
/// HTTP/1.1 and HTTP/2 are told apart per connection (axum's server on
/// hyper), so native gRPC and gRPC-Web share the port. tonic's own
/// `transport::Server` is not used because it answers an expired
/// `grpc-timeout` with CANCELLED before the service can say
/// DEADLINE_EXCEEDED; the service enforces deadlines itself, the same way
/// under the server and the Lambda.
///
/// Every accepted socket gets TCP_NODELAY, which axum::serve does not set:
/// without it a server-streamed reply's last frames wait (Nagle) for the
/// ACK of its first, which the client delays by about 40 ms.
pub async fn serve(
    listener: TcpListener,
    api: PaymentApi,
    cors_origins: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    serve_limited(listener, api, cors_origins, None, shutdown).await
}

/// [`serve`], answering at most `concurrency` calls at a time when given;
/// the others wait their turn. With 1 it serves like one Lambda container,
/// one request at a time (the benchmark's container shape). A streamed call
/// holds its turn until its reply starts, not until its stream ends.
pub async fn serve_limited(
    listener: TcpListener,
    api: PaymentApi,
    cors_origins: &str,
    concurrency: Option<usize>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = tower::ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(axum::body::Body::new))
        .option_layer(concurrency.map(tower::limit::ConcurrencyLimitLayer::new))
        .service(http_service(api, cors_origins).await?);
    let listener = listener.tap_io(|socket| {
        if let Err(err) = socket.set_nodelay(true) {
            tracing::warn!(%err, "cannot set TCP_NODELAY on an accepted connection");
        }
    });
    axum::serve(listener, tower::make::Shared::new(service))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
