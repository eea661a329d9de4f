//! The embedded SQLite engine: one file in the data dir, WAL journal, versioned migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::{AccessKeyRecord, EventRecord, Filter, Kind, NewEvent, Store, StoreError, Write};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite engine.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    metrics: std::sync::Arc<crate::metrics::SqliteMetrics>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            // WAL lets readers run while one writer commits; NORMAL sync is durable in WAL mode
            // across process crashes, which is what a restart needs.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(2)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let metrics = std::sync::Arc::new(crate::metrics::SqliteMetrics::new(pool.clone()).await?);
        Ok(Self { pool, metrics })
    }

    fn parse(kind: Kind, id: String, doc: &str) -> Result<Value, StoreError> {
        serde_json::from_str(doc).map_err(|source| StoreError::Corrupt {
            kind: kind.as_str(),
            id,
            source,
        })
    }

    fn push_filter(qb: &mut QueryBuilder<Sqlite>, kind: Kind, filter: Filter<'_>) {
        qb.push(" WHERE kind = ").push_bind(kind.as_str());
        match filter {
            Filter::All => {}
            Filter::Stack(s) => {
                qb.push(" AND stack_id = ").push_bind(s);
            }
            Filter::Parent(p) => {
                qb.push(" AND parent_id = ").push_bind(p);
            }
            Filter::Member(name, value) => {
                // The name is one of a fixed list (checked by the caller), never user input.
                debug_assert!(crate::INDEXED_MEMBERS.contains(&name));
                qb.push(format!(" AND json_extract(doc, '$.{name}') = "))
                    .push_bind(value);
            }
            Filter::Ids(ids) => {
                qb.push(" AND id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(id.as_str());
                }
                if ids.is_empty() {
                    sep.push("NULL");
                }
                qb.push(")");
            }
        }
    }
}

fn check_filter(filter: Filter<'_>) -> Result<(), StoreError> {
    match filter {
        Filter::Member(name, _) if !crate::INDEXED_MEMBERS.contains(&name) => {
            Err(StoreError::UnindexedMember(name))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT doc FROM resources WHERE kind = ? AND id = ?")
            .bind(kind.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Self::parse(kind, id.to_string(), r.get::<&str, _>(0)))
            .transpose()
    }

    async fn list(&self, kind: Kind, filter: Filter<'_>) -> Result<Vec<Value>, StoreError> {
        check_filter(filter)?;
        let mut qb = QueryBuilder::new("SELECT id, doc FROM resources");
        Self::push_filter(&mut qb, kind, filter);
        qb.push(" ORDER BY rowid");
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Self::parse(kind, r.get::<String, _>(0), r.get::<&str, _>(1)))
            .collect()
    }

    async fn list_raw(&self, kind: Kind, filter: Filter<'_>) -> Result<Vec<String>, StoreError> {
        check_filter(filter)?;
        let mut qb = QueryBuilder::new("SELECT doc FROM resources");
        Self::push_filter(&mut qb, kind, filter);
        qb.push(" ORDER BY rowid");
        let rows = qb.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    async fn count(&self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError> {
        check_filter(filter)?;
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM resources");
        Self::push_filter(&mut qb, kind, filter);
        let n: i64 = qb.build().fetch_one(&self.pool).await?.get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for w in writes {
            match w {
                Write::Put {
                    kind,
                    id,
                    stack_id,
                    parent_id,
                    doc,
                } => {
                    // Upsert rather than REPLACE keeps the rowid, hence the listing order.
                    sqlx::query(
                        "INSERT INTO resources (kind, id, stack_id, parent_id, doc) VALUES (?, ?, ?, ?, ?)
                         ON CONFLICT (kind, id) DO UPDATE SET stack_id = excluded.stack_id,
                           parent_id = excluded.parent_id, doc = excluded.doc",
                    )
                    .bind(kind.as_str())
                    .bind(id)
                    .bind(stack_id)
                    .bind(parent_id)
                    .bind(doc.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                Write::Delete { kind, id } => {
                    sqlx::query("DELETE FROM resources WHERE kind = ? AND id = ?")
                        .bind(kind.as_str())
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
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
        Ok(row.map(|r| AccessKeyRecord {
            access_key_id: r.get(0),
            sealed_secret: r.get(1),
            principal: r.get(2),
            created_at: r.get(3),
        }))
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        let rows = sqlx::query("SELECT access_key_id, sealed_secret, principal, created_at FROM access_keys ORDER BY rowid")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AccessKeyRecord {
                access_key_id: r.get(0),
                sealed_secret: r.get(1),
                principal: r.get(2),
                created_at: r.get(3),
            })
            .collect())
    }

    async fn put_access_key(&self, key: AccessKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, sealed_secret, principal, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (access_key_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
               principal = excluded.principal",
        )
        .bind(key.access_key_id)
        .bind(key.sealed_secret)
        .bind(key.principal)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_access_keys_of(&self, principal: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM access_keys WHERE principal = ?")
            .bind(principal)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn append_event(&self, event: &NewEvent) -> Result<i64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO events (at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&event.at)
        .bind(&event.stack_id)
        .bind(&event.kind)
        .bind(&event.instance_id)
        .bind(&event.layer_id)
        .bind(&event.deployment_id)
        .bind(&event.command_id)
        .bind(event.detail.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.last_insert_rowid())
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
            qb.push(" AND stack_id = ").push_bind(s);
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
            qb.push(" WHERE stack_id = ").push_bind(s);
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

    fn metrics(&self) -> &dyn crate::MetricsStore {
        &*self.metrics
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
            kind: r.get(3),
            instance_id: r.get(4),
            layer_id: r.get(5),
            deployment_id: r.get(6),
            command_id: r.get(7),
            detail,
        },
    })
}
