//! `CancelOnDropLayer` in a real client stack: a hyper-util `Client` under a
//! per-attempt timeout, tracing, a retry policy for `503`, and bearer-token
//! auth — with the caller's overall timeout outside.
//!
//! Where a layer goes relative to `CancelOnDrop` decides what it sees:
//!
//! ```text
//!  caller
//!    │  one call, for as long as the operation runs
//!    ▼
//!  TimeoutLayer (tower)       OUTSIDE: the caller's patience for the whole operation
//!    ▼
//!  CancelOnDrop               turns the call into start + polls, and fires the cancel
//!    │  start, every GetOperation poll, the CancelOperation: separate requests
//!    ▼
//!  SetRequestHeader (auth)    INSIDE: a current token on every request
//!    ▼
//!  Retry (503)                INSIDE: polls and the cancel are retried too
//!    ▼
//!  TraceLayer                 INSIDE: a span per HTTP attempt, polls and cancel included
//!    ▼
//!  TimeoutLayer (tower)       INSIDE: a bound on one HTTP attempt
//!    ▼
//!  hyper-util Client
//! ```
//!
//! Against the embedded operations server on 127.0.0.1 it:
//!
//! 1. starts a 300 ms operation whose start request is first answered `503`
//!    (injected): the retry layer resends it, the layer polls it to the end,
//!    and the caller gets the done operation;
//! 2. starts a 60 s operation with a 1 s overall timeout, rotating the token
//!    while it runs, and with the first cancel answered `503`: the timeout
//!    fires, the cancel goes out with the *current* token, the retry layer
//!    resends it, and the operation ends CANCELLED.
//!
//! Run it with `cargo run --example client_stack`; it prints what the server
//! received and exits 0 only if both went so. `RUST_LOG` filters the tracing
//! events on stderr (default `info`: TraceLayer's request spans and the
//! layer's events).

use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tower_lro::{CancelOnDropLayer, Operation, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, OperationsServer, RecordedRequest};
use tracing::Level;
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Retries a request answered `503 Service Unavailable`, up to `attempts`
/// more times, with exponential backoff.
///
/// Only 503: the server says it did not do the work, so resending even the
/// POST that starts an operation cannot start it twice. A timeout or a
/// dropped connection says nothing of the kind, so they are not retried
/// here (the layer's own `PollPolicy` and `CancelPolicy` retry those for the
/// idempotent poll and cancel requests).
///
/// The policy is cloned for each request (`Retry` needs `Clone`), so the
/// attempt count is per request. Resending needs the request again:
/// `http::Request<Full<Bytes>>` is `Clone` (a `Full<Bytes>` body is a cheap
/// reference-counted buffer), which is what `clone_request` uses.
#[derive(Clone, Debug)]
struct RetryOn503 {
    attempts: u32,
    backoff: Duration,
}

impl RetryOn503 {
    fn new(attempts: u32, backoff: Duration) -> Self {
        RetryOn503 { attempts, backoff }
    }
}

impl<B: Clone, ResBody, E> Policy<Request<B>, Response<ResBody>, E> for RetryOn503 {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<B>,
        result: &mut Result<Response<ResBody>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response)
                if response.status() == StatusCode::SERVICE_UNAVAILABLE && self.attempts > 0 =>
            {
                self.attempts -= 1;
                let delay = self.backoff;
                self.backoff = self.backoff.saturating_mul(2);
                Some(tokio::time::sleep(delay))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

/// A bearer token that can be replaced while requests are in flight, as a
/// token refresher would.
#[derive(Clone, Debug)]
struct Token(Arc<RwLock<HeaderValue>>);

impl Token {
    fn new(token: &str) -> Result<Self, BoxError> {
        Ok(Token(Arc::new(RwLock::new(Self::bearer(token)?))))
    }

    fn bearer(token: &str) -> Result<HeaderValue, BoxError> {
        Ok(HeaderValue::try_from(format!("Bearer {token}"))?)
    }

    fn set(&self, token: &str) -> Result<(), BoxError> {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Self::bearer(token)?;
        Ok(())
    }

    fn current(&self) -> HeaderValue {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
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
            println!("\nOK: the stack retried, authenticated and cancelled as described.");
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
    let server = OperationsServer::new();
    let handle = server.serve().await?;
    let base = handle.base_url();
    println!("embedded operations server on {base}");

    let token = Token::new("token-1")?;
    let lro = CancelOnDropLayer::new().poll_policy(
        PollPolicy::new()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(250)),
    );
    let cancels = lro.handle();
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();

    let mut client = ServiceBuilder::new()
        // ── OUTSIDE CancelOnDrop: sees only the caller's call, which lasts
        // from the start request until the operation is done.
        //
        // The caller's patience for the whole operation. When it fires it
        // drops the CancelOnDrop future, and that is what sends the cancel.
        // (tower's TimeoutLayer, which fails the call with `Elapsed`; tower-
        // http's TimeoutLayer is for servers: it answers 408/504 instead.)
        // Put a retry here and it would retry whole operations; put auth
        // here and polls minutes later would reuse the start's token (the
        // layer copies `authorization` from the original request).
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .layer(lro)
        // ── INSIDE CancelOnDrop: sees each HTTP request on its own: the
        // start, every GetOperation poll, and the CancelOperation, which runs
        // detached, after the caller has gone.
        //
        // Auth inside, so every poll and the cancel carry a token that is
        // current when they are sent (overriding the copy the layer makes
        // from the original request).
        .layer(SetRequestHeaderLayer::overriding(AUTHORIZATION, {
            let token = token.clone();
            move |_: &Request<Full<Bytes>>| Some(token.current())
        }))
        // Retry inside, so a 503 on a poll or on the cancel is retried like
        // one on the start. It compounds with the layer's own retries
        // (`PollPolicy`'s transient failures, `CancelPolicy::attempts`):
        // size them together.
        .layer(RetryLayer::new(RetryOn503::new(
            2,
            Duration::from_millis(50),
        )))
        // Tracing inside the retry: one span per attempt, so a 503 and its
        // retry are both seen, polls and the cancel included. (Outside
        // CancelOnDrop it would show one span for the whole operation.)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        // A bound on one HTTP attempt (its answer's head), innermost so each
        // retry gets a fresh one. Not the caller's patience: that is outside.
        .layer(TimeoutLayer::new(Duration::from_secs(5)))
        .service(http.clone());

    let mut ok = true;

    // 1. A 300 ms operation whose start is first answered 503.
    println!("\n1. a 300 ms operation; its start request is answered 503 once");
    server.inject(
        Endpoint::Start,
        Fault::Script(vec![StatusCode::SERVICE_UNAVAILABLE]),
    );
    let response = client.ready().await?.call(start(&base, 300)?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let operation = Operation::from_json(&body)?;
    println!(
        "   the caller got {status}: {} done={} error={:?}",
        operation.name,
        operation.done,
        operation.error.as_ref().map(|e| e.code)
    );
    let log = server.requests();
    print_log(&log);
    let starts: Vec<&RecordedRequest> = log
        .iter()
        .filter(|r| r.endpoint == Endpoint::Start)
        .collect();
    ok &= operation.done
        && operation.error.is_none()
        && statuses(&starts) == [503, 200]
        && starts
            .iter()
            .all(|r| r.body == br#"{"durationMs": 300}"#[..])
        && log.iter().all(|r| has_token(r, "token-1"));

    // 2. A 60 s operation abandoned after 1 s; the token rotates meanwhile;
    //    the first cancel is answered 503.
    println!("\n2. a 60 s operation, abandoned after 1 s; the token rotates while it runs; the cancel is answered 503 once");
    server.inject(
        Endpoint::Cancel,
        Fault::Script(vec![StatusCode::SERVICE_UNAVAILABLE]),
    );
    let before = server.requests().len();
    let call = client.ready().await?.call(start(&base, 60_000)?);
    // Boxed, so that `call.await` below consumes it: the future (and with
    // it the CancelOnDrop future inside the timeout) is dropped as soon as
    // the timeout fires. Awaiting a `pin!`ned future by reference would keep
    // it alive, and the cancel waiting, until the end of the scope.
    let mut call = Box::pin(call);
    // Rotate the token once the layer is polling; the caller's timeout is
    // still running.
    tokio::select! {
        result = &mut call => {
            println!("   unexpected: the call ended before polling: {:?}", result.map(|r| r.status()));
            return Ok(false);
        }
        log = server.wait_for(Duration::from_secs(10), |log| {
            log[before..].iter().any(|r| r.endpoint == Endpoint::Get)
        }) => { log?; }
    }
    token.set("token-2")?;
    println!("   the token is now token-2");
    match call.await {
        Err(e) if e.is::<tower::timeout::error::Elapsed>() => {
            println!("   the caller's timeout fired: {e}")
        }
        other => {
            println!(
                "   unexpected: the call ended otherwise: {:?}",
                other.map(|r| r.status())
            );
            ok = false;
        }
    }
    let name = server
        .operation_names()
        .last()
        .cloned()
        .ok_or("no operation")?;
    server
        .wait_for(Duration::from_secs(10), |log| {
            log.iter().any(|r| {
                r.endpoint == Endpoint::Cancel
                    && r.operation.as_deref() == Some(&*name)
                    && r.status == StatusCode::OK
            })
        })
        .await?;
    let report = cancels.drain(Duration::from_secs(10)).await;
    let log = server.requests();
    print_log(&log[before..]);
    let cancel_log = server.cancels_for(&name);
    let state = server.operation(&name).ok_or("the operation is gone")?;
    println!(
        "   GetOperation now: done={} error={}",
        state["done"], state["error"]
    );
    println!(
        "   the layer's cancel stats: fired={} accepted={} retried={} (its own retries; the 503 was retried by the retry layer)",
        report.stats.fired, report.stats.accepted, report.stats.retried
    );
    ok &= statuses(&cancel_log.iter().collect::<Vec<_>>()) == [503, 200]
        && cancel_log.iter().all(|r| has_token(r, "token-2"))
        && state["error"]["code"] == 1
        && report.stats.accepted == 1
        && report.stats.retried == 0;

    handle.shutdown().await;
    Ok(ok)
}

/// `POST {base}/v1/projects/demo/locations/us-central1/jobs`, with no
/// `authorization`: the auth layer adds it.
fn start(base: &str, duration_ms: u64) -> Result<Request<Full<Bytes>>, BoxError> {
    Ok(Request::post(format!(
        "{base}/v1/projects/demo/locations/us-central1/jobs"
    ))
    .header(CONTENT_TYPE, "application/json")
    .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))?)
}

fn print_log(log: &[RecordedRequest]) {
    for r in log {
        println!(
            "   server received: {:<4} {:<70} {:<18} -> {}",
            r.method,
            r.path,
            r.headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no authorization)"),
            r.status.as_u16()
        );
    }
}

fn statuses(log: &[&RecordedRequest]) -> Vec<u16> {
    log.iter().map(|r| r.status.as_u16()).collect()
}

fn has_token(r: &RecordedRequest, token: &str) -> bool {
    r.headers
        .get(AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == format!("Bearer {token}").as_bytes())
}
