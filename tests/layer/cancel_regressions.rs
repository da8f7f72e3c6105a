//! What the chaos suite (`tests/chaos/`) found in the layer, kept as
//! minimal regression tests. They live apart from the chaos runs, whose
//! process-wide panic counter would see their failures.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tower::{Service, ServiceExt};
use tower_lro::{CancelOnDropLayer, CancelPolicy, CancelStats};
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer};

/// A call abandoned before its first response is handed to a detached task
/// that waits for the answer within the cancel deadline. When the answer
/// comes later than that, the operation the request started is left running
/// — which the layer cannot help — but nothing in `CancelStats` says so: the
/// only trace is a `warn` event. "Never silently orphaned" needs a count.
#[tokio::test(start_paused = true)]
async fn a_call_abandoned_in_flight_and_answered_after_the_cancel_deadline_is_counted() {
    use tower::Layer;

    let server = OperationsServer::new();
    // The operation exists at once; its name arrives after 30 s.
    server.inject(
        Endpoint::Start,
        Fault::Always(FaultKind::LateAnswer(Duration::from_secs(30))),
    );
    let layer = CancelOnDropLayer::new()
        .cancel_policy(CancelPolicy::new().deadline(Duration::from_secs(10)));
    let cancels = layer.handle();
    let mut svc = layer.layer(server.clone());
    let request = http::Request::post("http://api.test/v1/projects/p/locations/l/jobs")
        .header("content-type", "application/json")
        .body(Full::from(r#"{"durationMs": 600000}"#))
        .unwrap();
    let call = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
        .await
        .unwrap()
        .call(request);
    // The caller gives up after 1 s, while the Start is still unanswered.
    assert!(tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .is_err());
    let report = cancels.drain(Duration::from_secs(60)).await;
    assert!(report.is_complete(), "{report:?}");

    // The operation runs on, uncancelled (the answer came after the deadline).
    let name = &server.operation_names()[0];
    assert_eq!(server.operation(name).unwrap()["done"], false);
    assert!(server.cancels_for(name).is_empty());
    assert_eq!(server.requests_to(Endpoint::Start)[0].status.as_u16(), 499);
    // …and the layer's counters say that something may have been left: one
    // `unanswered`, and no cancel fired (there was no name to cancel).
    let mut expected = CancelStats::default();
    expected.unanswered = 1;
    assert_eq!(
        cancels.stats(),
        expected,
        "an abandoned call whose operation may be running is counted `unanswered`, nothing else"
    );
}

/// The operation-starting request used below, to the in-memory server.
fn start(duration_ms: u64) -> http::Request<Full<Bytes>> {
    http::Request::post("http://api.test/v1/projects/p/locations/l/jobs")
        .header("content-type", "application/json")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

/// `CancelStats` says each fired cancel ends in exactly one outcome, so
/// `fired - finished()` is what is still in flight. A call abandoned in
/// flight whose detached task is dropped by a shutting-down runtime is
/// counted `lost` without being `fired`: `finished()` exceeds `fired`, and a
/// metrics line computing `fired - finished()` underflows (a panic in a
/// debug build).
#[test]
fn a_runtime_shutdown_never_finishes_more_cancels_than_were_fired() {
    use tower::Layer;

    let server = OperationsServer::new();
    server.inject(
        Endpoint::Start,
        Fault::Always(FaultKind::LateAnswer(Duration::from_secs(30))),
    );
    let layer = CancelOnDropLayer::new();
    let cancels = layer.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut svc = layer.layer(server.clone());
        let call = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
            .await
            .unwrap()
            .call(start(600_000));
        // Dropped while the Start is unanswered: a detached task takes over.
        assert!(tokio::time::timeout(Duration::from_secs(1), call)
            .await
            .is_err());
    });
    // The runtime goes away with that task unfinished.
    drop(runtime);
    let stats = cancels.stats();
    // The detached wait was cut short: counted `unanswered` (no name was
    // known, so no cancel was fired, and none may be counted as finished).
    let mut expected = CancelStats::default();
    expected.unanswered = 1;
    assert_eq!(
        stats,
        expected,
        "fired {} finished {}",
        stats.fired,
        stats.finished()
    );
    assert!(server.cancels_for(&server.operation_names()[0]).is_empty());
}

/// `drain` closes the task tracker, waits, and reopens it. A second drain
/// running at the same time loses its wake-up when the first one times out
/// and reopens the tracker: it then waits out its whole timeout although
/// every cancel finished long before.
#[tokio::test(start_paused = true)]
async fn a_drain_returns_once_the_cancels_finish_even_if_a_concurrent_drain_timed_out() {
    use tower::Layer;

    let server = OperationsServer::new();
    server.inject(Endpoint::Cancel, Fault::Latency(Duration::from_secs(2)));
    let layer = CancelOnDropLayer::new();
    let cancels = layer.handle();
    let mut svc = layer.layer(server.clone());
    let call = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
        .await
        .unwrap()
        .call(start(600_000));
    // Dropped while waiting to poll: one cancel, answered after 2 s.
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    let name = server.operation_names()[0].clone();

    let short = cancels.drain(Duration::from_secs(1));
    let long = tokio::time::timeout(
        Duration::from_secs(30),
        cancels.drain(Duration::from_secs(60)),
    );
    let (short, long) = tokio::join!(short, long);
    assert!(
        !short.is_complete(),
        "the 1 s drain returns before the 2 s cancel"
    );
    assert_eq!(server.operation(&name).unwrap()["error"]["code"], 1);
    let long = long.expect("the 60 s drain returns when the cancel is done (at 2 s), not at 60 s");
    assert!(long.is_complete());
}

/// The in-flight limit holds a slot for a cancel's whole life, its backoff
/// and `Retry-After` sleeps included: cancels queue behind ones that are
/// sending nothing. With the default policy the 2,000-operation chaos run
/// left 136 operations running instead of about 49 (0.3³ of 1,816): 78 of
/// them got a single attempt before the 10 s deadline, spent queueing.
#[tokio::test(start_paused = true)]
async fn a_cancel_waiting_out_retry_after_gives_its_slot_to_the_next_one() {
    use http::StatusCode;
    use tower::Layer;

    let server = OperationsServer::new();
    // The first cancel is told to come back in 5 s; the others go through.
    server.inject(
        Endpoint::Cancel,
        Fault::Sequence(vec![FaultKind::RetryAfter(
            StatusCode::TOO_MANY_REQUESTS,
            Duration::from_secs(5),
        )]),
    );
    let layer = CancelOnDropLayer::new().cancel_policy(CancelPolicy::new().concurrency(1, 16));
    let cancels = layer.handle();
    let mut svc = layer.layer(server.clone());
    for _ in 0..2 {
        let call = ServiceExt::<http::Request<Full<Bytes>>>::ready(&mut svc)
            .await
            .unwrap()
            .call(start(600_000));
        // Dropped once the operation is known: a cancel is fired.
        assert!(tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err());
    }
    let report = cancels.drain(Duration::from_secs(60)).await;
    assert_eq!((report.stats.fired, report.stats.accepted), (2, 2));

    let op = |n: u32| format!("projects/p/locations/l/operations/op-{n}");
    let order: Vec<(String, u16)> = server
        .requests_to(Endpoint::Cancel)
        .into_iter()
        .map(|r| (r.operation.unwrap(), r.status.as_u16()))
        .collect();
    assert_eq!(
        order,
        [(op(1), 429), (op(2), 200), (op(1), 200)],
        "op-2's cancel is sent while op-1's waits out its Retry-After"
    );
}
