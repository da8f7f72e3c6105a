//! Hostile names, by property (whatever parses routes safely, checked by
//! the fuzz targets' invariants) and name by name.

use super::*;

// ===== property: whatever parses routes safely =====

// An independent statement of the rules, to compare with `parse` and the
// routes built: the same checker the fuzz targets use (it panics, naming the
// input, when a route breaks a rule; proptest reports and shrinks that).
use crate::invariants::{check_route, reference_accepts};

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

    /// The property over any string at all (not only the shaped
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
