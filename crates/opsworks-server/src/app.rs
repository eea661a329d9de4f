//! The server's shared state: the store, the keys, the account, and the write lock.

use std::collections::HashMap;
use std::sync::Arc;

use opsworks_store::{Engine, Store};
use rand::Rng;

use crate::keys::{KeyRing, RootKey, Sealer};
use crate::{ServerConfig, ServerError};

/// Shared state of every request; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    keys: KeyRing,
    account_id: String,
    region: String,
    /// Mutating operations check and write under this lock, so two concurrent requests cannot both
    /// pass a check (a unique name, an empty stack) that only one of them may pass.
    write_lock: tokio::sync::Mutex<()>,
    /// The key that signs `LogUrl` links, chosen once per data dir.
    link_key: Vec<u8>,
    /// The server's own base URL, known once it listens.
    endpoint: std::sync::OnceLock<String>,
    /// Where instances run, when this server runs them (`--local-instances`).
    machines: std::sync::OnceLock<crate::machines::Machines>,
    /// The data dir (command logs live under `logs/`).
    data_dir: std::path::PathBuf,
    /// One wake-up per instance: a long-polling agent waits on it, a new command notifies it.
    wakeups: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    /// When each agent last spoke (monotonic), for heartbeats and healing.
    last_seen: std::sync::Mutex<HashMap<String, std::time::Instant>>,
    /// Agents waiting in a long poll right now (an agent waiting is alive).
    polling: std::sync::Mutex<HashMap<String, usize>>,
    /// When this server started: an agent not heard from since counts as silent from then.
    started: std::time::Instant,
    /// See [`ServerConfig::healing_timeout`].
    healing_timeout: std::time::Duration,
    /// See [`ServerConfig::scheduler_interval`].
    scheduler_interval: std::time::Duration,
    /// See [`ServerConfig::scaling_minute`].
    scaling_minute: std::time::Duration,
    /// The event log's live side: recording order and subscribers.
    events: crate::events::EventHub,
    /// See [`ServerConfig::metrics`].
    metrics_config: crate::config::MetricsConfig,
    /// The server's own counters (API requests, latency, ingested samples).
    server_metrics: crate::metrics::ServerMetrics,
}

impl App {
    /// Opens the data dir (creating it), the store, the master key and the access keys.
    pub async fn open(config: &ServerConfig) -> Result<(Self, RootKey), ServerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| ServerError::Io {
            path: dir.clone(),
            source,
        })?;
        let store = opsworks_store::open(&Engine::Sqlite {
            path: dir.join("opsworks.db"),
        })
        .await?;
        let sealer = Sealer::load_or_create(dir)?;
        let (keys, root) = KeyRing::load(&store, sealer, dir, config.root_key.clone()).await?;
        // A stable 12-digit account ID for ARNs, chosen once per data dir.
        let fresh: String = (0..12)
            .map(|_| char::from(b'0' + rand::rng().random_range(0..10u8)))
            .collect();
        let account_id = store.setting_or_insert("account_id", &fresh).await?;
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        let link_key = hex::decode(
            store
                .setting_or_insert("link_key", &hex::encode(key))
                .await?,
        )
        .map_err(|e| ServerError::Keys(format!("the stored link key is damaged: {e}")))?;
        let app = Self {
            inner: Arc::new(Inner {
                store,
                keys,
                account_id,
                region: config.region.clone(),
                write_lock: tokio::sync::Mutex::new(()),
                link_key,
                endpoint: std::sync::OnceLock::new(),
                machines: std::sync::OnceLock::new(),
                data_dir: dir.clone(),
                wakeups: Default::default(),
                last_seen: Default::default(),
                polling: Default::default(),
                started: std::time::Instant::now(),
                healing_timeout: config.healing_timeout,
                scheduler_interval: config.scheduler_interval,
                scaling_minute: config.scaling_minute,
                events: crate::events::EventHub::new(config.event_retention, config.event_max_rows),
                metrics_config: config.metrics.clone(),
                server_metrics: Default::default(),
            }),
        };
        Ok((app, root))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The access keys.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The account ID used in ARNs.
    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// The server's region.
    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Takes the write lock for a check-then-write sequence.
    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.write_lock.lock().await
    }

    /// The data dir.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// The wake-up of an instance's agent.
    pub fn wakeup(&self, instance_id: &str) -> Arc<tokio::sync::Notify> {
        let mut map = self.inner.wakeups.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(instance_id.to_string()).or_default().clone()
    }

    /// Wakes the agent of an instance: a command is waiting for it.
    pub fn notify_agent(&self, instance_id: &str) {
        // notify_one stores a permit when nobody waits yet, so a poll that starts later still sees it.
        self.wakeup(instance_id).notify_one();
    }

    /// Records that an instance's agent spoke now.
    pub fn saw_agent(&self, instance_id: &str) {
        let mut map = self
            .inner
            .last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.insert(instance_id.to_string(), std::time::Instant::now());
    }

    /// How long an instance's agent has been silent: zero while it waits in a long poll, else the
    /// time since it last spoke (or since this server started, if it has not spoken since).
    pub fn agent_silence(&self, instance_id: &str) -> std::time::Duration {
        let polling = self.inner.polling.lock().unwrap_or_else(|p| p.into_inner());
        if polling.get(instance_id).is_some_and(|n| *n > 0) {
            return std::time::Duration::ZERO;
        }
        drop(polling);
        let map = self
            .inner
            .last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.get(instance_id)
            .copied()
            .unwrap_or(self.inner.started)
            .elapsed()
    }

    /// Marks an agent as waiting in a long poll until the returned guard drops.
    pub fn polling(&self, instance_id: &str) -> PollGuard {
        let mut polling = self.inner.polling.lock().unwrap_or_else(|p| p.into_inner());
        *polling.entry(instance_id.to_string()).or_default() += 1;
        PollGuard {
            app: self.clone(),
            instance_id: instance_id.to_string(),
        }
    }

    /// See [`ServerConfig::healing_timeout`].
    pub fn healing_timeout(&self) -> std::time::Duration {
        self.inner.healing_timeout
    }

    /// See [`ServerConfig::scheduler_interval`].
    pub fn scheduler_interval(&self) -> std::time::Duration {
        self.inner.scheduler_interval
    }

    /// See [`ServerConfig::scaling_minute`].
    pub fn scaling_minute(&self) -> std::time::Duration {
        self.inner.scaling_minute
    }

    /// The event log's live side (see [`crate::events`]).
    pub fn events(&self) -> &crate::events::EventHub {
        &self.inner.events
    }

    /// See [`ServerConfig::metrics`].
    pub fn metrics_config(&self) -> &crate::config::MetricsConfig {
        &self.inner.metrics_config
    }

    /// The server's own counters.
    pub fn server_metrics(&self) -> &crate::metrics::ServerMetrics {
        &self.inner.server_metrics
    }

    /// How many agents are connected: waiting in a long poll, or heard from within `within`.
    pub fn agents_connected(&self, within: std::time::Duration) -> usize {
        let polling = self.inner.polling.lock().unwrap_or_else(|p| p.into_inner());
        let last_seen = self
            .inner
            .last_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut ids: std::collections::HashSet<&String> = polling
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(id, _)| id)
            .collect();
        ids.extend(
            last_seen
                .iter()
                .filter(|(_, t)| t.elapsed() < within)
                .map(|(id, _)| id),
        );
        ids.len()
    }

    /// Records the server's base URL (`http://127.0.0.1:9730`) once it listens.
    pub fn set_endpoint(&self, url: &str) {
        let _ = self
            .inner
            .endpoint
            .set(url.trim_end_matches('/').to_string());
    }

    /// The server's base URL, once known.
    pub fn endpoint(&self) -> Option<&str> {
        self.inner.endpoint.get().map(String::as_str)
    }

    /// The key that signs links.
    pub fn link_key(&self) -> &[u8] {
        &self.inner.link_key
    }

    /// Attaches the machines instances run on.
    pub fn set_machines(&self, machines: crate::machines::Machines) {
        let _ = self.inner.machines.set(machines);
    }

    /// The machines instances run on, if this server runs instances.
    pub fn machines(&self) -> Option<&crate::machines::Machines> {
        self.inner.machines.get()
    }
}

/// An agent's long poll in progress; see [`App::polling`].
pub struct PollGuard {
    app: App,
    instance_id: String,
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        self.app.saw_agent(&self.instance_id);
        let mut polling = self
            .app
            .inner
            .polling
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = polling.get_mut(&self.instance_id) {
            *n = n.saturating_sub(1);
        }
    }
}
