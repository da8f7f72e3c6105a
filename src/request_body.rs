//! [`RequestBody`]: the request bodies the layer can build for its own
//! `GetOperation`, `CancelOperation` and `WaitOperation` requests.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full};

/// A request body type the layer can build its own requests with.
///
/// REST `GetOperation` and `CancelOperation` (AIP-151) have empty bodies;
/// REST `WaitOperation` sends `{"timeout": "…s"}` as JSON; a gRPC request is
/// one length-prefixed protobuf message (gRPC over HTTP/2, "Requests"). The
/// layer builds every body it sends from [`Bytes`]. Implemented for the
/// bodies hyper-util clients are usually built with: [`Full<Bytes>`],
/// [`Empty<Bytes>`] (empty only: WaitOperation falls back to GET polling),
/// [`BoxBody`], [`UnsyncBoxBody`], [`String`], [`Vec<u8>`] and [`Bytes`].
/// Implement it for your own body type to use it with the layer.
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
