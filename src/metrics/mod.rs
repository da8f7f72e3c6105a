//! Metrics: the hooks the layer calls where its counters change, exported
//! through OpenTelemetry with the `opentelemetry` feature. Without the
//! feature, or until a `Meter` is given to the layer, every hook is one
//! branch on an empty slot.

#[cfg(feature = "opentelemetry")]
mod otel;
#[cfg(feature = "opentelemetry")]
mod series;

#[cfg(feature = "journal")]
mod journal;
#[cfg(feature = "journal")]
pub(crate) use journal::JournalMetrics;
#[cfg(feature = "opentelemetry")]
pub(crate) use otel::{CallMetrics, GaveUp, Metrics, SCOPE};

/// How a tracked operation ended for its caller: the
/// `lro.operation.outcome` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finished {
    /// Done with a `response`.
    Done,
    /// Done with an `error` other than CANCELLED.
    DoneWithError,
    /// Done with `error.code` CANCELLED (1).
    Cancelled,
    /// The layer stopped waiting before it was done (dropped, deadline,
    /// polling failed, shutdown): see the cancel instruments.
    GaveUp,
}

impl Finished {
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Finished::Done => "done",
            Finished::DoneWithError => "done_with_error",
            Finished::Cancelled => "cancelled",
            Finished::GaveUp => "gave_up",
        }
    }

    /// From a done Operation's `error` code, if any.
    pub(crate) fn from_error(code: Option<i32>) -> Self {
        match code {
            None | Some(0) => Finished::Done,
            Some(1) => Finished::Cancelled,
            Some(_) => Finished::DoneWithError,
        }
    }
}

/// The disabled build: every hook does nothing.
#[cfg(not(feature = "opentelemetry"))]
mod off {
    use tokio::time::Instant;

    use super::Finished;
    use crate::cancel::{CancelOutcome, Reason};
    use crate::protocol::{Rpc, Target};

    /// No instruments in this build.
    #[derive(Debug, Default)]
    pub(crate) struct Metrics;

    /// No per-call state in this build (never made).
    #[derive(Debug)]
    pub(crate) enum CallMetrics {}

    /// No deferred record in this build (never made).
    #[derive(Debug)]
    pub(crate) enum GaveUp {}

    impl GaveUp {
        pub(crate) fn record(self, _: Instant) {
            match self {}
        }
    }

    #[allow(clippy::unused_self)]
    impl Metrics {
        #[inline]
        pub(crate) fn inherit(&self, _: &Metrics) {}
        #[inline]
        pub(crate) fn call(&self, _: &Target, _: &http::Uri) -> Option<CallMetrics> {
            None
        }
        #[inline]
        pub(crate) fn poll(&self, _: &Target, _: Rpc) {}
        #[inline]
        pub(crate) fn cancel_fired(&self, _: &Target, _: Reason) {}
        #[inline]
        pub(crate) fn cancel_queued(&self) {}
        #[inline]
        pub(crate) fn cancel_unqueued(&self) {}
        #[inline]
        pub(crate) fn cancel_shed(&self, _: &Target) {}
        #[inline]
        pub(crate) fn cancel_lost(&self, _: &Target) {}
        #[inline]
        pub(crate) fn cancel_settled(&self, _: &Target, _: CancelOutcome, _: Instant) {}
        #[inline]
        pub(crate) fn unanswered(&self) {}
    }

    impl CallMetrics {
        pub(crate) fn poll(&self, _: Rpc) {
            match *self {}
        }
        pub(crate) fn finished(self, _: Finished, _: u32) {
            match self {}
        }
        pub(crate) fn gave_up(self, _: Reason, _: u32) -> GaveUp {
            match self {}
        }
    }
}

#[cfg(not(feature = "opentelemetry"))]
pub(crate) use off::{CallMetrics, GaveUp, Metrics};
