//! `OperationName` validation (names are untrusted input), REST routes
//! (`{prefix}{name}`, `{prefix}{name}:cancel`, AIP-127 encoding) and `Operation`
//! decoding (AIP-151).

use std::error::Error as _;

use http::Uri;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use tower_lro::{InvalidOperationName, Operation, OperationName, RouteError, Status};

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

// ===== routes =====

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn name(s: &str) -> OperationName {
    OperationName::parse(s).unwrap()
}

#[test]
fn prefix_before_the_names_first_segment() {
    let n = name("projects/p/locations/l/operations/x");
    let req = uri("https://example.googleapis.com/v1/projects/p/locations/l/jobs");
    assert_eq!(
        n.cancel_uri(&req).unwrap(),
        "https://example.googleapis.com/v1/projects/p/locations/l/operations/x:cancel"
    );
    assert_eq!(
        n.get_uri(&req).unwrap(),
        "https://example.googleapis.com/v1/projects/p/locations/l/operations/x"
    );
}

#[test]
fn multi_segment_prefix() {
    let n = name("projects/p/locations/l/operations/x");
    let req = uri(
        "https://pubsublite.googleapis.com/v1/admin/projects/p/locations/l/subscriptions/s:seek",
    );
    assert_eq!(
        n.cancel_uri(&req).unwrap(),
        "https://pubsublite.googleapis.com/v1/admin/projects/p/locations/l/operations/x:cancel"
    );
}

#[test]
fn api_version_fallback() {
    let n = name("operations/x");
    for (request, expected) in [
        (
            "https://h/v1/projects/p/things:create",
            "https://h/v1/operations/x",
        ),
        (
            "https://h/v1beta1/things:create",
            "https://h/v1beta1/operations/x",
        ),
        ("https://h/v2alpha/a/b/c", "https://h/v2alpha/operations/x"),
        ("https://h/v1p1beta1/x", "https://h/v1p1beta1/operations/x"),
    ] {
        assert_eq!(n.get_uri(&uri(request)).unwrap(), expected, "{request}");
    }
}

#[test]
fn no_prefix_is_an_error_naming_the_path() {
    let n = name("operations/x");
    for request in [
        "https://h/api/things:create",
        "https://h/",
        "https://h",
        "https://h/V1/things",
        "https://h/v1",
        "https://h/version1/things",
        "/api/things",
    ] {
        let req = uri(request);
        let e = n.cancel_uri(&req).unwrap_err();
        assert!(
            e.to_string().contains(&format!("\"{}\"", req.path())),
            "{request}: {e}"
        );
        assert!(n.get_uri(&req).is_err(), "{request}");
    }
}

#[test]
fn the_names_first_segment_at_the_start_of_the_path_is_not_a_prefix() {
    let n = name("projects/p/locations/l/operations/x");
    assert!(n
        .cancel_uri(&uri("https://h/projects/p/locations/l/jobs"))
        .is_err());
    let n = name("operations/x");
    assert!(n.get_uri(&uri("https://h/operations/y")).is_err());
    // ... and does not hide the API-version rule.
    let n = name("v1/operations/x");
    assert_eq!(
        n.get_uri(&uri("https://h/v1/things")).unwrap(),
        "https://h/v1/v1/operations/x"
    );
}

#[test]
fn only_the_first_match_counts() {
    let n = name("operations/x");
    assert_eq!(
        n.get_uri(&uri("https://h/v1/a/operations/b/operations/c"))
            .unwrap(),
        "https://h/v1/a/operations/x"
    );
}

#[test]
fn scheme_and_authority_come_only_from_the_request() {
    let req = uri("http://127.0.0.1:8080/v1/projects/p/things:create?alt=json&x=1");
    for (n, path) in [
        ("operations/@evil.example", "/v1/operations/%40evil.example"),
        (
            "operations/evil.example:443",
            "/v1/operations/evil.example%3A443",
        ),
        (
            "projects/p/operations/a:b",
            "/v1/projects/p/operations/a%3Ab",
        ),
        ("operations/100%", "/v1/operations/100%25"),
        ("operations/%41", "/v1/operations/%2541"),
        ("operations/caf\u{e9}", "/v1/operations/caf%C3%A9"),
        ("operations/a+b;c=d&e", "/v1/operations/a%2Bb%3Bc%3Dd%26e"),
        ("operations/-_.~", "/v1/operations/-_.~"),
    ] {
        let cancel = name(n).cancel_uri(&req).unwrap();
        assert_eq!(cancel.scheme_str(), Some("http"), "{n}");
        assert_eq!(cancel.authority().unwrap(), "127.0.0.1:8080", "{n}");
        assert_eq!(cancel.path(), format!("{path}:cancel"), "{n}");
        assert_eq!(cancel.query(), None, "{n}");
        let get = name(n).get_uri(&req).unwrap();
        assert_eq!(get.path(), path, "{n}");
        assert_eq!(get.query(), None, "{n}");
    }
}

#[test]
fn path_only_request_gives_path_only_uri() {
    let n = name("projects/p/operations/x");
    let cancel = n.cancel_uri(&uri("/v1/projects/p/things:create")).unwrap();
    assert_eq!(cancel.scheme(), None);
    assert_eq!(cancel.authority(), None);
    assert_eq!(cancel, "/v1/projects/p/operations/x:cancel");
}

#[test]
fn authority_without_scheme_is_an_error() {
    // Authority-form (CONNECT) requests have no path to derive a prefix from.
    let n = name("operations/x");
    assert!(n.cancel_uri(&uri("example.com:443")).is_err());
}

// ===== property: whatever parses routes safely =====

// An independent statement of the rules, to compare with `parse` and the
// routes built: the same checker the fuzz targets use (it panics, naming the
// input, when a route breaks a rule; proptest reports and shrinks that).
#[path = "fuzz/invariants.rs"]
#[allow(dead_code)]
mod invariants;
use invariants::{check_route, reference_accepts};

const REQUESTS: &[&str] = &[
    "https://example.googleapis.com:8443/v1/projects/p/things:create?alt=json",
    "http://[::1]:8080/v1beta1/a/operations/b",
    "https://user@h/v2/x/y/z",
    "/v3/projects/p/things:create",
    "https://h/api/projects/p",
    "https://h/nothing/here",
];

fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => prop::sample::select(vec![
            '/', '.', '%', ':', '?', '#', '@', '+', ';', '\\', '\r', '\n', '\0', ' ', '\t',
            '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}', '\u{202e}', '\u{feff}', 'é', '😀',
            '0', '2', '5', 'e', 'E', 'f', 'F', 'a', 'p', '~', '-', '_', '=', '&',
        ]),
        2 => any::<char>(),
    ]
}

fn nasty_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(nasty_char(), 0..8).prop_map(|v| v.into_iter().collect()),
        2 => prop::sample::select(vec![
            "", ".", "..", "...", "%2e", "%2E%2e", ".%2e", "%2F", "%2f", "%252F", "%25", "%",
            "%zz", "%41", "%0a", "%20", "%3F", "%23", "%5C", "%C2%A0", "a:b", "https:", "x",
            "projects", "operations", "v1", "p",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z0-9-]{1,8}",
    ]
}

/// Characters that survive validation but still need care on the wire.
fn tricky_but_valid_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '%', ':', '@', '+', ';', '=', '&', '.', '~', '$', '!', '*', '\'', '(', ')', '[', ']',
            '"', '<', '>', '^', '`', '{', '|', '}', 'é', '😀', '\u{202e}', '\u{feff}', '2', '5',
            'e', 'E', 'f', 'F', 'a',
        ]),
        1 => any::<char>().prop_filter("visible", |c| !c.is_control() && !c.is_whitespace()),
    ]
}

fn tricky_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(tricky_but_valid_char(), 1..8).prop_map(|v| v.into_iter().collect()),
        1 => nasty_segment(),
    ]
}

fn nasty_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(nasty_segment(), 1..6).prop_map(|s| s.join("/")),
        5 => ("(projects|operations|v1|p)", prop::collection::vec(tricky_segment(), 1..5))
            .prop_map(|(head, tail)| format!("{head}/{}", tail.join("/"))),
        2 => prop::collection::vec(nasty_char(), 0..24).prop_map(|v| v.into_iter().collect()),
        2 => ("(projects|operations)/[a-z]{1,3}/", prop::collection::vec(nasty_char(), 0..12))
            .prop_map(|(head, tail)| head + &tail.into_iter().collect::<String>()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn parse_matches_the_rules(name in nasty_name()) {
        let parsed = OperationName::parse(&name);
        prop_assert_eq!(parsed.is_ok(), reference_accepts(&name), "{:?}: {:?}", name, parsed);
        if let Err(e) = parsed {
            let shown = e.to_string();
            prop_assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\0'));
            prop_assert!(shown.chars().count() <= 32 * 10 + 200);
        }
    }

    #[test]
    fn routes_keep_the_request_origin_and_the_exact_name(name in nasty_name(), request in prop::sample::select(REQUESTS)) {
        let request: Uri = request.parse().unwrap();
        if let Ok(name) = OperationName::parse(&name) {
            check_route(&name, &request, ":cancel");
            check_route(&name, &request, "");
        }
    }
}

#[test]
fn nasty_names_do_get_through_sometimes() {
    // Guard against a property that passes because nothing parses.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = nasty_name();
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..2000 {
        let name = strategy.new_tree(&mut runner).unwrap().current();
        match OperationName::parse(&name) {
            Ok(_) if name.contains(['%', ':', '@', '+']) => accepted += 1,
            Ok(_) => {}
            Err(_) => rejected += 1,
        }
    }
    assert!(accepted > 300, "only {accepted} of 2000 nasty names parsed");
    assert!(
        rejected > 300,
        "only {rejected} of 2000 nasty names were rejected"
    );
}

// ===== Operation =====

#[test]
fn operation_not_done() {
    let op = Operation::from_json(
        br#"{"name":"projects/p/operations/x","metadata":{"@type":"type.googleapis.com/x.Meta","progress":5}}"#,
    )
    .unwrap();
    assert_eq!(op.name, "projects/p/operations/x");
    assert!(!op.done);
    assert_eq!(op.error, None);
    assert_eq!(
        op.metadata.as_ref().unwrap().get(),
        r#"{"@type":"type.googleapis.com/x.Meta","progress":5}"#
    );
    assert!(op.response.is_none());
    assert!(!op.is_cancelled());
}

#[test]
fn operation_done_with_response() {
    let op = Operation::from_json(
        br#"{"name":"operations/x","done":true,"response":{"@type":"type.googleapis.com/x.R","id":[1, 2]}}"#,
    )
    .unwrap();
    assert!(op.done);
    assert_eq!(
        op.response.as_ref().unwrap().get(),
        r#"{"@type":"type.googleapis.com/x.R","id":[1, 2]}"#
    );
    assert!(!op.is_cancelled());
}

#[test]
fn operation_cancelled() {
    let op = Operation::from_json(
        br#"{"name":"operations/x","done":true,"error":{"code":1,"message":"Operation was cancelled.","details":[{"@type":"t"}]}}"#,
    )
    .unwrap();
    let error = op.error.as_ref().unwrap();
    assert_eq!(error.code, Status::CANCELLED);
    assert_eq!(error.message, "Operation was cancelled.");
    assert!(op.is_cancelled());
}

#[test]
fn is_cancelled_needs_done_and_code_1() {
    let cases = [
        (r#"{"done":true,"error":{"code":1}}"#, true),
        (r#"{"done":true,"error":{"code":"1"}}"#, true),
        (r#"{"done":false,"error":{"code":1}}"#, false),
        (r#"{"error":{"code":1}}"#, false),
        (r#"{"done":true,"error":{"code":2}}"#, false),
        (r#"{"done":true,"error":{}}"#, false),
        (r#"{"done":true}"#, false),
        (r#"{"done":true,"error":null}"#, false),
    ];
    for (json, cancelled) in cases {
        assert_eq!(
            Operation::from_json(json.as_bytes())
                .unwrap()
                .is_cancelled(),
            cancelled,
            "{json}"
        );
    }
}

#[test]
fn operation_defaults_and_nulls() {
    let empty = Operation::from_json(b"{}").unwrap();
    assert_eq!(empty.name, "");
    assert!(
        !empty.done
            && empty.error.is_none()
            && empty.metadata.is_none()
            && empty.response.is_none()
    );
    let nulls = Operation::from_json(
        br#"{"name":null,"done":null,"error":null,"metadata":null,"response":null,"extra":null}"#,
    )
    .unwrap();
    assert_eq!(nulls, empty);
    let status = Operation::from_json(br#"{"error":{"code":null,"message":null}}"#)
        .unwrap()
        .error
        .unwrap();
    assert_eq!((status.code, status.message.as_str()), (0, ""));
}

#[test]
fn status_codes() {
    for (json, code) in [
        (r#"{"error":{"code":5}}"#, Status::NOT_FOUND),
        (r#"{"error":{"code":12}}"#, Status::UNIMPLEMENTED),
        (r#"{"error":{"code":"14"}}"#, Status::UNAVAILABLE),
        (r#"{"error":{"code":-1}}"#, -1),
        (r#"{"error":{"message":"m"}}"#, 0),
    ] {
        assert_eq!(
            Operation::from_json(json.as_bytes())
                .unwrap()
                .error
                .unwrap()
                .code,
            code,
            "{json}"
        );
    }
}

#[test]
fn operation_errors() {
    for json in [
        "",
        "null",
        "[]",
        r#"["operations/x", true]"#,
        r#""operations/x""#,
        r#"{"name":"a","name":"b"}"#,
        r#"{"done":true,"done":true}"#,
        r#"{"error":{},"error":{}}"#,
        r#"{"metadata":1,"metadata":2}"#,
        r#"{"name":1}"#,
        r#"{"done":"true"}"#,
        r#"{"done":0}"#,
        r#"{"error":"failed"}"#,
        r#"{"error":[1,"m"]}"#,
        r#"{"error":{"code":1.5}}"#,
        r#"{"error":{"code":"one"}}"#,
        r#"{"error":{"code":4294967296}}"#,
        r#"{"error":{"code":1,"code":2}}"#,
        r#"{"error":{"message":7}}"#,
        r#"{"name":"a"} {}"#,
        r#"{"name":"a""#,
    ] {
        assert!(Operation::from_json(json.as_bytes()).is_err(), "{json}");
    }
}

#[test]
fn operation_eq_and_clone() {
    let json = br#"{"name":"operations/x","done":true,"error":{"code":1,"message":"m"},"metadata":{"a":1},"response":[]}"#;
    let a = Operation::from_json(json).unwrap();
    let b = Operation::from_json(json).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.clone(), a);
    let spaced = Operation::from_json(
        br#"{"name":"operations/x","done":true,"error":{"code":1,"message":"m"},"metadata":{ "a": 1 },"response":[]}"#,
    )
    .unwrap();
    assert_ne!(a, spaced, "metadata is compared as text");
    let other = Operation::from_json(br#"{"name":"operations/y","done":true}"#).unwrap();
    assert_ne!(a, other);
}

// ===== hostile names, name by name =====

/// What the URL builders must do with a name: refuse it (with this rule), or
/// route it to exactly this path on the request's own origin.
enum Fate {
    Rejected(&'static str),
    Routed(&'static str),
}

#[test]
fn hostile_names_are_rejected_or_inert() {
    use Fate::*;
    let request = uri("https://api.example.com:8443/v1/projects/p/locations/l/jobs?alt=json");
    let long = format!("operations/{}", "\u{e9}".repeat(2043));
    assert_eq!(long.len(), 4097);
    let cases: Vec<(&str, Fate)> = vec![
        // Dot segments, raw or escaped in any case, single or double.
        ("operations/..", Rejected(DOT_SEGMENT)),
        ("operations/%2e%2e", Rejected(ESCAPED_DOT_SEGMENT)),
        ("operations/%2E%2E", Rejected(ESCAPED_DOT_SEGMENT)),
        ("operations/%2e%2E/admin", Rejected(ESCAPED_DOT_SEGMENT)),
        ("operations/%252e%252e", Rejected(ESCAPED_DOT_SEGMENT)),
        ("operations/%2e%2e%2f", Rejected(ESCAPED_FORBIDDEN)),
        ("operations/x%2e%2e", Routed("/v1/operations/x%252e%252e")),
        // Slashes smuggled as escapes or backslashes.
        ("operations/a%2Fb", Rejected(ESCAPED_FORBIDDEN)),
        ("operations/a%2fb", Rejected(ESCAPED_FORBIDDEN)),
        ("operations/a%5cb", Rejected(ESCAPED_FORBIDDEN)),
        ("operations/a\\b", Rejected(BACKSLASH)),
        // Other hosts.
        ("https://evil.example/v1/operations/x", Rejected(SCHEME)),
        ("HTTPS://EVIL.EXAMPLE/x", Rejected(SCHEME)),
        ("file:///etc/passwd", Rejected(SCHEME)),
        ("data:text/plain,x", Rejected(SCHEME)),
        ("evil.example:443/operations/x", Rejected(SCHEME)),
        ("//evil.example/operations/x", Rejected(LEADING_SLASH)),
        ("\\\\evil.example\\operations\\x", Rejected(BACKSLASH)),
        ("/\\evil.example/x", Rejected(BACKSLASH)),
        ("\\/evil.example/x", Rejected(BACKSLASH)),
        ("%2F%2Fevil.example/x", Rejected(ESCAPED_FORBIDDEN)),
        ("%5C%5Cevil.example/x", Rejected(ESCAPED_FORBIDDEN)),
        (
            "operations/@evil.example",
            Routed("/v1/operations/%40evil.example"),
        ),
        (
            "operations/user:pw@evil.example:80/x",
            Routed("/v1/operations/user%3Apw%40evil.example%3A80/x"),
        ),
        // Query, fragment, parameters.
        ("operations/x?alt=media", Rejected(QUESTION_MARK)),
        ("operations/x%3Falt=media", Rejected(ESCAPED_FORBIDDEN)),
        ("operations/x#top", Rejected(HASH)),
        ("operations/x%23top", Rejected(ESCAPED_FORBIDDEN)),
        (
            "operations/x;jsessionid=1",
            Routed("/v1/operations/x%3Bjsessionid%3D1"),
        ),
        ("operations/a+b", Routed("/v1/operations/a%2Bb")),
        ("operations/x:cancel", Routed("/v1/operations/x%3Acancel")),
        // Header injection: CR, LF, NUL, raw or escaped.
        (
            "operations/x\r\nHost: evil",
            Rejected(CONTROL_OR_WHITESPACE),
        ),
        ("operations/x\nX: y", Rejected(CONTROL_OR_WHITESPACE)),
        ("operations/x\0", Rejected(CONTROL_OR_WHITESPACE)),
        (
            "operations/x%0D%0AHost:%20evil",
            Rejected(ESCAPED_FORBIDDEN),
        ),
        ("operations/x%00", Rejected(ESCAPED_FORBIDDEN)),
        ("operations/x%2500", Rejected(ESCAPED_FORBIDDEN)),
        // Unicode: lookalikes are inert bytes on the wire.
        (
            "operations/\u{ff0e}\u{ff0e}/\u{ff0f}x",
            Routed("/v1/operations/%EF%BC%8E%EF%BC%8E/%EF%BC%8Fx"),
        ),
        ("operations/\u{2215}x", Routed("/v1/operations/%E2%88%95x")),
        ("operations/\u{202e}x", Routed("/v1/operations/%E2%80%AEx")),
        ("operations/\u{200b}", Routed("/v1/operations/%E2%80%8B")),
        // Overlong UTF-8 escapes stay literal text.
        (
            "operations/%c0%ae%c0%ae",
            Routed("/v1/operations/%25c0%25ae%25c0%25ae"),
        ),
        ("operations/%c0%af", Routed("/v1/operations/%25c0%25af")),
        // Length counts bytes.
        (&long, Rejected(TOO_LONG)),
    ];
    let mut failures = Vec::new();
    for (name, fate) in &cases {
        match (OperationName::parse(name), fate) {
            (Err(e), Rejected(reason)) if e.reason() == *reason => {}
            (Ok(n), Routed(path)) => {
                let get = n.get_uri(&request).unwrap();
                let cancel = n.cancel_uri(&request).unwrap();
                let want_get = format!("https://api.example.com:8443{path}");
                let want_cancel = format!("{want_get}:cancel");
                if get != want_get.as_str() || cancel != want_cancel.as_str() {
                    failures.push(format!("{name:?}: routed to {get} and {cancel}"));
                }
            }
            (Err(e), _) => failures.push(format!("{name:?}: rejected: {e}")),
            (Ok(n), _) => failures.push(format!("{name:?}: accepted as {n:?}")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn rejection_messages_never_echo_control_characters() {
    for name in [
        "operations/x\r\nSet-Cookie: a=b",
        "\u{0}\u{1b}[31mred",
        "operations/\u{85}\u{2028}\u{9b}",
    ] {
        let shown = rejected(name).to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The issue's property over any string at all (not only the shaped
    /// ones above), and request URIs of any shape: either parse fails, or the
    /// built URI has the request's scheme and authority, no query or
    /// fragment, and a path that decodes to exactly `prefix + name (+ ":cancel")`.
    #[test]
    fn any_string_either_fails_or_routes_safely(
        name in prop_oneof![any::<String>(), nasty_name()],
        scheme in prop::sample::select(vec!["http", "https"]),
        host in prop::sample::select(vec!["h", "127.0.0.1:8080", "[::1]:1", "u:p@h.example"]),
        path in prop::collection::vec(
            prop_oneof![
                prop::sample::select(vec!["v1", "v2beta", "projects", "operations", "p", "%41", "x:y", "caf%C3%A9", ""])
                    .prop_map(str::to_owned),
                "[a-z0-9]{1,4}",
            ],
            0..6,
        ),
        query in prop::option::of("[a-z=&]{0,6}"),
    ) {
        let mut text = format!("{scheme}://{host}/{}", path.join("/"));
        if let Some(q) = query {
            text = format!("{text}?{q}");
        }
        let request: Uri = text.parse().unwrap();
        if let Ok(name) = OperationName::parse(&name) {
            check_route(&name, &request, ":cancel");
            check_route(&name, &request, "");
        }
    }

    /// Raw bytes from a response body (lossily decoded, as JSON parsing never
    /// gives invalid UTF-8): the same.
    #[test]
    fn any_bytes_either_fail_or_route_safely(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let name = String::from_utf8_lossy(&bytes);
        let request = uri("https://h.example/v1/projects/p/things:create");
        match OperationName::parse(&name) {
            Ok(parsed) => {
                prop_assert!(reference_accepts(&name));
                check_route(&parsed, &request, ":cancel");
                check_route(&parsed, &request, "");
            }
            Err(e) => {
                prop_assert!(!reference_accepts(&name));
                prop_assert!(!e.to_string().chars().any(char::is_control));
            }
        }
    }
}
