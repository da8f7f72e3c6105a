//! The parent's side of a mid-burst crash: runs the processes of
//! `crash.rs` on one wire (REST/JSON or gRPC), SIGKILLs the burst at a
//! seeded moment, waits for the reapers, and judges every operation from
//! the server's log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_lro::journal::Journal;
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer, RecordedRequest};

use crate::crash::{fates, Burst, ChildProcess, Fate, Wire, LEASE, REAPER_BATCH, REAPER_INTERVAL};

/// The loss window W the verdict allows. The writer loses what was not yet
/// committed: about one commit (documented p99 ≤ 21 ms, max 35 ms, for both
/// backends). On top of that the child must read a Start's answer and
/// enqueue its record, and read a done poll or an accepted cancel and
/// enqueue its remove, on a shared 2-core runner. 250 ms covers both, and
/// stays well under the half-second a writer that sleeps before each commit
/// would lose. The verdict adds the longest the child was seen not to run
/// before the kill ([`stall`]): time it was descheduled is not its writer's;
/// and the longest a probe commit on the same store took then
/// (`store_probe.rs`): a store slowed by a loaded machine is not the
/// writer's either.
pub const W: Duration = Duration::from_millis(250);

/// The longest gap between two of the child's consecutive Starts (sent one
/// every `pace` by one timer) in the last second and W before the kill,
/// less the pace: how long the child was seen not to run. The writer's
/// slowness does not show here: its commits never hold up a Start.
fn stall(starts: &[&RecordedRequest], kill_at: Instant, pace: Duration) -> Duration {
    let mut times: Vec<Instant> = starts
        .iter()
        .map(|r| r.received_at)
        .filter(|at| *at + W + Duration::from_secs(1) > kill_at)
        .collect();
    times.sort();
    times.push(kill_at);
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).saturating_sub(pace))
        .max()
        .unwrap_or_default()
}

/// The burst's Starts on `wire`, one every 10 ms, up to 1,000 (10 s);
/// killed after a seeded 100 to 200 of them (1 to 2 s in).
pub fn burst(seed: u64, wire: Wire) -> Burst {
    Burst {
        wire,
        seed,
        pace: Duration::from_millis(10),
        max_ops: 1_000,
    }
}

/// What one crash run found, for the test's summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub started: usize,
    pub finished_before_kill: usize,
    pub reaped: usize,
    /// Unfinished operations answered within W of the kill with no cancel.
    pub missed_inside_w: usize,
    /// Starts answered within W of the kill (the bound on misses).
    pub started_inside_w: usize,
    /// Finished operations that got a reaper cancel (all inside W).
    pub extra_inside_w: usize,
    /// From the kill to each reaped operation's reaper cancel.
    pub kill_to_cancel: Vec<Duration>,
    /// The child's longest stall seen before the kill; the window judged
    /// is W plus this and `store_lag`.
    pub stall: Duration,
    /// The longest commit of the store probe (`store_probe.rs`) in the
    /// second and W before the kill.
    pub store_lag: Duration,
    /// Reaped operations whose caller had given up and whose cancels were
    /// hung or backing off at the kill.
    pub reaped_with_cancel_unsettled: usize,
    /// Short operations with no reaper cancel that a poll answered across
    /// their end may have shown done (see `maybe_seen_done`).
    pub maybe_done: usize,
}

fn tagged<'a>(
    log: &'a [RecordedRequest],
    tag: &'a str,
) -> impl Iterator<Item = &'a RecordedRequest> {
    log.iter().filter(move |r| {
        r.endpoint == Endpoint::Start
            && r.headers.get("x-replica").is_some_and(|v| v == tag)
            && r.operation.is_some()
    })
}

fn is_reaper(r: &RecordedRequest) -> bool {
    r.headers.contains_key("x-reaper")
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut at = self.kill_to_cancel.clone();
        at.sort();
        write!(
            f,
            "{} started, {} finished before the kill, {} unfinished reaped exactly once \
             (kill -> cancel median {:?}), {} missed of {} started inside the window, \
             {} finished inside it cancelled again; {} reaped had cancels hung or backing off; \
             {} short ones possibly seen done at the kill; \
             window W {W:?} + stall {:?} + store lag {:?}",
            self.started,
            self.finished_before_kill,
            self.reaped,
            at.get(at.len() / 2).copied().unwrap_or_default(),
            self.missed_inside_w,
            self.started_inside_w,
            self.extra_inside_w,
            self.reaped_with_cancel_unsettled,
            self.maybe_done,
            self.stall,
            self.store_lag
        )
    }
}

/// Runs the scenario on `wire` and the journal `config` (what the children
/// open); `parent` is the parent's own connection to the same store.
pub async fn kill_mid_burst(
    config: &str,
    parent: Arc<dyn Journal>,
    seed: u64,
    wire: Wire,
) -> Summary {
    let server = OperationsServer::new();
    let handle = server.serve().await.expect("bind loopback");
    let base = handle.base_url();
    // Half the live process's cancel attempts fail: hung, backing off
    // (503; 429 with Retry-After), so some are unsettled at the kill.
    server.inject(
        Endpoint::Cancel,
        Fault::Random {
            rate: 0.5,
            faults: vec![
                FaultKind::Hang,
                FaultKind::Status(http::StatusCode::SERVICE_UNAVAILABLE),
                FaultKind::RetryAfter(http::StatusCode::TOO_MANY_REQUESTS, Duration::from_secs(1)),
            ],
            seed,
        },
    );
    // Reapers in two processes run all along, racing the live owners.
    let reapers = [
        ChildProcess::reaper(wire, &base, config, "R1").await,
        ChildProcess::reaper(wire, &base, config, "R2").await,
    ];
    let live = ChildProcess::live(wire, &base, config, "live", 20).await;
    let plan = burst(seed, wire);
    let kill_after = 100 + fastrand::Rng::with_seed(seed).usize(..100);
    let probe = crate::store_probe::StoreProbe::start(parent.clone());
    let mut child = ChildProcess::burst(&base, config, "A", plan).await;
    let owner = child.ready.clone();

    // Bound: the Starts due by then, ten times over, plus a slow start.
    let bound = plan.pace * kill_after as u32 * 10 + Duration::from_secs(10);
    server
        .wait_for(bound, |log| tagged(log, "A").count() >= kill_after)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "waited {bound:?} for the burst's {kill_after} Starts; saw {}",
                tagged(e.requests(), "A").count()
            )
        });
    let kill_at = Instant::now();
    child.kill();
    server.clear_faults();
    let store_lag = probe.lag_before(kill_at, W + Duration::from_secs(1));
    drop(probe);

    // The reapers claim A's entries once its lease has expired; bound: the
    // lease, then a reaper round per batch of 8 of what can be left, plus
    // 30 s for the cancels.
    let left = tagged(&server.requests(), "A").count();
    let bound =
        LEASE + REAPER_INTERVAL * (left / REAPER_BATCH + 2) as u32 + Duration::from_secs(30);
    // What the kill left: entries routed on the burst's wire.
    let entries = parent.entries().await.expect("read the journal");
    let of_a: Vec<_> = entries
        .iter()
        .filter(|e| e.owner().as_str() == owner)
        .collect();
    assert!(!of_a.is_empty(), "the kill left no entry of the burst's");
    for e in of_a {
        assert!(
            wire.is_route(e.route().path()),
            "{} journaled with {:?}, not a {wire:?} cancel route",
            e.name(),
            e.route()
        );
    }
    let deadline = Instant::now() + bound;
    loop {
        let entries = parent.entries().await.expect("read the journal");
        let of_a = entries
            .iter()
            .filter(|e| e.owner().as_str() == owner)
            .count();
        if of_a == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waited {bound:?} for the reapers to empty the killed owner's entries; {of_a} left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = server.requests();
    drop(reapers);
    let summary = judge(&server, &log, kill_at, "A", plan, store_lag);
    assert!(
        summary.reaped_with_cancel_unsettled > 0 && summary.finished_before_kill > 0,
        "the kill found no unsettled cancel or no finished operation: {summary:?}"
    );

    // The live owner's operations: never touched by a reaper, its entries kept.
    for start in tagged(&log, "live") {
        let name = start.operation.as_deref().unwrap_or_default();
        assert!(
            server.cancels_for(name).is_empty(),
            "{name} of a live owner got a cancel"
        );
    }
    let entries = parent.entries().await.expect("read the journal");
    let kept = entries
        .iter()
        .filter(|e| e.owner().as_str() == live.ready)
        .count();
    assert_eq!(kept, 20, "the live owner's entries must stay");
    drop(live);
    handle.shutdown().await;
    summary
}

/// When the child learned that `start`'s operation was done: the poll
/// that ended its polling (the last, if it came after the operation's end),
/// or its first accepted cancel of its own.
fn finished_at(start: &RecordedRequest, fate: Fate, log: &[RecordedRequest]) -> Option<Instant> {
    let name = start.operation.as_deref()?;
    let of = |r: &&RecordedRequest| r.operation.as_deref() == Some(name);
    let polled = match fate {
        Fate::Short(ms) => log
            .iter()
            .filter(of)
            .filter(|r| r.endpoint == Endpoint::Get && r.status == 200)
            .last()
            .map(|r| r.received_at)
            .filter(|at| *at >= start.received_at + Duration::from_millis(ms)),
        _ => None,
    };
    let cancelled = log
        .iter()
        .filter(of)
        .find(|r| {
            r.endpoint == Endpoint::Cancel && !is_reaper(r) && r.fault.is_none() && r.status == 200
        })
        .map(|r| r.received_at);
    polled.into_iter().chain(cancelled).min()
}

/// Whether a poll of a `Short(ms)` operation may have seen it done without
/// this verdict being able to tell: the server creates the operation between
/// its Start's arrival and answer, and reads `done` between a poll's arrival
/// and answer, so a poll whose answer came after `received + ms` but which
/// arrived before `answered + ms` of the Start straddles the operation's end.
fn maybe_seen_done(start: &RecordedRequest, fate: Fate, log: &[RecordedRequest]) -> bool {
    let (Fate::Short(ms), Some(name)) = (fate, start.operation.as_deref()) else {
        return false;
    };
    let ms = Duration::from_millis(ms);
    let started = start.answered_at.unwrap_or(start.received_at);
    log.iter()
        .filter(|r| r.operation.as_deref() == Some(name))
        .filter(|r| r.endpoint == Endpoint::Get && r.status == 200)
        .any(|r| {
            let answered = r.answered_at.unwrap_or(r.received_at);
            answered >= start.received_at + ms && r.received_at < started + ms
        })
}

/// `name`'s requests, for a failure message: endpoint, time since `t0`,
/// status, fault.
fn history(log: &[RecordedRequest], name: &str, t0: Instant) -> String {
    log.iter()
        .filter(|r| r.operation.as_deref() == Some(name))
        .map(|r| {
            format!(
                "\n  {:?} +{:?} {} {:?}",
                r.endpoint,
                r.received_at - t0,
                r.status,
                r.fault
            )
        })
        .collect()
}

/// The verdict on every operation the burst started.
pub fn judge(
    server: &OperationsServer,
    log: &[RecordedRequest],
    kill_at: Instant,
    tag: &str,
    run: Burst,
    store_lag: Duration,
) -> Summary {
    let starts: Vec<&RecordedRequest> = tagged(log, tag).collect();
    let names: std::collections::BTreeSet<&str> = starts
        .iter()
        .filter_map(|r| r.operation.as_deref())
        .collect();
    let plan = fates(run.seed, run.max_ops);
    let mut reaper_cancels = BTreeMap::<&str, Vec<&RecordedRequest>>::new();
    for r in log.iter().filter(|r| {
        r.endpoint == Endpoint::Cancel
            && is_reaper(r)
            && r.operation.as_deref().is_some_and(|n| names.contains(n))
    }) {
        assert!(
            r.received_at > kill_at,
            "a reaper cancelled {:?} while its owner lived",
            r.operation
        );
        assert!(
            run.wire.is_accepted_cancel(r),
            "a reaper's cancel of {:?} was no accepted {:?} CancelOperation: {} {} {:?}",
            r.operation,
            run.wire,
            r.path,
            r.status,
            r.grpc_status
        );
        reaper_cancels
            .entry(r.operation.as_deref().unwrap_or_default())
            .or_default()
            .push(r);
    }
    let stall = stall(&starts, kill_at, run.pace);
    let window = W + stall + store_lag;
    let mut s = Summary {
        started: starts.len(),
        stall,
        store_lag,
        ..Summary::default()
    };
    for start in &starts {
        let name = start.operation.as_deref().unwrap_or_default();
        let i: usize = start.headers["x-op"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("x-op");
        let fate = plan[i];
        let got = reaper_cancels.get(name).map_or(0, Vec::len);
        assert!(got <= 1, "{name} got {got} reaper cancels");
        let inside_w = start.received_at + window > kill_at;
        s.started_inside_w += usize::from(inside_w);
        match finished_at(start, fate, log).filter(|at| *at < kill_at) {
            Some(at) => {
                s.finished_before_kill += 1;
                if got == 1 {
                    // A lost remove: allowed only for an end within W.
                    assert!(at + window > kill_at, "{name} ({fate:?}) finished {:?} before the kill, outside the window W + stall + store lag = {window:?}, and got a reaper cancel; its requests: {}", kill_at - at, history(log, name, start.received_at));
                    s.extra_inside_w += 1;
                }
            }
            None if inside_w => s.missed_inside_w += usize::from(got == 0),
            // The child may have seen it done (and removed its entry): either
            // outcome is right.
            None if got == 0 && maybe_seen_done(start, fate, log) => s.maybe_done += 1,
            None => {
                // Answered more than W before the kill: its record was committed.
                assert_eq!(got, 1, "{name} ({fate:?}, answered {:?} before the kill, outside the window W + stall + store lag = {window:?}) got no reaper cancel; its requests: {}", kill_at - start.received_at, history(log, name, start.received_at));
                s.reaped += 1;
                s.kill_to_cancel
                    .push(reaper_cancels[name][0].received_at - kill_at);
                let tried = log.iter().any(|r| {
                    r.endpoint == Endpoint::Cancel
                        && !is_reaper(r)
                        && r.operation.as_deref() == Some(name)
                });
                s.reaped_with_cancel_unsettled += usize::from(tried);
                if !matches!(fate, Fate::Short(_)) {
                    let op = server.operation(name).expect("the operation exists");
                    assert_eq!(op["error"]["code"], 1, "{name} not CANCELLED: {op}");
                }
            }
        }
    }
    assert!(s.missed_inside_w <= s.started_inside_w);
    s
}
