//! The embedded SQLite engine: one file in the data dir, WAL journal, versioned migrations.
//!
//! Durability: `synchronous = FULL`, so a commit is on disk (the WAL fsynced) before it returns
//! and an acknowledged write survives a crash of the machine, not only of the process. A write
//! transaction starts with `BEGIN IMMEDIATE`, taking SQLite's write lock at once. Any failure
//! inside a transaction (a full disk above all) rolls it back and closes its connection, so no
//! connection goes back to the pool holding half a transaction.
//!
//! One process only: the engine takes an exclusive lock on `<db>.lock` for as long as it is open,
//! so a second server on the same data dir fails clearly and the typed store's cache needs no
//! cross-process check.

use std::fs::File;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use nix::fcntl::{Flock, FlockArg};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row as _, Sqlite, SqlitePool};

use crate::{
    AccessKeyRecord, AuditQuery, AuditRecord, Backend, BackendTx, EventRecord, Filter, Kind,
    NewAudit, NewEvent, Row, StoreError, StoredRow,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite engine.
pub struct SqliteBackend {
    pool: SqlitePool,
    metrics: std::sync::Arc<crate::metrics::SqliteMetrics>,
    /// Held while open: no other process uses this database.
    _lock: Flock<File>,
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path`, locks it to this process and applies
    /// pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let lock = lock_data(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // SQLite's own page cache is per connection (2 MiB by default, so 16 MiB over the
            // pool, filled as the database grows: a long-running server's memory crept up by
            // that much). Resources are read through the store's cache, and the OS keeps the
            // file's pages: 512 KiB a connection is plenty.
            .pragma("cache_size", "-512");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(2)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        restrict_files(path);
        let metrics = std::sync::Arc::new(crate::metrics::SqliteMetrics::new(pool.clone()).await?);
        Ok(Self {
            pool,
            metrics,
            _lock: lock,
        })
    }
}

/// Takes the exclusive lock of the database at `path`, or says who holds it.
fn lock_data(path: &Path) -> Result<Flock<File>, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(format!("{}: {e}", Path::new(&lock_path).display())))?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((file, _)) => {
            let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
            drop(file);
            return Err(StoreError::Locked(format!(
                "the database {} is in use by another opsworks server (pid {}); one data dir serves one server — point several servers at one PostgreSQL instead",
                path.display(),
                holder.trim()
            )));
        }
    };
    use std::io::{Seek, Write};
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// The database and its WAL hold secrets (sealed, but still): owner only.
fn restrict_files(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

fn push_filter(qb: &mut QueryBuilder<Sqlite>, kind: Kind, filter: Filter<'_>) {
    qb.push(" WHERE kind = ").push_bind(kind.as_str());
    match filter {
        Filter::All => {}
        Filter::Stack(s) => {
            qb.push(" AND stack_id = ").push_bind(s.to_string());
        }
        Filter::Parent(p) => {
            qb.push(" AND parent_id = ").push_bind(p.to_string());
        }
        Filter::Instance(i) => {
            qb.push(" AND instance_id = ").push_bind(i.to_string());
        }
        Filter::Ids(ids) => {
            qb.push(" AND id IN (");
            let mut sep = qb.separated(", ");
            for id in ids {
                sep.push_bind(id.clone());
            }
            if ids.is_empty() {
                sep.push("NULL");
            }
            qb.push(")");
        }
    }
}

async fn get_doc<'c, E>(exec: E, kind: Kind, id: &str) -> Result<Option<String>, StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let row = sqlx::query("SELECT doc FROM resources WHERE kind = ? AND id = ?")
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(exec)
        .await?;
    Ok(row.map(|r| r.get::<String, _>(0)))
}

async fn list_docs<'c, E>(
    exec: E,
    kind: Kind,
    filter: Filter<'_>,
) -> Result<Vec<(String, String)>, StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut qb = QueryBuilder::new("SELECT id, doc FROM resources");
    push_filter(&mut qb, kind, filter);
    qb.push(" ORDER BY rowid");
    let rows = qb.build().fetch_all(exec).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect())
}

async fn count_docs<'c, E>(exec: E, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM resources");
    push_filter(&mut qb, kind, filter);
    let n: i64 = qb.build().fetch_one(exec).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

fn key_of_row(r: &sqlx::sqlite::SqliteRow) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key_id: r.get(0),
        sealed_secret: r.get(1),
        principal: r.get(2),
        created_at: r.get(3),
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        get_doc(&self.pool, kind, id).await
    }

    async fn list(
        &self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        list_docs(&self.pool, kind, filter).await
    }

    async fn count(&self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError> {
        count_docs(&self.pool, kind, filter).await
    }

    async fn begin(&self) -> Result<Box<dyn BackendTx>, StoreError> {
        // The transaction owns the connection before BEGIN is sent: a caller that gives up while
        // BEGIN waits for the write lock (a client gone away) drops it, which closes the
        // connection. Dropped bare, the connection would go back to the pool and SQLite's worker
        // would still run that BEGIN once the lock came free, leaving an idle pooled connection
        // holding the write lock: every other writer then waits its busy timeout and fails, until
        // someone draws that connection and is told a transaction is already open.
        let mut tx = SqliteTx {
            conn: Some(self.pool.acquire().await?),
            failed: false,
        };
        let begun = sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut **tx.conn())
            .await;
        tx.fail(begun)?;
        Ok(Box::new(tx))
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get(0))
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT access_key_id, sealed_secret, principal, created_at FROM access_keys WHERE access_key_id = ?",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(key_of_row))
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT access_key_id, sealed_secret, principal, created_at FROM access_keys ORDER BY rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_of_row).collect())
    }

    async fn events_after(
        &self,
        stack_id: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut qb = QueryBuilder::new(
            "SELECT seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail
             FROM events WHERE seq > ",
        );
        qb.push_bind(after);
        if let Some(s) = stack_id {
            qb.push(" AND stack_id = ").push_bind(s.to_string());
        }
        qb.push(" ORDER BY seq LIMIT ").push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(event_of_row).collect()
    }

    async fn latest_events(
        &self,
        stack_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut qb = QueryBuilder::new(
            "SELECT seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail
             FROM events",
        );
        if let Some(s) = stack_id {
            qb.push(" WHERE stack_id = ").push_bind(s.to_string());
        }
        qb.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().rev().map(event_of_row).collect()
    }

    async fn prune_events(&self, before: &str, keep_rows: u64) -> Result<u64, StoreError> {
        let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
        // Timestamps are stored in one UTC form, so text order is time order.
        let done = sqlx::query(
            "DELETE FROM events WHERE at < ?
               OR seq < (SELECT MIN(seq) FROM (SELECT seq FROM events ORDER BY seq DESC LIMIT ?))",
        )
        .bind(before)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn audit(&self, query: AuditQuery<'_>) -> Result<Vec<AuditRecord>, StoreError> {
        crate::audit::sqlite::list(&self.pool, query).await
    }

    async fn prune_audit(&self, before: &str, keep_rows: u64) -> Result<u64, StoreError> {
        crate::audit::sqlite::prune(&self.pool, before, keep_rows).await
    }

    fn metrics(&self) -> &dyn crate::MetricsStore {
        &*self.metrics
    }

    async fn export_rows(&self, kind: Kind) -> Result<Vec<StoredRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, stack_id, parent_id, instance_id, doc FROM resources WHERE kind = ? ORDER BY rowid",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| StoredRow {
                kind,
                id: r.get(0),
                stack_id: r.get(1),
                parent_id: r.get(2),
                instance_id: r.get(3),
                doc: r.get(4),
            })
            .collect())
    }

    async fn settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT key, value FROM settings ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn event_seq_high_water(&self) -> Result<i64, StoreError> {
        // AUTOINCREMENT keeps the highest number handed out in sqlite_sequence.
        let row = sqlx::query("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }
}

/// A write transaction on one pooled connection, begun with `BEGIN IMMEDIATE`.
struct SqliteTx {
    /// `None` once committed.
    conn: Option<PoolConnection<Sqlite>>,
    /// Whether a step failed: SQLite undoes only the failed statement, so COMMIT would keep the
    /// steps before it; such a transaction refuses to commit instead.
    failed: bool,
}

impl SqliteTx {
    fn conn(&mut self) -> &mut PoolConnection<Sqlite> {
        self.conn.as_mut().expect("open until commit")
    }

    /// Runs `result`'s failure path: the transaction is abandoned and its connection closed,
    /// never returned to the pool mid-transaction.
    fn fail<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            self.poison();
            e.into()
        })
    }

    /// After a failure: no commit, and the connection is closed rather than reused.
    fn poison(&mut self) {
        self.failed = true;
        if let Some(c) = self.conn.as_mut() {
            c.close_on_drop();
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Dropped before commit: closing the connection makes SQLite roll the transaction back.
        if let Some(c) = self.conn.as_mut() {
            c.close_on_drop();
        }
    }
}

#[async_trait]
impl BackendTx for SqliteTx {
    async fn get(&mut self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        let r = get_doc(&mut **self.conn(), kind, id).await;
        r.inspect_err(|_| self.poison())
    }

    async fn list(
        &mut self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let r = list_docs(&mut **self.conn(), kind, filter).await;
        r.inspect_err(|_| self.poison())
    }

    async fn count(&mut self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError> {
        let r = count_docs(&mut **self.conn(), kind, filter).await;
        r.inspect_err(|_| self.poison())
    }

    async fn put(&mut self, row: Row<'_>) -> Result<(), StoreError> {
        // Upsert rather than REPLACE keeps the rowid, hence the listing order.
        let r = sqlx::query(
            "INSERT INTO resources (kind, id, stack_id, parent_id, instance_id, doc) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (kind, id) DO UPDATE SET stack_id = excluded.stack_id,
               parent_id = excluded.parent_id, instance_id = excluded.instance_id, doc = excluded.doc",
        )
        .bind(row.kind.as_str())
        .bind(row.id)
        .bind(row.stack_id)
        .bind(row.parent_id)
        .bind(row.instance_id)
        .bind(row.doc)
        .execute(&mut **self.conn())
        .await;
        self.fail(r).map(drop)
    }

    async fn delete(&mut self, kind: Kind, id: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM resources WHERE kind = ? AND id = ?")
            .bind(kind.as_str())
            .bind(id)
            .execute(&mut **self.conn())
            .await;
        self.fail(r).map(drop)
    }

    async fn append_event(&mut self, event: &NewEvent) -> Result<i64, StoreError> {
        let r = sqlx::query(
            "INSERT INTO events (at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&event.at)
        .bind(&event.stack_id)
        .bind(event.kind.as_str())
        .bind(&event.instance_id)
        .bind(&event.layer_id)
        .bind(&event.deployment_id)
        .bind(&event.command_id)
        .bind(event.detail.to_string())
        .execute(&mut **self.conn())
        .await;
        self.fail(r).map(|done| done.last_insert_rowid())
    }

    async fn put_access_key(&mut self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        let r = sqlx::query(
            "INSERT INTO access_keys (access_key_id, sealed_secret, principal, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (access_key_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
               principal = excluded.principal",
        )
        .bind(&key.access_key_id)
        .bind(&key.sealed_secret)
        .bind(&key.principal)
        .bind(&key.created_at)
        .execute(&mut **self.conn())
        .await;
        self.fail(r).map(drop)
    }

    async fn delete_access_keys_of(&mut self, principal: &str) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM access_keys WHERE principal = ?")
            .bind(principal)
            .execute(&mut **self.conn())
            .await;
        self.fail(r).map(|done| done.rows_affected())
    }

    async fn delete_access_key(&mut self, access_key_id: &str) -> Result<(), StoreError> {
        let r = sqlx::query("DELETE FROM access_keys WHERE access_key_id = ?")
            .bind(access_key_id)
            .execute(&mut **self.conn())
            .await;
        self.fail(r).map(drop)
    }

    async fn append_audit(&mut self, entry: &NewAudit) -> Result<i64, StoreError> {
        let r = crate::audit::sqlite::append(self.conn(), None, entry).await;
        self.fail(r)
    }

    async fn import_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        let r = crate::audit::sqlite::append(self.conn(), Some(record.seq), &record.entry).await;
        self.fail(r).map(drop)
    }

    async fn import_event(&mut self, record: &EventRecord) -> Result<(), StoreError> {
        let event = &record.event;
        // An explicit seq raises sqlite_sequence past it, so appends continue above.
        let r = sqlx::query(
            "INSERT INTO events (seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.seq)
        .bind(&event.at)
        .bind(&event.stack_id)
        .bind(event.kind.as_str())
        .bind(&event.instance_id)
        .bind(&event.layer_id)
        .bind(&event.deployment_id)
        .bind(&event.command_id)
        .bind(event.detail.to_string())
        .execute(&mut **self.conn())
        .await;
        self.fail(r).map(drop)
    }

    async fn raise_event_seq(&mut self, seq: i64) -> Result<(), StoreError> {
        let r = sqlx::query("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'events'")
            .bind(seq)
            .execute(&mut **self.conn())
            .await;
        let updated = self.fail(r)?.rows_affected();
        if updated == 0 {
            let r = sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)")
                .bind(seq)
                .execute(&mut **self.conn())
                .await;
            self.fail(r)?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if self.failed {
            // Dropping closes the connection, which rolls back.
            return Err(StoreError::Database(
                "the transaction failed earlier and was rolled back".into(),
            ));
        }
        let r = sqlx::query("COMMIT").execute(&mut **self.conn()).await;
        match r {
            Ok(_) => {
                // Back to the pool, clean.
                self.conn.take();
                Ok(())
            }
            Err(e) => {
                // A failed COMMIT (a full disk) leaves the transaction open in SQLite: end it,
                // and drop the connection (Drop closes it) rather than reuse it.
                let _ = sqlx::query("ROLLBACK").execute(&mut **self.conn()).await;
                Err(e.into())
            }
        }
    }
}

/// An `events` row (seq, at, stack_id, type, ids..., detail) as a record.
fn event_of_row(r: &sqlx::sqlite::SqliteRow) -> Result<EventRecord, StoreError> {
    let seq: i64 = r.get(0);
    let detail =
        serde_json::from_str(r.get::<&str, _>(8)).map_err(|source| StoreError::Corrupt {
            kind: "event",
            id: seq.to_string(),
            source,
        })?;
    Ok(EventRecord {
        seq,
        event: NewEvent {
            at: r.get(1),
            stack_id: r.get(2),
            kind: r
                .get::<&str, _>(3)
                .parse()
                .map_err(|_| StoreError::Database(format!("event {seq} has an unknown type")))?,
            instance_id: r.get(4),
            layer_id: r.get(5),
            deployment_id: r.get(6),
            command_id: r.get(7),
            detail,
        },
    })
}
