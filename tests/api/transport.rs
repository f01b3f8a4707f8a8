//! The transports: gRPC-Web (binary and text) on the same port as native
//! gRPC, malformed bodies, CORS, health and reflection.

use crate::harness::TestApp;
use crate::helpers::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use payment::pb;
use prost::Message;
use std::time::{Duration, Instant};
use tonic::Code;

/// A gRPC-Web reply split into its messages and trailers.
#[derive(Debug, Default)]
pub struct WebReply {
    pub http_status: u16,
    pub headers: http::HeaderMap,
    pub messages: Vec<Bytes>,
    pub trailers: Vec<(String, String)>,
}

impl WebReply {
    /// grpc-status from the trailer frame, or from the headers of a
    /// trailers-only reply.
    pub fn grpc_status(&self) -> Option<String> {
        self.trailers
            .iter()
            .find(|(k, _)| k == "grpc-status")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                self.headers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
    }
    /// The grpc-status, or "" when there is none.
    pub fn code(&self) -> String {
        self.grpc_status().unwrap_or_default()
    }

    pub fn grpc_message(&self) -> String {
        self.trailers
            .iter()
            .find(|(k, _)| k == "grpc-message")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                self.headers
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }
}

pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits a gRPC-Web body into data messages and the trailer frame.
pub fn parse_frames(mut body: &[u8]) -> (Vec<Bytes>, Vec<(String, String)>) {
    let (mut messages, mut trailers) = (Vec::new(), Vec::new());
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            assert!(trailers.is_empty(), "two trailer frames");
            for line in String::from_utf8_lossy(payload)
                .split("\r\n")
                .filter(|l| !l.is_empty())
            {
                let (k, v) = line.split_once(':').expect("trailer line");
                trailers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        } else {
            assert!(trailers.is_empty(), "data frame after the trailer frame");
            messages.push(Bytes::copy_from_slice(payload));
        }
        body = &body[5 + len..];
    }
    assert!(body.is_empty(), "trailing bytes after the last frame");
    (messages, trailers)
}

/// Decodes a grpc-web-text body: several padded base64 chunks, decoded one
/// by one.
pub fn decode_text_body(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).expect("text body");
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // A chunk ends after its padding, or at the end.
        let end = rest
            .find('=')
            .map(|i| i + rest[i..].chars().take_while(|c| *c == '=').count())
            .unwrap_or(rest.len());
        out.extend(B64.decode(&rest[..end]).expect("base64 chunk"));
        rest = &rest[end..];
    }
    out
}

async fn raw(
    app: &TestApp,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> WebReply {
    raw_at(&app.url(), method, path, headers, body).await
}

/// One raw HTTP/1.1 request to `base` + `path`, its reply parsed as gRPC-Web.
pub async fn raw_at(
    base: &str,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> WebReply {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .expect("HTTP/1.1 request");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    WebReply::from_parts(parts, &bytes)
}

impl WebReply {
    /// Splits a reply into messages and trailers by its content type
    /// (grpc-web-text is decoded chunk by chunk first).
    pub fn from_parts(parts: http::response::Parts, body: &[u8]) -> WebReply {
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let decoded = if content_type.starts_with("application/grpc-web-text") {
            decode_text_body(body)
        } else {
            body.to_vec()
        };
        let (messages, trailers) = if content_type.starts_with("application/grpc") {
            parse_frames(&decoded)
        } else {
            (vec![], vec![])
        };
        WebReply {
            http_status: parts.status.as_u16(),
            headers: parts.headers,
            messages,
            trailers,
        }
    }
}

/// `authorization: Bearer <token of TESTER, an admin>`.
static TESTER_AUTH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "Bearer {}",
        crate::harness::token(crate::harness::TESTER, true)
    )
});

static WEB_HEADERS: std::sync::LazyLock<[(&str, &str); 3]> = std::sync::LazyLock::new(|| {
    [
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("authorization", TESTER_AUTH.as_str()),
    ]
});
const BALANCE: &str = "/payment.v1.PaymentService/GetAccountBalance";
const HISTORY: &str = "/payment.v1.PaymentService/GetTransactionHistory";

#[tokio::test]
async fn grpc_web_client_makes_every_call() {
    let app = TestApp::spawn().await;
    let mut web = app.grpc_web();
    let (a, b) = (unique("a"), unique("b"));
    for (id, initial) in [(&a, 5_000), (&b, 0)] {
        web.add_account(pb::AddAccountRequest {
            account_id: id.clone(),
            display_name: "web".into(),
            currency: "EUR".into(),
            initial_balance: initial,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for i in 0..3 {
        web.make_payment(order(&format!("w{i}"), &a, &b, 100))
            .await
            .unwrap();
    }
    let account = web
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: a.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(account.balance, 4_700);
    // A streamed reply whose messages and trailer arrive together: every
    // message and then a clean end (regression guard for lost trailers).
    let mut stream = web
        .get_transaction_history(pb::GetTransactionHistoryRequest {
            account_id: a.clone(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    while let Some(entry) = stream.message().await.unwrap() {
        sequences.push(entry.sequence);
    }
    assert_eq!(sequences, vec![4, 3, 2, 1]);
    let status = web
        .get_account_balance(pb::GetAccountBalanceRequest {
            account_id: unique("ghost"),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = web
        .make_payment(order("w9", &a, &b, 1_000_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("insufficient funds"));
}

#[tokio::test]
async fn grpc_web_text_replies_decode_chunk_by_chunk() {
    let app = TestApp::spawn().await;
    let mut c = app.grpc().await;
    let (a, b) = (unique("a"), unique("b"));
    add(&mut c, &a, "EUR", 1_000).await.unwrap();
    add(&mut c, &b, "EUR", 0).await.unwrap();
    pay(&mut c, order("t1", &a, &b, 10)).await.unwrap();
    let text = [
        ("content-type", "application/grpc-web-text"),
        ("accept", "application/grpc-web-text"),
        ("x-grpc-web", "1"),
        ("authorization", TESTER_AUTH.as_str()),
    ];
    let request = pb::GetTransactionHistoryRequest {
        account_id: a.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let body = B64.encode(frame(&request.encode_to_vec())).into_bytes();
    let reply = raw(&app, http::Method::POST, HISTORY, &text, body).await;
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        reply.grpc_status().as_deref(),
        Some("0"),
        "{}",
        reply.grpc_message()
    );
    let entries: Vec<_> = reply
        .messages
        .iter()
        .map(|m| pb::GetTransactionHistoryResponse::decode(m.clone()).unwrap())
        .collect();
    assert_eq!(
        entries.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![2, 1]
    );

    let request = pb::GetAccountBalanceRequest {
        account_id: b.clone(),
    };
    let body = B64.encode(frame(&request.encode_to_vec())).into_bytes();
    let reply = raw(&app, http::Method::POST, BALANCE, &text, body).await;
    let account = pb::GetAccountBalanceResponse::decode(reply.messages[0].clone())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(account.balance, 10);
}

#[tokio::test]
async fn malformed_grpc_web_requests_get_a_clear_status_never_internal() {
    let web: &[(&str, &str)] = &*WEB_HEADERS;
    let app = TestApp::spawn().await;
    let valid = frame(
        &pb::GetAccountBalanceRequest {
            account_id: "a".into(),
        }
        .encode_to_vec(),
    );
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() - 1);
    let mut two_messages = valid.clone();
    two_messages.extend_from_slice(&valid);
    let text = [
        ("content-type", "application/grpc-web-text"),
        ("x-grpc-web", "1"),
    ];
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<u8>, &'a str);
    let cases: Vec<Case> = vec![
        ("empty body", web, vec![], "3"),
        ("short header", web, vec![0, 0, 0], "3"),
        ("truncated message", web, truncated, "3"),
        ("two messages for a unary call", web, two_messages, "3"),
        ("not protobuf", web, frame(&[0x0f, 0xff, 0xff]), "3"),
        (
            "invalid UTF-8 in a string",
            web,
            frame(&[0x0a, 0x02, 0xff, 0xfe]),
            "3",
        ),
        (
            "compressed flag",
            web,
            {
                let mut f = valid.clone();
                f[0] = 1;
                f
            },
            "12",
        ),
        (
            "unknown flag",
            web,
            {
                let mut f = valid.clone();
                f[0] = 0x40;
                f
            },
            "3",
        ),
        ("oversized", web, frame(&vec![b'a'; 100_000]), "8"),
        ("invalid base64", &text, b"!!!not base64!!!".to_vec(), "3"),
    ];
    for (name, headers, body, expected) in cases {
        let reply = raw(&app, http::Method::POST, BALANCE, headers, body).await;
        assert_eq!(reply.http_status, 200, "{name}");
        assert_eq!(
            reply.grpc_status().as_deref(),
            Some(expected),
            "{name}: {}",
            reply.grpc_message()
        );
        assert!(!reply.grpc_message().is_empty(), "{name}: no message");
    }
    // Not gRPC at all: plain HTTP errors.
    let json = raw(
        &app,
        http::Method::POST,
        BALANCE,
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    // tonic-web answers 400 to HTTP/1.1 that is not gRPC-Web; the guard 415 over HTTP/2.
    assert!(
        json.http_status == 400 || json.http_status == 415,
        "JSON answered {}",
        json.http_status
    );
    let get = raw(&app, http::Method::GET, BALANCE, &[], vec![]).await;
    assert!(
        (400..500).contains(&get.http_status),
        "GET answered {}",
        get.http_status
    );
    // Unknown method: UNIMPLEMENTED.
    let unknown = raw(
        &app,
        http::Method::POST,
        "/payment.v1.PaymentService/Steal",
        web,
        valid.clone(),
    )
    .await;
    assert_eq!(unknown.grpc_status().as_deref(), Some("12"));
    // The server is still fine.
    let ok = raw(&app, http::Method::POST, BALANCE, web, valid).await;
    assert_eq!(
        ok.grpc_status().as_deref(),
        Some("5"),
        "{}",
        ok.grpc_message()
    );
}

#[tokio::test]
async fn cors_preflight_allows_grpc_web_headers() {
    let app = TestApp::spawn().await;
    let reply = raw(
        &app,
        http::Method::OPTIONS,
        BALANCE,
        &[
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent,authorization",
            ),
        ],
        vec![],
    )
    .await;
    assert_eq!(reply.http_status, 200);
    let header = |name: &str| {
        reply
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), "*");
    for h in [
        "content-type",
        "x-grpc-web",
        "authorization",
        "grpc-timeout",
    ] {
        assert!(header("access-control-allow-headers").contains(h), "{h}");
    }
    let actual = raw(
        &app,
        http::Method::POST,
        BALANCE,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("origin", "http://localhost:5173"),
        ],
        frame(
            &pb::GetAccountBalanceRequest {
                account_id: "nobody".into(),
            }
            .encode_to_vec(),
        ),
    )
    .await;
    let exposed = actual
        .headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("grpc-message"),
        "{exposed}"
    );
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let app = TestApp::spawn().await;
    let channel = tonic::transport::Endpoint::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "payment.v1.PaymentService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"payment.v1.PaymentService"), "{names:?}");
}

/// A server-streamed call is not held up by the client's delayed ACK.
/// Without TCP_NODELAY on the accepted socket, the reply's headers go out
/// when the handler returns, and the entries and trailers written after the
/// Query then wait (Nagle) for the ACK of the headers, which the client
/// delays by up to 40 ms: a quiet machine measures 45-55 ms per streamed
/// call in a debug build, against a few ms with nodelay.
///
/// The stream costs a GetItem (the account) and a Query (the entries). Each
/// round times, on one connection, a unary GetAccountBalance (the same
/// GetItem through the whole stack), the same Query issued directly by the
/// ledger, and the streamed call. What the stream takes beyond the other two
/// is its own overhead (a few ms) or the stall. Comparing that excess rather
/// than the raw latency keeps the test from failing on a loaded machine,
/// where a debug build's DynamoDB Local calls alone take 10-40 ms. The stall
/// also shrinks there (the Query uses up part of the 40 ms), so a very loaded
/// machine may not see it: [`accepted_connections_have_tcp_nodelay`] checks
/// the socket option itself.
#[tokio::test]
async fn streamed_history_is_not_held_up_by_delayed_ack() {
    const ROUNDS: usize = 20;
    const STALL_FREE_EXCESS: Duration = Duration::from_millis(20);
    let app = TestApp::spawn().await;
    let mut client = app.grpc().await;
    let (a, b) = (unique("nodelay-a"), unique("nodelay-b"));
    add(&mut client, &a, "EUR", 10_000).await.unwrap();
    add(&mut client, &b, "EUR", 0).await.unwrap();
    for n in 0..3 {
        pay(
            &mut client,
            order(&unique(&format!("nodelay-{n}")), &a, &b, 100),
        )
        .await
        .unwrap();
    }
    let account = payment::domain::AccountId::parse("account_id", &a).unwrap();
    // One untimed round, so the connection and DynamoDB Local are warm.
    let entries = history_page(&mut client, &a, 50, "").await.unwrap().len();
    assert!(entries >= 3, "{entries} history entries");
    let (mut streamed, mut excess) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let started = Instant::now();
        balance(&mut client, &a).await.unwrap();
        let unary = started.elapsed();
        let snapshot = app.ledger.get_account(&account).await.unwrap();
        let started = Instant::now();
        let mut cursor = payment::ledger::HistoryCursor::new(&snapshot, None).unwrap();
        let mut direct = 0;
        while cursor.next(&app.ledger, 50).await.unwrap().is_some() {
            direct += 1;
        }
        let query = started.elapsed();
        assert_eq!(direct, entries);
        let started = Instant::now();
        let page = history_page(&mut client, &a, 50, "").await.unwrap();
        let stream = started.elapsed();
        assert_eq!(page.len(), entries);
        streamed.push(stream);
        excess.push(stream.saturating_sub(unary + query));
    }
    streamed.sort();
    excess.sort();
    let median = excess[ROUNDS / 2];
    assert!(
        median < STALL_FREE_EXCESS,
        "a streamed GetTransactionHistory took a median {median:?} more than its GetItem and \
         Query (streamed calls: {streamed:?}); 40+ ms is the delayed-ACK stall of a socket \
         without TCP_NODELAY"
    );
}

/// Every connection the server accepts has TCP_NODELAY set (read back from
/// the server's own sockets, in this process): the same property as
/// [`streamed_history_is_not_held_up_by_delayed_ack`], without timing.
#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    let app = TestApp::spawn().await;
    let mut native = app.grpc().await;
    let mut web = app.grpc_web();
    for client_result in [
        native
            .get_account_balance(pb::GetAccountBalanceRequest {
                account_id: unique("missing"),
            })
            .await
            .map(drop),
        web.get_account_balance(pb::GetAccountBalanceRequest {
            account_id: unique("missing"),
        })
        .await
        .map(drop),
    ] {
        assert_eq!(client_result.unwrap_err().code(), Code::NotFound);
    }
    let accepted = server_sockets(app.addr);
    assert!(
        accepted.len() >= 2,
        "expected the native and the gRPC-Web connection, found {accepted:?}"
    );
    for (fd, nodelay) in accepted {
        assert!(nodelay, "accepted socket fd {fd} has no TCP_NODELAY");
    }
}

/// This process's connected TCP sockets whose local address is `server`
/// (the server's side of its accepted connections), each with whether
/// TCP_NODELAY is set.
fn server_sockets(server: std::net::SocketAddr) -> Vec<(i32, bool)> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
        let Ok(fd) = entry
            .expect("fd entry")
            .file_name()
            .to_string_lossy()
            .parse::<i32>()
        else {
            continue;
        };
        let is_socket = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: the fd is open in this process for the duration of this
        // loop body (the server keeps its connections open); we only read
        // socket options and addresses, never close it.
        let socket = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(socket) = socket.try_clone_to_owned() else {
            continue; // closed meanwhile
        };
        let std_socket = std::net::TcpStream::from(socket);
        let (Ok(local), Ok(_peer)) = (std_socket.local_addr(), std_socket.peer_addr()) else {
            continue; // not a connected TCP socket (a listener, a Unix socket)
        };
        if local != server {
            continue;
        }
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a c_int of the stated length.
        let rc = unsafe {
            libc::getsockopt(
                std_socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut value).cast(),
                &raw mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt TCP_NODELAY on fd {fd}");
        found.push((fd, value != 0));
    }
    found
}

/// An HTTP/1.1 endpoint that answers every request with `raw`, as an API
/// gateway or a proxy does before any gRPC service is reached.
async fn answering(raw: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = vec![0u8; 64 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut request)).await;
            let _ = socket.write_all(raw.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (url, task)
}

#[tokio::test]
async fn an_answer_that_is_not_grpc_web_reads_as_the_status_its_http_status_maps_to() {
    for (raw, code, needle) in [
        (
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 26\r\nconnection: close\r\n\r\n{\"message\":\"Unauthorized\"}",
            Code::Unauthenticated,
            "HTTP 401 Unauthorized (application/json), not gRPC-Web: {\"message\":\"Unauthorized\"}",
        ),
        (
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<h1>502</h1>\n",
            Code::Unavailable,
            "HTTP 502 Bad Gateway (text/html), not gRPC-Web: <h1>502</h1>",
        ),
        (
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            Code::Unimplemented,
            "HTTP 404 Not Found (no content type), not gRPC-Web",
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 6\r\nconnection: close\r\n\r\n<html>",
            Code::Unknown,
            "HTTP 200 OK (text/html), not gRPC-Web: <html>",
        ),
    ] {
        let (url, server) = answering(raw).await;
        let mut client = payment::client::connect_grpc_web(&url).unwrap();
        let status = client
            .get_account_balance(pb::GetAccountBalanceRequest {
                account_id: "a".into(),
            })
            .await
            .expect_err("not a gRPC answer");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(needle), "{status:?}");
        server.abort();
    }
}
