//! The disk-full child's calls and phases.

use super::*;

impl Run {
    /// A call that finishes: its operation runs 50 ms. Returns how long it took.
    pub(super) async fn short_call(&self) -> Duration {
        let t0 = Instant::now();
        let response = self
            .svc
            .clone()
            .oneshot(common::start(&self.base, 50))
            .await
            .expect("a call that finishes");
        let op = common::body_json(response.into_body()).await;
        assert_eq!(op["done"], true, "{op}");
        assert!(op.get("error").is_none(), "{op}");
        t0.elapsed()
    }

    /// A call given up on once the layer has polled its operation: its
    /// cancel goes out. Returns the time from the drop to the server
    /// accepting the cancel.
    pub(super) async fn dropped_call(&self) -> Duration {
        let n = self.server.requests_to(Endpoint::Start).len();
        let call = self.svc.clone().oneshot(common::start(&self.base, 600_000));
        let name = tokio::select! {
            _ = call => panic!("the operation runs 10 minutes"),
            log = self.server.wait_for(WAIT, |l| nth_polled(l, n).is_some()) => {
                nth_polled(&log.expect("a call polled"), n).unwrap()
            }
        };
        let t0 = Instant::now();
        self.server
            .wait_for(WAIT, |l| {
                l.iter().any(|r| {
                    r.endpoint == Endpoint::Cancel
                        && r.status == 200
                        && r.operation.as_deref() == Some(name.as_str())
                })
            })
            .await
            .expect("the dropped call's cancel accepted");
        t0.elapsed()
    }

    /// Starts a call left running (ten minutes); returns its operation's
    /// name once the layer has polled it.
    pub(super) async fn start_long(&mut self) -> String {
        let n = self.server.requests_to(Endpoint::Start).len();
        let call = self.svc.clone().oneshot(common::start(&self.base, 600_000));
        let call = tokio::spawn(async move {
            let response = call.await.expect("a long call");
            common::body_json(response.into_body()).await
        });
        let log = self
            .server
            .wait_for(WAIT, |l| nth_polled(l, n).is_some())
            .await
            .expect("a long call polled");
        let name = nth_polled(&log, n).unwrap();
        self.long.push((name.clone(), call));
        name
    }

    pub(super) async fn flush(&self, what: &str) {
        tokio::time::timeout(WAIT, self.writer.flush())
            .await
            .unwrap_or_else(|_| panic!("waited {WAIT:?} for the writer to commit {what}"))
            .expect("the writer runs");
    }

    /// The operations of the writer's owner in the file.
    pub(super) async fn stored(&self) -> BTreeSet<String> {
        let entries = self.probe.entries().await.expect("read the journal");
        entries
            .into_iter()
            .filter(|e| e.owner() == self.writer.owner())
            .map(|e| e.name().to_owned())
            .collect()
    }

    /// The fault: `RLIMIT_FSIZE` at the WAL's size, so nothing the journal
    /// appends fits. Calls made meanwhile take no longer than `bound`.
    pub(super) async fn disk_full(&mut self, path: &Path, bound: Duration) -> Fault {
        let wal = std::fs::metadata(path.with_extension("sqlite-wal")).expect("the WAL");
        assert!(wal.len() > 0, "an empty WAL");
        let (soft, hard) = rlimit::Resource::FSIZE.get().expect("RLIMIT_FSIZE");
        let s0 = self.writer.stats();
        rlimit::Resource::FSIZE
            .set(wal.len(), hard)
            .expect("lower RLIMIT_FSIZE");
        let first = self.start_long().await;
        until("the first commit to fail", || {
            self.writer.stats().errors > s0.errors
        })
        .await;
        let mut slowest = Duration::ZERO;
        for _ in 0..SHORT {
            let took = self.short_call().await;
            assert!(
                took <= bound,
                "a call took {took:?} in the fault, bound {bound:?}"
            );
            slowest = slowest.max(took);
        }
        for _ in 0..DROPPED {
            let took = self.dropped_call().await;
            assert!(
                took <= bound,
                "a cancel took {took:?} in the fault, bound {bound:?}"
            );
            slowest = slowest.max(took);
        }
        let mut held = Vec::new();
        for _ in 1..LONG_DURING {
            held.push(self.start_long().await);
        }
        until("a retry to fail too", || {
            self.writer.stats().errors >= s0.errors + 2
        })
        .await;
        let s1 = self.writer.stats();
        assert_eq!(s1.batches, s0.batches, "committed past the limit: {s1:?}");
        rlimit::Resource::FSIZE
            .set(soft, hard)
            .expect("raise RLIMIT_FSIZE");
        self.flush("what it held, once the limit is raised").await;

        let s2 = self.writer.stats();
        let coalesced = s2.coalesced - s0.coalesced;
        // A record tried in a failed commit has its remove written.
        let tried_removes = s2.removed - s0.removed;
        assert_eq!(
            coalesced + tried_removes,
            (SHORT + DROPPED) as u64,
            "each finished or cancelled call's record meets its remove: {s2:?}"
        );
        // The queue holds the first call's record, those removes, then the
        // other calls' records until it is full.
        let room = QUEUE - 1 - tried_removes as usize;
        let (kept, lost) = held.split_at(room.min(held.len()));
        let dropped = s2.dropped - s0.dropped;
        assert!(!lost.is_empty(), "the fault dropped nothing: {s2:?}");
        assert_eq!(
            dropped as usize,
            lost.len(),
            "the calls beyond the queue: {s2:?}"
        );
        assert_eq!(s2.recorded - s0.recorded, 1 + kept.len() as u64, "{s2:?}");
        // What an operator's dashboard sees: the same counts.
        assert_eq!(
            self.counter("lro.journal.commit.errors"),
            s2.errors,
            "{s2:?}"
        );
        assert_eq!(
            self.counter("lro.journal.changes.dropped"),
            s2.dropped,
            "{s2:?}"
        );
        Fault {
            errors: s2.errors - s0.errors,
            dropped,
            coalesced,
            tried_removes,
            kept: std::iter::once(first).chain(kept.iter().cloned()).collect(),
            lost: lost.to_vec(),
            slowest,
        }
    }

    /// After the fault: the same calls within the same bound; returns the
    /// calls left running.
    pub(super) async fn after_the_fault(&mut self, bound: Duration) -> BTreeSet<String> {
        for _ in 0..SHORT {
            let took = self.short_call().await;
            assert!(
                took <= bound,
                "a call took {took:?} after the fault, bound {bound:?}"
            );
        }
        for _ in 0..DROPPED {
            let took = self.dropped_call().await;
            assert!(
                took <= bound,
                "a cancel took {took:?} after the fault, bound {bound:?}"
            );
        }
        let mut after = BTreeSet::new();
        for _ in 0..LONG_AFTER {
            after.insert(self.start_long().await);
        }
        self.flush("the calls after the fault").await;
        after
    }

    /// The process retires its owner; a reaper on the second handle cancels
    /// each of `expected` exactly once, and none of `lost`. Returns how
    /// many cancels it had accepted.
    pub(super) async fn reap(&mut self, expected: &BTreeSet<String>, lost: &[String]) -> u64 {
        self.writer.retire().await.expect("retire the owner");
        let reaper = Reaper::new(self.probe.clone(), common::http_client());
        let report = reaper.reap_once().await.expect("a reaper round");
        assert_eq!(report.claimed as usize, expected.len(), "{report:?}");
        assert_eq!(report.accepted as usize, expected.len(), "{report:?}");
        for name in expected {
            assert_eq!(self.server.cancels_for(name).len(), 1, "{name}");
        }
        for name in lost {
            assert!(
                self.server.cancels_for(name).is_empty(),
                "{name}: lost, yet cancelled"
            );
        }
        assert!(
            self.stored().await.is_empty(),
            "entries left after the reaper"
        );
        for (name, call) in self.long.drain(..) {
            if lost.contains(&name) {
                call.abort();
                continue;
            }
            let op = tokio::time::timeout(WAIT, call)
                .await
                .unwrap_or_else(|_| {
                    panic!("waited {WAIT:?} for {name}'s caller to see it cancelled")
                })
                .expect("the call's task");
            assert_eq!(op["error"]["code"], 1, "{name}: {op}");
        }
        report.accepted
    }
}
