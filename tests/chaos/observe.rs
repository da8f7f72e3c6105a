//! What the suite watches besides the server: each CancelOperation attempt
//! as the layer's inner service sees it, every panic in the process, and
//! the `lro.cancel` spans.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio::time::Instant;
use tower::Service;
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One CancelOperation attempt as the layer saw it, recorded between the
/// layer and the client.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub(crate) operation: String,
    pub(crate) outcome: AttemptOutcome,
    /// From the call to the answer's head, or to giving up.
    pub(crate) elapsed: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttemptOutcome {
    /// The answer's head reached the layer.
    Status(u16),
    /// A transport error (e.g. the reset stream).
    Transport,
    /// The layer dropped the request first (its attempt timeout or deadline).
    GaveUp,
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The inner service: the hyper-util client, recording cancel attempts.
#[derive(Clone)]
pub(crate) struct Observed {
    pub(crate) client: HttpClient,
    pub(crate) attempts: Arc<Mutex<Vec<Attempt>>>,
}

/// Records an attempt when its future ends or is dropped.
struct AttemptGuard {
    operation: String,
    sent: Instant,
    outcome: AttemptOutcome,
    attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.attempts.lock().unwrap().push(Attempt {
            operation: std::mem::take(&mut self.operation),
            outcome: self.outcome,
            elapsed: self.sent.elapsed(),
        });
    }
}

impl Service<http::Request<Full<Bytes>>> for Observed {
    type Response = http::Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Full<Bytes>>) -> Self::Future {
        let cancel = request
            .uri()
            .path()
            .strip_prefix("/v1/")
            .and_then(|p| p.strip_suffix(":cancel"))
            .map(str::to_owned);
        let response = self.client.request(request);
        let Some(operation) = cancel else {
            return Box::pin(response);
        };
        let guard = AttemptGuard {
            operation,
            sent: Instant::now(),
            outcome: AttemptOutcome::GaveUp,
            attempts: Arc::clone(&self.attempts),
        };
        Box::pin(async move {
            // Moves the whole guard in (not just the field assigned below).
            let mut guard = guard;
            let result = response.await;
            guard.outcome = match &result {
                Ok(response) => AttemptOutcome::Status(response.status().as_u16()),
                Err(_) => AttemptOutcome::Transport,
            };
            result
        })
    }
}

/// Panics anywhere in the process (a task's panic is otherwise swallowed by
/// tokio).
pub(crate) static PANICS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn count_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// `(operation.name, reason)` of every `lro.cancel` span, process-wide.
pub(crate) fn cancel_spans() -> &'static Mutex<Vec<(String, String)>> {
    static SPANS: OnceLock<Mutex<Vec<(String, String)>>> = OnceLock::new();
    static SUBSCRIBER: OnceLock<()> = OnceLock::new();
    SUBSCRIBER.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(CancelSpans);
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    SPANS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Records `lro.cancel` spans only; every other callsite is disabled, so
/// the layer's tracing costs next to nothing here.
struct CancelSpans;

impl<S> tracing_subscriber::Layer<S> for CancelSpans
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if metadata.name() == "lro.cancel" {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, _id: &span::Id, _ctx: Context<'_, S>) {
        struct Fields(String, String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
                match field.name() {
                    "operation.name" => self.0 = format!("{value:?}"),
                    "reason" => self.1 = format!("{value:?}").trim_matches('"').to_owned(),
                    _ => {}
                }
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "reason" {
                    self.1 = value.to_owned();
                }
            }
        }
        let mut fields = Fields(String::new(), String::new());
        attrs.record(&mut fields);
        cancel_spans().lock().unwrap().push((fields.0, fields.1));
    }
}
