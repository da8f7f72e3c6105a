//! Polling: the backoff schedule, retried and failed polls, WaitOperation
//! long polls (and the fall back to GetOperation), progress callbacks.

use super::*;

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
