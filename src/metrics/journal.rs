//! The journal writer's instruments: `lro.journal.commit.duration`,
//! `lro.journal.commit.errors`, `lro.journal.changes.dropped`.

use tokio::time::Instant;

/// The writer's instruments, with a `Meter` (nothing otherwise).
#[derive(Clone, Debug, Default)]
pub(crate) struct JournalMetrics {
    #[cfg(feature = "opentelemetry")]
    instruments: Option<Instruments>,
}

#[cfg(feature = "opentelemetry")]
#[derive(Clone, Debug)]
struct Instruments {
    commit: opentelemetry::metrics::Histogram<f64>,
    errors: opentelemetry::metrics::Counter<u64>,
    dropped: opentelemetry::metrics::Counter<u64>,
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
        let errors = meter
            .u64_counter("lro.journal.commit.errors")
            .with_unit("{commit}")
            .with_description("Journal commits that failed (each attempt; retried).")
            .build();
        let dropped = meter
            .u64_counter("lro.journal.changes.dropped")
            .with_unit("{change}")
            .with_description("Journal records and removes dropped, never written.")
            .build();
        JournalMetrics {
            instruments: Some(Instruments {
                commit,
                errors,
                dropped,
            }),
        }
    }

    /// A batch first tried at `started` is committed.
    #[inline]
    pub(crate) fn committed(&self, started: Instant) {
        #[cfg(feature = "opentelemetry")]
        if let Some(i) = &self.instruments {
            i.commit.record(started.elapsed().as_secs_f64(), &[]);
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = started;
    }

    /// A commit failed.
    #[inline]
    pub(crate) fn failed(&self) {
        #[cfg(feature = "opentelemetry")]
        if let Some(i) = &self.instruments {
            i.errors.add(1, &[]);
        }
    }

    /// `n` changes were dropped.
    #[inline]
    pub(crate) fn dropped(&self, n: u64) {
        #[cfg(feature = "opentelemetry")]
        if let Some(i) = &self.instruments {
            i.dropped.add(n, &[]);
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = n;
    }
}
