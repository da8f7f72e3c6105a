//! The OpenTelemetry instruments (semantic conventions for RPC metrics:
//! `rpc.system`, `rpc.service`, `rpc.method`, `server.address`,
//! `server.port`; durations in seconds). Never the operation name: every
//! attribute has few values.
//!
//! The counters are observable (asynchronous) instruments: a tracked call
//! or a cancel looks its attribute set's series up once, each event is an
//! atomic add on it, and the reader reads the series when it collects.
//! The histograms are recorded once per operation or cancel.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};

use opentelemetry::metrics::{AsyncInstrument, Histogram, Meter};
use tokio::time::Instant;

use super::series::{settled_name, CallSeries, Registry};
use super::Finished;
use crate::cancel::{CancelOutcome, Reason};
use crate::protocol::{Rpc, Target};

/// The name and version of the instrumentation scope.
pub(crate) const SCOPE: &str = "tower-lro";

/// Boundaries of the duration histograms, in seconds: from 5 ms (a cancel
/// on loopback) to an hour (a long operation).
const SECONDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Boundaries of the polls-per-operation histogram.
const POLLS: [f64; 12] = [
    0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0, 89.0, 144.0,
];

/// The layer's instruments, once a `Meter` is given: set once per
/// [`CancelHandle`](crate::CancelHandle), like its counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics(OnceLock<Arc<Instruments>>);

/// The histograms, recorded once per operation or cancel, and the series
/// the observable counters report.
#[derive(Debug)]
pub(crate) struct Instruments {
    duration: Histogram<f64>,
    polls_per_operation: Histogram<u64>,
    cancel_duration: Histogram<f64>,
    series: Arc<Registry>,
}

/// Registers an observable counter `name` read from `series` by `read`.
fn observe_u64(
    meter: &Meter,
    series: &Arc<Registry>,
    (name, unit, description): (&'static str, &'static str, &'static str),
    read: fn(&Registry, &dyn AsyncInstrument<u64>),
) {
    let series = series.clone();
    meter
        .u64_observable_counter(name)
        .with_unit(unit)
        .with_description(description)
        .with_callback(move |observer| read(&series, observer))
        .build();
}

/// Registers an observable up/down counter `name` read from `series`.
fn observe_i64(
    meter: &Meter,
    series: &Arc<Registry>,
    (name, unit, description): (&'static str, &'static str, &'static str),
    read: fn(&Registry, &dyn AsyncInstrument<i64>),
) {
    let series = series.clone();
    meter
        .i64_observable_up_down_counter(name)
        .with_unit(unit)
        .with_description(description)
        .with_callback(move |observer| read(&series, observer))
        .build();
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let series = Arc::new(Registry::default());
        let s = &series;
        observe_u64(meter, s, TRACKED, Registry::observe_tracked);
        observe_u64(meter, s, FINISHED, Registry::observe_finished);
        observe_u64(meter, s, POLLED, Registry::observe_polls);
        observe_i64(meter, s, WAITING, Registry::observe_waiting);
        observe_u64(meter, s, FIRED, Registry::observe_fired);
        observe_u64(meter, s, SETTLED, Registry::observe_settled);
        observe_u64(meter, s, LEFT_RUNNING, Registry::observe_left_running);
        observe_i64(meter, s, PENDING, Registry::observe_pending);
        let seconds = || SECONDS.to_vec();
        Instruments {
            duration: meter
                .f64_histogram("lro.operation.duration")
                .with_unit("s")
                .with_description("Time from an operation becoming known to the end of the wait.")
                .with_boundaries(seconds())
                .build(),
            polls_per_operation: meter
                .u64_histogram("lro.operation.polls")
                .with_unit("{poll}")
                .with_description("GetOperation/WaitOperation requests sent per operation.")
                .with_boundaries(POLLS.to_vec())
                .build(),
            cancel_duration: meter
                .f64_histogram("lro.cancel.duration")
                .with_unit("s")
                .with_description("Time from a cancel being fired to its outcome.")
                .with_boundaries(seconds())
                .build(),
            series,
        }
    }
}

/// Name, unit and description of each counter.
type About = (&'static str, &'static str, &'static str);
const TRACKED: About = (
    "lro.operations.tracked",
    "{operation}",
    "Operations the layer started waiting on.",
);
const FINISHED: About = (
    "lro.operations.finished",
    "{operation}",
    "Operations the layer stopped waiting on, by outcome.",
);
const POLLED: About = (
    "lro.polls",
    "{poll}",
    "GetOperation and WaitOperation requests sent.",
);
const WAITING: About = (
    "lro.calls.waiting",
    "{call}",
    "Calls waiting on an operation now.",
);
const FIRED: About = (
    "lro.cancels.fired",
    "{cancel}",
    "CancelOperation requests decided on, by reason.",
);
const SETTLED: About = (
    "lro.cancels.settled",
    "{cancel}",
    "Cancels that reached an outcome, by outcome.",
);
const LEFT_RUNNING: About = (
    "lro.operations.left_running",
    "{operation}",
    "Operations whose cancel was fired but never accepted: they may still run.",
);
const PENDING: About = (
    "lro.cancels.pending",
    "{cancel}",
    "Cancels fired and not settled now: sending, backing off or queued.",
);

impl Metrics {
    /// Creates the instruments on `meter`, unless this handle has them.
    pub(crate) fn install(&self, meter: &Meter) {
        let _ = self.0.get_or_init(|| Arc::new(Instruments::new(meter)));
    }

    /// The same instruments as `other` (a new handle for the same layer).
    pub(crate) fn inherit(&self, other: &Metrics) {
        if let Some(instruments) = other.0.get() {
            let _ = self.0.set(instruments.clone());
        }
    }

    #[inline]
    fn get(&self) -> Option<&Arc<Instruments>> {
        self.0.get()
    }

    /// A call starts waiting on `target`'s operation; `origin` is its
    /// request's URI (a gRPC call's path names its service and method).
    #[inline]
    pub(crate) fn call(&self, target: &Target, origin: &http::Uri) -> Option<CallMetrics> {
        let instruments = self.get()?.clone();
        let series = instruments.series.call(target, origin);
        Some(CallMetrics {
            instruments,
            series,
            since: Instant::now(),
            waiting: true,
        })
    }

    /// A GetOperation or WaitOperation was sent for a call not tracked
    /// here (a cancel's verification).
    #[inline]
    pub(crate) fn poll(&self, target: &Target, rpc: Rpc) {
        if let Some(m) = self.get() {
            m.series.target(target).poll(rpc);
        }
    }

    /// A cancel was fired (admitted or shed after).
    #[inline]
    pub(crate) fn cancel_fired(&self, target: &Target, reason: Reason) {
        if let Some(m) = self.get() {
            m.series.target(target).fired.add(reason.as_str());
        }
    }

    /// A fired cancel was queued for delivery.
    #[inline]
    pub(crate) fn cancel_queued(&self) {
        if let Some(m) = self.get() {
            m.series.pending.fetch_add(1, Relaxed);
            if !m.series.pending_changed.load(Relaxed) {
                m.series.pending_changed.store(true, Relaxed);
            }
        }
    }

    /// A queued cancel left the queue (settled or lost).
    #[inline]
    pub(crate) fn cancel_unqueued(&self) {
        if let Some(m) = self.get() {
            m.series.pending.fetch_sub(1, Relaxed);
        }
    }

    /// A fired cancel was shed: the queue was full.
    #[inline]
    pub(crate) fn cancel_shed(&self, target: &Target) {
        self.unsent(target, "shed");
    }

    /// A queued cancel was dropped unsent: its runtime shut down.
    #[inline]
    pub(crate) fn cancel_lost(&self, target: &Target) {
        self.unsent(target, "lost");
    }

    fn unsent(&self, target: &Target, outcome: &'static str) {
        if let Some(m) = self.get() {
            let series = m.series.target(target);
            series.settled.add(outcome);
            series.left_running.fetch_add(1, Relaxed);
        }
    }

    /// A cancel fired at `fired` settled with `outcome`.
    #[inline]
    pub(crate) fn cancel_settled(&self, target: &Target, outcome: CancelOutcome, fired: Instant) {
        let Some(m) = self.get() else { return };
        let series = m.series.target(target);
        series.settled.add(settled_name(outcome));
        m.cancel_duration
            .record(fired.elapsed().as_secs_f64(), &series.cancel);
        let left = matches!(
            outcome,
            CancelOutcome::Failed
                | CancelOutcome::Unimplemented
                | CancelOutcome::UnimplementedSkipped
        );
        if left {
            series.left_running.fetch_add(1, Relaxed);
        }
    }

    /// A call abandoned before its first response got no answer in time:
    /// an operation it started, if any, cannot be cancelled.
    #[inline]
    pub(crate) fn unanswered(&self) {
        if let Some(m) = self.get() {
            m.series.unanswered.fetch_add(1, Relaxed);
        }
    }
}

/// One tracked call's series and start, while it waits.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    instruments: Arc<Instruments>,
    series: Arc<CallSeries>,
    since: Instant,
    /// Still counted in `lro.calls.waiting`.
    waiting: bool,
}

impl CallMetrics {
    /// The call sent a GetOperation or WaitOperation.
    #[inline]
    pub(crate) fn poll(&self, rpc: Rpc) {
        self.series.target.poll(rpc);
    }

    /// The wait ended: how, after `polls` polls.
    pub(crate) fn finished(mut self, how: Finished, polls: u32) {
        self.leave();
        self.record(how, polls, self.since.elapsed());
    }

    fn record(&self, how: Finished, polls: u32, waited: std::time::Duration) {
        let m = &self.instruments;
        let attributes = &self.series.attributes;
        m.duration.record(waited.as_secs_f64(), attributes);
        m.polls_per_operation.record(u64::from(polls), attributes);
        self.series.finished(how);
    }

    fn leave(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.instruments.series.waiting.fetch_sub(1, Relaxed);
        }
    }

    /// The layer gave up and fires a cancel for `reason`: the call stops
    /// counting as waiting now (an atomic); the rest is recorded off the
    /// caller's path, by the cancel's delivery ([`GaveUp::record`]).
    pub(crate) fn gave_up(mut self, reason: Reason, polls: u32) -> GaveUp {
        self.leave();
        GaveUp {
            call: self,
            reason,
            polls,
        }
    }
}

impl Drop for CallMetrics {
    fn drop(&mut self) {
        self.leave();
    }
}

/// What a call that gave up still has to record: its end and its cancel's
/// firing, done by the delivery (first attempt, or settling, or loss).
#[derive(Debug)]
pub(crate) struct GaveUp {
    call: CallMetrics,
    reason: Reason,
    polls: u32,
}

impl GaveUp {
    /// Records `lro.operations.finished` (`gave_up`), the wait's duration
    /// (to `ended`: when the cancel was fired, the same instant as the
    /// call's drop) and polls, and `lro.cancels.fired` for the cancel of
    /// the call's operation.
    pub(crate) fn record(self, ended: Instant) {
        let waited = ended.saturating_duration_since(self.call.since);
        self.call.record(Finished::GaveUp, self.polls, waited);
        self.call.series.target.fired.add(self.reason.as_str());
    }
}
