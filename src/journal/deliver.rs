//! Sending one journaled operation's CancelOperation through a cancel
//! delivery — the reaper's own, the same workers, policy and spans as a
//! layer's (`reason = "reaped"`).

use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body::Body;
use tokio::runtime::Handle;
use tower_service::Service;

use super::{Entry, Protocol};
use crate::cancel::{deliver_now, CancelJob, CancelOutcome, Delivery, Reason};
use crate::config::Config;
use crate::error::BoxError;
use crate::forwarded::Forwarded;
use crate::operation::OperationName;
use crate::protocol::{self, Target};
use crate::request_body::RequestBody;

/// Sends `entry`'s CancelOperation through `svc` with `config`'s cancel
/// policy and `delivery`: to the journaled route (the origin the operation
/// was started on), with the journaled non-secret headers; `svc` adds
/// credentials. Not verified (a journaled target has no GetOperation
/// route). `Failed` without sending if the entry cannot be read back as a
/// target.
pub(crate) async fn cancel_entry<S, B, ResBody>(
    svc: S,
    (config, delivery): (Arc<Config>, Arc<Delivery>),
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
    let Some(target) = target(entry, &config) else {
        return CancelOutcome::Failed;
    };
    let Ok(runtime) = Handle::try_current() else {
        return CancelOutcome::Failed;
    };
    let headers = Forwarded::from_map(&entry.header_map());
    let job = CancelJob::direct(
        svc,
        target,
        headers,
        Reason::Reaped,
        (config, delivery),
        runtime,
        None,
    );
    deliver_now::<S, B, ResBody>(job).await
}

/// The entry as a cancel target, through the seam; `None` (with a `warn`
/// event) if its name is not a valid operation name or its route cannot be
/// read — the journal is read back as untrusted input.
fn target(entry: &Entry, config: &Config) -> Option<Target> {
    let name = match OperationName::parse(entry.name()) {
        Ok(name) => name,
        Err(e) => {
            tracing::warn!(entry = %entry.id(), error = %e, "journaled name invalid; entry kept");
            return None;
        }
    };
    let (Ok(uri), Ok(method)) = (entry.route().uri(), entry.route().method()) else {
        tracing::warn!(entry = %entry.id(), "journaled route unreadable; entry kept");
        return None;
    };
    let protocol = match entry.protocol() {
        Protocol::Rest => protocol::Protocol::Rest,
        Protocol::Grpc => protocol::Protocol::Grpc,
    };
    Some(Target::journaled(
        protocol,
        name,
        method,
        uri,
        config.timing(),
    ))
}
