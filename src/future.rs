//! [`ResponseFuture`]: the state machine of one call, and its drop guard.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};
use tower::util::Oneshot;
use tower_service::Service;
use tracing::{field, Instrument, Span};

use crate::body::{Collect, Collected, ResponseBody};
use crate::cancel::{CancelJob, Reason, Shared};
use crate::error::{BoxError, Error};
use crate::layer::Config;
use crate::operation::{
    default_routes, peek, read_operation, short_json_error, Operation, OperationName,
};
use crate::poll::{is_transient, retry_after, PollPolicy};
use crate::request_body::RequestBody;

pin_project! {
    /// The future returned by [`CancelOnDrop`](crate::CancelOnDrop).
    ///
    /// For a response that is not a not-done AIP-151 Operation, it resolves
    /// with that response. For one that is, it resolves when `GetOperation`
    /// shows the operation done, with that poll's response (status, headers
    /// and body intact), or with an [`Error`]. Dropping it before then fires
    /// one detached `CancelOperation` for the operation.
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: CallState<S, ReqBody, ResBody>,
        // `None` for calls the layer does not inspect, and once finished.
        track: Option<Box<Track<S>>>,
        // `spawn_in_flight` for this service's types, chosen in `call` where
        // its bounds hold, so that `Drop` can use it.
        detach: Option<DetachFn<S, ReqBody, ResBody>>,
    }

    impl<S, ReqBody, ResBody> PinnedDrop for ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(track) = this.track.take() {
                abandon(this.state, *track, *this.detach, Reason::Dropped);
            }
        }
    }
}

/// Hands a call whose operation is not known yet to a detached task.
pub(crate) type DetachFn<S, ReqBody, ResBody> =
    fn(InFlight<<S as Service<Request<ReqBody>>>::Future, ResBody>, Track<S>, Reason);

/// The part of a call still running when its caller went away before the
/// operation's name was known.
pub(crate) enum InFlight<F, B> {
    /// The original request, not answered yet.
    Call(Pin<Box<F>>),
    /// The original response, its body being read.
    Body(Box<(Response<()>, Collect<B>)>),
}

/// Stops watching a call: cancels its operation if the name is known, or
/// detaches what is still in flight so that a task can find the name and
/// cancel (DESIGN §6, "Dropped before the first response arrives").
fn abandon<S, ReqBody, ResBody>(
    state: Pin<&mut CallState<S, ReqBody, ResBody>>,
    track: Track<S>,
    detach: Option<DetachFn<S, ReqBody, ResBody>>,
    reason: Reason,
) where
    S: Service<Request<ReqBody>>,
{
    if track.op.is_some() || track.detached {
        return track.give_up(reason);
    }
    let in_flight = match state.project() {
        StateProj::TrackedCall { future } => future.take().map(InFlight::Call),
        StateProj::Inspect { head, collect } => {
            Some(InFlight::Body(Box::new((mem::take(head), collect.take()))))
        }
        _ => None,
    };
    let reason = match reason {
        Reason::Dropped => Reason::DroppedInFlight,
        other => other,
    };
    if let (Some(in_flight), Some(detach)) = (in_flight, detach) {
        detach(in_flight, track, reason);
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, P, B> {
        // The original request is in flight (a call the layer does not inspect).
        Call { #[pin] future: F },
        // The original request is in flight, boxed so that it can be detached.
        TrackedCall { future: Option<Pin<Box<F>>> },
        // Reading the original response's body, looking for an Operation.
        Inspect { head: Response<()>, collect: Collect<B> },
        // Waiting for the next poll (`Track::sleep`).
        Sleep,
        // A GetOperation request is in flight.
        Poll { #[pin] future: P },
        // Reading a GetOperation response's body.
        ReadPoll { head: Response<()>, collect: Collect<B> },
        Done,
    }
}

/// The state of one call through the layer.
type CallState<S, ReqBody, ResBody> =
    State<<S as Service<Request<ReqBody>>>::Future, Oneshot<S, Request<ReqBody>>, ResBody>;

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Call { .. } | State::TrackedCall { .. } => "call",
            State::Inspect { .. } => "inspect",
            State::Sleep => "sleep",
            State::Poll { .. } => "poll",
            State::ReadPoll { .. } => "read_poll",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field(
                "operation",
                &self
                    .track
                    .as_ref()
                    .and_then(|t| t.op.as_ref())
                    .map(|op| op.name.as_str()),
            )
            .finish()
    }
}

/// The operation a call is waiting on.
pub(crate) struct Tracked {
    name: OperationName,
    get_uri: Uri,
    cancel_uri: Uri,
    cancel_method: Method,
    /// `{prefix}{name}:wait`, when the poll policy long-polls.
    wait_uri: Option<Uri>,
}

/// What a call the layer inspects carries: everything needed to poll and to
/// cancel. Boxed, so that calls the layer does not inspect pay nothing for it.
pub(crate) struct Track<S> {
    svc: S,
    request_uri: Uri,
    headers: HeaderMap,
    config: Arc<Config>,
    shared: Arc<Shared>,
    runtime: Handle,
    span: Span,
    // `spawn_cancel` for this service's types, chosen in `call` where its
    // bounds hold, so that `Drop` (which may not add bounds) can use it.
    fire: fn(CancelJob<S>),
    deadline: Option<Pin<Box<Sleep>>>,
    sleep: Option<Pin<Box<Sleep>>>,
    delay: Duration,
    op: Option<Tracked>,
    polls: u32,
    failures: u32,
    poll_span: Span,
    /// The request carried [`Detached`](crate::Detached): wait, never cancel.
    pub(crate) detached: bool,
    /// When the WaitOperation in flight was sent; `None` for a GetOperation.
    waiting: Option<Instant>,
    /// When `call` was made: the poll schedule grows with the time since.
    started: Instant,
}

impl<S> Track<S> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        svc: S,
        request_uri: Uri,
        headers: HeaderMap,
        config: Arc<Config>,
        shared: Arc<Shared>,
        runtime: Handle,
        span: Span,
        fire: fn(CancelJob<S>),
    ) -> Self {
        let deadline = config
            .deadline
            .map(|d| Box::pin(tokio::time::sleep_until(far_instant(d))));
        Track {
            svc,
            request_uri,
            headers,
            config,
            shared,
            runtime,
            span,
            fire,
            deadline,
            sleep: None,
            delay: Duration::ZERO,
            op: None,
            polls: 0,
            failures: 0,
            poll_span: Span::none(),
            detached: false,
            waiting: None,
            started: Instant::now(),
        }
    }

    /// Stops watching: fires a cancel if an operation was known (it is not
    /// done, or this would not be called).
    pub(crate) fn give_up(self, reason: Reason) {
        let Track {
            op,
            svc,
            headers,
            config,
            shared,
            runtime,
            span,
            fire,
            detached,
            ..
        } = self;
        let Some(op) = op else { return };
        if detached {
            tracing::info!(
                parent: &span,
                operation.name = %op.name,
                reason = reason.as_str(),
                "stopped waiting on a Detached operation; not cancelling it"
            );
            return;
        }
        tracing::info!(
            parent: &span,
            operation.name = %op.name,
            reason = reason.as_str(),
            "gave up on operation before it was done; cancelling"
        );
        fire(CancelJob {
            svc,
            name: op.name,
            uri: op.cancel_uri,
            method: op.cancel_method,
            get_uri: op.get_uri,
            headers,
            reason,
            policy: config.cancel.clone(),
            shared,
            runtime,
            call_span: span,
        });
    }

    /// Reads a response body as an Operation; `Some` if it is one the layer
    /// should wait on: not done, with a valid name and a route to it. Why
    /// not is logged without echoing more than a short, escaped part of the
    /// body ([`read_operation`], fuzzed in `fuzz/`).
    pub(crate) fn recognise(&self, body: &[u8]) -> Option<Tracked> {
        let name = match read_operation(body) {
            Ok(name) => name,
            Err(why) if why.is_warning() => {
                tracing::warn!(url.path = self.request_uri.path(), "{why}; not tracked");
                return None;
            }
            Err(why) => {
                tracing::debug!("{why}; not tracked");
                return None;
            }
        };
        if let Some(route) = &self.config.route {
            if let Some(routes) = route(&name, &self.request_uri) {
                let Some(routes) = routes.same_origin(&self.request_uri) else {
                    tracing::warn!(
                        operation.name = %name,
                        "the route function leaves the request's origin; not tracked"
                    );
                    return None;
                };
                return Some(Tracked {
                    name,
                    get_uri: routes.get,
                    cancel_uri: routes.cancel,
                    cancel_method: routes.cancel_method,
                    wait_uri: None,
                });
            }
        }
        let path_prefix = self.config.path_prefix.as_deref();
        let wait = self.config.poll.wait.is_some();
        match default_routes(name, &self.request_uri, path_prefix, wait) {
            Ok(routes) => Some(Tracked {
                name: routes.name,
                get_uri: routes.get_uri,
                cancel_uri: routes.cancel_uri,
                cancel_method: Method::POST,
                wait_uri: routes.wait_uri,
            }),
            Err(why) => {
                tracing::warn!(url.path = self.request_uri.path(), "{why}; not tracked");
                None
            }
        }
    }

    /// Records the operation the call now waits on.
    pub(crate) fn adopt(&mut self, op: Tracked) {
        self.span.record("operation.name", field::display(&op.name));
        self.headers
            .insert("x-goog-request-params", op.name.request_params());
        tracing::info!(parent: &self.span, operation.name = %op.name, "operation started");
        self.op = Some(op);
    }

    fn start(&mut self, op: Tracked) {
        self.adopt(op);
        // A long poll needs no delay first.
        let delay = if self.wait_timeout().is_some() {
            Duration::ZERO
        } else {
            self.config.poll.delay(true, self.started.elapsed())
        };
        self.schedule(delay);
    }

    fn authority(&self) -> &str {
        self.request_uri.authority().map_or("", |a| a.as_str())
    }

    /// The WaitOperation timeout, if the next poll should be a WaitOperation.
    fn wait_timeout(&self) -> Option<Duration> {
        let timeout = self.config.poll.wait?;
        self.op.as_ref()?.wait_uri.as_ref()?;
        (!self.shared.wait_unsupported(self.authority())).then_some(timeout)
    }

    /// After a not-done answer: poll again at once after a long poll that
    /// took at least half its timeout, else on the backoff schedule.
    fn schedule_next(&mut self) {
        let delay = match (self.waiting, self.config.poll.wait) {
            (Some(started), Some(timeout)) if started.elapsed() >= timeout / 2 => Duration::ZERO,
            _ => self
                .config
                .poll
                .delay(self.polls == 0, self.started.elapsed()),
        };
        self.schedule(delay);
    }

    fn schedule(&mut self, delay: Duration) {
        self.delay = delay;
        let at = Instant::now() + delay;
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// After a transient poll failure: schedules another poll, or says to give up.
    fn retry(&mut self, after: Option<Duration>) -> bool {
        self.failures += 1;
        if self.failures > self.config.poll.max_transient_failures {
            return false;
        }
        let policy = &self.config.poll;
        let delay = policy
            .delay(self.polls == 0, self.started.elapsed())
            .max(after.unwrap_or_default().min(policy.max_delay));
        self.schedule(delay);
        true
    }

    /// The next poll: `WaitOperation` if the policy long-polls and the
    /// server supports it, else `GetOperation` (AIP-151).
    fn poll_request<ReqBody: RequestBody>(&mut self) -> Request<ReqBody> {
        let wait = self.wait_timeout().and_then(|timeout| {
            let body = ReqBody::json(PollPolicy::wait_body(timeout))?;
            let uri = self.op.as_ref()?.wait_uri.clone()?;
            Some((body, uri))
        });
        let (request, rpc) = match wait {
            Some((body, uri)) => {
                let mut request = Request::new(body);
                *request.method_mut() = Method::POST;
                *request.uri_mut() = uri;
                request.headers_mut().clone_from(&self.headers);
                request.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                self.waiting = Some(Instant::now());
                (request, "WaitOperation")
            }
            None => {
                let mut request = Request::new(ReqBody::empty());
                if let Some(op) = &self.op {
                    *request.uri_mut() = op.get_uri.clone();
                }
                request.headers_mut().clone_from(&self.headers);
                self.waiting = None;
                (request, "GetOperation")
            }
        };
        self.polls += 1;
        self.poll_span = tracing::info_span!(
            "lro.poll",
            attempt = self.polls,
            delay_ms = u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX),
            rpc.method = rpc,
            http.response.status_code = field::Empty,
        );
        request
    }

    fn name(&self) -> Option<OperationName> {
        self.op.as_ref().map(|op| op.name.clone())
    }
}

/// Hands a poll's Operation to the `on_progress` hook and a `debug` event.
fn report_progress(config: &Config, body: &[u8]) {
    if config.on_progress.is_none() && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let Ok(op) = Operation::from_json(body) else {
        return;
    };
    if let Some(metadata) = &op.metadata {
        let text = metadata.get();
        let end = (0..=text.len().min(1024))
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        tracing::debug!(
            done = op.done,
            metadata = &text[..end],
            "operation progress"
        );
    }
    if let Some(hook) = &config.on_progress {
        hook(&op);
    }
}

/// The error for a state that needs an operation reached without one; the
/// state machine never does this.
fn not_started() -> Error {
    Error::inner("tower-lro internal error: polling before an operation was known")
}

/// Detached work for a call dropped before its operation's name was known:
/// waits (within the cancel deadline) for the original response, reads it,
/// and cancels the operation it names, if any.
pub(crate) fn spawn_in_flight<S, ReqBody, ResBody>(
    in_flight: InFlight<S::Future, ResBody>,
    mut track: Track<S>,
    reason: Reason,
) where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: 'static,
    ResBody: Body<Data = Bytes> + Unpin + Send + 'static,
{
    let runtime = track.runtime.clone();
    let tracker = track.shared.tracker().clone();
    let span = track.span.clone();
    let guard = LostGuard(Some(track.shared.clone()));
    let limit = track.config.cancel.deadline;
    let task = async move {
        let max_bytes = track.config.max_inspect_bytes;
        let body = tokio::time::timeout(limit, finish_in_flight(in_flight, max_bytes)).await;
        guard.disarm();
        match body.map(|body| body.and_then(|body| track.recognise(&body))) {
            Ok(Some(op)) => {
                track.adopt(op);
                track.give_up(reason);
            }
            Ok(None) => {
                tracing::debug!("the request abandoned in flight started no operation");
            }
            Err(_) => {
                track.shared.count_unanswered();
                tracing::warn!(
                    limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                    "the request abandoned in flight was not answered within the cancel deadline; \
                     an operation it started cannot be cancelled"
                )
            }
        }
    }
    .instrument(span);
    tracker.spawn_on(task, &runtime);
}

/// The body of the original response, if it may hold an Operation.
async fn finish_in_flight<F, E, B>(in_flight: InFlight<F, B>, max_bytes: usize) -> Option<Bytes>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes> + Unpin,
{
    let (_head, mut collect) = match in_flight {
        InFlight::Call(future) => {
            let response = future.await.ok()?;
            if !inspectable(&response) {
                return None;
            }
            let (parts, body) = response.into_parts();
            (
                Response::from_parts(parts, ()),
                Collect::new(body, max_bytes),
            )
        }
        InFlight::Body(body) => *body,
    };
    match std::future::poll_fn(|cx| collect.poll_collect(cx))
        .await
        .ok()?
    {
        Collected::Complete { data, .. } => Some(data),
        Collected::Overflow { .. } => None,
    }
}

/// Counts detached work dropped unfinished by a runtime shutting down: a
/// call whose answer never came, like one past the cancel deadline (it was
/// never `fired`, so it is not `lost`).
struct LostGuard(Option<Arc<Shared>>);

impl LostGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for LostGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.count_unanswered();
            tracing::warn!(
                "a request abandoned in flight was dropped by the runtime shutting down; \
                 an operation it started cannot be cancelled"
            );
        }
    }
}

/// `Instant::now() + d`, saturating far in the future.
fn far_instant(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86400 * 365 * 30))
}

/// How a tracked call ends.
struct Finish<B> {
    output: Result<Response<ResponseBody<B>>, Error>,
    give_up: Option<Reason>,
}

impl<B> Finish<B> {
    fn ok(response: Response<ResponseBody<B>>) -> Self {
        Finish {
            output: Ok(response),
            give_up: None,
        }
    }

    fn err(error: Error) -> Self {
        Finish {
            output: Err(error),
            give_up: None,
        }
    }

    fn give_up(error: Error, reason: Reason) -> Self {
        Finish {
            output: Err(error),
            give_up: Some(reason),
        }
    }
}

/// Whether the layer reads a response to look for an Operation (DESIGN §3):
/// 2xx, `application/json` (any parameters), no `content-encoding` but identity.
pub(crate) fn inspectable<B>(response: &Response<B>) -> bool {
    if !response.status().is_success() {
        return false;
    }
    let headers = response.headers();
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return false;
    }
    match headers.get(http::header::CONTENT_ENCODING) {
        None => true,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"identity") => true,
        Some(v) => {
            tracing::warn!(
                content_encoding = ?v,
                "JSON response with a content-encoding the layer does not decode; not inspected, not tracked"
            );
            false
        }
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn pass_through(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Call { future },
            track: None,
            detach: None,
        }
    }

    pub(crate) fn tracked(
        future: S::Future,
        track: Track<S>,
        detach: DetachFn<S, ReqBody, ResBody>,
    ) -> Self {
        ResponseFuture {
            state: State::TrackedCall {
                future: Some(Box::pin(future)),
            },
            track: Some(Box::new(track)),
            detach: Some(detach),
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes> + Unpin,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(track) = this.track.as_deref_mut() else {
            return match this.state.project() {
                StateProj::Call { future } => future
                    .poll(cx)
                    .map_ok(|response| response.map(ResponseBody::inner))
                    .map_err(Error::inner),
                _ => panic!("ResponseFuture polled after completion"),
            };
        };
        let span = track.span.clone();
        let _entered = span.enter();

        let finish = match poll_deadline(track, cx) {
            Some(finish) => finish,
            None => ready!(poll_tracked(this.state.as_mut(), track, cx)),
        };
        if let Some(track) = this.track.take() {
            if let Some(reason) = finish.give_up {
                abandon(this.state.as_mut(), *track, *this.detach, reason);
            }
        }
        this.state.set(State::Done);
        Poll::Ready(finish.output)
    }
}

fn poll_deadline<S, B>(track: &mut Track<S>, cx: &mut Context<'_>) -> Option<Finish<B>> {
    let deadline = track.deadline.as_mut()?;
    deadline.as_mut().poll(cx).is_ready().then(|| {
        let operation = track.op.as_ref().map(|op| op.name.clone());
        tracing::warn!(operation.name = ?operation.as_ref().map(OperationName::as_str), "deadline passed");
        Finish::give_up(
            Error::DeadlineExceeded {
                operation,
                deadline: track.config.deadline.unwrap_or_default(),
            },
            Reason::Deadline,
        )
    })
}

fn poll_tracked<S, ReqBody, ResBody>(
    mut state: Pin<&mut CallState<S, ReqBody, ResBody>>,
    track: &mut Track<S>,
    cx: &mut Context<'_>,
) -> Poll<Finish<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes> + Unpin,
    ResBody::Error: Into<BoxError>,
{
    loop {
        match state.as_mut().project() {
            StateProj::Call { future } => {
                let response = ready!(future.poll(cx)).map_err(Error::inner);
                return Poll::Ready(Finish {
                    output: response.map(|r| r.map(ResponseBody::inner)),
                    give_up: None,
                });
            }
            StateProj::TrackedCall { future } => {
                let Some(future) = future.as_mut() else {
                    return Poll::Ready(Finish::err(not_started()));
                };
                let response = match ready!(future.as_mut().poll(cx)) {
                    Ok(response) => response,
                    Err(e) => return Poll::Ready(Finish::err(Error::inner(e))),
                };
                if !inspectable(&response) {
                    return Poll::Ready(Finish::ok(response.map(ResponseBody::inner)));
                }
                let (parts, body) = response.into_parts();
                let collect = Collect::new(body, track.config.max_inspect_bytes);
                state.set(State::Inspect {
                    head: Response::from_parts(parts, ()),
                    collect,
                });
            }
            StateProj::Inspect { head, collect } => {
                let collected = match ready!(collect.poll_collect(cx)) {
                    Ok(collected) => collected,
                    Err(e) => {
                        return Poll::Ready(Finish::err(Error::Body {
                            operation: None,
                            source: e.into(),
                        }))
                    }
                };
                let head = mem::take(head);
                match collected {
                    Collected::Overflow { prefix, rest } => {
                        tracing::warn!(
                            limit = track.config.max_inspect_bytes,
                            "JSON response larger than max_inspect_bytes; passed through, not tracked"
                        );
                        return Poll::Ready(Finish::ok(
                            head.map(|()| ResponseBody::prefixed(prefix, rest)),
                        ));
                    }
                    Collected::Complete { data, trailers } => match track.recognise(&data) {
                        None => {
                            return Poll::Ready(Finish::ok(
                                head.map(|()| ResponseBody::full(data, trailers)),
                            ))
                        }
                        Some(op) => {
                            track.start(op);
                            state.set(State::Sleep);
                        }
                    },
                }
            }
            StateProj::Sleep => {
                if let Some(sleep) = track.sleep.as_mut() {
                    ready!(sleep.as_mut().poll(cx));
                }
                let request = track.poll_request::<ReqBody>();
                let future = track
                    .poll_span
                    .in_scope(|| Oneshot::new(track.svc.clone(), request));
                state.set(State::Poll { future });
            }
            StateProj::Poll { future } => {
                let Some(name) = track.name() else {
                    return Poll::Ready(Finish::err(not_started()));
                };
                let poll_span = track.poll_span.clone();
                let _entered = poll_span.enter();
                match ready!(future.poll(cx)) {
                    Err(e) => {
                        let e: BoxError = e.into();
                        tracing::debug!(error = %e, "GetOperation failed in transport");
                        if track.retry(None) {
                            state.set(State::Sleep);
                            continue;
                        }
                        return Poll::Ready(Finish::give_up(
                            Error::Poll {
                                operation: name,
                                status: None,
                                source: Some(e),
                            },
                            Reason::PollFailed,
                        ));
                    }
                    Ok(response) => {
                        let status = response.status();
                        poll_span.record("http.response.status_code", status.as_u16());
                        if track.waiting.is_some()
                            && matches!(status, StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED)
                        {
                            tracing::info!(
                                %status,
                                "the server does not implement WaitOperation; polling with GetOperation"
                            );
                            track.shared.remember_no_wait(track.authority());
                            track.schedule(Duration::ZERO);
                            state.set(State::Sleep);
                        } else if status.is_success() {
                            let (parts, body) = response.into_parts();
                            let collect = Collect::new(body, track.config.max_inspect_bytes);
                            state.set(State::ReadPoll {
                                head: Response::from_parts(parts, ()),
                                collect,
                            });
                        } else if is_transient(status)
                            && track.retry(retry_after(response.headers()))
                        {
                            tracing::debug!(%status, "GetOperation failed transiently; retrying");
                            state.set(State::Sleep);
                        } else {
                            return Poll::Ready(Finish::give_up(
                                Error::Poll {
                                    operation: name,
                                    status: Some(status),
                                    source: None,
                                },
                                Reason::PollFailed,
                            ));
                        }
                    }
                }
            }
            StateProj::ReadPoll { head, collect } => {
                let Some(name) = track.name() else {
                    return Poll::Ready(Finish::err(not_started()));
                };
                let invalid = |operation: OperationName, reason: String| {
                    Poll::Ready(Finish::give_up(
                        Error::InvalidPollResponse { operation, reason },
                        Reason::PollFailed,
                    ))
                };
                let (data, trailers) = match ready!(collect.poll_collect(cx)) {
                    Ok(Collected::Complete { data, trailers }) => (data, trailers),
                    Ok(Collected::Overflow { .. }) => {
                        return invalid(
                            name,
                            format!(
                                "body larger than max_inspect_bytes ({})",
                                track.config.max_inspect_bytes
                            ),
                        )
                    }
                    Err(e) => {
                        let e: BoxError = e.into();
                        tracing::debug!(error = %e, "reading a GetOperation response failed");
                        if track.retry(None) {
                            state.set(State::Sleep);
                            continue;
                        }
                        return Poll::Ready(Finish::give_up(
                            Error::Body {
                                operation: Some(name),
                                source: e,
                            },
                            Reason::PollFailed,
                        ));
                    }
                };
                let view = match peek(&data) {
                    Ok(view) => view,
                    Err(e) => return invalid(name, short_json_error(&e)),
                };
                report_progress(&track.config, &data);
                if view.name.as_deref().is_some_and(|n| n != name.as_str()) {
                    return invalid(name, "the name is another operation's".to_owned());
                }
                if view.done {
                    tracing::info!(operation.name = %name, polls = track.polls, "operation done");
                    let head = mem::take(head);
                    return Poll::Ready(Finish::ok(
                        head.map(|()| ResponseBody::full(data, trailers)),
                    ));
                }
                track.failures = 0;
                track.schedule_next();
                state.set(State::Sleep);
            }
            StateProj::Done => panic!("ResponseFuture polled after completion"),
        }
    }
}
