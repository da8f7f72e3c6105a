//! The embedded server's gRPC methods, each run through tonic's
//! server-side unary handling on the REST logic's state.

use std::future::Future;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use prost::Message;
use tokio::time::Instant;

use super::convert::{self, Started};
use super::messages::{CreateReleaseRequest, CREATE_RELEASE};
use super::{
    to_status, CancelOperationRequest, DeleteOperationRequest, Empty, GetOperationRequest,
    ListOperationsRequest, ListOperationsResponse, Operation, WaitOperationRequest,
};
use crate::protocol::grpc::methods;
use crate::testing::route::Target;
use crate::testing::{Endpoint, Inner};

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
pub(super) async fn answer(
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
            let cancel =
                |req: CancelOperationRequest, _| empty_answer(inner, Target::Cancel(req.name));
            unary(request, cancel).await
        }
        Endpoint::Delete => {
            let delete =
                |req: DeleteOperationRequest, _| empty_answer(inner, Target::Delete(req.name));
            unary(request, delete).await
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

/// CancelOperation and DeleteOperation: the REST logic, then `Empty`.
async fn empty_answer(inner: &Inner, target: Target) -> Result<Empty, tonic::Status> {
    let none = Uri::from_static("/");
    inner
        .dispatch(target, &none, &Bytes::new())
        .await
        .map_err(to_status)?;
    Ok(Empty {})
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
