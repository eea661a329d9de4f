//! Several servers on one database: what makes them one control plane.
//!
//! - **Identity**: each server has a stable ID (`DIR/server-id`) and registers its advertise URL
//!   and its agents' URL in the database every few seconds ([`Node`]); agents get every server's
//!   URL in the hello and heartbeat answers (local instances' agents the agents' URLs, registered
//!   machines' the advertise URLs) and move to another when theirs stops answering.
//! - **Notifications** (LISTEN/NOTIFY, sent inside the writing transaction, so only committed
//!   changes are announced, in commit order): a new command wakes its agent's long poll on
//!   whichever server it waits ([`WAKE`]); recorded events reach every server's live streams
//!   ([`EVENTS`], read back from the table in sequence order by one pump per server); a revoked
//!   key stops working on every server ([`KEYS`]); machine work goes to the server whose host
//!   runs the machine ([`MACHINES`]). A listener that lost its connection catches up: it re-reads
//!   the events, wakes every local poll (each checks its commands) and forgets cached keys.
//! - **Leadership**: the background work (scheduler, watchdog, metrics maintenance, event and
//!   audit pruning, temporary logins' expiry) runs on the one server holding the lease [`LEADER_LEASE`], renewed every
//!   [`RENEW_EVERY`] for [`LEASE_TTL`] by the database's clock; when the leader dies another takes
//!   over within `LEASE_TTL + RENEW_EVERY` (12 s), at once when it stops cleanly.
//! - **Presence**: when each agent was last heard from, through any server, batched into the
//!   database every [`flush_period`], so the leader's watchdog sees agents polling any server; a
//!   boot or reboot is written at once (the silence of a booting agent counts from its boot).
//!
//! On the embedded engine (one server) none of this runs: this server leads, and wake-ups, events
//! and revocations stay in the process.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use opsworks_store::{Cluster, ServerRecord};

use crate::ServerError;
use crate::core::workers::{WorkerResult, Workers};
use crate::core::{Core, CoreError, CoreResult, machines};

/// Wakes agents: the payload is instance IDs, comma-separated.
pub const WAKE: &str = "opsworks_wake";
/// Events were recorded: read them from the table.
pub const EVENTS: &str = "opsworks_events";
/// A principal's keys were revoked: the payload is the principal.
pub const KEYS: &str = "opsworks_keys";
/// Machine work for the server running the machine: the payload is a [`MachineWork`] as JSON.
pub const MACHINES: &str = "opsworks_machines";
/// The lease of the background work.
pub const LEADER_LEASE: &str = "background-work";
/// How long the leader's lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often leases and registrations are renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// Servers heard from within this long are handed to agents.
pub const SERVER_FRESH: Duration = Duration::from_secs(30);

/// The file holding a server's stable ID in its data dir.
pub const SERVER_ID_FILE: &str = "server-id";

/// This server, as the cluster knows it.
#[derive(Debug)]
pub struct Node {
    server_id: String,
    shared: bool,
    leads: AtomicBool,
    leader_since: Mutex<Instant>,
    /// (advertise URL, agents' URL), once the server listens.
    urls: OnceLock<(String, String)>,
    /// Pokes this server's event pump.
    pump: Notify,
    /// Agents' URLs of the live servers, this one first, as last read.
    peers: Mutex<Vec<String>>,
    /// Advertise URLs of the live servers, this one first, as last read: what registered
    /// machines (outside the servers' bridges) reach them at.
    public_peers: Mutex<Vec<String>>,
}

impl Node {
    /// The node of the server whose data dir is `dir`; `shared` when its database is.
    pub fn open(dir: &Path, shared: bool) -> Result<Self, ServerError> {
        let server_id = server_id(dir)?;
        Ok(Self {
            server_id,
            shared,
            // Alone on its database, a server leads from the start.
            leads: AtomicBool::new(!shared),
            leader_since: Mutex::new(Instant::now()),
            urls: OnceLock::new(),
            pump: Notify::new(),
            peers: Mutex::new(Vec::new()),
            public_peers: Mutex::new(Vec::new()),
        })
    }

    /// This server's stable ID.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Whether other servers may share the database.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Whether this server runs the background work now.
    pub fn leads(&self) -> bool {
        self.leads.load(Ordering::SeqCst)
    }

    /// How long this server has led (zero when it does not).
    pub fn leading_for(&self) -> Duration {
        if !self.leads() {
            return Duration::ZERO;
        }
        lock(&self.leader_since).elapsed()
    }

    fn set_leads(&self, now: bool) {
        if self.leads.swap(now, Ordering::SeqCst) != now {
            if now {
                *lock(&self.leader_since) = Instant::now();
                tracing::info!(
                    server_id = self.server_id,
                    "this server now leads the background work"
                );
            } else {
                tracing::warn!(
                    server_id = self.server_id,
                    "this server no longer leads the background work"
                );
            }
        }
    }

    /// Records where the server is reached: by clients (and log links), and by its agents.
    pub fn set_urls(&self, advertise: &str, agents: &str) {
        let _ = self.urls.set((
            advertise.trim_end_matches('/').to_string(),
            agents.trim_end_matches('/').to_string(),
        ));
    }

    /// The agents' URLs of every live server, this one first; empty alone on its database.
    pub fn peers(&self) -> Vec<String> {
        lock(&self.peers).clone()
    }

    /// The URLs an instance's agent should know the servers by: the agents' URLs for local
    /// instances, the advertise URLs for registered machines (a bridge's address is the host's
    /// own, out of their reach).
    pub fn peers_for(&self, registered: bool) -> Vec<String> {
        if registered {
            lock(&self.public_peers).clone()
        } else {
            self.peers()
        }
    }

    /// Wakes the event pump: events were committed.
    pub fn poke_events(&self) {
        self.pump.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The data dir's server ID, made on first start.
fn server_id(dir: &Path) -> Result<String, ServerError> {
    let path = dir.join(SERVER_ID_FILE);
    let io = |source| ServerError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => Err(ServerError::Keys(format!("{} is empty", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = opsworks_model::new_id();
            crate::core::keys::write_private(&path, &format!("{id}\n")).map_err(io)?;
            Ok(id)
        }
        Err(e) => Err(io(e)),
    }
}

/// Machine work sent to the server whose host runs the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineWork {
    /// The server that runs the machine.
    pub server: String,
    /// The instance.
    pub instance: String,
    /// What to do.
    pub op: MachineOp,
}

/// What [`MachineWork`] asks for (the `machines` functions of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineOp {
    /// Boot the machine (StartInstance).
    Launch,
    /// Stop it, running Shutdown first when an agent runs.
    Halt {
        /// Whether an agent runs to take Shutdown.
        had_agent: bool,
    },
    /// Stop and boot it again.
    Reboot,
    /// Stop and start it through StartInstance's path.
    Heal,
    /// Remove it (DeleteInstance).
    Destroy,
}

/// The cluster of the core's store, when its database is shared.
fn shared(core: &Core) -> Option<&dyn Cluster> {
    core.store().backend().cluster()
}

/// Where machine work for an instance whose machine runs on `owner` goes: `None` to do it here
/// (this server runs it, or nobody recorded one, or a single server), else the live server that
/// runs it. A launch of an instance whose server is gone happens here (this server takes the
/// instance over); other work for a gone server waits for it to return (its machines keep
/// running, and it re-adopts them).
pub async fn machine_owner(
    core: &Core,
    owner: Option<&str>,
    op: MachineOp,
) -> CoreResult<Option<String>> {
    let node = core.node();
    let (Some(owner), Some(cluster)) = (owner, shared(core)) else {
        return Ok(None);
    };
    if owner == node.server_id() {
        return Ok(None);
    }
    if op == MachineOp::Launch {
        let live = cluster.servers(SERVER_FRESH).await?;
        if !live.iter().any(|s| s.server_id == owner) {
            return Ok(None);
        }
    }
    Ok(Some(owner.to_string()))
}

/// Sends machine work to the server that runs the machine (it does it when the notification
/// arrives, or, if it is down, finds the instance's state when it returns).
pub async fn forward(core: &Core, work: &MachineWork) -> CoreResult<()> {
    let Some(cluster) = shared(core) else {
        return Err(CoreError::Machine(
            "machine work forwarded without a cluster".into(),
        ));
    };
    let payload = serde_json::to_string(work)
        .map_err(|e| CoreError::Machine(format!("machine work as JSON: {e}")))?;
    tracing::info!(instance_id = work.instance, server = work.server, op = ?work.op, "machine work sent to the server that runs the machine");
    cluster.notify(MACHINES, &payload).await?;
    Ok(())
}

/// How often agents' presence goes to the database: often enough for the healing timeout.
pub fn flush_period(core: &Core) -> Duration {
    (core.healing_timeout() / 4).clamp(Duration::from_millis(500), Duration::from_secs(5))
}

/// Starts what a server on a shared database runs besides its workers: the listener, the pump
/// of events, and membership (registration, the leader's lease, agents' presence). Registers
/// the server first, refusing to start beside another server with the same ID.
pub async fn start(core: &Core, workers: &mut Workers) -> Result<(), ServerError> {
    let Some(cluster) = shared(core) else {
        return Ok(());
    };
    let node = core.node();
    let me = record(core);
    // Two processes with one data dir's ID would both think they hold the lease.
    if let Some(twin) = cluster
        .servers(LEASE_TTL)
        .await?
        .into_iter()
        .find(|s| s.server_id == node.server_id() && s.advertise_url != me.advertise_url)
    {
        return Err(ServerError::Keys(format!(
            "another server with this data dir's ID ({}) is running at {}; each server needs a data dir of its own (copy only master.key between them)",
            node.server_id(),
            twin.advertise_url
        )));
    }
    cluster.register_server(&me).await?;
    refresh_peers(core).await;
    let c = core.clone();
    workers.spawn("cluster-listener", move |stop| listen(c.clone(), stop));
    let c = core.clone();
    workers.spawn("event-pump", move |stop| pump(c.clone(), stop));
    let c = core.clone();
    workers.spawn("cluster-membership", move |stop| {
        membership(c.clone(), stop)
    });
    tracing::info!(
        server_id = node.server_id(),
        advertise_url = me.advertise_url,
        "registered in the cluster"
    );
    Ok(())
}

/// Leaves the cluster at shutdown: the lease goes at once (another server takes the background
/// work without waiting for it to expire) and the server leaves the registry.
pub async fn leave(core: &Core) {
    let Some(cluster) = shared(core) else { return };
    let node = core.node();
    // Handing the work over as it stops is expected: no warning, as a lost lease has.
    if node.leads.swap(false, Ordering::SeqCst) {
        tracing::info!(
            server_id = node.server_id,
            "this server hands the background work over as it stops"
        );
    }
    if let Err(e) = cluster.release_lease(LEADER_LEASE, node.server_id()).await {
        tracing::warn!("releasing the lease: {e}");
    }
    if let Err(e) = cluster.deregister_server(node.server_id()).await {
        tracing::warn!("leaving the registry: {e}");
    }
}

fn record(core: &Core) -> ServerRecord {
    let node = core.node();
    let (advertise, agents) = node
        .urls
        .get()
        .cloned()
        .unwrap_or_else(|| (String::new(), String::new()));
    ServerRecord {
        server_id: node.server_id().to_string(),
        advertise_url: advertise,
        agent_url: agents,
        silent_seconds: 0.0,
    }
}

async fn refresh_peers(core: &Core) {
    let Some(cluster) = shared(core) else { return };
    match cluster.servers(SERVER_FRESH).await {
        Ok(servers) => {
            let node = core.node();
            let me = record(core);
            let others: Vec<_> = servers
                .into_iter()
                .filter(|s| s.server_id != node.server_id())
                .collect();
            let mut urls = vec![me.agent_url.clone()];
            urls.extend(
                others
                    .iter()
                    .filter(|s| s.agent_url != me.agent_url)
                    .map(|s| s.agent_url.clone()),
            );
            let mut public = vec![me.advertise_url.clone()];
            public.extend(
                others
                    .iter()
                    .filter(|s| s.advertise_url != me.advertise_url)
                    .map(|s| s.advertise_url.clone()),
            );
            *lock(&node.peers) = urls;
            *lock(&node.public_peers) = public;
        }
        Err(e) => tracing::warn!("reading the registry of servers: {e}"),
    }
}

/// Registration, the lease and presence, each on its own period.
async fn membership(core: Core, stop: CancellationToken) -> WorkerResult {
    let Some(cluster) = shared(&core) else {
        return Ok(());
    };
    let node = core.node();
    let mut renew = tokio::time::interval(RENEW_EVERY);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(flush_period(&core));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the lease was last confirmed: a leader that cannot renew stops leading before the
    // lease can expire, so two servers never both believe they lead.
    let mut confirmed: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = renew.tick() => {
                if let Err(e) = cluster.register_server(&record(&core)).await {
                    tracing::warn!("refreshing this server's registration: {e}");
                }
                refresh_peers(&core).await;
                match cluster.hold_lease(LEADER_LEASE, node.server_id(), LEASE_TTL).await {
                    Ok(true) => {
                        confirmed = Some(Instant::now());
                        node.set_leads(true);
                    }
                    Ok(false) => {
                        confirmed = None;
                        node.set_leads(false);
                    }
                    Err(e) => {
                        tracing::warn!("renewing the lease of the background work: {e}");
                        if confirmed.is_none_or(|t| t.elapsed() + RENEW_EVERY * 2 >= LEASE_TTL) {
                            node.set_leads(false);
                        }
                    }
                }
            }
            _ = flush.tick() => {
                let seen = core.presence().take_seen();
                if !seen.is_empty()
                    && let Err(e) = cluster.record_presence(node.server_id(), &seen).await
                {
                    tracing::warn!(agents = seen.len(), "recording agents' presence: {e}");
                    core.presence().unflushed(seen);
                }
            }
        }
    }
}

/// Reads committed events after the last one broadcast, in sequence order, whenever poked
/// (a local commit, or another server's notification).
async fn pump(core: Core, stop: CancellationToken) -> WorkerResult {
    let backend = core.store().backend().clone();
    let mut last = backend
        .latest_events(None, 1)
        .await
        .map_err(|e| e.to_string())?
        .last()
        .map_or(0, |e| e.seq);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = core.node().pump.notified() => {}
        }
        loop {
            let page = match backend
                .events_after(None, last, crate::core::events::PUMP_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!("reading events to broadcast: {e}");
                    // Try again shortly: the next poke may be a while.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    core.node().poke_events();
                    break;
                }
            };
            if let Some(e) = page.last() {
                last = e.seq;
            }
            core.events().broadcast(&page);
            if page.len() < crate::core::events::PUMP_PAGE as usize {
                break;
            }
        }
    }
}

/// Listens for the other servers' notifications, for as long as the server runs, catching up
/// whenever the connection was lost.
async fn listen(core: Core, stop: CancellationToken) -> WorkerResult {
    let Some(cluster) = shared(&core) else {
        return Ok(());
    };
    let mut listener = cluster
        .listen(&[WAKE, EVENTS, KEYS, MACHINES])
        .await
        .map_err(|e| format!("listening for the other servers: {e}"))?;
    // Anything sent before the subscription is in the tables.
    catch_up(&core);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            n = listener.next() => n,
        };
        match next {
            Ok(Some(n)) => handle(&core, &n.channel, &n.payload),
            Ok(None) => {
                tracing::warn!("the notification connection was lost and made again; catching up");
                catch_up(&core);
            }
            // The supervisor starts the listener again (and it catches up then).
            Err(e) => return Err(format!("notification connection: {e}")),
        }
    }
}

/// After notifications may have been missed: events are read again, every waiting poll checks
/// its commands, cached keys are read again from the store.
fn catch_up(core: &Core) {
    core.node().poke_events();
    core.presence().wake_all();
    core.keys().forget_all();
}

fn handle(core: &Core, channel: &str, payload: &str) {
    match channel {
        WAKE => {
            for id in payload.split(',').filter(|s| !s.is_empty()) {
                core.presence().notify_waiting(id);
            }
        }
        EVENTS => core.node().poke_events(),
        KEYS => core.keys().forget(payload),
        MACHINES => match serde_json::from_str::<MachineWork>(payload) {
            Ok(work) if work.server == core.node().server_id() => machines::run_here(core, &work),
            Ok(_) => {}
            Err(e) => tracing::warn!("unreadable machine work {payload:?}: {e}"),
        },
        _ => {}
    }
}

/// Splits instance IDs into [`WAKE`] payloads within the notification size limit.
pub fn wake_payloads(ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        if !cur.is_empty() && cur.len() + 1 + id.len() > opsworks_store::cluster::MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(',');
        }
        cur.push_str(id);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_payloads_stay_under_the_limit_and_keep_every_id() {
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("{i:08}-0000-0000-0000-000000000000"))
            .collect();
        let payloads = wake_payloads(&ids);
        assert!(payloads.len() > 1);
        assert!(
            payloads
                .iter()
                .all(|p| p.len() <= opsworks_store::cluster::MAX_PAYLOAD)
        );
        let back: Vec<String> = payloads
            .iter()
            .flat_map(|p| p.split(',').map(str::to_string))
            .collect();
        assert_eq!(back, ids);
        assert!(wake_payloads(&[]).is_empty());
    }

    #[test]
    fn a_data_dir_keeps_its_server_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = Node::open(dir.path(), true).unwrap();
        let b = Node::open(dir.path(), true).unwrap();
        assert_eq!(a.server_id(), b.server_id());
        assert!(
            !a.leads(),
            "a server on a shared database leads only once it holds the lease"
        );
        assert!(
            Node::open(tempfile::tempdir().unwrap().path(), false)
                .unwrap()
                .leads()
        );
    }
}
