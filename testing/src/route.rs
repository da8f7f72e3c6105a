//! Request routing: which AIP-151 method a request is, and for which name.

use http::{Method, Uri};
use percent_encoding::percent_decode_str;

use super::Endpoint;

/// A classified request.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) endpoint: Endpoint,
    pub(crate) target: Target,
}

/// What a request addresses.
#[derive(Debug)]
pub(crate) enum Target {
    /// Start an operation on `target` (the path's name without its verb),
    /// whose parent is `projects/{p}/locations/{l}`.
    Start {
        target: String,
        parent: String,
    },
    Get(String),
    Cancel(String),
    Delete(String),
    Wait(String),
    /// List the operations in this collection (`.../operations`).
    List(String),
    NotFound(String),
    NotAllowed {
        allow: &'static str,
        message: String,
    },
    Invalid(String),
}

impl Routed {
    /// The operation name a Get/Cancel/Delete/Wait addresses.
    pub(crate) fn operation(&self) -> Option<&str> {
        match &self.target {
            Target::Get(n) | Target::Cancel(n) | Target::Delete(n) | Target::Wait(n) => Some(n),
            _ => None,
        }
    }

    fn other(target: Target) -> Self {
        Routed {
            endpoint: Endpoint::Other,
            target,
        }
    }

    fn not_found(path: &str) -> Self {
        Routed::other(Target::NotFound(format!(
            "The requested URL {path} was not found on this server."
        )))
    }

    fn not_allowed(method: &Method, path: &str, allow: &'static str) -> Self {
        Routed::other(Target::NotAllowed {
            allow,
            message: format!("Method {method} is not implemented for {path} (allowed: {allow})."),
        })
    }
}

/// An API version segment: `^v\d+[a-z0-9]*$` (`v1`, `v1beta1`, `v2alpha`).
pub(crate) fn is_version(segment: &str) -> bool {
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

/// Skips a service prefix (`admin/` in `/v1/admin/projects/...`): segments
/// between the version and the first `projects` segment.
fn strip_service_prefix(rest: &str) -> &str {
    if rest == "projects" || rest.starts_with("projects/") {
        return rest;
    }
    match rest.find("/projects/") {
        Some(i) => &rest[i + 1..],
        None => rest,
    }
}

/// Splits `name:verb` on the last `:` of the last (raw, still encoded)
/// segment; an encoded `%3A` is part of the name.
fn split_verb(raw: &str) -> (&str, Option<&str>) {
    let last_start = raw.rfind('/').map_or(0, |i| i + 1);
    match raw[last_start..].rfind(':') {
        Some(i) => (&raw[..last_start + i], Some(&raw[last_start + i + 1..])),
        None => (raw, None),
    }
}

/// Classifies a request by method and path.
pub(crate) fn classify(method: &Method, uri: &Uri) -> Routed {
    let path = uri.path();
    let Some((version, rest)) = path.strip_prefix('/').and_then(|rest| rest.split_once('/')) else {
        return Routed::not_found(path);
    };
    if !is_version(version) {
        return Routed::not_found(path);
    }
    let (raw_name, verb) = split_verb(strip_service_prefix(rest));
    let name = match percent_decode_str(raw_name).decode_utf8() {
        Ok(name) => name.into_owned(),
        Err(_) => {
            return Routed::other(Target::Invalid(format!(
                "The path {path} does not percent-decode to UTF-8."
            )))
        }
    };
    if name.is_empty() || name.split('/').any(str::is_empty) {
        return Routed::not_found(path);
    }
    let segments: Vec<&str> = name.split('/').collect();
    let n = segments.len();
    // An operation is under an `operations` collection, possibly a few
    // segments down (Asset's `{scope}/operations/{method}/{id}`), or Storage
    // Transfer's `transferOperations/{id}`.
    let is_operations = |s: &&str| *s == "operations" || *s == "transferOperations";
    let is_operation = n >= 2 && segments[..n - 1].iter().any(is_operations);
    let is_collection = segments[n - 1] == "operations";

    if is_operation {
        let (endpoint, allow) = match verb {
            Some("cancel") => (Endpoint::Cancel, "POST"),
            Some("wait") => (Endpoint::Wait, "POST"),
            Some(_) => return Routed::not_found(path),
            None if *method == Method::DELETE => (Endpoint::Delete, "GET, DELETE"),
            None => (Endpoint::Get, "GET, DELETE"),
        };
        let expected = match endpoint {
            Endpoint::Cancel | Endpoint::Wait => *method == Method::POST,
            _ => *method == Method::GET || *method == Method::DELETE,
        };
        if !expected {
            return Routed::not_allowed(method, path, allow);
        }
        let target = match endpoint {
            Endpoint::Cancel => Target::Cancel(name),
            Endpoint::Wait => Target::Wait(name),
            Endpoint::Delete => Target::Delete(name),
            _ => Target::Get(name),
        };
        return Routed { endpoint, target };
    }
    if is_collection {
        if verb.is_some() {
            return Routed::not_found(path);
        }
        if *method != Method::GET {
            return Routed::not_allowed(method, path, "GET");
        }
        return Routed {
            endpoint: Endpoint::List,
            target: Target::List(name),
        };
    }
    let under_location = n >= 5 && segments[0] == "projects" && segments[2] == "locations";
    // Other methods on resources under a location (e.g. GET of a job): the
    // server has no such resource.
    if !under_location || *method != Method::POST {
        return Routed::not_found(path);
    }
    let parent = segments[..4].join("/");
    Routed {
        endpoint: Endpoint::Start,
        target: Target::Start {
            target: name,
            parent,
        },
    }
}

/// The first value of query parameter `key` (`application/x-www-form-urlencoded`:
/// `+` is a space, then percent-decoded).
pub(crate) fn query_param(uri: &Uri, key: &str) -> Option<String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode_str(&s).decode_utf8_lossy().into_owned()
    };
    uri.query()?
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(k, _)| decode(k) == key)
        .map(|(_, v)| decode(v))
}
