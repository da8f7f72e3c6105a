//! Hostile bodies and cancel answers: never echoed into logs or errors,
//! bounded by the cancel's deadline, and a huge `Retry-After` without a
//! panic.

use super::*;

/// A hostile body's text reaches neither the logs nor the caller's error:
/// `serde_json` quotes the offending value in its messages (`invalid type:
/// string "…"`), so a `done` of 100 KB would be a 100 KB log line per
/// response, or a 100 KB `Error` message.
#[tokio::test]
async fn warn_events_and_errors_never_echo_a_hostile_body() {
    const NAME: &str = "projects/p/locations/l/operations/echo";
    let huge = format!(r#""{}\r\nX-Injected: 1""#, "y".repeat(100_000));
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let start_body = format!(r#"{{"name":"operations/x","done":{huge}}}"#);
    let poll_body = format!(r#"{{"name":"{NAME}","done":{huge}}}"#);
    let (addr, _log, server) = recording_server(Arc::new(move |seen: &Seen| {
        match (&seen.method, seen.target.as_str()) {
            (&Method::POST, "/v1/projects/p/locations/l/echo") => {
                json(StatusCode::OK, start_body.clone())
            }
            (&Method::POST, "/v1/projects/p/locations/l/jobs") => {
                json(StatusCode::OK, format!(r#"{{"name":"{NAME}"}}"#))
            }
            (&Method::GET, _) => json(StatusCode::OK, poll_body.clone()),
            _ => json(StatusCode::OK, "{}"),
        }
    }))
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);

    // The original response: untracked, one short warn event.
    let response = send(
        &mut client,
        post_empty(format!("http://{addr}/v1/projects/p/locations/l/echo")),
    )
    .await
    .unwrap();
    assert!(body_bytes(response.into_body()).await.len() > 100_000);
    let warned = warnings.all();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].len() < 1000,
        "a {}-byte warn event",
        warned[0].len()
    );
    assert!(!warned[0].contains(['\r', '\n']));

    // A poll response: the error names the operation, briefly.
    let err = send(&mut client, start(&format!("http://{addr}"), 60_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPollResponse { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains(NAME), "{shown}");
    assert!(shown.len() < 1000, "a {}-byte error message", shown.len());
    assert!(!shown.contains(['\r', '\n']));
    server.abort();
}

/// A cancel answered with a status the layer reads the body of (a 4xx
/// other than 404, to look for an AIP-193 `UNIMPLEMENTED`) and a body that
/// never ends: the cancel must still end within its own deadline, counted
/// `failed`, and free its slot; `drain` must not wait forever.
#[tokio::test]
async fn a_cancel_answer_whose_body_hangs_is_bounded_by_the_cancel_deadline() {
    const NAME: &str = "projects/p/locations/l/operations/hung-cancel";
    let (addr, log, server) = recording_server(cancel_answered(NAME, |_| {
        let first = stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
            Bytes::from_static(b"{\"error\":"),
        ))]);
        http::Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/json")
            .body(StreamBody::new(futures_util::StreamExt::chain(first, stream::pending())).boxed())
            .unwrap()
    }))
    .await;
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(
            tower_lro::CancelPolicy::new()
                .attempt_timeout(Duration::from_millis(100))
                .deadline(Duration::from_millis(300))
                // One slot: a cancel that kept it would block the next.
                .concurrency(1, 16),
        );
    let mut client = lro_client(&layer);
    let cancels_sent = |log: &[Seen]| log.iter().filter(|s| s.target.ends_with(":cancel")).count();
    start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
    log.wait_for(|log| cancels_sent(log) > 0).await;
    // Far longer than the cancel's 300 ms deadline; a bound, not a wait.
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "the cancel never ended: {report:?}");
    assert_eq!(
        (report.stats.fired, report.stats.failed),
        (1, 1),
        "{report:?}"
    );

    // The hung cancel freed its one slot: the next cancel is sent (held, it
    // would wait for the slot until its own deadline and send nothing).
    let before = cancels_sent(&log.all());
    start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
    log.wait_for(|log| cancels_sent(log) > before).await;
    let report = layer.handle().drain(WAIT).await;
    assert_eq!(
        (report.stats.fired, report.stats.failed, report.stats.shed),
        (2, 2, 0),
        "{report:?}"
    );
    server.abort();
}

/// `Retry-After` is a number from the server: the largest one must not
/// overflow the cancel's backoff arithmetic (a panic in the cancel task,
/// counted `lost`), but end the cancel as `failed` within its deadline.
#[tokio::test]
async fn a_huge_retry_after_on_a_cancel_fails_it_without_a_panic() {
    const NAME: &str = "projects/p/locations/l/operations/retry-after";
    let (addr, log, server) = recording_server(cancel_answered(NAME, |_| {
        let mut response = json(StatusCode::SERVICE_UNAVAILABLE, "{}");
        response
            .headers_mut()
            .insert("retry-after", u64::MAX.to_string().parse().unwrap());
        response
    }))
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);
    start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.fired, report.stats.failed, report.stats.lost),
        (1, 1, 0),
        "{report:?}"
    );
    let cancels = log
        .all()
        .iter()
        .filter(|s| s.target.ends_with(":cancel"))
        .count();
    assert_eq!(cancels, 1, "no retry scheduled past the cancel deadline");
    server.abort();
}
