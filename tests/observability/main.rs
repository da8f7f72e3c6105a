//! Observability: the layer's spans (a recording subscriber, plain
//! `tracing_subscriber::fmt`, OpenTelemetry through `tracing-opentelemetry`)
//! over REST and gRPC, and its OpenTelemetry metrics.
//!
//! `cargo test --all-features --test observability`; nothing here is ignored.
//!
//! Every test records through its own subscriber (`set_default`, this
//! thread only) or its own meter provider: nothing process-global, except
//! the catch-all of `common::subscribers::isolate_subscribers`, which each
//! test calls first.

#[path = "../common/mod.rs"]
mod common;

mod grpc_spans;
mod metrics;
mod otel_spans;
mod spans;
mod tracing_fmt;

pub(crate) use common::subscribers::isolate_subscribers;
