//! [`Config`]: the settings every service made by one layer reads, fixed
//! when the layer builds them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, Uri};

use crate::cancel::CancelPolicy;
use crate::operation::{Operation, OperationName};
use crate::poll::PollPolicy;
use crate::protocol::grpc::GrpcLroMethods;
use crate::protocol::rest::routes::Routes;
use crate::shared::Shared;

/// The default for [`CancelOnDropLayer::max_inspect_bytes`](crate::CancelOnDropLayer::max_inspect_bytes): 1 MiB.
pub const DEFAULT_MAX_INSPECT_BYTES: usize = 1024 * 1024;

/// The headers copied from the original request onto its `GetOperation` and
/// `CancelOperation` requests, before any added with
/// [`CancelOnDropLayer::forward_headers`](crate::CancelOnDropLayer::forward_headers).
pub const FORWARDED_HEADERS: [&str; 5] = [
    "authorization",
    "x-goog-user-project",
    "x-goog-api-key",
    "x-goog-api-client",
    "user-agent",
];

pub(crate) type InspectFn = dyn Fn(&Method, &Uri) -> bool + Send + Sync;
pub(crate) type ProgressFn = dyn Fn(&Operation) + Send + Sync;
pub(crate) type RouteFn = dyn Fn(&OperationName, &Uri) -> Option<Routes> + Send + Sync;

/// What every service made by one layer reads.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) poll: PollPolicy,
    pub(crate) cancel: CancelPolicy,
    pub(crate) deadline: Option<Duration>,
    pub(crate) max_inspect_bytes: usize,
    pub(crate) forward_headers: Vec<HeaderName>,
    pub(crate) path_prefix: Option<Arc<str>>,
    pub(crate) inspect: Option<Arc<InspectFn>>,
    pub(crate) on_progress: Option<Arc<ProgressFn>>,
    pub(crate) route: Option<Arc<RouteFn>>,
    pub(crate) grpc_methods: GrpcLroMethods,
    /// Cancel slots, counters and per-server memos, sized by `cancel`.
    pub(crate) shared: Arc<Shared>,
    /// Where tracked operations are journaled, if anywhere.
    pub(crate) journal: crate::journal_hook::Writer,
    /// Which triggers fire a cancel, unless a request says otherwise.
    pub(crate) cancel_on: crate::extensions::CancelOn,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("poll", &self.poll)
            .field("cancel", &self.cancel)
            .field("deadline", &self.deadline)
            .field("max_inspect_bytes", &self.max_inspect_bytes)
            .field("forward_headers", &self.forward_headers)
            .field("path_prefix", &self.path_prefix)
            .field("inspect", &self.inspect.as_ref().map(|_| "custom"))
            .field("on_progress", &self.on_progress.as_ref().map(|_| "set"))
            .field("route", &self.route.as_ref().map(|_| "custom"))
            .field("grpc_methods", &self.grpc_methods)
            .field("journal", &self.journal)
            .field("cancel_on", &self.cancel_on)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        let cancel = CancelPolicy::default();
        Config {
            shared: Arc::new(Shared::new(&cancel)),
            poll: PollPolicy::default(),
            cancel,
            deadline: None,
            max_inspect_bytes: DEFAULT_MAX_INSPECT_BYTES,
            forward_headers: FORWARDED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            path_prefix: None,
            inspect: None,
            on_progress: None,
            route: None,
            grpc_methods: GrpcLroMethods::googleapis(),
            journal: Default::default(),
            cancel_on: Default::default(),
        }
    }
}
