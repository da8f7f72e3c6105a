//! The fleet journal: one PostgreSQL database shared by every replica.

use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

use super::schema::{claimable, forget_owners, Row, COLUMNS, SCHEMA};
use super::{millis, Batch, BoxFuture, Entry, EntryId, Journal, JournalError, OwnerId};

/// The database's clock in milliseconds since the Unix epoch: every lease
/// and claim is timed by one clock, whatever the replicas' clocks say.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
/// Adds the column a table created by an earlier version lacks (checked
/// first: `ALTER TABLE` would lock the table on every connect).
const ADD_CLAIMED_AT: &str = "DO $$ BEGIN \
     IF NOT EXISTS (SELECT 1 FROM pg_attribute \
       WHERE attrelid = 'tower_lro_operations'::regclass \
       AND attname = 'claimed_at_ms' AND NOT attisdropped) THEN \
       ALTER TABLE tower_lro_operations ADD COLUMN claimed_at_ms BIGINT; \
     END IF; END $$";
/// When the current transaction started, on the same clock: before any
/// snapshot it takes (a claim runs in a transaction of its own).
const STARTED_MS: &str = "(extract(epoch from transaction_timestamp()) * 1000)::bigint";

/// A [`Journal`] in a PostgreSQL database (the schema is [`SCHEMA`](super::SCHEMA),
/// created on connect), shared by a fleet: each replica's writer renews its
/// owner lease, and any replica's [`Reaper`](super::Reaper) claims a dead
/// replica's entries with `SELECT ... FOR UPDATE SKIP LOCKED`, so each is
/// claimed by exactly one reaper while its claim lasts. Leases and claims
/// use the database's clock.
///
/// One connection, without TLS (`NoTls`): run it over a unix socket or a
/// private network, or implement [`Journal`] over your own pool. A lost
/// connection (the server restarted, the network cut) is re-established by
/// the next call; calls made while the server is unreachable fail with
/// [`JournalError::Store`] (the writer keeps their changes and retries).
pub struct PostgresJournal {
    /// The connection string (may hold a password: never printed).
    config: String,
    client: Mutex<Client>,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJournal").finish_non_exhaustive()
    }
}

/// Opens a connection driven on `runtime`.
async fn open(config: &str, runtime: &tokio::runtime::Handle) -> Result<Client, JournalError> {
    let (client, connection) = tokio_postgres::connect(config, NoTls)
        .await
        .map_err(JournalError::store)?;
    runtime.spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "journal: PostgreSQL connection closed");
        }
    });
    Ok(client)
}

impl PostgresJournal {
    /// Connects with a libpq-style connection string (`host=/run/postgresql
    /// dbname=app user=app`, or `postgresql://user@host/db`), creates the
    /// tables if missing, and drives the connection on the current tokio
    /// runtime.
    ///
    /// # Errors
    /// [`JournalError::Store`] if the connection or the schema fails;
    /// [`JournalError::NoRuntime`] outside a tokio runtime.
    pub async fn connect(config: &str) -> Result<Self, JournalError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| JournalError::NoRuntime)?;
        let client = open(config, &runtime).await?;
        // Concurrent `CREATE TABLE IF NOT EXISTS` from several replicas can
        // race on the catalog; a transaction-scoped advisory lock serialises them.
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock(7164190521); {SCHEMA} {ADD_CLAIMED_AT}; COMMIT;"
            ))
            .await
            .map_err(JournalError::store)?;
        Ok(PostgresJournal {
            config: config.to_owned(),
            client: Mutex::new(client),
        })
    }

    /// The connection, first re-established if it was lost.
    async fn client(&self) -> Result<MutexGuard<'_, Client>, JournalError> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            let runtime =
                tokio::runtime::Handle::try_current().map_err(|_| JournalError::NoRuntime)?;
            *client = open(&self.config, &runtime).await?;
            tracing::info!("journal: reconnected to PostgreSQL");
        }
        Ok(client)
    }
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, JournalError> {
    Row::read(|i| row.try_get(i), |i| row.try_get(i), |i| row.try_get(i))
        .map_err(JournalError::store)
}

fn entries_of(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Entry>, JournalError> {
    rows.iter()
        .map(|r| read_row(r).and_then(Row::into_entry))
        .collect()
}

/// One column of a batch, as an array parameter for `UNNEST`.
fn column(batch: &Batch, f: impl Fn(&Entry) -> String) -> Vec<String> {
    batch.records.iter().map(f).collect()
}

async fn write_batch(client: &mut Client, batch: &Batch) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    if !batch.records.is_empty() {
        let created: Vec<i64> = batch.records.iter().map(Entry::created_ms).collect();
        tx.execute(
            "INSERT INTO tower_lro_operations (id, owner, name, protocol, route_scheme, \
             route_authority, route_method, route_path, headers, created_ms) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
               $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[]) \
             ON CONFLICT (id) DO NOTHING",
            &[
                &column(batch, |e| e.id().as_str().to_owned()),
                &column(batch, |e| e.owner().as_str().to_owned()),
                &column(batch, |e| e.name().to_owned()),
                &column(batch, |e| e.protocol().as_str().to_owned()),
                &column(batch, |e| e.route().scheme().to_owned()),
                &column(batch, |e| e.route().authority().to_owned()),
                &column(batch, |e| e.route().method_str().to_owned()),
                &column(batch, |e| e.route().path().to_owned()),
                &column(batch, Entry::headers_json),
                &created,
            ],
        )
        .await?;
    }
    if !batch.removes.is_empty() {
        let ids: Vec<&str> = batch.removes.iter().map(EntryId::as_str).collect();
        tx.execute(
            "DELETE FROM tower_lro_operations WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    }
    tx.commit().await
}

impl Journal for PostgresJournal {
    fn commit<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            write_batch(&mut client, batch)
                .await
                .map_err(JournalError::store)
        })
    }

    fn renew<'a>(
        &'a self,
        owner: &'a OwnerId,
        lease: Duration,
    ) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let sql = format!(
                "INSERT INTO tower_lro_owners (owner, lease_until_ms) VALUES ($1, {NOW_MS} + $2) \
                 ON CONFLICT (owner) DO UPDATE SET lease_until_ms = excluded.lease_until_ms"
            );
            let client = self.client().await?;
            client
                .execute(&sql, &[&owner.as_str(), &millis(lease)])
                .await
                .map(drop)
                .map_err(JournalError::store)
        })
    }

    fn retire<'a>(&'a self, owner: &'a OwnerId) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM tower_lro_owners WHERE owner = $1",
                    &[&owner.as_str()],
                )
                .await
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
        Box::pin(async move {
            // Rows another reaper is claiming right now are skipped; a row
            // claimed and committed meanwhile is re-checked on its new
            // version, whose claim_until_ms and claimed_at_ms exclude it
            // (`claimable`: the snapshot may predate its claimer's renewal).
            let sql = format!(
                "WITH orphans AS ( \
                   SELECT o.id FROM tower_lro_operations o \
                   WHERE {} \
                   AND NOT EXISTS (SELECT 1 FROM tower_lro_owners w \
                     WHERE w.owner = o.owner AND w.lease_until_ms >= {NOW_MS}) \
                   ORDER BY o.created_ms LIMIT $2 \
                   FOR UPDATE OF o SKIP LOCKED) \
                 UPDATE tower_lro_operations t \
                 SET claimed_by = $1, claim_until_ms = {NOW_MS} + $3, claimed_at_ms = {NOW_MS} \
                 FROM orphans WHERE t.id = orphans.id \
                 RETURNING {}",
                claimable(NOW_MS, STARTED_MS),
                COLUMNS
                    .split(", ")
                    .map(|c| format!("t.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let client = self.client().await?;
            let rows = client
                .query(&sql, &[&claimer.as_str(), &limit, &millis(claim_for)])
                .await
                .map_err(JournalError::store)?;
            client
                .execute(&forget_owners(NOW_MS), &[])
                .await
                .map_err(JournalError::store)?;
            entries_of(rows)
        })
    }

    fn release<'a>(&'a self, ids: &'a [EntryId]) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(async move {
            let ids: Vec<&str> = ids.iter().map(EntryId::as_str).collect();
            let client = self.client().await?;
            client
                .execute(
                    "UPDATE tower_lro_operations \
                     SET claimed_by = NULL, claim_until_ms = NULL, claimed_at_ms = NULL \
                     WHERE id = ANY($1)",
                    &[&ids],
                )
                .await
                .map(drop)
                .map_err(JournalError::store)
        })
    }

    fn entries(&self) -> BoxFuture<'_, Result<Vec<Entry>, JournalError>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM tower_lro_operations ORDER BY created_ms");
            let client = self.client().await?;
            let rows = client.query(&sql, &[]).await.map_err(JournalError::store)?;
            entries_of(rows)
        })
    }
}
