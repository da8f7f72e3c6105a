//! Where one gRPC operation's `google.longrunning.Operations` calls go: the
//! original call's scheme and authority (a tonic `Channel` leaves both
//! empty and adds its own origin), never anything from the answer.

use std::time::Duration;

use http::uri::{Authority, Parts, PathAndQuery, Scheme, Uri};

/// The `grpc-timeout` of a GetOperation: 30 s.
pub(crate) const GET_TIMEOUT: Duration = Duration::from_secs(30);

/// Where one operation's calls go, and their per-attempt timeouts.
#[derive(Clone, Debug)]
pub(crate) struct Route {
    /// The original call's scheme (absent in a path-only URI).
    scheme: Option<Scheme>,
    /// The original call's authority (absent in a path-only URI).
    authority: Option<Authority>,
    /// `grpc-timeout` of a CancelOperation attempt: the cancel policy's
    /// attempt timeout.
    pub(crate) cancel_timeout: Duration,
}

impl Route {
    /// The route of an operation started by a call to `uri`; if `uri` has
    /// no authority (a call through a tonic `Channel`), on `channel`'s
    /// scheme and authority when the layer was told them.
    pub(crate) fn new(uri: &Uri, channel: Option<&Uri>, cancel_timeout: Duration) -> Self {
        let origin = match (uri.authority(), channel) {
            (None, Some(channel)) if channel.authority().is_some() => channel,
            _ => uri,
        };
        Route {
            scheme: origin.scheme().cloned(),
            authority: origin.authority().cloned(),
            cancel_timeout,
        }
    }

    /// Whether the route names its origin (scheme and authority).
    #[cfg(feature = "journal")]
    pub(crate) fn has_origin(&self) -> bool {
        self.scheme.is_some() && self.authority.is_some()
    }

    /// The authority the calls go to (`""` when the inner service adds its
    /// own, as a tonic `Channel` does).
    pub(crate) fn authority(&self) -> &str {
        self.authority.as_ref().map_or("", Authority::as_str)
    }

    /// `path` on the original scheme and authority.
    pub(crate) fn uri(&self, path: &'static str) -> Uri {
        let mut parts = Parts::default();
        parts.scheme = self.scheme.clone();
        parts.authority = self.authority.clone();
        parts.path_and_query = Some(PathAndQuery::from_static(path));
        // Cannot fail: scheme and authority come from a parsed URI, and
        // they are either both present or both absent there too.
        Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_origin_and_replaces_the_path() {
        let uri: Uri =
            "https://deploy.example/google.cloud.deploy.v1.CloudDeploy/CreateRelease?x=1"
                .parse()
                .unwrap();
        let route = Route::new(&uri, None, Duration::from_secs(3));
        assert_eq!(route.authority(), "deploy.example");
        assert_eq!(
            route.uri("/google.longrunning.Operations/GetOperation"),
            "https://deploy.example/google.longrunning.Operations/GetOperation"
        );
        let path_only = Route::new(&Uri::from_static("/a.B/C"), None, Duration::from_secs(3));
        assert_eq!(path_only.authority(), "");
        assert_eq!(
            path_only.uri("/google.longrunning.Operations/CancelOperation"),
            "/google.longrunning.Operations/CancelOperation"
        );
        let channel = Uri::from_static("http://127.0.0.1:50051");
        let told = Route::new(
            &Uri::from_static("/a.B/C"),
            Some(&channel),
            Duration::from_secs(3),
        );
        assert_eq!(
            told.uri("/google.longrunning.Operations/CancelOperation"),
            "http://127.0.0.1:50051/google.longrunning.Operations/CancelOperation"
        );
        // The call's own origin wins over the configured one.
        let own = Route::new(&uri, Some(&channel), Duration::from_secs(3));
        assert_eq!(own.authority(), "deploy.example");
    }
}
