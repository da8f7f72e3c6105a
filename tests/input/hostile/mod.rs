//! A hostile server: a loopback hyper server answers
//! the layer's requests with operations whose names and bodies try to steer
//! the layer's own requests elsewhere, leak credentials, exhaust memory or
//! crash it. Everything is asserted on the wire: the server's own request
//! log, and a second "other host" listener on another 127.0.0.1 port that
//! must never see a connection.

use crate::common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::stream;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::{Service, ServiceBuilder};
use tower_lro::{CancelOnDropLayer, DrainReport, Error};
use tracing_subscriber::layer::SubscriberExt;

mod answers;
mod bodies;
mod cases;
mod headers;
mod redirects;

type TestBody = BoxBody<Bytes, Infallible>;

// ===== a recording loopback server =====

/// One request as the server saw it, raw: the request-target exactly as it
/// was on the wire (not decoded).
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Log {
    seen: Arc<Mutex<Vec<Seen>>>,
    changed: Arc<Notify>,
}

impl Log {
    fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn push(&self, seen: Seen) {
        self.seen.lock().unwrap().push(seen);
        self.changed.notify_waiters();
    }

    /// Waits (at most [`WAIT`]) until `pred` holds for the log.
    async fn wait_for(&self, pred: impl Fn(&[Seen]) -> bool) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if pred(&self.seen.lock().unwrap()) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting on the log: {:#?}", self.all()));
    }
}

type Respond = Arc<dyn Fn(&Seen) -> http::Response<TestBody> + Send + Sync>;

/// A hyper server on 127.0.0.1 that records every request (body read in
/// full) and answers it with `respond`.
async fn recording_server(respond: Respond) -> (SocketAddr, Log, tokio::task::JoinHandle<()>) {
    let log = Log::default();
    let server_log = log.clone();
    let (addr, task) = serve(move |req: http::Request<hyper::body::Incoming>| {
        let log = server_log.clone();
        let respond = respond.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let seen = Seen {
                method: parts.method,
                target: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default(),
                headers: parts.headers,
                body,
            };
            let response = respond(&seen);
            log.push(seen);
            Ok::<_, Infallible>(response)
        }
    })
    .await;
    (addr, log, task)
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> http::Response<TestBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// A server whose operation `name` never finishes: a `POST ...:cancel` gets
/// `cancel`'s answer; every other request gets `name`, running.
fn cancel_answered(
    name: &'static str,
    cancel: impl Fn(&Seen) -> http::Response<TestBody> + Send + Sync + 'static,
) -> Respond {
    Arc::new(move |seen: &Seen| {
        if seen.method == Method::POST && seen.target.ends_with(":cancel") {
            return cancel(seen);
        }
        json(
            StatusCode::OK,
            format!(r#"{{"name":"{name}","done":false}}"#),
        )
    })
}

// ===== the other host =====

/// A TCP listener on another port of 127.0.0.1 that records every
/// connection. Nothing the layer does may reach it.
struct OtherHost {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<SocketAddr>>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl OtherHost {
    async fn start() -> OtherHost {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let changed = Arc::new(Notify::new());
        let (a, c) = (accepted.clone(), changed.clone());
        let task = tokio::spawn(async move {
            // Connections are kept open (and unanswered) until the test ends.
            let mut streams = Vec::new();
            while let Ok((stream, peer)) = listener.accept().await {
                a.lock().unwrap().push(peer);
                c.notify_waiters();
                streams.push(stream);
            }
        });
        OtherHost {
            addr,
            accepted,
            changed,
            task,
        }
    }

    /// Asserts that no connection but our own canary ever reached this host.
    /// The listener accepts in arrival order, so once the canary (connected
    /// now, after everything the layer did) is accepted, any earlier
    /// connection has been accepted and recorded too.
    async fn assert_untouched(&self) {
        let canary = TcpStream::connect(self.addr).await.unwrap();
        let canary_addr = canary.local_addr().unwrap();
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if self.accepted.lock().unwrap().contains(&canary_addr) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .expect("the canary connection was accepted");
        assert_eq!(
            *self.accepted.lock().unwrap(),
            vec![canary_addr],
            "something other than the canary connected to the other host"
        );
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The other-host check is not vacuous: a stray connection is caught.
#[tokio::test]
async fn the_other_host_notices_a_stray_connection() {
    let other = Arc::new(OtherHost::start().await);
    let _stray = TcpStream::connect(other.addr).await.unwrap();
    let check = tokio::spawn({
        let other = other.clone();
        async move { other.assert_untouched().await }
    });
    let outcome = check.await;
    assert!(
        outcome.is_err_and(|e| e.is_panic()),
        "assert_untouched passed despite a stray connection"
    );
}

// ===== counting warn events =====

/// Records the `warn` events of `tower_lro`, rendered.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl Warnings {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        crate::common::subscribers::isolate_subscribers();
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Render<'a>(&'a mut String);

impl tracing::field::Visit for Render<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::WARN && meta.target().starts_with("tower_lro") {
            let mut text = String::new();
            event.record(&mut Render(&mut text));
            self.0.lock().unwrap().push(text);
        }
    }
}

// ===== a server that never finishes, a caller that gives up =====

const START_PATH: &str = "/v1/projects/p/locations/l/jobs";

/// A server whose operations never finish: POST starts `name`, GET shows it
/// running, `:cancel` answers `cancel_status` (with a `Location` to
/// `redirect_to` for a 3xx).
fn never_done(name: &'static str, cancel_status: StatusCode, redirect_to: String) -> Respond {
    cancel_answered(name, move |seen| {
        let mut response = json(cancel_status, "{}");
        if cancel_status.is_redirection() {
            response.headers_mut().insert(
                "location",
                format!("{redirect_to}{}", seen.target).parse().unwrap(),
            );
        }
        response
    })
}

/// Starts an operation through `client`, waits for the layer's first poll,
/// then drops the call: the layer cancels.
async fn start_then_give_up<S>(client: &mut S, log: &Log, request: http::Request<Full<Bytes>>)
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let polls_before = log.all().iter().filter(|s| s.method == Method::GET).count();
    let call = send(client, request);
    let mut call = Box::pin(call);
    tokio::select! {
        _ = &mut call => panic!("a never-ending operation finished"),
        () = log.wait_for(|log| log.iter().filter(|s| s.method == Method::GET).count() > polls_before) => {}
    }
    drop(call);
}

fn request_with_every_kind_of_header(addr: SocketAddr) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}{START_PATH}"))
        // Allowlisted: credentials, quota project, API key, client info.
        .header("authorization", "Bearer secret-token")
        .header("x-goog-user-project", "billing-project")
        .header("x-goog-api-key", "api-key-123")
        .header("x-goog-api-client", "gl-rust/1.95 gccl/0.1")
        .header("user-agent", "hostile-test/1.0")
        // Not allowlisted.
        .header("cookie", "session=secret-cookie")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        .header("x-custom", "custom-value")
        .header("x-forwarded-for", "203.0.113.9")
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .header("x-goog-request-params", "name=projects%2Fevil")
        .body(Full::from(r#"{"durationMs": 60000}"#))
        .unwrap()
}

fn header_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names
}
