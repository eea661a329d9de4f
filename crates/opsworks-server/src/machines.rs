//! Running instances on machines: StartInstance provisions one through the instance provider and
//! the agent inside takes over; StopInstance runs Shutdown, then stops the machine.
//!
//! Every status change goes through `ops::instances::change_status`; this module only decides when.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::{InstanceEvent, InstanceStatus};
use opsworks_sandbox::{FileSpec, MachineSpec, MainProcess, Provider, RootDevice};
use opsworks_store::{Filter, Kind};

use crate::App;
use crate::agents::INSTANCE_PRINCIPAL;
use crate::lifecycle;
use crate::ops::catalog::record_service_error;
use crate::ops::doc_str as s;
use crate::ops::instances::change_status;
use crate::ops::{apply, list, load, put};

/// Where the agent's credential is placed inside a machine.
pub const AGENT_CREDENTIALS: &str = "/etc/opsworks/agent-credentials.json";

/// The agent's state dir inside a machine.
pub const AGENT_STATE_DIR: &str = "/var/lib/opsworks-agent";

/// The machines this server runs instances on.
#[derive(Clone)]
pub struct Machines {
    provider: Arc<dyn Provider>,
    /// The URL agents reach the server at (the provider's network gateway).
    agent_url: String,
    /// The program and leading arguments that run the agent (`opsworks agent`).
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

    /// Points the machines' package managers (apt) at the proxy at `url` ([`crate::proxy`]).
    pub fn with_package_proxy(mut self, url: String) -> Self {
        self.package_proxy = Some(url);
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }
}

/// apt's configuration inside a machine naming the package proxy.
const APT_PROXY_CONF: &str = "/etc/apt/apt.conf.d/80opsworks-proxy";

/// Starts an instance that StartInstance moved to `requested`: in the background, provision its
/// machine with a fresh credential and the agent; Setup follows when the machine has booted.
/// Without machines the instance stays `requested` (the server only records intent).
pub fn launch(app: &App, instance_id: &str) {
    let Some(machines) = app.machines().cloned() else {
        tracing::info!(
            instance_id,
            "no instance provider: the instance stays requested"
        );
        return;
    };
    let (a, id) = (app.clone(), instance_id.to_string());
    let work = async move { provision(&a, &machines, &id).await };
    in_background(
        app,
        instance_id,
        "start_failed",
        Some(InstanceEvent::ProvisionFailed),
        work,
    );
}

/// Runs a machine operation in the background. A failure is logged, moves the instance by
/// `on_failure` when given, and is recorded as a service error of type `kind`.
fn in_background(
    app: &App,
    instance_id: &str,
    kind: &'static str,
    on_failure: Option<InstanceEvent>,
    work: impl Future<Output = Result<(), ApiError>> + Send + 'static,
) {
    let (app, id) = (app.clone(), instance_id.to_string());
    tokio::spawn(async move {
        let Err(e) = work.await else { return };
        tracing::warn!(instance_id = id, kind, "{e}");
        if let Some(event) = on_failure {
            let _ = change_status(&app, &id, event).await;
        }
        if let Ok(Some(inst)) = app.store().get(Kind::Instance, &id).await {
            let _ =
                record_service_error(&app, s(&inst, "StackId"), Some(&id), kind, &e.to_string())
                    .await;
        }
    });
}

async fn provision(app: &App, machines: &Machines, id: &str) -> Result<(), ApiError> {
    change_status(app, id, InstanceEvent::Provisioning).await?;
    boot_machine(app, machines, id).await?;
    change_status(app, id, InstanceEvent::Booted).await?;
    lifecycle::booted(app, id).await
}

/// Boots the instance's machine with a fresh credential and the agent, and records its addresses.
async fn boot_machine(app: &App, machines: &Machines, id: &str) -> Result<(), ApiError> {
    let inst = load(app, Kind::Instance, "instance", id).await?;
    let principal = format!("{INSTANCE_PRINCIPAL}{id}");
    let internal = |e: crate::ServerError| ApiError::Internal(e.to_string());
    app.keys()
        .revoke(app.store(), &principal)
        .await
        .map_err(internal)?;
    let (akid, secret) = app
        .keys()
        .issue(app.store(), &principal)
        .await
        .map_err(internal)?;
    let credentials = json!({"access_key_id": akid, "secret_access_key": secret}).to_string();
    let root = if s(&inst, "RootDeviceType") == "ebs" {
        RootDevice::Ebs
    } else {
        RootDevice::InstanceStore
    };
    let main = MainProcess::new(
        machines.agent_program.clone(),
        [
            "agent",
            "--server",
            machines.agent_url.as_str(),
            "--instance-id",
            id,
            "--credentials",
            AGENT_CREDENTIALS,
            "--state-dir",
            AGENT_STATE_DIR,
        ],
    );
    let mut spec = MachineSpec::new(id, s(&inst, "Hostname"), root, main);
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
    let machine = machines
        .provider
        .provision(spec)
        .await
        .map_err(|e| ApiError::Internal(format!("{e}")))?;
    let _guard = app.write_lock().await;
    let mut inst = load(app, Kind::Instance, "instance", id).await?;
    let ip = machine.private_ip.to_string();
    inst["PrivateIp"] = json!(ip);
    inst["PublicIp"] = json!(ip);
    inst["PrivateDns"] = json!(s(&inst, "Hostname"));
    inst["Ec2InstanceId"] = json!(format!("local-{}", &id[..8.min(id.len())]));
    let stack = s(&inst, "StackId").to_string();
    apply(app, vec![put(Kind::Instance, id, &stack, None, inst)]).await
}

/// Reboots an instance that RebootInstance moved to `rebooting`: its machine stops and boots again
/// (an `ebs` disk is kept); when the agent says hello again the instance is back `online`. A soft
/// reboot fires no lifecycle event, as in the original.
pub fn reboot(app: &App, instance_id: &str) {
    let Some(machines) = app.machines().cloned() else {
        tracing::info!(instance_id, "no instance provider: nothing to reboot");
        return;
    };
    let (a, id) = (app.clone(), instance_id.to_string());
    let work = async move {
        machines
            .provider
            .stop(&id, Duration::from_secs(10))
            .await
            .map_err(|e| ApiError::Internal(format!("{e}")))?;
        boot_machine(&a, &machines, &id).await
    };
    in_background(app, instance_id, "reboot_failed", None, work);
}

/// Heals an instance whose agent went silent: it stops (no Shutdown: nothing would run it) and
/// starts again through the same path as StartInstance — a fresh machine for `instance-store`,
/// the same disk for `ebs` — and Configure runs on the stack when it is back online.
pub fn heal(app: &App, instance_id: &str) {
    let Some(machines) = app.machines().cloned() else {
        return;
    };
    let (a, id) = (app.clone(), instance_id.to_string());
    let work = async move {
        change_status(&a, &id, InstanceEvent::Stop).await?;
        stop(&a, &id, false).await?;
        change_status(&a, &id, InstanceEvent::Start).await?;
        provision(&a, &machines, &id).await
    };
    in_background(app, instance_id, "auto_healing_failed", None, work);
}

/// Stops an instance that StopInstance moved to `stopping`: Shutdown runs (bounded by the
/// layers' shutdown timeout) when an agent is there to run it, then the machine stops, the
/// instance is `stopped`, and the stack's other instances Configure.
pub fn halt(app: &App, instance_id: &str, had_agent: bool) {
    let (a, id) = (app.clone(), instance_id.to_string());
    let work = async move { stop(&a, &id, had_agent).await };
    in_background(
        app,
        instance_id,
        "stop_failed",
        Some(InstanceEvent::StopFailed),
        work,
    );
}

async fn stop(app: &App, id: &str, had_agent: bool) -> Result<(), ApiError> {
    let inst = load(app, Kind::Instance, "instance", id).await?;
    let stack_id = s(&inst, "StackId").to_string();
    if had_agent && app.machines().is_some() {
        let deployment =
            lifecycle::create_deployment(app, &stack_id, "shutdown", &[id.to_string()], "shutdown")
                .await?;
        change_status(app, id, InstanceEvent::ShutdownStarted).await?;
        let timeout = shutdown_timeout(app, &inst).await? + Duration::from_secs(10);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let cmds = list(app, Kind::Command, Filter::Parent(&deployment)).await?;
            if cmds.iter().all(|c| s(c, "Status") != "pending")
                || tokio::time::Instant::now() >= deadline
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if let Some(m) = app.machines() {
        m.provider
            .stop(id, Duration::from_secs(10))
            .await
            .map_err(|e| ApiError::Internal(format!("{e}")))?;
    }
    app.keys()
        .revoke(app.store(), &format!("{INSTANCE_PRINCIPAL}{id}"))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    {
        let _guard = app.write_lock().await;
        crate::ops::deployments::skip_pending_commands_locked(app, &stack_id, id).await?;
    }
    let was_online = list(app, Kind::Transition, Filter::Parent(id))
        .await?
        .iter()
        .rev()
        .take_while(|t| s(t, "To") != InstanceStatus::Stopped.as_str())
        .any(|t| s(t, "To") == InstanceStatus::Online.as_str());
    change_status(app, id, InstanceEvent::Halted).await?;
    if was_online {
        lifecycle::configure_stack(app, &stack_id).await?;
    }
    Ok(())
}

async fn shutdown_timeout(app: &App, inst: &Value) -> Result<Duration, ApiError> {
    let ids: Vec<String> = inst
        .get("LayerIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let layers = list(app, Kind::Layer, Filter::Ids(&ids)).await?;
    let secs = layers
        .iter()
        .filter_map(|l| {
            l.pointer("/LifecycleEventConfiguration/Shutdown/ExecutionTimeout")
                .and_then(Value::as_u64)
        })
        .max()
        .unwrap_or(120);
    Ok(Duration::from_secs(secs))
}

/// Removes an instance's machine without trace (DeleteInstance).
pub async fn destroy(app: &App, instance_id: &str) -> Result<(), ApiError> {
    if let Some(m) = app.machines() {
        m.provider
            .destroy(instance_id)
            .await
            .map_err(|e| ApiError::Internal(format!("{e}")))?;
    }
    Ok(())
}
