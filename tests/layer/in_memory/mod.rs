//! The layer around the operations server called in memory as a tower
//! `Service`, under paused tokio time: poll schedules, retries and cancel
//! delivery, deterministic and instant.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::body_bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_lro::{CancelOnDrop, CancelOnDropLayer, CancelPolicy, Error, Operation, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer};

const BASE: &str = "https://ops.example.test";

fn start(duration_ms: u64) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{BASE}/v1/projects/p/locations/l/jobs"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer t")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

type Req = http::Request<Full<Bytes>>;
type Svc = CancelOnDrop<OperationsServer>;

/// `ServiceExt::ready`, naming the request type: the server accepts any body.
async fn ready(svc: &mut Svc) -> &mut Svc {
    ServiceExt::<Req>::ready(svc).await.unwrap()
}

/// Starts an operation with `ReturnImmediately`: the initial, untracked Operation.
async fn start_untracked(svc: &mut Svc, duration_ms: u64) -> Operation {
    let mut request = start(duration_ms);
    request
        .extensions_mut()
        .insert(tower_lro::ReturnImmediately);
    let response = ready(svc).await.call(request).await.unwrap();
    Operation::from_json(&body_bytes(response.into_body()).await).unwrap()
}

fn no_jitter() -> PollPolicy {
    PollPolicy::new().jitter(false)
}

/// Starts a call and drives it until its first poll reached the server.
async fn started_call<S>(
    svc: &mut S,
    server: &OperationsServer,
    duration_ms: u64,
) -> std::pin::Pin<Box<S::Future>>
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut call = Box::pin(svc.ready().await.unwrap().call(start(duration_ms)));
    tokio::select! {
        _ = &mut call => panic!("the call finished"),
        log = server.wait_for(Duration::from_secs(3600), |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => { log.unwrap(); }
    }
    call
}

#[tokio::test(start_paused = true)]
async fn polls_follow_the_backoff_schedule_until_done() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let t0 = tokio::time::Instant::now();
    let response = ready(&mut svc).await.call(start(30_000)).await.unwrap();
    let elapsed = t0.elapsed();
    let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
    assert!(op.done && op.error.is_none());

    // The time since the call grows ×1.5 from poll to poll: polls at
    // 1.5^n s = 1, 1.5, 2.25, 3.375, 5.06, 7.59, 11.39, 17.09, 25.63, 38.44 s.
    let polls = server.requests_to(Endpoint::Get);
    assert_eq!(polls.len(), 10, "{polls:?}");
    assert!(polls.iter().all(|p| p.path == format!("/v1/{}", op.name)));
    for (n, poll) in polls.iter().enumerate() {
        let at = poll.received_at - t0;
        // The timer's 1 ms granularity rounds each sleep up a little, and
        // each delay grows with the time so far: allow 0.1 % + 5 ms.
        let expected = 1.5f64.powi(n as i32);
        assert!(
            (at.as_secs_f64() - expected).abs() <= expected * 1e-3 + 0.005,
            "poll {n} at {at:?}, expected {expected} s"
        );
    }
    let expected = 1.5f64.powi(9);
    assert!(
        (elapsed.as_secs_f64() - expected).abs() <= expected * 1e-3 + 0.005,
        "{elapsed:?} vs {expected} s"
    );
    assert!(
        elapsed - Duration::from_secs(30) <= Duration::from_secs(15),
        "learned of completion within half its duration"
    );
    common::assert_no_cancel(&layer.handle(), &server).await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_while_polling_cancels_once() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let call = started_call(&mut svc, &server, 600_000).await;
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    assert!(report.is_complete());
    let name = server.operation_names()[0].clone();
    let cancels = server.cancels_for(&name);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].method, Method::POST);
    assert_eq!(cancels[0].path, format!("/v1/{name}:cancel"));
    let state = server.operation(&name).unwrap();
    assert_eq!(state["done"], true);
    assert_eq!(state["error"]["code"], 1);
    assert_eq!(report.stats.accepted, 1);
}

#[tokio::test(start_paused = true)]
async fn transient_poll_failures_are_retried() {
    let server = OperationsServer::new();
    server.inject(
        Endpoint::Get,
        Fault::Script(vec![
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
        ]),
    );
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let response = ready(&mut svc).await.call(start(3_000)).await.unwrap();
    let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
    assert!(op.done);
    let statuses: Vec<u16> = server
        .requests_to(Endpoint::Get)
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(&statuses[..2], &[503, 429]);
    assert!(statuses[2..].iter().all(|s| *s == 200), "{statuses:?}");
    common::assert_no_cancel(&layer.handle(), &server).await;
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_poll_failure_ends_the_call_and_cancels() {
    let server = OperationsServer::new();
    server.inject(Endpoint::Get, Fault::Status(StatusCode::FORBIDDEN));
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let err = ready(&mut svc).await.call(start(60_000)).await.unwrap_err();
    let name = server.operation_names()[0].clone();
    match &err {
        Error::Poll {
            operation,
            status: Some(status),
            ..
        } => {
            assert_eq!(operation.as_str(), name);
            assert_eq!(*status, tower_lro::WireStatus::Http(StatusCode::FORBIDDEN));
        }
        other => panic!("{other:?}"),
    }
    layer.handle().drain(Duration::from_secs(30)).await;
    assert_eq!(server.cancels_for(&name).len(), 1);
    assert_eq!(
        server.requests_to(Endpoint::Get).len(),
        1,
        "403 is not retried"
    );
}

#[tokio::test(start_paused = true)]
async fn cancels_are_retried_on_503_and_429() {
    let server = OperationsServer::new();
    server.inject(
        Endpoint::Cancel,
        Fault::Script(vec![
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
        ]),
    );
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let call = started_call(&mut svc, &server, 600_000).await;
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    let name = server.operation_names()[0].clone();
    let statuses: Vec<u16> = server
        .cancels_for(&name)
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(statuses, vec![503, 429, 200]);
    assert_eq!(report.stats.retried, 2);
    assert_eq!(report.stats.accepted, 1);
    assert_eq!(server.operation(&name).unwrap()["error"]["code"], 1);
}

#[tokio::test(start_paused = true)]
async fn unimplemented_is_not_retried_and_is_remembered_per_authority() {
    let server = OperationsServer::new();
    server.inject(Endpoint::Cancel, Fault::Status(StatusCode::NOT_IMPLEMENTED));
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());

    let first = started_call(&mut svc, &server, 600_000).await;
    drop(first);
    layer.handle().drain(Duration::from_secs(30)).await;
    assert_eq!(
        server.requests_to(Endpoint::Cancel).len(),
        1,
        "501 is not retried"
    );

    let mut second = Box::pin(ready(&mut svc).await.call(start(600_000)));
    tokio::select! {
        _ = &mut second => panic!(),
        _ = server.wait_for(Duration::from_secs(3600), |l| l.iter().filter(|r| r.endpoint == Endpoint::Start).count() == 2 && l.iter().filter(|r| r.endpoint == Endpoint::Get).count() >= 2) => {}
    }
    drop(second);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    assert_eq!(
        server.requests_to(Endpoint::Cancel).len(),
        1,
        "the second cancel is skipped: the authority said UNIMPLEMENTED"
    );
    assert_eq!(report.stats.fired, 2);
    assert_eq!(report.stats.unimplemented, 2);
    assert_eq!(report.stats.retried, 0);
}

/// Two origins behind one inner service: `a.example.test` answers every
/// CancelOperation 501, `b.example.test` is an ordinary server.
fn two_origins(
    a: OperationsServer,
    b: OperationsServer,
) -> impl Service<
    Req,
    Response = http::Response<Full<Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone
       + Send {
    tower::service_fn(move |request: Req| {
        let server = match request.uri().host() {
            Some("a.example.test") => a.clone(),
            Some("b.example.test") => b.clone(),
            other => panic!("a request to {other:?}"),
        };
        ServiceExt::<Req>::oneshot(server, request)
    })
}

#[tokio::test(start_paused = true)]
async fn unimplemented_at_one_authority_does_not_silence_another() {
    let (a, b) = (OperationsServer::new(), OperationsServer::new());
    a.inject(Endpoint::Cancel, Fault::Status(StatusCode::NOT_IMPLEMENTED));
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .cancel_policy(CancelPolicy::new().remember_unimplemented(Duration::from_secs(3600)));
    let mut svc = layer.layer(two_origins(a.clone(), b.clone()));
    let on = |host: &str| {
        let mut request = start(600_000);
        *request.uri_mut() = format!("https://{host}/v1/projects/p/locations/l/jobs")
            .parse()
            .unwrap();
        request
    };
    for (host, server) in [("a.example.test", &a), ("b.example.test", &b)] {
        let mut call = Box::pin(
            ServiceExt::<Req>::ready(&mut svc)
                .await
                .unwrap()
                .call(on(host)),
        );
        tokio::select! {
            _ = &mut call => panic!("the call finished"),
            log = server.wait_for(Duration::from_secs(3600), |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => { log.unwrap(); }
        }
        drop(call);
        assert!(layer
            .handle()
            .drain(Duration::from_secs(60))
            .await
            .is_complete());
    }
    assert_eq!(
        a.requests_to(Endpoint::Cancel).len(),
        1,
        "A: one 501, not retried"
    );
    let name = common::only_operation(&b);
    assert_eq!(b.cancels_for(&name).len(), 1, "B's cancel was sent once");
    assert_eq!(
        b.operation(&name).unwrap()["error"]["code"],
        1,
        "B's operation is CANCELLED"
    );
}

#[tokio::test(start_paused = true)]
async fn time_queued_for_a_slot_does_not_eat_a_cancels_deadline() {
    // One slot; the first two attempts hang until their timeout (5 s). A's
    // first hangs (0-5 s); B, queued since 0, takes the slot while A backs
    // off, and hangs (5-10 s); A's retry then starts past A's 10 s
    // deadline: A fails. B's retry (10 s) is within B's 10 s counted from
    // its first attempt (5 s), not from when it was fired: accepted.
    let server = OperationsServer::new();
    server.inject(
        Endpoint::Cancel,
        Fault::Sequence(vec![FaultKind::Hang, FaultKind::Hang]),
    );
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .cancel_policy(
            CancelPolicy::new()
                .concurrency(1, 16)
                .attempt_timeout(Duration::from_secs(5))
                .deadline(Duration::from_secs(10)),
        );
    let mut svc = layer.layer(server.clone());
    let a = started_call(&mut svc, &server, 600_000).await;
    let b = started_call(&mut svc, &server, 600_000).await;
    drop((a, b));
    let report = layer.handle().drain(Duration::from_secs(60)).await;
    assert!(report.is_complete(), "{report:?}");
    let names = server.operation_names();
    let (a, b) = (&names[0], &names[1]);
    assert_eq!(
        server.cancels_for(a).len(),
        1,
        "A: one hung attempt, then its deadline"
    );
    assert_eq!(
        server.cancels_for(b).len(),
        2,
        "B: a hung attempt, then its retry"
    );
    assert_eq!(
        server.operation(b).unwrap()["error"]["code"],
        1,
        "B is CANCELLED"
    );
    assert_eq!((report.stats.accepted, report.stats.failed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_cancel_that_keeps_failing_gives_up_within_the_policy() {
    let server = OperationsServer::new();
    server.inject(
        Endpoint::Cancel,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .cancel_policy(CancelPolicy::new().attempts(4));
    let mut svc = layer.layer(server.clone());
    let call = started_call(&mut svc, &server, 600_000).await;
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    assert_eq!(server.requests_to(Endpoint::Cancel).len(), 4);
    assert_eq!(report.stats.failed, 1);
    assert_eq!(report.stats.retried, 3);
}

#[tokio::test(start_paused = true)]
async fn requests_the_layer_does_not_inspect_pass_through_unread() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new();
    let mut svc = layer.layer(server.clone());
    // A GET on a resource path is not inspected: the 404 body passes through.
    let response = ready(&mut svc)
        .await
        .call(
            http::Request::get(format!("{BASE}/v1/projects/p/locations/l/jobs/j"))
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = body_bytes(response.into_body()).await;
    assert!(std::str::from_utf8(&body).unwrap().contains("NOT_FOUND"));
}

/// Waits until the server has received (not necessarily answered) a start.
async fn start_arrived(server: &OperationsServer) {
    server
        .wait_for(Duration::from_secs(3600), |l| {
            l.iter().any(|r| r.endpoint == Endpoint::Start)
        })
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropped_before_the_first_response_the_operation_is_still_cancelled() {
    let server = OperationsServer::new();
    // The start request is answered 5 s after it arrives: the caller gives up
    // before it knows the operation's name.
    server.inject(Endpoint::Start, Fault::Latency(Duration::from_secs(5)));
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let mut call = Box::pin(ready(&mut svc).await.call(start(600_000)));
    tokio::select! {
        _ = &mut call => panic!("answered early"),
        _ = start_arrived(&server) => {}
    }
    drop(call);
    assert_eq!(
        server.requests_to(Endpoint::Start)[0].status,
        StatusCode::PROCESSING,
        "dropped before the start was answered"
    );

    let report = layer.handle().drain(Duration::from_secs(30)).await;
    assert!(report.is_complete(), "{report:?}");
    let name = server.operation_names()[0].clone();
    let cancels = server.cancels_for(&name);
    assert_eq!(cancels.len(), 1, "{:?}", server.requests());
    assert_eq!(cancels[0].path, format!("/v1/{name}:cancel"));
    assert_eq!(cancels[0].headers["authorization"], "Bearer t");
    assert!(server.requests_to(Endpoint::Get).is_empty(), "never polled");
    assert_eq!(server.operation(&name).unwrap()["error"]["code"], 1);
    assert_eq!((report.stats.fired, report.stats.accepted), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn dropped_in_flight_when_the_answer_is_not_an_operation_sends_nothing() {
    let server = OperationsServer::new();
    server.inject(Endpoint::Start, Fault::Latency(Duration::from_secs(5)));
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    // Already done when answered: nothing to cancel.
    let mut call = Box::pin(ready(&mut svc).await.call(start(0)));
    tokio::select! {
        _ = &mut call => panic!("answered early"),
        _ = start_arrived(&server) => {}
    }
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    assert!(report.is_complete());
    assert_eq!(
        server.requests_to(Endpoint::Start)[0].status,
        StatusCode::OK
    );
    assert!(server.requests_to(Endpoint::Cancel).is_empty());
    assert_eq!(report.stats.fired, 0);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_before_the_first_response_still_cancels_what_it_started() {
    let server = OperationsServer::new();
    server.inject(Endpoint::Start, Fault::Latency(Duration::from_secs(5)));
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .deadline(Duration::from_secs(1));
    let mut svc = layer.layer(server.clone());
    let err = ready(&mut svc)
        .await
        .call(start(600_000))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DeadlineExceeded {
                operation: None,
                ..
            }
        ),
        "{err:?}"
    );
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    let name = server.operation_names()[0].clone();
    assert_eq!(server.cancels_for(&name).len(), 1);
    assert_eq!(report.stats.accepted, 1);
}

#[tokio::test(start_paused = true)]
async fn verification_records_that_the_operation_ended_cancelled() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .cancel_policy(CancelPolicy::new().verify(Duration::from_secs(60)));
    let mut svc = layer.layer(server.clone());
    drop(started_call(&mut svc, &server, 600_000).await);
    let report = layer.handle().drain(Duration::from_secs(120)).await;
    let name = server.operation_names()[0].clone();
    assert_eq!(server.cancels_for(&name).len(), 1);
    let polls_after_cancel = server
        .requests()
        .iter()
        .skip_while(|r| r.endpoint != Endpoint::Cancel)
        .filter(|r| r.endpoint == Endpoint::Get)
        .count();
    assert!(polls_after_cancel >= 1, "verification read GetOperation");
    assert_eq!(report.stats.accepted, 1);
    assert_eq!(report.stats.verified_cancelled, 1);
    assert_eq!(report.stats.completed_anyway, 0);
}

#[tokio::test(start_paused = true)]
async fn verification_records_an_operation_that_completed_despite_the_cancel() {
    let server = OperationsServer::new();
    // A server that accepts CancelOperation and ignores it.
    let upstream = server.clone();
    let ignoring = tower::service_fn(move |req: Req| {
        let upstream = upstream.clone();
        async move {
            if req.uri().path().ends_with(":cancel") {
                return Ok(http::Response::builder()
                    .header("content-type", "application/json")
                    .body(Full::from("{}"))
                    .unwrap());
            }
            upstream.oneshot(req).await
        }
    });
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .cancel_policy(CancelPolicy::new().verify(Duration::from_secs(60)));
    let mut svc = layer.layer(ignoring);
    let mut call = Box::pin(
        ServiceExt::<Req>::ready(&mut svc)
            .await
            .unwrap()
            .call(start(5_000)),
    );
    tokio::select! {
        _ = &mut call => panic!("finished early"),
        _ = server.wait_for(Duration::from_secs(3600), |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => {}
    }
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(120)).await;
    let name = server.operation_names()[0].clone();
    let op = server.operation(&name).unwrap();
    assert_eq!(op["done"], true);
    assert!(op.get("error").is_none(), "it completed: {op}");
    assert_eq!(report.stats.accepted, 1);
    assert_eq!(report.stats.completed_anyway, 1);
    assert_eq!(report.stats.verified_cancelled, 0);
}

#[tokio::test(start_paused = true)]
async fn wait_operation_long_polls_instead_of_sleeping() {
    let server = OperationsServer::new();
    let layer =
        CancelOnDropLayer::new().poll_policy(no_jitter().wait_operation(Duration::from_secs(5)));
    let mut svc = layer.layer(server.clone());
    let t0 = tokio::time::Instant::now();
    let response = ready(&mut svc).await.call(start(12_000)).await.unwrap();
    let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
    assert!(op.done && op.error.is_none());
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(12),
        "learned of completion the moment it happened"
    );
    let waits = server.requests_to(Endpoint::Wait);
    assert_eq!(waits.len(), 3, "5 s + 5 s + 2 s: {waits:?}");
    for wait in &waits {
        assert_eq!(wait.method, Method::POST);
        assert_eq!(wait.path, format!("/v1/{}:wait", op.name));
        assert_eq!(&wait.body[..], br#"{"timeout":"5s"}"#);
        assert_eq!(wait.headers["content-type"], "application/json");
        assert_eq!(wait.headers["authorization"], "Bearer t");
    }
    assert!(
        server.requests_to(Endpoint::Get).is_empty(),
        "no GetOperation"
    );
}

#[tokio::test(start_paused = true)]
async fn without_wait_operation_on_the_server_the_layer_polls_with_get_and_remembers() {
    let server = OperationsServer::new();
    // A server that does not implement WaitOperation.
    let upstream = server.clone();
    let waits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let waits_seen = waits.clone();
    let no_wait = tower::service_fn(move |req: Req| {
        let upstream = upstream.clone();
        let waits = waits_seen.clone();
        async move {
            if req.uri().path().ends_with(":wait") {
                waits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                return Ok(http::Response::builder()
                    .status(StatusCode::NOT_IMPLEMENTED)
                    .header("content-type", "application/json")
                    .body(Full::from(
                        r#"{"error":{"code":501,"message":"no","status":"UNIMPLEMENTED"}}"#,
                    ))
                    .unwrap());
            }
            upstream.oneshot(req).await
        }
    });
    let layer =
        CancelOnDropLayer::new().poll_policy(no_jitter().wait_operation(Duration::from_secs(5)));
    let mut svc = layer.layer(no_wait);
    for _ in 0..2 {
        let response = ServiceExt::<Req>::ready(&mut svc)
            .await
            .unwrap()
            .call(start(3_000))
            .await
            .unwrap();
        let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
        assert!(op.done);
    }
    let names = server.operation_names();
    let gets = |name: &str| {
        server
            .requests_to(Endpoint::Get)
            .iter()
            .filter(|r| r.operation.as_deref() == Some(name))
            .count()
    };
    assert!(gets(&names[0]) >= 1, "fell back to GetOperation");
    assert!(gets(&names[1]) >= 1);
    assert_eq!(
        waits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the first operation tried WaitOperation; the 501 was remembered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_detached_request_is_waited_on_but_never_cancelled() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let mut request = start(600_000);
    request.extensions_mut().insert(tower_lro::Detached);
    let mut call = Box::pin(ready(&mut svc).await.call(request));
    tokio::select! {
        _ = &mut call => panic!("finished early"),
        _ = server.wait_for(Duration::from_secs(3600), |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => {}
    }
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    assert!(server.requests_to(Endpoint::Cancel).is_empty());
    assert_eq!(report.stats.fired, 0);
    let name = server.operation_names()[0].clone();
    assert_eq!(
        server.operation(&name).unwrap()["done"],
        false,
        "still running"
    );
}

#[tokio::test(start_paused = true)]
async fn return_immediately_hands_back_the_initial_operation_untracked() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let op = start_untracked(&mut svc, 600_000).await;
    assert!(!op.done, "the initial, not-done Operation");
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(server.requests_to(Endpoint::Get).is_empty(), "not polled");
    assert!(
        server.requests_to(Endpoint::Cancel).is_empty(),
        "not cancelled"
    );
}

#[tokio::test(start_paused = true)]
async fn resuming_by_name_waits_and_cancels_like_a_fresh_start() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    // Started elsewhere (here: untracked), only the name kept.
    let started = start_untracked(&mut svc, 600_000).await;
    let name = tower_lro::OperationName::parse(&started.name).unwrap();

    let mut resume: Req = name
        .get_request(&format!("{BASE}/v1/").parse().unwrap())
        .unwrap();
    resume
        .headers_mut()
        .insert("authorization", "Bearer t".parse().unwrap());
    let mut call = Box::pin(ready(&mut svc).await.call(resume));
    tokio::select! {
        _ = &mut call => panic!("a 600 s operation finished"),
        _ = server.wait_for(Duration::from_secs(3600), |l| l.iter().filter(|r| r.endpoint == Endpoint::Get).count() >= 2) => {}
    }
    drop(call);
    let report = layer.handle().drain(Duration::from_secs(30)).await;
    let cancels = server.cancels_for(name.as_str());
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].path, format!("/v1/{name}:cancel"));
    assert_eq!(cancels[0].headers["authorization"], "Bearer t");
    assert_eq!(server.operation(name.as_str()).unwrap()["error"]["code"], 1);
    assert_eq!(report.stats.accepted, 1);
}

#[tokio::test(start_paused = true)]
async fn resuming_by_name_resolves_with_the_done_operation() {
    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(no_jitter());
    let mut svc = layer.layer(server.clone());
    let started = start_untracked(&mut svc, 10_000).await;
    let name = tower_lro::OperationName::parse(&started.name).unwrap();
    let resume: Req = name
        .get_request(&format!("{BASE}/v1").parse().unwrap())
        .unwrap();
    let response = ready(&mut svc).await.call(resume).await.unwrap();
    let op = Operation::from_json(&body_bytes(response.into_body()).await).unwrap();
    assert_eq!(op.name, name.as_str());
    assert!(op.done && op.error.is_none());
    assert!(
        server.requests_to(Endpoint::Get).len() >= 2,
        "the resume GET, then polls"
    );
}

#[tokio::test(start_paused = true)]
async fn on_progress_sees_every_poll_with_its_metadata() {
    let server = OperationsServer::new();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let layer = CancelOnDropLayer::new()
        .poll_policy(no_jitter())
        .on_progress(move |op| {
            // A `google.protobuf.Struct` in an `Any`: its fields are in `value`.
            #[derive(serde::Deserialize)]
            struct Metadata {
                value: Progress,
            }
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Progress {
                progress_percent: u32,
            }
            let decoded = op.decode::<Metadata, serde_json::Value>().unwrap();
            sink.lock()
                .unwrap()
                .push((op.done, decoded.metadata.map(|m| m.value.progress_percent)));
        });
    let mut svc = layer.layer(server.clone());
    ready(&mut svc).await.call(start(10_000)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    // Polls at 1, 1.5, 2.25, 3.375, 5.06, 7.59 and 11.39 s of a 10 s operation.
    assert_eq!(
        seen,
        vec![
            (false, Some(10)),
            (false, Some(15)),
            (false, Some(22)),
            (false, Some(33)),
            (false, Some(50)),
            (false, Some(75)),
            (true, Some(100)),
        ]
    );
    assert_eq!(seen.len(), server.requests_to(Endpoint::Get).len());
}
