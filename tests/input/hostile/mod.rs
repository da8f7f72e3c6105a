//! A hostile server: a loopback hyper server answers
//! the layer's requests with operations whose names and bodies try to steer
//! the layer's own requests elsewhere, leak credentials, exhaust memory or
//! crash it. Everything is asserted on the wire: the server's own request
//! log, and a second "other host" listener on another 127.0.0.1 port that
//! must never see a connection.

mod common;

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

// ===== the hostile answers =====

/// The body of a hostile answer to the layer's POST.
#[derive(Clone)]
enum Served {
    /// These bytes, in frames of at most 16 KiB.
    Bytes(Bytes),
    /// This prefix, then `x` forever.
    Endless(&'static str),
    /// This prefix, then nothing, never ending.
    Hung(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// Passed through untouched and untracked: the server sees only the POST.
    Untracked,
    /// The name is accepted, but inert: the layer polls the same server at
    /// exactly this request-target.
    Inert(String),
}

#[derive(Clone)]
struct Case {
    label: String,
    content_encoding: Option<&'static str>,
    served: Served,
    expect: Expect,
}

fn op(name_json: &str) -> Bytes {
    Bytes::from(format!(r#"{{"name":{name_json},"done":false}}"#))
}

fn untracked(label: &str, body: impl Into<Bytes>) -> Case {
    Case {
        label: label.to_owned(),
        content_encoding: None,
        served: Served::Bytes(body.into()),
        expect: Expect::Untracked,
    }
}

fn untracked_name(label: &str, name: &str) -> Case {
    untracked(label, op(&serde_json::to_string(name).unwrap()))
}

fn inert(label: &str, name: &str, target: &str) -> Case {
    Case {
        label: label.to_owned(),
        content_encoding: None,
        served: Served::Bytes(op(&serde_json::to_string(name).unwrap())),
        expect: Expect::Inert(target.to_owned()),
    }
}

fn hostile_cases(other: SocketAddr) -> Vec<Case> {
    let o = other.to_string();
    let deep_metadata = format!(
        r#"{{"metadata":{}{},"name":"//{o}/x","done":false}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    vec![
        // Path traversal.
        untracked_name(
            "dot-dot segments",
            "projects/p/locations/l/operations/../../../admin",
        ),
        untracked_name("leading dot-dot", "../../v1/admin/secrets"),
        untracked_name("escaped dot-dot", "operations/%2e%2e/%2e%2e/admin"),
        untracked_name("escaped slash", "operations/x%2F..%2F..%2Fadmin"),
        untracked_name("double-escaped dot-dot", "operations/%252e%252e"),
        untracked_name("backslash traversal", "operations\\..\\..\\admin"),
        // Another host.
        untracked_name("absolute URL", &format!("http://{o}/v1/operations/x")),
        untracked_name("upper-case scheme", &format!("HTTP://{o}/v1/operations/x")),
        untracked_name("scheme-relative", &format!("//{o}/v1/operations/x")),
        untracked_name("backslash host", &format!("\\\\{o}\\operations\\x")),
        untracked_name("mixed slashes", &format!("/\\{o}/operations/x")),
        untracked_name("host:port first segment", &format!("{o}/operations/x")),
        untracked_name(
            "escaped scheme-relative",
            &format!("%2F%2F{o}/operations/x"),
        ),
        untracked_name("leading slash", "/v1/operations/x"),
        // Query and fragment injection.
        untracked_name("query", "operations/x?alt=media&key=stolen"),
        untracked_name("escaped query", "operations/x%3Falt=media"),
        untracked_name("fragment", "operations/x#frag"),
        // Header injection.
        untracked_name("CR LF", "operations/x\r\nX-Injected: 1"),
        untracked_name("escaped CR LF", "operations/x%0d%0aX-Injected:%201"),
        untracked_name("NUL", "operations/x\u{0}"),
        untracked_name("escaped NUL", "operations/x%00"),
        untracked_name("space", "operations/x HTTP/1.1"),
        untracked_name("unicode line separator", "operations/x\u{2028}y"),
        // Oversized.
        untracked_name(
            "5000-byte name",
            &format!("operations/{}", "a".repeat(5000)),
        ),
        untracked_name(
            "100 KiB name",
            &format!("operations/{}", "a".repeat(100 * 1024)),
        ),
        // Not an operation the layer can read.
        untracked("name a number", op("7")),
        untracked("name null", op("null")),
        untracked("name an array", op(r#"["operations/x"]"#)),
        untracked("name an object", op(r#"{"operations":"x"}"#)),
        untracked(
            "duplicate name keys",
            format!(r#"{{"name":"operations/a","name":"http://{o}/x","done":false}}"#),
        ),
        untracked(
            "duplicate name, escaped key",
            format!(r#"{{"name":"operations/a","na\u006de":"//{o}/x","done":false}}"#),
        ),
        untracked("done a string", r#"{"name":"operations/x","done":"false"}"#),
        untracked("done a number", r#"{"name":"operations/x","done":0}"#),
        untracked(
            "done an object",
            r#"{"name":"operations/x","done":{"v":false}}"#,
        ),
        untracked(
            "invalid UTF-8 in the name",
            &b"{\"name\":\"operations/x\xff\xfe\",\"done\":false}"[..],
        ),
        untracked(
            "invalid UTF-8 outside the name",
            &b"{\"name\":\"operations/x\",\"done\":false,\"metadata\":\"\xc0\xaf\"} \xff"[..],
        ),
        untracked(
            "deep nesting, not an object",
            format!("{}{}", "[".repeat(400_000), "]".repeat(400_000)),
        ),
        untracked(
            "deep nesting, unbalanced",
            format!(
                r#"{{"name":"operations/x","done":false,"metadata":{}"#,
                "{\"a\":".repeat(100_000)
            ),
        ),
        untracked("deep nesting, balanced, hostile name", deep_metadata),
        untracked(
            "body past max_inspect_bytes",
            format!(
                r#"{{"name":"projects/p/locations/l/operations/big","done":false,"metadata":"{}"}}"#,
                "x".repeat(2 << 20)
            ),
        ),
        Case {
            label: "endless body".to_owned(),
            content_encoding: None,
            served: Served::Endless(
                r#"{"name":"projects/p/locations/l/operations/endless","done":false,"metadata":""#,
            ),
            expect: Expect::Untracked,
        },
        Case {
            label: "hung body".to_owned(),
            content_encoding: None,
            served: Served::Hung(
                r#"{"name":"projects/p/locations/l/operations/hung","done":false"#,
            ),
            expect: Expect::Untracked,
        },
        Case {
            label: "content-encoding gzip".to_owned(),
            content_encoding: Some("gzip"),
            served: Served::Bytes(op(r#""projects/p/locations/l/operations/gzip""#)),
            expect: Expect::Untracked,
        },
        Case {
            label: "content-encoding br, identity".to_owned(),
            content_encoding: Some("br, identity"),
            served: Served::Bytes(op(r#""projects/p/locations/l/operations/br""#)),
            expect: Expect::Untracked,
        },
        // Accepted names that stay inert on the wire: the poll goes to the
        // same server, with every risky byte percent-encoded.
        inert(
            "userinfo-looking",
            &format!("operations/@{o}"),
            &format!("/v1/operations/%40{}", o.replace(':', "%3A")),
        ),
        inert(
            "user:pass@host-looking",
            &format!("operations/u:p@{o}/x"),
            &format!("/v1/operations/u%3Ap%40{}/x", o.replace(':', "%3A")),
        ),
        inert(
            "reserved characters",
            "operations/a+b;c=d&e,f:g",
            "/v1/operations/a%2Bb%3Bc%3Dd%26e%2Cf%3Ag",
        ),
        inert(
            "escapes stay literal",
            "operations/%41%2e%2e",
            "/v1/operations/%2541%252e%252e",
        ),
        inert(
            "custom-method-looking",
            "operations/x:cancel",
            "/v1/operations/x%3Acancel",
        ),
        inert(
            "unicode, fullwidth dots and solidus",
            "projects/p/operations/caf\u{e9}/\u{ff0e}\u{ff0e}/\u{ff0f}x",
            "/v1/projects/p/operations/caf%C3%A9/%EF%BC%8E%EF%BC%8E/%EF%BC%8Fx",
        ),
        inert(
            "overlong UTF-8 escape",
            "operations/%c0%ae%c0%ae",
            "/v1/operations/%25c0%25ae%25c0%25ae",
        ),
        Case {
            label: "deep metadata, valid name".to_owned(),
            content_encoding: None,
            served: Served::Bytes(Bytes::from(format!(
                r#"{{"metadata":{}{},"name":"projects/p/locations/l/operations/deep-ok"}}"#,
                "[".repeat(200_000),
                "]".repeat(200_000)
            ))),
            expect: Expect::Inert("/v1/projects/p/locations/l/operations/deep-ok".to_owned()),
        },
    ]
}

/// The hostile server: `POST …/cases/{i}:run` gets case `i`'s answer; any GET
/// (a poll of an inert name) gets a done operation; anything else a 404.
fn hostile_responder(cases: Arc<Vec<Case>>) -> Respond {
    Arc::new(move |seen: &Seen| {
        if seen.method == Method::GET {
            return json(StatusCode::OK, r#"{"done":true,"response":{"ok":true}}"#);
        }
        let index = seen
            .target
            .strip_prefix("/v1/projects/p/locations/l/cases/")
            .and_then(|rest| rest.strip_suffix(":run"))
            .and_then(|i| i.parse::<usize>().ok());
        let Some(case) = index.and_then(|i| cases.get(i)) else {
            return json(StatusCode::NOT_FOUND, "{}");
        };
        let body: TestBody = match &case.served {
            Served::Bytes(bytes) => {
                let frames: Vec<_> = bytes
                    .chunks(16 * 1024)
                    .map(|c| Ok::<_, Infallible>(http_body::Frame::data(bytes.slice_ref(c))))
                    .collect();
                StreamBody::new(stream::iter(frames)).boxed()
            }
            Served::Endless(prefix) => {
                let x = Bytes::from(vec![b'x'; 64 * 1024]);
                let frames = std::iter::once(Bytes::from_static(prefix.as_bytes()))
                    .chain(std::iter::repeat(x))
                    .map(|b| Ok::<_, Infallible>(http_body::Frame::data(b)));
                StreamBody::new(stream::iter(frames)).boxed()
            }
            Served::Hung(prefix) => {
                let first = stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
                    Bytes::from_static(prefix.as_bytes()),
                ))]);
                StreamBody::new(futures_util::StreamExt::chain(first, stream::pending())).boxed()
            }
        };
        let mut response = http::Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .header("x-case", index.unwrap_or_default().to_string());
        if let Some(encoding) = case.content_encoding {
            response = response.header("content-encoding", encoding);
        }
        response.body(body).unwrap()
    })
}

/// Reads a body frame by frame until it ends or `limit` bytes were read.
async fn read_up_to<B>(mut body: B, limit: usize) -> (Vec<u8>, bool)
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            None => return (out, true),
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    out.extend_from_slice(&data);
                }
            }
        }
    }
    (out, false)
}

#[tokio::test]
async fn hostile_operations_steer_nothing_off_the_origin() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let other = OtherHost::start().await;
    let cases = Arc::new(hostile_cases(other.addr));
    let (addr, log, server) = recording_server(hostile_responder(cases.clone())).await;
    // A call dropped while its response is read goes on reading in a detached
    // task, bounded by the cancel deadline: short here.
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(tower_lro::CancelPolicy::new().deadline(Duration::from_millis(300)));
    let mut client = lro_client(&layer);

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let label = &case.label;
        let target = format!("/v1/projects/p/locations/l/cases/{i}:run");
        let logged_before = log.len();
        let warned_before = warnings.all().len();
        let request = http::Request::post(format!("http://{addr}{target}"))
            .header("content-type", "application/json")
            .header("authorization", "Bearer secret-token")
            .body(Full::from("{}"))
            .unwrap();
        let call = send(&mut client, request);

        if let Served::Hung(_) = case.served {
            // Bounded by the caller's own timeout: the drop path.
            let outcome = tokio::time::timeout(Duration::from_millis(200), call).await;
            if outcome.is_ok() {
                failures.push(format!("{label}: a hung body resolved the call"));
            }
            // The detached read of the abandoned response ends at the cancel
            // deadline, having found no operation to cancel.
            let report = layer.handle().drain(WAIT).await;
            if !report.is_complete() || report.stats.fired != 0 {
                failures.push(format!("{label}: after the drop: {report:?}"));
            }
        } else {
            let response = match tokio::time::timeout(WAIT, call).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    failures.push(format!("{label}: the call failed: {e}"));
                    continue;
                }
                Err(_) => {
                    failures.push(format!("{label}: the call hung"));
                    continue;
                }
            };
            if response.status() != StatusCode::OK {
                failures.push(format!("{label}: status {}", response.status()));
            }
            match (&case.expect, &case.served) {
                (Expect::Untracked, Served::Bytes(sent)) => {
                    if response.headers().get("x-case").map(|v| v.as_bytes())
                        != Some(i.to_string().as_bytes())
                    {
                        failures.push(format!("{label}: headers not passed through"));
                    }
                    let got = body_bytes(response.into_body()).await;
                    if got != *sent {
                        failures.push(format!(
                            "{label}: body changed ({} bytes sent, {} received)",
                            sent.len(),
                            got.len()
                        ));
                    }
                }
                (Expect::Untracked, Served::Endless(prefix)) => {
                    // The caller gets the bytes the layer read, then the rest
                    // of the stream: 4 MiB of it, all in order.
                    let (got, ended) = read_up_to(response.into_body(), 4 << 20).await;
                    let intact = !ended
                        && got.starts_with(prefix.as_bytes())
                        && got[prefix.len()..].iter().all(|&b| b == b'x');
                    if !intact {
                        failures.push(format!(
                            "{label}: endless body not handed over intact ({} bytes)",
                            got.len()
                        ));
                    }
                }
                (Expect::Inert(_), _) => {
                    let got = body_bytes(response.into_body()).await;
                    if got.as_ref() != br#"{"done":true,"response":{"ok":true}}"# {
                        failures.push(format!(
                            "{label}: not the done poll's body: {:?}",
                            String::from_utf8_lossy(&got)
                        ));
                    }
                }
                (Expect::Untracked, Served::Hung(_)) => unreachable!(),
            }
        }

        // On the wire: the POST, and for an inert name polls of exactly the
        // expected target, on this server.
        let seen: Vec<Seen> = log.all().split_off(logged_before);
        let (posts, rest) = seen
            .split_first()
            .map_or((None, &[][..]), |(p, r)| (Some(p), r));
        match posts {
            Some(post) if post.method == Method::POST && post.target == target => {}
            other => failures.push(format!("{label}: first request {other:?}")),
        }
        match &case.expect {
            Expect::Untracked => {
                if !rest.is_empty() {
                    failures.push(format!(
                        "{label}: the layer sent requests: {:?}",
                        rest.iter()
                            .map(|s| format!("{} {}", s.method, s.target))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            Expect::Inert(expected) => {
                let ok = !rest.is_empty()
                    && rest.iter().all(|s| {
                        s.method == Method::GET
                            && &s.target == expected
                            && s.headers["host"] == addr.to_string().as_str()
                    });
                if !ok {
                    failures.push(format!(
                        "{label}: expected GET {expected}, saw {:?}",
                        rest.iter()
                            .map(|s| format!("{} {}", s.method, s.target))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }

        // One warn event per response left untracked for being hostile (for
        // the hung body: the detached read giving up), none for inert names,
        // and none echoing a control character.
        let warned: Vec<String> = warnings.all().split_off(warned_before);
        let expected_warnings = match &case.expect {
            Expect::Inert(_) => 0,
            Expect::Untracked => 1,
        };
        if warned.len() != expected_warnings {
            failures.push(format!(
                "{label}: {} warn events, expected {expected_warnings}: {warned:?}",
                warned.len()
            ));
        }
        if let Some(long) = warned.iter().find(|w| w.len() > 2000) {
            failures.push(format!(
                "{label}: a warn event of {} bytes echoes the body: {}…",
                long.len(),
                &long[..200]
            ));
        }
        if warned.iter().any(|w| w.contains(['\r', '\n', '\0'])) {
            failures.push(format!("{label}: a warn event echoes control characters"));
        }
    }

    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.fired, 0, "nothing was cancelled: {report:?}");
    other.assert_untouched().await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    server.abort();
}

/// A hostile body's text reaches neither the logs nor the caller's error:
/// `serde_json` quotes the offending value in its messages (`invalid type:
/// string "…"`), so a `done` of 100 KB would be a 100 KB log line per
/// response, or a 100 KB `Error` message.
#[tokio::test]
async fn warn_events_and_errors_never_echo_a_hostile_body() {
    const NAME: &str = "projects/p/locations/l/operations/echo";
    let huge = format!(r#""{}\r\nX-Injected: 1""#, "y".repeat(100_000));
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let start_body = format!(r#"{{"name":"operations/x","done":{huge}}}"#);
    let poll_body = format!(r#"{{"name":"{NAME}","done":{huge}}}"#);
    let (addr, _log, server) = recording_server(Arc::new(move |seen: &Seen| {
        match (&seen.method, seen.target.as_str()) {
            (&Method::POST, "/v1/projects/p/locations/l/echo") => {
                json(StatusCode::OK, start_body.clone())
            }
            (&Method::POST, "/v1/projects/p/locations/l/jobs") => {
                json(StatusCode::OK, format!(r#"{{"name":"{NAME}"}}"#))
            }
            (&Method::GET, _) => json(StatusCode::OK, poll_body.clone()),
            _ => json(StatusCode::OK, "{}"),
        }
    }))
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);

    // The original response: untracked, one short warn event.
    let response = send(
        &mut client,
        post_empty(format!("http://{addr}/v1/projects/p/locations/l/echo")),
    )
    .await
    .unwrap();
    assert!(body_bytes(response.into_body()).await.len() > 100_000);
    let warned = warnings.all();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].len() < 1000,
        "a {}-byte warn event",
        warned[0].len()
    );
    assert!(!warned[0].contains(['\r', '\n']));

    // A poll response: the error names the operation, briefly.
    let err = send(&mut client, start(&format!("http://{addr}"), 60_000))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidPollResponse { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains(NAME), "{shown}");
    assert!(shown.len() < 1000, "a {}-byte error message", shown.len());
    assert!(!shown.contains(['\r', '\n']));
    server.abort();
}

/// A cancel answered with a status the layer reads the body of (a 4xx
/// other than 404, to look for an AIP-193 `UNIMPLEMENTED`) and a body that
/// never ends: the cancel must still end within its own deadline, counted
/// `failed`, and free its slot; `drain` must not wait forever.
#[tokio::test]
async fn a_cancel_answer_whose_body_hangs_is_bounded_by_the_cancel_deadline() {
    const NAME: &str = "projects/p/locations/l/operations/hung-cancel";
    let (addr, log, server) = recording_server(cancel_answered(NAME, |_| {
        let first = stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
            Bytes::from_static(b"{\"error\":"),
        ))]);
        http::Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("content-type", "application/json")
            .body(StreamBody::new(futures_util::StreamExt::chain(first, stream::pending())).boxed())
            .unwrap()
    }))
    .await;
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(
            tower_lro::CancelPolicy::new()
                .attempt_timeout(Duration::from_millis(100))
                .deadline(Duration::from_millis(300))
                // One slot: a cancel that kept it would block the next.
                .concurrency(1, 16),
        );
    let mut client = lro_client(&layer);
    let cancels_sent = |log: &[Seen]| log.iter().filter(|s| s.target.ends_with(":cancel")).count();
    start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
    log.wait_for(|log| cancels_sent(log) > 0).await;
    // Far longer than the cancel's 300 ms deadline; a bound, not a wait.
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "the cancel never ended: {report:?}");
    assert_eq!(
        (report.stats.fired, report.stats.failed),
        (1, 1),
        "{report:?}"
    );

    // The hung cancel freed its one slot: the next cancel is sent (held, it
    // would wait for the slot until its own deadline and send nothing).
    let before = cancels_sent(&log.all());
    start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
    log.wait_for(|log| cancels_sent(log) > before).await;
    let report = layer.handle().drain(WAIT).await;
    assert_eq!(
        (report.stats.fired, report.stats.failed, report.stats.shed),
        (2, 2, 0),
        "{report:?}"
    );
    server.abort();
}

/// `Retry-After` is a number from the server: the largest one must not
/// overflow the cancel's backoff arithmetic (a panic in the cancel task,
/// counted `lost`), but end the cancel as `failed` within its deadline.
#[tokio::test]
async fn a_huge_retry_after_on_a_cancel_fails_it_without_a_panic() {
    const NAME: &str = "projects/p/locations/l/operations/retry-after";
    let (addr, log, server) = recording_server(cancel_answered(NAME, |_| {
        let mut response = json(StatusCode::SERVICE_UNAVAILABLE, "{}");
        response
            .headers_mut()
            .insert("retry-after", u64::MAX.to_string().parse().unwrap());
        response
    }))
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);
    start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.fired, report.stats.failed, report.stats.lost),
        (1, 1, 0),
        "{report:?}"
    );
    let cancels = log
        .all()
        .iter()
        .filter(|s| s.target.ends_with(":cancel"))
        .count();
    assert_eq!(cancels, 1, "no retry scheduled past the cancel deadline");
    server.abort();
}

// ===== the header allowlist =====

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

async fn check_allowlist(layer: CancelOnDropLayer, extra: &[(&str, &str)]) {
    const NAME: &str = "projects/p/locations/l/operations/headers";
    let (addr, log, server) =
        recording_server(never_done(NAME, StatusCode::OK, String::new())).await;
    let mut client = lro_client(&layer);
    start_then_give_up(&mut client, &log, request_with_every_kind_of_header(addr)).await;
    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        (report.stats.fired, report.stats.accepted),
        (1, 1),
        "{report:?}"
    );

    let mut expected: Vec<(&str, String)> = vec![
        ("authorization", "Bearer secret-token".into()),
        ("host", addr.to_string()),
        ("user-agent", "hostile-test/1.0".into()),
        ("x-goog-api-client", "gl-rust/1.95 gccl/0.1".into()),
        ("x-goog-api-key", "api-key-123".into()),
        (
            "x-goog-request-params",
            "name=projects%2Fp%2Flocations%2Fl%2Foperations%2Fheaders".into(),
        ),
        ("x-goog-user-project", "billing-project".into()),
    ];
    expected.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));

    let seen = log.all();
    let polls: Vec<&Seen> = seen.iter().filter(|s| s.method == Method::GET).collect();
    let cancels: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == Method::POST && s.target.ends_with(":cancel"))
        .collect();
    assert!(!polls.is_empty());
    assert_eq!(cancels.len(), 1, "{seen:#?}");
    for poll in &polls {
        assert_eq!(poll.target, format!("/v1/{NAME}"));
        let mut want: Vec<String> = expected.iter().map(|(k, _)| (*k).to_owned()).collect();
        want.sort();
        assert_eq!(header_names(&poll.headers), want, "poll headers");
        for (k, v) in &expected {
            assert_eq!(
                poll.headers.get_all(*k).iter().collect::<Vec<_>>(),
                [v.as_str()],
                "{k}"
            );
        }
    }
    let cancel = cancels[0];
    assert_eq!(cancel.target, format!("/v1/{NAME}:cancel"));
    assert!(cancel.body.is_empty());
    let mut want: Vec<String> = expected.iter().map(|(k, _)| (*k).to_owned()).collect();
    want.push("content-length".to_owned());
    want.sort();
    assert_eq!(header_names(&cancel.headers), want, "cancel headers");
    assert_eq!(cancel.headers["content-length"], "0");
    for (k, v) in &expected {
        assert_eq!(
            cancel.headers.get_all(*k).iter().collect::<Vec<_>>(),
            [v.as_str()],
            "{k}"
        );
    }
    server.abort();
}

#[tokio::test]
async fn only_allowlisted_headers_reach_the_poll_and_the_cancel() {
    check_allowlist(CancelOnDropLayer::new().poll_policy(fast_polls()), &[]).await;
}

#[tokio::test]
async fn forward_headers_adds_to_the_allowlist() {
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .forward_headers([HeaderName::from_static("x-custom")]);
    check_allowlist(layer, &[("x-custom", "custom-value")]).await;
}

// ===== redirects =====

#[tokio::test]
async fn a_redirected_cancel_is_not_followed() {
    let other = OtherHost::start().await;
    let statuses = [301, 302, 303, 307, 308];
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    for status in statuses {
        let status = StatusCode::from_u16(status).unwrap();
        let name: &'static str = Box::leak(
            format!(
                "projects/p/locations/l/operations/redirect-{}",
                status.as_u16()
            )
            .into_boxed_str(),
        );
        let (addr, log, server) =
            recording_server(never_done(name, status, format!("http://{}", other.addr))).await;
        let mut client = lro_client(&layer);
        start_then_give_up(&mut client, &log, start(&format!("http://{addr}"), 60_000)).await;
        log.wait_for(|log| log.iter().any(|s| s.target.ends_with(":cancel")))
            .await;
        let report = layer.handle().drain(WAIT).await;
        assert!(report.is_complete(), "{report:?}");
        let cancels: Vec<Seen> = log
            .all()
            .into_iter()
            .filter(|s| s.target.ends_with(":cancel"))
            .collect();
        assert_eq!(cancels.len(), 1, "{status}: one cancel, not retried");
        assert_eq!(cancels[0].target, format!("/v1/{name}:cancel"));
        server.abort();
    }
    let stats = layer.handle().stats();
    assert_eq!(stats.fired, statuses.len() as u64, "{stats:?}");
    assert_eq!(
        stats.failed,
        statuses.len() as u64,
        "a 3xx is a failed cancel: {stats:?}"
    );
    assert_eq!((stats.accepted, stats.retried), (0, 0), "{stats:?}");
    other.assert_untouched().await;
}

#[tokio::test]
async fn a_redirected_poll_is_not_followed() {
    const NAME: &str = "projects/p/locations/l/operations/poll-redirect";
    let other = OtherHost::start().await;
    let location = format!("http://{}/v1/{NAME}", other.addr);
    let (addr, log, server) = recording_server(Arc::new(move |seen: &Seen| {
        match (&seen.method, seen.target.ends_with(":cancel")) {
            (&Method::POST, false) => json(StatusCode::OK, format!(r#"{{"name":"{NAME}"}}"#)),
            (&Method::POST, true) => json(StatusCode::OK, "{}"),
            _ => {
                let mut response = json(StatusCode::FOUND, "{}");
                response
                    .headers_mut()
                    .insert("location", location.parse().unwrap());
                response
            }
        }
    }))
    .await;
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = lro_client(&layer);
    let err = send(&mut client, start(&format!("http://{addr}"), 60_000))
        .await
        .unwrap_err();
    match &err {
        Error::Poll {
            operation, status, ..
        } => {
            assert_eq!(operation.as_str(), NAME);
            assert_eq!(
                *status,
                Some(tower_lro::WireStatus::Http(StatusCode::FOUND))
            );
        }
        other => panic!("expected Error::Poll, got {other:?}"),
    }
    let report = layer.handle().drain(WAIT).await;
    assert_eq!(
        (report.stats.fired, report.stats.accepted),
        (1, 1),
        "{report:?}"
    );
    let seen = log.all();
    let polls = seen.iter().filter(|s| s.method == Method::GET).count();
    assert_eq!(polls, 1, "a 302 is not retried or followed");
    let cancel = seen.iter().find(|s| s.target.ends_with(":cancel")).unwrap();
    assert_eq!(cancel.target, format!("/v1/{NAME}:cancel"));
    other.assert_untouched().await;
    server.abort();
}

/// Starts operation `name` through `client` (a stack with `layer` on top)
/// on a server whose cancel answers `307` to `redirect_to`, gives up, and
/// drains `layer`'s cancels: the drain's report.
async fn cancel_redirected<S>(
    name: &'static str,
    layer: &CancelOnDropLayer,
    mut client: S,
    redirect_to: SocketAddr,
) -> DrainReport
where
    S: Service<http::Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    let redirect_to = format!("http://{redirect_to}");
    let respond = never_done(name, StatusCode::TEMPORARY_REDIRECT, redirect_to);
    let (addr, log, server) = recording_server(respond).await;
    start_then_give_up(&mut client, &log, request_with_every_kind_of_header(addr)).await;
    let report = layer.handle().drain(WAIT).await;
    server.abort();
    report
}

/// A redirect-following inner service is the user's choice: the layer hands
/// it its poll and cancel requests like any other. tower-http's
/// `FollowRedirect` with its default policy follows a cross-origin 307 and
/// strips `authorization`, `cookie` and `proxy-authorization` — but not
/// `x-goog-api-key` or `x-goog-user-project`. With `SameOrigin` it does not
/// follow, and the cancel counts as failed. (README, "Security".)
#[tokio::test]
async fn follow_redirect_inside_the_layer_is_the_users_policy() {
    use tower_http::follow_redirect::policy::{PolicyExt, SameOrigin};
    use tower_http::follow_redirect::FollowRedirectLayer;
    const NAME: &str = "projects/p/locations/l/operations/follow";

    // The redirect target is an HTTP server here, to see what arrives.
    let (other_addr, other_log, other_server) =
        recording_server(Arc::new(|_: &Seen| json(StatusCode::OK, "{}"))).await;

    // 1. The default policy: followed, credentials filtered (partly).
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(FollowRedirectLayer::new())
        .service(http_client());
    let report = cancel_redirected(NAME, &layer, client, other_addr).await;
    assert_eq!(
        (report.stats.fired, report.stats.accepted),
        (1, 1),
        "{report:?}"
    );
    let followed = other_log.all();
    assert_eq!(followed.len(), 1, "{followed:#?}");
    let followed = &followed[0];
    assert_eq!(followed.method, Method::POST);
    assert_eq!(followed.target, format!("/v1/{NAME}:cancel"));
    for dropped in ["authorization", "cookie", "proxy-authorization"] {
        assert!(
            !followed.headers.contains_key(dropped),
            "{dropped} crossed origins"
        );
    }
    assert_eq!(followed.headers["x-goog-api-key"], "api-key-123");
    assert_eq!(followed.headers["x-goog-user-project"], "billing-project");

    // 2. SameOrigin: not followed; the 307 reaches the layer, a failed cancel.
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let policy = tower_http::follow_redirect::policy::Limited::default()
        .and::<_, Full<Bytes>, ()>(SameOrigin::new());
    let client = ServiceBuilder::new()
        .layer(layer.clone())
        .layer(FollowRedirectLayer::with_policy(policy))
        .service(http_client());
    let report = cancel_redirected(NAME, &layer, client, other_addr).await;
    assert_eq!(
        (report.stats.fired, report.stats.failed),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(other_log.len(), 1, "nothing more reached the other origin");
    other_server.abort();
}
