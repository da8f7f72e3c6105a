//! One request through the server: recorded, faulted or answered, and its
//! answer logged; the in-memory tower `Service`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};

use super::handlers::Answer;
use super::route::{self, Target};
use super::{fault, FaultKind, Inner, OperationsServer, MAX_BODY_BYTES};
use crate::BoxError;

/// A response, and whether hyper should drop the connection instead.
pub(crate) struct Handled {
    pub(crate) response: Response<Full<Bytes>>,
    pub(crate) disconnect: bool,
}

impl<B> tower_service::Service<Request<B>> for OperationsServer
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    /// Always ready.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let never = std::future::pending::<()>();
            Ok(inner.handle(request, never).await.response)
        })
    }
}

impl Inner {
    /// Records, applies faults, dispatches, and fills the answer in.
    ///
    /// A [`FaultKind::Hang`] waits for `release` (never, in memory; the
    /// graceful shutdown of an HTTP server) and then disconnects.
    pub(crate) async fn handle<B, R>(&self, request: Request<B>, release: R) -> Handled
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        R: Future<Output = ()>,
    {
        let (parts, body) = request.into_parts();
        let routed = route::classify(&parts.method, &parts.uri);
        let body = read_body(body).await;
        let operation = routed.operation().map(str::to_owned);
        let (answering, fault) = self.record(&parts, routed.endpoint, operation, &body);

        let mut late = None;
        let (response, disconnect) = match fault {
            Some(FaultKind::Status(status)) => (fault::fault_response(status), false),
            Some(FaultKind::RetryAfter(status, after)) => {
                (fault::retry_after_response(status, after), false)
            }
            Some(FaultKind::Disconnect) => (fault::disconnect_response(), true),
            Some(FaultKind::Hang) => {
                release.await;
                (fault::disconnect_response(), true)
            }
            other => {
                late = before_work(other).await;
                let (response, created) = self.answer(routed.target, &parts.uri, body).await;
                if let Some(name) = created {
                    self.set_created(answering.index, name);
                }
                (response, false)
            }
        };
        if let Some(delay) = late {
            tokio::time::sleep(delay).await;
        }
        answering.finish(response.status());
        Handled {
            response,
            disconnect,
        }
    }

    /// Answers a request normally: the response, and for a Start the name of
    /// the operation it created.
    async fn answer(
        &self,
        target: Target,
        uri: &Uri,
        body: Result<Bytes, BoxError>,
    ) -> (Response<Full<Bytes>>, Option<String>) {
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                let message = format!("Could not read the request body: {error}.");
                return (
                    fault::error_response(StatusCode::BAD_REQUEST, &message),
                    None,
                );
            }
        };
        match self.dispatch(target, uri, &body).await {
            Ok((value, created)) => (fault::json_response(StatusCode::OK, &value), created),
            Err(Answer::Error(e)) => (fault::error_response(e.status, &e.message), None),
            Err(Answer::NotAllowed { allow, message }) => {
                let mut response = fault::error_response(StatusCode::METHOD_NOT_ALLOWED, &message);
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
                (response, None)
            }
        }
    }
}

/// Reads a request's body, at most [`MAX_BODY_BYTES`].
pub(super) async fn read_body<B>(body: B) -> Result<Bytes, BoxError>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
}

/// Sleeps a [`FaultKind::Latency`] delay before the work; returns a
/// [`FaultKind::LateAnswer`] delay, to sleep after it.
pub(super) async fn before_work(fault: Option<FaultKind>) -> Option<Duration> {
    match fault {
        Some(FaultKind::Latency(delay)) => {
            tokio::time::sleep(delay).await;
            None
        }
        Some(FaultKind::LateAnswer(delay)) => Some(delay),
        _ => None,
    }
}
