//! What the layer costs per call, next to what users would otherwise run, in
//! one run on one in-memory service: a `service_fn` that builds a small JSON
//! response for a small request. Every variant is `oneshot` on a clone of
//! its service, on a current_thread runtime; the response is returned to the
//! caller and dropped (its body not read by the caller).
//!
//! | variant | what |
//! |---|---|
//! | `bare` | the `service_fn` alone (GET) |
//! | `TimeoutLayer` | `tower::timeout::TimeoutLayer` (30 s) over it (GET) |
//! | `TraceLayer` | tower-http `TraceLayer::new_for_http()` (no subscriber) (GET) |
//! | `guard floor` | a minimal drop-guard layer: a pin-project-lite future whose `PinnedDrop` checks a bool (GET) |
//! | `guard boxed` | the same with the inner future boxed (GET) |
//! | `lro GET` | `CancelOnDropLayer`, a request it does not inspect (GET) |
//! | `lro POST json` | `CancelOnDropLayer`, POST answered by small JSON that is not an Operation (read, recognised as not one, re-wrapped) |
//! | `lro POST done op` | `CancelOnDropLayer`, POST answered by an Operation already `done: true` |
//! | `lro tracked` | `CancelOnDropLayer`, POST answered by a not-done Operation, one GetOperation (no delay; on a paused tokio clock, so that the timer's 1 ms tick is not measured) answered done |
//! | `… +metrics` | the same layer given an OpenTelemetry `Meter` (SDK `SdkMeterProvider`, a `ManualReader`) |
//!
//! The metrics pairs (`lro GET`, `lro POST done op`, `lro tracked`, each
//! without and with a meter) run as groups of their own, the variant
//! without metrics the anchor: their interleaved ratio is the cost of the
//! metrics.
//!
//! Ratios to `bare` are what count: criterion's median per variant, and the
//! per-round ratio when the variants run interleaved (see `support`).
//! `tests/alloc.rs` shows that `lro GET` allocates exactly what `bare` does.
//!
//! `cargo bench --bench overhead`  (quicker: `-- --measurement-time 3 --warm-up-time 1`)

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use http::{Method, Request, Response, Uri};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_lro::CancelOnDropLayer;

use support::{print_table, run_group, Variant};

const NOT_AN_OPERATION: &[u8] = br#"{"name":"projects/p/things/t","kind":"thing","done_at":null}"#;
const DONE_OPERATION: &[u8] =
    br#"{"name":"projects/p/locations/l/operations/op-1","done":true,"response":{"ok":true}}"#;
const NOT_DONE_OPERATION: &[u8] = br#"{"name":"projects/p/locations/l/operations/op-1"}"#;

async fn handler(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let body: &'static [u8] = if path.ends_with("/done") || path.contains("/operations/") {
        DONE_OPERATION
    } else if path.ends_with("/tracked") {
        NOT_DONE_OPERATION
    } else {
        NOT_AN_OPERATION
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// A small request. The URI is parsed once and cloned (a refcount-free
/// `Bytes` clone of static text): parsing it costs about as much as the rest
/// of the bare call together (~1,000 instructions), which would hide the
/// layers' costs in the ratios.
fn request(method: Method, uri: &Uri) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::default());
    *request.method_mut() = method;
    *request.uri_mut() = uri.clone();
    request
}

const THING: &str = "http://api.test/v1/projects/p/locations/l/things/t";
const THINGS: &str = "http://api.test/v1/projects/p/locations/l/things";
const DONE: &str = "http://api.test/v1/projects/p/locations/l/jobs/done";
const TRACKED: &str = "http://api.test/v1/projects/p/locations/l/jobs/tracked";

// ----- the floor: a minimal drop guard -----

pin_project! {
    /// A drop guard as small as one can be: the inner future, and a bool
    /// that `PinnedDrop` checks (set once the inner future finished).
    pub struct GuardFuture<F> {
        #[pin]
        inner: F,
        finished: bool,
    }

    impl<F> PinnedDrop for GuardFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if !*this.project().finished {
                black_box(());
            }
        }
    }
}

impl<F: Future> Future for GuardFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        *this.finished = true;
        Poll::Ready(out)
    }
}

/// The service of the floor layer; `BOXED` boxes the inner future.
#[derive(Clone, Copy)]
struct Guard<S, const BOXED: bool>(S);

impl<S, R> Service<R> for Guard<S, false>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GuardFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        GuardFuture {
            inner: self.0.call(req),
            finished: false,
        }
    }
}

impl<S, R> Service<R> for Guard<S, true>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = GuardFuture<Pin<Box<S::Future>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        GuardFuture {
            inner: Box::pin(self.0.call(req)),
            finished: false,
        }
    }
}

// ----- the run -----

/// `iters` calls of `oneshot(request)` on clones of `svc`, timed.
fn timed<S, B>(
    rt: &tokio::runtime::Runtime,
    svc: &S,
    method: Method,
    uri: &'static str,
    iters: u64,
) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let uri = Uri::from_static(uri);
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let response = svc
                .clone()
                .oneshot(request(method.clone(), &uri))
                .await
                .expect("in-memory service");
            black_box(response);
        }
        start.elapsed()
    })
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let bare = service_fn(handler);
    let timeout = tower::timeout::TimeoutLayer::new(Duration::from_secs(30)).layer(bare);
    let trace = tower_http::trace::TraceLayer::new_for_http().layer(bare);
    let guard = Guard::<_, false>(bare);
    let guard_boxed = Guard::<_, true>(bare);
    // The layer's own services need the runtime to be current at `call` for
    // inspected requests (they capture its handle); `block_on` makes it so.
    let lro = CancelOnDropLayer::new().layer(bare);
    // The same with metrics: an SDK meter provider that aggregates (a
    // manual reader, never collected while measuring).
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(opentelemetry_sdk::metrics::ManualReader::builder().build())
        .build();
    let meter = opentelemetry::metrics::MeterProvider::meter(&provider, "bench");
    let lro_metrics = CancelOnDropLayer::new().meter(&meter).layer(bare);
    // Tracked: one poll at once, then done.
    let no_delay = tower_lro::PollPolicy::new()
        .initial_delay(Duration::ZERO)
        .jitter(false);
    let tracked = CancelOnDropLayer::new()
        .poll_policy(no_delay.clone())
        .layer(bare);
    let tracked_metrics = CancelOnDropLayer::new()
        .poll_policy(no_delay)
        .meter(&meter)
        .layer(bare);

    let rt = &rt;
    let mut variants = vec![
        Variant::new("bare", |n| timed(rt, &bare, Method::GET, THING, n)),
        Variant::new("TimeoutLayer", |n| {
            timed(rt, &timeout, Method::GET, THING, n)
        }),
        Variant::new("TraceLayer", |n| timed(rt, &trace, Method::GET, THING, n)),
        Variant::new("guard floor", |n| timed(rt, &guard, Method::GET, THING, n)),
        Variant::new("guard boxed", |n| {
            timed(rt, &guard_boxed, Method::GET, THING, n)
        }),
        Variant::new("lro GET (not inspected)", |n| {
            timed(rt, &lro, Method::GET, THING, n)
        }),
        Variant::new("lro POST json (not an op)", |n| {
            timed(rt, &lro, Method::POST, THINGS, n)
        }),
        Variant::new("lro POST done op", |n| {
            timed(rt, &lro, Method::POST, DONE, n)
        }),
    ];
    // Under `BENCH_PROFILE` (benches/callgrind.sh), every group's variants
    // are listed or profiled, the metrics pairs' too; nothing is timed.
    let profiling = support::profile_mode(&mut variants);
    if !profiling {
        let bytes = vec![None; variants.len()];
        let measured = run_group(c, "overhead", &mut variants, &bytes, 0);
        print_table(
            "overhead: ns per oneshot call; ratios to bare (target: lro GET <= 1.10)",
            "bare",
            &measured,
        );
    }

    // Metrics on vs off, each pair interleaved with the "off" variant as
    // the anchor.
    // The tracked pair on a paused clock: its zero-delay poll would
    // otherwise wait for the timer wheel's next 1 ms tick, a constant that
    // hides what the call itself costs.
    let paused = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let pairs: [(&str, &_, &_, Method, &'static str, &tokio::runtime::Runtime); 3] = [
        ("lro GET", &lro, &lro_metrics, Method::GET, THING, rt),
        (
            "lro POST done op",
            &lro,
            &lro_metrics,
            Method::POST,
            DONE,
            rt,
        ),
        (
            "lro tracked",
            &tracked,
            &tracked_metrics,
            Method::POST,
            TRACKED,
            &paused,
        ),
    ];
    for (name, off, on, method, uri, rt) in pairs {
        let with = format!("{name} +metrics");
        let m = method.clone();
        let mut pair = vec![
            Variant::new(name, |n| timed(rt, off, m.clone(), uri, n)),
            Variant::new(with, |n| timed(rt, on, method.clone(), uri, n)),
        ];
        if profiling {
            support::profile_mode(&mut pair);
            continue;
        }
        let measured = run_group(c, &format!("metrics {name}"), &mut pair, &[None; 2], 0);
        print_table(
            &format!("metrics, {name}: ns per call; ratio of +metrics to without"),
            name,
            &measured,
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    overhead(&mut c);
    if std::env::var_os("BENCH_PROFILE").is_none() {
        c.final_summary();
    }
}
