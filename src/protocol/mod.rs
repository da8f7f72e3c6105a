//! The protocol seam: everything that differs between wire protocols.
//!
//! The state machine (`future`), the poll schedule (`poll`), the deadline, the
//! drop guard and cancel delivery (`cancel`) only ever talk to the types
//! here: a [`Protocol`] says whether a request is a candidate and whether its
//! response is worth reading; a [`Target`] (what recognition returns for a
//! not-done operation) builds the GetOperation, WaitOperation and
//! CancelOperation requests and reads their answers. Reading an answer has
//! two steps, the head and then the complete body with its trailers, so that
//! a protocol whose status comes in trailers can classify there.
//!
//! The seam owns routing and its settings: every [`Target`] is built by
//! `Target::new` from (operation name, origin, [`ProtocolSettings`]) —
//! recognition, explicit cancels ([`Origin`]) and the journal alike — and
//! each protocol's settings (REST: inspect predicate, `path_prefix`, route
//! function; gRPC: the method table, the channel's origin) live in
//! `settings`. Nothing outside this module builds a route or reads `rest`
//! or `grpc`.
//!
//! REST/JSON (`rest`) and gRPC (`grpc`) are the implementations; another
//! protocol adds a variant to [`Protocol`] and to the private `Wire` enum of
//! `target`, and a module beside them.

pub(crate) mod grpc;
#[cfg(feature = "__internals")]
pub(crate) mod internals;
mod origin;
pub(crate) mod rest;
mod settings;
mod spans;
mod status;
mod target;

use std::time::Duration;

use http::{HeaderMap, Request, Response, Uri};

pub use grpc::{GrpcLroMethods, InvalidGrpcMethod};
pub use origin::Origin;
pub use rest::routes::Routes;
pub use settings::DEFAULT_MAX_INSPECT_BYTES;
pub(crate) use settings::{ProtocolSettings, Timing};
#[cfg(feature = "opentelemetry")]
pub(crate) use spans::server_address;
pub(crate) use spans::{call_span, cancel_span, poll_span, record_end, record_server};
pub use status::WireStatus;
pub(crate) use target::Target;

/// A wire protocol the layer understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// REST/JSON over HTTP/1.1 or HTTP/2 (AIP-151's HTTP mapping).
    Rest,
    /// gRPC (AIP-151's `google.longrunning.Operations` service), HTTP/2.
    Grpc,
}

impl Protocol {
    /// Which protocol a request speaks, if the layer should look at its
    /// response at all; `None` passes the call through untouched. Called on
    /// every request: it must not allocate.
    #[inline]
    pub(crate) fn for_request<B>(
        settings: &ProtocolSettings,
        request: &Request<B>,
    ) -> Option<Protocol> {
        if grpc::is_grpc(request) {
            return grpc::candidate(&settings.grpc, request).then_some(Protocol::Grpc);
        }
        rest::candidate(&settings.rest, request).then_some(Protocol::Rest)
    }

    /// Whether a response head may carry an Operation worth reading.
    pub(crate) fn inspects<B>(self, response: &Response<B>) -> bool {
        match self {
            Protocol::Rest => rest::answers::inspectable(response),
            Protocol::Grpc => {
                grpc::recognise::is_candidate_response(response.status(), response.headers())
            }
        }
    }

    /// The not-done operation a complete response body (and its trailers)
    /// holds, with everything needed to poll and cancel it; `None` (with a
    /// `debug` or `warn` event saying why) when there is none to wait on.
    pub(crate) fn recognise(
        self,
        origin: &Uri,
        settings: &ProtocolSettings,
        timing: Timing,
        body: &[u8],
        trailers: Option<&HeaderMap>,
    ) -> Option<Target> {
        match self {
            Protocol::Rest => rest::recognise::target(origin, settings, timing, body),
            Protocol::Grpc => grpc::recognise::target(origin, settings, timing, body, trailers),
        }
    }

    /// Reads a cancel answer's head. Records the status on the current
    /// (`lro.cancel`) span.
    pub(crate) fn cancel_head(self, head: &Response<()>) -> CancelHead {
        match self {
            Protocol::Rest => rest::answers::cancel_head(head),
            Protocol::Grpc => grpc::answers::cancel_head(head),
        }
    }

    /// Reads a cancel answer's body (at most the limit [`CancelHead::Read`]
    /// asked for) and trailers.
    pub(crate) fn cancel_body(
        self,
        head: &Response<()>,
        body: &[u8],
        trailers: Option<&HeaderMap>,
    ) -> CancelAnswer {
        match self {
            Protocol::Rest => rest::answers::cancel_body(head, body),
            Protocol::Grpc => grpc::answers::cancel_body(trailers),
        }
    }
}

/// A request the layer sends about an operation (AIP-151 `Operations` RPCs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rpc {
    /// `GetOperation`.
    Get,
    /// `WaitOperation` with this timeout.
    Wait(Duration),
    /// `CancelOperation`.
    Cancel,
}

impl Rpc {
    /// The RPC's name, as recorded in spans (`rpc.method`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rpc::Get => "GetOperation",
            Rpc::Wait(_) => "WaitOperation",
            Rpc::Cancel => "CancelOperation",
        }
    }
}

/// What a poll answer's head says.
#[derive(Debug)]
pub(crate) enum PollHead {
    /// Read the body (and trailers), then [`Target::poll_body`].
    Read,
    /// A transient failure with its status: retry, after at least this long
    /// if the server said.
    Transient(WireStatus, Option<Duration>),
    /// The server does not implement WaitOperation: poll with GetOperation.
    WaitUnsupported,
    /// A failure not worth retrying.
    Failed(WireStatus),
}

/// What a complete poll answer says.
#[derive(Debug)]
pub(crate) enum PollBody {
    /// The operation is done: `code` is its `error.code` (1: CANCELLED,
    /// AIP-151), 0 if it has a `response` (or its status did not decode).
    Done { code: i32 },
    /// Not done yet.
    NotDone,
    /// A transient failure carried in the body or trailers (REST never
    /// answers so: its status is in the head).
    Transient(WireStatus, Option<Duration>),
    /// The trailers say the method is not implemented: to a WaitOperation,
    /// the server has no WaitOperation (poll with GetOperation); to a
    /// GetOperation, a failure.
    Unimplemented(WireStatus),
    /// A failure carried in the body or trailers (likewise).
    Failed(WireStatus),
    /// Not an Operation of this name: why.
    Invalid(String),
}

/// What a cancel answer's head says.
#[derive(Debug)]
pub(crate) enum CancelHead {
    /// Final, or to retry, from the head alone.
    Answer(CancelAnswer),
    /// Read at most this many bytes of the body (and the trailers), then
    /// [`Protocol::cancel_body`].
    Read(usize),
}

/// How a CancelOperation attempt was answered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CancelAnswer {
    /// Accepted (AIP-151: asynchronous; the operation may still finish).
    Accepted,
    /// The operation does not exist (any more).
    NotFound,
    /// The server does not implement CancelOperation.
    Unimplemented,
    /// A transient failure: retry, after at least this long if the server said.
    Retry(Option<Duration>),
    /// A failure not worth retrying (`None`: no request could be built).
    Failed(Option<WireStatus>),
}
