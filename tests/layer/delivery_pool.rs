//! Cancel delivery through the layer's pool, in memory under paused tokio
//! time: a fired cancel is a queued job, not a task of its own (the pool's
//! workers are at most the in-flight limit, and end with the work); cancels
//! queued or in flight when the runtime shuts down are counted lost; an
//! inner service that panics while sending one cancel fails that cancel
//! only. (That a cancel backing off holds no slot is checked in
//! `cancel_regressions.rs`.)

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_lro::{CancelOnDropLayer, CancelPolicy, CancelStats, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, OperationsServer};

const BASE: &str = "https://ops.example.test";

type Req = http::Request<Full<Bytes>>;
type Tracking<S> = Pin<Box<<S as Service<Req>>::Future>>;

fn start() -> Req {
    http::Request::post(format!("{BASE}/v1/projects/p/locations/l/jobs"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer t")
        .body(Full::from(r#"{"durationMs": 3600000}"#))
        .unwrap()
}

/// A layer that polls only after an hour: a started call sits tracking its
/// operation until it is dropped.
fn layer(cancel: CancelPolicy) -> CancelOnDropLayer {
    CancelOnDropLayer::new()
        .poll_policy(PollPolicy::new().initial_delay(Duration::from_secs(3600)))
        .cancel_policy(cancel)
}

/// Starts `n` calls through `svc` and polls each until it is tracking its
/// operation.
async fn tracking<S>(svc: &S, n: usize) -> Vec<Tracking<S>>
where
    S: Service<Req> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut calls = Vec::with_capacity(n);
    for _ in 0..n {
        let mut svc = svc.clone();
        let mut call = Box::pin(svc.ready().await.unwrap().call(start()));
        std::future::poll_fn(|cx| {
            assert!(call.as_mut().poll(cx).is_pending(), "the call is tracking");
            Poll::Ready(())
        })
        .await;
        calls.push(call);
    }
    calls
}

/// Whether GetOperation would show `name` done with `error.code` 1 (CANCELLED).
fn cancelled(server: &OperationsServer, name: &str) -> bool {
    let op = server.operation(name).unwrap();
    op["done"] == true && op["error"]["code"] == 1
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_thousand_dropped_calls_queue_their_cancels_without_a_task_each() {
    let server = OperationsServer::new();
    let layer = layer(CancelPolicy::new().concurrency(8, 1_000));
    let cancels = layer.handle();
    let svc = layer.layer(server.clone());
    let calls = tracking(&svc, 1_000).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    drop(calls);

    // As many workers as cancels may be in flight, whatever their number.
    assert_eq!(metrics.num_alive_tasks(), tasks_before + 8);
    assert_eq!(cancels.pending(), 1_000);
    let report = cancels.drain(Duration::from_secs(60)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!((report.stats.fired, report.stats.accepted), (1_000, 1_000));
    // The workers end with the work: nothing stays behind.
    assert_eq!(metrics.num_alive_tasks(), tasks_before);
    let names = server.operation_names();
    assert_eq!(names.len(), 1_000);
    for name in &names {
        assert_eq!(server.cancels_for(name).len(), 1, "{name}");
        assert!(cancelled(&server, name), "{name}");
    }
}

/// A current_thread runtime with paused time, to be dropped by the test.
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The counters after `n` cancels were fired and none was sent to an end.
fn all_lost(n: u64) -> CancelStats {
    let mut expected = CancelStats::default();
    expected.fired = n;
    expected.lost = n;
    expected
}

#[test]
fn cancels_queued_or_in_flight_when_the_runtime_shuts_down_are_counted_lost() {
    let server = OperationsServer::new();
    server.inject(Endpoint::Cancel, Fault::Hang);
    let layer = layer(CancelPolicy::new().concurrency(2, 100));
    let cancels = layer.handle();
    let runtime = paused_runtime();
    runtime.block_on(async {
        let svc = layer.layer(server.clone());
        drop(tracking(&svc, 10).await);
        // Two are sent (and hang); eight wait in the queue.
        server
            .wait_for(Duration::from_secs(1), |log| {
                log.iter()
                    .filter(|r| r.endpoint == Endpoint::Cancel)
                    .count()
                    == 2
            })
            .await
            .unwrap();
    });
    drop(runtime);

    assert_eq!(cancels.stats(), all_lost(10));
    assert_eq!(cancels.pending(), 0);
    assert_eq!(server.requests_to(Endpoint::Cancel).len(), 2);
}

#[test]
fn cancels_whose_workers_never_ran_are_counted_lost() {
    let server = OperationsServer::new();
    let layer = layer(CancelPolicy::new().concurrency(4, 100));
    let cancels = layer.handle();
    let runtime = paused_runtime();
    runtime.block_on(async {
        let svc = layer.layer(server.clone());
        let calls = tracking(&svc, 10).await;
        // Dropped without yielding: the workers are spawned, never polled.
        drop(calls);
    });
    drop(runtime);

    assert_eq!(cancels.stats(), all_lost(10));
    assert_eq!(cancels.pending(), 0);
    assert!(server.requests_to(Endpoint::Cancel).is_empty());
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_inner_service_panicking_on_one_cancel_fails_that_cancel_only() {
    let server = OperationsServer::new();
    let layer = layer(CancelPolicy::new());
    let cancels = layer.handle();
    // The inner service panics on a cancel of the first operation started.
    let inner = {
        let server = server.clone();
        tower::service_fn(move |request: Req| {
            let mut server = server.clone();
            async move {
                let first = server.operation_names().into_iter().next();
                let path = request.uri().path().to_owned();
                if first.is_some_and(|first| path == format!("/v1/{first}:cancel")) {
                    panic!("the inner service fails on {path}");
                }
                ServiceExt::<Req>::ready(&mut server)
                    .await?
                    .call(request)
                    .await
            }
        })
    };
    let svc = layer.layer(inner);
    let calls = tracking(&svc, 3).await;
    let names = server.operation_names();

    drop(calls);
    let report = cancels.drain(Duration::from_secs(60)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (
            report.stats.fired,
            report.stats.accepted,
            report.stats.failed,
            report.stats.lost
        ),
        (3, 2, 1, 0),
        "{report:?}"
    );
    assert!(!cancelled(&server, &names[0]));
    assert!(cancelled(&server, &names[1]) && cancelled(&server, &names[2]));

    // The pool still delivers afterwards.
    drop(tracking(&svc, 1).await);
    let report = cancels.drain(Duration::from_secs(60)).await;
    assert_eq!(report.stats.accepted, 3, "{report:?}");
    let last = server.operation_names().pop().unwrap();
    assert!(cancelled(&server, &last));
}
