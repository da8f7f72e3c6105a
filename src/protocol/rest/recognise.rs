//! Recognising a not-done Operation in a complete JSON response body.
//!
//! An Operation has only Operation fields (`name`, `metadata`, `done`,
//! `error`, `response`): proto3 JSON omits `done: false`, and every AIP-122
//! resource has a `name` too, so an object with other fields is a resource.
//! The body is untrusted: what is logged about it is short and escaped.

use std::fmt;

use http::Uri;

use super::view::peek;
use crate::operation::{InvalidOperationName, OperationName, RouteError};
use crate::protocol::{Protocol, ProtocolSettings, Target, Timing};

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
    /// Whether the layer warns about it (a response that is not a
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

/// On a (complete, size-checked) JSON response body: the
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

/// [`read_operation`], then the default routes: what the layer does with a
/// response body when no route function claims the operation (the fuzz
/// targets' entry point).
#[cfg(feature = "__internals")]
pub(crate) fn recognise(
    body: &[u8],
    request_uri: &Uri,
    path_prefix: Option<&str>,
) -> Result<Target, NotTracked> {
    let name = read_operation(body)?;
    let mut settings = ProtocolSettings::default();
    settings.rest.path_prefix = path_prefix.map(Into::into);
    let timing = Timing {
        wait: false,
        cancel_timeout: std::time::Duration::ZERO,
    };
    match Target::new(Protocol::Rest, name.clone(), request_uri, &settings, timing) {
        Ok(target) => Ok(target),
        Err(e) if e.is_no_prefix() => Err(NotTracked::NoPrefix(name)),
        Err(e) => Err(NotTracked::NoRoute(name, e)),
    }
}

/// The operation the layer should wait on, read from the response to the
/// request to `origin`: not done, with a valid name and a same-origin route
/// (the user's route function's, else the default). Why not is logged
/// without echoing more than a short, escaped part of the body.
pub(crate) fn target(
    origin: &Uri,
    settings: &ProtocolSettings,
    timing: Timing,
    body: &[u8],
) -> Option<Target> {
    let name = match read_operation(body) {
        Ok(name) => name,
        Err(why) if why.is_warning() => {
            tracing::warn!(url.path = origin.path(), "{why}; not tracked");
            return None;
        }
        Err(why) => {
            tracing::debug!("{why}; not tracked");
            return None;
        }
    };
    match Target::new(Protocol::Rest, name.clone(), origin, settings, timing) {
        Ok(target) => Some(target),
        Err(e) if e.is_other_origin() => {
            tracing::warn!(
                operation.name = %name,
                "the route function leaves the request's origin; not tracked"
            );
            None
        }
        Err(e) => {
            let why = if e.is_no_prefix() {
                NotTracked::NoPrefix(name)
            } else {
                NotTracked::NoRoute(name, e)
            };
            tracing::warn!(url.path = origin.path(), "{why}; not tracked");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(ok.name().as_str(), "projects/p/locations/l/operations/x");
        assert_eq!(
            ok.rest_uris().unwrap().0,
            "https://h.example/v1/projects/p/locations/l/operations/x"
        );
        assert_eq!(
            ok.rest_uris().unwrap().1,
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
        assert_eq!(
            ok.rest_uris().unwrap().0,
            "https://h.example/api/v2/operations/x"
        );
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
}
