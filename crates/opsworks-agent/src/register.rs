//! `opsworks register`: puts a machine — reached over SSH, or this one with `--local` — into a
//! stack as a registered instance, as `aws opsworks register` does, and prints each step.
//!
//! The steps: the stack must exist (DescribeStacks, with the caller's credentials); the machine
//! is looked at without changing anything ([`probe`]: Linux, this executable's architecture, a
//! supported OS, sudo, not registered yet); RegisterInstance records it with its real hostname,
//! addresses and OS and answers the instance's own key; this executable is copied over and runs
//! `opsworks agent-install` as root with that key on its standard input (never on a command line,
//! never the caller's key), which installs and starts the agent and waits for it to report in;
//! the instance is then `registered`. When a step after RegisterInstance fails, the machine is
//! left as it was (the installer removes what it wrote) and the instance is deregistered.

pub mod api;
pub mod probe;
pub mod target;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::install::Plan;
use api::{ApiFailure, Credentials, OpsWorks};

use target::{Ssh, Target, quote};

/// Arguments of `opsworks register`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegisterArgs {
    /// The OpsWorks endpoint (the server's URL, as the machine reaches it too).
    #[arg(long = "endpoint-url")]
    pub endpoint_url: String,
    /// The stack the machine joins.
    #[arg(long = "stack-id")]
    pub stack_id: String,
    /// `on-premises` (default) or `ec2`.
    #[arg(long = "infrastructure-class", default_value = "on-premises", value_parser = ["on-premises", "ec2"])]
    pub infrastructure_class: String,
    /// The hostname in the stack (default: the machine's own, up to its first dot).
    #[arg(long = "override-hostname")]
    pub hostname: Option<String>,
    /// The private IP address in the stack (on-premises only; default: the machine's first).
    #[arg(long = "override-private-ip")]
    pub private_ip: Option<String>,
    /// The public IP address in the stack (on-premises only).
    #[arg(long = "override-public-ip")]
    pub public_ip: Option<String>,
    /// The SSH user (root, or a user who may use sudo without a password).
    #[arg(long = "ssh-username")]
    pub ssh_username: Option<String>,
    /// The SSH private key (default: the SSH client's keys and agent).
    #[arg(long = "ssh-private-key")]
    pub ssh_private_key: Option<PathBuf>,
    /// Register this machine instead of one reached over SSH.
    #[arg(long)]
    pub local: bool,
    /// The machine to register (host name or address), reached over SSH.
    pub host: Option<String>,
}

/// Why registering a machine failed: one clear message each.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The command line is not usable.
    #[error("{0}")]
    Usage(String),
    /// No usable credentials.
    #[error("{0}")]
    Credentials(String),
    /// The endpoint did not answer.
    #[error("cannot reach the OpsWorks endpoint {endpoint}: {detail}")]
    Endpoint {
        /// The URL.
        endpoint: String,
        /// Why.
        detail: String,
    },
    /// The stack does not exist.
    #[error("stack {stack_id} does not exist at {endpoint}")]
    NoStack {
        /// The stack.
        stack_id: String,
        /// The endpoint.
        endpoint: String,
    },
    /// The API refused a call.
    #[error("{operation} failed: {detail}")]
    Api {
        /// The operation.
        operation: &'static str,
        /// The error.
        detail: String,
    },
    /// The host did not answer SSH.
    #[error("cannot reach {host} over SSH: {detail}")]
    Unreachable {
        /// The host.
        host: String,
        /// ssh's message.
        detail: String,
    },
    /// The host refused the key.
    #[error("{destination} refused the SSH key: {detail}")]
    KeyRefused {
        /// `user@host`.
        destination: String,
        /// ssh's message.
        detail: String,
    },
    /// The host's key changed.
    #[error("the SSH host key of {host} could not be verified: {detail}")]
    HostKey {
        /// The host.
        host: String,
        /// ssh's message.
        detail: String,
    },
    /// The user may not become root.
    #[error(
        "cannot become root on {machine} with sudo (the agent installs as root): {detail}; connect as root, or give the user sudo without a password"
    )]
    NoSudo {
        /// The machine.
        machine: String,
        /// sudo's message.
        detail: String,
    },
    /// The OS is not one the agent runs on.
    #[error("{machine} cannot run the agent: {detail}")]
    UnsupportedOs {
        /// The machine.
        machine: String,
        /// What it runs.
        detail: String,
    },
    /// Another architecture.
    #[error(
        "{machine} is {theirs}, but this opsworks executable is built for {ours}: register it with an opsworks built for {theirs}"
    )]
    Architecture {
        /// The machine.
        machine: String,
        /// Its architecture.
        theirs: String,
        /// This executable's.
        ours: String,
    },
    /// The machine is registered already.
    #[error(
        "{machine} is already registered as instance {instance_id} of stack {stack_id} at {server}; deregister it first (aws opsworks deregister-instance --instance-id {instance_id})"
    )]
    AlreadyRegistered {
        /// The machine.
        machine: String,
        /// Its instance.
        instance_id: String,
        /// Its stack.
        stack_id: String,
        /// Its server.
        server: String,
    },
    /// Something on the machine failed.
    #[error("{0}")]
    Machine(String),
    /// Something on this side failed.
    #[error("{0}")]
    Local(String),
}

/// `opsworks agent-version add`: offers `file` to the server's registered machines as agent
/// release `version` (default: what `file --version` prints here). Answers what was added.
pub async fn add_release(
    endpoint: &str,
    file: &std::path::Path,
    version: Option<&str>,
) -> Result<String, RegisterError> {
    let version = match version {
        Some(v) => v.to_string(),
        None => {
            let out = std::process::Command::new(file)
                .arg("--version")
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| {
                    RegisterError::Usage(format!(
                        "cannot run {} --version to find its version ({e}); give --version",
                        file.display()
                    ))
                })?;
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .nth(1)
                .filter(|_| out.status.success())
                .map(str::to_string)
                .ok_or_else(|| {
                    RegisterError::Usage(format!(
                        "{} --version did not print a version; give --version",
                        file.display()
                    ))
                })?
        }
    };
    let bytes = std::fs::read(file)
        .map_err(|e| RegisterError::Usage(format!("cannot read {}: {e}", file.display())))?;
    let (creds, _) = Credentials::resolve().map_err(RegisterError::Credentials)?;
    let api = OpsWorks::new(endpoint, creds, api::region()).map_err(RegisterError::Usage)?;
    let added = api
        .add_release(&version, bytes)
        .await
        .map_err(|e| api_error("adding the agent release", &api, e))?;
    Ok(format!(
        "agent version {} ({}, {} bytes, SHA-256 {}) is offered; name it as a stack's or an instance's AgentVersion",
        added["Version"].as_str().unwrap_or(&version),
        added["Architecture"].as_str().unwrap_or("?"),
        added["Size"],
        added["Sha256"].as_str().unwrap_or("?")
    ))
}

/// Prints one step.
fn say(text: &str) {
    println!("{text}");
}

/// A valid hostname for the stack: letters, digits and dashes, not at either end, at most 63.
fn valid_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 63
        && !h.starts_with('-')
        && !h.ends_with('-')
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_args(args: &RegisterArgs) -> Result<(), RegisterError> {
    let usage = |m: &str| Err(RegisterError::Usage(m.to_string()));
    match (&args.host, args.local) {
        (None, false) => {
            return usage("name the machine to register (HOST), or give --local for this one");
        }
        (Some(_), true) => return usage("HOST and --local cannot be used together"),
        _ => {}
    }
    if args.local && (args.ssh_username.is_some() || args.ssh_private_key.is_some()) {
        return usage(
            "--ssh-username and --ssh-private-key apply to a HOST reached over SSH, not to --local",
        );
    }
    if args.infrastructure_class == "ec2" && (args.private_ip.is_some() || args.public_ip.is_some())
    {
        return usage("--override-private-ip and --override-public-ip are not supported for EC2");
    }
    for (name, ip) in [
        ("--override-private-ip", &args.private_ip),
        ("--override-public-ip", &args.public_ip),
    ] {
        if let Some(ip) = ip
            && ip.parse::<IpAddr>().is_err()
        {
            return usage(&format!("{name} {ip:?} is not an IP address"));
        }
    }
    if let Some(h) = &args.hostname
        && !valid_hostname(h)
    {
        return usage(&format!(
            "invalid hostname {h:?}: use letters, digits and dashes, not starting or ending with a dash, at most 63"
        ));
    }
    Ok(())
}

/// What the machine is registered with: hostname and addresses.
fn identity(
    args: &RegisterArgs,
    facts: &probe::Facts,
) -> Result<(String, Option<String>, Option<String>), RegisterError> {
    let hostname = match &args.hostname {
        Some(h) => h.to_ascii_lowercase(),
        None => {
            let short = facts
                .hostname
                .split('.')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if !valid_hostname(&short) {
                return Err(RegisterError::Usage(format!(
                    "the machine's hostname {:?} cannot name an instance; give --override-hostname",
                    facts.hostname
                )));
            }
            short
        }
    };
    let private = args
        .private_ip
        .clone()
        .or_else(|| facts.addresses.first().cloned());
    // The address we reached the machine at is one others reach it at too.
    let reached = args
        .host
        .as_deref()
        .filter(|h| h.parse::<IpAddr>().is_ok())
        .map(str::to_string);
    let public = args
        .public_ip
        .clone()
        .or(reached)
        .or_else(|| private.clone());
    Ok((hostname, private, public))
}

/// Runs `opsworks register`.
pub async fn run(args: RegisterArgs) -> Result<(), RegisterError> {
    let started = Instant::now();
    check_args(&args)?;
    let (creds, source) = Credentials::resolve().map_err(RegisterError::Credentials)?;
    let api =
        OpsWorks::new(&args.endpoint_url, creds, api::region()).map_err(RegisterError::Usage)?;
    say(&format!(
        "checking stack {} at {} (credentials {} from {source})",
        args.stack_id,
        api.endpoint(),
        api.access_key_id()
    ));
    let stack = describe_stack(&api, &args.stack_id).await?;
    say(&format!(
        "  stack \"{}\" in {}",
        stack["Name"].as_str().unwrap_or(""),
        stack["Region"].as_str().unwrap_or("")
    ));

    let target = match &args.host {
        Some(host) => Target::Ssh(Ssh::new(
            host,
            args.ssh_username.as_deref(),
            args.ssh_private_key.as_deref(),
        )?),
        None => Target::Local,
    };
    let name = target.name();
    say(&match &target {
        Target::Ssh(s) => format!("connecting to {} over SSH", s.destination()),
        Target::Local => "looking at this machine".into(),
    });
    let facts = tokio::task::block_in_place(|| probe::probe(&target))?;
    facts.check(&name, std::env::consts::ARCH)?;
    let (hostname, private_ip, public_ip) = identity(&args, &facts)?;
    say(&format!(
        "  {} {}, {}, hostname {}, addresses {}, {} as {}",
        facts.kernel,
        facts.arch,
        facts.os(),
        facts.hostname,
        if facts.addresses.is_empty() {
            "none".into()
        } else {
            facts.addresses.join(" ")
        },
        if facts.systemd {
            "systemd"
        } else {
            "no systemd"
        },
        if facts.root { "root" } else { "a sudoer" }
    ));

    let document = json!({
        "hostname": hostname,
        "architecture": facts.arch,
        "os": {
            "family": crate::facts::os_family(&facts.os_id, &facts.os_like),
            "name": facts.os_id,
            "version": facts.os_version,
        },
        "infrastructure_class": args.infrastructure_class,
    });
    let mut request = json!({
        "StackId": args.stack_id,
        "Hostname": hostname,
        "InstanceIdentity": {"Document": document.to_string()},
    });
    if let Some(ip) = &private_ip {
        request["PrivateIp"] = json!(ip);
    }
    if let Some(ip) = &public_ip {
        request["PublicIp"] = json!(ip);
    }
    let answer = api
        .call("RegisterInstance", &request)
        .await
        .map_err(|e| api_error("RegisterInstance", &api, e))?;
    let plan = plan_from(&answer, &args, &hostname)?;
    say(&format!(
        "registered the machine as instance {} (registering)",
        plan.instance_id
    ));

    let installed = tokio::task::block_in_place(|| install_on(&target, &facts, &plan));
    if let Err(e) = installed {
        deregister(&api, &plan.instance_id).await;
        return Err(e);
    }
    match wait_registered(&api, &plan.instance_id).await {
        Ok(()) => {}
        Err(e) => {
            say("removing the agent again");
            let _ = tokio::task::block_in_place(|| uninstall_on(&target, &facts));
            deregister(&api, &plan.instance_id).await;
            return Err(e);
        }
    }
    say(&format!(
        "instance {} ({hostname}) is registered in stack \"{}\" ({:.1} s); add it to layers with aws opsworks assign-instance",
        plan.instance_id,
        stack["Name"].as_str().unwrap_or(""),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn api_error(operation: &'static str, api: &OpsWorks, e: ApiFailure) -> RegisterError {
    match e {
        ApiFailure::Unreachable(detail) => RegisterError::Endpoint {
            endpoint: api.endpoint().to_string(),
            detail,
        },
        other => RegisterError::Api {
            operation,
            detail: other.to_string(),
        },
    }
}

async fn describe_stack(api: &OpsWorks, stack_id: &str) -> Result<Value, RegisterError> {
    match api
        .call("DescribeStacks", &json!({"StackIds": [stack_id]}))
        .await
    {
        Ok(v) => Ok(v["Stacks"][0].clone()),
        Err(ApiFailure::Aws { code, .. }) if code == "ResourceNotFoundException" => {
            Err(RegisterError::NoStack {
                stack_id: stack_id.to_string(),
                endpoint: api.endpoint().to_string(),
            })
        }
        Err(e) => Err(api_error("DescribeStacks", api, e)),
    }
}

fn plan_from(answer: &Value, args: &RegisterArgs, hostname: &str) -> Result<Plan, RegisterError> {
    let creds = &answer[opsworks_protocol::REGISTERED_CREDENTIALS];
    let field = |v: &Value| v.as_str().map(str::to_string);
    match (
        field(&answer["InstanceId"]),
        field(&creds["AccessKeyId"]),
        field(&creds["SecretAccessKey"]),
    ) {
        (Some(instance_id), Some(access_key_id), Some(secret_access_key)) => Ok(Plan {
            server: args.endpoint_url.trim_end_matches('/').to_string(),
            stack_id: args.stack_id.clone(),
            instance_id,
            hostname: hostname.to_string(),
            access_key_id,
            secret_access_key,
        }),
        _ => Err(RegisterError::Api {
            operation: "RegisterInstance",
            detail: format!(
                "the endpoint answered without the instance's own key ({}); is it an OpsWorks server of this project?",
                opsworks_protocol::REGISTERED_CREDENTIALS
            ),
        }),
    }
}

/// `sudo -n ` when the login user is not root.
fn as_root(facts: &probe::Facts) -> &'static str {
    if facts.root { "" } else { "sudo -n " }
}

/// Copies this executable to the machine (over SSH), checks it runs there, and runs
/// `opsworks agent-install` as root with the plan on its standard input.
fn install_on(target: &Target, facts: &probe::Facts, plan: &Plan) -> Result<(), RegisterError> {
    let exe = std::env::current_exe()
        .map_err(|e| RegisterError::Local(format!("finding this executable: {e}")))?;
    let (program, temp) = match target {
        Target::Local => (exe.display().to_string(), None),
        Target::Ssh(_) => {
            let bytes = std::fs::read(&exe)
                .map_err(|e| RegisterError::Local(format!("reading {}: {e}", exe.display())))?;
            say(&format!(
                "copying the agent (opsworks {}, {} MiB) to {}",
                crate::VERSION,
                bytes.len() >> 20,
                target.name()
            ));
            // In the user's home, not /tmp: /tmp is often mounted noexec on servers.
            let ran = target.sh(
                "umask 077 && d=$(mktemp -d \"$HOME/.opsworks-register.XXXXXX\") && cat > \"$d/opsworks\" && chmod 0755 \"$d/opsworks\" && echo \"$d\"",
                &bytes,
                None,
            )?;
            if let Some(e) = target.connection_failure(&ran) {
                return Err(e);
            }
            let dir = ran.stdout.trim().to_string();
            if !ran.ok || !dir.contains("/.opsworks-register.") {
                return Err(RegisterError::Machine(format!(
                    "copying the agent to {} failed: {}",
                    target.name(),
                    ran.stderr.trim()
                )));
            }
            (format!("{dir}/opsworks"), Some(dir))
        }
    };
    let result = run_installer(target, facts, plan, &program);
    if let Some(dir) = temp {
        let _ = target.sh(&format!("rm -rf {}", quote(&dir)), b"", None);
    }
    result
}

fn run_installer(
    target: &Target,
    facts: &probe::Facts,
    plan: &Plan,
    program: &str,
) -> Result<(), RegisterError> {
    let ran = target.sh(&format!("{} --version", quote(program)), b"", None)?;
    if let Some(e) = target.connection_failure(&ran) {
        return Err(e);
    }
    if !ran.ok {
        return Err(RegisterError::UnsupportedOs {
            machine: target.name(),
            detail: format!(
                "this opsworks executable does not run there: {}",
                ran.stderr.trim()
            ),
        });
    }
    say(&format!(
        "installing the agent on {}{}",
        target.name(),
        if facts.root { "" } else { " with sudo" }
    ));
    let plan_json = serde_json::to_vec(plan).map_err(|e| RegisterError::Local(e.to_string()))?;
    let prefix = format!(
        "  [{}] ",
        match target {
            Target::Ssh(_) => target.name(),
            Target::Local => "local".into(),
        }
    );
    let each = |line: &str| say(&format!("{prefix}{line}"));
    let ran = target.sh(
        &format!(
            "{}{} agent-install --plan -",
            as_root(facts),
            quote(program)
        ),
        &plan_json,
        Some(&each),
    )?;
    if let Some(e) = target.connection_failure(&ran) {
        return Err(e);
    }
    if !ran.ok {
        let why = ran
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.trim_start_matches("opsworks agent-install: "))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(RegisterError::Machine(format!(
            "installing the agent on {} failed (what it wrote was removed): {}",
            target.name(),
            if why.is_empty() { "no message" } else { &why }
        )));
    }
    Ok(())
}

/// Removes an installed agent from the machine (after a later step failed).
fn uninstall_on(target: &Target, facts: &probe::Facts) -> Result<(), RegisterError> {
    let ran = target.sh(
        &format!(
            "{}{}/current/opsworks agent-uninstall",
            as_root(facts),
            crate::install::INSTALL_DIR
        ),
        b"",
        Some(&|l| say(&format!("  {l}"))),
    )?;
    if ran.ok {
        Ok(())
    } else {
        Err(RegisterError::Machine(ran.stderr.trim().to_string()))
    }
}

async fn deregister(api: &OpsWorks, instance_id: &str) {
    match api
        .call("DeregisterInstance", &json!({"InstanceId": instance_id}))
        .await
    {
        Ok(_) => say(&format!("deregistered instance {instance_id} again")),
        Err(e) => say(&format!(
            "could not deregister instance {instance_id} ({e}); remove it with aws opsworks deregister-instance"
        )),
    }
}

/// Waits until the instance is `registered` (its agent said hello). A caller who may only
/// register (AWS's `AWSOpsWorksInstanceRegistration` allows no DescribeInstances) has the
/// agent's report-in, which made it so, as its answer.
async fn wait_registered(api: &OpsWorks, instance_id: &str) -> Result<(), RegisterError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let answer = match api
            .call("DescribeInstances", &json!({"InstanceIds": [instance_id]}))
            .await
        {
            Ok(a) => a,
            Err(ApiFailure::Aws { code, .. }) if code.starts_with("AccessDenied") => {
                say(
                    "  (this caller may not describe instances: the agent's report-in registered it)",
                );
                return Ok(());
            }
            Err(e) => return Err(api_error("DescribeInstances", api, e)),
        };
        last = answer["Instances"][0]["Status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if last == "registered" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(RegisterError::Machine(format!(
        "the agent reported in, but instance {instance_id} is still {last} after 30 s"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RegisterArgs {
        RegisterArgs {
            endpoint_url: "http://127.0.0.1:9730".into(),
            stack_id: "s".into(),
            infrastructure_class: "on-premises".into(),
            hostname: None,
            private_ip: None,
            public_ip: None,
            ssh_username: None,
            ssh_private_key: None,
            local: false,
            host: Some("10.0.0.9".into()),
        }
    }

    #[test]
    fn the_command_line_is_checked_first() {
        assert!(check_args(&args()).is_ok());
        let both = RegisterArgs {
            local: true,
            ..args()
        };
        assert!(
            check_args(&both)
                .unwrap_err()
                .to_string()
                .contains("cannot be used together")
        );
        let neither = RegisterArgs {
            host: None,
            ..args()
        };
        assert!(
            check_args(&neither)
                .unwrap_err()
                .to_string()
                .contains("--local")
        );
        let ip = RegisterArgs {
            private_ip: Some("10.0.0.300".into()),
            ..args()
        };
        assert!(
            check_args(&ip)
                .unwrap_err()
                .to_string()
                .contains("not an IP address")
        );
        let ec2 = RegisterArgs {
            infrastructure_class: "ec2".into(),
            public_ip: Some("1.2.3.4".into()),
            ..args()
        };
        assert!(
            check_args(&ec2)
                .unwrap_err()
                .to_string()
                .contains("not supported for EC2")
        );
        let host = RegisterArgs {
            hostname: Some("-bad".into()),
            ..args()
        };
        assert!(
            check_args(&host)
                .unwrap_err()
                .to_string()
                .contains("invalid hostname")
        );
    }

    #[test]
    fn the_machine_is_named_by_its_short_hostname_and_addresses() {
        let facts = probe::parse("hostname=Web-1.example.com\naddresses=10.0.0.9 172.16.0.1\n");
        let (h, private, public) = identity(&args(), &facts).unwrap();
        assert_eq!(h, "web-1");
        assert_eq!(private.as_deref(), Some("10.0.0.9"));
        assert_eq!(public.as_deref(), Some("10.0.0.9"));
        let overridden = RegisterArgs {
            hostname: Some("Edge".into()),
            private_ip: Some("192.168.0.2".into()),
            public_ip: Some("203.0.113.1".into()),
            ..args()
        };
        let (h, private, public) = identity(&overridden, &facts).unwrap();
        assert_eq!(
            (h.as_str(), private.as_deref(), public.as_deref()),
            ("edge", Some("192.168.0.2"), Some("203.0.113.1"))
        );
        let weird = probe::parse("hostname=under_score\n");
        assert!(
            identity(&args(), &weird)
                .unwrap_err()
                .to_string()
                .contains("--override-hostname")
        );
    }
}
