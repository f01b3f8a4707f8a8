//! The HTTP service both entry points run (payment-server and the Lambda):
//! CORS, gRPC-Web translation, the request guard, and the gRPC routes with
//! health checking and reflection.

use crate::guard::RequestGuardLayer;
use crate::pb::payment_service_server::PaymentServiceServer;
use crate::service::PaymentApi;
use crate::settings::CORS_ORIGINS_ENV;
use futures_util::future::BoxFuture;
use http::{HeaderName, HeaderValue, Method};
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(3600);

/// The payment service plus the standard health and reflection services.
pub async fn routes(api: PaymentApi) -> Result<Routes, Box<dyn std::error::Error + Send + Sync>> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<PaymentServiceServer<PaymentApi>>()
        .await;
    // Both reflection versions: v1alpha for clients that still ask for it
    // (older grpcurl, some GUI clients), v1 for the rest (buf curl tries v1
    // first).
    Ok(Routes::new(PaymentServiceServer::new(api))
        .add_service(health)
        .add_service(OnFirstCall::new(|| reflection().build_v1()))
        .add_service(OnFirstCall::new(|| reflection().build_v1alpha())))
}

/// The reflection services' builder, over the payment and health contracts.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// A gRPC service built on its first call, once per process. Building a
/// reflection service decodes every descriptor, comments included: the two
/// versions took more than half of a Lambda's init (docs/performance.md),
/// for a service few containers are ever asked for.
struct OnFirstCall<S, F> {
    service: Arc<OnceLock<Result<S, String>>>,
    build: F,
}

impl<S, F: Clone> Clone for OnFirstCall<S, F> {
    fn clone(&self) -> Self {
        OnFirstCall {
            service: Arc::clone(&self.service),
            build: self.build.clone(),
        }
    }
}

impl<S, F> OnFirstCall<S, F> {
    fn new(build: F) -> Self {
        OnFirstCall {
            service: Arc::new(OnceLock::new()),
            build,
        }
    }
}

impl<S: NamedService, F> NamedService for OnFirstCall<S, F> {
    const NAME: &'static str = S::NAME;
}

impl<S, F, E> tower::Service<http::Request<Body>> for OnFirstCall<S, F>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    F: Fn() -> Result<S, E>,
    E: std::fmt::Display,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Ready by construction: the service is built in `call`, and the
        // ones built here (tonic's generated servers) are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let built = self
            .service
            .get_or_init(|| (self.build)().map_err(|err| err.to_string()));
        match built {
            Ok(service) => Box::pin(service.clone().oneshot(request)),
            // Not seen: the descriptors are compiled in, and a unit test
            // builds both services from them.
            Err(reason) => {
                let status = tonic::Status::unimplemented(format!(
                    "{} is not available on this server: {reason}",
                    S::NAME
                ));
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// Most origins the CORS setting may list.
pub const CORS_ORIGINS_MAX: usize = 32;

/// A CORS setting ([`crate::settings::Settings::cors_origins`]) that is not
/// a list of origins.
#[derive(Debug, thiserror::Error)]
#[error(
    "{CORS_ORIGINS_ENV}: {0:?} is not an origin; list up to {CORS_ORIGINS_MAX} origins such as https://app.example.com or http://localhost:5173, comma-separated (no path), or * for any"
)]
pub struct CorsConfigError(pub String);

/// CORS for gRPC-Web browsers: `origins` is a comma-separated list of
/// origins, or `*` for any; empty means CORS off (None: no CORS headers, and
/// preflights are not answered).
pub fn cors(origins: &str) -> Result<Option<CorsLayer>, CorsConfigError> {
    let origins = origins.trim();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins == "*" {
        AllowOrigin::any()
    } else {
        let list = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(origin)
            .collect::<Result<Vec<_>, _>>()?;
        if list.len() > CORS_ORIGINS_MAX {
            return Err(CorsConfigError(format!("{} origins", list.len())));
        }
        AllowOrigin::list(list)
    };
    let names = |list: &[&'static str]| {
        list.iter()
            .map(|h| HeaderName::from_static(h))
            .collect::<Vec<_>>()
    };
    Ok(Some(
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
            .max_age(CORS_MAX_AGE),
    ))
}

/// One origin: `http` or `https`, a host, maybe a port, nothing else, as
/// browsers send it in `Origin`.
fn origin(text: &str) -> Result<HeaderValue, CorsConfigError> {
    let invalid = || CorsConfigError(text.to_owned());
    let uri: http::Uri = text.parse().map_err(|_| invalid())?;
    let bare = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.host().is_some_and(|h| !h.is_empty())
        && uri
            .path_and_query()
            .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/")
        && !text.ends_with('/')
        && !text.contains('@');
    if !bare {
        return Err(invalid());
    }
    HeaderValue::from_str(text).map_err(|_| invalid())
}

/// The HTTP service both entry points run: CORS (when origins are
/// configured), then gRPC-Web translation, then the request guard, then the
/// gRPC routes.
pub async fn http_service(
    api: PaymentApi,
    cors_origins: &str,
) -> Result<HttpService, Box<dyn std::error::Error + Send + Sync>> {
    let guard = RequestGuardLayer::new(api.telemetry().clone());
    Ok(tower::ServiceBuilder::new()
        .option_layer(cors(cors_origins)?)
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(guard)
        .service(routes(api).await?.prepare().into_axum_router()))
}

/// The gRPC-Web stack under CORS.
pub type GrpcWebStack = tonic_web::GrpcWebService<crate::guard::RequestGuard<axum::Router>>;

/// The type of [`http_service`].
pub type HttpService = tower::util::Either<tower_http::cors::Cors<GrpcWebStack>, GrpcWebStack>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_reflection_services_build_from_the_compiled_descriptors() {
        // They are built on their first call, where a failure could only
        // answer UNIMPLEMENTED: this is where it would be caught.
        assert!(reflection().build_v1().is_ok());
        assert!(reflection().build_v1alpha().is_ok());
    }

    #[test]
    fn cors_origins_are_off_any_or_a_list_of_bare_origins() {
        assert!(cors("").unwrap().is_none());
        assert!(cors("  ").unwrap().is_none());
        assert!(cors("*").unwrap().is_some());
        assert!(
            cors("https://app.example.com, http://localhost:5173,http://127.0.0.1:5173")
                .unwrap()
                .is_some()
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?q=1",
            "ftp://app.example.com",
            "https://user@app.example.com",
            "https://a.example.com,*",
        ] {
            let err = cors(bad).unwrap_err();
            assert!(
                err.to_string().starts_with(CORS_ORIGINS_ENV),
                "{bad}: {err}"
            );
        }
        let many = vec!["https://a.example.com"; CORS_ORIGINS_MAX + 1].join(",");
        assert!(cors(&many).is_err());
    }
}
