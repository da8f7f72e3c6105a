//! Reading REST answers: which responses may hold an Operation, what a poll
//! answer says, and how a cancel was answered (HTTP statuses per AIP-193's
//! mapping of `google.rpc.Code`, `Retry-After` per RFC 9110 §10.2.3).

use http::{Response, StatusCode};
use tracing::Span;

use super::recognise::short_json_error;
use super::view::peek;
use crate::operation::{Operation, OperationName};
use crate::protocol::{CancelAnswer, CancelHead, PollBody, PollHead, WireStatus};
use crate::retry::retry_after;

/// How much of a non-2xx cancel answer is read to find an AIP-193 status.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Whether the layer reads a response to look for an Operation: 2xx,
/// `application/json` (any parameters), no `content-encoding` but identity.
pub(crate) fn inspectable<B>(response: &Response<B>) -> bool {
    if !response.status().is_success() {
        return false;
    }
    let headers = response.headers();
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return false;
    }
    match headers.get(http::header::CONTENT_ENCODING) {
        None => true,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"identity") => true,
        Some(v) => {
            tracing::warn!(
                content_encoding = ?v,
                "JSON response with a content-encoding the layer does not decode; not inspected, not tracked"
            );
            false
        }
    }
}

/// Whether an HTTP status is worth retrying: 429, 502, 503, 504
/// (`RESOURCE_EXHAUSTED` and `UNAVAILABLE` in AIP-193's mapping).
pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// `google.rpc.Code` `UNKNOWN`.
const UNKNOWN: i32 = 2;

/// The gRPC status of an answer that is a gRPC answer, not a REST one: a
/// `grpc-status` other than `0`, or a `content-type: application/grpc…`
/// (the origin speaks gRPC: the request went down the wrong wire; its
/// status then, or `UNKNOWN` if it is in trailers). `None` for a REST
/// answer. A 2xx is a REST success only without either.
fn grpc_answer(head: &Response<()>) -> Option<WireStatus> {
    let headers = head.headers();
    let code = headers.get("grpc-status").map(|v| {
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .unwrap_or(UNKNOWN)
    });
    let grpc_type = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    match code {
        Some(code) if code != 0 => Some(WireStatus::Grpc(code)),
        _ if grpc_type => Some(WireStatus::Grpc(code.unwrap_or(UNKNOWN))),
        _ => None,
    }
}

/// A 2xx answered as gRPC: recorded and logged, never a success.
fn wrong_wire(head: &Response<()>, rpc: &str) -> Option<WireStatus> {
    let status = grpc_answer(head)?;
    status.record(&Span::current());
    tracing::warn!(
        %status,
        "REST {rpc} answered as gRPC: the origin speaks gRPC (use a gRPC origin); not a success"
    );
    Some(status)
}

/// A poll answer's head: 2xx is read (unless it is a gRPC answer: failed);
/// 404 and 501 to a WaitOperation mean it is not implemented; 429, 502–504
/// are transient; the rest fail.
pub(crate) fn poll_head(head: &Response<()>, waiting: bool) -> PollHead {
    let status = head.status();
    WireStatus::Http(status).record(&Span::current());
    if waiting && matches!(status, StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED) {
        PollHead::WaitUnsupported
    } else if status.is_success() {
        match wrong_wire(head, "GetOperation") {
            Some(grpc) => PollHead::Failed(grpc),
            None => PollHead::Read,
        }
    } else if is_transient(status) {
        PollHead::Transient(WireStatus::Http(status), retry_after(head.headers()))
    } else {
        PollHead::Failed(WireStatus::Http(status))
    }
}

/// A complete 2xx poll answer: the Operation `name`, done or not.
pub(crate) fn poll_body(name: &OperationName, body: &[u8]) -> PollBody {
    let view = match peek(body) {
        Ok(view) => view,
        Err(e) => return PollBody::Invalid(short_json_error(&e)),
    };
    if view.name.as_deref().is_some_and(|n| n != name.as_str()) {
        return PollBody::Invalid("the name is another operation's".to_owned());
    }
    if !view.done {
        return PollBody::NotDone;
    }
    let code = Operation::from_json(body).map_or(0, |op| op.error.map_or(0, |e| e.code));
    PollBody::Done { code }
}

/// A cancel answer's head: 2xx accepted (unless it is a gRPC answer — a
/// gRPC content type or a `grpc-status` other than 0: failed), 404 not
/// found, 501 unimplemented, 429 and 502–504 retried; other errors have
/// their body read for an AIP-193 `UNIMPLEMENTED` status.
pub(crate) fn cancel_head(head: &Response<()>) -> CancelHead {
    let status = head.status();
    WireStatus::Http(status).record(&Span::current());
    CancelHead::Answer(match status {
        s if s.is_success() => match wrong_wire(head, "CancelOperation") {
            Some(grpc) => CancelAnswer::Failed(Some(grpc)),
            None => CancelAnswer::Accepted,
        },
        StatusCode::NOT_FOUND => CancelAnswer::NotFound,
        StatusCode::NOT_IMPLEMENTED => CancelAnswer::Unimplemented,
        s if is_transient(s) => CancelAnswer::Retry(retry_after(head.headers())),
        _ => return CancelHead::Read(ERROR_BODY_LIMIT),
    })
}

/// A cancel error answer's body: an AIP-193 `"status": "UNIMPLEMENTED"` is
/// unimplemented, anything else failed.
pub(crate) fn cancel_body(head: &Response<()>, body: &[u8]) -> CancelAnswer {
    if error_status_is(body, "UNIMPLEMENTED") {
        CancelAnswer::Unimplemented
    } else {
        CancelAnswer::Failed(Some(WireStatus::Http(head.status())))
    }
}

/// Whether an AIP-193 error body (`{"error": {"status": "..."}}`) has that status.
fn error_status_is(body: &[u8], expected: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        error: Inner<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        status: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Envelope<'_>>(body)
        .ok()
        .and_then(|e| e.error.status)
        .is_some_and(|s| s == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Status;

    #[test]
    fn aip193_status_is_read() {
        assert!(error_status_is(
            br#"{"error":{"code":400,"message":"no","status":"UNIMPLEMENTED"}}"#,
            "UNIMPLEMENTED"
        ));
        assert!(!error_status_is(
            br#"{"error":{"code":400,"status":"INVALID_ARGUMENT"}}"#,
            "UNIMPLEMENTED"
        ));
        assert!(!error_status_is(b"not json", "UNIMPLEMENTED"));
    }

    #[test]
    fn a_grpc_answer_is_never_a_rest_success() {
        let head = |headers: &[(&str, &str)]| {
            let mut b = Response::builder().status(200);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let ok =
            |h: &Response<()>| matches!(cancel_head(h), CancelHead::Answer(CancelAnswer::Accepted));
        assert!(ok(&head(&[])));
        assert!(ok(&head(&[("content-type", "application/json")])));
        // tonic's answer to an unknown path: trailers-only UNIMPLEMENTED.
        let tonic = head(&[("content-type", "application/grpc"), ("grpc-status", "12")]);
        assert!(matches!(
            cancel_head(&tonic),
            CancelHead::Answer(CancelAnswer::Failed(Some(WireStatus::Grpc(12))))
        ));
        assert!(!ok(&head(&[("content-type", "application/grpc+proto")])));
        assert!(!ok(&head(&[
            ("content-type", "application/grpc"),
            ("grpc-status", "0")
        ])));
        assert!(!ok(&head(&[("grpc-status", "5")])));
        assert!(!ok(&head(&[("grpc-status", "x")])));
        assert!(matches!(
            poll_head(&tonic, false),
            PollHead::Failed(WireStatus::Grpc(12))
        ));
        assert!(matches!(
            poll_head(&head(&[("grpc-status", "0")]), false),
            PollHead::Read
        ));
    }

    #[test]
    fn poll_answers_are_classified() {
        let head = |status: u16| Response::builder().status(status).body(()).unwrap();
        assert!(matches!(poll_head(&head(200), false), PollHead::Read));
        assert!(matches!(
            poll_head(&head(404), true),
            PollHead::WaitUnsupported
        ));
        assert!(matches!(poll_head(&head(404), false), PollHead::Failed(_)));
        assert!(matches!(
            poll_head(&head(503), false),
            PollHead::Transient(_, None)
        ));
        let name = OperationName::parse("operations/x").unwrap();
        assert!(matches!(
            poll_body(&name, br#"{"name":"operations/x"}"#),
            PollBody::NotDone
        ));
        assert!(matches!(
            poll_body(
                &name,
                br#"{"name":"operations/x","done":true,"error":{"code":1}}"#
            ),
            PollBody::Done {
                code: Status::CANCELLED
            }
        ));
        assert!(matches!(
            poll_body(&name, br#"{"name":"operations/y"}"#),
            PollBody::Invalid(_)
        ));
    }
}
