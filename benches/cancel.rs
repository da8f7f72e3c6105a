//! The drop path: what dropping a `ResponseFuture` that tracks an operation
//! costs, against spawning a bare `oneshot` on a cloned service — measured
//! through the public API, in one run, on a current_thread runtime.
//!
//! The inner service is an in-memory `service_fn` that answers the start
//! request with a not-done Operation and a cancel with `{}` at once. Each
//! measured future was called and polled once (so it has read the Operation
//! and is sleeping before its first poll: `PollPolicy` initial delay 1 h)
//! before the clock starts. Futures are boxed (`Pin<Box<ResponseFuture>>`),
//! and are dropped in batches of up to 1,024.
//!
//! | variant | what is timed |
//! |---|---|
//! | `spawn oneshot` (anchor) | clone the service, the cancel URI and the forwarded headers; `tokio::spawn` a task that builds `POST …:cancel` and `oneshot`s it |
//! | `lro drop` | `drop` of a tracking future: `PinnedDrop` → `Track::give_up` → `spawn_cancel` (counters, admission, span, the job boxed and pushed onto the layer's queue; the first 64 of a batch also spawn the pool's workers), plus freeing the future (its `Track` box, its timer entry and its own box) |
//! | `drop untracked` | `drop` of a boxed future through the layer that tracks nothing (a GET in flight): the cost of freeing a future, for reference |
//! | `spawn oneshot, run` | as `spawn oneshot`, and then running every task to completion |
//! | `lro drop, run` | as `lro drop`, and then running every cancel to completion (`CancelHandle::drain`): the workers' attempts (request, attempt timeout, classification), counters and settling |
//!
//! The `run` pair is reported as a ratio to `spawn oneshot, run`.
//!
//! Metrics on vs off: `lro drop` and `lro drop, run` again, each beside the
//! same with a layer given an OpenTelemetry `Meter` (`… +metrics`: an SDK
//! `SdkMeterProvider` with a `ManualReader`, so that every measurement is
//! aggregated), in a group of their own with the variant without metrics as
//! the anchor.
//!
//! `cargo bench --bench cancel`  (quicker: `-- --measurement-time 3 --warm-up-time 1`)

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_lro::{CancelOnDropLayer, CancelPolicy, PollPolicy};

use support::{print_table, run_group, Variant};

const START: &str = "http://api.test/v1/projects/p/locations/l/jobs";
const CANCEL: &str = "http://api.test/v1/projects/p/locations/l/operations/op-1:cancel";
const RUNNING: &[u8] = br#"{"name":"projects/p/locations/l/operations/op-1","done":false}"#;
const BATCH: u64 = 1024;

async fn handler(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body: &'static [u8] = if req.uri().path().ends_with(":cancel") {
        b"{}"
    } else {
        RUNNING
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// The headers a start request carries (the layer forwards `authorization`
/// and `user-agent`, and adds `x-goog-request-params`).
fn start_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_static("Bearer ya29.token"),
    );
    h.insert("user-agent", HeaderValue::from_static("bench/1.0"));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

fn start_request(headers: &HeaderMap) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::default());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static(START);
    *request.headers_mut() = headers.clone();
    request
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let bare = service_fn(handler);
    // Two layers alike, each with its own handle; the second with metrics.
    let layer = || {
        CancelOnDropLayer::new()
            .poll_policy(PollPolicy::new().initial_delay(Duration::from_secs(3600)))
            .cancel_policy(CancelPolicy::new().concurrency(64, 1 << 20))
    };
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::ManualReader::builder().build())
        .build();
    let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "bench");
    let (layer, layer_metrics) = (layer(), layer().meter(&meter));
    // [without metrics, with metrics]
    let handles = [layer.handle(), layer_metrics.handle()];
    let services = [layer.layer(bare), layer_metrics.layer(bare)];
    let cancels = &handles[0];
    let headers = start_headers();
    // What a hand-written cancel would carry: the forwarded headers.
    let mut cancel_headers = HeaderMap::new();
    for name in ["authorization", "user-agent"] {
        if let Some(v) = headers.get(name) {
            cancel_headers.insert(name, v.clone());
        }
    }
    cancel_headers.insert(
        "x-goog-request-params",
        HeaderValue::from_static("name=projects%2Fp%2Flocations%2Fl%2Foperations%2Fop-1"),
    );
    let cancel_uri = Uri::from_static(CANCEL);

    // `n` tracking futures, each polled until it sleeps before its first poll.
    let tracking = |which: usize, n: u64| {
        rt.block_on(async {
            let mut futures = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let mut svc = services[which].clone();
                let mut f = Box::pin(svc.call(start_request(&headers)));
                std::future::poll_fn(|cx| {
                    assert!(f.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                futures.push(f);
            }
            futures
        })
    };
    // `n` futures the layer does not track (a GET never polled).
    let untracked = |n: u64| {
        (0..n)
            .map(|_| {
                let mut svc = services[0].clone();
                let mut request = start_request(&headers);
                *request.method_mut() = Method::GET;
                Box::pin(svc.call(request))
            })
            .collect::<Vec<_>>()
    };
    // Sanity: a dropped tracking future fires one cancel, answered.
    {
        let before = cancels.stats();
        drop(tracking(0, 1));
        let report = rt.block_on(cancels.drain(Duration::from_secs(5)));
        assert!(report.is_complete());
        assert_eq!(report.stats.fired, before.fired + 1);
        assert_eq!(report.stats.accepted, before.accepted + 1);
    }

    let spawn_oneshot = |n: u64, run: bool| -> Duration {
        rt.block_on(async {
            let mut total = Duration::ZERO;
            let mut left = n;
            while left > 0 {
                let batch = left.min(BATCH);
                left -= batch;
                let mut handles = Vec::with_capacity(batch as usize);
                let start = Instant::now();
                for _ in 0..batch {
                    let svc = bare;
                    let uri = cancel_uri.clone();
                    let headers = cancel_headers.clone();
                    handles.push(tokio::spawn(async move {
                        let mut request = Request::new(Full::<Bytes>::default());
                        *request.method_mut() = Method::POST;
                        *request.uri_mut() = uri;
                        *request.headers_mut() = headers;
                        request
                            .headers_mut()
                            .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
                        svc.oneshot(request).await.map(|r| r.status())
                    }));
                }
                if run {
                    for h in handles.drain(..) {
                        black_box(h.await.expect("task").expect("in-memory service"));
                    }
                    total += start.elapsed();
                } else {
                    total += start.elapsed();
                    for h in handles {
                        h.await.expect("task").expect("in-memory service");
                    }
                }
            }
            total
        })
    };
    let lro_drop = |which: usize, n: u64, run: bool| -> Duration {
        let cancels = &handles[which];
        let mut total = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let batch = left.min(BATCH);
            left -= batch;
            let futures = tracking(which, batch);
            total += rt.block_on(async {
                let start = Instant::now();
                drop(futures);
                if run {
                    let report = cancels.drain(Duration::from_secs(60)).await;
                    let elapsed = start.elapsed();
                    assert!(report.is_complete());
                    elapsed
                } else {
                    let elapsed = start.elapsed();
                    assert!(cancels.drain(Duration::from_secs(60)).await.is_complete());
                    elapsed
                }
            });
        }
        total
    };
    let drop_untracked = |n: u64| -> Duration {
        let mut total = Duration::ZERO;
        let mut left = n;
        while left > 0 {
            let batch = left.min(BATCH);
            left -= batch;
            let futures = untracked(batch);
            let start = Instant::now();
            drop(futures);
            total += start.elapsed();
        }
        total
    };

    let mut variants = vec![
        Variant::new("spawn oneshot", |n| spawn_oneshot(n, false)),
        Variant::new("lro drop", |n| lro_drop(0, n, false)),
        Variant::new("drop untracked", drop_untracked),
    ];
    let mut run_variants = vec![
        Variant::new("spawn oneshot, run", |n| spawn_oneshot(n, true)),
        Variant::new("lro drop, run", |n| lro_drop(0, n, true)),
    ];
    if support::profile_mode(&mut variants) | support::profile_mode(&mut run_variants) {
        return;
    }
    let measured = run_group(&mut c, "cancel", &mut variants, &[None; 3], 0);
    print_table(
        "cancel: ns per cancel, up to the spawn; ratios to spawn oneshot",
        "spawn oneshot",
        &measured,
    );
    let measured = run_group(&mut c, "cancel run", &mut run_variants, &[None; 2], 0);
    print_table(
        "cancel, run to completion: ns per cancel; ratios to spawn oneshot, run",
        "spawn oneshot, run",
        &measured,
    );
    for run in [false, true] {
        let name = if run { "lro drop, run" } else { "lro drop" };
        let mut pair = vec![
            Variant::new(name, |n| lro_drop(0, n, run)),
            Variant::new(format!("{name} +metrics"), |n| lro_drop(1, n, run)),
        ];
        let measured = run_group(&mut c, &format!("metrics {name}"), &mut pair, &[None; 2], 0);
        print_table(
            &format!("metrics, {name}: ns per cancel; ratio of +metrics to without"),
            name,
            &measured,
        );
    }
    c.final_summary();
}
