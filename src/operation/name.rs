//! [`OperationName`]: a validated AIP-151 operation name.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::validate::{validate, InvalidOperationName};

/// The `x-goog-request-params` value: every byte except `[-_.~0-9a-zA-Z]` is
/// percent-encoded, `/` included (it is a form-encoded parameter, not a path).
const REQUEST_PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A validated AIP-151 operation name, such as
/// `projects/my-project/locations/us-central1/operations/operation-123`.
///
/// Names come from response bodies, so they are untrusted input: a value of
/// this type has passed every rule of [`OperationName::parse`]. It is cheap to
/// clone (an `Arc<str>`).
///
/// [`get_uri`](OperationName::get_uri) and
/// [`cancel_uri`](OperationName::cancel_uri) build the AIP-151 GetOperation and
/// CancelOperation routes for it.
///
/// `Display` shows the name itself.
///
/// ```
/// use tower_lro::OperationName;
///
/// let name = OperationName::parse("projects/p/locations/global/operations/o")?;
/// // The request that started the operation.
/// let request: http::Uri =
///     "https://clouddeploy.googleapis.com/v1/projects/p/locations/global/deliveryPipelines".parse()?;
/// assert_eq!(
///     name.cancel_uri(&request)?,
///     "https://clouddeploy.googleapis.com/v1/projects/p/locations/global/operations/o:cancel",
/// );
/// assert!(OperationName::parse("https://evil.example/operations/o").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperationName(Arc<str>);

impl OperationName {
    /// Validates an operation name taken from an AIP-151 `Operation.name`.
    ///
    /// A name is a relative resource name (AIP-122): segments separated by
    /// single `/`s. It is rejected, with an [`InvalidOperationName`] whose
    /// [`reason`](InvalidOperationName::reason) names the rule, when it:
    ///
    /// * is empty, or longer than 4096 bytes;
    /// * contains a control character or Unicode whitespace, `?`, `#` or `\`;
    /// * starts with `/`;
    /// * has a first segment containing `:` (a URI scheme such as `https:` or
    ///   `mailto:`);
    /// * has an empty segment (`a//b`, or a trailing `/`) or a `.` or `..`
    ///   segment;
    /// * has a `%` escape that decodes to a control character, whitespace,
    ///   `?`, `#`, `/` or `\`, or that makes a segment decode to `.` or `..`
    ///   (`%2e%2e`). Escapes are decoded repeatedly, so double-encoded forms
    ///   (`%252F`) are rejected too.
    ///
    /// Anything else (`:` in later segments, `@`, `+`, `%` that is not an
    /// escape, non-ASCII text …) is accepted: it is percent-encoded on the
    /// wire, where it is inert.
    ///
    /// # Errors
    ///
    /// [`InvalidOperationName`] for the first rule (in the order above) that
    /// the name breaks.
    pub fn parse(name: &str) -> Result<OperationName, InvalidOperationName> {
        match validate(name) {
            Ok(()) => Ok(OperationName(Arc::from(name))),
            Err(reason) => Err(InvalidOperationName::new(reason, name)),
        }
    }

    /// The name, as parsed.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's first segment (`projects`, `operations`, …).
    pub(crate) fn first_segment(&self) -> &str {
        match self.0.split_once('/') {
            Some((first, _)) => first,
            None => &self.0,
        }
    }

    /// The `x-goog-request-params` header value for requests about this
    /// operation: `name=` followed by the name with every byte except
    /// `[-_.~0-9a-zA-Z]` percent-encoded (so `/` is `%2F`).
    pub(crate) fn request_params(&self) -> HeaderValue {
        let mut value = String::with_capacity(5 + self.0.len() + 16);
        value.push_str("name=");
        value.extend(utf8_percent_encode(&self.0, REQUEST_PARAM));
        // The value is visible ASCII only, so this cannot fail; the fallback
        // exists only to keep library code free of panics.
        HeaderValue::from_maybe_shared(Bytes::from(value))
            .unwrap_or_else(|_| HeaderValue::from_static("name="))
    }
}

impl fmt::Display for OperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use percent_encoding::percent_decode_str;

    use super::*;

    fn name(s: &str) -> OperationName {
        OperationName::parse(s).unwrap()
    }

    #[test]
    fn request_params_encodes_slash_and_reserved() {
        assert_eq!(
            name("projects/my-project/locations/us-central1/operations/op_1.2~3").request_params(),
            "name=projects%2Fmy-project%2Flocations%2Fus-central1%2Foperations%2Fop_1.2~3"
        );
    }

    #[test]
    fn request_params_reserved_characters() {
        assert_eq!(
            name("operations/a:b@c+d;e=f&g%h,i!j*k'l(m)n$o[p]q").request_params(),
            "name=operations%2Fa%3Ab%40c%2Bd%3Be%3Df%26g%25h%2Ci%21j%2Ak%27l%28m%29n%24o%5Bp%5Dq"
        );
        assert_eq!(
            name("operations/caf\u{e9}/\u{1F600}").request_params(),
            "name=operations%2Fcaf%C3%A9%2F%F0%9F%98%80"
        );
    }

    #[test]
    fn request_params_is_not_sensitive_and_roundtrips() {
        let n = name("projects/p/operations/a%2541:b");
        let value = n.request_params();
        assert!(!value.is_sensitive());
        let text = value.to_str().unwrap();
        let encoded = text.strip_prefix("name=").unwrap();
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        assert_eq!(
            percent_decode_str(encoded).decode_utf8().unwrap(),
            n.as_str()
        );
    }
}
