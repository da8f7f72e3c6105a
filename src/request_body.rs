//! [`RequestBody`]: the request bodies the layer can build for its own
//! `GetOperation`, `CancelOperation` and `WaitOperation` requests.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Empty, Full};

/// A request body type the layer can build its own requests with.
///
/// `GetOperation` and `CancelOperation` (AIP-151) have empty bodies;
/// `WaitOperation` sends `{"timeout": "…s"}` as JSON. Implemented for the
/// bodies hyper-util clients are usually built with: [`Full<Bytes>`],
/// [`Empty<Bytes>`] (no JSON: WaitOperation falls back to GET polling),
/// [`BoxBody`], [`UnsyncBoxBody`], [`String`], [`Vec<u8>`] and [`Bytes`].
/// Implement it for your own body type to use it with the layer.
pub trait RequestBody: Sized {
    /// An empty body.
    fn empty() -> Self;

    /// A body holding `json` (an `application/json` document), or `None` if
    /// this body type cannot carry one.
    fn json(json: Bytes) -> Option<Self>;
}

impl RequestBody for Full<Bytes> {
    fn empty() -> Self {
        Full::default()
    }
    fn json(json: Bytes) -> Option<Self> {
        Some(Full::new(json))
    }
}

impl RequestBody for Empty<Bytes> {
    fn empty() -> Self {
        Empty::new()
    }
    fn json(_: Bytes) -> Option<Self> {
        None
    }
}

impl<E: 'static> RequestBody for BoxBody<Bytes, E> {
    fn empty() -> Self {
        BoxBody::default()
    }
    fn json(json: Bytes) -> Option<Self> {
        Some(
            Full::new(json)
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
    }
}

impl<E: 'static> RequestBody for UnsyncBoxBody<Bytes, E> {
    fn empty() -> Self {
        UnsyncBoxBody::default()
    }
    fn json(json: Bytes) -> Option<Self> {
        Some(
            Full::new(json)
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
    }
}

impl RequestBody for String {
    fn empty() -> Self {
        String::new()
    }
    fn json(json: Bytes) -> Option<Self> {
        String::from_utf8(json.into()).ok()
    }
}

impl RequestBody for Vec<u8> {
    fn empty() -> Self {
        Vec::new()
    }
    fn json(json: Bytes) -> Option<Self> {
        Some(json.into())
    }
}

impl RequestBody for Bytes {
    fn empty() -> Self {
        Bytes::new()
    }
    fn json(json: Bytes) -> Option<Self> {
        Some(json)
    }
}
