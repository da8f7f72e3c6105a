//! What a table method's request asks for, read by the request's
//! descriptor: the resource it acts on (named as the real service would
//! name it), the resource it echoes, and the answer's `response`.
//!
//! - A **create** (the request has a `parent` and an id field,
//!   `{resource}_id`, e.g. `release_id` for a `Release`): the resource is
//!   `{parent}/{collection}/{id}`, the collection read from the resource
//!   type's `google.api.resource` patterns (else the id field's plural:
//!   `delivery_pipeline_id` → `deliveryPipelines`). An empty id is
//!   `INVALID_ARGUMENT` when the field is `REQUIRED`, else one is made up.
//! - An **update** (the request carries the resource): the resource's own
//!   `name`.
//! - Anything else (`Delete*`, verbs): the request's `name`, else its
//!   `parent`, else the first string field that references a resource
//!   (`google.api.resource_reference`: `endpoint`, `service_name`, ...);
//!   all of them left empty is `INVALID_ARGUMENT`.
//! - A request with none of these fields (62 methods of older APIs: Speech's
//!   `LongRunningRecognize`, Dataproc's `project_id`/`region`/
//!   `cluster_name`, ...): [`legacy::plan`] reads its legacy fields (the
//!   resource `projects/{p}/regions/{r}/clusters/{c}`), else no resource
//!   (`target` empty), and names its operation as that service does
//!   ([`Naming`]: a bare number for Speech). Only a `REQUIRED` field left
//!   empty is `INVALID_ARGUMENT` there.
//!
//! The operation is named `{location}/operations/op-{n}` after the
//! resource's location ([`Naming::Location`]), except for those older APIs.
//!
//! The `response`, of the declared type: the request's resource (with its
//! name) when it is of that type; else an empty message of that type, named
//! after the resource when the type is itself a resource.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

use super::descriptors::MethodTypes;
use super::legacy::{self, Naming};

/// `google.api.FieldBehavior.REQUIRED`.
const REQUIRED: i32 = 2;

/// What one start request asks for.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The resource's name (`metadata.target`).
    pub(crate) target: String,
    /// Whether the method creates `target` (a duplicate is `ALREADY_EXISTS`).
    pub(crate) creates: bool,
    /// The `response` once done (of the declared type), if one is declared.
    pub(crate) response: Option<DynamicMessage>,
    /// How the operation is named.
    pub(crate) naming: Naming,
}

/// A string field's value, if the message has that field and it is a string.
pub(super) fn string_field(message: &DynamicMessage, name: &str) -> Option<String> {
    let field = message.descriptor().get_field_by_name(name)?;
    match message.get_field(&field).as_ref() {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// `DeliveryPipeline` → `delivery_pipeline`.
pub(super) fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `delivery_pipeline` → `deliveryPipelines`.
pub(super) fn plural_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out.push('s');
    out
}

/// The request field holding the resource of type `resource`, if any.
fn resource_field(
    request: &MessageDescriptor,
    resource: &MessageDescriptor,
) -> Option<FieldDescriptor> {
    request.fields().find(|f| {
        !f.is_list()
            && matches!(f.kind(), Kind::Message(m) if m.full_name() == resource.full_name())
    })
}

/// The create's id field: `{resource}_id`, else the one `*_id` string field
/// that is not `request_id`.
fn id_field(
    request: &MessageDescriptor,
    resource: Option<&MessageDescriptor>,
) -> Option<FieldDescriptor> {
    if let Some(field) =
        resource.and_then(|r| request.get_field_by_name(&format!("{}_id", snake(r.name()))))
    {
        return Some(field);
    }
    let mut ids = request.fields().filter(|f| {
        f.name().ends_with("_id")
            && f.name() != "request_id"
            && matches!(f.kind(), Kind::String)
            && !f.is_list()
    });
    match (ids.next(), ids.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// The `google.api.resource` patterns of a message.
pub(super) fn patterns(types: &MethodTypes, message: &MessageDescriptor) -> Vec<String> {
    let Some(extension) = types.resource_option.as_ref() else {
        return Vec::new();
    };
    let options = message.options();
    if !options.has_extension(extension) {
        return Vec::new();
    }
    let value = options.get_extension(extension);
    let Some(resource) = value.as_message() else {
        return Vec::new();
    };
    match resource.get_field_by_name("pattern").as_deref() {
        Some(Value::List(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The collection under `parent` that a pattern names:
/// `projects/{project}/releases/{release}` under `projects/p` → `releases`.
fn collection(patterns: &[String], parent: &str) -> Option<String> {
    let parent: Vec<&str> = parent.split('/').collect();
    patterns.iter().find_map(|pattern| {
        let segments: Vec<&str> = pattern.split('/').collect();
        if segments.len() != parent.len() + 2 {
            return None;
        }
        let matches = segments
            .iter()
            .zip(&parent)
            .all(|(pattern, actual)| pattern.starts_with('{') || pattern == actual);
        let literal = segments[parent.len()];
        (matches && !literal.starts_with('{')).then(|| literal.to_owned())
    })
}

/// Whether a field is `google.api.field_behavior = REQUIRED`.
pub(super) fn is_required(types: &MethodTypes, field: &FieldDescriptor) -> bool {
    let Some(extension) = types.field_behavior.as_ref() else {
        return false;
    };
    let options = field.options();
    if !options.has_extension(extension) {
        return false;
    }
    match options.get_extension(extension).as_ref() {
        Value::List(items) => items.iter().any(|v| v.as_enum_number() == Some(REQUIRED)),
        Value::EnumNumber(n) => *n == REQUIRED,
        _ => false,
    }
}

/// Reads what `request` (a message of `types.request`) asks for; `project`
/// is the caller's (`x-goog-user-project`), for services that name
/// operations after it.
///
/// # Errors
///
/// `INVALID_ARGUMENT` when a `REQUIRED` id is left empty; when a request
/// with a `name`, `parent`, reference or carried resource leaves them all
/// empty; or, for a request with none of these fields, a `REQUIRED` field
/// ([`legacy::plan`]).
pub(crate) fn plan(
    types: &MethodTypes,
    request: &DynamicMessage,
    project: Option<&str>,
) -> Result<Plan, tonic::Status> {
    let resource_type = types.response.as_ref();
    let carried = resource_type.and_then(|r| resource_field(&types.request, r));
    let parent = string_field(request, "parent").filter(|p| !p.is_empty());
    let id = id_field(&types.request, resource_type);
    let (target, creates, naming) = match (parent.as_deref(), id.as_ref()) {
        (Some(parent), Some(id)) => (
            create_name(types, request, parent, id)?,
            true,
            Naming::Location,
        ),
        _ => match existing_name(types, request, carried.as_ref(), parent) {
            Some(name) => (name, false, Naming::Location),
            None if names_by_aip(types, carried.as_ref()) => {
                return Err(tonic::Status::invalid_argument(
                    "The request names no resource (a name, or a parent).",
                ))
            }
            None => {
                let legacy = legacy::plan(types, request, project)?;
                (legacy.target, false, legacy.naming)
            }
        },
    };
    let response = types.response.clone().map(|descriptor| {
        let mut message = match carried.as_ref() {
            Some(field) => match request.get_field(field).as_message() {
                Some(m) => m.clone(),
                None => DynamicMessage::new(descriptor.clone()),
            },
            None => DynamicMessage::new(descriptor.clone()),
        };
        let names_itself = carried.is_some() || !patterns(types, &descriptor).is_empty();
        if names_itself && !target.is_empty() && descriptor.get_field_by_name("name").is_some() {
            let _ = message.try_set_field_by_name("name", Value::String(target.clone()));
        }
        message
    });
    Ok(Plan {
        target,
        creates,
        response,
        naming,
    })
}

/// Whether the request has a field that names its resource by AIP-122: a
/// `name` or `parent`, a resource reference, or a carried resource with a
/// `name`. Such a request left unnamed is `INVALID_ARGUMENT`; one without
/// any is read by [`legacy::plan`].
fn names_by_aip(types: &MethodTypes, carried: Option<&FieldDescriptor>) -> bool {
    let reference = types.resource_reference.as_ref();
    let names = types.request.fields().any(|f| {
        ["name", "parent"].contains(&f.name())
            || reference.is_some_and(|r| f.options().has_extension(r))
    });
    let carries = carried.is_some_and(
        |f| matches!(f.kind(), Kind::Message(m) if m.get_field_by_name("name").is_some()),
    );
    names || carries
}

/// `{parent}/{collection}/{id}`.
fn create_name(
    types: &MethodTypes,
    request: &DynamicMessage,
    parent: &str,
    id_field: &FieldDescriptor,
) -> Result<String, tonic::Status> {
    let mut id = match request.get_field(id_field).as_ref() {
        Value::String(s) => s.clone(),
        _ => String::new(),
    };
    if id.is_empty() {
        if is_required(types, id_field) {
            return Err(tonic::Status::invalid_argument(format!(
                "{} is required.",
                id_field.name()
            )));
        }
        id = format!("{:016x}", fastrand::u64(..));
    }
    let from_field = || plural_camel(id_field.name().trim_end_matches("_id"));
    let collection = types
        .response
        .as_ref()
        .and_then(|r| collection(&patterns(types, r), parent))
        .unwrap_or_else(from_field);
    Ok(format!("{parent}/{collection}/{id}"))
}

/// The first non-empty string field with a `google.api.resource_reference`.
fn referenced(types: &MethodTypes, request: &DynamicMessage) -> Option<String> {
    let extension = types.resource_reference.as_ref()?;
    types.request.fields().find_map(|field| {
        if field.is_list() || !field.options().has_extension(extension) {
            return None;
        }
        match request.get_field(&field).as_ref() {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    })
}

/// An update's resource name (the carried resource's `name`), else the
/// request's `name`, else its `parent`, else the resource it references.
fn existing_name(
    types: &MethodTypes,
    request: &DynamicMessage,
    carried: Option<&FieldDescriptor>,
    parent: Option<String>,
) -> Option<String> {
    let carried_name = carried.and_then(|field| {
        let resource = request.get_field(field);
        resource.as_message().and_then(|m| string_field(m, "name"))
    });
    carried_name
        .filter(|n| !n.is_empty())
        .or_else(|| string_field(request, "name"))
        .filter(|n| !n.is_empty())
        .or(parent)
        .or_else(|| referenced(types, request))
}

#[cfg(test)]
#[path = "resource_tests.rs"]
mod tests;
