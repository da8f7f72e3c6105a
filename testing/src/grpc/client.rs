//! Minimal gRPC clients for the embedded server's methods, shaped like the
//! clients `tonic-build` generates (`CloudDeployClient::new(service)`,
//! one async method per RPC), generic over any tower service a tonic client
//! accepts — a `tonic::transport::Channel`, or one wrapped in layers.

use http::uri::PathAndQuery;
use tonic::client::{Grpc, GrpcService};
use tonic::{IntoRequest, Response, Status};

use super::messages::{CreateReleaseRequest, CREATE_RELEASE};
use super::{
    CancelOperationRequest, DeleteOperationRequest, Empty, GetOperationRequest,
    ListOperationsRequest, ListOperationsResponse, Operation, WaitOperationRequest,
};
use super::{CANCEL, DELETE, GET, LIST, WAIT};

/// Sends one unary call on `grpc`.
async fn unary<T, Req, Resp>(
    grpc: &mut Grpc<T>,
    path: &'static str,
    request: impl IntoRequest<Req>,
) -> Result<Response<Resp>, Status>
where
    T: GrpcService<tonic::body::Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<super::BoxError> + Send,
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("service was not ready: {}", e.into())))?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(
        request.into_request(),
        PathAndQuery::from_static(path),
        codec,
    )
    .await
}

macro_rules! rpc {
    ($(#[$doc:meta])* $fn:ident, $path:expr, $req:ty => $resp:ty) => {
        $(#[$doc])*
        ///
        /// # Errors
        ///
        /// The call's [`Status`]: the server's code, or `UNAVAILABLE`/`UNKNOWN`
        /// for a transport error.
        pub async fn $fn(
            &mut self,
            request: impl IntoRequest<$req>,
        ) -> Result<Response<$resp>, Status> {
            unary(&mut self.inner, $path, request).await
        }
    };
}

/// A client of `google.cloud.deploy.v1.CloudDeploy`, with the one method
/// the embedded server implements.
#[derive(Clone, Debug)]
pub struct CloudDeployClient<T> {
    inner: Grpc<T>,
}

impl<T> CloudDeployClient<T>
where
    T: GrpcService<tonic::body::Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<super::BoxError> + Send,
{
    /// A client sending its calls through `service`.
    pub fn new(service: T) -> Self {
        CloudDeployClient {
            inner: Grpc::new(service),
        }
    }

    rpc!(
        /// `CreateRelease`: starts an operation (run time: request metadata
        /// `x-duration-ms`).
        create_release, CREATE_RELEASE, CreateReleaseRequest => Operation
    );
}

/// A client of `google.longrunning.Operations`.
#[derive(Clone, Debug)]
pub struct OperationsClient<T> {
    inner: Grpc<T>,
}

impl<T> OperationsClient<T>
where
    T: GrpcService<tonic::body::Body>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<super::BoxError> + Send,
{
    /// A client sending its calls through `service`.
    pub fn new(service: T) -> Self {
        OperationsClient {
            inner: Grpc::new(service),
        }
    }

    rpc!(
        /// `GetOperation`.
        get_operation, GET, GetOperationRequest => Operation
    );
    rpc!(
        /// `ListOperations`.
        list_operations, LIST, ListOperationsRequest => ListOperationsResponse
    );
    rpc!(
        /// `CancelOperation`.
        cancel_operation, CANCEL, CancelOperationRequest => Empty
    );
    rpc!(
        /// `DeleteOperation`.
        delete_operation, DELETE, DeleteOperationRequest => Empty
    );
    rpc!(
        /// `WaitOperation`.
        wait_operation, WAIT, WaitOperationRequest => Operation
    );
}
