//! `Operation` decoding (AIP-151): done or not, response, error, status
//! codes, defaults and nulls.

use super::*;

// ===== Operation =====

#[test]
fn operation_not_done() {
    let op = Operation::from_json(
        br#"{"name":"projects/p/operations/x","metadata":{"@type":"type.googleapis.com/x.Meta","progress":5}}"#,
    )
    .unwrap();
    assert_eq!(op.name, "projects/p/operations/x");
    assert!(!op.done);
    assert_eq!(op.error, None);
    assert_eq!(
        op.metadata.as_ref().unwrap().get(),
        r#"{"@type":"type.googleapis.com/x.Meta","progress":5}"#
    );
    assert!(op.response.is_none());
    assert!(!op.is_cancelled());
}

#[test]
fn operation_done_with_response() {
    let op = Operation::from_json(
        br#"{"name":"operations/x","done":true,"response":{"@type":"type.googleapis.com/x.R","id":[1, 2]}}"#,
    )
    .unwrap();
    assert!(op.done);
    assert_eq!(
        op.response.as_ref().unwrap().get(),
        r#"{"@type":"type.googleapis.com/x.R","id":[1, 2]}"#
    );
    assert!(!op.is_cancelled());
}

#[test]
fn operation_cancelled() {
    let op = Operation::from_json(
        br#"{"name":"operations/x","done":true,"error":{"code":1,"message":"Operation was cancelled.","details":[{"@type":"t"}]}}"#,
    )
    .unwrap();
    let error = op.error.as_ref().unwrap();
    assert_eq!(error.code, Status::CANCELLED);
    assert_eq!(error.message, "Operation was cancelled.");
    assert!(op.is_cancelled());
}

#[test]
fn is_cancelled_needs_done_and_code_1() {
    let cases = [
        (r#"{"done":true,"error":{"code":1}}"#, true),
        (r#"{"done":true,"error":{"code":"1"}}"#, true),
        (r#"{"done":false,"error":{"code":1}}"#, false),
        (r#"{"error":{"code":1}}"#, false),
        (r#"{"done":true,"error":{"code":2}}"#, false),
        (r#"{"done":true,"error":{}}"#, false),
        (r#"{"done":true}"#, false),
        (r#"{"done":true,"error":null}"#, false),
    ];
    for (json, cancelled) in cases {
        assert_eq!(
            Operation::from_json(json.as_bytes())
                .unwrap()
                .is_cancelled(),
            cancelled,
            "{json}"
        );
    }
}

#[test]
fn operation_defaults_and_nulls() {
    let empty = Operation::from_json(b"{}").unwrap();
    assert_eq!(empty.name, "");
    assert!(
        !empty.done
            && empty.error.is_none()
            && empty.metadata.is_none()
            && empty.response.is_none()
    );
    let nulls = Operation::from_json(
        br#"{"name":null,"done":null,"error":null,"metadata":null,"response":null,"extra":null}"#,
    )
    .unwrap();
    assert_eq!(nulls, empty);
    let status = Operation::from_json(br#"{"error":{"code":null,"message":null}}"#)
        .unwrap()
        .error
        .unwrap();
    assert_eq!((status.code, status.message.as_str()), (0, ""));
}

#[test]
fn status_codes() {
    for (json, code) in [
        (r#"{"error":{"code":5}}"#, Status::NOT_FOUND),
        (r#"{"error":{"code":12}}"#, Status::UNIMPLEMENTED),
        (r#"{"error":{"code":"14"}}"#, Status::UNAVAILABLE),
        (r#"{"error":{"code":-1}}"#, -1),
        (r#"{"error":{"message":"m"}}"#, 0),
    ] {
        assert_eq!(
            Operation::from_json(json.as_bytes())
                .unwrap()
                .error
                .unwrap()
                .code,
            code,
            "{json}"
        );
    }
}

#[test]
fn operation_errors() {
    for json in [
        "",
        "null",
        "[]",
        r#"["operations/x", true]"#,
        r#""operations/x""#,
        r#"{"name":"a","name":"b"}"#,
        r#"{"done":true,"done":true}"#,
        r#"{"error":{},"error":{}}"#,
        r#"{"metadata":1,"metadata":2}"#,
        r#"{"name":1}"#,
        r#"{"done":"true"}"#,
        r#"{"done":0}"#,
        r#"{"error":"failed"}"#,
        r#"{"error":[1,"m"]}"#,
        r#"{"error":{"code":1.5}}"#,
        r#"{"error":{"code":"one"}}"#,
        r#"{"error":{"code":4294967296}}"#,
        r#"{"error":{"code":1,"code":2}}"#,
        r#"{"error":{"message":7}}"#,
        r#"{"name":"a"} {}"#,
        r#"{"name":"a""#,
    ] {
        assert!(Operation::from_json(json.as_bytes()).is_err(), "{json}");
    }
}

#[test]
fn operation_eq_and_clone() {
    let json = br#"{"name":"operations/x","done":true,"error":{"code":1,"message":"m"},"metadata":{"a":1},"response":[]}"#;
    let a = Operation::from_json(json).unwrap();
    let b = Operation::from_json(json).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.clone(), a);
    let spaced = Operation::from_json(
        br#"{"name":"operations/x","done":true,"error":{"code":1,"message":"m"},"metadata":{ "a": 1 },"response":[]}"#,
    )
    .unwrap();
    assert_ne!(a, spaced, "metadata is compared as text");
    let other = Operation::from_json(br#"{"name":"operations/y","done":true}"#).unwrap();
    assert_ne!(a, other);
}
