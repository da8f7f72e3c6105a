//! The server over HTTP/1.1 and HTTP/2 on a loopback port: shared state,
//! disconnects, hangs, shutdown and bind errors.

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
    let stuck =
        tokio::spawn(
            async move { request(&client, Method::POST, format!("{base}{JOBS}"), "").await },
        );
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
