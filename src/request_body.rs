//! [`RequestBody`]: the request bodies the layer can build for its own
//! `GetOperation`, `CancelOperation` and `WaitOperation` requests.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full};

/// A request body type the layer can build its own requests with: the one
/// bound on the request body of [`CancelOnDrop`](crate::CancelOnDrop)
/// besides `Send + 'static`.
///
/// REST `GetOperation` and `CancelOperation` (AIP-151) have empty bodies;
/// REST `WaitOperation` sends `{"timeout": "…s"}` as JSON; a gRPC request is
/// one length-prefixed protobuf message (gRPC over HTTP/2, "Requests"). The
/// layer builds every body it sends from [`Bytes`], so the standard
/// `Default` is not enough: it needs a body *with* data too.
///
/// Implemented for:
///
/// | body | `from_bytes` |
/// |---|---|
/// | [`Full<Bytes>`], [`BoxBody<Bytes, E>`], [`UnsyncBoxBody<Bytes, E>`] (tonic 0.12's `BoxBody`) | the bytes |
/// | [`Vec<u8>`], [`Bytes`] | the bytes |
/// | [`String`] | the bytes if UTF-8 (JSON always is), else `None` |
/// | [`Empty<Bytes>`] | `None`: WaitOperation falls back to `GetOperation` polling |
/// | `axum::body::Body` (feature `axum`) | the bytes |
/// | `tonic::body::Body` (feature `tonic`) | the bytes |
///
/// Implement it for a body type of your own (the orphan rule allows that for
/// your types only; for another crate's body, convert to one of the above).
///
/// # hyper's `Incoming`
///
/// A server's `Request<Incoming>` cannot be forwarded as is: `Incoming` can
/// only be made by hyper, so the layer could not build its own requests with
/// it. Box (or wrap) the body on the way in, and build the client for that
/// body type:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{combinators::UnsyncBoxBody, BodyExt};
/// use hyper::body::Incoming;
/// use hyper_util::client::legacy::{connect::HttpConnector, Client};
/// use hyper_util::rt::TokioExecutor;
/// use tower::ServiceBuilder;
/// use tower_lro::{BoxError, CancelOnDropLayer};
///
/// # fn f() {
/// type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;
/// let client: Client<HttpConnector, ProxyBody> =
///     Client::builder(TokioExecutor::new()).build_http();
/// let proxy = ServiceBuilder::new()
///     // `Request<Incoming>` in, `Request<ProxyBody>` on to the layer.
///     .map_request(|request: http::Request<Incoming>| request.map(BodyExt::boxed_unsync))
///     .layer(CancelOnDropLayer::new())
///     .service(client);
/// # let _ = proxy;
/// # }
/// ```
///
/// With axum, the handler's `axum::body::Body` goes through as it is
/// (feature `axum`); `axum::body::Body::new(incoming)` wraps an `Incoming`.
#[diagnostic::on_unimplemented(
    message = "the layer cannot build request bodies of type `{Self}`",
    label = "`{Self}` does not implement `tower_lro::RequestBody`",
    note = "a tonic `Channel` (`tonic::body::Body`) needs tower-lro's `tonic` feature; an axum server's `axum::body::Body` needs its `axum` feature",
    note = "hyper's `Incoming` cannot be built: map it to `UnsyncBoxBody`/`BoxBody` (see `RequestBody`'s docs)"
)]
pub trait RequestBody: Sized {
    /// An empty body.
    fn empty() -> Self;

    /// A body holding exactly `bytes` (a JSON document, a gRPC message
    /// frame), or `None` if this body type cannot carry them.
    fn from_bytes(bytes: Bytes) -> Option<Self>;
}

impl RequestBody for Full<Bytes> {
    fn empty() -> Self {
        Full::default()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(Full::new(bytes))
    }
}

impl RequestBody for Empty<Bytes> {
    fn empty() -> Self {
        Empty::new()
    }
    fn from_bytes(_: Bytes) -> Option<Self> {
        None
    }
}

impl<E: 'static> RequestBody for BoxBody<Bytes, E> {
    fn empty() -> Self {
        BoxBody::default()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(
            Full::new(bytes)
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
    }
}

impl<E: 'static> RequestBody for UnsyncBoxBody<Bytes, E> {
    fn empty() -> Self {
        UnsyncBoxBody::default()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(
            Full::new(bytes)
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
    }
}

impl RequestBody for String {
    fn empty() -> Self {
        String::new()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        String::from_utf8(bytes.into()).ok()
    }
}

impl RequestBody for Vec<u8> {
    fn empty() -> Self {
        Vec::new()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(bytes.into())
    }
}

impl RequestBody for Bytes {
    fn empty() -> Self {
        Bytes::new()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(bytes)
    }
}

/// The body of axum (and axum-core) 0.5 requests and responses.
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl RequestBody for axum_core::body::Body {
    fn empty() -> Self {
        axum_core::body::Body::empty()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(bytes.into())
    }
}

/// tonic 0.14's request and response body.
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl RequestBody for tonic::body::Body {
    fn empty() -> Self {
        tonic::body::Body::empty()
    }
    fn from_bytes(bytes: Bytes) -> Option<Self> {
        Some(tonic::body::Body::new(Full::new(bytes)))
    }
}
