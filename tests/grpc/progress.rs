//! `on_progress` over gRPC: each poll's Operation carries its metadata as a
//! `google.protobuf.Any`, and `Operation::decode_metadata` decodes Cloud
//! Deploy's `OperationMetadata` (target, verb) from the embedded server
//! through a real tonic `Channel`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_lro::{CancelOnDropLayer, Operation, PollPolicy};
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest, Release};
use tower_lro_testing::OperationsServer;

const PIPELINE: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";

/// `google.cloud.deploy.v1.OperationMetadata`, as a user's generated code
/// declares it (the fields read here).
#[derive(Clone, PartialEq, prost::Message)]
struct OperationMetadata {
    #[prost(message, optional, tag = "1")]
    create_time: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "2")]
    end_time: Option<prost_types::Timestamp>,
    #[prost(string, tag = "3")]
    target: String,
    #[prost(string, tag = "4")]
    verb: String,
}

/// Another message: decoding the metadata as it must fail on the type URL
/// (its field 3 would decode).
#[derive(Clone, PartialEq, prost::Message)]
struct Other {
    #[prost(string, tag = "3")]
    target: String,
}

#[tokio::test]
async fn on_progress_decodes_cloud_deploy_metadata_over_grpc() {
    let server = OperationsServer::new();
    let handle = server.serve().await.expect("bind");
    let channel = Channel::from_shared(handle.base_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let layer = CancelOnDropLayer::new()
        .poll_policy(
            PollPolicy::new()
                .initial_delay(Duration::from_millis(10))
                .max_delay(Duration::from_millis(20))
                .jitter(false),
        )
        .on_progress(move |op: &Operation| {
            let decoded = op
                .decode_metadata::<OperationMetadata>("google.cloud.deploy.v1.OperationMetadata")
                .map(|r| r.map_err(|e| e.to_string()));
            let wrong = op
                .decode_metadata::<Other>("acme.v1.Other")
                .map(|r| r.is_err());
            let url = op.grpc_metadata.as_ref().map(|a| a.type_url.clone());
            record.lock().unwrap().push((op.done, url, decoded, wrong));
        });
    let mut deploy = CloudDeployClient::new(ServiceBuilder::new().layer(layer).service(channel));
    let mut request = tonic::Request::new(CreateReleaseRequest {
        parent: PIPELINE.into(),
        release_id: "r1".into(),
        release: Some(Release::default()),
    });
    request
        .metadata_mut()
        .insert("x-duration-ms", "200".parse().unwrap());
    let done = deploy.create_release(request).await.unwrap().into_inner();
    assert!(done.done);

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(!seen.is_empty(), "on_progress was never called");
    let target = format!("{PIPELINE}/releases/r1");
    for (_, url, decoded, wrong) in seen.iter() {
        assert_eq!(
            url.as_deref(),
            Some("type.googleapis.com/google.cloud.deploy.v1.OperationMetadata")
        );
        let meta = decoded.clone().expect("metadata").expect("decodes");
        assert_eq!(meta.target, target);
        assert_eq!(meta.verb, "create");
        assert!(meta.create_time.is_some());
        assert_eq!(*wrong, Some(true), "another type must not decode");
    }
    let (last_done, _, last, _) = seen.last().unwrap();
    assert!(*last_done, "the last poll is the done one");
    let last = last.clone().unwrap().unwrap();
    assert!(last.end_time.is_some(), "end_time is set once done");
    handle.shutdown().await;
}
