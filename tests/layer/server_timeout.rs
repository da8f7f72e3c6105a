//! A server that gives up cancels its upstream operation. An axum server on
//! 127.0.0.1 whose handler starts an operation on an upstream
//! `OperationsServer` (also on 127.0.0.1) through a hyper-util client wrapped
//! in `CancelOnDropLayer`, behind tower-http's `TimeoutLayer`. Each test
//! makes the server give up one way and asserts on the upstream's request
//! log. Tests wait on that log (`OperationsServer::wait_for`), never on a
//! fixed sleep.

use crate::common;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use common::*;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;
use tower_http::timeout::TimeoutLayer;
use tower_lro::{CancelOnDrop, CancelOnDropLayer};
use tower_lro_testing::{Endpoint, Fault, OperationsServer, RecordedRequest, ServerHandle};

#[derive(Clone)]
struct AppState {
    upstream: CancelOnDrop<HttpClient>,
    upstream_base: String,
}

/// `POST /jobs`: starts an upstream operation with the request's body and
/// answers with the finished operation.
async fn start_job(State(state): State<AppState>, body: Bytes) -> Response {
    let request = http::Request::post(format!(
        "{}/v1/projects/p/locations/l/jobs",
        state.upstream_base
    ))
    .header(CONTENT_TYPE, "application/json")
    .header(AUTHORIZATION, "Bearer test-token")
    .body(Full::new(body))
    .unwrap();
    match state.upstream.oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The upstream, the layer in the server's client stack, and the server.
struct Rig {
    upstream: OperationsServer,
    upstream_handle: ServerHandle,
    layer: CancelOnDropLayer,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Rig {
    /// Starts the upstream and an axum server that answers `504` after
    /// `server_timeout`.
    async fn start(server_timeout: Duration) -> Rig {
        let upstream = OperationsServer::new();
        let upstream_handle = upstream.serve().await.unwrap();
        let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
        let state = AppState {
            upstream: lro_client(&layer),
            upstream_base: upstream_handle.base_url(),
        };
        let app = Router::new()
            .route("/jobs", post(start_job))
            .with_state(state)
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                server_timeout,
            ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).into_future().await.unwrap();
        });
        Rig {
            upstream,
            upstream_handle,
            layer,
            addr,
            server,
        }
    }

    /// The caller's request to the server: `POST /jobs`, whose handler
    /// starts a 60 s upstream operation.
    fn start_request(&self) -> http::Request<Full<Bytes>> {
        http::Request::post(format!("http://{}/jobs", self.addr))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(START_BODY))
            .unwrap()
    }

    /// Waits until the layer is polling an operation: the server's handler is
    /// mid-request, waiting on the upstream. Returns the operation's name.
    async fn wait_until_polling(&self) -> String {
        let log = self
            .upstream
            .wait_for(WAIT, |log| log.iter().any(|r| r.endpoint == Endpoint::Get))
            .await
            .unwrap();
        let poll = log.iter().find(|r| r.endpoint == Endpoint::Get).unwrap();
        poll.operation.clone().unwrap()
    }

    /// Waits for the upstream to receive a cancel of `name` and every cancel
    /// the layer fired to finish, then checks that it was the only cancel,
    /// has the AIP-151 shape, and that GetOperation shows the operation
    /// CANCELLED.
    async fn assert_cancelled_once(&self, name: &str) {
        self.upstream
            .wait_for(WAIT, |log| {
                log.iter()
                    .any(|r| r.endpoint == Endpoint::Cancel && r.operation.as_deref() == Some(name))
            })
            .await
            .unwrap();
        let report = self.layer.handle().drain(WAIT).await;
        assert!(report.is_complete(), "{report:?}");

        let cancels: Vec<RecordedRequest> = self.upstream.requests_to(Endpoint::Cancel);
        assert_eq!(cancels.len(), 1, "exactly one cancel: {cancels:?}");
        let cancel = &cancels[0];
        assert_eq!(cancel.operation.as_deref(), Some(name));
        assert_eq!(cancel.method, Method::POST);
        assert_eq!(cancel.path, format!("/v1/{name}:cancel"));
        assert!(
            cancel.body.is_empty(),
            "AIP-151: the request body must be empty"
        );
        assert_eq!(cancel.headers["content-length"], "0");
        assert_eq!(cancel.headers[AUTHORIZATION], "Bearer test-token");
        assert_eq!(cancel.status, StatusCode::OK);
        assert_eq!(report.stats.fired, 1);
        assert_eq!(report.stats.accepted, 1);

        let op = get_operation(&self.upstream_handle.base_url(), name).await;
        assert!(op.done);
        assert_eq!(
            op.error.map(|e| e.code),
            Some(1),
            "error.code == 1 (CANCELLED)"
        );
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const START_BODY: &str = r#"{"durationMs": 60000}"#;

#[tokio::test]
async fn the_servers_own_timeout_cancels_the_upstream_operation() {
    let rig = Rig::start(Duration::from_millis(300)).await;

    let response = http_client().oneshot(rig.start_request()).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::GATEWAY_TIMEOUT,
        "TimeoutLayer answered"
    );

    let name = only_operation(&rig.upstream);
    rig.assert_cancelled_once(&name).await;
}

#[tokio::test]
async fn a_client_closing_its_connection_mid_request_cancels_the_upstream_operation() {
    // The server itself would wait a minute: only the client gives up here.
    let rig = Rig::start(Duration::from_secs(60)).await;

    let mut socket = TcpStream::connect(rig.addr).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /jobs HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{START_BODY}",
                rig.addr,
                START_BODY.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let name = rig.wait_until_polling().await;
    assert_eq!(name, only_operation(&rig.upstream));
    // Nothing has been answered yet: the handler is still waiting.
    let mut buf = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::ZERO, socket.read(&mut buf))
            .await
            .is_err(),
        "the server answered before the client hung up"
    );
    assert!(rig.upstream.requests_to(Endpoint::Cancel).is_empty());

    drop(socket); // closes the connection; hyper drops the handler future

    rig.assert_cancelled_once(&name).await;
}

#[tokio::test]
async fn a_hyper_client_dropping_its_request_mid_flight_cancels_the_upstream_operation() {
    let rig = Rig::start(Duration::from_secs(60)).await;

    let call = http_client().oneshot(rig.start_request());
    let mut call = Box::pin(call);
    let name = tokio::select! {
        response = &mut call => panic!("the server answered: {response:?}"),
        name = rig.wait_until_polling() => name,
    };
    assert!(rig.upstream.requests_to(Endpoint::Cancel).is_empty());

    // The client's own caller gives up: hyper-util drops the HTTP/1
    // connection the request was on, and the server drops the handler.
    drop(call);

    rig.assert_cancelled_once(&name).await;
}

#[tokio::test]
async fn an_http2_client_resetting_its_stream_cancels_the_upstream_operation() {
    let rig = Rig::start(Duration::from_secs(60)).await;
    // HTTP/2 with prior knowledge (h2c): dropping the request resets its
    // stream; the connection stays open.
    let h2: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();

    let call = h2.clone().oneshot(rig.start_request());
    let mut call = Box::pin(call);
    let name = tokio::select! {
        response = &mut call => panic!("the server answered: {response:?}"),
        name = rig.wait_until_polling() => name,
    };
    drop(call); // RST_STREAM; hyper drops that stream's handler

    rig.assert_cancelled_once(&name).await;
    drop(h2);
}

#[tokio::test]
async fn the_servers_timeout_firing_before_the_upstream_answered_the_start_still_cancels() {
    // The upstream takes longer to answer the start than the server waits:
    // the handler is dropped before the operation's name is known. The
    // layer keeps the start request alive in a detached task and cancels
    // the operation once its answer names it.
    let rig = Rig::start(Duration::from_millis(100)).await;
    rig.upstream
        .inject(Endpoint::Start, Fault::Latency(Duration::from_secs(1)));

    let response = http_client().oneshot(rig.start_request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let starts = rig.upstream.requests_to(Endpoint::Start);
    assert_eq!(starts.len(), 1);
    assert!(
        !starts[0].is_answered(),
        "the server gave up while the upstream was still answering the start"
    );

    let log = rig
        .upstream
        .wait_for(WAIT, |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Start && r.operation.is_some())
        })
        .await
        .unwrap();
    let name = log[0].operation.clone().unwrap();
    rig.assert_cancelled_once(&name).await;
    // The layer never polled: the caller was gone before the name was known.
    // (The one GetOperation, after the cancel, is the check's own.)
    let endpoints: Vec<Endpoint> = rig.upstream.requests().iter().map(|r| r.endpoint).collect();
    assert_eq!(
        endpoints,
        [Endpoint::Start, Endpoint::Cancel, Endpoint::Get],
        "{:?}",
        rig.upstream.requests()
    );
}
