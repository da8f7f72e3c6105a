//! [`CancelOnDrop`]: the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::runtime::Handle;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::cancel::{spawn_cancel, Delivery};
use crate::config::Config;
use crate::error::{BoxError, Error};
use crate::extensions::{CancelOn, Detached, ReturnImmediately};
use crate::forwarded::Forwarded;
use crate::future::{spawn_in_flight, verify_fn, CallContext, ResponseFuture, Track};
use crate::layer::CancelOnDropLayer;
use crate::protocol::{call_span, Protocol};
use crate::request_body::RequestBody;

/// The service made by [`CancelOnDropLayer`]: waits on AIP-151 operations
/// started through it and cancels those its caller gives up on.
///
/// See [`CancelOnDropLayer`] for what it does and how to configure it.
///
/// # Requirements
///
/// `CancelOnDrop<S>` is a `Service<http::Request<ReqBody>>` when:
///
/// - the inner service `S` is a
///   `Service<http::Request<ReqBody>, Response = http::Response<ResBody>>`,
///   `Clone + Send + 'static`, with `S::Future: Send + 'static` and
///   `S::Error: Into<BoxError>`: a clone of the inner service is kept per
///   tracked call and sends its `GetOperation`, `WaitOperation` and
///   `CancelOperation` requests (through [`tower::ServiceExt::oneshot`]),
///   the cancel from one of the layer's delivery workers, tasks spawned on
///   the tokio runtime current at `call` if fewer than the in-flight limit
///   run;
/// - `ReqBody: RequestBody + Send + 'static`: the layer builds the bodies of
///   those requests itself (see [`RequestBody`] for the types it is
///   implemented for — `Full<Bytes>`, `Empty<Bytes>`, `BoxBody`,
///   `UnsyncBoxBody`, `String`, `Vec<u8>`, `Bytes`, axum's and tonic's
///   bodies — and for hyper's `Incoming`, which cannot be built);
/// - `ResBody: http_body::Body<Data = Bytes> + Send + 'static`, with
///   `ResBody::Error: Into<BoxError>`: hyper's `Incoming`, `Full`, `BoxBody`,
///   tower-http's `TimeoutBody`; it need not be `Unpin`.
///
/// The service is `Clone`, and `Send`/`Sync` when `S` is; its future is
/// `Send`.
#[derive(Clone, Debug)]
pub struct CancelOnDrop<S> {
    pub(crate) inner: S,
    /// The layer's settings and cancel delivery: one `Arc`, so that a clone
    /// of the service (one per `oneshot`) costs one increment.
    pub(crate) layered: Arc<Layered>,
}

/// What every service built by one layer shares with it.
#[derive(Debug)]
pub(crate) struct Layered {
    /// The layer's settings.
    pub(crate) config: Arc<Config>,
    /// The layer's cancel delivery (owned by its [`CancelHandle`](crate::CancelHandle)).
    pub(crate) delivery: Arc<Delivery>,
}

impl<S> CancelOnDrop<S> {
    /// Wraps `inner` with the default configuration ([`CancelOnDropLayer::new`]).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&CancelOnDropLayer::new(), inner)
    }

    /// A [`CancelOnDropLayer`] with the default configuration.
    pub fn layer() -> CancelOnDropLayer {
        CancelOnDropLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for CancelOnDrop<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::inner)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let layered = &*self.layered;
        let Some(protocol) = Protocol::for_request(&layered.config.protocol, &req) else {
            return ResponseFuture::pass_through(self.inner.call(req));
        };
        if req.extensions().get::<ReturnImmediately>().is_some() {
            return ResponseFuture::pass_through(self.inner.call(req));
        }
        let Ok(runtime) = Handle::try_current() else {
            tracing::warn!("no tokio runtime at call: the response passes through untracked");
            return ResponseFuture::pass_through(self.inner.call(req));
        };
        let span = call_span(protocol, &req);
        let track = Track::new(CallContext {
            svc: self.inner.clone(),
            protocol,
            origin: req.uri().clone(),
            // Poll and cancel requests carry the caller's credentials and
            // quota project, nothing else.
            headers: Forwarded::from_request(req.headers(), &layered.config.forward_headers),
            config: layered.config.clone(),
            delivery: layered.delivery.clone(),
            runtime,
            span: span.clone(),
            fire: Some(spawn_cancel::<S, ReqBody, ResBody>),
            verify: Some(verify_fn::<S, ReqBody, ResBody>()),
            cancel_on: cancel_on(&layered.config, &req),
        });
        let future = span.in_scope(|| self.inner.call(req));
        ResponseFuture::tracked(future, track, spawn_in_flight::<S, ReqBody, ResBody>)
    }
}

/// The request's [`CancelOn`] ([`Detached`]: none), else the layer's.
fn cancel_on<B>(config: &Config, req: &Request<B>) -> CancelOn {
    let extensions = req.extensions();
    if extensions.get::<Detached>().is_some() {
        return CancelOn::none();
    }
    extensions
        .get::<CancelOn>()
        .copied()
        .unwrap_or(config.cancel_on)
}
