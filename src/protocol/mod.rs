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
//! REST/JSON (`rest`) is one implementation; a second protocol adds a variant
//! to [`Protocol`] and to the private `Wire` enum, and a module beside `rest`.

pub(crate) mod grpc;
pub(crate) mod rest;
mod spans;
mod status;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};

use crate::config::Config;
use crate::forwarded::Forwarded;
use crate::operation::{Operation, OperationName};
use crate::request_body::RequestBody;

use spans::record_grpc;
pub(crate) use spans::{call_span, cancel_span, poll_span, record_end, record_server};
pub use status::WireStatus;

/// The header every request about an operation carries: its name, for
/// routing (`x-goog-request-params: name=…`).
const REQUEST_PARAMS: HeaderName = HeaderName::from_static("x-goog-request-params");

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
    pub(crate) fn for_request<B>(config: &Config, request: &Request<B>) -> Option<Protocol> {
        if grpc::is_grpc(request) {
            return grpc::candidate(config, request).then_some(Protocol::Grpc);
        }
        rest::candidate(config, request).then_some(Protocol::Rest)
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
        config: &Config,
        body: &[u8],
        trailers: Option<&HeaderMap>,
    ) -> Option<Target> {
        match self {
            Protocol::Rest => rest::recognise::target(origin, config, body),
            Protocol::Grpc => grpc::recognise::target(origin, config, body, trailers),
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
    /// The operation is done; `cancelled` if it ended CANCELLED (AIP-151).
    Done { cancelled: bool },
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

/// A not-done operation the layer waits on: its name and where its
/// `Operations` requests go.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    name: OperationName,
    /// `x-goog-request-params` for the name, encoded once.
    params: HeaderValue,
    wire: Wire,
}

/// The per-protocol part of a [`Target`].
// One per tracked operation, moved rather than copied around: boxing the
// larger REST route would cost every REST operation an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Wire {
    Rest(rest::routes::Route),
    Grpc(grpc::route::Route),
}

impl Target {
    pub(crate) fn rest(name: OperationName, route: rest::routes::Route) -> Self {
        Target {
            params: name.request_params(),
            name,
            wire: Wire::Rest(route),
        }
    }

    pub(crate) fn grpc(name: OperationName, route: grpc::route::Route) -> Self {
        Target {
            params: name.request_params(),
            name,
            wire: Wire::Grpc(route),
        }
    }

    /// The protocol its requests speak.
    pub(crate) fn protocol(&self) -> Protocol {
        match &self.wire {
            Wire::Rest(_) => Protocol::Rest,
            Wire::Grpc(_) => Protocol::Grpc,
        }
    }

    /// The operation's name.
    pub(crate) fn name(&self) -> &OperationName {
        &self.name
    }

    /// The REST route, if this is a REST/JSON operation (for the journal
    /// and the fuzz entry points).
    #[cfg(any(feature = "__internals", feature = "journal"))]
    pub(crate) fn rest_route(&self) -> Option<&rest::routes::Route> {
        match &self.wire {
            Wire::Rest(route) => Some(route),
            Wire::Grpc(_) => None,
        }
    }

    /// Where the requests go (`host:port`): the key of the per-server
    /// "unimplemented" memos.
    pub(crate) fn authority(&self) -> &str {
        match &self.wire {
            Wire::Rest(route) => route.authority(),
            Wire::Grpc(route) => route.authority(),
        }
    }

    /// The headers of every request about this operation: the original
    /// request's forwarded ones and `x-goog-request-params`, with room for
    /// `extra` more.
    pub(crate) fn headers(&self, forwarded: &Forwarded, extra: usize) -> HeaderMap {
        let mut headers = forwarded.to_map(1 + extra);
        headers.insert(REQUEST_PARAMS, self.params.clone());
        headers
    }

    /// Records the protocol's RPC attributes on a poll or cancel span for
    /// `rpc` (`rpc.system = "grpc"`, `rpc.service`; nothing for REST).
    pub(crate) fn record_rpc(&self, span: &tracing::Span, rpc: Rpc) {
        spans::record_server(span, self.authority());
        if let Wire::Grpc(_) = self.wire {
            record_grpc(span, rpc);
        }
    }

    /// Forgets what only polling needs (the WaitOperation route), so that a
    /// queued cancel keeps no more than it sends.
    pub(crate) fn for_cancel(mut self) -> Self {
        if let Wire::Rest(route) = &mut self.wire {
            route.wait = None;
        }
        self
    }

    /// Whether this target can long-poll with WaitOperation.
    pub(crate) fn can_wait(&self) -> bool {
        match &self.wire {
            Wire::Rest(route) => route.wait.is_some(),
            Wire::Grpc(_) => true,
        }
    }

    /// The request for `rpc`, carrying the `forwarded` headers and the
    /// target's own; `None` if this target or body type cannot send it (a
    /// WaitOperation whose body the request body type cannot carry).
    pub(crate) fn request<B: RequestBody>(
        &self,
        rpc: Rpc,
        forwarded: &Forwarded,
    ) -> Option<Request<B>> {
        match &self.wire {
            Wire::Rest(route) => rest::requests::build(route, rpc, self.headers(forwarded, 2)),
            Wire::Grpc(route) => {
                grpc::requests::build(route, rpc, &self.name, self.headers(forwarded, 3))
            }
        }
    }

    /// Reads a poll answer's head; `waiting` if it answers a WaitOperation.
    /// Records the status on the current (`lro.poll`) span.
    pub(crate) fn poll_head(&self, head: &Response<()>, waiting: bool) -> PollHead {
        match &self.wire {
            Wire::Rest(_) => rest::answers::poll_head(head, waiting),
            Wire::Grpc(_) => grpc::answers::poll_head(head, waiting),
        }
    }

    /// Reads a complete poll answer.
    pub(crate) fn poll_body(&self, body: &[u8], trailers: Option<&HeaderMap>) -> PollBody {
        match &self.wire {
            Wire::Rest(_) => rest::answers::poll_body(&self.name, body),
            Wire::Grpc(_) => grpc::answers::poll_body(&self.name, body, trailers),
        }
    }

    /// The Operation a poll answer holds, decoded for `on_progress`.
    pub(crate) fn operation(&self, body: &Bytes) -> Option<Operation> {
        match &self.wire {
            Wire::Rest(_) => Operation::from_json(body).ok(),
            Wire::Grpc(_) => grpc::answers::operation(body),
        }
    }
}
