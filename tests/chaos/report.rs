//! The run's figures, printed: what the callers did, what the server
//! received and faulted, what the layer sent and saw, and how long it took.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tower_lro::CancelStats;
use tower_lro_testing::FaultKind;

use crate::observe::{Attempt, AttemptOutcome, PANICS};
use crate::verdict::{Evidence, Tally};
use crate::{loss_rate, Chaos};

/// Counts derived from the evidence, for the report and the assertions.
pub(crate) struct Figures {
    /// Cancel attempts by what the layer saw: a status, `transport error`
    /// or `gave up`.
    by_outcome: BTreeMap<String, usize>,
    /// Latencies of the attempts the layer saw accepted, sorted.
    answered: Vec<Duration>,
    /// Faulted cancels the server received, by fault.
    faulted: BTreeMap<&'static str, usize>,
    /// CancelOperation requests the server received.
    pub(crate) cancels_received: usize,
    /// Of those, faulted.
    pub(crate) faulted_total: usize,
    /// `lro.cancel` spans by reason.
    reasons: BTreeMap<String, usize>,
    /// Operations the layer saw a cancel accepted for.
    pub(crate) accepted_ops: u64,
    /// Cancel attempts after each operation's first.
    pub(crate) retries: usize,
    /// Cancel attempts the layer sent.
    attempts_sent: usize,
}

fn fault_name(fault: &FaultKind) -> &'static str {
    match fault {
        FaultKind::Status(_) => "503",
        FaultKind::RetryAfter(..) => "429+Retry-After",
        FaultKind::Disconnect => "reset",
        FaultKind::Hang => "hang",
        _ => "other",
    }
}

impl Figures {
    pub(crate) fn new(evidence: &Evidence<'_>, attempts: &[Attempt]) -> Self {
        let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
        let mut answered: Vec<Duration> = Vec::new();
        for a in attempts {
            let key = match a.outcome {
                AttemptOutcome::Status(s) => s.to_string(),
                AttemptOutcome::Transport => "transport error".to_owned(),
                AttemptOutcome::GaveUp => "gave up".to_owned(),
            };
            *by_outcome.entry(key).or_default() += 1;
            if let AttemptOutcome::Status(200..=299) = a.outcome {
                answered.push(a.elapsed);
            }
        }
        answered.sort();
        let mut faulted: BTreeMap<&str, usize> = BTreeMap::new();
        for r in evidence.received.values().flatten() {
            if let Some(fault) = &r.fault {
                *faulted.entry(fault_name(fault)).or_default() += 1;
            }
        }
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for reason in evidence.reasons.values() {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
        Figures {
            by_outcome,
            answered,
            cancels_received: evidence.received.values().map(Vec::len).sum(),
            faulted_total: faulted.values().sum(),
            faulted,
            reasons,
            accepted_ops: evidence
                .sent
                .keys()
                .filter(|name| evidence.seen_accepted(name))
                .count() as u64,
            retries: evidence.sent.values().map(|a| a.len() - 1).sum(),
            attempts_sent: attempts.len(),
        }
    }

    /// The accepted-attempt latency at quantile `p` (0–1).
    fn percentile(&self, p: f64) -> Duration {
        let answered = &self.answered;
        answered
            .get(((answered.len() as f64 * p) as usize).min(answered.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

/// The loss bound for the fast policy: of `abandoned` cancels, each lost
/// with probability `p = f^k`: `p·A + 4·√(p·A)`. Returns `(p·A, bound)`.
pub(crate) fn loss_bound(fault_rate: f64, attempts_per_cancel: u32, abandoned: u64) -> (f64, f64) {
    let p = loss_rate(fault_rate, attempts_per_cancel);
    let expected_lost = p * abandoned as f64;
    (expected_lost, expected_lost + 4.0 * expected_lost.sqrt())
}

/// The server side of the run: requests by endpoint, and operations created.
pub(crate) struct ServerCounts {
    pub(crate) requests: usize,
    pub(crate) starts: usize,
    pub(crate) polls: usize,
    pub(crate) operations: usize,
}

/// How long the run took: in all, until every caller was done, and the drain.
pub(crate) struct Timings {
    pub(crate) wall: Duration,
    pub(crate) callers: Duration,
    pub(crate) drain: Duration,
}

/// Prints the run's figures to stderr (shown with `--nocapture`).
pub(crate) fn print(
    chaos: &Chaos,
    tally: &Tally,
    figures: &Figures,
    server: &ServerCounts,
    attempts_per_cancel: u32,
    stats: &CancelStats,
    timings: &Timings,
) {
    let Tally {
        phases,
        abandoned,
        not_created,
        finished,
        cancelled,
        left_running,
        unreceived_attempts,
        accepted_late,
        ..
    } = tally;
    eprintln!(
        "\n=== chaos: {} operations, seed {:#x}, {}{}, {:.0} % of cancel attempts faulted ===",
        chaos.operations,
        chaos.seed,
        if chaos.http2 {
            "one HTTP/2 connection"
        } else {
            "HTTP/1.1"
        },
        if chaos.verify {
            ", cancels verified"
        } else {
            ""
        },
        chaos.fault_rate * 100.0
    );
    eprintln!("callers by the state they were dropped in: {phases:?}");
    eprintln!(
        "operations created {}: finished {finished}, abandoned {abandoned} \
         (+ {not_created} callers dropped before their Start reached the server)",
        server.operations
    );
    let (expected_lost, max_lost) = loss_bound(chaos.fault_rate, attempts_per_cancel, *abandoned);
    let fault_rate = chaos.fault_rate;
    eprintln!(
        "abandoned operations: cancelled {cancelled}; left running {left_running} (each after \
         all {attempts_per_cancel} attempts faulted; expected p·A = {fault_rate}^{attempts_per_cancel} \
         × {abandoned} = {expected_lost:.1}, bound {max_lost:.1}); delivered {:.2} %; \
         their attempts given up on before reaching the server: {unreceived_attempts}",
        100.0 * *cancelled as f64 / (*abandoned).max(1) as f64
    );
    eprintln!(
        "requests received: {} ({} Start, {} GetOperation, {} CancelOperation, \
         {} of them faulted: {:?})",
        server.requests,
        server.starts,
        server.polls,
        figures.cancels_received,
        figures.faulted_total,
        figures.faulted
    );
    eprintln!(
        "cancel attempts sent {} (retries {}), by what the layer saw: {:?}; \
         accepted by the server after the layer gave up on the attempt: {accepted_late}",
        figures.attempts_sent, figures.retries, figures.by_outcome
    );
    eprintln!(
        "accepted cancel latency: p50 {:.0?}, p99 {:.0?}, max {:.0?}",
        figures.percentile(0.5),
        figures.percentile(0.99),
        figures.percentile(1.0)
    );
    eprintln!("lro.cancel spans by reason: {:?}", figures.reasons);
    eprintln!("stats: {stats:?}");
    eprintln!(
        "wall time {:.2?} (callers {:.2?}, then drain {:.2?}); panics {}",
        timings.wall,
        timings.callers,
        timings.drain,
        PANICS.load(Ordering::SeqCst)
    );
}
