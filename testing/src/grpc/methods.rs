//! The gRPC methods the server starts operations for: every method of the
//! public googleapis protos declared `returns (google.longrunning.Operation)`,
//! with its declared `response_type` and `metadata_type`
//! (`data/grpc_lro_methods.tsv`, sorted by method).

use std::collections::HashMap;
use std::sync::LazyLock;

/// The googleapis table.
const TABLE_TSV: &str = include_str!("../../data/grpc_lro_methods.tsv");

/// One row of the googleapis table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Row {
    /// `/package.Service/Method`.
    pub(crate) method: &'static str,
    /// The `.proto` file that declares it (`google/cloud/deploy/v1/cloud_deploy.proto`).
    pub(crate) proto: &'static str,
    /// The declared `response_type` as written (`None` for `-`).
    pub(crate) response_type: Option<&'static str>,
    /// The declared `metadata_type` as written (`None` for `-`).
    pub(crate) metadata_type: Option<&'static str>,
}

impl Row {
    /// The method's package, e.g. `google.cloud.deploy.v1`.
    fn package(&self) -> &'static str {
        let service = self.method[1..].split('/').next().unwrap_or("");
        service.rsplit_once('.').map_or("", |(package, _)| package)
    }

    /// The `type.googleapis.com/...` URL of a declared type name: a name
    /// whose first segment starts with a capital letter is relative to the
    /// method's package.
    fn type_url(&self, name: &str) -> String {
        if name.starts_with(|c: char| c.is_ascii_uppercase()) {
            format!("type.googleapis.com/{}.{name}", self.package())
        } else {
            format!("type.googleapis.com/{name}")
        }
    }

    /// The type URL of the declared `response_type`.
    pub(crate) fn response_type_url(&self) -> Option<String> {
        self.response_type.map(|t| self.type_url(t))
    }

    /// The type URL of the declared `metadata_type`.
    pub(crate) fn metadata_type_url(&self) -> Option<String> {
        self.metadata_type.map(|t| self.type_url(t))
    }
}

/// The table rows in file order (sorted by method).
static TABLE: LazyLock<Vec<Row>> = LazyLock::new(|| {
    TABLE_TSV
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let method = cols.next()?;
            let proto = cols.next()?;
            let declared = |c: Option<&'static str>| c.filter(|t| *t != "-");
            Some(Row {
                method,
                proto,
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

/// Every row of the googleapis table, sorted by method.
#[cfg(test)]
pub(crate) fn googleapis_rows() -> &'static [Row] {
    &TABLE
}

/// The googleapis row of `method`.
pub(crate) fn googleapis_row(method: &str) -> Option<&'static Row> {
    BY_METHOD.get(method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_holds_every_row_sorted() {
        assert_eq!(googleapis_rows().len(), 2666);
        assert!(TABLE.windows(2).all(|w| w[0].method < w[1].method));
        assert!(TABLE
            .iter()
            .all(|row| googleapis_row(row.method) == Some(row)));
    }

    #[test]
    fn resolves_declared_types_against_the_package() {
        let row = googleapis_row("/google.cloud.deploy.v1.CloudDeploy/CreateRelease").unwrap();
        assert_eq!(
            row.response_type_url().as_deref(),
            Some("type.googleapis.com/google.cloud.deploy.v1.Release")
        );
        assert_eq!(
            row.metadata_type_url().as_deref(),
            Some("type.googleapis.com/google.cloud.deploy.v1.OperationMetadata")
        );
    }
}
