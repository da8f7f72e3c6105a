//! 1,000 CreateRelease calls through the layer on one tonic `Channel`:
//! a third dropped before their first answer, a third abandoned while
//! their operation runs, a third left to finish; 30 % of cancel attempts
//! faulted (UNAVAILABLE with a RetryInfo, RESOURCE_EXHAUSTED, a reset
//! stream, a hang). The server's log is the ground truth.

use std::collections::HashMap;
use std::time::Duration;

use prost::Message;
use tokio::time::Instant;
use tower_lro::{CancelOnDropLayer, CancelPolicy};
use tower_lro_testing::grpc::CreateReleaseRequest;
use tower_lro_testing::{Endpoint, Fault, FaultKind};

use crate::support::{create, deploy, fast_polls, serve};

const CALLS: usize = 1_000;

/// What each caller does, by `i % 3`.
fn plan(i: usize) -> (u64, Option<Duration>) {
    match i % 3 {
        // Dropped before the first answer (Starts are answered 150 ms late).
        0 => (600_000, Some(Duration::from_millis(50))),
        // Abandoned while waiting.
        1 => (600_000, Some(Duration::from_millis(400))),
        // Finishes.
        _ => (100, None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_1000_operations_with_30_percent_of_cancels_faulted() {
    let (server, _handle, channel) = serve().await;
    server.inject(
        Endpoint::Start,
        Fault::Always(FaultKind::LateAnswer(Duration::from_millis(150))),
    );
    server.inject(
        Endpoint::Cancel,
        Fault::Random {
            rate: 0.3,
            faults: vec![
                FaultKind::RetryAfter(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_millis(100),
                ),
                FaultKind::Status(http::StatusCode::TOO_MANY_REQUESTS),
                FaultKind::Disconnect,
                FaultKind::Hang,
            ],
            seed: 7,
        },
    );
    let lro = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(
            CancelPolicy::new()
                .attempts(10)
                .backoff(Duration::from_millis(20), Duration::from_millis(200))
                .attempt_timeout(Duration::from_secs(1))
                .deadline(Duration::from_secs(30)),
        );
    let cancels = lro.handle();
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let mut client = deploy(&lro, &channel);
        callers.spawn(async move {
            let (duration_ms, give_up) = plan(i);
            let call = client.create_release(create(&format!("c{i}"), duration_ms));
            match give_up {
                Some(after) => tokio::time::timeout(after, call).await.is_ok(),
                None => call.await.is_ok_and(|r| r.into_inner().done),
            }
        });
    }
    let mut finished = 0;
    while let Some(result) = callers.join_next().await {
        finished += usize::from(result.expect("no caller panics"));
    }
    let report = cancels.drain(Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    assert!(report.is_complete(), "{report:?}");

    // The server's view: each operation by its release id.
    let by_release: HashMap<usize, String> = server
        .requests_to(Endpoint::Start)
        .iter()
        .filter_map(|r| {
            let message = r.body.get(5..)?;
            let id = CreateReleaseRequest::decode(message).ok()?.release_id;
            Some((id.strip_prefix('c')?.parse().ok()?, r.operation.clone()?))
        })
        .collect();
    assert_eq!(by_release.len(), CALLS);
    let cancel_log = server.requests_to(Endpoint::Cancel);
    let faulted = cancel_log.iter().filter(|r| r.fault.is_some()).count();
    let mut abandoned = 0;
    for (i, name) in &by_release {
        let accepted = cancel_log
            .iter()
            .filter(|r| r.operation.as_deref() == Some(name) && r.grpc_status == Some(0))
            .count();
        let op = server.operation(name).expect("not deleted");
        if plan(*i).1.is_some() {
            abandoned += 1;
            // At least once: an attempt past its timeout is retried even
            // if the server then accepts it.
            assert!(accepted >= 1, "{name}: an accepted cancel");
            assert_eq!(op["error"]["code"], 1, "{name} CANCELLED: {op}");
        } else {
            assert_eq!(accepted, 0, "{name} finished: no cancel");
            assert!(op.get("response").is_some(), "{name} succeeded: {op}");
        }
    }
    let stats = cancels.stats();
    println!(
        "grpc chaos: {CALLS} calls, {finished} finished, {abandoned} abandoned; \
         {} cancel attempts ({faulted} faulted, {:.1} %); stats {stats:?}; {elapsed:.2?}",
        cancel_log.len(),
        100.0 * faulted as f64 / cancel_log.len().max(1) as f64,
    );
    assert_eq!(finished, CALLS - abandoned);
    assert_eq!(stats.fired, abandoned as u64);
    assert_eq!(stats.accepted, abandoned as u64);
    assert_eq!(stats.failed + stats.shed + stats.lost + stats.unanswered, 0);
    assert!(faulted > 0);
}
