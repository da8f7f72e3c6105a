//! User route functions for APIs whose operation URLs differ from AIP-151's:
//! the cancel goes where the route says — on the request's origin only.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::body_bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt};
use tower_lro::{CancelOnDropLayer, PollPolicy, Routes};

type Req = http::Request<Full<Bytes>>;
type Log = Arc<Mutex<Vec<(Method, String)>>>;

/// A Cloud SQL–like API: operations at `/sql/v1beta4/{name}`, cancelled with
/// `POST /sql/v1beta4/{name}/cancel`, never done.
fn sql_like(
    log: Log,
) -> impl Service<
    Req,
    Response = http::Response<Full<Bytes>>,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |req: Req| {
        let log = log.clone();
        async move {
            log.lock()
                .unwrap()
                .push((req.method().clone(), req.uri().to_string()));
            let body = match (req.method(), req.uri().path()) {
                (&Method::POST, "/sql/v1beta4/projects/p/instances") => {
                    r#"{"name":"projects/p/operations/op-7","metadata":{}}"#
                }
                (&Method::GET, "/sql/v1beta4/projects/p/operations/op-7") => {
                    r#"{"name":"projects/p/operations/op-7","done":false}"#
                }
                _ => "{}",
            };
            Ok(http::Response::builder()
                .header("content-type", "application/json")
                .body(Full::from(body))
                .unwrap())
        }
    })
}

fn start() -> Req {
    http::Request::post("https://sqladmin.example.test/sql/v1beta4/projects/p/instances")
        .body(Full::default())
        .unwrap()
}

fn polls() -> PollPolicy {
    PollPolicy::new().jitter(false)
}

/// Starts an operation through `layer` over [`sql_like`], lets it poll for
/// 3 s (of paused time), drops the call and drains the cancel: every
/// request the API received.
async fn poll_then_give_up(layer: &CancelOnDropLayer) -> Vec<(Method, String)> {
    let log: Log = Default::default();
    let mut svc = layer.layer(sql_like(log.clone()));
    let call = svc.ready().await.unwrap().call(start());
    assert!(tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .is_err());
    layer.handle().drain(Duration::from_secs(30)).await;
    let log = log.lock().unwrap().clone();
    log
}

/// The cancels among `log`'s requests.
fn cancels(log: &[(Method, String)]) -> Vec<&(Method, String)> {
    log.iter().filter(|(_, u)| u.contains("cancel")).collect()
}

#[tokio::test(start_paused = true)]
async fn a_route_function_decides_where_poll_and_cancel_go() {
    let layer = CancelOnDropLayer::new()
        .poll_policy(polls())
        .route(|name, _| {
            let get = format!("/sql/v1beta4/{}", name.encoded());
            let cancel = format!("{get}/cancel");
            Some(Routes::new(get.parse().ok()?, cancel.parse().ok()?))
        });
    let log = poll_then_give_up(&layer).await;
    assert!(log.contains(&(
        Method::GET,
        "https://sqladmin.example.test/sql/v1beta4/projects/p/operations/op-7".into()
    )));
    assert_eq!(
        cancels(&log),
        vec![&(
            Method::POST,
            "https://sqladmin.example.test/sql/v1beta4/projects/p/operations/op-7/cancel".into()
        )]
    );
    assert_eq!(layer.handle().stats().accepted, 1);
}

#[tokio::test(start_paused = true)]
async fn none_from_the_route_function_falls_back_to_the_default_rule() {
    let layer = CancelOnDropLayer::new()
        .poll_policy(polls())
        .route(|name, request| {
            // Only for one host; None elsewhere.
            (request.host() == Some("labeling.example.test")).then(|| {
                Routes::new(
                    format!("/v1beta1/{}", name.encoded()).parse().unwrap(),
                    format!("/v1beta1/{}:cancel", name.encoded())
                        .parse()
                        .unwrap(),
                )
                .cancel_method(Method::GET)
            })
        });
    let log = poll_then_give_up(&layer).await;
    assert_eq!(
        cancels(&log),
        vec![&(
            Method::POST,
            "https://sqladmin.example.test/sql/v1beta4/projects/p/operations/op-7:cancel".into()
        )],
        "the default AIP-151 rule"
    );
}

#[tokio::test(start_paused = true)]
async fn a_route_to_another_origin_is_refused_and_nothing_is_sent_there() {
    let log: Log = Default::default();
    let layer = CancelOnDropLayer::new()
        .poll_policy(polls())
        .route(|name, _| {
            let elsewhere = format!("https://attacker.example/{}", name.encoded());
            Some(Routes::new(
                elsewhere.parse().ok()?,
                elsewhere.parse().ok()?,
            ))
        });
    let mut svc = layer.layer(sql_like(log.clone()));
    let response = svc.ready().await.unwrap().call(start()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        body_bytes(response.into_body()).await,
        Bytes::from_static(br#"{"name":"projects/p/operations/op-7","metadata":{}}"#),
        "passed through untracked"
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 1, "no poll, no cancel: {log:?}");
    assert!(log.iter().all(|(_, u)| !u.contains("attacker")));
}

#[tokio::test(start_paused = true)]
async fn a_route_may_cancel_with_get() {
    let layer = CancelOnDropLayer::new()
        .poll_policy(polls())
        .route(|name, _| {
            let get = format!("/sql/v1beta4/{}", name.encoded());
            let cancel = format!("{get}:cancel");
            Some(Routes::new(get.parse().ok()?, cancel.parse().ok()?).cancel_method(Method::GET))
        });
    let log = poll_then_give_up(&layer).await;
    assert_eq!(
        cancels(&log),
        vec![&(
            Method::GET,
            "https://sqladmin.example.test/sql/v1beta4/projects/p/operations/op-7:cancel".into()
        )]
    );
}
