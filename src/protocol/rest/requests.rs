//! The REST requests of AIP-151's HTTP mapping: `GET {prefix}{name}`,
//! `POST {prefix}{name}:wait` with `{"timeout": "Ns"}`, and
//! `POST {prefix}{name}:cancel` with an empty body and `content-length: 0`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Uri};

use super::routes::Route;
use crate::protocol::Rpc;
use crate::request_body::RequestBody;

/// The request for `rpc` on `route`, with `headers`; `None` for a
/// WaitOperation without a wait route or whose body `B` cannot carry.
pub(crate) fn build<B: RequestBody>(
    route: &Route,
    rpc: Rpc,
    headers: HeaderMap,
) -> Option<Request<B>> {
    match rpc {
        Rpc::Get => Some(get_operation(route.get.clone(), headers)),
        Rpc::Wait(timeout) => {
            let uri = route.wait.clone()?;
            let body = B::from_bytes(wait_body(timeout))?;
            let mut request = request(Method::POST, uri, body, headers);
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Some(request)
        }
        Rpc::Cancel => {
            // The method is POST (AIP-151) unless a route function chose
            // otherwise; the body must be empty.
            let mut request = request(
                route.cancel_method.clone(),
                route.cancel.clone(),
                B::empty(),
                headers,
            );
            request
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            Some(request)
        }
    }
}

/// `GET uri` with an empty body and `headers`: the one GetOperation request,
/// for polling, for verifying a cancel and for resuming by name.
pub(crate) fn get_operation<B: RequestBody>(uri: Uri, headers: HeaderMap) -> Request<B> {
    request(Method::GET, uri, B::empty(), headers)
}

fn request<B>(method: Method, uri: Uri, body: B, headers: HeaderMap) -> Request<B> {
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request
}

/// The WaitOperation request body for `timeout`: protobuf JSON's `Duration`
/// (seconds with an `s` suffix).
fn wait_body(timeout: Duration) -> Bytes {
    format!(r#"{{"timeout":"{}s"}}"#, timeout.as_secs_f64()).into()
}
