//! The machine-side commands of registration — `opsworks agent-install`, `agent-uninstall` and
//! `agent-guard` — and the preconfig file `aws opsworks register` writes for the installer's
//! `boot-registration`: one `:key: <JSON value>` line per parameter (the stack's provisioning
//! parameters, the IAM user's key it created, hostname and address overrides).
//!
//! With a preconfig the installer registers the machine itself (RegisterInstance, signed with the
//! preconfig's key, which stays in the preconfig the CLI deletes afterwards), then installs the
//! agent with the instance's own key the server answered.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::install::{self, InstallError, Layout, Plan};
use crate::register::api::{ApiFailure, Credentials, OpsWorks};

/// Arguments of `opsworks agent-install`.
#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    /// Read the plan (server, instance, the instance's key) as JSON from this file, `-` for
    /// standard input (what `opsworks register` sends).
    #[arg(
        long,
        conflicts_with = "preconfig",
        required_unless_present = "preconfig"
    )]
    pub plan: Option<PathBuf>,
    /// Register the machine from the preconfig `aws opsworks register` wrote, then install.
    #[arg(long)]
    pub preconfig: Option<PathBuf>,
}

/// Arguments of `opsworks agent-guard`.
#[derive(Debug, Clone, clap::Args)]
pub struct GuardArgs {
    /// The installation whose pending update is guarded.
    #[arg(long = "install-dir", default_value = install::INSTALL_DIR)]
    pub install_dir: PathBuf,
}

fn say(text: &str) {
    println!("{text}");
}

/// Reads a preconfig: `:key: <JSON>` lines.
pub fn parse(text: &str) -> Result<BTreeMap<String, Value>, InstallError> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            InstallError::Invalid(format!(
                "preconfig line {}: expected `:key: <JSON value>`",
                n + 1
            ))
        };
        let rest = line.strip_prefix(':').ok_or_else(bad)?;
        let (key, value) = rest.split_once(": ").ok_or_else(bad)?;
        let value: Value = serde_json::from_str(value.trim()).map_err(|_| bad())?;
        out.insert(key.trim().to_string(), value);
    }
    Ok(out)
}

fn text<'a>(p: &'a BTreeMap<String, Value>, key: &str) -> Option<&'a str> {
    p.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Registers this machine from a preconfig: RegisterInstance with its key, hostname (or the
/// machine's), addresses (or the machine's) and OS; answers the installer's plan.
pub async fn register_from(params: &BTreeMap<String, Value>) -> Result<Plan, InstallError> {
    let need = |key: &str| {
        text(params, key)
            .map(str::to_string)
            .ok_or_else(|| InstallError::Invalid(format!("the preconfig has no {key}")))
    };
    let server = need("ops_works_endpoint")?;
    let stack_id = need("stack_id")?;
    let creds = Credentials {
        access_key_id: need("access_key_id")?,
        secret_access_key: need("secret_access_key")?,
    };
    install::check_reachable(&server).await?;
    let region = text(params, "ops_works_region")
        .or_else(|| text(params, "stack_region"))
        .unwrap_or("us-east-1")
        .to_string();
    let api = OpsWorks::new(&server, creds, region).map_err(InstallError::Invalid)?;
    let machine = crate::facts::hostname();
    let hostname = text(params, "hostname")
        .map(str::to_string)
        .unwrap_or_else(|| machine.split('.').next().unwrap_or("").to_ascii_lowercase());
    let addresses = crate::facts::addresses();
    let private = text(params, "private_ip")
        .map(str::to_string)
        .or_else(|| addresses.first().cloned());
    let public = text(params, "public_ip")
        .map(str::to_string)
        .or_else(|| private.clone());
    let os = crate::facts::reported_os();
    let class = if params.get("import").and_then(Value::as_bool) == Some(true) {
        "ec2"
    } else {
        "on-premises"
    };
    let document = json!({
        "hostname": hostname,
        "architecture": std::env::consts::ARCH,
        "os": {"family": os.family, "name": os.name, "version": os.version},
        "infrastructure_class": class,
    });
    let mut request = json!({
        "StackId": stack_id,
        "Hostname": hostname,
        "InstanceIdentity": {"Document": document.to_string()},
    });
    if let Some(ip) = &private {
        request["PrivateIp"] = json!(ip);
    }
    if let Some(ip) = &public {
        request["PublicIp"] = json!(ip);
    }
    let answer = api
        .call("RegisterInstance", &request)
        .await
        .map_err(|e| match e {
            ApiFailure::Unreachable(why) => InstallError::Unreachable {
                server: server.clone(),
                why,
            },
            other => InstallError::Refused(other.to_string()),
        })?;
    let creds = &answer[opsworks_protocol::REGISTERED_CREDENTIALS];
    let field = |v: &Value| v.as_str().map(str::to_string);
    match (
        field(&answer["InstanceId"]),
        field(&creds["AccessKeyId"]),
        field(&creds["SecretAccessKey"]),
    ) {
        (Some(instance_id), Some(access_key_id), Some(secret_access_key)) => {
            say(&format!(
                "registered this machine as instance {instance_id} ({hostname}) in stack {stack_id}"
            ));
            Ok(Plan {
                server,
                stack_id,
                instance_id,
                hostname,
                access_key_id,
                secret_access_key,
            })
        }
        _ => Err(InstallError::Refused(
            "the server's answer carries no key for the instance".into(),
        )),
    }
}

/// `opsworks agent-install`: installs the agent from a plan, or registers the machine from a
/// preconfig and installs it. Errors are one line on standard error, for `opsworks register`.
pub async fn run_install(args: InstallArgs) -> Result<(), InstallError> {
    let layout = Layout::default();
    let plan = match (&args.plan, &args.preconfig) {
        (Some(path), _) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(|e| InstallError::Invalid(format!("reading the plan: {e}")))?;
            } else {
                text = std::fs::read_to_string(path).map_err(|e| {
                    InstallError::Invalid(format!("reading {}: {e}", path.display()))
                })?;
            }
            let plan: Plan = serde_json::from_str(&text)
                .map_err(|e| InstallError::Invalid(format!("the plan is not valid: {e}")))?;
            install::check_free(&layout)?;
            install::check_reachable(&plan.server).await?;
            plan
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| InstallError::Invalid(format!("reading {}: {e}", path.display())))?;
            let params = parse(&text)?;
            // Refused before the server records anything.
            install::check_free(&layout)?;
            let plan = register_from(&params).await?;
            if let Err(e) = install::install(&layout, &plan, say).await {
                return Err(InstallError::Invalid(format!(
                    "{e}\n(instance {} stays on the server as registering: remove it with aws opsworks deregister-instance --instance-id {})",
                    plan.instance_id, plan.instance_id
                )));
            }
            say(&format!(
                "the agent of instance {} runs; the machine is registered",
                plan.instance_id
            ));
            return Ok(());
        }
        (None, None) => return Err(InstallError::Invalid("give --plan or --preconfig".into())),
    };
    install::install(&layout, &plan, say).await
}

/// `opsworks agent-uninstall`.
pub fn run_uninstall() -> Result<(), InstallError> {
    install::uninstall(&Layout::default(), say)?;
    say("the agent is removed; the machine keeps running, with its files");
    Ok(())
}

/// `opsworks agent-guard`.
pub fn run_guard(args: GuardArgs) -> anyhow::Result<()> {
    let restart = || -> anyhow::Result<()> {
        use opsworks_host::service::{self, Backend};
        if service::backend() == Backend::Systemd {
            // A release that crashed at once may have hit the unit's start limit: clear it, or
            // systemd refuses to start the old one too.
            let _ = std::process::Command::new("systemctl")
                .args(["reset-failed", install::SERVICE])
                .status();
        }
        service::restart(install::SERVICE, None)?;
        Ok(())
    };
    crate::update::guard(&args.install_dir, &restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_s_preconfig_reads_back() {
        // As `aws opsworks register` writes it: sorted `:key: json.dumps(value)` lines.
        let text = ":access_key_id: \"AKIA1\"\n:hostname: \"edge\"\n:import: false\n:ops_works_endpoint: \"http://10.0.0.1:9730\"\n:secret_access_key: \"s3cr3t\"\n:stack_id: \"st-1\"\n:wait_between_runs: \"0\"";
        let p = parse(text).unwrap();
        assert_eq!(text_of(&p, "hostname"), Some("edge"));
        assert_eq!(p["import"], json!(false));
        assert_eq!(
            text_of(&p, "ops_works_endpoint"),
            Some("http://10.0.0.1:9730")
        );
        assert!(parse("stack_id: x").is_err());
        assert!(parse(":stack_id: unquoted").is_err());
    }

    fn text_of<'a>(p: &'a BTreeMap<String, Value>, k: &str) -> Option<&'a str> {
        text(p, k)
    }
}
