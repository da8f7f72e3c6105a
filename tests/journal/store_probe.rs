//! How slow the journal's store is during a run, seen from outside the
//! process under test: a probe commits a lease renewal of its own every
//! 50 ms on the test's connection and keeps each one's start and duration.
//! A store slowed by the machine (a loaded runner) widens the loss window
//! the verdict allows by what it measured; a writer slow on its own does not
//! show here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tower_lro::journal::{Journal, OwnerId};

/// (start, duration) of each finished probe; the start of the one running.
type Samples = Arc<Mutex<(Vec<(Instant, Duration)>, Option<Instant>)>>;

/// The probe; stops when dropped.
pub struct StoreProbe {
    samples: Samples,
    task: tokio::task::JoinHandle<()>,
}

impl StoreProbe {
    pub fn start(journal: Arc<dyn Journal>) -> Self {
        let samples: Samples = Arc::new(Mutex::new((Vec::new(), None)));
        let kept = samples.clone();
        let task = tokio::spawn(async move {
            let owner = OwnerId::random();
            loop {
                let t0 = Instant::now();
                kept.lock().unwrap().1 = Some(t0);
                let _ = journal.renew(&owner, Duration::from_millis(1)).await;
                {
                    let mut s = kept.lock().unwrap();
                    s.0.push((t0, t0.elapsed()));
                    s.1 = None;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        StoreProbe { samples, task }
    }

    /// The longest a probe commit took among those running in the `span`
    /// before `at` (one still running counts as running until `at`).
    pub fn lag_before(&self, at: Instant, span: Duration) -> Duration {
        let s = self.samples.lock().unwrap();
        let from = at.checked_sub(span).unwrap_or(at);
        let finished =
            s.0.iter()
                .filter(|(t0, d)| *t0 + *d > from && *t0 < at)
                .map(|(_, d)| *d);
        let running = s.1.map(|t0| at.saturating_duration_since(t0));
        finished.chain(running).max().unwrap_or_default()
    }
}

impl StoreProbe {
    /// The longest a probe commit took so far (one still running counts
    /// as running until now).
    pub fn max_lag(&self) -> Duration {
        let s = self.samples.lock().unwrap();
        let running = s.1.map(|t0| t0.elapsed());
        s.0.iter()
            .map(|(_, d)| *d)
            .chain(running)
            .max()
            .unwrap_or_default()
    }
}

impl Drop for StoreProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
