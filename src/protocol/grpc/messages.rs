//! The protobuf messages of `google.longrunning.Operations` and
//! `google.rpc`, derived with `prost` (no `protoc` at build time).
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
}
