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
