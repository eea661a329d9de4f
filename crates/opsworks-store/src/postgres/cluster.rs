//! The PostgreSQL side of [`Cluster`]: LISTEN/NOTIFY on a connection of its own, and the tables
//! of migration `0003_cluster.sql`.
//!
//! None of this takes the write lock: registering, leases and presence are single statements
//! whose outcome does not depend on other rows; a log append serializes per command on an
//! advisory lock of its own (two 32-bit keys, a key space apart from the write lock's).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row as _};

use super::retry;
use crate::StoreError;
use crate::cluster::{Cluster, Listener, LogAppend, Notification, ServerRecord};

/// The first key of a command log's advisory lock (`oplg`); the second is the command's hash.
const LOG_LOCK_CLASS: i32 = 0x6f70_6c67;
/// Rows per array-bound statement.
const CHUNK: usize = 5_000;

/// The cluster operations, on the store's pool.
pub(super) struct PgCluster {
    pub(super) pool: PgPool,
    pub(super) retries: u32,
}

struct PgListen {
    inner: PgListener,
}

#[async_trait]
impl Listener for PgListen {
    async fn next(&mut self) -> Result<Option<Notification>, StoreError> {
        match self.inner.try_recv().await? {
            Some(n) => Ok(Some(Notification {
                channel: n.channel().to_string(),
                payload: n.payload().to_string(),
            })),
            None => Ok(None),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Cluster for PgCluster {
    async fn listen(&self, channels: &[&str]) -> Result<Box<dyn Listener>, StoreError> {
        let mut inner = PgListener::connect_with(&self.pool).await?;
        inner.listen_all(channels.iter().copied()).await?;
        Ok(Box::new(PgListen { inner }))
    }

    async fn notify(&self, channel: &str, payload: &str) -> Result<(), StoreError> {
        retry(self.retries, || {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.pool)
        })
        .await
        .map(drop)
    }

    async fn register_server(&self, server: &ServerRecord) -> Result<(), StoreError> {
        retry(self.retries, || {
            sqlx::query(
                "INSERT INTO servers (server_id, advertise_url, agent_url, seen_at) VALUES ($1, $2, $3, now())
                 ON CONFLICT (server_id) DO UPDATE SET advertise_url = excluded.advertise_url,
                   agent_url = excluded.agent_url, seen_at = excluded.seen_at",
            )
            .bind(&server.server_id)
            .bind(&server.advertise_url)
            .bind(&server.agent_url)
            .execute(&self.pool)
        })
        .await
        .map(drop)
    }

    async fn deregister_server(&self, server_id: &str) -> Result<(), StoreError> {
        retry(self.retries, || {
            sqlx::query("DELETE FROM servers WHERE server_id = $1")
                .bind(server_id)
                .execute(&self.pool)
        })
        .await
        .map(drop)
    }

    async fn servers(&self, within: Duration) -> Result<Vec<ServerRecord>, StoreError> {
        let rows = retry(self.retries, || {
            sqlx::query(
                "SELECT server_id, advertise_url, agent_url,
                        EXTRACT(EPOCH FROM now() - seen_at)::float8
                   FROM servers WHERE seen_at > now() - $1 * interval '1 millisecond'
                  ORDER BY server_id",
            )
            .bind(millis(within))
            .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| ServerRecord {
                server_id: r.get(0),
                advertise_url: r.get(1),
                agent_url: r.get(2),
                silent_seconds: r.get::<f64, _>(3).max(0.0),
            })
            .collect())
    }

    async fn hold_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // One statement: the update happens only for the holder or over an expired lease, and
        // the row comes back only when it happened.
        let row = retry(self.retries, || {
            sqlx::query(
                "INSERT INTO leases (name, holder, expires_at)
                 VALUES ($1, $2, now() + $3 * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at < now()
                 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(millis(ttl))
            .fetch_optional(&self.pool)
        })
        .await?;
        Ok(row.is_some())
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        retry(self.retries, || {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&self.pool)
        })
        .await
        .map(drop)
    }

    async fn record_presence(
        &self,
        server_id: &str,
        instance_ids: &[String],
    ) -> Result<(), StoreError> {
        // Sorted: two servers upserting overlapping sets lock the rows in one order, never
        // deadlocking.
        let mut ids: Vec<&str> = instance_ids.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CHUNK) {
            retry(self.retries, || {
                sqlx::query(
                    "INSERT INTO agent_presence (instance_id, server_id, seen_at)
                     SELECT i, $1, now() FROM UNNEST($2::text[]) AS i
                     ON CONFLICT (instance_id) DO UPDATE SET server_id = excluded.server_id,
                       seen_at = excluded.seen_at",
                )
                .bind(server_id)
                .bind(chunk)
                .execute(&self.pool)
            })
            .await?;
        }
        Ok(())
    }

    async fn presence(&self) -> Result<HashMap<String, Duration>, StoreError> {
        let rows = retry(self.retries, || {
            sqlx::query(
                "SELECT instance_id, EXTRACT(EPOCH FROM now() - seen_at)::float8 FROM agent_presence",
            )
            .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let secs: f64 = r.get(1);
                (r.get(0), Duration::from_secs_f64(secs.max(0.0)))
            })
            .collect())
    }

    async fn forget_presence(&self, instance_id: &str) -> Result<(), StoreError> {
        retry(self.retries, || {
            sqlx::query("DELETE FROM agent_presence WHERE instance_id = $1")
                .bind(instance_id)
                .execute(&self.pool)
        })
        .await
        .map(drop)
    }

    async fn append_log(
        &self,
        command_id: &str,
        offset: u64,
        text: &str,
        ended: bool,
        max_bytes: u64,
    ) -> Result<LogAppend, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Pieces of one command (the agent's stream and its completion's resend) take turns.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOG_LOCK_CLASS)
            .bind(command_id)
            .execute(&mut *tx)
            .await?;
        let have: i64 = sqlx::query(
            "SELECT COALESCE(MAX(at + octet_length(data)), 0)::int8 FROM command_logs WHERE command_id = $1",
        )
        .bind(command_id)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        let have = u64::try_from(have).unwrap_or(0);
        let end = offset.saturating_add(text.len() as u64);
        let outcome = if end <= have {
            LogAppend::Duplicate
        } else if ended {
            LogAppend::Ended
        } else if offset > have {
            LogAppend::Gap { have }
        } else if end > max_bytes {
            LogAppend::TooLarge
        } else {
            LogAppend::Appended
        };
        if outcome != LogAppend::Appended {
            return Ok(outcome);
        }
        let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
        // Bytes, not text: a log may hold NUL, which PostgreSQL's text refuses.
        let tail = text.as_bytes().get(skip..).unwrap_or_default();
        sqlx::query("INSERT INTO command_logs (command_id, at, data) VALUES ($1, $2, $3)")
            .bind(command_id)
            .bind(i64::try_from(have).unwrap_or(i64::MAX))
            .bind(tail)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(LogAppend::Appended)
    }

    async fn read_log(&self, command_id: &str, tail: u64) -> Result<Option<String>, StoreError> {
        let tail = i64::try_from(tail).unwrap_or(i64::MAX);
        let rows = retry(self.retries, || {
            sqlx::query(
                "WITH total AS (
                   SELECT COALESCE(MAX(at + octet_length(data)), 0) AS n FROM command_logs WHERE command_id = $1)
                 SELECT at, data, (SELECT n FROM total) FROM command_logs
                  WHERE command_id = $1 AND at + octet_length(data) > (SELECT n FROM total) - $2
                  ORDER BY at",
            )
            .bind(command_id)
            .bind(tail)
            .fetch_all(&self.pool)
        })
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let total: i64 = first.get(2);
        let start = (total - tail).max(0);
        let mut bytes = Vec::new();
        for r in &rows {
            let at: i64 = r.get(0);
            let data: Vec<u8> = r.get(1);
            let skip = usize::try_from(start - at).unwrap_or(0).min(data.len());
            bytes.extend_from_slice(&data[skip..]);
        }
        // A cut through a character shows as U+FFFD, as a file's tail would.
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    async fn logs_present(&self, command_ids: &[String]) -> Result<HashSet<String>, StoreError> {
        if command_ids.is_empty() {
            return Ok(HashSet::new());
        }
        let rows = retry(self.retries, || {
            sqlx::query("SELECT DISTINCT command_id FROM command_logs WHERE command_id = ANY($1)")
                .bind(command_ids)
                .fetch_all(&self.pool)
        })
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
