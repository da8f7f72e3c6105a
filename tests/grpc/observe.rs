//! Each CancelOperation attempt as the layer's inner service sees it:
//! a service between the layer and the tonic `Channel` that records, per
//! attempt, the operation (from `x-goog-request-params`) and how the
//! attempt ended for the layer — the `grpc-status` it read (from the
//! trailers, or the headers of a trailers-only answer), a transport error,
//! or nothing because the layer gave up first (its attempt timeout).
//!
//! The server's log says what the server answered; this says what reached
//! the layer. The two differ when an answer comes after the layer stopped
//! waiting for it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tonic::transport::Channel;
use tower::Service;

const CANCEL: &str = "/google.longrunning.Operations/CancelOperation";

/// How one attempt ended for the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The layer read this `grpc-status`.
    Status(i32),
    /// The channel failed the request, or the answer's body.
    Transport,
    /// The layer dropped the attempt before its status arrived.
    GaveUp,
}

/// One CancelOperation attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub operation: String,
    pub sent: Instant,
    pub outcome: Outcome,
}

/// The channel, recording CancelOperation attempts.
#[derive(Clone)]
pub struct Observed {
    channel: Channel,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Observed {
    pub fn new(channel: Channel) -> Self {
        Self {
            channel,
            attempts: Arc::default(),
        }
    }

    /// Every attempt that has ended, by operation, in the order sent.
    pub fn by_operation(&self) -> HashMap<String, Vec<Attempt>> {
        let mut by: HashMap<String, Vec<Attempt>> = HashMap::new();
        for a in self.attempts.lock().unwrap().iter() {
            by.entry(a.operation.clone()).or_default().push(a.clone());
        }
        by.values_mut().for_each(|v| v.sort_by_key(|a| a.sent));
        by
    }
}

/// Records its attempt when dropped: at the end of the answer's body, or
/// when the layer drops the attempt.
struct Guard {
    attempt: Option<Attempt>,
    log: Arc<Mutex<Vec<Attempt>>>,
}

impl Guard {
    fn set(&mut self, outcome: Outcome) {
        if let Some(a) = self.attempt.as_mut() {
            a.outcome = outcome;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(a) = self.attempt.take() {
            self.log.lock().unwrap().push(a);
        }
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The answer's body, reading the trailers' `grpc-status` as it passes.
struct Watched {
    inner: tonic::body::Body,
    guard: Guard,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(code) = f.trailers_ref().and_then(grpc_status) {
                    this.guard.set(Outcome::Status(code));
                }
            }
            Some(Err(_)) => this.guard.set(Outcome::Transport),
            None => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The operation a CancelOperation names, from its routing header.
fn operation_of(request: &http::Request<tonic::body::Body>) -> Option<String> {
    if request.uri().path() != CANCEL {
        return None;
    }
    let params = request
        .headers()
        .get("x-goog-request-params")?
        .to_str()
        .ok()?;
    let name = params.strip_prefix("name=")?;
    Some(
        percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .ok()?
            .into_owned(),
    )
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<tonic::body::Body>> for Observed {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let operation = operation_of(&request);
        let response = self.channel.call(request);
        let Some(operation) = operation else {
            return Box::pin(response);
        };
        let mut guard = Guard {
            attempt: Some(Attempt {
                operation,
                sent: Instant::now(),
                outcome: Outcome::GaveUp,
            }),
            log: Arc::clone(&self.attempts),
        };
        Box::pin(async move {
            match response.await {
                Ok(response) => {
                    if let Some(code) = grpc_status(response.headers()) {
                        guard.set(Outcome::Status(code));
                    }
                    Ok(response.map(|inner| tonic::body::Body::new(Watched { inner, guard })))
                }
                Err(e) => {
                    guard.set(Outcome::Transport);
                    Err(e)
                }
            }
        })
    }
}
