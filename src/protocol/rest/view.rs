//! The borrowed JSON view of a response body: an Operation's `name` and
//! `done`, read without building the rest.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::operation::json::{set_once, Field};

/// What the layer needs to recognise an operation in a response body
/// , borrowed from the body.
#[derive(Debug)]
pub(crate) struct OperationView<'a> {
    /// `name`, borrowed unless it has JSON escapes; `None` if absent.
    pub(crate) name: Option<Cow<'a, str>>,
    /// `done`; absent or `null` is `false`.
    pub(crate) done: bool,
    /// Whether the object has a key that is not a `google.longrunning.Operation`
    /// field (`name`, `metadata`, `done`, `error`, `response`): then it is a
    /// resource (AIP-122 resources have a `name` too), not an Operation.
    pub(crate) other_fields: bool,
}

/// Reads the `name` and `done` of a JSON `Operation` without allocating
/// (unless the name has JSON escapes). Every other field is skipped.
///
/// Errors if the bytes are not a single JSON object, `name` is not a string,
/// `done` is neither a bool nor `null`, or either appears twice. Skipped fields
/// are only checked for well-formedness (`serde_json` skips them iteratively, so
/// deep nesting costs no stack).
pub(crate) fn peek(bytes: &[u8]) -> Result<OperationView<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let view = Deserializer::deserialize_map(&mut de, ViewVisitor)?;
    de.end()?;
    Ok(view)
}

/// Reads an object's keys into an [`OperationView`].
struct ViewVisitor;

impl<'de> Visitor<'de> for ViewVisitor {
    type Value = OperationView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (google.longrunning.Operation)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OperationView<'de>, A::Error> {
        let mut name = None;
        let mut done: Option<Option<bool>> = None;
        let mut other_fields = false;
        while let Some(key) = map.next_key::<Field>()? {
            match key {
                Field::Name => set_once(&mut name, map.next_value_seed(CowStr)?, "name")?,
                Field::Done => set_once(&mut done, map.next_value::<Option<bool>>()?, "done")?,
                Field::Error | Field::Metadata | Field::Response => {
                    map.next_value::<IgnoredAny>()?;
                }
                Field::Code | Field::Message | Field::Other => {
                    other_fields = true;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(OperationView {
            name,
            done: done.flatten().unwrap_or(false),
            other_fields,
        })
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct CowStr;

impl<'de> DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::Operation;

    #[test]
    fn peek_flags_keys_that_are_not_operation_fields() {
        let op = peek(br#"{"name":"operations/x","metadata":{"a":1},"done":false,"error":null,"response":{}}"#).unwrap();
        assert!(!op.other_fields);
        let resource = peek(br#"{"name":"projects/p/things/7","displayName":"t"}"#).unwrap();
        assert!(resource.other_fields);
        assert!(
            peek(br#"{"name":"operations/x","code":3}"#)
                .unwrap()
                .other_fields
        );
    }

    #[test]
    fn peek_done_absent_is_false() {
        let view = peek(br#"{"name":"operations/x"}"#).unwrap();
        assert_eq!(view.name.as_deref(), Some("operations/x"));
        assert!(!view.done);
    }

    #[test]
    fn peek_done_true_false_null() {
        assert!(
            peek(br#"{"name":"operations/x","done":true}"#)
                .unwrap()
                .done
        );
        assert!(
            !peek(br#"{"name":"operations/x","done":false}"#)
                .unwrap()
                .done
        );
        assert!(
            !peek(br#"{"name":"operations/x","done":null}"#)
                .unwrap()
                .done
        );
        assert!(
            !peek(br#"{"done":null,"name":"operations/x"}"#)
                .unwrap()
                .done
        );
    }

    #[test]
    fn peek_done_not_bool_is_err() {
        assert!(peek(br#"{"name":"operations/x","done":"true"}"#).is_err());
        assert!(peek(br#"{"name":"operations/x","done":1}"#).is_err());
        assert!(peek(br#"{"name":"operations/x","done":{}}"#).is_err());
    }

    #[test]
    fn peek_name_absent_is_none() {
        let view = peek(br#"{"done":false,"metadata":{"name":"nested/not/me"}}"#).unwrap();
        assert!(view.name.is_none());
        assert!(!view.done);
        assert!(peek(b"{}").unwrap().name.is_none());
    }

    #[test]
    fn peek_name_is_borrowed_without_escapes() {
        let body = br#"{"name":"projects/p/operations/x","done":false}"#;
        let view = peek(body).unwrap();
        assert!(matches!(
            view.name,
            Some(Cow::Borrowed("projects/p/operations/x"))
        ));
    }

    #[test]
    fn peek_name_with_escapes_is_owned_and_unescaped() {
        let view = peek(br#"{"name":"operations\/x\u0041"}"#).unwrap();
        assert!(matches!(view.name, Some(Cow::Owned(ref s)) if s == "operations/xA"));
    }

    #[test]
    fn peek_duplicate_name_is_err() {
        assert!(peek(br#"{"name":"operations/a","name":"operations/b"}"#).is_err());
        // The same key spelled with an escape is still a duplicate.
        assert!(peek(br#"{"name":"operations/a","na\u006de":"operations/b"}"#).is_err());
    }

    #[test]
    fn peek_duplicate_done_is_err() {
        assert!(peek(br#"{"name":"operations/a","done":false,"done":true}"#).is_err());
        assert!(peek(br#"{"name":"operations/a","done":null,"done":true}"#).is_err());
    }

    #[test]
    fn peek_name_not_a_string_is_err() {
        for body in [
            &br#"{"name":1}"#[..],
            br#"{"name":null}"#,
            br#"{"name":true}"#,
            br#"{"name":["operations/x"]}"#,
            br#"{"name":{"a":"b"}}"#,
        ] {
            assert!(peek(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn peek_non_object_is_err() {
        for body in [
            &br#"["operations/x", false]"#[..],
            br#""operations/x""#,
            b"null",
            b"42",
            b"true",
            b"",
            b"   ",
            b"{",
            br#"{"name":"operations/x"} trailing"#,
            br#"{"name":"operations/x"}{}"#,
        ] {
            assert!(peek(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn peek_allows_surrounding_whitespace() {
        let view = peek(b" \n{\"name\":\"operations/x\"}\r\n ").unwrap();
        assert_eq!(view.name.as_deref(), Some("operations/x"));
    }

    #[test]
    fn peek_ignores_huge_nested_metadata_and_other_fields() {
        // ~1 MiB of metadata, nested 100 deep,
        // with a decoy `name` and `done` inside.
        let mut metadata = String::new();
        for _ in 0..100 {
            metadata.push_str(r#"{"name":"decoy/x","done":true,"list":[1,2.5,"s\"\\",null,"#);
        }
        metadata.push_str(&format!("\"{}\"", "x".repeat(1 << 20)));
        for _ in 0..100 {
            metadata.push_str("]}");
        }
        let body = format!(
            r#"{{"metadata":{metadata},"name":"projects/p/operations/x","error":{{"code":1}},"response":[{{}}],"unknown":"\u0000","done":false}}"#
        );
        let view = peek(body.as_bytes()).unwrap();
        assert_eq!(view.name.as_deref(), Some("projects/p/operations/x"));
        assert!(!view.done);
        // The same body decodes fully, too.
        let op = Operation::from_json(body.as_bytes()).unwrap();
        assert_eq!(op.name, "projects/p/operations/x");
        assert_eq!(op.metadata.unwrap().get(), metadata);
    }

    #[test]
    fn peek_skips_very_deep_nesting_without_recursing() {
        // serde_json skips (and captures raw) values iteratively, so depth in
        // an ignored field is neither a recursion-limit error nor a stack
        // overflow.
        let body = format!(
            r#"{{"metadata":{}{},"name":"operations/x","response":{}1{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000),
            r#"{"a":"#.repeat(100_000),
            "}".repeat(100_000)
        );
        assert_eq!(
            peek(body.as_bytes()).unwrap().name.as_deref(),
            Some("operations/x")
        );
        let op = Operation::from_json(body.as_bytes()).unwrap();
        assert_eq!(op.metadata.unwrap().get().len(), 200_000);
        // Unbalanced input is still an error.
        let body = format!(
            r#"{{"name":"operations/x","metadata":{}}}"#,
            "[".repeat(100_000)
        );
        assert!(peek(body.as_bytes()).is_err());
    }

    #[test]
    fn peek_ignores_duplicate_unknown_fields() {
        let view =
            peek(br#"{"metadata":1,"metadata":2,"x":1,"x":2,"name":"operations/x"}"#).unwrap();
        assert_eq!(view.name.as_deref(), Some("operations/x"));
    }
    proptest::proptest! {

        #[test]
        fn peek_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = peek(&bytes);
        }

        #[test]
        fn peek_agrees_with_from_json(
            name in proptest::option::of("[a-z/\\\\\"\u{0}-\u{1f}é]{0,12}"),
            done in proptest::option::of(proptest::option::of(proptest::bool::ANY)),
            extra in proptest::bool::ANY,
        ) {
            let mut fields = Vec::new();
            if extra {
                fields.push(r#""metadata":{"name":"decoy","done":true}"#.to_owned());
            }
            if let Some(name) = &name {
                fields.push(format!(r#""name":{}"#, serde_json::to_string(name).unwrap()));
            }
            match done {
                Some(Some(d)) => fields.push(format!(r#""done":{d}"#)),
                Some(None) => fields.push(r#""done":null"#.to_owned()),
                None => {}
            }
            let body = format!("{{{}}}", fields.join(","));
            let view = peek(body.as_bytes()).unwrap();
            let op = Operation::from_json(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(view.name.as_deref(), name.as_deref());
            proptest::prop_assert_eq!(view.name.as_deref().unwrap_or(""), op.name.as_str());
            proptest::prop_assert_eq!(view.done, done.flatten().unwrap_or(false));
            proptest::prop_assert_eq!(view.done, op.done);
        }
    }
}
