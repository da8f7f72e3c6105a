//! The states of one tracked call, and one method per state that polls it
//! and says what comes next.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::track::Track;
use crate::body::ResponseBody;
use crate::cancel::Reason;
use crate::error::{BoxError, Error};
use crate::inspect::{split, Collect, Collected};
use crate::metrics::Finished;
use crate::operation::OperationName;
use crate::poll::next_rpc;
use crate::protocol::{record_end, PollBody, PollHead, Rpc, WireStatus};
use crate::request_body::RequestBody;

pin_project! {
    #[project = StateProj]
    pub(crate) enum State<F, P, B> {
        // The original request is in flight, boxed so that it can be detached.
        TrackedCall { future: Option<Pin<Box<F>>> },
        // Reading the original response's body, looking for an Operation.
        Inspect { head: Response<()>, collect: Collect<B> },
        // Waiting for the next poll.
        Sleep,
        // A GetOperation or WaitOperation request is in flight.
        Poll { #[pin] future: P },
        // Reading a poll answer's body.
        ReadPoll { head: Response<()>, collect: Collect<B> },
        Done,
    }
}

/// The state of one call through the layer.
pub(crate) type CallState<S, ReqBody, ResBody> =
    State<<S as Service<Request<ReqBody>>>::Future, Oneshot<S, Request<ReqBody>>, ResBody>;

/// What a state's method says comes next.
pub(crate) enum Step<S: Service<Request<ReqBody>>, ReqBody, ResBody> {
    Next(CallState<S, ReqBody, ResBody>),
    Finish(Finish<ResBody>),
}

/// How a tracked call ends: its output, and whether to cancel (why).
pub(crate) struct Finish<B> {
    pub(crate) output: Result<Response<ResponseBody<B>>, Error>,
    pub(crate) give_up: Option<Reason>,
}

impl<B> Finish<B> {
    pub(crate) fn ok(response: Response<ResponseBody<B>>) -> Self {
        Finish {
            output: Ok(response),
            give_up: None,
        }
    }

    pub(crate) fn err(error: Error) -> Self {
        Finish {
            output: Err(error),
            give_up: None,
        }
    }

    pub(crate) fn give_up(error: Error, reason: Reason) -> Self {
        Finish {
            output: Err(error),
            give_up: Some(reason),
        }
    }
}

fn finish<S: Service<Request<R>>, R, B>(f: Finish<B>) -> Poll<Step<S, R, B>> {
    Poll::Ready(Step::Finish(f))
}

fn next<S: Service<Request<R>>, R, B>(state: CallState<S, R, B>) -> Poll<Step<S, R, B>> {
    Poll::Ready(Step::Next(state))
}

impl<S> Track<S> {
    /// `TrackedCall`: the original response arrived; read it if the protocol
    /// says it may hold an Operation.
    pub(crate) fn on_call<ReqBody, ResBody>(
        &mut self,
        future: &mut Option<Pin<Box<S::Future>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Step<S, ReqBody, ResBody>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
        ResBody: Body<Data = Bytes>,
    {
        let Some(future) = future.as_mut() else {
            return finish(Finish::err(Error::internal(
                "the original request was detached",
            )));
        };
        let response = match ready!(future.as_mut().poll(cx)) {
            Ok(response) => response,
            Err(e) => return finish(Finish::err(Error::inner(e))),
        };
        if !self.call.protocol.inspects(&response) {
            return finish(Finish::ok(response.map(ResponseBody::inner)));
        }
        let (head, collect) = split(response, self.call.config.max_inspect_bytes());
        next(State::Inspect { head, collect })
    }

    /// `Inspect`: the original body is read; wait on the operation it
    /// holds, or hand it back.
    pub(crate) fn on_inspect<ReqBody, ResBody>(
        &mut self,
        head: &mut Response<()>,
        collect: &mut Collect<ResBody>,
        cx: &mut Context<'_>,
    ) -> Poll<Step<S, ReqBody, ResBody>>
    where
        S: Service<Request<ReqBody>>,
        ResBody: Body<Data = Bytes>,
        ResBody::Error: Into<BoxError>,
    {
        let collected = match ready!(collect.poll_collect(cx)) {
            Ok(collected) => collected,
            Err(e) => {
                let source = e.into();
                return finish(Finish::err(Error::Body {
                    operation: None,
                    source,
                }));
            }
        };
        let head = mem::take(head);
        let (data, trailers) = match collected {
            Collected::Overflow { prefix, rest } => {
                tracing::warn!(
                    limit = self.call.config.max_inspect_bytes(),
                    "response larger than max_inspect_bytes; passed through, not tracked"
                );
                return finish(Finish::ok(
                    head.map(|()| ResponseBody::prefixed(prefix, rest)),
                ));
            }
            Collected::Complete { data, trailers } => (data, trailers),
        };
        let call = &self.call;
        match call.protocol.recognise(
            &call.origin,
            &call.config.protocol,
            call.config.timing(),
            &data,
            trailers.as_ref(),
        ) {
            None => finish(Finish::ok(
                head.map(|()| ResponseBody::full(data, trailers)),
            )),
            Some(target) => {
                self.start(target, true);
                next(State::Sleep)
            }
        }
    }

    /// `Sleep`: when the next poll is due, send it.
    pub(crate) fn on_sleep<ReqBody, ResBody>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Step<S, ReqBody, ResBody>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        ReqBody: RequestBody,
    {
        ready!(self.schedule.poll_due(cx));
        let Some(target) = &self.target else {
            return finish(Finish::err(Error::internal(
                "polling before an operation was known",
            )));
        };
        let call = &self.call;
        let rpc = next_rpc(&call.config.poll, target, |a| {
            call.delivery.wait_unsupported(a)
        });
        // A body type that cannot carry a WaitOperation polls with GET.
        let sent = target
            .request::<ReqBody>(rpc, &call.headers)
            .map(|request| (rpc, request))
            .or_else(|| {
                Some((
                    Rpc::Get,
                    target.request::<ReqBody>(Rpc::Get, &call.headers)?,
                ))
            });
        let Some((rpc, request)) = sent else {
            return finish(Finish::err(Error::internal(
                "no GetOperation request for the operation",
            )));
        };
        self.poll_span = self.schedule.sent(rpc);
        match &self.metrics {
            Some(metrics) => metrics.poll(rpc),
            None => self.call.delivery.counters.metrics.poll(target, rpc),
        }
        target.record_rpc(&self.poll_span, rpc);
        let future = self
            .poll_span
            .in_scope(|| Oneshot::new(self.call.svc.clone(), request));
        next(State::Poll { future })
    }

    /// `Poll`: a poll answer's head arrived.
    pub(crate) fn on_poll<ReqBody, ResBody>(
        &mut self,
        future: Pin<&mut Oneshot<S, Request<ReqBody>>>,
        cx: &mut Context<'_>,
    ) -> Poll<Step<S, ReqBody, ResBody>>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        S::Error: Into<BoxError>,
        ResBody: Body<Data = Bytes>,
    {
        let span = self.poll_span.clone();
        let _entered = span.enter();
        let Some(target) = &self.target else {
            return finish(Finish::err(Error::internal(
                "polling before an operation was known",
            )));
        };
        let operation = target.name().clone();
        let response = match ready!(future.poll(cx)) {
            Ok(response) => response,
            Err(e) => {
                let e: BoxError = e.into();
                tracing::debug!(error = %e, "poll failed in transport");
                return self.transient(None, Error::poll(operation, None, Some(e)));
            }
        };
        let (head, collect) = split(response, self.call.config.max_inspect_bytes());
        match target.poll_head(&head, self.schedule.waiting()) {
            PollHead::Read => next(State::ReadPoll { head, collect }),
            PollHead::WaitUnsupported => {
                tracing::info!(
                    status = %head.status(),
                    "the server does not implement WaitOperation; polling with GetOperation"
                );
                self.call.delivery.remember_no_wait(target.authority());
                self.schedule.now();
                next(State::Sleep)
            }
            PollHead::Transient(status, after) => {
                tracing::debug!(%status, "poll failed transiently; retrying");
                self.transient(after, Error::poll(operation, Some(status), None))
            }
            PollHead::Failed(status) => give_up(Error::poll(operation, Some(status), None)),
        }
    }

    /// `ReadPoll`: a poll answer is read; done, or poll again.
    pub(crate) fn on_read_poll<ReqBody, ResBody>(
        &mut self,
        head: &mut Response<()>,
        collect: &mut Collect<ResBody>,
        cx: &mut Context<'_>,
    ) -> Poll<Step<S, ReqBody, ResBody>>
    where
        S: Service<Request<ReqBody>>,
        ResBody: Body<Data = Bytes>,
        ResBody::Error: Into<BoxError>,
    {
        let span = self.poll_span.clone();
        let _entered = span.enter();
        let Some(target) = &self.target else {
            return finish(Finish::err(Error::internal(
                "polling before an operation was known",
            )));
        };
        let operation = target.name().clone();
        let (data, trailers) = match ready!(collect.poll_collect(cx)) {
            Ok(Collected::Complete { data, trailers }) => (data, trailers),
            Ok(Collected::Overflow { .. }) => {
                let limit = self.call.config.max_inspect_bytes();
                let reason = format!("body larger than max_inspect_bytes ({limit})");
                return give_up(Error::InvalidPollResponse { operation, reason });
            }
            Err(e) => {
                let source: BoxError = e.into();
                tracing::debug!(error = %source, "reading a poll answer failed");
                let error = Error::Body {
                    operation: Some(operation),
                    source,
                };
                return self.transient(None, error);
            }
        };
        let answer = target.poll_body(&data, trailers.as_ref());
        if matches!(answer, PollBody::Done { .. } | PollBody::NotDone) {
            self.report_progress(&data);
        }
        match answer {
            PollBody::Done { code } => {
                let polls = self.schedule.polls();
                // The final status, as decoded to tell done from CANCELLED.
                let code = Some(code);
                record_end(&self.call.span, polls, true, code);
                if let Some(metrics) = self.metrics.take() {
                    metrics.finished(Finished::from_error(code), polls);
                }
                tracing::info!(operation.name = %operation, polls, "operation done");
                let head = mem::take(head);
                finish(Finish::ok(
                    head.map(|()| ResponseBody::full(data, trailers)),
                ))
            }
            PollBody::NotDone => {
                self.schedule.not_done(&self.call.config.poll);
                next(State::Sleep)
            }
            PollBody::Transient(status, after) => {
                self.transient(after, Error::poll(operation, Some(status), None))
            }
            PollBody::Unimplemented(status) if self.schedule.waiting() => {
                tracing::info!(%status, "the server does not implement WaitOperation; polling with GetOperation");
                self.call.delivery.remember_no_wait(target.authority());
                self.schedule.now();
                next(State::Sleep)
            }
            PollBody::Unimplemented(status) | PollBody::Failed(status) => {
                give_up(Error::poll(operation, Some(status), None))
            }
            PollBody::Invalid(reason) => give_up(Error::InvalidPollResponse { operation, reason }),
        }
    }

    /// After a transient failure: poll again, or give up with `error` when
    /// the transient failures have run out.
    fn transient<ReqBody, ResBody>(
        &mut self,
        after: Option<std::time::Duration>,
        error: Error,
    ) -> Poll<Step<S, ReqBody, ResBody>>
    where
        S: Service<Request<ReqBody>>,
    {
        if self.schedule.retry(&self.call.config.poll, after) {
            next(State::Sleep)
        } else {
            give_up(error)
        }
    }

    /// Hands a poll's Operation to the `on_progress` hook and a `debug` event.
    fn report_progress(&self, body: &Bytes) {
        let hook = self.call.config.on_progress.as_ref();
        if hook.is_none() && !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let Some(op) = self.target.as_ref().and_then(|t| t.operation(body)) else {
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
        if let Some(metadata) = &op.grpc_metadata {
            tracing::debug!(
                done = op.done,
                metadata.type_url = metadata.type_url.as_str(),
                metadata.bytes = metadata.value.len(),
                "operation progress"
            );
        }
        if let Some(hook) = hook {
            hook(&op);
        }
    }
}

fn give_up<S: Service<Request<R>>, R, B>(error: Error) -> Poll<Step<S, R, B>> {
    finish(Finish::give_up(error, Reason::PollFailed))
}

impl Error {
    fn poll(
        operation: OperationName,
        status: Option<WireStatus>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Poll {
            operation,
            status,
            source,
        }
    }
}
