//! The disk-full child (see `disk_full.rs`): calls through the layer
//! before, during and after a full disk, then a reaper on a second handle.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};
use tower_lro::journal::{Journal, JournalWriter, Reaper, SqliteJournal, WriterOptions};
use tower_lro::{CancelOnDrop, CancelOnDropLayer, PollPolicy};
use tower_lro_testing::{Endpoint, OperationsServer, RecordedRequest};

use super::{CHILD_ENV, SUMMARY};
use crate::common::{self, HttpClient};

/// The writer's queue: the most changes it holds while commits fail. Room
/// enough that a slow commit (an fsync on a busy disk) never fills it
/// outside the fault.
const QUEUE: usize = 64;
/// Calls left running before the fault.
const LONG_BEFORE: usize = 4;
/// Calls left running during the fault, the first of which meets it: more
/// than the queue holds.
const LONG_DURING: usize = QUEUE + 3;
/// Calls left running after the fault.
const LONG_AFTER: usize = 3;
/// Calls that finish, and calls given up on, in each phase.
const SHORT: usize = 4;
const DROPPED: usize = 3;
/// A bound on each wait: what it waited for is in the failure.
const WAIT: Duration = Duration::from_secs(20);

/// The child's tracing output: kept for the assertions, echoed to stderr.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        std::io::stderr().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// The child test's body. Run on its own (not by its parent test) it fails,
/// saying so.
pub fn child_main() {
    assert!(
        std::env::var(CHILD_ENV).is_ok(),
        "the disk-full test's child process, started by it; skip it with --skip disk_full_child"
    );
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("tower_lro=warn")
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = std::env::temp_dir().join(format!(
        "tower-lro-diskfull-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let dir = TempDir(dir);
    let summary = rt.block_on(scenario(dir.0.join("journal.sqlite"), log));
    println!("{SUMMARY} {summary}");
}

/// The child's directory, removed when it ends (passing or failing).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The child's state: the server, the layer, the writer, a second handle.
struct Run {
    server: OperationsServer,
    base: String,
    svc: CancelOnDrop<HttpClient>,
    writer: JournalWriter,
    /// A second handle on the same file: reads back, and reaps.
    probe: Arc<dyn Journal>,
    /// Calls left running: the operation's name, the call.
    long: Vec<(String, JoinHandle<serde_json::Value>)>,
    /// The writer's instruments, exported to memory.
    metrics: (SdkMeterProvider, InMemoryMetricExporter),
}

impl Run {
    /// The total of the writer's counter `name`, as exported now.
    fn counter(&self, name: &str) -> u64 {
        let (provider, exporter) = &self.metrics;
        provider.force_flush().expect("export the metrics");
        let exported = exporter.get_finished_metrics().expect("the metrics");
        let last = exported.last().expect("one export");
        let Some(metric) = last
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .find(|m| m.name() == name)
        else {
            return 0;
        };
        match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                sum.data_points().map(|p| p.value()).sum()
            }
            _ => panic!("{name} is not a u64 counter"),
        }
    }
}

async fn scenario(path: PathBuf, log: Log) -> String {
    // Without a handler, SIGXFSZ would kill the process at the first write
    // past the limit; with one, the write fails with EFBIG.
    let _sigxfsz =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
            .expect("a SIGXFSZ handler");
    let journal = SqliteJournal::open(&path).expect("open the journal");
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let options = WriterOptions::new()
        .meter(&provider.meter("disk-full"))
        .queue(QUEUE)
        // Renewed at start only: the retire below is not undone.
        .lease(Duration::from_secs(3600));
    let writer = JournalWriter::start(journal, options).unwrap();
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let svc = CancelOnDropLayer::new()
        // Fast at first (the calls that finish), then every 200 ms: the
        // ~80 calls left running stay light on a busy machine.
        .poll_policy(
            PollPolicy::new()
                .initial_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(200))
                .jitter(false),
        )
        .journal(writer.clone())
        .layer(common::http_client());
    let probe: Arc<dyn Journal> = Arc::new(SqliteJournal::open(&path).expect("a second handle"));
    let mut run = Run {
        server,
        base: handle.base_url(),
        svc,
        writer,
        probe,
        long: Vec::new(),
        metrics: (provider, exporter),
    };

    // Before: the calls' durations set the bound for the same calls later.
    let mut slowest = Duration::ZERO;
    for _ in 0..SHORT {
        slowest = slowest.max(run.short_call().await);
    }
    for _ in 0..DROPPED {
        slowest = slowest.max(run.dropped_call().await);
    }
    let mut before = BTreeSet::new();
    for _ in 0..LONG_BEFORE {
        before.insert(run.start_long().await);
    }
    run.flush("the calls before the fault").await;
    assert_eq!(run.stored().await, before, "committed before the fault");
    let bound = slowest * 4 + Duration::from_secs(1);

    let fault = run.disk_full(&path, bound).await;
    let after = run.after_the_fault(bound).await;
    let stored = run.stored().await;
    assert!(
        before.is_subset(&stored),
        "a record committed before the fault was lost"
    );
    let kept: BTreeSet<String> = fault.kept.iter().cloned().collect();
    let expected: BTreeSet<String> = before.iter().chain(&kept).chain(&after).cloned().collect();
    assert_eq!(stored, expected, "the journal after the fault");

    check_log(&log, &fault);
    let reaped = run.reap(&expected, &fault.lost).await;
    handle.shutdown().await;
    format!(
        "failed_commits={} lost={} lost_calls={} reaped={reaped} coalesced={} written_removes={} \
         slowest_before_ms={} slowest_during_ms={}",
        fault.errors,
        fault.dropped,
        fault.lost.len(),
        fault.coalesced,
        fault.tried_removes,
        slowest.as_millis(),
        fault.slowest.as_millis(),
    )
}

/// What the fault did.
struct Fault {
    /// Failed commits.
    errors: u64,
    /// Changes dropped.
    dropped: u64,
    /// Changes coalesced meanwhile, and removes written for records tried.
    coalesced: u64,
    tried_removes: u64,
    /// The long calls of the fault whose records were kept, and lost.
    kept: Vec<String>,
    lost: Vec<String>,
    /// The slowest call (or drop to cancel accepted) during the fault.
    slowest: Duration,
}

/// The lines the writer logs per outage: exactly one each, naming the error.
fn check_log(log: &Log, fault: &Fault) {
    let failing = log.lines_with("journal commits failing:");
    assert_eq!(
        failing.len(),
        1,
        "{} failed commits: {failing:#?}",
        fault.errors
    );
    assert!(failing[0].contains("ERROR"), "{}", failing[0]);
    assert!(
        failing[0].contains("disk I/O error"),
        "the store's error: {}",
        failing[0]
    );
    let dropping = log.lines_with("new changes dropped until the store recovers");
    assert_eq!(dropping.len(), 1, "{dropping:#?}");
    let recovered = log.lines_with("journal commits recovered");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    let toll = format!("failed_attempts={} dropped={}", fault.errors, fault.dropped);
    assert!(recovered[0].contains(&toll), "{toll}: {}", recovered[0]);
    let per_call = log.lines_with("journal change dropped");
    assert!(per_call.is_empty(), "{per_call:#?}");
}

/// The n-th Start's operation, once the layer has polled it (its record is
/// enqueued when the Start's answer is read, before the first poll).
fn nth_polled(log: &[RecordedRequest], n: usize) -> Option<String> {
    let name = log
        .iter()
        .filter(|r| r.endpoint == Endpoint::Start)
        .nth(n)?
        .operation
        .clone()?;
    log.iter()
        .any(|r| r.endpoint == Endpoint::Get && r.operation.as_deref() == Some(name.as_str()))
        .then_some(name)
}

/// Waits (up to [`WAIT`]) for `what`, failing with it.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

mod phases;
