//! Routing: collections, verbs, API versions and service prefixes that
//! start an operation; unknown paths and wrong methods.

use super::*;

#[tokio::test(start_paused = true)]
async fn start_routes_deeper_paths_verbs_versions_and_service_prefixes() {
    let server = OperationsServer::new();
    let run = call(
        &server,
        Method::POST,
        "/v1beta1/projects/p/locations/l/jobs/j1:run",
        "",
    )
    .await
    .json;
    assert_eq!(run["name"], OP1);
    assert_eq!(
        run["metadata"]["value"]["target"],
        "projects/p/locations/l/jobs/j1"
    );

    let seek = call(
        &server,
        Method::POST,
        "/v1/admin/projects/p/locations/l/subscriptions/s:seek",
        "",
    )
    .await
    .json;
    assert_eq!(seek["name"], "projects/p/locations/l/operations/op-2");
    // The service prefix is accepted on every route.
    let answer = get(&server, "admin/projects/p/locations/l/operations/op-2").await;
    assert_eq!(
        answer.json["name"],
        "projects/p/locations/l/operations/op-2"
    );

    let log = server.requests();
    assert_eq!(log[0].endpoint, Endpoint::Start);
    assert_eq!(log[0].operation.as_deref(), Some(OP1));
    assert_eq!(log[2].endpoint, Endpoint::Get);
}

#[tokio::test(start_paused = true)]
async fn unknown_paths_and_wrong_methods() {
    let server = OperationsServer::new();
    for path in [
        "/",
        "/v1",
        "/v1/",
        "/x1/projects/p/locations/l/jobs",
        "/v1/projects/p/jobs",
        "/v1/projects/p/locations/l",
        "/v1/projects/p/locations/l/operations/op-1:explode",
        "/v1/projects//locations/l/jobs",
    ] {
        let answer = call(&server, Method::POST, path, "").await;
        assert_error(&answer, 404, "NOT_FOUND");
    }
    for (method, path) in [
        (Method::GET, JOBS),
        (Method::GET, "/v1/projects/p/locations/l/jobs/j"),
        (Method::DELETE, "/v1/projects/p/locations/l/jobs/j"),
    ] {
        let answer = call(&server, method, path, "").await;
        assert_error(&answer, 404, "NOT_FOUND");
    }
    for (method, path, allow) in [
        (
            Method::PUT,
            "/v1/projects/p/locations/l/operations/op-1",
            "GET, DELETE",
        ),
        (
            Method::GET,
            "/v1/projects/p/locations/l/operations/op-1:cancel",
            "POST",
        ),
        (
            Method::DELETE,
            "/v1/projects/p/locations/l/operations/op-1:wait",
            "POST",
        ),
        (Method::POST, "/v1/projects/p/locations/l/operations", "GET"),
    ] {
        let answer = call(&server, method, path, "").await;
        assert_error(&answer, 405, "UNIMPLEMENTED");
        assert_eq!(answer.headers["allow"], allow);
    }
    let answer = call(
        &server,
        Method::GET,
        "/v1/projects/p/locations/l/operations/%FF",
        "",
    )
    .await;
    assert_error(&answer, 400, "INVALID_ARGUMENT");
    assert!(server.operation_names().is_empty());
    assert!(server
        .requests()
        .iter()
        .all(|r| r.endpoint == Endpoint::Other));

    server.inject(
        Endpoint::Other,
        Fault::Status(StatusCode::SERVICE_UNAVAILABLE),
    );
    assert_error(
        &call(&server, Method::GET, "/", "").await,
        503,
        "UNAVAILABLE",
    );
}

#[test]
fn versions() {
    for ok in ["v1", "v1beta1", "v2alpha", "v1p1beta1", "v10"] {
        assert!(route::is_version(ok), "{ok}");
    }
    for bad in ["v", "vx", "V1", "v1-beta", "1", "v1Beta"] {
        assert!(!route::is_version(bad), "{bad}");
    }
}
