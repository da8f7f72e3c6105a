//! The layer's OpenTelemetry metrics, scraped as Prometheus text.
//!
//! A run like the demo's against the embedded AIP-151 server on loopback:
//! four operations waited on to the end, four given up on (their cancels
//! delivered, one of them refused with `500` and so left running), and two
//! still waiting when the process shuts down (`CancelHandle::shutdown`).
//! Then the instruments are read through `opentelemetry-prometheus` and
//! printed as a Prometheus scrape would see them (histogram buckets left
//! out), and checked against the server's own records: cancels received,
//! operations CANCELLED, operations still running.
//!
//! `cargo run --example metrics --features opentelemetry`
//! (exits 0 only if the figures match the server's).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{CancelOnDropLayer, CancelPolicy, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, OperationsServer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("\nFAILED: the metrics disagree with the server (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, BoxError> {
    // The application's side: a Prometheus registry, read by an exporter.
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()?;
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();
    let meter = provider.meter("tower-lro");

    let server = OperationsServer::new();
    let handle = server.serve().await?;
    let base = handle.base_url();
    let lro = CancelOnDropLayer::new()
        .poll_policy(
            PollPolicy::new()
                .initial_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(200)),
        )
        .cancel_policy(
            CancelPolicy::new().backoff(Duration::from_millis(20), Duration::from_millis(200)),
        )
        .meter(&meter);
    let cancels = lro.handle();
    let client = ServiceBuilder::new()
        .layer(lro)
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let start = |duration_ms: u64| {
        let request = http::Request::post(format!(
            "{base}/v1/projects/demo/locations/us-central1/jobs"
        ))
        .header("content-type", "application/json")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)));
        let client = client.clone();
        tokio::spawn(async move {
            client
                .oneshot(request?)
                .await
                .map(drop)
                .map_err(BoxError::from)
        })
    };

    println!("4 operations of 100 ms, waited on to the end");
    for task in (0..4).map(|_| start(100)).collect::<Vec<_>>() {
        task.await??;
    }

    println!("4 operations of 10 min, given up on after 300 ms (the first cancel refused: 500)");
    server.inject(
        Endpoint::Cancel,
        Fault::Script(vec![StatusCode::INTERNAL_SERVER_ERROR]),
    );
    let abandoned: Vec<_> = (0..4).map(|_| start(600_000)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for task in abandoned {
        task.abort();
    }
    cancels.drain(WAIT).await;

    println!("2 operations of 10 min still waited on at shutdown");
    let waiting: Vec<_> = (0..2).map(|_| start(600_000)).collect();
    let polled = server.requests_to(Endpoint::Get).len();
    server
        .wait_for(WAIT, |log| {
            log.iter().filter(|r| r.endpoint == Endpoint::Get).count() >= polled + 2
        })
        .await?;
    let report = cancels.shutdown(WAIT).await;
    for task in waiting {
        let ended = task.await?;
        println!(
            "  caller: {}",
            ended.err().map_or("done".into(), |e| e.to_string())
        );
    }
    println!(
        "  shutdown: {} accepted, {} not accepted",
        report.accepted.len(),
        report.not_accepted.len()
    );

    // What a scrape of /metrics would return.
    let mut text = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut text)?;
    let text = String::from_utf8(text)?;
    println!("\n# Prometheus text (lro_* series; histogram buckets left out)");
    for line in text.lines() {
        let series = line
            .trim_start_matches("# HELP ")
            .trim_start_matches("# TYPE ");
        if series.starts_with("lro_") && !line.contains("_bucket{") {
            println!("{line}");
        }
    }

    // The same figures, from the server's own records.
    let log = server.requests();
    let cancelled_at_server: BTreeSet<_> = log
        .iter()
        .filter(|r| r.endpoint == Endpoint::Cancel)
        .filter_map(|r| r.operation.clone())
        .collect();
    let ops: Vec<_> = server
        .operation_names()
        .iter()
        .filter_map(|n| server.operation(n))
        .collect();
    let cancelled = ops.iter().filter(|o| o["error"]["code"] == 1).count() as u64;
    let running = ops.iter().filter(|o| o["done"] != true).count() as u64;
    let fired = scalar(&text, "lro_cancels_fired_total", "");
    let accepted = scalar(
        &text,
        "lro_cancels_settled_total",
        "lro_cancel_outcome=\"accepted\"",
    );
    let left = scalar(&text, "lro_operations_left_running_total", "");
    println!("\n| figure | metrics | server |\n|---|---|---|");
    println!(
        "| cancels fired / operations that received a cancel | {fired} | {} |",
        cancelled_at_server.len()
    );
    println!("| cancels accepted / operations CANCELLED | {accepted} | {cancelled} |");
    println!("| operations left running / operations still running | {left} | {running} |");
    handle.shutdown().await;
    Ok(fired == cancelled_at_server.len() as u64
        && accepted == cancelled
        && left == running
        && running == 1)
}

/// The sum of the samples of `name` whose labels contain `label`.
fn scalar(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
