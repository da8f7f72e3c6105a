//! The hostile answers to the layer's Start: names that try to steer its
//! requests off the origin, bodies that never end or are too big, and what
//! the layer must do with each.

use super::*;

// ===== the hostile answers =====

/// The body of a hostile answer to the layer's POST.
#[derive(Clone)]
pub(super) enum Served {
    /// These bytes, in frames of at most 16 KiB.
    Bytes(Bytes),
    /// This prefix, then `x` forever.
    Endless(&'static str),
    /// This prefix, then nothing, never ending.
    Hung(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expect {
    /// Passed through untouched and untracked: the server sees only the POST.
    Untracked,
    /// The name is accepted, but inert: the layer polls the same server at
    /// exactly this request-target.
    Inert(String),
}

#[derive(Clone)]
pub(super) struct Case {
    pub(super) label: String,
    pub(super) content_encoding: Option<&'static str>,
    pub(super) served: Served,
    pub(super) expect: Expect,
}

fn op(name_json: &str) -> Bytes {
    Bytes::from(format!(r#"{{"name":{name_json},"done":false}}"#))
}

fn untracked(label: &str, body: impl Into<Bytes>) -> Case {
    Case {
        label: label.to_owned(),
        content_encoding: None,
        served: Served::Bytes(body.into()),
        expect: Expect::Untracked,
    }
}

fn untracked_name(label: &str, name: &str) -> Case {
    untracked(label, op(&serde_json::to_string(name).unwrap()))
}

fn inert(label: &str, name: &str, target: &str) -> Case {
    Case {
        label: label.to_owned(),
        content_encoding: None,
        served: Served::Bytes(op(&serde_json::to_string(name).unwrap())),
        expect: Expect::Inert(target.to_owned()),
    }
}

pub(super) fn hostile_cases(other: SocketAddr) -> Vec<Case> {
    let o = other.to_string();
    let deep_metadata = format!(
        r#"{{"metadata":{}{},"name":"//{o}/x","done":false}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    vec![
        // Path traversal.
        untracked_name(
            "dot-dot segments",
            "projects/p/locations/l/operations/../../../admin",
        ),
        untracked_name("leading dot-dot", "../../v1/admin/secrets"),
        untracked_name("escaped dot-dot", "operations/%2e%2e/%2e%2e/admin"),
        untracked_name("escaped slash", "operations/x%2F..%2F..%2Fadmin"),
        untracked_name("double-escaped dot-dot", "operations/%252e%252e"),
        untracked_name("backslash traversal", "operations\\..\\..\\admin"),
        // Another host.
        untracked_name("absolute URL", &format!("http://{o}/v1/operations/x")),
        untracked_name("upper-case scheme", &format!("HTTP://{o}/v1/operations/x")),
        untracked_name("scheme-relative", &format!("//{o}/v1/operations/x")),
        untracked_name("backslash host", &format!("\\\\{o}\\operations\\x")),
        untracked_name("mixed slashes", &format!("/\\{o}/operations/x")),
        untracked_name("host:port first segment", &format!("{o}/operations/x")),
        untracked_name(
            "escaped scheme-relative",
            &format!("%2F%2F{o}/operations/x"),
        ),
        untracked_name("leading slash", "/v1/operations/x"),
        // Query and fragment injection.
        untracked_name("query", "operations/x?alt=media&key=stolen"),
        untracked_name("escaped query", "operations/x%3Falt=media"),
        untracked_name("fragment", "operations/x#frag"),
        // Header injection.
        untracked_name("CR LF", "operations/x\r\nX-Injected: 1"),
        untracked_name("escaped CR LF", "operations/x%0d%0aX-Injected:%201"),
        untracked_name("NUL", "operations/x\u{0}"),
        untracked_name("escaped NUL", "operations/x%00"),
        untracked_name("space", "operations/x HTTP/1.1"),
        untracked_name("unicode line separator", "operations/x\u{2028}y"),
        // Oversized.
        untracked_name(
            "5000-byte name",
            &format!("operations/{}", "a".repeat(5000)),
        ),
        untracked_name(
            "100 KiB name",
            &format!("operations/{}", "a".repeat(100 * 1024)),
        ),
        // Not an operation the layer can read.
        untracked("name a number", op("7")),
        untracked("name null", op("null")),
        untracked("name an array", op(r#"["operations/x"]"#)),
        untracked("name an object", op(r#"{"operations":"x"}"#)),
        untracked(
            "duplicate name keys",
            format!(r#"{{"name":"operations/a","name":"http://{o}/x","done":false}}"#),
        ),
        untracked(
            "duplicate name, escaped key",
            format!(r#"{{"name":"operations/a","na\u006de":"//{o}/x","done":false}}"#),
        ),
        untracked("done a string", r#"{"name":"operations/x","done":"false"}"#),
        untracked("done a number", r#"{"name":"operations/x","done":0}"#),
        untracked(
            "done an object",
            r#"{"name":"operations/x","done":{"v":false}}"#,
        ),
        untracked(
            "invalid UTF-8 in the name",
            &b"{\"name\":\"operations/x\xff\xfe\",\"done\":false}"[..],
        ),
        untracked(
            "invalid UTF-8 outside the name",
            &b"{\"name\":\"operations/x\",\"done\":false,\"metadata\":\"\xc0\xaf\"} \xff"[..],
        ),
        untracked(
            "deep nesting, not an object",
            format!("{}{}", "[".repeat(400_000), "]".repeat(400_000)),
        ),
        untracked(
            "deep nesting, unbalanced",
            format!(
                r#"{{"name":"operations/x","done":false,"metadata":{}"#,
                "{\"a\":".repeat(100_000)
            ),
        ),
        untracked("deep nesting, balanced, hostile name", deep_metadata),
        untracked(
            "body past max_inspect_bytes",
            format!(
                r#"{{"name":"projects/p/locations/l/operations/big","done":false,"metadata":"{}"}}"#,
                "x".repeat(2 << 20)
            ),
        ),
        Case {
            label: "endless body".to_owned(),
            content_encoding: None,
            served: Served::Endless(
                r#"{"name":"projects/p/locations/l/operations/endless","done":false,"metadata":""#,
            ),
            expect: Expect::Untracked,
        },
        Case {
            label: "hung body".to_owned(),
            content_encoding: None,
            served: Served::Hung(
                r#"{"name":"projects/p/locations/l/operations/hung","done":false"#,
            ),
            expect: Expect::Untracked,
        },
        Case {
            label: "content-encoding gzip".to_owned(),
            content_encoding: Some("gzip"),
            served: Served::Bytes(op(r#""projects/p/locations/l/operations/gzip""#)),
            expect: Expect::Untracked,
        },
        Case {
            label: "content-encoding br, identity".to_owned(),
            content_encoding: Some("br, identity"),
            served: Served::Bytes(op(r#""projects/p/locations/l/operations/br""#)),
            expect: Expect::Untracked,
        },
        // Accepted names that stay inert on the wire: the poll goes to the
        // same server, with every risky byte percent-encoded.
        inert(
            "userinfo-looking",
            &format!("operations/@{o}"),
            &format!("/v1/operations/%40{}", o.replace(':', "%3A")),
        ),
        inert(
            "user:pass@host-looking",
            &format!("operations/u:p@{o}/x"),
            &format!("/v1/operations/u%3Ap%40{}/x", o.replace(':', "%3A")),
        ),
        inert(
            "reserved characters",
            "operations/a+b;c=d&e,f:g",
            "/v1/operations/a%2Bb%3Bc%3Dd%26e%2Cf%3Ag",
        ),
        inert(
            "escapes stay literal",
            "operations/%41%2e%2e",
            "/v1/operations/%2541%252e%252e",
        ),
        inert(
            "custom-method-looking",
            "operations/x:cancel",
            "/v1/operations/x%3Acancel",
        ),
        inert(
            "unicode, fullwidth dots and solidus",
            "projects/p/operations/caf\u{e9}/\u{ff0e}\u{ff0e}/\u{ff0f}x",
            "/v1/projects/p/operations/caf%C3%A9/%EF%BC%8E%EF%BC%8E/%EF%BC%8Fx",
        ),
        inert(
            "overlong UTF-8 escape",
            "operations/%c0%ae%c0%ae",
            "/v1/operations/%25c0%25ae%25c0%25ae",
        ),
        Case {
            label: "deep metadata, valid name".to_owned(),
            content_encoding: None,
            served: Served::Bytes(Bytes::from(format!(
                r#"{{"metadata":{}{},"name":"projects/p/locations/l/operations/deep-ok"}}"#,
                "[".repeat(200_000),
                "]".repeat(200_000)
            ))),
            expect: Expect::Inert("/v1/projects/p/locations/l/operations/deep-ok".to_owned()),
        },
    ]
}
