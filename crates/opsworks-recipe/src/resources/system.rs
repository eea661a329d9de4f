//! System resources backed by `opsworks_host`: remote_file, package, service, user, group, cron
//! and git. Each loads the current state through the host crate, compares it with the declared
//! state and only then acts; why-run stops before the act.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use opsworks_host::{cron as hcron, fetch, git as hgit, package as hpkg, service as hsvc, users};
use serde_json::Value;

use super::files::{Perms, converge_content, converge_perms};
use super::{Ctx, Outcome, verb};
use crate::resource::Resource;

fn host<T>(r: Result<T, opsworks_host::HostError>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

fn unsupported(action: &str) -> Result<Outcome, String> {
    Err(format!("unsupported action `{action}`"))
}

fn string_map(res: &Resource, key: &str) -> Result<BTreeMap<String, String>, String> {
    match res.props.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => Ok(m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()),
        Some(other) => Err(format!("`{key}` must be a dict of strings, got {other}")),
    }
}

fn u32_prop(res: &Resource, key: &str) -> Result<Option<u32>, String> {
    match res.props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| format!("`{key}` must be a non-negative integer, got {v}")),
    }
}

/// Text form of a property that may be given as a string or a number (`gid`, cron fields).
fn text_prop(res: &Resource, key: &str) -> Option<String> {
    match res.props.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `remote_file`: downloads `source` (http/https) and installs it only when its content differs;
/// with `checksum` (sha256) an existing matching file is not downloaded at all.
pub fn remote_file(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let path = Path::new(res.name_prop("path"));
    let perms = Perms::from_resource(res)?;
    let why_run = ctx.why_run;
    if action == "delete" {
        return converge_content(path, None, &perms, "delete", res.sensitive, why_run);
    }
    if !matches!(action, "create" | "create_if_missing" | "touch") {
        return unsupported(action);
    }
    let url = res
        .str_prop("source")
        .ok_or("`source` (the URL) is required")?;
    let checksum = res.str_prop("checksum").map(str::to_ascii_lowercase);
    let shown_url = if res.sensitive {
        "(sensitive URL)"
    } else {
        url
    };
    let exists = path.is_file();
    let mut out = Outcome::default();
    let current_sum = if exists {
        Some(host(fetch::sha256_file(path))?)
    } else {
        None
    };
    let matches = match (&current_sum, &checksum) {
        (Some(cur), Some(want)) => cur == want,
        (Some(_), None) => action == "create_if_missing",
        _ => false,
    };
    if !matches {
        if why_run {
            out.changes.push(verb(
                true,
                &format!("download {shown_url} to {}", path.display()),
            ));
            out.updated = true;
        } else {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp: PathBuf = dir.join(format!(".opsworks-download-{}", std::process::id()));
            let got = host(fetch::download(url, &tmp, checksum.as_deref()));
            let got = match got {
                Ok(g) => g,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            if current_sum.as_deref() == Some(got.sha256.as_str()) {
                let _ = std::fs::remove_file(&tmp);
            } else {
                let content = std::fs::read(&tmp).map_err(|e| format!("cannot read download: {e}"));
                let _ = std::fs::remove_file(&tmp);
                let o = converge_content(
                    path,
                    Some(&content?),
                    &perms,
                    "create",
                    res.sensitive,
                    false,
                )?;
                out.changes.push(format!(
                    "download {shown_url} ({} bytes, sha256 {})",
                    got.bytes, got.sha256
                ));
                out.changes.extend(o.changes);
                out.diff = o.diff;
                out.updated = true;
                return Ok(out);
            }
        }
    }
    if path.exists() {
        let changes = converge_perms(path, &perms, why_run)?;
        out.updated |= !changes.is_empty();
        out.changes.extend(changes);
    }
    Ok(out)
}

/// `package`: apt, dnf/yum or apk (detected), with optional version pin.
pub fn package(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let name = res.name_prop("package_name");
    let version = text_prop(res, "version");
    let m = host(hpkg::detect())?;
    let installed = host(hpkg::installed_version(m, name))?;
    let why_run = ctx.why_run;
    match action {
        "install" => {
            let ok = match (&installed, &version) {
                (Some(_), None) => true,
                (Some(have), Some(want)) => have == want,
                (None, _) => false,
            };
            if ok {
                return Ok(Outcome::up_to_date());
            }
            let what = match &version {
                Some(v) => format!("install version {v} of package {name}"),
                None => format!("install package {name}"),
            };
            if !why_run {
                host(hpkg::install(m, name, version.as_deref()))?;
            }
            Ok(Outcome::changed(verb(why_run, &what)))
        }
        "upgrade" => {
            let candidate = host(hpkg::candidate_version(m, name))?;
            if installed.is_some() && (candidate.is_none() || installed == candidate) {
                return Ok(Outcome::up_to_date());
            }
            if !why_run {
                match installed {
                    Some(_) => host(hpkg::upgrade(m, name))?,
                    None => host(hpkg::install(m, name, None))?,
                }
            }
            let to = candidate.unwrap_or_else(|| "the latest version".to_string());
            Ok(Outcome::changed(verb(
                why_run,
                &format!("upgrade package {name} to {to}"),
            )))
        }
        "remove" | "purge" => {
            if installed.is_none() {
                return Ok(Outcome::up_to_date());
            }
            if !why_run {
                host(hpkg::remove(m, name))?;
            }
            Ok(Outcome::changed(verb(
                why_run,
                &format!("remove package {name}"),
            )))
        }
        other => unsupported(other),
    }
}

/// `service`: systemd or the project's supervisor; status-aware start/stop/enable/disable,
/// unconditional restart, reload when running. With `command`, the service is defined too.
pub fn service(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let name = res.name_prop("service_name");
    let def = match res.str_prop("command") {
        Some(command) => Some(hsvc::ServiceDef {
            name: name.to_string(),
            command: command.to_string(),
            cwd: res.str_prop("cwd").map(PathBuf::from),
            user: res.str_prop("user").map(str::to_string),
            env: string_map(res, "environment")?,
            reload_signal: res.str_prop("reload_signal").map(str::to_string),
        }),
        None => None,
    };
    let why_run = ctx.why_run;
    let st = host(hsvc::status(name))?;
    let (needed, what): (bool, &str) = match action {
        "start" => (!st.running, "start"),
        "stop" => (st.running, "stop"),
        "restart" => (true, "restart"),
        "reload" => (st.running, "reload"),
        "enable" => (!st.enabled, "enable"),
        "disable" => (st.enabled, "disable"),
        other => return unsupported(other),
    };
    if !needed {
        if action == "reload" {
            return Ok(Outcome {
                skipped: Some("service is not running, nothing to reload".into()),
                ..Default::default()
            });
        }
        return Ok(Outcome::up_to_date());
    }
    if !why_run {
        let d = def.as_ref();
        host(match action {
            "start" => hsvc::start(name, d),
            "stop" => hsvc::stop(name, d),
            "restart" => hsvc::restart(name, d),
            "reload" => hsvc::reload(name, d),
            "enable" => hsvc::enable(name, d),
            _ => hsvc::disable(name, d),
        })?;
    }
    Ok(Outcome::changed(verb(
        why_run,
        &format!("{what} service {name}"),
    )))
}

/// `user`.
pub fn user(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let name = res.name_prop("username");
    let spec = users::UserSpec {
        name: name.to_string(),
        uid: u32_prop(res, "uid")?,
        gid: text_prop(res, "gid"),
        home: res.str_prop("home").map(PathBuf::from),
        shell: res.str_prop("shell").map(str::to_string),
        comment: res.str_prop("comment").map(str::to_string),
        system: res.bool_prop("system", false),
        manage_home: res.bool_prop("manage_home", false),
    };
    let why_run = ctx.why_run;
    let current = host(users::get_user(name))?;
    match (action, current) {
        ("remove", None) => Ok(Outcome::up_to_date()),
        ("remove", Some(_)) => {
            if !why_run {
                host(users::remove_user(name, spec.manage_home))?;
            }
            Ok(Outcome::changed(verb(
                why_run,
                &format!("remove user {name}"),
            )))
        }
        ("create", None) => {
            if !why_run {
                host(users::create_user(&spec))?;
            }
            Ok(Outcome::changed(verb(
                why_run,
                &format!("create user {name}"),
            )))
        }
        ("modify", None) => Err(format!("user {name} does not exist, cannot modify it")),
        ("manage", None) => Ok(Outcome::up_to_date()),
        ("create" | "modify" | "manage", Some(cur)) => {
            let mut diffs = Vec::new();
            if let Some(u) = spec.uid.filter(|u| *u != cur.uid) {
                diffs.push(format!("change uid from {} to {u}", cur.uid));
            }
            if let Some(g) = &spec.gid {
                let want = match g.parse::<u32>() {
                    Ok(n) => Some(n),
                    Err(_) => host(users::get_group(g))?.map(|gi| gi.gid),
                };
                if want != Some(cur.gid) {
                    diffs.push(format!("change gid from {} to {g}", cur.gid));
                }
            }
            if let Some(h) = spec.home.as_ref().filter(|h| **h != cur.home) {
                diffs.push(format!(
                    "change home from {} to {}",
                    cur.home.display(),
                    h.display()
                ));
            }
            if let Some(s) = spec.shell.as_ref().filter(|s| **s != cur.shell) {
                diffs.push(format!("change shell from {} to {s}", cur.shell));
            }
            if spec.comment.as_ref().is_some_and(|c| *c != cur.comment) {
                diffs.push("change comment".to_string());
            }
            if diffs.is_empty() {
                return Ok(Outcome::up_to_date());
            }
            if !why_run {
                host(users::modify_user(&spec))?;
            }
            Ok(Outcome {
                updated: true,
                changes: diffs.iter().map(|d| verb(why_run, d)).collect(),
                ..Default::default()
            })
        }
        (other, _) => unsupported(other),
    }
}

/// `group`.
pub fn group(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let name = res.name_prop("group_name");
    let members = match res.props.get("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| "`members` must be user names".to_string())
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "`members` must be a list of user names, got {other}"
            ));
        }
    };
    let spec = users::GroupSpec {
        name: name.to_string(),
        gid: u32_prop(res, "gid")?,
        members,
        append: res.bool_prop("append", false),
        system: res.bool_prop("system", false),
    };
    let why_run = ctx.why_run;
    let current = host(users::get_group(name))?;
    match (action, current) {
        ("remove", None) | ("manage", None) => Ok(Outcome::up_to_date()),
        ("remove", Some(_)) => {
            if !why_run {
                host(users::remove_group(name))?;
            }
            Ok(Outcome::changed(verb(
                why_run,
                &format!("remove group {name}"),
            )))
        }
        ("create", None) => {
            if !why_run {
                host(users::create_group(&spec))?;
            }
            Ok(Outcome::changed(verb(
                why_run,
                &format!("create group {name}"),
            )))
        }
        ("modify", None) => Err(format!("group {name} does not exist, cannot modify it")),
        ("create" | "modify" | "manage", Some(cur)) => {
            let mut diffs = Vec::new();
            if let Some(g) = spec.gid.filter(|g| *g != cur.gid) {
                diffs.push(format!("change gid from {} to {g}", cur.gid));
            }
            // Members are only managed when given (Chef leaves them alone otherwise).
            if res.props.contains_key("members") {
                let missing: Vec<&String> = spec
                    .members
                    .iter()
                    .filter(|m| !cur.members.contains(m))
                    .collect();
                let extra: Vec<&String> = cur
                    .members
                    .iter()
                    .filter(|m| !spec.members.contains(m))
                    .collect();
                if !missing.is_empty() {
                    diffs.push(format!(
                        "add members {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !spec.append && !extra.is_empty() {
                    diffs.push(format!(
                        "remove members {}",
                        extra
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
            if diffs.is_empty() {
                return Ok(Outcome::up_to_date());
            }
            if !why_run {
                let mut s = spec.clone();
                if !res.props.contains_key("members") {
                    s.members = cur.members.clone();
                }
                host(users::modify_group(&s))?;
            }
            Ok(Outcome {
                updated: true,
                changes: diffs.iter().map(|d| verb(why_run, d)).collect(),
                ..Default::default()
            })
        }
        (other, _) => unsupported(other),
    }
}

/// `cron`: an entry in the user's crontab, marked `# Chef Name: <name>`.
pub fn cron(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let user = res.str_prop("user").unwrap_or("root").to_string();
    let why_run = ctx.why_run;
    match action {
        "delete" => {
            let exists = host(hcron::get_cron(&res.name, &user))?.is_some();
            if !exists {
                return Ok(Outcome::up_to_date());
            }
            if !why_run {
                host(hcron::remove_cron(&res.name, &user))?;
            }
            Ok(Outcome::changed(verb(
                why_run,
                &format!("delete crontab entry {}", res.name),
            )))
        }
        "create" => {
            let mut environment = string_map(res, "environment")?;
            for (prop, var) in [
                ("mailto", "MAILTO"),
                ("path", "PATH"),
                ("home", "HOME"),
                ("shell", "SHELL"),
            ] {
                if let Some(v) = res.str_prop(prop) {
                    environment.insert(var.to_string(), v.to_string());
                }
            }
            let field = |k: &str| text_prop(res, k).unwrap_or_else(|| "*".to_string());
            let spec = hcron::CronSpec {
                name: res.name.clone(),
                minute: field("minute"),
                hour: field("hour"),
                day: field("day"),
                month: field("month"),
                weekday: field("weekday"),
                command: res
                    .str_prop("command")
                    .ok_or("`command` is required")?
                    .to_string(),
                user: user.clone(),
                environment,
            };
            let current = host(hcron::get_cron(&res.name, &user))?;
            if current.as_ref() == Some(&spec) {
                return Ok(Outcome::up_to_date());
            }
            if !why_run {
                host(hcron::set_cron(&spec))?;
            }
            let what = if current.is_some() { "update" } else { "add" };
            Ok(Outcome::changed(verb(
                why_run,
                &format!("{what} crontab entry {} for {user}", res.name),
            )))
        }
        other => unsupported(other),
    }
}

/// `git`: sync `destination` to `revision` of `repository`.
pub fn git(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let dest = PathBuf::from(res.name_prop("destination"));
    let repo = res
        .str_prop("repository")
        .ok_or("`repository` is required")?;
    let revision = res.str_prop("revision").unwrap_or("HEAD");
    let user = res.str_prop("user");
    let current = host(hgit::current_revision(&dest))?;
    match action {
        "checkout" if current.is_some() => return Ok(Outcome::up_to_date()),
        "checkout" | "sync" => {}
        other => return unsupported(other),
    }
    let target = host(hgit::resolve_revision(repo, revision))?;
    if current.as_deref() == Some(target.as_str()) {
        return Ok(Outcome::up_to_date());
    }
    if ctx.why_run {
        return Ok(Outcome::changed(verb(
            true,
            &format!("sync {} to {revision} ({target})", dest.display()),
        )));
    }
    let s = host(hgit::sync(repo, revision, &dest, user))?;
    let what = match s.before {
        Some(b) => format!("update {} from {b} to {}", dest.display(), s.after),
        None => format!("clone {repo} into {} at {}", dest.display(), s.after),
    };
    Ok(Outcome::changed(what))
}
