//! The embedded server's gRPC methods, each run through tonic's
//! server-side unary handling on the REST logic's state.

use std::future::Future;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use prost::Message;

use super::descriptors;
use super::start::{self, StartCodec};
use super::{
    to_status, CancelOperationRequest, DeleteOperationRequest, Empty, GetOperationRequest,
    ListOperationsRequest, ListOperationsResponse, Operation, WaitOperationRequest,
};
use crate::grpc::methods;
use crate::route::Target;
use crate::{Endpoint, Inner};

/// Runs one unary call through tonic's server with `codec`: decodes the
/// request, calls `f`, encodes its answer (or its error, trailers-only).
async fn unary_with<C, F, Fut>(
    codec: C,
    request: Request<Full<Bytes>>,
    f: F,
) -> Response<tonic::body::Body>
where
    C: tonic::codec::Codec,
    C::Decode: Send + 'static,
    C::Encode: Send + 'static,
    F: FnOnce(C::Decode, tonic::metadata::MetadataMap) -> Fut,
    Fut: Future<Output = Result<C::Encode, tonic::Status>>,
{
    let mut grpc = tonic::server::Grpc::new(codec);
    let mut f = Some(f);
    let service = tower::service_fn(move |request: tonic::Request<C::Decode>| {
        let f = f.take();
        async move {
            let f = f.ok_or_else(|| tonic::Status::internal("unary service called twice"))?;
            let (metadata, _, message) = request.into_parts();
            f(message, metadata).await.map(tonic::Response::new)
        }
    });
    grpc.unary(service, request).await
}

/// [`unary_with`] prost's codec for `Req` and `Resp`.
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
    let codec = tonic_prost::ProstCodec::<Resp, Req>::default();
    unary_with(codec, request, f).await
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
        Endpoint::Start => start_call(inner, index, &path, request).await,
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

/// A start method of the googleapis table, its request read by its
/// descriptor.
async fn start_call(
    inner: &Inner,
    index: usize,
    path: &str,
    request: Request<Full<Bytes>>,
) -> Response<tonic::body::Body> {
    let row = match methods::googleapis_row(path) {
        Some(row) => row,
        None => {
            let message = format!("Method {path} is not implemented by this server.");
            return tonic::Status::unimplemented(message).into_http();
        }
    };
    let types = match descriptors::method_types(row) {
        Ok(types) => types,
        Err(status) => return status.into_http(),
    };
    let codec = StartCodec {
        request: types.request.clone(),
    };
    unary_with(codec, request, |req, metadata| async move {
        start::start(inner, index, row, types, &req, &metadata)
    })
    .await
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
