//! Observability: the layer's spans (a recording subscriber, plain
//! `tracing_subscriber::fmt`, OpenTelemetry through `tracing-opentelemetry`)
//! over REST and gRPC, and its OpenTelemetry metrics.
//!
//! `cargo test --all-features --test observability`; nothing here is ignored.
//!
//! Every test records through its own subscriber (`set_default`, this
//! thread only) or its own meter provider: nothing process-global, except
//! the catch-all of [`isolate_subscribers`], which each test calls first.

#[path = "../common/mod.rs"]
mod common;

mod grpc_spans;
mod metrics;
mod otel_spans;
mod spans;
mod tracing_fmt;

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
pub(crate) fn isolate_subscribers() {
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
