//! [`CancelOnDropLayer`]: the builder of the settings its services share.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use tower_layer::Layer;

use crate::cancel::{CancelHandle, CancelPolicy, Delivery};
use crate::config::Config;
use crate::extensions::CancelOn;
use crate::operation::{Operation, OperationName};
use crate::poll::PollPolicy;
use crate::protocol::{GrpcLroMethods, Routes};
use crate::service::{CancelOnDrop, Layered};

/// A Tower [`Layer`] that waits on AIP-151 long-running operations and cancels
/// them when the caller gives up.
///
/// Wrap an HTTP client stack with it (for example hyper-util's `Client`). A
/// call whose response is a not-done `Operation` (`{"name": "...", "done": false}`)
/// resolves only when `GetOperation` shows it done, with that final response;
/// if the caller's future is dropped first, the [`deadline`](Self::deadline)
/// passes, or polling gives up, the layer sends one detached, best-effort
/// `CancelOperation` (`POST {prefix}{name}:cancel`, AIP-151) through the same
/// inner service. Every other response passes through untouched.
///
/// Clones share configuration and the [`CancelHandle`]. A layer's settings
/// are fixed for the services it builds: a builder method called afterwards
/// changes only the services built after it.
///
/// ```
/// use std::time::Duration;
/// use tower_lro::{CancelOnDropLayer, PollPolicy};
///
/// let layer = CancelOnDropLayer::new()
///     .poll_policy(PollPolicy::new().initial_delay(Duration::from_millis(500)))
///     .deadline(Duration::from_secs(600));
/// let cancels = layer.handle(); // stats() and drain() for graceful shutdown
/// # let _ = cancels;
/// ```
#[derive(Clone, Debug)]
pub struct CancelOnDropLayer {
    pub(crate) config: Arc<Config>,
    /// The cancel delivery's state, owned by the layer's [`CancelHandle`].
    pub(crate) delivery: Arc<Delivery>,
}

impl Default for CancelOnDropLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CancelOnDropLayer {
    /// A layer with the defaults: [`PollPolicy::default`], [`CancelPolicy::default`],
    /// no deadline, 1 MiB inspection limit, the [`FORWARDED_HEADERS`](crate::FORWARDED_HEADERS).
    pub fn new() -> Self {
        let config = Config::default();
        CancelOnDropLayer {
            delivery: Arc::new(Delivery::new(&config.cancel)),
            config: Arc::new(config),
        }
    }

    /// Journals every operation this layer's services track, so that a
    /// [`Reaper`](crate::journal::Reaper) cancels what a crash leaves
    /// running: an entry is enqueued on `writer` when an operation's name
    /// becomes known, and its removal when the operation is done or its
    /// cancel settles (accepted, not found, UNIMPLEMENTED). The entry of a
    /// cancel that failed, was shed or lost stays, for a reaper once this
    /// process's lease ends. Calls marked [`Detached`](crate::Detached) are
    /// not journaled: they are never cancelled. Enqueueing never blocks the
    /// call (see [`JournalWriter`](crate::journal::JournalWriter)). gRPC
    /// calls through a tonic `Channel` carry no origin: they are journaled
    /// once the layer is told it with [`grpc_origin`](Self::grpc_origin)
    /// (until then, a `warn` event per operation says they are not).
    #[cfg(feature = "journal")]
    pub fn journal(mut self, writer: crate::journal::JournalWriter) -> Self {
        self.config_mut().journal = Some(writer);
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Which triggers fire a cancel (default [`CancelOn::all`]): when the
    /// response future is dropped, the [`deadline`](Self::deadline) passes,
    /// polling gives up, or [`CancelHandle::shutdown`] ends the call. A
    /// request carrying its own [`CancelOn`] (or [`Detached`](crate::Detached))
    /// overrides this.
    pub fn cancel_on(mut self, triggers: CancelOn) -> Self {
        self.config_mut().cancel_on = triggers;
        self
    }

    /// Records the layer's metrics on `meter` (feature `opentelemetry`):
    /// operations tracked and finished, polls, cancels fired and settled,
    /// operations left running, wait and cancel durations, calls waiting and
    /// cancels pending — the instruments and attributes listed in the
    /// README's "Metrics" table (OpenTelemetry semantic conventions for RPC;
    /// durations in seconds; never the operation name as an attribute).
    ///
    /// The instruments belong to the layer's [`CancelHandle`], like its
    /// counters: the first meter given to a handle is kept.
    ///
    /// ```
    /// # #[cfg(feature = "opentelemetry")] {
    /// let meter = opentelemetry::global::meter("my-service");
    /// let layer = tower_lro::CancelOnDropLayer::new().meter(&meter);
    /// # let _ = layer;
    /// # }
    /// ```
    #[cfg(feature = "opentelemetry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub fn meter(self, meter: &opentelemetry::metrics::Meter) -> Self {
        self.delivery.counters.metrics.install(meter);
        self
    }

    /// [`meter`](Self::meter) with the global meter provider's meter for
    /// the `tower-lro` instrumentation scope
    /// (`opentelemetry::global::meter_provider`; install the provider first).
    #[cfg(feature = "opentelemetry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub fn global_meter(self) -> Self {
        let scope = opentelemetry::InstrumentationScope::builder(crate::metrics::SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let meter = opentelemetry::global::meter_with_scope(scope);
        self.meter(&meter)
    }

    /// How the layer polls `GetOperation` while an operation is not done.
    pub fn poll_policy(mut self, policy: PollPolicy) -> Self {
        self.config_mut().poll = policy;
        self
    }

    /// How cancels are delivered: attempts, backoff, deadline, concurrency.
    ///
    /// The cancel slots and queue ([`CancelPolicy::concurrency`]) belong to
    /// the layer's [`CancelHandle`]: a policy with other limits gives this
    /// layer a new handle, so set the policy before calling
    /// [`handle`](Self::handle), cloning the layer or building services.
    /// Services built before keep their own slots, queue and handle.
    pub fn cancel_policy(mut self, policy: CancelPolicy) -> Self {
        if !self.delivery.fits(&policy) {
            let delivery = Arc::new(Delivery::new(&policy));
            delivery
                .counters
                .metrics
                .inherit(&self.delivery.counters.metrics);
            self.delivery = delivery;
        }
        self.config_mut().cancel = policy;
        self
    }

    /// A limit on the whole call, from `call` until the operation is done
    /// (none by default). When it passes the call ends with
    /// [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded) and, if the
    /// operation's name is known, a cancel is sent.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config_mut().deadline = Some(deadline);
        self
    }

    /// The most bytes of a response body the layer reads to look for an
    /// Operation (default 1 MiB). A larger body is handed to the caller
    /// intact — the bytes read, then the rest of the stream — and not tracked.
    pub fn max_inspect_bytes(mut self, limit: usize) -> Self {
        self.config_mut().protocol.max_inspect_bytes = limit;
        self
    }

    /// Which gRPC methods answer with a `google.longrunning.Operation`
    /// (default: [`GrpcLroMethods::googleapis`], the 2,666 such methods of the
    /// public googleapis protos). A gRPC call is inspected when it is an
    /// HTTP/2 `POST /{package}.{Service}/{Method}` with `content-type:
    /// application/grpc` or `application/grpc+proto` and its method is in
    /// this set; add your own methods or opt some out with
    /// [`GrpcLroMethods::with`] and [`GrpcLroMethods::without`], or pass
    /// [`GrpcLroMethods::none`] to let every gRPC call pass through.
    pub fn grpc_lro_methods(mut self, methods: GrpcLroMethods) -> Self {
        self.config_mut().protocol.grpc.methods = methods;
        self
    }

    /// More request headers to copy onto poll and cancel requests, beyond
    /// [`FORWARDED_HEADERS`](crate::FORWARDED_HEADERS). Only headers named here or there are copied.
    pub fn forward_headers<I>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = HeaderName>,
    {
        let config = self.config_mut();
        for header in headers {
            if !config.forward_headers.contains(&header) {
                config.forward_headers.push(header);
            }
        }
        self
    }

    /// The path that goes before an operation's name in `GetOperation` and
    /// `CancelOperation` URLs (e.g. `/v1/`), for APIs where the default rule
    /// (the request path up to the name's first segment, else a leading API
    /// version segment) does not find it. A missing leading or trailing `/`
    /// is added.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.config_mut().protocol.rest.set_path_prefix(prefix);
        self
    }

    /// Replaces the rule that decides which requests' responses are inspected
    /// for an Operation (default: any method but GET, HEAD and OPTIONS).
    /// A request carrying [`Resume`](crate::Resume) is inspected either way.
    /// Responses to other requests pass through without being read.
    pub fn inspect_when<F>(mut self, predicate: F) -> Self
    where
        F: Fn(&Method, &Uri) -> bool + Send + Sync + 'static,
    {
        self.config_mut().protocol.rest.inspect = Some(Arc::new(predicate));
        self
    }

    /// A route function for APIs whose operation URLs differ from AIP-151's
    /// `{prefix}{name}` / `{prefix}{name}:cancel`: Cloud SQL's
    /// `…/operations/{id}/cancel`, Cloud Storage's
    /// `b/{bucket}/operations/{id}/cancel`, datalabeling's `GET …:cancel`.
    /// It gets the validated name and the original request's URI; returning
    /// `None` falls back to the default rule. Build paths with
    /// [`OperationName::encoded`]; path-only URIs get the original request's
    /// scheme and authority, and a route to any other origin is refused (the
    /// operation is then not tracked). WaitOperation is not used on these
    /// routes.
    ///
    /// ```
    /// use tower_lro::{CancelOnDropLayer, Routes};
    /// // Cloud SQL Admin v1beta4: POST /sql/v1beta4/projects/{p}/operations/{o}/cancel
    /// let layer = CancelOnDropLayer::new().route(|name, _request| {
    ///     let get = format!("/sql/v1beta4/{}", name.encoded());
    ///     let cancel = format!("{get}/cancel");
    ///     Some(Routes::new(get.parse().ok()?, cancel.parse().ok()?))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn route<F>(mut self, route: F) -> Self
    where
        F: Fn(&OperationName, &Uri) -> Option<Routes> + Send + Sync + 'static,
    {
        self.config_mut().protocol.rest.route = Some(Arc::new(route));
        self
    }

    /// Calls `hook` with the decoded `Operation` of every poll answer
    /// (`GetOperation` or `WaitOperation`, the final `done` one included):
    /// its `name`, `done`, `error` and metadata — where services report
    /// progress — as raw JSON over REST (`metadata`, e.g. a
    /// `progressPercent` field) or as a `google.protobuf.Any` over gRPC
    /// ([`Operation::grpc_metadata`], decoded with
    /// [`Operation::decode_metadata`]). Runs inside the response
    /// future's `poll`: keep it quick and non-blocking (update a progress
    /// bar, send on a channel). The same metadata is on a `debug` event per
    /// poll.
    pub fn on_progress<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Operation) + Send + Sync + 'static,
    {
        self.config_mut().on_progress = Some(Arc::new(hook));
        self
    }

    /// The origin of the gRPC channel below the layer (`http://host:port`,
    /// `https://deploy.googleapis.com`): a tonic `Channel` adds its origin
    /// below the layer, so a gRPC call's URI carries none. The layer names
    /// it in journal entries (so that a [`Reaper`](crate::journal::Reaper)
    /// knows where an orphan lives) and in its per-server memos. Without
    /// it, gRPC calls through a `Channel` are tracked and cancelled as
    /// usual but not journaled (a `warn` event says so). A call whose URI
    /// has a scheme and an authority uses its own.
    pub fn grpc_origin(mut self, origin: Uri) -> Self {
        self.config_mut().protocol.grpc.origin = Some(origin);
        self
    }

    /// The handle on this layer's cancels: [`CancelHandle::stats`],
    /// [`CancelHandle::drain`] and [`CancelHandle::cancel`] (with the
    /// layer's settings as they are now).
    pub fn handle(&self) -> CancelHandle {
        CancelHandle {
            delivery: self.delivery.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S> Layer<S> for CancelOnDropLayer {
    type Service = CancelOnDrop<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CancelOnDrop {
            inner,
            layered: Arc::new(Layered {
                config: self.config.clone(),
                delivery: self.delivery.clone(),
            }),
        }
    }
}
