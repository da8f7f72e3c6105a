//! Unary `google.longrunning.Operations` requests: GetOperation,
//! WaitOperation and CancelOperation, built from the original call.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, TE};
use http::uri::{Parts, PathAndQuery, Uri};
use http::{Method, Request, Version};

use super::frame;
use super::messages::{CancelOperationRequest, GetOperationRequest, WaitOperationRequest};
use crate::operation::OperationName;

/// The `google.longrunning.Operations` methods the layer calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OperationsMethod {
    /// `GetOperation`.
    Get,
    /// `WaitOperation`.
    Wait,
    /// `CancelOperation`.
    Cancel,
}

impl OperationsMethod {
    /// The HTTP/2 `:path`.
    pub(crate) fn path(self) -> &'static str {
        match self {
            OperationsMethod::Get => "/google.longrunning.Operations/GetOperation",
            OperationsMethod::Wait => "/google.longrunning.Operations/WaitOperation",
            OperationsMethod::Cancel => "/google.longrunning.Operations/CancelOperation",
        }
    }

    /// The method name alone (`GetOperation`), for the `rpc.method` span field.
    pub(crate) fn name(self) -> &'static str {
        self.path().rsplit('/').next().unwrap_or("")
    }
}

/// The `rpc.service` of every request the layer sends.
pub(crate) const OPERATIONS_SERVICE: &str = "google.longrunning.Operations";

/// The `grpc-timeout` header value for `timeout` (gRPC over HTTP/2 protocol
/// document, "Requests": `TimeoutValue TimeoutUnit`, at most 8 digits):
/// the finest unit (`n`, `u`, `m`, `S`, `M`, `H`) whose value fits, rounded
/// up so the server never sees a shorter deadline than the layer's.
pub(crate) fn grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let units: [(u128, &str); 6] = [
        (1, "n"),
        (1_000, "u"),
        (1_000_000, "m"),
        (1_000_000_000, "S"),
        (60_000_000_000, "M"),
        (3_600_000_000_000, "H"),
    ];
    for (per, unit) in units {
        let value = nanos.div_ceil(per);
        if value <= MAX {
            return HeaderValue::from_str(&format!("{value}{unit}"))
                .unwrap_or(HeaderValue::from_static("99999999H"));
        }
    }
    HeaderValue::from_static("99999999H")
}

/// What every request for one operation shares.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    /// The original call's URI: its scheme and authority (either may be
    /// absent, as in a tonic `Channel`, which adds its own origin) are kept;
    /// the path is replaced.
    pub(crate) uri: &'a Uri,
    /// The original call's HTTP version.
    pub(crate) version: Version,
    /// The original call's headers, copied by allowlist only.
    pub(crate) headers: &'a HeaderMap,
    /// The allowlist.
    pub(crate) forward: &'a [HeaderName],
}

/// Builds a unary request for `name`.
///
/// `wait_timeout` is WaitOperation's `timeout` field (ignored for the
/// others); `attempt_timeout`, if any, is sent as `grpc-timeout`. The
/// request is a POST to `/google.longrunning.Operations/{Method}` on the
/// original call's scheme and authority, with `content-type:
/// application/grpc`, `te: trailers`, the allowlisted headers of the
/// original call, and `x-goog-request-params: name=<url-encoded name>`.
///
/// # Errors
///
/// An [`http::Error`] if the URI cannot be rebuilt (cannot happen for a URI
/// that parsed).
pub(crate) fn build(
    target: &Target<'_>,
    method: OperationsMethod,
    name: &OperationName,
    wait_timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
) -> Result<Request<Bytes>, http::Error> {
    let body = match method {
        OperationsMethod::Get => frame::encode_message(&GetOperationRequest {
            name: name.as_str().to_owned(),
        }),
        OperationsMethod::Cancel => frame::encode_message(&CancelOperationRequest {
            name: name.as_str().to_owned(),
        }),
        OperationsMethod::Wait => frame::encode_message(&WaitOperationRequest {
            name: name.as_str().to_owned(),
            timeout: wait_timeout.map(|d| prost_types::Duration {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
            }),
        }),
    };
    let mut parts = Parts::default();
    parts.scheme = target.uri.scheme().cloned();
    parts.authority = target.uri.authority().cloned();
    parts.path_and_query = Some(PathAndQuery::from_static(method.path()));
    let uri = Uri::from_parts(parts)?;

    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .version(target.version)
        .body(body)?;
    let headers = request.headers_mut();
    for name in target.forward {
        for value in target.headers.get_all(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert("x-goog-request-params", name.request_params());
    if let Some(timeout) = attempt_timeout {
        headers.insert("grpc-timeout", grpc_timeout(timeout));
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc::messages;
    use prost::Message as _;

    fn name() -> OperationName {
        OperationName::parse("projects/p/locations/us-central1/operations/op-1.a~b").unwrap()
    }

    #[test]
    fn formats_grpc_timeouts() {
        let t = |d| grpc_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(t(Duration::from_nanos(5)), "5n");
        assert_eq!(t(Duration::from_millis(250)), "250000u");
        assert_eq!(t(Duration::from_secs(10)), "10000000u");
        assert_eq!(t(Duration::from_secs(100)), "100000m");
        assert_eq!(t(Duration::from_secs(200_000)), "200000S");
        assert_eq!(t(Duration::from_nanos(100_000_001)), "100001u");
        assert_eq!(t(Duration::MAX), "99999999H");
    }

    #[test]
    fn builds_a_cancel_on_the_same_authority_with_allowlisted_metadata() {
        let uri: Uri = "http://deploy.example:443/google.cloud.deploy.v1.CloudDeploy/CreateRelease"
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("cookie", HeaderValue::from_static("secret"));
        headers.insert("grpc-timeout", HeaderValue::from_static("1S"));
        let forward = [HeaderName::from_static("authorization")];
        let target = Target {
            uri: &uri,
            version: Version::HTTP_2,
            headers: &headers,
            forward: &forward,
        };
        let request = build(
            &target,
            OperationsMethod::Cancel,
            &name(),
            None,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri(),
            "http://deploy.example:443/google.longrunning.Operations/CancelOperation"
        );
        assert_eq!(request.version(), Version::HTTP_2);
        let h = request.headers();
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["grpc-timeout"], "5000000u");
        assert_eq!(h["authorization"], "Bearer t");
        assert!(h.get("cookie").is_none());
        assert_eq!(
            h["x-goog-request-params"],
            "name=projects%2Fp%2Flocations%2Fus-central1%2Foperations%2Fop-1.a~b"
        );
        let message = frame::decode_single(request.body()).unwrap();
        let decoded = messages::CancelOperationRequest::decode(message).unwrap();
        assert_eq!(decoded.name, name().as_str());
    }

    #[test]
    fn builds_get_and_wait_on_a_path_only_uri() {
        let uri: Uri = "/google.cloud.deploy.v1.CloudDeploy/CreateRelease"
            .parse()
            .unwrap();
        let headers = HeaderMap::new();
        let target = Target {
            uri: &uri,
            version: Version::HTTP_2,
            headers: &headers,
            forward: &[],
        };
        let get = build(&target, OperationsMethod::Get, &name(), None, None).unwrap();
        assert_eq!(get.uri(), "/google.longrunning.Operations/GetOperation");
        assert!(get.headers().get("grpc-timeout").is_none());
        let wait = build(
            &target,
            OperationsMethod::Wait,
            &name(),
            Some(Duration::from_millis(1500)),
            None,
        )
        .unwrap();
        assert_eq!(wait.uri(), "/google.longrunning.Operations/WaitOperation");
        let message = frame::decode_single(wait.body()).unwrap();
        let decoded = messages::WaitOperationRequest::decode(message).unwrap();
        assert_eq!(
            decoded.timeout,
            Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(OperationsMethod::Wait.name(), "WaitOperation");
    }
}
