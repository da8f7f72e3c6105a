//! The server's faults: statuses, scripted sequences, latency, random
//! rates, Retry-After, hangs and late answers.

use super::*;

#[tokio::test(start_paused = true)]
async fn status_fault_answers_aip_193_and_leaves_the_operation_alone() {
    let server = OperationsServer::new();
    start(&server, "").await;

    server.inject(Endpoint::Cancel, Fault::Status(StatusCode::NOT_IMPLEMENTED));
    let answer = call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    assert_error(&answer, 501, "UNIMPLEMENTED");
    assert_eq!(server.operation(OP1).unwrap()["done"], false);
    assert_eq!(
        server.cancels_for(OP1)[0].status,
        StatusCode::NOT_IMPLEMENTED
    );

    server.inject(
        Endpoint::Get,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    assert_error(&get(&server, OP1).await, 503, "UNAVAILABLE");
    assert_error(&get(&server, OP1).await, 503, "UNAVAILABLE");

    server.inject(Endpoint::Get, Fault::Status(StatusCode::TOO_MANY_REQUESTS));
    let answer = get(&server, OP1).await;
    assert_error(&answer, 429, "RESOURCE_EXHAUSTED");
    assert_eq!(answer.headers["retry-after"], "1");

    server.inject(
        Endpoint::Start,
        Fault::Status(StatusCode::INTERNAL_SERVER_ERROR),
    );
    assert_error(
        &call(&server, Method::POST, JOBS, "").await,
        500,
        "INTERNAL",
    );
    assert_eq!(server.operation_names(), vec![OP1.to_owned()]);
    assert_eq!(server.requests_to(Endpoint::Start)[1].operation, None);

    server.inject(Endpoint::Delete, Fault::Status(StatusCode::NOT_FOUND));
    let answer = call(&server, Method::DELETE, &format!("/v1/{OP1}"), "").await;
    assert_error(&answer, 404, "NOT_FOUND");
    assert!(server.operation(OP1).is_some());

    server.clear_faults();
    assert_eq!(get(&server, OP1).await.status, StatusCode::OK);
    let answer = call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(server.operation(OP1).unwrap()["error"]["code"], 1);
}

#[tokio::test(start_paused = true)]
async fn script_fault_answers_in_order_then_behaves_normally() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(
        Endpoint::Get,
        Fault::Script(vec![
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::OK,
            StatusCode::BAD_GATEWAY,
        ]),
    );
    let statuses = [
        get(&server, OP1).await.status,
        get(&server, OP1).await.status,
        get(&server, OP1).await.status,
        get(&server, OP1).await.status,
        get(&server, OP1).await.status,
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [503, 200, 502, 200, 200]);
    let logged: Vec<u16> = server
        .requests_to(Endpoint::Get)
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert_eq!(logged, [503, 200, 502, 200, 200]);

    // An empty script removes the endpoint's fault.
    server.inject(
        Endpoint::Get,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    server.inject(Endpoint::Get, Fault::Script(Vec::new()));
    assert_eq!(get(&server, OP1).await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn latency_fault_records_at_arrival_and_answers_later() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(Endpoint::Cancel, Fault::Latency(Duration::from_secs(3)));
    let t0 = Instant::now();
    let cancel = tokio::spawn({
        let server = server.clone();
        async move { call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await }
    });
    // Observed at arrival, unanswered.
    let log = server
        .wait_for(Duration::from_millis(10), |_| {
            !server.cancels_for(OP1).is_empty()
        })
        .await
        .unwrap();
    let pending = log.last().unwrap();
    assert_eq!(pending.endpoint, Endpoint::Cancel);
    assert!(!pending.is_answered());
    assert_eq!(pending.status, StatusCode::PROCESSING);
    assert_eq!(Instant::now(), t0);
    assert_eq!(server.operation(OP1).unwrap()["done"], false);

    let answer = cancel.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(Instant::now() - t0, Duration::from_secs(3));
    assert_eq!(server.operation(OP1).unwrap()["error"]["code"], 1);
    let cancel = &server.cancels_for(OP1)[0];
    assert!(cancel.is_answered());
    assert_eq!(cancel.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn dropped_requests_are_logged_as_499() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(Endpoint::Get, Fault::Latency(Duration::from_secs(3)));
    let request = Request::get(format!("/v1/{OP1}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let result =
        tokio::time::timeout(Duration::from_secs(1), server.clone().oneshot(request)).await;
    assert!(result.is_err());
    let get = &server.requests_to(Endpoint::Get)[0];
    assert_eq!(get.status.as_u16(), 499);
}

#[tokio::test(start_paused = true)]
async fn disconnect_fault_in_memory_answers_502() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(Endpoint::Cancel, Fault::Disconnect);
    let answer = call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    assert_error(&answer, 502, "UNAVAILABLE");
    assert_eq!(server.operation(OP1).unwrap()["done"], false);
    assert_eq!(server.cancels_for(OP1)[0].status, StatusCode::BAD_GATEWAY);
}

#[tokio::test(start_paused = true)]
async fn fault_field_records_the_fault_applied() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(
        Endpoint::Get,
        Fault::Script(vec![StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK]),
    );
    get(&server, OP1).await;
    get(&server, OP1).await;
    let faults: Vec<Option<FaultKind>> = server.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [
            None,
            Some(FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE)),
            None, // 200 in a script means "normal": not reported as a fault.
        ]
    );
}

/// The statuses of `n` GetOperation requests to a server with `fault` on Get.
async fn get_statuses(fault: Fault, n: usize) -> (Vec<u16>, Vec<Option<FaultKind>>) {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(Endpoint::Get, fault);
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(get(&server, OP1).await.status.as_u16());
    }
    let faults = server
        .requests_to(Endpoint::Get)
        .into_iter()
        .map(|r| r.fault)
        .collect();
    (statuses, faults)
}

fn random(rate: f64, seed: u64) -> Fault {
    Fault::Random {
        rate,
        faults: vec![
            FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE),
            FaultKind::RetryAfter(StatusCode::TOO_MANY_REQUESTS, Duration::from_secs(2)),
            FaultKind::Disconnect, // in memory: 502
        ],
        seed,
    }
}

#[tokio::test(start_paused = true)]
async fn random_fault_is_a_rate_and_deterministic_for_a_seed() {
    let (statuses, faults) = get_statuses(random(0.3, 42), 1000).await;
    let faulted = statuses.iter().filter(|s| **s != 200).count();
    // 30 % of 1000, give or take the binomial spread (σ ≈ 14.5).
    assert!((240..=360).contains(&faulted), "{faulted} faulted");
    for (kind, status) in [(503, 503), (429, 429), (502, 502)] {
        let n = statuses.iter().filter(|s| **s == status).count();
        // Each kind about a third of the faulted ones.
        assert!(n > faulted / 5, "{n} × {kind} of {faulted}");
    }
    // The log says which fault each request got.
    for (status, fault) in statuses.iter().zip(&faults) {
        let expected = match status {
            200 => None,
            503 => Some(FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE)),
            429 => Some(FaultKind::RetryAfter(
                StatusCode::TOO_MANY_REQUESTS,
                Duration::from_secs(2),
            )),
            502 => Some(FaultKind::Disconnect),
            other => panic!("unexpected status {other}"),
        };
        assert_eq!(fault, &expected);
    }

    // The same seed gives the same answers; another seed, others.
    let (again, _) = get_statuses(random(0.3, 42), 1000).await;
    assert_eq!(statuses, again);
    let (other, _) = get_statuses(random(0.3, 43), 1000).await;
    assert_ne!(statuses, other);

    // Rates 0 and 1, out of range, NaN.
    let (none, _) = get_statuses(random(0.0, 1), 200).await;
    assert!(none.iter().all(|s| *s == 200));
    let (all, _) = get_statuses(random(1.0, 1), 200).await;
    assert!(all.iter().all(|s| *s != 200));
    let (all, _) = get_statuses(random(7.0, 1), 50).await;
    assert!(all.iter().all(|s| *s != 200));
    let (none, _) = get_statuses(random(f64::NAN, 1), 50).await;
    assert!(none.iter().all(|s| *s == 200));

    // Nothing to choose from removes the fault.
    let (none, _) = get_statuses(
        Fault::Random {
            rate: 1.0,
            faults: Vec::new(),
            seed: 1,
        },
        5,
    )
    .await;
    assert_eq!(none, [200; 5]);
}

#[tokio::test(start_paused = true)]
async fn random_faulted_cancels_cancel_nothing() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(
        Endpoint::Cancel,
        Fault::Random {
            rate: 1.0,
            faults: vec![FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE)],
            seed: 3,
        },
    );
    let answer = call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    assert_error(&answer, 503, "UNAVAILABLE");
    assert_eq!(server.operation(OP1).unwrap()["done"], false);
}

#[tokio::test(start_paused = true)]
async fn retry_after_fault_answers_the_status_with_whole_seconds() {
    let server = OperationsServer::new();
    start(&server, "").await;
    for (status, after, header) in [
        (StatusCode::TOO_MANY_REQUESTS, Duration::from_secs(3), "3"),
        (StatusCode::TOO_MANY_REQUESTS, Duration::from_millis(1), "1"),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(1500),
            "2",
        ),
        (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO, "0"),
    ] {
        server.inject(
            Endpoint::Cancel,
            Fault::Always(FaultKind::RetryAfter(status, after)),
        );
        let answer = call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
        assert_error(&answer, status.as_u16(), canonical(status));
        assert_eq!(answer.headers["retry-after"], header, "{status} {after:?}");
        assert_eq!(answer.headers.get_all("retry-after").iter().count(), 1);
    }
    assert_eq!(server.operation(OP1).unwrap()["done"], false);
}

fn canonical(status: StatusCode) -> &'static str {
    fault::canonical_status(status)
}

#[tokio::test(start_paused = true)]
async fn sequence_fault_steps_through_any_kinds_then_is_removed() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(
        Endpoint::Get,
        Fault::Sequence(vec![
            FaultKind::Latency(Duration::from_secs(2)),
            FaultKind::Normal,
            FaultKind::RetryAfter(StatusCode::TOO_MANY_REQUESTS, Duration::from_secs(5)),
            FaultKind::Disconnect,
        ]),
    );
    let t0 = Instant::now();
    assert_eq!(get(&server, OP1).await.status, StatusCode::OK);
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    assert_eq!(get(&server, OP1).await.status, StatusCode::OK);
    let answer = get(&server, OP1).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(answer.headers["retry-after"], "5");
    assert_error(&get(&server, OP1).await, 502, "UNAVAILABLE");
    // Used up: removed.
    assert_eq!(get(&server, OP1).await.status, StatusCode::OK);
    assert!(!format!("{server:?}").contains("Sequence"));
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn hang_never_answers_and_does_nothing() {
    let server = OperationsServer::new();
    start(&server, "").await;
    server.inject(Endpoint::Cancel, Fault::Hang);
    let request = Request::post(format!("/v1/{OP1}:cancel"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut call = Box::pin(server.clone().oneshot(request));
    // A day later, still no answer (time is paused and auto-advances).
    let result = tokio::time::timeout(Duration::from_secs(86_400), call.as_mut()).await;
    assert!(result.is_err());
    let cancel = &server.cancels_for(OP1)[0];
    assert!(!cancel.is_answered());
    assert_eq!(cancel.fault, Some(FaultKind::Hang));
    assert_eq!(
        server.operation(OP1).unwrap()["done"],
        true,
        "done by its 10 s duration"
    );
    assert!(
        server.operation(OP1).unwrap()["error"].is_null(),
        "not cancelled"
    );
    // The caller gives up: 499.
    drop(call);
    assert_eq!(server.cancels_for(OP1)[0].status.as_u16(), 499);

    // `Always(Hang)` is the same.
    server.inject(Endpoint::Get, Fault::Always(FaultKind::Hang));
    let result = tokio::time::timeout(Duration::from_secs(60), get(&server, OP1)).await;
    assert!(result.is_err());
}

#[tokio::test(start_paused = true)]
async fn late_answer_does_the_work_at_once_and_answers_later() {
    let server = OperationsServer::new().default_duration(Duration::from_secs(60));
    server.inject(
        Endpoint::Start,
        Fault::Always(FaultKind::LateAnswer(Duration::from_secs(3))),
    );
    let t0 = Instant::now();
    let first = tokio::spawn({
        let server = server.clone();
        async move { start(&server, "").await }
    });
    // Created at once, named in the log, answer pending.
    let log = server
        .wait_for(Duration::from_millis(1), |log| {
            log.first().is_some_and(|r| r.operation.is_some())
        })
        .await
        .unwrap();
    assert_eq!(log[0].operation.as_deref(), Some(OP1));
    assert!(!log[0].is_answered());
    assert_eq!(
        log[0].fault,
        Some(FaultKind::LateAnswer(Duration::from_secs(3)))
    );
    assert_eq!(server.operation(OP1).unwrap()["done"], false);
    let op = first.await.unwrap();
    assert_eq!(op["name"], OP1);
    assert_eq!(Instant::now() - t0, Duration::from_secs(3));
    assert_eq!(server.requests()[0].status, StatusCode::OK);

    // A caller that gives up during the hold leaves the operation running;
    // the log still names it.
    let request = Request::post(JOBS).body(Empty::<Bytes>::new()).unwrap();
    let result =
        tokio::time::timeout(Duration::from_secs(1), server.clone().oneshot(request)).await;
    assert!(result.is_err());
    let op2 = "projects/p/locations/l/operations/op-2";
    let second = &server.requests_to(Endpoint::Start)[1];
    assert_eq!(second.status.as_u16(), 499);
    assert_eq!(second.operation.as_deref(), Some(op2));
    assert_eq!(server.operation(op2).unwrap()["done"], false);

    // On a cancel: the operation is cancelled before the answer arrives.
    server.inject(
        Endpoint::Cancel,
        Fault::Always(FaultKind::LateAnswer(Duration::from_secs(3))),
    );
    let request = Request::post(format!("/v1/{op2}:cancel"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let result =
        tokio::time::timeout(Duration::from_secs(1), server.clone().oneshot(request)).await;
    assert!(result.is_err());
    assert_eq!(server.operation(op2).unwrap()["error"]["code"], 1);
}
