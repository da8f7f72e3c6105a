//! A server that gives up: an axum handler starts an upstream long-running
//! operation through a client stack wrapped in `CancelOnDropLayer`, behind
//! tower-http's `TimeoutLayer`. Whenever the server stops waiting, the
//! handler's future is dropped, and with it the layer's response future — so
//! the upstream receives `POST /v1/{name}:cancel` instead of an orphaned
//! operation.
//!
//! ```text
//! client ──▶ axum (TimeoutLayer 504) ──▶ handler ──▶ CancelOnDrop ──▶ hyper-util Client ──▶ upstream
//!                                                                                  (OperationsServer)
//! ```
//!
//! Three ways a server gives up, all run here against loopback:
//!
//! a. **Its own timeout fires.** `TimeoutLayer` answers `504 Gateway Timeout`
//!    and drops the handler future.
//! b. **Its client disconnects mid-request.** hyper notices the closed
//!    connection while the handler is still waiting and drops the handler
//!    future; nobody is left to read the answer. This server's timeout is
//!    10 min, far above the 10 s this example waits for the cancel, so the
//!    cancel it sees can only come from the detected disconnect.
//! c. **It is asked to stop (SIGTERM)** while two requests still wait. The
//!    signal handler calls `CancelHandle::shutdown`: each waiting handler's
//!    call ends with `Error::Shutdown` (answered `503`), each upstream
//!    operation is cancelled, and the report names them; then axum shuts
//!    down gracefully. (The example sends the signal to itself; Unix only.)
//!
//! Run it with `cargo run --example server_timeout`. It prints what happened
//! and exits 0 only if the upstream received exactly one cancel per operation in each case
//! and GetOperation then shows the operation CANCELLED (`error.code: 1`).
//! Tracing events go to stderr (`RUST_LOG` filters them; default `info`).

use std::future::IntoFuture;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::timeout::TimeoutLayer;
use tower_lro::{CancelHandle, CancelOnDrop, CancelOnDropLayer, Operation, PollPolicy};
use tower_lro_testing::{Endpoint, OperationsServer, RecordedRequest};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// How long the server waits for the upstream before answering 504.
const SERVER_TIMEOUT: Duration = Duration::from_secs(1);
/// A bound on waiting for the upstream's log, so a broken run ends.
const WAIT: Duration = Duration::from_secs(10);
/// The timeout of the server in case b: far above [`WAIT`], so that a
/// cancel seen within `WAIT` of the hang-up cannot be the timeout's.
const NO_TIMEOUT_WITHIN_WAIT: Duration = Duration::from_secs(600);

/// What every handler gets: the upstream client stack, and where the
/// upstream is.
#[derive(Clone)]
struct AppState {
    /// A hyper-util client wrapped in `CancelOnDrop`. Cloning it is cheap
    /// (the client is a handle on one pool; the layer's state is shared).
    upstream: CancelOnDrop<HttpClient>,
    upstream_base: String,
}

/// The server: `POST /jobs` starts an upstream operation with the request's
/// body and answers with the finished operation, or `504` after
/// [`SERVER_TIMEOUT`].
fn app(state: AppState, timeout: Duration) -> Router {
    Router::new()
        .route("/jobs", post(start_job))
        .with_state(state)
        // Outermost: when it fires it answers 504 and drops the handler
        // future, which drops the layer's response future, which cancels.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
}

async fn start_job(State(state): State<AppState>, body: Bytes) -> Response {
    let mut guard = Abandoned(true);
    let request = http::Request::post(format!(
        "{}/v1/projects/demo/locations/us-central1/jobs",
        state.upstream_base
    ))
    .header(CONTENT_TYPE, "application/json")
    // Copied onto the layer's GetOperation and CancelOperation requests.
    .header(AUTHORIZATION, "Bearer server-credentials")
    .body(Full::new(body));
    let request = match request {
        Ok(request) => request,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // Resolves when the upstream operation is done — unless this future is
    // dropped first.
    let result = state.upstream.oneshot(request).await;
    guard.0 = false;
    match result {
        Ok(response) => response.map(axum::body::Body::new).into_response(),
        // The process is shutting down: the layer stopped waiting and
        // cancelled the upstream operation.
        Err(e @ tower_lro::Error::Shutdown { .. }) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// Says so when the handler future is dropped before it finished.
struct Abandoned(bool);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if self.0 {
            println!("   [server] the handler future was dropped while waiting on the upstream");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(true) => {
            println!("\nOK: every way of giving up cancelled the upstream operations.");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("\nFAILED: see above.");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("\nFAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, BoxError> {
    // The upstream: the embedded AIP-151 server on loopback.
    let upstream = OperationsServer::new();
    let upstream_handle = upstream.serve().await?;
    let upstream_base = upstream_handle.base_url();
    println!("upstream operations server on {upstream_base}");

    // The server's client stack for the upstream.
    let http: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let lro = CancelOnDropLayer::new().poll_policy(
        PollPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(500)),
    );
    let cancels = lro.handle();
    let state = AppState {
        upstream: ServiceBuilder::new().layer(lro).service(http.clone()),
        upstream_base: upstream_base.clone(),
    };

    // The server, on loopback.
    let (addr, stop, server) = serve(app(state.clone(), SERVER_TIMEOUT)).await?;
    println!("server on http://{addr} (POST /jobs; gives up after {SERVER_TIMEOUT:?})");

    let mut ok = true;

    // a. The server's own timeout fires.
    println!(
        "\na. POST http://{addr}/jobs for a 60 s upstream operation; the server's timeout fires"
    );
    let sent = tokio::time::Instant::now();
    let response = http
        .clone()
        .oneshot(
            http::Request::post(format!("http://{addr}/jobs"))
                .header(CONTENT_TYPE, "application/json")
                .body(Full::from(r#"{"durationMs": 60000}"#))?,
        )
        .await?;
    println!("   [client] the server answered {}", response.status());
    ok &= response.status() == StatusCode::GATEWAY_TIMEOUT;
    let name = last_started(&upstream)?;
    ok &= check_cancelled(
        &upstream,
        &http,
        &upstream_base,
        &name,
        &cancels,
        (sent, "the request was sent"),
    )
    .await?;

    // b. The server's client disconnects mid-request, to a server whose own
    // timeout cannot fire while this waits.
    let (addr, stop_b, server_b) = serve(app(state.clone(), NO_TIMEOUT_WITHIN_WAIT)).await?;
    println!("\nb. POST http://{addr}/jobs (a server that gives up after {NO_TIMEOUT_WITHIN_WAIT:?}) for a 60 s upstream operation; the client hangs up mid-request");
    let started = upstream.operation_names().len();
    let mut socket = TcpStream::connect(addr).await?;
    let body = r#"{"durationMs": 60000}"#;
    socket
        .write_all(
            format!(
                "POST /jobs HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
    // Mid-request: the handler is waiting on the upstream, which the layer
    // is polling.
    upstream
        .wait_for(WAIT, |log| {
            log.iter()
                .filter(|r| r.endpoint == Endpoint::Get)
                .any(|r| is_newer(r, started))
        })
        .await?;
    let name = last_started(&upstream)?;
    println!("   [client] the upstream is polling {name}; closing the connection");
    drop(socket);
    let hung_up = tokio::time::Instant::now();
    ok &= check_cancelled(
        &upstream,
        &http,
        &upstream_base,
        &name,
        &cancels,
        (hung_up, "the client hung up"),
    )
    .await?;

    // c. SIGTERM while two requests wait on the upstream.
    #[cfg(unix)]
    {
        ok &= sigterm(&upstream, &http, &upstream_base, state, &cancels).await?;
    }
    #[cfg(not(unix))]
    let _ = state;
    let expected = if cfg!(unix) { 4 } else { 2 };

    let report = cancels.drain(WAIT).await;
    println!(
        "\ncancel stats: fired={} accepted={} failed={}",
        report.stats.fired, report.stats.accepted, report.stats.failed
    );
    ok &= report.stats.fired == expected && report.stats.accepted == expected;

    let _ = stop.send(());
    let _ = stop_b.send(());
    server.await??;
    server_b.await??;
    upstream_handle.shutdown().await;
    Ok(ok)
}

/// A stop signal and the task serving a router.
type Served = (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// Serves `router` on loopback until the returned sender is used.
async fn serve(router: Router) -> Result<Served, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .into_future(),
    );
    Ok((addr, stop, server))
}

/// Whether `r` concerns an operation numbered above `started` (the server
/// names them `op-1`, `op-2`, …).
fn is_newer(r: &RecordedRequest, started: usize) -> bool {
    r.operation
        .as_deref()
        .and_then(|name| name.rsplit_once("/op-"))
        .and_then(|(_, n)| n.parse::<usize>().ok())
        .is_some_and(|n| n > started)
}

/// The most recently started upstream operation.
fn last_started(upstream: &OperationsServer) -> Result<String, BoxError> {
    Ok(upstream
        .operation_names()
        .last()
        .cloned()
        .ok_or("the upstream started no operation")?)
}

/// Waits for the upstream to receive the cancel of `name`, prints it and the
/// operation's state, and says whether it was cancelled exactly once.
async fn check_cancelled(
    upstream: &OperationsServer,
    http: &HttpClient,
    base: &str,
    name: &str,
    cancels: &CancelHandle,
    (since, what): (tokio::time::Instant, &str),
) -> Result<bool, BoxError> {
    upstream
        .wait_for(WAIT, |log| {
            log.iter().any(|r| {
                r.endpoint == Endpoint::Cancel
                    && r.operation.as_deref() == Some(name)
                    && r.is_answered()
            })
        })
        .await?;
    let arrived = since.elapsed();
    // Let any other cancel in flight land before counting.
    cancels.drain(WAIT).await;
    let received = upstream.cancels_for(name);
    for r in &received {
        println!(
            "   [upstream] received {} {} (body {} bytes, authorization {:?}) -> {}",
            r.method,
            r.path,
            r.body.len(),
            r.headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            r.status
        );
    }
    println!(
        "   [upstream] the cancel was answered {:.1} ms after {what}",
        arrived.as_secs_f64() * 1000.0
    );
    let response = http
        .clone()
        .oneshot(http::Request::get(format!("{base}/v1/{name}")).body(Full::default())?)
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    let state = Operation::from_json(&body)?;
    println!(
        "   [upstream] GetOperation now: done={} error.code={} ({})",
        state.done,
        state.error.as_ref().map_or(0, |e| e.code),
        if state.is_cancelled() {
            "CANCELLED"
        } else {
            "not cancelled"
        }
    );
    Ok(received.len() == 1 && received[0].body.is_empty() && state.is_cancelled())
}

/// c. Two clients wait on a server that never times out; the process gets
/// SIGTERM; its handler shuts the layer down (every waiting call ends, its
/// operation is cancelled), then the server. Says whether each client got
/// `503`, each operation was cancelled once and the report names both.
#[cfg(unix)]
async fn sigterm(
    upstream: &OperationsServer,
    http: &HttpClient,
    upstream_base: &str,
    state: AppState,
    cancels: &CancelHandle,
) -> Result<bool, BoxError> {
    use tokio::signal::unix::{signal, SignalKind};

    let (addr, stop, server) = serve(app(state, NO_TIMEOUT_WITHIN_WAIT)).await?;
    println!("\nc. two POST http://{addr}/jobs for 60 s upstream operations; then SIGTERM");
    // What a server's main does: on SIGTERM, end the calls still waiting
    // (their operations are cancelled), then stop serving.
    let mut terminate = signal(SignalKind::terminate())?;
    let handle = cancels.clone();
    let on_sigterm = tokio::spawn(async move {
        terminate.recv().await;
        println!("   [server] SIGTERM: shutting down");
        let report = handle.shutdown(Duration::from_secs(10)).await;
        let _ = stop.send(());
        report
    });
    let started = upstream.operation_names().len();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let request = http::Request::post(format!("http://{addr}/jobs"))
                .header(CONTENT_TYPE, "application/json")
                .body(Full::from(r#"{"durationMs": 60000}"#));
            let http = http.clone();
            tokio::spawn(async move { http.oneshot(request?).await.map_err(BoxError::from) })
        })
        .collect();
    upstream
        .wait_for(WAIT, |log| {
            let polled: std::collections::BTreeSet<_> = log
                .iter()
                .filter(|r| r.endpoint == Endpoint::Get && is_newer(r, started))
                .filter_map(|r| r.operation.as_deref())
                .collect();
            polled.len() == 2
        })
        .await?;
    let mut names: Vec<String> = upstream
        .requests_to(Endpoint::Start)
        .iter()
        .filter(|r| is_newer(r, started))
        .filter_map(|r| r.operation.clone())
        .collect();
    names.sort();
    println!("   [client] both requests wait on {names:?}; sending SIGTERM");
    let signalled = tokio::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()?;
    let mut ok = true;
    for client in clients {
        let response = client.await??;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("   [client] {status}: {}", String::from_utf8_lossy(&body));
        ok &= status == StatusCode::SERVICE_UNAVAILABLE;
    }
    let report = on_sigterm.await?;
    println!(
        "   [server] shutdown report: accepted {:?}, not accepted {:?}",
        report
            .accepted
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        report.not_accepted
    );
    server.await??;
    let mut accepted: Vec<String> = report.accepted.iter().map(|n| n.to_string()).collect();
    accepted.sort();
    ok &= accepted == names && report.is_complete();
    for name in &names {
        let since = (signalled, "SIGTERM");
        ok &= check_cancelled(upstream, http, upstream_base, name, cancels, since).await?;
    }
    Ok(ok)
}
