//! Copying one database's whole contents into another engine's: what `opsworks db migrate
//! --from DIR --to URL` runs to move a SQLite data dir into PostgreSQL.
//!
//! Order: the target is checked first (refused unless empty), then metrics go instance by
//! instance, then settings, and last one write transaction holds every resource, access key and
//! event, so the target either has all of them or none. A copy that failed on the way can be
//! run again: metrics and settings copy idempotently, and the check only refuses a target holding
//! resources, access keys or events, or a setting of another value.

use std::collections::HashMap;

use crate::{Backend, Filter, Kind, StoreError};

/// Events read from the source at a time.
const EVENT_PAGE: u32 = 10_000;

/// What [`copy_all`] moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// Resources by kind, in [`Kind::ALL`] order.
    pub resources: Vec<(Kind, u64)>,
    /// Settings.
    pub settings: u64,
    /// Access keys.
    pub access_keys: u64,
    /// Events (with their sequence numbers).
    pub events: u64,
    /// Audit entries (with their sequence numbers).
    pub audit: u64,
    /// Instances with metrics.
    pub metric_series: u64,
    /// Raw metric samples.
    pub metric_samples: u64,
    /// 5-minute averages.
    pub metric_rollups: u64,
}

impl CopyReport {
    /// Resources of every kind.
    pub fn total_resources(&self) -> u64 {
        self.resources.iter().map(|(_, n)| n).sum()
    }
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = self
            .resources
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{} {n}", k.as_str()))
            .collect();
        write!(
            f,
            "copied {} resources ({}), {} settings, {} access keys, {} events, {} audit entries, metrics of {} instances ({} samples, {} averages)",
            self.total_resources(),
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            },
            self.settings,
            self.access_keys,
            self.events,
            self.audit,
            self.metric_series,
            self.metric_samples,
            self.metric_rollups
        )
    }
}

/// Copies everything `from` holds into `to`: every resource in its insertion order with its
/// index columns, settings, access keys, events with their sequence numbers (later appends
/// continue above the source's highest, pruned ones included) and metrics (samples and
/// averages). Refuses a target that already holds resources, access keys or events, or a setting
/// with another value. Nothing may write either database meanwhile (stop the servers first).
pub async fn copy_all(from: &dyn Backend, to: &dyn Backend) -> Result<CopyReport, StoreError> {
    refuse_unless_empty(from, to).await?;
    let mut report = CopyReport::default();

    let (source, target) = (from.metrics(), to.metrics());
    for instance in source.series().await? {
        let data = source.export_series(&instance).await?;
        target.import_series(&instance, &data).await?;
        report.metric_series += 1;
        report.metric_samples += data.samples.len() as u64;
        report.metric_rollups += data.rollups.len() as u64;
    }

    // After the metrics: the rollup watermark arriving last, the samples imported before it
    // mark nothing for recomputation.
    for (key, value) in from.settings().await? {
        to.setting_or_insert(&key, &value).await?;
        report.settings += 1;
    }

    let mut tx = to.begin().await?;
    for kind in Kind::ALL {
        let rows = from.export_rows(kind).await?;
        for row in &rows {
            tx.put(row.as_row()).await?;
        }
        report.resources.push((kind, rows.len() as u64));
    }
    tx.bump_generations(&Kind::ALL).await?;
    for key in from.access_keys().await? {
        tx.put_access_key(&key).await?;
        report.access_keys += 1;
    }
    let mut after = 0;
    loop {
        let page = from.events_after(None, after, EVENT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            tx.import_event(record).await?;
        }
        report.events += page.len() as u64;
    }
    tx.raise_event_seq(from.event_seq_high_water().await?.max(after))
        .await?;
    let mut after = 0;
    loop {
        let page = from
            .audit(crate::AuditQuery {
                after,
                limit: EVENT_PAGE,
                ..Default::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            tx.import_audit(record).await?;
        }
        report.audit += page.len() as u64;
    }
    tx.commit().await?;
    Ok(report)
}

/// Refuses a target with data of its own (see [`copy_all`]); says what it holds.
async fn refuse_unless_empty(from: &dyn Backend, to: &dyn Backend) -> Result<(), StoreError> {
    let mut held = Vec::new();
    let mut resources = 0;
    for kind in Kind::ALL {
        resources += to.count(kind, Filter::All).await?;
    }
    if resources > 0 {
        held.push(format!("{resources} resources"));
    }
    let keys = to.access_keys().await?.len();
    if keys > 0 {
        held.push(format!("{keys} access keys"));
    }
    if !to.latest_events(None, 1).await?.is_empty() {
        held.push("events".to_string());
    }
    let theirs: HashMap<String, String> = to.settings().await?.into_iter().collect();
    for (key, value) in from.settings().await? {
        if theirs.get(&key).is_some_and(|v| *v != value) {
            // The key only: a value may be anything.
            held.push(format!("another value of the setting {key}"));
        }
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(StoreError::TargetNotEmpty(format!(
        "it holds {}; copy only into a new database (drop it and create it again, empty)",
        held.join(", ")
    )))
}
