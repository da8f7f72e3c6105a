//! The layer's OpenTelemetry metrics, read back through `opentelemetry_sdk`'s
//! in-memory exporter after a run with faults, and checked against what the
//! embedded server saw: its request log (cancels received, polls) and its
//! operation table (operations CANCELLED, operations still running).

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use http::StatusCode;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use tower_lro::{CancelOnDropLayer, CancelPolicy};
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer, RecordedRequest};

use common::{fast_polls, lro_client, send, start, WAIT};

/// A meter provider exporting to memory, read on demand.
struct Exported {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

impl Exported {
    fn new() -> Self {
        let exporter = InMemoryMetricExporter::default();
        let reader = PeriodicReader::builder(exporter.clone()).build();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        Exported { provider, exporter }
    }

    /// The metrics as last exported (cumulative).
    fn collect(&self) -> ResourceMetrics {
        self.provider.force_flush().unwrap();
        let mut all = self.exporter.get_finished_metrics().unwrap();
        all.pop().expect("one export")
    }
}

fn metric<'a>(rm: &'a ResourceMetrics, name: &str) -> Option<&'a Metric> {
    rm.scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)
}

fn has(attributes: &[KeyValue], key: &str, value: &str) -> bool {
    attributes
        .iter()
        .any(|kv| kv.key.as_str() == key && kv.value.as_str() == value)
}

/// Every data point of `name` as (attributes, value); a histogram's value is
/// its count.
fn points(rm: &ResourceMetrics, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
    let Some(m) = metric(rm, name) else {
        return Vec::new();
    };
    fn read<T: Copy>(data: &MetricData<T>, f: impl Fn(T) -> f64) -> Vec<(Vec<KeyValue>, f64)> {
        match data {
            MetricData::Sum(s) => s
                .data_points()
                .map(|p| (p.attributes().cloned().collect(), f(p.value())))
                .collect(),
            MetricData::Histogram(h) => h
                .data_points()
                .map(|p| (p.attributes().cloned().collect(), p.count() as f64))
                .collect(),
            _ => panic!("unexpected aggregation"),
        }
    }
    match m.data() {
        AggregatedMetrics::U64(d) => read(d, |v| v as f64),
        AggregatedMetrics::I64(d) => read(d, |v| v as f64),
        AggregatedMetrics::F64(d) => read(d, |v| v),
    }
}

/// The total of `name`'s points whose attributes include `key = value`
/// (all points when `filter` is `None`).
fn total(rm: &ResourceMetrics, name: &str, filter: Option<(&str, &str)>) -> u64 {
    points(rm, name)
        .iter()
        .filter(|(a, _)| filter.is_none_or(|(k, v)| has(a, k, v)))
        .map(|(_, v)| *v as i64)
        .sum::<i64>() as u64
}

/// The server's truth about a run.
struct Truth {
    started: usize,
    /// Operations the server received a CancelOperation for.
    cancels_received: usize,
    /// Operations that ended CANCELLED (`error.code == 1`).
    cancelled: usize,
    /// Operations not done.
    running: usize,
    /// Operations done with a response.
    done: usize,
    /// GetOperation requests received.
    gets: usize,
}

fn truth(server: &OperationsServer) -> Truth {
    let log = server.requests();
    let ops: Vec<serde_json::Value> = server
        .operation_names()
        .iter()
        .map(|n| server.operation(n).unwrap())
        .collect();
    let cancelled_ops: BTreeSet<String> = log
        .iter()
        .filter(|r| r.endpoint == Endpoint::Cancel)
        .filter_map(|r| r.operation.clone())
        .collect();
    Truth {
        started: log.iter().filter(|r| r.endpoint == Endpoint::Start).count(),
        cancels_received: cancelled_ops.len(),
        cancelled: ops.iter().filter(|o| o["error"]["code"] == 1).count(),
        running: ops.iter().filter(|o| o["done"] != true).count(),
        done: ops
            .iter()
            .filter(|o| o["done"] == true && o.get("error").is_none())
            .count(),
        gets: log.iter().filter(|r| r.endpoint == Endpoint::Get).count(),
    }
}

fn polled(log: &[RecordedRequest]) -> BTreeSet<String> {
    log.iter()
        .filter(|r| r.endpoint == Endpoint::Get)
        .filter_map(|r| r.operation.clone())
        .collect()
}

const LONG: usize = 24;
const SHORT: usize = 16;

/// 40 operations, 16 finishing in 30 ms and 24 abandoned while waiting; 40 %
/// of cancel attempts faulted (503 and resets, retried; 500, not retried:
/// those operations are left running).
#[tokio::test]
async fn counters_match_the_servers_log_and_operation_table() {
    crate::isolate_subscribers();
    let exported = Exported::new();
    let meter = exported.provider.meter("test");
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    server.inject(
        Endpoint::Cancel,
        Fault::Random {
            rate: 0.4,
            faults: vec![
                FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE),
                FaultKind::Disconnect,
                FaultKind::Status(StatusCode::INTERNAL_SERVER_ERROR),
            ],
            seed: 11,
        },
    );
    let lro = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(
            CancelPolicy::new()
                .backoff(Duration::from_millis(5), Duration::from_millis(50))
                .attempt_timeout(Duration::from_secs(2)),
        )
        .meter(&meter);
    let cancels = lro.handle();
    let spawn = |duration_ms: u64| {
        let mut client = lro_client(&lro);
        let request = start(&base, duration_ms);
        tokio::spawn(async move { send(&mut client, request).await.map(drop) })
    };
    let long: Vec<_> = (0..LONG).map(|_| spawn(600_000)).collect();
    let short: Vec<_> = (0..SHORT).map(|_| spawn(30)).collect();
    for task in short {
        task.await.unwrap().expect("a short operation completes");
    }
    server
        .wait_for(WAIT, |log| polled(log).len() == LONG + SHORT)
        .await
        .expect("every operation polled");
    for task in &long {
        task.abort();
    }
    for task in long {
        assert!(task.await.unwrap_err().is_cancelled());
    }
    assert!(cancels.drain(WAIT).await.is_complete());

    let rm = exported.collect();
    let t = truth(&server);
    assert_eq!(t.started, LONG + SHORT);
    assert!(
        t.cancelled > 0 && t.running > 0,
        "faults had no effect: {} cancelled, {} running",
        t.cancelled,
        t.running
    );
    assert_eq!(total(&rm, "lro.operations.tracked", None), t.started as u64);
    assert_eq!(
        total(&rm, "lro.cancels.fired", None),
        t.cancels_received as u64
    );
    assert_eq!(
        total(
            &rm,
            "lro.cancels.fired",
            Some(("lro.cancel.reason", "dropped"))
        ),
        LONG as u64
    );
    assert_eq!(
        total(
            &rm,
            "lro.cancels.settled",
            Some(("lro.cancel.outcome", "accepted"))
        ),
        t.cancelled as u64
    );
    assert_eq!(
        total(
            &rm,
            "lro.cancels.settled",
            Some(("lro.cancel.outcome", "failed"))
        ),
        t.running as u64
    );
    assert_eq!(
        total(&rm, "lro.operations.left_running", None),
        t.running as u64
    );
    assert_eq!(
        total(
            &rm,
            "lro.operations.finished",
            Some(("lro.operation.outcome", "done"))
        ),
        t.done as u64
    );
    assert_eq!(
        total(
            &rm,
            "lro.operations.finished",
            Some(("lro.operation.outcome", "gave_up"))
        ),
        LONG as u64
    );
    assert_eq!(total(&rm, "lro.operation.duration", None), t.started as u64);
    assert_eq!(total(&rm, "lro.operation.polls", None), t.started as u64);
    assert_eq!(
        total(&rm, "lro.cancel.duration", None),
        t.cancels_received as u64
    );
    // A poll in flight when its call was dropped may not have arrived.
    let polls = total(&rm, "lro.polls", None);
    assert!(
        polls >= t.gets as u64 && polls <= (t.gets + LONG) as u64,
        "{polls} vs {}",
        t.gets
    );
    assert_eq!(total(&rm, "lro.calls.waiting", None), 0);
    assert_eq!(total(&rm, "lro.cancels.pending", None), 0);

    // Units and attributes: seconds; the RPC conventions; never a name.
    assert_eq!(metric(&rm, "lro.operation.duration").unwrap().unit(), "s");
    assert_eq!(metric(&rm, "lro.cancel.duration").unwrap().unit(), "s");
    let addr = handle.addr();
    for m in rm.scope_metrics().flat_map(|s| s.metrics()) {
        for (attributes, _) in points(&rm, m.name()) {
            for kv in &attributes {
                assert!(
                    !kv.value.as_str().contains("operations/"),
                    "{}: {kv:?}",
                    m.name()
                );
            }
            if attributes
                .iter()
                .any(|kv| kv.key.as_str() == "server.address")
            {
                assert!(
                    has(&attributes, "rpc.system", "http"),
                    "{}: {attributes:?}",
                    m.name()
                );
                assert!(has(&attributes, "server.address", "127.0.0.1"));
                assert!(attributes.iter().any(|kv| kv.key.as_str() == "server.port"
                    && kv.value == Value::I64(i64::from(addr.port()))));
            }
        }
    }
}

use crate::common::grpc as grpc_support;

/// Over gRPC: the call's own service and method, `rpc.system = grpc`.
#[tokio::test]
async fn grpc_operations_carry_the_rpc_attributes() {
    crate::isolate_subscribers();
    let exported = Exported::new();
    let meter = exported.provider.meter("test");
    let (server, _handle, channel) = grpc_support::serve().await;
    let lro = grpc_support::layer().meter(&meter);
    grpc_support::deploy(&lro, &channel)
        .create_release(grpc_support::create("r1", 50))
        .await
        .expect("the release is created");
    let rm = exported.collect();
    let tracked = points(&rm, "lro.operations.tracked");
    assert_eq!(tracked.len(), 1, "{tracked:?}");
    let (attributes, count) = &tracked[0];
    assert_eq!(*count, 1.0);
    assert!(has(attributes, "rpc.system", "grpc"), "{attributes:?}");
    assert!(
        has(
            attributes,
            "rpc.service",
            "google.cloud.deploy.v1.CloudDeploy"
        ),
        "{attributes:?}"
    );
    assert!(
        has(attributes, "rpc.method", "CreateRelease"),
        "{attributes:?}"
    );
    let gets = server.requests_to(Endpoint::Get).len() as u64;
    assert_eq!(
        total(&rm, "lro.polls", Some(("rpc.method", "GetOperation"))),
        gets
    );
    assert_eq!(
        total(
            &rm,
            "lro.operations.finished",
            Some(("lro.operation.outcome", "done"))
        ),
        1
    );
}

/// The journal writer's commit latency: one histogram point per commit, in
/// seconds.
#[cfg(feature = "journal-sqlite")]
#[tokio::test]
async fn journal_commits_are_timed() {
    crate::isolate_subscribers();
    use std::sync::Arc;
    use tower_lro::journal::{
        Entry, EntryId, Journal, JournalWriter, OwnerId, Protocol, Route, SqliteJournal,
        WriterOptions,
    };

    let exported = Exported::new();
    let meter = exported.provider.meter("test");
    let path = std::env::temp_dir().join(format!(
        "tower-lro-metrics-{}-{:x}.sqlite",
        std::process::id(),
        fastrand::u64(..)
    ));
    let journal: Arc<dyn Journal> = Arc::new(SqliteJournal::open(&path).unwrap());
    let owner = OwnerId::random();
    let writer = JournalWriter::start(
        journal.clone(),
        WriterOptions::new().owner(owner.clone()).meter(&meter),
    )
    .unwrap();
    let uri: http::Uri = "http://127.0.0.1:1/v1/projects/p/locations/l/operations/o:cancel"
        .parse()
        .unwrap();
    // Three commits: a flush after each record.
    for seq in 0..3 {
        writer.record(Entry::new(
            EntryId::new(&owner, seq),
            format!("projects/p/locations/l/operations/o{seq}"),
            Protocol::Rest,
            Route::rest(&http::Method::POST, &uri).unwrap(),
            &http::HeaderMap::new(),
            owner.clone(),
            std::time::SystemTime::now(),
        ));
        writer.flush().await.unwrap();
    }
    assert_eq!(journal.entries().await.unwrap().len(), 3);
    let rm = exported.collect();
    assert_eq!(
        metric(&rm, "lro.journal.commit.duration").unwrap().unit(),
        "s"
    );
    assert_eq!(total(&rm, "lro.journal.commit.duration", None), 3);
    let _ = std::fs::remove_file(&path);
}
