//! `OperationName` validation (names are untrusted input), REST routes
//! (`{prefix}{name}`, `{prefix}{name}:cancel`, AIP-127 encoding) and `Operation`
//! decoding (AIP-151).

use std::error::Error as _;

use http::Uri;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tower_lro::{InvalidOperationName, Operation, OperationName, RouteError, Status};

mod hostile_names;
mod operation;
mod routes;

// ===== rejection rules =====

const EMPTY: &str = "empty";
const TOO_LONG: &str = "longer than 4096 bytes";
const CONTROL_OR_WHITESPACE: &str = "contains a control character or whitespace";
const QUESTION_MARK: &str = "contains '?'";
const HASH: &str = "contains '#'";
const BACKSLASH: &str = "contains '\\'";
const LEADING_SLASH: &str = "starts with '/'";
const SCHEME: &str = "first segment contains ':' (a URI scheme)";
const EMPTY_SEGMENT: &str = "has an empty segment";
const DOT_SEGMENT: &str = "has a '.' or '..' segment";
const ESCAPED_FORBIDDEN: &str =
    "has a %-escape that decodes to a control character, whitespace, '?', '#', '/' or '\\'";
const ESCAPED_DOT_SEGMENT: &str = "has a %-escape that makes a '.' or '..' segment";

fn rejected(name: &str) -> InvalidOperationName {
    match OperationName::parse(name) {
        Ok(n) => panic!("{name:?} was accepted as {n:?}"),
        Err(e) => e,
    }
}

#[test]
fn rejection_rules() {
    let long = "a".repeat(4097);
    let cases: &[(&str, &str)] = &[
        ("", EMPTY),
        (&long, TOO_LONG),
        // control characters and Unicode whitespace
        ("operations/x\n", CONTROL_OR_WHITESPACE),
        ("operations/x\r\nHost: evil", CONTROL_OR_WHITESPACE),
        ("operations/\0", CONTROL_OR_WHITESPACE),
        ("operations/\u{7f}", CONTROL_OR_WHITESPACE),
        ("operations/\u{85}", CONTROL_OR_WHITESPACE),
        ("operations/\u{9b}", CONTROL_OR_WHITESPACE),
        ("operations/x y", CONTROL_OR_WHITESPACE),
        ("operations/x\t", CONTROL_OR_WHITESPACE),
        ("operations/\u{a0}", CONTROL_OR_WHITESPACE),
        ("operations/\u{2028}", CONTROL_OR_WHITESPACE),
        ("operations/\u{3000}", CONTROL_OR_WHITESPACE),
        (" operations/x", CONTROL_OR_WHITESPACE),
        // URI delimiters
        ("operations/x?alt=json", QUESTION_MARK),
        ("?", QUESTION_MARK),
        ("operations/x#fragment", HASH),
        ("operations\\x", BACKSLASH),
        ("operations/..\\..\\x", BACKSLASH),
        // structure
        ("/operations/x", LEADING_SLASH),
        ("//evil.example/operations/x", LEADING_SLASH),
        ("/", LEADING_SLASH),
        ("https://evil.example/operations/x", SCHEME),
        ("http:evil", SCHEME),
        ("mailto:someone@example.com", SCHEME),
        ("javascript:alert(1)", SCHEME),
        ("projects:x/operations/y", SCHEME),
        (":", SCHEME),
        ("operations//x", EMPTY_SEGMENT),
        ("operations/x/", EMPTY_SEGMENT),
        ("operations/", EMPTY_SEGMENT),
        ("operations/./x", DOT_SEGMENT),
        ("operations/../x", DOT_SEGMENT),
        ("operations/x/..", DOT_SEGMENT),
        ("./x", DOT_SEGMENT),
        ("..", DOT_SEGMENT),
        ("projects/p/../../admin", DOT_SEGMENT),
        // escapes that decode to something forbidden
        ("operations/a%2Fb", ESCAPED_FORBIDDEN),
        ("operations/a%2fb", ESCAPED_FORBIDDEN),
        ("operations/%2F..%2Fadmin", ESCAPED_FORBIDDEN),
        ("operations/a%3Fb", ESCAPED_FORBIDDEN),
        ("operations/a%23b", ESCAPED_FORBIDDEN),
        ("operations/a%5Cb", ESCAPED_FORBIDDEN),
        ("operations/a%20b", ESCAPED_FORBIDDEN),
        ("operations/a%0d%0aHost:%20evil", ESCAPED_FORBIDDEN),
        ("operations/%00", ESCAPED_FORBIDDEN),
        ("operations/%7F", ESCAPED_FORBIDDEN),
        ("operations/%09", ESCAPED_FORBIDDEN),
        ("operations/%C2%85", ESCAPED_FORBIDDEN),
        ("operations/%C2%A0", ESCAPED_FORBIDDEN),
        ("operations/%E2%80%A8", ESCAPED_FORBIDDEN),
        ("operations/%252F", ESCAPED_FORBIDDEN),
        ("operations/%25252f", ESCAPED_FORBIDDEN),
        ("operations/%253F", ESCAPED_FORBIDDEN),
        ("%2F/x", ESCAPED_FORBIDDEN),
        // escapes that make a dot segment
        ("operations/%2e", ESCAPED_DOT_SEGMENT),
        ("operations/%2E", ESCAPED_DOT_SEGMENT),
        ("operations/%2e%2e", ESCAPED_DOT_SEGMENT),
        ("operations/%2E%2E/x", ESCAPED_DOT_SEGMENT),
        ("operations/.%2e/x", ESCAPED_DOT_SEGMENT),
        ("operations/%2e./x", ESCAPED_DOT_SEGMENT),
        ("operations/%252e%252e", ESCAPED_DOT_SEGMENT),
        ("%2e%2e/x", ESCAPED_DOT_SEGMENT),
    ];
    let mut failures = Vec::new();
    for (name, reason) in cases {
        match OperationName::parse(name) {
            Ok(n) => failures.push(format!("{name:?}: accepted as {n:?}, expected {reason:?}")),
            Err(e) if e.reason() != *reason => failures.push(format!(
                "{name:?}: reason {:?}, expected {reason:?}",
                e.reason()
            )),
            Err(e) => {
                let shown = e.to_string();
                if !shown.contains(reason) {
                    failures.push(format!(
                        "{name:?}: Display {shown:?} does not name the rule"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn accepted_names() {
    let longest = format!("operations/{}", "a".repeat(4096 - "operations/".len()));
    assert_eq!(longest.len(), 4096);
    for name in [
        "x",
        "operations/x",
        "operations/operation-1700000000000-abc123",
        "projects/my-project/locations/us-central1/operations/operation-1700000000000-abc123",
        "operations/projects/my-project/locations/us-central1/operations/x",
        "operations/a:b",
        "operations/x:cancel",
        "operations/a@b+c;d=e&f,g!h*i'j(k)l$m[n]o",
        "operations/100%",
        "operations/%zz",
        "operations/%4",
        "operations/%41",
        "operations/a%2e",
        "operations/...",
        "operations/.x",
        "operations/x.",
        "operations/~user",
        "projects/p/operations/caf\u{e9}/\u{1F600}",
        "operations/\u{202e}",
        &longest,
    ] {
        match OperationName::parse(name) {
            Ok(n) => {
                assert_eq!(n.as_str(), name);
                assert_eq!(n.to_string(), name);
            }
            Err(e) => panic!("{name:?} rejected: {e}"),
        }
    }
}

#[test]
fn the_first_failing_rule_is_reported() {
    // Length is checked before anything is scanned.
    assert_eq!(rejected(&"/?#\n".repeat(2000)).reason(), TOO_LONG);
    // The scheme is reported, not the empty segment of `//`.
    assert_eq!(rejected("https://evil.example/x").reason(), SCHEME);
    // Characters come before structure.
    assert_eq!(rejected("/operations/x?").reason(), QUESTION_MARK);
}

#[test]
fn display_shows_at_most_32_chars_escaped() {
    let secret = "S".repeat(1000);
    let e = rejected(&format!("operations/{secret}?"));
    let shown = e.to_string();
    assert_eq!(e.reason(), QUESTION_MARK);
    assert!(!shown.contains(&"S".repeat(22)), "{shown}");
    assert!(shown.contains(&"S".repeat(21)), "{shown}");
    assert!(shown.contains('…'), "{shown}");
    assert!(shown.len() < 150, "{shown}");

    let e = rejected("operations/x\r\nSet-Cookie: a=b");
    let shown = e.to_string();
    assert!(
        shown.contains(r"operations/x\r\nSet-Cookie: a=b"),
        "{shown}"
    );
    assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown}");
    assert!(!shown.contains('…'), "{shown}");

    // 32 characters, not bytes: never splits a character.
    let e = rejected(&format!("{}?", "é".repeat(40)));
    assert!(e.to_string().contains(&"é".repeat(32)));
    assert!(!e.to_string().contains(&"é".repeat(33)));

    let e = rejected("");
    assert_eq!(e.to_string(), "invalid operation name \"\": empty");
}

#[test]
fn error_types_are_well_behaved() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<InvalidOperationName>();
    assert_error::<RouteError>();
    fn assert_value<T: Clone + Send + Sync + std::hash::Hash + Eq + std::fmt::Display>() {}
    assert_value::<OperationName>();
    let e = rejected("a//b");
    assert_eq!(e.clone(), e);
    assert!(e.source().is_none());
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn name(s: &str) -> OperationName {
    OperationName::parse(s).unwrap()
}
