//! Explicit cancels over gRPC: `CancelHandle::cancel` and
//! `CancelOnDrop::cancel` with a gRPC origin through a real tonic `Channel`
//! to the embedded server; and a REST-shaped cancel sent down a channel to
//! a tonic server, which must never count as accepted.

use crate::common;

use std::time::Duration;

use http::Uri;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_lro::{CancelOnDropLayer, CancelOutcome, CancelPolicy, OperationName, Origin};
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest, Release};
use tower_lro_testing::{Endpoint, OperationsServer};

use common::SpanRecorder;

const PIPELINE: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";

async fn connect(url: String) -> Channel {
    Channel::from_shared(url)
        .expect("a valid URL")
        .connect()
        .await
        .expect("connect")
}

/// Starts a release running 10 minutes through the bare channel (not the
/// layer): an operation the caller holds by name only.
async fn running_release(channel: &Channel, id: &str) -> OperationName {
    let mut client = CloudDeployClient::new(channel.clone());
    let op = client
        .create_release(tonic::Request::new(CreateReleaseRequest {
            parent: PIPELINE.into(),
            release_id: id.into(),
            release: Some(Release::default()),
        }))
        .await
        .expect("CreateRelease")
        .into_inner();
    assert!(!op.done);
    OperationName::parse(&op.name).expect("a valid name")
}

fn quick() -> CancelPolicy {
    CancelPolicy::new()
        .backoff(Duration::from_millis(5), Duration::from_millis(20))
        .attempt_timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn the_handle_cancels_a_grpc_operation_by_name_through_a_channel() {
    let server = OperationsServer::new().default_duration(Duration::from_secs(600));
    let handle = server.serve().await.expect("bind");
    let channel = connect(handle.base_url()).await;
    let name = running_release(&channel, "r1").await;
    let layer = CancelOnDropLayer::new().cancel_policy(quick());
    let cancels = layer.handle();
    // The stack users build; the handle is what they keep.
    let _client =
        CloudDeployClient::new(ServiceBuilder::new().layer(layer).service(channel.clone()));
    let recorder = SpanRecorder::default();
    let _guard = recorder.install();

    let origin = Origin::grpc(handle.base_url().parse().unwrap());
    let outcome = cancels
        .cancel(channel.clone(), &name, origin)
        .await
        .unwrap();

    assert_eq!(outcome, CancelOutcome::Accepted);
    let sent = server.cancels_for(name.as_str());
    assert_eq!(sent.len(), 1, "one CancelOperation: {sent:?}");
    assert_eq!(
        sent[0].path,
        "/google.longrunning.Operations/CancelOperation"
    );
    assert_eq!(sent[0].endpoint, Endpoint::Cancel);
    assert_eq!(sent[0].headers["content-type"], "application/grpc");
    let op = server.operation(name.as_str()).unwrap();
    assert_eq!(op["done"], true, "{op}");
    assert_eq!(op["error"]["code"], 1, "CANCELLED: {op}");
    let stats = cancels.stats();
    assert_eq!((stats.fired, stats.accepted), (1, 1), "{stats:?}");
    let spans = recorder.named("lro.cancel");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].fields["reason"], "explicit");
    assert_eq!(spans[0].fields["outcome"], "accepted");
    assert_eq!(spans[0].fields["rpc.system"], "grpc");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_built_stack_reaches_the_cancel_of_its_layer() {
    let server = OperationsServer::new().default_duration(Duration::from_secs(600));
    let handle = server.serve().await.expect("bind");
    let channel = connect(handle.base_url()).await;
    let name = running_release(&channel, "r2").await;
    let stack = ServiceBuilder::new()
        .timeout(Duration::from_secs(30))
        .layer(CancelOnDropLayer::new().cancel_policy(quick()))
        .service(channel.clone());

    let origin = Origin::grpc(handle.base_url().parse().unwrap());
    let outcome = stack.get_ref().cancel(&name, origin).await.unwrap();

    assert_eq!(outcome, CancelOutcome::Accepted);
    assert_eq!(server.cancels_for(name.as_str()).len(), 1);
    let op = server.operation(name.as_str()).unwrap();
    assert_eq!(op["error"]["code"], 1, "CANCELLED: {op}");
    // Unknown operations are NOT_FOUND over gRPC too.
    let missing = OperationName::parse("projects/p/locations/l/operations/missing").unwrap();
    let origin = Origin::grpc(handle.base_url().parse().unwrap());
    let outcome = stack.get_ref().cancel(&missing, origin).await.unwrap();
    assert_eq!(outcome, CancelOutcome::NotFound);
    handle.shutdown().await;
}

/// A plain tonic server with no services: every call is answered
/// `UNIMPLEMENTED` (HTTP 200, `content-type: application/grpc`,
/// `grpc-status: 12`), as tonic answers a path it does not serve.
async fn tonic_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_rest_cancel_answered_by_a_grpc_server_is_not_accepted() {
    let (url, server) = tonic_server().await;
    let channel = connect(url.clone()).await;
    let layer = CancelOnDropLayer::new()
        .path_prefix("/v1/")
        .cancel_policy(quick());
    let cancels = layer.handle();
    let name = OperationName::parse("projects/p/locations/l/operations/o").unwrap();
    let recorder = SpanRecorder::default();
    let _guard = recorder.install();

    // A REST origin on a gRPC channel: `POST /v1/{name}:cancel`, which the
    // tonic server answers 200 with `grpc-status: 12`.
    let rest: Uri = format!("{url}/v1/projects/p/things").parse().unwrap();
    let outcome = cancels.cancel(channel.clone(), &name, rest).await.unwrap();

    assert_ne!(outcome, CancelOutcome::Accepted);
    assert_eq!(outcome, CancelOutcome::Failed);
    let stats = cancels.stats();
    assert_eq!((stats.accepted, stats.failed), (0, 1), "{stats:?}");
    let spans = recorder.named("lro.cancel");
    assert_eq!(spans[0].fields["outcome"], "failed");
    server.abort();
}
