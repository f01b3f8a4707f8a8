//! The standalone server: native gRPC (HTTP/2) and gRPC-Web (HTTP/1.1) on
//! one port, over the HTTP stack of [`crate::stack`].

use crate::service::PaymentApi;
use crate::stack::http_service;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

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
    // Told before the drain, so that open watches end with their resume
    // token rather than hold the drain for up to their bound.
    let (stopping, stop_watches) = tokio::sync::watch::channel(false);
    let api = api.with_shutdown(stop_watches);
    let service = tower::ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(axum::body::Body::new))
        // Stamped before the queue, so a deadline counts the wait in it.
        .map_request(|mut request: http::Request<_>| {
            request
                .extensions_mut()
                .insert(crate::service::Arrived(tokio::time::Instant::now()));
            let transport = crate::telemetry::Transport::of_http(request.headers());
            request.extensions_mut().insert(transport);
            request
        })
        .option_layer(concurrency.map(tower::limit::ConcurrencyLimitLayer::new))
        .service(http_service(api, cors_origins).await?);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    // Out of descriptors or a connection reset before it was
                    // accepted: the listener itself is fine; back off briefly.
                    tracing::warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(err) = socket.set_nodelay(true) {
            tracing::warn!(%err, "cannot set TCP_NODELAY on an accepted connection");
        }
        let service = hyper_util::service::TowerToHyperService::new(service.clone().map_request(
            |request: http::Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
        ));
        let executor = crate::connection::ConnectionExecutor::default();
        let builder = hyper_util::server::conn::auto::Builder::new(executor.clone());
        let connection = builder
            .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = crate::connection::drive(executor, connection).await {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// How long the server waits after a failed accept before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
