//! Reading gRPC answers to GetOperation, WaitOperation and
//! CancelOperation: the status from a trailers-only head or from the
//! trailers (gRPC over HTTP/2 protocol document, "Responses"), and the
//! Operation in the one message.

use http::{HeaderMap, Response};
use tracing::Span;

use super::recognise::{error_of, recognise};
use super::status::{code, Class, GrpcStatus};
use crate::operation::{Operation, OperationName, Status};
use crate::protocol::{CancelAnswer, CancelHead, PollBody, PollHead, WireStatus};

/// How much of a cancel answer (an `google.protobuf.Empty` message) is read
/// before its trailers.
const CANCEL_BODY_LIMIT: usize = 64 * 1024;

/// The status in a head, if the head holds one: a non-200 HTTP status, or
/// a trailers-only answer (`grpc-status` in the head).
fn head_status(head: &Response<()>) -> Option<GrpcStatus> {
    let trailers_only = head.headers().contains_key("grpc-status");
    (head.status() != http::StatusCode::OK || trailers_only)
        .then(|| GrpcStatus::read(head.status(), head.headers(), None))
}

/// The status of a complete answer: its trailers (an answer that ends
/// without trailers has no status: `UNKNOWN`).
fn trailer_status(trailers: Option<&HeaderMap>) -> GrpcStatus {
    let empty = HeaderMap::new();
    GrpcStatus::read(http::StatusCode::OK, trailers.unwrap_or(&empty), None)
}

/// A poll answer's head: a trailers-only or non-200 answer is classified
/// now (UNIMPLEMENTED to a WaitOperation: wait is unsupported); otherwise
/// read the message and trailers.
pub(crate) fn poll_head(head: &Response<()>, waiting: bool) -> PollHead {
    let Some(status) = head_status(head) else {
        return PollHead::Read;
    };
    let wire = WireStatus::Grpc(status.code);
    wire.record(&Span::current());
    match status.class() {
        Class::Ok => PollHead::Read,
        Class::Unimplemented if waiting => PollHead::WaitUnsupported,
        Class::Transient { retry_after, .. } => PollHead::Transient(wire, retry_after),
        Class::NotFound | Class::Unimplemented | Class::Failed { .. } => PollHead::Failed(wire),
    }
}

/// A complete poll answer: the trailers' status, then the one message,
/// which must be the Operation `name`.
pub(crate) fn poll_body(
    name: &OperationName,
    body: &[u8],
    trailers: Option<&HeaderMap>,
) -> PollBody {
    let status = trailer_status(trailers);
    let wire = WireStatus::Grpc(status.code);
    wire.record(&Span::current());
    match status.class() {
        Class::Ok => {}
        Class::Transient { retry_after, .. } => return PollBody::Transient(wire, retry_after),
        Class::Unimplemented => return PollBody::Unimplemented(wire),
        _ => return PollBody::Failed(wire),
    }
    let operation = match recognise(body) {
        Ok(operation) => operation,
        Err(e) => return PollBody::Invalid(e.to_string()),
    };
    if operation.name != name.as_str() {
        return PollBody::Invalid("the name is another operation's".to_owned());
    }
    if !operation.done {
        return PollBody::NotDone;
    }
    let code = error_of(&operation).map_or(code::OK, |(c, _)| c);
    PollBody::Done { code }
}

/// A cancel answer's head: a trailers-only or non-200 answer is final now;
/// otherwise read the (empty) message and the trailers.
pub(crate) fn cancel_head(head: &Response<()>) -> CancelHead {
    match head_status(head) {
        Some(status) => {
            WireStatus::Grpc(status.code).record(&Span::current());
            CancelHead::Answer(cancel_answer(&status))
        }
        None => CancelHead::Read(CANCEL_BODY_LIMIT),
    }
}

/// A complete cancel answer: its trailers' status.
pub(crate) fn cancel_body(trailers: Option<&HeaderMap>) -> CancelAnswer {
    let status = trailer_status(trailers);
    WireStatus::Grpc(status.code).record(&Span::current());
    cancel_answer(&status)
}

fn cancel_answer(status: &GrpcStatus) -> CancelAnswer {
    match status.class() {
        Class::Ok => CancelAnswer::Accepted,
        Class::NotFound => CancelAnswer::NotFound,
        Class::Unimplemented => CancelAnswer::Unimplemented,
        Class::Transient { retry_after, .. } => CancelAnswer::Retry(retry_after),
        Class::Failed { code, .. } => CancelAnswer::Failed(Some(WireStatus::Grpc(code))),
    }
}

/// The Operation of a poll answer, for `on_progress`: name, done, error and
/// the metadata as a protobuf `Any` (the JSON `metadata` and `response` stay
/// `None`).
pub(crate) fn operation(body: &[u8]) -> Option<Operation> {
    let decoded = recognise(body).ok()?;
    let error = error_of(&decoded).map(|(code, message)| Status {
        code,
        message: message.to_owned(),
    });
    Some(Operation {
        name: decoded.name,
        done: decoded.done,
        error,
        metadata: None,
        response: None,
        grpc_metadata: decoded.metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc::frame;
    use crate::protocol::grpc::messages::{self, OperationResult};
    use http::HeaderValue;
    use std::time::Duration;

    fn head(grpc_status: Option<&'static str>) -> Response<()> {
        let mut head = Response::new(());
        head.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        if let Some(s) = grpc_status {
            head.headers_mut()
                .insert("grpc-status", HeaderValue::from_static(s));
        }
        head
    }

    fn trailers(code: &'static str) -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static(code));
        t
    }

    fn name() -> OperationName {
        OperationName::parse("projects/p/locations/l/operations/op-1").unwrap()
    }

    fn framed(done: bool, error: Option<i32>) -> bytes::Bytes {
        frame::encode_message(&messages::Operation {
            name: name().as_str().into(),
            done,
            result: error.map(|code| {
                OperationResult::Error(messages::Status {
                    code,
                    message: "m".into(),
                    details: vec![],
                })
            }),
            ..Default::default()
        })
    }

    #[test]
    fn poll_heads() {
        assert!(matches!(poll_head(&head(None), false), PollHead::Read));
        assert!(matches!(
            poll_head(&head(Some("12")), true),
            PollHead::WaitUnsupported
        ));
        assert!(matches!(
            poll_head(&head(Some("12")), false),
            PollHead::Failed(WireStatus::Grpc(12))
        ));
        assert!(matches!(
            poll_head(&head(Some("14")), false),
            PollHead::Transient(WireStatus::Grpc(14), None)
        ));
        assert!(matches!(
            poll_head(&head(Some("5")), false),
            PollHead::Failed(WireStatus::Grpc(5))
        ));
        let mut bad_gateway = head(None);
        *bad_gateway.status_mut() = http::StatusCode::BAD_GATEWAY;
        assert!(matches!(
            poll_head(&bad_gateway, false),
            PollHead::Transient(WireStatus::Grpc(14), _)
        ));
    }

    #[test]
    fn poll_bodies() {
        let ok = trailers("0");
        assert!(matches!(
            poll_body(&name(), &framed(false, None), Some(&ok)),
            PollBody::NotDone
        ));
        assert!(matches!(
            poll_body(&name(), &framed(true, Some(1)), Some(&ok)),
            PollBody::Done {
                code: crate::operation::Status::CANCELLED
            }
        ));
        assert!(matches!(
            poll_body(&name(), &framed(true, None), Some(&ok)),
            PollBody::Done { code: code::OK }
        ));
        let other = OperationName::parse("projects/p/locations/l/operations/op-2").unwrap();
        assert!(matches!(
            poll_body(&other, &framed(false, None), Some(&ok)),
            PollBody::Invalid(_)
        ));
        let body = framed(false, None);
        assert!(matches!(
            poll_body(&name(), &body[..body.len() - 1], Some(&ok)),
            PollBody::Invalid(_)
        ));
        assert!(matches!(
            poll_body(&name(), &body, None),
            PollBody::Failed(WireStatus::Grpc(2))
        ));
        let mut retry = trailers("8");
        let details = super::super::status::retry_details(8, "slow down", Duration::from_secs(3));
        retry.insert(
            "grpc-status-details-bin",
            HeaderValue::from_str(&details).unwrap(),
        );
        assert!(matches!(
            poll_body(&name(), b"", Some(&retry)),
            PollBody::Transient(WireStatus::Grpc(8), Some(d)) if d == Duration::from_secs(3)
        ));
    }

    #[test]
    fn cancel_answers() {
        assert!(matches!(cancel_head(&head(None)), CancelHead::Read(_)));
        assert!(matches!(
            cancel_head(&head(Some("5"))),
            CancelHead::Answer(CancelAnswer::NotFound)
        ));
        assert!(matches!(
            cancel_head(&head(Some("12"))),
            CancelHead::Answer(CancelAnswer::Unimplemented)
        ));
        assert!(matches!(
            cancel_head(&head(Some("4"))),
            CancelHead::Answer(CancelAnswer::Retry(None))
        ));
        assert!(matches!(
            cancel_head(&head(Some("7"))),
            CancelHead::Answer(CancelAnswer::Failed(Some(WireStatus::Grpc(7))))
        ));
        assert_eq!(cancel_body(Some(&trailers("0"))), CancelAnswer::Accepted);
        assert_eq!(
            cancel_body(Some(&trailers("14"))),
            CancelAnswer::Retry(None)
        );
    }

    #[test]
    fn progress_operations_carry_name_done_and_error() {
        let op = operation(&framed(true, Some(1))).unwrap();
        assert_eq!(op.name, name().as_str());
        assert!(op.is_cancelled());
    }
}
