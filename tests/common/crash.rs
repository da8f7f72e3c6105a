//! The crash tests' child process and the parent's side of it.
//!
//! The child is this same test binary re-run with `--exact crash_child
//! --ignored` and `CRASH_*` variables: it starts operations through
//! `CancelOnDropLayer` with a journal against the parent's server, waits
//! until the short ones have finished and the long ones are journaled,
//! prints one `READY {json}` line and waits to be killed.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use tokio::task::JoinSet;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_lro::journal::{Entry, Journal, JournalWriter, Reaper, WriterOptions};
use tower_lro::CancelOnDropLayer;

use crate::common::{body_json, http_client, start};

/// Operations that finish before the kill: every `SHORT_EVERY`-th one.
pub const SHORT_EVERY: usize = 4;
/// How long a short operation runs.
pub const SHORT_MS: u64 = 50;
/// How long the others run: far longer than the test.
pub const LONG_MS: u64 = 600_000;
/// The child's owner lease: its entries are orphans this long after the kill.
pub const LEASE: Duration = Duration::from_secs(1);

/// What a child reports once it is ready to be killed.
#[derive(Debug, serde::Deserialize)]
pub struct Ready {
    pub owner: String,
    pub short: BTreeSet<String>,
    pub long: BTreeSet<String>,
}

/// A running child; killed (SIGKILL) when dropped, if still running.
pub struct ChildProcess {
    child: Child,
    pub ready: Ready,
}

impl ChildProcess {
    /// Starts this binary's `crash_child` as a replica: `ops` operations
    /// against the server at `base`, journaled in `journal` (the string the
    /// test's opener is given); with `reaper_tag`, it also runs two reapers
    /// whose cancels carry `x-reaper: {tag}-{i}`. Waits (up to 120 s) for
    /// its READY line.
    pub async fn replica(
        base: String,
        ops: usize,
        journal: String,
        reaper_tag: Option<&str>,
    ) -> Self {
        let mut env = vec![
            ("CRASH_BASE", base),
            ("CRASH_OPS", ops.to_string()),
            ("CRASH_JOURNAL", journal),
        ];
        if let Some(tag) = reaper_tag {
            env.push(("CRASH_REAPER_TAG", tag.to_owned()));
        }
        Self::start("crash_child", &env).await
    }

    /// Starts the child with `env` and waits (up to 120 s) for its READY line.
    async fn start(test: &str, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CRASH_CHILD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::task::spawn_blocking(move || {
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    // libtest prints `test crash_child ... ` first, on the same line.
                    .find_map(|l| l.split_once("READY ").map(|(_, json)| json.to_owned()))
            }),
        )
        .await
        .expect("the child was not ready within 120 s")
        .unwrap()
        .expect("the child exited without READY");
        let ready = serde_json::from_str(&line).unwrap();
        ChildProcess { child, ready }
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the child exited by itself: {status}");
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set for the crash child"))
}

/// The names of `journal`'s entries that `keep` accepts.
pub async fn entry_names(journal: &dyn Journal, keep: impl Fn(&Entry) -> bool) -> BTreeSet<String> {
    journal
        .entries()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| keep(e))
        .map(|e| e.name().to_owned())
        .collect()
}

/// The child test's body: runs [`child_main`] if this process is a crash
/// child (`CRASH_CHILD` set); a no-op otherwise. `open` is given the
/// replica's `journal` string (a path, a connection string).
pub fn run_child<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    if std::env::var("CRASH_CHILD").is_err() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(child_main(open));
}

/// The child's body: `open` opens a connection to the journal.
pub async fn child_main<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn")
        .try_init();
    let base = env("CRASH_BASE");
    let n: usize = env("CRASH_OPS").parse().unwrap();
    let config = env("CRASH_JOURNAL");
    let journal = open(config.clone()).await;
    let writer = JournalWriter::start(journal.clone(), WriterOptions::new().lease(LEASE)).unwrap();
    let svc = CancelOnDropLayer::new()
        .journal(writer.clone())
        .layer(http_client());
    let (mut short, mut long) = (JoinSet::new(), JoinSet::new());
    for i in 0..n {
        let is_short = i % SHORT_EVERY == 0;
        let ms = if is_short { SHORT_MS } else { LONG_MS };
        let call = svc.clone().oneshot(start(&base, ms));
        if is_short {
            short.spawn(async move { body_json(call.await.unwrap().into_body()).await });
        } else {
            long.spawn(call);
        }
    }
    let mut short_names = BTreeSet::new();
    while let Some(op) = short.join_next().await {
        let op = op.unwrap();
        assert_eq!(op["done"], true, "{op}");
        short_names.insert(op["name"].as_str().unwrap().to_owned());
    }
    // Wait until every long operation is journaled (their records are
    // enqueued as their first answers are read) and the short ones' removes
    // are committed.
    let want = n - short_names.len();
    let long_names = loop {
        writer.flush().await.unwrap();
        let mine = entry_names(&*journal, |e| e.owner() == writer.owner()).await;
        if mine.len() == want && mine.is_disjoint(&short_names) {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if let Ok(tag) = std::env::var("CRASH_REAPER_TAG") {
        for i in 0..2 {
            let stack = ServiceBuilder::new()
                .layer(SetRequestHeaderLayer::overriding(
                    http::header::HeaderName::from_static("x-reaper"),
                    HeaderValue::from_str(&format!("{tag}-{i}")).unwrap(),
                ))
                .service(http_client());
            let reaper = Reaper::new(open(config.clone()).await, stack)
                .interval(Duration::from_millis(100))
                .batch(8);
            tokio::spawn(reaper.run());
        }
    }
    let ready = serde_json::json!({
        "owner": writer.owner().as_str(),
        "short": short_names,
        "long": long_names,
    });
    println!("READY {ready}");
    std::future::pending::<()>().await;
    drop(long);
}
