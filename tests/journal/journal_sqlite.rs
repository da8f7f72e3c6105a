//! The embedded journal on a real SQLite file.

#[cfg(target_os = "linux")]
use crate::disk_full;
use crate::scenarios;

use std::sync::Arc;

use tower_lro::journal::{Journal, SqliteJournal};

fn temp_file(name: &str) -> (tempdir::Dir, std::path::PathBuf) {
    let dir = tempdir::Dir::new(name);
    let path = dir.path().join("journal.sqlite");
    (dir, path)
}

/// A directory under the system temp dir, removed on drop.
mod tempdir {
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "tower-lro-{name}-{}-{:x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn open(path: &std::path::Path) -> Arc<dyn Journal> {
    Arc::new(SqliteJournal::open(path).unwrap())
}

#[tokio::test]
async fn claims_take_only_orphans() {
    let (_dir, path) = temp_file("claims");
    scenarios::claims_take_only_orphans(open(&path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_on_separate_connections_are_exclusive() {
    let (_dir, path) = temp_file("race");
    let connections = (0..4).map(|_| open(&path)).collect();
    scenarios::concurrent_claims_are_exclusive(connections).await;
}

#[tokio::test]
async fn writer_batches_and_coalesces() {
    let (_dir, path) = temp_file("writer");
    scenarios::writer_batches_and_coalesces(open(&path)).await;
}

#[tokio::test]
async fn reaper_cancels_orphans_and_the_file_holds_no_credential() {
    let (dir, path) = temp_file("reaper");
    scenarios::reaper_cancels_orphans(open(&path)).await;
    // Every byte written (database, WAL, shared memory): no credential, and
    // the non-secret header did reach the disk.
    let mut bytes = Vec::new();
    for file in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(file.unwrap().path()).unwrap());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("billing-project"),
        "the entries never reached the file"
    );
    for secret in ["never-stored", "ya29", "AIza", "SID="] {
        assert!(
            !text.contains(secret),
            "{secret} written to the journal file"
        );
    }
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_a_clear_error() {
    let (dir, path) = temp_file("garbage");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteJournal::open(&path).unwrap_err();
    assert_eq!(err.to_string(), "journal store failed");
    assert!(std::error::Error::source(&err).is_some());
    drop(dir);
}

#[tokio::test]
async fn a_dead_owners_row_goes_once_its_entries_are_reaped() {
    let (_dir, path) = temp_file("owners");
    let owners = || {
        let path = path.clone();
        async move {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let mut stmt = conn.prepare("SELECT owner FROM tower_lro_owners").unwrap();
            let rows = stmt.query_map([], |row| row.get::<_, String>(0)).unwrap();
            rows.map(Result::unwrap).collect()
        }
    };
    scenarios::a_dead_owners_row_goes_once_its_entries_are_reaped(open(&path), owners).await;
}

#[tokio::test]
async fn an_unwritable_location_is_a_clear_error_at_open() {
    // A directory that is a regular file, and a file system no one can
    // create files on (even root): both fail at open, with the cause.
    let (dir, _) = temp_file("unwritable");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").unwrap();
    for path in [
        not_a_dir.join("journal.sqlite"),
        "/proc/tower-lro-journal.sqlite".into(),
    ] {
        let err = SqliteJournal::open(&path).expect_err("an unwritable location opens");
        assert_eq!(err.to_string(), "journal store failed", "{path:?}");
        let source = std::error::Error::source(&err).expect("the store's error as source");
        assert!(
            source.to_string().contains("unable to open database file"),
            "{path:?}: {source}"
        );
    }
}

/// The disk fills up mid-run (`RLIMIT_FSIZE` lowered below the WAL's size
/// in a child process, `disk_full.rs`): calls through the
/// layer take no longer than before; the failed commits are counted and
/// logged once, with the store's error; what the writer's queue held is
/// committed once the disk has room again, and what did not fit is counted
/// — those calls' records, and no others, are missing; a reaper then
/// cancels every operation left in the file exactly once.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_mid_run_fails_no_call_and_loses_only_what_it_counts() {
    let summary = disk_full::run_child(module_path!(), "disk_full_child");
    println!("disk full mid-run: {summary:?}");
    let get = |key: &str| -> u64 {
        summary
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} in {summary:?}"))
            .1
            .parse()
            .unwrap()
    };
    assert!(get("failed_commits") >= 2, "{summary:?}");
    assert!(get("lost") > 0, "{summary:?}");
    assert_eq!(get("lost"), get("lost_calls"), "{summary:?}");
    assert!(get("reaped") > 0, "{summary:?}");
}

/// The disk-full test's child process (started by it).
#[cfg(target_os = "linux")]
#[test]
#[ignore = "the disk-full test's child process; started by it"]
fn disk_full_child() {
    disk_full::child_main();
}

#[tokio::test]
async fn a_dead_reapers_claims_are_retaken_once_its_lease_expires() {
    let (_dir, path) = temp_file("dead-reaper");
    scenarios::a_dead_reapers_claims_are_retaken_once_its_lease_expires(open(&path)).await;
}

#[tokio::test]
async fn a_live_reaper_keeps_its_claims_through_a_long_round() {
    let (_dir, path) = temp_file("live-reaper");
    scenarios::a_live_reaper_keeps_its_claims_through_a_long_round(open(&path)).await;
}

#[tokio::test]
async fn a_table_from_before_claimed_at_is_migrated_on_open() {
    let (_dir, path) = temp_file("migrate");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(scenarios::OPERATIONS_BEFORE_CLAIMED_AT)
        .unwrap();
    scenarios::claims_take_only_orphans(open(&path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fresh_claimers_racing_never_share_an_entry() {
    let (_dir, path) = temp_file("fresh");
    let connections = (0..4).map(|_| open(&path)).collect();
    scenarios::fresh_claimers_racing_never_share_an_entry(connections).await;
}

/// The journal file removed while open (a clean-up job, an operator):
/// SQLite would go on committing to the unlinked file, where no reaper can
/// read it. Each write is a clear error instead; a new file put at the
/// path is another file, and still an error for this journal.
#[tokio::test]
async fn a_journal_file_removed_while_open_fails_each_write_clearly() {
    let (dir, path) = temp_file("removed");
    let journal = open(&path);
    let owner = tower_lro::journal::OwnerId::random();
    let base = "http://127.0.0.1:1";
    let entry = |seq| scenarios::entry(&owner, seq, base, &format!("projects/p/operations/{seq}"));
    journal.record(entry(1)).await.expect("the file is there");
    for file in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let cause = |e: tower_lro::journal::JournalError| {
        std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    let removed = cause(journal.record(entry(2)).await.expect_err("a removed file"));
    assert!(
        removed.contains("journal.sqlite was removed after it was opened"),
        "{removed}"
    );
    let lease = std::time::Duration::from_secs(30);
    let renewed = cause(
        journal
            .renew(&owner, lease)
            .await
            .expect_err("a removed file"),
    );
    assert!(renewed.contains("was removed"), "{renewed}");
    // Another journal creates a new file at the path: not this one's.
    let other = open(&path);
    other.record(entry(3)).await.expect("the new file");
    let replaced = cause(journal.record(entry(4)).await.expect_err("a replaced file"));
    assert!(replaced.contains("was replaced"), "{replaced}");
    let names: Vec<String> = other
        .entries()
        .await
        .unwrap()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_eq!(names, ["projects/p/operations/3"]);
}
