//! gRPC: a process tracking CloudDeploy operations through a tonic
//! `Channel` with the SQLite journal is SIGKILLed; a reaper in another
//! process (this test), given a channel for the journaled origin, cancels
//! every operation it left running exactly once, and nothing it had
//! finished.
//!
//! The child is this binary (`crash_child`), started by the test with the
//! server's address and the journal file.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/crash_grpc.rs"]
mod crash_grpc;

use std::sync::Arc;
use std::time::Duration;

use tower_lro::journal::{Journal, SqliteJournal, GRPC_CANCEL_METHOD};
use tower_lro_testing::{Endpoint, OperationsServer};

use crash::ChildProcess;

const OPS: usize = 100;

#[test]
#[ignore = "the crash tests' child process; started by them"]
fn crash_child() {
    crash_grpc::run_child(|path| async move {
        Arc::new(SqliteJournal::open(path).unwrap()) as Arc<dyn Journal>
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_then_reaper_cancels_every_abandoned_grpc_operation_once() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let dir = std::env::temp_dir().join(format!("tower-lro-crash-grpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("journal.sqlite");

    let journal_path = path.display().to_string();
    let mut child = ChildProcess::replica(handle.base_url(), OPS, journal_path, None).await;
    child.kill();
    let ready = &child.ready;
    assert_eq!(ready.short.len() + ready.long.len(), OPS);
    assert_eq!(server.operation_names().len(), OPS);
    assert!(server.requests_to(Endpoint::Cancel).is_empty());

    // What the crash left in the file: exactly the running operations, each
    // naming the channel's origin and the gRPC CancelOperation method.
    let journal = Arc::new(SqliteJournal::open(&path).unwrap());
    let left = crash::entry_names(&*journal, |_| true).await;
    assert_eq!(left, ready.long);
    let authority = handle.addr().to_string();
    for entry in journal.entries().await.unwrap() {
        assert_eq!(entry.route().authority(), authority);
        assert_eq!(entry.route().path(), GRPC_CANCEL_METHOD);
    }

    let reaper = crash_grpc::reaper(journal.clone(), &handle.base_url(), None).await;
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
        let cancels = server.cancels_for(name);
        assert_eq!(cancels.len(), 1, "{name}");
        assert_eq!(cancels[0].path, GRPC_CANCEL_METHOD);
        assert_eq!(cancels[0].grpc_status, Some(0));
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
        "grpc sqlite crash: {} operations, {} finished before the SIGKILL (no cancel), {} abandoned -> {} CANCELLED by the reaper, each with exactly 1 CancelOperation",
        OPS, ready.short.len(), ready.long.len(), accepted
    );
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
