//! 503s inside the stack: the retry layer retries the cancel (with the auth
//! layer's current token), the Start (with the same body) and a poll, before
//! the layer's own policies see them; without it, one cancel attempt.

use super::*;

#[tokio::test]
async fn the_cancel_carries_the_auth_layers_current_token_and_its_503_is_retried_by_the_retry_layer(
) {
    let (server, handle) = server_failing_once(Endpoint::Cancel).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    let (layer, mut client) = one_cancel_attempt(&token, true);

    // A token refresh while the operation runs; then the caller gives up.
    let name = abandon_after_polls(&mut client, &server, &base, 1, || token.set("token-2")).await;
    let report = drain_once_settled(&server, &layer, |r| {
        r.operation.as_deref() == Some(&*name) && r.status == StatusCode::OK
    })
    .await;

    let cancels = server.cancels_for(&name);
    assert_eq!(
        statuses(&cancels),
        [503, 200],
        "the 503 was retried: {cancels:?}"
    );
    for cancel in &cancels {
        assert_eq!(cancel.method, Method::POST);
        assert_eq!(cancel.path, format!("/v1/{name}:cancel"));
        assert!(cancel.body.is_empty(), "AIP-151: empty body");
        assert_eq!(
            cancel.headers[AUTHORIZATION], "Bearer token-2",
            "the auth layer's token at the time of the cancel"
        );
    }
    // The caller's request had no authorization; the auth layer gave the
    // start the token of its time.
    let starts = server.requests_to(Endpoint::Start);
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].headers[AUTHORIZATION], "Bearer token-1");

    // The layer sent one request and counted one accepted cancel: the retry
    // was the retry layer's, inside it.
    assert_eq!(report.stats.fired, 1);
    assert_eq!(report.stats.accepted, 1);
    assert_eq!(report.stats.retried, 0);
    assert_eq!(report.stats.failed, 0);

    let op = get_operation(&base, &name).await;
    assert!(op.done);
    assert_eq!(op.error.map(|e| e.code), Some(1), "CANCELLED");
}

#[tokio::test]
async fn without_the_retry_layer_the_same_503_ends_the_cancel_after_one_attempt() {
    // The control for the test above: same fault, same CancelPolicy, no
    // retry layer.
    let (server, handle) = server_failing_once(Endpoint::Cancel).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    let (layer, mut client) = one_cancel_attempt(&token, false);

    let name = abandon_after_polls(&mut client, &server, &base, 1, || {}).await;
    let report = drain_once_settled(&server, &layer, RecordedRequest::is_answered).await;
    let cancels = server.cancels_for(&name);
    assert_eq!(statuses(&cancels), [503]);
    assert_eq!(cancels[0].headers[AUTHORIZATION], "Bearer token-1");
    assert_eq!(report.stats.fired, 1);
    assert_eq!(report.stats.failed, 1);
    assert_eq!(report.stats.accepted, 0);
    let op = get_operation(&base, &name).await;
    assert!(!op.done, "the operation was not cancelled");
}

#[tokio::test]
async fn a_503_on_start_is_retried_with_the_same_body_and_the_operation_is_waited_on() {
    let (server, handle) = server_failing_once(Endpoint::Start).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(&token, true));

    let response = send(&mut client, start_without_auth(&base, 40))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let op = operation_of(response).await;
    let name = only_operation(&server);
    assert_eq!(op.name, name);
    assert!(op.done, "the caller gets the done operation");
    assert!(op.error.is_none());

    let starts = server.requests_to(Endpoint::Start);
    assert_eq!(statuses(&starts), [503, 200]);
    for start in &starts {
        assert_eq!(start.body, br#"{"durationMs": 40}"#[..], "resent intact");
        assert_eq!(start.headers[AUTHORIZATION], "Bearer token-1");
    }
    let polls = polls_of(&server, &name);
    assert!(!polls.is_empty());
    assert!(polls
        .iter()
        .all(|p| p.headers[AUTHORIZATION] == "Bearer token-1"));
    common::assert_no_cancel(&layer.handle(), &server).await;
}

#[tokio::test]
async fn a_503_on_a_poll_is_absorbed_by_the_retry_layer_before_the_poll_policy_sees_it() {
    let (server, handle) = server_failing_once(Endpoint::Get).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    // The layer tolerates no transient poll failure at all: a 503 reaching
    // it would end the call with Error::Poll and a cancel.
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls().max_transient_failures(0));
    let mut with_retry = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(&token, true));

    let response = send(&mut with_retry, start_without_auth(&base, 40))
        .await
        .unwrap();
    let op = operation_of(response).await;
    assert!(op.done);
    assert!(op.error.is_none());
    let name = only_operation(&server);
    let polls = polls_of(&server, &name);
    assert_eq!(statuses(&polls[..2]), [503, 200], "{polls:?}");
    common::assert_no_cancel(&layer.handle(), &server).await;

    // Without the retry layer the same 503 reaches the layer.
    server.inject(
        Endpoint::Get,
        Fault::Script(vec![StatusCode::SERVICE_UNAVAILABLE]),
    );
    let mut without_retry = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(&token, false));
    let result = send(&mut without_retry, start_without_auth(&base, 60_000)).await;
    match result.map(|r| r.status()) {
        Err(Error::Poll {
            status: Some(status),
            ..
        }) => assert_eq!(status.http(), Some(StatusCode::SERVICE_UNAVAILABLE)),
        other => panic!("expected Error::Poll with 503, got {other:?}"),
    }
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    // Polling gave up: the server received one cancel, for the second
    // operation, with the caller's credentials, and the operation ended
    // CANCELLED.
    let second = server
        .operation_names()
        .into_iter()
        .find(|n| *n != name)
        .expect("the second call started an operation");
    let cancels = server.requests_to(Endpoint::Cancel);
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].operation.as_deref(), Some(&*second));
    assert_eq!(cancels[0].headers[AUTHORIZATION], "Bearer token-1");
    assert_eq!(server.operation(&second).unwrap()["error"]["code"], 1);
    assert_eq!(report.stats.fired, 1);
}
