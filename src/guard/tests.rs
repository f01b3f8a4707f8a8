use super::*;

fn frame(flag: u8, payload: &[u8]) -> Bytes {
    let mut v = vec![flag];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

#[tokio::test]
async fn bodies_end_after_their_trailers() {
    use http_body_util::StreamBody;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
    let frames: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"one"))),
        Ok(http_body::Frame::trailers(trailers)),
        Ok(http_body::Frame::data(Bytes::from_static(
            b"after the trailer",
        ))),
    ];
    let body = EndAfterTrailers::new(StreamBody::new(tokio_stream::iter(frames)));
    let collected = body.collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["grpc-status"], "13");
    assert_eq!(collected.to_bytes(), Bytes::from_static(b"one"));
}

#[test]
fn frames_are_checked() {
    let ok = pb::GetAccountBalanceRequest {
        account_id: "a".into(),
    }
    .encode_to_vec();
    assert!(single_frame(&frame(0, &ok)).is_ok());
    let code = |b: Bytes| single_frame(&b).unwrap_err().code();
    assert_eq!(code(Bytes::new()), tonic::Code::InvalidArgument);
    assert_eq!(
        code(Bytes::from_static(&[0, 0])),
        tonic::Code::InvalidArgument
    );
    let mut truncated = frame(0, &ok).to_vec();
    truncated.pop();
    assert_eq!(code(Bytes::from(truncated)), tonic::Code::InvalidArgument);
    let mut trailing = frame(0, &ok).to_vec();
    trailing.push(0);
    assert_eq!(code(Bytes::from(trailing)), tonic::Code::InvalidArgument);
    assert_eq!(code(frame(1, &ok)), tonic::Code::Unimplemented);
    assert_eq!(code(frame(0x80, &ok)), tonic::Code::InvalidArgument);
}

#[test]
fn messages_must_decode_as_the_method_request() {
    // Field 1 with wire type 7 does not exist in protobuf.
    let garbage = Bytes::from_static(&[0x0f, 0x01]);
    let paths = pb::METHODS
        .iter()
        .filter(|m| !m.client_streaming)
        .map(|m| m.path)
        .chain([
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Watch",
        ]);
    for path in paths {
        let request_type = single_message_request(path).expect(path);
        let err = request_type.check(garbage.clone()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{path}");
        assert!(err.message().contains(request_type.name), "{path}");
        assert!(request_type.check(Bytes::new()).is_ok(), "{path}: empty");
    }
    // A string field whose bytes are not UTF-8.
    let bad_utf8 = Bytes::from_static(&[0x0a, 0x02, 0xff, 0xfe]);
    let balance = single_message_request("/payment.v1.PaymentService/GetAccountBalance");
    assert!(balance.unwrap().check(bad_utf8).is_err());
}

/// The methods of the contract, read from the descriptors that
/// reflection serves (not from `pb::METHODS`): path, request type
/// (without the leading dot) and whether the client streams.
fn contract_methods() -> Vec<(String, String, bool)> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                methods.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.input_type().trim_start_matches('.').to_owned(),
                    method.client_streaming(),
                ));
            }
        }
    }
    methods
}

#[test]
fn every_method_of_the_contract_is_guarded_with_its_request_type() {
    let contract = contract_methods();
    assert!(contract.len() >= 10, "{contract:?}");
    let table: Vec<&str> = pb::METHODS.iter().map(|m| m.path).collect();
    let walked: Vec<&str> = contract.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(table, walked, "pb::METHODS is the contract's methods");
    for (path, input_type, client_streaming) in &contract {
        match single_message_request(path) {
            Some(guarded) => {
                assert!(
                    !client_streaming,
                    "{path}: a client stream must not be read whole"
                );
                assert_eq!(guarded.name, input_type, "{path}");
            }
            None => assert!(client_streaming, "{path} is not guarded"),
        }
    }
}

/// Sends `body` to `path` through the guard, in front of a service that
/// counts the requests reaching it and answers OK.
async fn through_guard(path: &str, body: Bytes) -> (Option<Status>, usize) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let inner = tower::service_fn(move |_request: http::Request<Body>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new()))) }
    });
    let mut guard = RequestGuardLayer::default().layer(inner);
    let request = http::Request::post(path)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(Full::new(body))
        .unwrap();
    let response = guard.call(request).await.unwrap();
    let status = Status::from_header_map(response.headers());
    (status, reached.load(Ordering::SeqCst))
}

#[tokio::test]
async fn every_guarded_method_refuses_bad_bodies_before_the_service() {
    let mut over_limit = frame(0, &vec![0; REQUEST_BYTES_MAX]).to_vec();
    over_limit.truncate(REQUEST_BYTES_MAX + 1);
    let truncated = frame(0, b"\x0a\x01a");
    let truncated = truncated.slice(..truncated.len() - 1);
    for (path, input_type, client_streaming) in contract_methods() {
        if client_streaming {
            continue;
        }
        let refusals = [
            (
                "garbage",
                frame(0, b"\x0f\xff"),
                tonic::Code::InvalidArgument,
                input_type.as_str(),
            ),
            (
                "an empty body",
                Bytes::new(),
                tonic::Code::InvalidArgument,
                "empty",
            ),
            (
                "a truncated frame",
                truncated.clone(),
                tonic::Code::InvalidArgument,
                "truncated",
            ),
            (
                "a body over 16 KiB",
                Bytes::from(over_limit.clone()),
                tonic::Code::ResourceExhausted,
                "larger than 16384 bytes",
            ),
        ];
        for (what, body, code, needle) in refusals {
            let (status, reached) = through_guard(&path, body).await;
            let status = status.unwrap_or_else(|| panic!("{path}, {what}: no grpc-status"));
            assert_eq!(status.code(), code, "{path}, {what}: {}", status.message());
            assert!(
                status.message().contains(needle),
                "{path}, {what}: {:?} does not name {needle:?}",
                status.message()
            );
            assert_eq!(reached, 0, "{path}, {what}: reached the service");
        }
        // The garbage refusal names the request type (checked above);
        // a valid (empty) message goes through.
        let (status, reached) = through_guard(&path, frame(0, b"")).await;
        assert!(status.is_none(), "{path}: {status:?}");
        assert_eq!(
            reached, 1,
            "{path}: a valid request did not reach the service"
        );
    }
}

/// A request body that sends one frame and then never ends, as a
/// reflection client keeping its stream open.
struct OpenStream(Option<Bytes>);

impl http_body::Body for OpenStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.take() {
            Some(data) => Poll::Ready(Some(Ok(http_body::Frame::data(data)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test]
async fn a_stream_reaches_the_service_before_its_body_ends() {
    let inner = tower::service_fn(|request: http::Request<Body>| async move {
        // Answer with the first frame of the request, as reflection does.
        let first = request.into_body().frame().await;
        let data = first
            .expect("a frame")
            .expect("no error")
            .into_data()
            .unwrap();
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(data)))
    });
    let mut guard = RequestGuardLayer::default().layer(inner);
    let message = frame(0, b"\x3a\x00");
    let request = http::Request::post("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(OpenStream(Some(message.clone())))
        .unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), guard.call(request))
        .await
        .expect("the guard waited for the end of a streaming request")
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, message);
}

#[test]
fn streaming_and_unknown_methods_are_not_read() {
    // Requests that are streams: reflection's, and any client-streaming
    // method of the contract.
    let streams = [
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ]
    .into_iter()
    .chain(
        pb::METHODS
            .iter()
            .filter(|m| m.client_streaming)
            .map(|m| m.path),
    );
    // Paths that name no method: near misses of the contract's paths.
    let unknown = [
        "/payment.v1.PaymentService/Refund",
        "/payment.v1.PaymentService/addAccount",
        "/payment.v1.PaymentService/",
        "/payment.v1.PaymentService/AddAccount/",
        "/payment.v1.PaymentService.AddAccount",
        "/payment.v1.Payments/AddAccount",
        "/other.v1.Other/Call",
        "/",
    ];
    for path in unknown {
        assert!(
            !pb::METHODS.iter().any(|m| m.path == path),
            "{path} is a method of the contract now; pick another unknown path"
        );
    }
    for path in streams.chain(unknown) {
        assert!(single_message_request(path).is_none(), "{path}");
    }
}
