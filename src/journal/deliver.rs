//! Sending one journaled operation's CancelOperation through the layer's
//! shared delivery (`reason = "reaped"`).

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body::Body;
use tokio::runtime::Handle;
use tower_service::Service;

use super::{Entry, Protocol};
use crate::cancel::{deliver_now, CancelJob, CancelOutcome, Reason};
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::operation::OperationName;
use crate::protocol::rest::routes::Route;
use crate::protocol::Target;
use crate::request_body::RequestBody;

/// Sends `entry`'s CancelOperation through `svc` with `config`'s cancel
/// policy: to the journaled route (the origin the operation was started
/// on), with the journaled non-secret headers; `svc` adds credentials.
/// `Failed` without sending if the entry cannot be read back as a target.
pub(crate) async fn cancel_entry<S, B, ResBody>(
    svc: S,
    config: Arc<Config>,
    entry: &Entry,
) -> CancelOutcome
where
    S: Service<http::Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let Some(target) = target(entry) else {
        return CancelOutcome::Failed;
    };
    let Ok(runtime) = Handle::try_current() else {
        return CancelOutcome::Failed;
    };
    let headers = Forwarded::from_map(&entry.header_map());
    let job = CancelJob::direct(svc, target, headers, Reason::Reaped, config, runtime);
    deliver_now::<S, B, ResBody>(job).await
}

/// The entry as a cancel target; `None` (with a `warn` event) if its name
/// is not a valid operation name or its route cannot be rebuilt — the
/// journal is read back as untrusted input.
fn target(entry: &Entry) -> Option<Target> {
    let name = match OperationName::parse(entry.name()) {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!(entry = %entry.id(), error = %e, "journaled name invalid; entry kept");
            return None;
        }
    };
    match entry.protocol() {
        Protocol::Rest => {
            let (Ok(cancel), Ok(cancel_method)) = (entry.route().uri(), entry.route().method())
            else {
                tracing::warn!(entry = %entry.id(), "journaled route unreadable; entry kept");
                return None;
            };
            let route = Route {
                // Read only to verify a cancel; the reaper does not.
                get: cancel.clone(),
                cancel,
                cancel_method,
                wait: None,
            };
            Some(Target::rest(name, route))
        }
        Protocol::Grpc => {
            tracing::warn!(entry = %entry.id(), "no gRPC cancel delivery in this build; entry kept");
            None
        }
    }
}
