//! The Lambda entry point's adapter: API Gateway HTTP API (payload format
//! 2.0) and function URL events, as lambda_http presents them, go through
//! the same HTTP service as the standalone server (CORS, gRPC-Web, guard,
//! tonic routes); the reply is buffered into one body, as a buffered API
//! Gateway integration returns it.

use crate::auth::AuthorizerClaims;
use crate::server::HttpService;
use bytes::Bytes;
use http_body_util::BodyExt;
use lambda_http::Body as LambdaBody;
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use std::convert::Infallible;
use tower::ServiceExt;

/// Handles one event. Never fails and never panics on input: every problem
/// becomes an HTTP 4xx or a gRPC status in the reply.
pub async fn handle(
    service: HttpService,
    mut request: lambda_http::Request,
) -> Result<http::Response<LambdaBody>, Infallible> {
    if let Some(claims) = authorizer_claims(&request) {
        request.extensions_mut().insert(claims);
    }
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => {
            let bytes: Bytes = collected.to_bytes();
            let body = if bytes.is_empty() {
                LambdaBody::Empty
            } else {
                LambdaBody::Binary(bytes.to_vec())
            };
            Ok(http::Response::from_parts(parts, body))
        }
        Err(err) => {
            // Not seen in practice (tonic turns failures into trailers), but
            // a body error must not become a 5xx from the function.
            tracing::error!(error = %err, "response body failed");
            let status = tonic::Status::unavailable("the reply could not be completed; retry");
            Ok(status.into_http::<LambdaBody>())
        }
    }
}

/// The claims an API Gateway JWT authorizer verified, from the event's
/// request context (never from headers or the body, which the caller sets).
fn authorizer_claims(request: &lambda_http::Request) -> Option<AuthorizerClaims> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => {
            let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
            Some(AuthorizerClaims(jwt.claims.clone()))
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
