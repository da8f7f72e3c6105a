//! [`Operation`] and [`Status`]: the AIP-151 `google.longrunning.Operation`
//! and its `google.rpc.Status` error, as the caller reads them.

use serde_json::value::RawValue;

use super::json::OperationVisitor;

/// The fields of an AIP-151 `google.longrunning.Operation` the layer uses,
/// decoded from its JSON form (REST) or its protobuf form (gRPC, for
/// [`on_progress`](crate::CancelOnDropLayer::on_progress)).
///
/// JSON decoding follows the proto3 JSON mapping: absent fields and `null`
/// take the default value (`""`, `false`, `None`), unknown fields are
/// ignored, duplicate fields are an error. `metadata` and `response` (`Any`
/// messages) stay raw JSON text. From a gRPC answer, `metadata` and
/// `response` are `None` and the metadata is in [`grpc_metadata`](Self::grpc_metadata)
/// as a `google.protobuf.Any` (type URL and bytes); decode it with
/// [`decode_metadata`](Self::decode_metadata).
///
/// `PartialEq` compares `metadata` and `response` as JSON text, byte for byte.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Operation {
    /// The operation's name (`projects/p/locations/l/operations/o`), as sent;
    /// not validated (see [`OperationName::parse`](crate::OperationName::parse)).
    pub name: String,
    /// Whether the operation is done: `error` or `response` is then set.
    pub done: bool,
    /// The operation's error, if it failed or was cancelled.
    pub error: Option<Status>,
    /// Service-specific metadata (a JSON `Any`), unparsed.
    pub metadata: Option<Box<RawValue>>,
    /// The operation's result (a JSON `Any`), unparsed.
    pub response: Option<Box<RawValue>>,
    /// From a gRPC answer: the service-specific metadata, a
    /// `google.protobuf.Any` (`type_url` such as
    /// `type.googleapis.com/google.cloud.deploy.v1.OperationMetadata`, and the
    /// message's bytes). `None` from JSON, or when the server sent none.
    pub grpc_metadata: Option<prost_types::Any>,
}

impl Operation {
    /// Decodes an `Operation` from its JSON form.
    ///
    /// # Errors
    ///
    /// A [`serde_json::Error`] if the bytes are not a single JSON object, a
    /// known field has the wrong type (`"done": "yes"`), or a known field
    /// appears twice.
    ///
    /// ```
    /// use tower_lro::{Operation, Status};
    ///
    /// let op = Operation::from_json(
    ///     br#"{"name": "operations/o", "done": true, "error": {"code": 1, "message": "Cancelled."}}"#,
    /// )?;
    /// assert_eq!(op.name, "operations/o");
    /// assert_eq!(op.error.as_ref().map(|e| e.code), Some(Status::CANCELLED));
    /// assert!(op.is_cancelled());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<Operation, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let operation = serde::Deserializer::deserialize_map(&mut de, OperationVisitor)?;
        de.end()?;
        Ok(operation)
    }

    /// The gRPC metadata decoded as message `M`, whose full protobuf name
    /// is `full_name` (`google.cloud.deploy.v1.OperationMetadata`; with
    /// `prost::Name`, `M::full_name()`): `None` if there is none (a REST
    /// answer: read `metadata`); an error if the `Any`'s type URL does not
    /// end in `/{full_name}` or its bytes do not decode as `M`.
    ///
    /// With Cloud Deploy's `OperationMetadata`, e.g. from the generated
    /// `googleapis-tonic-google-cloud-deploy-v1` crate (any
    /// `prost::Message` works):
    ///
    /// ```
    /// # #[derive(Clone, PartialEq, prost::Message)]
    /// # struct OperationMetadata {
    /// #     #[prost(string, tag = "3")] target: String,
    /// #     #[prost(string, tag = "4")] verb: String,
    /// # }
    /// use tower_lro::{CancelOnDropLayer, Operation};
    ///
    /// const METADATA: &str = "google.cloud.deploy.v1.OperationMetadata";
    /// let layer = CancelOnDropLayer::new().on_progress(|op: &Operation| {
    ///     if let Some(Ok(meta)) = op.decode_metadata::<OperationMetadata>(METADATA) {
    ///         println!("{} {}: done={}", meta.verb, meta.target, op.done);
    ///     }
    /// });
    /// # let _ = layer;
    /// ```
    pub fn decode_metadata<M>(&self, full_name: &str) -> Option<Result<M, MetadataError>>
    where
        M: prost::Message + Default,
    {
        let any = self.grpc_metadata.as_ref()?;
        let named = any
            .type_url
            .rsplit_once('/')
            .is_some_and(|(_, name)| name == full_name);
        if !named {
            return Some(Err(MetadataError::WrongType {
                expected: full_name.to_owned(),
                found: any.type_url.clone(),
            }));
        }
        Some(M::decode(any.value.as_slice()).map_err(MetadataError::Decode))
    }

    /// Whether the operation ended by being cancelled: `done` with
    /// `error.code == 1` ([`Status::CANCELLED`], AIP-151).
    pub fn is_cancelled(&self) -> bool {
        self.done
            && self
                .error
                .as_ref()
                .is_some_and(|e| e.code == Status::CANCELLED)
    }
}

impl PartialEq for Operation {
    fn eq(&self, other: &Operation) -> bool {
        fn raw(value: &Option<Box<RawValue>>) -> Option<&str> {
            value.as_deref().map(RawValue::get)
        }
        self.name == other.name
            && self.done == other.done
            && self.error == other.error
            && raw(&self.metadata) == raw(&other.metadata)
            && raw(&self.response) == raw(&other.response)
            && self.grpc_metadata == other.grpc_metadata
    }
}

/// Why [`Operation::decode_metadata`] could not decode the metadata.
#[derive(Debug)]
#[non_exhaustive]
pub enum MetadataError {
    /// The `Any` holds another message type.
    WrongType {
        /// The full name asked for.
        expected: String,
        /// The `Any`'s type URL.
        found: String,
    },
    /// The bytes are not a valid encoding of the message.
    Decode(prost::DecodeError),
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataError::WrongType { expected, found } => write!(
                f,
                "operation metadata is {:?}, not {expected}",
                found.escape_debug().to_string()
            ),
            MetadataError::Decode(e) => write!(f, "operation metadata does not decode: {e}"),
        }
    }
}

impl std::error::Error for MetadataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetadataError::Decode(e) => Some(e),
            MetadataError::WrongType { .. } => None,
        }
    }
}

/// A `google.rpc.Status`: the `error` of a failed or cancelled operation.
///
/// `code` is a `google.rpc.Code` (the associated constants name the ones the
/// layer acts on); `details` is ignored. Absent or `null` fields default to
/// `0` and `""`; `code` is accepted as a JSON number or, as the proto3 JSON
/// mapping allows, a string of digits.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The `google.rpc.Code` value.
    pub code: i32,
    /// The developer-facing error message.
    pub message: String,
}

impl Status {
    /// `google.rpc.Code.CANCELLED`: the operation was cancelled.
    pub const CANCELLED: i32 = 1;
    /// `google.rpc.Code.NOT_FOUND`.
    pub const NOT_FOUND: i32 = 5;
    /// `google.rpc.Code.UNIMPLEMENTED`.
    pub const UNIMPLEMENTED: i32 = 12;
    /// `google.rpc.Code.UNAVAILABLE`.
    pub const UNAVAILABLE: i32 = 14;
}

// ===== the borrowed view =====
