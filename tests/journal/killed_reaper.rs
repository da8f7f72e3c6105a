//! A reaper process SIGKILLed mid-round while it holds claims: the claims
//! end with its lease, and another reaper process cancels those operations
//! exactly once, within the lease of the kill, not the 5 min `claim_for`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, Uri};
use tokio::time::Instant;
use tower_lro::journal::{Batch, Entry, EntryId, Journal, OwnerId, Protocol, Route};
use tower_lro_testing::{Endpoint, Fault, OperationsServer, RecordedRequest};

use crate::common::{body_json, http_client, start};
use crate::crash::{ChildProcess, Wire, REAPER_LEASE};

fn by_reaper(q: &RecordedRequest, prefix: &str) -> bool {
    q.endpoint == Endpoint::Cancel
        && q.headers
            .get("x-reaper")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(prefix))
}

/// Runs the scenario on the journal `config` (the parent's connection
/// `parent`); returns the time from the kill to the last entry reaped.
pub async fn a_killed_reapers_claims_are_retaken(
    config: &str,
    parent: Arc<dyn Journal>,
) -> Duration {
    let server = OperationsServer::new();
    let handle = server.serve().await.expect("bind loopback");
    let base = handle.base_url();
    let client = http_client();
    let dead = OwnerId::random();
    let mut names = Vec::new();
    let mut batch = Batch::default();
    for i in 0..4 {
        let op = body_json(
            client
                .request(start(&base, 600_000))
                .await
                .unwrap()
                .into_body(),
        )
        .await;
        let name = op["name"].as_str().unwrap().to_owned();
        let uri: Uri = format!("{base}/v1/{name}:cancel").parse().unwrap();
        let route = Route::rest(&Method::POST, &uri).unwrap();
        let id = EntryId::new(&dead, i);
        let e = Entry::new(
            id,
            name.as_str(),
            Protocol::Rest,
            route,
            &HeaderMap::new(),
            dead.clone(),
            SystemTime::now(),
        );
        batch.records.push(e);
        names.push(name);
    }
    // No owner row: orphans from the start.
    parent.commit(&batch).await.expect("commit the orphans");

    // R1's cancels hang: its round holds the claims until it is killed.
    server.inject(Endpoint::Cancel, Fault::Hang);
    let mut first = ChildProcess::reaper(Wire::Rest, &base, config, "R1").await;
    let bound = Duration::from_secs(30);
    server
        .wait_for(bound, |log| {
            names.iter().all(|n| {
                log.iter()
                    .any(|q| by_reaper(q, "R1-") && q.operation.as_deref() == Some(n))
            })
        })
        .await
        .unwrap_or_else(|_| panic!("waited {bound:?} for R1's cancels of every orphan"));
    let entries = parent.entries().await.expect("read the journal");
    assert!(
        entries.len() == 4
            && entries.iter().all(|e| e
                .claimed_by()
                .is_some_and(|c| first.reapers.iter().any(|r| r == c.as_str()))),
        "not all claimed by R1's reapers {:?}: {entries:?}",
        first.reapers
    );
    first.kill();
    let killed_at = Instant::now();
    server.clear_faults();

    // R2 retakes them once R1's lease expired (at least 2/3 of it after
    // the kill); bound: the lease and 10 s for R2's start and rounds.
    let _second = ChildProcess::reaper(Wire::Rest, &base, config, "R2").await;
    let bound = REAPER_LEASE + Duration::from_secs(10);
    loop {
        let left = parent.entries().await.expect("read the journal");
        if left.is_empty() {
            break;
        }
        assert!(
            killed_at.elapsed() < bound,
            "waited {bound:?} after killing R1 for its claims to be retaken; left: {:?}",
            left.iter()
                .map(|e| (e.name().to_owned(), e.claimed_by().cloned()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let retaken = killed_at.elapsed();
    let log = server.requests();
    for name in &names {
        let r2: Vec<_> = log
            .iter()
            .filter(|q| by_reaper(q, "R2-") && q.operation.as_deref() == Some(name))
            .collect();
        assert_eq!(r2.len(), 1, "{name}: R2's cancels {r2:?}");
        let after = r2[0].received_at.saturating_duration_since(killed_at);
        assert!(
            after >= REAPER_LEASE / 2,
            "{name} retaken {after:?} after the kill, before R1's lease could expire"
        );
        let op = server.operation(name).unwrap();
        assert_eq!(
            (op["done"].as_bool(), op["error"]["code"].as_i64()),
            (Some(true), Some(1)),
            "{op}"
        );
    }
    handle.shutdown().await;
    retaken
}
