//! The main job: a hyper-util client wrapped in `CancelOnDropLayer`, talking to
//! the embedded AIP-151 operations server on 127.0.0.1.
//!
//! 1. Starts a 30-second operation, gives up after 2 s with
//!    `tokio::time::timeout`, and shows the cancel the server received and the
//!    operation's final state (`done: true`, `error.code: 1`, CANCELLED).
//! 2. Starts a 1.5-second operation and lets it finish: shows its response and
//!    that no cancel was sent, with a live progress bar fed by
//!    `CancelOnDropLayer::on_progress` from each poll's metadata
//!    (a `google.protobuf.Struct` with `progressPercent`).
//!
//! Run it with `cargo run --example demo`. Exits 0 only if both behaved so.
//! Tracing events go to stderr (`RUST_LOG` filters them; default `info`).

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_lro::{CancelOnDropLayer, Operation, PollPolicy};
use tower_lro_testing::{Endpoint, OperationsServer};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
            println!("\nOK: the abandoned operation was cancelled, the finished one was not.");
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

    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    // Progress from each poll's metadata `progressPercent`: a live bar on a
    // terminal, and the figures for the summary line.
    let bar = Arc::new(Mutex::new(ProgressBar::hidden()));
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (bar_hook, seen_hook) = (bar.clone(), seen.clone());
    let lro = CancelOnDropLayer::new()
        .poll_policy(
            PollPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .max_delay(Duration::from_secs(1)),
        )
        .on_progress(move |op| {
            if let Ok(decoded) = op.decode::<Metadata, serde_json::Value>() {
                let percent = decoded.metadata.map_or(0, |m| m.value.progress_percent);
                lock(&bar_hook).set_position(percent);
                lock(&seen_hook).push(percent);
            }
        });
    let cancels = lro.handle();
    let mut client = ServiceBuilder::new().layer(lro).service(http.clone());
    let mut ok = true;

    // 1. A 30 s operation, abandoned after 2 s.
    println!("\n1. POST {base}/v1/projects/demo/locations/us-central1/jobs (a 30 s operation); giving up after 2 s");
    let request = start(&base, 30_000)?;
    let call = client.ready().await?.call(request);
    match tokio::time::timeout(Duration::from_secs(2), call).await {
        Ok(result) => {
            println!(
                "   unexpected: the call finished: {:?}",
                result.map(|r| r.status())
            );
            ok = false;
        }
        Err(_) => println!("   timed out after 2 s; the response future was dropped"),
    }
    let name = server
        .operation_names()
        .first()
        .cloned()
        .ok_or("the server started no operation")?;
    println!("   operation: {name}");
    let log = server
        .wait_for(Duration::from_secs(10), |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && r.is_answered())
        })
        .await?;
    for r in log.iter().filter(|r| r.endpoint == Endpoint::Cancel) {
        println!(
            "   server received: {} {} (body {} bytes, content-length {:?}, answered {})",
            r.method,
            r.path,
            r.body.len(),
            r.headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            r.status
        );
    }
    let cancels_for = server.cancels_for(&name).len();
    let polls = server
        .requests_to(Endpoint::Get)
        .iter()
        .filter(|r| r.operation.as_deref() == Some(&*name))
        .count();
    println!("   polls before giving up: {polls}; cancels for it: {cancels_for}");
    let state = get_operation(&http, &base, &name).await?;
    println!(
        "   GetOperation now: done={} error.code={} ({})",
        state.done,
        state.error.as_ref().map_or(0, |e| e.code),
        if state.is_cancelled() {
            "CANCELLED"
        } else {
            "not cancelled"
        }
    );
    ok &= cancels_for == 1 && state.is_cancelled();

    // 2. A 1.5 s operation, allowed to finish.
    println!("\n2. POST {base}/v1/projects/demo/locations/us-central1/jobs (a 1.5 s operation); waiting for it");
    let before = server.requests_to(Endpoint::Cancel).len();
    lock(&seen).clear();
    *lock(&bar) = ProgressBar::new(100).with_style(
        ProgressStyle::with_template("   {bar:40} {pos:>3}%")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = tokio::time::Instant::now();
    let response = client.ready().await?.call(start(&base, 1_500)?).await?;
    lock(&bar).finish_and_clear();
    let percents = lock(&seen).clone();
    let progress: Vec<String> = percents.iter().map(|p| format!("{p}%")).collect();
    println!("   progress seen while polling: {}", progress.join(" → "));
    // Live progress: polls at 250 ms, 375 ms, 563 ms, 844 ms and 1.27 s
    // (×1.5 from 250 ms) fall within the 1.5 s operation, so at least two
    // readings below 100 %, never going back.
    let live = percents.iter().filter(|p| **p < 100).count();
    let monotonic = percents.windows(2).all(|w| w[0] <= w[1]);
    if live < 2 || !monotonic {
        println!("   FAILED: expected at least two rising progress readings below 100 %");
    }
    ok &= live >= 2 && monotonic;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let operation = Operation::from_json(&body)?;
    println!(
        "   {} after {} ms: {} done={} response={}",
        status,
        started.elapsed().as_millis(),
        operation.name,
        operation.done,
        operation.response.as_ref().map_or("-", |r| r.get())
    );
    let report = cancels.drain(Duration::from_secs(10)).await;
    let after = server.requests_to(Endpoint::Cancel).len();
    println!("   cancels sent for it: {}", after - before);
    println!(
        "\ncancel stats: fired={} accepted={} failed={}",
        report.stats.fired, report.stats.accepted, report.stats.failed
    );
    ok &= operation.done && operation.error.is_none() && after == before;
    handle.shutdown().await;
    Ok(ok)
}

/// The embedded server's operation metadata: a `google.protobuf.Any` holding
/// a `google.protobuf.Struct`, whose proto3 JSON form carries the struct in
/// `value` (`{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {...}}`).
#[derive(serde::Deserialize)]
struct Metadata {
    value: Progress,
}

/// The fields of the metadata the demo reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Progress {
    progress_percent: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn start(base: &str, duration_ms: u64) -> Result<http::Request<Full<Bytes>>, BoxError> {
    Ok(http::Request::post(format!(
        "{base}/v1/projects/demo/locations/us-central1/jobs"
    ))
    .header("content-type", "application/json")
    .header("authorization", "Bearer demo-token")
    .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))?)
}

async fn get_operation(
    http: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    name: &str,
) -> Result<Operation, BoxError> {
    let response = http
        .clone()
        .oneshot(http::Request::get(format!("{base}/v1/{name}")).body(Full::default())?)
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Operation::from_json(&body)?)
}
