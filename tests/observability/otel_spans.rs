//! The layer's spans as an OpenTelemetry backend receives them: through
//! `tracing-opentelemetry` into `opentelemetry_sdk`'s in-memory span
//! exporter. Each `lro.call` carries the server and the
//! `gcp.longrunning.*` attributes; each `lro.cancel` links to its call.

use crate::common;

use std::time::Duration;

use opentelemetry::trace::TracerProvider;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tower_lro::CancelOnDropLayer;
use tower_lro_testing::{Endpoint, OperationsServer};
use tracing_subscriber::layer::SubscriberExt;

use common::{fast_polls, lro_client, send, start, WAIT};

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn spans_carry_the_conventions_and_a_cancel_links_to_its_call() {
    crate::isolate_subscribers();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let lro = CancelOnDropLayer::new().poll_policy(fast_polls());
    let cancels = lro.handle();
    let mut client = lro_client(&lro);

    // One operation waited on to the end (30 ms) ...
    send(&mut client, start(&base, 30)).await.unwrap();
    let done_name = common::only_operation(&server);
    let done_polls = server
        .requests_to(Endpoint::Get)
        .iter()
        .filter(|r| r.operation.as_deref() == Some(&done_name))
        .count();
    // ... and one given up on while it runs.
    let call = send(&mut client, start(&base, 600_000));
    let _ = tokio::time::timeout(Duration::from_millis(100), call).await;
    assert!(cancels.drain(WAIT).await.is_complete());
    let names = server.operation_names();
    let dropped_name = names.iter().find(|n| **n != done_name).unwrap();
    assert_eq!(server.cancels_for(dropped_name).len(), 1);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let calls = named(&spans, "lro.call");
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let name_of = |s: &SpanData| attribute(s, "operation.name").map(|v| v.as_str().into_owned());
    let done = calls
        .iter()
        .find(|s| name_of(s).as_deref() == Some(&done_name))
        .unwrap();
    let dropped = calls
        .iter()
        .find(|s| name_of(s).as_deref() == Some(dropped_name.as_str()))
        .unwrap();
    let port = i64::from(handle.addr().port());
    for call in [done, dropped] {
        assert_eq!(
            attribute(call, "server.address"),
            Some(&Value::from("127.0.0.1"))
        );
        assert_eq!(attribute(call, "server.port"), Some(&Value::I64(port)));
        assert_eq!(
            attribute(call, "http.request.method"),
            Some(&Value::from("POST"))
        );
    }
    // The finished call: done, its polls counted, status OK (0).
    assert_eq!(
        attribute(done, "gcp.longrunning.done"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        attribute(done, "gcp.longrunning.poll_attempt_count"),
        Some(&Value::I64(done_polls as i64))
    );
    assert_eq!(
        attribute(done, "gcp.longrunning.status_code"),
        Some(&Value::I64(0))
    );
    assert_eq!(
        attribute(dropped, "gcp.longrunning.done"),
        Some(&Value::Bool(false))
    );
    assert!(attribute(dropped, "gcp.longrunning.status_code").is_none());

    // The cancel: a root span of its own, linked to the dropped call.
    let cancel = named(&spans, "lro.cancel");
    assert_eq!(cancel.len(), 1);
    let cancel = cancel[0];
    assert_ne!(
        cancel.span_context.trace_id(),
        dropped.span_context.trace_id()
    );
    let links: Vec<_> = cancel
        .links
        .links
        .iter()
        .map(|l| l.span_context.clone())
        .collect();
    assert_eq!(links, vec![dropped.span_context.clone()]);
    assert_eq!(attribute(cancel, "reason"), Some(&Value::from("dropped")));
    assert_eq!(attribute(cancel, "outcome"), Some(&Value::from("accepted")));
    assert_eq!(
        attribute(cancel, "server.address"),
        Some(&Value::from("127.0.0.1"))
    );
    // Polls carry the server too.
    for poll in named(&spans, "lro.poll") {
        assert_eq!(
            attribute(poll, "server.address"),
            Some(&Value::from("127.0.0.1"))
        );
        assert_eq!(
            attribute(poll, "rpc.method"),
            Some(&Value::from("GetOperation"))
        );
    }
}
