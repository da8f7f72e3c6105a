//! What a user sees with a plain `tracing_subscriber::fmt` subscriber at
//! `tower_lro=debug`: each event line carries the spans it happened in, so the
//! per-poll events must sit inside `lro.poll`, the cancel's inside `lro.cancel`,
//! and operation names must print as names (`Display`), not `Some("…")`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tower::{Layer, ServiceExt};
use tower_lro::{CancelOnDropLayer, PollPolicy};
use tower_lro_testing::{Endpoint, OperationsServer};
use tracing_subscriber::EnvFilter;

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn start(duration_ms: u64) -> Request<Full<Bytes>> {
    Request::post("http://upstream.test/v1/projects/p/locations/l/jobs")
        .header("content-type", "application/json")
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

fn the_line<'a>(lines: &'a [String], message: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no {message:?} line in:\n{}", lines.join("\n")))
}

#[tokio::test(start_paused = true)]
async fn a_fmt_subscriber_shows_the_call_its_polls_and_the_cancel() {
    crate::isolate_subscribers();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("tower_lro=debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let server = OperationsServer::new();
    let layer = CancelOnDropLayer::new().poll_policy(PollPolicy::new().jitter(false));
    let cancels = layer.handle();
    let svc = layer.layer(server.clone());

    // One call polled to done (polls at 1, 1.5 and 2.25 s of a 2 s operation)…
    svc.clone().oneshot(start(2_000)).await.unwrap();
    // …and one given up on while it waits.
    let abandoned = svc.clone().oneshot(start(60_000));
    assert!(tokio::time::timeout(Duration::from_secs(3), abandoned)
        .await
        .is_err());
    server
        .wait_for(Duration::from_secs(10), |log| {
            log.iter()
                .any(|r| r.endpoint == Endpoint::Cancel && r.is_answered())
        })
        .await
        .unwrap();
    cancels.drain(Duration::from_secs(10)).await;

    let lines = captured.lines();
    let op1 = "projects/p/locations/l/operations/op-1";
    let op2 = "projects/p/locations/l/operations/op-2";

    let started = the_line(&lines, "operation started");
    assert!(started.contains("lro.call{"), "{started}");
    assert!(
        started.contains(&format!("operation.name={op1}")),
        "{started}"
    );

    // The poll's own events are inside lro.poll, itself inside lro.call.
    let done = the_line(&lines, "operation done");
    assert!(
        done.contains("lro.call{") && done.contains(":lro.poll{"),
        "{done}"
    );
    assert!(done.contains("attempt=3"), "{done}");
    assert!(done.contains(&format!("operation.name={op1}")), "{done}");

    // The cancel is a root span of its own, naming the operation and why.
    let cancelled = the_line(&lines, "operation cancelled");
    assert!(cancelled.contains("lro.cancel{"), "{cancelled}");
    assert!(!cancelled.contains("lro.call{"), "{cancelled}");
    assert!(
        cancelled.contains(&format!("operation.name={op2}")),
        "{cancelled}"
    );
    assert!(
        cancelled.contains("reason=\"dropped\"") || cancelled.contains("reason=dropped"),
        "{cancelled}"
    );

    // No name printed as an Option anywhere.
    assert!(
        lines.iter().all(|l| !l.contains("Some(\"")),
        "{}",
        lines.join("\n")
    );
}
