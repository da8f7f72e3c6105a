use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use serde_json::{json, Value};
use tokio::time::{advance, Instant};
use tower::ServiceExt;

use super::*;

mod faults;
mod list_wait;

const JOBS: &str = "/v1/projects/p/locations/l/jobs";
const OP1: &str = "projects/p/locations/l/operations/op-1";

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

async fn send(server: &OperationsServer, request: Request<Full<Bytes>>) -> Answer {
    let response = server.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    assert_eq!(parts.headers["content-type"], "application/json");
    Answer {
        status: parts.status,
        headers: parts.headers,
        json: serde_json::from_slice(&bytes).unwrap(),
    }
}

async fn call(server: &OperationsServer, method: Method, path: &str, body: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    send(server, request).await
}

async fn start(server: &OperationsServer, body: &str) -> Value {
    let answer = call(server, Method::POST, JOBS, body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer.json
}

async fn get(server: &OperationsServer, name: &str) -> Answer {
    call(server, Method::GET, &format!("/v1/{name}"), "").await
}

fn assert_error(answer: &Answer, code: u16, status: &str) {
    assert_eq!(answer.status.as_u16(), code, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code, "{}", answer.json);
    assert_eq!(answer.json["error"]["status"], status, "{}", answer.json);
    assert!(answer.json["error"]["message"].is_string());
}

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

#[test]
fn versions() {
    for ok in ["v1", "v1beta1", "v2alpha", "v1p1beta1", "v10"] {
        assert!(route::is_version(ok), "{ok}");
    }
    for bad in ["v", "vx", "V1", "v1-beta", "1", "v1Beta"] {
        assert!(!route::is_version(bad), "{bad}");
    }
}

mod loopback {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

    async fn request(
        client: &HttpClient,
        method: Method,
        url: String,
        body: &'static str,
    ) -> Result<(StatusCode, Value), hyper_util::client::legacy::Error> {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let response = client.request(request).await?;
        let status = response.status();
        assert_eq!(response.headers()["content-type"], "application/json");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap()))
    }

    #[tokio::test]
    async fn serves_the_shared_state_over_http1_and_http2() {
        let server = OperationsServer::new().default_duration(Duration::from_secs(30));
        let handle = server.serve().await.unwrap();
        assert!(handle.addr().ip().is_loopback());
        assert_eq!(handle.base_url(), format!("http://{}", handle.addr()));
        let base = handle.base_url();
        let h1: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let h2: HttpClient = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();

        let (status, op) = request(&h1, Method::POST, format!("{base}{JOBS}"), "")
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(op["name"], OP1);
        let (status, op) = request(&h2, Method::GET, format!("{base}/v1/{OP1}"), "")
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(op["done"], false);

        let cancel = tokio::spawn({
            let url = format!("{base}/v1/{OP1}:cancel");
            let h1 = h1.clone();
            async move { request(&h1, Method::POST, url, "").await }
        });
        let log = server
            .wait_for(Duration::from_secs(5), |_| {
                !server.cancels_for(OP1).is_empty()
            })
            .await
            .unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(cancel.await.unwrap().unwrap().1, json!({}));
        // The in-memory view sees what HTTP did.
        assert_eq!(server.operation(OP1).unwrap()["error"]["code"], 1);
        let log = server.requests();
        // HTTP/1 has a host header (HTTP/2 an :authority, not a header); the
        // path is the request target's path either way.
        assert!(log[0].headers.contains_key("host"));
        assert_eq!(log[1].path, format!("/v1/{OP1}"));
        assert_eq!(log[1].endpoint, Endpoint::Get);
        assert!(log.iter().all(RecordedRequest::is_answered));

        let (status, body) = request(&h1, Method::GET, format!("{base}/v2/nowhere"), "")
            .await
            .unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["status"], "NOT_FOUND");

        // Disconnect: a transport error over HTTP.
        server.inject(Endpoint::Get, Fault::Disconnect);
        let fresh: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let result = request(&fresh, Method::GET, format!("{base}/v1/{OP1}"), "").await;
        assert!(result.is_err(), "{result:?}");
        let result = request(&h2, Method::GET, format!("{base}/v1/{OP1}"), "").await;
        assert!(result.is_err(), "{result:?}");
        server.clear_faults();

        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn disconnect_resets_http1_connections_and_http2_streams() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let server = OperationsServer::new().default_duration(Duration::from_secs(30));
        let handle = server.serve().await.unwrap();
        let base = handle.base_url();
        let h1: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        request(&h1, Method::POST, format!("{base}{JOBS}"), "")
            .await
            .unwrap();
        server.inject(Endpoint::Get, Fault::Disconnect);

        // HTTP/1: an abortive close. A FIN would read as Ok(0); a RST is an
        // error.
        let mut tcp = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
        let get = format!("GET /v1/{OP1} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        tcp.write_all(get.as_bytes()).await.unwrap();
        let mut buf = [0u8; 256];
        let read = tcp.read(&mut buf).await;
        assert_eq!(
            read.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        );
        // hyper-util's client sees a transport error.
        let result = request(&h1, Method::GET, format!("{base}/v1/{OP1}"), "").await;
        assert!(result.is_err(), "{result:?}");

        // HTTP/2: the stream is reset, the connection goes on.
        let tcp = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let driver = tokio::spawn(connection);
        let get = || {
            Request::get(format!("{base}/v1/{OP1}"))
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let result = sender.send_request(get()).await;
        assert!(result.is_err(), "{result:?}");
        server.clear_faults();
        let response = sender.send_request(get()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!driver.is_finished());

        let statuses: Vec<u16> = server
            .requests_to(Endpoint::Get)
            .iter()
            .map(|r| r.status.as_u16())
            .collect();
        assert_eq!(statuses, [502, 502, 502, 200]);
        drop(sender);
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn hang_ends_when_the_client_gives_up_or_at_graceful_shutdown() {
        let server = OperationsServer::new().default_duration(Duration::from_secs(30));
        let handle = server.serve().await.unwrap();
        let base = handle.base_url();
        let h1: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let h2: HttpClient = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
        request(&h1, Method::POST, format!("{base}{JOBS}"), "")
            .await
            .unwrap();
        server.inject(Endpoint::Cancel, Fault::Hang);
        let cancel_url = format!("{base}/v1/{OP1}:cancel");

        for (i, client) in [&h1, &h2].into_iter().enumerate() {
            let gave_up = tokio::time::timeout(
                Duration::from_millis(100),
                request(client, Method::POST, cancel_url.clone(), ""),
            )
            .await;
            assert!(gave_up.is_err(), "answered: {gave_up:?}");
            // The server notices the closed connection / reset stream.
            server
                .wait_for(Duration::from_secs(5), |_| {
                    server
                        .cancels_for(OP1)
                        .get(i)
                        .is_some_and(|r| r.status.as_u16() == 499)
                })
                .await
                .unwrap();
        }
        assert_eq!(server.operation(OP1).unwrap()["done"], false);

        // A graceful shutdown ends a hung request as a disconnect.
        let stuck = tokio::spawn({
            let h1 = h1.clone();
            let url = cancel_url.clone();
            async move { request(&h1, Method::POST, url, "").await }
        });
        server
            .wait_for(Duration::from_secs(5), |_| {
                server.cancels_for(OP1).len() == 3
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), handle.shutdown())
            .await
            .expect("a hung request does not block a graceful shutdown");
        assert!(stuck.await.unwrap().is_err());
        let cancels = server.cancels_for(OP1);
        assert_eq!(cancels[2].status, StatusCode::BAD_GATEWAY);
        assert!(cancels.iter().all(|r| r.fault == Some(FaultKind::Hang)));
        assert_eq!(server.operation(OP1).unwrap()["done"], false);
    }

    #[tokio::test]
    async fn drop_aborts_in_flight_requests_and_closes_the_port() {
        let server = OperationsServer::new();
        server.inject(Endpoint::Start, Fault::Latency(Duration::from_secs(3600)));
        let handle = server.serve().await.unwrap();
        let base = handle.base_url();
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let stuck = tokio::spawn(async move {
            request(&client, Method::POST, format!("{base}{JOBS}"), "").await
        });
        server
            .wait_for(Duration::from_secs(5), |log| log.len() == 1)
            .await
            .unwrap();
        let addr = handle.addr();
        drop(handle);
        let result = tokio::time::timeout(Duration::from_secs(5), stuck)
            .await
            .unwrap()
            .unwrap();
        assert!(result.is_err());
        server
            .wait_for(Duration::from_secs(5), |log| log[0].status.as_u16() == 499)
            .await
            .unwrap();
        // The listener goes away promptly.
        let mut closed = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(closed, "still accepting on {addr}");
    }

    #[tokio::test]
    async fn serve_on_reports_bind_errors() {
        let server = OperationsServer::new();
        let first = server.serve().await.unwrap();
        let error = server.serve_on(first.addr()).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
        first.shutdown().await;
    }
}
