//! gRPC-Web on the wire, written once for every test: a frame is a flag
//! byte, a 4-byte big-endian length and the payload (flag 0 a message, 1 a
//! compressed one, 0x80 the trailer frame, `name:value\r\n` lines);
//! grpc-web-text is the same frames in base64, which a server may send as
//! several padded chunks. Replies are split here into messages and
//! trailers, and grpc-message is percent-decoded here.
//!
//! tests/contract_files.rs includes this file too (`#[path]`), to frame the
//! bodies of the events and fuzz seeds it generates.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;

/// The flag of the trailer frame.
pub const TRAILERS_FLAG: u8 = 0x80;

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
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (messages, trailers) = split_body(&content_type, body);
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
}
