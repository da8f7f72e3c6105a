//! The proto3 JSON form of an operation (the REST front end's answers).

use serde_json::{json, Map, Value};

use super::ops::{Field, Snapshot, CANCELLED_CODE, CANCELLED_MESSAGE};

/// The `@type` of `metadata` and `response`: `google.protobuf.Struct`, a
/// message every protobuf runtime ships, so any client can unpack them.
pub(crate) const STRUCT_TYPE: &str = "type.googleapis.com/google.protobuf.Struct";

/// A `google.protobuf.Any` holding a `google.protobuf.Struct` of `fields`,
/// in proto3 JSON: a well-known type with its own JSON form is carried in
/// `value` (`{"@type": ..., "value": {...}}`).
fn struct_any(fields: &[(&'static str, Field<'_>)]) -> Value {
    let value: Map<String, Value> = fields
        .iter()
        .map(|(key, field)| {
            let value = match *field {
                Field::Number(n) => json!(n),
                Field::Text(s) => json!(s),
                Field::Bool(b) => json!(b),
            };
            ((*key).to_owned(), value)
        })
        .collect();
    json!({ "@type": STRUCT_TYPE, "value": value })
}

/// The AIP-151 `Operation` in proto3 JSON: `name`, `done`, `metadata`, and
/// `response` or `error` once done.
pub(crate) fn operation(snapshot: &Snapshot<'_>) -> Value {
    let mut op = json!({
        "name": snapshot.name,
        "done": snapshot.done(),
        "metadata": struct_any(&snapshot.metadata()),
    });
    if let Some(fields) = snapshot.response() {
        op["response"] = struct_any(&fields);
    } else if snapshot.done() {
        op["error"] = json!({ "code": CANCELLED_CODE, "message": CANCELLED_MESSAGE });
    }
    op
}

impl super::ops::Op {
    /// The operation as the REST GetOperation answers it at `now`.
    pub(crate) fn to_json(&self, now: tokio::time::Instant) -> Value {
        operation(&self.snapshot(now))
    }
}
