//! 1,000 CreateRelease calls through the layer on one tonic `Channel`:
//! a third dropped once the server has their Start (its answer held back),
//! a third once the layer has read their first poll, a third left to
//! finish; 30 % of cancel attempts
//! faulted (UNAVAILABLE with a RetryInfo, RESOURCE_EXHAUSTED, a reset
//! stream, a hang). The server's log is the ground truth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_lro::{CancelOnDropLayer, CancelPolicy};
use tower_lro_testing::grpc::{CloudDeployClient, CreateReleaseRequest};
use tower_lro_testing::{Endpoint, Fault, FaultKind, RecordedRequest};

use crate::observe::{Attempt, Observed, Outcome};
use crate::support::{create, fast_polls, serve};

const CALLS: usize = 1_000;
/// The policy's attempts per cancel.
const ATTEMPTS: u32 = 10;
/// The share of cancel attempts the server faults.
const FAULT_RATE: f64 = 0.3;

/// When a caller gives up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GiveUp {
    /// As soon as the server has recorded its Start: before the answer,
    /// which the server holds back.
    StartArrived,
    /// As soon as the layer has read its first poll answer.
    FirstPoll,
    /// Never: its operation finishes.
    Never,
}

/// What each caller does, by `i % 3`: its operation's duration, and when
/// it gives up.
fn plan(i: usize) -> (u64, GiveUp) {
    match i % 3 {
        0 => (600_000, GiveUp::StartArrived),
        1 => (600_000, GiveUp::FirstPoll),
        _ => (100, GiveUp::Never),
    }
}

/// One-shot notifications by caller index.
type Signals = Arc<Mutex<HashMap<usize, oneshot::Sender<()>>>>;

fn signal(signals: &Signals, i: usize) {
    if let Some(tx) = signals.lock().unwrap().remove(&i) {
        let _ = tx.send(());
    }
}

fn subscribe(signals: &Signals, i: usize) -> oneshot::Receiver<()> {
    let (tx, rx) = oneshot::channel();
    signals.lock().unwrap().insert(i, tx);
    rx
}

/// The caller index in a CreateRelease body (`release_id` `c{i}`).
fn caller_of(body: &[u8]) -> Option<usize> {
    let id = CreateReleaseRequest::decode(body.get(5..)?)
        .ok()?
        .release_id;
    id.strip_prefix('c')?.parse().ok()
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
            rate: FAULT_RATE,
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
                .attempts(ATTEMPTS)
                .backoff(Duration::from_millis(20), Duration::from_millis(200))
                .attempt_timeout(Duration::from_secs(1))
                .deadline(Duration::from_secs(30)),
        );
    let cancels = lro.handle();
    // Between the layer and the channel: what reached the layer.
    let observed = Observed::new(channel.clone());
    // Drops on events, never on a timer: the server's notice that a Start
    // arrived, the layer's first poll answer (`on_progress`).
    let arrived: Signals = Signals::default();
    let hook = arrived.clone();
    server.on_request(move |r| {
        if r.endpoint == Endpoint::Start {
            caller_of(&r.body)
                .into_iter()
                .for_each(|i| signal(&hook, i));
        }
    });
    let started = Instant::now();
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..CALLS {
        let (duration_ms, give_up) = plan(i);
        let (polled, first_poll) = oneshot::channel();
        let polled = Mutex::new(Some(polled));
        let caller_layer = lro.clone().on_progress(move |_| {
            if let Some(tx) = polled.lock().unwrap().take() {
                let _ = tx.send(());
            }
        });
        let mut client = CloudDeployClient::new(
            ServiceBuilder::new()
                .layer(caller_layer)
                .service(observed.clone()),
        );
        let start_arrived = subscribe(&arrived, i);
        callers.spawn(async move {
            let call = client.create_release(create(&format!("c{i}"), duration_ms));
            let event = match give_up {
                GiveUp::Never => return call.await.is_ok_and(|r| r.into_inner().done),
                GiveUp::StartArrived => start_arrived,
                GiveUp::FirstPoll => first_poll,
            };
            tokio::select! {
                biased;
                _ = event => false,
                answered = call => answered.is_ok(),
            }
        });
    }
    // Every caller ends at an event or its 100 ms operation's end: 60 s
    // bounds a run that has stalled.
    let bound = Duration::from_secs(60);
    let mut finished = 0;
    tokio::time::timeout(bound, async {
        while let Some(result) = callers.join_next().await {
            finished += usize::from(result.expect("no caller panics"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited {bound:?} for the {CALLS} callers; {finished} finished"));
    // The policy's deadline (30 s) bounds every cancel.
    let report = cancels.drain(Duration::from_secs(60)).await;
    let elapsed = started.elapsed();
    assert!(
        report.is_complete(),
        "drain waited 60 s, past the 30 s cancel deadline: {report:?}"
    );

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
    let log = server.requests();
    let cancel_log = server.requests_to(Endpoint::Cancel);
    let seen = observed.by_operation();
    let (mut abandoned, mut sent, mut faulted, mut late) = (0, 0, 0, 0);
    for (i, name) in &by_release {
        let attempts = seen.get(name).map(Vec::as_slice).unwrap_or_default();
        let cancels = judge(&log, name, attempts);
        sent += cancels.sent;
        faulted += cancels.faulted;
        late += cancels.late;
        let op = server.operation(name).expect("not deleted");
        if plan(*i).1 != GiveUp::Never {
            abandoned += 1;
            assert_eq!(
                cancels.seen_ok, 1,
                "{name}: the layer read one OK: {cancels:?} {attempts:?}"
            );
            assert_eq!(op["error"]["code"], 1, "{name} CANCELLED: {op}");
        } else {
            assert_eq!(cancels.sent, 0, "{name} finished: no cancel at all");
            assert!(attempts.is_empty(), "{name} finished: {attempts:?}");
            assert!(op.get("response").is_some(), "{name} succeeded: {op}");
        }
    }
    assert_eq!(sent, cancel_log.len(), "a cancel for an unknown operation");
    let stats = cancels.stats();
    println!(
        "grpc chaos: {CALLS} calls, {finished} finished, {abandoned} abandoned; \
         {} cancel attempts ({faulted} faulted, {:.1} %); {late} OK answered after the layer \
         stopped waiting; stats {stats:?}; {elapsed:.2?}",
        cancel_log.len(),
        100.0 * faulted as f64 / cancel_log.len().max(1) as f64,
    );
    assert_eq!(finished, CALLS - abandoned);
    assert_eq!(stats.fired, abandoned as u64);
    assert_eq!(stats.accepted, abandoned as u64);
    assert_eq!(stats.failed + stats.shed + stats.lost + stats.unanswered, 0);
    // Every cancel past an operation's first was a retry.
    assert_eq!(
        stats.retried,
        (sent - abandoned) as u64,
        "retried = cancels - abandoned"
    );
    // The faulted share is the injected rate, within four standard
    // deviations of a binomial over the attempts sent.
    let share = faulted as f64 / sent as f64;
    let bound = 4.0 * (FAULT_RATE * (1.0 - FAULT_RATE) / sent as f64).sqrt();
    assert!(
        (share - FAULT_RATE).abs() <= bound,
        "faulted {faulted} of {sent} = {share:.3}, not {FAULT_RATE} +- {bound:.3}"
    );
}

/// One operation's cancels, from the server's log and from what reached
/// the layer.
#[derive(Debug)]
struct Cancels {
    /// CancelOperations the server received.
    sent: usize,
    /// Those the server faulted.
    faulted: usize,
    /// `OK`s the server answered after its first (each to an attempt the
    /// layer had stopped waiting for).
    late: usize,
    /// `OK`s the layer read.
    seen_ok: usize,
}

/// Judges `name`'s cancels: at most [`ATTEMPTS`]; nothing at the server the
/// layer did not send; the layer sends nothing after the `OK` it reads; an
/// `OK` the server answered past its first went to an attempt the layer
/// gave up on (its answer came after the attempt timeout) or lost in
/// transport, never to one whose `OK` the layer read.
fn judge(log: &[RecordedRequest], name: &str, attempts: &[Attempt]) -> Cancels {
    let mine: Vec<&RecordedRequest> = log
        .iter()
        .filter(|r| r.endpoint == Endpoint::Cancel && r.operation.as_deref() == Some(name))
        .collect();
    let answered_ok = mine.iter().filter(|r| r.grpc_status == Some(0)).count();
    let unseen = attempts
        .iter()
        .filter(|a| matches!(a.outcome, Outcome::GaveUp | Outcome::Transport))
        .count();
    let cancels = Cancels {
        sent: mine.len(),
        faulted: mine.iter().filter(|r| r.fault.is_some()).count(),
        late: answered_ok.saturating_sub(1),
        seen_ok: attempts
            .iter()
            .filter(|a| a.outcome == Outcome::Status(0))
            .count(),
    };
    let context = || format!("{name}: {cancels:?}, the layer's attempts {attempts:?}");
    assert!(attempts.len() <= ATTEMPTS as usize, "{}", context());
    assert!(mine.len() <= attempts.len(), "{}", context());
    if let Some(ok) = attempts
        .iter()
        .position(|a| a.outcome == Outcome::Status(0))
    {
        assert_eq!(
            ok + 1,
            attempts.len(),
            "a cancel after the OK the layer read: {}",
            context()
        );
    }
    assert!(cancels.late <= unseen, "{}", context());
    cancels
}
