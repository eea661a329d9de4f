//! File-like resources (`file`, `cookbook_file`, `directory`, `link`, and the write half of
//! `template`): stat/read the current state, compare, write atomically (temporary file in the
//! same directory, then rename) with mode and ownership, and produce a diff.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::Value;

use super::{Ctx, Outcome, verb};
use crate::resource::Resource;

/// The most diff text kept in a report entry.
const MAX_DIFF: usize = 16 * 1024;

/// Ownership and permissions requested by a resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Perms {
    /// Permission bits.
    pub mode: Option<u32>,
    /// Owner uid.
    pub uid: Option<u32>,
    /// Group gid.
    pub gid: Option<u32>,
}

impl Perms {
    /// Reads `mode`, `owner` and `group` from a resource.
    pub fn from_resource(res: &Resource) -> Result<Perms, String> {
        let mode = match res.props.get("mode") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_mode(v)?),
        };
        let uid = match res.props.get("owner") {
            None | Some(Value::Null) => None,
            Some(v) => Some(resolve_id(v, "/etc/passwd", "user")?),
        };
        let gid = match res.props.get("group") {
            None | Some(Value::Null) => None,
            Some(v) => Some(resolve_id(v, "/etc/group", "group")?),
        };
        Ok(Perms { mode, uid, gid })
    }

    /// Describes the differences from the current metadata.
    fn changes(&self, md: &std::fs::Metadata) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(m) = self.mode
            && md.mode() & 0o7777 != m
        {
            out.push(format!(
                "change mode from '{:04o}' to '{m:04o}'",
                md.mode() & 0o7777
            ));
        }
        if let Some(u) = self.uid
            && md.uid() != u
        {
            out.push(format!("change owner from uid {} to uid {u}", md.uid()));
        }
        if let Some(g) = self.gid
            && md.gid() != g
        {
            out.push(format!("change group from gid {} to gid {g}", md.gid()));
        }
        out
    }

    /// Applies mode and ownership to an existing path.
    fn apply(&self, path: &Path) -> Result<(), String> {
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::lchown(path, self.uid, self.gid)
                .map_err(|e| format!("cannot change ownership of {}: {e}", path.display()))?;
        }
        if let Some(m) = self.mode {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(m))
                .map_err(|e| format!("cannot change mode of {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// Brings mode and ownership of an existing path to `perms`; returns the changes (made, or
/// that would be made in why-run).
pub fn converge_perms(path: &Path, perms: &Perms, why_run: bool) -> Result<Vec<String>, String> {
    let md = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    let changes = perms.changes(&md);
    if !changes.is_empty() && !why_run {
        perms.apply(path)?;
    }
    Ok(changes.iter().map(|c| verb(why_run, c)).collect())
}

/// Parses `"0644"`, `"644"` (octal strings) or an integer (taken as the numeric mode, so
/// Starlark's `0o644` works).
pub fn parse_mode(v: &Value) -> Result<u32, String> {
    let m = match v {
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| format!("invalid mode {s:?}: expected an octal string like \"0644\""))?,
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("invalid mode {n}"))?,
        other => {
            return Err(format!(
                "invalid mode {other}: expected a string like \"0644\""
            ));
        }
    };
    if m > 0o7777 {
        return Err(format!("invalid mode {m:o}: larger than 07777"));
    }
    Ok(m)
}

/// Resolves a user or group name (or numeric id) through /etc/passwd or /etc/group.
pub fn resolve_id(v: &Value, db: &str, what: &str) -> Result<u32, String> {
    let name = match v {
        Value::Number(n) => {
            return n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("invalid {what} id {n}"));
        }
        Value::String(s) => s,
        other => return Err(format!("invalid {what} {other}")),
    };
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    lookup_id(db, name).ok_or_else(|| format!("{what} `{name}` does not exist (not in {db})"))
}

/// Finds the numeric id (third field) of `name` in a passwd/group style file.
pub fn lookup_id(db: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(db).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

/// A unified diff between two contents, or a note when it cannot or should not be shown.
pub fn diff(old: &[u8], new: &[u8], sensitive: bool) -> Option<String> {
    if old == new {
        return None;
    }
    if sensitive {
        return Some("(diff suppressed: sensitive resource)".to_string());
    }
    let (Ok(o), Ok(n)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return Some("(diff suppressed: binary content)".to_string());
    };
    let mut text = similar::TextDiff::from_lines(o, n)
        .unified_diff()
        .context_radius(3)
        .header("current", "new")
        .to_string();
    if text.len() > MAX_DIFF {
        let mut cut = MAX_DIFF;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n(diff truncated)");
    }
    Some(text)
}

/// Converges a regular file to `content` (None: leave existing content alone) and `perms`.
/// This is the one place that writes file content, shared by file, template, cookbook_file.
pub fn converge_content(
    path: &Path,
    content: Option<&[u8]>,
    perms: &Perms,
    action: &str,
    sensitive: bool,
    why_run: bool,
) -> Result<Outcome, String> {
    let shown = path.display();
    let current = match std::fs::symlink_metadata(path) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot stat {shown}: {e}")),
    };
    match action {
        "delete" => {
            return match current {
                None => Ok(Outcome::up_to_date()),
                Some(md) if md.is_dir() => {
                    Err(format!("{shown} is a directory; file cannot delete it"))
                }
                Some(_) => {
                    if !why_run {
                        std::fs::remove_file(path)
                            .map_err(|e| format!("cannot delete {shown}: {e}"))?;
                    }
                    Ok(Outcome::changed(verb(
                        why_run,
                        &format!("delete file {shown}"),
                    )))
                }
            };
        }
        "create" | "create_if_missing" | "touch" => {}
        other => return Err(format!("unsupported action `{other}`")),
    }
    if let Some(md) = &current {
        if md.is_dir() {
            return Err(format!("{shown} is a directory, not a file"));
        }
        if md.file_type().is_symlink() {
            // Chef refuses to replace a symlink unless manage_symlink_source is used; follow it for reads.
            if std::fs::metadata(path).is_err() {
                return Err(format!("{shown} is a dangling symlink"));
            }
        }
    }
    let mut out = Outcome::default();
    let manage_content = !(action == "create_if_missing" && current.is_some());
    let old = match (&current, content) {
        (Some(_), Some(_)) if manage_content => {
            Some(std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?)
        }
        _ => None,
    };
    let needs_write = match (&current, content) {
        (None, _) => true,
        (Some(_), Some(new)) if manage_content => old.as_deref() != Some(new),
        _ => false,
    };
    if needs_write {
        let new = content.unwrap_or_default();
        if current.is_none() {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            // Why-run assumes an earlier resource would have created the parent, as Chef does.
            if !parent.is_dir() && !why_run {
                return Err(format!(
                    "parent directory {} does not exist, cannot create {shown}",
                    parent.display()
                ));
            }
            out.changes
                .push(verb(why_run, &format!("create new file {shown}")));
        } else {
            out.changes
                .push(verb(why_run, &format!("update content of file {shown}")));
        }
        out.diff = diff(old.as_deref().unwrap_or_default(), new, sensitive);
        if current.is_some() && out.diff.is_none() {
            out.diff = None;
        }
        let meta_changes = current
            .as_ref()
            .map(|md| perms.changes(md))
            .unwrap_or_default();
        out.changes
            .extend(meta_changes.iter().map(|c| verb(why_run, c)));
        if !why_run {
            write_atomic(path, new, perms, current.as_ref())?;
        }
        out.updated = true;
    } else if let Some(md) = &current {
        let changes = perms.changes(md);
        if !changes.is_empty() {
            if !why_run {
                perms.apply(path)?;
            }
            out.changes.extend(changes.iter().map(|c| verb(why_run, c)));
            out.updated = true;
        }
    }
    if action == "touch" {
        if !why_run {
            let f = std::fs::File::options()
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot touch {shown}: {e}"))?;
            f.set_modified(std::time::SystemTime::now())
                .map_err(|e| format!("cannot touch {shown}: {e}"))?;
        }
        out.changes
            .push(verb(why_run, &format!("update utime on file {shown}")));
        out.updated = true;
    }
    Ok(out)
}

/// Writes `content` to a temporary file beside `path`, sets mode and owner, then renames it
/// over `path`, so readers never see a half-written file. Existing mode and ownership are kept
/// unless the resource asks for others.
fn write_atomic(
    path: &Path,
    content: &[u8],
    perms: &Perms,
    current: Option<&std::fs::Metadata>,
) -> Result<(), String> {
    let shown = path.display();
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".opsworks-")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot create a temporary file in {}: {e}", dir.display()))?;
    tmp.write_all(content)
        .map_err(|e| format!("cannot write {shown}: {e}"))?;
    let mode = perms
        .mode
        .or(current.map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    let uid = perms.uid.or(current.map(|m| m.uid()));
    let gid = perms.gid.or(current.map(|m| m.gid()));
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(tmp.as_file(), uid, gid)
            .map_err(|e| format!("cannot change ownership of {shown}: {e}"))?;
    }
    // chmod after chown: chown clears setuid/setgid bits.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot change mode of {shown}: {e}"))?;
    // No fsync per file: like Chef's file provider we rely on rename-over being ordered after the
    // data (ext4 auto_da_alloc, xfs, btrfs); an fsync per resource made a 100-file converge ~7x slower.
    tmp.persist(path)
        .map_err(|e| format!("cannot replace {shown}: {}", e.error))?;
    Ok(())
}

/// `file`.
pub fn file(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let path = Path::new(res.name_prop("path"));
    let content = match res.props.get("content") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        Some(other) => return Err(format!("`content` must be a string, got {other}")),
    };
    let perms = Perms::from_resource(res)?;
    converge_content(
        path,
        content.as_deref(),
        &perms,
        action,
        res.sensitive,
        ctx.why_run,
    )
}

/// `cookbook_file`: content from the cookbook's `files/` folder.
pub fn cookbook_file(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let path = Path::new(res.name_prop("path"));
    let content = if action == "delete" {
        None
    } else {
        let default_source = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let source = res
            .str_prop("source")
            .map(str::to_string)
            .unwrap_or(default_source);
        let cb_name = res.str_prop("cookbook").unwrap_or(&res.cookbook);
        let cb = ctx
            .cookbooks
            .get(cb_name)
            .ok_or_else(|| format!("cookbook `{cb_name}` is not part of this run"))?;
        let src = cb.find_asset("files", &source).ok_or_else(|| {
            format!(
                "cookbook file `{source}` not found in {}/files",
                cb.dir.display()
            )
        })?;
        Some(std::fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?)
    };
    let perms = Perms::from_resource(res)?;
    converge_content(
        path,
        content.as_deref(),
        &perms,
        action,
        res.sensitive,
        ctx.why_run,
    )
}

/// `directory`.
pub fn directory(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let path = Path::new(res.name_prop("path"));
    let shown = path.display();
    let recursive = res.bool_prop("recursive", false);
    let why_run = ctx.why_run;
    let current = match std::fs::symlink_metadata(path) {
        Ok(md) => Some(md),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot stat {shown}: {e}")),
    };
    let perms = Perms::from_resource(res)?;
    match action {
        "create" => match current {
            Some(md) if !md.is_dir() => Err(format!("{shown} exists and is not a directory")),
            Some(md) => {
                let changes = perms.changes(&md);
                if changes.is_empty() {
                    return Ok(Outcome::up_to_date());
                }
                if !why_run {
                    perms.apply(path)?;
                }
                Ok(Outcome {
                    updated: true,
                    changes: changes.iter().map(|c| verb(why_run, c)).collect(),
                    ..Default::default()
                })
            }
            None => {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !recursive && !parent.is_dir() && !why_run {
                    return Err(format!(
                        "parent directory {} does not exist, cannot create {shown} (use recursive = True)",
                        parent.display()
                    ));
                }
                if !why_run {
                    let r = if recursive {
                        std::fs::create_dir_all(path)
                    } else {
                        std::fs::create_dir(path)
                    };
                    r.map_err(|e| format!("cannot create directory {shown}: {e}"))?;
                    let mode = Perms {
                        mode: perms.mode.or(Some(0o755)),
                        ..perms.clone()
                    };
                    mode.apply(path)?;
                }
                Ok(Outcome::changed(verb(
                    why_run,
                    &format!("create new directory {shown}"),
                )))
            }
        },
        "delete" => match current {
            None => Ok(Outcome::up_to_date()),
            Some(md) if !md.is_dir() => Err(format!("{shown} is not a directory")),
            Some(_) => {
                if !why_run {
                    let r = if recursive {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_dir(path)
                    };
                    r.map_err(|e| format!("cannot delete directory {shown}: {e}"))?;
                }
                Ok(Outcome::changed(verb(
                    why_run,
                    &format!("delete directory {shown}"),
                )))
            }
        },
        other => Err(format!("unsupported action `{other}`")),
    }
}

/// `link` (symbolic by default, `link_type = "hard"` for hard links).
pub fn link(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let path = Path::new(res.name_prop("target_file"));
    let shown = path.display();
    let why_run = ctx.why_run;
    let hard = match res.str_prop("link_type").unwrap_or("symbolic") {
        "symbolic" => false,
        "hard" => true,
        other => {
            return Err(format!(
                "invalid link_type `{other}`: expected \"symbolic\" or \"hard\""
            ));
        }
    };
    let current = std::fs::symlink_metadata(path).ok();
    match action {
        "delete" => match current {
            Some(md) if md.file_type().is_symlink() || (hard && md.is_file()) => {
                if !why_run {
                    std::fs::remove_file(path)
                        .map_err(|e| format!("cannot delete link {shown}: {e}"))?;
                }
                Ok(Outcome::changed(verb(
                    why_run,
                    &format!("delete link {shown}"),
                )))
            }
            Some(_) if !hard => Err(format!("{shown} exists and is not a symbolic link")),
            _ => Ok(Outcome::up_to_date()),
        },
        "create" => {
            let to = res.str_prop("to").ok_or("`to` is required")?;
            let in_place = match &current {
                None => false,
                Some(md) if !hard => {
                    md.file_type().is_symlink()
                        && std::fs::read_link(path).is_ok_and(|t| t == Path::new(to))
                }
                Some(md) => {
                    std::fs::metadata(to).is_ok_and(|t| t.ino() == md.ino() && t.dev() == md.dev())
                }
            };
            if let Some(md) = &current
                && md.is_dir()
            {
                return Err(format!(
                    "{shown} is a directory, cannot replace it with a link"
                ));
            }
            let perms = Perms::from_resource(res)?;
            if in_place {
                let md = current.as_ref().ok_or("link vanished")?;
                let changes: Vec<String> = perms
                    .changes(md)
                    .into_iter()
                    .filter(|c| !c.starts_with("change mode"))
                    .collect();
                if changes.is_empty() {
                    return Ok(Outcome::up_to_date());
                }
                if !why_run {
                    Perms {
                        mode: None,
                        ..perms
                    }
                    .apply(path)?;
                }
                return Ok(Outcome {
                    updated: true,
                    changes: changes.iter().map(|c| verb(why_run, c)).collect(),
                    ..Default::default()
                });
            }
            if !why_run {
                // Create beside the target and rename over it so the switch is atomic.
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let tmp = dir.join(format!(".opsworks-link-{}", std::process::id()));
                let _ = std::fs::remove_file(&tmp);
                let r = if hard {
                    std::fs::hard_link(to, &tmp)
                } else {
                    std::os::unix::fs::symlink(to, &tmp)
                };
                r.map_err(|e| format!("cannot create link {shown} -> {to}: {e}"))?;
                std::fs::rename(&tmp, path)
                    .map_err(|e| format!("cannot create link {shown}: {e}"))?;
                Perms {
                    mode: None,
                    ..perms
                }
                .apply(path)?;
            }
            let kind = if hard { "hard" } else { "symlink" };
            Ok(Outcome::changed(verb(
                why_run,
                &format!("create {kind} from {shown} to {to}"),
            )))
        }
        other => Err(format!("unsupported action `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes_parse_as_octal_strings_or_numbers() {
        assert_eq!(parse_mode(&json!("0644")), Ok(0o644));
        assert_eq!(parse_mode(&json!("755")), Ok(0o755));
        assert_eq!(parse_mode(&json!(0o600)), Ok(0o600));
        assert!(parse_mode(&json!("rwx")).is_err());
        assert!(parse_mode(&json!("77777")).is_err());
    }

    #[test]
    fn ids_resolve_from_the_system_databases() {
        assert_eq!(resolve_id(&json!("root"), "/etc/passwd", "user"), Ok(0));
        assert_eq!(resolve_id(&json!(12), "/etc/passwd", "user"), Ok(12));
        assert!(
            resolve_id(&json!("no-such-user-xyz"), "/etc/passwd", "user")
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn diffs_are_unified_and_suppressed_when_sensitive() {
        let d = diff(b"a\nb\n", b"a\nc\n", false).unwrap();
        assert!(d.contains("-b") && d.contains("+c"), "{d}");
        assert_eq!(
            diff(b"x", b"y", true).unwrap(),
            "(diff suppressed: sensitive resource)"
        );
        assert_eq!(diff(b"same", b"same", false), None);
    }

    #[test]
    fn content_is_written_atomically_and_second_run_is_a_no_op() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f.conf");
        let perms = Perms {
            mode: Some(0o640),
            uid: None,
            gid: None,
        };
        let first = converge_content(&p, Some(b"hello\n"), &perms, "create", false, false).unwrap();
        assert!(first.updated);
        assert_eq!(std::fs::read(&p).unwrap(), b"hello\n");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let second =
            converge_content(&p, Some(b"hello\n"), &perms, "create", false, false).unwrap();
        assert!(!second.updated);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
        // Only the target file remains: no temporary files left behind.
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn why_run_reports_but_does_not_write() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        let o = converge_content(&p, Some(b"x"), &Perms::default(), "create", false, true).unwrap();
        assert!(o.updated);
        assert!(o.changes[0].starts_with("would create"), "{:?}", o.changes);
        assert!(!p.exists());
    }

    #[test]
    fn missing_parent_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("nope/f");
        let e = converge_content(&p, Some(b"x"), &Perms::default(), "create", false, false)
            .unwrap_err();
        assert!(e.contains("parent directory"), "{e}");
    }
}
