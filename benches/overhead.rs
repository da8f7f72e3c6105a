//! What the layer costs per call, next to what users would otherwise run,
//! in one run on one in-memory service (a `service_fn` that builds a small
//! response). Ratios to `bare` are what count; absolute numbers drift.
//!
//! `cargo bench --bench overhead`

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_lro::CancelOnDropLayer;

const NOT_AN_OPERATION: &[u8] = br#"{"name":"projects/p/things/t","kind":"thing","done_at":null}"#;
const DONE_OPERATION: &[u8] =
    br#"{"name":"projects/p/locations/l/operations/op-1","done":true,"response":{"ok":true}}"#;

async fn handler(
    req: http::Request<Full<Bytes>>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let body: &'static [u8] = if req.uri().path().ends_with("/done") {
        DONE_OPERATION
    } else {
        NOT_AN_OPERATION
    };
    Ok(http::Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap_or_default())
}

fn request(method: http::Method, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method(method)
        .uri(format!("http://api.test/v1/projects/p/locations/l/{path}"))
        .body(Full::default())
        .unwrap_or_default()
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let bare = service_fn(handler);
    let timeout = tower::timeout::TimeoutLayer::new(Duration::from_secs(30)).layer(bare);
    let lro = CancelOnDropLayer::new().layer(bare);

    let mut group = c.benchmark_group("overhead");
    group.bench_function("bare GET", |b| {
        b.to_async(&rt).iter(|| async {
            let res = bare.oneshot(request(http::Method::GET, "things/t")).await;
            res.map(|r| r.into_body())
        })
    });
    group.bench_function("TimeoutLayer GET", |b| {
        b.to_async(&rt).iter(|| async {
            let res = timeout
                .clone()
                .oneshot(request(http::Method::GET, "things/t"))
                .await;
            res.map(|r| r.into_body())
        })
    });
    group.bench_function("CancelOnDrop GET (not inspected)", |b| {
        b.to_async(&rt).iter(|| async {
            let res = lro
                .clone()
                .oneshot(request(http::Method::GET, "things/t"))
                .await;
            res.map(|r| r.into_body())
        })
    });
    group.bench_function("CancelOnDrop POST (JSON, not an operation)", |b| {
        b.to_async(&rt).iter(|| async {
            let res = lro
                .clone()
                .oneshot(request(http::Method::POST, "things"))
                .await
                .expect("call");
            res.into_body().collect().await.map(|c| c.to_bytes())
        })
    });
    group.bench_function("CancelOnDrop POST (done operation)", |b| {
        b.to_async(&rt).iter(|| async {
            let res = lro
                .clone()
                .oneshot(request(http::Method::POST, "jobs/done"))
                .await
                .expect("call");
            res.into_body().collect().await.map(|c| c.to_bytes())
        })
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
