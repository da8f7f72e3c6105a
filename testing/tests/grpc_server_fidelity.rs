//! The embedded server answers CloudDeploy's long-running methods the way
//! the real service does, as a generated client sees them over a real tonic
//! `Channel` on loopback: resources named from the request (parent and id,
//! or the resource's own name), the request's resource echoed as the
//! `response`, `OperationMetadata` with a fixed `end_time`, and
//! `ALREADY_EXISTS` for a live duplicate.
//!
//! Older APIs whose requests name no resource by AIP-122 (Speech, Dataproc,
//! Asset, Storage Transfer, Street View Publish) answer an Operation named as
//! each service names it, read and cancelled over gRPC and REST.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::uri::PathAndQuery;
use prost::Message;
use tonic::client::Grpc;
use tonic::transport::Channel;
use tonic::Code;
use tower_lro_testing::grpc::{
    CancelOperationRequest, CreateReleaseRequest, GetOperationRequest, Operation,
    OperationMetadata, OperationResult, OperationsClient, Release, WaitOperationRequest,
};
use tower_lro_testing::{OperationsServer, ServerHandle};

const LOCATION: &str = "projects/my-project/locations/us-central1";
const PIPELINE: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";
const DEPLOY: &str = "/google.cloud.deploy.v1.CloudDeploy/";

/// `google.cloud.deploy.v1.CreateRolloutRequest` {1 parent, 2 rollout_id,
/// 3 rollout, 4 request_id, 7 starting_phase_id}.
#[derive(Clone, PartialEq, Message)]
struct CreateRolloutRequest {
    #[prost(string, tag = "1")]
    parent: String,
    #[prost(string, tag = "2")]
    rollout_id: String,
    #[prost(message, optional, tag = "3")]
    rollout: Option<Described>,
    #[prost(string, tag = "4")]
    request_id: String,
    #[prost(string, tag = "7")]
    starting_phase_id: String,
}

/// The fields `Rollout` and `DeliveryPipeline` share: {1 name,
/// 3 description, 5 labels}.
#[derive(Clone, PartialEq, Message)]
struct Described {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "3")]
    description: String,
    #[prost(map = "string, string", tag = "5")]
    labels: HashMap<String, String>,
}

/// `google.cloud.deploy.v1.UpdateDeliveryPipelineRequest` {1 update_mask,
/// 2 delivery_pipeline, 3 request_id}.
#[derive(Clone, PartialEq, Message)]
struct UpdateDeliveryPipelineRequest {
    #[prost(message, optional, tag = "1")]
    update_mask: Option<prost_types::FieldMask>,
    #[prost(message, optional, tag = "2")]
    delivery_pipeline: Option<Described>,
    #[prost(string, tag = "3")]
    request_id: String,
}

/// `google.cloud.deploy.v1.DeleteTargetRequest` {1 name, 2 request_id}.
#[derive(Clone, PartialEq, Message)]
struct DeleteTargetRequest {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    request_id: String,
}

async fn serve() -> (OperationsServer, ServerHandle, Channel) {
    let server = OperationsServer::new().default_duration(Duration::from_secs(600));
    let handle = server.serve().await.unwrap();
    let channel = Channel::from_shared(handle.base_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    (server, handle, channel)
}

/// One unary CloudDeploy call, as a generated client makes it.
async fn call<Req: Message + Send + Sync + 'static>(
    channel: &Channel,
    method: &str,
    request: Req,
    duration_ms: u64,
) -> Result<Operation, tonic::Status> {
    let mut grpc = Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("x-duration-ms", duration_ms.to_string().parse().unwrap());
    let path = PathAndQuery::try_from(format!("{DEPLOY}{method}")).unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Operation>::default();
    grpc.unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

async fn wait_done(channel: &Channel, name: &str) -> Operation {
    let request = WaitOperationRequest {
        name: name.to_owned(),
        timeout: Some(prost_types::Duration {
            seconds: 10,
            nanos: 0,
        }),
    };
    let mut ops = OperationsClient::new(channel.clone());
    let op = ops.wait_operation(request).await.unwrap().into_inner();
    assert!(op.done, "{name} is not done after 10 s");
    op
}

fn metadata(op: &Operation) -> OperationMetadata {
    let any = op.metadata.as_ref().expect("metadata");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/google.cloud.deploy.v1.OperationMetadata"
    );
    OperationMetadata::decode(any.value.as_slice()).unwrap()
}

fn response<M: Message + Default>(op: &Operation, type_url: &str) -> M {
    match &op.result {
        Some(OperationResult::Response(any)) => {
            assert_eq!(any.type_url, type_url);
            M::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("expected a response, got {other:?}"),
    }
}

fn to_system(t: prost_types::Timestamp) -> SystemTime {
    SystemTime::try_from(t).unwrap()
}

fn labels() -> HashMap<String, String> {
    HashMap::from([("team".to_owned(), "web".to_owned())])
}

fn release_request(id: &str) -> CreateReleaseRequest {
    CreateReleaseRequest {
        parent: PIPELINE.into(),
        release_id: id.into(),
        release: Some(Release {
            name: String::new(),
            description: "first cut".into(),
            labels: labels(),
        }),
    }
}

#[tokio::test]
async fn create_release_echoes_the_release_and_fixes_end_time_at_completion() {
    let (_server, _handle, channel) = serve().await;
    let op = call(&channel, "CreateRelease", release_request("r1"), 40)
        .await
        .unwrap();
    let done = wait_done(&channel, &op.name).await;
    let release: Release = response(&done, "type.googleapis.com/google.cloud.deploy.v1.Release");
    assert_eq!(
        release,
        Release {
            name: format!("{PIPELINE}/releases/r1"),
            description: "first cut".into(),
            labels: labels(),
        }
    );
    let first = metadata(&done);
    let create = to_system(first.create_time.unwrap());
    let end = to_system(first.end_time.unwrap());
    // Stamped when it finished: created + the 40 ms it ran, on every read.
    assert_eq!(
        end.duration_since(create).unwrap(),
        Duration::from_millis(40)
    );
    let mut ops = OperationsClient::new(channel.clone());
    let again = ops
        .get_operation(GetOperationRequest { name: op.name })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata(&again), first);
    assert_eq!(first.api_version, "v1");
    assert!(!first.requested_cancellation);
}

#[tokio::test]
async fn create_rollout_is_named_from_parent_and_rollout_id() {
    let (_server, _handle, channel) = serve().await;
    let parent = format!("{PIPELINE}/releases/r1");
    let request = CreateRolloutRequest {
        parent: parent.clone(),
        rollout_id: "r1-to-prod-0001".into(),
        rollout: Some(Described {
            description: "to prod".into(),
            ..Described::default()
        }),
        request_id: "5f0e3b0a-idempotency".into(),
        starting_phase_id: "stable".into(),
    };
    let op = call(&channel, "CreateRollout", request, 0).await.unwrap();
    assert!(op.done);
    let name = format!("{parent}/rollouts/r1-to-prod-0001");
    let rollout: Described = response(&op, "type.googleapis.com/google.cloud.deploy.v1.Rollout");
    assert_eq!(rollout.name, name);
    assert_eq!(rollout.description, "to prod");
    let metadata = metadata(&op);
    assert_eq!(metadata.target, name);
    assert_eq!(metadata.verb, "create");
    assert_eq!(metadata.api_version, "v1");
    assert!(metadata.create_time.is_some() && metadata.end_time.is_some());
    assert!(op.name.starts_with(&format!("{LOCATION}/operations/")));
}

#[tokio::test]
async fn update_names_the_resource_by_its_own_name() {
    let (_server, _handle, channel) = serve().await;
    let request = UpdateDeliveryPipelineRequest {
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["description".into()],
        }),
        delivery_pipeline: Some(Described {
            name: PIPELINE.into(),
            description: "now with canaries".into(),
            labels: labels(),
        }),
        request_id: String::new(),
    };
    let op = call(&channel, "UpdateDeliveryPipeline", request, 0)
        .await
        .unwrap();
    let pipeline: Described = response(
        &op,
        "type.googleapis.com/google.cloud.deploy.v1.DeliveryPipeline",
    );
    assert_eq!(pipeline.name, PIPELINE);
    assert_eq!(pipeline.description, "now with canaries");
    let metadata = metadata(&op);
    assert_eq!(
        (metadata.target.as_str(), metadata.verb.as_str()),
        (PIPELINE, "update")
    );
}

#[tokio::test]
async fn delete_targets_the_named_resource_and_answers_empty() {
    let (_server, _handle, channel) = serve().await;
    let name = format!("{LOCATION}/targets/prod");
    let request = DeleteTargetRequest {
        name: name.clone(),
        request_id: String::new(),
    };
    let op = call(&channel, "DeleteTarget", request, 0).await.unwrap();
    let _: () = response(&op, "type.googleapis.com/google.protobuf.Empty");
    let metadata = metadata(&op);
    assert_eq!(
        (metadata.target, metadata.verb),
        (name, "delete".to_owned())
    );
}

#[tokio::test]
async fn a_duplicate_release_id_is_already_exists_while_the_first_lives() {
    let (server, _handle, channel) = serve().await;
    let first = call(&channel, "CreateRelease", release_request("dup"), 60_000)
        .await
        .unwrap();
    let again = call(&channel, "CreateRelease", release_request("dup"), 60_000).await;
    let status = again.expect_err("a second CreateRelease of the same id");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status
        .message()
        .contains(&format!("{PIPELINE}/releases/dup")));
    assert_eq!(server.operation_names(), vec![first.name.clone()]);
    // Another id is another release.
    call(&channel, "CreateRelease", release_request("other"), 60_000)
        .await
        .unwrap();
    // A cancelled create leaves no release behind: the id is free again.
    let mut ops = OperationsClient::new(channel.clone());
    ops.cancel_operation(CancelOperationRequest { name: first.name })
        .await
        .unwrap();
    call(&channel, "CreateRelease", release_request("dup"), 60_000)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_update_without_a_resource_name_is_invalid_argument() {
    let (server, _handle, channel) = serve().await;
    let request = UpdateDeliveryPipelineRequest {
        update_mask: None,
        delivery_pipeline: Some(Described::default()),
        request_id: String::new(),
    };
    let status = call(&channel, "UpdateDeliveryPipeline", request, 0)
        .await
        .expect_err("an update naming nothing");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(server.operation_names().is_empty());
}

/// `google.cloud.speech.v1.LongRunningRecognizeRequest` {1 config, 2 audio}.
#[derive(Clone, PartialEq, Message)]
struct LongRunningRecognizeRequest {
    #[prost(message, optional, tag = "1")]
    config: Option<RecognitionConfig>,
    #[prost(message, optional, tag = "2")]
    audio: Option<RecognitionAudio>,
}

/// `google.cloud.speech.v1.RecognitionConfig` {3 language_code}.
#[derive(Clone, PartialEq, Message)]
struct RecognitionConfig {
    #[prost(string, tag = "3")]
    language_code: String,
}

/// `google.cloud.speech.v1.RecognitionAudio` {2 uri}.
#[derive(Clone, PartialEq, Message)]
struct RecognitionAudio {
    #[prost(string, tag = "2")]
    uri: String,
}

/// `google.cloud.dataproc.v1.CreateClusterRequest` {1 project_id,
/// 2 cluster, 3 region}.
#[derive(Clone, PartialEq, Message)]
struct CreateClusterRequest {
    #[prost(string, tag = "1")]
    project_id: String,
    #[prost(message, optional, tag = "2")]
    cluster: Option<Cluster>,
    #[prost(string, tag = "3")]
    region: String,
}

/// `google.cloud.dataproc.v1.Cluster` {1 project_id, 2 cluster_name}.
#[derive(Clone, PartialEq, Message)]
struct Cluster {
    #[prost(string, tag = "1")]
    project_id: String,
    #[prost(string, tag = "2")]
    cluster_name: String,
}

/// One unary call of the table method `path`, as a generated client makes it.
async fn call_method<Req: Message + Send + Sync + 'static>(
    channel: &Channel,
    path: &'static str,
    request: Req,
) -> Result<Operation, tonic::Status> {
    let mut grpc = Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("x-duration-ms", "600000".parse().unwrap());
    let codec = tonic_prost::ProstCodec::<Req, Operation>::default();
    grpc.unary(request, PathAndQuery::from_static(path), codec)
        .await
        .map(tonic::Response::into_inner)
}

/// GetOperation, then CancelOperation, then GetOperation: the operation
/// read back by its name, then done with `error.code` 1 (CANCELLED).
async fn get_then_cancel(channel: &Channel, name: &str) {
    let mut ops = OperationsClient::new(channel.clone());
    let get = || GetOperationRequest { name: name.into() };
    let read = ops.get_operation(get()).await.unwrap().into_inner();
    assert_eq!((read.name.as_str(), read.done), (name, false));
    let cancel = CancelOperationRequest { name: name.into() };
    ops.cancel_operation(cancel).await.unwrap();
    let read = ops.get_operation(get()).await.unwrap().into_inner();
    assert!(read.done, "{name} is not done once cancelled");
    match read.result {
        Some(OperationResult::Error(status)) => assert_eq!(status.code, 1),
        other => panic!("expected CANCELLED, got {other:?}"),
    }
}

/// A REST call on the same server: its status and JSON body.
async fn rest(handle: &ServerHandle, method: http::Method, path: &str) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", handle.base_url()))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn speech_long_running_recognize_is_a_bare_numbered_operation_on_both_wires() {
    let (server, handle, channel) = serve().await;
    let request = || LongRunningRecognizeRequest {
        config: Some(RecognitionConfig {
            language_code: "en-US".into(),
        }),
        audio: Some(RecognitionAudio {
            uri: "gs://bucket/audio.flac".into(),
        }),
    };
    let path = "/google.cloud.speech.v1.Speech/LongRunningRecognize";
    let op = call_method(&channel, path, request()).await.unwrap();
    // Speech names its operations by a bare number, and names no resource.
    assert!(op.name.parse::<u64>().is_ok(), "{}", op.name);
    assert!(!op.done);
    assert_eq!(
        op.metadata.unwrap().type_url,
        "type.googleapis.com/google.cloud.speech.v1.LongRunningRecognizeMetadata"
    );
    get_then_cancel(&channel, &op.name).await;

    // Over REST, Speech's GetOperation is GET /v1/operations/{name}.
    let second = call_method(&channel, path, request()).await.unwrap();
    let at = format!("/v1/operations/{}", second.name);
    let (status, json) = rest(&handle, http::Method::GET, &at).await;
    assert_eq!(
        (status, json["name"].as_str()),
        (200, Some(second.name.as_str()))
    );
    let cancel = format!("{at}:cancel");
    assert_eq!(rest(&handle, http::Method::POST, &cancel).await.0, 200);
    assert_eq!(server.operation(&second.name).unwrap()["error"]["code"], 1);

    // A request without its REQUIRED audio is refused, as Speech refuses it.
    let mut bare = request();
    bare.audio = None;
    let status = call_method(&channel, path, bare).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(server.operation_names().len(), 2);
}

#[tokio::test]
async fn dataproc_create_cluster_is_named_under_project_and_region() {
    let (server, handle, channel) = serve().await;
    let request = CreateClusterRequest {
        project_id: "my-project".into(),
        cluster: Some(Cluster {
            project_id: "my-project".into(),
            cluster_name: "analytics".into(),
        }),
        region: "us-central1".into(),
    };
    let path = "/google.cloud.dataproc.v1.ClusterController/CreateCluster";
    let op = call_method(&channel, path, request).await.unwrap();
    assert!(
        op.name
            .starts_with("projects/my-project/regions/us-central1/operations/"),
        "{}",
        op.name
    );
    assert_eq!(
        server.operation(&op.name).unwrap()["metadata"]["value"]["target"],
        "projects/my-project/regions/us-central1/clusters/analytics"
    );
    let (status, json) = rest(&handle, http::Method::GET, &format!("/v1/{}", op.name)).await;
    assert_eq!(
        (status, json["name"].as_str()),
        (200, Some(op.name.as_str()))
    );
    get_then_cancel(&channel, &op.name).await;
}

/// `google.streetview.publish.v1.GetPhotoSequenceRequest` {1 sequence_id}.
#[derive(Clone, PartialEq, Message)]
struct GetPhotoSequenceRequest {
    #[prost(string, tag = "1")]
    sequence_id: String,
}

#[tokio::test]
async fn street_view_get_photo_sequence_answers_the_sequence_operation_by_its_id() {
    let (server, _handle, channel) = serve().await;
    let path = "/google.streetview.publish.v1.StreetViewPublishService/GetPhotoSequence";
    let request = || GetPhotoSequenceRequest {
        sequence_id: "seq-1".into(),
    };
    let first = call_method(&channel, path, request()).await.unwrap();
    // The operation is the photo sequence: named by its id, and asking
    // again answers the same operation.
    assert_eq!(first.name, "seq-1");
    let again = call_method(&channel, path, request()).await.unwrap();
    assert_eq!(again.name, "seq-1");
    assert_eq!(server.operation_names(), ["seq-1"]);
    get_then_cancel(&channel, "seq-1").await;
}

/// `google.cloud.asset.v1.AnalyzeIamPolicyLongrunningRequest`
/// {1 analysis_query {1 scope}, 2 output_config {1 gcs_destination {1 uri}}}.
#[derive(Clone, PartialEq, Message)]
struct AnalyzeIamPolicyLongrunningRequest {
    #[prost(message, optional, tag = "1")]
    analysis_query: Option<Scoped>,
    #[prost(message, optional, tag = "2")]
    output_config: Option<OutputConfig>,
}

/// `IamPolicyAnalysisQuery` {1 scope}.
#[derive(Clone, PartialEq, Message)]
struct Scoped {
    #[prost(string, tag = "1")]
    scope: String,
}

/// `IamPolicyAnalysisOutputConfig` {1 gcs_destination {1 uri}}.
#[derive(Clone, PartialEq, Message)]
struct OutputConfig {
    #[prost(message, optional, tag = "1")]
    gcs_destination: Option<GcsDestination>,
}

/// `GcsDestination` {1 uri}.
#[derive(Clone, PartialEq, Message)]
struct GcsDestination {
    #[prost(string, tag = "1")]
    uri: String,
}

/// `google.storagetransfer.v1.RunTransferJobRequest` {1 job_name,
/// 2 project_id}.
#[derive(Clone, PartialEq, Message)]
struct RunTransferJobRequest {
    #[prost(string, tag = "1")]
    job_name: String,
    #[prost(string, tag = "2")]
    project_id: String,
}

#[tokio::test]
async fn asset_and_transfer_operations_are_read_and_cancelled_over_rest() {
    let (server, handle, channel) = serve().await;
    let analyze = AnalyzeIamPolicyLongrunningRequest {
        analysis_query: Some(Scoped {
            scope: "organizations/123".into(),
        }),
        output_config: Some(OutputConfig {
            gcs_destination: Some(GcsDestination {
                uri: "gs://bucket/analysis.json".into(),
            }),
        }),
    };
    let path = "/google.cloud.asset.v1.AssetService/AnalyzeIamPolicyLongrunning";
    let asset = call_method(&channel, path, analyze).await.unwrap();
    let prefix = "organizations/123/operations/AnalyzeIamPolicyLongrunning/";
    assert!(asset.name.starts_with(prefix), "{}", asset.name);

    let run = RunTransferJobRequest {
        job_name: "transferJobs/42".into(),
        project_id: "my-project".into(),
    };
    let path = "/google.storagetransfer.v1.StorageTransferService/RunTransferJob";
    let transfer = call_method(&channel, path, run).await.unwrap();
    let prefix = "transferOperations/transferJobs-42-";
    assert!(transfer.name.starts_with(prefix), "{}", transfer.name);

    for name in [&asset.name, &transfer.name] {
        let at = format!("/v1/{name}");
        let (status, json) = rest(&handle, http::Method::GET, &at).await;
        assert_eq!((status, json["name"].as_str()), (200, Some(name.as_str())));
        let cancel = format!("{at}:cancel");
        assert_eq!(rest(&handle, http::Method::POST, &cancel).await.0, 200);
        assert_eq!(server.operation(name).unwrap()["error"]["code"], 1);
    }
}
