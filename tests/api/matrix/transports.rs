//! The five ways a case reaches the service: native gRPC (raw HTTP/2),
//! gRPC-Web binary and text (raw HTTP/1.1) to the server, and the Lambda
//! handler with both gRPC-Web encodings (API Gateway events), each with the
//! ledger behind it. A case becomes one HTTP request here, and its reply a
//! [`WebReply`] (helpers/grpc_web.rs splits every encoding the same way).

use super::table::{Body, Case, Http, SERVICE};
use crate::harness::{TESTER, TestApp, fresh_ledger, token};
use crate::helpers::grpc_web::{self, WebReply, frame, text_body};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use payment::ledger::Ledger;
use payment::pb;
use payment::stack::HttpService;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    /// application/grpc over HTTP/2 to the server.
    Native,
    /// application/grpc-web+proto over HTTP/1.1 to the server.
    WebBinary,
    /// application/grpc-web-text over HTTP/1.1 to the server.
    WebText,
    /// An API Gateway event with a gRPC-Web binary body, to the handler.
    LambdaBinary,
    /// An API Gateway event with a gRPC-Web text body, to the handler.
    LambdaText,
}

impl Transport {
    pub(super) const ALL: [Transport; 5] = [
        Transport::Native,
        Transport::WebBinary,
        Transport::WebText,
        Transport::LambdaBinary,
        Transport::LambdaText,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Transport::Native => "native gRPC (HTTP/2)",
            Transport::WebBinary => "gRPC-Web binary (HTTP/1.1)",
            Transport::WebText => "gRPC-Web text (HTTP/1.1)",
            Transport::LambdaBinary => "Lambda handler, gRPC-Web binary",
            Transport::LambdaText => "Lambda handler, gRPC-Web text",
        }
    }
    pub(super) fn text(self) -> bool {
        matches!(self, Transport::WebText | Transport::LambdaText)
    }
    fn lambda(self) -> bool {
        matches!(self, Transport::LambdaBinary | Transport::LambdaText)
    }
    fn grpc_content_type(self) -> &'static str {
        match self {
            Transport::Native => "application/grpc",
            Transport::WebBinary | Transport::LambdaBinary => grpc_web::BINARY,
            Transport::WebText | Transport::LambdaText => grpc_web::TEXT,
        }
    }
}

/// Where the requests of one transport go, with the ledger behind it.
pub(super) struct Target {
    pub(super) transport: Transport,
    pub(super) ledger: Ledger,
    /// The server, for the server transports.
    pub(super) app: Option<TestApp>,
    /// The handler's service, for the Lambda transports.
    lambda: Option<HttpService>,
}

/// The HTTP parts of one request, before the transport encodes it.
pub(super) struct Outgoing<'a> {
    method: http::Method,
    path: String,
    /// None: no content-type header at all.
    content_type: Option<&'a str>,
    extra: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
}

impl Target {
    pub(super) async fn new(transport: Transport) -> Target {
        if transport.lambda() {
            let ledger = fresh_ledger().await;
            let lambda = payment::stack::http_service(
                payment::service::PaymentApi::new(
                    ledger.clone(),
                    payment::auth::Authenticator::ApiGateway,
                ),
                "*",
            )
            .await
            .expect("http service");
            Target {
                transport,
                ledger,
                app: None,
                lambda: Some(lambda),
            }
        } else {
            let app = TestApp::spawn().await;
            Target {
                transport,
                ledger: app.ledger.clone(),
                app: Some(app),
                lambda: None,
            }
        }
    }

    pub(super) async fn request(&self, out: Outgoing<'_>) -> Result<WebReply, String> {
        match (&self.app, &self.lambda) {
            (Some(app), _) => {
                let auth = format!("Bearer {}", token(TESTER, true));
                let mut headers: Vec<(&str, &str)> = vec![("authorization", &auth)];
                if let Some(ct) = out.content_type {
                    headers.push(("content-type", ct));
                }
                if self.transport == Transport::Native {
                    headers.push(("te", "trailers"));
                } else {
                    headers.push(("x-grpc-web", "1"));
                    if self.transport.text() {
                        headers.push(("accept", grpc_web::TEXT));
                    }
                }
                headers.extend(out.extra.iter().copied());
                grpc_web::send(
                    self.transport == Transport::Native,
                    &app.url(),
                    out.method,
                    &out.path,
                    &headers,
                    out.body,
                )
                .await
            }
            (None, Some(service)) => Ok(self.invoke(service, out).await),
            (None, None) => unreachable!("a target has a server or a handler"),
        }
    }

    /// Through `payment::lambda::handle`, as API Gateway would call it, with
    /// the authorizer's claims for TESTER, an admin.
    async fn invoke(&self, service: &HttpService, out: Outgoing<'_>) -> WebReply {
        let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("events/get-account-balance.json");
        let mut event: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(template).expect("event file"))
                .expect("event json");
        event["rawPath"] = out.path.clone().into();
        event["requestContext"]["http"]["path"] = out.path.clone().into();
        event["requestContext"]["http"]["method"] = out.method.as_str().into();
        event["pathParameters"]["method"] = out.path.rsplit('/').next().unwrap_or("").into();
        event["requestContext"]["authorizer"]["jwt"]["claims"] =
            serde_json::json!({"sub": TESTER, "scope": "openid payments/admin"});
        let headers = event["headers"].as_object_mut().expect("headers");
        headers.remove("authorization");
        match out.content_type {
            Some(ct) => {
                headers.insert("content-type".into(), ct.into());
            }
            None => {
                headers.remove("content-type");
            }
        }
        if self.transport.text() {
            headers.insert("accept".into(), grpc_web::TEXT.into());
        }
        for (k, v) in &out.extra {
            headers.insert((*k).into(), (*v).into());
        }
        event["body"] = B64.encode(&out.body).into();
        event["isBase64Encoded"] = true.into();
        crate::lambda::invoke(service, &event.to_string()).await
    }
}

/// The path of a case's method: the contract's, or one in the payment
/// service that does not exist ("" is a service that does not exist).
pub(super) fn path_of(method: &str) -> String {
    if method.is_empty() {
        "/other.v1.Other/Call".into()
    } else if let Some(m) = pb::METHODS.iter().find(|m| m.name == method) {
        m.path.into()
    } else {
        format!("{SERVICE}{method}")
    }
}

/// The HTTP request of `case` on `transport`.
pub(super) fn outgoing(case: &Case, transport: Transport) -> Outgoing<'static> {
    let frames = match &case.body {
        Body::Message(m) => Some(frame(m)),
        Body::Frames(f) => Some(f.clone()),
        Body::Raw(_) => None,
    };
    let body = match (&case.body, frames) {
        (Body::Raw(raw), _) => raw.clone(),
        (_, Some(f)) if transport.text() => text_body(&f),
        (_, Some(f)) => f,
        (_, None) => unreachable!(),
    };
    let mut out = Outgoing {
        method: http::Method::POST,
        path: path_of(case.method),
        content_type: Some(transport.grpc_content_type()),
        extra: vec![],
        body,
    };
    match case.http {
        Http::Grpc => {}
        Http::ContentType(ct) => out.content_type = Some(ct),
        Http::NoContentType => out.content_type = None,
        Http::Method(m) => out.method = m.parse().expect("method"),
        Http::Header(k, v) => out.extra.push((k, v)),
    }
    out
}
