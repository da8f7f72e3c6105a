//! ListOperations (AIP-158 paging, AIP-160 filter) and WaitOperation.

use super::*;

#[tokio::test(start_paused = true)]
async fn list_pages_per_aip_158() {
    let server = OperationsServer::new();
    for _ in 0..5 {
        start(&server, "").await;
    }
    call(&server, Method::POST, "/v1/projects/q/locations/l/jobs", "").await;

    let list = "/v1/projects/p/locations/l/operations";
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let path = format!("{list}?pageSize=2&pageToken={token}");
        let answer = call(&server, Method::GET, &path, "").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        pages += 1;
        let ops = answer.json["operations"].as_array().unwrap();
        assert!(ops.len() <= 2);
        seen.extend(ops.iter().map(|op| op["name"].as_str().unwrap().to_owned()));
        match answer.json.get("nextPageToken") {
            Some(next) => token = next.as_str().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=5)
        .map(|n| format!("projects/p/locations/l/operations/op-{n}"))
        .collect();
    assert_eq!(seen, expected);

    // Default page size; other parents' operations are not listed.
    let all = call(&server, Method::GET, list, "").await.json;
    assert_eq!(all["operations"].as_array().unwrap().len(), 5);
    assert!(all.get("nextPageToken").is_none());
    let other = call(
        &server,
        Method::GET,
        "/v1/projects/none/locations/l/operations",
        "",
    )
    .await;
    assert_eq!(other.json, json!({"operations": []}));

    for bad in ["pageSize=-1", "pageSize=x", "pageToken=garbage"] {
        let answer = call(&server, Method::GET, &format!("{list}?{bad}"), "").await;
        assert_error(&answer, 400, "INVALID_ARGUMENT");
    }
    assert_eq!(server.requests_to(Endpoint::List).len(), 8);
    assert_eq!(server.requests_to(Endpoint::List)[0].operation, None);
}

/// The names a ListOperations answers, following every page.
async fn list_names(server: &OperationsServer, query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let path =
            format!("/v1/projects/p/locations/l/operations?pageSize=1&pageToken={token}&{query}");
        let answer = call(server, Method::GET, &path, "").await;
        assert_eq!(answer.status, StatusCode::OK, "{query}: {}", answer.json);
        let ops = answer.json["operations"].as_array().unwrap();
        names.extend(ops.iter().map(|op| op["name"].as_str().unwrap().to_owned()));
        match answer.json.get("nextPageToken") {
            Some(next) => token = next.as_str().unwrap().to_owned(),
            None => return names,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn list_filters_on_done_per_aip_160() {
    let server = OperationsServer::new();
    start(&server, r#"{"durationMs": 0}"#).await; // op-1: succeeded
    start(&server, "").await; // op-2: running
    start(&server, "").await; // op-3: cancelled below
    start(&server, r#"{"durationMs": 0}"#).await; // op-4: succeeded
    let op3 = "projects/p/locations/l/operations/op-3";
    call(&server, Method::POST, &format!("/v1/{op3}:cancel"), "").await;
    let op = |n: u32| format!("projects/p/locations/l/operations/op-{n}");

    let done = vec![op(1), op(3), op(4)];
    for query in [
        "filter=done%3Dtrue",
        "filter=done+%3D+true",
        "filter=done",
        "filter=NOT+done%3Dfalse",
    ] {
        assert_eq!(list_names(&server, query).await, done, "{query}");
    }
    for query in ["filter=done%3Dfalse", "filter=NOT%20done", "filter=-done"] {
        assert_eq!(list_names(&server, query).await, vec![op(2)], "{query}");
    }
    let all = vec![op(1), op(2), op(3), op(4)];
    for query in ["filter=", "filter=done%3Dtrue+OR+done%3Dfalse", "x=1"] {
        assert_eq!(list_names(&server, query).await, all, "{query}");
    }

    for bad in [
        "name%3Dx",
        "done%3Dmaybe",
        "done+%3E+1",
        "(done",
        "progressPercent%3D100",
    ] {
        let path = format!("/v1/projects/p/locations/l/operations?filter={bad}");
        let answer = call(&server, Method::GET, &path, "").await;
        assert_error(&answer, 400, "INVALID_ARGUMENT");
        let message = answer.json["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Invalid filter"), "{message}");
    }
}

/// `POST /v1/{name}:wait{query}` with `body`: the answer, and how long it
/// took (tokio's clock).
async fn timed_wait(
    server: &OperationsServer,
    name: &str,
    query: &str,
    body: &str,
) -> (Answer, Duration) {
    let t0 = Instant::now();
    let path = format!("/v1/{name}:wait{query}");
    let answer = call(server, Method::POST, &path, body).await;
    (answer, Instant::now() - t0)
}

/// Starts an operation of the server's default duration: its name.
async fn start_named(server: &OperationsServer) -> String {
    start(server, "").await["name"].as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn wait_answers_when_done_or_at_the_timeout() {
    let server = OperationsServer::new().default_duration(Duration::from_secs(5));
    start(&server, "").await;
    let (answer, waited) = timed_wait(&server, OP1, "", r#"{"timeout": "30s"}"#).await;
    assert_eq!(answer.json["done"], true);
    assert_eq!(waited, Duration::from_secs(5));

    // Timeout first.
    let op2 = start_named(&server).await;
    let (answer, waited) = timed_wait(&server, &op2, "", r#"{"timeout": "1.5s"}"#).await;
    assert_eq!(answer.json["done"], false);
    assert_eq!(answer.json["metadata"]["value"]["progressPercent"], 30);
    assert_eq!(waited, Duration::from_millis(1500));

    // Query timeout; already done answers at once.
    advance(Duration::from_secs(10)).await;
    let (answer, waited) = timed_wait(&server, &op2, "?timeout=9s", "").await;
    assert_eq!(answer.json["done"], true);
    assert_eq!(waited, Duration::ZERO);

    let (bad, _) = timed_wait(&server, &op2, "", r#"{"timeout": "soon"}"#).await;
    assert_error(&bad, 400, "INVALID_ARGUMENT");
    let missing = call(&server, Method::POST, "/v1/operations/x:wait", "{}").await;
    assert_error(&missing, 404, "NOT_FOUND");
}

#[tokio::test(start_paused = true)]
async fn wait_is_woken_by_cancel_and_delete() {
    let server = OperationsServer::new();
    start(&server, "").await;
    let waiter = tokio::spawn({
        let server = server.clone();
        async move {
            let (answer, waited) = timed_wait(&server, OP1, "", "").await;
            (answer.json, waited)
        }
    });
    server
        .wait_for(Duration::from_secs(1), |log| {
            log.iter().any(|r| r.endpoint == Endpoint::Wait)
        })
        .await
        .unwrap();
    advance(Duration::from_secs(2)).await;
    call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    let (op, waited) = waiter.await.unwrap();
    assert_eq!(op["error"]["code"], 1);
    assert_eq!(waited, Duration::from_secs(2));
    let wait = &server.requests_to(Endpoint::Wait)[0];
    assert_eq!(wait.operation.as_deref(), Some(OP1));
    assert_eq!(wait.status, StatusCode::OK);

    let op2 = start_named(&server).await;
    let waiter = tokio::spawn({
        let (server, op2) = (server.clone(), op2.clone());
        async move { timed_wait(&server, &op2, "", "").await.0 }
    });
    tokio::task::yield_now().await;
    call(&server, Method::DELETE, &format!("/v1/{op2}"), "").await;
    assert_error(&waiter.await.unwrap(), 404, "NOT_FOUND");
}

#[tokio::test(start_paused = true)]
async fn wait_without_timeout_is_capped() {
    let server = OperationsServer::new().default_duration(Duration::from_secs(3600));
    start(&server, "").await;
    let (answer, waited) = timed_wait(&server, OP1, "", r#"{"timeout": "7200s"}"#).await;
    assert_eq!(answer.json["done"], false);
    assert_eq!(waited, MAX_WAIT);
}
