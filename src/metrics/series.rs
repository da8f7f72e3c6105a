//! The counters' values, kept as atomics per attribute set: a small map
//! from a target (and a gRPC call's method) to its series, looked up once
//! per tracked call or cancel, so that counting an event is an atomic add.
//! The attribute slices are built once per series. The observable
//! instruments read them when the reader collects (see `otel`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::metrics::AsyncInstrument;
use opentelemetry::KeyValue;

use super::Finished;
use crate::cancel::{CancelOutcome, Reason};
use crate::protocol::{server_address, Protocol, Rpc, Target};

/// The Operations service's name, the `rpc.service` of polls and cancels.
const OPERATIONS: &str = "google.longrunning.Operations";

/// Counts by the value of one attribute, from a fixed list of values.
#[derive(Debug)]
pub(super) struct ByValue {
    key: &'static str,
    values: Vec<&'static str>,
    counts: Vec<AtomicU64>,
}

impl ByValue {
    fn new(key: &'static str, values: impl IntoIterator<Item = &'static str>) -> Self {
        let values: Vec<_> = values.into_iter().collect();
        let counts = values.iter().map(|_| AtomicU64::new(0)).collect();
        ByValue {
            key,
            values,
            counts,
        }
    }

    /// Counts one event with `value` (one of the list's).
    pub(super) fn add(&self, value: &str) {
        let at = self.values.iter().position(|v| *v == value);
        debug_assert!(at.is_some(), "{}={value} is not counted", self.key);
        if let Some(count) = at.and_then(|at| self.counts.get(at)) {
            count.fetch_add(1, Relaxed);
        }
    }

    /// Observes each value counted so far, with `base` and its attribute.
    fn observe(&self, base: &[KeyValue], observer: &dyn AsyncInstrument<u64>) {
        for (value, count) in self.values.iter().zip(&self.counts) {
            let n = count.load(Relaxed);
            if n > 0 {
                observer.observe(n, &with(base, KeyValue::new(self.key, *value)));
            }
        }
    }
}

fn with(base: &[KeyValue], extra: KeyValue) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(base.len() + 1);
    attributes.extend_from_slice(base);
    attributes.push(extra);
    attributes
}

fn observe_count(count: &AtomicU64, attributes: &[KeyValue], observer: &dyn AsyncInstrument<u64>) {
    let n = count.load(Relaxed);
    if n > 0 {
        observer.observe(n, attributes);
    }
}

/// The values of `lro.cancels.settled`'s `lro.cancel.outcome` for a target.
const SETTLED: [&str; 8] = [
    "accepted",
    "verified_cancelled",
    "completed_anyway",
    "not_found",
    "unimplemented",
    "failed",
    "shed",
    "lost",
];

/// The name `lro.cancel.outcome` gives `outcome` (both kinds of
/// UNIMPLEMENTED are one).
pub(super) fn settled_name(outcome: CancelOutcome) -> &'static str {
    match outcome {
        CancelOutcome::UnimplementedSkipped => "unimplemented",
        other => other.as_str(),
    }
}

/// One target's series: polls and cancels.
#[derive(Debug)]
pub(super) struct TargetSeries {
    protocol: Protocol,
    authority: String,
    /// `rpc.system`, `server.address`, `server.port`.
    attributes: Vec<KeyValue>,
    /// The target's, with the Operations service and `CancelOperation`
    /// over gRPC.
    pub(super) cancel: Vec<KeyValue>,
    /// Polls' base attributes (the Operations service over gRPC).
    poll_base: Vec<KeyValue>,
    polls: ByValue,
    pub(super) fired: ByValue,
    pub(super) settled: ByValue,
    pub(super) left_running: AtomicU64,
    calls: Mutex<Vec<Arc<CallSeries>>>,
}

impl TargetSeries {
    fn new(target: &Target) -> Self {
        let protocol = target.protocol();
        let attributes = target_attributes(target);
        let (mut cancel, mut poll_base) = (attributes.clone(), attributes.clone());
        if protocol == Protocol::Grpc {
            cancel.push(KeyValue::new("rpc.service", OPERATIONS));
            cancel.push(KeyValue::new("rpc.method", Rpc::Cancel.as_str()));
            poll_base.push(KeyValue::new("rpc.service", OPERATIONS));
        }
        let polls = [Rpc::Get, Rpc::Wait(std::time::Duration::ZERO)].map(Rpc::as_str);
        let reasons = [
            Reason::Dropped,
            Reason::Deadline,
            Reason::PollFailed,
            Reason::DroppedInFlight,
            Reason::Explicit,
            Reason::Reaped,
            Reason::Shutdown,
        ];
        TargetSeries {
            protocol,
            authority: target.authority().to_owned(),
            attributes,
            cancel,
            poll_base,
            polls: ByValue::new("rpc.method", polls),
            fired: ByValue::new("lro.cancel.reason", reasons.map(Reason::as_str)),
            settled: ByValue::new("lro.cancel.outcome", SETTLED),
            left_running: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// A GetOperation or WaitOperation was sent.
    pub(super) fn poll(&self, rpc: Rpc) {
        self.polls.add(rpc.as_str());
    }

    /// The series of a call to this target whose request's URI is
    /// `origin` (a gRPC call's path names its service and method).
    fn call(self: &Arc<Self>, origin: &http::Uri) -> Arc<CallSeries> {
        let method = match self.protocol {
            Protocol::Grpc => origin.path().trim_start_matches('/').split_once('/'),
            Protocol::Rest => None,
        };
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let found = calls
            .iter()
            .find(|c| c.method.as_ref().map(|(s, m)| (s.as_str(), m.as_str())) == method);
        if let Some(series) = found {
            return series.clone();
        }
        let series = Arc::new(CallSeries::new(self.clone(), method));
        calls.push(series.clone());
        series
    }
}

/// `rpc.system`, `server.address` and `server.port` of a target.
fn target_attributes(target: &Target) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(7);
    let system = match target.protocol() {
        Protocol::Rest => "http",
        Protocol::Grpc => "grpc",
    };
    attributes.push(KeyValue::new("rpc.system", system));
    let (host, port) = server_address(target.authority());
    attributes.push(KeyValue::new("server.address", host.to_owned()));
    if let Some(port) = port {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    attributes
}

/// The series of the calls to one target with one method (gRPC) or any
/// (REST): tracked and finished operations.
#[derive(Debug)]
pub(crate) struct CallSeries {
    method: Option<(String, String)>,
    /// The target's, with the call's `rpc.service` and `rpc.method` (gRPC).
    pub(super) attributes: Vec<KeyValue>,
    pub(super) target: Arc<TargetSeries>,
    tracked: AtomicU64,
    finished: ByValue,
}

impl CallSeries {
    fn new(target: Arc<TargetSeries>, method: Option<(&str, &str)>) -> Self {
        let mut attributes = target.attributes.clone();
        if let Some((service, method)) = method {
            attributes.push(KeyValue::new("rpc.service", service.to_owned()));
            attributes.push(KeyValue::new("rpc.method", method.to_owned()));
        }
        let outcomes = [
            Finished::Done,
            Finished::DoneWithError,
            Finished::Cancelled,
            Finished::GaveUp,
        ];
        CallSeries {
            method: method.map(|(s, m)| (s.to_owned(), m.to_owned())),
            attributes,
            target,
            tracked: AtomicU64::new(0),
            finished: ByValue::new("lro.operation.outcome", outcomes.map(Finished::as_str)),
        }
    }

    pub(super) fn finished(&self, how: Finished) {
        self.finished.add(how.as_str());
    }
}

/// Every series of one layer's instruments, and the counters without
/// attributes.
#[derive(Debug, Default)]
pub(super) struct Registry {
    targets: Mutex<Targets>,
    /// `lro.calls.waiting`.
    pub(super) waiting: AtomicI64,
    /// `lro.cancels.pending`, and whether it was ever changed.
    pub(super) pending: AtomicI64,
    pub(super) pending_changed: AtomicBool,
    /// `lro.cancels.settled` with `lro.cancel.outcome` `unanswered` only.
    pub(super) unanswered: AtomicU64,
}

/// The targets' series, by authority (one per protocol), and the last one
/// looked up (most calls go to one API).
#[derive(Debug, Default)]
struct Targets {
    by_authority: HashMap<String, Vec<Arc<TargetSeries>>>,
    last: Option<Arc<TargetSeries>>,
}

impl Registry {
    /// `target`'s series, made on first use.
    pub(super) fn target(&self, target: &Target) -> Arc<TargetSeries> {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        let (protocol, authority) = (target.protocol(), target.authority());
        let is = |s: &&Arc<TargetSeries>| s.protocol == protocol && s.authority == authority;
        if let Some(last) = targets.last.as_ref().filter(is) {
            return last.clone();
        }
        let known = targets.by_authority.get(authority);
        let series = match known.and_then(|list| list.iter().find(is)) {
            Some(series) => series.clone(),
            None => {
                let series = Arc::new(TargetSeries::new(target));
                let list = targets.by_authority.entry(authority.to_owned());
                list.or_default().push(series.clone());
                series
            }
        };
        targets.last = Some(series.clone());
        series
    }

    /// A tracked call's series: `target`'s, with `origin`'s method.
    pub(super) fn call(&self, target: &Target, origin: &http::Uri) -> Arc<CallSeries> {
        let series = self.target(target).call(origin);
        series.tracked.fetch_add(1, Relaxed);
        self.waiting.fetch_add(1, Relaxed);
        series
    }

    fn each_target(&self, mut f: impl FnMut(&TargetSeries)) {
        let targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        targets.by_authority.values().flatten().for_each(|s| f(s));
    }

    fn each_call(&self, mut f: impl FnMut(&CallSeries)) {
        self.each_target(|t| {
            let calls = t.calls.lock().unwrap_or_else(PoisonError::into_inner);
            calls.iter().for_each(|c| f(c));
        });
    }

    /// Observes `lro.operations.tracked`.
    pub(super) fn observe_tracked(&self, o: &dyn AsyncInstrument<u64>) {
        self.each_call(|c| observe_count(&c.tracked, &c.attributes, o));
    }

    /// Observes `lro.operations.finished`.
    pub(super) fn observe_finished(&self, o: &dyn AsyncInstrument<u64>) {
        self.each_call(|c| c.finished.observe(&c.attributes, o));
    }

    /// Observes `lro.polls`.
    pub(super) fn observe_polls(&self, o: &dyn AsyncInstrument<u64>) {
        self.each_target(|t| t.polls.observe(&t.poll_base, o));
    }

    /// Observes `lro.cancels.fired`.
    pub(super) fn observe_fired(&self, o: &dyn AsyncInstrument<u64>) {
        self.each_target(|t| t.fired.observe(&t.cancel, o));
    }

    /// Observes `lro.cancels.settled`.
    pub(super) fn observe_settled(&self, o: &dyn AsyncInstrument<u64>) {
        self.each_target(|t| t.settled.observe(&t.cancel, o));
        let unanswered = [KeyValue::new("lro.cancel.outcome", "unanswered")];
        observe_count(&self.unanswered, &unanswered, o);
    }

    /// Observes `lro.operations.left_running`.
    pub(super) fn observe_left_running(&self, o: &dyn AsyncInstrument<u64>) {
        self.each_target(|t| observe_count(&t.left_running, &t.cancel, o));
    }

    /// Observes `lro.calls.waiting` once a call was tracked.
    pub(super) fn observe_waiting(&self, o: &dyn AsyncInstrument<i64>) {
        let mut any = false;
        self.each_call(|c| any |= c.tracked.load(Relaxed) > 0);
        if any {
            o.observe(self.waiting.load(Relaxed), &[]);
        }
    }

    /// Observes `lro.cancels.pending` once a cancel was queued.
    pub(super) fn observe_pending(&self, o: &dyn AsyncInstrument<i64>) {
        if self.pending_changed.load(Relaxed) {
            o.observe(self.pending.load(Relaxed), &[]);
        }
    }
}
