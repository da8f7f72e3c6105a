//! The gRPC crash tests' child: like `crash.rs`'s, but its operations are
//! CloudDeploy `CreateRelease` calls through `CancelOnDropLayer` over a tonic
//! `Channel`, the layer told the channel's origin (`grpc_origin`) so that
//! they are journaled. Started with `crash::ChildProcess::replica`; prints
//! the same `READY {json}` line.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Uri};
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tower::ServiceBuilder;
use tower_http::set_header::{SetRequestHeader, SetRequestHeaderLayer};
use tower_lro::journal::{Journal, JournalWriter, Reaper, WriterOptions};
use tower_lro::CancelOnDropLayer;
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest, Release};

use crate::crash::{entry_names, LEASE, LONG_MS, SHORT_EVERY, SHORT_MS};

/// The seeds' delivery pipeline.
pub const PIPELINE: &str = "projects/my-project/locations/us-central1/deliveryPipelines/web-app";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set for the crash child"))
}

/// A connected channel to `base`.
pub async fn channel(base: &str) -> Channel {
    Channel::from_shared(base.to_owned())
        .expect("a valid URL")
        .connect()
        .await
        .expect("connect")
}

/// `CreateRelease {PIPELINE}/releases/{id}` running `ms`.
fn create(id: &str, ms: u64) -> tonic::Request<CreateReleaseRequest> {
    let mut request = tonic::Request::new(CreateReleaseRequest {
        parent: PIPELINE.into(),
        release_id: id.into(),
        release: Some(Release::default()),
    });
    let ms = ms.to_string().parse().expect("digits are metadata");
    request.metadata_mut().insert("x-duration-ms", ms);
    request
}

/// A reaper of `journal` with one service per origin: the channel to
/// `base`, its cancels tagged `x-reaper: {tag}` when given.
pub async fn reaper(
    journal: Arc<dyn Journal>,
    base: &str,
    tag: Option<String>,
) -> Reaper<SetRequestHeader<Channel, HeaderValue>, tonic::body::Body> {
    let channel = channel(base).await;
    let tag = HeaderValue::from_str(tag.as_deref().unwrap_or("parent")).unwrap();
    let stack = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::HeaderName::from_static("x-reaper"),
            tag,
        ))
        .service(channel);
    let origin: Uri = base.parse().unwrap();
    Reaper::per_origin(journal, [(origin, stack)])
}

/// The child test's body: runs [`child_main`] if this process is a crash
/// child (`CRASH_CHILD` set); a no-op otherwise.
pub fn run_child<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    if std::env::var("CRASH_CHILD").is_err() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(child_main(open));
}

async fn child_main<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn")
        .try_init();
    let base = env("CRASH_BASE");
    let n: usize = env("CRASH_OPS").parse().unwrap();
    let config = env("CRASH_JOURNAL");
    let journal = open(config.clone()).await;
    let writer = JournalWriter::start(journal.clone(), WriterOptions::new().lease(LEASE)).unwrap();
    let layer = CancelOnDropLayer::new()
        .grpc_origin(base.parse().unwrap())
        .journal(writer.clone());
    let client = CloudDeployClient::new(
        ServiceBuilder::new()
            .layer(layer)
            .service(channel(&base).await),
    );
    // Unique release ids per child: two replicas share one server.
    let prefix = writer.owner().as_str().to_owned();
    let (mut short, mut long) = (JoinSet::new(), JoinSet::new());
    for i in 0..n {
        let is_short = i % SHORT_EVERY == 0;
        let ms = if is_short { SHORT_MS } else { LONG_MS };
        let mut client = client.clone();
        let request = create(&format!("r-{prefix}-{i}"), ms);
        if is_short {
            short.spawn(async move { client.create_release(request).await });
        } else {
            long.spawn(async move { client.create_release(request).await });
        }
    }
    let mut short_names = BTreeSet::new();
    while let Some(op) = short.join_next().await {
        let op = op.unwrap().expect("a short release").into_inner();
        assert!(op.done, "{op:?}");
        short_names.insert(op.name);
    }
    let want = n - short_names.len();
    let long_names = loop {
        writer.flush().await.unwrap();
        let mine = entry_names(&*journal, |e| e.owner() == writer.owner()).await;
        if mine.len() == want && mine.is_disjoint(&short_names) {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if let Ok(tag) = std::env::var("CRASH_REAPER_TAG") {
        for i in 0..2 {
            let reaper = reaper(
                open(config.clone()).await,
                &base,
                Some(format!("{tag}-{i}")),
            )
            .await
            .interval(Duration::from_millis(100))
            .batch(8);
            tokio::spawn(reaper.run());
        }
    }
    let ready = serde_json::json!({
        "owner": writer.owner().as_str(),
        "short": short_names,
        "long": long_names,
    });
    println!("READY {ready}");
    std::future::pending::<()>().await;
    drop(long);
}
