//! Instance metrics: raw samples kept a day, 5-minute averages kept two weeks (both
//! configurable), behind the [`MetricsStore`] trait, with the SQLite engine's implementation
//! (PostgreSQL's is in `postgres/metrics.rs`).
//!
//! A sample is one row of (series, time, values) where the series is a small integer standing for
//! the instance and the 16 values are packed as little-endian `f32` (64 bytes): about 80 bytes a
//! row on disk. [`MetricsStore::maintain`] rolls complete buckets up and prunes what is past
//! retention; it takes `now` so tests drive the clock.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, SqlitePool};

use crate::StoreError;

/// How many values a sample holds (the agent's 16 metrics).
pub const METRIC_COUNT: usize = opsworks_model::metrics::COUNT;
/// The width of a rollup bucket, in seconds.
pub const ROLLUP_SECONDS: i64 = 300;

/// A sample's values, in the order of `opsworks_protocol::METRIC_NAMES`.
pub type Values = [f64; METRIC_COUNT];

/// One stored sample (raw) or bucket average (rolled up) of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The instance.
    pub instance_id: String,
    /// Unix seconds: when the sample was taken, or the start of the bucket.
    pub at: i64,
    /// The values (averages for a bucket).
    pub values: Values,
}

/// Which data to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The samples as taken.
    Raw,
    /// The 5-minute averages.
    Rollup,
}

/// How long each resolution is kept, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw samples (default one day).
    pub raw_seconds: i64,
    /// 5-minute averages (default two weeks).
    pub rollup_seconds: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_seconds: 24 * 3600,
            rollup_seconds: 14 * 24 * 3600,
        }
    }
}

/// What one [`MetricsStore::maintain`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Buckets written (new or recomputed for late samples).
    pub buckets_written: u64,
    /// Raw samples deleted.
    pub samples_pruned: u64,
    /// Buckets deleted.
    pub buckets_pruned: u64,
}

/// One instance's stored metrics, whole: what copying between engines moves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesData {
    /// Raw samples `(at, values)`, by time.
    pub samples: Vec<(i64, Values)>,
    /// Bucket averages, by time.
    pub rollups: Vec<Rollup>,
}

/// A stored 5-minute average.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    /// The bucket's start (Unix seconds).
    pub at: i64,
    /// How many samples it averages.
    pub n: i64,
    /// The averages.
    pub values: Values,
}

/// Groups samples of one series, ordered by time, into 5-minute buckets: `(start, count, sums)`.
pub(crate) fn bucket_sums(
    samples: impl IntoIterator<Item = (i64, Values)>,
) -> Vec<(i64, u32, Values)> {
    let mut buckets: Vec<(i64, u32, Values)> = Vec::new();
    for (at, v) in samples {
        let bucket = at.div_euclid(ROLLUP_SECONDS) * ROLLUP_SECONDS;
        match buckets.last_mut() {
            Some((b, n, sum)) if *b == bucket => {
                *n += 1;
                sum.iter_mut().zip(v).for_each(|(s, x)| *s += x);
            }
            _ => buckets.push((bucket, 1, v)),
        }
    }
    buckets
}

/// Storage of instance metrics.
#[async_trait]
pub trait MetricsStore: Send + Sync + 'static {
    /// Stores samples of one instance in one transaction; a sample already stored at the same
    /// second is replaced (an agent's retry stores nothing twice).
    async fn insert_samples(
        &self,
        instance_id: &str,
        samples: &[(i64, Values)],
    ) -> Result<(), StoreError>;
    /// The points of these instances with `from <= at < to`, by instance then time.
    async fn points(
        &self,
        instance_ids: &[String],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<Point>, StoreError>;
    /// The latest raw sample of every instance that has one.
    async fn latest(&self) -> Result<Vec<Point>, StoreError>;
    /// Rolls the complete buckets before `now` up (recomputing those late samples joined), then
    /// prunes what is past `retention`.
    async fn maintain(&self, now: i64, retention: Retention) -> Result<Maintenance, StoreError>;
    /// Bytes the metrics tables take on disk, raw and rolled up (SQLite's `dbstat`, when the
    /// library has it; else `None`).
    async fn table_bytes(&self) -> Result<Option<(u64, u64)>, StoreError>;

    // For copying between engines.

    /// The instances that have a series (samples or averages, or had them).
    async fn series(&self) -> Result<Vec<String>, StoreError>;
    /// Everything stored of one instance.
    async fn export_series(&self, instance_id: &str) -> Result<SeriesData, StoreError>;
    /// Stores an instance's samples and averages as they are, in one transaction (replacing
    /// those at the same times), without scheduling any recomputation.
    async fn import_series(&self, instance_id: &str, data: &SeriesData) -> Result<(), StoreError>;
}

/// Packs values as 16 little-endian `f32`.
pub fn pack(values: &Values) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect()
}

/// Unpacks [`pack`]'s bytes (missing values read as 0).
pub fn unpack(bytes: &[u8]) -> Values {
    let mut out = [0.0; METRIC_COUNT];
    for (i, c) in bytes.chunks_exact(4).take(METRIC_COUNT).enumerate() {
        out[i] = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
    }
    out
}

/// The setting that remembers how far rollups are done.
const ROLLED_UNTIL: &str = "metrics_rolled_until";
/// Rows per INSERT statement (3 bound values each, well under SQLite's limit).
const INSERT_CHUNK: usize = 1000;

#[derive(Debug, Default)]
struct State {
    /// Series IDs by instance.
    series: HashMap<String, i64>,
    /// Buckets before this are rolled up.
    rolled_until: Option<i64>,
    /// The earliest late sample (before `rolled_until`) stored since the last pass.
    dirty_from: Option<i64>,
}

/// The SQLite implementation, sharing the store's pool.
#[derive(Debug)]
pub struct SqliteMetrics {
    pool: SqlitePool,
    state: Mutex<State>,
    /// Metric writes take turns here rather than in SQLite's busy handler, which sleeps
    /// (milliseconds at a time) while another connection holds the write lock.
    writer: tokio::sync::Mutex<()>,
}

impl SqliteMetrics {
    pub(crate) async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        let rolled_until = sqlx::query("SELECT value FROM settings WHERE key = ?")
            .bind(ROLLED_UNTIL)
            .fetch_optional(&pool)
            .await?
            .and_then(|r| r.get::<String, _>(0).parse().ok());
        let series = sqlx::query("SELECT instance_id, id FROM metric_series")
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(SqliteMetrics {
            pool,
            state: Mutex::new(State {
                series,
                rolled_until,
                dirty_from: None,
            }),
            writer: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn series_id(&self, instance_id: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.state().series.get(instance_id) {
            return Ok(*id);
        }
        sqlx::query("INSERT INTO metric_series (instance_id) VALUES (?) ON CONFLICT DO NOTHING")
            .bind(instance_id)
            .execute(&self.pool)
            .await?;
        let id: i64 = sqlx::query("SELECT id FROM metric_series WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        self.state().series.insert(instance_id.to_string(), id);
        Ok(id)
    }

    fn all_series(&self) -> Vec<(String, i64)> {
        self.state()
            .series
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

#[async_trait]
impl MetricsStore for SqliteMetrics {
    async fn insert_samples(
        &self,
        instance_id: &str,
        samples: &[(i64, Values)],
    ) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let series = self.series_id(instance_id).await?;
        let _turn = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        for chunk in samples.chunks(INSERT_CHUNK) {
            let mut qb =
                QueryBuilder::new("INSERT OR REPLACE INTO metric_samples (series, at, vals) ");
            qb.push_values(chunk, |mut b, (at, values)| {
                b.push_bind(series).push_bind(*at).push_bind(pack(values));
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let earliest = samples.iter().map(|s| s.0).min().unwrap_or(i64::MAX);
        let mut state = self.state();
        if state.rolled_until.is_some_and(|r| earliest < r) {
            state.dirty_from = Some(state.dirty_from.map_or(earliest, |d| d.min(earliest)));
        }
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
                "SELECT at, vals FROM metric_samples WHERE series = ? AND at >= ? AND at < ? ORDER BY at"
            }
            Resolution::Rollup => {
                "SELECT at, vals FROM metric_rollups WHERE series = ? AND at >= ? AND at < ? ORDER BY at"
            }
        };
        let mut out = Vec::new();
        for instance_id in instance_ids {
            let Some(series) = self.state().series.get(instance_id).copied() else {
                continue;
            };
            let rows = sqlx::query(sql)
                .bind(series)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
            out.extend(rows.iter().map(|r| Point {
                instance_id: instance_id.clone(),
                at: r.get(0),
                values: unpack(r.get::<&[u8], _>(1)),
            }));
        }
        Ok(out)
    }

    async fn latest(&self) -> Result<Vec<Point>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.instance_id, m.at, m.vals FROM metric_series s JOIN metric_samples m
               ON m.series = s.id AND m.at = (SELECT MAX(at) FROM metric_samples WHERE series = s.id)
             ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Point {
                instance_id: r.get(0),
                at: r.get(1),
                values: unpack(r.get::<&[u8], _>(2)),
            })
            .collect())
    }

    async fn maintain(&self, now: i64, retention: Retention) -> Result<Maintenance, StoreError> {
        let mut done = Maintenance::default();
        let to = now.div_euclid(ROLLUP_SECONDS) * ROLLUP_SECONDS;
        let (rolled, dirty) = {
            let mut state = self.state();
            (state.rolled_until, state.dirty_from.take())
        };
        let from = match (rolled, dirty) {
            (Some(r), Some(d)) => Some(r.min(d)),
            (Some(r), None) => Some(r),
            (None, _) => sqlx::query("SELECT MIN(at) FROM metric_samples")
                .fetch_one(&self.pool)
                .await?
                .get::<Option<i64>, _>(0),
        };
        let from = from.map(|f| f.div_euclid(ROLLUP_SECONDS) * ROLLUP_SECONDS);
        let series = self.all_series();
        if let Some(from) = from.filter(|f| *f < to) {
            for (_, id) in &series {
                let rows = sqlx::query(
                    "SELECT at, vals FROM metric_samples WHERE series = ? AND at >= ? AND at < ? ORDER BY at",
                )
                .bind(id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let buckets = bucket_sums(
                    rows.iter()
                        .map(|r| (r.get(0), unpack(r.get::<&[u8], _>(1)))),
                );
                if buckets.is_empty() {
                    continue;
                }
                let _turn = self.writer.lock().await;
                let mut tx = self.pool.begin().await?;
                for chunk in buckets.chunks(INSERT_CHUNK) {
                    let mut qb = QueryBuilder::new(
                        "INSERT OR REPLACE INTO metric_rollups (series, at, n, vals) ",
                    );
                    qb.push_values(chunk, |mut b, (at, n, sum)| {
                        let avg = sum.map(|s| s / f64::from(*n));
                        b.push_bind(id)
                            .push_bind(*at)
                            .push_bind(i64::from(*n))
                            .push_bind(pack(&avg));
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                done.buckets_written += buckets.len() as u64;
            }
        }
        let new_rolled = rolled.map_or(to, |r| r.max(to));
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(ROLLED_UNTIL)
        .bind(new_rolled.to_string())
        .execute(&self.pool)
        .await?;
        self.state().rolled_until = Some(new_rolled);
        // Raw samples go only once rolled up.
        let raw_cutoff = (now - retention.raw_seconds).min(new_rolled);
        let rollup_cutoff = now - retention.rollup_seconds;
        for (_, id) in &series {
            done.samples_pruned +=
                sqlx::query("DELETE FROM metric_samples WHERE series = ? AND at < ?")
                    .bind(id)
                    .bind(raw_cutoff)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
            done.buckets_pruned +=
                sqlx::query("DELETE FROM metric_rollups WHERE series = ? AND at < ?")
                    .bind(id)
                    .bind(rollup_cutoff)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
        }
        Ok(done)
    }

    async fn table_bytes(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let rows = match sqlx::query(
            "SELECT name, SUM(pgsize) FROM dbstat WHERE name IN ('metric_samples', 'metric_rollups') GROUP BY name",
        )
        .fetch_all(&self.pool)
        .await
        {
            Ok(rows) => rows,
            // The SQLite library was built without dbstat.
            Err(_) => return Ok(None),
        };
        let mut raw = 0;
        let mut rolled = 0;
        for r in rows {
            let n = u64::try_from(r.get::<i64, _>(1)).unwrap_or(0);
            match r.get::<&str, _>(0) {
                "metric_samples" => raw = n,
                _ => rolled = n,
            }
        }
        Ok(Some((raw, rolled)))
    }

    async fn series(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT instance_id FROM metric_series ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn export_series(&self, instance_id: &str) -> Result<SeriesData, StoreError> {
        let Some(series) = sqlx::query("SELECT id FROM metric_series WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get::<i64, _>(0))
        else {
            return Ok(SeriesData::default());
        };
        let samples =
            sqlx::query("SELECT at, vals FROM metric_samples WHERE series = ? ORDER BY at")
                .bind(series)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| (r.get(0), unpack(r.get::<&[u8], _>(1))))
                .collect();
        let rollups =
            sqlx::query("SELECT at, n, vals FROM metric_rollups WHERE series = ? ORDER BY at")
                .bind(series)
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
        let _turn = self.writer.lock().await;
        let mut tx = self.pool.begin().await?;
        for chunk in data.samples.chunks(INSERT_CHUNK) {
            let mut qb =
                QueryBuilder::new("INSERT OR REPLACE INTO metric_samples (series, at, vals) ");
            qb.push_values(chunk, |mut b, (at, values)| {
                b.push_bind(series).push_bind(*at).push_bind(pack(values));
            });
            qb.build().execute(&mut *tx).await?;
        }
        for chunk in data.rollups.chunks(INSERT_CHUNK) {
            let mut qb =
                QueryBuilder::new("INSERT OR REPLACE INTO metric_rollups (series, at, n, vals) ");
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(series)
                    .push_bind(r.at)
                    .push_bind(r.n)
                    .push_bind(pack(&r.values));
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_in_64_bytes() {
        let mut v = [0.0; METRIC_COUNT];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as f64 * 1.5;
        }
        v[10] = 16_310_716.0;
        let bytes = pack(&v);
        assert_eq!(bytes.len(), 64);
        assert_eq!(unpack(&bytes), v);
    }
}
