//! The crash tests' processes: this same test binary re-run with `--exact
//! crash::crash_child --ignored` (the test below, named by its full path)
//! and `CRASH_*` variables, in one of three roles, on one wire
//! (`CRASH_WIRE`: REST/JSON or gRPC, `crash/wire.rs`), on the journal in
//! `CRASH_JOURNAL` (`crash/store.rs`).
//!
//! - `burst`: starts operations through `CancelOnDropLayer` with a journal,
//!   one every `CRASH_PACE_MS`, seeded: some run briefly and are awaited,
//!   some callers give up after a random delay (their cancels meet the
//!   server's faults: hung, backing off, accepted), the rest run long. It
//!   prints `READY {owner}` before the first Start and is SIGKILLed by the
//!   test mid-burst.
//! - `live`: starts `CRASH_OPS` long operations, prints `READY {owner}` once
//!   they are committed, and lives until the test ends: a live owner.
//! - `reaper`: runs two reapers (interval 100 ms) whose cancels carry
//!   `x-reaper: {tag}-{i}`; prints `READY reaper`.
//!
//! Every Start carries `x-replica: {tag}` and `x-op: {i}` so the parent
//! can tell the processes' operations apart in the server's log, and find
//! each one's fate.

pub mod store;
mod wire;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tower_lro::journal::{Journal, JournalWriter, WriterOptions};
use tower_lro::{CancelOnDropLayer, PollPolicy};

pub use self::wire::{Starter, Wire};

/// The child processes' entry point: what [`ChildProcess`] runs.
#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    run_child(store::open);
}

/// [`crash_child`]'s name as libtest matches it with `--exact`: its module
/// path without the crate's name.
fn child_test() -> String {
    match module_path!().split_once("::") {
        Some((_crate, module)) => format!("{module}::crash_child"),
        None => "crash_child".to_owned(),
    }
}

/// The children's owner lease. Reapers claim a dead owner's entries this
/// long after its last renewal (a third of it before the kill at most).
pub const LEASE: Duration = Duration::from_secs(6);
/// How often each reaper looks for orphans.
pub const REAPER_INTERVAL: Duration = Duration::from_millis(100);
/// How many orphans a reaper claims at once.
pub const REAPER_BATCH: usize = 8;
/// The reapers' lease: a killed process's reapers' claims are retaken this
/// long after their last renewal (a third of it before the kill at most).
pub const REAPER_LEASE: Duration = LEASE;
/// How long the child may take to start and print READY.
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// What the seeded burst does; the parent and the child derive the same
/// choices from `seed`.
#[derive(Clone, Copy, Debug)]
pub struct Burst {
    pub wire: Wire,
    pub seed: u64,
    /// One Start every `pace`.
    pub pace: Duration,
    /// The most Starts the child sends (it is killed long before).
    pub max_ops: usize,
}

/// What the child does with operation `i` of a burst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Runs this long; the caller waits for it.
    Short(u64),
    /// The caller gives up after this long (ms); the layer cancels.
    Dropped(u64),
    /// Runs for ten minutes; the caller waits until the kill.
    Long,
}

/// The fates of a burst's operations, in order.
pub fn fates(seed: u64, n: usize) -> Vec<Fate> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut fates = Vec::with_capacity(n);
    for _ in 0..n {
        fates.push(match rng.u8(..100) {
            0..=24 => Fate::Short(rng.u64(50..300)),
            25..=59 => Fate::Dropped(rng.u64(0..300)),
            _ => Fate::Long,
        });
    }
    fates
}

/// A running child; SIGKILLed when dropped, if still running.
pub struct ChildProcess {
    child: Child,
    /// What followed `READY ` on its stdout.
    pub ready: String,
    /// The claimer ids of its reapers (`REAPER {id}` lines before READY).
    pub reapers: Vec<String>,
}

impl ChildProcess {
    /// A `burst` child (see the module docs), tagged `tag`.
    pub async fn burst(base: &str, journal: &str, tag: &str, burst: Burst) -> Self {
        Self::bursting("burst", base, journal, tag, burst).await
    }

    /// A fleet replica: a `burst` child (tagged `tag`) that also runs two
    /// reapers whose cancels carry `x-reaper: {tag}-{i}`.
    pub async fn replica(base: &str, journal: &str, tag: &str, burst: Burst) -> Self {
        Self::bursting("replica", base, journal, tag, burst).await
    }

    async fn bursting(role: &str, base: &str, journal: &str, tag: &str, burst: Burst) -> Self {
        let env = [
            ("CRASH_ROLE", role.to_owned()),
            ("CRASH_WIRE", burst.wire.as_str().to_owned()),
            ("CRASH_BASE", base.to_owned()),
            ("CRASH_JOURNAL", journal.to_owned()),
            ("CRASH_TAG", tag.to_owned()),
            ("CRASH_SEED", burst.seed.to_string()),
            ("CRASH_PACE_MS", burst.pace.as_millis().to_string()),
            ("CRASH_OPS", burst.max_ops.to_string()),
        ];
        Self::start(&env).await
    }

    /// A `live` child with `ops` long operations on `wire`, tagged `tag`.
    pub async fn live(wire: Wire, base: &str, journal: &str, tag: &str, ops: usize) -> Self {
        let env = [
            ("CRASH_ROLE", "live".to_owned()),
            ("CRASH_WIRE", wire.as_str().to_owned()),
            ("CRASH_BASE", base.to_owned()),
            ("CRASH_JOURNAL", journal.to_owned()),
            ("CRASH_TAG", tag.to_owned()),
            ("CRASH_OPS", ops.to_string()),
        ];
        Self::start(&env).await
    }

    /// A `reaper` child whose cancels (on `wire`, to `base`'s origin for
    /// gRPC) carry `x-reaper: {tag}-{i}`.
    pub async fn reaper(wire: Wire, base: &str, journal: &str, tag: &str) -> Self {
        let env = [
            ("CRASH_ROLE", "reaper".to_owned()),
            ("CRASH_WIRE", wire.as_str().to_owned()),
            ("CRASH_BASE", base.to_owned()),
            ("CRASH_JOURNAL", journal.to_owned()),
            ("CRASH_TAG", tag.to_owned()),
        ];
        Self::start(&env).await
    }

    /// Starts the child with `env`; waits (up to [`READY_WITHIN`]) for its
    /// READY line, failing if it does not come or the child exits first.
    async fn start(env: &[(&str, String)]) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([
                "--exact",
                &child_test(),
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
        let mut child = command.spawn().expect("spawn the crash child");
        let stdout = child.stdout.take().expect("piped stdout");
        // Killed (on drop) if READY does not come: the reading task then
        // sees the pipe close, and the test ends instead of hanging.
        let mut child = ChildProcess {
            child,
            ready: String::new(),
            reapers: Vec::new(),
        };
        let role = env[0].1.clone();
        let line = tokio::time::timeout(
            READY_WITHIN,
            tokio::task::spawn_blocking(move || {
                let mut reapers = Vec::new();
                BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                    // libtest prints `test crash_child ... ` first, on the same line.
                    .find_map(|l| {
                        if let Some((_, id)) = l.split_once("REAPER ") {
                            reapers.push(id.to_owned());
                        }
                        l.split_once("READY ").map(|(_, rest)| rest.to_owned())
                    })
                    .map(|ready| (ready, reapers))
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("the {role} child printed no READY within {READY_WITHIN:?}"))
        .expect("the reading task")
        .unwrap_or_else(|| panic!("the {role} child exited without READY"));
        (child.ready, child.reapers) = line;
        child
    }

    /// SIGKILL, and reap the process; fails if it had already exited.
    pub fn kill(&mut self) {
        let running = self.child.try_wait().expect("try_wait").is_none();
        assert!(running, "the child exited before the kill");
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("wait for the killed child");
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

/// The child test's body: runs the role in `CRASH_ROLE`. `open` is given
/// the `CRASH_JOURNAL` string (a path, a connection string). Run on its own
/// (not by a crash test) it fails, saying so.
pub fn run_child<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    assert!(
        std::env::var("CRASH_CHILD").is_ok(),
        "crash_child is the crash tests' child process, started by them; skip it with --skip crash_child"
    );
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn")
        .try_init();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async move {
        let journal = open(env("CRASH_JOURNAL")).await;
        match env("CRASH_ROLE").as_str() {
            "burst" => burst_main(journal).await,
            "live" => live_main(journal).await,
            "reaper" => reaper_main(open).await,
            // A fleet replica: reapers of its own beside a burst.
            "replica" => {
                spawn_reapers(&open, &env("CRASH_TAG")).await;
                burst_main(journal).await
            }
            other => panic!("unknown CRASH_ROLE {other}"),
        }
    });
}

fn wire() -> Wire {
    Wire::parse(&env("CRASH_WIRE"))
}

async fn burst_main(journal: Arc<dyn Journal>) {
    let base = env("CRASH_BASE");
    let tag = env("CRASH_TAG");
    let seed: u64 = env("CRASH_SEED").parse().expect("CRASH_SEED");
    let pace = Duration::from_millis(env("CRASH_PACE_MS").parse().expect("CRASH_PACE_MS"));
    let n: usize = env("CRASH_OPS").parse().expect("CRASH_OPS");
    let writer =
        JournalWriter::start(journal, WriterOptions::new().lease(LEASE)).expect("on a runtime");
    // Polls from 20 ms, x1.5 per step, at most every 5 s: the short
    // operations are seen done soon after they finish, the long ones add
    // little load.
    let polls = PollPolicy::new()
        .initial_delay(Duration::from_millis(20))
        .max_delay(Duration::from_secs(5));
    let layer = CancelOnDropLayer::new()
        .poll_policy(polls)
        .journal(writer.clone());
    let client = Starter::new(wire(), &base, layer).await;
    println!("READY {}", writer.owner().as_str());
    let mut calls = JoinSet::new();
    let mut tick = tokio::time::interval(pace);
    for (i, fate) in fates(seed, n).into_iter().enumerate() {
        tick.tick().await;
        match fate {
            Fate::Short(ms) => {
                calls.spawn(client.start(&tag, i, ms));
            }
            Fate::Dropped(after) => {
                let call = client.start(&tag, i, 600_000);
                calls.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_millis(after), call).await;
                });
            }
            Fate::Long => {
                calls.spawn(client.start(&tag, i, 600_000));
            }
        }
    }
    std::future::pending::<()>().await;
}

async fn live_main(journal: Arc<dyn Journal>) {
    let base = env("CRASH_BASE");
    let tag = env("CRASH_TAG");
    let n: usize = env("CRASH_OPS").parse().expect("CRASH_OPS");
    let writer = JournalWriter::start(journal.clone(), WriterOptions::new().lease(LEASE))
        .expect("on a runtime");
    let layer = CancelOnDropLayer::new().journal(writer.clone());
    let client = Starter::new(wire(), &base, layer).await;
    let mut calls = JoinSet::new();
    for i in 0..n {
        calls.spawn(client.start(&tag, i, 600_000));
    }
    // READY once all n are journaled and committed.
    loop {
        writer.flush().await.expect("the writer runs");
        let entries = journal.entries().await.expect("read the journal");
        if entries
            .iter()
            .filter(|e| e.owner() == writer.owner())
            .count()
            == n
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("READY {}", writer.owner().as_str());
    std::future::pending::<()>().await;
    drop(calls);
}

/// Runs two reapers on their own connections; their cancels carry
/// `x-reaper: {tag}-{i}`.
async fn spawn_reapers<F, Fut>(open: &F, tag: &str)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    for i in 0..2 {
        let journal = open(env("CRASH_JOURNAL")).await;
        wire::spawn_reaper(wire(), journal, &env("CRASH_BASE"), &format!("{tag}-{i}")).await;
    }
}

async fn reaper_main<F, Fut>(open: F)
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Journal>>,
{
    spawn_reapers(&open, &env("CRASH_TAG")).await;
    println!("READY reaper");
    std::future::pending::<()>().await;
}
