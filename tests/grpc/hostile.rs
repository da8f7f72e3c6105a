//! Hostile answers to a long-running method, from a raw hyper HTTP/2
//! server on loopback that answers what each test asks for (request
//! metadata `x-answer`) and records every request: nothing the layer
//! cannot read is tracked, the caller gets the answer as sent, and no
//! GetOperation or CancelOperation is sent for it.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tonic::transport::Channel;
use tower_lro_testing::grpc::{CloudDeployClient, Operation};

use crate::support::{create, layer};

/// (`:authority`, `:path`) of every request received.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

fn frame(flag: u8, message: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(flag);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

fn not_done(name: &str, padding: usize) -> Vec<u8> {
    Operation {
        name: name.into(),
        metadata: Some(prost_types::Any {
            type_url: "type.googleapis.com/google.protobuf.Empty".into(),
            value: vec![0; padding],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

type Body =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn answer(path: &str, kind: &str) -> Response<Body> {
    const NAME: &str = "projects/p/locations/l/operations/op-1";
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let data = match (path.rsplit('/').next().unwrap_or(""), kind) {
        // A WaitOperation answered UNIMPLEMENTED in trailers after the head
        // (not trailers-only); GetOperation answers it done.
        ("WaitOperation", "wait-unimplemented-in-trailers") => {
            trailers.insert("grpc-status", HeaderValue::from_static("12"));
            Bytes::new()
        }
        ("GetOperation", "wait-unimplemented-in-trailers") => {
            let done = Operation {
                name: NAME.into(),
                done: true,
                ..Default::default()
            };
            frame(0, &done.encode_to_vec())
        }
        (_, kind) => answer_data(kind),
    };
    let frames = vec![Ok(Frame::data(data)), Ok(Frame::trailers(trailers))];
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    if kind == "trailers-only" {
        return trailers_only();
    }
    response
}

fn trailers_only() -> Response<Body> {
    let mut response = Response::new(StreamBody::new(futures_util::stream::iter(vec![])));
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from_static("14"));
    h.insert("grpc-message", HeaderValue::from_static("try%20later"));
    response
}

fn answer_data(kind: &str) -> Bytes {
    const NAME: &str = "projects/p/locations/l/operations/op-1";
    match kind {
        "truncated" => frame(0, &not_done(NAME, 0)).slice(..8),
        "compressed" => frame(1, &not_done(NAME, 0)),
        "two-messages" => [frame(0, &not_done(NAME, 0)), frame(0, &not_done(NAME, 0))]
            .concat()
            .into(),
        "oversized" => frame(0, &not_done(NAME, 4096)),
        "invalid-name" => frame(0, &not_done("projects/p/../../evil", 0)),
        "scheme-name" => frame(0, &not_done("https://evil.example/operations/x", 0)),
        "not-an-operation" => frame(0, &[0xff, 0xff, 0xff]),
        _ => frame(0, &not_done(NAME, 0)),
    }
}

/// The `:path`s received, in order.
fn paths(seen: &Seen) -> Vec<String> {
    let seen = seen.lock().unwrap();
    seen.iter().map(|(_, p)| p.clone()).collect()
}

async fn hostile_server() -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let log = Arc::clone(&log);
                    async move {
                        let authority = request
                            .uri()
                            .authority()
                            .map(|a| a.to_string())
                            .unwrap_or_default();
                        log.lock()
                            .unwrap()
                            .push((authority, request.uri().path().to_owned()));
                        let kind = request
                            .headers()
                            .get("x-answer")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let path = request.uri().path().to_owned();
                        let _ = request.into_body().collect().await;
                        Ok::<_, Infallible>(answer(&path, &kind))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

async fn call(url: &str, kind: &'static str) -> Result<Operation, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let lro = layer().max_inspect_bytes(1024);
    let mut client =
        CloudDeployClient::new(tower::ServiceBuilder::new().layer(lro).service(channel));
    let mut request = create("h", 600_000);
    request.metadata_mut().insert(
        "x-answer",
        tonic::metadata::MetadataValue::from_static(kind),
    );
    let result = tokio::time::timeout(Duration::from_secs(5), client.create_release(request))
        .await
        .expect("an untracked answer is handed over at once");
    result.map(|r| r.into_inner())
}

#[tokio::test]
async fn hostile_answers_pass_through_untracked() {
    let (url, seen) = hostile_server().await;
    for kind in ["truncated", "compressed", "not-an-operation"] {
        let result = call(&url, kind).await;
        assert!(
            result.is_err(),
            "{kind}: the client itself rejects it: {result:?}"
        );
    }
    // tonic reads the first of two messages of a unary answer.
    for kind in ["oversized", "invalid-name", "scheme-name", "two-messages"] {
        let op = call(&url, kind)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(!op.done, "{kind}: handed over as sent");
    }
    let status = call(&url, "trailers-only").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "try later");
    let paths = paths(&seen);
    assert_eq!(paths.len(), 8);
    assert!(
        paths
            .iter()
            .all(|p| p == "/google.cloud.deploy.v1.CloudDeploy/CreateRelease"),
        "no GetOperation or CancelOperation: {paths:?}"
    );
}

#[tokio::test]
async fn a_tracked_operation_is_polled_and_cancelled_on_the_same_authority_only() {
    let (url, seen) = hostile_server().await;
    // A good not-done Operation; every poll answers it not done again.
    let channel = Channel::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let lro = layer();
    let cancels = lro.handle();
    let mut client =
        CloudDeployClient::new(tower::ServiceBuilder::new().layer(lro).service(channel));
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        client.create_release(create("a", 600_000)),
    )
    .await;
    assert!(cancels.drain(Duration::from_secs(10)).await.is_complete());
    let seen = seen.lock().unwrap().clone();
    let authority = url.trim_start_matches("http://");
    assert!(seen
        .iter()
        .any(|(_, p)| p == "/google.longrunning.Operations/GetOperation"));
    assert!(seen
        .iter()
        .any(|(_, p)| p == "/google.longrunning.Operations/CancelOperation"));
    assert!(seen.iter().all(|(a, _)| a == authority), "{seen:?}");
}

#[tokio::test]
async fn unimplemented_wait_in_trailers_falls_back_to_get() {
    let (url, seen) = hostile_server().await;
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let lro = layer()
        .poll_policy(tower_lro::PollPolicy::new().wait_operation(Duration::from_secs(5)))
        .forward_headers([http::HeaderName::from_static("x-answer")]);
    let mut client =
        CloudDeployClient::new(tower::ServiceBuilder::new().layer(lro).service(channel));
    let mut request = create("w", 600_000);
    request.metadata_mut().insert(
        "x-answer",
        tonic::metadata::MetadataValue::from_static("wait-unimplemented-in-trailers"),
    );
    let op = client
        .create_release(request)
        .await
        .expect("done after the fallback")
        .into_inner();
    assert!(op.done);
    let paths = paths(&seen);
    assert_eq!(
        paths,
        [
            "/google.cloud.deploy.v1.CloudDeploy/CreateRelease",
            "/google.longrunning.Operations/WaitOperation",
            "/google.longrunning.Operations/GetOperation",
        ]
    );
}
