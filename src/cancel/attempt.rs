//! One CancelOperation attempt: the request through a clone of the inner
//! service, its answer read and classified. The worker sending it bounds
//! it in time.

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::ServiceExt;
use tower_service::Service;

use crate::error::BoxError;
use crate::inspect::read_to_end;
use crate::protocol::{CancelAnswer, CancelHead, Protocol};

/// Sends `request` (`None`: it could not be built) and classifies the
/// answer, the body included (the worker's time limit covers reading it: a
/// server that sends a head and then a body that never ends must not hold
/// the attempt forever). A transport error is to be retried.
pub(crate) async fn send<S, ReqBody, ResBody>(
    svc: S,
    request: Option<Request<ReqBody>>,
    protocol: Protocol,
) -> CancelAnswer
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
{
    let Some(request) = request else {
        debug_assert!(false, "every protocol can build a CancelOperation request");
        return CancelAnswer::Failed(None);
    };
    let response = match svc.oneshot(request).await.map_err(Into::<BoxError>::into) {
        Ok(response) => response,
        Err(e) => {
            tracing::debug!(error = %e, "cancel attempt failed in transport");
            return CancelAnswer::Retry(None);
        }
    };
    classify(protocol, response).await
}

/// Classifies a cancel answer: the head, then if the protocol asks, the
/// body (bounded) and trailers.
async fn classify<B>(protocol: Protocol, response: Response<B>) -> CancelAnswer
where
    B: Body<Data = Bytes>,
{
    let (parts, body) = response.into_parts();
    let head = Response::from_parts(parts, ());
    let limit = match protocol.cancel_head(&head) {
        CancelHead::Answer(answer) => return answer,
        CancelHead::Read(limit) => limit,
    };
    let (data, trailers) = read_to_end(body, limit).await.unwrap_or_default();
    protocol.cancel_body(&head, &data, trailers.as_ref())
}
