//! [`ResponseFuture`]: the state machine of one call, driven in a short
//! loop over one method per state, with its drop guard.

mod guard;
mod in_flight;
mod state;
mod track;
mod verify;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::cancel::Reason;
use crate::error::{BoxError, Error};
use crate::protocol::Target;
use crate::request_body::RequestBody;
pub(crate) use guard::{DetachFn, InFlight};
pub(crate) use in_flight::spawn_in_flight;
use state::{CallState, Finish, State, StateProj, Step};
pub(crate) use track::{CallContext, Track};
pub(crate) use verify::verify_fn;

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
        kind: Kind<S::Future, Pin<Box<Tracked<S, ReqBody, ResBody>>>>,
    }
}

pin_project! {
    // A call the layer does not inspect is the inner future and nothing
    // else: no drop guard, no state machine, nothing to move but the future.
    #[project = KindProj]
    enum Kind<F, T> {
        PassThrough { #[pin] future: F },
        Tracked { tracked: T },
    }
}

pin_project! {
    /// A call the layer inspects: its state machine and what it carries.
    struct Tracked<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: CallState<S, ReqBody, ResBody>,
        // `None` once finished.
        track: Option<Track<S>>,
        // `spawn_in_flight` for this service's types, chosen in `call` where
        // its bounds hold, so that `Drop` can use it.
        detach: Option<DetachFn<S, ReqBody, ResBody>>,
    }

    impl<S, ReqBody, ResBody> PinnedDrop for Tracked<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(track) = this.track.take() {
                guard::abandon(this.state, track, *this.detach, Reason::Dropped);
            }
        }
    }
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Kind::Tracked { tracked } = &self.kind else {
            return f
                .debug_struct("ResponseFuture")
                .field("state", &"pass_through")
                .finish();
        };
        let state = match &tracked.state {
            State::TrackedCall { .. } => "call",
            State::Inspect { .. } => "inspect",
            State::Sleep => "sleep",
            State::Poll { .. } => "poll",
            State::ReadPoll { .. } => "read_poll",
            State::Done => "done",
        };
        let operation = tracked.track.as_ref().and_then(|t| t.target.as_ref());
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("operation", &operation.map(|t| t.name().as_str()))
            .finish()
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    /// A call the layer does not inspect: the inner future, nothing else.
    #[inline]
    pub(crate) fn pass_through(future: S::Future) -> Self {
        ResponseFuture {
            kind: Kind::PassThrough { future },
        }
    }

    fn boxed(
        state: CallState<S, ReqBody, ResBody>,
        track: Track<S>,
        detach: Option<DetachFn<S, ReqBody, ResBody>>,
    ) -> Self {
        let tracked = Box::pin(Tracked {
            state,
            track: Some(track),
            detach,
        });
        ResponseFuture {
            kind: Kind::Tracked { tracked },
        }
    }

    /// A call whose response the layer inspects.
    pub(crate) fn tracked(
        future: S::Future,
        track: Track<S>,
        detach: DetachFn<S, ReqBody, ResBody>,
    ) -> Self {
        let state = State::TrackedCall {
            future: Some(Box::pin(future)),
        };
        Self::boxed(state, track, Some(detach))
    }

    /// Waits on a known operation from its first poll (verifying a cancel).
    pub(crate) fn polling(mut track: Track<S>, target: Target) -> Self {
        track.start(target, false);
        Self::boxed(State::Sleep, track, None)
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::PassThrough { future } => future
                .poll(cx)
                .map_ok(|response| response.map(ResponseBody::inner))
                .map_err(Error::inner),
            KindProj::Tracked { tracked } => tracked.as_mut().poll_tracked(cx),
        }
    }
}

impl<S, ReqBody, ResBody> Tracked<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    fn poll_tracked(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResponseBody<ResBody>>, Error>> {
        let mut this = self.project();
        let Some(track) = this.track.as_mut() else {
            return Poll::Ready(Err(Error::internal(
                "ResponseFuture polled after completion",
            )));
        };
        let span = track.call.span.clone();
        let _entered = span.enter();
        let finish = match shutdown(track, cx).or_else(|| deadline(track, cx)) {
            Some(finish) => finish,
            None => match drive(this.state.as_mut(), track, cx) {
                Poll::Ready(finish) => finish,
                // The operation may have become known after shutdown began.
                Poll::Pending => match shutdown(track, cx) {
                    Some(finish) => finish,
                    None => return Poll::Pending,
                },
            },
        };
        if let Some(mut track) = this.track.take() {
            match finish.give_up {
                Some(reason) => guard::abandon(this.state.as_mut(), track, *this.detach, reason),
                // Done (or ended without a cancel to send): nothing to reap.
                None => track.journal.remove(),
            }
        }
        this.state.set(State::Done);
        Poll::Ready(finish.output)
    }
}

/// Shutdown, if it has begun and the call waits on an operation.
fn shutdown<S, B>(track: &mut Track<S>, cx: &mut Context<'_>) -> Option<Finish<B>> {
    let waiting = track.waiting.as_ref()?;
    if !waiting.poll_closing(cx) {
        return None;
    }
    let operation = waiting.name().clone();
    tracing::warn!(operation.name = %operation, "shutting down: no longer waiting on the operation");
    Some(Finish::give_up(
        Error::Shutdown { operation },
        Reason::Shutdown,
    ))
}

/// The layer's deadline, if it has passed.
fn deadline<S, B>(track: &mut Track<S>, cx: &mut Context<'_>) -> Option<Finish<B>> {
    if track.poll_deadline(cx).is_pending() {
        return None;
    }
    let operation = track.target.as_ref().map(|t| t.name().clone());
    match &operation {
        Some(name) => tracing::warn!(operation.name = %name, "deadline passed"),
        None => tracing::warn!("deadline passed before an operation was known"),
    }
    let deadline = track.call.config.deadline.unwrap_or_default();
    Some(Finish::give_up(
        Error::DeadlineExceeded {
            operation,
            deadline,
        },
        Reason::Deadline,
    ))
}

/// Runs the state machine until it finishes or waits.
fn drive<S, ReqBody, ResBody>(
    mut state: Pin<&mut CallState<S, ReqBody, ResBody>>,
    track: &mut Track<S>,
    cx: &mut Context<'_>,
) -> Poll<Finish<ResBody>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: RequestBody,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    loop {
        let step = match state.as_mut().project() {
            StateProj::TrackedCall { future } => ready!(track.on_call(future, cx)),
            StateProj::Inspect { head, collect } => ready!(track.on_inspect(head, collect, cx)),
            StateProj::Sleep => ready!(track.on_sleep(cx)),
            StateProj::Poll { future } => ready!(track.on_poll(future, cx)),
            StateProj::ReadPoll { head, collect } => ready!(track.on_read_poll(head, collect, cx)),
            StateProj::Done => {
                let error = Error::internal("ResponseFuture polled after completion");
                return Poll::Ready(Finish::err(error));
            }
        };
        match step {
            Step::Next(next) => state.set(next),
            Step::Finish(finish) => return Poll::Ready(finish),
        }
    }
}

#[cfg(test)]
mod tests;
