//! Starting an operation with a method of the googleapis table: the request
//! decoded by its descriptor ([`StartCodec`]), the resource it names
//! ([`resource::plan`]), `ALREADY_EXISTS` for a create whose resource a
//! live operation already creates.

use std::time::Duration;

use prost_reflect::{DynamicMessage, MessageDescriptor};
use tokio::time::Instant;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};

use super::convert::{self, Started};
use super::descriptors::MethodTypes;
use super::legacy::Naming;
use super::resource;
use super::Operation;
use crate::grpc::methods::Row;
use crate::Inner;

/// tonic's codec for a start method: the request decoded as a
/// [`DynamicMessage`] of the method's request descriptor, the answer a prost
/// `Operation`.
pub(super) struct StartCodec {
    pub(super) request: MessageDescriptor,
}

/// Decodes one request message by its descriptor.
pub(super) struct RequestDecoder(MessageDescriptor);

impl Decoder for RequestDecoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, tonic::Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| {
                tonic::Status::invalid_argument(format!(
                    "The request is not a {}: {e}.",
                    self.0.full_name()
                ))
            })
    }
}

impl Codec for StartCodec {
    type Encode = Operation;
    type Decode = DynamicMessage;
    type Encoder = tonic_prost::ProstEncoder<Operation>;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(self.request.clone())
    }
}

/// The operation's parent: `projects/{p}/locations/{l}` of the resource
/// (or `.../regions/{r}`, `.../zones/{z}`), else its first collection and
/// id (`projects/{p}`, `organizations/{o}`).
fn location(target: &str) -> Result<String, tonic::Status> {
    let segments: Vec<&str> = target.split('/').collect();
    let located = ["locations", "regions", "zones"];
    let take = if segments.len() >= 4 && located.contains(&segments[2]) {
        4
    } else {
        2
    };
    if segments.len() < take || segments[..take].iter().any(|s| s.is_empty()) {
        return Err(tonic::Status::invalid_argument(format!(
            "{target:?} is not a resource name (collection/id/...)."
        )));
    }
    Ok(segments[..take].join("/"))
}

/// `x-duration-ms`, if the request metadata has it.
fn duration(metadata: &tonic::metadata::MetadataMap) -> Result<Option<Duration>, tonic::Status> {
    let Some(raw) = metadata.get("x-duration-ms") else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            tonic::Status::invalid_argument(
                "x-duration-ms must be a non-negative integer (milliseconds).",
            )
        })
}

/// The method's verb as a Google service reports it: the first word of the
/// method's name, lower case (`CreateRelease` → `create`).
fn verb(method: &str) -> String {
    let end = method
        .char_indices()
        .skip(1)
        .find(|(_, c)| c.is_ascii_uppercase())
        .map_or(method.len(), |(i, _)| i);
    method[..end].to_ascii_lowercase()
}

/// Starts an operation for the table method `row` on `request`.
pub(super) fn start(
    inner: &Inner,
    index: usize,
    row: &'static Row,
    types: MethodTypes,
    request: &DynamicMessage,
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Operation, tonic::Status> {
    let project = metadata
        .get("x-goog-user-project")
        .and_then(|v| v.to_str().ok());
    let plan = resource::plan(&types, request, project)?;
    let parent = match plan.naming {
        Naming::Location => location(&plan.target)?,
        _ => String::new(),
    };
    let duration = duration(metadata)?;
    let mut state = inner.lock();
    let now = Instant::now();
    if let Naming::Exact(name) = &plan.naming {
        // The operation is the resource: asking again answers it as it is.
        if let Some(op) = state.ops.get(name) {
            let json = op.to_json(now);
            drop(state);
            return Ok(inner.proto(&json));
        }
    }
    if plan.creates {
        let live = state
            .grpc_creates
            .get(&plan.target)
            .and_then(|op| state.ops.get(op))
            .filter(|op| !op.is_cancelled(now));
        if let Some(op) = live {
            return Err(tonic::Status::already_exists(format!(
                "{} already exists (created by {}).",
                plan.target,
                op.name()
            )));
        }
    }
    let duration = duration.unwrap_or(state.default_duration);
    let started = Started {
        row,
        verb: verb(&types.name),
        types,
        target: plan.target.clone(),
        response: plan.response,
    };
    let naming = |seq| plan.naming.name(&parent, seq);
    let op = state
        .ops
        .create_named(naming, plan.target.clone(), duration, now);
    let (json, facts) = (op.to_json(now), op.facts(now));
    let name = op.name().to_owned();
    let operation = convert::operation(&json, Some((&started, &facts)));
    if plan.creates {
        state.grpc_creates.insert(plan.target, name.clone());
    }
    state.grpc_starts.insert(name.clone(), started);
    drop(state);
    inner.set_created(index, name);
    Ok(operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_locations() {
        assert_eq!(verb("CreateRelease"), "create");
        assert_eq!(verb("Rollback"), "rollback");
        assert_eq!(
            location("projects/p/locations/l/deliveryPipelines/d").unwrap(),
            "projects/p/locations/l"
        );
        assert_eq!(
            location("organizations/o/policies/x").unwrap(),
            "organizations/o"
        );
        assert_eq!(
            location("projects/p/regions/r/clusters/c").unwrap(),
            "projects/p/regions/r"
        );
        assert!(location("projects").is_err());
    }
}
