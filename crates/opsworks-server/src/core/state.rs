//! The control plane's shared state ([`Core`]) and its write transactions ([`Write`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rand::Rng;
use tokio_util::task::TaskTracker;

use opsworks_model::{Kind, Resource};
use opsworks_store::{Cached, EventRecord, Filter, NewEvent, Store, Txn};

use crate::ServerError;
use crate::config::{MetricsConfig, ServerConfig};
use crate::core::agent_releases::AgentReleases;
use crate::core::appliances::Appliances;
use crate::core::cluster::{self, Node};
use crate::core::events::EventHub;
use crate::core::identity::AccessCache;
use crate::core::keys::{KeyRing, RootKey, Sealer};
use crate::core::machines::Machines;
use crate::core::metrics::ServerMetrics;
use crate::core::presence::Presence;
use crate::core::{CoreError, CoreResult};

/// Shared state of every request and worker; cheap to clone.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keys: KeyRing,
    account_id: String,
    region: String,
    /// The key that signs `LogUrl` links, chosen once per data dir.
    link_key: Vec<u8>,
    /// The server's own base URL, known once it listens.
    endpoint: OnceLock<String>,
    /// Where instances run, when this server runs them.
    machines: OnceLock<Machines>,
    /// The service machines (RDS's databases), when this server runs machines.
    appliances: OnceLock<Appliances>,
    data_dir: PathBuf,
    /// This server among the others on its database.
    node: Node,
    presence: Arc<Presence>,
    healing_timeout: Duration,
    scheduler_interval: Duration,
    scaling_minute: Duration,
    access_minute: Duration,
    events: EventHub,
    metrics_config: MetricsConfig,
    server_metrics: ServerMetrics,
    /// What IAM users may do, kept between requests.
    access: AccessCache,
    /// Background work started by requests (a machine booting, a stop running Shutdown), so the
    /// server can wait for it at shutdown.
    tasks: TaskTracker,
    /// See [`ServerConfig::elastic_ip_pool`].
    elastic_ip_pool: opsworks_sandbox::AddressRange,
    /// The agent releases installed agents can be told to run.
    agent_releases: Arc<AgentReleases>,
}

impl Core {
    /// Opens the data dir (creating it, owner only), the store, the master key and the access
    /// keys.
    pub async fn open(config: &ServerConfig) -> Result<(Self, RootKey), ServerError> {
        let dir = &config.data_dir;
        create_private_dir(dir)?;
        let engine = config
            .database
            .clone()
            .unwrap_or(opsworks_store::Engine::Sqlite {
                path: dir.join("opsworks.db"),
            });
        let store = opsworks_store::open(&engine).await?;
        let node = Node::open(dir, store.backend().cluster().is_some())?;
        // Access-key secrets are sealed under the master key: a server joining a database that
        // holds keys needs the master key they were sealed under, never a new one.
        if !dir.join("master.key").exists() && !store.backend().access_keys().await?.is_empty() {
            return Err(ServerError::Keys(format!(
                "{} has no master.key, and the database {engine} already holds access keys sealed under one: every server on one database needs the same master.key; copy it (mode 0600) from the data dir of a server of this database",
                dir.display()
            )));
        }
        let sealer = Arc::new(Sealer::load_or_create(dir)?);
        // Checked before anything is sealed under this key (the root key from the environment
        // would otherwise replace the stored one, locking the other servers out).
        if let Some(record) = store
            .backend()
            .access_keys()
            .await?
            .iter()
            .find(|r| sealer.open(&r.sealed_secret).is_none())
        {
            return Err(ServerError::Keys(format!(
                "{}/master.key cannot open the secret of access key {} in the database {engine}: its keys were sealed under another master.key; every server on one database needs the same master.key (copy it, mode 0600, from the data dir of a server of this database)",
                dir.display(),
                record.access_key_id
            )));
        }
        // Resources' secrets (app secure values, source passwords, layer passwords) are sealed at
        // rest under the master key, as access-key secrets are.
        let store = store.with_sealing(sealer.clone());
        let (keys, root) =
            KeyRing::load(&store, sealer.clone(), dir, config.root_key.clone()).await?;
        let backend = store.backend();
        // A stable 12-digit account ID for ARNs, chosen once per database.
        let fresh: String = (0..12)
            .map(|_| char::from(b'0' + rand::rng().random_range(0..10u8)))
            .collect();
        let account_id = backend.setting_or_insert("account_id", &fresh).await?;
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        let link_key = open_link_key(
            &sealer,
            &backend
                .setting_or_insert(
                    "link_key",
                    &format!(
                        "{}{}",
                        opsworks_store::SEALED_PREFIX,
                        opsworks_store::Sealing::seal(&*sealer, &hex::encode(key))
                    ),
                )
                .await?,
        )?;
        let core = Self {
            inner: Arc::new(Inner {
                store,
                keys,
                account_id,
                region: config.region.clone(),
                link_key,
                endpoint: OnceLock::new(),
                machines: OnceLock::new(),
                appliances: OnceLock::new(),
                data_dir: dir.clone(),
                node,
                presence: Arc::default(),
                healing_timeout: config.healing_timeout,
                scheduler_interval: config.scheduler_interval,
                scaling_minute: config.scaling_minute,
                access_minute: config.access_minute,
                events: EventHub::new(config.event_retention, config.event_max_rows),
                metrics_config: config.metrics.clone(),
                server_metrics: ServerMetrics::default(),
                access: AccessCache::default(),
                tasks: TaskTracker::new(),
                elastic_ip_pool: config.elastic_ip_pool,
                agent_releases: AgentReleases::new(
                    config
                        .agent_program
                        .clone()
                        .or_else(|| std::env::current_exe().ok()),
                    dir,
                    config.agent_update_deadline,
                ),
            }),
        };
        Ok((core, root))
    }

    /// The store.
    pub fn store(&self) -> &Store {
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

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// This server among the others on its database (its ID, whether it leads).
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The agents this server hears from.
    pub fn presence(&self) -> &Arc<Presence> {
        &self.inner.presence
    }

    /// See [`ServerConfig::healing_timeout`].
    pub fn healing_timeout(&self) -> Duration {
        self.inner.healing_timeout
    }

    /// See [`ServerConfig::scheduler_interval`].
    pub fn scheduler_interval(&self) -> Duration {
        self.inner.scheduler_interval
    }

    /// See [`ServerConfig::scaling_minute`].
    pub fn scaling_minute(&self) -> Duration {
        self.inner.scaling_minute
    }

    /// See [`ServerConfig::access_minute`].
    pub fn access_minute(&self) -> Duration {
        self.inner.access_minute
    }

    /// The event log's live side.
    pub fn events(&self) -> &EventHub {
        &self.inner.events
    }

    /// See [`ServerConfig::metrics`].
    pub fn metrics_config(&self) -> &MetricsConfig {
        &self.inner.metrics_config
    }

    /// The server's own counters.
    pub fn server_metrics(&self) -> &ServerMetrics {
        &self.inner.server_metrics
    }

    /// What IAM users may do, kept between requests (see [`crate::core::identity`]).
    pub fn access_cache(&self) -> &AccessCache {
        &self.inner.access
    }

    /// See [`ServerConfig::elastic_ip_pool`].
    pub fn elastic_ip_pool(&self) -> opsworks_sandbox::AddressRange {
        self.inner.elastic_ip_pool
    }

    /// Background work started by requests; the server waits for it at shutdown.
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// The agent releases installed agents can be told to run.
    pub fn agent_releases(&self) -> &Arc<AgentReleases> {
        &self.inner.agent_releases
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
    pub fn set_machines(&self, machines: Machines) {
        let _ = self.inner.machines.set(machines);
    }

    /// The machines instances run on, if this server runs instances.
    pub fn machines(&self) -> Option<&Machines> {
        self.inner.machines.get()
    }

    /// Attaches the service machines.
    pub fn set_appliances(&self, appliances: Appliances) {
        let _ = self.inner.appliances.set(appliances);
    }

    /// The service machines, if this server runs machines.
    pub fn appliances(&self) -> Option<&Appliances> {
        self.inner.appliances.get()
    }

    /// One resource, or `Unable to find <kind> with ID <id>`.
    pub async fn get<R: Resource>(&self, id: &str) -> CoreResult<Cached<R>> {
        self.find(id)
            .await?
            .ok_or_else(|| CoreError::not_found(R::KIND, id))
    }

    /// One resource, if it exists.
    pub async fn find<R: Resource>(&self, id: &str) -> CoreResult<Option<Cached<R>>> {
        Ok(self.inner.store.get(id).await?)
    }

    /// The resources of a kind matching `filter`, in insertion order.
    pub async fn list<R: Resource>(&self, filter: Filter<'_>) -> CoreResult<Vec<Cached<R>>> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// Every resource named by `ids`, in the order named, or not-found for the first missing.
    pub async fn get_all<R: Resource>(&self, ids: &[String]) -> CoreResult<Vec<Cached<R>>> {
        let found = self.list::<R>(Filter::Ids(ids)).await?;
        ids.iter()
            .map(|id| {
                found
                    .iter()
                    .find(|r| r.id() == id)
                    .cloned()
                    .ok_or_else(|| CoreError::not_found(R::KIND, id))
            })
            .collect()
    }

    /// Starts a write transaction: check-then-write sequences run in one, so two writers cannot
    /// both pass a check only one may pass, and a failure leaves nothing half-made.
    pub async fn write(&self) -> CoreResult<Write<'_>> {
        Ok(Write {
            core: self,
            txn: self.inner.store.write().await?,
            wake: Vec::new(),
            recorded: false,
        })
    }

    /// Runs `work` in the background, tracked so the server can wait for it at shutdown.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.inner.tasks.spawn(work);
    }
}

/// The link-signing key from its setting: sealed (or, from before sealing, plain hex).
fn open_link_key(sealer: &Sealer, stored: &str) -> Result<Vec<u8>, ServerError> {
    let hex_text = match stored.strip_prefix(opsworks_store::SEALED_PREFIX) {
        Some(sealed) => opsworks_store::Sealing::open(sealer, sealed).ok_or_else(|| {
            ServerError::Keys(
                "the stored link key was sealed with another master key; every server on one database needs the same master.key".into(),
            )
        })?,
        None => stored.to_string(),
    };
    hex::decode(hex_text)
        .map_err(|e| ServerError::Keys(format!("the stored link key is damaged: {e}")))
}

/// The data dir holds the master key and the database: owner only.
fn create_private_dir(dir: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| ServerError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
}

/// A write transaction of the core: the store's transaction, plus what must happen once it
/// commits (events broadcast, agents woken). Dropped without [`commit`](Write::commit), nothing
/// it did is kept.
pub struct Write<'a> {
    core: &'a Core,
    txn: Txn<'a>,
    wake: Vec<String>,
    /// Whether an event was recorded (the other servers' streams must hear).
    recorded: bool,
}

impl<'a> Write<'a> {
    /// The core.
    pub fn core(&self) -> &'a Core {
        self.core
    }

    /// The store's transaction, for what the typed helpers below do not cover.
    pub fn txn(&mut self) -> &mut Txn<'a> {
        &mut self.txn
    }

    /// One resource as of this transaction, or not-found.
    pub async fn get<R: Resource>(&mut self, id: &str) -> CoreResult<R> {
        self.find(id)
            .await?
            .ok_or_else(|| CoreError::not_found(R::KIND, id))
    }

    /// One resource as of this transaction, if it exists.
    pub async fn find<R: Resource>(&mut self, id: &str) -> CoreResult<Option<R>> {
        Ok(self.txn.get(id).await?)
    }

    /// The resources matching `filter` as of this transaction.
    pub async fn list<R: Resource>(&mut self, filter: Filter<'_>) -> CoreResult<Vec<R>> {
        Ok(self.txn.list(filter).await?)
    }

    /// Every resource named by `ids`, in the order named, or not-found for the first missing.
    pub async fn get_all<R: Resource>(&mut self, ids: &[String]) -> CoreResult<Vec<R>> {
        let found = self.list::<R>(Filter::Ids(ids)).await?;
        ids.iter()
            .map(|id| {
                found
                    .iter()
                    .find(|r| r.id() == id)
                    .cloned()
                    .ok_or_else(|| CoreError::not_found(R::KIND, id))
            })
            .collect()
    }

    /// How many resources match `filter` as of this transaction.
    pub async fn count<R: Resource>(&mut self, filter: Filter<'_>) -> CoreResult<u64> {
        Ok(self.txn.count::<R>(filter).await?)
    }

    /// Inserts or replaces a resource.
    pub async fn put<R: Resource>(&mut self, resource: &R) -> CoreResult<()> {
        Ok(self.txn.put(resource).await?)
    }

    /// Deletes a resource of `kind`.
    pub async fn delete(&mut self, kind: Kind, id: &str) -> CoreResult<()> {
        Ok(self.txn.delete(kind, id).await?)
    }

    /// Appends an event to the log, in this transaction; it is broadcast once it commits.
    pub async fn record(&mut self, event: NewEvent) -> CoreResult<()> {
        self.txn.record_event(event).await?;
        self.recorded = true;
        Ok(())
    }

    /// Wakes the instance's agent once this transaction commits (a command is waiting for it).
    pub fn wake(&mut self, instance_id: &str) {
        self.wake.push(instance_id.to_string());
    }

    /// Tells the other servers on a shared database, once this commits, that `principal`'s keys
    /// are revoked (they drop them from memory).
    pub async fn revoked(&mut self, principal: &str) -> CoreResult<()> {
        if self.core.node().shared() {
            self.txn.notify(cluster::KEYS, principal).await?;
        }
        Ok(())
    }

    /// Commits: durable once this returns; then the events go to the live streams (in commit
    /// order) and the agents named by [`wake`](Self::wake) are woken. On a shared database the
    /// other servers hear of both through notifications sent with the commit, and every
    /// server's streams get the events from the table, in sequence order.
    pub async fn commit(mut self) -> CoreResult<()> {
        let core = self.core;
        let shared = core.node().shared();
        if shared {
            for payload in cluster::wake_payloads(&self.wake) {
                self.txn.notify(cluster::WAKE, &payload).await?;
            }
            if self.recorded {
                self.txn.notify(cluster::EVENTS, "").await?;
            }
        }
        let hub = core.events();
        self.txn
            .commit_with(|events: &[EventRecord]| {
                if !shared {
                    hub.broadcast(events);
                }
            })
            .await?;
        if shared && self.recorded {
            core.node().poke_events();
        }
        for id in &self.wake {
            core.presence().notify(id);
        }
        Ok(())
    }
}
