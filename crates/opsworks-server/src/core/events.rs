//! The event log's live side: events are appended in the transaction of the change they describe
//! ([`crate::core::Write::record`]) and broadcast here once it commits, in commit order. Old
//! events are pruned by age and count by a worker ([`prune`]).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{broadcast, watch};

use opsworks_model::EventKind;
use opsworks_store::{EventRecord, NewEvent};

use crate::core::{Core, CoreResult};

/// The most events the pump of a shared database reads at once.
pub const PUMP_PAGE: u32 = 1000;

/// The live side of the event log: subscribers, and the signal that ends streams at shutdown.
pub struct EventHub {
    tx: broadcast::Sender<Arc<EventRecord>>,
    closing: watch::Sender<bool>,
    /// Events older than this are pruned.
    pub retention: Duration,
    /// At most this many events are kept.
    pub max_rows: u64,
}

impl EventHub {
    /// A hub keeping events for `retention`, at most `max_rows` of them.
    pub fn new(retention: Duration, max_rows: u64) -> Self {
        let (tx, _) = broadcast::channel(1024);
        let (closing, _) = watch::channel(false);
        Self {
            tx,
            closing,
            retention,
            max_rows: max_rows.max(1),
        }
    }

    /// A receiver of every event committed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.tx.subscribe()
    }

    /// A receiver that turns true when the server shuts down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Hands committed events to the live streams (no subscriber is fine: the events are in the
    /// table for whoever comes later).
    pub fn broadcast(&self, events: &[EventRecord]) {
        for e in events {
            let _ = self.tx.send(Arc::new(e.clone()));
        }
    }

    /// Ends every open stream (the server is shutting down; open streams would hold it up).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// An event of `kind` in `stack_id` happening now, with no IDs and an empty detail yet.
pub fn new_event(stack_id: &str, kind: EventKind) -> NewEvent {
    NewEvent {
        at: crate::core::now(),
        stack_id: stack_id.to_string(),
        kind,
        instance_id: None,
        layer_id: None,
        deployment_id: None,
        command_id: None,
        detail: json!({}),
    }
}

/// Drops events past the retention and beyond the row limit; returns how many went.
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
        .prune_events(&before, hub.max_rows)
        .await?;
    if n > 0 {
        tracing::info!(dropped = n, "old events pruned");
    }
    Ok(n)
}
