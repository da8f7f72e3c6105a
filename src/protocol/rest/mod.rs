//! REST/JSON (AIP-151's HTTP mapping): which calls are inspected, the JSON
//! view of an Operation, routes, requests and answers.
//!
//! # Redirects
//!
//! The layer never follows a redirect itself: a 3xx answer to a GetOperation
//! is a poll failure (`Error::Poll`, then a cancel to the original origin),
//! and a 3xx answer to a CancelOperation is a failed cancel. Poll and cancel
//! requests go through the inner service, though, so an inner service that
//! follows redirects applies its own policy to them. tower-http's
//! `FollowRedirect` with its default policy follows a redirect to another
//! origin and removes `authorization`, `cookie` and `proxy-authorization`
//! on the way — but not `x-goog-api-key` or `x-goog-user-project`, which the
//! layer forwards. Inside this layer, give it a same-origin policy
//! (`policy::Limited::default().and(policy::SameOrigin::new())`), or put it
//! outside the layer, where each hop is a call of its own and an operation is
//! tracked at the origin that returned it (README, "Security").

pub(crate) mod answers;
mod name_uri;
pub(crate) mod recognise;
pub(crate) mod requests;
pub(crate) mod routes;
pub(crate) mod view;

use http::{Method, Request};

use super::settings::RestSettings;
use crate::extensions::Resume;

/// Whether the response to a REST request may start (or resume) an
/// operation: any method but GET, HEAD and OPTIONS; a GET only when it
/// carries [`Resume`]. A user predicate (`inspect_when`) replaces the method
/// rule. Runs on every call: a method comparison, and for a GET one look at
/// the extensions.
#[inline]
pub(crate) fn candidate<B>(settings: &RestSettings, request: &Request<B>) -> bool {
    if let Some(inspect) = &settings.inspect {
        return inspect(request.method(), request.uri())
            || request.extensions().get::<Resume>().is_some();
    }
    match *request.method() {
        Method::HEAD | Method::OPTIONS => false,
        Method::GET => request.extensions().get::<Resume>().is_some(),
        _ => true,
    }
}
