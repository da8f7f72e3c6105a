//! One journal entry: what a reaper needs to cancel an operation a crashed
//! process left behind, and nothing secret.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

pub use super::route::{Route, GRPC_CANCEL_METHOD};
use super::JournalError;

/// The only request headers an entry keeps, whatever it is built from:
/// non-secret context that helps the API route and attribute the cancel.
///
/// Credentials are never stored — not `authorization`,
/// `proxy-authorization`, `x-goog-api-key`, `cookie` or any header marked
/// sensitive ([`HeaderValue::is_sensitive`]) — because the file or table
/// outlives the process and may be read by others; the reaper's own service
/// stack adds credentials when it sends the cancel.
pub const JOURNALED_HEADERS: [&str; 4] = [
    "x-goog-user-project",
    "x-goog-api-client",
    "user-agent",
    "x-goog-request-params",
];

/// The wire protocol an operation was started with, and its cancel is sent with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/JSON (AIP-127 transcoding): `POST {prefix}{name}:cancel`.
    Rest,
    /// gRPC: a unary `google.longrunning.Operations/CancelOperation`.
    Grpc,
}

impl Protocol {
    /// `"rest"` or `"grpc"`: how it is stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rest => "rest",
            Protocol::Grpc => "grpc",
        }
    }

    /// The inverse of [`as_str`](Self::as_str).
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] for any other text.
    pub fn parse(text: &str) -> Result<Self, JournalError> {
        match text {
            "rest" => Ok(Protocol::Rest),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(JournalError::Corrupt(format!("unknown protocol {other:?}"))),
        }
    }
}

/// Identifies an entry across the fleet: `{owner}-{sequence}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId(String);

impl EntryId {
    /// The `seq`-th entry of `owner`.
    pub fn new(owner: &OwnerId, seq: u64) -> Self {
        EntryId(format!("{}-{seq}", owner.as_str()))
    }

    /// Wraps a stored id.
    pub fn from_stored(id: String) -> Self {
        EntryId(id)
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One process's identity in the journal: 32 random hex digits, fresh for
/// every process (a restarted process is a new owner, so the entries of the
/// crashed one become orphans when its lease expires).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnerId(String);

impl OwnerId {
    /// A new random owner id.
    pub fn random() -> Self {
        OwnerId(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ))
    }

    /// An owner id of your choosing (a pod name plus a start time, say). It
    /// must be unique among live processes sharing a journal.
    pub fn new(id: impl Into<String>) -> Self {
        OwnerId(id.into())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tracked operation, as journaled: its name, protocol, cancel route,
/// non-secret headers ([`JOURNALED_HEADERS`] only), owner and creation
/// time; read back from a store, also the reaper that last claimed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    id: EntryId,
    name: String,
    protocol: Protocol,
    route: Route,
    headers: Vec<(String, String)>,
    owner: OwnerId,
    created: SystemTime,
    /// Boxed: read back only, and an entry travels in the writer's queue.
    claimed_by: Option<Box<OwnerId>>,
}

impl Entry {
    /// An entry for operation `name`, cancelled over `route`. Of `headers`
    /// only [`JOURNALED_HEADERS`] with visible-ASCII, non-sensitive values
    /// are kept; everything else (credentials first) is left out.
    pub fn new(
        id: EntryId,
        name: impl Into<String>,
        protocol: Protocol,
        route: Route,
        headers: &HeaderMap,
        owner: OwnerId,
        created: SystemTime,
    ) -> Self {
        let headers = headers
            .iter()
            .filter_map(|(k, v)| keep(k.as_str(), v))
            .collect();
        Entry {
            id,
            name: name.into(),
            protocol,
            route,
            headers,
            owner,
            created,
            claimed_by: None,
        }
    }

    /// Rebuilds an entry read from storage; the header allowlist applies
    /// again, so a hand-edited row cannot make the reaper send a credential
    /// it did not get from its own stack.
    pub fn from_stored(
        id: EntryId,
        name: String,
        protocol: Protocol,
        route: Route,
        headers: Vec<(String, String)>,
        owner: OwnerId,
        created_ms: i64,
    ) -> Self {
        let headers = headers
            .into_iter()
            .filter(|(k, v)| {
                HeaderValue::from_str(v).is_ok_and(|v| keep(&k.to_ascii_lowercase(), &v).is_some())
            })
            .collect();
        let created = UNIX_EPOCH + Duration::from_millis(u64::try_from(created_ms).unwrap_or(0));
        Entry {
            id,
            name,
            protocol,
            route,
            headers,
            owner,
            created,
            claimed_by: None,
        }
    }

    /// The entry's id.
    pub fn id(&self) -> &EntryId {
        &self.id
    }

    /// The operation's name (`projects/p/locations/l/operations/op-1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// REST or gRPC.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Where the cancel goes.
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// The kept headers, lower-case names.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The kept headers as a map.
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in &self.headers {
            if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
                map.append(k, v);
            }
        }
        map
    }

    /// The headers as stored: a JSON array of `[name, value]` pairs.
    pub fn headers_json(&self) -> String {
        serde_json::to_string(&self.headers).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Parses [`headers_json`](Self::headers_json).
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] if it is not such an array.
    pub fn parse_headers(json: &str) -> Result<Vec<(String, String)>, JournalError> {
        serde_json::from_str(json).map_err(|e| JournalError::Corrupt(format!("bad headers: {e}")))
    }

    /// The entry with [`claimed_by`](Self::claimed_by) set (a backend
    /// reading a row back).
    #[must_use]
    pub fn with_claimed_by(mut self, claimer: Option<OwnerId>) -> Self {
        self.claimed_by = claimer.map(Box::new);
        self
    }

    /// The reaper ([`Reaper::claimer`](super::Reaper::claimer)) whose claim
    /// is on the entry, as stored when it was read: `None` if never claimed
    /// or released. A claim may have ended (expired, or its reaper's lease
    /// did) while the id stays.
    pub fn claimed_by(&self) -> Option<&OwnerId> {
        self.claimed_by.as_deref()
    }

    /// The process that tracked the operation.
    pub fn owner(&self) -> &OwnerId {
        &self.owner
    }

    /// When the operation's name became known.
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// [`created`](Self::created) in milliseconds since the Unix epoch.
    pub fn created_ms(&self) -> i64 {
        let ms = self
            .created
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        i64::try_from(ms).unwrap_or(i64::MAX)
    }
}

/// `Some((name, value))` if the header may be stored.
fn keep(name: &str, value: &HeaderValue) -> Option<(String, String)> {
    if value.is_sensitive() || !JOURNALED_HEADERS.contains(&name) {
        return None;
    }
    Some((name.to_owned(), value.to_str().ok()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use http::{Method, Uri};

    use super::*;

    fn entry(headers: &HeaderMap) -> Entry {
        let owner = OwnerId::random();
        let uri: Uri = "https://api.example.com/v1/projects/p/operations/o:cancel"
            .parse()
            .unwrap();
        Entry::new(
            EntryId::new(&owner, 1),
            "projects/p/operations/o",
            Protocol::Rest,
            Route::rest(&Method::POST, &uri).unwrap(),
            headers,
            owner,
            SystemTime::now(),
        )
    }

    #[test]
    fn credentials_are_never_kept() {
        let mut headers = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer ya29.secret"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("x-goog-api-key", "AIzaSecret"),
            ("cookie", "SID=secret"),
            ("x-goog-user-project", "billing-project"),
            ("user-agent", "gcloud/1.0"),
            ("x-custom", "other"),
        ] {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut sensitive = HeaderValue::from_static("tool/1 secret");
        sensitive.set_sensitive(true);
        headers.insert("x-goog-api-client", sensitive);
        let e = entry(&headers);
        assert_eq!(
            e.headers(),
            [
                (
                    "x-goog-user-project".to_owned(),
                    "billing-project".to_owned()
                ),
                ("user-agent".to_owned(), "gcloud/1.0".to_owned()),
            ]
        );
        assert!(!e.headers_json().contains("secret"), "{}", e.headers_json());
    }

    #[test]
    fn stored_rows_are_filtered_again() {
        let e = entry(&HeaderMap::new());
        let back = Entry::from_stored(
            e.id().clone(),
            e.name().to_owned(),
            e.protocol(),
            e.route().clone(),
            vec![
                ("Authorization".into(), "Bearer x".into()),
                ("user-agent".into(), "a".into()),
            ],
            e.owner().clone(),
            e.created_ms(),
        );
        assert_eq!(back.headers(), [("user-agent".to_owned(), "a".to_owned())]);
    }

    #[test]
    fn routes_need_an_origin() {
        let relative: Uri = "/v1/operations/o:cancel".parse().unwrap();
        assert!(Route::rest(&Method::POST, &relative).is_err());
        let grpc = Route::grpc("http", "127.0.0.1:50051");
        assert_eq!(
            grpc.uri().unwrap().to_string(),
            "http://127.0.0.1:50051/google.longrunning.Operations/CancelOperation"
        );
    }
}
