//! gRPC: long-running methods answered with a `google.longrunning.Operation`
//! (AIP-151 over gRPC), and the unary `google.longrunning.Operations`
//! calls that wait on and cancel them.
//!
//! - [`frame`]: the gRPC Length-Prefixed-Message.
//! - [`messages`]: `google.longrunning` and `google.rpc` messages (prost).
//! - [`methods`]: the googleapis table of long-running methods and
//!   [`GrpcLroMethods`].
//! - [`recognise`]: candidate calls and answers; decoding the Operation.
//! - [`requests`]: GetOperation, WaitOperation, CancelOperation requests.
//! - [`route`]: where the calls go (the original origin only).
//! - [`answers`]: poll and cancel answers, for the protocol seam.
//! - [`status`]: reading `grpc-status` and RetryInfo.

pub(crate) mod answers;
pub(crate) mod frame;
pub(crate) mod messages;
pub(crate) mod methods;
pub(crate) mod recognise;
pub(crate) mod requests;
pub(crate) mod route;
pub(crate) mod status;

use http::Request;

use super::settings::GrpcSettings;

pub use self::methods::{GrpcLroMethods, InvalidGrpcMethod};

/// Whether the answer to a request may start an operation: an HTTP/2
/// `POST /{package}.{Service}/{Method}` with `content-type:
/// application/grpc[+proto]` for a method in the layer's
/// [`GrpcLroMethods`]. Runs on every gRPC call: header and table lookups,
/// no allocation.
#[inline]
pub(crate) fn candidate<B>(settings: &GrpcSettings, request: &Request<B>) -> bool {
    recognise::is_candidate_request(
        request.method(),
        request.version(),
        request.uri().path(),
        request.headers(),
        &settings.methods,
    )
}

/// Whether a request is gRPC at all (`content-type: application/grpc...`):
/// such calls are never inspected as REST.
#[inline]
pub(crate) fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}
