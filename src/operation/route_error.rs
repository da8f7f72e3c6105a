//! [`RouteError`]: no REST route to an operation could be built.

use std::error::Error as StdError;
use std::fmt;

/// The error returned by [`OperationName::get_uri`](crate::OperationName::get_uri) and
/// [`OperationName::cancel_uri`](crate::OperationName::cancel_uri): no AIP-151 route could be built.
///
/// Either no path prefix could be derived from the request path (see
/// [`OperationName::get_uri`](crate::OperationName::get_uri) for the rule; the message shows the path, and
/// the layer's `path_prefix` override is the fix), or the URI built from the
/// request's scheme and authority, the prefix and the encoded name is invalid
/// ([`source`](std::error::Error::source) then has the `http` error).
#[derive(Debug)]
pub struct RouteError {
    kind: RouteErrorKind,
}

#[derive(Debug)]
enum RouteErrorKind {
    NoPrefix { path: Box<str> },
    InvalidPrefix { prefix: Box<str> },
    InvalidUri(http::Error),
    OtherOrigin,
}

impl RouteError {
    pub(crate) fn invalid_uri(error: http::Error) -> RouteError {
        RouteError {
            kind: RouteErrorKind::InvalidUri(error),
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RouteErrorKind::NoPrefix { path } => write!(
                f,
                "no operations path prefix for request path \"{}\": no segment after the first \
                 matches the operation name's first segment, and the first is not an API version \
                 (set a path prefix)",
                path.escape_debug()
            ),
            RouteErrorKind::InvalidPrefix { prefix } => write!(
                f,
                "invalid operations path prefix \"{}\": it must start and end with '/', not start \
                 with \"//\", and contain no '?' or '#'",
                prefix.escape_debug()
            ),
            RouteErrorKind::InvalidUri(e) => write!(f, "invalid operation URI: {e}"),
            RouteErrorKind::OtherOrigin => {
                f.write_str("the route function's URIs leave the request's scheme and authority")
            }
        }
    }
}

impl StdError for RouteError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.kind {
            RouteErrorKind::InvalidUri(e) => Some(e),
            _ => None,
        }
    }
}

impl RouteError {
    /// No prefix could be derived from the request path `path`.
    pub(crate) fn no_prefix(path: &str) -> RouteError {
        RouteError {
            kind: RouteErrorKind::NoPrefix { path: path.into() },
        }
    }

    /// Whether no prefix could be derived (and none was configured).
    pub(crate) fn is_no_prefix(&self) -> bool {
        matches!(self.kind, RouteErrorKind::NoPrefix { .. })
    }

    /// Whether a route function answered another origin.
    pub(crate) fn is_other_origin(&self) -> bool {
        matches!(self.kind, RouteErrorKind::OtherOrigin)
    }

    /// A route function answered URIs on another origin than the request's.
    pub(crate) fn other_origin() -> RouteError {
        RouteError {
            kind: RouteErrorKind::OtherOrigin,
        }
    }

    /// `prefix` does not start and end with `/`, or holds `?` or `#`.
    pub(crate) fn invalid_prefix(prefix: &str) -> RouteError {
        RouteError {
            kind: RouteErrorKind::InvalidPrefix {
                prefix: prefix.into(),
            },
        }
    }
}
