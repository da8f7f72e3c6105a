//! Is a call a gRPC call to a long-running method, and is its answer an
//! `Operation`?

use http::header::{HeaderMap, CONTENT_TYPE};
use http::{Method, StatusCode, Uri, Version};
use prost::Message as _;

use super::frame::{self, FrameError};
use super::messages::{Operation, OperationResult};
use super::methods::GrpcLroMethods;
use super::status::GrpcStatus;
use crate::operation::OperationName;
use crate::protocol::{Protocol, ProtocolSettings, Target, Timing};

/// Whether `content-type` is `application/grpc` or `application/grpc+proto`
/// (ASCII case-insensitive; parameters after `;` allowed).
pub(crate) fn is_grpc_proto(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/grpc")
        || essence.eq_ignore_ascii_case("application/grpc+proto")
}

/// Whether a request is a candidate: HTTP/2 `POST /{package}.{Service}/{Method}`
/// with `content-type: application/grpc[+proto]`, for a method in `methods`.
pub(crate) fn is_candidate_request(
    method: &Method,
    version: Version,
    path: &str,
    headers: &HeaderMap,
    methods: &GrpcLroMethods,
) -> bool {
    *method == Method::POST
        && version == Version::HTTP_2
        && is_grpc_proto(headers)
        && methods.contains(path)
}

/// Whether an answer's head may precede an Operation: `200`, a gRPC
/// content type, and no `grpc-status` in the head (a trailers-only answer is
/// an error and has no message).
pub(crate) fn is_candidate_response(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::OK && is_grpc_proto(headers) && !headers.contains_key("grpc-status")
}

/// Why an answer's body is not a tracked Operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NotOperation {
    /// Not exactly one uncompressed message.
    Frame(FrameError),
    /// The message does not decode as `google.longrunning.Operation`.
    Decode(String),
    /// The Operation has no name.
    NoName,
}

impl std::fmt::Display for NotOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotOperation::Frame(e) => e.fmt(f),
            NotOperation::Decode(e) => write!(f, "not a google.longrunning.Operation: {e}"),
            NotOperation::NoName => f.write_str("the Operation has no name"),
        }
    }
}

/// Decodes a body that is one uncompressed Length-Prefixed-Message holding
/// a `google.longrunning.Operation` with a name.
///
/// # Errors
///
/// [`NotOperation`]: a frame error, a decode error, or an empty name.
pub(crate) fn recognise(body: &[u8]) -> Result<Operation, NotOperation> {
    let message = frame::decode_single(body).map_err(NotOperation::Frame)?;
    let operation = Operation::decode(message).map_err(|e| NotOperation::Decode(e.to_string()))?;
    if operation.name.is_empty() {
        return Err(NotOperation::NoName);
    }
    Ok(operation)
}

/// The not-done operation a complete answer holds: one uncompressed
/// message decoding as a named `google.longrunning.Operation`, trailers (if
/// any) saying `OK`, not done, with a valid name. `None` otherwise, with a
/// `debug` event (done, no message) or a `warn` event (anything else).
pub(crate) fn target(
    origin: &Uri,
    settings: &ProtocolSettings,
    timing: Timing,
    body: &[u8],
    trailers: Option<&HeaderMap>,
) -> Option<Target> {
    if let Some(trailers) = trailers {
        let status = GrpcStatus::read(StatusCode::OK, trailers, None);
        if status.code != 0 {
            tracing::debug!(grpc.status = status.code, "gRPC call failed; not tracked");
            return None;
        }
    }
    let operation = match recognise(body) {
        Ok(operation) => operation,
        Err(NotOperation::Frame(FrameError::Empty)) => {
            tracing::debug!("gRPC answer without a message; not tracked");
            return None;
        }
        Err(reason) => {
            tracing::warn!(%reason, "gRPC answer of a long-running method is not one Operation; passed through, not tracked");
            return None;
        }
    };
    if operation.done {
        tracing::debug!("operation already done; nothing to wait for");
        return None;
    }
    match OperationName::parse(&operation.name) {
        // A gRPC route cannot fail.
        Ok(name) => Target::new(Protocol::Grpc, name, origin, settings, timing).ok(),
        Err(error) => {
            tracing::warn!(%error, "gRPC Operation with an invalid name; passed through, not tracked");
            None
        }
    }
}

/// The `error` of a done Operation: code and message.
pub(crate) fn error_of(operation: &Operation) -> Option<(i32, &str)> {
    match &operation.result {
        Some(OperationResult::Error(status)) => Some((status.code, status.message.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc::messages::Status;
    use http::HeaderValue;

    fn grpc_headers(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn recognises_requests_to_table_methods_over_http2_only() {
        let methods = GrpcLroMethods::googleapis();
        let path = "/google.cloud.deploy.v1.CloudDeploy/CreateRelease";
        let grpc = grpc_headers("application/grpc");
        assert!(is_candidate_request(
            &Method::POST,
            Version::HTTP_2,
            path,
            &grpc,
            &methods
        ));
        let proto = grpc_headers("application/grpc+proto");
        assert!(is_candidate_request(
            &Method::POST,
            Version::HTTP_2,
            path,
            &proto,
            &methods
        ));
        let json = grpc_headers("application/grpc+json");
        assert!(!is_candidate_request(
            &Method::POST,
            Version::HTTP_2,
            path,
            &json,
            &methods
        ));
        assert!(!is_candidate_request(
            &Method::POST,
            Version::HTTP_11,
            path,
            &grpc,
            &methods
        ));
        assert!(!is_candidate_request(
            &Method::GET,
            Version::HTTP_2,
            path,
            &grpc,
            &methods
        ));
        let other = "/google.cloud.deploy.v1.CloudDeploy/GetRelease";
        assert!(!is_candidate_request(
            &Method::POST,
            Version::HTTP_2,
            other,
            &grpc,
            &methods
        ));
    }

    #[test]
    fn trailers_only_heads_are_not_candidates() {
        let mut h = grpc_headers("application/grpc");
        assert!(is_candidate_response(StatusCode::OK, &h));
        h.insert("grpc-status", HeaderValue::from_static("14"));
        assert!(!is_candidate_response(StatusCode::OK, &h));
        assert!(!is_candidate_response(
            StatusCode::BAD_GATEWAY,
            &grpc_headers("application/grpc")
        ));
    }

    #[test]
    fn recognises_one_named_operation_only() {
        let op = Operation {
            name: "projects/p/locations/l/operations/op-1".into(),
            done: true,
            result: Some(OperationResult::Error(Status {
                code: 1,
                message: "Operation was cancelled.".into(),
                details: vec![],
            })),
            ..Operation::default()
        };
        let framed = frame::encode_message(&op);
        let recognised = recognise(&framed).unwrap();
        assert_eq!(recognised, op);
        assert_eq!(error_of(&recognised), Some((1, "Operation was cancelled.")));

        assert_eq!(
            recognise(&framed[..framed.len() - 1]),
            Err(NotOperation::Frame(FrameError::Truncated))
        );
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(
            recognise(&compressed),
            Err(NotOperation::Frame(FrameError::Compressed))
        );
        assert_eq!(
            recognise(&frame::encode(&[0xff, 0xff]))
                .map_err(|e| matches!(e, NotOperation::Decode(_))),
            Err(true)
        );
        assert_eq!(
            recognise(&frame::encode_message(&Operation::default())),
            Err(NotOperation::NoName)
        );
    }
}
