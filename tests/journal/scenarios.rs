//! Scenarios every journal backend must pass; `journal_sqlite.rs` and
//! `journal_postgres.rs` run them on a real store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, Uri};
use tower::ServiceBuilder;
use tower_http::set_header::SetRequestHeaderLayer;
use tower_lro::journal::{
    Batch, Entry, EntryId, Journal, JournalWriter, OwnerId, Protocol, Reaper, Route, WriterOptions,
};
use tower_lro_testing::{Endpoint, Fault, OperationsServer};

use crate::common::{body_json, http_client, HttpClient};

/// The credential every test request carries; it must never be stored.
pub const SECRET: &str = "Bearer ya29.never-stored";

/// Headers as the layer forwards them: a credential, an API key and
/// non-secret context.
pub fn forwarded_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static(SECRET));
    h.insert(
        "x-goog-api-key",
        HeaderValue::from_static("AIza-never-stored"),
    );
    h.insert("cookie", HeaderValue::from_static("SID=never-stored"));
    h.insert(
        "x-goog-user-project",
        HeaderValue::from_static("billing-project"),
    );
    h
}

/// An entry of `owner` for operation `name` on `base` (`http://127.0.0.1:port`).
pub fn entry(owner: &OwnerId, seq: u64, base: &str, name: &str) -> Entry {
    let uri: Uri = format!("{base}/v1/{name}:cancel").parse().unwrap();
    Entry::new(
        EntryId::new(owner, seq),
        name,
        Protocol::Rest,
        Route::rest(&Method::POST, &uri).unwrap(),
        &forwarded_headers(),
        owner.clone(),
        SystemTime::now(),
    )
}

fn ids(entries: &[Entry]) -> BTreeSet<String> {
    entries.iter().map(|e| e.id().as_str().to_owned()).collect()
}

/// Orphans are the entries of owners whose lease ended; claims are held
/// until released; removes delete.
pub async fn claims_take_only_orphans(journal: Arc<dyn Journal>) {
    let (live, dead) = (OwnerId::random(), OwnerId::random());
    journal.renew(&live, Duration::from_secs(60)).await.unwrap();
    journal.renew(&dead, Duration::from_secs(60)).await.unwrap();
    let base = "http://127.0.0.1:9";
    let mut batch = Batch::default();
    for i in 0..3 {
        batch.records.push(entry(
            &live,
            i,
            base,
            &format!("projects/p/operations/live-{i}"),
        ));
        batch.records.push(entry(
            &dead,
            i,
            base,
            &format!("projects/p/operations/dead-{i}"),
        ));
    }
    journal.commit(&batch).await.unwrap();
    let (a, b) = (OwnerId::random(), OwnerId::random());
    // Claimers hold leases: a claim lasts while its claimer's lease does.
    journal.renew(&a, Duration::from_secs(60)).await.unwrap();
    journal.renew(&b, Duration::from_secs(60)).await.unwrap();
    assert!(journal
        .claim(&a, 10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());

    journal.retire(&dead).await.unwrap();
    let claimed = journal
        .claim(&a, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let names: BTreeSet<_> = claimed.iter().map(|e| e.name().to_owned()).collect();
    assert_eq!(
        names,
        (0..3)
            .map(|i| format!("projects/p/operations/dead-{i}"))
            .collect()
    );
    assert!(claimed.iter().all(|e| e.owner() == &dead));
    assert_eq!(
        claimed[0].headers(),
        [(
            "x-goog-user-project".to_owned(),
            "billing-project".to_owned()
        )]
    );
    assert!(
        journal
            .claim(&b, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty(),
        "claimed twice"
    );

    journal.release(&[claimed[0].id().clone()]).await.unwrap();
    let again = journal
        .claim(&b, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ids(&again), ids(&claimed[..1]));

    let removes = claimed.iter().map(|e| e.id().clone()).collect();
    journal
        .commit(&Batch {
            records: vec![],
            removes,
        })
        .await
        .unwrap();
    let left = journal.entries().await.unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|e| e.owner() == &live));
}

/// Claimers racing on separate connections each get a disjoint share, and
/// together all of the orphans.
pub async fn concurrent_claims_are_exclusive(connections: Vec<Arc<dyn Journal>>) {
    let dead = OwnerId::random();
    let base = "http://127.0.0.1:9";
    let batch = Batch {
        records: (0..300)
            .map(|i| entry(&dead, i, base, &format!("projects/p/operations/race-{i}")))
            .collect(),
        removes: vec![],
    };
    connections[0].commit(&batch).await.unwrap();
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|journal| {
            tokio::spawn(async move {
                let me = OwnerId::random();
                journal.renew(&me, Duration::from_secs(60)).await.unwrap();
                let mut mine = Vec::new();
                loop {
                    let got = journal
                        .claim(&me, 7, Duration::from_secs(60))
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|e| e.id().as_str().to_owned()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 300, "an entry was claimed twice or missed");
    assert_eq!(unique, ids(&batch.records));
}

/// The writer commits in batches off the caller's path; a record removed
/// before its batch commits is never written.
pub async fn writer_batches_and_coalesces(journal: Arc<dyn Journal>) {
    let writer = JournalWriter::start(journal.clone(), WriterOptions::new()).unwrap();
    let base = "http://127.0.0.1:9";
    let kept: Vec<Entry> = (0..50)
        .map(|i| {
            let e = entry(
                writer.owner(),
                i,
                base,
                &format!("projects/p/operations/w-{i}"),
            );
            writer.record(e.clone());
            e
        })
        .collect();
    for i in 50..60 {
        let e = entry(
            writer.owner(),
            i,
            base,
            &format!("projects/p/operations/w-{i}"),
        );
        let id = e.id().clone();
        writer.record(e);
        writer.remove(id);
    }
    writer.flush().await.unwrap();
    let stats = writer.stats();
    assert_eq!(stats.recorded + stats.coalesced, 60, "{stats:?}");
    assert!(stats.batches < 60, "no batching: {stats:?}");
    let stored = journal.entries().await.unwrap();
    let stored: Vec<_> = stored
        .into_iter()
        .filter(|e| e.owner() == writer.owner())
        .collect();
    assert_eq!(ids(&stored), ids(&kept));
    // A live writer's entries are not orphans.
    assert!(journal
        .claim(&OwnerId::random(), 100, Duration::from_secs(60))
        .await
        .unwrap()
        .iter()
        .all(|e| e.owner() != writer.owner()));
    writer.retire().await.unwrap();
    let orphans = journal
        .claim(&OwnerId::random(), 100, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(ids(&orphans), ids(&kept));
}

/// Starts `n` operations of `duration_ms` on `server` directly.
pub async fn start_operations(
    client: &HttpClient,
    base: &str,
    n: usize,
    duration_ms: u64,
) -> Vec<String> {
    let mut names = Vec::new();
    for _ in 0..n {
        let response = client
            .request(crate::common::start(base, duration_ms))
            .await
            .unwrap();
        let op = body_json(response.into_body()).await;
        names.push(op["name"].as_str().unwrap().to_owned());
    }
    names
}

/// A reaper cancels a retired owner's operations through its own stack
/// (which adds the credential), retries a failed cancel in a later round,
/// and empties the journal.
pub async fn reaper_cancels_orphans(journal: Arc<dyn Journal>) {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let client = http_client();
    let names = start_operations(&client, &base, 5, 600_000).await;
    let dead = OwnerId::random();
    journal.renew(&dead, Duration::from_secs(60)).await.unwrap();
    let batch = Batch {
        records: names
            .iter()
            .enumerate()
            .map(|(i, n)| entry(&dead, i as u64, &base, n))
            .collect(),
        removes: vec![],
    };
    journal.commit(&batch).await.unwrap();
    journal.retire(&dead).await.unwrap();

    let stack = ServiceBuilder::new()
        .layer(SetRequestHeaderLayer::overriding(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer reaper-own-token"),
        ))
        .service(client.clone());
    let reaper = Reaper::new(journal.clone(), stack);
    server.inject(
        Endpoint::Cancel,
        // Final, not retried: that entry is released for the next round.
        Fault::Script(vec![http::StatusCode::INTERNAL_SERVER_ERROR]),
    );
    let recorder = crate::common::SpanRecorder::default();
    let guard = recorder.install();
    let first = reaper.reap_once().await.unwrap();
    assert_eq!(
        (first.claimed, first.accepted, first.failed),
        (5, 4, 1),
        "{first:?}"
    );
    assert_eq!(journal.entries().await.unwrap().len(), 1);
    let second = reaper.reap_once().await.unwrap();
    assert_eq!((second.claimed, second.accepted), (1, 1), "{second:?}");
    assert!(journal.entries().await.unwrap().is_empty());

    for name in &names {
        let op = server.operation(name).unwrap();
        assert_eq!(
            (op["done"].as_bool(), op["error"]["code"].as_i64()),
            (Some(true), Some(1)),
            "{op}"
        );
        let cancels = server.cancels_for(name);
        let last = cancels.last().unwrap();
        assert_eq!(last.method, Method::POST);
        assert_eq!(last.path, format!("/v1/{name}:cancel"));
        assert_eq!(last.headers["authorization"], "Bearer reaper-own-token");
        assert_eq!(last.headers["x-goog-user-project"], "billing-project");
        assert!(last.headers.get("x-goog-api-key").is_none());
    }
    assert_eq!(reaper.stats().accepted, 5);
    drop(guard);
    let reaps = recorder.named("lro.reap");
    assert_eq!(reaps.len(), 2);
    assert_eq!(
        (
            reaps[0].fields["claimed"].as_str(),
            reaps[0].fields["failed"].as_str()
        ),
        ("5", "1")
    );
    let cancels = recorder.named("lro.cancel");
    assert_eq!(cancels.len(), 6);
    assert!(
        cancels.iter().all(|c| c.fields["reason"] == "reaped"),
        "{cancels:?}"
    );
    handle.shutdown().await;
}

/// A dead owner's row is deleted by the claim after its last entry is
/// removed, a live owner's never; `owners` reads the owner ids stored.
pub async fn a_dead_owners_row_goes_once_its_entries_are_reaped<F, Fut>(
    journal: Arc<dyn Journal>,
    owners: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = BTreeSet<String>>,
{
    let (live, dead) = (OwnerId::random(), OwnerId::random());
    journal.renew(&live, Duration::from_secs(60)).await.unwrap();
    // A lease that has already ended: the owner is dead.
    journal.renew(&dead, Duration::ZERO).await.unwrap();
    let base = "http://127.0.0.1:9";
    let batch = Batch {
        records: vec![
            entry(&dead, 0, base, "projects/p/operations/dead-0"),
            entry(&live, 0, base, "projects/p/operations/live-0"),
        ],
        removes: vec![],
    };
    journal.commit(&batch).await.unwrap();
    let both: BTreeSet<String> = [live.as_str().to_owned(), dead.as_str().to_owned()].into();
    assert_eq!(owners().await, both);
    let reaper = OwnerId::random();
    // Wait (at most a second) until the dead lease is in the past.
    let mut claimed = Vec::new();
    for _ in 0..100 {
        claimed = journal
            .claim(&reaper, 10, Duration::from_secs(60))
            .await
            .unwrap();
        if !claimed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(claimed.len(), 1, "the dead owner's entry is claimed");
    assert_eq!(owners().await, both, "its row stays while it has an entry");
    journal
        .commit(&Batch {
            records: vec![],
            removes: vec![claimed[0].id().clone()],
        })
        .await
        .unwrap();
    assert!(journal
        .claim(&reaper, 10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        owners().await,
        [live.as_str().to_owned()].into(),
        "the dead owner's row is deleted with its last entry reaped; the live one's stays"
    );
    // A process that renews after all comes back.
    journal.renew(&dead, Duration::from_secs(60)).await.unwrap();
    assert_eq!(owners().await, both);
}

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
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|journal| {
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let me = OwnerId::random();
                    journal.renew(&me, Duration::from_secs(60)).await.unwrap();
                    let got = journal
                        .claim(&me, 3, Duration::from_secs(60))
                        .await
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|e| e.id().as_str().to_owned()));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (600, 600),
        "an entry was claimed twice or missed"
    );
}
