//! Redirects: the layer follows none for its polls and cancels; a
//! redirect-following inner service is the user's policy.

use super::*;

// ===== redirects =====

#[tokio::test]
async fn a_redirected_cancel_is_not_followed() {
    let other = OtherHost::start().await;
    let statuses = [301, 302, 303, 307, 308];
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    for status in statuses {
        let status = StatusCode::from_u16(status).unwrap();
        let name: &'static str = Box::leak(
            format!(
                "projects/p/locations/l/operations/redirect-{}",
                status.as_u16()
            )
            .into_boxed_str(),
        );
        let (addr, log, server) =
            recording_server(never_done(name, status, format!("http://{}", other.addr))).await;
        let mut client = lro_client(&layer);
        start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
        log.wait_for(|log| log.iter().any(|s| s.target.ends_with(":cancel")))
            .await;
        let report = layer.handle().drain(WAIT).await;
        assert!(report.is_complete(), "{report:?}");
        let cancels: Vec<Seen> = log
            .all()
            .into_iter()
            .filter(|s| s.target.ends_with(":cancel"))
            .collect();
        assert_eq!(cancels.len(), 1, "{status}: one cancel, not retried");
        assert_eq!(cancels[0].target, format!("/v1/{name}:cancel"));
        server.abort();
    }
    let stats = layer.handle().stats();
    assert_eq!(stats.fired, statuses.len() as u64, "{stats:?}");
    assert_eq!(
        stats.failed,
        statuses.len() as u64,
        "a 3xx is a failed cancel: {stats:?}"
    );
    assert_eq!((stats.accepted, stats.retried), (0, 0), "{stats:?}");
    other.assert_untouched().await;
}

#[tokio::test]
async fn a_redirected_poll_is_not_followed() {
    const NAME: &str = "projects/p/locations/l/operations/poll-redirect";
    let other = OtherHost::start().await;
    let location = format!("http://{}/v1/{NAME}", other.addr);
    let (addr, log, server) = recording_server(Arc::new(move |seen: &Seen| {
        match (&seen.method, seen.target.ends_with(":cancel")) {
            (&Method::POST, false) => json(StatusCode::OK, format!(r#"{{"name":"{NAME}"}}"#)),
            (&Method::POST, true) => json(StatusCode::OK, "{}"),
            _ => {
                let mut response = json(StatusCode::FOUND, "{}");
                response
                    .headers_mut()
                    .insert("location", location.parse().unwrap());
                response
            }
        }
    }))
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);
    let err = send(&mut client, start(&format!("http://{addr}"), 60_000))
        .await
        .unwrap_err();
    match &err {
        Error::Poll {
            operation, status, ..
        } => {
            assert_eq!(operation.as_str(), NAME);
            assert_eq!(
                *status,
                Some(tower_lro::WireStatus::Http(StatusCode::FOUND))
            );
        }
        other => panic!("expected Error::Poll, got {other:?}"),
    }
    let report = layer.handle().drain(WAIT).await;
    assert_eq!(
        (report.stats.fired, report.stats.accepted),
        (1, 1),
        "{report:?}"
    );
    let seen = log.all();
    let polls = seen.iter().filter(|s| s.method == Method::GET).count();
    assert_eq!(polls, 1, "a 302 is not retried or followed");
    let cancel = seen.iter().find(|s| s.target.ends_with(":cancel")).unwrap();
    assert_eq!(cancel.target, format!("/v1/{NAME}:cancel"));
    other.assert_untouched().await;
    server.abort();
}

/// Starts operation `name` through `client` (a stack with `layer` on top)
/// on a server whose cancel answers `307` to `redirect_to`, gives up, and
/// drains `layer`'s cancels: the drain's report.
async fn cancel_redirected<S>(
    name: &'static str,
    layer: &CancelOnDropLayer,
    mut client: S,
    redirect_to: SocketAddr,
) -> DrainReport
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let redirect_to = format!("http://{redirect_to}");
    let respond = never_done(name, StatusCode::TEMPORARY_REDIRECT, redirect_to);
    let (addr, log, server) = recording_server(respond).await;
    start_then_give_up(&mut client, &log, request_with_every_kind_of_header(addr)).await;
    let report = layer.handle().drain(WAIT).await;
    server.abort();
    report
}

/// A redirect-following inner service is the user's choice: the layer hands
/// it its poll and cancel requests like any other. tower-http's
/// `FollowRedirect` with its default policy follows a cross-origin 307 and
/// strips `authorization`, `cookie` and `proxy-authorization` — but not
/// `x-goog-api-key` or `x-goog-user-project`. With `SameOrigin` it does not
/// follow, and the cancel counts as failed. (README, "Security".)
#[tokio::test]
async fn follow_redirect_inside_the_layer_is_the_users_policy() {
    use tower_http::follow_redirect::policy::{PolicyExt, SameOrigin};
    use tower_http::follow_redirect::FollowRedirectLayer;
    const NAME: &str = "projects/p/locations/l/operations/follow";

    // The redirect target is an HTTP server here, to see what arrives.
    let (other_addr, other_log, other_server) =
        recording_server(Arc::new(|_: &Seen| json(StatusCode::OK, "{}"))).await;

    // 1. The default policy: followed, credentials filtered (partly).
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(FollowRedirectLayer::new())
        .service(http_client());
    let report = cancel_redirected(NAME, &layer, client, other_addr).await;
    assert_eq!(
        (report.stats.fired, report.stats.accepted),
        (1, 1),
        "{report:?}"
    );
    let followed = other_log.all();
    assert_eq!(followed.len(), 1, "{followed:#?}");
    let followed = &followed[0];
    assert_eq!(followed.method, Method::POST);
    assert_eq!(followed.target, format!("/v1/{NAME}:cancel"));
    for dropped in ["authorization", "cookie", "proxy-authorization"] {
        assert!(
            !followed.headers.contains_key(dropped),
            "{dropped} crossed origins"
        );
    }
    assert_eq!(followed.headers["x-goog-api-key"], "api-key-123");
    assert_eq!(followed.headers["x-goog-user-project"], "billing-project");

    // 2. SameOrigin: not followed; the 307 reaches the layer, a failed cancel.
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let policy = tower_http::follow_redirect::policy::Limited::default()
        .and::<_, Full<Bytes>, ()>(SameOrigin::new());
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(FollowRedirectLayer::with_policy(policy))
        .service(http_client());
    let report = cancel_redirected(NAME, &layer, client, other_addr).await;
    assert_eq!(
        (report.stats.fired, report.stats.failed),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(other_log.len(), 1, "nothing more reached the other origin");
    other_server.abort();
}
