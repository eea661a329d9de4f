//! Running instances on machines: StartInstance provisions one through the instance provider and
//! the agent inside takes over; StopInstance runs Shutdown, then stops the machine.
//!
//! Every status change goes through `instances::change_status`; this module only decides when.
//! Machine work runs in the background as tracked tasks ([`Core::spawn`]).
//!
//! With several servers on one database, an instance records the server whose host runs its
//! machine (`_Server`); work on the machine asked of another server goes to that one
//! ([`cluster::forward`]), which runs it here ([`run_here`]). A server that comes back re-adopts
//! its machines ([`readopt`]): they kept running while it was away.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opsworks_model::deployment::CommandStatus;
use opsworks_model::resource::{Command, Instance, Layer, LifecycleStep, RootDeviceType};
use opsworks_model::{CommandName, InstanceEvent};
use opsworks_sandbox::{FileSpec, MachineSpec, MainProcess, Provider, RootDevice};
use opsworks_store::Filter;

use crate::core::cluster::{self, MachineOp, MachineWork};
use crate::core::commands::{self, NewDeployment};
use crate::core::instances::{change_status, change_status_now, was_online_since_stopped};
use crate::core::{Core, CoreError, CoreResult, elastic_ips, lifecycle, service_errors, volumes};

/// Where the agent's credential is placed inside a machine.
pub const AGENT_CREDENTIALS: &str = "/etc/opsworks/agent-credentials.json";

/// The agent's state dir inside a machine.
pub const AGENT_STATE_DIR: &str = "/var/lib/opsworks-agent";

/// The prefix of the principal of an instance's key: `instance:<instance id>`.
pub const INSTANCE_PRINCIPAL: &str = "instance:";

/// The principal of an instance's own key.
pub fn instance_principal(instance_id: &str) -> String {
    format!("{INSTANCE_PRINCIPAL}{instance_id}")
}

/// The machines this server runs instances on.
#[derive(Clone)]
pub struct Machines {
    provider: Arc<dyn Provider>,
    /// The URL agents reach the server at (the provider's network gateway).
    agent_url: String,
    /// The program that runs the agent (`opsworks agent`).
    agent_program: std::path::PathBuf,
    /// Host paths no machine may see (the data dir).
    hidden: Vec<std::path::PathBuf>,
    /// The package proxy machines' package managers go through (`http://gateway:port`), if any.
    package_proxy: Option<String>,
}

impl Machines {
    /// Machines from `provider`, whose agents reach the server at `agent_url` and run
    /// `agent_program agent ...`.
    pub fn new(
        provider: Arc<dyn Provider>,
        agent_url: String,
        agent_program: std::path::PathBuf,
        hidden: Vec<std::path::PathBuf>,
    ) -> Self {
        Self {
            provider,
            agent_url,
            agent_program,
            hidden,
            package_proxy: None,
        }
    }

    /// Points the machines' package managers (apt) at the proxy at `url`.
    pub fn with_package_proxy(mut self, url: String) -> Self {
        self.package_proxy = Some(url);
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }
}

fn machine_error(e: impl std::fmt::Display) -> CoreError {
    CoreError::Machine(e.to_string())
}

/// apt's configuration inside a machine naming the package proxy.
const APT_PROXY_CONF: &str = "/etc/apt/apt.conf.d/80opsworks-proxy";

/// Whether machine work for the instance goes to another server (and was sent there): the one
/// whose host runs its machine, while it is alive.
async fn forwarded(core: &Core, instance_id: &str, op: MachineOp) -> CoreResult<bool> {
    if !core.node().shared() {
        return Ok(false);
    }
    let Some(inst) = core.find::<Instance>(instance_id).await? else {
        return Ok(false);
    };
    match cluster::machine_owner(core, inst.server.as_deref(), op).await? {
        Some(server) => {
            let work = MachineWork {
                server,
                instance: instance_id.to_string(),
                op,
            };
            cluster::forward(core, &work).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Does machine work another server sent (this server runs the machine).
pub fn run_here(core: &Core, work: &MachineWork) {
    let id = work.instance.as_str();
    match work.op {
        MachineOp::Launch => launch_here(core, id),
        MachineOp::Halt { had_agent } => halt_here(core, id, had_agent),
        MachineOp::Reboot => reboot_here(core, id),
        MachineOp::Heal => heal_here(core, id),
        MachineOp::Destroy => {
            let (c, id) = (core.clone(), id.to_string());
            core.spawn(async move {
                if let Err(e) = destroy_here(&c, &id).await {
                    tracing::warn!(instance_id = id, "removing the machine: {e}");
                }
            });
        }
    }
}

/// Starts an instance that StartInstance moved to `requested`: in the background, provision its
/// machine with a fresh credential and the agent; Setup follows when the machine has booted.
/// Without machines the instance stays `requested` (the server only records intent). An
/// instance whose machine a live server of the cluster runs (its `ebs` disk is there) starts
/// there.
pub fn launch(core: &Core, instance_id: &str) {
    let (c, id) = (core.clone(), instance_id.to_string());
    let work = async move {
        if forwarded(&c, &id, MachineOp::Launch).await? {
            return Ok(());
        }
        start_here(&c, &id).await
    };
    in_background(
        core,
        instance_id,
        "start_failed",
        Some(InstanceEvent::ProvisionFailed),
        work,
    );
}

fn launch_here(core: &Core, instance_id: &str) {
    let (c, id) = (core.clone(), instance_id.to_string());
    let work = async move { start_here(&c, &id).await };
    in_background(
        core,
        instance_id,
        "start_failed",
        Some(InstanceEvent::ProvisionFailed),
        work,
    );
}

/// Runs a machine operation in the background. A failure is logged, moves the instance by
/// `on_failure` when given, and is recorded as a service error of type `kind`.
fn in_background(
    core: &Core,
    instance_id: &str,
    kind: &'static str,
    on_failure: Option<InstanceEvent>,
    work: impl Future<Output = CoreResult<()>> + Send + 'static,
) {
    let (c, id) = (core.clone(), instance_id.to_string());
    core.spawn(async move {
        let Err(e) = work.await else { return };
        tracing::warn!(instance_id = id, kind, "{e}");
        let recorded = async {
            let mut w = c.write().await?;
            let Some(inst) = w.find::<Instance>(&id).await? else {
                return Ok::<_, CoreError>(());
            };
            if let Some(event) = on_failure {
                // The instance may have moved meanwhile (a stop); then only the error is kept.
                let _ = change_status(&mut w, &id, event).await;
            }
            service_errors::record(&mut w, &inst.stack_id, Some(&id), kind, &e.to_string()).await?;
            w.commit().await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(instance_id = id, "recording a machine failure: {e}");
        }
    });
}

async fn start_here(core: &Core, id: &str) -> CoreResult<()> {
    let Some(machines) = core.machines().cloned() else {
        tracing::info!(
            instance_id = id,
            "no instance provider: the instance stays requested"
        );
        return Ok(());
    };
    provision(core, &machines, id).await
}

async fn provision(core: &Core, machines: &Machines, id: &str) -> CoreResult<()> {
    {
        // From here on this server runs the instance's machine.
        let mut w = core.write().await?;
        change_status(&mut w, id, InstanceEvent::Provisioning).await?;
        let mut inst: Instance = w.get(id).await?;
        inst.server = Some(core.node().server_id().to_string());
        w.put(&inst).await?;
        w.commit().await?;
    }
    boot_machine(core, machines, id).await?;
    let mut w = core.write().await?;
    change_status(&mut w, id, InstanceEvent::Booted).await?;
    lifecycle::booted(&mut w, id).await?;
    w.commit().await
}

/// Boots the instance's machine with a fresh credential and the agent, and records its addresses.
async fn boot_machine(core: &Core, machines: &Machines, id: &str) -> CoreResult<()> {
    let inst = core.get::<Instance>(id).await?;
    let principal = instance_principal(id);
    let (akid, secret) = {
        let mut w = core.write().await?;
        core.keys().revoke(&mut w, &principal).await?;
        let issued = core.keys().issue(&mut w, &principal).await?;
        w.commit().await?;
        issued
    };
    let credentials =
        serde_json::json!({"access_key_id": akid, "secret_access_key": secret}).to_string();
    let root = match inst.root_device_type {
        RootDeviceType::Ebs => RootDevice::Ebs,
        RootDeviceType::InstanceStore => RootDevice::InstanceStore,
    };
    // Every server of the control plane, this one first: the agent moves on when it stops.
    let peers = core.node().peers();
    let servers = if peers.is_empty() {
        machines.agent_url.clone()
    } else {
        peers.join(",")
    };
    let main = MainProcess::new(
        machines.agent_program.clone(),
        [
            "agent",
            "--server",
            servers.as_str(),
            "--instance-id",
            id,
            "--credentials",
            AGENT_CREDENTIALS,
            "--state-dir",
            AGENT_STATE_DIR,
        ],
    );
    let mut spec = MachineSpec::new(id, &inst.hostname, root, main);
    spec.files.push(FileSpec {
        path: AGENT_CREDENTIALS.into(),
        contents: credentials.into_bytes(),
        mode: 0o600,
    });
    if let Some(proxy) = &machines.package_proxy {
        // Machines have no route out: apt reaches the mirrors through the server's proxy.
        spec.files.push(FileSpec {
            path: APT_PROXY_CONF.into(),
            contents: format!(
                "// Written by OpsWorks: this machine reaches package mirrors through the host.\n\
                 Acquire::http::Proxy \"{proxy}\";\nAcquire::https::Proxy \"{proxy}\";\n"
            )
            .into_bytes(),
            mode: 0o644,
        });
    }
    spec.hidden_paths = machines.hidden.clone();
    // The machine gets its instance type's vCPUs and memory as cgroup limits.
    let size = opsworks_model::instance_types::size_of(&inst.instance_type);
    spec.limits = Some(opsworks_sandbox::Limits::new(size.vcpus, size.memory_mib));
    // Its layers' volumes at its first boot, then every volume assigned to it, mounted.
    volumes::for_layers(core, &inst).await?;
    spec.disks = volumes::disks_for(core, id).await?;
    match elastic_ips::for_boot(core, &inst).await? {
        Ok(ip) => spec.addresses.extend(ip),
        Err(why) => {
            service_errors::record_now(core, &inst.stack_id, Some(id), "elastic_ip", &why).await?;
        }
    }
    let machine = machines
        .provider
        .provision(spec)
        .await
        .map_err(machine_error)?;
    let mut w = core.write().await?;
    let mut inst: Instance = w.get(id).await?;
    inst.private_ip = Some(machine.private_ip.to_string());
    inst.public_ip = elastic_ips::public_ip(&inst);
    inst.private_dns = Some(inst.hostname.clone());
    inst.ec2_instance_id = Some(format!("local-{}", &id[..8.min(id.len())]));
    w.put(&inst).await?;
    w.commit().await?;
    // An association made while it booted reaches it now.
    if let Err(e) = elastic_ips::after_boot(core, id).await {
        tracing::warn!(
            instance_id = id,
            "putting the Elastic IP on the machine failed: {e}"
        );
    }
    Ok(())
}

/// Reboots an instance that RebootInstance moved to `rebooting`: its machine stops and boots again
/// (an `ebs` disk is kept); when the agent says hello again the instance is back `online`. A soft
/// reboot fires no lifecycle event, as in the original.
pub fn reboot(core: &Core, instance_id: &str) {
    route(core, instance_id, MachineOp::Reboot, reboot_here);
}

/// Runs `here` unless the instance's machine runs on another live server, which gets `op`.
fn route(core: &Core, instance_id: &str, op: MachineOp, here: fn(&Core, &str)) {
    if !core.node().shared() {
        return here(core, instance_id);
    }
    let (c, id) = (core.clone(), instance_id.to_string());
    core.spawn(async move {
        match forwarded(&c, &id, op).await {
            Ok(true) => {}
            Ok(false) => here(&c, &id),
            Err(e) => tracing::warn!(
                instance_id = id,
                ?op,
                "sending machine work to its server: {e}"
            ),
        }
    });
}

fn reboot_here(core: &Core, instance_id: &str) {
    let Some(machines) = core.machines().cloned() else {
        tracing::info!(instance_id, "no instance provider: nothing to reboot");
        return;
    };
    let (c, id) = (core.clone(), instance_id.to_string());
    let work = async move {
        machines
            .provider
            .stop(&id, Duration::from_secs(10))
            .await
            .map_err(machine_error)?;
        boot_machine(&c, &machines, &id).await
    };
    in_background(core, instance_id, "reboot_failed", None, work);
}

/// Heals an instance whose agent went silent: it stops (no Shutdown: nothing would run it) and
/// starts again through the same path as StartInstance — a fresh machine for `instance-store`,
/// the same disk for `ebs` — and Configure runs on the stack when it is back online.
pub fn heal(core: &Core, instance_id: &str) {
    route(core, instance_id, MachineOp::Heal, heal_here);
}

fn heal_here(core: &Core, instance_id: &str) {
    let Some(machines) = core.machines().cloned() else {
        return;
    };
    let (c, id) = (core.clone(), instance_id.to_string());
    let work = async move {
        change_status_now(&c, &id, InstanceEvent::Stop).await?;
        stop(&c, &id, false).await?;
        change_status_now(&c, &id, InstanceEvent::Start).await?;
        provision(&c, &machines, &id).await
    };
    in_background(core, instance_id, "auto_healing_failed", None, work);
}

/// Stops an instance that StopInstance moved to `stopping`: Shutdown runs (bounded by the
/// layers' shutdown timeout) when an agent is there to run it, then the machine stops, the
/// instance is `stopped`, and the stack's other instances Configure.
pub fn halt(core: &Core, instance_id: &str, had_agent: bool) {
    if !core.node().shared() {
        return halt_here(core, instance_id, had_agent);
    }
    let (c, id) = (core.clone(), instance_id.to_string());
    core.spawn(async move {
        match forwarded(&c, &id, MachineOp::Halt { had_agent }).await {
            Ok(true) => {}
            Ok(false) => halt_here(&c, &id, had_agent),
            Err(e) => tracing::warn!(instance_id = id, "sending a stop to its server: {e}"),
        }
    });
}

fn halt_here(core: &Core, instance_id: &str, had_agent: bool) {
    let (c, id) = (core.clone(), instance_id.to_string());
    let work = async move { stop(&c, &id, had_agent).await };
    in_background(
        core,
        instance_id,
        "stop_failed",
        Some(InstanceEvent::StopFailed),
        work,
    );
}

async fn stop(core: &Core, id: &str, had_agent: bool) -> CoreResult<()> {
    let inst = core.get::<Instance>(id).await?;
    let stack_id = inst.stack_id.clone();
    // Out of its load balancers first, its connections drained: no request fails while it stops.
    crate::core::elb::drain_instance(core, id).await;
    if had_agent && core.machines().is_some() {
        let deployment = {
            let mut w = core.write().await?;
            let new =
                NewDeployment::lifecycle(&stack_id, CommandName::Shutdown, LifecycleStep::Shutdown);
            let d = commands::create(&mut w, new, &[id.to_string()]).await?;
            change_status(&mut w, id, InstanceEvent::ShutdownStarted).await?;
            w.commit().await?;
            d
        };
        let timeout = shutdown_timeout(core, &inst).await? + Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let cmds = core.list::<Command>(Filter::Parent(&deployment)).await?;
            if cmds.iter().all(|c| c.status != CommandStatus::Pending)
                || tokio::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if let Some(m) = core.machines() {
        m.provider
            .stop(id, Duration::from_secs(10))
            .await
            .map_err(machine_error)?;
    }
    let mut w = core.write().await?;
    core.keys().revoke(&mut w, &instance_principal(id)).await?;
    commands::skip_pending(&mut w, id).await?;
    let was_online = was_online_since_stopped(&mut w, id).await?;
    change_status(&mut w, id, InstanceEvent::Halted).await?;
    if was_online {
        lifecycle::configure_stack(&mut w, &stack_id).await?;
    }
    w.commit().await
}

pub(crate) async fn shutdown_timeout(core: &Core, inst: &Instance) -> CoreResult<Duration> {
    let layers = core.list::<Layer>(Filter::Ids(&inst.layer_ids)).await?;
    let secs = layers
        .iter()
        .map(|l| l.shutdown_timeout())
        .max()
        .unwrap_or(u64::from(
            opsworks_model::layer::DEFAULT_SHUTDOWN_TIMEOUT_SECS,
        ));
    Ok(Duration::from_secs(secs))
}

/// Removes an instance's machine without trace (DeleteInstance); the server that runs it does,
/// when it is another.
pub async fn destroy(core: &Core, instance_id: &str) -> CoreResult<()> {
    if forwarded(core, instance_id, MachineOp::Destroy).await? {
        return Ok(());
    }
    destroy_here(core, instance_id).await
}

async fn destroy_here(core: &Core, instance_id: &str) -> CoreResult<()> {
    if let Some(m) = core.machines() {
        m.provider
            .destroy(instance_id)
            .await
            .map_err(machine_error)?;
    }
    Ok(())
}

/// At start: the machines this server's host runs are its again. A machine whose instance was
/// deleted, or now runs on another server, while this one was away goes; an instance this server
/// was stopping when it went down is stopped.
pub async fn readopt(core: &Core) -> CoreResult<()> {
    let Some(m) = core.machines() else {
        return Ok(());
    };
    let me = core.node().server_id();
    let mut kept = 0;
    for machine in m.provider.list().await.map_err(machine_error)? {
        // Databases' and load balancers' machines have no instance: their upkeep adopts them.
        if crate::core::appliances::is_appliance(&machine.id) {
            continue;
        }
        let inst = core.find::<Instance>(&machine.id).await?;
        let gone = match &inst {
            None => Some("its instance was deleted".to_string()),
            Some(i) => i
                .server
                .as_deref()
                .filter(|s| *s != me)
                .map(|s| format!("its instance runs on server {s} now")),
        };
        match gone {
            Some(why) => {
                tracing::warn!(machine = machine.id, "removing a machine: {why}");
                m.provider
                    .destroy(&machine.id)
                    .await
                    .map_err(machine_error)?;
            }
            None => kept += 1,
        }
    }
    let stopping: Vec<String> = core
        .list::<Instance>(Filter::All)
        .await?
        .iter()
        .filter(|i| {
            // Registered machines are never the server's to halt.
            i.status == opsworks_model::InstanceStatus::Stopping
                && !i.registered
                && i.server.as_deref().is_none_or(|s| s == me)
        })
        .map(|i| i.instance_id.clone())
        .collect();
    for id in &stopping {
        tracing::info!(
            instance_id = id,
            "finishing a stop this server began before it went down"
        );
        halt_here(core, id, false);
    }
    if kept > 0 {
        tracing::info!(machines = kept, "re-adopted the machines of this host");
    }
    Ok(())
}
