//! A fleet on one journal: replica processes (each a layer with a writer
//! and two reapers) under sustained load; one at a time is SIGKILLed at a
//! seeded moment and replaced by a new one. Each kill is judged like a
//! single crash (`crash_verdict.rs`), and no reaper ever touches a live
//! replica's operations.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_lro::journal::Journal;
use tower_lro_testing::{Endpoint, OperationsServer};

use crate::crash::{Burst, ChildProcess, Wire, LEASE, REAPER_BATCH, REAPER_INTERVAL, REAPER_LEASE};
use crate::verdict::{judge, Summary, W};

/// What a fleet run found.
#[derive(Debug)]
pub struct FleetReport {
    pub replicas: usize,
    pub kills: usize,
    pub started: usize,
    pub reaped: usize,
    pub missed_inside_w: usize,
    pub extra_inside_w: usize,
    /// Entries claimed by a killed replica's reapers when it was killed
    /// (its reapers were mid-round): retaken once their lease expired.
    pub claims_held_at_kill: usize,
    /// From a kill to each of its operations' reaper cancel: p50, p99, max.
    pub kill_to_cancel: [Duration; 3],
}

impl std::fmt::Display for FleetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "{} replicas on one PostgreSQL, {} killed and replaced; {} operations started by the killed ones, \
             {} reaped each exactly once, {} missed and {} cancelled twice inside W = {:?} (0 outside it); \
             kill -> reaper cancel p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (lease {:?}, reaper interval {:?}); \
             {} entries claimed by a killed replica's reapers at its kill",
            self.replicas, self.kills, self.started, self.reaped, self.missed_inside_w, self.extra_inside_w, W,
            ms(self.kill_to_cancel[0]), ms(self.kill_to_cancel[1]), ms(self.kill_to_cancel[2]),
            LEASE, REAPER_INTERVAL, self.claims_held_at_kill
        )
    }
}

/// A replica's load on `wire`: one Start every 100 ms (10 a second; 80 for
/// eight replicas, on a shared 2-core runner), seeded.
fn load(seed: u64, wire: Wire) -> Burst {
    Burst {
        wire,
        seed,
        pace: Duration::from_millis(100),
        max_ops: 100_000,
    }
}

struct Replica {
    tag: String,
    run: Burst,
    child: ChildProcess,
}

async fn replica(base: &str, config: &str, n: u64, seed: u64, wire: Wire) -> Replica {
    let tag = format!("F{n}");
    let run = load(seed.wrapping_mul(1_000).wrapping_add(n), wire);
    let child = ChildProcess::replica(base, config, &tag, run).await;
    Replica { tag, run, child }
}

/// `replicas` processes on `wire` and the journal `config`; `kills` times,
/// after a seeded 0.5 to 1.5 s, one of them is SIGKILLed and a new one
/// started.
pub async fn run_fleet(
    config: &str,
    parent: Arc<dyn Journal>,
    replicas: usize,
    kills: usize,
    seed: u64,
    wire: Wire,
) -> FleetReport {
    let server = OperationsServer::new();
    let handle = server.serve().await.expect("bind loopback");
    let base = handle.base_url();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut live = Vec::new();
    for n in 0..replicas as u64 {
        live.push(replica(&base, config, n, seed, wire).await);
    }
    let probe = crate::store_probe::StoreProbe::start(parent.clone());
    let mut dead = Vec::new();
    let mut claims_held_at_kill = 0;
    for k in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.u64(500..1_500))).await;
        let mut victim = live.swap_remove(rng.usize(..live.len()));
        let kill_at = Instant::now();
        victim.child.kill();
        let lag = probe.lag_before(kill_at, W + Duration::from_secs(1));
        claims_held_at_kill += parent
            .entries()
            .await
            .expect("read the journal")
            .iter()
            .filter(|e| {
                e.claimed_by()
                    .is_some_and(|c| victim.child.reapers.iter().any(|r| r == c.as_str()))
            })
            .count();
        dead.push((victim, kill_at, lag));
        live.push(replica(&base, config, (replicas + k) as u64, seed, wire).await);
    }
    let owners: Vec<String> = dead.iter().map(|(r, _, _)| r.child.ready.clone()).collect();
    let left = parent
        .entries()
        .await
        .expect("read the journal")
        .iter()
        .filter(|e| owners.iter().any(|o| o == e.owner().as_str()))
        .count();
    let lag = probe.max_lag();
    let bound = drain_bound(left, lag);
    let drain_from = Instant::now();
    let deadline = drain_from + bound;
    loop {
        let entries = parent.entries().await.expect("read the journal");
        let left: Vec<_> = entries
            .iter()
            .filter(|e| owners.iter().any(|o| o == e.owner().as_str()))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waited {bound:?} for the fleet's reapers to empty the killed owners' entries; {} left, \
             by claimer: {}",
            left.len(),
            claimers(&left, &dead, &live)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "fleet drain: {left} entries of killed owners left at the last kill, emptied in {:?} \
         (bound {bound:?}; store lag max {lag:?})",
        drain_from.elapsed()
    );
    drop(probe);
    let log = server.requests();
    let summaries: Vec<Summary> = dead
        .iter()
        .map(|(r, kill_at, lag)| judge(&server, &log, *kill_at, &r.tag, r.run, *lag))
        .collect();
    // The live replicas: no reaper cancel for any of their operations.
    for r in &live {
        for start in log.iter().filter(|q| {
            q.endpoint == Endpoint::Start
                && q.headers
                    .get("x-replica")
                    .is_some_and(|v| v == r.tag.as_str())
        }) {
            let name = start.operation.as_deref().unwrap_or_default();
            let reaped = log.iter().any(|q| {
                q.endpoint == Endpoint::Cancel
                    && q.headers.contains_key("x-reaper")
                    && q.operation.as_deref() == Some(name)
            });
            assert!(
                !reaped,
                "{name} of live replica {} got a reaper cancel",
                r.tag
            );
        }
    }
    drop(live);
    handle.shutdown().await;
    let mut latencies: Vec<Duration> = summaries
        .iter()
        .flat_map(|s| s.kill_to_cancel.iter().copied())
        .collect();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let sum = |f: fn(&Summary) -> usize| summaries.iter().map(f).sum();
    FleetReport {
        replicas,
        kills,
        started: sum(|s| s.started),
        reaped: sum(|s| s.reaped),
        missed_inside_w: sum(|s| s.missed_inside_w),
        extra_inside_w: sum(|s| s.extra_inside_w),
        claims_held_at_kill,
        kill_to_cancel: [
            at(0.5),
            at(0.99),
            latencies.last().copied().unwrap_or_default(),
        ],
    }
}

/// How long the fleet's reapers may take, after the last kill, to cancel
/// the `left` entries of killed owners, with the store's commits taking up
/// to `lag` (measured by the probe over the run).
///
/// - By `LEASE` after the last kill every killed owner's lease has expired
///   (each renewed at most `LEASE / 3` before its death), and by
///   `REAPER_LEASE` every killed replica's reapers' lease has, so their
///   claims can be retaken: `max(LEASE, REAPER_LEASE)`.
/// - A live reaper's next round starts within `REAPER_INTERVAL`.
/// - The round claims `REAPER_BATCH` at a time; even if a single reaper (of
///   sixteen) did every batch, each costs three store round trips (renew,
///   claim, remove commit: `3 * lag`) and its cancels, sent concurrently,
///   one attempt each (`CANCEL_ATTEMPT`, the default `CancelPolicy`'s
///   attempt timeout: the server has no fault here).
/// - One more `REAPER_INTERVAL` and a second for this loop's 50 ms polls
///   and its own read of the journal.
fn drain_bound(left: usize, lag: Duration) -> Duration {
    const CANCEL_ATTEMPT: Duration = Duration::from_secs(3);
    let batches = left.div_ceil(REAPER_BATCH).max(1) as u32;
    LEASE.max(REAPER_LEASE)
        + REAPER_INTERVAL * 2
        + (lag * 3 + CANCEL_ATTEMPT) * batches
        + Duration::from_secs(1)
}

/// Who holds the claims on `left`: per claimer, how many entries and
/// whether it is a killed replica's reaper (and since when), a live
/// replica's, or unclaimed.
fn claimers(
    left: &[&tower_lro::journal::Entry],
    dead: &[(Replica, Instant, Duration)],
    live: &[Replica],
) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for e in left {
        let who = match e.claimed_by() {
            None => "unclaimed".to_owned(),
            Some(c) => {
                let c = c.as_str();
                if let Some((r, at, _)) = dead
                    .iter()
                    .find(|(r, _, _)| r.child.reapers.iter().any(|x| x == c))
                {
                    format!(
                        "{c} (reaper of killed {}, killed {:?} ago)",
                        r.tag,
                        at.elapsed()
                    )
                } else if let Some(r) = live.iter().find(|r| r.child.reapers.iter().any(|x| x == c))
                {
                    format!("{c} (reaper of live {})", r.tag)
                } else {
                    format!("{c} (unknown claimer)")
                }
            }
        };
        *by.entry(who).or_default() += 1;
    }
    by.iter()
        .map(|(who, n)| format!("{n} by {who}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The loss window the fleet is judged with (the crash tests').
pub const WINDOW: Duration = W;
