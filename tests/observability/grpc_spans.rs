//! The layer's spans over gRPC: `rpc.system = "grpc"`, `rpc.service`,
//! `rpc.method` on `lro.call`, `lro.poll` and `lro.cancel`. (The span
//! recorder is a thread-local subscriber: see `isolate_subscribers` in
//! `main.rs` for why that is reliable beside the crate's other tests.)

use crate::common;
use crate::common::grpc as support;

use common::SpanRecorder;
use support::{create, deploy, layer, serve, WAIT};
use tower_lro_testing::Endpoint;

const FIRST: &str = "projects/my-project/locations/us-central1/operations/op-1";

#[tokio::test]
async fn spans_carry_the_rpc_attributes() {
    crate::isolate_subscribers();
    let recorder = SpanRecorder::default();
    let _guard = recorder.install();
    let (server, _handle, channel) = serve().await;
    let lro = layer();
    // Given up on once its first poll reached the server: an event, not a
    // fixed 200 ms, which a busy machine can spend before the first poll.
    let mut client = deploy(&lro, &channel);
    let call = client.create_release(create("s1", 600_000));
    tokio::select! {
        _ = call => panic!("the operation runs 10 minutes"),
        polled = server.wait_for(WAIT, |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => {
            polled.expect("the operation was polled");
        }
    }
    assert!(lro.handle().drain(WAIT).await.is_complete());
    assert_eq!(server.cancels_for(FIRST).len(), 1);
    let call = &recorder.named("lro.call")[0];
    assert_eq!(call.fields["rpc.system"], "grpc");
    assert_eq!(
        call.fields["rpc.service"],
        "google.cloud.deploy.v1.CloudDeploy"
    );
    assert_eq!(call.fields["rpc.method"], "CreateRelease");
    assert_eq!(call.fields["operation.name"], FIRST);
    let poll = &recorder.named("lro.poll")[0];
    assert_eq!(poll.fields["rpc.system"], "grpc");
    assert_eq!(poll.fields["rpc.method"], "GetOperation");
    let cancel = &recorder.named("lro.cancel")[0];
    assert_eq!(cancel.fields["rpc.system"], "grpc");
    assert_eq!(
        cancel.fields["rpc.service"],
        "google.longrunning.Operations"
    );
    assert_eq!(cancel.fields["rpc.method"], "CancelOperation");
    assert_eq!(cancel.fields["rpc.grpc.status_code"], "0");
    assert_eq!(cancel.fields["reason"], "dropped");
    assert_eq!(cancel.follows_from, [call.index]);
}
