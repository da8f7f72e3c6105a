//! The crash children's wire: how a child starts operation `i` through
//! `CancelOnDropLayer`, and how its reapers send their cancels, over
//! REST/JSON (a hyper-util `Client`) or gRPC (CloudDeploy `CreateRelease`
//! through a tonic `Channel`, the layer told the channel's origin with
//! `grpc_origin` so that the operations are journaled; the reapers given a
//! channel for that origin with `Reaper::per_origin`).
//!
//! Every Start carries `x-replica: {tag}` and `x-op: {i}` (gRPC: request
//! metadata), so the parent tells the processes' operations apart in the
//! server's log whatever the wire.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderValue, Uri};
use tonic::transport::Channel;
use tower::{Layer, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_lro::journal::{Journal, Reaper, GRPC_CANCEL_METHOD};
use tower_lro::{CancelOnDrop, CancelOnDropLayer};
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest, Release};
use tower_lro_testing::RecordedRequest;

use super::{REAPER_BATCH, REAPER_INTERVAL, REAPER_LEASE};
use crate::common::{http_client, start, HttpClient};

/// The wire a crash run's operations are started, polled and cancelled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// REST/JSON over HTTP/1.1.
    Rest,
    /// gRPC over HTTP/2: a tonic `Channel`.
    Grpc,
}

impl Wire {
    /// How it travels to a child (`CRASH_WIRE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Wire::Rest => "rest",
            Wire::Grpc => "grpc",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    pub fn parse(text: &str) -> Self {
        match text {
            "rest" => Wire::Rest,
            "grpc" => Wire::Grpc,
            other => panic!("unknown CRASH_WIRE {other}"),
        }
    }

    /// Whether `cancel` (a request the server logged as a Cancel) is an
    /// accepted CancelOperation of this wire: `POST …:cancel` answered 200
    /// with no gRPC status, or the gRPC method answered `grpc-status: 0`.
    pub fn is_accepted_cancel(self, cancel: &RecordedRequest) -> bool {
        match self {
            Wire::Rest => {
                cancel.path.ends_with(":cancel")
                    && cancel.status == 200
                    && cancel.grpc_status.is_none()
            }
            Wire::Grpc => cancel.path == GRPC_CANCEL_METHOD && cancel.grpc_status == Some(0),
        }
    }

    /// Whether a journal entry's cancel route is this wire's.
    pub fn is_route(self, route_path: &str) -> bool {
        match self {
            Wire::Rest => route_path.ends_with(":cancel"),
            Wire::Grpc => route_path == GRPC_CANCEL_METHOD,
        }
    }
}

/// A call's future, dropped when the caller gives up.
pub type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A child's client: `layer` over the wire's transport to `base`.
#[derive(Clone)]
pub enum Starter {
    /// Starts are `POST {base}/v1/projects/p/locations/l/jobs`.
    Rest {
        svc: CancelOnDrop<HttpClient>,
        base: String,
    },
    /// Starts are CloudDeploy `CreateRelease` calls.
    Grpc(CloudDeployClient<CancelOnDrop<Channel>>),
}

impl Starter {
    /// `layer` (with its journal) over the wire's transport to `base`.
    pub async fn new(wire: Wire, base: &str, layer: CancelOnDropLayer) -> Self {
        match wire {
            Wire::Rest => Starter::Rest {
                svc: layer.layer(http_client()),
                base: base.to_owned(),
            },
            Wire::Grpc => {
                let layer = layer.grpc_origin(origin(base));
                Starter::Grpc(CloudDeployClient::new(layer.layer(channel(base).await)))
            }
        }
    }

    /// Starts operation `i` running `ms`, tagged `tag`; the future ends
    /// with the call (done or failed).
    pub fn start(&self, tag: &str, i: usize, ms: u64) -> Call {
        match self {
            Starter::Rest { svc, base } => {
                let mut request = start(base, ms);
                let tag = HeaderValue::from_str(tag).expect("a header-safe tag");
                request.headers_mut().insert("x-replica", tag);
                request.headers_mut().insert("x-op", HeaderValue::from(i));
                let call = svc.clone().oneshot(request);
                Box::pin(async move {
                    let _ = call.await;
                })
            }
            Starter::Grpc(client) => {
                let mut request = tonic::Request::new(CreateReleaseRequest {
                    parent: PIPELINE.into(),
                    release_id: format!("r-{tag}-{i}").to_lowercase(),
                    release: Some(Release::default()),
                });
                let metadata = request.metadata_mut();
                let ascii = |v: String| v.parse().expect("ASCII metadata");
                metadata.insert("x-duration-ms", ascii(ms.to_string()));
                metadata.insert("x-op", ascii(i.to_string()));
                metadata.insert("x-replica", ascii(tag.to_owned()));
                let mut client = client.clone();
                Box::pin(async move {
                    let _ = client.create_release(request).await;
                })
            }
        }
    }
}

/// The delivery pipeline the gRPC releases are created in.
pub const PIPELINE: &str = "projects/p/locations/l/deliveryPipelines/web-app";

fn origin(base: &str) -> Uri {
    base.parse().expect("the server's base URL")
}

/// A connected channel to `base`.
async fn channel(base: &str) -> Channel {
    Channel::from_shared(base.to_owned())
        .expect("a valid URL")
        .connect()
        .await
        .expect("connect")
}

/// Spawns a reaper of `journal` (interval [`REAPER_INTERVAL`], lease
/// [`REAPER_LEASE`], batches of [`REAPER_BATCH`]) whose cancels carry
/// `x-reaper: {tag}`, and prints `REAPER {claimer id}`: over REST one
/// hyper-util client for every origin, over gRPC a channel for `base`'s.
pub async fn spawn_reaper(wire: Wire, journal: Arc<dyn Journal>, base: &str, tag: &str) {
    let header = SetRequestHeaderLayer::overriding(
        HeaderName::from_static("x-reaper"),
        HeaderValue::from_str(tag).expect("a header-safe tag"),
    );
    match wire {
        Wire::Rest => {
            let reaper = Reaper::new(journal, header.layer(http_client()))
                .interval(REAPER_INTERVAL)
                .lease(REAPER_LEASE)
                .batch(REAPER_BATCH);
            println!("REAPER {}", reaper.claimer());
            tokio::spawn(reaper.run());
        }
        Wire::Grpc => {
            let stack = header.layer(channel(base).await);
            let reaper = Reaper::per_origin(journal, [(origin(base), stack)])
                .interval(REAPER_INTERVAL)
                .lease(REAPER_LEASE)
                .batch(REAPER_BATCH);
            println!("REAPER {}", reaper.claimer());
            tokio::spawn(reaper.run());
        }
    }
}
