//! Requests that name no resource by the AIP-122 conventions (no `name`,
//! `parent`, resource reference nor carried resource), and how the real
//! services name what they act on and their operations. Read by the
//! request's descriptor: field names and types, never positions.
//!
//! The resource (`metadata.target`), in this order:
//! - **legacy fields**: `project_id` (or `project`), then `region`, `zone`
//!   or `location`, then the first `{x}_name`/`{x}_id` string of the request
//!   or of a message it carries (`cluster.cluster_name`,
//!   `job.reference.job_id`): `projects/{p}/regions/{r}/clusters/{c}` for
//!   Dataproc, `projects/{p}/indexes/{i}` for Datastore;
//! - a string field named after a resource type of its package
//!   (`conversation_profile`, `environment`, `dataset`, `catalog`,
//!   `stream`), or named `scope` (Audit Manager; Asset's
//!   `analysis_query.scope`);
//! - a message field carrying a `name` (`encryption_spec`, `inventory`);
//! - else none: `target` is empty (Speech's `LongRunningRecognize`, Video
//!   Intelligence's `AnnotateVideo`, Vision's `AsyncBatchAnnotate*`).
//!
//! The operation's name ([`Naming`]), as each service names it:
//! `{location}/operations/op-{n}` after the resource's location by
//! default (Dataproc: `projects/{p}/regions/{r}/operations/op-{n}`); a
//! bare number for Speech (`GET /v1/operations/{n}` over REST);
//! `projects/{project}/locations/{location_id}/operations/{n}` for Video
//! Intelligence (the project of `x-goog-user-project`, else `0`; the
//! location `us-east1` unless given); `operations/services.{service}-{n}`,
//! `operations/serviceConfigs.{service}:op-{n}` and
//! `operations/rollouts.{service}:op-{n}` for Service Management;
//! `{scope}/operations/AnalyzeIamPolicyLongrunning/{n}` for Asset;
//! `transferOperations/transferJobs-{job}-{n}` for Storage Transfer; the
//! photo sequence's id for Street View Publish; else `operations/op-{n}`.
//!
//! A `REQUIRED` string, bytes, repeated or message field left empty is
//! `INVALID_ARGUMENT`, as the service answers it.

use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};

use super::descriptors::MethodTypes;
use super::resource::{is_required, patterns, plural_camel, string_field};

/// How a started operation is named (`n`: the server's sequence number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Naming {
    /// `{location of the target}/operations/op-{n}`.
    Location,
    /// `{prefix}op-{n}`.
    Prefix(String),
    /// `{prefix}{n}`: a decimal id.
    Number(String),
    /// Exactly this name: the operation is the resource (Street View
    /// Publish's photo sequences).
    Exact(String),
}

impl Naming {
    /// The name of operation `seq`, `location` being the target's.
    pub(crate) fn name(&self, location: &str, seq: u64) -> String {
        match self {
            Naming::Location => format!("{location}/operations/op-{seq}"),
            Naming::Prefix(prefix) => format!("{prefix}op-{seq}"),
            Naming::Number(prefix) => format!("{prefix}{seq}"),
            Naming::Exact(name) => name.clone(),
        }
    }
}

/// A legacy request's resource (may be empty) and its operation's name.
#[derive(Debug)]
pub(crate) struct Legacy {
    pub(crate) target: String,
    pub(crate) naming: Naming,
}

/// The non-empty string `path` (`analysis_query.scope`) of `message`.
fn text(message: &DynamicMessage, path: &str) -> Option<String> {
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    match rest {
        None => string_field(message, head).filter(|s| !s.is_empty()),
        Some(rest) => {
            let field = message.descriptor().get_field_by_name(head)?;
            if !message.has_field(&field) {
                return None;
            }
            let value = message.get_field(&field);
            value.as_message().and_then(|m| text(m, rest))
        }
    }
}

/// `INVALID_ARGUMENT` for the first `REQUIRED` field left empty.
fn require(types: &MethodTypes, request: &DynamicMessage) -> Result<(), tonic::Status> {
    for field in types.request.fields() {
        if !is_required(types, &field) {
            continue;
        }
        let empty = match request.get_field(&field).as_ref() {
            Value::String(s) => s.is_empty(),
            Value::Bytes(b) => b.is_empty(),
            Value::List(items) => items.is_empty(),
            Value::Map(entries) => entries.is_empty(),
            Value::Message(_) => !request.has_field(&field),
            _ => false,
        };
        if empty {
            return Err(tonic::Status::invalid_argument(format!(
                "{} is required.",
                field.name()
            )));
        }
    }
    Ok(())
}

/// The first non-empty `{x}_name`/`{x}_id` string of `message` or of a
/// message it carries (two levels deep), as `(x, value)`.
fn key(message: &DynamicMessage, depth: u8) -> Option<(String, String)> {
    let skip = ["project_id", "request_id", "location_id"];
    for field in message.descriptor().fields() {
        if field.is_list() || field.is_map() || skip.contains(&field.name()) {
            continue;
        }
        let stem = field
            .name()
            .strip_suffix("_name")
            .or_else(|| field.name().strip_suffix("_id"));
        match (field.kind(), stem) {
            (Kind::String, Some(stem)) => {
                if let Some(value) = text(message, field.name()) {
                    return Some((stem.to_owned(), value));
                }
            }
            (Kind::Message(_), _) if depth > 0 && message.has_field(&field) => {
                let value = message.get_field(&field);
                if let Some(found) = value.as_message().and_then(|m| key(m, depth - 1)) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// `projects/{p}[/regions/{r}][/{xs}/{key}]` from legacy fields.
fn legacy_fields(request: &DynamicMessage) -> Option<String> {
    let project = text(request, "project_id").or_else(|| text(request, "project"))?;
    let mut name = format!("projects/{}", project.trim_start_matches("projects/"));
    for (field, collection) in [
        ("region", "regions"),
        ("zone", "zones"),
        ("location", "locations"),
    ] {
        if let Some(value) = text(request, field) {
            name.push_str(&format!("/{collection}/{value}"));
            break;
        }
    }
    if let Some((stem, value)) = key(request, 2) {
        name.push_str(&format!("/{}/{value}", plural(&stem)));
    }
    Some(name)
}

/// The collection of `{stem}_id`s: `cluster` → `clusters`, `index` →
/// `indexes`, `policy` → `policies`.
fn plural(stem: &str) -> String {
    let camel = plural_camel(stem);
    let singular = &camel[..camel.len() - 1];
    if singular.ends_with(['s', 'x']) || singular.ends_with("ch") || singular.ends_with("sh") {
        format!("{singular}es")
    } else if singular.ends_with('y') && !singular.ends_with(['a', 'e', 'o', 'u']) {
        format!("{}ies", &singular[..singular.len() - 1])
    } else {
        camel
    }
}

/// A string field named after a resource type of the request's package
/// (`conversation_profile` → `ConversationProfile`), or named `scope`.
fn typed_string(types: &MethodTypes, request: &DynamicMessage) -> Option<String> {
    let pool = types.request.parent_pool();
    types.request.fields().find_map(|field| {
        if field.is_list() || !matches!(field.kind(), Kind::String) {
            return None;
        }
        let value = text(request, field.name())?;
        if field.name() == "scope" {
            return Some(value);
        }
        let type_name = format!("{}.{}", types.package, pascal(field.name()));
        let message = pool.get_message_by_name(&type_name)?;
        (!patterns(types, &message).is_empty()).then_some(value)
    })
}

/// `conversation_profile` → `ConversationProfile`.
fn pascal(snake: &str) -> String {
    let camel = plural_camel(snake);
    let camel = &camel[..camel.len() - 1];
    let mut chars = camel.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The non-empty `name` of a message field the request carries.
fn carried_name(request: &DynamicMessage) -> Option<String> {
    request.descriptor().fields().find_map(|field| {
        let is_message = matches!(field.kind(), Kind::Message(_));
        if field.is_list() || field.is_map() || !is_message || !request.has_field(&field) {
            return None;
        }
        let value = request.get_field(&field);
        value.as_message().and_then(|m| text(m, "name"))
    })
}

/// How a service that names its operations its own way names this one.
fn by_service(
    types: &MethodTypes,
    request: &DynamicMessage,
    project: Option<&str>,
) -> Option<Legacy> {
    let package = types.package.as_str();
    let legacy = |target: String, naming| Some(Legacy { target, naming });
    if package.starts_with("google.api.servicemanagement.") {
        let service =
            text(request, "service_name").or_else(|| text(request, "service.service_name"))?;
        let naming = if types.name.contains("Rollout") {
            Naming::Prefix(format!("operations/rollouts.{service}:"))
        } else if types.name.contains("Config") {
            Naming::Prefix(format!("operations/serviceConfigs.{service}:"))
        } else {
            Naming::Number(format!("operations/services.{service}-"))
        };
        return legacy(format!("services/{service}"), naming);
    }
    if package.starts_with("google.cloud.speech.") {
        return legacy(String::new(), Naming::Number(String::new()));
    }
    if package.starts_with("google.cloud.videointelligence.") {
        let location = text(request, "location_id").unwrap_or_else(|| "us-east1".to_owned());
        let project = project.filter(|p| !p.is_empty()).unwrap_or("0");
        let prefix = format!("projects/{project}/locations/{location}/operations/");
        return legacy(String::new(), Naming::Number(prefix));
    }
    if package.starts_with("google.cloud.asset.") {
        let scope = text(request, "analysis_query.scope")?;
        let prefix = format!("{scope}/operations/{}/", types.name);
        return legacy(scope, Naming::Number(prefix));
    }
    if package.starts_with("google.storagetransfer.") {
        let job = text(request, "job_name")?;
        let prefix = format!("transferOperations/{}-", job.replace('/', "-"));
        return legacy(job, Naming::Number(prefix));
    }
    if package.starts_with("google.streetview.publish.") {
        return Some(match text(request, "sequence_id") {
            Some(id) => Legacy {
                target: String::new(),
                naming: Naming::Exact(id),
            },
            None => Legacy {
                target: String::new(),
                naming: Naming::Number(String::new()),
            },
        });
    }
    if package.starts_with("google.cloud.shell.") {
        let target = text(request, "environment").unwrap_or_default();
        return legacy(target, Naming::Prefix("operations/".to_owned()));
    }
    None
}

/// What a request that names no resource by AIP-122 acts on, and how its
/// operation is named; `project` is the caller's (`x-goog-user-project`).
///
/// # Errors
///
/// `INVALID_ARGUMENT` when a `REQUIRED` field is left empty.
pub(crate) fn plan(
    types: &MethodTypes,
    request: &DynamicMessage,
    project: Option<&str>,
) -> Result<Legacy, tonic::Status> {
    require(types, request)?;
    if let Some(legacy) = by_service(types, request, project) {
        return Ok(legacy);
    }
    let target = legacy_fields(request)
        .or_else(|| typed_string(types, request))
        .or_else(|| text(request, "analysis_query.scope"))
        .or_else(|| carried_name(request));
    Ok(match target {
        Some(target) => Legacy {
            target,
            naming: Naming::Location,
        },
        None => Legacy {
            target: String::new(),
            naming: Naming::Prefix("operations/".to_owned()),
        },
    })
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
