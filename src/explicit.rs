//! Explicit cancels of an operation held by name, on either wire:
//! [`CancelHandle::cancel`] and [`CancelOnDrop::cancel`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::runtime::Handle;
use tower_service::Service;

use crate::cancel::{deliver_now, CancelHandle, CancelJob, CancelOutcome, Delivery, Reason};
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::future::verify_fn;
use crate::operation::{OperationName, RouteError};
use crate::protocol::{Origin, Protocol, Target};
use crate::request_body::RequestBody;
use crate::service::CancelOnDrop;

impl CancelHandle {
    /// Cancels operation `name` now (AIP-151 `CancelOperation`) through
    /// `service` — the stack below the layer (a hyper-util `Client`, a tonic
    /// `Channel`, with whatever adds credentials), not the layered one — on
    /// the wire and at the place `origin` says:
    ///
    /// - [`Origin::rest`]`(request_uri)`: `POST {prefix}{name}:cancel` on
    ///   `request_uri`'s scheme and authority, the prefix from the layer's
    ///   route function, else the request path (as for a tracked call:
    ///   `https://api.example.com/v1/projects/p/things` →
    ///   `https://api.example.com/v1/{name}:cancel`), else the layer's
    ///   `path_prefix`; empty body, `content-length: 0`.
    /// - [`Origin::grpc`]`(channel_origin)`: the unary call
    ///   `/google.longrunning.Operations/CancelOperation` (`te: trailers`,
    ///   `grpc-timeout`, `x-goog-request-params: name=…`) through `service`.
    ///
    /// It goes through the layer's cancel delivery like a cancel fired by a
    /// dropped call: its [`CancelPolicy`](crate::CancelPolicy) (retries,
    /// in-flight slots, deadline, verification), the UNIMPLEMENTED memo, the
    /// counters of [`stats`](Self::stats) and an `lro.cancel` span with
    /// `reason = "explicit"`. An answer counts as accepted only on the
    /// wire's own success (REST: a 2xx that is not a gRPC answer; gRPC:
    /// `grpc-status: 0`). Resolves when the cancel has an outcome (within
    /// the policy's deadline):
    ///
    /// | outcome | meaning |
    /// |---|---|
    /// | [`Accepted`](CancelOutcome::Accepted) | the server accepted it (AIP-151: asynchronous; the operation may still finish) |
    /// | [`VerifiedCancelled`](CancelOutcome::VerifiedCancelled) / [`CompletedAnyway`](CancelOutcome::CompletedAnyway) | accepted, and with [`CancelPolicy::verify`](crate::CancelPolicy::verify) the operation then ended CANCELLED / some other way |
    /// | [`NotFound`](CancelOutcome::NotFound) | 404 / `NOT_FOUND`: no such operation (any more) |
    /// | [`Unimplemented`](CancelOutcome::Unimplemented) / [`UnimplementedSkipped`](CancelOutcome::UnimplementedSkipped) | 501 / `UNIMPLEMENTED`, now or remembered for this server |
    /// | [`Failed`](CancelOutcome::Failed) | another error, retries out of time, or awaited outside a tokio runtime (nothing sent) |
    ///
    /// Once awaited, dropping the future does not stop the cancel. It is
    /// never shed: the caller waiting on it bounds how many there are.
    ///
    /// # Errors
    /// [`RouteError`] before anything is sent if no REST route can be
    /// built: no path prefix derivable from the URI (set
    /// [`path_prefix`](crate::CancelOnDropLayer::path_prefix)), an invalid
    /// URI, or a route function answering another origin. A gRPC origin
    /// always has a route.
    ///
    /// ```no_run
    /// # async fn f(channel: tonic::transport::Channel) -> Result<(), tower_lro::RouteError> {
    /// use tower_lro::{CancelOnDropLayer, CancelOutcome, OperationName, Origin};
    ///
    /// let layer = CancelOnDropLayer::new();
    /// let cancels = layer.handle();
    /// // ... build the client stack with `layer` over `channel` ...
    /// let name = OperationName::parse("projects/p/locations/l/operations/o").unwrap();
    /// let origin = Origin::grpc("https://clouddeploy.googleapis.com".parse().unwrap());
    /// let outcome = cancels.cancel(channel.clone(), &name, origin).await?;
    /// assert!(matches!(outcome, CancelOutcome::Accepted | CancelOutcome::NotFound));
    /// # Ok(()) }
    /// ```
    pub fn cancel<S, ReqBody, ResBody>(
        &self,
        service: S,
        name: &OperationName,
        origin: impl Into<Origin>,
    ) -> impl Future<Output = Result<CancelOutcome, RouteError>> + Send + 'static
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        ReqBody: RequestBody + Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        explicit::<S, ReqBody, ResBody>(
            service,
            name,
            &origin.into(),
            (self.config.clone(), self.delivery.clone()),
        )
    }
}

impl<S> CancelOnDrop<S> {
    /// Cancels operation `name` now through a clone of the inner service:
    /// [`CancelHandle::cancel`] with this service's layer settings. `origin`
    /// is an [`Origin`]; a `Uri` (or `&Uri`) means [`Origin::rest`], the URI
    /// of a request that started the operation. Over a tonic `Channel`, pass
    /// [`Origin::grpc`]: a REST-shaped cancel down a gRPC channel is never
    /// counted accepted.
    ///
    /// In a stack (`Timeout<CancelOnDrop<_>>`) reach it with `get_ref()`, or
    /// keep the layer's [`CancelHandle`] and call
    /// [`CancelHandle::cancel`] with the inner service.
    ///
    /// # Errors
    /// As for [`CancelHandle::cancel`].
    pub fn cancel<ReqBody, ResBody>(
        &self,
        name: &OperationName,
        origin: impl Into<Origin>,
    ) -> impl Future<Output = Result<CancelOutcome, RouteError>> + Send + 'static
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        ReqBody: RequestBody + Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        explicit::<S, ReqBody, ResBody>(
            self.inner.clone(),
            name,
            &origin.into(),
            (self.layered.config.clone(), self.layered.delivery.clone()),
        )
    }
}

/// The target is built now (so a route error needs no await); the cancel
/// is delivered when the future is first polled.
fn explicit<S, ReqBody, ResBody>(
    svc: S,
    name: &OperationName,
    origin: &Origin,
    (config, delivery): (Arc<Config>, Arc<Delivery>),
) -> impl Future<Output = Result<CancelOutcome, RouteError>> + Send + 'static
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let protocol = if origin.grpc {
        Protocol::Grpc
    } else {
        Protocol::Rest
    };
    let target = Target::new(
        protocol,
        name.clone(),
        &origin.uri,
        &config.protocol,
        config.timing(),
    );
    async move {
        let target = target?;
        let Ok(runtime) = Handle::try_current() else {
            tracing::warn!(operation.name = %target.name(), "explicit cancel awaited outside a tokio runtime: not sent");
            return Ok(CancelOutcome::Failed);
        };
        let verify = Some(verify_fn::<S, ReqBody, ResBody>());
        let job = CancelJob::direct(
            svc,
            target,
            Forwarded::default(),
            Reason::Explicit,
            (config, delivery),
            runtime,
            verify,
        );
        Ok(deliver_now::<S, ReqBody, ResBody>(job).await)
    }
}
