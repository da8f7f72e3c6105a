//! `lro.journal.commit.duration`: the journal writer's commit latency.

use tokio::time::Instant;

/// The writer's histogram, with a `Meter` (nothing otherwise).
#[derive(Clone, Debug, Default)]
pub(crate) struct JournalMetrics {
    #[cfg(feature = "opentelemetry")]
    commit: Option<opentelemetry::metrics::Histogram<f64>>,
}

impl JournalMetrics {
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn new(meter: &opentelemetry::metrics::Meter) -> Self {
        let commit = meter
            .f64_histogram("lro.journal.commit.duration")
            .with_unit("s")
            .with_description("Time to commit one batch of journal changes, retries included.")
            .with_boundaries(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
            ])
            .build();
        JournalMetrics {
            commit: Some(commit),
        }
    }

    /// A batch first tried at `started` is committed.
    #[inline]
    pub(crate) fn committed(&self, started: Instant) {
        #[cfg(feature = "opentelemetry")]
        if let Some(commit) = &self.commit {
            commit.record(started.elapsed().as_secs_f64(), &[]);
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = started;
    }
}
