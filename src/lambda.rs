//! The Lambda entry point's adapter: API Gateway HTTP API (payload format
//! 2.0) and function URL events go through the same HTTP service as the
//! standalone server (CORS, gRPC-Web, guard, tonic routes); the reply is
//! buffered into one body, as a buffered API Gateway integration returns it.
//!
//! The event is converted to an `http::Request` here, not by lambda_http:
//! lambda_http 1.3 panics while converting three shapes of event before any
//! handler runs (a Host that is not a valid host, a rawQueryString a URI
//! cannot hold, `isBase64Encoded` with a body that is not base64), which
//! fails the invocation and makes API Gateway answer 500. Here the function
//! takes the raw event as JSON and every conversion failure is an HTTP 400
//! carrying an INVALID_ARGUMENT status that names the field.

use crate::auth::AuthorizerClaims;
use crate::error::ServiceError;
use crate::stack::HttpService;
pub use crate::telemetry::Invocation;
use crate::telemetry::Transport;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body as EventBody;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

/// How much of an offending value a rejection quotes, in characters.
const QUOTED_CHARS_MAX: usize = 64;

/// Why an event could not become an HTTP request. Each names the field.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event is not an API Gateway HTTP API (payload format 2.0) event: {0}")]
    Shape(#[source] serde_json::Error),
    #[error("the host header (or requestContext.domainName) {0:?} is not a valid host")]
    Host(String),
    #[error("rawPath {0:?} is not a valid URI path")]
    Path(String),
    #[error("rawQueryString {0:?} is not a valid URI query")]
    Query(String),
    #[error("the body is flagged isBase64Encoded but is not base64: {0}")]
    Base64(#[source] base64::DecodeError),
}

/// Handles one invocation: the raw event in, API Gateway's response out.
/// Never fails and never panics on input: every problem becomes an HTTP 4xx
/// or a gRPC status in the reply.
pub async fn handle_event(
    service: HttpService,
    event: serde_json::Value,
) -> ApiGatewayV2httpResponse {
    handle_invocation(service, event, Invocation::default()).await
}

/// [`handle_event`] for the Lambda invocation `invocation`, whose request
/// and trace ids go into the call's record (`crate::telemetry`).
pub async fn handle_invocation(
    service: HttpService,
    event: serde_json::Value,
    invocation: Invocation,
) -> ApiGatewayV2httpResponse {
    let response = match request_from_event(event) {
        Ok(mut request) => {
            request.extensions_mut().insert(Transport::Lambda);
            request.extensions_mut().insert(invocation);
            handle(service, request).await
        }
        Err(err) => {
            tracing::info!(error = %err, "event rejected before conversion");
            rejection(&err)
        }
    };
    api_gateway_response(response)
}

/// The event as the HTTP request API Gateway received, with the JWT
/// authorizer's claims (from the request context, never from headers or the
/// body) as an [`AuthorizerClaims`] extension.
pub fn request_from_event(
    event: serde_json::Value,
) -> Result<http::Request<Full<Bytes>>, EventError> {
    let event: ApiGatewayV2httpRequest =
        serde_json::from_value(event).map_err(EventError::Shape)?;
    let uri = uri_of(&event)?;
    let body = match (&event.body, event.is_base64_encoded) {
        (None, _) => Bytes::new(),
        (Some(body), true) => Bytes::from(BASE64.decode(body).map_err(EventError::Base64)?),
        (Some(body), false) => Bytes::from(body.clone().into_bytes()),
    };
    let mut headers = event.headers;
    if let Some(cookies) = &event.cookies {
        // API Gateway v2 passes cookies apart from the headers.
        if let Ok(value) = HeaderValue::from_str(&cookies.join("; ")) {
            headers.insert(header::COOKIE, value);
        }
    }
    let mut request = http::Request::new(Full::new(body));
    *request.method_mut() = event.request_context.http.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let claims = event
        .request_context
        .authorizer
        .and_then(|authorizer| authorizer.jwt)
        .map(|jwt| AuthorizerClaims(jwt.claims));
    if let Some(claims) = claims {
        request.extensions_mut().insert(claims);
    }
    Ok(request)
}

/// `https://<host><rawPath>?<rawQueryString>`, each part checked. The path
/// is rawPath as API Gateway passes it (with the `$default` stage it holds
/// no stage prefix).
fn uri_of(event: &ApiGatewayV2httpRequest) -> Result<http::Uri, EventError> {
    let path = match event.raw_path.as_deref() {
        None | Some("") => "/",
        Some(path) => path,
    };
    let path_ok = path.starts_with('/')
        && http::uri::PathAndQuery::try_from(path)
            .is_ok_and(|parsed| parsed.path() == path && parsed.query().is_none());
    if !path_ok {
        return Err(EventError::Path(quoted(path)));
    }
    let path_and_query = match event.raw_query_string.as_deref() {
        None | Some("") => path.to_owned(),
        Some(query) => {
            let joined = format!("{path}?{query}");
            let query_ok = http::uri::PathAndQuery::try_from(joined.as_str())
                .is_ok_and(|parsed| parsed.query() == Some(query));
            if !query_ok {
                return Err(EventError::Query(quoted(query)));
            }
            joined
        }
    };
    let host =
        match event.headers.get(header::HOST) {
            Some(value) => Some(value.to_str().map_err(|_| {
                EventError::Host(quoted(&String::from_utf8_lossy(value.as_bytes())))
            })?),
            None => event.request_context.domain_name.as_deref(),
        };
    let mut uri = http::Uri::builder();
    if let Some(host) = host {
        // A host is `name[:port]`: no user information, nothing else.
        let authority = http::uri::Authority::try_from(host)
            .ok()
            .filter(|a| a.as_str() == host && !host.contains('@') && !host.is_empty())
            .ok_or_else(|| EventError::Host(quoted(host)))?;
        let scheme = match event.headers.get("x-forwarded-proto").map(|v| v.as_bytes()) {
            Some(b"http") => http::uri::Scheme::HTTP,
            _ => http::uri::Scheme::HTTPS,
        };
        uri = uri.scheme(scheme).authority(authority);
    }
    uri.path_and_query(path_and_query)
        .build()
        .map_err(|_| EventError::Path(quoted(path)))
}

/// The start of `value`, for an error message.
fn quoted(value: &str) -> String {
    if value.chars().count() <= QUOTED_CHARS_MAX {
        value.to_owned()
    } else {
        let mut start: String = value.chars().take(QUOTED_CHARS_MAX).collect();
        start.push('…');
        start
    }
}

/// HTTP 400 with an INVALID_ARGUMENT status in its headers (a trailers-only
/// gRPC-Web reply), so that a gRPC-Web client reads the reason and a plain
/// HTTP client sees a client error.
fn rejection(err: &EventError) -> http::Response<Bytes> {
    let mut response =
        tonic::Status::from(ServiceError::MalformedEvent(err.to_string())).into_http::<Bytes>();
    *response.status_mut() = http::StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc-web+proto"),
    );
    response
}

/// Runs `request` through the HTTP service and collects the whole reply.
pub async fn handle(
    service: HttpService,
    request: http::Request<Full<Bytes>>,
) -> http::Response<Bytes> {
    let response = match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => http::Response::from_parts(parts, collected.to_bytes()),
        Err(err) => {
            // Not seen in practice (tonic turns failures into trailers), but
            // a body error must not become a 5xx from the function.
            tracing::error!(error = %err, "response body failed");
            tonic::Status::from(ServiceError::ReplyFailed).into_http::<Bytes>()
        }
    }
}

/// The reply as API Gateway's payload format 2.0 response: the body
/// base64-encoded, repeated headers joined with commas (the format has one
/// value per name), `set-cookie` in `cookies`.
pub fn api_gateway_response(response: http::Response<Bytes>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if name == header::SET_COOKIE {
            cookies.extend(values.into_iter().map(str::to_owned));
        } else if values.is_empty() {
            tracing::warn!(header = %name, "a reply header that is not ASCII was dropped");
        } else if let Ok(value) = HeaderValue::from_str(&values.join(", ")) {
            headers.insert(name.clone(), value);
        }
    }
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = headers;
    out.multi_value_headers = HeaderMap::new();
    out.cookies = cookies;
    if body.is_empty() {
        out.body = None;
        out.is_base64_encoded = false;
    } else {
        out.body = Some(EventBody::Binary(body.to_vec()));
        out.is_base64_encoded = true;
    }
    out
}
