use super::*;
use opentelemetry_sdk::trace::InMemorySpanExporter;

fn in_memory(parent: Parent) -> (Traces, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let mut builder = SdkTracerProvider::builder().with_simple_exporter(exporter.clone());
    if parent == Parent::Xray {
        builder = builder.with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)));
    }
    (Traces::new(builder.build(), parent), exporter)
}

#[test]
fn a_call_continues_an_incoming_traceparent() {
    let (traces, exporter) = in_memory(Parent::TraceContext);
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            .parse()
            .unwrap(),
    );
    let call = traces.start_call("MakePayment", Transport::Grpc, &metadata, None);
    assert_eq!(
        call.trace_id().as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    call.start_attempt("TransactWriteItems", Some(1), Some("eu-west-1"))
        .end(AttemptEnd {
            status: Some(200),
            request_id: Some("REQ1"),
            error: None,
        });
    call.cx.span().end();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2);
    let (child, parent) = (&spans[0], &spans[1]);
    assert_eq!(parent.name, "payment.v1.PaymentService/MakePayment");
    assert_eq!(parent.span_kind, SpanKind::Server);
    assert_eq!(
        parent.parent_span_id.to_string(),
        "b7ad6b7169203331",
        "the caller's span is the parent"
    );
    assert!(parent.parent_span_is_remote);
    assert_eq!(child.name, "DynamoDB.TransactWriteItems");
    assert_eq!(child.parent_span_id, parent.span_context.span_id());
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id()
    );
}

#[test]
fn without_a_traceparent_a_call_starts_a_trace() {
    let (traces, exporter) = in_memory(Parent::TraceContext);
    let call = traces.start_call(
        "GetAccountBalance",
        Transport::GrpcWeb,
        &Default::default(),
        None,
    );
    assert!(call.trace_id().is_some());
    call.cx.span().end();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].parent_span_id, opentelemetry::SpanId::INVALID);
}

#[test]
fn on_lambda_only_a_sampled_invocation_is_traced() {
    let (traces, exporter) = in_memory(Parent::Xray);
    let invocation = |header: &str| Invocation {
        request_id: "r".into(),
        trace_id: Some(header.into()),
    };
    let sampled = invocation(
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1|68fd508a:5",
    );
    let call = traces.start_call(
        "MakePayment",
        Transport::Lambda,
        &Default::default(),
        Some(&sampled),
    );
    assert_eq!(
        call.trace_id().as_deref(),
        Some("5759e988bd862e3fe1be46a994272793")
    );
    call.cx.span().end();
    for header in [
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
        "not a trace header",
    ] {
        let call = traces.start_call(
            "MakePayment",
            Transport::Lambda,
            &Default::default(),
            Some(&invocation(header)),
        );
        call.start_attempt("GetItem", None, None)
            .end(AttemptEnd::default());
        call.cx.span().end();
    }
    let call = traces.start_call("MakePayment", Transport::Lambda, &Default::default(), None);
    call.cx.span().end();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].parent_span_id.to_string(), "53995c3f42cd8ad8");
    assert_eq!(
        spans[0]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "faas.invocation_id")
            .map(|kv| kv.value.to_string()),
        Some("r".into())
    );
}
