//! [`Target`]: one operation the layer waits on or cancels — its name and
//! where its `Operations` requests go. Every target is built here, from
//! (name, origin, protocol settings): recognition, explicit cancels and the
//! journal all go through [`Target::new`] or [`Target::journaled`].

use bytes::Bytes;
#[cfg(feature = "journal")]
use http::Method;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};

use super::settings::{ProtocolSettings, Timing};
use super::spans::record_grpc;
use super::{grpc, rest, PollBody, PollHead, Protocol, Rpc};
use crate::forwarded::Forwarded;
use crate::operation::{Operation, OperationName, RouteError};
use crate::request_body::RequestBody;

/// The header every request about an operation carries: its name, for
/// routing (`x-goog-request-params: name=…`).
const REQUEST_PARAMS: HeaderName = HeaderName::from_static("x-goog-request-params");

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
    /// The target of operation `name` started by a call to `origin`
    /// (its request URI; for gRPC, a path-only URI takes the channel's
    /// origin from the settings), under `settings`: a REST route from the
    /// route function, else the default rule; a gRPC route on the same
    /// origin. The one place a route is built.
    ///
    /// # Errors
    /// [`RouteError`] for a REST operation with no route: no prefix, an
    /// invalid URI, or a route function answering another origin.
    pub(crate) fn new(
        protocol: Protocol,
        name: OperationName,
        origin: &Uri,
        settings: &ProtocolSettings,
        timing: Timing,
    ) -> Result<Target, RouteError> {
        let wire = match protocol {
            Protocol::Rest => Wire::Rest(rest::routes::route(
                &name,
                origin,
                &settings.rest,
                timing.wait,
            )?),
            Protocol::Grpc => Wire::Grpc(grpc::route::Route::new(
                origin,
                settings.grpc.origin.as_ref(),
                timing.cancel_timeout,
            )),
        };
        Ok(Target {
            params: name.request_params(),
            name,
            wire,
        })
    }

    /// The target of a journaled operation: its cancel sent with `method`
    /// to `cancel_uri` (absolute; for gRPC, the channel's origin and the
    /// CancelOperation path). Never polled: it has no GetOperation route.
    #[cfg(feature = "journal")]
    pub(crate) fn journaled(
        protocol: Protocol,
        name: OperationName,
        method: Method,
        cancel_uri: Uri,
        timing: Timing,
    ) -> Target {
        let wire = match protocol {
            Protocol::Rest => Wire::Rest(rest::routes::Route {
                // A reaped cancel is never verified: nothing polls this.
                get: cancel_uri.clone(),
                cancel: cancel_uri,
                cancel_method: method,
                wait: None,
            }),
            Protocol::Grpc => Wire::Grpc(grpc::route::Route::new(
                &cancel_uri,
                None,
                timing.cancel_timeout,
            )),
        };
        Target {
            params: name.request_params(),
            name,
            wire,
        }
    }

    /// Where this target's CancelOperation goes, as an absolute URI and a
    /// method (for a journal entry); `None` if the origin is unknown (a
    /// gRPC call through a channel whose origin the layer was not told).
    #[cfg(feature = "journal")]
    pub(crate) fn cancel_endpoint(&self) -> Option<(Method, Uri)> {
        match &self.wire {
            Wire::Rest(route) => Some((route.cancel_method.clone(), route.cancel.clone())),
            Wire::Grpc(route) => route
                .has_origin()
                .then(|| (Method::POST, route.uri(grpc::requests::path(Rpc::Cancel)))),
        }
    }

    /// The GetOperation and CancelOperation URIs of a REST target (the
    /// fuzz entry points).
    #[cfg(any(test, feature = "__internals"))]
    pub(crate) fn rest_uris(&self) -> Option<(Uri, Uri)> {
        match &self.wire {
            Wire::Rest(route) => Some((route.get.clone(), route.cancel.clone())),
            Wire::Grpc(_) => None,
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
        super::spans::record_server(span, self.authority());
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
