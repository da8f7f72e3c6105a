//! Unary `google.longrunning.Operations` requests: GetOperation,
//! WaitOperation and CancelOperation, built from the original call.

use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, CONTENT_TYPE, TE};
use http::{Method, Request, Version};

use super::frame;
use super::messages::{CancelOperationRequest, GetOperationRequest, WaitOperationRequest};
use super::route::{Route, GET_TIMEOUT};
use crate::operation::OperationName;
use crate::protocol::Rpc;
use crate::request_body::RequestBody;

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

/// The `:path` of `rpc`.
pub(crate) fn path(rpc: Rpc) -> &'static str {
    match rpc {
        Rpc::Get => "/google.longrunning.Operations/GetOperation",
        Rpc::Wait(_) => "/google.longrunning.Operations/WaitOperation",
        Rpc::Cancel => "/google.longrunning.Operations/CancelOperation",
    }
}

/// The unary call `rpc` for `name` on `route`, carrying `headers` (the
/// original call's allowlisted metadata and `x-goog-request-params`); `None`
/// if the body type `B` cannot carry a message.
///
/// A POST to `/google.longrunning.Operations/{Method}` on the original
/// call's scheme and authority, HTTP/2, with `content-type:
/// application/grpc`, `te: trailers` and `grpc-timeout` (gRPC over HTTP/2
/// protocol document, "Requests"): the cancel policy's attempt timeout for
/// CancelOperation, 30 s for GetOperation, and the wait plus 30 s for
/// WaitOperation (whose `timeout` field is the wait).
pub(crate) fn build<B: RequestBody>(
    route: &Route,
    rpc: Rpc,
    name: &OperationName,
    headers: HeaderMap,
) -> Option<Request<B>> {
    let name = name.as_str().to_owned();
    let (message, timeout) = match rpc {
        Rpc::Get => (
            frame::encode_message(&GetOperationRequest { name }),
            GET_TIMEOUT,
        ),
        Rpc::Cancel => (
            frame::encode_message(&CancelOperationRequest { name }),
            route.cancel_timeout,
        ),
        Rpc::Wait(wait) => (
            frame::encode_message(&WaitOperationRequest {
                name,
                timeout: Some(prost_types::Duration {
                    seconds: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(wait.subsec_nanos()).unwrap_or(0),
                }),
            }),
            wait.saturating_add(GET_TIMEOUT),
        ),
    };
    let mut request = Request::new(B::from_bytes(message)?);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = route.uri(path(rpc));
    *request.version_mut() = Version::HTTP_2;
    let out = request.headers_mut();
    *out = headers;
    out.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    out.insert(TE, HeaderValue::from_static("trailers"));
    out.insert("grpc-timeout", grpc_timeout(timeout));
    Some(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::grpc::messages;
    use bytes::Bytes;
    use http::Uri;
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
    fn builds_a_cancel_on_the_same_authority() {
        let uri: Uri = "http://deploy.example:443/google.cloud.deploy.v1.CloudDeploy/CreateRelease"
            .parse()
            .unwrap();
        let route = Route::new(&uri, None, Duration::from_secs(5));
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer t"));
        headers.insert("x-goog-request-params", name().request_params());
        let request: Request<Bytes> = build(&route, Rpc::Cancel, &name(), headers).unwrap();
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
        let route = Route::new(
            &Uri::from_static("/a.b.v1.S/M"),
            None,
            Duration::from_secs(3),
        );
        let headers = HeaderMap::new();
        let get: Request<Bytes> = build(&route, Rpc::Get, &name(), headers.clone()).unwrap();
        assert_eq!(get.uri(), "/google.longrunning.Operations/GetOperation");
        assert_eq!(get.headers()["grpc-timeout"], "30000000u");
        let wait: Request<Bytes> = build(
            &route,
            Rpc::Wait(Duration::from_millis(1500)),
            &name(),
            headers.clone(),
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
        // A body type that cannot carry a message: no request.
        let empty: Option<Request<http_body_util::Empty<Bytes>>> =
            build(&route, Rpc::Get, &name(), headers);
        assert!(empty.is_none());
    }
}
