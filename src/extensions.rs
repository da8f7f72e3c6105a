//! Per-request options, set as [`http::Extensions`] on the request.

/// A request extension: wait on the operation this request starts, but never
/// cancel it — for work that must finish even if this caller gives up.
///
/// The layer polls the operation as usual while the response future is
/// alive; dropping the future, the layer's deadline or a polling failure
/// only stops the waiting. The operation runs on (AIP-151 operations are
/// server-side work; anyone can resume waiting on it by name).
///
/// ```
/// let mut request = http::Request::post("https://api.example.com/v1/projects/p/locations/l/jobs")
///     .body(http_body_util::Full::<bytes::Bytes>::default())
///     .unwrap();
/// request.extensions_mut().insert(tower_lro::Detached);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detached;

/// A request extension: hand back the response as it comes — the initial,
/// not-done `Operation` included — without waiting on or tracking the
/// operation, for callers that only want its name.
///
/// Nothing is cancelled for such a request, ever: the caller owns the
/// operation. To wait on it later with the layer's protection, send a
/// `GetOperation` for it through the layer with [`Resume`]
/// ([`OperationName::get_request`](crate::OperationName::get_request) sets it).
///
/// ```
/// let mut request = http::Request::post("https://api.example.com/v1/projects/p/locations/l/jobs")
///     .body(http_body_util::Full::<bytes::Bytes>::default())
///     .unwrap();
/// request.extensions_mut().insert(tower_lro::ReturnImmediately);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReturnImmediately;

/// A request extension: inspect the answer to this `GetOperation` like a call
/// that starts an operation — if the operation is not done, wait on it,
/// resolve with the `done` answer, and cancel it if the caller gives up.
///
/// Only requests that may start an operation (any method but GET, HEAD and
/// OPTIONS) are inspected by default; a GET is inspected only with this
/// extension, so that ordinary reads pass through at no cost.
/// [`OperationName::get_request`](crate::OperationName::get_request) builds
/// such a request. Use it to resume waiting after a restart, from a name
/// saved earlier (for example one returned with [`ReturnImmediately`]).
///
/// ```
/// let mut request = http::Request::get(
///     "https://api.example.com/v1/projects/p/locations/l/operations/o",
/// )
/// .body(http_body_util::Full::<bytes::Bytes>::default())
/// .unwrap();
/// request.extensions_mut().insert(tower_lro::Resume);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resume;

/// Which triggers fire a `CancelOperation` for an operation the layer stops
/// waiting on: a layer setting ([`CancelOnDropLayer::cancel_on`](crate::CancelOnDropLayer::cancel_on),
/// default [`CancelOn::all`]) and a request extension that overrides it for
/// one call. [`Detached`] on a request means [`CancelOn::none`].
///
/// | trigger | the layer stops waiting because |
/// |---|---|
/// | [`drop`](Self::drop) | the response future was dropped (also before the first response arrived) |
/// | [`deadline`](Self::deadline) | the layer's [`deadline`](crate::CancelOnDropLayer::deadline) passed |
/// | [`poll_failure`](Self::poll_failure) | polling gave up (a status not retried, transient failures exhausted, an invalid answer) |
/// | [`shutdown`](Self::shutdown) | [`CancelHandle::shutdown`](crate::CancelHandle::shutdown) was called |
///
/// With a trigger off, the call still ends the same way; the operation runs
/// on. A call with every trigger off is not journaled (nothing would cancel
/// it). An explicit [`CancelOnDrop::cancel`](crate::CancelOnDrop::cancel) and
/// a reaper's cancel are not triggers: they are always sent.
///
/// ```
/// use tower_lro::{CancelOn, CancelOnDropLayer};
///
/// // Cancel on drop and at shutdown, but let a deadline or a failed poll
/// // leave the operation running.
/// let layer = CancelOnDropLayer::new().cancel_on(CancelOn::none().drop(true).shutdown(true));
/// # let _ = layer;
/// // For one request: only at shutdown.
/// let mut request = http::Request::post("https://api.example.com/v1/projects/p/locations/l/jobs")
///     .body(http_body_util::Full::<bytes::Bytes>::default())
///     .unwrap();
/// request.extensions_mut().insert(CancelOn::none().shutdown(true));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CancelOn(u8);

impl CancelOn {
    const DROP: u8 = 1;
    const DEADLINE: u8 = 2;
    const POLL_FAILURE: u8 = 4;
    const SHUTDOWN: u8 = 8;

    /// Every trigger on: the default.
    pub const fn all() -> Self {
        CancelOn(Self::DROP | Self::DEADLINE | Self::POLL_FAILURE | Self::SHUTDOWN)
    }

    /// No trigger on: wait, never cancel (what [`Detached`] means).
    pub const fn none() -> Self {
        CancelOn(0)
    }

    const fn with(self, bit: u8, on: bool) -> Self {
        if on {
            CancelOn(self.0 | bit)
        } else {
            CancelOn(self.0 & !bit)
        }
    }

    /// Cancel when the response future is dropped before the operation is done.
    pub const fn drop(self, on: bool) -> Self {
        self.with(Self::DROP, on)
    }

    /// Cancel when the layer's deadline passes.
    pub const fn deadline(self, on: bool) -> Self {
        self.with(Self::DEADLINE, on)
    }

    /// Cancel when polling gives up.
    pub const fn poll_failure(self, on: bool) -> Self {
        self.with(Self::POLL_FAILURE, on)
    }

    /// Cancel when [`CancelHandle::shutdown`](crate::CancelHandle::shutdown) ends the call.
    pub const fn shutdown(self, on: bool) -> Self {
        self.with(Self::SHUTDOWN, on)
    }

    /// Whether the drop trigger is on.
    pub const fn on_drop(self) -> bool {
        self.0 & Self::DROP != 0
    }

    /// Whether the deadline trigger is on.
    pub const fn on_deadline(self) -> bool {
        self.0 & Self::DEADLINE != 0
    }

    /// Whether the poll-failure trigger is on.
    pub const fn on_poll_failure(self) -> bool {
        self.0 & Self::POLL_FAILURE != 0
    }

    /// Whether the shutdown trigger is on.
    pub const fn on_shutdown(self) -> bool {
        self.0 & Self::SHUTDOWN != 0
    }

    /// Whether any trigger is on.
    pub const fn any(self) -> bool {
        self.0 != 0
    }
}

impl Default for CancelOn {
    fn default() -> Self {
        Self::all()
    }
}

impl std::fmt::Debug for CancelOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelOn")
            .field("drop", &self.on_drop())
            .field("deadline", &self.on_deadline())
            .field("poll_failure", &self.on_poll_failure())
            .field("shutdown", &self.on_shutdown())
            .finish()
    }
}
