//! Replays the fuzz seeds (`tests/fuzz/seeds/<target>/`, including every crash the
//! fuzzer found, minimised) through the fuzz targets' own invariant checks,
//! so that `cargo test` on stable runs them without `cargo fuzz`.

use crate::invariants;

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every seed of `target`, each in its own `catch_unwind`,
/// and reports every seed that failed, by file name.
fn replay(target: &str, check: fn(&[u8])) {
    let files = seeds(target);
    assert!(
        files.len() >= 20,
        "expected the committed seeds in tests/fuzz/seeds/{target}/, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            failures.push(file.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn operation_name_seeds_hold_the_invariants() {
    replay("operation_name", invariants::operation_name);
}

#[test]
fn inspect_seeds_hold_the_invariants() {
    replay("inspect", invariants::inspect);
}

/// The replay is not vacuous: the seeds reach both outcomes of both targets.
#[test]
fn the_seeds_reach_every_outcome() {
    use http::Uri;
    use tower_lro::OperationName;

    // The reference rules (the oracle for `parse`) restate the untrusted-name
    // rules: empty, over 4 KiB, a leading `/`, empty/`.`/`..` segments,
    // control characters, whitespace, `?`, `#`, `\`, escapes of those, a scheme.
    assert!(invariants::reference_accepts("operations/x"));
    assert!(!invariants::reference_accepts("operations/%2e%2e"));
    assert!(!invariants::reference_accepts("//evil.example/x"));

    // Seeds exercise both outcomes of both targets.
    let request: Uri = invariants::NAME_REQUESTS[0].parse().unwrap();
    let (mut accepted, mut rejected) = (0, 0);
    for file in seeds("operation_name") {
        let data = std::fs::read(file).unwrap();
        let name = String::from_utf8_lossy(data.get(1..).unwrap_or_default()).into_owned();
        match OperationName::parse(&name) {
            Ok(n) if n.get_uri(&request).is_ok() => accepted += 1,
            Ok(_) => {}
            Err(_) => rejected += 1,
        }
    }
    assert!(accepted >= 5 && rejected >= 10, "{accepted} / {rejected}");

    let mut recognised = 0;
    let mut untracked = 0;
    for file in seeds("inspect") {
        let data = std::fs::read(file).unwrap();
        let (request, prefix) = invariants::INSPECT_REQUESTS
            [usize::from(data.first().copied().unwrap_or(0)) % invariants::INSPECT_REQUESTS.len()];
        let request: Uri = request.parse().unwrap();
        match tower_lro::__fuzz::recognise(&data[1..], &request, prefix) {
            Ok(_) => recognised += 1,
            Err(_) => untracked += 1,
        }
    }
    assert!(
        recognised >= 5 && untracked >= 15,
        "{recognised} / {untracked}"
    );

    // The hidden entry point is the layer's rule: an override routes there,
    // and no override on a path without a prefix tracks nothing.
    let body = br#"{"name":"operations/x"}"#;
    let request: Uri = "http://h/api/x".parse().unwrap();
    let (name, get, cancel) = tower_lro::__fuzz::recognise(body, &request, Some("/v1/")).unwrap();
    assert_eq!(name.as_str(), "operations/x");
    assert_eq!(get, "http://h/v1/operations/x");
    assert_eq!(cancel, "http://h/v1/operations/x:cancel");
    let (reason, warn) = tower_lro::__fuzz::recognise(body, &request, None).unwrap_err();
    assert!(warn);
    assert!(
        reason.contains("set CancelOnDropLayer::path_prefix"),
        "{reason}"
    );
}
