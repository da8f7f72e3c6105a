//! The settings each protocol owns: what to inspect and how to route. The
//! layer builds them; recognition, explicit cancels and the reaper read
//! them through [`Target::new`](super::Target::new).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Uri};

use super::grpc::GrpcLroMethods;
use super::rest::routes::Routes;
use crate::operation::OperationName;

/// The default most bytes of a response body read to look for an
/// Operation: 1 MiB.
pub const DEFAULT_MAX_INSPECT_BYTES: usize = 1024 * 1024;

/// A user predicate: which REST requests' responses are inspected.
pub(crate) type InspectFn = dyn Fn(&Method, &Uri) -> bool + Send + Sync;
/// A user route function (REST).
pub(crate) type RouteFn = dyn Fn(&OperationName, &Uri) -> Option<Routes> + Send + Sync;

/// Both protocols' settings, and what they share.
#[derive(Clone, Debug)]
pub(crate) struct ProtocolSettings {
    /// The most bytes of a response body read to look for an Operation
    /// (either wire).
    pub(crate) max_inspect_bytes: usize,
    pub(crate) rest: RestSettings,
    pub(crate) grpc: GrpcSettings,
}

impl Default for ProtocolSettings {
    fn default() -> Self {
        ProtocolSettings {
            max_inspect_bytes: DEFAULT_MAX_INSPECT_BYTES,
            rest: RestSettings::default(),
            grpc: GrpcSettings::default(),
        }
    }
}

/// REST/JSON: which requests are inspected and how routes are built.
#[derive(Clone, Default)]
pub(crate) struct RestSettings {
    /// Replaces the default "any method but GET, HEAD, OPTIONS".
    pub(crate) inspect: Option<Arc<InspectFn>>,
    /// The prefix before a name when none can be derived (`/v1/`).
    pub(crate) path_prefix: Option<Arc<str>>,
    /// Replaces the default AIP-151 routes.
    pub(crate) route: Option<Arc<RouteFn>>,
}

impl RestSettings {
    /// Sets the path prefix, with a leading and a trailing `/` added if
    /// missing.
    pub(crate) fn set_path_prefix(&mut self, prefix: &str) {
        self.path_prefix = Some(super::rest::routes::normalise_prefix(prefix).into());
    }
}

impl fmt::Debug for RestSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestSettings")
            .field("inspect", &self.inspect.as_ref().map(|_| "custom"))
            .field("path_prefix", &self.path_prefix)
            .field("route", &self.route.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// gRPC: which methods return an Operation (default: the googleapis
/// table), and the channel's origin.
#[derive(Clone, Debug, Default)]
pub(crate) struct GrpcSettings {
    pub(crate) methods: GrpcLroMethods,
    /// The origin (`http://host:port`) of the channel below the layer, for
    /// calls whose URI carries none (a tonic `Channel` adds its own): what a
    /// journal entry names.
    pub(crate) origin: Option<Uri>,
}

/// What a target's requests take from the poll and cancel policies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// The poll policy long-polls with WaitOperation.
    pub(crate) wait: bool,
    /// The per-attempt timeout of a CancelOperation (`grpc-timeout`).
    pub(crate) cancel_timeout: Duration,
}
