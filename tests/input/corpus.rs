//! The URL builders against real endpoints from Google API discovery documents
//! (`tests/data/operation_urls.tsv`, see `tests/data/README.md`): every documented
//! CancelOperation and GetOperation URL must be reproduced byte for byte.

use http::Uri;
use tower_lro::OperationName;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/operation_urls.tsv");

struct Row {
    line: usize,
    name: String,
    cancel_url: String,
    get_url: Option<String>,
    api: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(CORPUS).unwrap_or_else(|e| panic!("reading {CORPUS}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(
                fields.len(),
                4,
                "line {}: expected 4 tab-separated fields: {line:?}",
                i + 1
            );
            Row {
                line: i + 1,
                name: fields[0].to_owned(),
                cancel_url: fields[1].to_owned(),
                get_url: (fields[2] != "-").then(|| fields[2].to_owned()),
                api: fields[3].to_owned(),
            }
        })
        .collect()
}

/// The original request for a row: the GetOperation URL (resuming an
/// operation by name) or, where there is none, a method on the API's base URL
/// and version, taken from the cancel URL.
fn request_uri(row: &Row) -> Result<Uri, String> {
    if let Some(get) = &row.get_url {
        return get
            .parse()
            .map_err(|e| format!("get_url does not parse: {e}"));
    }
    let cancel: Uri = row
        .cancel_url
        .parse()
        .map_err(|e| format!("cancel_url does not parse: {e}"))?;
    let host = cancel.authority().ok_or("cancel_url has no authority")?;
    let version = cancel
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .ok_or("cancel_url has no path")?;
    format!("https://{host}/{version}/projects/my-project/things:create")
        .parse()
        .map_err(|e| format!("request URI does not parse: {e}"))
}

fn check(row: &Row) -> Result<(), String> {
    let name = OperationName::parse(&row.name).map_err(|e| format!("parse: {e}"))?;
    let request = request_uri(row)?;
    let cancel = name
        .cancel_uri(&request)
        .map_err(|e| format!("cancel_uri({request}): {e}"))?;
    let mut problems = Vec::new();
    if cancel.to_string() != row.cancel_url {
        problems.push(format!(
            "cancel_uri({request}) = {cancel}, documented {}",
            row.cancel_url
        ));
    }
    if let Some(get_url) = &row.get_url {
        let get = name
            .get_uri(&request)
            .map_err(|e| format!("get_uri({request}): {e}"))?;
        if get.to_string() != *get_url {
            problems.push(format!("get_uri({request}) = {get}, documented {get_url}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn every_documented_route_is_reproduced() {
    let rows = rows();
    assert!(
        rows.len() > 200,
        "only {} rows read from {CORPUS}; the corpus has 207",
        rows.len()
    );
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            check(row)
                .err()
                .map(|e| format!("line {} ({}, {}): {e}", row.line, row.api, row.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_covers_both_request_shapes() {
    let rows = rows();
    let without_get = rows.iter().filter(|r| r.get_url.is_none()).count();
    assert!(without_get > 0, "no row exercises the base-URL request");
    assert!(
        without_get < rows.len(),
        "no row exercises the get_url request"
    );
    assert!(
        rows.iter().any(|r| r.cancel_url.contains("/v1/admin/")),
        "no row exercises a multi-segment prefix"
    );
}

/// The two reference systems: Gemini Code Assist (cloudaicompanion) and
/// Cloud Deploy, both `v1` with `projects/*/locations/*/operations/*` names.
#[test]
fn reference_systems() {
    for host in [
        "cloudaicompanion.googleapis.com",
        "clouddeploy.googleapis.com",
    ] {
        let name = OperationName::parse("projects/p/locations/global/operations/o").unwrap();
        for request in [
            format!("https://{host}/v1/projects/p/locations/global/codeRepositoryIndexes?codeRepositoryIndexId=i"),
            format!("https://{host}/v1/projects/p/locations/global/deliveryPipelines/d/releases/r:abandon"),
            format!("https://{host}/v1/projects/p/locations/global/operations/o"),
        ] {
            let request: Uri = request.parse().unwrap();
            assert_eq!(
                name.cancel_uri(&request).unwrap().to_string(),
                format!("https://{host}/v1/projects/p/locations/global/operations/o:cancel"),
                "{request}"
            );
            assert_eq!(
                name.get_uri(&request).unwrap().to_string(),
                format!("https://{host}/v1/projects/p/locations/global/operations/o"),
                "{request}"
            );
        }
    }
}
