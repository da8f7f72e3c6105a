//! Where a journaled operation's CancelOperation goes.

use http::{Method, Uri};

use super::JournalError;

/// The gRPC method a gRPC entry's cancel calls (AIP-151 `CancelOperation`).
pub const GRPC_CANCEL_METHOD: &str = "/google.longrunning.Operations/CancelOperation";

/// Where an entry's CancelOperation goes: always the scheme and authority of
/// the request that started the operation (never anything read from a
/// response), with the HTTP method and path-and-query of the cancel. For
/// gRPC the method is `POST` and the path is [`GRPC_CANCEL_METHOD`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    scheme: String,
    authority: String,
    method: String,
    path: String,
}

impl Route {
    /// A REST cancel: `method` (AIP-151: `POST`) to `cancel_uri`, an absolute
    /// URI (`https://host/v1/{name}:cancel`).
    ///
    /// # Errors
    /// [`JournalError::Invalid`] if `cancel_uri` has no scheme or authority.
    pub fn rest(method: &Method, cancel_uri: &Uri) -> Result<Self, JournalError> {
        let (Some(scheme), Some(authority)) = (cancel_uri.scheme(), cancel_uri.authority()) else {
            return Err(JournalError::Invalid(
                "a journaled cancel URI needs a scheme and an authority".into(),
            ));
        };
        let path = cancel_uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        Ok(Route {
            scheme: scheme.as_str().to_owned(),
            authority: authority.as_str().to_owned(),
            method: method.as_str().to_owned(),
            path,
        })
    }

    /// A gRPC cancel on the channel to `scheme://authority` (`http` or `https`).
    pub fn grpc(scheme: &str, authority: &str) -> Self {
        Route {
            scheme: scheme.to_owned(),
            authority: authority.to_owned(),
            method: Method::POST.as_str().to_owned(),
            path: GRPC_CANCEL_METHOD.to_owned(),
        }
    }

    /// Rebuilds a route read back from storage, checking it is well formed.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] if the parts do not make an absolute URI or
    /// a method.
    pub fn from_parts(
        scheme: String,
        authority: String,
        method: String,
        path: String,
    ) -> Result<Self, JournalError> {
        let route = Route {
            scheme,
            authority,
            method,
            path,
        };
        route.uri()?;
        route.method()?;
        Ok(route)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// `host[:port]` of the original request.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The cancel's path and query (REST) or gRPC method path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The cancel's HTTP method.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] if the stored text is not a method.
    pub fn method(&self) -> Result<Method, JournalError> {
        Method::from_bytes(self.method.as_bytes())
            .map_err(|_| JournalError::Corrupt(format!("bad method {:?}", self.method)))
    }

    /// The stored method text.
    pub fn method_str(&self) -> &str {
        &self.method
    }

    /// `{scheme}://{authority}{path}`.
    ///
    /// # Errors
    /// [`JournalError::Corrupt`] if the parts do not make a URI.
    pub fn uri(&self) -> Result<Uri, JournalError> {
        Uri::builder()
            .scheme(self.scheme.as_str())
            .authority(self.authority.as_str())
            .path_and_query(self.path.as_str())
            .build()
            .map_err(|e| JournalError::Corrupt(format!("bad route: {e}")))
    }
}
