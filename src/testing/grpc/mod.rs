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
//! | `/google.cloud.deploy.v1.CloudDeploy/CreateRelease` | `Start` | a new `Operation` on `projects/{p}/locations/{l}`, with `metadata` a `google.cloud.deploy.v1.OperationMetadata` and, once done, `response` a `google.cloud.deploy.v1.Release` named `{parent}/releases/{release_id}` |
//! | any other method of the googleapis long-running table whose request's field 1 is a parent under `projects/{p}/locations/{l}` | `Start` | a new `Operation` whose `metadata`/`response` are empty messages of the method's declared types |
//! | `/google.longrunning.Operations/GetOperation` | `Get` | the `Operation` |
//! | `/google.longrunning.Operations/ListOperations` | `List` | a page of operations (`name`: `projects/{p}/locations/{l}`, or that followed by `/operations`) |
//! | `/google.longrunning.Operations/CancelOperation` | `Cancel` | `google.protobuf.Empty`; the operation ends with `error.code` 1 |
//! | `/google.longrunning.Operations/DeleteOperation` | `Delete` | `google.protobuf.Empty` |
//! | `/google.longrunning.Operations/WaitOperation` | `Wait` | the `Operation` once done or at `timeout` |
//! | anything else | `Other` | `UNIMPLEMENTED` |
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

mod client;
mod convert;
mod messages;

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use prost::Message;
use tokio::time::Instant;
use tonic::Code;

pub use self::client::{CloudDeployClient, OperationsClient};
pub use self::messages::{CreateReleaseRequest, OperationMetadata, Release, CREATE_RELEASE};
pub use crate::protocol::grpc::messages::{
    CancelOperationRequest, DeleteOperationRequest, Empty, GetOperationRequest,
    ListOperationsRequest, ListOperationsResponse, Operation, OperationResult, RetryInfo, Status,
    WaitOperationRequest,
};

pub(crate) use self::convert::Started;
use super::route::Target;
use super::{fault, Answering, BoxError, Endpoint, FaultKind, Inner, MAX_BODY_BYTES};
use crate::protocol::grpc::{frame, methods, status as grpc_status};

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
            let message = frame::decode_single(body).ok()?;
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
    let message = format!("Injected fault: {status} (tower_lro::testing::Fault).");
    let retry =
        retry.or((status == StatusCode::TOO_MANY_REQUESTS).then_some(Duration::from_secs(1)));
    match retry {
        Some(delay) => {
            let details = grpc_status::retry_status(code as i32, &message, delay);
            tonic::Status::with_details(code, message, Bytes::from(details))
        }
        None => tonic::Status::new(code, message),
    }
}

/// A non-OK answer from the REST logic as a gRPC status.
fn to_status(answer: super::Answer) -> tonic::Status {
    match answer {
        super::Answer::Error(e) => tonic::Status::new(code_for(e.status), e.message),
        super::Answer::NotAllowed { message, .. } => tonic::Status::unimplemented(message),
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
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    let operation = body.as_ref().ok().and_then(|b| addressed(endpoint, b));
    let (index, fault) = inner.record(&parts, endpoint, operation, &body);
    let answering = Answering {
        inner,
        index,
        answered: false,
    };
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
            match other {
                Some(FaultKind::Latency(delay)) => tokio::time::sleep(delay).await,
                Some(FaultKind::LateAnswer(delay)) => late = Some(delay),
                _ => {}
            }
            let response = match body {
                Ok(body) => {
                    let request = Request::from_parts(parts, Full::new(body));
                    answer(inner, index, endpoint, request).await
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

/// Runs one unary call through tonic's server: decodes `Req`, calls `f`,
/// encodes its `Resp` (or its error, trailers-only).
async fn unary<Req, Resp, F, Fut>(
    request: Request<Full<Bytes>>,
    f: F,
) -> Response<tonic::body::Body>
where
    Req: Message + Default + Send + 'static,
    Resp: Message + Send + 'static,
    F: FnOnce(Req, tonic::metadata::MetadataMap) -> Fut,
    Fut: Future<Output = Result<Resp, tonic::Status>>,
{
    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<Resp, Req>::default());
    let mut f = Some(f);
    let service = tower::service_fn(move |request: tonic::Request<Req>| {
        let f = f.take();
        async move {
            let f = f.ok_or_else(|| tonic::Status::internal("unary service called twice"))?;
            let (metadata, _, message) = request.into_parts();
            f(message, metadata).await.map(tonic::Response::new)
        }
    });
    grpc.unary(service, request).await
}

/// Answers a call that no fault intercepted.
async fn answer(
    inner: &Inner,
    index: usize,
    endpoint: Endpoint,
    request: Request<Full<Bytes>>,
) -> Response<tonic::body::Body> {
    let path = request.uri().path().to_owned();
    let none = Uri::from_static("/");
    let empty = Bytes::new();
    match endpoint {
        Endpoint::Get => {
            unary(request, |req: GetOperationRequest, _| async move {
                let (json, _) = inner
                    .dispatch(Target::Get(req.name), &none, &empty)
                    .await
                    .map_err(to_status)?;
                Ok(inner.proto(&json))
            })
            .await
        }
        Endpoint::Cancel => {
            unary(request, |req: CancelOperationRequest, _| async move {
                let target = Target::Cancel(req.name);
                inner
                    .dispatch(target, &none, &empty)
                    .await
                    .map_err(to_status)?;
                Ok(Empty {})
            })
            .await
        }
        Endpoint::Delete => {
            unary(request, |req: DeleteOperationRequest, _| async move {
                let target = Target::Delete(req.name);
                inner
                    .dispatch(target, &none, &empty)
                    .await
                    .map_err(to_status)?;
                Ok(Empty {})
            })
            .await
        }
        Endpoint::Wait => unary(request, |req, _| wait(inner, req)).await,
        Endpoint::List => unary(request, |req, _| list(inner, req)).await,
        Endpoint::Start if path == CREATE_RELEASE => {
            unary(request, |req: CreateReleaseRequest, metadata| async move {
                if req.release_id.is_empty() {
                    return Err(tonic::Status::invalid_argument("release_id is required."));
                }
                let target = format!("{}/releases/{}", req.parent, req.release_id);
                start(inner, index, &path, &req.parent, target, &metadata)
            })
            .await
        }
        Endpoint::Start => {
            unary(request, |req: StartRequest, metadata| async move {
                start(
                    inner,
                    index,
                    &path,
                    &req.parent,
                    req.parent.clone(),
                    &metadata,
                )
            })
            .await
        }
        _ => tonic::Status::unimplemented(format!(
            "Method {path} is not implemented by this server."
        ))
        .into_http(),
    }
}

/// The field every start request is read for: 1, the parent.
#[derive(Clone, PartialEq, Message)]
struct StartRequest {
    #[prost(string, tag = "1")]
    parent: String,
}

/// Starts an operation for a table method: parent must be under
/// `projects/{p}/locations/{l}`.
fn start(
    inner: &Inner,
    index: usize,
    method: &str,
    parent: &str,
    target: String,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Operation, tonic::Status> {
    let row = methods::googleapis_row(method).ok_or_else(|| {
        tonic::Status::unimplemented(format!("Method {method} is not implemented."))
    })?;
    let segments: Vec<&str> = parent.split('/').collect();
    if segments.len() < 4
        || segments[0] != "projects"
        || segments[2] != "locations"
        || segments.iter().any(|s| s.is_empty())
    {
        return Err(tonic::Status::invalid_argument(format!(
            "parent {parent:?} is not under projects/{{project}}/locations/{{location}}."
        )));
    }
    let duration = match metadata.get("x-duration-ms") {
        None => None,
        Some(raw) => Some(
            raw.to_str()
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    tonic::Status::invalid_argument(
                        "x-duration-ms must be a non-negative integer (milliseconds).",
                    )
                })?,
        ),
    };
    let started = Started {
        row,
        target: target.clone(),
        create_time: SystemTime::now(),
    };
    let mut state = inner.lock();
    let duration = duration.unwrap_or(state.default_duration);
    let now = Instant::now();
    let json = state
        .ops
        .create(&segments[..4].join("/"), target, duration, now)
        .to_json(now);
    let name = json["name"].as_str().unwrap_or_default().to_owned();
    state.grpc_starts.insert(name.clone(), started.clone());
    drop(state);
    inner.set_created(index, name);
    Ok(convert::operation(&json, Some(&started)))
}

/// WaitOperation: the REST logic with the timeout in JSON form.
async fn wait(inner: &Inner, req: WaitOperationRequest) -> Result<Operation, tonic::Status> {
    let query = match req.timeout {
        None => String::new(),
        Some(t) if t.seconds < 0 || t.nanos < 0 => {
            return Err(tonic::Status::invalid_argument(
                "timeout must not be negative.",
            ))
        }
        Some(t) => format!("?timeout={}.{:09}s", t.seconds, t.nanos),
    };
    let uri: Uri = format!("/{query}")
        .parse()
        .map_err(|_| tonic::Status::invalid_argument("invalid timeout."))?;
    let (json, _) = inner
        .dispatch(Target::Wait(req.name), &uri, &Bytes::new())
        .await
        .map_err(to_status)?;
    Ok(inner.proto(&json))
}

/// ListOperations: the REST logic (AIP-158 paging) on `{name}/operations`.
async fn list(
    inner: &Inner,
    req: ListOperationsRequest,
) -> Result<ListOperationsResponse, tonic::Status> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let collection = if req.name.ends_with("/operations") {
        req.name.clone()
    } else {
        format!("{}/operations", req.name)
    };
    let uri = format!(
        "/?pageSize={}&pageToken={}&filter={}",
        req.page_size,
        utf8_percent_encode(&req.page_token, NON_ALPHANUMERIC),
        utf8_percent_encode(&req.filter, NON_ALPHANUMERIC),
    );
    let uri: Uri = uri
        .parse()
        .map_err(|_| tonic::Status::invalid_argument("invalid request."))?;
    let (json, _) = inner
        .dispatch(Target::List(collection), &uri, &Bytes::new())
        .await
        .map_err(to_status)?;
    let operations = json["operations"]
        .as_array()
        .map(|ops| ops.iter().map(|op| inner.proto(op)).collect())
        .unwrap_or_default();
    Ok(ListOperationsResponse {
        operations,
        next_page_token: json["nextPageToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    })
}

impl Inner {
    /// An operation's JSON as a protobuf Operation, with the declared types
    /// of the method that started it over gRPC, if one did.
    fn proto(&self, json: &serde_json::Value) -> Operation {
        let started = json["name"]
            .as_str()
            .and_then(|name| self.lock().grpc_starts.get(name).cloned());
        convert::operation(json, started.as_ref())
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
