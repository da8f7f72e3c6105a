//! [`Forwarded`]: the original request's allowlisted headers, copied once at
//! `call` and carried by the tracked call and then its cancel — moved, never
//! copied again — until a poll or cancel request is built from them.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The headers a call's GetOperation, WaitOperation and CancelOperation
/// requests carry from the original request (credentials, quota project,
/// client identification), in their original order. A slice rather than a
/// `HeaderMap`: a map keeps room for more, and a queued cancel should cost
/// only what it holds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Forwarded(Box<[(HeaderName, HeaderValue)]>);

impl Forwarded {
    /// The headers of `headers` named in `allow`, every value of each.
    pub(crate) fn from_request(headers: &HeaderMap, allow: &[HeaderName]) -> Self {
        let kept = allow.iter().flat_map(|name| {
            headers
                .get_all(name)
                .iter()
                .map(move |value| (name.clone(), value.clone()))
        });
        Forwarded(kept.collect())
    }

    /// All of `headers` (read back from a journal entry, already allowlisted).
    #[cfg(feature = "journal")]
    pub(crate) fn from_map(headers: &HeaderMap) -> Self {
        let kept = headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()));
        Forwarded(kept.collect())
    }

    /// The headers as a map, with room for `extra` more.
    pub(crate) fn to_map(&self, extra: usize) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.0.len() + extra);
        for (name, value) in self.0.iter() {
            headers.append(name.clone(), value.clone());
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_allowlisted_headers_with_every_value() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.append("x-goog-api-client", HeaderValue::from_static("a/1"));
        headers.append("x-goog-api-client", HeaderValue::from_static("b/2"));
        headers.insert("cookie", HeaderValue::from_static("secret"));
        let allow = [
            HeaderName::from_static("x-goog-api-client"),
            HeaderName::from_static("authorization"),
            HeaderName::from_static("user-agent"),
        ];
        let map = Forwarded::from_request(&headers, &allow).to_map(1);
        assert_eq!(map.len(), 3);
        assert_eq!(map["authorization"], "Bearer t");
        let clients: Vec<_> = map.get_all("x-goog-api-client").iter().collect();
        assert_eq!(clients, ["a/1", "b/2"]);
        assert!(map.get("cookie").is_none());
    }
}
