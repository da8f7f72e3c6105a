//! The bodies users already have go through the layer: every request body the
//! layer can build its own requests with, a response body that is not `Unpin`
//! (tower-http's `TimeoutBody`) inside the layer, and an axum proxy passing its
//! `axum::body::Body` through.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::timeout::{ResponseBodyDeadlineLayer, ResponseBodyTimeoutLayer};
use tower_lro::{BoxError, CancelOnDropLayer, Operation, PollPolicy, RequestBody};
use tower_lro_testing::{Endpoint, OperationsServer};

/// `from_bytes` then read back: what the server would receive.
async fn round_trip<B>(bytes: &'static [u8]) -> Option<Bytes>
where
    B: RequestBody + http_body::Body,
    B::Error: std::fmt::Debug,
{
    let body = B::from_bytes(Bytes::from_static(bytes))?;
    Some(body.collect().await.unwrap().to_bytes())
}

async fn empty_bytes<B>() -> Bytes
where
    B: RequestBody + http_body::Body,
    B::Error: std::fmt::Debug,
{
    B::empty().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn every_request_body_type_carries_exactly_the_bytes_given() {
    const WAIT: &[u8] = br#"{"timeout":"5s"}"#;
    let wait = Some(Bytes::from_static(WAIT));
    assert_eq!(round_trip::<Full<Bytes>>(WAIT).await, wait);
    assert_eq!(round_trip::<BoxBody<Bytes, BoxError>>(WAIT).await, wait);
    assert_eq!(round_trip::<BoxBody<Bytes, Infallible>>(WAIT).await, wait);
    assert_eq!(
        round_trip::<UnsyncBoxBody<Bytes, BoxError>>(WAIT).await,
        wait
    );
    assert_eq!(round_trip::<String>(WAIT).await, wait);
    // Not `http_body::Body`s themselves, but what some services take.
    assert_eq!(
        Vec::<u8>::from_bytes(Bytes::from_static(WAIT)),
        Some(WAIT.to_vec())
    );
    assert_eq!(
        <Bytes as RequestBody>::from_bytes(Bytes::from_static(WAIT)),
        wait
    );
    assert_eq!(round_trip::<axum::body::Body>(WAIT).await, wait);
    assert_eq!(round_trip::<tonic::body::Body>(WAIT).await, wait);
    // A body that cannot carry data says so (WaitOperation falls back to
    // GetOperation), and so does `String` for bytes that are not UTF-8.
    assert_eq!(round_trip::<Empty<Bytes>>(WAIT).await, None);
    assert_eq!(round_trip::<String>(b"\xff\xfe").await, None);

    assert!(empty_bytes::<Full<Bytes>>().await.is_empty());
    assert!(empty_bytes::<Empty<Bytes>>().await.is_empty());
    assert!(empty_bytes::<axum::body::Body>().await.is_empty());
    assert!(empty_bytes::<tonic::body::Body>().await.is_empty());
    assert!(empty_bytes::<UnsyncBoxBody<Bytes, BoxError>>()
        .await
        .is_empty());
}

fn start(duration_ms: u64) -> Request<Full<Bytes>> {
    Request::post("http://upstream.test/v1/projects/p/locations/l/jobs")
        .header("content-type", "application/json")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

fn fast_polls() -> PollPolicy {
    PollPolicy::new()
        .initial_delay(Duration::from_millis(100))
        .jitter(false)
}

/// tower-http's `TimeoutBody` and `DeadlineBody` hold a `Sleep` and are not
/// `Unpin`; the layer reads them inside.
#[tokio::test(start_paused = true)]
async fn timeout_and_deadline_bodies_work_inside_the_layer() {
    let server = OperationsServer::new();
    let timeout = ServiceBuilder::new()
        .layer(CancelOnDropLayer::new().poll_policy(fast_polls()))
        .layer(ResponseBodyTimeoutLayer::new(Duration::from_secs(5)))
        .service(server.clone());
    let response = timeout.oneshot(start(1_000)).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let op = Operation::from_json(&body).unwrap();
    assert!(op.done && op.error.is_none(), "{op:?}");
    assert!(server.requests_to(Endpoint::Get).len() >= 2);

    let deadline = ServiceBuilder::new()
        .layer(CancelOnDropLayer::new().poll_policy(fast_polls()))
        .layer(ResponseBodyDeadlineLayer::new(Duration::from_secs(5)))
        .service(server.clone());
    // Dropped while it polls: the cancel goes through the same stack.
    let call = deadline.oneshot(start(60_000));
    assert!(tokio::time::timeout(Duration::from_millis(500), call)
        .await
        .is_err());
    let name = server.operation_names()[1].clone();
    server
        .wait_for(Duration::from_secs(10), |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && r.operation.as_deref() == Some(&*name))
        })
        .await
        .unwrap();
    assert_eq!(server.operation(&name).unwrap()["error"]["code"], 1);
}

/// An axum server forwarding its own `Request<axum::body::Body>` upstream
/// through a hyper-util client built for that body type.
#[tokio::test]
async fn an_axum_proxy_passes_its_body_through_the_layer() {
    let upstream = OperationsServer::new();
    let upstream_handle = upstream.serve().await.unwrap();
    let base = upstream_handle.base_url();
    let client: Client<HttpConnector, axum::body::Body> =
        Client::builder(TokioExecutor::new()).build_http();
    let lro =
        CancelOnDropLayer::new().poll_policy(fast_polls().wait_operation(Duration::from_secs(5)));
    let proxied = lro.layer(client);

    let app = axum::Router::new().fallback(move |request: Request<axum::body::Body>| {
        let proxied = proxied.clone();
        let base = base.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = format!("{base}{path}").parse().unwrap();
            match proxied.oneshot(Request::from_parts(parts, body)).await {
                Ok(response) => response.map(axum::body::Body::new),
                Err(error) => http::Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(axum::body::Body::from(error.to_string()))
                    .unwrap(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(format!("{proxy}/v1/projects/p/locations/l/jobs"))
        .header("content-type", "application/json")
        .body(Full::from(r#"{"durationMs": 300}"#))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let op = Operation::from_json(&body).unwrap();
    assert!(op.done && op.error.is_none(), "{op:?}");

    // The caller's body reached the upstream as sent, and the layer's own
    // WaitOperation carried its JSON in an `axum::body::Body`.
    let starts = upstream.requests_to(Endpoint::Start);
    assert_eq!(starts[0].body, r#"{"durationMs": 300}"#);
    let waits = upstream.requests_to(Endpoint::Wait);
    assert!(!waits.is_empty());
    assert_eq!(waits[0].body, r#"{"timeout":"5s"}"#);
    serving.abort();
    upstream_handle.shutdown().await;
}
