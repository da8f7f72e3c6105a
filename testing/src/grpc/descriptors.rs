//! The protobuf descriptors of the googleapis table's methods: each
//! method's request message and its declared `response_type` and
//! `metadata_type`, read with `prost-reflect` from the descriptors compiled
//! from the googleapis protos (`data/googleapis_lro.bundle`, made by
//! `data/googleapis_lro.sh`: each file's `FileDescriptorProto`, gzip'd on its
//! own). A method's pool holds only its `.proto` file and what that imports
//! (and, if a declared type lives elsewhere, the other files of its folder),
//! built on first use and kept.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::{LazyLock, Mutex, PoisonError};

use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DescriptorPool, ExtensionDescriptor, MessageDescriptor};
use prost_types::FileDescriptorProto;

use super::methods::Row;

/// The bundle: `{repeated File files = 1}`.
const BUNDLE: &[u8] = include_bytes!("../../data/googleapis_lro.bundle");

/// The bundle's message.
#[derive(Clone, PartialEq, prost::Message)]
struct Bundle {
    #[prost(message, repeated, tag = "1")]
    files: Vec<BundledFile>,
}

/// One `.proto` file's gzip'd `FileDescriptorProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct BundledFile {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(bytes = "bytes", tag = "2")]
    gzip: Bytes,
}

/// The bundle's files by name (their bytes borrowed from the binary).
static FILES: LazyLock<Result<HashMap<String, Bytes>, String>> = LazyLock::new(|| {
    let bundle = Bundle::decode(Bytes::from_static(BUNDLE))
        .map_err(|e| format!("the googleapis descriptor bundle does not decode: {e}"))?;
    Ok(bundle.files.into_iter().map(|f| (f.name, f.gzip)).collect())
});

/// The pools built so far, by `.proto` file.
static POOLS: LazyLock<Mutex<HashMap<&'static str, DescriptorPool>>> =
    LazyLock::new(Mutex::default);

fn internal(message: String) -> tonic::Status {
    tonic::Status::internal(message)
}

/// One file's descriptor, encoded (its options' extensions intact) and
/// decoded (for its imports).
fn file(
    files: &HashMap<String, Bytes>,
    name: &str,
) -> Result<(Vec<u8>, FileDescriptorProto), tonic::Status> {
    let packed = files
        .get(name)
        .ok_or_else(|| internal(format!("{name} is not in the descriptor bundle")))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(packed.as_ref())
        .read_to_end(&mut bytes)
        .map_err(|e| internal(format!("{name}'s descriptor does not gunzip: {e}")))?;
    let proto = FileDescriptorProto::decode(bytes.as_slice())
        .map_err(|e| internal(format!("{name}'s descriptor does not decode: {e}")))?;
    Ok((bytes, proto))
}

/// A pool of `roots` and everything they import, imports first. The pool
/// decodes the files' own bytes: prost's `FileDescriptorProto` drops the
/// options' extensions (`google.api.resource`, ...) that the server reads.
fn pool_of(roots: &[String]) -> Result<DescriptorPool, tonic::Status> {
    let files = FILES.as_ref().map_err(|e| internal(e.clone()))?;
    // A FileDescriptorSet {repeated FileDescriptorProto file = 1}, encoded.
    let mut set = Vec::new();
    let mut seen = std::collections::HashSet::new();
    // Depth-first, each file after its imports: (name, bytes once loaded).
    let mut stack: Vec<(String, Option<Vec<u8>>)> =
        roots.iter().rev().map(|r| (r.clone(), None)).collect();
    while let Some((name, loaded)) = stack.pop() {
        match loaded {
            Some(bytes) => prost::encoding::bytes::encode(1, &bytes, &mut set),
            None if seen.insert(name.clone()) => {
                let (bytes, proto) = file(files, &name)?;
                stack.push((name, Some(bytes)));
                stack.extend(proto.dependency.into_iter().rev().map(|d| (d, None)));
            }
            None => {}
        }
    }
    DescriptorPool::decode(set.as_slice())
        .map_err(|e| internal(format!("the googleapis descriptors do not link: {e}")))
}

/// The files of `proto`'s folder, `proto` first.
fn folder_of(proto: &str) -> Result<Vec<String>, tonic::Status> {
    let files = FILES.as_ref().map_err(|e| internal(e.clone()))?;
    let folder = proto.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut names = vec![proto.to_owned()];
    names.extend(
        files
            .keys()
            .filter(|n| n.rsplit_once('/').is_some_and(|(dir, _)| dir == folder))
            .filter(|n| *n != proto)
            .cloned(),
    );
    Ok(names)
}

/// The pool for `row`: its file and imports, or its whole folder if a
/// declared type is not among them.
fn pool(row: &Row) -> Result<DescriptorPool, tonic::Status> {
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = pools.get(row.proto) {
        return Ok(pool.clone());
    }
    let mut pool = pool_of(&[row.proto.to_owned()])?;
    let declared = [row.response_type_url(), row.metadata_type_url()];
    let known = |pool: &DescriptorPool| {
        declared.iter().flatten().all(|url| {
            let name = url.trim_start_matches("type.googleapis.com/");
            pool.get_message_by_name(name).is_some()
        })
    };
    if !known(&pool) {
        pool = pool_of(&folder_of(row.proto)?)?;
    }
    pools.insert(row.proto, pool.clone());
    Ok(pool)
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
/// `INTERNAL` if the descriptors cannot be read; `UNIMPLEMENTED` if the
/// method's service or request message is not in it.
pub(crate) fn method_types(row: &Row) -> Result<MethodTypes, tonic::Status> {
    let pool = pool(row)?;
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
