//! `opsworks agent-cli`: the instance-side inspection commands of the original
//! `opsworks-agent-cli`, reading the agent's state directory (and, for `run-command`, running a
//! stored command again locally without telling the server).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::error::AgentError;
use crate::runner::{self, CmdLog, RunSettings};
use crate::state::{Entry, StateDir, StoredResult, read_json, write_json};

/// The command types a selector may name (`show-log deploy`: the latest deploy).
pub const VALID_ACTIVITIES: [&str; 12] = [
    "setup",
    "configure",
    "deploy",
    "undeploy",
    "rollback",
    "start",
    "stop",
    "restart",
    "execute_recipes",
    "update_custom_cookbooks",
    "shutdown",
    "update_dependencies",
];

/// The inspection commands. A COMMAND selector is `latest` (the default), a command ID or a
/// unique prefix of one, or a command type for the latest command of that type.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AgentCli {
    /// The agent: version, pid (and whether it runs), start and last activity.
    AgentReport,
    /// The instance: ID, server, hostname, addresses, OS, memory, CPUs, stack and layers.
    InstanceReport,
    /// The stored commands, oldest first, with their status.
    ListCommands,
    /// Prints a command's log.
    ShowLog {
        /// Which command.
        #[arg(default_value = "latest")]
        command: String,
    },
    /// Prints the attributes JSON a command ran with (`--internal`: the command as received,
    /// source credentials hidden).
    GetJson {
        /// Which command.
        #[arg(default_value = "latest")]
        command: String,
        /// The whole command instead of its attributes.
        #[arg(long, short = 'i')]
        internal: bool,
    },
    /// Runs a stored command again on this instance, reporting nothing to the server.
    RunCommand {
        /// Which command.
        #[arg(default_value = "latest")]
        command: String,
        /// The converge executable (default: the agent's).
        #[arg(long = "converge-exe")]
        converge_exe: Option<PathBuf>,
        /// The built-in cookbooks directory (default: the agent's).
        #[arg(long = "builtin-cookbooks")]
        builtin_cookbooks: Option<PathBuf>,
        /// Where apps are deployed (default: the agent's).
        #[arg(long = "www-root")]
        www_root: Option<PathBuf>,
    },
    /// The last command with the stack, layers, instance and apps it saw.
    StackState,
    /// Runs an app's deploy hook (`deploy/<hook>.star` in its new release) for the command being
    /// run; the `deploy` cookbook's recipes call it at each step of a deploy.
    DeployHook {
        /// The app's short name.
        #[arg(long)]
        app: String,
        /// before_migrate, before_symlink, before_restart or after_restart.
        #[arg(long)]
        hook: String,
        /// The command's directory (the agent gives it to the converge).
        #[arg(long = "command-dir", env = opsworks_env::OPSWORKS_COMMAND_DIR)]
        command_dir: PathBuf,
    },
    /// The 16 metrics as the agent samples them on this instance, taken over a few seconds,
    /// and what they are read from (the instance's control group, or the host's /proc).
    Metrics {
        /// Seconds to sample over (the CPU shares cover them; a control group's load averages
        /// start from 0, as at boot, and take a count every 5 s).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
        seconds: u64,
    },
}

/// Runs an inspection command, printing to stdout.
pub fn run_cli(state_dir: &Path, cmd: AgentCli) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_cli_to(state_dir, cmd, &mut out)
}

/// Runs an inspection command, writing to `out`.
pub fn run_cli_to(state_dir: &Path, cmd: AgentCli, out: &mut dyn Write) -> anyhow::Result<()> {
    // Metrics reads the machine, not the agent's state.
    if let AgentCli::Metrics { seconds } = cmd {
        return metrics(seconds, out);
    }
    // Opened by the commands that read the history; a hook works in its command's directory.
    let open = || StateDir::existing(state_dir);
    match cmd {
        AgentCli::AgentReport => agent_report(&open()?, out),
        AgentCli::InstanceReport => instance_report(&open()?, out),
        AgentCli::ListCommands => list_commands(&open()?, out),
        AgentCli::ShowLog { command } => {
            let entry = select(&open()?, &command)?;
            let log = std::fs::read(entry.log_path())
                .with_context(|| format!("no log for {}", entry.name()))?;
            out.write_all(&log)?;
            Ok(())
        }
        AgentCli::GetJson { command, internal } => {
            let entry = select(&open()?, &command)?;
            let value: Value = if internal {
                let mut v = serde_json::to_value(entry.command()?)?;
                hide_source_secrets(&mut v);
                v
            } else if entry.attribs_path().exists() {
                read_json(&entry.attribs_path())?
            } else {
                entry.command()?.attributes
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            Ok(())
        }
        AgentCli::RunCommand {
            command,
            converge_exe,
            builtin_cookbooks,
            www_root,
        } => run_command(
            &open()?,
            &command,
            converge_exe,
            builtin_cookbooks,
            www_root,
            out,
        ),
        AgentCli::StackState => stack_state(&open()?, out),
        AgentCli::DeployHook {
            app,
            hook,
            command_dir,
        } => Ok(crate::hooks::run_deploy_hook(
            &command_dir,
            &app,
            &hook,
            out,
        )?),
        AgentCli::Metrics { seconds } => metrics(seconds, out),
    }
}

/// `metrics`: one sample over `seconds`, as JSON with its source.
fn metrics(seconds: u64, out: &mut dyn Write) -> anyhow::Result<()> {
    let (source, sample) = crate::metrics::sample_for(Duration::from_secs(seconds));
    let sample = sample.with_context(|| format!("cannot read {source} for metrics"))?;
    let metrics: serde_json::Map<String, Value> = opsworks_model::metrics::names()
        .zip(sample.values)
        .map(|(name, value)| (name.to_string(), serde_json::json!(value)))
        .collect();
    let doc = serde_json::json!({"Source": source, "At": sample.at, "Metrics": metrics});
    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}

/// Finds the entry a selector names.
pub fn select(state: &StateDir, selector: &str) -> anyhow::Result<Entry> {
    let entries = state.entries()?;
    let found = if selector == "latest" {
        entries.last().cloned()
    } else if let Some(e) = entries
        .iter()
        .rev()
        .find(|e| e.command().is_ok_and(|c| c.command_id == selector))
    {
        Some(e.clone())
    } else if VALID_ACTIVITIES.contains(&selector) {
        entries
            .iter()
            .rev()
            .find(|e| e.command().is_ok_and(|c| c.kind.as_str() == selector))
            .cloned()
    } else {
        let matching: Vec<&Entry> = entries
            .iter()
            .filter(|e| {
                e.command()
                    .is_ok_and(|c| c.command_id.starts_with(selector))
            })
            .collect();
        match matching.as_slice() {
            [one] => Some((*one).clone()),
            [] => None,
            many => anyhow::bail!(
                "`{selector}` matches {} commands; give more of the ID",
                many.len()
            ),
        }
    };
    found.ok_or_else(|| AgentError::NoSuchCommand(selector.to_string()).into())
}

fn agent_report(state: &StateDir, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(info) = state.read_info()? else {
        anyhow::bail!("no agent has run with {}", state.root().display());
    };
    // SAFETY: kill with signal 0 only asks whether the process exists.
    let alive = info.pid > 0 && unsafe { libc::kill(info.pid as libc::pid_t, 0) } == 0;
    writeln!(out, "agent version: {}", info.version)?;
    writeln!(
        out,
        "pid: {} ({})",
        info.pid,
        if alive { "running" } else { "not running" }
    )?;
    writeln!(out, "started at: {}", info.started_at)?;
    writeln!(out, "last activity: {}", info.last_activity)?;
    writeln!(
        out,
        "running command: {}",
        info.running.as_deref().unwrap_or("none")
    )?;
    let last = state.entries()?.last().map(|e| e.name());
    writeln!(out, "last command: {}", last.as_deref().unwrap_or("none"))?;
    Ok(())
}

/// The attributes of the newest command that has them.
fn last_attributes(state: &StateDir) -> anyhow::Result<Option<(Entry, Value)>> {
    for entry in state.entries()?.into_iter().rev() {
        if entry.attribs_path().exists() {
            let v: Value = read_json(&entry.attribs_path())?;
            return Ok(Some((entry, v)));
        }
        if let Ok(cmd) = entry.command()
            && cmd.attributes.is_object()
        {
            return Ok(Some((entry, cmd.attributes)));
        }
    }
    Ok(None)
}

fn text(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Names of an object's keys or of an array's `name`/string items.
/// Names joined with commas, or `-` when there are none.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

fn names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Object(m)) => m.keys().cloned().collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .or_else(|| x.get("name").and_then(|n| n.as_str()).map(str::to_string))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn instance_report(state: &StateDir, out: &mut dyn Write) -> anyhow::Result<()> {
    let info = state.read_info()?.unwrap_or_default();
    let os = crate::facts::reported_os();
    writeln!(
        out,
        "instance id: {}",
        if info.instance_id.is_empty() {
            "-"
        } else {
            &info.instance_id
        }
    )?;
    writeln!(
        out,
        "server: {}",
        if info.server.is_empty() {
            "-"
        } else {
            &info.server
        }
    )?;
    writeln!(out, "agent version: {}", crate::VERSION)?;
    writeln!(out, "hostname: {}", crate::facts::hostname())?;
    writeln!(out, "addresses: {}", crate::facts::addresses().join(", "))?;
    writeln!(out, "os: {} {} ({})", os.name, os.version, os.family)?;
    writeln!(
        out,
        "memory: {} kB",
        crate::facts::memory_kb()
            .map(|m| m.to_string())
            .unwrap_or_else(|| "-".into())
    )?;
    writeln!(out, "cpus: {}", crate::facts::cpus())?;
    if let Some((_, attrs)) = last_attributes(state)? {
        writeln!(
            out,
            "stack: {} ({})",
            text(&attrs, "/opsworks/stack/name"),
            text(&attrs, "/opsworks/stack/id")
        )?;
        let layers = names(attrs.pointer("/opsworks/instance/layers"));
        writeln!(out, "layers: {}", listed(&layers))?;
    } else {
        writeln!(out, "stack: -")?;
        writeln!(out, "layers: -")?;
    }
    Ok(())
}

fn status_of(entry: &Entry) -> (String, String, Option<StoredResult>) {
    match entry.result() {
        Ok(Some(r)) => (
            runner::outcome_name(r.completion.outcome).to_string(),
            r.completion.exit_code.to_string(),
            Some(r),
        ),
        Ok(None) => ("running".to_string(), "-".to_string(), None),
        Err(_) => ("unknown".to_string(), "-".to_string(), None),
    }
}

fn list_commands(state: &StateDir, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<32} {:<24} {:<38} {:<10} {:>4}",
        "CREATED", "TYPE", "COMMAND ID", "STATUS", "EXIT"
    )?;
    for entry in state.entries()? {
        let Ok(cmd) = entry.command() else { continue };
        let (status, exit, _) = status_of(&entry);
        writeln!(
            out,
            "{:<32} {:<24} {:<38} {:<10} {:>4}",
            cmd.created_at, cmd.kind, cmd.command_id, status, exit
        )?;
    }
    Ok(())
}

fn stack_state(state: &StateDir, out: &mut dyn Write) -> anyhow::Result<()> {
    let Some(entry) = state.entries()?.last().cloned() else {
        anyhow::bail!("no command has run on this instance yet");
    };
    let cmd = entry.command()?;
    let (status, exit, _) = status_of(&entry);
    writeln!(
        out,
        "last command: {} {} ({status}, exit {exit}, created {})",
        cmd.kind, cmd.command_id, cmd.created_at
    )?;
    let attrs = last_attributes(state)?
        .map(|(_, a)| a)
        .unwrap_or(Value::Null);
    writeln!(
        out,
        "stack: {} ({})",
        text(&attrs, "/opsworks/stack/name"),
        text(&attrs, "/opsworks/stack/id")
    )?;
    writeln!(
        out,
        "instance: {} ({}), status {}",
        text(&attrs, "/opsworks/instance/hostname"),
        text(&attrs, "/opsworks/instance/id"),
        text(&attrs, "/opsworks/instance/status")
    )?;
    let layers = names(attrs.pointer("/opsworks/layers"));
    writeln!(out, "layers: {}", listed(&layers))?;
    let mut apps = names(attrs.pointer("/opsworks/applications"));
    if apps.is_empty() {
        apps = names(attrs.pointer("/deploy"));
    }
    writeln!(out, "apps: {}", listed(&apps))?;
    writeln!(out, "valid activities: {}", VALID_ACTIVITIES.join(", "))?;
    Ok(())
}

/// Blanks source passwords and SSH keys in a command's JSON.
fn hide_source_secrets(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(k.as_str(), "password" | "ssh_key") && !x.is_null() {
                    *x = Value::String("FILTERED".into());
                } else {
                    hide_source_secrets(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(hide_source_secrets),
        _ => {}
    }
}

fn run_command(
    state: &StateDir,
    selector: &str,
    converge_exe: Option<PathBuf>,
    builtin_cookbooks: Option<PathBuf>,
    www_root: Option<PathBuf>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let stored = select(state, selector)?;
    let cmd = stored.command()?;
    let info = state.read_info()?.unwrap_or_default();
    let converge_exe = match converge_exe
        .or((!info.converge_exe.as_os_str().is_empty()).then_some(info.converge_exe))
    {
        Some(p) => p,
        None => std::env::current_exe().context("cannot find this executable")?,
    };
    let settings = RunSettings {
        converge_exe,
        // `info.server` lists every server, comma-separated; the first is the agent's own.
        server_url: info
            .server
            .split(',')
            .next()
            .unwrap_or_default()
            .to_string(),
        builtin_cookbooks: builtin_cookbooks.or(info.builtin_cookbooks),
        www_root: www_root
            .or((!info.www_root.as_os_str().is_empty()).then_some(info.www_root))
            .unwrap_or_else(|| PathBuf::from("/srv/www")),
        state: state.clone(),
    };
    // Local runs live apart from the history, so they never look like the server's commands.
    let runs = state.root().join("local-runs");
    let dir = runs.join(format!(
        "{}_{}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S"),
        stored.name()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    prune_local_runs(&runs, &dir);
    let entry = Entry { dir };
    write_json(&entry.dir.join("command.json"), &cmd)?;
    writeln!(
        out,
        "running {} {} again locally in {}",
        cmd.kind,
        cmd.command_id,
        entry.dir.display()
    )?;
    let _lock = state.lock_run()?;
    let log = CmdLog::open(&entry.log_path())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let log_path = entry.log_path();
    let ran = rt.block_on(async {
        let run = runner::execute(&settings, &cmd, &entry, &log);
        tokio::pin!(run);
        let mut shown = 0usize;
        loop {
            tokio::select! {
                r = &mut run => {
                    let _ = show_new(&log_path, &mut shown, out);
                    break r;
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    let _ = show_new(&log_path, &mut shown, out);
                }
            }
        }
    });
    if ran.exit_code != 0 {
        anyhow::bail!("the command failed (exit code {})", ran.exit_code);
    }
    Ok(())
}

/// How many local runs `run-command` keeps.
const KEEP_LOCAL_RUNS: usize = 10;

/// Removes the oldest local runs beyond [`KEEP_LOCAL_RUNS`], never `current`.
fn prune_local_runs(runs: &Path, current: &Path) {
    let Ok(items) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = items
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEEP_LOCAL_RUNS);
    for dir in dirs.into_iter().take(excess).filter(|d| d != current) {
        // Best effort: an old local run left behind harms nothing.
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Writes what the log gained since `shown` bytes.
fn show_new(path: &Path, shown: &mut usize, out: &mut dyn Write) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    if bytes.len() > *shown {
        out.write_all(&bytes[*shown..])?;
        out.flush()?;
        *shown = bytes.len();
    }
    Ok(())
}
