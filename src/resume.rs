//! Resuming an operation by name: a `GetOperation` request that, sent through
//! the layer, waits on (and protects) an operation started elsewhere.

use http::{Method, Request, Uri};

use crate::operation::{OperationName, RouteError};
use crate::request_body::RequestBody;

impl OperationName {
    /// A `GetOperation` request for this operation (AIP-151:
    /// `GET {base}{name}`), e.g. base `https://run.googleapis.com/v2/` and
    /// name `projects/p/locations/l/operations/o` give
    /// `GET https://run.googleapis.com/v2/projects/p/locations/l/operations/o`.
    ///
    /// Sent through [`CancelOnDropLayer`](crate::CancelOnDropLayer), it is
    /// inspected like a call that starts an operation (its path has an
    /// `operations` segment, or the name's first segment follows the base):
    /// if the operation is not done the layer polls it, resolves with the
    /// `done` response, and cancels it if the caller gives up — exactly as
    /// for an operation this caller started. Use it to resume waiting after
    /// a restart, from a name saved earlier (for example one returned with
    /// [`ReturnImmediately`](crate::ReturnImmediately)).
    ///
    /// `base` gives the scheme, authority and path prefix; a missing
    /// trailing `/` is added, and its query is dropped. The name is
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
        let path = base.path();
        let prefix = if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        let uri = self.uri_with_prefix(base, &prefix, "")?;
        let mut request = Request::new(B::empty());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri;
        Ok(request)
    }
}
