//! The protobuf descriptors of the googleapis table's methods: each
//! method's request message and its declared `response_type` and
//! `metadata_type`, read with `prost-reflect` from a descriptor set compiled
//! from the googleapis protos (`data/googleapis_lro.bin.gz`, made by
//! `data/googleapis_lro.sh`).

use std::io::Read as _;
use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, ExtensionDescriptor, MessageDescriptor};

use crate::grpc::methods::Row;

/// The gzip'd `google.protobuf.FileDescriptorSet` of every `.proto` file of
/// the table, imports included.
const DESCRIPTOR_SET_GZ: &[u8] = include_bytes!("../../data/googleapis_lro.bin.gz");

/// The decoded descriptors, or why they could not be read; built on first use.
static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(DESCRIPTOR_SET_GZ)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the googleapis descriptor set does not gunzip: {e}"))?;
    DescriptorPool::decode(bytes.as_slice())
        .map_err(|e| format!("the googleapis descriptor set does not decode: {e}"))
});

/// The descriptors, or an `INTERNAL` status saying why there are none.
fn pool() -> Result<&'static DescriptorPool, tonic::Status> {
    POOL.as_ref()
        .map_err(|e| tonic::Status::internal(e.clone()))
}

/// The messages of one table method.
#[derive(Clone, Debug)]
pub(crate) struct MethodTypes {
    /// The method's name (`CreateRelease`).
    pub(crate) name: String,
    /// The method's package (`google.cloud.deploy.v1`).
    pub(crate) package: String,
    /// The request message.
    pub(crate) request: MessageDescriptor,
    /// The declared `response_type`, if declared and known.
    pub(crate) response: Option<MessageDescriptor>,
    /// The declared `metadata_type`, if declared and known.
    pub(crate) metadata: Option<MessageDescriptor>,
    /// `google.api.resource` (a message option).
    pub(crate) resource_option: Option<ExtensionDescriptor>,
    /// `google.api.field_behavior` (a field option).
    pub(crate) field_behavior: Option<ExtensionDescriptor>,
    /// `google.api.resource_reference` (a field option).
    pub(crate) resource_reference: Option<ExtensionDescriptor>,
}

/// The messages of the table method `row`.
///
/// # Errors
///
/// `INTERNAL` if the descriptor set cannot be read; `UNIMPLEMENTED` if the
/// method's service or request message is not in it.
pub(crate) fn method_types(row: &Row) -> Result<MethodTypes, tonic::Status> {
    let pool = pool()?;
    let (service, method) = row.method[1..]
        .split_once('/')
        .ok_or_else(|| tonic::Status::internal(format!("{} is not a method", row.method)))?;
    let missing = || {
        tonic::Status::unimplemented(format!(
            "Method {} has no descriptor in this server.",
            row.method
        ))
    };
    let service = pool.get_service_by_name(service).ok_or_else(missing)?;
    let method = service
        .methods()
        .find(|m| m.name() == method)
        .ok_or_else(missing)?;
    let by_url = |url: Option<String>| {
        url.and_then(|u| {
            let name = u.strip_prefix("type.googleapis.com/")?.to_owned();
            pool.get_message_by_name(&name)
        })
    };
    Ok(MethodTypes {
        name: method.name().to_owned(),
        package: service.package_name().to_owned(),
        request: method.input(),
        response: by_url(row.response_type_url()),
        metadata: by_url(row.metadata_type_url()),
        resource_option: pool.get_extension_by_name("google.api.resource"),
        field_behavior: pool.get_extension_by_name("google.api.field_behavior"),
        resource_reference: pool.get_extension_by_name("google.api.resource_reference"),
    })
}

/// A `google.protobuf.Timestamp` descriptor's message for `time`.
pub(crate) fn timestamp(
    descriptor: MessageDescriptor,
    time: std::time::SystemTime,
) -> Option<prost_reflect::DynamicMessage> {
    use prost::Message as _;
    let bytes = prost_types::Timestamp::from(time).encode_to_vec();
    prost_reflect::DynamicMessage::decode(descriptor, bytes.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::methods::googleapis_row;

    #[test]
    fn every_table_method_has_its_request_descriptor() {
        let rows = crate::grpc::methods::googleapis_rows();
        assert!(rows.len() > 2000);
        let mut missing = Vec::new();
        for row in rows {
            let types = method_types(row).unwrap_or_else(|e| panic!("{}: {e}", row.method));
            assert!(!types.request.full_name().is_empty());
            if row.metadata_type.is_some() && types.metadata.is_none() {
                missing.push(format!("{} metadata {:?}", row.method, row.metadata_type));
            }
            if row.response_type.is_some() && types.response.is_none() {
                missing.push(format!("{} response {:?}", row.method, row.response_type));
            }
        }
        assert!(
            missing.is_empty(),
            "{} declared types unknown: {missing:#?}",
            missing.len()
        );
    }

    #[test]
    fn create_release_reads_its_declared_types() {
        let row = googleapis_row("/google.cloud.deploy.v1.CloudDeploy/CreateRelease").unwrap();
        let types = method_types(row).unwrap();
        assert_eq!(
            types.request.full_name(),
            "google.cloud.deploy.v1.CreateReleaseRequest"
        );
        assert_eq!(
            types.response.unwrap().full_name(),
            "google.cloud.deploy.v1.Release"
        );
        assert_eq!(
            types.metadata.unwrap().full_name(),
            "google.cloud.deploy.v1.OperationMetadata"
        );
        assert!(types.resource_option.is_some() && types.field_behavior.is_some());
    }
}
