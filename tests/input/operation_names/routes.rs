//! REST routes from a name: the prefix before the name's first segment, the
//! API version fallback, and scheme and authority from the request only.

use super::*;

// ===== routes =====

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
