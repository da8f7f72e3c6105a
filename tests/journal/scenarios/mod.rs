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

mod reaper_leases;
pub use reaper_leases::*;

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
    let all = claim_until_empty(connections, 7, Claimer::PerConnection).await;
    let unique: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(all.len(), 300, "an entry was claimed twice or missed");
    assert_eq!(unique, ids(&batch.records));
}

/// Who claims on each connection of [`claim_until_empty`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Claimer {
    /// One claimer per connection, renewed once.
    PerConnection,
    /// A new claimer, renewed just before, for every claim.
    PerClaim,
}

/// Claims `limit` entries at a time on every connection at once until
/// none is left; the ids each claim returned, all connections together.
pub async fn claim_until_empty(
    connections: Vec<Arc<dyn Journal>>,
    limit: usize,
    claimer: Claimer,
) -> Vec<String> {
    let tasks: Vec<_> = connections
        .into_iter()
        .map(|journal| {
            tokio::spawn(async move {
                let mut me: Option<OwnerId> = None;
                let mut mine = Vec::new();
                loop {
                    if me.is_none() || claimer == Claimer::PerClaim {
                        let fresh = OwnerId::random();
                        journal
                            .renew(&fresh, Duration::from_secs(60))
                            .await
                            .unwrap();
                        me = Some(fresh);
                    }
                    let Some(me) = &me else { unreachable!() };
                    let got = journal
                        .claim(me, limit, Duration::from_secs(60))
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
    all
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
