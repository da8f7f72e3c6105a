//! The state machine's transitions, in memory with paused time: a scripted
//! inner service answers each request in turn and records what it got.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Service, ServiceExt};

use crate::{CancelOnDropLayer, CancelPolicy, Error, PollPolicy, WireStatus};

type Log = Arc<Mutex<Vec<String>>>;

/// A service answering with `answers` in order (then 404), logging
/// `METHOD path` of each request.
fn scripted(
    answers: Vec<(u16, &'static str)>,
) -> (
    impl Service<
            Request<Full<Bytes>>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future = impl Send,
        > + Clone
        + Send
        + 'static,
    Log,
) {
    let log: Log = Arc::default();
    let queue = Arc::new(Mutex::new(VecDeque::from(answers)));
    let seen = log.clone();
    let svc = service_fn(move |req: Request<Full<Bytes>>| {
        seen.lock()
            .unwrap()
            .push(format!("{} {}", req.method(), req.uri().path()));
        let (status, body) = queue.lock().unwrap().pop_front().unwrap_or((404, "{}"));
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::from(body))
                    .unwrap(),
            )
        }
    });
    (svc, log)
}

const RUNNING: &str = r#"{"name":"operations/o"}"#;
const DONE: &str = r#"{"name":"operations/o","done":true,"response":{}}"#;

fn start() -> Request<Full<Bytes>> {
    Request::post("http://h.example/v1/things")
        .body(Full::default())
        .unwrap()
}

fn layer() -> CancelOnDropLayer {
    CancelOnDropLayer::new()
        .poll_policy(PollPolicy::new().jitter(false))
        .cancel_policy(CancelPolicy::new().attempts(1))
}

#[tokio::test(start_paused = true)]
async fn not_done_then_polled_until_done_resolves_with_the_done_answer() {
    let (svc, log) = scripted(vec![(200, RUNNING), (200, RUNNING), (200, DONE)]);
    let response = tower_layer::Layer::layer(&layer(), svc)
        .oneshot(start())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, DONE);
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "POST /v1/things",
            "GET /v1/operations/o",
            "GET /v1/operations/o"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_transient_poll_failure_is_retried_and_a_hard_one_ends_with_its_status() {
    let (svc, log) = scripted(vec![(200, RUNNING), (503, "{}"), (200, DONE)]);
    let response = tower_layer::Layer::layer(&layer(), svc)
        .oneshot(start())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(log.lock().unwrap().len(), 3);

    let lro = layer();
    let handle = lro.handle();
    let (svc, log) = scripted(vec![(200, RUNNING), (403, "{}"), (200, "{}")]);
    let err = tower_layer::Layer::layer(&lro, svc)
        .oneshot(start())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Poll { status: Some(WireStatus::Http(s)), .. } if *s == StatusCode::FORBIDDEN),
        "{err:?}"
    );
    assert_eq!(err.operation().map(|n| n.as_str()), Some("operations/o"));
    handle.drain(Duration::from_secs(5)).await;
    assert_eq!(
        log.lock().unwrap().last().unwrap(),
        "POST /v1/operations/o:cancel"
    );
}

#[tokio::test(start_paused = true)]
async fn dropped_while_sleeping_fires_one_cancel() {
    let lro = layer();
    let handle = lro.handle();
    let (svc, log) = scripted(vec![(200, RUNNING), (200, "{}")]);
    let mut svc = tower_layer::Layer::layer(&lro, svc);
    let future = svc.ready().await.unwrap().call(start());
    // The first poll is due after 1 s: give up before.
    assert!(tokio::time::timeout(Duration::from_millis(500), future)
        .await
        .is_err());
    let report = handle.drain(Duration::from_secs(5)).await;
    assert_eq!((report.stats.fired, report.stats.accepted), (1, 1));
    let log = log.lock().unwrap().clone();
    assert_eq!(log, ["POST /v1/things", "POST /v1/operations/o:cancel"]);
}
