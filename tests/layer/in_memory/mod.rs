//! The layer around the operations server called in memory as a tower
//! `Service`, under paused tokio time: poll schedules, retries and cancel
//! delivery, deterministic and instant.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::body_bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_lro::{CancelOnDrop, CancelOnDropLayer, CancelPolicy, Error, Operation, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer};

mod cancels;
mod dropped_in_flight;
mod modes;
mod polls;

const BASE: &str = "https://ops.example.test";

fn start(duration_ms: u64) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{BASE}/v1/projects/p/locations/l/jobs"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer t")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

type Req = http::Request<Full<Bytes>>;
type Svc = CancelOnDrop<OperationsServer>;

/// `ServiceExt::ready`, naming the request type: the server accepts any body.
async fn ready(svc: &mut Svc) -> &mut Svc {
    ServiceExt::<Req>::ready(svc).await.unwrap()
}

/// Starts an operation with `ReturnImmediately`: the initial, untracked Operation.
async fn start_untracked(svc: &mut Svc, duration_ms: u64) -> Operation {
    let mut request = start(duration_ms);
    request
        .extensions_mut()
        .insert(tower_lro::ReturnImmediately);
    let response = ready(svc).await.call(request).await.unwrap();
    Operation::from_json(&body_bytes(response.into_body()).await).unwrap()
}

fn no_jitter() -> PollPolicy {
    PollPolicy::new().jitter(false)
}

/// Starts a call and drives it until its first poll reached the server.
async fn started_call<S>(
    svc: &mut S,
    server: &OperationsServer,
    duration_ms: u64,
) -> std::pin::Pin<Box<S::Future>>
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let mut call = Box::pin(svc.ready().await.unwrap().call(start(duration_ms)));
    tokio::select! {
        _ = &mut call => panic!("the call finished"),
        log = server.wait_for(Duration::from_secs(3600), |l| l.iter().any(|r| r.endpoint == Endpoint::Get)) => { log.unwrap(); }
    }
    call
}
