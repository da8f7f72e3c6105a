//! AIP-151 operations: the validated [`OperationName`], the GetOperation and
//! CancelOperation routes built from it, and the decoded [`Operation`].
//!
//! Everything here treats a response body as untrusted input:
//!
//! * a name must pass [`OperationName::parse`] (DESIGN §5) before any request
//!   is built from it;
//! * the routes take their scheme and authority only from the original
//!   request, never from the name (DESIGN §4);
//! * the name is percent-encoded on the wire as an AIP-127 / `google.api.http`
//!   multi-segment variable, so whatever survives validation is inert.
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
//! layer forwards (DESIGN §4). Inside this layer, give it a same-origin
//! policy (`policy::Limited::default().and(policy::SameOrigin::new())`), or
//! put it outside the layer, where each hop is a call of its own and an
//! operation is tracked at the origin that returned it (README, "Security").

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::uri::{Parts, PathAndQuery, Uri};
use http::HeaderValue;
use percent_encoding::{
    percent_decode, percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC,
};
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Longest accepted name, in bytes.
const MAX_NAME_LEN: usize = 4096;

/// How many characters of a rejected name its error shows.
const SHOWN_CHARS: usize = 32;

/// AIP-127 / `google.api.http` multi-segment path variables: every byte except
/// `[-_.~/0-9a-zA-Z]` is percent-encoded (non-ASCII bytes always are).
pub(crate) const PATH_VARIABLE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// The `x-goog-request-params` value: like [`PATH_VARIABLE`], but `/` is
/// encoded too (it is a form-encoded parameter, not a path).
const REQUEST_PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

// ===== OperationName =====

/// A validated AIP-151 operation name, such as
/// `projects/my-project/locations/us-central1/operations/operation-123`.
///
/// Names come from response bodies, so they are untrusted input: a value of
/// this type has passed every rule of [`OperationName::parse`]. It is cheap to
/// clone (an `Arc<str>`).
///
/// [`get_uri`](OperationName::get_uri) and
/// [`cancel_uri`](OperationName::cancel_uri) build the AIP-151 GetOperation and
/// CancelOperation routes for it.
///
/// `Display` shows the name itself.
///
/// ```
/// use tower_lro::OperationName;
///
/// let name = OperationName::parse("projects/p/locations/global/operations/o")?;
/// // The request that started the operation.
/// let request: http::Uri =
///     "https://clouddeploy.googleapis.com/v1/projects/p/locations/global/deliveryPipelines".parse()?;
/// assert_eq!(
///     name.cancel_uri(&request)?,
///     "https://clouddeploy.googleapis.com/v1/projects/p/locations/global/operations/o:cancel",
/// );
/// assert!(OperationName::parse("https://evil.example/operations/o").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperationName(Arc<str>);

impl OperationName {
    /// Validates an operation name taken from an AIP-151 `Operation.name`.
    ///
    /// A name is a relative resource name (AIP-122): segments separated by
    /// single `/`s. It is rejected, with an [`InvalidOperationName`] whose
    /// [`reason`](InvalidOperationName::reason) names the rule, when it:
    ///
    /// * is empty, or longer than 4096 bytes;
    /// * contains a control character or Unicode whitespace, `?`, `#` or `\`;
    /// * starts with `/`;
    /// * has a first segment containing `:` (a URI scheme such as `https:` or
    ///   `mailto:`);
    /// * has an empty segment (`a//b`, or a trailing `/`) or a `.` or `..`
    ///   segment;
    /// * has a `%` escape that decodes to a control character, whitespace,
    ///   `?`, `#`, `/` or `\`, or that makes a segment decode to `.` or `..`
    ///   (`%2e%2e`). Escapes are decoded repeatedly, so double-encoded forms
    ///   (`%252F`) are rejected too.
    ///
    /// Anything else (`:` in later segments, `@`, `+`, `%` that is not an
    /// escape, non-ASCII text …) is accepted: it is percent-encoded on the
    /// wire, where it is inert.
    ///
    /// # Errors
    ///
    /// [`InvalidOperationName`] for the first rule (in the order above) that
    /// the name breaks.
    pub fn parse(name: &str) -> Result<OperationName, InvalidOperationName> {
        match validate(name) {
            Ok(()) => Ok(OperationName(Arc::from(name))),
            Err(reason) => Err(InvalidOperationName::new(reason, name)),
        }
    }

    /// The name, as parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The AIP-151 GetOperation route for this operation: `GET {prefix}{name}`.
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
        self.route(request_uri, "")
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
        self.route(request_uri, ":cancel")
    }

    fn route(&self, request_uri: &Uri, suffix: &str) -> Result<Uri, RouteError> {
        let path = request_uri.path();
        match self.path_prefix(path) {
            Some(prefix) => self.uri_with_prefix(request_uri, prefix, suffix),
            None => Err(RouteError {
                kind: RouteErrorKind::NoPrefix { path: path.into() },
            }),
        }
    }

    /// The name's first segment (`projects`, `operations`, …).
    fn first_segment(&self) -> &str {
        match self.0.split_once('/') {
            Some((first, _)) => first,
            None => &self.0,
        }
    }

    /// The path prefix for this name's routes (DESIGN §4), as a slice of
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
    pub(crate) fn path_prefix<'a>(&self, request_path: &'a str) -> Option<&'a str> {
        let rest = request_path.strip_prefix('/')?;
        let first = self.first_segment();
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
        &self,
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
            return Err(RouteError {
                kind: RouteErrorKind::InvalidPrefix {
                    prefix: prefix.into(),
                },
            });
        }
        let mut path = String::with_capacity(prefix.len() + self.0.len() + suffix.len() + 8);
        path.push_str(prefix);
        path.extend(utf8_percent_encode(&self.0, PATH_VARIABLE));
        path.push_str(suffix);
        let path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(path))
            .map_err(|e| RouteError::invalid_uri(e.into()))?;
        let mut parts = Parts::default();
        parts.scheme = request_uri.scheme().cloned();
        parts.authority = request_uri.authority().cloned();
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts).map_err(|e| RouteError::invalid_uri(e.into()))
    }

    /// The `x-goog-request-params` header value for requests about this
    /// operation: `name=` followed by the name with every byte except
    /// `[-_.~0-9a-zA-Z]` percent-encoded (so `/` is `%2F`).
    pub(crate) fn request_params(&self) -> HeaderValue {
        let mut value = String::with_capacity(5 + self.0.len() + 16);
        value.push_str("name=");
        value.extend(utf8_percent_encode(&self.0, REQUEST_PARAM));
        // The value is visible ASCII only, so this cannot fail; the fallback
        // exists only to keep library code free of panics.
        HeaderValue::from_maybe_shared(Bytes::from(value))
            .unwrap_or_else(|_| HeaderValue::from_static("name="))
    }
}

impl fmt::Display for OperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// `^v\d+[a-z0-9]*$`
fn is_api_version(segment: &str) -> bool {
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

/// The rules of [`OperationName::parse`]. Names that are plainly valid are
/// accepted after one pass over their bytes; anything else is decided by
/// [`validate_exact`], which checks the rules in order and so names the same
/// reason it always did.
fn validate(name: &str) -> Result<(), Reason> {
    if plainly_valid(name.as_bytes()) {
        return Ok(());
    }
    validate_exact(name)
}

/// One pass over the bytes that accepts the common name: 1 to 4096 bytes of
/// printable ASCII other than `?`, `#`, `\` and `%`, no empty, `.` or `..`
/// segment (so no leading `/`), no `:` in the first segment. `false` means
/// "not plainly valid": [`validate_exact`] decides. On the response path this
/// runs for every not-done Operation; the char-and-`split` rules cost ~47
/// instructions a byte (issue 5: 4,700 instructions on a 100-byte name,
/// more than parsing a 300-byte body), this loop a few.
fn plainly_valid(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return false;
    }
    let is_dot_or_empty = |segment: &[u8]| matches!(segment, b"" | b"." | b"..");
    // In the first segment `:` stops the scan (a scheme?); later it is plain.
    let mut allowed = PLAIN;
    let mut rest = name;
    loop {
        let end = rest
            .iter()
            .position(|&b| BYTE_CLASS[usize::from(b)] > allowed)
            .unwrap_or(rest.len());
        let (segment, tail) = rest.split_at(end);
        match tail.first().map(|&b| BYTE_CLASS[usize::from(b)]) {
            None => return !is_dot_or_empty(segment),
            Some(SLASH) if !is_dot_or_empty(segment) => {
                allowed = COLON;
                rest = &tail[1..];
            }
            Some(_) => return false,
        }
    }
}

// Classes of bytes for `plainly_valid`, ordered: a scan stops at a byte
// whose class is above what it allows.
const PLAIN: u8 = 0;
const COLON: u8 = 1;
const SLASH: u8 = 2;
/// Not plainly valid: controls, space, DEL, non-ASCII, `?`, `#`, `\`, `%`.
const OTHER: u8 = 3;
static BYTE_CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        table[b] = PLAIN;
        b += 1;
    }
    table[b'/' as usize] = SLASH;
    table[b':' as usize] = COLON;
    table[b'?' as usize] = OTHER;
    table[b'#' as usize] = OTHER;
    table[b'\\' as usize] = OTHER;
    table[b'%' as usize] = OTHER;
    table
};

/// The rules of [`OperationName::parse`], in the order they are checked.
fn validate_exact(name: &str) -> Result<(), Reason> {
    if name.is_empty() {
        return Err(Reason::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Reason::TooLong);
    }
    for c in name.chars() {
        match c {
            '?' => return Err(Reason::QuestionMark),
            '#' => return Err(Reason::Hash),
            '\\' => return Err(Reason::Backslash),
            c if c.is_control() || c.is_whitespace() => return Err(Reason::ControlOrWhitespace),
            _ => {}
        }
    }
    if name.starts_with('/') {
        return Err(Reason::LeadingSlash);
    }
    let first = name.split_once('/').map_or(name, |(first, _)| first);
    if first.contains(':') {
        return Err(Reason::Scheme);
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err(Reason::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(Reason::DotSegment);
        }
    }
    for segment in name.split('/') {
        if segment.contains('%') {
            check_escapes(segment)?;
        }
    }
    Ok(())
}

/// Decodes `%` escapes in `segment` until nothing changes (so `%252F` is seen
/// as `/`), rejecting forbidden characters and `.`/`..` segments produced on
/// the way. Every round that changes something shrinks the bytes, so this
/// ends. The raw characters were checked already, so anything found here came
/// from an escape.
fn check_escapes(segment: &str) -> Result<(), Reason> {
    let mut current = segment.as_bytes().to_vec();
    loop {
        let decoded: Vec<u8> = percent_decode(&current).collect();
        if decoded == current {
            return Ok(());
        }
        let forbidden = String::from_utf8_lossy(&decoded)
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '/' | '\\'));
        if forbidden {
            return Err(Reason::EscapedForbidden);
        }
        if decoded == b"." || decoded == b".." {
            return Err(Reason::EscapedDotSegment);
        }
        current = decoded;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Empty,
    TooLong,
    ControlOrWhitespace,
    QuestionMark,
    Hash,
    Backslash,
    LeadingSlash,
    Scheme,
    EmptySegment,
    DotSegment,
    EscapedForbidden,
    EscapedDotSegment,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooLong => "longer than 4096 bytes",
            Reason::ControlOrWhitespace => "contains a control character or whitespace",
            Reason::QuestionMark => "contains '?'",
            Reason::Hash => "contains '#'",
            Reason::Backslash => "contains '\\'",
            Reason::LeadingSlash => "starts with '/'",
            Reason::Scheme => "first segment contains ':' (a URI scheme)",
            Reason::EmptySegment => "has an empty segment",
            Reason::DotSegment => "has a '.' or '..' segment",
            Reason::EscapedForbidden => {
                "has a %-escape that decodes to a control character, whitespace, '?', '#', '/' or '\\'"
            }
            Reason::EscapedDotSegment => "has a %-escape that makes a '.' or '..' segment",
        }
    }
}

/// The error returned by [`OperationName::parse`]: the name is not an AIP-122
/// relative resource name that is safe to put in a URL path (the rules are
/// listed on [`OperationName::parse`]).
///
/// [`reason`](InvalidOperationName::reason) is the short text of the rule
/// that failed. `Display` names the rule and shows at most the first 32
/// characters of the name, escaped (`escape_debug`), never the whole input.
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidOperationName {
    reason: Reason,
    /// At most [`SHOWN_CHARS`] characters of the input, unescaped.
    shown: Box<str>,
    truncated: bool,
}

impl InvalidOperationName {
    fn new(reason: Reason, name: &str) -> InvalidOperationName {
        let mut chars = name.chars();
        let shown: String = chars.by_ref().take(SHOWN_CHARS).collect();
        InvalidOperationName {
            reason,
            shown: shown.into(),
            truncated: chars.next().is_some(),
        }
    }

    /// The short text of the rule the name broke, such as `"has an empty
    /// segment"` or `"contains '?'"`.
    pub fn reason(&self) -> &'static str {
        self.reason.as_str()
    }
}

impl fmt::Display for InvalidOperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid operation name \"{}{}\": {}",
            self.shown.escape_debug(),
            if self.truncated { "…" } else { "" },
            self.reason.as_str()
        )
    }
}

impl StdError for InvalidOperationName {}

// ===== RouteError =====

/// The error returned by [`OperationName::get_uri`] and
/// [`OperationName::cancel_uri`]: no AIP-151 route could be built.
///
/// Either no path prefix could be derived from the request path (see
/// [`OperationName::get_uri`] for the rule; the message shows the path, and
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
}

impl RouteError {
    fn invalid_uri(error: http::Error) -> RouteError {
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

// ===== Operation =====

/// The fields of an AIP-151 `google.longrunning.Operation` the layer uses,
/// decoded from its JSON form.
///
/// Decoding follows the proto3 JSON mapping: absent fields and `null` take the
/// default value (`""`, `false`, `None`), unknown fields are ignored,
/// duplicate fields are an error. `metadata` and `response` (`Any` messages)
/// stay raw JSON text.
///
/// `PartialEq` compares `metadata` and `response` as JSON text, byte for byte.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Operation {
    /// The operation's name (`projects/p/locations/l/operations/o`), as sent;
    /// not validated (see [`OperationName::parse`]).
    pub name: String,
    /// Whether the operation is done: `error` or `response` is then set.
    pub done: bool,
    /// The operation's error, if it failed or was cancelled.
    pub error: Option<Status>,
    /// Service-specific metadata (a JSON `Any`), unparsed.
    pub metadata: Option<Box<RawValue>>,
    /// The operation's result (a JSON `Any`), unparsed.
    pub response: Option<Box<RawValue>>,
}

impl Operation {
    /// Decodes an `Operation` from its JSON form.
    ///
    /// # Errors
    ///
    /// A [`serde_json::Error`] if the bytes are not a single JSON object, a
    /// known field has the wrong type (`"done": "yes"`), or a known field
    /// appears twice.
    ///
    /// ```
    /// use tower_lro::{Operation, Status};
    ///
    /// let op = Operation::from_json(
    ///     br#"{"name": "operations/o", "done": true, "error": {"code": 1, "message": "Cancelled."}}"#,
    /// )?;
    /// assert_eq!(op.name, "operations/o");
    /// assert_eq!(op.error.as_ref().map(|e| e.code), Some(Status::CANCELLED));
    /// assert!(op.is_cancelled());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Operation, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let operation = de.deserialize_map(OperationVisitor)?;
        de.end()?;
        Ok(operation)
    }

    /// Whether the operation ended by being cancelled: `done` with
    /// `error.code == 1` ([`Status::CANCELLED`], AIP-151).
    pub fn is_cancelled(&self) -> bool {
        self.done
            && self
                .error
                .as_ref()
                .is_some_and(|e| e.code == Status::CANCELLED)
    }
}

impl PartialEq for Operation {
    fn eq(&self, other: &Operation) -> bool {
        fn raw(value: &Option<Box<RawValue>>) -> Option<&str> {
            value.as_deref().map(RawValue::get)
        }
        self.name == other.name
            && self.done == other.done
            && self.error == other.error
            && raw(&self.metadata) == raw(&other.metadata)
            && raw(&self.response) == raw(&other.response)
    }
}

/// A `google.rpc.Status`: the `error` of a failed or cancelled operation.
///
/// `code` is a `google.rpc.Code` (the associated constants name the ones the
/// layer acts on); `details` is ignored. Absent or `null` fields default to
/// `0` and `""`; `code` is accepted as a JSON number or, as the proto3 JSON
/// mapping allows, a string of digits.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The `google.rpc.Code` value.
    pub code: i32,
    /// The developer-facing error message.
    pub message: String,
}

impl Status {
    /// `google.rpc.Code.CANCELLED`: the operation was cancelled.
    pub const CANCELLED: i32 = 1;
    /// `google.rpc.Code.NOT_FOUND`.
    pub const NOT_FOUND: i32 = 5;
    /// `google.rpc.Code.UNIMPLEMENTED`.
    pub const UNIMPLEMENTED: i32 = 12;
    /// `google.rpc.Code.UNAVAILABLE`.
    pub const UNAVAILABLE: i32 = 14;
}

// ===== the borrowed view =====

/// What the layer needs to recognise an operation in a response body
/// (DESIGN §3), borrowed from the body.
#[derive(Debug)]
pub(crate) struct OperationView<'a> {
    /// `name`, borrowed unless it has JSON escapes; `None` if absent.
    pub(crate) name: Option<Cow<'a, str>>,
    /// `done`; absent or `null` is `false`.
    pub(crate) done: bool,
    /// Whether the object has a key that is not a `google.longrunning.Operation`
    /// field (`name`, `metadata`, `done`, `error`, `response`): then it is a
    /// resource (AIP-122 resources have a `name` too), not an Operation.
    pub(crate) other_fields: bool,
}

/// Reads the `name` and `done` of a JSON `Operation` without allocating
/// (unless the name has JSON escapes). Every other field is skipped.
///
/// Errors if the bytes are not a single JSON object, `name` is not a string,
/// `done` is neither a bool nor `null`, or either appears twice. Skipped fields
/// are only checked for well-formedness (`serde_json` skips them iteratively, so
/// deep nesting costs no stack).
pub(crate) fn peek(bytes: &[u8]) -> Result<OperationView<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let view = de.deserialize_map(ViewVisitor)?;
    de.end()?;
    Ok(view)
}

// ===== recognition =====

/// An operation the layer should wait on, read from a response body: not
/// done, with a valid name and routes to it.
#[derive(Debug)]
pub(crate) struct Recognised {
    pub(crate) name: OperationName,
    pub(crate) get_uri: Uri,
    pub(crate) cancel_uri: Uri,
    pub(crate) wait_uri: Option<Uri>,
}

/// Why a JSON response body is not an operation the layer waits on.
#[derive(Debug)]
pub(crate) enum NotTracked {
    /// Not a single JSON object, or `name` is not a string, or `done` is not
    /// a bool or `null`, or either appears twice (invalid UTF-8 included).
    Unreadable(serde_json::Error),
    /// No `name` key: not an Operation.
    NoName,
    /// Keys that are not `google.longrunning.Operation` fields: an AIP-122
    /// resource with a `name`, not an Operation.
    Resource,
    /// `done: true`: nothing to wait for.
    Done,
    /// The name breaks a rule of [`OperationName::parse`].
    InvalidName(InvalidOperationName),
    /// No path prefix from the request path, and none configured.
    NoPrefix(OperationName),
    /// The routes could not be built.
    NoRoute(OperationName, RouteError),
}

impl NotTracked {
    /// Whether the layer warns about it (DESIGN §3: a response that is not a
    /// readable, routable Operation); `false` for the ordinary cases: no
    /// `name`, a resource, an operation already done.
    pub(crate) fn is_warning(&self) -> bool {
        !matches!(
            self,
            NotTracked::NoName | NotTracked::Resource | NotTracked::Done
        )
    }
}

/// How much of a `serde_json` error message [`short_json_error`] shows: its
/// messages quote the offending value (`invalid type: string "…"`), which
/// comes from an untrusted body and may be as long as the body.
const SHOWN_JSON_ERROR_CHARS: usize = 96;

/// A `serde_json` error about an untrusted body, safe to log or to put in
/// an error message: its message (which may quote the offending value, as long
/// as the body) cut to 96 characters and `escape_debug`ged, then its position.
pub(crate) fn short_json_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    // `serde_json` appends " at line L column C"; shown apart.
    let message = match message.rfind(" at line ") {
        Some(at) if e.line() > 0 => &message[..at],
        _ => &message[..],
    };
    let mut chars = message.chars();
    let shown: String = chars.by_ref().take(SHOWN_JSON_ERROR_CHARS).collect();
    format!(
        "{}{} (line {}, column {})",
        shown.escape_debug(),
        if chars.next().is_some() { "…" } else { "" },
        e.line(),
        e.column()
    )
}

/// Never shows more than a short, escaped part of the body: a JSON error as
/// [`short_json_error`], a rejected name as [`InvalidOperationName`] (32
/// characters, escaped); a validated name in full.
impl fmt::Display for NotTracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotTracked::Unreadable(e) => write!(
                f,
                "JSON response is not a readable Operation: {}",
                short_json_error(e)
            ),
            NotTracked::NoName => f.write_str("JSON response has no \"name\": not an Operation"),
            NotTracked::Resource => f.write_str(
                "JSON response has fields an Operation does not have: a resource, not an Operation",
            ),
            NotTracked::Done => f.write_str("operation already done"),
            NotTracked::InvalidName(e) => write!(f, "operation name rejected: {e}"),
            NotTracked::NoPrefix(name) => write!(
                f,
                "no path prefix for GetOperation/CancelOperation of {name}; set \
                 CancelOnDropLayer::path_prefix"
            ),
            NotTracked::NoRoute(name, e) => write!(f, "no route to the operation {name}: {e}"),
        }
    }
}

/// DESIGN §3 and §5 on a (complete, size-checked) JSON response body: the
/// name of the not-done Operation it is, or why the layer should not track
/// it. The part of recognition that reads untrusted bytes; routes come after.
///
/// Never panics, for any input; the body is read once, by [`peek`], which
/// allocates only for a name with JSON escapes.
pub(crate) fn read_operation(body: &[u8]) -> Result<OperationName, NotTracked> {
    let view = peek(body).map_err(NotTracked::Unreadable)?;
    let name = view.name.ok_or(NotTracked::NoName)?;
    if view.other_fields {
        return Err(NotTracked::Resource);
    }
    if view.done {
        return Err(NotTracked::Done);
    }
    OperationName::parse(&name).map_err(NotTracked::InvalidName)
}

/// [`read_operation`], then [`default_routes`]: what the layer does with a
/// response body when no route function claims the operation.
pub(crate) fn recognise(
    body: &[u8],
    request_uri: &Uri,
    path_prefix: Option<&str>,
) -> Result<Recognised, NotTracked> {
    default_routes(read_operation(body)?, request_uri, path_prefix, false)
}

/// The DESIGN §4 routes of a validated name: GetOperation, CancelOperation
/// and (if `wait`) WaitOperation under `path_prefix` (the layer's override)
/// or the prefix derived from the request path.
pub(crate) fn default_routes(
    name: OperationName,
    request_uri: &Uri,
    path_prefix: Option<&str>,
    wait: bool,
) -> Result<Recognised, NotTracked> {
    let prefix = match path_prefix {
        Some(prefix) => prefix,
        None => match name.path_prefix(request_uri.path()) {
            Some(prefix) => prefix,
            None => return Err(NotTracked::NoPrefix(name)),
        },
    };
    let routes = name
        .uri_with_prefix(request_uri, prefix, "")
        .and_then(|get| {
            let cancel = name.uri_with_prefix(request_uri, prefix, ":cancel")?;
            let wait = match wait {
                true => Some(name.uri_with_prefix(request_uri, prefix, ":wait")?),
                false => None,
            };
            Ok((get, cancel, wait))
        });
    match routes {
        Ok((get_uri, cancel_uri, wait_uri)) => Ok(Recognised {
            name,
            get_uri,
            cancel_uri,
            wait_uri,
        }),
        Err(e) => Err(NotTracked::NoRoute(name, e)),
    }
}

// ===== deserialisation =====

/// The known keys, matched after JSON unescaping (as `serde_derive` does), so
/// `"na\u006de"` is `name` for both [`peek`] and [`Operation::from_json`].
enum Field {
    Name,
    Done,
    Error,
    Metadata,
    Response,
    Code,
    Message,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "name" => Field::Name,
                    "done" => Field::Done,
                    "error" => Field::Error,
                    "metadata" => Field::Metadata,
                    "response" => Field::Response,
                    "code" => Field::Code,
                    "message" => Field::Message,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Fails with a duplicate-field error if `slot` is already set.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

struct ViewVisitor;

impl<'de> Visitor<'de> for ViewVisitor {
    type Value = OperationView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (google.longrunning.Operation)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OperationView<'de>, A::Error> {
        let mut name = None;
        let mut done: Option<Option<bool>> = None;
        let mut other_fields = false;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Name => set_once(&mut name, map.next_value_seed(CowStr)?, "name")?,
                Field::Done => set_once(&mut done, map.next_value::<Option<bool>>()?, "done")?,
                Field::Error | Field::Metadata | Field::Response => {
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Code | Field::Message | Field::Other => {
                    other_fields = true;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OperationView {
            name,
            done: done.flatten().unwrap_or(false),
            other_fields,
        })
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct CowStr;

impl<'de> DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

struct OperationVisitor;

impl<'de> Visitor<'de> for OperationVisitor {
    type Value = Operation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (google.longrunning.Operation)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Operation, A::Error> {
        let mut name: Option<Option<String>> = None;
        let mut done: Option<Option<bool>> = None;
        let mut error: Option<Option<StatusDe>> = None;
        let mut metadata: Option<Option<Box<RawValue>>> = None;
        let mut response: Option<Option<Box<RawValue>>> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Name => set_once(&mut name, map.next_value()?, "name")?,
                Field::Done => set_once(&mut done, map.next_value()?, "done")?,
                Field::Error => set_once(&mut error, map.next_value()?, "error")?,
                Field::Metadata => set_once(&mut metadata, map.next_value()?, "metadata")?,
                Field::Response => set_once(&mut response, map.next_value()?, "response")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Operation {
            name: name.flatten().unwrap_or_default(),
            done: done.flatten().unwrap_or(false),
            error: error.flatten().map(|s| s.0),
            metadata: metadata.flatten(),
            response: response.flatten(),
        })
    }
}

/// Private `Deserialize` for [`Status`] (JSON objects only), so that `serde`
/// stays out of the public API.
struct StatusDe(Status);

impl<'de> Deserialize<'de> for StatusDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StatusDe, D::Error> {
        deserializer.deserialize_map(StatusVisitor)
    }
}

struct StatusVisitor;

impl<'de> Visitor<'de> for StatusVisitor {
    type Value = StatusDe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (google.rpc.Status)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StatusDe, A::Error> {
        let mut code: Option<Option<Code>> = None;
        let mut message: Option<Option<String>> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Code => set_once(&mut code, map.next_value()?, "code")?,
                Field::Message => set_once(&mut message, map.next_value()?, "message")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(StatusDe(Status {
            code: code.flatten().map_or(0, |c| c.0),
            message: message.flatten().unwrap_or_default(),
        }))
    }
}

/// An `int32` in proto3 JSON: a number, or a string of one.
struct Code(i32);

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Code, D::Error> {
        struct CodeVisitor;
        impl Visitor<'_> for CodeVisitor {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an int32 (a number or a string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                i32::try_from(v)
                    .map(Code)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                i32::try_from(v)
                    .map(Code)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                v.parse()
                    .map(Code)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(CodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> OperationName {
        OperationName::parse(s).unwrap()
    }

    // ----- peek -----

    #[test]
    fn peek_flags_keys_that_are_not_operation_fields() {
        let op = peek(br#"{"name":"operations/x","metadata":{"a":1},"done":false,"error":null,"response":{}}"#).unwrap();
        assert!(!op.other_fields);
        let resource = peek(br#"{"name":"projects/p/things/7","displayName":"t"}"#).unwrap();
        assert!(resource.other_fields);
        assert!(
            peek(br#"{"name":"operations/x","code":3}"#)
                .unwrap()
                .other_fields
        );
    }

    #[test]
    fn peek_done_absent_is_false() {
        let view = peek(br#"{"name":"operations/x"}"#).unwrap();
        assert_eq!(view.name.as_deref(), Some("operations/x"));
        assert!(!view.done);
    }

    #[test]
    fn peek_done_true_false_null() {
        assert!(
            peek(br#"{"name":"operations/x","done":true}"#)
                .unwrap()
                .done
        );
        assert!(
            !peek(br#"{"name":"operations/x","done":false}"#)
                .unwrap()
                .done
        );
        assert!(
            !peek(br#"{"name":"operations/x","done":null}"#)
                .unwrap()
                .done
        );
        assert!(
            !peek(br#"{"done":null,"name":"operations/x"}"#)
                .unwrap()
                .done
        );
    }

    #[test]
    fn peek_done_not_bool_is_err() {
        assert!(peek(br#"{"name":"operations/x","done":"true"}"#).is_err());
        assert!(peek(br#"{"name":"operations/x","done":1}"#).is_err());
        assert!(peek(br#"{"name":"operations/x","done":{}}"#).is_err());
    }

    #[test]
    fn peek_name_absent_is_none() {
        let view = peek(br#"{"done":false,"metadata":{"name":"nested/not/me"}}"#).unwrap();
        assert!(view.name.is_none());
        assert!(!view.done);
        assert!(peek(b"{}").unwrap().name.is_none());
    }

    #[test]
    fn peek_name_is_borrowed_without_escapes() {
        let body = br#"{"name":"projects/p/operations/x","done":false}"#;
        let view = peek(body).unwrap();
        assert!(matches!(
            view.name,
            Some(Cow::Borrowed("projects/p/operations/x"))
        ));
    }

    #[test]
    fn peek_name_with_escapes_is_owned_and_unescaped() {
        let view = peek(br#"{"name":"operations\/x\u0041"}"#).unwrap();
        assert!(matches!(view.name, Some(Cow::Owned(ref s)) if s == "operations/xA"));
    }

    #[test]
    fn peek_duplicate_name_is_err() {
        assert!(peek(br#"{"name":"operations/a","name":"operations/b"}"#).is_err());
        // The same key spelled with an escape is still a duplicate.
        assert!(peek(br#"{"name":"operations/a","na\u006de":"operations/b"}"#).is_err());
    }

    #[test]
    fn peek_duplicate_done_is_err() {
        assert!(peek(br#"{"name":"operations/a","done":false,"done":true}"#).is_err());
        assert!(peek(br#"{"name":"operations/a","done":null,"done":true}"#).is_err());
    }

    #[test]
    fn peek_name_not_a_string_is_err() {
        for body in [
            &br#"{"name":1}"#[..],
            br#"{"name":null}"#,
            br#"{"name":true}"#,
            br#"{"name":["operations/x"]}"#,
            br#"{"name":{"a":"b"}}"#,
        ] {
            assert!(peek(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn peek_non_object_is_err() {
        for body in [
            &br#"["operations/x", false]"#[..],
            br#""operations/x""#,
            b"null",
            b"42",
            b"true",
            b"",
            b"   ",
            b"{",
            br#"{"name":"operations/x"} trailing"#,
            br#"{"name":"operations/x"}{}"#,
        ] {
            assert!(peek(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn peek_allows_surrounding_whitespace() {
        let view = peek(b" \n{\"name\":\"operations/x\"}\r\n ").unwrap();
        assert_eq!(view.name.as_deref(), Some("operations/x"));
    }

    #[test]
    fn peek_ignores_huge_nested_metadata_and_other_fields() {
        // ~1 MiB of metadata, nested 100 deep,
        // with a decoy `name` and `done` inside.
        let mut metadata = String::new();
        for _ in 0..100 {
            metadata.push_str(r#"{"name":"decoy/x","done":true,"list":[1,2.5,"s\"\\",null,"#);
        }
        metadata.push_str(&format!("\"{}\"", "x".repeat(1 << 20)));
        for _ in 0..100 {
            metadata.push_str("]}");
        }
        let body = format!(
            r#"{{"metadata":{metadata},"name":"projects/p/operations/x","error":{{"code":1}},"response":[{{}}],"unknown":"\u0000","done":false}}"#
        );
        let view = peek(body.as_bytes()).unwrap();
        assert_eq!(view.name.as_deref(), Some("projects/p/operations/x"));
        assert!(!view.done);
        // The same body decodes fully, too.
        let op = Operation::from_json(body.as_bytes()).unwrap();
        assert_eq!(op.name, "projects/p/operations/x");
        assert_eq!(op.metadata.unwrap().get(), metadata);
    }

    #[test]
    fn peek_skips_very_deep_nesting_without_recursing() {
        // serde_json skips (and captures raw) values iteratively, so depth in
        // an ignored field is neither a recursion-limit error nor a stack
        // overflow.
        let body = format!(
            r#"{{"metadata":{}{},"name":"operations/x","response":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000),
            r#"{"a":"#.repeat(100_000),
            "}".repeat(100_000)
        );
        assert_eq!(
            peek(body.as_bytes()).unwrap().name.as_deref(),
            Some("operations/x")
        );
        let op = Operation::from_json(body.as_bytes()).unwrap();
        assert_eq!(op.metadata.unwrap().get().len(), 200_000);
        // Unbalanced input is still an error.
        let body = format!(
            r#"{{"name":"operations/x","metadata":{}}}"#,
            "[".repeat(100_000)
        );
        assert!(peek(body.as_bytes()).is_err());
    }

    #[test]
    fn peek_ignores_duplicate_unknown_fields() {
        let view =
            peek(br#"{"metadata":1,"metadata":2,"x":1,"x":2,"name":"operations/x"}"#).unwrap();
        assert_eq!(view.name.as_deref(), Some("operations/x"));
    }

    proptest::proptest! {
        #[test]
        fn plainly_valid_agrees_with_the_exact_rules(
            name in "[a-z0-9/.:%?#\\\\ \t\u{7f}é\u{2028}-]{0,16}",
        ) {
            proptest::prop_assert_eq!(validate(&name), validate_exact(&name));
            if plainly_valid(name.as_bytes()) {
                proptest::prop_assert_eq!(validate_exact(&name), Ok(()));
            }
        }

        #[test]
        fn peek_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = peek(&bytes);
        }

        #[test]
        fn peek_agrees_with_from_json(
            name in proptest::option::of("[a-z/\\\\\"\u{0}-\u{1f}é]{0,12}"),
            done in proptest::option::of(proptest::option::of(proptest::bool::ANY)),
            extra in proptest::bool::ANY,
        ) {
            let mut fields = Vec::new();
            if extra {
                fields.push(r#""metadata":{"name":"decoy","done":true}"#.to_owned());
            }
            if let Some(name) = &name {
                fields.push(format!(r#""name":{}"#, serde_json::to_string(name).unwrap()));
            }
            match done {
                Some(Some(d)) => fields.push(format!(r#""done":{d}"#)),
                Some(None) => fields.push(r#""done":null"#.to_owned()),
                None => {}
            }
            let body = format!("{{{}}}", fields.join(","));
            let view = peek(body.as_bytes()).unwrap();
            let op = Operation::from_json(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(view.name.as_deref(), name.as_deref());
            proptest::prop_assert_eq!(view.name.as_deref().unwrap_or(""), op.name.as_str());
            proptest::prop_assert_eq!(view.done, done.flatten().unwrap_or(false));
            proptest::prop_assert_eq!(view.done, op.done);
        }
    }

    // ----- recognise -----

    #[test]
    fn recognise_says_why_not() {
        let req: Uri = "https://h.example/v1/projects/p/locations/l/jobs"
            .parse()
            .unwrap();
        let ok = recognise(
            br#"{"name":"projects/p/locations/l/operations/x","metadata":{}}"#,
            &req,
            None,
        )
        .unwrap();
        assert_eq!(ok.name.as_str(), "projects/p/locations/l/operations/x");
        assert_eq!(
            ok.get_uri,
            "https://h.example/v1/projects/p/locations/l/operations/x"
        );
        assert_eq!(
            ok.cancel_uri,
            "https://h.example/v1/projects/p/locations/l/operations/x:cancel"
        );
        let why = |body: &[u8], prefix: Option<&str>| recognise(body, &req, prefix).unwrap_err();
        assert!(matches!(why(b"[1]", None), NotTracked::Unreadable(_)));
        assert!(matches!(
            why(br#"{"done":false}"#, None),
            NotTracked::NoName
        ));
        assert!(matches!(
            why(br#"{"name":"projects/p/things/t","title":"x"}"#, None),
            NotTracked::Resource
        ));
        assert!(matches!(
            why(br#"{"name":"operations/x","done":true}"#, None),
            NotTracked::Done
        ));
        assert!(matches!(
            why(br#"{"name":"//evil.example/x"}"#, None),
            NotTracked::InvalidName(_)
        ));
        let api: Uri = "https://h.example/api/things".parse().unwrap();
        assert!(matches!(
            recognise(br#"{"name":"operations/x"}"#, &api, None).unwrap_err(),
            NotTracked::NoPrefix(_)
        ));
        assert!(matches!(
            why(br#"{"name":"operations/x"}"#, Some("//evil.example/")),
            NotTracked::NoRoute(..)
        ));
        // The override wins over the derived prefix.
        let ok = recognise(br#"{"name":"operations/x"}"#, &api, Some("/api/v2/")).unwrap();
        assert_eq!(ok.get_uri, "https://h.example/api/v2/operations/x");
        // Only the unusual cases are warnings.
        assert!(!why(br#"{"done":false}"#, None).is_warning());
        assert!(!why(br#"{"name":"operations/x","done":true}"#, None).is_warning());
        assert!(why(br#"{"name":7}"#, None).is_warning());
    }

    #[test]
    fn not_tracked_never_echoes_the_body() {
        let req: Uri = "https://h.example/v1/projects/p/locations/l/jobs"
            .parse()
            .unwrap();
        let huge = format!(
            r#"{{"name":"operations/x","done":"{}\r\nX-Injected: 1\u0000"}}"#,
            "y".repeat(1 << 20)
        );
        let shown = recognise(huge.as_bytes(), &req, None)
            .unwrap_err()
            .to_string();
        assert!(shown.chars().count() < 300, "{} chars", shown.len());
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert!(shown.contains("invalid type: string"), "{shown}");
        assert!(shown.contains('…'), "{shown}");
        assert!(
            shown.ends_with(&format!("(line 1, column {})", huge.len() - 1)),
            "{shown}"
        );

        let bad_name = format!(r#"{{"name":"operations/{}\r\n"}}"#, "n".repeat(1 << 20));
        let shown = recognise(bad_name.as_bytes(), &req, None)
            .unwrap_err()
            .to_string();
        assert!(shown.chars().count() < 300, "{} chars", shown.len());
        assert!(!shown.chars().any(char::is_control), "{shown}");

        // A short message is shown whole, with its position.
        let e = peek(br#"{"name":"operations/x","done":1}"#).unwrap_err();
        assert_eq!(
            short_json_error(&e),
            "invalid type: integer `1`, expected a boolean (line 1, column 31)"
        );
    }

    // ----- request_params -----

    #[test]
    fn request_params_encodes_slash_and_reserved() {
        assert_eq!(
            name("projects/my-project/locations/us-central1/operations/op_1.2~3").request_params(),
            "name=projects%2Fmy-project%2Flocations%2Fus-central1%2Foperations%2Fop_1.2~3"
        );
    }

    #[test]
    fn request_params_reserved_characters() {
        assert_eq!(
            name("operations/a:b@c+d;e=f&g%h,i!j*k'l(m)n$o[p]q").request_params(),
            "name=operations%2Fa%3Ab%40c%2Bd%3Be%3Df%26g%25h%2Ci%21j%2Ak%27l%28m%29n%24o%5Bp%5Dq"
        );
        assert_eq!(
            name("operations/caf\u{e9}/\u{1F600}").request_params(),
            "name=operations%2Fcaf%C3%A9%2F%F0%9F%98%80"
        );
    }

    #[test]
    fn request_params_is_not_sensitive_and_roundtrips() {
        let n = name("projects/p/operations/a%2541:b");
        let value = n.request_params();
        assert!(!value.is_sensitive());
        let text = value.to_str().unwrap();
        let encoded = text.strip_prefix("name=").unwrap();
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        assert_eq!(
            percent_decode_str(encoded).decode_utf8().unwrap(),
            n.as_str()
        );
    }

    // ----- path_prefix / uri_with_prefix (crate-private parts) -----

    #[test]
    fn path_prefix_is_a_slice_of_the_request_path() {
        let n = name("projects/p/locations/l/operations/x");
        let path = "/v1/admin/projects/p/locations/l/subscriptions/s:seek";
        let prefix = n.path_prefix(path).unwrap();
        assert_eq!(prefix, "/v1/admin/");
        assert_eq!(prefix.as_ptr(), path.as_ptr());
        assert_eq!(
            n.path_prefix("/v1/projects/p/locations/l/jobs"),
            Some("/v1/")
        );
        assert_eq!(n.path_prefix("/v1beta1/things:create"), Some("/v1beta1/"));
        assert_eq!(n.path_prefix("/v1"), None);
        assert_eq!(n.path_prefix("/"), None);
        assert_eq!(n.path_prefix(""), None);
        assert_eq!(n.path_prefix("*"), None);
        assert_eq!(n.path_prefix("/projects/p/locations/l/jobs"), None);
        // A match must be a whole segment.
        assert_eq!(n.path_prefix("/api/myprojects/projects2/x"), None);
        assert_eq!(n.path_prefix("/api/x/projects"), Some("/api/x/"));
        // Request segments are compared percent-decoded.
        let n = name("caf\u{e9}/operations/x");
        assert_eq!(n.path_prefix("/api/caf%C3%A9/operations"), Some("/api/"));
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
            n.uri_with_prefix(&req, "/v1/", ":cancel").unwrap(),
            "https://example.com/v1/operations/x:cancel"
        );
        assert_eq!(
            n.uri_with_prefix(&req, "/", "").unwrap(),
            "https://example.com/operations/x"
        );
        for bad in ["", "v1/", "/v1", "//evil.com/", "/v1/?q=", "/v1/#", "/v1?/"] {
            let err = n.uri_with_prefix(&req, bad, ":cancel").unwrap_err();
            assert!(
                err.to_string().contains("invalid operations path prefix"),
                "{bad}: {err}"
            );
        }
        assert!(n.uri_with_prefix(&req, "/v1/", "?x").is_err());
        // A prefix with characters a URI path cannot hold fails to build.
        let err = n.uri_with_prefix(&req, "/v 1/", "").unwrap_err();
        assert!(err.source().is_some(), "{err}");
    }

    #[test]
    fn uri_with_prefix_path_only_request() {
        let n = name("operations/x");
        let req: Uri = "/v1/things:create?x=1".parse().unwrap();
        let uri = n.uri_with_prefix(&req, "/v1/", ":cancel").unwrap();
        assert_eq!(uri.scheme(), None);
        assert_eq!(uri.authority(), None);
        assert_eq!(uri, "/v1/operations/x:cancel");
    }
}
