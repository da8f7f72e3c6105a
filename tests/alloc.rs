//! A request the layer does not inspect passes through without a heap
//! allocation of its own (the pass-through path must not copy, clone headers
//! or clone the inner service): `CancelOnDrop::call` → `Protocol::for_request` →
//! `ResponseFuture::pass_through` → `ResponseBody::inner`.
//!
//! A counting global allocator counts the allocations made by this thread
//! while one `oneshot` call runs — through the bare service, and through the
//! same service wrapped in `CancelOnDropLayer` — and the counts must be
//! equal. The inspected paths are counted too, to show the counter sees the
//! layer's allocations when it makes them.
//!
//! The same allocator also counts live bytes: after tracking operations,
//! dropping them all and draining their cancels, the layer holds no memory
//! that grows round after round (the load example's RSS figures are the
//! allocator's retention, not a leak).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_lro::CancelOnDropLayer;

/// Counts allocations (and reallocations) per thread, then defers to `System`.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn live(delta: i64) {
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + delta));
}

fn size(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// SAFETY: every method defers to `System`, which upholds `GlobalAlloc`'s
// contract; the counter is a const-initialised thread-local `Cell` without a
// destructor, so touching it neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        live(size(layout.size()));
        // SAFETY: the caller upholds `alloc`'s contract, forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        live(size(layout.size()));
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        live(size(new_size) - size(layout.size()));
        // SAFETY: `ptr` was allocated by `System` (through this allocator)
        // with `layout`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(-size(layout.size()));
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

const NOT_AN_OPERATION: &[u8] = br#"{"name":"projects/p/things/t","kind":"thing"}"#;

async fn handler(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(NOT_AN_OPERATION)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn request(method: Method, uri: &'static str) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::default());
    *request.method_mut() = method;
    *request.uri_mut() = Uri::from_static(uri);
    request
}

/// Allocations made by this thread during one call, request building and
/// reading the response body included, after warming up (so that lazily
/// initialised runtime and tracing state is not counted).
fn allocations_per_call<S, B>(
    rt: &tokio::runtime::Runtime,
    svc: &S,
    method: Method,
    uri: &'static str,
) -> u64
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let call = || async {
        let response = svc
            .clone()
            .oneshot(request(method.clone(), uri))
            .await
            .expect("in-memory service");
        assert_eq!(response.status(), http::StatusCode::OK);
        let body = response.into_body().collect().await.expect("body");
        assert_eq!(body.to_bytes(), NOT_AN_OPERATION);
    };
    rt.block_on(async {
        for _ in 0..3 {
            call().await;
        }
        const CALLS: u64 = 16;
        let before = allocations();
        for _ in 0..CALLS {
            call().await;
        }
        let made = allocations() - before;
        assert_eq!(made % CALLS, 0, "calls allocate the same each time: {made}");
        made / CALLS
    })
}

#[test]
fn not_inspected_pass_through_allocates_nothing_beyond_the_inner_service() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let bare = service_fn(handler);
    let lro = CancelOnDropLayer::new().layer(bare);
    const THING: &str = "http://api.test/v1/projects/p/locations/l/things/t";
    const THINGS: &str = "http://api.test/v1/projects/p/locations/l/things";

    let bare_get = allocations_per_call(&rt, &bare, Method::GET, THING);
    let lro_get = allocations_per_call(&rt, &lro, Method::GET, THING);
    let lro_head = allocations_per_call(&rt, &lro, Method::HEAD, THING);
    let bare_post = allocations_per_call(&rt, &bare, Method::POST, THINGS);
    let lro_post = allocations_per_call(&rt, &lro, Method::POST, THINGS);
    println!(
        "allocations per call: bare GET {bare_get}, lro GET {lro_get}, lro HEAD {lro_head}; \
         bare POST {bare_post}, lro POST (inspected, not an operation) {lro_post}"
    );
    assert_eq!(lro_get, bare_get, "GET through the layer (not inspected)");
    assert_eq!(lro_head, bare_get, "HEAD through the layer (not inspected)");
    // The counter does see the layer when it works: an inspected call keeps
    // a clone of the service and reads the body.
    assert!(
        lro_post > bare_post,
        "inspected POST: {lro_post} allocations, bare {bare_post}"
    );
}

const RUNNING: &[u8] = br#"{"name":"projects/p/locations/l/operations/op-1","done":false}"#;

/// Answers a start with a running Operation and a cancel with `{}`, at once.
async fn operations(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body: &'static [u8] = if req.uri().path().ends_with(":cancel") {
        b"{}"
    } else {
        RUNNING
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[test]
fn tracking_dropping_and_draining_leaves_no_memory_behind() {
    use std::future::Future;
    use std::task::Poll;
    use std::time::Duration;
    use tower::Service;
    use tower_lro::{CancelPolicy, PollPolicy};

    // Everything (calls, drops, the spawned cancels) runs on this thread,
    // so this thread's live-byte count is the whole story.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let layer = CancelOnDropLayer::new()
        .poll_policy(PollPolicy::new().initial_delay(Duration::from_secs(3600)))
        .cancel_policy(CancelPolicy::new().concurrency(64, 10_000));
    let cancels = layer.handle();
    let svc = layer.layer(service_fn(operations));
    const OPERATIONS: usize = 2_000;
    let round = || {
        rt.block_on(async {
            let mut futures = Vec::with_capacity(OPERATIONS);
            for _ in 0..OPERATIONS {
                let mut svc = svc.clone();
                let mut future = Box::pin(svc.call(request(
                    Method::POST,
                    "http://api.test/v1/projects/p/locations/l/jobs",
                )));
                std::future::poll_fn(|cx| {
                    assert!(future.as_mut().poll(cx).is_pending(), "tracking");
                    Poll::Ready(())
                })
                .await;
                futures.push(future);
            }
            let tracking = live_bytes();
            // Every drop fires a cancel; none has run yet (nothing has
            // yielded to the runtime), so they are all queued.
            drop(futures);
            let queued = live_bytes();
            assert_eq!(cancels.pending(), OPERATIONS);
            let report = cancels.drain(Duration::from_secs(30)).await;
            assert!(report.is_complete());
            (tracking, queued)
        })
    };
    let mut after = Vec::new();
    let mut peak = Vec::new();
    let mut queued = Vec::new();
    for _ in 0..4 {
        let (tracking, all_queued) = round();
        peak.push(tracking);
        queued.push(all_queued);
        after.push(live_bytes());
    }
    let stats = cancels.stats();
    let per_queued: Vec<i64> = (0..4)
        .map(|i| (queued[i] - after[i]) / OPERATIONS as i64)
        .collect();
    println!(
        "live bytes while tracking {peak:?}; with {OPERATIONS} cancels queued {queued:?} \
         ({per_queued:?} bytes per queued cancel); after each drain {after:?}; {stats:?}"
    );
    // A queued cancel is its job (the operation's name and route, its
    // headers, the service clone): a few hundred bytes, not a parked task.
    assert!(
        per_queued.iter().all(|&b| b < 1024),
        "bytes per queued cancel: {per_queued:?}"
    );
    assert_eq!(stats.accepted, 4 * OPERATIONS as u64);
    assert_eq!(stats.shed, 0);
    // The first round may grow runtime structures (task lists, timer wheel
    // slabs) that are kept for reuse; from then on nothing accumulates.
    let growth = after[3] - after[1];
    assert!(
        growth <= 1024,
        "{growth} bytes still live after two more rounds of {OPERATIONS} cancels: {after:?}"
    );
    // And tracking really held memory, which the drain gave back.
    assert!(peak[3] - after[3] > 100 * OPERATIONS as i64);
}
