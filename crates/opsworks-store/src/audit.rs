//! The audit log's SQL for both engines: one table `audit` (migrations `0006_audit.sql` and
//! postgres `0002_audit.sql`), appended inside write transactions, read by filters, pruned by age
//! and count like the events.

use sqlx::QueryBuilder;

use crate::AuditQuery;

const COLUMNS: &str =
    "seq, at, principal, source_ip, service, operation, stack_id, target, outcome, detail";

/// A row (in [`COLUMNS`] order) as a record, for either engine's row type.
macro_rules! record_of {
    ($r:expr) => {{
        let r = $r;
        let seq: i64 = r.get(0);
        match serde_json::from_str(r.get::<&str, _>(9)) {
            Ok(detail) => Ok(crate::AuditRecord {
                seq,
                entry: crate::NewAudit {
                    at: r.get(1),
                    principal: r.get(2),
                    source_ip: r.get(3),
                    service: r.get(4),
                    operation: r.get(5),
                    stack_id: r.get(6),
                    target: r.get(7),
                    outcome: r.get(8),
                    detail,
                },
            }),
            Err(source) => Err(crate::StoreError::Corrupt {
                kind: "audit",
                id: seq.to_string(),
                source,
            }),
        }
    }};
}

/// The SELECT of `query`, for either engine (the builder numbers placeholders per engine).
fn select<DB>(query: &AuditQuery<'_>) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM audit WHERE seq > "));
    qb.push_bind(query.after);
    if let Some(p) = query.principal {
        qb.push(" AND principal = ").push_bind(p.to_string());
    }
    if let Some(s) = query.stack_id {
        qb.push(" AND stack_id = ").push_bind(s.to_string());
    }
    // Timestamps are stored in one UTC form, so text order is time order.
    if let Some(t) = query.since {
        qb.push(" AND at >= ").push_bind(t.to_string());
    }
    if let Some(t) = query.until {
        qb.push(" AND at < ").push_bind(t.to_string());
    }
    qb.push(" ORDER BY seq LIMIT ")
        .push_bind(i64::from(query.limit.max(1)));
    qb
}

pub(crate) mod sqlite {
    //! The SQLite side.

    use sqlx::{Row as _, SqliteConnection, SqlitePool};

    use super::select;
    use crate::{AuditQuery, AuditRecord, NewAudit, StoreError};

    pub(crate) async fn list(
        pool: &SqlitePool,
        query: AuditQuery<'_>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = select::<sqlx::Sqlite>(&query)
            .build()
            .fetch_all(pool)
            .await?;
        rows.iter().map(|r| record_of!(r)).collect()
    }

    pub(crate) async fn prune(
        pool: &SqlitePool,
        before: &str,
        keep_rows: u64,
    ) -> Result<u64, StoreError> {
        let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "DELETE FROM audit WHERE at < ?
               OR seq < (SELECT MIN(seq) FROM (SELECT seq FROM audit ORDER BY seq DESC LIMIT ?))",
        )
        .bind(before)
        .bind(keep)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn append(
        conn: &mut SqliteConnection,
        seq: Option<i64>,
        e: &NewAudit,
    ) -> Result<i64, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO audit (seq, at, principal, source_ip, service, operation, stack_id, target, outcome, detail)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(&e.at)
        .bind(&e.principal)
        .bind(&e.source_ip)
        .bind(&e.service)
        .bind(&e.operation)
        .bind(&e.stack_id)
        .bind(&e.target)
        .bind(&e.outcome)
        .bind(e.detail.to_string())
        .execute(conn)
        .await?;
        Ok(done.last_insert_rowid())
    }

    /// The highest sequence number ever handed out, for tests of pruning.
    #[allow(dead_code)]
    pub(crate) async fn high_water(pool: &SqlitePool) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT seq FROM sqlite_sequence WHERE name = 'audit'")
            .fetch_optional(pool)
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }
}

pub(crate) mod postgres {
    //! The PostgreSQL side.

    use sqlx::{PgConnection, PgPool, Row as _};

    use super::select;
    use crate::{AuditQuery, AuditRecord, NewAudit, StoreError};

    pub(crate) async fn list(
        pool: &PgPool,
        query: AuditQuery<'_>,
    ) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
        select::<sqlx::Postgres>(&query)
            .build()
            .fetch_all(pool)
            .await
    }

    /// The rows [`list`] read, as records.
    pub(crate) fn records(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<AuditRecord>, StoreError> {
        rows.iter().map(|r| record_of!(r)).collect()
    }

    pub(crate) async fn prune(
        pool: &PgPool,
        before: &str,
        keep_rows: u64,
    ) -> Result<u64, sqlx::Error> {
        let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "DELETE FROM audit WHERE at < $1
               OR seq < (SELECT MIN(seq) FROM (SELECT seq FROM audit ORDER BY seq DESC LIMIT $2) newest)",
        )
        .bind(before)
        .bind(keep)
        .execute(pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn append(
        conn: &mut PgConnection,
        seq: Option<i64>,
        e: &NewAudit,
    ) -> Result<i64, sqlx::Error> {
        let row = sqlx::query(
            "INSERT INTO audit (seq, at, principal, source_ip, service, operation, stack_id, target, outcome, detail)
             VALUES (COALESCE($1, nextval('audit_seq_seq')), $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING seq",
        )
        .bind(seq)
        .bind(&e.at)
        .bind(&e.principal)
        .bind(&e.source_ip)
        .bind(&e.service)
        .bind(&e.operation)
        .bind(&e.stack_id)
        .bind(&e.target)
        .bind(&e.outcome)
        .bind(e.detail.to_string())
        .fetch_one(&mut *conn)
        .await?;
        let seq: i64 = row.get(0);
        // An imported number must not come back from the sequence.
        sqlx::query(
            "SELECT setval('audit_seq_seq', $1) FROM audit_seq_seq
             WHERE $1 > (CASE WHEN is_called THEN last_value ELSE 0 END)",
        )
        .bind(seq)
        .fetch_optional(conn)
        .await?;
        Ok(seq)
    }
}
