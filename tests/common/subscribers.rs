//! One process, many tests, each with its own thread-local subscriber
//! (`set_default`): the catch-all global subscriber that keeps them
//! reliable while they run in parallel.

use std::sync::Once;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// Makes the thread-local subscribers of this crate's tests reliable while
/// they run in parallel in one process.
///
/// tracing caches each callsite's interest process-wide, computed from the
/// subscribers registered when the callsite is first hit. A test thread
/// with no subscriber of its own that hits a callsite first, at the moment
/// another thread installs its recorder, can leave the callsite cached as
/// `never`: the other test's span is then never recorded. A global
/// subscriber that answers `Interest::sometimes()` for every callsite (and
/// records nothing) keeps every callsite at least `sometimes`, so tracing
/// asks the current thread's own subscriber each time. Threads without one
/// record nothing, as before.
pub fn isolate_subscribers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(AskEveryTime)
            .expect("no other global subscriber in this test crate");
    });
}

/// The global subscriber of [`isolate_subscribers`]: interested sometimes
/// in everything, enabled for nothing.
struct AskEveryTime;

impl Subscriber for AskEveryTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
