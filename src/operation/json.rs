//! Decoding [`Operation`] and [`Status`] from the proto3 JSON mapping, with
//! hand-written visitors: absent and `null` fields take their defaults,
//! unknown fields are skipped without building values, duplicates are errors.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::{Operation, Status};

/// The known keys, matched after JSON unescaping (as `serde_derive` does), so
/// `"na\u006de"` is `name` for both the REST view and [`Operation::from_json`].
pub(crate) enum Field {
    Name,
    Done,
    Error,
    Metadata,
    Response,
    Code,
    Message,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "name" => Field::Name,
                    "done" => Field::Done,
                    "error" => Field::Error,
                    "metadata" => Field::Metadata,
                    "response" => Field::Response,
                    "code" => Field::Code,
                    "message" => Field::Message,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// Fails with a duplicate-field error if `slot` is already set.
pub(crate) fn set_once<T, E: de::Error>(
    slot: &mut Option<T>,
    value: T,
    field: &'static str,
) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

pub(super) struct OperationVisitor;

impl<'de> Visitor<'de> for OperationVisitor {
    type Value = Operation;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (google.longrunning.Operation)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Operation, A::Error> {
        let mut name: Option<Option<String>> = None;
        let mut done: Option<Option<bool>> = None;
        let mut error: Option<Option<StatusDe>> = None;
        let mut metadata: Option<Option<Box<RawValue>>> = None;
        let mut response: Option<Option<Box<RawValue>>> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Name => set_once(&mut name, map.next_value()?, "name")?,
                Field::Done => set_once(&mut done, map.next_value()?, "done")?,
                Field::Error => set_once(&mut error, map.next_value()?, "error")?,
                Field::Metadata => set_once(&mut metadata, map.next_value()?, "metadata")?,
                Field::Response => set_once(&mut response, map.next_value()?, "response")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Operation {
            name: name.flatten().unwrap_or_default(),
            done: done.flatten().unwrap_or(false),
            error: error.flatten().map(|s| s.0),
            metadata: metadata.flatten(),
            grpc_metadata: None,
            response: response.flatten(),
        })
    }
}

/// Private `Deserialize` for [`Status`] (JSON objects only), so that `serde`
/// stays out of the public API.
struct StatusDe(Status);

impl<'de> Deserialize<'de> for StatusDe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StatusDe, D::Error> {
        deserializer.deserialize_map(StatusVisitor)
    }
}

struct StatusVisitor;

impl<'de> Visitor<'de> for StatusVisitor {
    type Value = StatusDe;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (google.rpc.Status)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StatusDe, A::Error> {
        let mut code: Option<Option<Code>> = None;
        let mut message: Option<Option<String>> = None;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Code => set_once(&mut code, map.next_value()?, "code")?,
                Field::Message => set_once(&mut message, map.next_value()?, "message")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(StatusDe(Status {
            code: code.flatten().map_or(0, |c| c.0),
            message: message.flatten().unwrap_or_default(),
        }))
    }
}

/// An `int32` in proto3 JSON: a number, or a string of one.
struct Code(i32);

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Code, D::Error> {
        struct CodeVisitor;
        impl Visitor<'_> for CodeVisitor {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an int32 (a number or a string)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                i32::try_from(v)
                    .map(Code)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                i32::try_from(v)
                    .map(Code)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                v.parse()
                    .map(Code)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(CodeVisitor)
    }
}
