//! The REST/JSON routes of an [`OperationName`], for callers that build their
//! own requests: AIP-151 GetOperation and CancelOperation URIs, the AIP-127
//! encoded name, and a GetOperation request that resumes waiting through the
//! layer.

use http::{Request, Uri};
use percent_encoding::utf8_percent_encode;

use super::{requests, routes};
use crate::operation::{OperationName, RouteError};
use crate::request_body::RequestBody;

impl OperationName {
    ///
    /// The URI has the scheme and authority of `request_uri` (the request that
    /// started or resumed the operation), or neither if `request_uri` is a
    /// path-only URI; the prefix is derived from its path (below); the name is
    /// percent-encoded as an AIP-127 multi-segment path variable (every byte
    /// except `[-_.~/0-9a-zA-Z]`). There is no query string and no fragment.
    ///
    /// The prefix is the request path up to (not including) the first whole
    /// segment equal to the name's first segment, provided at least one
    /// segment precedes it; otherwise `/{version}/` if the request path's first
    /// segment is an API version (`^v\d+[a-z0-9]*$`: `v1`, `v1beta1`,
    /// `v2alpha`, `v1p1beta1`):
    ///
    /// | request path | name | GET |
    /// |---|---|---|
    /// | `/v1/projects/p/locations/l/jobs` | `projects/p/locations/l/operations/x` | `/v1/projects/p/locations/l/operations/x` |
    /// | `/v1/admin/projects/p/locations/l/subscriptions/s:seek` | `projects/p/…/operations/x` | `/v1/admin/projects/p/…/operations/x` |
    /// | `/v1/projects/p/things:create` | `operations/x` | `/v1/operations/x` |
    /// | `/projects/p/things:create` | `projects/p/operations/x` | error: no prefix |
    ///
    /// # Errors
    ///
    /// [`RouteError`] if no prefix can be derived from the request path, or if
    /// the resulting URI is invalid (for example an authority without a scheme).
    pub fn get_uri(&self, request_uri: &Uri) -> Result<Uri, RouteError> {
        routes::derived(self, request_uri, "")
    }

    /// The AIP-151 CancelOperation route for this operation:
    /// `POST {prefix}{name}:cancel`.
    ///
    /// Built exactly like [`get_uri`](OperationName::get_uri), with the
    /// `:cancel` custom method appended. (AIP-151: the request body must be
    /// empty; sending it is the caller's job.)
    ///
    /// # Errors
    ///
    /// As for [`get_uri`](OperationName::get_uri).
    pub fn cancel_uri(&self, request_uri: &Uri) -> Result<Uri, RouteError> {
        routes::derived(self, request_uri, ":cancel")
    }

    /// The name percent-encoded for a URL path per AIP-127 (every byte but
    /// `[-_.~/0-9a-zA-Z]` escaped; `/` kept), for route functions that build
    /// their own URLs.
    ///
    /// ```
    /// let name = tower_lro::OperationName::parse("projects/p/operations/a+b@c").unwrap();
    /// assert_eq!(name.encoded(), "projects/p/operations/a%2Bb%40c");
    /// ```
    pub fn encoded(&self) -> String {
        utf8_percent_encode(self.as_str(), routes::PATH_VARIABLE).to_string()
    }

    /// A `GetOperation` request for this operation (AIP-151:
    /// `GET {base}{name}`), e.g. base `https://run.googleapis.com/v2/` and
    /// name `projects/p/locations/l/operations/o` give
    /// `GET https://run.googleapis.com/v2/projects/p/locations/l/operations/o`.
    ///
    /// It carries the [`Resume`](crate::Resume) extension, so sent through
    /// [`CancelOnDropLayer`](crate::CancelOnDropLayer) it is inspected like a
    /// call that starts an operation:
    /// if the operation is not done the layer polls it, resolves with the
    /// `done` response, and cancels it if the caller gives up — exactly as
    /// for an operation this caller started. Use it to resume waiting after
    /// a restart, from a name saved earlier (for example one returned with
    /// [`ReturnImmediately`](crate::ReturnImmediately)).
    ///
    /// `base` gives the scheme, authority and path prefix; a missing
    /// leading or trailing `/` is added, and its query is dropped. The name is
    /// percent-encoded per AIP-127. Add credentials (`authorization`) to the
    /// returned request's headers.
    ///
    /// # Errors
    /// [`RouteError`] if `base` has an authority but no scheme, or the URI
    /// cannot be built.
    ///
    /// ```
    /// use tower_lro::OperationName;
    /// let name = OperationName::parse("projects/p/locations/l/operations/o").unwrap();
    /// let request = name
    ///     .get_request::<http_body_util::Full<bytes::Bytes>>(&"https://run.googleapis.com/v2".parse().unwrap())
    ///     .unwrap();
    /// assert_eq!(request.method(), http::Method::GET);
    /// assert_eq!(
    ///     request.uri(),
    ///     "https://run.googleapis.com/v2/projects/p/locations/l/operations/o"
    /// );
    /// ```
    pub fn get_request<B: RequestBody>(&self, base: &Uri) -> Result<Request<B>, RouteError> {
        let prefix = routes::normalise_prefix(base.path());
        let uri = routes::uri_with_prefix(self, base, &prefix, "")?;
        let mut request = requests::get_operation(uri, http::HeaderMap::new());
        request.extensions_mut().insert(crate::Resume);
        Ok(request)
    }
}
