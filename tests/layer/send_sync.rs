//! Compile-time checks that the layer's public types are `Send`/`Sync` in the
//! stacks users build: a service that is not `Sync` cannot go in axum state or
//! a `BoxCloneSyncService`, and a future that is not `Send` cannot be spawned
//! on a multi-threaded runtime. A regression here fails to compile.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{combinators::BoxBody, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};
use tower_http::set_header::SetRequestHeader;
use tower_lro::{
    BoxError, CancelHandle, CancelOnDrop, CancelOnDropLayer, CancelPolicy, Error, Operation,
    OperationName, PollPolicy, ResponseBody,
};
use tower_lro_testing::OperationsServer;

fn send_sync<T: Send + Sync>() {}

/// A service, its future and its response body, for requests with body `B`:
/// the service `Clone + Send + Sync + 'static`, the future `Send + 'static`,
/// the response `Send`.
fn service<S, B>()
where
    S: Service<Request<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Response: Send,
    S::Error: Send + Sync,
{
}

type Hyper<B> = Client<HttpConnector, B>;

#[test]
fn static_property_guard_is_send_sync() {
    // The layer's own types.
    send_sync::<CancelOnDropLayer>();
    send_sync::<CancelHandle>();
    send_sync::<PollPolicy>();
    send_sync::<CancelPolicy>();
    send_sync::<Error>();
    send_sync::<Operation>();
    send_sync::<OperationName>();
    send_sync::<ResponseBody<Incoming>>();
    send_sync::<ResponseBody<Full<Bytes>>>();

    // A hyper-util client with the request bodies it is usually built with.
    service::<CancelOnDrop<Hyper<Full<Bytes>>>, Full<Bytes>>();
    service::<CancelOnDrop<Hyper<Empty<Bytes>>>, Empty<Bytes>>();
    service::<CancelOnDrop<Hyper<BoxBody<Bytes, BoxError>>>, BoxBody<Bytes, BoxError>>();

    // Auth inside the layer, a timeout outside it.
    service::<CancelOnDrop<SetRequestHeader<Hyper<Full<Bytes>>, http::HeaderValue>>, Full<Bytes>>();
    service::<tower::timeout::Timeout<CancelOnDrop<Hyper<Full<Bytes>>>>, Full<Bytes>>();

    // A response body that is not `Unpin` (it holds a `Sleep`) inside, and
    // an axum server's own body forwarded.
    service::<
        CancelOnDrop<tower_http::timeout::ResponseBodyTimeout<Hyper<Full<Bytes>>>>,
        Full<Bytes>,
    >();
    service::<CancelOnDrop<Hyper<axum::body::Body>>, axum::body::Body>();

    // The embedded server in memory.
    service::<CancelOnDrop<OperationsServer>, Full<Bytes>>();
}

/// The boxing the README's server section shows, for axum state.
type Upstream =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<ResponseBody<Incoming>>, BoxError>;

#[tokio::test]
async fn a_full_client_stack_boxes_into_a_box_clone_sync_service() {
    let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stack = ServiceBuilder::new()
        .timeout(Duration::from_secs(300))
        .layer(CancelOnDropLayer::new())
        .service(client);
    let upstream: Upstream = BoxCloneSyncService::new(stack);
    send_sync::<Upstream>();
    // The future a handler awaits can be spawned on a multi-threaded runtime.
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let request = Request::post(format!(
        "{}/v1/projects/p/locations/l/jobs",
        handle.base_url()
    ))
    .header("content-type", "application/json")
    .body(Full::from(r#"{"durationMs": 0}"#))
    .unwrap();
    let response = tokio::spawn(tower::ServiceExt::oneshot(upstream, request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(server.requests().len(), 1, "a done operation is not polled");
    handle.shutdown().await;
}
