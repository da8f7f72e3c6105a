//! The run's parts: the faulty server, the cancel policy in use, the client
//! stack that records cancel attempts, and the drain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower_lro::{CancelHandle, CancelOnDropLayer, CancelPolicy, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, FaultKind, OperationsServer, RecordedRequest};

use crate::callers::{Arrivals, Stack};
use crate::observe::{Attempt, Observed};
use crate::{Chaos, ATTEMPTS, RETRY_AFTER, START_HOLD};

/// Whether to run the default `CancelPolicy` rather than the suite's fast one.
pub(crate) fn default_policy() -> bool {
    std::env::var_os("CHAOS_FAST_CANCEL_POLICY").is_none()
}

/// The number of requests one cancel may send under `policy` (its
/// `attempts`), read from its `Debug`, so that every bound below follows
/// the policy actually in use.
pub(crate) fn policy_attempts(policy: &CancelPolicy) -> u32 {
    let debug = format!("{policy:?}");
    debug
        .split_once("attempts: ")
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `attempts` in the policy's Debug: {debug}"))
}

/// The server: every Start's answer held back [`START_HOLD`], a seeded
/// `fault_rate` of cancels faulted (503, 429 with `Retry-After`, a reset,
/// a hang), and `arrivals` told of each Start as it is recorded.
pub(crate) fn chaos_server(seed: u64, fault_rate: f64, arrivals: &Arrivals) -> OperationsServer {
    let server = OperationsServer::new();
    server.inject(
        Endpoint::Start,
        Fault::Always(FaultKind::LateAnswer(START_HOLD)),
    );
    server.inject(
        Endpoint::Cancel,
        Fault::Random {
            rate: fault_rate,
            faults: vec![
                FaultKind::Status(StatusCode::SERVICE_UNAVAILABLE),
                FaultKind::RetryAfter(StatusCode::TOO_MANY_REQUESTS, RETRY_AFTER),
                FaultKind::Disconnect,
                FaultKind::Hang,
            ],
            seed,
        },
    );
    arrivals.notify_from(&server);
    server
}

/// The default `CancelPolicy`, or (`CHAOS_FAST_CANCEL_POLICY`) the suite's
/// fast one; with the run's concurrency and verification.
pub(crate) fn cancel_policy(chaos: &Chaos) -> CancelPolicy {
    let policy = if default_policy() {
        // Retries until a 60 s deadline, 200 ms ×2 backoff (≤ 5 s), 3 s per attempt.
        CancelPolicy::new()
    } else {
        CancelPolicy::new()
            .attempts(ATTEMPTS)
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            // A hung attempt is abandoned after this; the next one is a retry.
            .attempt_timeout(Duration::from_secs(1))
            .deadline(Duration::from_secs(10))
    }
    .concurrency(chaos.concurrency.0, chaos.concurrency.1);
    if chaos.verify {
        policy.verify(Duration::from_secs(10))
    } else {
        policy
    }
}

/// `CancelOnDropLayer` with `policy` over a hyper-util client (HTTP/2 only,
/// or HTTP/1) that records each cancel attempt: the stack, its cancel
/// handle, and the attempts.
pub(crate) fn client_stack(
    chaos: &Chaos,
    policy: CancelPolicy,
) -> (Stack, CancelHandle, Arc<Mutex<Vec<Attempt>>>) {
    let layer = CancelOnDropLayer::new()
        .poll_policy(
            PollPolicy::new()
                .initial_delay(Duration::from_millis(30))
                .multiplier(1.5)
                .max_delay(Duration::from_millis(150)),
        )
        .cancel_policy(policy);
    let cancels = layer.handle();
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let client = Observed {
        client: Client::builder(TokioExecutor::new())
            .http2_only(chaos.http2)
            .build_http(),
        attempts: Arc::clone(&attempts),
    };
    let svc = tower::ServiceBuilder::new().layer(layer).service(client);
    (svc, cancels, attempts)
}

/// Waits until every cancel, and every call abandoned in flight, has
/// finished, and every request has been answered: how long the drain took.
///
/// The drain's bound, from the run: the last cancel may start only after
/// every one fired before it held a slot for a whole attempt timeout (3 s),
/// `max_in_flight` (64) at a time, and then retries for the policy's 60 s.
pub(crate) async fn drain(server: &OperationsServer, cancels: &CancelHandle) -> Duration {
    let drain_started = Instant::now();
    let fired = cancels.stats().fired as u32;
    let bound = Duration::from_secs(3) * fired.div_ceil(64) + Duration::from_secs(60);
    let report = cancels.drain(bound).await;
    let drain_time = drain_started.elapsed();
    assert!(
        report.is_complete(),
        "drain waited {bound:?} (the backlog of {fired} cancels, then the deadline) and left work: {report:?}"
    );
    // Hung requests end when their client gives up (a stream reset).
    server
        .wait_for(Duration::from_secs(10), |log| {
            log.iter().all(RecordedRequest::is_answered)
        })
        .await
        .expect("every request answered, or given up on by the client");
    drain_time
}
