//! gRPC-Web on the wire, written once for every test: a frame is a flag
//! byte, a 4-byte big-endian length and the payload (flag 0 a message, 1 a
//! compressed one, 0x80 the trailer frame, `name:value\r\n` lines);
//! grpc-web-text is the same frames in base64, which a server may send as
//! several padded chunks. Requests are framed here, raw requests sent
//! here ([`send`], [`raw_at`]), replies split here into messages and
//! trailers, and grpc-message is percent-decoded here.
//!
//! tests/contract_files.rs includes this file too (`#[path]`), to frame the
//! bodies of the events and fuzz seeds it generates.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

/// The flag of the trailer frame.
pub const TRAILERS_FLAG: u8 = 0x80;

/// The content type of binary gRPC-Web.
pub const BINARY: &str = "application/grpc-web+proto";
/// The content type of grpc-web-text.
pub const TEXT: &str = "application/grpc-web-text";

/// The headers of a gRPC-Web request: its content type and `x-grpc-web`,
/// and for grpc-web-text an `accept` that asks for a text reply.
pub fn request_headers(text: bool) -> Vec<(&'static str, &'static str)> {
    if text {
        vec![
            ("content-type", TEXT),
            ("accept", TEXT),
            ("x-grpc-web", "1"),
        ]
    } else {
        vec![("content-type", BINARY), ("x-grpc-web", "1")]
    }
}

/// The body of a gRPC-Web request of one message: its frame, in base64
/// for grpc-web-text.
pub fn request_body(message: &[u8], text: bool) -> Vec<u8> {
    let framed = frame(message);
    if text { text_body(&framed) } else { framed }
}

/// The 5-byte header of a frame with this flag, announcing `length` bytes.
pub fn frame_header(flag: u8, length: u32) -> [u8; 5] {
    let [a, b, c, d] = length.to_be_bytes();
    [flag, a, b, c, d]
}

/// The frame of one uncompressed message.
pub fn frame(message: &[u8]) -> Vec<u8> {
    frame_flagged(0, message)
}

/// A frame with this flag byte.
pub fn frame_flagged(flag: u8, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("a frame of at most 4 GiB");
    [&frame_header(flag, length)[..], payload].concat()
}

/// A grpc-web-text body: the frames in base64.
pub fn text_body(frames: &[u8]) -> Vec<u8> {
    B64.encode(frames).into_bytes()
}

/// Splits a gRPC-Web body into data messages and the trailer frame.
pub fn parse_frames(mut body: &[u8]) -> (Vec<Bytes>, Vec<(String, String)>) {
    let (mut messages, mut trailers) = (Vec::new(), Vec::new());
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        let payload = &body[5..5 + len];
        if flag & TRAILERS_FLAG != 0 {
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

/// The messages and trailer frame of a reply body with this content type:
/// grpc-web-text is decoded first; a body that is not gRPC has neither.
pub fn split_body(content_type: &str, body: &[u8]) -> (Vec<Bytes>, Vec<(String, String)>) {
    let decoded = if content_type.starts_with("application/grpc-web-text") {
        decode_text_body(body)
    } else {
        body.to_vec()
    };
    if content_type.starts_with("application/grpc") {
        parse_frames(&decoded)
    } else {
        (vec![], vec![])
    }
}

/// Decodes the percent-encoding of grpc-message.
pub fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A gRPC-Web reply split into its messages and trailers.
#[derive(Debug, Default)]
pub struct WebReply {
    pub http_status: u16,
    pub headers: http::HeaderMap,
    pub messages: Vec<Bytes>,
    pub trailers: Vec<(String, String)>,
}

impl WebReply {
    /// Splits a reply into messages and trailers by its content type
    /// (grpc-web-text is decoded chunk by chunk first).
    pub fn from_parts(parts: http::response::Parts, body: &[u8]) -> WebReply {
        Self::from_http(parts, body, None)
    }

    /// [`WebReply::from_parts`] for a reply that may also have HTTP/2
    /// trailers (native gRPC carries its status there): they count after
    /// the trailer frame's.
    pub fn from_http(
        parts: http::response::Parts,
        body: &[u8],
        http_trailers: Option<&http::HeaderMap>,
    ) -> WebReply {
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (messages, mut trailers) = split_body(&content_type, body);
        for (name, value) in http_trailers.into_iter().flatten() {
            trailers.push((
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        WebReply {
            http_status: parts.status.as_u16(),
            headers: parts.headers,
            messages,
            trailers,
        }
    }

    /// A trailer from the trailer frame, or from the headers of a
    /// trailers-only reply.
    fn trailer(&self, name: &str) -> Option<String> {
        self.trailers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                self.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
    }

    /// grpc-status from the trailer frame, or from the headers of a
    /// trailers-only reply.
    pub fn grpc_status(&self) -> Option<String> {
        self.trailer("grpc-status")
    }

    /// The grpc-status, or "" when there is none.
    pub fn code(&self) -> String {
        self.grpc_status().unwrap_or_default()
    }

    /// grpc-message as sent (percent-encoded), or "".
    pub fn grpc_message(&self) -> String {
        self.trailer("grpc-message").unwrap_or_default()
    }

    /// The gRPC code, or None when the reply is not gRPC at all (no
    /// grpc-status); fails the test if grpc-status is not a number.
    pub fn grpc_code(&self) -> Option<tonic::Code> {
        self.grpc_status().map(|s| {
            tonic::Code::from_i32(
                s.parse()
                    .unwrap_or_else(|_| panic!("grpc-status {s:?} is not a number")),
            )
        })
    }

    /// grpc-message, percent-decoded, or "".
    pub fn message(&self) -> String {
        percent_decode(&self.grpc_message())
    }

    /// The data messages, each decoded as `M`; fails the test if one is not one.
    pub fn decoded<M: prost::Message + Default>(&self) -> Vec<M> {
        self.messages
            .iter()
            .map(|m| {
                M::decode(m.clone())
                    .unwrap_or_else(|e| panic!("not a {}: {e}", std::any::type_name::<M>()))
            })
            .collect()
    }
}

/// One raw request to `base` + `path`, over HTTP/2 without TLS (prior
/// knowledge, as gRPC clients do) or over HTTP/1.1, its reply split as
/// gRPC-Web (or native gRPC, HTTP/2 trailers included). Unlike tonic's
/// channel, this keeps no timer of its own for `grpc-timeout`, so the
/// server's answer is seen.
pub async fn send(
    http2: bool,
    base: &str,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<WebReply, String> {
    let mut builder = HttpClient::builder(TokioExecutor::new());
    builder.http2_only(http2);
    let client = builder.build_http::<Full<Bytes>>();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|e| format!("body: {e:?}"))?;
    let trailers = collected.trailers().cloned();
    Ok(WebReply::from_http(
        parts,
        &collected.to_bytes(),
        trailers.as_ref(),
    ))
}

/// One raw HTTP/1.1 request to `base` + `path`, its reply parsed as
/// gRPC-Web; fails the test if there is no reply.
pub async fn raw_at(
    base: &str,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> WebReply {
    send(false, base, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("HTTP/1.1 request to {path}: {e}"))
}
