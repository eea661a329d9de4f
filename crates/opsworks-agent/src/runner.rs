//! Running one command: custom cookbooks, the app step (deploy, rollback, undeploy), the
//! command's files (`attribs.json`, `data_bags/`), and the converge as a subprocess in its own
//! process group, its output appended to the command's log, bounded by the command's timeout.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use opsworks_model::CommandName;
use opsworks_protocol::{AgentCommand, CommandOutcome, SourceSpec};
use serde_json::{Value, json};

use crate::apps;
use crate::error::{AgentError, Result};
use crate::sources;
use crate::state::{Entry, StateDir, safe_name, write_json};

/// The exit code of a converge killed for running past its timeout (as `timeout(1)` uses).
pub const TIMEOUT_EXIT_CODE: i32 = 124;
/// How long a timed-out converge gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// What a run needs beyond the command.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The executable whose `converge` subcommand runs the recipes.
    pub converge_exe: PathBuf,
    /// Built-in cookbooks, searched before the custom ones.
    pub builtin_cookbooks: Option<PathBuf>,
    /// Where apps are deployed (`/srv/www`).
    pub www_root: PathBuf,
    /// The state directory.
    pub state: StateDir,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Successful or failed.
    pub outcome: CommandOutcome,
    /// The converge's exit code (0 when nothing had to converge, 1 when the agent's own step
    /// failed, [`TIMEOUT_EXIT_CODE`] on timeout, 128+signal when killed).
    pub exit_code: i32,
    /// A summary for the server: duration, apps deployed, cookbook revision.
    pub report: Value,
    /// The git commit each app was deployed at, by app ID.
    pub app_revisions: BTreeMap<String, String>,
}

/// The command's log file, appended to by the agent and by the converge.
#[derive(Debug)]
pub struct CmdLog {
    file: File,
}

impl CmdLog {
    /// Opens (creating, 0600) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<CmdLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| AgentError::io("cannot open", path, e))?;
        Ok(CmdLog { file })
    }

    /// Appends one line of the agent's own, marked as such.
    pub fn line(&self, message: impl AsRef<str>) {
        let ts = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
        // A failed log write must not fail the command; the converge output is what matters.
        let _ = writeln!(&self.file, "[{ts}] agent: {}", message.as_ref());
    }

    fn handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }
}

/// A source URL fit for a log: any `user:password@` removed.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest
            .split_once('/')
            .map(|(a, p)| (a, Some(p)))
            .unwrap_or((rest, None));
        if let Some((_, host)) = authority.rsplit_once('@') {
            return match path {
                Some(p) => format!("{scheme}://***@{host}/{p}"),
                None => format!("{scheme}://***@{host}"),
            };
        }
    }
    url.to_string()
}

/// Runs `cmd` in the history entry `entry`, logging to `log`. Never fails: what goes wrong is in
/// the log and the outcome.
pub async fn execute(
    settings: &RunSettings,
    cmd: &AgentCommand,
    entry: &Entry,
    log: &CmdLog,
) -> RunOutcome {
    let started = Instant::now();
    log.line(format!("command {} ({}) starts", cmd.command_id, cmd.kind));
    let mut report = json!({});
    let mut app_revisions = BTreeMap::new();
    let exit_code = match steps(settings, cmd, entry, log, &mut report, &mut app_revisions).await {
        Ok(code) => code,
        Err(e) => {
            log.line(format!("error: {e}"));
            report["error"] = Value::String(e.to_string());
            1
        }
    };
    report["duration_ms"] = json!(started.elapsed().as_millis() as u64);
    let outcome = if exit_code == 0 {
        CommandOutcome::Successful
    } else {
        CommandOutcome::Failed
    };
    log.line(format!(
        "command {} ended: {} (exit code {exit_code})",
        cmd.command_id,
        outcome_name(outcome)
    ));
    RunOutcome {
        outcome,
        exit_code,
        report,
        app_revisions,
    }
}

/// The lowercase name of an outcome.
pub fn outcome_name(o: CommandOutcome) -> &'static str {
    match o {
        CommandOutcome::Successful => "successful",
        CommandOutcome::Failed => "failed",
        CommandOutcome::Skipped => "skipped",
    }
}

async fn steps(
    settings: &RunSettings,
    cmd: &AgentCommand,
    entry: &Entry,
    log: &CmdLog,
    report: &mut Value,
    app_revisions: &mut BTreeMap<String, String>,
) -> Result<i32> {
    // Custom cookbooks: fetched at setup and update_custom_cookbooks, and whenever the cache
    // does not hold the stack's current source; otherwise the cache is used as it is.
    let mut cookbook_paths: Vec<PathBuf> = settings.builtin_cookbooks.iter().cloned().collect();
    if let Some(src) = &cmd.custom_cookbooks {
        let refresh = matches!(
            cmd.kind,
            CommandName::Setup | CommandName::UpdateCustomCookbooks
        );
        let dir = custom_cookbooks(settings, src, refresh, log).await?;
        if let Some(rev) = &dir.revision {
            report["cookbooks_revision"] = Value::String(rev.clone());
        }
        cookbook_paths.push(dir.dir);
    }
    if cmd.kind == CommandName::UpdateCustomCookbooks {
        return Ok(0);
    }

    // The app step comes before the recipes, so they find the release in place.
    let mut attributes = cmd.attributes.clone();
    app_step(settings, cmd, log, &mut attributes, report, app_revisions).await?;

    write_json(&entry.attribs_path(), &attributes)?;
    write_data_bags(cmd, &entry.data_bags_dir())?;

    if cmd.run_list.is_empty() {
        log.line("empty run list: nothing to converge");
        return Ok(0);
    }
    if cookbook_paths.is_empty() {
        // Let the converge say which cookbook it cannot find, rather than guess here.
        let dir = settings.state.site_cookbooks();
        std::fs::create_dir_all(&dir)
            .map_err(|e| AgentError::io("cannot create directory", &dir, e))?;
        cookbook_paths.push(dir);
    }
    converge(settings, cmd, entry, log, &cookbook_paths).await
}

/// The custom cookbooks directory for `src`, fetched when `refresh` or when the cache holds
/// another source (or nothing).
async fn custom_cookbooks(
    settings: &RunSettings,
    src: &SourceSpec,
    refresh: bool,
    log: &CmdLog,
) -> Result<sources::Fetched> {
    let dest = settings.state.site_cookbooks();
    let marker = settings.state.root().join("site-cookbooks.source");
    // What identifies the cached content: the kind, URL and revision (never the password).
    let identity = format!(
        "{}\n{}\n{}\n",
        src.kind,
        src.url,
        src.revision.as_deref().unwrap_or("")
    );
    let cached = src.kind == "local"
        || (dest.is_dir() && std::fs::read_to_string(&marker).is_ok_and(|m| m == identity));
    if cached && !refresh {
        log.line(format!(
            "custom cookbooks: using the cache of {}",
            redact_url(&src.url)
        ));
        let revision = opsworks_host::git::current_revision(&dest).ok().flatten();
        let dir = if src.kind == "local" {
            sources::local_path(&src.url)
        } else {
            dest
        };
        return Ok(sources::Fetched { dir, revision });
    }
    log.line(format!(
        "custom cookbooks: fetching {} {}{}",
        src.kind,
        redact_url(&src.url),
        src.revision
            .as_deref()
            .map(|r| format!(" at {r}"))
            .unwrap_or_default()
    ));
    let (src2, dest2, scratch) = (src.clone(), dest.clone(), settings.state.downloads());
    let fetched =
        tokio::task::spawn_blocking(move || sources::fetch_cookbooks(&src2, &dest2, &scratch))
            .await
            .map_err(|e| AgentError::invalid("cookbook fetch", e.to_string()))??;
    if src.kind != "local" {
        crate::state::write_private(&marker, identity.as_bytes())?;
    }
    if let Some(rev) = &fetched.revision {
        log.line(format!("custom cookbooks: at {rev}"));
    }
    Ok(fetched)
}

/// Deploys, rolls back or undeploys the command's apps, and tells the recipes where they are
/// (`deploy.<shortname>.{deploy_to,current_path,release_path}` in the attributes). The commit
/// each git app was deployed at goes into the log, the report and `app_revisions`.
async fn app_step(
    settings: &RunSettings,
    cmd: &AgentCommand,
    log: &CmdLog,
    attributes: &mut Value,
    report: &mut Value,
    app_revisions: &mut BTreeMap<String, String>,
) -> Result<()> {
    let action = match cmd.kind {
        CommandName::Deploy | CommandName::Setup => "deploy",
        CommandName::Rollback => "rollback",
        CommandName::Undeploy => "undeploy",
        _ => return Ok(()),
    };
    let mut done = Vec::new();
    for app in &cmd.apps {
        let (app2, root, scratch) = (
            app.clone(),
            settings.www_root.clone(),
            settings.state.downloads(),
        );
        log.line(format!("app {}: {action}", app.shortname));
        let step =
            tokio::task::spawn_blocking(move || -> Result<(Option<PathBuf>, Option<String>)> {
                match action {
                    "deploy" => {
                        let d = apps::deploy(&app2, &root, &scratch, jiff::Timestamp::now())?;
                        Ok((Some(d.release), d.revision))
                    }
                    "rollback" => Ok((Some(apps::rollback(&app2, &root)?), None)),
                    _ => {
                        apps::undeploy(&app2, &root)?;
                        Ok((None, None))
                    }
                }
            })
            .await
            .map_err(|e| AgentError::invalid("app step", e.to_string()))?;
        let (release, revision) = step?;
        let deploy_to = apps::app_dir(app, &settings.www_root)?;
        if let (Some(commit), Some(src)) = (&revision, &app.source) {
            log.line(format!(
                "app {}: {} {} at `{}` resolved to commit {commit}",
                app.shortname,
                src.kind,
                redact_url(&src.url),
                src.revision.as_deref().unwrap_or("HEAD")
            ));
            app_revisions.insert(app.app_id.clone(), commit.clone());
        }
        if let Some(release) = &release {
            log.line(format!(
                "app {}: current is {}{}",
                app.shortname,
                release.display(),
                revision
                    .as_deref()
                    .map(|r| format!(" (revision {r})"))
                    .unwrap_or_default()
            ));
            if let Some(obj) = attributes.as_object_mut() {
                let deploy = obj.entry("deploy").or_insert_with(|| json!({}));
                if let Some(deploy) = deploy.as_object_mut() {
                    let this = deploy
                        .entry(app.shortname.clone())
                        .or_insert_with(|| json!({}));
                    if let Some(this) = this.as_object_mut() {
                        this.insert("deploy_to".into(), json!(deploy_to));
                        this.insert("current_path".into(), json!(deploy_to.join("current")));
                        this.insert("release_path".into(), json!(release));
                    }
                }
            }
        }
        done.push(json!({"shortname": app.shortname, "action": action, "release": release, "revision": revision}));
    }
    if !done.is_empty() {
        report["apps"] = Value::Array(done);
    }
    Ok(())
}

/// Writes `data_bags/<bag>/<item>.json`.
fn write_data_bags(cmd: &AgentCommand, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| AgentError::io("cannot create directory", dir, e))?;
    for (bag, items) in &cmd.data_bags {
        check_component("data bag name", bag)?;
        let bag_dir = dir.join(bag);
        std::fs::create_dir_all(&bag_dir)
            .map_err(|e| AgentError::io("cannot create directory", &bag_dir, e))?;
        for (item, value) in items {
            check_component("data bag item name", item)?;
            write_json(&bag_dir.join(format!("{item}.json")), value)?;
        }
    }
    Ok(())
}

/// Refuses a name that would not stay one path component as it is.
fn check_component(what: &'static str, name: &str) -> Result<()> {
    if safe_name(name) != name || name.starts_with('.') {
        return Err(AgentError::invalid(
            what,
            format!("`{}` is not a plain file name", name.escape_debug()),
        ));
    }
    Ok(())
}

/// Runs `<converge_exe> converge ...` with its output appended to the log, killing its process
/// group when it outlives the command's timeout.
async fn converge(
    settings: &RunSettings,
    cmd: &AgentCommand,
    entry: &Entry,
    log: &CmdLog,
    cookbook_paths: &[PathBuf],
) -> Result<i32> {
    let cookbooks = cookbook_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let run_list = cmd.run_list.join(",");
    log.line(format!(
        "converge: run list {run_list}; cookbooks {cookbooks}"
    ));
    let out = log
        .handle()
        .map_err(|e| AgentError::io("cannot open", &entry.log_path(), e))?;
    let err = log
        .handle()
        .map_err(|e| AgentError::io("cannot open", &entry.log_path(), e))?;
    let mut command = tokio::process::Command::new(&settings.converge_exe);
    command
        .arg("converge")
        .arg("--cookbooks")
        .arg(&cookbooks)
        .arg("--run-list")
        .arg(&run_list)
        .arg("--json")
        .arg(entry.attribs_path())
        .arg("--data-bags")
        .arg(entry.data_bags_dir())
        .arg("--format")
        .arg("text")
        .current_dir(&entry.dir)
        .env(opsworks_env::OPSWORKS_COMMAND_ID, &cmd.command_id)
        .env(opsworks_env::OPSWORKS_COMMAND_TYPE, cmd.kind.as_str())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so a timeout can end everything it started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| AgentError::io("cannot run", &settings.converge_exe, e))?;
    let pid = child.id().map(|p| p as libc::pid_t);
    // Should the agent stop mid-run (this future dropped), the whole converge goes with it.
    let mut guard = GroupGuard(pid);
    let status = match cmd.timeout_seconds {
        Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                log.line(format!(
                    "timeout: the converge ran past {secs} s; stopping it"
                ));
                signal_group(pid, libc::SIGTERM);
                let status = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        signal_group(pid, libc::SIGKILL);
                        child.wait().await
                    }
                };
                // Whatever the converge left behind in its group goes too.
                signal_group(pid, libc::SIGKILL);
                status.map_err(|e| AgentError::io("cannot wait for", &settings.converge_exe, e))?;
                return Ok(TIMEOUT_EXIT_CODE);
            }
        },
        None => child.wait().await,
    };
    let status =
        status.map_err(|e| AgentError::io("cannot wait for", &settings.converge_exe, e))?;
    // A converge that ended by itself may have started daemons (services) in its group: they
    // stay.
    guard.0 = None;
    use std::os::unix::process::ExitStatusExt as _;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Kills the converge's process group when dropped while still armed.
struct GroupGuard(Option<libc::pid_t>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, libc::SIGKILL);
    }
}

fn signal_group(pid: Option<libc::pid_t>, signal: libc::c_int) {
    if let Some(pid) = pid.filter(|p| *p > 0) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact_url("https://u:p@h.test/r.git"),
            "https://***@h.test/r.git"
        );
        assert_eq!(redact_url("https://h.test/r.git"), "https://h.test/r.git");
        assert_eq!(redact_url("/srv/repo"), "/srv/repo");
    }

    #[test]
    fn data_bag_names_stay_inside() {
        assert!(check_component("x", "aws_opsworks_app").is_ok());
        assert!(check_component("x", "../etc").is_err());
        assert!(check_component("x", ".hidden").is_err());
    }
}
