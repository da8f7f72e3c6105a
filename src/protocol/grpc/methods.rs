//! Which gRPC methods answer with a `google.longrunning.Operation`: the
//! googleapis table compiled in, plus the user's additions and opt-outs
//! ([`GrpcLroMethods`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

/// The googleapis table (`data/grpc_lro_methods.tsv`, sorted by method).
const TABLE_TSV: &str = include_str!("../../../data/grpc_lro_methods.tsv");

/// One row of the googleapis table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// `/package.Service/Method`.
    pub(crate) method: &'static str,
    /// The declared `response_type` as written (`None` for `-`).
    pub(crate) response_type: Option<&'static str>,
    /// The declared `metadata_type` as written (`None` for `-`).
    pub(crate) metadata_type: Option<&'static str>,
}

/// The table rows in file order (sorted by method).
static TABLE: LazyLock<Vec<Row>> = LazyLock::new(|| {
    TABLE_TSV
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let method = cols.next()?;
            let _proto = cols.next()?;
            let declared = |c: Option<&'static str>| c.filter(|t| *t != "-");
            Some(Row {
                method,
                response_type: declared(cols.next()),
                metadata_type: declared(cols.next()),
            })
        })
        .collect()
});

/// The rows by method: built once, on first use (a binary search over the
/// sorted rows measured several times slower: the method paths share long
/// prefixes).
static BY_METHOD: LazyLock<HashMap<&'static str, Row>> =
    LazyLock::new(|| TABLE.iter().map(|row| (row.method, *row)).collect());

/// The googleapis row of `method`.
pub(crate) fn googleapis_row(method: &str) -> Option<&'static Row> {
    BY_METHOD.get(method)
}

/// A gRPC method path that is not `/{package}.{Service}/{Method}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidGrpcMethod {
    method: String,
}

impl fmt::Display for InvalidGrpcMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid gRPC method {:?}: expected /{{package}}.{{Service}}/{{Method}}, \
             e.g. /google.cloud.deploy.v1.CloudDeploy/CreateRelease",
            self.method
        )
    }
}

impl std::error::Error for InvalidGrpcMethod {}

/// Whether `method` is `/{package}.{Service}/{Method}`: identifiers of
/// ASCII letters, digits and `_`, a package of one or more dot-separated
/// identifiers (the HTTP/2 `:path` of a gRPC call, gRPC over HTTP/2
/// protocol document, "Requests").
pub(crate) fn is_method_path(method: &str) -> bool {
    let ident = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let Some((service, name)) = method.strip_prefix('/').and_then(|m| m.split_once('/')) else {
        return false;
    };
    let mut parts = service.split('.');
    parts.clone().count() >= 2 && parts.all(ident) && ident(name)
}

/// The gRPC methods whose answers the layer inspects for a
/// `google.longrunning.Operation`.
///
/// By default ([`GrpcLroMethods::googleapis`]) these are the 2,666 methods
/// of the public googleapis protos declared `returns
/// (google.longrunning.Operation)` (a table compiled into the crate), plus
/// the methods added with [`with`](Self::with), minus those removed with
/// [`without`](Self::without). A method is its HTTP/2 `:path`:
/// `/{package}.{Service}/{Method}`, e.g.
/// `/google.cloud.deploy.v1.CloudDeploy/CreateRelease`.
///
/// ```
/// use tower_lro::GrpcLroMethods;
///
/// let methods = GrpcLroMethods::googleapis()
///     .with("/my.company.v1.Builds/StartBuild")?
///     .without("/google.cloud.deploy.v1.CloudDeploy/CreateRelease")?;
/// assert!(methods.contains("/my.company.v1.Builds/StartBuild"));
/// assert!(methods.contains("/google.cloud.deploy.v1.CloudDeploy/CreateRollout"));
/// assert!(!methods.contains("/google.cloud.deploy.v1.CloudDeploy/CreateRelease"));
/// # Ok::<(), tower_lro::InvalidGrpcMethod>(())
/// ```
#[derive(Clone)]
pub struct GrpcLroMethods {
    googleapis: bool,
    added: Arc<HashSet<Box<str>>>,
    removed: Arc<HashSet<Box<str>>>,
}

impl GrpcLroMethods {
    /// The googleapis table, no additions, no opt-outs (the default).
    pub fn googleapis() -> Self {
        GrpcLroMethods {
            googleapis: true,
            added: Arc::default(),
            removed: Arc::default(),
        }
    }

    /// No method: gRPC calls pass through untouched, unless added with
    /// [`with`](Self::with).
    pub fn none() -> Self {
        GrpcLroMethods {
            googleapis: false,
            ..Self::googleapis()
        }
    }

    /// Also inspects `method` (`/{package}.{Service}/{Method}`), e.g. a
    /// method of your own service that returns
    /// `google.longrunning.Operation`. Undoes an earlier
    /// [`without`](Self::without) of the same method.
    ///
    /// # Errors
    ///
    /// [`InvalidGrpcMethod`] if `method` is not `/{package}.{Service}/{Method}`.
    pub fn with(mut self, method: &str) -> Result<Self, InvalidGrpcMethod> {
        check(method)?;
        Arc::make_mut(&mut self.removed).remove(method);
        Arc::make_mut(&mut self.added).insert(method.into());
        Ok(self)
    }

    /// Never inspects `method` (an opt-out), whether it is in the googleapis
    /// table or was added. Undoes an earlier [`with`](Self::with).
    ///
    /// # Errors
    ///
    /// [`InvalidGrpcMethod`] if `method` is not `/{package}.{Service}/{Method}`.
    pub fn without(mut self, method: &str) -> Result<Self, InvalidGrpcMethod> {
        check(method)?;
        Arc::make_mut(&mut self.added).remove(method);
        Arc::make_mut(&mut self.removed).insert(method.into());
        Ok(self)
    }

    /// Whether answers to `method` (an HTTP/2 `:path`) are inspected.
    pub fn contains(&self, method: &str) -> bool {
        if !self.removed.is_empty() && self.removed.contains(method) {
            return false;
        }
        (self.googleapis && googleapis_row(method).is_some())
            || (!self.added.is_empty() && self.added.contains(method))
    }
}

fn check(method: &str) -> Result<(), InvalidGrpcMethod> {
    if is_method_path(method) {
        Ok(())
    } else {
        Err(InvalidGrpcMethod {
            method: method.to_owned(),
        })
    }
}

fn sorted(set: &HashSet<Box<str>>) -> Vec<&str> {
    let mut v: Vec<&str> = set.iter().map(|s| &**s).collect();
    v.sort_unstable();
    v
}

impl Default for GrpcLroMethods {
    fn default() -> Self {
        Self::googleapis()
    }
}

impl fmt::Debug for GrpcLroMethods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcLroMethods")
            .field("googleapis", &self.googleapis)
            .field("added", &sorted(&self.added))
            .field("removed", &sorted(&self.removed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "/google.cloud.deploy.v1.CloudDeploy/CreateRelease";

    #[test]
    fn table_holds_every_row_sorted_and_well_formed() {
        assert_eq!(TABLE.len(), 2666);
        assert!(TABLE.windows(2).all(|w| w[0].method < w[1].method));
        assert!(TABLE.iter().all(|row| is_method_path(row.method)));
        // Every row is found by the lookup.
        assert!(TABLE
            .iter()
            .all(|row| googleapis_row(row.method) == Some(row)));
    }

    #[test]
    fn lookups_miss_near_names() {
        for miss in [
            "",
            "/",
            "/google.cloud.deploy.v1.CloudDeploy/createRelease",
            "/google.cloud.deploy.v1.CloudDeploy/CreateRelease/",
            "google.cloud.deploy.v1.CloudDeploy/CreateRelease",
            "/google.cloud.deploy.v1.CloudDeploy/GetRelease",
            "/google.longrunning.Operations/GetOperation",
        ] {
            assert!(!GrpcLroMethods::googleapis().contains(miss), "{miss:?}");
        }
    }

    #[test]
    fn additions_and_opt_outs() -> Result<(), InvalidGrpcMethod> {
        let own = "/acme.builds.v1.Builds/Start";
        let methods = GrpcLroMethods::googleapis().with(own)?.without(RELEASE)?;
        assert!(methods.contains(own));
        assert!(!methods.contains(RELEASE));
        let methods = methods.with(RELEASE)?.without(own)?;
        assert!(methods.contains(RELEASE));
        assert!(!methods.contains(own));
        let none = GrpcLroMethods::none().with(own)?;
        assert!(none.contains(own));
        assert!(!none.contains(RELEASE));
        Ok(())
    }

    #[test]
    fn rejects_paths_that_are_not_methods() {
        for bad in [
            "",
            "/Svc/Method",
            "/a.Svc/",
            "/a.Svc/Me thod",
            "a.Svc/Method",
            "/a..Svc/Method",
            "/a.Svc/Method/x",
            "/a.Svc/Method?x",
        ] {
            let err = GrpcLroMethods::none().with(bad).err();
            assert!(err.is_some(), "{bad:?} accepted");
            assert!(err.is_some_and(|e| e.to_string().contains("invalid gRPC method")));
        }
    }
}
