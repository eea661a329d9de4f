//! Instance metrics on PostgreSQL: the SQLite engine's tables and packing, with the state the
//! SQLite engine keeps in memory (how far rollups are done, the earliest late sample since) kept
//! in `settings` instead, as any server may ingest and whichever leads runs the rollups.
//!
//! A maintenance pass is one transaction under its own advisory lock: two servers' passes
//! follow each other, and a pass that fails leaves nothing half-rolled. It streams the samples
//! an hour at a time, so catching up after a long outage holds one hour's buckets in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::{PgConnection, PgPool, Postgres, Row as _, Transaction};

use crate::StoreError;
use crate::metrics::{
    Maintenance, MetricsStore, Point, ROLLUP_SECONDS, Resolution, Retention, Rollup, SeriesData,
    Values, bucket_sums, pack, unpack,
};

/// The setting that remembers how far rollups are done (the SQLite engine's key too).
const ROLLED_UNTIL: &str = "metrics_rolled_until";
/// The setting holding the earliest late sample (before `ROLLED_UNTIL`) stored since the last
/// pass; the pass takes it.
const DIRTY_FROM: &str = "metrics_dirty_from";
/// The advisory lock key of maintenance passes (`opswmetr` in ASCII).
const MAINTENANCE_LOCK: i64 = 0x6f70_7377_6d65_7472;
/// Rows per array-bound INSERT.
const INSERT_CHUNK: usize = 5000;
/// The span a pass reads at once while rolling up.
const WINDOW_SECONDS: i64 = 12 * ROLLUP_SECONDS;

/// The PostgreSQL implementation, sharing the store's pool.
#[derive(Debug)]
pub(super) struct PgMetrics {
    pool: PgPool,
    /// Series numbers by instance: never change once made, so any server may keep them.
    series: Mutex<HashMap<String, i64>>,
}

impl PgMetrics {
    pub(super) fn new(pool: PgPool) -> Self {
        Self {
            pool,
            series: Mutex::new(HashMap::new()),
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The series of an instance, made if it has none.
    async fn series_id(&self, instance_id: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.known().get(instance_id) {
            return Ok(*id);
        }
        sqlx::query(
            "INSERT INTO metric_series (instance_id) VALUES ($1) ON CONFLICT (instance_id) DO NOTHING",
        )
        .bind(instance_id)
        .execute(&self.pool)
        .await?;
        let id: i64 = sqlx::query("SELECT id FROM metric_series WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        self.known().insert(instance_id.to_string(), id);
        Ok(id)
    }
}

/// Parses a numeric setting the engine wrote.
fn number(key: &str, value: Option<String>) -> Result<Option<i64>, StoreError> {
    value
        .map(|v| {
            v.parse()
                .map_err(|_| StoreError::Database(format!("setting {key} is not a number: {v:?}")))
        })
        .transpose()
}

/// Upserts bucket averages `(series, at, n, values)` in array-bound chunks.
async fn store_rollups(
    tx: &mut Transaction<'static, Postgres>,
    rows: &[(i64, i64, i64, Values)],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        let series: Vec<i64> = chunk.iter().map(|r| r.0).collect();
        let at: Vec<i64> = chunk.iter().map(|r| r.1).collect();
        let n: Vec<i64> = chunk.iter().map(|r| r.2).collect();
        let vals: Vec<Vec<u8>> = chunk.iter().map(|r| pack(&r.3)).collect();
        sqlx::query(
            "INSERT INTO metric_rollups (series, at, n, vals)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[])
             ON CONFLICT (series, at) DO UPDATE SET n = excluded.n, vals = excluded.vals",
        )
        .bind(&series)
        .bind(&at)
        .bind(&n)
        .bind(&vals)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Upserts raw samples of one series in array-bound chunks; a time given twice keeps the last.
/// Ingested samples (`ingest`) before the rollup watermark mark their buckets for recomputing;
/// imported ones are stored as they are.
async fn store_samples(
    conn: &mut PgConnection,
    series: i64,
    samples: &[(i64, Values)],
    ingest: bool,
) -> Result<(), StoreError> {
    // One INSERT may not touch a row twice; the last value given for a second wins, as a
    // replacing insert would.
    let unique: BTreeMap<i64, &Values> = samples.iter().map(|(at, v)| (*at, v)).collect();
    let rows: Vec<(i64, &Values)> = unique.into_iter().collect();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let at: Vec<i64> = chunk.iter().map(|r| r.0).collect();
        let vals: Vec<Vec<u8>> = chunk.iter().map(|r| pack(r.1)).collect();
        let earliest = at.first().copied().unwrap_or(i64::MAX);
        let q = if ingest {
            // In the same statement, a sample before the rollup watermark lowers the dirty
            // mark so the next pass recomputes its bucket, whichever server runs it.
            sqlx::query(
                "WITH stored AS (
                   INSERT INTO metric_samples (series, at, vals)
                   SELECT $1, t.at, t.vals FROM UNNEST($2::bigint[], $3::bytea[]) AS t(at, vals)
                   ON CONFLICT (series, at) DO UPDATE SET vals = excluded.vals
                 )
                 INSERT INTO settings (key, value)
                 SELECT $5, $4::text FROM settings WHERE key = $6 AND value::bigint > $4
                 ON CONFLICT (key) DO UPDATE
                   SET value = LEAST(settings.value::bigint, excluded.value::bigint)::text",
            )
            .bind(series)
            .bind(at)
            .bind(vals)
            .bind(earliest)
            .bind(DIRTY_FROM)
            .bind(ROLLED_UNTIL)
        } else {
            sqlx::query(
                "INSERT INTO metric_samples (series, at, vals)
                 SELECT $1, t.at, t.vals FROM UNNEST($2::bigint[], $3::bytea[]) AS t(at, vals)
                 ON CONFLICT (series, at) DO UPDATE SET vals = excluded.vals",
            )
            .bind(series)
            .bind(at)
            .bind(vals)
        };
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

fn point(instance_id: String, r: &sqlx::postgres::PgRow, at: usize) -> Point {
    Point {
        instance_id,
        at: r.get(at),
        values: unpack(r.get::<&[u8], _>(at + 1)),
    }
}

#[async_trait]
impl MetricsStore for PgMetrics {
    async fn insert_samples(
        &self,
        instance_id: &str,
        samples: &[(i64, Values)],
    ) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let series = self.series_id(instance_id).await?;
        if samples.len() <= INSERT_CHUNK {
            // One statement, atomic on its own: no transaction round trips.
            let mut conn = self.pool.acquire().await?;
            return store_samples(&mut conn, series, samples, true).await;
        }
        let mut tx = self.pool.begin().await?;
        store_samples(&mut tx, series, samples, true).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn points(
        &self,
        instance_ids: &[String],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<Point>, StoreError> {
        let sql = match resolution {
            Resolution::Raw => {
                "SELECT s.instance_id, m.at, m.vals FROM metric_series s
                 JOIN metric_samples m ON m.series = s.id
                 WHERE s.instance_id = ANY($1) AND m.at >= $2 AND m.at < $3
                 ORDER BY array_position($1, s.instance_id), m.at"
            }
            Resolution::Rollup => {
                "SELECT s.instance_id, m.at, m.vals FROM metric_series s
                 JOIN metric_rollups m ON m.series = s.id
                 WHERE s.instance_id = ANY($1) AND m.at >= $2 AND m.at < $3
                 ORDER BY array_position($1, s.instance_id), m.at"
            }
        };
        let rows = sqlx::query(sql)
            .bind(instance_ids)
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| point(r.get(0), r, 1)).collect())
    }

    async fn latest(&self) -> Result<Vec<Point>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.instance_id, m.at, m.vals FROM metric_series s
             CROSS JOIN LATERAL (SELECT at, vals FROM metric_samples
                                 WHERE series = s.id ORDER BY at DESC LIMIT 1) m
             ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| point(r.get(0), r, 1)).collect())
    }

    async fn maintain(&self, now: i64, retention: Retention) -> Result<Maintenance, StoreError> {
        let mut done = Maintenance::default();
        let to = now.div_euclid(ROLLUP_SECONDS) * ROLLUP_SECONDS;
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MAINTENANCE_LOCK)
            .execute(&mut *tx)
            .await?;
        let rolled = sqlx::query("SELECT value FROM settings WHERE key = $1")
            .bind(ROLLED_UNTIL)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<String, _>(0));
        let rolled = number(ROLLED_UNTIL, rolled)?;
        let dirty = sqlx::query("DELETE FROM settings WHERE key = $1 RETURNING value")
            .bind(DIRTY_FROM)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get::<String, _>(0));
        let dirty = number(DIRTY_FROM, dirty)?;
        let from = match (rolled, dirty) {
            (Some(r), Some(d)) => Some(r.min(d)),
            (Some(r), None) => Some(r),
            (None, _) => sqlx::query("SELECT MIN(at) FROM metric_samples")
                .fetch_one(&mut *tx)
                .await?
                .get::<Option<i64>, _>(0),
        };
        let mut start = from.map_or(to, |f| f.div_euclid(ROLLUP_SECONDS) * ROLLUP_SECONDS);
        while start < to {
            let end = (start + WINDOW_SECONDS).min(to);
            let mut buckets: Vec<(i64, i64, i64, Values)> = Vec::new();
            {
                let mut rows = sqlx::query(
                    "SELECT series, at, vals FROM metric_samples
                     WHERE at >= $1 AND at < $2 ORDER BY series, at",
                )
                .bind(start)
                .bind(end)
                .fetch(&mut *tx);
                let mut current: Option<i64> = None;
                let mut samples: Vec<(i64, Values)> = Vec::new();
                let mut flush = |series: Option<i64>, samples: &mut Vec<(i64, Values)>| {
                    if let Some(series) = series {
                        for (at, n, sum) in bucket_sums(samples.drain(..)) {
                            let avg = sum.map(|s| s / f64::from(n));
                            buckets.push((series, at, i64::from(n), avg));
                        }
                    }
                };
                while let Some(r) = rows.try_next().await? {
                    let series: i64 = r.get(0);
                    if current != Some(series) {
                        flush(current, &mut samples);
                        current = Some(series);
                    }
                    samples.push((r.get(1), unpack(r.get::<&[u8], _>(2))));
                }
                flush(current, &mut samples);
            }
            store_rollups(&mut tx, &buckets).await?;
            done.buckets_written += buckets.len() as u64;
            start = end;
        }
        let new_rolled = rolled.map_or(to, |r| r.max(to));
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(ROLLED_UNTIL)
        .bind(new_rolled.to_string())
        .execute(&mut *tx)
        .await?;
        // Raw samples go only once rolled up.
        let raw_cutoff = (now - retention.raw_seconds).min(new_rolled);
        let rollup_cutoff = now - retention.rollup_seconds;
        done.samples_pruned = sqlx::query("DELETE FROM metric_samples WHERE at < $1")
            .bind(raw_cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        done.buckets_pruned = sqlx::query("DELETE FROM metric_rollups WHERE at < $1")
            .bind(rollup_cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(done)
    }

    async fn table_bytes(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let r = sqlx::query(
            "SELECT pg_total_relation_size('metric_samples'), pg_total_relation_size('metric_rollups')",
        )
        .fetch_one(&self.pool)
        .await?;
        let bytes = |i: usize| u64::try_from(r.get::<i64, _>(i)).unwrap_or(0);
        Ok(Some((bytes(0), bytes(1))))
    }

    async fn series(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT instance_id FROM metric_series ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn export_series(&self, instance_id: &str) -> Result<SeriesData, StoreError> {
        let samples = sqlx::query(
            "SELECT m.at, m.vals FROM metric_series s JOIN metric_samples m ON m.series = s.id
             WHERE s.instance_id = $1 ORDER BY m.at",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), unpack(r.get::<&[u8], _>(1))))
        .collect();
        let rollups = sqlx::query(
            "SELECT m.at, m.n, m.vals FROM metric_series s JOIN metric_rollups m ON m.series = s.id
             WHERE s.instance_id = $1 ORDER BY m.at",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Rollup {
            at: r.get(0),
            n: r.get(1),
            values: unpack(r.get::<&[u8], _>(2)),
        })
        .collect();
        Ok(SeriesData { samples, rollups })
    }

    async fn import_series(&self, instance_id: &str, data: &SeriesData) -> Result<(), StoreError> {
        let series = self.series_id(instance_id).await?;
        let mut tx = self.pool.begin().await?;
        store_samples(&mut tx, series, &data.samples, false).await?;
        let rollups: Vec<(i64, i64, i64, Values)> = data
            .rollups
            .iter()
            .map(|r| (series, r.at, r.n, r.values))
            .collect();
        store_rollups(&mut tx, &rollups).await?;
        tx.commit().await?;
        Ok(())
    }
}
