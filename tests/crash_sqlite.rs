//! A process tracking operations with the SQLite journal is SIGKILLed at a
//! seeded moment in the middle of a burst of Starts — some callers already
//! gone, some of their cancels hung or backing off. Reapers in two other
//! processes, running all along beside a live owner, cancel what it left
//! running exactly once; only operations inside the loss window may be
//! missed or get an extra cancel (`common/crash_verdict.rs` has the rules).
//!
//! The processes are this binary (`crash_child`), started by the test.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/store_probe.rs"]
mod store_probe;
#[path = "common/crash_verdict.rs"]
mod verdict;

use std::sync::Arc;

use tower_lro::journal::{Journal, SqliteJournal};

#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    crash::run_child(|path| async move {
        Arc::new(SqliteJournal::open(path).expect("open the SQLite journal")) as Arc<dyn Journal>
    });
}

async fn kill_mid_burst(seed: u64) {
    let dir = std::env::temp_dir().join(format!(
        "tower-lro-crash-{}-{seed}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.sqlite").display().to_string();
    let parent = Arc::new(SqliteJournal::open(&path).unwrap());
    let s = verdict::kill_mid_burst(&path, parent, seed).await;
    println!("sqlite crash, seed {seed}: {s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_seed_1() {
    kill_mid_burst(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_seed_2() {
    kill_mid_burst(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_seed_3() {
    kill_mid_burst(3).await;
}
