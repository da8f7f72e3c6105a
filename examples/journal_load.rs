//! What the crash journal costs, per backend: prints markdown tables copied
//! into BENCHMARKS.md.
//!
//! - **(j1) throughput and loss window.** 1 and 64 concurrent "calls", each
//!   repeatedly enqueueing a record through a [`JournalWriter`], waiting
//!   until it is committed (`flush`), then enqueueing its remove — as the
//!   layer does for an operation that is tracked, then finishes. Records
//!   committed per second, and the enqueue → committed latency (p50, p99,
//!   max): the window a crash can lose.
//! - **(j2) a tracked call's overhead.** Through `CancelOnDropLayer` over a
//!   hyper-util client against the embedded server on 127.0.0.1, one call at
//!   a time, without a journal and with each backend: start → tracked (the
//!   call until its future waits for the first poll) and drop → the cancel's
//!   arrival at the server, p50 and p99.
//!
//! ```sh
//! cargo run --release --example journal_load --features journal-sqlite,journal-postgres
//! TOWER_LRO_PG="host=/tmp/pg user=postgres" cargo run --release --example journal_load --all-features
//! cargo run --release --example journal_load --all-features -- --short   # CI: a second or two
//! ```
//!
//! PostgreSQL rows need `TOWER_LRO_PG` (a libpq connection string); without
//! it they are left out, saying so. SQLite uses a file in the temp dir.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Uri};
use tokio::time::Instant;
use tower_lro::journal::{
    Entry, Journal, JournalWriter, PostgresJournal, Protocol, Route, SqliteJournal, WriterOptions,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[path = "journal_load/layer.rs"]
mod layer;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// The backends to measure: name and a way to open a fresh journal.
async fn backends() -> Result<Vec<(&'static str, Arc<dyn Journal>)>, BoxError> {
    let path = std::env::temp_dir().join(format!("tower-lro-bench-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut out: Vec<(&'static str, Arc<dyn Journal>)> = vec![(
        "SQLite (WAL, synchronous=FULL)",
        Arc::new(SqliteJournal::open(&path)?),
    )];
    match std::env::var("TOWER_LRO_PG") {
        Ok(config) => out.push((
            "PostgreSQL 15 (unix socket)",
            Arc::new(PostgresJournal::connect(&config).await?),
        )),
        Err(_) => eprintln!("TOWER_LRO_PG not set: PostgreSQL rows left out"),
    }
    Ok(out)
}

fn entry(writer: &JournalWriter, cancel: &Uri) -> Entry {
    let name = format!(
        "projects/p/locations/l/operations/bench-{}",
        fastrand::u64(..)
    );
    Entry::new(
        writer.next_id(),
        name,
        Protocol::Rest,
        Route::rest(&Method::POST, cancel).unwrap_or_else(|_| unreachable!()),
        &HeaderMap::new(),
        writer.owner().clone(),
        SystemTime::now(),
    )
}

/// `calls` tasks, each record → committed → remove, for `run` in all.
async fn throughput(
    journal: Arc<dyn Journal>,
    calls: usize,
    run: Duration,
) -> Result<String, BoxError> {
    let writer = JournalWriter::start(journal, WriterOptions::new())?;
    let cancel: Uri = "https://api.test/v1/projects/p/locations/l/operations/x:cancel".parse()?;
    let end = Instant::now() + run;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..calls {
        let (writer, cancel) = (writer.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < end {
                let e = entry(&writer, &cancel);
                let id = e.id().clone();
                let t = Instant::now();
                writer.record(e);
                writer.flush().await?;
                latencies.push(t.elapsed());
                writer.remove(id);
            }
            Ok::<_, BoxError>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    writer.flush().await?;
    let elapsed = t0.elapsed();
    all.sort();
    let stats = writer.stats();
    Ok(format!(
        "| {calls} | {:.0} | {} | {} | {} | {:.1} |",
        all.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        ms(all.last().copied().unwrap_or_default()),
        (stats.recorded + stats.removed) as f64 / stats.batches.max(1) as f64,
    ))
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
        .block_on(f)
}

fn main() -> Result<(), BoxError> {
    let short = std::env::args().any(|a| a == "--short");
    let run = if short {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(3)
    };
    let rounds = if short { 20 } else { 300 };
    block_on(async {
        let backends = backends().await?;
        println!(
            "\n## (j1) journal throughput and loss window ({} s per row): record → committed (`flush`) → remove, per call\n",
            run.as_secs_f64()
        );
        for (name, journal) in &backends {
            println!("\n{name}\n\n| concurrent calls | records committed/s | enqueue → committed p50 ms | p99 ms | max ms | changes per commit |\n|---:|---:|---:|---:|---:|---:|");
            for calls in [1, 64] {
                println!("{}", throughput(journal.clone(), calls, run).await?);
            }
        }
        println!("{}", layer::table(&backends, rounds).await?);
        Ok(())
    })
}
