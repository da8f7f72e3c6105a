//! `CancelOnDrop::cancel`: an explicit CancelOperation by name, through the
//! layer's policy, counters and spans.

use crate::common;

use std::time::Duration;

use http::{StatusCode, Uri};
use tower_lro::{CancelOnDropLayer, CancelOutcome, CancelPolicy, OperationName};
use tower_lro_testing::{Endpoint, Fault, OperationsServer};

use common::{body_json, http_client, lro_client, start, SpanRecorder};

async fn running_operation(base: &str) -> OperationName {
    let response = http_client().request(start(base, 600_000)).await.unwrap();
    let op = body_json(response.into_body()).await;
    OperationName::parse(op["name"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn cancels_by_name_with_retries_counters_and_an_explicit_span() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let name = running_operation(&base).await;
    // Two transient failures first: the policy retries them.
    server.inject(
        Endpoint::Cancel,
        Fault::Script(vec![
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::BAD_GATEWAY,
        ]),
    );
    let layer = CancelOnDropLayer::new().cancel_policy(
        CancelPolicy::new().backoff(Duration::from_millis(1), Duration::from_millis(5)),
    );
    let svc = lro_client(&layer);
    let recorder = SpanRecorder::default();
    let _guard = recorder.install();
    let request_uri: Uri = format!("{base}/v1/projects/p/locations/l/jobs")
        .parse()
        .unwrap();
    let outcome = svc.cancel(&name, &request_uri).await.unwrap();

    assert_eq!(outcome, CancelOutcome::Accepted);
    let op = server.operation(name.as_str()).unwrap();
    assert_eq!(op["error"]["code"], 1, "{op}");
    let cancels = server.cancels_for(name.as_str());
    assert_eq!(cancels.len(), 3);
    let last = cancels.last().unwrap();
    assert_eq!(last.path, format!("/v1/{}:cancel", name.as_str()));
    assert_eq!(last.headers["content-length"], "0");
    assert_eq!(
        last.headers["x-goog-request-params"],
        format!("name={}", name.encoded().replace('/', "%2F"))
    );
    let stats = layer.handle().stats();
    assert_eq!(
        (stats.fired, stats.accepted, stats.retried),
        (1, 1, 2),
        "{stats:?}"
    );
    let spans = recorder.named("lro.cancel");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].fields["reason"], "explicit");
    assert_eq!(spans[0].fields["outcome"], "accepted");
    handle.shutdown().await;
}

#[tokio::test]
async fn unknown_operations_are_not_found_and_unroutable_ones_are_an_error() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let svc = lro_client(&CancelOnDropLayer::new());
    let name = OperationName::parse("projects/p/locations/l/operations/missing").unwrap();
    let uri: Uri = format!("{base}/v1/projects/p/locations/l/jobs")
        .parse()
        .unwrap();
    assert_eq!(
        svc.cancel(&name, &uri).await.unwrap(),
        CancelOutcome::NotFound
    );

    // No API-version segment and nothing matching the name: no route, no request.
    let uri: Uri = format!("{base}/things").parse().unwrap();
    let err = svc.cancel(&name, &uri).await.unwrap_err();
    assert!(
        err.to_string().contains("no operations path prefix"),
        "{err}"
    );
    assert_eq!(server.requests_to(Endpoint::Cancel).len(), 1);
    handle.shutdown().await;
}
