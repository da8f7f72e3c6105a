//! AIP-151 operations as the caller sees them: the validated
//! [`OperationName`], the decoded [`Operation`] with its [`Status`], typed
//! [`Decoded`] results. (The REST routes of a name, `OperationName::get_uri`
//! and its kin, are built by the REST protocol.)
//!
//! Everything here treats a response body as untrusted input: a name must
//! pass [`OperationName::parse`] before any request is built from it, routes
//! take their scheme and authority only from the original request, and the
//! name is percent-encoded on the wire (AIP-127), so whatever survives
//! validation is inert.

mod decoded;
pub(crate) mod json;
mod message;
mod name;
mod route_error;
mod validate;

pub use decoded::Decoded;
pub use message::{MetadataError, Operation, Status};
pub use name::OperationName;
pub use route_error::RouteError;
pub use validate::InvalidOperationName;
