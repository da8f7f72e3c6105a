//! The layer over gRPC: a real tonic `Channel` to the embedded server on
//! loopback, a CloudDeploy client (shaped like tonic-build's) through
//! `CancelOnDropLayer`, the seeds' clouddeploy names.
//!
//! `chaos` (1,000 operations, 30 % of cancel attempts faulted) and
//! `hostile` (crafted answers from a raw hyper HTTP/2 server) are modules
//! of this crate beside it.

use crate::support;

use std::time::Duration;

use prost::Message;
use tower_lro::{CancelPolicy, GrpcLroMethods, PollPolicy};
use tower_lro_testing::grpc::{OperationResult, Release};
use tower_lro_testing::{Endpoint, Fault, FaultKind};

use support::{accepted_cancel, create, deploy, exactly_one_cancel, layer, serve, PIPELINE, WAIT};

const FIRST: &str = "projects/my-project/locations/us-central1/operations/op-1";

#[tokio::test]
async fn a_finished_release_is_answered_done_with_no_cancel() {
    let (server, _handle, channel) = serve().await;
    let lro = layer();
    let cancels = lro.handle();
    let response = deploy(&lro, &channel)
        .create_release(create("r1", 100))
        .await
        .expect("the call succeeds");
    // The answer is the done Operation, framed as CreateRelease's response.
    let op = response.into_inner();
    assert_eq!(op.name, FIRST);
    assert!(op.done);
    let Some(OperationResult::Response(any)) = op.result else {
        panic!("expected a response: {:?}", op.result)
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/google.cloud.deploy.v1.Release"
    );
    assert_eq!(
        Release::decode(any.value.as_slice()).unwrap().name,
        format!("{PIPELINE}/releases/r1")
    );
    // Polled with GetOperation on the same channel, with the metadata.
    let gets = server.requests_to(Endpoint::Get);
    assert!(!gets.is_empty());
    assert_eq!(gets[0].path, "/google.longrunning.Operations/GetOperation");
    assert_eq!(gets[0].headers["authorization"], "Bearer token-1");
    assert_eq!(gets[0].headers["te"], "trailers");
    assert!(gets[0].headers.contains_key("grpc-timeout"));
    assert_eq!(
        gets[0].headers["x-goog-request-params"],
        "name=projects%2Fmy-project%2Flocations%2Fus-central1%2Foperations%2Fop-1"
    );
    assert!(server.cancels_for(FIRST).is_empty());
    assert_eq!(cancels.stats().fired, 0);
}

#[tokio::test]
async fn an_abandoned_release_is_cancelled_while_waiting() {
    let (server, _handle, channel) = serve().await;
    let lro = layer();
    let mut client = deploy(&lro, &channel);
    let call = client.create_release(create("r2", 600_000));
    tokio::select! {
        _ = call => panic!("the operation runs 10 minutes"),
        polled = server.wait_for(WAIT, |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => {
            polled.expect("the operation was polled");
        }
    }
    // Dropped while waiting.
    let log = accepted_cancel(&server).await;
    let cancel = log.iter().find(|r| r.endpoint == Endpoint::Cancel).unwrap();
    assert_eq!(
        cancel.path,
        "/google.longrunning.Operations/CancelOperation"
    );
    assert_eq!(cancel.operation.as_deref(), Some(FIRST));
    assert_eq!(cancel.headers["authorization"], "Bearer token-1");
    assert_eq!(cancel.headers["content-type"], "application/grpc");
    exactly_one_cancel(&server, &lro.handle(), FIRST).await;
}

#[tokio::test]
async fn a_call_dropped_before_its_first_answer_is_cancelled() {
    let (server, _handle, channel) = serve().await;
    // The operation exists at once; its answer arrives 300 ms later.
    server.inject(
        Endpoint::Start,
        Fault::Always(FaultKind::LateAnswer(Duration::from_millis(300))),
    );
    let lro = layer();
    let cancels = lro.handle();
    let mut client = deploy(&lro, &channel);
    let call = client.create_release(create("r3", 600_000));
    let created = |l: &[tower_lro_testing::RecordedRequest]| {
        l.iter()
            .any(|r| r.endpoint == Endpoint::Start && r.operation.is_some())
    };
    // The Start is logged as it arrives, 300 ms before its answer can: the
    // log is checked first, so a late wake-up cannot favour the call.
    tokio::select! {
        biased;
        arrived = server.wait_for(WAIT, created) => { arrived.expect("the Start arrived"); }
        _ = call => panic!("the answer is held back 300 ms"),
    }
    // Dropped with the Start's answer still on its way.
    exactly_one_cancel(&server, &cancels, FIRST).await;
    assert_eq!(cancels.stats().accepted, 1);
}

#[tokio::test]
async fn a_call_dropped_during_a_poll_is_cancelled() {
    let (server, _handle, channel) = serve().await;
    server.inject(Endpoint::Get, Fault::Hang);
    let lro = layer();
    let mut client = deploy(&lro, &channel);
    let call = client.create_release(create("r4", 600_000));
    let poll_arrived = server.wait_for(WAIT, |log| log.iter().any(|r| r.endpoint == Endpoint::Get));
    tokio::select! {
        _ = call => panic!("the poll hangs: the call cannot end"),
        arrived = poll_arrived => { arrived.unwrap(); }
    }
    // The call is dropped here, with its GetOperation in flight.
    exactly_one_cancel(&server, &lro.handle(), FIRST).await;
}

#[tokio::test]
async fn wait_operation_falls_back_to_get_on_unimplemented() {
    let (server, _handle, channel) = serve().await;
    server.inject(
        Endpoint::Wait,
        Fault::Status(http::StatusCode::NOT_IMPLEMENTED),
    );
    let lro = layer().poll_policy(PollPolicy::new().wait_operation(Duration::from_secs(5)));
    let op = deploy(&lro, &channel)
        .create_release(create("r5", 200))
        .await
        .unwrap()
        .into_inner();
    assert!(op.done);
    let waits = server.requests_to(Endpoint::Wait);
    assert_eq!(waits.len(), 1, "UNIMPLEMENTED is remembered");
    assert_eq!(waits[0].grpc_status, Some(12));
    assert!(!server.requests_to(Endpoint::Get).is_empty());
}

#[tokio::test]
async fn wait_operation_answers_when_done() {
    let (server, _handle, channel) = serve().await;
    let lro = layer().poll_policy(PollPolicy::new().wait_operation(Duration::from_secs(5)));
    let op = deploy(&lro, &channel)
        .create_release(create("r6", 200))
        .await
        .unwrap()
        .into_inner();
    assert!(op.done);
    assert!(server.requests_to(Endpoint::Get).is_empty());
    let waits = server.requests_to(Endpoint::Wait);
    assert_eq!(
        waits[0].path,
        "/google.longrunning.Operations/WaitOperation"
    );
    assert_eq!(waits[0].grpc_status, Some(0));
}

#[tokio::test]
async fn a_failed_poll_ends_the_call_naming_operation_and_code_and_cancels() {
    let (server, _handle, channel) = serve().await;
    server.inject(Endpoint::Get, Fault::Status(http::StatusCode::FORBIDDEN));
    let lro = layer();
    let status = deploy(&lro, &channel)
        .create_release(create("r7", 600_000))
        .await
        .expect_err("PERMISSION_DENIED ends the call");
    let message = status.message().to_owned();
    assert!(message.contains(FIRST), "{message}");
    assert!(message.contains("gRPC status 7"), "{message}");
    exactly_one_cancel(&server, &lro.handle(), FIRST).await;
}

#[tokio::test]
async fn transient_poll_failures_are_retried_honouring_retry_info() {
    let (server, _handle, channel) = serve().await;
    server.inject(
        Endpoint::Get,
        Fault::Sequence(vec![
            FaultKind::RetryAfter(
                http::StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_millis(300),
            ),
            FaultKind::Status(http::StatusCode::TOO_MANY_REQUESTS),
            FaultKind::Disconnect,
        ]),
    );
    // RESOURCE_EXHAUSTED carries a 1 s RetryInfo: the call takes at least
    // 1.3 s although polls are due every 5 ms at first (a RetryInfo delay
    // is honoured up to the poll policy's maximum delay, here 2 s).
    let lro = layer().poll_policy(
        PollPolicy::new()
            .initial_delay(Duration::from_millis(5))
            .max_delay(Duration::from_secs(2))
            .jitter(false),
    );
    let op = deploy(&lro, &channel)
        .create_release(create("r8", 100))
        .await
        .unwrap()
        .into_inner();
    assert!(op.done);
    let gets = server.requests_to(Endpoint::Get);
    let codes: Vec<_> = gets.iter().take(3).map(|r| r.grpc_status).collect();
    assert_eq!(codes, [Some(14), Some(8), None]);
    let gap = |a: usize, b: usize| gets[b].received_at - gets[a].received_at;
    assert!(gap(0, 1) >= Duration::from_millis(300), "{:?}", gap(0, 1));
    assert!(gap(1, 2) >= Duration::from_secs(1), "{:?}", gap(1, 2));
    assert!(server.cancels_for(FIRST).is_empty());
}

#[tokio::test]
async fn unimplemented_cancel_is_remembered_per_authority() {
    let (server, _handle, channel) = serve().await;
    server.inject(
        Endpoint::Cancel,
        Fault::Status(http::StatusCode::NOT_IMPLEMENTED),
    );
    let lro =
        layer().cancel_policy(CancelPolicy::new().remember_unimplemented(Duration::from_secs(60)));
    let cancels = lro.handle();
    let mut client = deploy(&lro, &channel);
    for id in ["u1", "u2"] {
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            client.create_release(create(id, 600_000)),
        )
        .await;
        assert!(cancels.drain(WAIT).await.is_complete());
    }
    assert_eq!(server.requests_to(Endpoint::Cancel).len(), 1);
    assert_eq!(cancels.stats().unimplemented, 2);
}

/// Two servers, one layer: A answers CancelOperation UNIMPLEMENTED; B's
/// cancel is still sent and accepted. A tonic `Channel` adds its origin
/// below the layer, so each client here gives its requests their server's
/// origin above the layer (the Channel's own origin is the same).
async fn two_authorities(lro: tower_lro::CancelOnDropLayer) {
    let (a, a_handle, to_a) = serve().await;
    let (b, b_handle, to_b) = serve().await;
    a.inject(
        Endpoint::Cancel,
        Fault::Status(http::StatusCode::NOT_IMPLEMENTED),
    );
    let cancels = lro.handle();
    for (server, handle, channel) in [(&a, &a_handle, &to_a), (&b, &b_handle, &to_b)] {
        let origin: http::Uri = handle.base_url().parse().expect("a URL");
        let stack = tower::ServiceBuilder::new()
            .map_request(move |mut request: http::Request<tonic::body::Body>| {
                let mut parts = origin.clone().into_parts();
                parts.path_and_query = request.uri().path_and_query().cloned();
                *request.uri_mut() = http::Uri::from_parts(parts).expect("origin and path");
                request
            })
            .layer(lro.clone())
            .service(channel.clone());
        let mut client = tower_lro_testing::grpc::CloudDeployClient::new(stack);
        let call = client.create_release(create("two", 600_000));
        tokio::select! {
            _ = call => panic!("the call finished"),
            polled = server.wait_for(WAIT, |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => {
                polled.expect("the operation was polled");
            }
        }
        assert!(cancels.drain(WAIT).await.is_complete());
    }
    let at_a = a.requests_to(Endpoint::Cancel);
    assert_eq!(at_a.len(), 1, "A: one UNIMPLEMENTED, not retried");
    assert_eq!(at_a[0].grpc_status, Some(12));
    let at_b = b.cancels_for(FIRST);
    assert_eq!(at_b.len(), 1, "B's cancel was sent once: {at_b:?}");
    assert_eq!(at_b[0].grpc_status, Some(0));
    assert_eq!(
        b.operation(FIRST).unwrap()["error"]["code"],
        1,
        "B's operation is CANCELLED"
    );
}

#[tokio::test]
async fn unimplemented_at_one_authority_does_not_silence_another() {
    two_authorities(
        layer()
            .cancel_policy(CancelPolicy::new().remember_unimplemented(Duration::from_secs(3600))),
    )
    .await;
}

#[tokio::test]
async fn opted_out_and_unlisted_methods_pass_through() {
    let (server, _handle, channel) = serve().await;
    let opted_out = GrpcLroMethods::googleapis()
        .without("/google.cloud.deploy.v1.CloudDeploy/CreateRelease")
        .unwrap();
    let lro = layer().grpc_lro_methods(opted_out);
    let op = deploy(&lro, &channel)
        .create_release(create("p1", 600_000))
        .await
        .unwrap()
        .into_inner();
    assert!(!op.done, "answered as the server sent it");
    let none = layer().grpc_lro_methods(GrpcLroMethods::none());
    let op = deploy(&none, &channel)
        .create_release(create("p2", 600_000))
        .await
        .unwrap()
        .into_inner();
    assert!(!op.done);
    assert!(server.requests_to(Endpoint::Get).is_empty());
}

#[tokio::test]
async fn the_layer_deadline_ends_the_call_and_cancels() {
    let (server, _handle, channel) = serve().await;
    let lro = layer().deadline(Duration::from_millis(300));
    let status = deploy(&lro, &channel)
        .create_release(create("d1", 600_000))
        .await
        .expect_err("a 10-minute operation outlives the deadline");
    // The layer polls only once it has the name, and never after the
    // deadline: a GetOperation at the server means the name was known when
    // the deadline passed, so the error names the operation. Without one
    // (the Start answered past the deadline on a loaded machine) the call
    // may have ended before the name was known.
    let polled = !server.requests_to(Endpoint::Get).is_empty();
    let message = status.message();
    assert!(
        message.contains(FIRST)
            || (!polled && message.contains("no response within the deadline of 300 ms")),
        "polled: {polled}; {message}"
    );
    // Either way, the operation gets its one cancel.
    exactly_one_cancel(&server, &lro.handle(), FIRST).await;
}
