//! A full disk in the middle of a run, in a real process.
//!
//! The test re-runs its own binary as a child (`--exact {child} --ignored`,
//! with [`CHILD_ENV`] set). The child serves a `tower_lro_testing`
//! operations server on 127.0.0.1, calls it through `CancelOnDropLayer`
//! journaled to a SQLite file, and mid-run lowers its own `RLIMIT_FSIZE`
//! to the size of the file's WAL: SQLite's next write past it fails with
//! `EFBIG` (`SIGXFSZ` is handled, so the process lives) and the commit
//! fails with `SQLITE_IOERR_WRITE` — what a full disk does to a file that
//! must grow (`ENOSPC` would read `SQLITE_FULL`). Later it raises the limit
//! again. It asserts what a user would check, and prints one
//! [`SUMMARY`] line; the parent asserts the child exited 0 and reads it.

mod child;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use self::child::child_main;

/// Set in the child's environment; the child test fails without it.
pub const CHILD_ENV: &str = "TOWER_LRO_DISK_FULL_CHILD";
/// The prefix of the child's summary line.
pub const SUMMARY: &str = "DISK-FULL-SUMMARY";
/// How long the child may run.
const CHILD_WITHIN: Duration = Duration::from_secs(120);

/// The child test's full name: `module_path` (the caller's
/// `module_path!()`) without the crate's name, then `test`.
pub fn child_test_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    }
}

/// Runs the child test `test` of the caller's module (`module_path`);
/// fails unless it exits 0 within [`CHILD_WITHIN`]. Returns its summary's
/// `key=value` pairs.
pub fn run_child(module_path: &str, test: &str) -> Vec<(String, String)> {
    let name = child_test_name(module_path, test);
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([
            &name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the disk-full child");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + CHILD_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let output = format!("--- child stdout\n{stdout}\n--- child stderr\n{stderr}");
    let status =
        status.unwrap_or_else(|| panic!("the child ({name}) ran over {CHILD_WITHIN:?}\n{output}"));
    assert!(
        status.success(),
        "the child ({name}) failed: {status}\n{output}"
    );
    assert!(
        stdout.contains(&format!("running 1 test\ntest {name} ")),
        "the child did not run {name}\n{output}"
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(SUMMARY).map(|(_, rest)| rest.to_owned()))
        .unwrap_or_else(|| panic!("no {SUMMARY} line\n{output}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
