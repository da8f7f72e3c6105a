//! A process tracking operations with the SQLite journal is SIGKILLed; a
//! reaper in another process (this test) cancels every operation it left
//! running, exactly once, and nothing it had finished.
//!
//! The child is this binary (`crash_child`), started by the test with the
//! server's address and the journal file.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::sync::Arc;
use std::time::Duration;

use tower_lro::journal::{Journal, Reaper, SqliteJournal};
use tower_lro_testing::OperationsServer;

use crash::ChildProcess;

const OPS: usize = 200;

#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    crash::run_child(|path| async move {
        Arc::new(SqliteJournal::open(path).unwrap()) as Arc<dyn Journal>
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_reaper_cancels_every_abandoned_operation_once() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let dir = std::env::temp_dir().join(format!("tower-lro-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.sqlite");

    let journal_path = path.display().to_string();
    let mut child = ChildProcess::replica(handle.base_url(), OPS, journal_path, None).await;
    child.kill();
    let ready = &child.ready;
    assert_eq!(ready.short.len() + ready.long.len(), OPS);
    assert_eq!(server.operation_names().len(), OPS);
    assert!(server
        .requests_to(tower_lro_testing::Endpoint::Cancel)
        .is_empty());

    // What the crash left in the file: exactly the running operations.
    let journal = Arc::new(SqliteJournal::open(&path).unwrap());
    let left = crash::entry_names(&*journal, |_| true).await;
    assert_eq!(left, ready.long);

    // A reaper in this process: its rounds find nothing until the dead
    // owner's lease (1 s) has expired.
    let reaper = Reaper::new(journal.clone(), common::http_client());
    let mut accepted = 0;
    tokio::time::timeout(Duration::from_secs(60), async {
        while accepted < ready.long.len() as u64 {
            accepted += reaper.reap_once().await.unwrap().accepted;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the reaper did not cancel everything within 60 s");

    assert!(journal.entries().await.unwrap().is_empty());
    for name in &ready.long {
        let op = server.operation(name).unwrap();
        assert_eq!(op["error"]["code"], 1, "{name} not CANCELLED: {op}");
        assert_eq!(server.cancels_for(name).len(), 1, "{name}");
    }
    for name in &ready.short {
        let op = server.operation(name).unwrap();
        assert!(op["response"].is_object(), "{name} did not finish: {op}");
        assert!(
            server.cancels_for(name).is_empty(),
            "{name} finished but got a cancel"
        );
    }
    println!(
        "sqlite crash: {} operations, {} finished before the SIGKILL (no cancel), {} abandoned -> {} CANCELLED by the reaper, each with exactly 1 cancel",
        OPS, ready.short.len(), ready.long.len(), accepted
    );
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
