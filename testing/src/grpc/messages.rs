//! The messages of the embedded server's gRPC start method,
//! `google.cloud.deploy.v1.CloudDeploy/CreateRelease`, as far as the server
//! reads or writes them (field numbers of
//! `google/cloud/deploy/v1/cloud_deploy.proto`; fields it does not know are
//! skipped when decoding, as protobuf requires).

/// `google.cloud.deploy.v1.CreateReleaseRequest` {1 parent, 2 release_id,
/// 3 release}.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateReleaseRequest {
    /// The delivery pipeline,
    /// `projects/{p}/locations/{l}/deliveryPipelines/{pipeline}`.
    #[prost(string, tag = "1")]
    pub parent: String,
    /// The release's id: the last segment of its name.
    #[prost(string, tag = "2")]
    pub release_id: String,
    /// The release to create.
    #[prost(message, optional, tag = "3")]
    pub release: Option<Release>,
}

/// `google.cloud.deploy.v1.Release` {1 name, 3 description, 5 labels}: the
/// `response` of a finished CreateRelease (the request's release, named).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Release {
    /// `{parent}/releases/{release_id}`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// A description.
    #[prost(string, tag = "3")]
    pub description: String,
    /// Labels.
    #[prost(map = "string, string", tag = "5")]
    pub labels: std::collections::HashMap<String, String>,
}

/// `google.cloud.deploy.v1.OperationMetadata` {1 create_time, 2 end_time,
/// 3 target, 4 verb, 6 requested_cancellation, 7 api_version}: the
/// `metadata` of a CreateRelease operation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OperationMetadata {
    /// When the operation was created.
    #[prost(message, optional, tag = "1")]
    pub create_time: Option<prost_types::Timestamp>,
    /// When the operation finished (set once done).
    #[prost(message, optional, tag = "2")]
    pub end_time: Option<prost_types::Timestamp>,
    /// The resource the operation works on (the release's name).
    #[prost(string, tag = "3")]
    pub target: String,
    /// The verb: `create`.
    #[prost(string, tag = "4")]
    pub verb: String,
    /// Whether a CancelOperation was received while it ran.
    #[prost(bool, tag = "6")]
    pub requested_cancellation: bool,
    /// The API version: `v1`.
    #[prost(string, tag = "7")]
    pub api_version: String,
}

/// The start method the embedded server implements.
pub const CREATE_RELEASE: &str = "/google.cloud.deploy.v1.CloudDeploy/CreateRelease";
