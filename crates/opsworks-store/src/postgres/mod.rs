//! The PostgreSQL engine: one database shared by any number of servers, versioned migrations
//! (`migrations/postgres`).
//!
//! Writes: a write transaction (`begin`) takes a database-wide advisory lock
//! (`pg_advisory_xact_lock`) as its first statement, so check-then-write sequences of every server
//! run one at a time, under READ COMMITTED: each statement sees everything committed before the
//! lock was granted. The lock goes with the transaction, so a server that dies mid-transaction
//! (its connection closes) or sits idle in one past `idle_in_transaction_session_timeout` releases
//! it. Commit order is therefore the order of event sequence numbers.
//!
//! Caches: every write transaction raises a per-kind counter (`generations`), which the typed
//! store reads before trusting what it cached (see `typed.rs`).
//!
//! Failures: a failed statement poisons its transaction (PostgreSQL would silently turn a later
//! COMMIT into a ROLLBACK; this engine refuses the commit instead); a dropped transaction rolls
//! back. Reads and `begin` retry on another connection when theirs turns out to be dead (a
//! restarted database). Errors name the server as `postgres://user@host:port/db`, never the
//! password.

mod cluster;
mod metrics;
mod tx;

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row as _};

use crate::{
    AccessKeyRecord, AuditQuery, AuditRecord, Backend, BackendTx, EventRecord, Filter, Kind,
    MetricsStore, NewEvent, StoreError, StoredRow,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key of write transactions (`opswwr  ` in ASCII).
const WRITE_LOCK: i64 = 0x6f70_7377_7772_2020;

/// Tuning of the PostgreSQL engine; the defaults suit one server of a few.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections each server keeps at most (the database's `max_connections`, 100 by default,
    /// bounds the sum over servers).
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing as unavailable.
    pub acquire_timeout: Duration,
    /// How long opening waits for the server to answer.
    pub connect_timeout: Duration,
    /// How long a write waits for the database-wide write lock before failing as busy.
    pub lock_timeout: Duration,
    /// How long a transaction may sit idle before the database ends it and frees its lock (a
    /// server that hangs, or whose network went, holding the write lock).
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// The PostgreSQL engine.
pub struct PostgresBackend {
    pool: PgPool,
    metrics: Arc<metrics::PgMetrics>,
    cluster: cluster::PgCluster,
    /// How many times an idempotent step tries again on another connection: as many as the
    /// pool holds, which a database restart may all have cut.
    retries: u32,
}

impl PostgresBackend {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`), failing
    /// clearly when it is unreachable, missing or refuses the credentials, and applies pending
    /// migrations (several servers starting at once apply them once: sqlx's migrator locks).
    pub async fn open(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let shown = redact(url);
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL {shown}: {e}")))?
            .application_name("opsworks")
            .options([
                ("lock_timeout", options.lock_timeout.as_millis().to_string()),
                (
                    "idle_in_transaction_session_timeout",
                    options.idle_in_transaction_timeout.as_millis().to_string(),
                ),
            ]);
        // One connection first, alone: the pool would retry a refused connection until its
        // timeout and then report only that it timed out.
        match tokio::time::timeout(
            options.connect_timeout,
            PgConnection::connect_with(&connect),
        )
        .await
        {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => return Err(explain_connect(e, &connect, &shown)),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "the PostgreSQL server of {shown} did not answer within {} s",
                    options.connect_timeout.as_secs()
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            // A ping on every checkout would double the round trips; one idle a while may have
            // been cut (a restarted database), so only those are checked.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(10) {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(connect);
        MIGRATOR.run(&pool).await?;
        let metrics = Arc::new(metrics::PgMetrics::new(pool.clone()));
        let retries = options.max_connections + 1;
        Ok(Self {
            cluster: cluster::PgCluster {
                pool: pool.clone(),
                retries,
            },
            pool,
            metrics,
            retries,
        })
    }

    /// The connection pool, for what the store does not wrap (LISTEN/NOTIFY, leadership locks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `url` without its password or query (which may hold one): for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://(unparseable URL)".into();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let path = tail.split(['?', '#']).next().unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{path}")
        }
        None => format!("{scheme}://{authority}{path}"),
    }
}

/// A PostgreSQL error as a store error, by SQLSTATE.
pub(crate) fn classify(e: &PgDatabaseError) -> StoreError {
    classify_code(e.code(), e.message())
}

fn classify_code(code: &str, message: &str) -> StoreError {
    match code {
        "53100" => StoreError::DiskFull(message.to_string()),
        "55P03" => StoreError::Busy(format!(
            "another writer held the database's write lock past the lock timeout ({message})"
        )),
        // serialization_failure, deadlock_detected, too_many_connections, query_canceled.
        "40001" | "40P01" | "53300" | "57014" => StoreError::Busy(message.to_string()),
        // admin_shutdown, crash_shutdown, cannot_connect_now, a missing database, credentials.
        "57P01" | "57P02" | "57P03" | "3D000" | "28000" | "28P01" => {
            StoreError::Unavailable(message.to_string())
        }
        c if c.starts_with("08") => StoreError::Unavailable(message.to_string()),
        c => StoreError::Database(format!("{message} (SQLSTATE {c})")),
    }
}

/// Whether `e` says the connection is gone (worth retrying an idempotent step on another).
fn is_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.try_downcast_ref::<PgDatabaseError>().is_some_and(|pg| {
            matches!(pg.code(), "57P01" | "57P02") || pg.code().starts_with("08")
        }),
        _ => false,
    }
}

/// Runs an idempotent step, again on another connection (up to `retries` times) if its
/// connection was dead: after a database restart every pooled connection is, and each dead one
/// fails at once (the server said goodbye, or the socket is closed) and leaves the pool.
async fn retry<T, F, Fut>(retries: u32, mut step: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut left = retries;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if left > 0 && is_lost(&e) => {
                left -= 1;
                tracing::info!(error = %e, "database connection lost; retrying on another");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A failed first connection, said plainly: where, and what to do.
fn explain_connect(e: sqlx::Error, connect: &PgConnectOptions, shown: &str) -> StoreError {
    let db = connect.get_database().unwrap_or(connect.get_username());
    let user = connect.get_username();
    let pg = match &e {
        sqlx::Error::Database(d) => d.try_downcast_ref::<PgDatabaseError>(),
        _ => None,
    };
    match (pg.map(|p| p.code()), &e) {
        (Some("3D000"), _) => StoreError::Unavailable(format!(
            "the database {db:?} does not exist on the PostgreSQL server of {shown}; create it (createdb -O {user} {db}) or fix the URL"
        )),
        (Some("28000" | "28P01"), _) => StoreError::Unavailable(format!(
            "the PostgreSQL server of {shown} refused user {user:?}: {}",
            pg.map(|p| p.message()).unwrap_or_default()
        )),
        (_, sqlx::Error::Io(io)) => StoreError::Unavailable(format!(
            "cannot reach the PostgreSQL server of {shown}: {io}"
        )),
        (_, sqlx::Error::Tls(t)) => StoreError::Unavailable(format!(
            "TLS with the PostgreSQL server of {shown} failed: {t}"
        )),
        _ => match StoreError::from(e) {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("the PostgreSQL server of {shown}: {m}"))
            }
            StoreError::Database(m) => StoreError::Database(format!(
                "connecting to the PostgreSQL server of {shown}: {m}"
            )),
            other => other,
        },
    }
}

/// The statement of `list` (`count == false`) or `count` for a filter's shape: one static
/// statement per shape, each prepared once per connection.
fn filtered_sql(filter: Filter<'_>, count: bool) -> &'static str {
    match (filter, count) {
        (Filter::All, false) => "SELECT id, doc FROM resources WHERE kind = $1 ORDER BY seq",
        (Filter::Stack(_), false) => {
            "SELECT id, doc FROM resources WHERE kind = $1 AND stack_id = $2 ORDER BY seq"
        }
        (Filter::Parent(_), false) => {
            "SELECT id, doc FROM resources WHERE kind = $1 AND parent_id = $2 ORDER BY seq"
        }
        (Filter::Instance(_), false) => {
            "SELECT id, doc FROM resources WHERE kind = $1 AND instance_id = $2 ORDER BY seq"
        }
        (Filter::Ids(_), false) => {
            "SELECT id, doc FROM resources WHERE kind = $1 AND id = ANY($2) ORDER BY seq"
        }
        (Filter::All, true) => "SELECT COUNT(*) FROM resources WHERE kind = $1",
        (Filter::Stack(_), true) => {
            "SELECT COUNT(*) FROM resources WHERE kind = $1 AND stack_id = $2"
        }
        (Filter::Parent(_), true) => {
            "SELECT COUNT(*) FROM resources WHERE kind = $1 AND parent_id = $2"
        }
        (Filter::Instance(_), true) => {
            "SELECT COUNT(*) FROM resources WHERE kind = $1 AND instance_id = $2"
        }
        (Filter::Ids(_), true) => "SELECT COUNT(*) FROM resources WHERE kind = $1 AND id = ANY($2)",
    }
}

/// [`filtered_sql`]'s statement with its values bound.
fn filtered<'q>(
    kind: Kind,
    filter: Filter<'q>,
    count: bool,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let q = sqlx::query(filtered_sql(filter, count)).bind(kind.as_str());
    match filter {
        Filter::All => q,
        Filter::Stack(v) | Filter::Parent(v) | Filter::Instance(v) => q.bind(v),
        Filter::Ids(ids) => q.bind(ids),
    }
}

async fn get_doc<'c, E>(exec: E, kind: Kind, id: &str) -> Result<Option<String>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let row = sqlx::query("SELECT doc FROM resources WHERE kind = $1 AND id = $2")
        .bind(kind.as_str())
        .bind(id)
        .fetch_optional(exec)
        .await?;
    Ok(row.map(|r| r.get(0)))
}

async fn list_docs<'c, E>(
    exec: E,
    kind: Kind,
    filter: Filter<'_>,
) -> Result<Vec<(String, String)>, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let rows = filtered(kind, filter, false).fetch_all(exec).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn count_docs<'c, E>(exec: E, kind: Kind, filter: Filter<'_>) -> Result<u64, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let n: i64 = filtered(kind, filter, true).fetch_one(exec).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

fn key_of_row(r: &PgRow) -> AccessKeyRecord {
    AccessKeyRecord {
        access_key_id: r.get(0),
        sealed_secret: r.get(1),
        principal: r.get(2),
        created_at: r.get(3),
    }
}

/// An `events` row (seq, at, stack_id, type, ids..., detail) as a record.
fn event_of_row(r: &PgRow) -> Result<EventRecord, StoreError> {
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

#[async_trait]
impl Backend for PostgresBackend {
    async fn get(&self, kind: Kind, id: &str) -> Result<Option<String>, StoreError> {
        retry(self.retries, || get_doc(&self.pool, kind, id)).await
    }

    async fn list(
        &self,
        kind: Kind,
        filter: Filter<'_>,
    ) -> Result<Vec<(String, String)>, StoreError> {
        retry(self.retries, || list_docs(&self.pool, kind, filter)).await
    }

    async fn count(&self, kind: Kind, filter: Filter<'_>) -> Result<u64, StoreError> {
        retry(self.retries, || count_docs(&self.pool, kind, filter)).await
    }

    async fn begin(&self) -> Result<Box<dyn BackendTx>, StoreError> {
        // Two round trips, not one "BEGIN; SELECT pg_advisory_xact_lock(..)": sqlx rolls back
        // a transaction it counts as begun, and a lock timeout inside its BEGIN statement would
        // hand the connection back to the pool in an aborted transaction.
        let mut tx = retry(self.retries, || {
            self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
        })
        .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(Box::new(tx::PgTx::new(tx)))
    }

    async fn generation(&self, kind: Kind) -> Result<Option<i64>, StoreError> {
        let row = retry(self.retries, || {
            sqlx::query("SELECT gen FROM generations WHERE kind = $1")
                .bind(kind.as_str())
                .fetch_optional(&self.pool)
        })
        .await?;
        Ok(Some(row.map_or(0, |r| r.get(0))))
    }

    async fn generations(&self, kinds: &[Kind]) -> Result<Option<Vec<i64>>, StoreError> {
        let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let rows = retry(self.retries, || {
            sqlx::query("SELECT kind, gen FROM generations WHERE kind = ANY($1::text[])")
                .bind(&names)
                .fetch_all(&self.pool)
        })
        .await?;
        Ok(Some(
            names
                .iter()
                .map(|n| {
                    rows.iter()
                        .find(|r| r.get::<&str, _>(0) == *n)
                        .map_or(0, |r| r.get(1))
                })
                .collect(),
        ))
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = retry(self.retries, || {
            sqlx::query("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
        })
        .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        // Two statements: the second sees a value another server committed while the first
        // waited on it (one statement's snapshot would not). Both are idempotent.
        retry(self.retries, || {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(value)
            .execute(&self.pool)
        })
        .await?;
        let row = retry(self.retries, || {
            sqlx::query("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&self.pool)
        })
        .await?;
        Ok(row.get(0))
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>, StoreError> {
        let row = retry(self.retries, || {
            sqlx::query(
                "SELECT access_key_id, sealed_secret, principal, created_at FROM access_keys WHERE access_key_id = $1",
            )
            .bind(access_key_id)
            .fetch_optional(&self.pool)
        })
        .await?;
        Ok(row.as_ref().map(key_of_row))
    }

    async fn access_keys(&self) -> Result<Vec<AccessKeyRecord>, StoreError> {
        let rows = retry(self.retries, || {
            sqlx::query(
                "SELECT access_key_id, sealed_secret, principal, created_at FROM access_keys ORDER BY seq",
            )
            .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows.iter().map(key_of_row).collect())
    }

    async fn events_after(
        &self,
        stack_id: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        // One statement per shape: a generic plan of "stack IS NULL OR ..." would not use the
        // stack's index.
        let limit = i64::from(limit);
        let rows = retry(self.retries, || match stack_id {
            Some(s) => sqlx::query(
                "SELECT seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail
                 FROM events WHERE stack_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(s)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool),
            None => sqlx::query(
                "SELECT seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail
                 FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool),
        })
        .await?;
        rows.iter().map(event_of_row).collect()
    }

    async fn latest_events(
        &self,
        stack_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let limit = i64::from(limit);
        let rows = retry(self.retries, || match stack_id {
            Some(s) => sqlx::query(
                "SELECT seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail
                 FROM events WHERE stack_id = $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(s)
            .bind(limit)
            .fetch_all(&self.pool),
            None => sqlx::query(
                "SELECT seq, at, stack_id, type, instance_id, layer_id, deployment_id, command_id, detail
                 FROM events ORDER BY seq DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&self.pool),
        })
        .await?;
        rows.iter().rev().map(event_of_row).collect()
    }

    async fn prune_events(&self, before: &str, keep_rows: u64) -> Result<u64, StoreError> {
        let keep = i64::try_from(keep_rows).unwrap_or(i64::MAX);
        // `at` compares byte by byte (its collation is "C"): text order is time order.
        let done = sqlx::query(
            "DELETE FROM events WHERE at < $1
               OR seq < (SELECT MIN(seq) FROM (SELECT seq FROM events ORDER BY seq DESC LIMIT $2) newest)",
        )
        .bind(before)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn audit(&self, query: AuditQuery<'_>) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = retry(self.retries, || {
            crate::audit::postgres::list(&self.pool, query)
        })
        .await?;
        crate::audit::postgres::records(&rows)
    }

    async fn prune_audit(&self, before: &str, keep_rows: u64) -> Result<u64, StoreError> {
        retry(self.retries, || {
            crate::audit::postgres::prune(&self.pool, before, keep_rows)
        })
        .await
    }

    fn metrics(&self) -> &dyn MetricsStore {
        &*self.metrics
    }

    fn cluster(&self) -> Option<&dyn crate::Cluster> {
        Some(&self.cluster)
    }

    async fn export_rows(&self, kind: Kind) -> Result<Vec<StoredRow>, StoreError> {
        let rows = retry(self.retries, || {
            sqlx::query(
                "SELECT id, stack_id, parent_id, instance_id, doc FROM resources WHERE kind = $1 ORDER BY seq",
            )
            .bind(kind.as_str())
            .fetch_all(&self.pool)
        })
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
        let rows = retry(self.retries, || {
            sqlx::query(r#"SELECT key, value FROM settings ORDER BY key COLLATE "C""#)
                .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn event_seq_high_water(&self) -> Result<i64, StoreError> {
        let row = retry(self.retries, || {
            sqlx::query("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq_seq")
                .fetch_one(&self.pool)
        })
        .await?;
        Ok(row.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_where_and_drops_the_password() {
        assert_eq!(
            redact("postgres://ops:s3cret@db.example:5433/opsworks?sslmode=require&password=x"),
            "postgres://ops@db.example:5433/opsworks"
        );
        assert_eq!(
            redact("postgresql://ops:p%40ss@h/db"),
            "postgresql://ops@h/db"
        );
        assert_eq!(redact("postgres://h:5432/db"), "postgres://h:5432/db");
        assert_eq!(redact("postgres://a:b@c@h/db"), "postgres://a@h/db");
        assert!(!redact("s3cret garbage").contains("s3cret"));
    }

    #[test]
    fn sqlstates_map_to_what_a_caller_can_act_on() {
        assert!(matches!(
            classify_code("53100", "could not extend file"),
            StoreError::DiskFull(_)
        ));
        assert!(matches!(
            classify_code("55P03", "lock timeout"),
            StoreError::Busy(_)
        ));
        assert!(matches!(
            classify_code("57P01", "terminating connection"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify_code("08006", "connection failure"),
            StoreError::Unavailable(_)
        ));
        let other = classify_code("23505", "duplicate key").to_string();
        assert!(other.contains("23505"), "{other}");
    }
}
