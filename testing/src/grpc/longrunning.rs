//! The protobuf messages of `google.longrunning.Operations` and
//! `google.rpc` the server reads and writes, derived with `prost` (no
//! `protoc` at build time).
//!
//! Field numbers and types follow `google/longrunning/operations.proto`,
//! `google/rpc/status.proto` and `google/rpc/error_details.proto` of the
//! public googleapis repository. `google.protobuf.Any` and
//! `google.protobuf.Duration` come from `prost-types`.

use prost_types::{Any, Duration};

/// `google.longrunning.Operation`: {1 name, 2 metadata, 3 done, 4 error,
/// 5 response}; `error` and `response` are the `result` oneof.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Operation {
    /// The server-assigned name, e.g. `projects/p/locations/l/operations/op-1`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Service-specific progress metadata.
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<Any>,
    /// Whether the operation is finished (`error` or `response` is set).
    #[prost(bool, tag = "3")]
    pub done: bool,
    /// The result: an error or a response.
    #[prost(oneof = "OperationResult", tags = "4, 5")]
    pub result: Option<OperationResult>,
}

/// The `result` oneof of [`Operation`].
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum OperationResult {
    /// 4: the operation failed (or was cancelled: code 1).
    #[prost(message, tag = "4")]
    Error(Status),
    /// 5: the operation succeeded.
    #[prost(message, tag = "5")]
    Response(Any),
}

/// `google.rpc.Status`: {1 code, 2 message, 3 details}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    /// A `google.rpc.Code` value.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// A developer-facing message, in English.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Error details such as [`RetryInfo`].
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<Any>,
}

/// `google.rpc.RetryInfo`: {1 retry_delay}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RetryInfo {
    /// How long the client should wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<Duration>,
}

/// The type URL of [`RetryInfo`] in a `google.rpc.Status.details` entry.
pub const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// A `google.rpc.Status` (encoded) for `code`/`message` with a RetryInfo of
/// `delay` in its details: the `grpc-status-details-bin` of a fault.
pub(crate) fn retry_status(code: i32, message: &str, delay: std::time::Duration) -> Vec<u8> {
    use prost::Message as _;
    let info = RetryInfo {
        retry_delay: Some(Duration {
            seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
        }),
    };
    let status = Status {
        code,
        message: message.to_owned(),
        details: vec![Any {
            type_url: RETRY_INFO_TYPE.to_owned(),
            value: info.encode_to_vec(),
        }],
    };
    status.encode_to_vec()
}

/// The message of a unary gRPC request body: one uncompressed
/// Length-Prefixed-Message (gRPC over HTTP/2), nothing after it.
pub(crate) fn single_message(body: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = body.split_first()?;
    let (len, message) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (flag == 0 && message.len() == len).then_some(message)
}

/// `google.longrunning.GetOperationRequest`: {1 name}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetOperationRequest {
    /// The operation's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `google.longrunning.CancelOperationRequest`: {1 name}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CancelOperationRequest {
    /// The operation's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `google.longrunning.DeleteOperationRequest`: {1 name}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteOperationRequest {
    /// The operation's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `google.longrunning.WaitOperationRequest`: {1 name, 2 timeout}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WaitOperationRequest {
    /// The operation's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The longest the server should wait before answering.
    #[prost(message, optional, tag = "2")]
    pub timeout: Option<Duration>,
}

/// `google.longrunning.ListOperationsRequest`: {4 name, 1 filter,
/// 2 page_size, 3 page_token}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOperationsRequest {
    /// The collection, e.g. `projects/p/locations/l/operations`.
    #[prost(string, tag = "4")]
    pub name: String,
    /// An AIP-160 filter.
    #[prost(string, tag = "1")]
    pub filter: String,
    /// AIP-158 page size (0: the server's default).
    #[prost(int32, tag = "2")]
    pub page_size: i32,
    /// AIP-158 page token.
    #[prost(string, tag = "3")]
    pub page_token: String,
}

/// `google.longrunning.ListOperationsResponse`: {1 operations,
/// 2 next_page_token}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListOperationsResponse {
    /// One page of operations.
    #[prost(message, repeated, tag = "1")]
    pub operations: Vec<Operation>,
    /// The token of the next page; empty on the last page.
    #[prost(string, tag = "2")]
    pub next_page_token: String,
}

/// `google.protobuf.Empty`: the answer to CancelOperation and
/// DeleteOperation.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn operation_fields_have_the_wire_numbers_of_operations_proto() {
        let op = Operation {
            name: "n".into(),
            metadata: None,
            done: true,
            result: Some(OperationResult::Error(Status {
                code: 1,
                message: String::new(),
                details: vec![],
            })),
        };
        // 1: LEN "n"; 3: varint 1; 4: LEN { 1: varint 1 }.
        assert_eq!(
            op.encode_to_vec(),
            [0x0a, 1, b'n', 0x18, 1, 0x22, 2, 0x08, 1]
        );
        let response = Operation {
            result: Some(OperationResult::Response(Any {
                type_url: "t".into(),
                value: vec![],
            })),
            ..Operation::default()
        };
        // 5: LEN { 1: LEN "t" }.
        assert_eq!(response.encode_to_vec(), [0x2a, 3, 0x0a, 1, b't']);
    }

    #[test]
    fn reads_one_framed_message() {
        assert_eq!(
            single_message(&[0, 0, 0, 0, 2, b'h', b'i']),
            Some(&b"hi"[..])
        );
        assert_eq!(single_message(&[1, 0, 0, 0, 2, b'h', b'i']), None);
        assert_eq!(single_message(&[0, 0, 0, 0, 3, b'h', b'i']), None);
        assert_eq!(single_message(&[0, 0, 0, 0, 1, b'h', b'i']), None);
        assert_eq!(single_message(&[]), None);
    }

    #[test]
    fn list_request_name_is_field_4() {
        let request = ListOperationsRequest {
            name: "c".into(),
            ..Default::default()
        };
        assert_eq!(request.encode_to_vec(), [0x22, 1, b'c']);
    }
}
