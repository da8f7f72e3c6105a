//! The main job over gRPC, with a real generated client: Cloud Deploy's
//! `CloudDeployClient` from `googleapis-tonic-google-cloud-deploy-v1`
//! (tonic-build output of the googleapis protos) on a real loopback HTTP/2
//! `Channel`, wrapped in `CancelOnDropLayer`, talking to the embedded
//! operations server's gRPC side.
//!
//! 1. `CreateRelease` for a 10-minute release; gives up after 2 s with
//!    `tokio::time::timeout`, and shows the `CancelOperation` the server
//!    received and the operation now done, CANCELLED (`error.code` 1).
//! 2. `CreateRelease` for a 1.5-second release, awaited, its progress
//!    (`OperationMetadata`: verb, target) printed by `on_progress`: the
//!    caller gets the done Operation (its `response` a
//!    `google.cloud.deploy.v1.Release`), and no cancel was sent.
//! 3. An explicit cancel by name over the channel:
//!    `CancelHandle::cancel(channel, &name, Origin::grpc(..))`.
//!
//! Run it with `cargo run --example grpc_demo`. Exits 0 only if all three
//! behaved so. Tracing events go to stderr (`RUST_LOG`; default `warn`).

use std::process::ExitCode;
use std::time::Duration;

use googleapis_tonic_google_cloud_deploy_v1::google::cloud::deploy::v1::{
    cloud_deploy_client::CloudDeployClient, CreateReleaseRequest, OperationMetadata, Release,
};
use googleapis_tonic_google_cloud_deploy_v1::google::longrunning::{
    operation::Result as OperationResult, operations_client::OperationsClient, GetOperationRequest,
};
use prost::Message;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_lro::{CancelOnDropLayer, CancelOutcome, Operation, OperationName, Origin};
use tower_lro_testing::{Endpoint, OperationsServer};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PIPELINE: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";
const METADATA: &str = "google.cloud.deploy.v1.OperationMetadata";

fn create_release(
    id: &str,
    duration: Duration,
) -> Result<tonic::Request<CreateReleaseRequest>, BoxError> {
    let mut request = tonic::Request::new(CreateReleaseRequest {
        parent: PIPELINE.into(),
        release_id: id.into(),
        release: Some(Release::default()),
        ..Default::default()
    });
    // How long the embedded server runs the operation.
    let ms = duration.as_millis().to_string();
    request.metadata_mut().insert("x-duration-ms", ms.parse()?);
    Ok(request)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("grpc_demo: the operations did not behave as expected");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("grpc_demo: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Progress of each poll: the verb and target of Cloud Deploy's metadata.
fn progress(op: &Operation) {
    if let Some(Ok(meta)) = op.decode_metadata::<OperationMetadata>(METADATA) {
        println!(
            "   progress: {} {} (done: {})",
            meta.verb, meta.target, op.done
        );
    }
}

async fn run() -> Result<bool, BoxError> {
    let server = OperationsServer::new();
    let handle = server.serve().await?;
    let channel = Channel::from_shared(handle.base_url())?.connect().await?;
    println!("embedded operations server (gRPC) at {}", handle.base_url());

    let lro = CancelOnDropLayer::new().on_progress(progress);
    let cancels = lro.handle();
    let mut deploy =
        CloudDeployClient::new(ServiceBuilder::new().layer(lro).service(channel.clone()));
    let mut operations = OperationsClient::new(channel.clone());

    // 1. Give up on a 10-minute release after 2 s.
    println!("\n1. CreateRelease r-abandoned (runs 10 min); giving up after 2 s");
    let call = deploy.create_release(create_release("r-abandoned", Duration::from_secs(600))?);
    let gave_up = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .is_err();
    println!("   gave up: {gave_up}");
    let log = server
        .wait_for(Duration::from_secs(10), |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && r.grpc_status.is_some())
        })
        .await?;
    let Some(cancel) = log.iter().find(|r| r.endpoint == Endpoint::Cancel) else {
        return Ok(false);
    };
    let name = cancel.operation.clone().unwrap_or_default();
    let header = |h: &str| {
        cancel
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    println!("   the server received: POST {}", cancel.path);
    println!("     name: {name}");
    println!(
        "     x-goog-request-params: {}",
        header("x-goog-request-params")
    );
    println!(
        "     grpc-timeout: {}, te: {}",
        header("grpc-timeout"),
        header("te")
    );
    println!(
        "     answered grpc-status {}",
        cancel.grpc_status.unwrap_or(-1)
    );
    let op = operations
        .get_operation(GetOperationRequest { name: name.clone() })
        .await?
        .into_inner();
    let cancelled = matches!(&op.result, Some(OperationResult::Error(e)) if e.code == 1);
    println!(
        "   GetOperation: done: {}, {}",
        op.done,
        if cancelled {
            "error.code 1 (CANCELLED)"
        } else {
            "NOT cancelled"
        }
    );

    // 2. A short release, awaited.
    println!("\n2. CreateRelease r-short (runs 1.5 s), awaited");
    let op = deploy
        .create_release(create_release("r-short", Duration::from_millis(1500))?)
        .await?
        .into_inner();
    let release = match &op.result {
        Some(OperationResult::Response(any)) => Release::decode(any.value.as_slice())?.name,
        _ => String::new(),
    };
    let short_cancels = server.cancels_for(&op.name).len();
    println!(
        "   {}: done: {}, response: Release {release}",
        op.name, op.done
    );
    println!("   cancels sent for it: {short_cancels}");

    // 3. An explicit cancel by name, over the same channel.
    println!(
        "\n3. CreateRelease r-explicit (runs 10 min) without the layer; then cancel it by name"
    );
    let started = CloudDeployClient::new(channel.clone())
        .create_release(create_release("r-explicit", Duration::from_secs(600))?)
        .await?
        .into_inner();
    let held = OperationName::parse(&started.name)?;
    let origin = Origin::grpc(handle.base_url().parse()?);
    let outcome = cancels.cancel(channel.clone(), &held, origin).await?;
    let explicit_cancels = server.cancels_for(held.as_str()).len();
    println!("   {held}: {outcome:?}; CancelOperations received: {explicit_cancels}");

    let report = cancels.drain(Duration::from_secs(10)).await;
    let stats = cancels.stats();
    println!(
        "\ncancels: fired {}, accepted {}, failed {}; drain complete: {}",
        stats.fired,
        stats.accepted,
        stats.failed,
        report.is_complete()
    );
    handle.shutdown().await;
    Ok(gave_up
        && op.done
        && cancelled
        && !release.is_empty()
        && short_cancels == 0
        && outcome == CancelOutcome::Accepted
        && explicit_cancels == 1
        && stats.accepted == 2)
}
