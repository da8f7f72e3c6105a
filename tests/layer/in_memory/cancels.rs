//! Cancel delivery: once per dropped call, retried on 503/429, remembered
//! UNIMPLEMENTED per authority, deadlines and give-up, verification of the
//! operation's end.

use super::*;

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
