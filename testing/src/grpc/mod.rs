//! The embedded server over gRPC: `google.longrunning.Operations` and a
//! start method, on the same operations, request log and faults as REST.
//!
//! Served on the same port as REST by [`OperationsServer::serve`](super::OperationsServer::serve)
//! (HTTP/2 requests with `content-type: application/grpc...`); built on
//! tonic's server-side unary handling ([`tonic::server::Grpc`] with prost
//! messages), no generated code.
//!
//! | method (`:path`) | [`Endpoint`] | answer |
//! |---|---|---|
//! | any method of the googleapis long-running table (2,666, e.g. `/google.cloud.deploy.v1.CloudDeploy/CreateRelease`) | `Start` | a new `Operation` (below) |
//! | `/google.longrunning.Operations/GetOperation` | `Get` | the `Operation` |
//! | `/google.longrunning.Operations/ListOperations` | `List` | a page of operations (`name`: `projects/{p}/locations/{l}`, or that followed by `/operations`) |
//! | `/google.longrunning.Operations/CancelOperation` | `Cancel` | `google.protobuf.Empty`; the operation ends with `error.code` 1 |
//! | `/google.longrunning.Operations/DeleteOperation` | `Delete` | `google.protobuf.Empty` |
//! | `/google.longrunning.Operations/WaitOperation` | `Wait` | the `Operation` once done or at `timeout` |
//! | anything else | `Other` | `UNIMPLEMENTED` |
//!
//! A start decodes its request by the method's descriptor (compiled from
//! the googleapis protos) and answers as the real service would:
//! - the resource it acts on is `{parent}/{collection}/{id}` for a create
//!   (`parent` and `{resource}_id`: `CreateRelease` on
//!   `projects/p/locations/l/deliveryPipelines/d` with `release_id` `r` is
//!   `.../deliveryPipelines/d/releases/r`, the collection read from the
//!   resource's `google.api.resource` pattern), the resource's own `name`
//!   for an update, else the request's `name`, `parent`, or first field
//!   with a `google.api.resource_reference`; a `REQUIRED` id left empty is
//!   `INVALID_ARGUMENT`, and so are such fields all left empty; a request
//!   with none of these fields (62 methods of older APIs) is read by its legacy fields (Dataproc's `project_id`, `region`,
//!   `cluster.cluster_name`: `projects/{p}/regions/{r}/clusters/{c}`), else
//!   names no resource (`target` empty; Speech's `LongRunningRecognize`),
//!   and only a `REQUIRED` field left empty is `INVALID_ARGUMENT` (see
//!   `legacy.rs`);
//! - a create of a resource that a live operation (not deleted, not
//!   cancelled) already creates is `ALREADY_EXISTS`;
//! - the operation is named `{projects/p/locations/l}/operations/op-{n}`
//!   after the resource's location (`.../regions/{r}`, or its first
//!   collection and id); the older APIs' as their services name them (a
//!   bare number for Speech, which REST reads at `GET /v1/operations/{n}`;
//!   `operations/op-{n}` where the request names no resource);
//! - its `metadata` is the method's declared `metadata_type` with, where
//!   the type has them, `create_time`, `end_time` (once done: when it
//!   finished, the same on every read), `target` (the resource), `verb`
//!   (`create`, `update`, `delete`, ...), `requested_cancellation` and
//!   `api_version` (`v1`);
//! - once done, its `response` is the declared `response_type`: the
//!   request's resource, named, when it is of that type (a CreateRelease
//!   answers the request's `Release` with its name); else an empty message
//!   of that type (named if the type is a resource).
//!
//! A start runs for the milliseconds in the request metadata
//! `x-duration-ms`, else the server's default duration. Operations started
//! over REST carry their JSON `metadata` and `response` as
//! `google.protobuf.Struct`. Errors are the REST errors' codes
//! (`NOT_FOUND` for an unknown operation, `INVALID_ARGUMENT` for a bad
//! page token), as trailers-only answers.
//!
//! Faults: a [`FaultKind::Status`] answers the `google.rpc.Code` of the
//! HTTP status (503 `UNAVAILABLE`, 429 `RESOURCE_EXHAUSTED` with a 1 s
//! `google.rpc.RetryInfo`, 501 `UNIMPLEMENTED`, …: the AIP-193 mapping);
//! [`FaultKind::RetryAfter`] adds a `RetryInfo` of that delay in
//! `grpc-status-details-bin`; [`FaultKind::Disconnect`] resets the HTTP/2
//! stream; the others behave as over REST. The request log records each
//! call with `method` POST, the `:path`, the headers (metadata), the framed
//! request message as `body`, the HTTP status of the AIP-193 mapping of its
//! code as `status` (`200` for `OK`, `503` for `UNAVAILABLE`), and the code
//! itself as [`RecordedRequest::grpc_status`](super::RecordedRequest::grpc_status).

mod calls;
mod client;
mod convert;
mod descriptors;
mod legacy;
mod longrunning;
mod messages;
mod methods;
mod resource;
mod start;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use prost::Message;
use tonic::Code;

pub use self::client::{CloudDeployClient, OperationsClient};
pub use self::longrunning::{
    CancelOperationRequest, DeleteOperationRequest, Empty, GetOperationRequest,
    ListOperationsRequest, ListOperationsResponse, Operation, OperationResult, RetryInfo, Status,
    WaitOperationRequest,
};
pub use self::messages::{CreateReleaseRequest, OperationMetadata, Release, CREATE_RELEASE};

pub(crate) use self::convert::Started;
use self::longrunning::{retry_status, single_message};
use super::dispatch::{before_work, read_body};
use super::handlers::Answer;
use super::ops::Facts;
use super::{fault, Endpoint, FaultKind, Inner};
use crate::BoxError;

const GET: &str = "/google.longrunning.Operations/GetOperation";
const LIST: &str = "/google.longrunning.Operations/ListOperations";
const CANCEL: &str = "/google.longrunning.Operations/CancelOperation";
const DELETE: &str = "/google.longrunning.Operations/DeleteOperation";
const WAIT: &str = "/google.longrunning.Operations/WaitOperation";

/// A gRPC answer, and whether to reset the stream instead.
pub(crate) struct GrpcHandled {
    pub(crate) response: Response<tonic::body::Body>,
    pub(crate) disconnect: bool,
}

/// Whether a request is gRPC: `content-type: application/grpc...`.
pub(crate) fn is_grpc(request: &http::request::Parts) -> bool {
    request
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Which endpoint a `:path` is.
fn endpoint(path: &str) -> Endpoint {
    match path {
        GET => Endpoint::Get,
        LIST => Endpoint::List,
        CANCEL => Endpoint::Cancel,
        DELETE => Endpoint::Delete,
        WAIT => Endpoint::Wait,
        _ if methods::googleapis_row(path).is_some() => Endpoint::Start,
        _ => Endpoint::Other,
    }
}

/// The `name` field (1) of a Get/Cancel/Delete/Wait request, if it decodes.
fn addressed(endpoint: Endpoint, body: &[u8]) -> Option<String> {
    match endpoint {
        Endpoint::Get | Endpoint::Cancel | Endpoint::Delete | Endpoint::Wait => {
            let message = single_message(body)?;
            Some(GetOperationRequest::decode(message).ok()?.name)
        }
        _ => None,
    }
}

/// The gRPC code for an HTTP status: the AIP-193 mapping.
fn code_for(status: StatusCode) -> Code {
    match status.as_u16() {
        200..=299 => Code::Ok,
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        405 | 501 => Code::Unimplemented,
        409 => Code::Aborted,
        412 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        499 => Code::Cancelled,
        500 => Code::Internal,
        502 | 503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ if status.is_client_error() => Code::FailedPrecondition,
        _ => Code::Unknown,
    }
}

/// The HTTP status of a gRPC code: the AIP-193 mapping.
fn status_for(code: i32) -> StatusCode {
    let http = match Code::from_i32(code) {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::FailedPrecondition => 400,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    };
    StatusCode::from_u16(http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A trailers-only error answer for an injected HTTP status, with a
/// `google.rpc.RetryInfo` of `retry` (429 gets 1 s unless given).
fn fault_status(status: StatusCode, retry: Option<Duration>) -> tonic::Status {
    let code = code_for(status);
    let message = format!("Injected fault: {status} (tower_lro_testing::Fault).");
    let retry =
        retry.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(1)));
    match retry {
        Some(delay) => {
            let details = retry_status(code as i32, &message, delay);
            tonic::Status::with_details(code, message, Bytes::from(details))
        }
        None => tonic::Status::new(code, message),
    }
}

/// A non-OK answer from the REST logic as a gRPC status.
fn to_status(answer: Answer) -> tonic::Status {
    match answer {
        Answer::Error(e) => tonic::Status::new(code_for(e.status), e.message),
        Answer::NotAllowed { message, .. } => tonic::Status::unimplemented(message),
    }
}

/// Records, applies faults, answers with tonic's unary handling, and fills
/// the answer in.
pub(crate) async fn handle<B, R>(inner: &Inner, request: Request<B>, release: R) -> GrpcHandled
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    R: Future<Output = ()>,
{
    let (parts, body) = request.into_parts();
    let endpoint = endpoint(parts.uri.path());
    let body = read_body(body).await;
    let operation = body.as_ref().ok().and_then(|b| addressed(endpoint, b));
    let (answering, fault) = inner.record(&parts, endpoint, operation, &body);
    let index = answering.index;
    let reset = || tonic::Status::unavailable("Injected fault: stream reset.").into_http();
    let mut late = None;
    let (response, disconnect) = match fault {
        Some(FaultKind::Status(status)) => (fault_status(status, None).into_http(), false),
        Some(FaultKind::RetryAfter(status, after)) => {
            (fault_status(status, Some(after)).into_http(), false)
        }
        Some(FaultKind::Disconnect) => (reset(), true),
        Some(FaultKind::Hang) => {
            release.await;
            (reset(), true)
        }
        other => {
            late = before_work(other).await;
            let response = match body {
                Ok(body) => {
                    let request = Request::from_parts(parts, Full::new(body));
                    calls::answer(inner, index, endpoint, request).await
                }
                Err(e) => tonic::Status::invalid_argument(format!(
                    "Could not read the request body: {e}."
                ))
                .into_http(),
            };
            (response, false)
        }
    };
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    // A unary answer from tonic carries its status in the head only when it
    // is trailers-only (an error); otherwise the trailers say OK.
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    if disconnect {
        answering.finish(fault::disconnect_response().status());
    } else {
        inner.set_grpc_status(index, code);
        answering.finish(status_for(code));
    }
    GrpcHandled {
        response,
        disconnect,
    }
}

impl Inner {
    /// An operation's JSON as a protobuf Operation, with the declared types
    /// of the method that started it over gRPC, if one did.
    fn proto(&self, json: &serde_json::Value) -> Operation {
        let name = json["name"].as_str().unwrap_or_default();
        let state = self.lock();
        let Some(started) = state.grpc_starts.get(name) else {
            drop(state);
            return convert::operation(json, None);
        };
        let facts = match state.ops.get(name) {
            Some(op) => op.facts(tokio::time::Instant::now()),
            // Deleted since `json` was read: as it stood then.
            None => Facts {
                create_time: std::time::SystemTime::now(),
                end_time: None,
                requested_cancellation: json.get("error").is_some(),
            },
        };
        convert::operation(json, Some((started, &facts)))
    }

    /// Fills in a logged call's gRPC status code.
    fn set_grpc_status(&self, index: usize, code: i32) {
        let mut state = self.lock();
        let Some(i) = index.checked_sub(state.log_base) else {
            return;
        };
        if let Some(entry) = state.log.get_mut(i) {
            entry.grpc_status = Some(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_codes_both_ways() {
        for (http, code) in [
            (503, Code::Unavailable),
            (429, Code::ResourceExhausted),
            (404, Code::NotFound),
            (501, Code::Unimplemented),
            (504, Code::DeadlineExceeded),
        ] {
            let status = StatusCode::from_u16(http).unwrap();
            assert_eq!(code_for(status), code);
            assert_eq!(status_for(code as i32), status);
        }
        assert_eq!(status_for(0), StatusCode::OK);
    }

    #[test]
    fn routes_paths() {
        assert_eq!(endpoint(GET), Endpoint::Get);
        assert_eq!(endpoint(CREATE_RELEASE), Endpoint::Start);
        assert_eq!(
            endpoint("/google.cloud.deploy.v1.CloudDeploy/GetRelease"),
            Endpoint::Other
        );
    }
}
