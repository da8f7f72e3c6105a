//! The operations' lifecycle: start, GetOperation before and after the
//! duration, where durations come from, CancelOperation and
//! DeleteOperation.

use super::*;

#[tokio::test(start_paused = true)]
async fn start_then_get_before_and_after_the_duration() {
    let server = OperationsServer::new();
    let op = start(&server, "").await;
    assert_eq!(op["name"], OP1);
    assert_eq!(op["done"], false);
    assert!(op.get("response").is_none() && op.get("error").is_none());
    assert_eq!(
        op["metadata"]["@type"],
        "type.googleapis.com/google.protobuf.Struct"
    );
    let metadata = &op["metadata"]["value"];
    assert_eq!(metadata["progressPercent"], 0);
    assert_eq!(metadata["target"], "projects/p/locations/l/jobs");
    let create_time = metadata["createTime"].as_str().unwrap();
    assert_eq!(create_time.len(), "2024-01-01T00:00:00.000Z".len());
    assert!(create_time.ends_with('Z') && create_time.as_bytes()[10] == b'T');

    advance(Duration::from_secs(4)).await;
    let answer = get(&server, OP1).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json["done"], false);
    assert_eq!(answer.json["metadata"]["value"]["progressPercent"], 40);

    advance(Duration::from_secs(6)).await;
    let answer = get(&server, OP1).await;
    assert_eq!(answer.json["done"], true);
    assert_eq!(answer.json["metadata"]["value"]["progressPercent"], 100);
    assert_eq!(
        answer.json["response"],
        json!({
            "@type": "type.googleapis.com/google.protobuf.Struct",
            "value": {"target": "projects/p/locations/l/jobs", "state": "SUCCEEDED"},
        })
    );
    assert_eq!(server.operation(OP1), Some(answer.json));
    // `operation` does not log.
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn durations_come_from_query_body_or_default() {
    let server = OperationsServer::new().default_duration(Duration::from_secs(2));
    let zero = start(&server, r#"{"durationMs": 0}"#).await;
    assert_eq!(zero["done"], true);
    assert_eq!(zero["response"]["value"]["state"], "SUCCEEDED");

    let body = start(&server, r#"{"durationMs": "1000", "displayName": "x"}"#).await;
    let default = start(&server, "").await;
    let query = call(
        &server,
        Method::POST,
        &format!("{JOBS}?durationMs=3000"),
        r#"{"durationMs": 1}"#,
    )
    .await
    .json;
    let names: Vec<String> = (2..=4)
        .map(|n| format!("projects/p/locations/l/operations/op-{n}"))
        .collect();
    assert_eq!(body["name"], names[0]);
    assert_eq!(default["name"], names[1]);
    assert_eq!(query["name"], names[2]);

    advance(Duration::from_millis(1000)).await;
    let done = |name: &str| server.operation(name).unwrap()["done"].clone();
    assert_eq!(done(&names[0]), true);
    assert_eq!(done(&names[1]), false);
    advance(Duration::from_millis(1000)).await;
    assert_eq!(done(&names[1]), true);
    assert_eq!(done(&names[2]), false);
    advance(Duration::from_millis(1000)).await;
    assert_eq!(done(&names[2]), true);

    for bad in [
        "not json",
        "[1]",
        r#"{"durationMs": -1}"#,
        r#"{"durationMs": 1.5}"#,
    ] {
        let answer = call(&server, Method::POST, JOBS, bad).await;
        assert_error(&answer, 400, "INVALID_ARGUMENT");
    }
    let answer = call(&server, Method::POST, &format!("{JOBS}?durationMs=x"), "").await;
    assert_error(&answer, 400, "INVALID_ARGUMENT");
    assert_eq!(server.operation_names(), names_with_zero(&names));
}

fn names_with_zero(names: &[String]) -> Vec<String> {
    let mut all = vec![OP1.to_owned()];
    all.extend(names.iter().cloned());
    all
}

#[tokio::test(start_paused = true)]
async fn cancel_ends_the_operation_with_code_1() {
    let server = OperationsServer::new();
    start(&server, "").await;
    advance(Duration::from_secs(3)).await;
    let answer = call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({}));

    let op = get(&server, OP1).await.json;
    assert_eq!(op["done"], true);
    assert_eq!(
        op["error"],
        json!({"code": 1, "message": "Operation was cancelled."})
    );
    assert!(op.get("response").is_none());
    assert_eq!(op["metadata"]["value"]["progressPercent"], 30);
    assert_eq!(op["metadata"]["value"]["requestedCancellation"], true);

    // Still cancelled after the duration would have passed.
    advance(Duration::from_secs(60)).await;
    assert_eq!(server.operation(OP1).unwrap()["error"]["code"], 1);

    // Cancelling a succeeded operation answers {} and changes nothing.
    let done = start(&server, r#"{"durationMs": 0}"#).await;
    let name = done["name"].as_str().unwrap();
    let answer = call(&server, Method::POST, &format!("/v1/{name}:cancel"), "").await;
    assert_eq!(answer.json, json!({}));
    assert_eq!(server.operation(name).unwrap(), done);

    let answer = call(
        &server,
        Method::POST,
        "/v1/projects/p/locations/l/operations/nope:cancel",
        "",
    )
    .await;
    assert_error(&answer, 404, "NOT_FOUND");

    let cancels = server.cancels_for(OP1);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].path, format!("/v1/{OP1}:cancel"));
    assert_eq!(cancels[0].status, StatusCode::OK);
    assert_eq!(server.requests_to(Endpoint::Cancel).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn delete_forgets_the_operation() {
    let server = OperationsServer::new();
    start(&server, "").await;
    let answer = call(&server, Method::DELETE, &format!("/v1/{OP1}"), "").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, json!({}));
    assert_error(&get(&server, OP1).await, 404, "NOT_FOUND");
    assert_error(
        &call(&server, Method::DELETE, &format!("/v1/{OP1}"), "").await,
        404,
        "NOT_FOUND",
    );
    assert!(server.operation(OP1).is_none());
    assert!(server.operation_names().is_empty());
    assert_eq!(server.requests_to(Endpoint::Delete).len(), 2);
}
