//! Shared pieces of the integration tests: a real hyper-util client, request
//! builders, a span recorder, and a loopback server for arbitrary responses;
//! `grpc`, the same for the gRPC tests.
//!
//! Every test crate (`tests/<concern>/main.rs`) includes this folder as its
//! `common` module; each uses part of it.
#![allow(dead_code)]

pub mod grpc;
pub mod subscribers;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower_lro::PollPolicy;
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A real hyper-util client, as users build it.
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Polls every 5 ms, no jitter: loopback tests use millisecond operations.
pub fn fast_polls() -> PollPolicy {
    PollPolicy::new()
        .initial_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .jitter(false)
}

/// A long bound for waiting on the server's log: tests wait on a condition,
/// this only stops a broken test from hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// `POST {base}/v1/projects/p/locations/l/jobs` starting an operation of `duration_ms`.
pub fn start(base: &str, duration_ms: u64) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{base}/v1/projects/p/locations/l/jobs"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer test-token")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

pub async fn body_bytes<B>(body: B) -> Bytes
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes()
}

pub async fn body_json<B>(body: B) -> serde_json::Value
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    serde_json::from_slice(&body_bytes(body).await).unwrap()
}

/// GetOperation straight to the server, around any layer: `GET
/// {base}/v1/{name}`, its body read as an Operation.
pub async fn get_operation(base: &str, name: &str) -> tower_lro::Operation {
    let request = http::Request::get(format!("{base}/v1/{name}"))
        .body(Full::default())
        .unwrap();
    let response = tower::ServiceExt::oneshot(http_client(), request)
        .await
        .unwrap();
    tower_lro::Operation::from_json(&body_bytes(response.into_body()).await).unwrap()
}

/// The name of the only operation the server has started.
pub fn only_operation(server: &tower_lro_testing::OperationsServer) -> String {
    let names = server.operation_names();
    assert_eq!(names.len(), 1, "expected exactly one operation: {names:?}");
    names[0].clone()
}

/// Serves `handler` with hyper on 127.0.0.1:0 until the returned task is aborted.
pub async fn serve<F, Fut>(handler: F) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<
            Output = Result<
                http::Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>,
                Infallible,
            >,
        > + Send
        + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(handler);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

/// One span as a test sees it: its name, fields, and (as indexes into
/// [`SpanRecorder::spans`]) its parent and the spans it follows.
#[derive(Clone, Debug, Default)]
pub struct RecordedSpan {
    pub index: usize,
    pub name: &'static str,
    pub fields: BTreeMap<String, String>,
    pub follows_from: Vec<usize>,
    pub parent: Option<usize>,
}

#[derive(Debug, Default)]
struct Recorded {
    spans: Vec<RecordedSpan>,
    // Live span id → index; ids are reused once a span closes.
    live: std::collections::HashMap<u64, usize>,
}

/// Records every span and its fields (including those recorded later).
#[derive(Clone, Debug, Default)]
pub struct SpanRecorder {
    recorded: Arc<Mutex<Recorded>>,
}

impl SpanRecorder {
    /// Installs the recorder as this thread's default subscriber.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        subscribers::isolate_subscribers();
        let subscriber = tracing_subscriber::registry().with(self.clone());
        tracing::subscriber::set_default(subscriber)
    }

    pub fn spans(&self) -> Vec<RecordedSpan> {
        self.recorded.lock().unwrap().spans.clone()
    }

    pub fn named(&self, name: &str) -> Vec<RecordedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.name == name)
            .collect()
    }
}

struct Visitor<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanRecorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Visitor(&mut fields));
        let parent_id = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.id().into_u64());
        let mut r = self.recorded.lock().unwrap();
        let parent = parent_id.and_then(|p| r.live.get(&p).copied());
        let index = r.spans.len();
        r.spans.push(RecordedSpan {
            index,
            name: attrs.metadata().name(),
            fields,
            follows_from: Vec::new(),
            parent,
        });
        r.live.insert(id.into_u64(), index);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, _ctx: Context<'_, S>) {
        let mut r = self.recorded.lock().unwrap();
        if let Some(&i) = r.live.get(&id.into_u64()) {
            values.record(&mut Visitor(&mut r.spans[i].fields));
        }
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, _ctx: Context<'_, S>) {
        let mut r = self.recorded.lock().unwrap();
        if let (Some(&i), Some(&f)) = (r.live.get(&id.into_u64()), r.live.get(&follows.into_u64()))
        {
            r.spans[i].follows_from.push(f);
        }
    }
}

/// Asserts that no cancel was fired or sent: drains `cancels` first (so a
/// detached cancel fired wrongly has had every chance to reach the server),
/// then checks the layer's count and the server's log.
pub async fn assert_no_cancel(
    cancels: &tower_lro::CancelHandle,
    server: &tower_lro_testing::OperationsServer,
) {
    let report = cancels.drain(WAIT).await;
    assert!(report.is_complete(), "drain left work: {report:?}");
    let sent = server.requests_to(tower_lro_testing::Endpoint::Cancel);
    assert!(sent.is_empty(), "cancels reached the server: {sent:?}");
    assert_eq!(report.stats.fired, 0, "{:?}", report.stats);
}

/// `layer` over a real hyper-util client: the stack most tests call through.
pub fn lro_client(layer: &tower_lro::CancelOnDropLayer) -> tower_lro::CancelOnDrop<HttpClient> {
    tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(http_client())
}

/// Sends `request` through `client` once it is ready (a readiness error is
/// a broken test, so it panics).
pub async fn send<S, B>(client: &mut S, request: http::Request<B>) -> Result<S::Response, S::Error>
where
    S: tower::Service<http::Request<B>>,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;
    client.ready().await.unwrap().call(request).await
}

/// `POST {url}` with an empty body.
pub fn post_empty(url: impl AsRef<str>) -> http::Request<Full<Bytes>> {
    http::Request::post(url.as_ref())
        .body(Full::default())
        .unwrap()
}
