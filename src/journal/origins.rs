//! Which service a reaper sends an entry's cancel through: one routing by
//! the request's URI, or one per origin (a tonic `Channel` sends everything
//! to its own endpoint, whatever the URI says).

use std::sync::Arc;

use super::Entry;

/// Which service an entry's cancel goes through.
#[derive(Clone)]
pub(super) enum Services<S> {
    /// One service routing by the request's URI.
    Any(S),
    /// One per origin (`scheme://authority`, lowercase).
    PerOrigin(Arc<[(String, S)]>),
}

impl<S: Clone> Services<S> {
    pub(super) fn for_entry(&self, entry: &Entry) -> Option<S> {
        match self {
            Services::Any(service) => Some(service.clone()),
            Services::PerOrigin(services) => {
                let route = entry.route();
                let origin = origin_key(route.scheme(), route.authority());
                services
                    .iter()
                    .find(|(o, _)| *o == origin)
                    .map(|(_, s)| s.clone())
            }
        }
    }
}

/// `scheme://authority`, lowercase (both are case-insensitive).
pub(super) fn origin_key(scheme: &str, authority: &str) -> String {
    format!("{scheme}://{authority}").to_ascii_lowercase()
}
