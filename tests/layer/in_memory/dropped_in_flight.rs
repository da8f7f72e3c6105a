//! Calls dropped or timed out before the Start's answer arrived: what they
//! started is still cancelled, and a non-Operation answer sends nothing.

use super::*;

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
