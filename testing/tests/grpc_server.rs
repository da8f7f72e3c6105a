//! The embedded server over gRPC, through a real tonic `Channel` on
//! loopback: `google.longrunning.Operations` and CloudDeploy's
//! CreateRelease on the same state, log and faults as REST.

use std::time::Duration;

use prost::Message;
use tonic::transport::Channel;
use tonic::Code;
use tower_lro_testing::grpc::{
    CancelOperationRequest, CloudDeployClient, CreateReleaseRequest, DeleteOperationRequest,
    GetOperationRequest, ListOperationsRequest, OperationMetadata, OperationResult,
    OperationsClient, Release, RetryInfo, Status, WaitOperationRequest,
};
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer, ServerHandle};

const PARENT: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";

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

fn create(release_id: &str, duration_ms: Option<u64>) -> tonic::Request<CreateReleaseRequest> {
    let mut request = tonic::Request::new(CreateReleaseRequest {
        parent: PARENT.into(),
        release_id: release_id.into(),
        release: Some(Release::default()),
    });
    if let Some(ms) = duration_ms {
        request
            .metadata_mut()
            .insert("x-duration-ms", ms.to_string().parse().unwrap());
    }
    request
}

#[tokio::test]
async fn create_release_then_cancel_over_grpc() {
    let (server, _handle, channel) = serve().await;
    let mut deploy = CloudDeployClient::new(channel.clone());
    let mut ops = OperationsClient::new(channel);

    let op = deploy
        .create_release(create("r1", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        op.name,
        "projects/my-project/locations/us-central1/operations/op-1"
    );
    assert!(!op.done);
    let metadata = op.metadata.unwrap();
    assert_eq!(
        metadata.type_url,
        "type.googleapis.com/google.cloud.deploy.v1.OperationMetadata"
    );
    let metadata = OperationMetadata::decode(metadata.value.as_slice()).unwrap();
    assert_eq!(metadata.target, format!("{PARENT}/releases/r1"));
    assert_eq!(metadata.verb, "create");
    assert_eq!(
        server.requests_to(Endpoint::Start)[0].operation.as_deref(),
        Some(op.name.as_str())
    );

    ops.cancel_operation(CancelOperationRequest {
        name: op.name.clone(),
    })
    .await
    .unwrap();
    let cancels = server.cancels_for(&op.name);
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        cancels[0].path,
        "/google.longrunning.Operations/CancelOperation"
    );
    assert_eq!(cancels[0].grpc_status, Some(0));
    assert_eq!(cancels[0].status, http::StatusCode::OK);

    let got = ops
        .get_operation(GetOperationRequest {
            name: op.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.done);
    match got.result {
        Some(OperationResult::Error(Status { code, .. })) => assert_eq!(code, 1),
        other => panic!("expected a CANCELLED error, got {other:?}"),
    }
    let metadata = OperationMetadata::decode(got.metadata.unwrap().value.as_slice()).unwrap();
    assert!(metadata.requested_cancellation);
    // The same state over REST.
    assert_eq!(server.operation(&op.name).unwrap()["error"]["code"], 1);
}

#[tokio::test]
async fn a_finished_release_carries_its_response_and_wait_returns_it() {
    let (_server, _handle, channel) = serve().await;
    let mut deploy = CloudDeployClient::new(channel.clone());
    let mut ops = OperationsClient::new(channel);
    let op = deploy
        .create_release(create("r2", Some(50)))
        .await
        .unwrap()
        .into_inner();
    let done = ops
        .wait_operation(WaitOperationRequest {
            name: op.name.clone(),
            timeout: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(done.done);
    let Some(OperationResult::Response(any)) = done.result else {
        panic!("expected a response: {done:?}")
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/google.cloud.deploy.v1.Release"
    );
    assert_eq!(
        Release::decode(any.value.as_slice()).unwrap().name,
        format!("{PARENT}/releases/r2")
    );
}

#[tokio::test]
async fn list_pages_and_delete_forgets() {
    let (server, _handle, channel) = serve().await;
    let mut deploy = CloudDeployClient::new(channel.clone());
    let mut ops = OperationsClient::new(channel);
    for id in ["a", "b", "c"] {
        deploy.create_release(create(id, None)).await.unwrap();
    }
    let page = ops
        .list_operations(ListOperationsRequest {
            name: "projects/my-project/locations/us-central1".into(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.operations.len(), 2);
    assert!(!page.next_page_token.is_empty());
    let rest = ops
        .list_operations(ListOperationsRequest {
            name: "projects/my-project/locations/us-central1/operations".into(),
            page_size: 2,
            page_token: page.next_page_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.operations.len(), 1);
    assert!(rest.next_page_token.is_empty());

    let name = rest.operations[0].name.clone();
    ops.delete_operation(DeleteOperationRequest { name: name.clone() })
        .await
        .unwrap();
    let err = ops
        .get_operation(GetOperationRequest { name: name.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let gets = server.requests_to(Endpoint::Get);
    assert_eq!(gets[0].grpc_status, Some(Code::NotFound as i32));
    assert_eq!(gets[0].status, http::StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn faults_answer_grpc_codes_with_retry_info_and_resets() {
    let (server, _handle, channel) = serve().await;
    let mut deploy = CloudDeployClient::new(channel.clone());
    let mut ops = OperationsClient::new(channel);
    let op = deploy
        .create_release(create("f", None))
        .await
        .unwrap()
        .into_inner();
    server.inject(
        Endpoint::Cancel,
        Fault::Sequence(vec![
            FaultKind::RetryAfter(
                http::StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(2),
            ),
            FaultKind::Status(http::StatusCode::NOT_IMPLEMENTED),
            FaultKind::Disconnect,
        ]),
    );
    let cancel = || CancelOperationRequest {
        name: op.name.clone(),
    };

    let unavailable = ops.cancel_operation(cancel()).await.unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable);
    let status = Status::decode(unavailable.details()).unwrap();
    let info = status
        .details
        .iter()
        .find(|d| d.type_url == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    let delay = RetryInfo::decode(info.value.as_slice())
        .unwrap()
        .retry_delay
        .unwrap();
    assert_eq!((delay.seconds, delay.nanos), (2, 0));

    let unimplemented = ops.cancel_operation(cancel()).await.unwrap_err();
    assert_eq!(unimplemented.code(), Code::Unimplemented);

    let reset = ops.cancel_operation(cancel()).await.unwrap_err();
    assert_ne!(reset.code(), Code::Ok);

    let log = server.cancels_for(&op.name);
    let statuses: Vec<_> = log
        .iter()
        .map(|r| (r.status.as_u16(), r.grpc_status))
        .collect();
    assert_eq!(statuses, [(503, Some(14)), (501, Some(12)), (502, None)]);
    // None of them cancelled anything.
    assert_eq!(server.operation(&op.name).unwrap()["done"], false);
}

#[tokio::test]
async fn rest_operations_read_over_grpc_and_unknown_methods_are_unimplemented() {
    let (server, handle, channel) = serve().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!(
        "{}/v1/projects/p/locations/l/jobs",
        handle.base_url()
    ))
    .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
    .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut ops = OperationsClient::new(channel.clone());
    let op = ops
        .get_operation(GetOperationRequest {
            name: "projects/p/locations/l/operations/op-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        op.metadata.unwrap().type_url,
        "type.googleapis.com/google.protobuf.Struct"
    );

    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary::<_, GetOperationRequest, _>(
            tonic::Request::new(GetOperationRequest::default()),
            http::uri::PathAndQuery::from_static("/google.cloud.deploy.v1.CloudDeploy/GetRelease"),
            tonic_prost::ProstCodec::<GetOperationRequest, GetOperationRequest>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(server.requests_to(Endpoint::Other).len(), 1);
}
