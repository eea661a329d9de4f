//! The one assembly of the control plane: [`Server::start`] opens the state, mounts every route,
//! attaches local machines when asked, starts every background worker, and [`Server::wait`]
//! stops them in order once the shutdown signal comes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::{Instances, ServerConfig};
use crate::core::keys::RootKey;
use crate::core::machines::Machines;
use crate::core::scheduler::{self, AgentMetrics};
use crate::core::workers::{Workers, every};
use crate::core::{
    Core, audit, cluster, elastic_ips, events, keys, machines, metrics, proxy, users, volumes,
    watchdog,
};
use crate::{ServerError, edge};

/// Whether local instances run, and how agents reach the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalInstances {
    /// Not asked for: instances are recorded only.
    Off,
    /// Running: agents reach the server at this URL.
    On {
        /// The URL on the machines' bridge.
        agent_url: String,
        /// Machines of this host that no data dir owned any more, stopped and removed at start.
        reaped: Vec<String>,
    },
    /// Asked for where possible, but this host cannot run them (why).
    Unavailable(String),
}

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running control plane.
pub struct Server {
    core: Core,
    endpoint: String,
    root: RootKey,
    local: LocalInstances,
    workers: Workers,
    http: JoinSet<std::io::Result<()>>,
    stop_http: tokio::sync::watch::Sender<bool>,
    on_shutdown: Vec<Box<dyn FnOnce() + Send>>,
    shutdown: Shutdown,
}

impl Server {
    /// Opens the data dir and the store, serves the API, the agent protocol, events, metrics,
    /// logs and every mount on `listener`, attaches local machines as `config.instances` asks, and
    /// starts the workers. Runs until `shutdown` resolves and [`wait`](Self::wait) is awaited.
    pub async fn start(
        config: ServerConfig,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, ServerError> {
        let (core, root) = Core::open(&config).await?;
        let addr = listener.local_addr().map_err(|source| ServerError::Io {
            path: "listener".into(),
            source,
        })?;
        let endpoint = match &config.advertise_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{addr}"),
        };
        if addr.ip().is_unspecified() && config.advertise_url.is_none() {
            tracing::warn!(%endpoint, "listening on every address: pass --advertise-url with the name clients use, for log links and the other servers");
        }
        core.set_endpoint(&endpoint);
        let mut workers = Workers::default();
        let (stop_http, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut http = JoinSet::new();

        let local = match config.instances {
            Instances::Recorded => LocalInstances::Off,
            wanted => {
                match attach_local_machines(&core, &config, addr.port(), &mut workers).await {
                    Ok((agent_listener, agent_url, reaped)) => {
                        http.spawn(edge::listener::serve(
                            agent_listener,
                            edge::router(core.clone()),
                            stopped(),
                        ));
                        LocalInstances::On { agent_url, reaped }
                    }
                    Err(e) if wanted == Instances::LocalIfPossible => {
                        LocalInstances::Unavailable(e.to_string())
                    }
                    Err(e) => return Err(e),
                }
            }
        };

        let agent_url = match &local {
            LocalInstances::On { agent_url, .. } => agent_url.clone(),
            _ => endpoint.clone(),
        };
        core.node().set_urls(&endpoint, &agent_url);
        cluster::start(&core, &mut workers).await?;
        if let Err(e) = machines::readopt(&core).await {
            tracing::warn!("re-adopting this host's machines: {e}");
        }
        // The host's addresses and disks as the store says: after a restart (or a host reboot)
        // addresses are reserved and placed again, leftovers of a crash removed.
        if let Err(e) = elastic_ips::reconcile(&core).await {
            tracing::warn!("putting Elastic IPs back in place failed: {e}");
        }
        if let Err(e) = volumes::sweep(&core).await {
            tracing::warn!("sweeping volume leftovers failed: {e}");
        }

        let mut router = edge::router(core.clone());
        let mut on_shutdown = Vec::new();
        for mount in &config.mounts {
            let mounted = mount(&core)?;
            router = router.merge(mounted.router);
            on_shutdown.extend(mounted.on_shutdown);
        }
        http.spawn(edge::listener::serve(listener, router, stopped()));
        start_workers(&core, &mut workers);
        // The own build is hashed now, so the first agent to ask for its release does not wait.
        let releases = core.agent_releases().clone();
        core.spawn(async move {
            releases.own().await;
        });
        let database = config.database.as_ref().map_or_else(
            || format!("sqlite://{}", config.data_dir.join("opsworks.db").display()),
            |e| e.to_string(),
        );
        tracing::info!(%endpoint, %database, server_id = core.node().server_id(), data_dir = %config.data_dir.display(), workers = ?workers.names(), "server started");
        Ok(Self {
            core,
            endpoint,
            root,
            local,
            workers,
            http,
            stop_http,
            on_shutdown,
            shutdown: Box::pin(shutdown),
        })
    }

    /// The control plane's state.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The base URL it serves (`http://127.0.0.1:9730`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The root key: generated now, from the environment, or the existing one.
    pub fn root_key(&self) -> &RootKey {
        &self.root
    }

    /// Whether local instances run.
    pub fn local_instances(&self) -> &LocalInstances {
        &self.local
    }

    /// Runs until the shutdown signal, then stops: open streams end, the listeners stop taking
    /// requests and finish the ones in flight, the workers stop (the last started first), and
    /// the background machine work still running is given a moment.
    pub async fn wait(mut self) -> Result<(), ServerError> {
        (&mut self.shutdown).await;
        tracing::info!("server stopping");
        self.core.events().close();
        for hook in self.on_shutdown.drain(..) {
            hook();
        }
        let _ = self.stop_http.send(true);
        let mut result = Ok(());
        while let Some(done) = self.http.join_next().await {
            if let Ok(Err(source)) = done {
                result = Err(ServerError::Io {
                    path: "listener".into(),
                    source,
                });
            }
        }
        self.workers.stop(Duration::from_secs(5)).await;
        // The background work goes to another server at once, not when the lease expires.
        cluster::leave(&self.core).await;
        let tasks = self.core.tasks();
        tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("machine work still running at shutdown was left to finish on its own");
        }
        tracing::info!("server stopped");
        result
    }
}

/// The workers every server runs; on a shared database only the leader's do their work (but
/// each server writes down the uses of keys it saw itself).
fn start_workers(core: &Core, workers: &mut Workers) {
    let c = core.clone();
    workers.spawn("watchdog", move |stop| {
        let c = c.clone();
        async move {
            let period = watchdog::period(&c);
            every("watchdog", period, stop, || async {
                if !c.node().leads() {
                    return Ok(());
                }
                watchdog::check(&c).await
            })
            .await
        }
    });
    let c = core.clone();
    workers.spawn("scheduler", move |stop| {
        let c = c.clone();
        async move {
            let period = c.scheduler_interval();
            // Load-based scaling reads the layers' averages of the agents' metrics.
            every("scheduler", period, stop, || async {
                if !c.node().leads() {
                    return Ok(());
                }
                scheduler::tick(&c, &AgentMetrics, jiff::Timestamp::now())
                    .await
                    .map(drop)
            })
            .await
        }
    });
    let c = core.clone();
    workers.spawn("metrics-maintenance", move |stop| {
        let c = c.clone();
        async move {
            every(
                "metrics-maintenance",
                Duration::from_secs(60),
                stop,
                || async {
                    if !c.node().leads() {
                        return Ok(());
                    }
                    metrics::maintain(&c, jiff::Timestamp::now().as_second()).await
                },
            )
            .await
        }
    });
    let c = core.clone();
    workers.spawn("identity-upkeep", move |stop| {
        let c = c.clone();
        async move {
            // Temporary logins expire within seconds of their time.
            every("identity-upkeep", Duration::from_secs(5), stop, || async {
                if !c.node().leads() {
                    return Ok(());
                }
                users::expire(&c, jiff::Timestamp::now().as_second())
                    .await
                    .map(drop)
            })
            .await
        }
    });
    let c = core.clone();
    workers.spawn("key-last-used", move |stop| {
        let c = c.clone();
        async move {
            // Each write changes the keys' generation (every server reads its keys again), so
            // the keys' last use is written down once a minute; memory answers meanwhile.
            every("key-last-used", Duration::from_secs(60), stop, || {
                keys::write_last_used(&c)
            })
            .await
        }
    });
    let c = core.clone();
    workers.spawn("event-pruning", move |stop| {
        let c = c.clone();
        async move {
            every("event-pruning", Duration::from_secs(300), stop, || async {
                if !c.node().leads() {
                    return Ok(());
                }
                events::prune(&c).await?;
                audit::prune(&c).await.map(drop)
            })
            .await
        }
    });
}

/// Prepares the local provider (reaping the machines of this host whose data dir is gone), the
/// agents' listener on the machines' bridge and the package proxy, and attaches the machines to
/// the core. Returns the agents' listener and URL, and the machines reaped.
async fn attach_local_machines(
    core: &Core,
    config: &ServerConfig,
    port: u16,
    workers: &mut Workers,
) -> Result<(TcpListener, String, Vec<String>), ServerError> {
    use opsworks_sandbox::{LocalConfig, LocalProvider};
    let unavailable = |e: &dyn std::fmt::Display| ServerError::Instances(e.to_string());
    let mut local_config = LocalConfig::new(config.data_dir.join("machines"));
    // Elastic IPs come from addresses no machine is given as its own.
    local_config.network.reserved = Some(config.elastic_ip_pool);
    // The proxy serves the machines only: clients from the bridge's subnet.
    let bridge: Vec<ipnet::IpNet> = local_config.network.subnet().parse().into_iter().collect();
    let provider = LocalProvider::new(local_config).map_err(|e| unavailable(&e))?;
    provider.check_host().map_err(|e| unavailable(&e))?;
    let gateway = provider.prepare().map_err(|e| unavailable(&e))?;
    // Local instances run the host's own OS: that is what they report and what the catalog lists.
    if let Some((name, id, version)) = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| opsworks_model::catalog::from_os_release(&t))
    {
        opsworks_model::catalog::set_local(&name, &id, &version);
    }
    let reaper = provider.clone();
    let reaped = tokio::task::spawn_blocking(move || reaper.reap_orphans())
        .await
        .map_err(|e| unavailable(&e))?
        .map_err(|e| unavailable(&e))?;
    for r in &reaped {
        tracing::warn!("reaped an orphaned local machine: {r}");
    }
    let reaped = reaped.into_iter().map(|r| r.name).collect();
    let listener = match TcpListener::bind((gateway, port)).await {
        Ok(l) => l,
        Err(_) => TcpListener::bind((gateway, 0))
            .await
            .map_err(|e| unavailable(&format!("binding the agents' listener: {e}")))?,
    };
    let local = |l: &TcpListener| {
        l.local_addr()
            .map(|a| format!("http://{a}"))
            .map_err(|e| unavailable(&e))
    };
    let agent_url = local(&listener)?;
    // Machines have no NAT: their package manager reaches the mirrors through this proxy.
    let proxy_listener = TcpListener::bind((gateway, 0))
        .await
        .map_err(|e| unavailable(&format!("binding the machines' package proxy: {e}")))?;
    let proxy_url = local(&proxy_listener)?;
    let proxy_listener = Arc::new(tokio::sync::Mutex::new(Some(proxy_listener)));
    let policy = proxy::Policy {
        clients: bridge,
        allow: config.package_proxy_allow.clone(),
    };
    workers.spawn("package-proxy", move |stop| {
        let slot = proxy_listener.clone();
        let policy = policy.clone();
        async move {
            // The listener is handed to the first run; a restart after a failure has none left.
            let Some(l) = slot.lock().await.take() else {
                return Err("the package proxy's listener is gone".to_string());
            };
            proxy::serve_with(l, policy, stop).await;
            Ok(())
        }
    });
    let program = match &config.agent_program {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| unavailable(&e))?,
    };
    let console_of = provider.clone();
    let appliances = crate::core::appliances::Appliances::new(
        Arc::new(provider.clone()),
        vec![config.data_dir.clone()],
    )
    .with_console_log(Arc::new(move |id: &str| {
        console_of
            .machine_dir_of(id)
            .ok()
            .map(|d| d.join("console.log"))
    }));
    core.set_appliances(appliances);
    let c = core.clone();
    workers.spawn("rds-upkeep", move |stop| {
        let c = c.clone();
        async move {
            every("rds-upkeep", crate::core::rds::upkeep::PERIOD, stop, || {
                crate::core::rds::upkeep::pass(&c)
            })
            .await
        }
    });
    let c = core.clone();
    workers.spawn("elb-upkeep", move |stop| {
        let c = c.clone();
        async move {
            every("elb-upkeep", crate::core::elb::upkeep::PERIOD, stop, || {
                crate::core::elb::upkeep::pass(&c)
            })
            .await
        }
    });
    let machines = Machines::new(
        Arc::new(provider),
        agent_url.clone(),
        program,
        vec![config.data_dir.clone()],
    )
    .with_package_proxy(proxy_url);
    core.set_machines(machines);
    Ok((listener, agent_url, reaped))
}
