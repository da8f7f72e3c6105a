//! The fuzz targets' and benches' entry points into the REST protocol
//! (behind `__internals`; re-exported by the crate's `__fuzz`/`__bench`).

use http::Uri;

use crate::operation::OperationName;

/// The name, GetOperation URI and CancelOperation URI of the not-done
/// operation a JSON body holds, or why not (and whether it is a warning).
pub(crate) fn recognise(
    body: &[u8],
    request_uri: &Uri,
    path_prefix: Option<&str>,
) -> Result<(OperationName, Uri, Uri), (String, bool)> {
    match super::rest::recognise::recognise(body, request_uri, path_prefix) {
        Ok(target) => {
            let (get, cancel) = target.rest_uris().ok_or((String::new(), false))?;
            Ok((target.name().clone(), get, cancel))
        }
        Err(e) => Err((e.to_string(), e.is_warning())),
    }
}

/// Recognition before routing: `Some(name)` if the layer would track it.
pub(crate) fn read_operation(body: &[u8]) -> Option<OperationName> {
    super::rest::recognise::read_operation(body).ok()
}

/// `peek` alone: `Some(done)` for an object with a `name` and only an
/// Operation's fields.
pub(crate) fn peek(body: &[u8]) -> Option<bool> {
    let view = super::rest::view::peek(body).ok()?;
    (view.name.is_some() && !view.other_fields).then_some(view.done)
}
