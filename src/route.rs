//! User route functions: where `GetOperation` and `CancelOperation` go for
//! APIs whose operation URLs do not follow AIP-151's `{prefix}{name}` and
//! `{prefix}{name}:cancel`.

use http::{Method, Uri};
use percent_encoding::utf8_percent_encode;

use crate::operation::{OperationName, PATH_VARIABLE};

/// Where the layer sends `GetOperation` and `CancelOperation` for one
/// operation, as returned by a route function given to
/// [`CancelOnDropLayer::route`](crate::CancelOnDropLayer::route).
///
/// The URIs may be path-only (`/sql/v1beta4/projects/p/operations/o`): the
/// layer then uses the original request's scheme and authority. An absolute
/// URI must have exactly the original request's scheme and authority, or the
/// operation is not tracked (a `warn` event): poll and cancel requests never
/// go to another origin.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Routes {
    /// The `GetOperation` URI.
    pub get: Uri,
    /// The `CancelOperation` URI.
    pub cancel: Uri,
    /// The `CancelOperation` method: `POST` (AIP-151), `GET` for APIs such as
    /// datalabeling v1beta1 that document it so.
    pub cancel_method: Method,
}

impl Routes {
    /// `GET get` to poll, `POST cancel` (empty body) to cancel.
    pub fn new(get: Uri, cancel: Uri) -> Self {
        Routes {
            get,
            cancel,
            cancel_method: Method::POST,
        }
    }

    /// Sends the cancel with another method.
    pub fn cancel_method(mut self, method: Method) -> Self {
        self.cancel_method = method;
        self
    }

    /// Gives path-only URIs the request's scheme and authority, and checks
    /// that absolute ones have them. `None` if a URI leaves the origin.
    pub(crate) fn same_origin(self, request_uri: &Uri) -> Option<Routes> {
        Some(Routes {
            get: same_origin(self.get, request_uri)?,
            cancel: same_origin(self.cancel, request_uri)?,
            cancel_method: self.cancel_method,
        })
    }
}

fn same_origin(uri: Uri, request_uri: &Uri) -> Option<Uri> {
    match (uri.scheme(), uri.authority()) {
        (None, None) => {
            let mut parts = uri.into_parts();
            parts.scheme = request_uri.scheme().cloned();
            parts.authority = request_uri.authority().cloned();
            Uri::from_parts(parts).ok()
        }
        (scheme, authority)
            if scheme == request_uri.scheme() && authority == request_uri.authority() =>
        {
            Some(uri)
        }
        _ => None,
    }
}

impl OperationName {
    /// The name percent-encoded for a URL path per AIP-127 (every byte but
    /// `[-_.~/0-9a-zA-Z]` escaped; `/` kept), for route functions that build
    /// their own URLs.
    ///
    /// ```
    /// let name = tower_lro::OperationName::parse("projects/p/operations/a+b@c").unwrap();
    /// assert_eq!(name.encoded(), "projects/p/operations/a%2Bb%40c");
    /// ```
    pub fn encoded(&self) -> String {
        utf8_percent_encode(self.as_str(), PATH_VARIABLE).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_only_routes_take_the_request_origin() {
        let request: Uri = "https://sqladmin.googleapis.com/sql/v1beta4/projects/p/instances"
            .parse()
            .unwrap();
        let routes = Routes::new(
            "/sql/v1beta4/projects/p/operations/o".parse().unwrap(),
            "/sql/v1beta4/projects/p/operations/o/cancel"
                .parse()
                .unwrap(),
        )
        .same_origin(&request)
        .unwrap();
        assert_eq!(
            routes.cancel,
            "https://sqladmin.googleapis.com/sql/v1beta4/projects/p/operations/o/cancel"
        );
    }

    #[test]
    fn routes_to_another_origin_are_refused() {
        let request: Uri = "https://a.example/v1/x".parse().unwrap();
        for other in [
            "https://b.example/v1/o",
            "http://a.example/v1/o",
            "https://a.example:8443/v1/o",
        ] {
            let routes = Routes::new("/v1/o".parse().unwrap(), other.parse().unwrap());
            assert!(routes.same_origin(&request).is_none(), "{other}");
        }
    }
}
