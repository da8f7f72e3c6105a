//! The journal's tables, the same text for SQLite and PostgreSQL.
// Row decoding is used by the backends only.
#![cfg_attr(
    not(any(feature = "journal-sqlite", feature = "journal-postgres")),
    allow(dead_code)
)]

use super::{Entry, EntryId, JournalError, OwnerId, Protocol, Route};

/// The schema both backends create on open (idempotent). Times are
/// milliseconds since the Unix epoch.
///
/// - `tower_lro_owners`: one row per lease holder — a writing process (the
///   owner of entries) or a [`Reaper`](super::Reaper) (the claimer of
///   entries, owning none) — `lease_until_ms` moved forward by each renewal.
/// - `tower_lro_operations`: one row per tracked operation. `route_*` say
///   where its CancelOperation goes; `headers` is a JSON array of
///   `[name, value]` pairs from the non-secret allowlist only;
///   `claimed_by`/`claim_until_ms`/`claimed_at_ms` are set by a reaper's
///   claim (who, until when at most, and when it was taken).
///
/// A table created by an earlier version lacks `claimed_at_ms`: opening a
/// journal adds it (`ALTER TABLE ... ADD COLUMN`).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tower_lro_owners (
    owner          TEXT PRIMARY KEY,
    lease_until_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS tower_lro_operations (
    id              TEXT PRIMARY KEY,
    owner           TEXT NOT NULL,
    name            TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    route_scheme    TEXT NOT NULL,
    route_authority TEXT NOT NULL,
    route_method    TEXT NOT NULL,
    route_path      TEXT NOT NULL,
    headers         TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    claimed_by      TEXT,
    claim_until_ms  BIGINT,
    claimed_at_ms   BIGINT
);
CREATE INDEX IF NOT EXISTS tower_lro_operations_owner ON tower_lro_operations (owner);
";

/// The condition under which a row `o` may be claimed at `now` by a
/// statement whose snapshot was taken no earlier than `started` (the
/// backends' SQL expressions for milliseconds since the Unix epoch): its
/// claim expired, or its claimer holds no live lease (dead, or never
/// renewed) — the latter only for a claim taken before `started`.
///
/// Why the guard: a claim is taken right after its claimer's renewal
/// committed, so a claim taken before `started` comes with a lease this
/// statement's snapshot can see. Without it, a PostgreSQL claim re-checking
/// a row another reaper claimed meanwhile (read committed re-reads the row,
/// not the owners table) would take it on the strength of a snapshot older
/// than that reaper's renewal (`fresh_claimers_racing_never_share_an_entry`
/// in the tests: about 100 of 600 entries claimed twice without it).
pub(crate) fn claimable(now: &str, started: &str) -> String {
    format!(
        "(o.claim_until_ms IS NULL OR o.claim_until_ms < {now} \
          OR (o.claimed_at_ms < {started} AND NOT EXISTS (SELECT 1 FROM tower_lro_owners c \
            WHERE c.owner = o.claimed_by AND c.lease_until_ms >= {now})))"
    )
}

/// Deletes the rows of owners whose lease has expired and who have no entry
/// left (all reaped, or never any); `now` is the backend's expression for
/// the current time in milliseconds. Run by every claim: a dead owner's
/// row goes with the reaper round after its last entry is reaped. A
/// process that renews later (after an outage) inserts its row again.
pub(crate) fn forget_owners(now: &str) -> String {
    format!(
        "DELETE FROM tower_lro_owners WHERE lease_until_ms < {now} \
         AND NOT EXISTS (SELECT 1 FROM tower_lro_operations o \
           WHERE o.owner = tower_lro_owners.owner)"
    )
}

/// The columns read back, in order (`SELECT {COLUMNS} FROM ...`).
pub(crate) const COLUMNS: &str = "id, owner, name, protocol, route_scheme, route_authority, \
     route_method, route_path, headers, created_ms, claimed_by";

/// One row of `tower_lro_operations` as read back ([`COLUMNS`] order).
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) protocol: String,
    pub(crate) scheme: String,
    pub(crate) authority: String,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: String,
    pub(crate) created_ms: i64,
    pub(crate) claimed_by: Option<String>,
}

impl Row {
    /// Reads one row in [`COLUMNS`] order through a backend's getters:
    /// `text(i)` for a `TEXT` column, `int(i)` for a `BIGINT` one,
    /// `nullable(i)` for a `TEXT` column that may be `NULL`.
    pub(crate) fn read<E>(
        text: impl Fn(usize) -> Result<String, E>,
        int: impl Fn(usize) -> Result<i64, E>,
        nullable: impl Fn(usize) -> Result<Option<String>, E>,
    ) -> Result<Row, E> {
        Ok(Row {
            id: text(0)?,
            owner: text(1)?,
            name: text(2)?,
            protocol: text(3)?,
            scheme: text(4)?,
            authority: text(5)?,
            method: text(6)?,
            path: text(7)?,
            headers: text(8)?,
            created_ms: int(9)?,
            claimed_by: nullable(10)?,
        })
    }

    /// The entry, checked: protocol, route and headers must parse.
    pub(crate) fn into_entry(self) -> Result<Entry, JournalError> {
        Ok(Entry::from_stored(
            EntryId::from_stored(self.id),
            self.name,
            Protocol::parse(&self.protocol)?,
            Route::from_parts(self.scheme, self.authority, self.method, self.path)?,
            Entry::parse_headers(&self.headers)?,
            OwnerId::new(self.owner),
            self.created_ms,
        )
        .with_claimed_by(self.claimed_by.map(OwnerId::new)))
    }
}
