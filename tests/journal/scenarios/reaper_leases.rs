//! Reapers' leases: a dead reaper's claims are retaken once its lease
//! expires, a live one keeps them through a long round, fresh claimers
//! racing never share an entry, and a table from before `claimed_at` is
//! migrated.

use super::*;

/// A reaper's stack: the shared client, its cancels tagged `x-reaper: {tag}`.
fn tagged_stack(
    client: &HttpClient,
    tag: &'static str,
) -> tower_http::set_header::SetRequestHeader<HttpClient, HeaderValue> {
    ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::HeaderName::from_static("x-reaper"),
            HeaderValue::from_static(tag),
        ))
        .service(client.clone())
}

/// How many of `name`'s cancels came from the reaper tagged `tag`.
fn cancels_by(server: &OperationsServer, name: &str, tag: &str) -> usize {
    server
        .cancels_for(name)
        .iter()
        .filter(|c| c.headers.get("x-reaper").is_some_and(|v| v == tag))
        .count()
}

/// Entries of a dead owner (no owner row at all) for `n` ten-minute
/// operations started on `server`; returns their names.
async fn orphans_on(
    journal: &Arc<dyn Journal>,
    client: &HttpClient,
    base: &str,
    n: usize,
) -> Vec<String> {
    let names = start_operations(client, base, n, 600_000).await;
    let dead = OwnerId::random();
    let batch = Batch {
        records: names
            .iter()
            .enumerate()
            .map(|(i, name)| entry(&dead, i as u64, base, name))
            .collect(),
        removes: vec![],
    };
    journal.commit(&batch).await.unwrap();
    names
}

/// A reaper that dies mid-round (its task aborted while its cancels hang
/// unanswered) holding claims: another reaper leaves them alone while the
/// dead one's lease lives, then retakes and cancels each exactly once —
/// within the lease and a few rounds of the death, not the 5 min
/// `claim_for`. The store's clock is real time (SQLite's is the system
/// clock, PostgreSQL's its own), so the waits are bounded and derived from
/// the lease.
pub async fn a_dead_reapers_claims_are_retaken_once_its_lease_expires(journal: Arc<dyn Journal>) {
    const LEASE: Duration = Duration::from_secs(2);
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let client = http_client();
    let names = orphans_on(&journal, &client, &base, 3).await;

    server.inject(Endpoint::Cancel, Fault::Hang);
    let dying = Reaper::new(journal.clone(), tagged_stack(&client, "dying")).lease(LEASE);
    let dying_id = dying.claimer().clone();
    let round = tokio::spawn(async move { dying.reap_once().await });
    // Its cancels reached the server (and hang): it holds the claims.
    let bound = Duration::from_secs(10);
    let waited = tokio::time::Instant::now();
    while !names.iter().all(|n| cancels_by(&server, n, "dying") >= 1) {
        assert!(
            waited.elapsed() < bound,
            "waited {bound:?} for the first reaper's cancels to reach the server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let claimed = journal.entries().await.unwrap();
    assert!(
        claimed.len() == 3 && claimed.iter().all(|e| e.claimed_by() == Some(&dying_id)),
        "not all claimed by the first reaper: {claimed:?}"
    );
    // It dies: no renewal after this.
    round.abort();
    assert!(round.await.unwrap_err().is_cancelled());
    let died = tokio::time::Instant::now();
    server.clear_faults();

    // Its last renewal was at most LEASE / 3 before: the claims hold for
    // at least 2/3 of LEASE more.
    let other = Reaper::new(journal.clone(), tagged_stack(&client, "other")).lease(LEASE);
    let early = other.reap_once().await.unwrap();
    let checked = died.elapsed();
    assert!(
        checked < LEASE / 2,
        "the check took {checked:?}: too slow to tell a live lease"
    );
    assert_eq!(
        early.claimed, 0,
        "claims retaken while their reaper's lease lived"
    );

    // Then a round every 100 ms retakes them: bound, the lease and 5 s of
    // rounds, far below claim_for (5 min).
    let bound = LEASE + Duration::from_secs(5);
    loop {
        other.reap_once().await.unwrap();
        let left = journal.entries().await.unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            died.elapsed() < bound,
            "waited {bound:?} after the first reaper died for its claims to be retaken; left: {:?}",
            left.iter()
                .map(|e| (e.name().to_owned(), e.claimed_by().cloned()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let retaken = died.elapsed();
    assert!(
        retaken >= LEASE / 2,
        "retaken {retaken:?} after the death, before the lease could expire"
    );
    assert_eq!(other.stats().accepted, 3, "{:?}", other.stats());
    for name in &names {
        assert_eq!(
            cancels_by(&server, name, "other"),
            1,
            "{name}: cancelled once by the live reaper"
        );
        let op = server.operation(name).unwrap();
        assert_eq!(
            (op["done"].as_bool(), op["error"]["code"].as_i64()),
            (Some(true), Some(1)),
            "{op}"
        );
    }
    println!("a dead reaper's claims retaken {retaken:?} after its death (lease {LEASE:?})");
    handle.shutdown().await;
}

/// A live reaper whose round outlasts its lease three times over (every
/// cancel answered after 3 leases) keeps its claims by renewing: another
/// reaper, running rounds all along, claims nothing, and each operation
/// gets exactly one cancel.
pub async fn a_live_reaper_keeps_its_claims_through_a_long_round(journal: Arc<dyn Journal>) {
    const LEASE: Duration = Duration::from_secs(1);
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let client = http_client();
    let names = orphans_on(&journal, &client, &base, 3).await;

    server.inject(Endpoint::Cancel, Fault::Latency(LEASE * 3));
    let policy = tower_lro::CancelPolicy::default().attempt_timeout(LEASE * 10);
    let slow = Reaper::new(journal.clone(), tagged_stack(&client, "slow"))
        .lease(LEASE)
        .cancel_policy(policy.clone());
    let slow_id = slow.claimer().clone();
    let round = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let report = slow.reap_once().await;
        (report, started.elapsed())
    });
    // It claims them all first.
    let bound = Duration::from_secs(10);
    let waited = tokio::time::Instant::now();
    loop {
        let entries = journal.entries().await.unwrap();
        if entries.len() == 3 && entries.iter().all(|e| e.claimed_by() == Some(&slow_id)) {
            break;
        }
        assert!(
            waited.elapsed() < bound,
            "waited {bound:?} for the slow reaper to claim the orphans: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let other = Reaper::new(journal.clone(), tagged_stack(&client, "other"))
        .lease(LEASE)
        .cancel_policy(policy);
    let bound = LEASE * 3 + Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let mut rounds = 0;
    while !round.is_finished() {
        assert!(
            started.elapsed() < bound,
            "waited {bound:?} for the slow round to end"
        );
        let r = other.reap_once().await.unwrap();
        rounds += 1;
        assert_eq!(
            r.claimed,
            0,
            "a live reaper's claims taken after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (report, took) = round.await.unwrap();
    let report = report.unwrap();
    assert!(
        took > LEASE * 2,
        "the round took {took:?}: not past its lease"
    );
    assert!(rounds > 10, "only {rounds} rounds of the other reaper");
    assert_eq!((report.claimed, report.accepted), (3, 3), "{report:?}");
    for name in &names {
        assert_eq!(
            server.cancels_for(name).len(),
            1,
            "{name}: one cancel in all"
        );
    }
    assert!(journal.entries().await.unwrap().is_empty());
    handle.shutdown().await;
}

/// The operations table as an earlier version created it (no
/// `claimed_at_ms`): opening the journal must add the column.
pub const OPERATIONS_BEFORE_CLAIMED_AT: &str = "
CREATE TABLE tower_lro_operations (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    name            TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    route_scheme    TEXT NOT NULL,
    route_authority TEXT NOT NULL,
    route_method    TEXT NOT NULL,
    route_path      TEXT NOT NULL,
    headers         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    claimed_by      TEXT,
    claim_until_ms  BIGINT
);";

/// Claimers racing on separate connections, each claim by a claimer whose
/// lease row is brand new (renewed just before): a claim whose snapshot
/// predates another claimer's renewal must not take what that claimer has
/// just claimed. Every orphan goes to exactly one claim.
pub async fn fresh_claimers_racing_never_share_an_entry(connections: Vec<Arc<dyn Journal>>) {
    let dead = OwnerId::random();
    let base = "http://127.0.0.1:9";
    let batch = Batch {
        records: (0..600)
            .map(|i| entry(&dead, i, base, &format!("projects/p/operations/fresh-{i}")))
            .collect(),
        removes: vec![],
    };
    connections[0].commit(&batch).await.unwrap();
    let all = super::claim_until_empty(connections, 3, super::Claimer::PerClaim).await;
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (600, 600),
        "an entry was claimed twice or missed"
    );
}
