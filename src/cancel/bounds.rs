//! [`Client`]: the bounds a detached cancel task puts on the inner service
//! and its bodies, named once.

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::error::BoxError;
use crate::request_body::RequestBody;

/// An inner service a detached task can own: `Clone + Send + 'static`, its
/// future `Send`, its errors boxable, its bodies `Send` and built from or
/// yielding `Bytes`.
pub(crate) trait Client<ReqBody, ResBody>:
    Service<
        Request<ReqBody>,
        Response = Response<ResBody>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
where
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
}

impl<S, ReqBody, ResBody> Client<ReqBody, ResBody> for S
where
    S: Service<
            Request<ReqBody>,
            Response = Response<ResBody>,
            Error: Into<BoxError>,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static,
    ReqBody: RequestBody + Send + 'static,
    ResBody: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static,
{
}
