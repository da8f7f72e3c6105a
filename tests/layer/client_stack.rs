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

#[tokio::test]
async fn the_cancel_carries_the_auth_layers_current_token_and_its_503_is_retried_by_the_retry_layer(
) {
    let (server, handle) = server_failing_once(Endpoint::Cancel).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    let (layer, mut client) = one_cancel_attempt(&token, true);

    // A token refresh while the operation runs; then the caller gives up.
    let name = abandon_after_polls(&mut client, &server, &base, 1, || token.set("token-2")).await;
    let report = drain_once_settled(&server, &layer, |r| {
        r.operation.as_deref() == Some(&*name) && r.status == StatusCode::OK
    })
    .await;

    let cancels = server.cancels_for(&name);
    assert_eq!(
        statuses(&cancels),
        [503, 200],
        "the 503 was retried: {cancels:?}"
    );
    for cancel in &cancels {
        assert_eq!(cancel.method, Method::POST);
        assert_eq!(cancel.path, format!("/v1/{name}:cancel"));
        assert!(cancel.body.is_empty(), "AIP-151: empty body");
        assert_eq!(
            cancel.headers[AUTHORIZATION], "Bearer token-2",
            "the auth layer's token at the time of the cancel"
        );
    }
    // The caller's request had no authorization; the auth layer gave the
    // start the token of its time.
    let starts = server.requests_to(Endpoint::Start);
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].headers[AUTHORIZATION], "Bearer token-1");

    // The layer sent one request and counted one accepted cancel: the retry
    // was the retry layer's, inside it.
    assert_eq!(report.stats.fired, 1);
    assert_eq!(report.stats.accepted, 1);
    assert_eq!(report.stats.retried, 0);
    assert_eq!(report.stats.failed, 0);

    let op = get_operation(&base, &name).await;
    assert!(op.done);
    assert_eq!(op.error.map(|e| e.code), Some(1), "CANCELLED");
}

#[tokio::test]
async fn without_the_retry_layer_the_same_503_ends_the_cancel_after_one_attempt() {
    // The control for the test above: same fault, same CancelPolicy, no
    // retry layer.
    let (server, handle) = server_failing_once(Endpoint::Cancel).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    let (layer, mut client) = one_cancel_attempt(&token, false);

    let name = abandon_after_polls(&mut client, &server, &base, 1, || {}).await;
    let report = drain_once_settled(&server, &layer, RecordedRequest::is_answered).await;
    let cancels = server.cancels_for(&name);
    assert_eq!(statuses(&cancels), [503]);
    assert_eq!(cancels[0].headers[AUTHORIZATION], "Bearer token-1");
    assert_eq!(report.stats.fired, 1);
    assert_eq!(report.stats.failed, 1);
    assert_eq!(report.stats.accepted, 0);
    let op = get_operation(&base, &name).await;
    assert!(!op.done, "the operation was not cancelled");
}

#[tokio::test]
async fn a_503_on_start_is_retried_with_the_same_body_and_the_operation_is_waited_on() {
    let (server, handle) = server_failing_once(Endpoint::Start).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(&token, true));

    let response = send(&mut client, start_without_auth(&base, 40))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let op = operation_of(response).await;
    let name = only_operation(&server);
    assert_eq!(op.name, name);
    assert!(op.done, "the caller gets the done operation");
    assert!(op.error.is_none());

    let starts = server.requests_to(Endpoint::Start);
    assert_eq!(statuses(&starts), [503, 200]);
    for start in &starts {
        assert_eq!(start.body, br#"{"durationMs": 40}"#[..], "resent intact");
        assert_eq!(start.headers[AUTHORIZATION], "Bearer token-1");
    }
    let polls = polls_of(&server, &name);
    assert!(!polls.is_empty());
    assert!(polls
        .iter()
        .all(|p| p.headers[AUTHORIZATION] == "Bearer token-1"));
    common::assert_no_cancel(&layer.handle(), &server).await;
}

#[tokio::test]
async fn a_503_on_a_poll_is_absorbed_by_the_retry_layer_before_the_poll_policy_sees_it() {
    let (server, handle) = server_failing_once(Endpoint::Get).await;
    let base = handle.base_url();
    let token = Token::new("token-1");
    // The layer tolerates no transient poll failure at all: a 503 reaching
    // it would end the call with Error::Poll and a cancel.
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls().max_transient_failures(0));
    let mut with_retry = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(&token, true));

    let response = send(&mut with_retry, start_without_auth(&base, 40))
        .await
        .unwrap();
    let op = operation_of(response).await;
    assert!(op.done);
    assert!(op.error.is_none());
    let name = only_operation(&server);
    let polls = polls_of(&server, &name);
    assert_eq!(statuses(&polls[..2]), [503, 200], "{polls:?}");
    common::assert_no_cancel(&layer.handle(), &server).await;

    // Without the retry layer the same 503 reaches the layer.
    server.inject(
        Endpoint::Get,
        Fault::Script(vec![StatusCode::SERVICE_UNAVAILABLE]),
    );
    let mut without_retry = ServiceBuilder::new()
        .layer(layer.clone())
        .service(inner_stack(&token, false));
    let result = send(&mut without_retry, start_without_auth(&base, 60_000)).await;
    match result.map(|r| r.status()) {
        Err(Error::Poll {
            status: Some(status),
            ..
        }) => assert_eq!(status.http(), Some(StatusCode::SERVICE_UNAVAILABLE)),
        other => panic!("expected Error::Poll with 503, got {other:?}"),
    }
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    // Polling gave up: the server received one cancel, for the second
    // operation, with the caller's credentials, and the operation ended
    // CANCELLED.
    let second = server
        .operation_names()
        .into_iter()
        .find(|n| *n != name)
        .expect("the second call started an operation");
    let cancels = server.requests_to(Endpoint::Cancel);
    assert_eq!(cancels.len(), 1, "{cancels:?}");
    assert_eq!(cancels[0].operation.as_deref(), Some(&*second));
    assert_eq!(cancels[0].headers[AUTHORIZATION], "Bearer token-1");
    assert_eq!(server.operation(&second).unwrap()["error"]["code"], 1);
    assert_eq!(report.stats.fired, 1);
}

#[tokio::test]
async fn layers_outside_see_only_the_callers_call_and_layers_inside_see_every_poll_and_the_cancel()
{
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let token = Token::new("token-1");
    // What a layer at each position is called with: (method, path).
    type Seen = Arc<Mutex<Vec<(Method, String)>>>;
    let outside: Seen = Seen::default();
    let inside: Seen = Seen::default();
    let record = |seen: &Seen| {
        let seen = seen.clone();
        move |request: Request<Full<Bytes>>| {
            seen.lock()
                .unwrap()
                .push((request.method().clone(), request.uri().path().to_owned()));
            request
        }
    };
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = ServiceBuilder::new()
        .map_request(record(&outside))
        .layer(layer.clone())
        .map_request(record(&inside))
        .service(inner_stack(&token, true));

    // Let it poll a few times, then give up.
    let name = abandon_after_polls(&mut client, &server, &base, 3, || {}).await;
    drain_once_settled(&server, &layer, RecordedRequest::is_answered).await;

    let start_path = "/v1/projects/p/locations/l/jobs".to_owned();
    assert_eq!(
        *outside.lock().unwrap(),
        [(Method::POST, start_path.clone())],
        "outside: the caller's one call"
    );
    let inside = inside.lock().unwrap().clone();
    assert_eq!(
        inside.first(),
        Some(&(Method::POST, start_path)),
        "{inside:?}"
    );
    assert_eq!(
        inside.last(),
        Some(&(Method::POST, format!("/v1/{name}:cancel"))),
        "{inside:?}"
    );
    let polls = &inside[1..inside.len() - 1];
    assert!(polls.len() >= 3, "{inside:?}");
    assert!(
        polls
            .iter()
            .all(|p| *p == (Method::GET, format!("/v1/{name}"))),
        "inside: the start, every poll, the cancel: {inside:?}"
    );
}
