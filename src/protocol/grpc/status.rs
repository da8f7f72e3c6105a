//! Reading a gRPC answer's status: `grpc-status`, `grpc-message` and
//! `grpc-status-details-bin` from the trailers, or from the head of a
//! trailers-only answer (gRPC over HTTP/2 protocol document, "Responses").

use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use percent_encoding::percent_decode;
use prost::Message as _;

use super::messages::{RetryInfo, Status, RETRY_INFO_TYPE};

/// `google.rpc.Code` values the layer acts on.
pub(crate) mod code {
    /// `OK`.
    pub(crate) const OK: i32 = 0;
    /// `UNKNOWN`.
    pub(crate) const UNKNOWN: i32 = 2;
    /// `DEADLINE_EXCEEDED`.
    pub(crate) const DEADLINE_EXCEEDED: i32 = 4;
    /// `NOT_FOUND`.
    pub(crate) const NOT_FOUND: i32 = 5;
    /// `PERMISSION_DENIED`.
    pub(crate) const PERMISSION_DENIED: i32 = 7;
    /// `RESOURCE_EXHAUSTED`.
    pub(crate) const RESOURCE_EXHAUSTED: i32 = 8;
    /// `UNIMPLEMENTED`.
    pub(crate) const UNIMPLEMENTED: i32 = 12;
    /// `INTERNAL`.
    pub(crate) const INTERNAL: i32 = 13;
    /// `UNAVAILABLE`.
    pub(crate) const UNAVAILABLE: i32 = 14;
    /// `UNAUTHENTICATED`.
    pub(crate) const UNAUTHENTICATED: i32 = 16;
}

/// The status of one gRPC answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrpcStatus {
    /// The `google.rpc.Code`.
    pub(crate) code: i32,
    /// `grpc-message`, percent-decoded (lossy UTF-8); empty if absent.
    pub(crate) message: String,
    /// The `google.rpc.RetryInfo.retry_delay` of `grpc-status-details-bin`.
    pub(crate) retry_delay: Option<Duration>,
}

/// What an answer means for the layer (the same outcomes as a REST answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// `OK`: the body holds the answer.
    Ok,
    /// `NOT_FOUND`.
    NotFound,
    /// `UNIMPLEMENTED`: the server has no such method (e.g. no WaitOperation).
    Unimplemented,
    /// `UNAVAILABLE`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`: retry, after
    /// the RetryInfo delay if the server gave one.
    Transient {
        /// The code.
        code: i32,
        /// `google.rpc.RetryInfo.retry_delay`.
        retry_after: Option<Duration>,
    },
    /// Any other code: give up.
    Failed {
        /// The code.
        code: i32,
        /// `grpc-message`.
        message: String,
    },
}

impl GrpcStatus {
    /// Reads the status of an answer: from `trailers` if they carry a
    /// `grpc-status`, else from the head (a trailers-only answer).
    ///
    /// An HTTP status other than 200 maps to a code as the gRPC "HTTP to
    /// gRPC Status Code Mapping" document says (400 `INTERNAL`, 401
    /// `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `UNIMPLEMENTED`,
    /// 429/502/503/504 `UNAVAILABLE`, others `UNKNOWN`); a missing or
    /// unparsable `grpc-status` is `UNKNOWN`.
    pub(crate) fn read(status: StatusCode, head: &HeaderMap, trailers: Option<&HeaderMap>) -> Self {
        if status != StatusCode::OK {
            return GrpcStatus {
                code: http_to_code(status),
                message: format!("HTTP status {}", status.as_u16()),
                retry_delay: None,
            };
        }
        let source = match trailers {
            Some(t) if t.contains_key("grpc-status") => t,
            _ => head,
        };
        let code = source
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(code::UNKNOWN);
        let message = source
            .get("grpc-message")
            .map(|v| {
                percent_decode(v.as_bytes())
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_default();
        let retry_delay = source
            .get("grpc-status-details-bin")
            .and_then(|v| retry_delay(v.as_bytes()));
        GrpcStatus {
            code,
            message,
            retry_delay,
        }
    }

    /// Classifies the status: OK, NOT_FOUND, UNIMPLEMENTED, transient
    /// (`UNAVAILABLE` 14, `RESOURCE_EXHAUSTED` 8, `DEADLINE_EXCEEDED` 4), or
    /// failed.
    pub(crate) fn class(&self) -> Class {
        match self.code {
            code::OK => Class::Ok,
            code::NOT_FOUND => Class::NotFound,
            code::UNIMPLEMENTED => Class::Unimplemented,
            code::UNAVAILABLE | code::RESOURCE_EXHAUSTED | code::DEADLINE_EXCEEDED => {
                Class::Transient {
                    code: self.code,
                    retry_after: self.retry_delay,
                }
            }
            code => Class::Failed {
                code,
                message: self.message.clone(),
            },
        }
    }
}

/// The gRPC code for a non-200 HTTP status.
fn http_to_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// The `RetryInfo.retry_delay` in a `grpc-status-details-bin` value: base64
/// (padded or not, as binary metadata may be sent either way) of a
/// `google.rpc.Status` whose `details` hold a `google.rpc.RetryInfo`.
/// `None` if the value does not decode, has no RetryInfo, or the delay is
/// negative.
pub(crate) fn retry_delay(value: &[u8]) -> Option<Duration> {
    let trimmed = value
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(&value[..0], |end| &value[..=end]);
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .ok()?;
    let status = Status::decode(bytes.as_slice()).ok()?;
    let info = status
        .details
        .iter()
        .find(|any| any.type_url == RETRY_INFO_TYPE)?;
    let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let secs = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

/// A `google.rpc.Status` (encoded) for `code`/`message` with a RetryInfo of
/// `delay` in its details.
#[cfg(test)]
pub(crate) fn retry_status(code: i32, message: &str, delay: Duration) -> Vec<u8> {
    let info = RetryInfo {
        retry_delay: Some(prost_types::Duration {
            seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
        }),
    };
    let status = Status {
        code,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: RETRY_INFO_TYPE.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    status.encode_to_vec()
}

/// A `grpc-status-details-bin` value (unpadded base64, as gRPC
/// implementations send binary metadata) of [`retry_status`].
#[cfg(test)]
pub(crate) fn retry_details(code: i32, message: &str, delay: Duration) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(retry_status(code, message, delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn reads_trailers_before_the_head() {
        let head = headers(&[("content-type", "application/grpc")]);
        let trailers = headers(&[("grpc-status", "0")]);
        let status = GrpcStatus::read(StatusCode::OK, &head, Some(&trailers));
        assert_eq!(status.class(), Class::Ok);
        // Trailers-only: the status is in the head.
        let head = headers(&[("grpc-status", "5"), ("grpc-message", "no%20such%20op")]);
        let status = GrpcStatus::read(StatusCode::OK, &head, None);
        assert_eq!(status.class(), Class::NotFound);
        assert_eq!(status.message, "no such op");
        // Trailers without grpc-status and a head without one: UNKNOWN, failed.
        let status = GrpcStatus::read(StatusCode::OK, &HeaderMap::new(), Some(&HeaderMap::new()));
        assert_eq!(status.code, code::UNKNOWN);
        assert!(matches!(status.class(), Class::Failed { code: 2, .. }));
    }

    #[test]
    fn classifies_every_code() {
        let class = |code: i32| {
            let h = headers(&[("grpc-status", &code.to_string())]);
            GrpcStatus::read(StatusCode::OK, &h, None).class()
        };
        assert_eq!(class(0), Class::Ok);
        assert_eq!(class(5), Class::NotFound);
        assert_eq!(class(12), Class::Unimplemented);
        for transient in [4, 8, 14] {
            assert_eq!(
                class(transient),
                Class::Transient {
                    code: transient,
                    retry_after: None
                }
            );
        }
        for failed in [1, 2, 3, 6, 7, 9, 10, 11, 13, 15, 16, 17, -1] {
            assert!(matches!(class(failed), Class::Failed { code, .. } if code == failed));
        }
    }

    #[test]
    fn maps_http_statuses() {
        let code = |s: u16| {
            GrpcStatus::read(StatusCode::from_u16(s).unwrap(), &HeaderMap::new(), None).code
        };
        assert_eq!(code(404), code::UNIMPLEMENTED);
        assert_eq!(code(503), code::UNAVAILABLE);
        assert_eq!(code(429), code::UNAVAILABLE);
        assert_eq!(code(500), code::UNKNOWN);
    }

    #[test]
    fn honours_retry_info_padded_or_not() {
        let details = retry_details(14, "busy", Duration::from_millis(1500));
        let h = headers(&[("grpc-status", "14"), ("grpc-status-details-bin", &details)]);
        let status = GrpcStatus::read(StatusCode::OK, &h, None);
        assert_eq!(
            status.class(),
            Class::Transient {
                code: 14,
                retry_after: Some(Duration::from_millis(1500))
            }
        );
        let status_bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&details)
            .unwrap();
        let padded = base64::engine::general_purpose::STANDARD.encode(status_bytes);
        assert_eq!(
            retry_delay(padded.as_bytes()),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn ignores_bad_details() {
        assert_eq!(retry_delay(b"!!!"), None);
        assert_eq!(retry_delay(b""), None);
        let no_retry_info = Status {
            code: 14,
            message: String::new(),
            details: vec![],
        };
        let value = base64::engine::general_purpose::STANDARD.encode(no_retry_info.encode_to_vec());
        assert_eq!(retry_delay(value.as_bytes()), None);
        let negative = Status {
            code: 14,
            message: String::new(),
            details: vec![prost_types::Any {
                type_url: RETRY_INFO_TYPE.into(),
                value: RetryInfo {
                    retry_delay: Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    }),
                }
                .encode_to_vec(),
            }],
        };
        let value = base64::engine::general_purpose::STANDARD.encode(negative.encode_to_vec());
        assert_eq!(retry_delay(value.as_bytes()), None);
    }
}
