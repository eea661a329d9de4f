//! PostgreSQL write transactions: begun holding the database-wide write lock, poisoned by their
//! first failure, rolled back when dropped.

use async_trait::async_trait;
use sqlx::{Postgres, Row as _, Transaction};

use super::{count_docs, get_doc, list_docs};
use crate::{
    AccessKeyRecord, AuditRecord, BackendTx, EventRecord, Filter, Kind, NewAudit, NewEvent, Row,
    StoreError,
};

/// A write transaction (see the module `postgres` for the lock).
pub(super) struct PgTx {
    /// sqlx rolls it back when dropped uncommitted (the ROLLBACK goes out before its connection
    /// is reused, and a connection that cannot take it is closed, which rolls back too).
    tx: Transaction<'static, Postgres>,
    /// The first failure, if any. PostgreSQL refuses every statement after a failed one, and
    /// answers COMMIT with ROLLBACK without an error: so a poisoned transaction refuses to
    /// commit here, rather than acknowledge writes it lost.
    failed: Option<String>,
}

impl PgTx {
    pub(super) fn new(tx: Transaction<'static, Postgres>) -> Self {
        Self { tx, failed: None }
    }

    fn check(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(first) => Err(StoreError::Database(format!(
                "the transaction failed earlier ({first}) and was rolled back"
            ))),
            None => Ok(()),
        }
    }

    /// Records a failure (poisoning the transaction) and converts it.
    fn fail<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, StoreError> {
        result.map_err(|e| {
            let e = StoreError::from(e);
            self.failed.get_or_insert_with(|| e.to_string());
            e
        })
    }
}

#[async_trait]
impl BackendTx for PgTx {
    async fn get(&mut self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        self.check()?;
        let r = get_doc(&mut *self.tx, kind, id).await;
        self.fail(r)
    }

    async fn list(
        &mut self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.check()?;
        let r = list_docs(&mut *self.tx, kind, filter).await;
        self.fail(r)
    }

    async fn count(&mut self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError> {
        self.check()?;
        let r = count_docs(&mut *self.tx, kind, filter).await;
        self.fail(r)
    }

    async fn put(&mut self, row: Row<'_>) -> Result<(), StoreError> {
        self.check()?;
        // The conflict branch leaves `seq` alone: a replaced document keeps its place.
        let r = sqlx::query(
            "INSERT INTO resources (kind, id, stack_id, parent_id, instance_id, doc)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (kind, id) DO UPDATE SET stack_id = excluded.stack_id,
               parent_id = excluded.parent_id, instance_id = excluded.instance_id, doc = excluded.doc",
        )
        .bind(row.kind.as_str())
        .bind(row.id)
        .bind(row.stack_id)
        .bind(row.parent_id)
        .bind(row.instance_id)
        .bind(row.doc)
        .execute(&mut *self.tx)
        .await;
        self.fail(r).map(drop)
    }

    async fn delete(&mut self, kind: Kind, id: &str) -> Result<(), StoreError> {
        self.check()?;
        let r = sqlx::query("DELETE FROM resources WHERE kind = $1 AND id = $2")
            .bind(kind.as_str())
            .bind(id)
            .execute(&mut *self.tx)
            .await;
        self.fail(r).map(drop)
    }

    async fn append_event(&mut self, event: &NewEvent) -> Result<i64, StoreError> {
        self.check()?;
        let r = sqlx::query(
            "INSERT INTO events (at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq",
        )
        .bind(&event.at)
        .bind(&event.stack_id)
        .bind(event.kind.as_str())
        .bind(&event.instance_id)
        .bind(&event.layer_id)
        .bind(&event.deployment_id)
        .bind(&event.command_id)
        .bind(event.detail.to_string())
        .fetch_one(&mut *self.tx)
        .await;
        self.fail(r).map(|row| row.get(0))
    }

    async fn put_access_key(&mut self, key: &AccessKeyRecord) -> Result<(), StoreError> {
        self.check()?;
        let r = sqlx::query(
            "INSERT INTO access_keys (access_key_id, sealed_secret, principal, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (access_key_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
               principal = excluded.principal",
        )
        .bind(&key.access_key_id)
        .bind(&key.sealed_secret)
        .bind(&key.principal)
        .bind(&key.created_at)
        .execute(&mut *self.tx)
        .await;
        self.fail(r).map(drop)
    }

    async fn delete_access_keys_of(&mut self, principal: &str) -> Result<u64, StoreError> {
        self.check()?;
        let r = sqlx::query("DELETE FROM access_keys WHERE principal = $1")
            .bind(principal)
            .execute(&mut *self.tx)
            .await;
        self.fail(r).map(|done| done.rows_affected())
    }

    async fn delete_access_key(&mut self, access_key_id: &str) -> Result<(), StoreError> {
        self.check()?;
        let r = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *self.tx)
            .await;
        self.fail(r).map(drop)
    }

    async fn append_audit(&mut self, entry: &NewAudit) -> Result<i64, StoreError> {
        self.check()?;
        let r = crate::audit::postgres::append(&mut self.tx, None, entry).await;
        self.fail(r)
    }

    async fn import_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        self.check()?;
        let r = crate::audit::postgres::append(&mut self.tx, Some(record.seq), &record.entry).await;
        self.fail(r).map(drop)
    }

    async fn bump_generations(&mut self, kinds: &[Kind]) -> Result<(), StoreError> {
        self.check()?;
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let r = sqlx::query(
            "INSERT INTO generations (kind, gen) SELECT k, 1 FROM UNNEST($1::text[]) AS k
             ON CONFLICT (kind) DO UPDATE SET gen = generations.gen + 1",
        )
        .bind(&names)
        .execute(&mut *self.tx)
        .await;
        self.fail(r).map(drop)
    }

    async fn notify(&mut self, channel: &str, payload: &str) -> Result<(), StoreError> {
        self.check()?;
        // Delivered at commit, in commit order, and dropped with a rollback.
        let r = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut *self.tx)
            .await;
        self.fail(r).map(drop)
    }

    async fn import_event(&mut self, record: &EventRecord) -> Result<(), StoreError> {
        self.check()?;
        let event = &record.event;
        let r = sqlx::query(
            "INSERT INTO events (seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        .execute(&mut *self.tx)
        .await;
        self.fail(r)?;
        // An explicit value leaves the sequence where it was.
        self.raise_event_seq(record.seq).await
    }

    async fn raise_event_seq(&mut self, seq: i64) -> Result<(), StoreError> {
        self.check()?;
        // setval is not transactional: a rolled-back copy leaves the sequence raised, which
        // only skips numbers.
        let r = sqlx::query(
            "SELECT setval('events_seq_seq', $1) FROM events_seq_seq
             WHERE $1 > (CASE WHEN is_called THEN last_value ELSE 0 END)",
        )
        .bind(seq)
        .fetch_optional(&mut *self.tx)
        .await;
        self.fail(r).map(drop)
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        if let Err(e) = self.check() {
            let _ = self.tx.rollback().await;
            return Err(e);
        }
        self.tx.commit().await.map_err(|e| match StoreError::from(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                "{m}; the connection went during COMMIT, so the transaction may or may not have been applied"
            )),
            other => other,
        })
    }
}
