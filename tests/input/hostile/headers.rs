//! The header allowlist: only the allowlisted headers (and those the user
//! adds with `forward_headers`) of the caller's request reach the poll and
//! the cancel.

use super::*;

// ===== the header allowlist =====

async fn check_allowlist(layer: CancelOnDropLayer, extra: &[(&str, &str)]) {
    const NAME: &str = "projects/p/locations/l/operations/headers";
    let (addr, log, server) =
        recording_server(never_done(NAME, StatusCode::OK, String::new())).await;
    let mut client = lro_client(&layer);
    start_then_give_up(&mut client, &log, request_with_every_kind_of_header(addr)).await;
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.fired, report.stats.accepted),
        (1, 1),
        "{report:?}"
    );

    let mut expected: Vec<(&str, String)> = vec![
        ("authorization", "Bearer secret-token".into()),
        ("host", addr.to_string()),
        ("user-agent", "hostile-test/1.0".into()),
        ("x-goog-api-client", "gl-rust/1.95 gccl/0.1".into()),
        ("x-goog-api-key", "api-key-123".into()),
        (
            "x-goog-request-params",
            "name=projects%2Fp%2Flocations%2Fl%2Foperations%2Fheaders".into(),
        ),
        ("x-goog-user-project", "billing-project".into()),
    ];
    expected.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));

    let seen = log.all();
    let polls: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::GET).collect();
    let cancels: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.target.ends_with(":cancel"))
        .collect();
    assert!(!polls.is_empty());
    assert_eq!(cancels.len(), 1, "{seen:#?}");
    for poll in &polls {
        assert_eq!(poll.target, format!("/v1/{NAME}"));
        let mut want: Vec<String> = expected.iter().map(|(k, _)| (*k).to_owned()).collect();
        want.sort();
        assert_eq!(header_names(&poll.headers), want, "poll headers");
        for (k, v) in &expected {
            assert_eq!(
                poll.headers.get_all(*k).iter().collect::<Vec<_>>(),
                [v.as_str()],
                "{k}"
            );
        }
    }
    let cancel = cancels[0];
    assert_eq!(cancel.target, format!("/v1/{NAME}:cancel"));
    assert!(cancel.body.is_empty());
    let mut want: Vec<String> = expected.iter().map(|(k, _)| (*k).to_owned()).collect();
    want.push("content-length".to_owned());
    want.sort();
    assert_eq!(header_names(&cancel.headers), want, "cancel headers");
    assert_eq!(cancel.headers["content-length"], "0");
    for (k, v) in &expected {
        assert_eq!(
            cancel.headers.get_all(*k).iter().collect::<Vec<_>>(),
            [v.as_str()],
            "{k}"
        );
    }
    server.abort();
}

#[tokio::test]
async fn only_allowlisted_headers_reach_the_poll_and_the_cancel() {
    check_allowlist(CancelOnDropLayer::new().poll_policy(fast_polls()), &[]).await;
}

#[tokio::test]
async fn forward_headers_adds_to_the_allowlist() {
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .forward_headers([HeaderName::from_static("x-custom")]);
    check_allowlist(layer, &[("x-custom", "custom-value")]).await;
}
