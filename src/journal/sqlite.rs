//! The embedded journal: one local SQLite file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, TransactionBehavior};

use super::schema::{claimable, forget_owners, Row, COLUMNS, SCHEMA};
use super::{millis, Batch, BoxFuture, Entry, EntryId, Journal, JournalError, OwnerId};

/// A [`Journal`] in one SQLite file (SQLite compiled in by `rusqlite`'s
/// `bundled` feature: nothing to install).
///
/// The file is opened in WAL mode with `synchronous = FULL`: a committed
/// batch survives a process crash and a power loss. Several processes on
/// one machine may share the file (writers take turns, waiting up to 5 s
/// for the lock); a fleet on several machines shares a
/// [`PostgresJournal`](super::PostgresJournal) instead. Calls run on tokio's
/// blocking pool.
///
/// Every call first checks that the path still names the file that was
/// opened: SQLite goes on committing to a file removed (or replaced) under
/// it, where no reaper can read it, so that is a write error instead.
#[derive(Clone, Debug)]
pub struct SqliteJournal {
    conn: Arc<Mutex<Connection>>,
    file: Option<Arc<OpenedFile>>,
}

/// The file a journal was opened on: its path and, on Unix, its device
/// and inode.
#[derive(Debug)]
struct OpenedFile {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

#[cfg(unix)]
fn identity(metadata: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn identity(_: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

impl OpenedFile {
    /// The file now at `path`; `None` when there is none (`:memory:`).
    fn of(path: &Path) -> Option<Self> {
        let path = std::fs::canonicalize(path).ok()?;
        let id = identity(&std::fs::metadata(&path).ok()?);
        Some(OpenedFile { path, id })
    }

    /// # Errors
    /// [`JournalError::Store`] if the path names no file, or another file.
    fn check(&self) -> Result<(), JournalError> {
        let gone = |what: &str| {
            JournalError::store(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "the journal file {} was {what} after it was opened: \
                     what is committed would be lost to the reaper",
                    self.path.display()
                ),
            ))
        };
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(gone("removed")),
            Err(e) => Err(JournalError::store(e)),
            Ok(m) if self.id.is_some() && identity(&m) != self.id => Err(gone("replaced")),
            Ok(_) => Ok(()),
        }
    }
}

impl SqliteJournal {
    /// Opens (or creates) the journal file at `path` and its tables.
    ///
    /// # Errors
    /// [`JournalError::Store`] if the file cannot be opened or is not a
    /// SQLite database, or the schema cannot be created. Each call on the
    /// journal fails with [`JournalError::Store`] once `path` no longer
    /// names the file opened here (removed or replaced).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(JournalError::store)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(JournalError::store)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(JournalError::store)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(JournalError::store)?;
        conn.execute_batch(SCHEMA).map_err(JournalError::store)?;
        migrate(&conn).map_err(JournalError::store)?;
        Ok(SqliteJournal {
            conn: Arc::new(Mutex::new(conn)),
            file: OpenedFile::of(path).map(Arc::new),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    fn run<T, F>(&self, f: F) -> BoxFuture<'static, Result<T, JournalError>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, JournalError> + Send + 'static,
    {
        let conn = self.conn.clone();
        let file = self.file.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                if let Some(file) = &file {
                    file.check()?;
                }
                let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
                f(&mut conn)
            })
            .await
            .map_err(|_| JournalError::Closed)?
        })
    }
}

/// Adds `claimed_at_ms` to a table created by an earlier version (SQLite
/// has no `ADD COLUMN IF NOT EXISTS`).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('tower_lro_operations') \
         WHERE name = 'claimed_at_ms')",
        [],
        |row| row.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE tower_lro_operations ADD COLUMN claimed_at_ms BIGINT")?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

/// Runs a statement that returns rows in [`COLUMNS`] order: the entries.
fn query_entries(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Entry>, JournalError> {
    let rows = stmt
        .query_map(params, |row| {
            Row::read(|i| row.get(i), |i| row.get(i), |i| row.get(i))
        })
        .map_err(JournalError::store)?
        .collect::<rusqlite::Result<Vec<Row>>>()
        .map_err(JournalError::store)?;
    rows.into_iter().map(Row::into_entry).collect()
}

fn write_batch(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO tower_lro_operations (id, owner, name, protocol, route_scheme, \
             route_authority, route_method, route_path, headers, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
        )?;
        for e in &batch.records {
            let r = e.route();
            insert.execute(params![
                e.id().as_str(),
                e.owner().as_str(),
                e.name(),
                e.protocol().as_str(),
                r.scheme(),
                r.authority(),
                r.method_str(),
                r.path(),
                e.headers_json(),
                e.created_ms(),
            ])?;
        }
        let mut delete = tx.prepare_cached("DELETE FROM tower_lro_operations WHERE id = ?1")?;
        for id in &batch.removes {
            delete.execute([id.as_str()])?;
        }
    }
    tx.commit()
}

impl Journal for SqliteJournal {
    fn commit<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), JournalError>> {
        let batch = batch.clone();
        self.run(move |conn| write_batch(conn, &batch).map_err(JournalError::store))
    }

    fn renew<'a>(
        &'a self,
        owner: &'a OwnerId,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        let owner = owner.as_str().to_owned();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO tower_lro_owners (owner, lease_until_ms) VALUES (?1, ?2) \
                 ON CONFLICT (owner) DO UPDATE SET lease_until_ms = excluded.lease_until_ms",
                params![owner, now_ms().saturating_add(millis(lease))],
            )
            .map(drop)
            .map_err(JournalError::store)
        })
    }

    fn retire<'a>(&'a self, owner: &'a OwnerId) -> BoxFuture<'a, Result<(), JournalError>> {
        let owner = owner.as_str().to_owned();
        self.run(move |conn| {
            conn.execute("DELETE FROM tower_lro_owners WHERE owner = ?1", [owner])
                .map(drop)
                .map_err(JournalError::store)
        })
    }

    fn claim<'a>(
        &'a self,
        claimer: &'a OwnerId,
        limit: usize,
        claim_for: Duration,
    ) -> BoxFuture<'a, Result<Vec<Entry>, JournalError>> {
        let claimer = claimer.as_str().to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let now = now_ms();
            // One statement, and SQLite has one writer at a time: exclusive,
            // and every lease it reads is the latest.
            let sql = format!(
                "UPDATE tower_lro_operations \
                 SET claimed_by = ?1, claim_until_ms = ?2, claimed_at_ms = ?3 \
                 WHERE id IN (SELECT o.id FROM tower_lro_operations o \
                   WHERE {} \
                   AND NOT EXISTS (SELECT 1 FROM tower_lro_owners w \
                     WHERE w.owner = o.owner AND w.lease_until_ms >= ?3) \
                   ORDER BY o.created_ms LIMIT ?4) \
                 RETURNING {COLUMNS}",
                claimable("?3", "?3")
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(JournalError::store)?;
            let claimed = query_entries(
                &mut stmt,
                params![claimer, now.saturating_add(millis(claim_for)), now, limit],
            )?;
            conn.prepare_cached(&forget_owners("?1"))
                .and_then(|mut stmt| stmt.execute([now]))
                .map_err(JournalError::store)?;
            Ok(claimed)
        })
    }

    fn release<'a>(&'a self, ids: &'a [EntryId]) -> BoxFuture<'a, Result<(), JournalError>> {
        let ids = ids.to_vec();
        self.run(move |conn| {
            let tx = conn.transaction().map_err(JournalError::store)?;
            for id in &ids {
                tx.execute(
                    "UPDATE tower_lro_operations \
                     SET claimed_by = NULL, claim_until_ms = NULL, claimed_at_ms = NULL \
                     WHERE id = ?1",
                    [id.as_str()],
                )
                .map_err(JournalError::store)?;
            }
            tx.commit().map_err(JournalError::store)
        })
    }

    fn entries(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        self.run(|conn| {
            let sql = format!("SELECT {COLUMNS} FROM tower_lro_operations ORDER BY created_ms");
            let mut stmt = conn.prepare(&sql).map_err(JournalError::store)?;
            query_entries(&mut stmt, [])
        })
    }
}
