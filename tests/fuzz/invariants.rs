//! The invariants the fuzz targets check (`fuzz/src/lib.rs` includes this
//! file with `#[path]`), shared with the `input` test crate (its module
//! `invariants`, `tests/input/fuzz_replay.rs` and the name properties), so
//! that the seeds and any crash found are replayed by plain `cargo test` on
//! stable.
//!
//! Each check panics with a message naming the input when an invariant
//! breaks; that is what the fuzzer reports as a crash.
//!
//! Input formats (raw bytes, so seeds are plain files):
//!
//! * `operation_name`: the first byte picks the original request from
//!   [`NAME_REQUESTS`] (modulo its length + 1); the last choice means "custom":
//!   the bytes up to the first `\t` are a request path appended to
//!   `http://h.example:8080`. The rest is the candidate name (invalid UTF-8 is
//!   replaced, U+FFFD).
//! * `inspect`: the first byte picks the original request and the layer's
//!   `path_prefix` override from [`INSPECT_REQUESTS`]; the rest is the
//!   response body.

use std::borrow::Cow;

use http::Uri;
use percent_encoding::{percent_decode, percent_decode_str};
use serde_json::Value;
use tower_lro::{Operation, OperationName};

/// Original requests for the `operation_name` target.
pub const NAME_REQUESTS: &[&str] = &[
    "https://example.googleapis.com:8443/v1/projects/p/locations/l/jobs?alt=json",
    "http://127.0.0.1:8080/v1/admin/projects/p/locations/l/subscriptions/s:seek",
    "http://[::1]:8080/v1beta1/a/operations/b",
    "https://user@h/v2/x/y/z",
    "/v3/projects/p/things:create",
    "https://h/api/projects/p",
    "https://h/nothing/here",
    "https://h/api/caf%C3%A9/operations/x",
];

/// Original requests and `path_prefix` overrides for the `inspect` target.
pub const INSPECT_REQUESTS: &[(&str, Option<&str>)] = &[
    ("http://127.0.0.1:8080/v1/projects/p/locations/l/jobs", None),
    (
        "https://example.googleapis.com/v1/admin/projects/p/locations/l/subscriptions/s:seek",
        None,
    ),
    ("http://h.example/api/things:create", None),
    ("http://h.example/api/things:create", Some("/api/v9/")),
    ("/v2/operations?filter=x", None),
];

/// The longest URI `http::Uri` parses from text.
const MAX_URI_LEN: usize = u16::MAX as usize - 1;

// ===== operation_name =====

/// The `operation_name` target: `OperationName::parse` agrees with an
/// independent statement of the untrusted-name rules, its error is short and escaped, and a
/// name that parses routes to the original request's origin, with no query
/// or fragment, and a path that decodes to exactly `prefix + name (+ ":cancel")`.
pub fn operation_name(data: &[u8]) {
    let (request, name) = split_name_input(data);
    let name = String::from_utf8_lossy(name);
    check_name(&name, &request);
}

fn split_name_input(data: &[u8]) -> (Uri, &[u8]) {
    let default = || {
        NAME_REQUESTS[0]
            .parse::<Uri>()
            .expect("a valid request URI")
    };
    let Some((&selector, rest)) = data.split_first() else {
        return (default(), data);
    };
    let index = usize::from(selector) % (NAME_REQUESTS.len() + 1);
    if let Some(request) = NAME_REQUESTS.get(index) {
        return (request.parse().expect("a valid request URI"), rest);
    }
    let Some(tab) = rest.iter().position(|&b| b == b'\t') else {
        return (default(), rest);
    };
    let custom = std::str::from_utf8(&rest[..tab])
        .ok()
        .and_then(|path| format!("http://h.example:8080{path}").parse::<Uri>().ok())
        .filter(|uri| uri.path().starts_with('/'));
    (custom.unwrap_or_else(default), &rest[tab + 1..])
}

/// Checks one candidate name against one original request.
pub fn check_name(name: &str, request: &Uri) {
    match OperationName::parse(name) {
        Err(e) => {
            assert!(
                !reference_accepts(name),
                "{name:?} rejected ({e}) but the rules accept it"
            );
            let shown = e.to_string();
            assert!(
                shown.contains(e.reason()),
                "{name:?}: Display {shown:?} does not name the rule"
            );
            assert!(
                !shown.chars().any(char::is_control),
                "{name:?}: Display {shown:?} has a control character"
            );
            // 32 characters, each escaped to at most 10 (`\u{10ffff}`), plus the text.
            assert!(
                shown.chars().count() <= 32 * 10 + 200,
                "{name:?}: Display is {} characters",
                shown.chars().count()
            );
        }
        Ok(parsed) => {
            assert!(
                reference_accepts(name),
                "{name:?} accepted but the rules reject it"
            );
            assert_eq!(parsed.as_str(), name);
            let get = check_route(&parsed, request, "");
            let cancel = check_route(&parsed, request, ":cancel");
            match (get, cancel) {
                (Some(get), Some(cancel)) => {
                    assert_eq!(format!("{}:cancel", get.path()), cancel.path(), "{name:?}");
                }
                (None, None) => {}
                (get, cancel) => {
                    panic!("{name:?} on {request}: get {get:?} but cancel {cancel:?}")
                }
            }
            check_request_params(&parsed);
        }
    }
}

/// An independent statement of the rules of `OperationName::parse`.
pub fn reference_accepts(name: &str) -> bool {
    let bad = |c: char| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '\\');
    if name.is_empty() || name.len() > 4096 || name.starts_with('/') || name.chars().any(bad) {
        return false;
    }
    if name.split('/').next().unwrap_or("").contains(':') {
        return false;
    }
    name.split('/').all(|segment| {
        let mut current = segment.as_bytes().to_vec();
        loop {
            if current.is_empty() || current == b"." || current == b".." {
                return false;
            }
            if String::from_utf8_lossy(&current)
                .chars()
                .any(|c| bad(c) || c == '/')
            {
                return false;
            }
            let next: Vec<u8> = percent_decode(&current).collect();
            if next == current {
                return true;
            }
            current = next;
        }
    })
}

/// The REST prefix rule, restated: the request path up to the first whole
/// segment equal to the name's first segment (if one precedes it), else a
/// leading API-version segment.
pub fn reference_prefix(path: &str, name: &str) -> Option<String> {
    let first = name.split('/').next().unwrap_or("").as_bytes();
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let matching = segments
        .iter()
        .position(|s| percent_decode_str(s).collect::<Vec<u8>>() == first);
    if let Some(i @ 1..) = matching {
        return Some(format!("/{}/", segments[..i].join("/")));
    }
    let v = segments[0];
    let is_version = v.len() > 1
        && v.starts_with('v')
        && v.as_bytes()[1].is_ascii_digit()
        && v[1..]
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (segments.len() > 1 && is_version).then(|| format!("/{v}/"))
}

/// Whether a byte stays as it is in an AIP-127 path variable.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~".contains(&b)
}

/// Checks `get_uri` (empty suffix) or `cancel_uri` (`":cancel"`); returns the
/// URI if one was built.
pub fn check_route(name: &OperationName, request: &Uri, suffix: &str) -> Option<Uri> {
    let built = if suffix.is_empty() {
        name.get_uri(request)
    } else {
        name.cancel_uri(request)
    };
    // A prefix starting with "//" (from a request path with an empty first
    // segment) is refused: a path-only URI would read as `//authority`.
    let prefix = reference_prefix(request.path(), name.as_str()).filter(|p| !p.starts_with("//"));
    let Some(prefix) = prefix else {
        assert!(
            built.is_err(),
            "{request} + {name:?}: no prefix, yet built {built:?}"
        );
        return None;
    };
    let encoded_len: usize = name
        .as_str()
        .bytes()
        .map(|b| if unreserved(b) || b == b'/' { 1 } else { 3 })
        .sum();
    let path_len = prefix.len() + encoded_len + suffix.len();
    let built = match built {
        Ok(built) => built,
        // Only a URI too long for `http` may fail once a prefix exists.
        Err(e) if path_len + request.to_string().len() > MAX_URI_LEN => {
            assert!(
                std::error::Error::source(&e).is_some(),
                "{request} + {name:?}: {e}"
            );
            return None;
        }
        Err(e) => panic!("{request} + {name:?}: {e}"),
    };

    // Same origin, always; no query, no fragment.
    assert_eq!(built.scheme(), request.scheme(), "{request} + {name:?}");
    assert_eq!(
        built.authority(),
        request.authority(),
        "{request} + {name:?}"
    );
    assert_eq!(built.query(), None, "{request} + {name:?}");
    let text = built.to_string();
    assert!(!text.contains(['#', '?']), "{request} + {name:?}: {text}");
    if text.len() <= MAX_URI_LEN {
        let reparsed: Uri = text
            .parse()
            .unwrap_or_else(|e| panic!("{request} + {name:?}: {text:?} does not reparse: {e}"));
        assert_eq!(reparsed, built, "{request} + {name:?}");
    }

    // The path: prefix, the encoded name, the suffix.
    let path = built.path();
    assert_eq!(path.len(), path_len, "{request} + {name:?}: {path}");
    assert!(
        path.starts_with(&prefix) && path.ends_with(suffix),
        "{request} + {name:?}: {path}"
    );
    let encoded = &path[prefix.len()..path.len() - suffix.len()];
    assert!(
        encoded
            .bytes()
            .all(|b| unreserved(b) || b == b'/' || b == b'%'),
        "{request} + {name:?}: {encoded}"
    );
    // Decoded, the path is the (decoded) prefix, the name, the suffix.
    let decoded: Vec<u8> = percent_decode_str(path).collect();
    let mut expected: Vec<u8> = percent_decode_str(&prefix).collect();
    expected.extend_from_slice(name.as_str().as_bytes());
    expected.extend_from_slice(suffix.as_bytes());
    assert_eq!(decoded, expected, "{request} + {name:?}");
    // A server that splits on '/' and decodes each segment once sees exactly
    // the name's segments: none empty, '.' or '..'.
    let segments: Vec<Cow<'_, str>> = encoded
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let expected: Vec<&str> = name.as_str().split('/').collect();
    assert_eq!(segments, expected, "{request} + {name:?}");
    assert!(
        segments
            .iter()
            .all(|s| !s.is_empty() && s != "." && s != ".."),
        "{request} + {name:?}"
    );
    Some(built)
}

/// `x-goog-request-params`: visible ASCII, no `/`, decodes back to the name.
fn check_request_params(name: &OperationName) {
    let value = tower_lro::__fuzz::request_params(name);
    let text = value
        .to_str()
        .unwrap_or_else(|e| panic!("{name:?}: request params not visible ASCII: {e}"));
    let encoded = text
        .strip_prefix("name=")
        .unwrap_or_else(|| panic!("{name:?}: {text}"));
    assert!(
        encoded.bytes().all(|b| unreserved(b) || b == b'%'),
        "{name:?}: {text}"
    );
    assert_eq!(
        percent_decode_str(encoded).decode_utf8_lossy(),
        name.as_str(),
        "{name:?}"
    );
}

// ===== inspect =====

const OPERATION_FIELDS: [&str; 5] = ["name", "done", "error", "metadata", "response"];

/// The `inspect` target: `Operation::from_json` and the layer's recognition
/// of a response body never panic, and what is recognised is a not-done
/// Operation with a valid name, routed to the original request's origin;
/// a plain not-done Operation with a valid name and a route is recognised.
pub fn inspect(data: &[u8]) {
    let (selector, body) = match data.split_first() {
        Some((&selector, body)) => (selector, body),
        None => (0, data),
    };
    let (request, prefix) = INSPECT_REQUESTS[usize::from(selector) % INSPECT_REQUESTS.len()];
    let request: Uri = request.parse().expect("a valid request URI");
    check_inspect(body, &request, prefix);
}

/// Checks one response body answering `request`, with the layer's
/// `path_prefix` override `prefix`.
pub fn check_inspect(body: &[u8], request: &Uri, prefix: Option<&str>) {
    let operation = Operation::from_json(body);
    if let Ok(op) = &operation {
        assert_eq!(&op.clone(), op);
        let _ = op.is_cancelled();
    }
    // An independent reading (recursion-limited, last duplicate wins).
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();

    let (name, get, cancel) = match tower_lro::__fuzz::recognise(body, request, prefix) {
        Ok(recognised) => recognised,
        Err((reason, _warn)) => {
            check_reason(&reason, request, &shown);
            check_not_recognised(&operation, &value, request, prefix, &shown);
            return;
        }
    };

    assert!(
        OperationName::parse(name.as_str()).is_ok(),
        "recognised an invalid name {name:?}"
    );
    if let Ok(op) = &operation {
        assert_eq!(op.name, name.as_str(), "{shown:?}");
        assert!(!op.done, "recognised a done operation: {shown:?}");
    }
    if let Some(value) = &value {
        let map = value
            .as_object()
            .unwrap_or_else(|| panic!("recognised a non-object: {shown:?}"));
        assert!(
            map.keys().all(|k| OPERATION_FIELDS.contains(&k.as_str())),
            "recognised a resource: {shown:?}"
        );
        assert_eq!(map.get("name").and_then(Value::as_str), Some(name.as_str()));
        assert!(
            matches!(
                map.get("done"),
                None | Some(Value::Null | Value::Bool(false))
            ),
            "{shown:?}"
        );
    }
    let expected_prefix = match prefix {
        Some(p) => Some(p.to_owned()),
        None => reference_prefix(request.path(), name.as_str()),
    };
    let expected_prefix =
        expected_prefix.unwrap_or_else(|| panic!("recognised {name:?} with no route"));
    for (uri, suffix) in [(&get, ""), (&cancel, ":cancel")] {
        assert_eq!(uri.scheme(), request.scheme(), "{uri}");
        assert_eq!(uri.authority(), request.authority(), "{uri}");
        assert_eq!(uri.query(), None, "{uri}");
        let rest = uri
            .path()
            .strip_prefix(&expected_prefix)
            .unwrap_or_else(|| panic!("{uri} does not start with {expected_prefix}"));
        assert_eq!(
            percent_decode_str(rest).decode_utf8_lossy(),
            format!("{}{suffix}", name.as_str()),
            "{uri}"
        );
    }
    assert_eq!(format!("{}:cancel", get.path()), cancel.path());
    if prefix.is_none() {
        assert_eq!(name.get_uri(request).ok().as_ref(), Some(&get));
        assert_eq!(name.cancel_uri(request).ok().as_ref(), Some(&cancel));
    }
}

/// Why a body was not tracked, as the layer logs it: no control characters,
/// and for unreadable bodies and rejected names only a short part of the
/// input (a validated name, and the caller's own request path, may be shown
/// in full).
fn check_reason(reason: &str, request: &Uri, shown: &str) {
    assert!(
        !reason.chars().any(char::is_control),
        "{shown:?}: the reason {reason:?} has a control character"
    );
    let short = reason.starts_with("JSON response") || reason.starts_with("operation ");
    let limit = if short {
        300
    } else {
        300 + 4 * request.path().len() + 4096
    };
    assert!(
        reason.chars().count() <= limit,
        "{shown:?}: the reason is {} characters: {:?}",
        reason.chars().count(),
        &reason[..reason.len().min(400)]
    );
}

/// A body that was not recognised must not be a plain, valid, not-done
/// Operation with a route (when the independent reading can tell).
fn check_not_recognised(
    operation: &Result<Operation, serde_json::Error>,
    value: &Option<Value>,
    request: &Uri,
    prefix: Option<&str>,
    shown: &str,
) {
    if let (Ok(op), Some(Value::Object(map)), None) = (operation, value, prefix) {
        let plain = map.keys().all(|k| OPERATION_FIELDS.contains(&k.as_str()))
            && matches!(map.get("name"), Some(Value::String(_)));
        if plain && !op.done {
            if let Ok(name) = OperationName::parse(&op.name) {
                assert!(
                    name.get_uri(request).is_err(),
                    "a not-done Operation {name:?} with a route was not recognised: {shown:?}"
                );
            }
        }
    }
}
