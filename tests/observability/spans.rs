//! The spans a user sees, recorded from a real call over loopback.
//!
//! Under paused tokio time: the clock moves only when every task is idle,
//! and a loopback answer is readable as soon as it is written, so the
//! layer's deadline (100 ms of that clock) passes after the Start's answer
//! and some polls, never before them however busy the machine is. (The
//! recorder is a thread-local subscriber: see `isolate_subscribers` in
//! `main.rs` for why that is reliable beside the crate's other tests.)

use crate::common;

use std::time::Duration;

use common::*;
use tower_lro::{CancelOnDropLayer, Error};
use tower_lro_testing::OperationsServer;

#[tokio::test(start_paused = true)]
async fn spans_record_the_call_the_polls_and_the_cancel() {
    crate::isolate_subscribers();
    let recorder = SpanRecorder::default();
    let _guard = recorder.install();
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .deadline(Duration::from_millis(100));
    let mut client = lro_client(&layer);
    let err = send(&mut client, start(&handle.base_url(), 60_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DeadlineExceeded { .. }));
    let name = only_operation(&server);
    layer.handle().drain(WAIT).await;

    let calls = recorder.named("lro.call");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.fields["http.request.method"], "POST");
    assert_eq!(call.fields["url.path"], "/v1/projects/p/locations/l/jobs");
    assert_eq!(call.fields["operation.name"], name);

    let polls = recorder.named("lro.poll");
    assert!(!polls.is_empty());
    for (i, poll) in polls.iter().enumerate() {
        assert_eq!(poll.parent, Some(call.index), "lro.poll is inside lro.call");
        assert_eq!(poll.fields["attempt"], (i + 1).to_string());
        assert!(poll.fields.contains_key("delay_ms"));
    }
    assert!(polls.iter().any(|p| p
        .fields
        .get("http.response.status_code")
        .map(String::as_str)
        == Some("200")));

    let cancels = recorder.named("lro.cancel");
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    let cancel = &cancels[0];
    assert_eq!(
        cancel.follows_from,
        vec![call.index],
        "follows_from its lro.call"
    );
    assert_eq!(cancel.parent, None, "detached from the caller's span tree");
    assert_eq!(cancel.fields["operation.name"], name);
    assert_eq!(cancel.fields["reason"], "deadline");
    assert_eq!(cancel.fields["attempt"], "1");
    assert_eq!(cancel.fields["http.response.status_code"], "200");
    assert_eq!(cancel.fields["outcome"], "accepted");
}
