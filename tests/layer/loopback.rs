//! End to end over real sockets: a hyper-util client wrapped in
//! `CancelOnDropLayer`, talking to the embedded operations server served by
//! hyper on 127.0.0.1. Operations last milliseconds; tests wait on the
//! server's request log, never on a fixed sleep.

use crate::common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use tower::ServiceBuilder;
use tower_lro::{CancelOnDropLayer, Error, Operation};
use tower_lro_testing::{Endpoint, OperationsServer, RecordedRequest};

/// Waits for a cancel of `name`, then checks it is the only one and has the
/// AIP-151 shape: `POST /v1/{name}:cancel`, empty body, `content-length: 0`,
/// the caller's credentials.
async fn assert_cancelled_once(
    server: &OperationsServer,
    base: &str,
    name: &str,
    layer: &CancelOnDropLayer,
) {
    server
        .wait_for(WAIT, |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && r.operation.as_deref() == Some(name))
        })
        .await
        .unwrap();
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    let cancels: Vec<RecordedRequest> = server.cancels_for(name);
    assert_eq!(cancels.len(), 1, "exactly one cancel: {cancels:?}");
    let cancel = &cancels[0];
    assert_eq!(cancel.method, Method::POST);
    assert_eq!(cancel.path, format!("/v1/{name}:cancel"));
    assert!(
        cancel.body.is_empty(),
        "AIP-151: the request body must be empty"
    );
    assert_eq!(cancel.headers["content-length"], "0");
    assert_eq!(cancel.headers["authorization"], "Bearer test-token");
    assert_eq!(
        cancel.headers["x-goog-request-params"],
        format!("name={}", name.replace('/', "%2F")).as_str()
    );
    assert_eq!(cancel.status, StatusCode::OK);
    assert_eq!(report.stats.fired, 1);
    assert_eq!(report.stats.accepted, 1);

    // GetOperation shows the operation ended CANCELLED.
    let op = get_operation(base, name).await;
    assert!(op.done);
    assert_eq!(
        op.error.map(|e| e.code),
        Some(1),
        "error.code == 1 (CANCELLED)"
    );
}

#[tokio::test]
async fn an_operation_that_finishes_resolves_with_the_done_response_and_is_not_cancelled() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);

    let response = send(&mut client, start(&handle.base_url(), 40))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
    let name = only_operation(&server);
    assert_eq!(op.name, name);
    assert!(op.done, "the caller gets the done: true response");
    assert!(op.error.is_none());
    assert!(op.response.is_some());

    let polls: Vec<_> = server
        .requests_to(Endpoint::Get)
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some(&*name))
        .collect();
    assert!(!polls.is_empty(), "the layer polled GetOperation");
    for poll in &polls {
        assert_eq!(poll.method, Method::GET);
        assert_eq!(poll.path, format!("/v1/{name}"));
        assert_eq!(poll.headers["authorization"], "Bearer test-token");
    }
    common::assert_no_cancel(&layer.handle(), &server).await;
}

#[tokio::test]
async fn tokio_timeout_around_the_call_cancels_the_operation() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);

    let call = send(&mut client, start(&handle.base_url(), 60_000));
    // Give up once the layer is polling: the operation exists and is known.
    let mut call = Box::pin(call);
    tokio::select! {
        _ = &mut call => panic!("a 60 s operation finished"),
        log = server.wait_for(WAIT, |log| log.iter().any(|r| r.endpoint == Endpoint::Get)) => { log.unwrap(); }
    }
    let outcome = tokio::time::timeout(Duration::from_millis(1), call).await;
    assert!(outcome.is_err(), "the timeout fired");

    let name = only_operation(&server);
    assert_cancelled_once(&server, &handle.base_url(), &name, &layer).await;
}

#[tokio::test]
async fn tower_timeout_layer_outside_cancels_the_operation() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = ServiceBuilder::new()
        .timeout(Duration::from_millis(150))
        .layer(layer.clone())
        .service(http_client());

    let err = send(&mut client, start(&handle.base_url(), 60_000))
        .await
        .unwrap_err();
    assert!(
        err.is::<tower::timeout::error::Elapsed>(),
        "TimeoutLayer's error: {err}"
    );
    let name = only_operation(&server);
    assert_cancelled_once(&server, &handle.base_url(), &name, &layer).await;
}

/// Under paused tokio time, so that the 150 ms deadline passes after the
/// Start's answer named the operation, however busy the machine: the clock
/// moves only while every task is idle, and a loopback answer is readable
/// as soon as it is written.
#[tokio::test(start_paused = true)]
async fn the_layers_own_deadline_ends_the_call_and_cancels() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .deadline(Duration::from_millis(150));
    let mut client = lro_client(&layer);

    let err = send(&mut client, start(&handle.base_url(), 60_000))
        .await
        .unwrap_err();
    let name = only_operation(&server);
    match &err {
        Error::DeadlineExceeded {
            operation: Some(op),
            deadline,
        } => {
            assert_eq!(op.as_str(), name);
            assert_eq!(*deadline, Duration::from_millis(150));
        }
        other => panic!("expected DeadlineExceeded naming the operation, got {other:?}"),
    }
    assert!(err.to_string().contains(&name), "Display names it: {err}");
    assert_cancelled_once(&server, &handle.base_url(), &name, &layer).await;
}

#[tokio::test]
async fn an_operation_already_done_is_neither_polled_nor_cancelled() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);

    let response = send(&mut client, start(&handle.base_url(), 0))
        .await
        .unwrap();
    let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
    assert!(op.done);
    common::assert_no_cancel(&layer.handle(), &server).await;
    let log = server.requests();
    assert_eq!(log.len(), 1, "only the start request: {log:?}");
    assert_eq!(log[0].endpoint, Endpoint::Start);
}

type TestBody = BoxBody<Bytes, Infallible>;

fn full(bytes: &'static [u8]) -> TestBody {
    Full::new(Bytes::from_static(bytes)).boxed()
}

#[tokio::test]
async fn non_operation_responses_pass_through_byte_identical() {
    const JSON: &[u8] = br#"{"kind":"thing","id":7,"name":"projects/p/things/7","note":"not an operation: no done? yes done absent means false, but this is a resource"}"#;
    let chunks: Vec<&'static [u8]> =
        vec![b"first chunk\n", b"", b"second \xff\xfe chunk\n", b"last"];
    let served = chunks.clone();
    let (addr, task) = serve(move |req: http::Request<hyper::body::Incoming>| {
        let served = served.clone();
        async move {
            let response = match req.uri().path() {
                "/v1/json" => http::Response::builder()
                    .header("content-type", "application/json; charset=utf-8")
                    .header("x-custom", "kept")
                    .body(full(JSON))
                    .unwrap(),
                _ => {
                    let frames = served.into_iter().map(|c| {
                        Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(c)))
                    });
                    http::Response::builder()
                        .header("content-type", "application/octet-stream")
                        .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                            frames,
                        ))))
                        .unwrap()
                }
            };
            Ok::<_, Infallible>(response)
        }
    })
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);

    // A JSON resource (not an Operation) answering a POST: inspected, passed on.
    let response = send(&mut client, post_empty(format!("http://{addr}/v1/json")))
        .await
        .unwrap();
    assert_eq!(response.headers()["x-custom"], "kept");
    assert_eq!(
        body_bytes(response.into_body()).await,
        Bytes::from_static(JSON)
    );

    // A streaming, non-JSON body: not read by the layer, every byte intact.
    let response = send(&mut client, post_empty(format!("http://{addr}/v1/stream")))
        .await
        .unwrap();
    let expected: Vec<u8> = chunks.concat();
    assert_eq!(
        body_bytes(response.into_body()).await.as_ref(),
        &expected[..]
    );
    assert_eq!(layer.handle().stats().fired, 0);
    task.abort();
}

#[tokio::test]
async fn a_json_body_larger_than_the_inspection_limit_passes_through_intact() {
    let big: &'static [u8] = Box::leak(
        format!(
            r#"{{"name":"projects/p/locations/l/operations/big","done":false,"metadata":{{"pad":"{}"}}}}"#,
            "x".repeat(64 * 1024)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let (addr, task) = serve(move |_req| async move {
        // Sent as many small frames, so the limit falls inside the stream.
        let frames = big
            .chunks(1000)
            .map(|c| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(c))));
        Ok::<_, Infallible>(
            http::Response::builder()
                .header("content-type", "application/json")
                .body(BodyExt::boxed(StreamBody::new(futures_util::stream::iter(
                    frames,
                ))))
                .unwrap(),
        )
    })
    .await;
    let layer = CancelOnDropLayer::new().max_inspect_bytes(4096);
    let mut client = lro_client(&layer);
    let response = send(
        &mut client,
        post_empty(format!("http://{addr}/v1/projects/p/locations/l/jobs")),
    )
    .await
    .unwrap();
    assert_eq!(body_bytes(response.into_body()).await.as_ref(), big);
    assert_eq!(layer.handle().stats().fired, 0, "not tracked");
    task.abort();
}
