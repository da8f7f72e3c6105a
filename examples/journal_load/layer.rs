//! (j2): a tracked call's overhead through the layer, without a journal and
//! with each backend.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_lro::journal::{Journal, JournalWriter, WriterOptions};
use tower_lro::CancelOnDropLayer;
use tower_lro_testing::{Endpoint, OperationsServer};

use super::{ms, percentile, BoxError};

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type Svc = tower_lro::CancelOnDrop<HttpClient>;

fn start(base: &str) -> Request<Full<Bytes>> {
    Request::post(format!("{base}/v1/projects/p/locations/l/jobs"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer bench")
        .body(Full::from(r#"{"durationMs": 600000}"#))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// Calls until the future waits for its first poll (its `Debug` names the
/// state); returns the future and how long that took.
async fn tracked(
    mut svc: Svc,
    request: Request<Full<Bytes>>,
) -> Result<
    (
        std::pin::Pin<
            Box<tower_lro::ResponseFuture<HttpClient, Full<Bytes>, hyper::body::Incoming>>,
        >,
        Duration,
    ),
    BoxError,
> {
    let t0 = Instant::now();
    ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc).await?;
    let mut future = Box::pin(svc.call(request));
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(_) => Poll::Ready(Err(BoxError::from("the call ended instead of tracking"))),
        Poll::Pending if format!("{future:?}").contains("\"sleep\"") => Poll::Ready(Ok(())),
        Poll::Pending => Poll::Pending,
    })
    .await?;
    Ok((future, t0.elapsed()))
}

/// `rounds` calls one at a time: start → tracked, then drop → cancel arrival.
async fn run(journal: Option<Arc<dyn Journal>>, rounds: usize) -> Result<String, BoxError> {
    let server = OperationsServer::new();
    let handle = server.serve().await?;
    let base = handle.base_url();
    let mut layer = CancelOnDropLayer::new();
    let writer = match journal {
        Some(j) => Some(JournalWriter::start(j, WriterOptions::new())?),
        None => None,
    };
    if let Some(w) = &writer {
        layer = layer.journal(w.clone());
    }
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let svc = layer.layer(client);
    let (mut starts, mut drops) = (Vec::new(), Vec::new());
    for i in 0..rounds + 5 {
        server.clear_requests();
        let (future, took) = tracked(svc.clone(), start(&base)).await?;
        let dropped = Instant::now();
        drop(future);
        let log = server
            .wait_for(Duration::from_secs(10), |log| {
                log.iter().any(|r| r.endpoint == Endpoint::Cancel)
            })
            .await?;
        let arrival = log
            .iter()
            .find(|r| r.endpoint == Endpoint::Cancel)
            .map(|r| r.received_at);
        if i >= 5 {
            starts.push(took);
            drops.push(arrival.map_or(Duration::ZERO, |a| a.saturating_duration_since(dropped)));
        }
    }
    if let Some(w) = &writer {
        w.flush().await?;
    }
    handle.shutdown().await;
    starts.sort();
    drops.sort();
    Ok(format!(
        "{} | {} | {} | {} |",
        ms(percentile(&starts, 0.5)),
        ms(percentile(&starts, 0.99)),
        ms(percentile(&drops, 0.5)),
        ms(percentile(&drops, 0.99)),
    ))
}

/// The (j2) table.
pub async fn table(
    backends: &[(&'static str, Arc<dyn Journal>)],
    rounds: usize,
) -> Result<String, BoxError> {
    let mut out = format!(
        "\n## (j2) a tracked call through the layer, {rounds} calls one at a time (5 warm-up not counted)\n\n\
         | journal | start → tracked p50 ms | p99 ms | drop → cancel arrives p50 ms | p99 ms |\n|---|---:|---:|---:|---:|\n"
    );
    out += &format!("| none | {}\n", run(None, rounds).await?);
    for (name, journal) in backends {
        out += &format!("| {name} | {}\n", run(Some(journal.clone()), rounds).await?);
    }
    Ok(out)
}
