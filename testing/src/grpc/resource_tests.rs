//! The resource a table method's request names, for every method.

use super::*;

#[test]
fn collections_come_from_patterns() {
    let patterns = vec![
        "projects/{project}/locations/{location}/deliveryPipelines/{delivery_pipeline}/releases/{release}".to_owned(),
    ];
    let parent = "projects/p/locations/l/deliveryPipelines/d";
    assert_eq!(collection(&patterns, parent).as_deref(), Some("releases"));
    assert_eq!(collection(&patterns, "projects/p/locations/l"), None);
    assert_eq!(
        collection(&patterns, "folders/p/locations/l/deliveryPipelines/d"),
        None
    );
}

/// Fills `message`'s strings as a client would (`parent`, `name`,
/// references, `*_id`, `project_id`, `region`, ...; others a resource
/// name) and, `depth` levels down, its `REQUIRED` messages and lists.
fn fill(types: &MethodTypes, message: &mut DynamicMessage, depth: u8) {
    let reference = types.resource_reference.as_ref();
    for field in message.descriptor().fields() {
        let value = match field.name() {
            "parent" => "projects/p/locations/l",
            "project" | "project_id" => "p",
            "region" | "zone" | "location" => "l",
            name if name.ends_with("_id") => "x",
            _ if reference.is_some_and(|r| field.options().has_extension(r)) => {
                "projects/p/locations/l/things/t"
            }
            _ => "projects/p/locations/l/things/t",
        };
        let required = is_required(types, &field);
        match field.kind() {
            Kind::String if !field.is_list() => {
                let _ = message.try_set_field(&field, Value::String(value.to_owned()));
            }
            Kind::String if required => {
                let item = Value::String(value.to_owned());
                let _ = message.try_set_field(&field, Value::List(vec![item]));
            }
            Kind::Enum(_) if required && field.is_list() => {
                let first = Value::List(vec![Value::EnumNumber(1)]);
                let _ = message.try_set_field(&field, first);
            }
            Kind::Message(m) if required && depth > 0 && !field.is_map() => {
                let mut inner = DynamicMessage::new(m);
                fill(types, &mut inner, depth - 1);
                let inner = Value::Message(inner);
                let value = if field.is_list() {
                    Value::List(vec![inner])
                } else {
                    inner
                };
                let _ = message.try_set_field(&field, value);
            }
            _ => {}
        }
    }
}

/// A request as a client fills it in ([`fill`]), with the carried
/// resource's `name` where the request has one.
fn filled(types: &MethodTypes) -> DynamicMessage {
    let mut request = DynamicMessage::new(types.request.clone());
    fill(types, &mut request, 2);
    if let Some(field) = types
        .response
        .as_ref()
        .and_then(|r| resource_field(&types.request, r))
    {
        let mut resource = DynamicMessage::new(field.kind().as_message().unwrap().clone());
        fill(types, &mut resource, 1);
        let text = Value::String("projects/p/locations/l/things/t".to_owned());
        let _ = resource.try_set_field_by_name("name", text);
        request.set_field(&field, Value::Message(resource));
    }
    request
}

#[test]
fn every_table_method_answers_a_filled_request_with_its_declared_type() {
    let mut refused = Vec::new();
    for row in crate::grpc::methods::googleapis_rows() {
        let types = super::super::descriptors::method_types(row).unwrap();
        match plan(&types, &filled(&types), None) {
            Ok(plan) => {
                let named = plan.naming != Naming::Location || !plan.target.is_empty();
                assert!(named, "{}", row.method);
                let declared = types.response.as_ref().map(|r| r.full_name().to_owned());
                let answered = plan
                    .response
                    .as_ref()
                    .map(|m| m.descriptor().full_name().to_owned());
                assert_eq!(answered, declared, "{}", row.method);
            }
            Err(status) => refused.push(format!("{} {}", row.method, status.message())),
        }
    }
    assert!(refused.is_empty(), "refused: {refused:#?}");
}

#[test]
fn names_convert() {
    assert_eq!(snake("DeliveryPipeline"), "delivery_pipeline");
    assert_eq!(plural_camel("delivery_pipeline"), "deliveryPipelines");
}

#[test]
fn a_request_with_naming_fields_left_empty_is_invalid_argument() {
    let path = "/google.cloud.deploy.v1.CloudDeploy/UpdateDeliveryPipeline";
    let row = crate::grpc::methods::googleapis_row(path).unwrap();
    let types = super::super::descriptors::method_types(row).unwrap();
    let mut request = DynamicMessage::new(types.request.clone());
    let mask = types.request.get_field_by_name("update_mask").unwrap();
    let mask = DynamicMessage::new(mask.kind().as_message().unwrap().clone());
    request.set_field_by_name("update_mask", Value::Message(mask));
    let pipeline = types
        .request
        .get_field_by_name("delivery_pipeline")
        .unwrap();
    let pipeline = DynamicMessage::new(pipeline.kind().as_message().unwrap().clone());
    request.set_field_by_name("delivery_pipeline", Value::Message(pipeline));
    let status = plan(&types, &request, None).unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}
