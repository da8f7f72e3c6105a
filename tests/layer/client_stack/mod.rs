//! `CancelOnDropLayer` in a client stack, over real sockets: a hyper-util
//! client under a per-attempt timeout, `TraceLayer`, a `tower::retry` policy
//! for 503 and a tower-http `SetRequestHeader` auth layer, with
//! `CancelOnDrop` on top. What the layers inside `CancelOnDrop` do to the
//! requests the layer makes itself (polls, the cancel) is read back from the
//! embedded operations server's request log.

use crate::common;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder};
use tower_http::set_header::{MakeHeaderValue, SetRequestHeaderLayer};
use tower_http::trace::TraceLayer;
use tower_lro::{BoxError, CancelOnDropLayer, CancelPolicy, DrainReport, Error, Operation};
use tower_lro_testing::{Endpoint, Fault, OperationsServer, RecordedRequest, ServerHandle};

mod layer_order;
mod retries;

/// Retries a `503` answer up to `attempts` more times, after `backoff`.
#[derive(Clone, Debug)]
struct RetryOn503 {
    attempts: u32,
    backoff: Duration,
}

impl<B: Clone, ResBody, E> Policy<Request<B>, Response<ResBody>, E> for RetryOn503 {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<B>,
        result: &mut Result<Response<ResBody>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response)
                if response.status() == StatusCode::SERVICE_UNAVAILABLE && self.attempts > 0 =>
            {
                self.attempts -= 1;
                Some(tokio::time::sleep(self.backoff))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

/// A bearer token the test can rotate while requests are in flight.
#[derive(Clone, Debug)]
struct Token(Arc<RwLock<HeaderValue>>);

impl Token {
    fn new(token: &str) -> Self {
        Token(Arc::new(RwLock::new(Self::bearer(token))))
    }

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::try_from(format!("Bearer {token}")).unwrap()
    }

    fn set(&self, token: &str) {
        *self.0.write().unwrap() = Self::bearer(token);
    }
}

impl<T> MakeHeaderValue<T> for Token {
    fn make_header_value(&mut self, _: &T) -> Option<HeaderValue> {
        Some(self.0.read().unwrap().clone())
    }
}

/// What goes inside `CancelOnDrop`: auth, then (if `retry`) the 503 retry,
/// then tracing and a per-attempt timeout, over a hyper-util client.
fn inner_stack(
    token: &Token,
    retry: bool,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<
        impl http_body::Body<Data = Bytes, Error = hyper::Error> + Unpin + Send + 'static,
    >,
    Error = BoxError,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            AUTHORIZATION,
            token.clone(),
        ))
        .option_layer(retry.then(|| {
            RetryLayer::new(RetryOn503 {
                attempts: 2,
                backoff: Duration::from_millis(5),
            })
        }))
        .layer(TraceLayer::new_for_http())
        .layer(TimeoutLayer::new(Duration::from_secs(10)))
        .service(http_client())
}

/// `CancelOnDrop` over [`inner_stack`], its layer sending each cancel once:
/// any retry is the retry layer's. The layer (for its handle) and the client.
fn one_cancel_attempt(
    token: &Token,
    retry: bool,
) -> (
    CancelOnDropLayer,
    impl Service<Request<Full<Bytes>>, Response = Response<impl Sized>, Error = Error>,
) {
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(CancelPolicy::new().attempts(1));
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(token, retry));
    (layer, client)
}

/// `POST {base}/v1/projects/p/locations/l/jobs`, *without* `authorization`:
/// only the auth layer adds it.
fn start_without_auth(base: &str, duration_ms: u64) -> Request<Full<Bytes>> {
    Request::post(format!("{base}/v1/projects/p/locations/l/jobs"))
        .header(CONTENT_TYPE, "application/json")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

fn statuses(log: &[RecordedRequest]) -> Vec<u16> {
    log.iter().map(|r| r.status.as_u16()).collect()
}

/// Polls of `name` seen by the server.
fn polls_of(server: &OperationsServer, name: &str) -> Vec<RecordedRequest> {
    server
        .requests_to(Endpoint::Get)
        .into_iter()
        .filter(|r| r.operation.as_deref() == Some(name))
        .collect()
}

/// The embedded server on loopback, its first request to `endpoint`
/// answered `503`.
async fn server_failing_once(endpoint: Endpoint) -> (OperationsServer, ServerHandle) {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    server.inject(
        endpoint,
        Fault::Script(vec![StatusCode::SERVICE_UNAVAILABLE]),
    );
    (server, handle)
}

/// Starts a long operation at `base` through `client`, waits until the server has
/// answered `polls` of its polls, runs `meanwhile`, then drops the call (the
/// caller gives up). Returns the operation's name.
async fn abandon_after_polls<S, B>(
    client: &mut S,
    server: &OperationsServer,
    base: &str,
    polls: usize,
    meanwhile: impl FnOnce(),
) -> String
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut call = Box::pin(send(client, start_without_auth(base, 60_000)));
    tokio::select! {
        result = &mut call => panic!("the call ended: {:?}", result.map(|r| r.status())),
        log = server.wait_for(WAIT, |log| {
            log.iter().filter(|r| r.endpoint == Endpoint::Get && r.is_answered()).count() >= polls
        }) => { log.unwrap(); }
    }
    meanwhile();
    drop(call);
    only_operation(server)
}

/// Waits until the server has a cancel `settled` accepts, then drains the
/// layer's cancels; asserts the drain completed and returns its report.
async fn drain_once_settled(
    server: &OperationsServer,
    layer: &CancelOnDropLayer,
    settled: impl Fn(&RecordedRequest) -> bool,
) -> DrainReport {
    server
        .wait_for(WAIT, |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && settled(r))
        })
        .await
        .unwrap();
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    report
}

/// The Operation in a response's body.
async fn operation_of<B>(response: Response<B>) -> Operation
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    Operation::from_json(&body_bytes(response.into_body()).await).unwrap()
}
