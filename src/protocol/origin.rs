//! [`Origin`]: where an operation lives and on which wire, for a cancel
//! sent by name rather than by a tracked call.

use http::Uri;

/// Where an operation's `google.longrunning.Operations` requests go, and on
/// which wire: what [`CancelHandle::cancel`](crate::CancelHandle::cancel)
/// and [`CancelOnDrop::cancel`](crate::CancelOnDrop::cancel) need besides
/// the operation's name.
///
/// - [`Origin::rest`]: the URI of a request to the API (typically the one
///   that started the operation, `https://run.googleapis.com/v2/projects/p/locations/l/services`).
///   The cancel is `POST {scheme}://{authority}{prefix}{name}:cancel`
///   (AIP-151's HTTP mapping), on that URI's scheme and authority, with the
///   prefix derived from its path as for a tracked call — or the layer's
///   [`route`](crate::CancelOnDropLayer::route) function or
///   [`path_prefix`](crate::CancelOnDropLayer::path_prefix).
/// - [`Origin::grpc`]: the origin of the gRPC channel (`http://host:port`,
///   `https://deploy.googleapis.com`). A tonic `Channel`'s requests carry
///   no authority, so there is no path to derive anything from: the cancel
///   is the unary call `/google.longrunning.Operations/CancelOperation` on
///   the service given (the channel adds its own origin; the one given here
///   names the endpoint in spans and memos).
///
/// `From<Uri>` and `From<&Uri>` give [`Origin::rest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub(crate) grpc: bool,
    pub(crate) uri: Uri,
}

impl Origin {
    /// A REST/JSON origin: the URI of a request to the API.
    pub fn rest(request_uri: Uri) -> Self {
        Origin {
            grpc: false,
            uri: request_uri,
        }
    }

    /// A gRPC origin: the channel's `scheme://authority` (a path, if any, is
    /// ignored).
    pub fn grpc(channel_origin: Uri) -> Self {
        Origin {
            grpc: true,
            uri: channel_origin,
        }
    }

    /// Whether this is a gRPC origin.
    pub fn is_grpc(&self) -> bool {
        self.grpc
    }

    /// The URI given.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
}

impl From<Uri> for Origin {
    fn from(uri: Uri) -> Self {
        Origin::rest(uri)
    }
}

impl From<&Uri> for Origin {
    fn from(uri: &Uri) -> Self {
        Origin::rest(uri.clone())
    }
}
