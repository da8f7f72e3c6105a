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
mod log;
mod loopback;
mod operations;
mod routes;

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
