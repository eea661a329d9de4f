//! The audit log: every mutating call (OpsWorks, IAM; the API's and the console's alike, as both
//! go through the operations) recorded with who made it, from where, on what and how it ended,
//! kept as long as the events (`--event-retention`, `--event-max-rows`).

use opsworks_store::{AuditQuery, AuditRecord, NewAudit};
use serde_json::Value;

use crate::core::{Core, CoreResult};

/// Whether an operation changes anything (and so is audited): all but the reads.
pub fn is_mutating(operation: &str) -> bool {
    !["Describe", "List", "Get"]
        .iter()
        .any(|p| operation.starts_with(p))
}

/// What one call was, for [`record`].
#[derive(Debug, Clone)]
pub struct Call<'a> {
    /// The caller's ARN.
    pub principal: &'a str,
    /// Where the call came from.
    pub source_ip: Option<String>,
    /// `opsworks`, `iam`.
    pub service: &'a str,
    /// The operation.
    pub operation: &'a str,
    /// The stack concerned.
    pub stack_id: Option<&'a str>,
    /// What it acted on.
    pub target: Option<&'a str>,
    /// `Success` or the error code.
    pub outcome: &'a str,
    /// More: the error's message, the access key used.
    pub detail: Value,
}

/// Records a call in a transaction of its own. A failure to record is logged, never the call's
/// failure: the call already happened.
pub async fn record(core: &Core, call: Call<'_>) {
    let entry = NewAudit {
        at: crate::core::now(),
        principal: call.principal.to_string(),
        source_ip: call.source_ip,
        service: call.service.to_string(),
        operation: call.operation.to_string(),
        stack_id: call.stack_id.map(str::to_string),
        target: call.target.map(str::to_string),
        outcome: call.outcome.to_string(),
        detail: call.detail,
    };
    let result = async {
        let mut w = core.write().await?;
        w.txn().record_audit(&entry).await?;
        w.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(
            operation = entry.operation,
            principal = entry.principal,
            "the audit log could not record a call: {e}"
        );
    }
}

/// Entries as `query` narrows them, oldest first.
pub async fn list(core: &Core, query: AuditQuery<'_>) -> CoreResult<Vec<AuditRecord>> {
    Ok(core.store().backend().audit(query).await?)
}

/// Drops entries past the event retention and beyond its row limit; returns how many went.
pub async fn prune(core: &Core) -> CoreResult<u64> {
    let hub = core.events();
    let horizon = jiff::SignedDuration::try_from(hub.retention)
        .ok()
        .and_then(|d| jiff::Timestamp::now().checked_sub(d).ok())
        .unwrap_or(jiff::Timestamp::MIN);
    let before = opsworks_model::timestamp(horizon);
    let n = core
        .store()
        .backend()
        .prune_audit(&before, hub.max_rows)
        .await?;
    if n > 0 {
        tracing::info!(dropped = n, "old audit entries pruned");
    }
    Ok(n)
}
