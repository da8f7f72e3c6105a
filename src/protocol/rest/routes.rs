//! REST routes: where GetOperation, WaitOperation and CancelOperation go for
//! an operation name, always on the original request's scheme and authority.
//!
//! The default rule (AIP-151's HTTP mapping): `GET {prefix}{name}`,
//! `POST {prefix}{name}:cancel`, `POST {prefix}{name}:wait`, where the
//! prefix is the original path up to the first whole segment equal to the
//! name's first segment (if one precedes it), else a leading API-version
//! segment (`^v\d+[a-z0-9]*$`), else the layer's `path_prefix`. A user route
//! function ([`Routes`]) replaces it and must stay on the same origin.

use bytes::Bytes;
use http::uri::{Parts, PathAndQuery};
use http::{Method, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::operation::{OperationName, RouteError};
use crate::protocol::settings::RestSettings;

/// AIP-127 / `google.api.http` multi-segment path variables: every byte except
/// `[-_.~/0-9a-zA-Z]` is percent-encoded (non-ASCII bytes always are).
pub(crate) const PATH_VARIABLE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Where one operation's requests go.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    pub(crate) get: Uri,
    pub(crate) cancel: Uri,
    pub(crate) cancel_method: Method,
    /// `{prefix}{name}:wait`, when the poll policy long-polls and the route
    /// is the default one.
    pub(crate) wait: Option<Uri>,
}

impl Route {
    pub(crate) fn authority(&self) -> &str {
        self.cancel.authority().map_or("", |a| a.as_str())
    }
}

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

/// `^v\d+[a-z0-9]*$`
pub(crate) fn is_api_version(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0
        && rest
            .bytes()
            .skip(digits)
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// `prefix` with a leading and a trailing `/` (`v1` → `/v1/`).
pub(crate) fn normalise_prefix(prefix: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + 2);
    if !prefix.starts_with('/') {
        p.push('/');
    }
    p.push_str(prefix);
    if !p.ends_with('/') {
        p.push('/');
    }
    p
}

/// `{prefix}{name}{suffix}` with the prefix derived from `request_uri`'s path.
pub(crate) fn derived(
    name: &OperationName,
    request_uri: &Uri,
    suffix: &str,
) -> Result<Uri, RouteError> {
    let path = request_uri.path();
    match path_prefix(name, path) {
        Some(prefix) => uri_with_prefix(name, request_uri, prefix, suffix),
        None => Err(RouteError::no_prefix(path)),
    }
}

/// The path prefix for this name's routes, as a slice of
/// `request_path` ending in `/` (`"/v1/"`, `"/v1/admin/"`), or `None` if
/// no rule applies.
///
/// 1. The path up to (not including) the first whole segment whose
///    percent-decoded form equals the name's first segment, provided at
///    least one segment precedes it. (A match at the first segment ends
///    the search: that rule then does not apply.)
/// 2. Else `/{v}/` if the first segment `v` is an API version
///    (`^v\d+[a-z0-9]*$`) and is followed by `/` (a bare `/v1` has no
///    `/v1/` to slice).
pub(crate) fn path_prefix<'a>(name: &OperationName, request_path: &'a str) -> Option<&'a str> {
    let rest = request_path.strip_prefix('/')?;
    let first = name.first_segment();
    // Byte offset in `request_path` of the segment being looked at.
    let mut start = 1;
    for (index, segment) in rest.split('/').enumerate() {
        if percent_decode_str(segment).eq(first.bytes()) {
            if index > 0 {
                return request_path.get(..start);
            }
            break;
        }
        start += segment.len() + 1;
    }
    let (version, _) = rest.split_once('/')?;
    if is_api_version(version) {
        request_path.get(..version.len() + 2)
    } else {
        None
    }
}

/// `{scheme}://{authority}{prefix}{encoded name}{suffix}`, with the scheme
/// and authority of `request_uri` (a path-only URI if it has neither).
///
/// `prefix` must start and end with `/`, must not start with `//`, and
/// neither `prefix` nor `suffix` may contain `?` or `#`: the result never
/// has a query or a fragment.
pub(crate) fn uri_with_prefix(
    name: &OperationName,
    request_uri: &Uri,
    prefix: &str,
    suffix: &str,
) -> Result<Uri, RouteError> {
    if !prefix.starts_with('/')
        || !prefix.ends_with('/')
        || prefix.starts_with("//")
        || prefix.contains(['?', '#'])
        || suffix.contains(['?', '#'])
    {
        return Err(RouteError::invalid_prefix(prefix));
    }
    let name = name.as_str();
    let mut path = String::with_capacity(prefix.len() + name.len() + suffix.len() + 8);
    path.push_str(prefix);
    path.extend(utf8_percent_encode(name, PATH_VARIABLE));
    path.push_str(suffix);
    let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(path))
        .map_err(|e| RouteError::invalid_uri(e.into()))?;
    let mut parts = Parts::default();
    parts.scheme = request_uri.scheme().cloned();
    parts.authority = request_uri.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).map_err(|e| RouteError::invalid_uri(e.into()))
}

/// The default routes of a validated name: GetOperation, CancelOperation and
/// (if `wait`) WaitOperation under `path_prefix` (the layer's override) or
/// the prefix derived from the request path. `Ok(None)`: no prefix.
pub(crate) fn default_route(
    name: &OperationName,
    request_uri: &Uri,
    path_prefix: Option<&str>,
    wait: bool,
) -> Result<Option<Route>, RouteError> {
    let prefix = match path_prefix {
        Some(prefix) => prefix,
        None => match self::path_prefix(name, request_uri.path()) {
            Some(prefix) => prefix,
            None => return Ok(None),
        },
    };
    let at = |suffix| uri_with_prefix(name, request_uri, prefix, suffix);
    Ok(Some(Route {
        get: at("")?,
        cancel: at(":cancel")?,
        cancel_method: Method::POST,
        wait: if wait { Some(at(":wait")?) } else { None },
    }))
}

/// The route of `name` for a call to `request_uri` under `settings`: the
/// route function's (made same-origin), else the default rule.
///
/// # Errors
/// [`RouteError`]: the route function leaves the origin, no prefix, or an
/// invalid URI.
pub(crate) fn route(
    name: &OperationName,
    request_uri: &Uri,
    settings: &RestSettings,
    wait: bool,
) -> Result<Route, RouteError> {
    if let Some(routes) = settings.route.as_ref().and_then(|f| f(name, request_uri)) {
        return user_route(routes, request_uri).ok_or_else(RouteError::other_origin);
    }
    default_route(name, request_uri, settings.path_prefix.as_deref(), wait)?
        .ok_or_else(|| RouteError::no_prefix(request_uri.path()))
}

/// A user route function's [`Routes`], made same-origin; `None` if it
/// leaves the original request's origin.
fn user_route(routes: Routes, request_uri: &Uri) -> Option<Route> {
    let routes = routes.same_origin(request_uri)?;
    Some(Route {
        get: routes.get,
        cancel: routes.cancel,
        cancel_method: routes.cancel_method,
        wait: None,
    })
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn name(s: &str) -> OperationName {
        OperationName::parse(s).unwrap()
    }
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
    // ----- path_prefix / uri_with_prefix -----

    #[test]
    fn path_prefix_is_a_slice_of_the_request_path() {
        let n = name("projects/p/locations/l/operations/x");
        let path = "/v1/admin/projects/p/locations/l/subscriptions/s:seek";
        let prefix = path_prefix(&n, path).unwrap();
        assert_eq!(prefix, "/v1/admin/");
        assert_eq!(prefix.as_ptr(), path.as_ptr());
        assert_eq!(
            path_prefix(&n, "/v1/projects/p/locations/l/jobs"),
            Some("/v1/")
        );
        assert_eq!(path_prefix(&n, "/v1beta1/things:create"), Some("/v1beta1/"));
        assert_eq!(path_prefix(&n, "/v1"), None);
        assert_eq!(path_prefix(&n, "/"), None);
        assert_eq!(path_prefix(&n, ""), None);
        assert_eq!(path_prefix(&n, "*"), None);
        assert_eq!(path_prefix(&n, "/projects/p/locations/l/jobs"), None);
        // A match must be a whole segment.
        assert_eq!(path_prefix(&n, "/api/myprojects/projects2/x"), None);
        assert_eq!(path_prefix(&n, "/api/x/projects"), Some("/api/x/"));
        // Request segments are compared percent-decoded.
        let n = name("caf\u{e9}/operations/x");
        assert_eq!(path_prefix(&n, "/api/caf%C3%A9/operations"), Some("/api/"));
    }

    #[test]
    fn is_api_version_cases() {
        for v in ["v1", "v2", "v1beta1", "v2alpha", "v1p1beta1", "v10", "v1b"] {
            assert!(is_api_version(v), "{v}");
        }
        for v in [
            "", "v", "vx", "V1", "v1Beta1", "v1-beta", "1", "version1", "v1_", "v١",
        ] {
            assert!(!is_api_version(v), "{v}");
        }
    }

    #[test]
    fn uri_with_prefix_checks_the_prefix() {
        let n = name("operations/x");
        let req: Uri = "https://example.com/anything".parse().unwrap();
        assert_eq!(
            uri_with_prefix(&n, &req, "/v1/", ":cancel").unwrap(),
            "https://example.com/v1/operations/x:cancel"
        );
        assert_eq!(
            uri_with_prefix(&n, &req, "/", "").unwrap(),
            "https://example.com/operations/x"
        );
        for bad in ["", "v1/", "/v1", "//evil.com/", "/v1/?q=", "/v1/#", "/v1?/"] {
            let err = uri_with_prefix(&n, &req, bad, ":cancel").unwrap_err();
            assert!(
                err.to_string().contains("invalid operations path prefix"),
                "{bad}: {err}"
            );
        }
        assert!(uri_with_prefix(&n, &req, "/v1/", "?x").is_err());
        // A prefix with characters a URI path cannot hold fails to build.
        let err = uri_with_prefix(&n, &req, "/v 1/", "").unwrap_err();
        assert!(err.source().is_some(), "{err}");
    }

    #[test]
    fn uri_with_prefix_path_only_request() {
        let n = name("operations/x");
        let req: Uri = "/v1/things:create?x=1".parse().unwrap();
        let uri = uri_with_prefix(&n, &req, "/v1/", ":cancel").unwrap();
        assert_eq!(uri.scheme(), None);
        assert_eq!(uri.authority(), None);
        assert_eq!(uri, "/v1/operations/x:cancel");
    }
}
