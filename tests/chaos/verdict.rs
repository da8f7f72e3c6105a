//! What happened, checked: the server's log and operations (the ground
//! truth) against each caller's plan, the cancel attempts the layer sent,
//! and the `lro.cancel` spans.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tower_lro_testing::{Endpoint, OperationsServer, RecordedRequest};

use crate::callers::{caller_of, Ended, Plan};
use crate::observe::{Attempt, AttemptOutcome};

/// The server's log and the layer's attempts, indexed.
pub(crate) struct Evidence<'a> {
    /// Start requests by caller index.
    pub(crate) starts: HashMap<usize, Vec<&'a RecordedRequest>>,
    /// CancelOperation requests the server received, by operation.
    pub(crate) received: HashMap<&'a str, Vec<&'a RecordedRequest>>,
    /// GetOperation requests the server received.
    pub(crate) polls: usize,
    /// CancelOperation attempts the layer sent, by operation.
    pub(crate) sent: HashMap<&'a str, Vec<&'a Attempt>>,
    /// The `lro.cancel` spans' `reason`, by operation (this run's only).
    pub(crate) reasons: HashMap<String, String>,
}

impl<'a> Evidence<'a> {
    /// Indexes `log` and `attempts`; keeps the spans of operations under
    /// `projects/{project}/`.
    pub(crate) fn new(
        log: &'a [RecordedRequest],
        attempts: &'a [Attempt],
        spans: &Mutex<Vec<(String, String)>>,
        project: &str,
    ) -> Self {
        let mut starts: HashMap<usize, Vec<&RecordedRequest>> = HashMap::new();
        let mut received: HashMap<&str, Vec<&RecordedRequest>> = HashMap::new();
        let mut polls = 0;
        for r in log {
            match r.endpoint {
                Endpoint::Start => starts.entry(caller_of(r)).or_default().push(r),
                Endpoint::Cancel => received
                    .entry(r.operation.as_deref().unwrap())
                    .or_default()
                    .push(r),
                Endpoint::Get => polls += 1,
                other => panic!("unexpected request to {other:?}: {} {}", r.method, r.path),
            }
        }
        let mut sent: HashMap<&str, Vec<&Attempt>> = HashMap::new();
        for a in attempts {
            sent.entry(a.operation.as_str()).or_default().push(a);
        }
        let reasons = spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("projects/{project}/")))
            .cloned()
            .collect();
        Evidence {
            starts,
            received,
            polls,
            sent,
            reasons,
        }
    }

    /// Whether the layer saw one of `name`'s cancel attempts accepted (2xx).
    pub(crate) fn seen_accepted(&self, name: &str) -> bool {
        self.sent.get(name).is_some_and(|a| {
            a.iter()
                .any(|a| matches!(a.outcome, AttemptOutcome::Status(200..=299)))
        })
    }

    /// `name`'s attempts the layer gave up on (attempt timeout, transport
    /// error) without an answer.
    fn gave_up_unanswered(&self, name: &str) -> usize {
        self.sent.get(name).map_or(0, |a| {
            a.iter()
                .filter(|a| {
                    matches!(
                        a.outcome,
                        AttemptOutcome::GaveUp | AttemptOutcome::Transport
                    )
                })
                .count()
        })
    }
}

/// What broke, the first 40 of it.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<String>);

impl Problems {
    fn push(&mut self, p: String) {
        if self.0.len() < 40 {
            self.0.push(p);
        } else if self.0.len() == 40 {
            self.0.push("…".to_owned());
        }
    }
}

/// The cancel policy's bound on attempts per cancel.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    /// `CancelPolicy`'s `attempts` (`u32::MAX`: bounded by its deadline).
    pub(crate) attempts_per_cancel: u32,
    /// The policy retries until its deadline, not a count.
    pub(crate) deadline_bounded: bool,
}

/// Per caller: what it did, the state it was dropped in, and what became of
/// its operation.
#[derive(Default)]
pub(crate) struct Tally {
    /// Callers by the state they ended in (`finished`, or the
    /// `ResponseFuture` state they were dropped in).
    pub(crate) phases: BTreeMap<&'static str, usize>,
    /// Dropped with the Start in flight.
    pub(crate) in_flight_drops: u64,
    /// Callers dropped whose operation exists.
    pub(crate) abandoned: u64,
    /// Callers dropped whose Start never created an operation.
    pub(crate) not_created: u64,
    pub(crate) finished: u64,
    pub(crate) cancelled: u64,
    /// Not cancelled: every one of the policy's attempts was sent, reached
    /// the server and was faulted there.
    pub(crate) left_running: u64,
    /// Attempts of left-running operations that the layer sent and gave up
    /// on (attempt timeout, transport error) without the server seeing them.
    pub(crate) unreceived_attempts: u64,
    /// Dropped callers whose `lro.cancel` span had the wrong `reason`.
    pub(crate) wrong_reason: u64,
    /// Operations the server accepted a cancel for after the layer had
    /// given up on that attempt.
    pub(crate) accepted_late: u64,
}

/// Checks a run against the evidence, tallying what it finds.
pub(crate) struct Checker<'e> {
    pub(crate) evidence: &'e Evidence<'e>,
    pub(crate) server: &'e OperationsServer,
    pub(crate) limits: Limits,
    pub(crate) tally: Tally,
    pub(crate) problems: Problems,
}

/// A caller that was dropped: its index, plan, and the state it was
/// dropped in.
struct Dropped<'a> {
    caller: usize,
    plan: &'a Plan,
    phase: &'static str,
}

impl Checker<'_> {
    /// Checks every caller against its plan and the evidence.
    pub(crate) fn check_callers(&mut self, plans: &[Plan], ended: &[Option<Ended>]) {
        for (i, plan) in plans.iter().enumerate() {
            let created: Vec<&str> = self
                .evidence
                .starts
                .get(&i)
                .map(|s| s.iter().filter_map(|r| r.operation.as_deref()).collect())
                .unwrap_or_default();
            if created.len() > 1 {
                self.problems
                    .push(format!("caller {i} created {created:?}"));
            }
            let name = created.first().copied();
            match (plan, ended[i].as_ref()) {
                (Plan::Finish { .. }, Some(Ended::Finished(result))) => {
                    *self.tally.phases.entry("finished").or_default() += 1;
                    let Some(name) = name else {
                        self.problems.push(format!(
                            "caller {i} finished without an operation: {result:?}"
                        ));
                        continue;
                    };
                    match result {
                        Ok(op)
                            if op["done"] == true
                                && op["response"]["value"]["state"] == "SUCCEEDED" =>
                        {
                            self.tally.finished += 1
                        }
                        other => self
                            .problems
                            .push(format!("caller {i} ({name}): {other:?}")),
                    }
                    if self.evidence.received.contains_key(name)
                        || self.evidence.sent.contains_key(name)
                    {
                        self.problems
                            .push(format!("{name} finished, and was sent a cancel"));
                    }
                }
                (_, Some(&Ended::Dropped(phase))) => {
                    let dropped = Dropped {
                        caller: i,
                        plan,
                        phase,
                    };
                    self.check_dropped(&dropped, name);
                }
                (_, Some(Ended::Unexpected(output))) => self.problems.push(format!(
                    "caller {i} ({plan:?}) ended before its drop: {output}"
                )),
                (_, other) => self
                    .problems
                    .push(format!("caller {i} ({plan:?}) ended {other:?}")),
            }
        }
    }

    /// A dropped caller: dropped in the state its plan meant, its operation
    /// cancelled (or left running only after every attempt was faulted), with
    /// the right `lro.cancel` reason.
    fn check_dropped(&mut self, dropped: &Dropped<'_>, name: Option<&str>) {
        let Dropped {
            caller: i,
            plan,
            phase,
        } = *dropped;
        *self.tally.phases.entry(phase).or_default() += 1;
        // The state the plan meant to drop it in, read from the future itself.
        let intended = match plan {
            Plan::InFlight { .. } => matches!(phase, "call" | "inspect"),
            Plan::Waiting { .. } => phase == "sleep",
            Plan::Polling { .. } => matches!(phase, "poll" | "read_poll"),
            Plan::Finish { .. } => false,
        };
        if !intended {
            self.problems
                .push(format!("caller {i} ({plan:?}) dropped in state {phase}"));
        }
        if matches!(phase, "call" | "inspect") {
            self.tally.in_flight_drops += 1;
        }
        let Some(name) = name else {
            // The layer goes on with a call dropped in flight, so every Start
            // reaches the server: counted and asserted 0.
            self.tally.not_created += 1;
            return;
        };
        self.tally.abandoned += 1;
        self.check_abandoned(dropped, name);
        let expected = if matches!(phase, "call" | "inspect") {
            "dropped_in_flight"
        } else {
            "dropped"
        };
        match self.evidence.reasons.get(name) {
            Some(reason) if reason == expected => {}
            other => {
                self.tally.wrong_reason += 1;
                self.problems.push(format!(
                    "{name} dropped in {phase}: cancel reason {other:?}, expected {expected}"
                ));
            }
        }
    }

    /// An abandoned operation: cancelled, or left running with every one of
    /// its attempts accounted for (received and faulted, or given up on by the
    /// layer before it reached the server, on a congested connection).
    fn check_abandoned(&mut self, dropped: &Dropped<'_>, name: &str) {
        let op = self.server.operation(name).unwrap();
        let got = self
            .evidence
            .received
            .get(name)
            .map_or(&[][..], Vec::as_slice);
        let sent_n = self.evidence.sent.get(name).map_or(0, Vec::len);
        let unfaulted = got.iter().filter(|r| r.fault.is_none()).count();
        let attempts_per_cancel = self.limits.attempts_per_cancel;
        if op["done"] == true && op["error"]["code"] == 1 && unfaulted >= 1 {
            self.tally.cancelled += 1;
        } else if op["done"] != true
            && unfaulted == 0
            && (sent_n == attempts_per_cancel as usize || self.limits.deadline_bounded)
            && !got.is_empty()
            && got.len() + self.evidence.gave_up_unanswered(name) >= sent_n
        {
            self.tally.unreceived_attempts += (sent_n - got.len()) as u64;
            self.tally.left_running += 1;
        } else {
            let Dropped {
                caller: i,
                plan,
                phase,
            } = dropped;
            self.problems.push(format!(
                "{name} (caller {i}, {plan:?}, dropped in {phase}): {op}; {sent_n} cancel \
                 attempts sent (policy: {attempts_per_cancel}), received {:?}",
                got.iter()
                    .map(|r| (r.status.as_u16(), r.fault.clone()))
                    .collect::<Vec<_>>()
            ));
        }
    }

    /// Per operation: at most the policy's attempts, none after one the layer
    /// saw accepted, and nothing reaches the server that the layer did not
    /// send.
    pub(crate) fn check_attempts(&mut self) {
        let attempts_per_cancel = self.limits.attempts_per_cancel;
        for (name, attempts) in &self.evidence.sent {
            if attempts.len() > attempts_per_cancel as usize {
                self.problems
                    .push(format!("{name}: {} cancel attempts", attempts.len()));
            }
            if let Some(ok) = attempts
                .iter()
                .position(|a| matches!(a.outcome, AttemptOutcome::Status(200..=299)))
            {
                if ok + 1 != attempts.len() {
                    self.problems.push(format!(
                        "{name}: attempts after an accepted one: {attempts:?}"
                    ));
                }
            }
            let got = self.evidence.received.get(name).map_or(0, Vec::len);
            if got > attempts.len() {
                self.problems.push(format!(
                    "{name}: {got} cancels received, {} sent",
                    attempts.len()
                ));
            }
            let server_accepted = self
                .evidence
                .received
                .get(name)
                .is_some_and(|r| r.iter().any(|r| r.fault.is_none()));
            if server_accepted && !self.evidence.seen_accepted(name) {
                self.tally.accepted_late += 1;
            }
        }
        for name in self.evidence.received.keys() {
            if !self.evidence.sent.contains_key(name) {
                self.problems.push(format!(
                    "{name}: cancels received that the layer never sent"
                ));
            }
        }
    }
}
