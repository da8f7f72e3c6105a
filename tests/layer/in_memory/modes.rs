//! Requests the layer passes through, detached requests, `ReturnImmediately`
//! and resuming an operation by name.

use super::*;

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
