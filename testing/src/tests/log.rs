//! The request log: what each request records, `wait_for`, and the
//! server's `Debug`.

use super::*;

#[tokio::test(start_paused = true)]
async fn log_records_every_request() {
    let server = OperationsServer::new();
    let request = Request::post(format!("{JOBS}?durationMs=5&x=%2F"))
        .header("authorization", "Bearer t")
        .header("x-goog-request-params", "parent=projects/p")
        .body(Full::new(Bytes::from_static(br#"{"a": 1}"#)))
        .unwrap();
    send(&server, request).await;
    // A percent-encoded name is decoded.
    let encoded = "/v1/projects/p/locations/l/operations/op%2D1";
    call(&server, Method::GET, encoded, "").await;
    call(&server, Method::GET, "/nope", "").await;

    let log = server.requests();
    assert_eq!(log.len(), 3);
    let start = &log[0];
    assert_eq!(start.method, Method::POST);
    assert_eq!(start.path, format!("{JOBS}?durationMs=5&x=%2F"));
    assert_eq!(start.headers["authorization"], "Bearer t");
    assert_eq!(start.body, Bytes::from_static(br#"{"a": 1}"#));
    assert_eq!(start.body_json(), Some(json!({"a": 1})));
    assert_eq!(start.endpoint, Endpoint::Start);
    assert_eq!(start.operation.as_deref(), Some(OP1));
    assert_eq!(start.status, StatusCode::OK);
    assert_eq!(log[1].path, encoded);
    assert_eq!(log[1].endpoint, Endpoint::Get);
    assert_eq!(log[1].operation.as_deref(), Some(OP1));
    assert_eq!(log[1].status, StatusCode::OK);
    assert_eq!(log[2].endpoint, Endpoint::Other);
    assert_eq!(log[2].operation, None);
    assert_eq!(log[2].status, StatusCode::NOT_FOUND);

    server.clear_requests();
    assert!(server.requests().is_empty());
    get(&server, OP1).await;
    assert_eq!(server.requests().len(), 1);
    assert_eq!(server.requests()[0].status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn wait_for_times_out_with_a_readable_log() {
    let server = OperationsServer::new();
    start(&server, "").await;
    let t0 = Instant::now();
    let error = server
        .wait_for(Duration::from_secs(2), |log| {
            log.iter().any(|r| r.endpoint == Endpoint::Cancel)
        })
        .await
        .unwrap_err();
    assert_eq!(Instant::now() - t0, Duration::from_secs(2));
    assert_eq!(error.timeout(), Duration::from_secs(2));
    assert_eq!(error.requests().len(), 1);
    let display = error.to_string();
    assert_eq!(
        display,
        "condition not met within 2s; 1 request(s) received: \
         POST /v1/projects/p/locations/l/jobs -> 200 [Start]"
    );
    let debug = format!("{error:?}");
    assert!(
        debug.contains("POST /v1/projects/p/locations/l/jobs -> 200 [Start]"),
        "{debug}"
    );
    let _: &dyn std::error::Error = &error;
}

#[tokio::test(start_paused = true)]
async fn wait_for_wakes_on_new_requests() {
    let server = OperationsServer::new();
    let waiter = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .wait_for(Duration::from_secs(60), |log| {
                    log.iter()
                        .any(|r| r.endpoint == Endpoint::Cancel && r.is_answered())
                })
                .await
        }
    });
    tokio::task::yield_now().await;
    start(&server, "").await;
    let t0 = Instant::now();
    call(&server, Method::POST, &format!("/v1/{OP1}:cancel"), "").await;
    let log = waiter.await.unwrap().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(Instant::now(), t0);
}

#[test]
fn debug_impls_are_compact() {
    let server = OperationsServer::default();
    server.inject(Endpoint::Get, Fault::Latency(Duration::from_millis(5)));
    let debug = format!("{server:?}");
    assert!(debug.starts_with("OperationsServer {"), "{debug}");
    assert!(debug.contains("Latency(5ms)"), "{debug}");
}
