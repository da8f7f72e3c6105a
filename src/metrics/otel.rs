//! The OpenTelemetry instruments (semantic conventions for RPC metrics:
//! `rpc.system`, `rpc.service`, `rpc.method`, `server.address`,
//! `server.port`; durations in seconds). Never the operation name: every
//! attribute has few values.

use std::sync::{Arc, OnceLock};

use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use opentelemetry::KeyValue;
use tokio::time::Instant;

use super::Finished;
use crate::cancel::{CancelOutcome, Reason};
use crate::protocol::{Protocol, Rpc, Target};

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

#[derive(Debug)]
pub(crate) struct Instruments {
    tracked: Counter<u64>,
    finished: Counter<u64>,
    duration: Histogram<f64>,
    polls_per_operation: Histogram<u64>,
    polls: Counter<u64>,
    waiting: UpDownCounter<i64>,
    fired: Counter<u64>,
    settled: Counter<u64>,
    left_running: Counter<u64>,
    cancel_duration: Histogram<f64>,
    pending: UpDownCounter<i64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let seconds = || SECONDS.to_vec();
        Instruments {
            tracked: meter
                .u64_counter("lro.operations.tracked")
                .with_unit("{operation}")
                .with_description("Operations the layer started waiting on.")
                .build(),
            finished: meter
                .u64_counter("lro.operations.finished")
                .with_unit("{operation}")
                .with_description("Operations the layer stopped waiting on, by outcome.")
                .build(),
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
            polls: meter
                .u64_counter("lro.polls")
                .with_unit("{poll}")
                .with_description("GetOperation and WaitOperation requests sent.")
                .build(),
            waiting: meter
                .i64_up_down_counter("lro.calls.waiting")
                .with_unit("{call}")
                .with_description("Calls waiting on an operation now.")
                .build(),
            fired: meter
                .u64_counter("lro.cancels.fired")
                .with_unit("{cancel}")
                .with_description("CancelOperation requests decided on, by reason.")
                .build(),
            settled: meter
                .u64_counter("lro.cancels.settled")
                .with_unit("{cancel}")
                .with_description("Cancels that reached an outcome, by outcome.")
                .build(),
            left_running: meter
                .u64_counter("lro.operations.left_running")
                .with_unit("{operation}")
                .with_description(
                    "Operations whose cancel was fired but never accepted: they may still run.",
                )
                .build(),
            cancel_duration: meter
                .f64_histogram("lro.cancel.duration")
                .with_unit("s")
                .with_description("Time from a cancel being fired to its outcome.")
                .with_boundaries(seconds())
                .build(),
            pending: meter
                .i64_up_down_counter("lro.cancels.pending")
                .with_unit("{cancel}")
                .with_description(
                    "Cancels fired and not settled now: sending, backing off or queued.",
                )
                .build(),
        }
    }
}

/// `rpc.system`, `server.address` and `server.port` of a target; with
/// `rpc.service` and `rpc.method` for a gRPC call's own method.
fn target_attributes(target: &Target, capacity: usize) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(capacity + 3);
    let system = match target.protocol() {
        Protocol::Rest => "http",
        Protocol::Grpc => "grpc",
    };
    attributes.push(KeyValue::new("rpc.system", system));
    let authority = target.authority();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
            (host, port.parse::<i64>().ok())
        }
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    attributes.push(KeyValue::new("server.address", host.to_owned()));
    if let Some(port) = port {
        attributes.push(KeyValue::new("server.port", port));
    }
    attributes
}

/// The attributes of a cancel: the target's, and the Operations service's
/// method over gRPC.
fn cancel_attributes(target: &Target, extra: KeyValue) -> Vec<KeyValue> {
    let mut attributes = target_attributes(target, 3);
    if target.protocol() == Protocol::Grpc {
        attributes.push(KeyValue::new("rpc.service", OPERATIONS));
        attributes.push(KeyValue::new("rpc.method", Rpc::Cancel.as_str()));
    }
    attributes.push(extra);
    attributes
}

const OPERATIONS: &str = "google.longrunning.Operations";

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
        let mut attributes = target_attributes(target, 2);
        if target.protocol() == Protocol::Grpc {
            let path = origin.path().trim_start_matches('/');
            if let Some((service, method)) = path.split_once('/') {
                attributes.push(KeyValue::new("rpc.service", service.to_owned()));
                attributes.push(KeyValue::new("rpc.method", method.to_owned()));
            }
        }
        instruments.tracked.add(1, &attributes);
        instruments.waiting.add(1, &[]);
        Some(CallMetrics {
            instruments,
            attributes,
            since: Instant::now(),
            waiting: true,
        })
    }

    /// A GetOperation or WaitOperation was sent.
    #[inline]
    pub(crate) fn poll(&self, target: &Target, rpc: Rpc) {
        if let Some(m) = self.get() {
            let mut attributes = target_attributes(target, 2);
            if target.protocol() == Protocol::Grpc {
                attributes.push(KeyValue::new("rpc.service", OPERATIONS));
            }
            attributes.push(KeyValue::new("rpc.method", rpc.as_str()));
            m.polls.add(1, &attributes);
        }
    }

    /// A cancel was fired (admitted or shed after).
    #[inline]
    pub(crate) fn cancel_fired(&self, target: &Target, reason: Reason) {
        if let Some(m) = self.get() {
            let reason = KeyValue::new("lro.cancel.reason", reason.as_str());
            m.fired.add(1, &cancel_attributes(target, reason));
        }
    }

    /// A fired cancel was queued for delivery.
    #[inline]
    pub(crate) fn cancel_queued(&self) {
        if let Some(m) = self.get() {
            m.pending.add(1, &[]);
        }
    }

    /// A queued cancel left the queue (settled or lost).
    #[inline]
    pub(crate) fn cancel_unqueued(&self) {
        if let Some(m) = self.get() {
            m.pending.add(-1, &[]);
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
            let attributes =
                cancel_attributes(target, KeyValue::new("lro.cancel.outcome", outcome));
            m.settled.add(1, &attributes);
            m.left_running.add(1, &attributes[..attributes.len() - 1]);
        }
    }

    /// A cancel fired at `fired` settled with `outcome`.
    #[inline]
    pub(crate) fn cancel_settled(&self, target: &Target, outcome: CancelOutcome, fired: Instant) {
        let Some(m) = self.get() else { return };
        let name = match outcome {
            CancelOutcome::UnimplementedSkipped => "unimplemented",
            other => other.as_str(),
        };
        let attributes = cancel_attributes(target, KeyValue::new("lro.cancel.outcome", name));
        m.settled.add(1, &attributes);
        let base = &attributes[..attributes.len() - 1];
        m.cancel_duration
            .record(fired.elapsed().as_secs_f64(), base);
        let left = matches!(
            outcome,
            CancelOutcome::Failed
                | CancelOutcome::Unimplemented
                | CancelOutcome::UnimplementedSkipped
        );
        if left {
            m.left_running.add(1, base);
        }
    }

    /// A call abandoned before its first response got no answer in time:
    /// an operation it started, if any, cannot be cancelled.
    #[inline]
    pub(crate) fn unanswered(&self) {
        if let Some(m) = self.get() {
            m.settled
                .add(1, &[KeyValue::new("lro.cancel.outcome", "unanswered")]);
        }
    }
}

/// One tracked call's attributes and start, while it waits.
#[derive(Debug)]
pub(crate) struct CallMetrics {
    instruments: Arc<Instruments>,
    attributes: Vec<KeyValue>,
    since: Instant,
    /// Still counted in `lro.calls.waiting`.
    waiting: bool,
}

impl CallMetrics {
    /// The wait ended: how, after `polls` polls.
    pub(crate) fn finished(mut self, how: Finished, polls: u32) {
        self.leave();
        self.record(how, polls, self.since.elapsed());
    }

    fn record(&self, how: Finished, polls: u32, waited: std::time::Duration) {
        let m = &self.instruments;
        m.duration.record(waited.as_secs_f64(), &self.attributes);
        m.polls_per_operation
            .record(u64::from(polls), &self.attributes);
        let mut attributes = self.attributes.clone();
        attributes.push(KeyValue::new("lro.operation.outcome", how.as_str()));
        m.finished.add(1, &attributes);
    }

    fn leave(&mut self) {
        if std::mem::take(&mut self.waiting) {
            self.instruments.waiting.add(-1, &[]);
        }
    }

    /// The layer gave up and fires a cancel for `reason`: the call stops
    /// counting as waiting now (an atomic, no attributes); the rest is
    /// recorded off the caller's path, by the cancel's delivery
    /// ([`GaveUp::record`]).
    pub(crate) fn gave_up(mut self, reason: Reason, polls: u32) -> GaveUp {
        self.leave();
        GaveUp {
            waited: self.since.elapsed(),
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
    waited: std::time::Duration,
}

impl GaveUp {
    /// Records `lro.operations.finished` (`gave_up`), the wait's duration
    /// and polls, and `lro.cancels.fired` for the cancel of `target`.
    pub(crate) fn record(self, target: &Target) {
        self.call.record(Finished::GaveUp, self.polls, self.waited);
        let reason = KeyValue::new("lro.cancel.reason", self.reason.as_str());
        self.call
            .instruments
            .fired
            .add(1, &cancel_attributes(target, reason));
    }
}
