//! Shared by the gRPC tests: the embedded server on loopback, a real tonic
//! `Channel` to it, and the layer around that channel.

use std::time::Duration;

use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_lro::{CancelOnDrop, CancelOnDropLayer, CancelPolicy, PollPolicy};
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest, Release};
use tower_lro_testing::{Endpoint, OperationsServer, RecordedRequest, ServerHandle};

/// The seeds' delivery pipeline.
pub const PIPELINE: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";

/// A long bound for waiting on the server's log: tests wait on a condition,
/// this only stops a broken test from hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// The embedded server (operations run 10 minutes unless told) and a
/// connected HTTP/2 channel to it.
pub async fn serve() -> (OperationsServer, ServerHandle, Channel) {
    let server = OperationsServer::new().default_duration(Duration::from_secs(600));
    let handle = server.serve().await.expect("bind loopback");
    let channel = Channel::from_shared(handle.base_url())
        .expect("a valid URL")
        .connect()
        .await
        .expect("connect");
    (server, handle, channel)
}

/// Polls every 5 ms, no jitter.
pub fn fast_polls() -> PollPolicy {
    PollPolicy::new()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .jitter(false)
}

/// A layer with fast polls and quick cancel retries.
pub fn layer() -> CancelOnDropLayer {
    CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(
            CancelPolicy::new()
                .backoff(Duration::from_millis(20), Duration::from_millis(200))
                .attempt_timeout(Duration::from_secs(1)),
        )
}

/// A generated-style CloudDeploy client through `layer` over `channel`.
pub fn deploy(
    layer: &CancelOnDropLayer,
    channel: &Channel,
) -> CloudDeployClient<CancelOnDrop<Channel>> {
    CloudDeployClient::new(
        ServiceBuilder::new()
            .layer(layer.clone())
            .service(channel.clone()),
    )
}

/// `CreateRelease {PIPELINE}/releases/{id}`, running `duration_ms`.
pub fn create(id: &str, duration_ms: u64) -> tonic::Request<CreateReleaseRequest> {
    let mut request = tonic::Request::new(CreateReleaseRequest {
        parent: PIPELINE.into(),
        release_id: id.into(),
        release: Some(Release::default()),
    });
    request.metadata_mut().insert(
        "x-duration-ms",
        duration_ms
            .to_string()
            .parse()
            .expect("digits are metadata"),
    );
    request
        .metadata_mut()
        .insert("authorization", "Bearer token-1".parse().expect("ascii"));
    request
}

/// Waits until the server has answered a CancelOperation with `OK`; the log.
pub async fn accepted_cancel(server: &OperationsServer) -> Vec<RecordedRequest> {
    server
        .wait_for(WAIT, |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && r.grpc_status == Some(0))
        })
        .await
        .expect("a CancelOperation answered OK")
}

/// What the server's log shows of one operation's CancelOperations, in
/// order of arrival.
#[derive(Debug)]
pub struct Cancels {
    /// Every CancelOperation for it.
    pub sent: usize,
    /// Those answered `OK`.
    pub accepted: usize,
}

/// The operation `name`'s cancels in `log`, checked: at most `attempts`,
/// and none after the first answered `OK` (by arrival order).
pub fn cancels_of(log: &[RecordedRequest], name: &str, attempts: u32) -> Cancels {
    let mine: Vec<&RecordedRequest> = log
        .iter()
        .filter(|r| r.endpoint == Endpoint::Cancel && r.operation.as_deref() == Some(name))
        .collect();
    assert!(
        mine.len() <= attempts as usize,
        "{name}: {} cancels, more than the policy's {attempts} attempts",
        mine.len()
    );
    if let Some(first_ok) = mine.iter().position(|r| r.grpc_status == Some(0)) {
        assert_eq!(
            first_ok + 1,
            mine.len(),
            "{name}: a cancel after the first OK: {:?}",
            mine.iter()
                .map(|r| (r.grpc_status, &r.fault))
                .collect::<Vec<_>>()
        );
    }
    Cancels {
        sent: mine.len(),
        accepted: mine.iter().filter(|r| r.grpc_status == Some(0)).count(),
    }
}

/// Drains `handle` (failing if that takes longer than [`WAIT`]), then
/// checks from the server's log that `name` got exactly one CancelOperation,
/// answered `OK`, and is CANCELLED.
pub async fn exactly_one_cancel(
    server: &OperationsServer,
    handle: &tower_lro::CancelHandle,
    name: &str,
) {
    let report = handle.drain(WAIT).await;
    assert!(
        report.is_complete(),
        "cancels still pending after {WAIT:?}: {report:?}"
    );
    let cancels = cancels_of(&server.requests(), name, 1);
    assert_eq!(
        (cancels.sent, cancels.accepted),
        (1, 1),
        "{name}: {cancels:?}"
    );
    let op = server.operation(name).expect("the operation exists");
    assert_eq!(op["error"]["code"], 1, "{name} CANCELLED: {op}");
}
