//! [`CancelOnDrop::cancel`]: an explicit CancelOperation by name.

use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use tokio::runtime::Handle;
use tower_service::Service;

use super::deliver::deliver_now;
use super::job::CancelJob;
use super::outcome::CancelOutcome;
use super::policy::Reason;
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::operation::{OperationName, RouteError};
use crate::protocol::rest::routes::{default_route, user_route, Route};
use crate::protocol::Target;
use crate::request_body::RequestBody;
use crate::service::CancelOnDrop;

impl<S> CancelOnDrop<S> {
    /// Cancels operation `name` now (AIP-151 `CancelOperation`), routed as
    /// if a call to `request_uri` had started it — to that URI's scheme and
    /// authority, under the layer's route function, `path_prefix` or the
    /// prefix derived from its path (`https://api.example.com/v1/projects/p/things`
    /// → `POST https://api.example.com/v1/{name}:cancel`) — through a clone
    /// of the inner service (which adds credentials), with the layer's
    /// [`CancelPolicy`](crate::CancelPolicy): retries, in-flight slots,
    /// the UNIMPLEMENTED memo, the counters of
    /// [`CancelHandle::stats`](crate::CancelHandle::stats) and an
    /// `lro.cancel` span with `reason = "explicit"`. Resolves when the
    /// cancel has an outcome (within the policy's deadline); await it on a
    /// tokio runtime (elsewhere it resolves to `Failed` without sending).
    /// Once awaited, dropping the future does not stop the cancel: the
    /// layer's delivery workers send it like one fired by a dropped call. It
    /// is never shed: the caller waiting on it bounds how many there are.
    ///
    /// # Errors
    /// [`RouteError`] before anything is sent if no route can be built: no
    /// path prefix derivable from `request_uri` (set
    /// [`path_prefix`](crate::CancelOnDropLayer::path_prefix)), an invalid
    /// URI, or a route function answering another origin.
    pub fn cancel<ReqBody, ResBody>(
        &self,
        name: &OperationName,
        request_uri: &Uri,
    ) -> impl Future<Output = Result<CancelOutcome, RouteError>> + Send + 'static
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        ReqBody: RequestBody + Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let route = route(&self.config, name, request_uri);
        let (svc, config, name) = (self.inner.clone(), self.config.clone(), name.clone());
        async move {
            let target = Target::rest(name, route?);
            let Ok(runtime) = Handle::try_current() else {
                tracing::warn!(operation.name = %target.name(), "explicit cancel awaited outside a tokio runtime: not sent");
                return Ok(CancelOutcome::Failed);
            };
            let headers = Forwarded::default();
            let job = CancelJob::direct(svc, target, headers, Reason::Explicit, config, runtime);
            Ok(deliver_now::<S, ReqBody, ResBody>(job).await)
        }
    }
}

/// The layer's REST route to `name` for a call to `request_uri`.
fn route(config: &Config, name: &OperationName, request_uri: &Uri) -> Result<Route, RouteError> {
    if let Some(routes) = config.route.as_ref().and_then(|f| f(name, request_uri)) {
        return user_route(routes, request_uri).ok_or_else(RouteError::other_origin);
    }
    default_route(name, request_uri, config.path_prefix.as_deref(), false)?
        .ok_or_else(|| RouteError::no_prefix(request_uri.path()))
}
