//! The server's operations (kept as AIP-151 JSON) in their protobuf form.

use std::collections::BTreeMap;
use std::time::SystemTime;

use prost::Message as _;
use prost_types::value::Kind;
use prost_types::{Any, ListValue, Struct};
use serde_json::Value;

use prost_reflect::{DynamicMessage, Kind as FieldKind, Value as ReflectValue};

use super::descriptors::{self, MethodTypes};
use crate::grpc::longrunning::{Operation, OperationResult, Status};
use crate::grpc::methods::Row;
use crate::ops::Facts;

/// The type URL of `google.protobuf.Struct`.
pub(crate) const STRUCT_TYPE: &str = "type.googleapis.com/google.protobuf.Struct";

/// What the server remembers about an operation started over gRPC.
#[derive(Clone, Debug)]
pub(crate) struct Started {
    /// The start method's row of the googleapis table.
    pub(crate) row: &'static Row,
    /// The start method's messages.
    pub(crate) types: MethodTypes,
    /// The resource the operation works on (`metadata.target`).
    pub(crate) target: String,
    /// `metadata.verb`: `create`, `update`, `delete`, ...
    pub(crate) verb: String,
    /// The `response` once done.
    pub(crate) response: Option<DynamicMessage>,
}

/// A JSON value as a `google.protobuf.Value` (proto3 JSON mapping).
fn to_value(json: &Value) -> prost_types::Value {
    let kind = match json {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn to_struct(map: &serde_json::Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A JSON `Any` as a `google.protobuf.Struct` `Any`: a well-known
/// `google.protobuf.Struct` (`{"@type": ..., "value": {...}}`) keeps its
/// value; any other message becomes a Struct of its fields but `@type`.
fn struct_any(json: &Value) -> Option<Any> {
    let map = json.as_object()?;
    let is_struct = map
        .get("@type")
        .and_then(Value::as_str)
        .is_some_and(|t| t == STRUCT_TYPE);
    let fields = match map.get("value").and_then(Value::as_object) {
        Some(value) if is_struct => to_struct(value),
        _ => {
            let mut rest = map.clone();
            rest.remove("@type");
            to_struct(&rest)
        }
    };
    Some(Any {
        type_url: STRUCT_TYPE.to_owned(),
        value: fields.encode_to_vec(),
    })
}

/// An empty message of a declared type (the server knows none of its fields).
fn empty_any(type_url: Option<String>) -> Option<Any> {
    type_url.map(|type_url| Any {
        type_url,
        value: Vec::new(),
    })
}

/// `v1` of `google.cloud.deploy.v1`; empty if the package has no version.
fn api_version(package: &str) -> &str {
    let last = package.rsplit('.').next().unwrap_or_default();
    let versioned = last.starts_with('v') && last[1..].starts_with(|c: char| c.is_ascii_digit());
    if versioned {
        last
    } else {
        ""
    }
}

/// The metadata of the declared type with the fields it has among
/// `create_time`, `end_time`, `target`, `verb`, `requested_cancellation`
/// and `api_version`.
fn metadata(started: &Started, facts: &Facts) -> Option<Any> {
    let type_url = started.row.metadata_type_url();
    let Some(descriptor) = started.types.metadata.clone() else {
        return empty_any(type_url);
    };
    let mut message = DynamicMessage::new(descriptor.clone());
    let mut time = |field: &str, at: Option<SystemTime>| {
        let kind = descriptor.get_field_by_name(field).map(|f| f.kind());
        if let (Some(FieldKind::Message(ts)), Some(at)) = (kind, at) {
            if let Some(value) = descriptors::timestamp(ts, at) {
                let _ = message.try_set_field_by_name(field, ReflectValue::Message(value));
            }
        }
    };
    time("create_time", Some(facts.create_time));
    time("end_time", facts.end_time);
    let text = [
        ("target", started.target.as_str()),
        ("verb", started.verb.as_str()),
        ("api_version", api_version(&started.types.package)),
    ];
    for (field, value) in text {
        let _ = message.try_set_field_by_name(field, ReflectValue::String(value.to_owned()));
    }
    let cancelled = ReflectValue::Bool(facts.requested_cancellation);
    let _ = message.try_set_field_by_name("requested_cancellation", cancelled);
    type_url.map(|type_url| Any {
        type_url,
        value: message.encode_to_vec(),
    })
}

/// The metadata and response of an operation started by a table method.
fn typed(started: &Started, facts: &Facts) -> (Option<Any>, Option<Any>) {
    let response = match &started.response {
        Some(message) => started.row.response_type_url().map(|type_url| Any {
            type_url,
            value: message.encode_to_vec(),
        }),
        None => empty_any(started.row.response_type_url()),
    };
    (metadata(started, facts), response)
}

/// An operation's JSON (as GetOperation answers it over REST) as a
/// `google.longrunning.Operation`.
pub(crate) fn operation(json: &Value, started: Option<(&Started, &Facts)>) -> Operation {
    let (metadata, response) = match started {
        Some((started, facts)) => typed(started, facts),
        None => (
            json.get("metadata").and_then(struct_any),
            json.get("response").and_then(struct_any),
        ),
    };
    let result = match json.get("error") {
        Some(error) => Some(OperationResult::Error(Status {
            code: error["code"]
                .as_i64()
                .and_then(|c| i32::try_from(c).ok())
                .unwrap_or(2),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
            details: Vec::new(),
        })),
        None if json["done"] == Value::Bool(true) => response.map(OperationResult::Response),
        None => None,
    };
    Operation {
        name: json["name"].as_str().unwrap_or_default().to_owned(),
        metadata,
        done: json["done"].as_bool().unwrap_or(false),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::methods::googleapis_row;
    use serde_json::json;

    #[test]
    fn rest_operations_carry_struct_metadata() {
        let json = json!({
            "name": "projects/p/locations/l/operations/op-1",
            "done": true,
            "metadata": {"@type": "type.googleapis.com/x.Meta", "progressPercent": 100},
            "response": {"@type": STRUCT_TYPE, "value": {"state": "SUCCEEDED"}},
        });
        let op = operation(&json, None);
        assert_eq!(op.name, "projects/p/locations/l/operations/op-1");
        assert!(op.done);
        let metadata = op.metadata.unwrap();
        assert_eq!(metadata.type_url, STRUCT_TYPE);
        let fields = Struct::decode(metadata.value.as_slice()).unwrap().fields;
        assert_eq!(
            fields["progressPercent"].kind,
            Some(Kind::NumberValue(100.0))
        );
        assert!(!fields.contains_key("@type"));
        let Some(OperationResult::Response(response)) = op.result else {
            panic!("a response")
        };
        let fields = Struct::decode(response.value.as_slice()).unwrap().fields;
        assert_eq!(
            fields["state"].kind,
            Some(Kind::StringValue("SUCCEEDED".into()))
        );
    }

    #[test]
    fn create_release_operations_carry_the_declared_types() {
        use super::super::messages::{OperationMetadata, CREATE_RELEASE};
        use std::time::Duration;
        let row = googleapis_row(CREATE_RELEASE).unwrap();
        let started = Started {
            row,
            types: descriptors::method_types(row).unwrap(),
            target: "projects/p/locations/l/deliveryPipelines/d/releases/r".into(),
            verb: "create".into(),
            response: None,
        };
        let create_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let facts = Facts {
            create_time,
            end_time: Some(create_time + Duration::from_millis(1500)),
            requested_cancellation: true,
        };
        let cancelled = json!({
            "name": "projects/p/locations/l/operations/op-2",
            "done": true,
            "error": {"code": 1, "message": "Operation was cancelled."},
        });
        let op = operation(&cancelled, Some((&started, &facts)));
        let metadata = op.metadata.unwrap();
        assert_eq!(
            metadata.type_url,
            "type.googleapis.com/google.cloud.deploy.v1.OperationMetadata"
        );
        let metadata = OperationMetadata::decode(metadata.value.as_slice()).unwrap();
        assert_eq!(
            metadata,
            OperationMetadata {
                create_time: Some(create_time.into()),
                end_time: Some((create_time + Duration::from_millis(1500)).into()),
                target: started.target.clone(),
                verb: "create".into(),
                requested_cancellation: true,
                api_version: "v1".into(),
            }
        );
        assert_eq!(
            op.result,
            Some(OperationResult::Error(Status {
                code: 1,
                message: "Operation was cancelled.".into(),
                details: vec![]
            }))
        );
        let running = json!({"name": "n", "done": false});
        assert_eq!(operation(&running, Some((&started, &facts))).result, None);
    }
}
