//! The layer against an operations server no one here wrote:
//! `tests/ground_truth/operations_server.py`, a grpcio servicer on
//! googleapis-common-protos' `google.longrunning.operations_pb2_grpc` and a
//! REST handler that serves only the routes google-api-core's own
//! operations transport would send. The server logs each request as Google's
//! code decoded it (`GET /__log`).
//!
//! `.ci/run` starts it and sets `TOWER_LRO_GROUND_TRUTH=rest=ADDR,grpc=ADDR`;
//! the tests are `#[ignore]`d (listed as such) and fail without it.

use crate::common;

use std::time::Duration;

use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_lro::{CancelOnDropLayer, CancelOutcome, OperationName};
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest, Release};

const NEEDS: &str = "TOWER_LRO_GROUND_TRUTH is not set: .ci/run starts tests/ground_truth/operations_server.py and sets it";
/// How long the server's log may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(10);

fn addr(wire: &str) -> String {
    let all = std::env::var("TOWER_LRO_GROUND_TRUTH").unwrap_or_else(|_| panic!("{NEEDS}"));
    all.split(',')
        .find_map(|kv| kv.strip_prefix(wire)?.strip_prefix('=').map(str::to_owned))
        .unwrap_or_else(|| panic!("no {wire}= in TOWER_LRO_GROUND_TRUTH={all}"))
}

/// The server's log, as Google's code decoded each request.
async fn server_log() -> Vec<serde_json::Value> {
    let uri = format!("http://{}/__log", addr("rest"));
    let request = http::Request::get(uri).body(Default::default()).unwrap();
    let response = common::http_client()
        .request(request)
        .await
        .expect("GET /__log");
    serde_json::from_value(common::body_json(response.into_body()).await).expect("a JSON list")
}

/// Waits (at most [`WAIT`]) until `pred` holds of the log; fails naming `what`.
async fn wait_log(
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = server_log().await;
        if pred(&log) {
            return log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {WAIT:?} for {what}; log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn entries<'a>(
    log: &'a [serde_json::Value],
    wire: &'a str,
    method: &'a str,
    name: &'a str,
) -> Vec<&'a serde_json::Value> {
    log.iter()
        .filter(|e| e["wire"] == wire && e["method"] == method && e["name"] == name)
        .collect()
}

fn layer() -> CancelOnDropLayer {
    CancelOnDropLayer::new().poll_policy(common::fast_polls())
}

fn rest_start() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    common::start(&format!("http://{}", addr("rest")), 600_000)
}

#[tokio::test]
#[ignore = "ground truth: run by .ci/run with TOWER_LRO_GROUND_TRUTH set"]
async fn rest_poll_and_drop_cancel_on_google_api_core_routes() {
    let lro = layer();
    let before = server_log().await.len();
    let mut svc = lro.layer(common::http_client());
    let call = svc.ready().await.unwrap().call(rest_start());
    let polled = |log: &[serde_json::Value]| log[before..].iter().any(|e| e["method"] == "GET");
    let log = tokio::select! {
        _ = call => panic!("the operation never ends"),
        log = wait_log("a GetOperation", polled) => log,
    };
    let name = log[before..].iter().find(|e| e["method"] == "GET").unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(lro.handle().drain(WAIT).await.is_complete());
    let log = server_log().await;
    let gets = entries(&log, "rest", "GET", &name);
    assert!(gets.iter().all(|e| e["google_route"] == true), "{gets:?}");
    let cancels = entries(&log, "rest", "POST", &name);
    assert_eq!(cancels.len(), 1, "one cancel: {cancels:?}");
    assert_eq!(
        cancels[0]["google_route"], true,
        "google-api-core's own :cancel route: {cancels:?}"
    );
    assert_eq!(cancels[0]["body"], "", "an empty body");
    assert_eq!(cancels[0]["content_length"], "0");
}

#[tokio::test]
#[ignore = "ground truth: run by .ci/run with TOWER_LRO_GROUND_TRUTH set"]
async fn rest_explicit_cancel_on_google_api_core_routes() {
    let lro = layer();
    let svc = lro.layer(common::http_client());
    // Started untracked (the caller asked for the Operation as answered).
    let mut request = rest_start();
    request
        .extensions_mut()
        .insert(tower_lro::ReturnImmediately);
    let response = svc.clone().oneshot(request).await.unwrap();
    let op = common::body_json(response.into_body()).await;
    let name = OperationName::parse(op["name"].as_str().unwrap()).unwrap();
    let uri: http::Uri = format!("http://{}/v1/projects/p/locations/l/jobs", addr("rest"))
        .parse()
        .unwrap();
    let outcome = svc.cancel(&name, &uri).await.unwrap();
    assert_eq!(outcome, CancelOutcome::Accepted);
    let log = server_log().await;
    let cancels = entries(&log, "rest", "POST", name.as_str());
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(
        (&cancels[0]["google_route"], &cancels[0]["body"]),
        (&true.into(), &"".into())
    );
}

#[tokio::test]
#[ignore = "ground truth: run by .ci/run with TOWER_LRO_GROUND_TRUTH set"]
async fn grpc_poll_and_drop_cancel_decode_as_google_longrunning_requests() {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", addr("grpc")))
        .unwrap()
        .connect()
        .await
        .expect("connect to the grpcio server");
    let lro = layer();
    let stack = ServiceBuilder::new().layer(lro.clone()).service(channel);
    let mut client = CloudDeployClient::new(stack);
    let before = server_log().await.len();
    let call = client.create_release(tonic::Request::new(CreateReleaseRequest {
        parent: "projects/p/locations/l/deliveryPipelines/d".into(),
        release_id: "r".into(),
        release: Some(Release::default()),
    }));
    let polled =
        |log: &[serde_json::Value]| log[before..].iter().any(|e| e["method"] == "GetOperation");
    let log = tokio::select! {
        _ = call => panic!("the operation never ends"),
        log = wait_log("a GetOperation", polled) => log,
    };
    let get = log[before..]
        .iter()
        .find(|e| e["method"] == "GetOperation")
        .unwrap();
    assert_eq!(get["type"], "google.longrunning.GetOperationRequest");
    let name = get["name"].as_str().unwrap().to_owned();
    assert!(lro.handle().drain(WAIT).await.is_complete());
    let log = server_log().await;
    let cancels = entries(&log, "grpc", "CancelOperation", &name);
    assert_eq!(cancels.len(), 1, "one cancel: {cancels:?}");
    assert_eq!(
        cancels[0]["type"],
        "google.longrunning.CancelOperationRequest"
    );
    assert_eq!(
        cancels[0]["fields"],
        serde_json::json!(["name"]),
        "CancelOperationRequest{{name}} only"
    );
}
