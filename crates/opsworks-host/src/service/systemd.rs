//! The systemd backend: unit files in /etc/systemd/system written from a `ServiceDef`, and
//! `systemctl` for everything else.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Action, ServiceDef, ServiceStatus, signal_name};
use crate::cmd;
use crate::error::{HostError, Result};

/// Where unit files written from definitions go.
const UNIT_DIR: &str = "/etc/systemd/system";

/// The state of `name.service` from `systemctl show`.
pub(super) fn status(name: &str) -> Result<ServiceStatus> {
    let mut cmd = Command::new("systemctl");
    cmd.args([
        "show",
        "--property=ActiveState,MainPID,UnitFileState",
        "--",
        &unit_name(name),
    ]);
    let out = cmd::run(&mut cmd)?;
    Ok(parse_show(&String::from_utf8_lossy(&out.stdout)))
}

/// Writes the unit when a definition is given, then runs the systemctl verb for `action`.
pub(super) fn act(name: &str, def: Option<&ServiceDef>, action: Action) -> Result<()> {
    if let Some(def) = def {
        write_unit(def)?;
    }
    let verb = match action {
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
        Action::Reload => "reload",
        Action::Enable => "enable",
        Action::Disable => "disable",
    };
    let mut cmd = Command::new("systemctl");
    cmd.args([verb, "--", &unit_name(name)]);
    cmd::run(&mut cmd)?;
    Ok(())
}

/// Writes `/etc/systemd/system/<name>.service` when its content differs, then reloads systemd;
/// `true` when it wrote.
pub(super) fn write_unit(def: &ServiceDef) -> Result<bool> {
    let path = PathBuf::from(UNIT_DIR).join(unit_name(&def.name));
    let text = render_unit(def)?;
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    write_atomic(
        &path,
        text.as_bytes(),
        if def.env.is_empty() { 0o644 } else { 0o600 },
    )?;
    let mut cmd = Command::new("systemctl");
    cmd.arg("daemon-reload");
    cmd::run(&mut cmd)?;
    Ok(true)
}

/// `name.service`.
fn unit_name(name: &str) -> String {
    format!("{name}.service")
}

/// The unit file for a definition. The environment goes into the file (mode 0600 then), so a
/// secret never appears on a command line.
pub(crate) fn render_unit(def: &ServiceDef) -> Result<String> {
    let mut u = String::new();
    u.push_str("# Written by opsworks from a service definition; changes here are overwritten.\n");
    u.push_str("[Unit]\n");
    u.push_str(&format!(
        "Description={} (opsworks)\n",
        escape_specifiers(&def.name)
    ));
    u.push_str("After=network.target\n\n[Service]\nType=simple\n");
    let argv = def.argv();
    let exec: Vec<String> = argv.iter().map(|a| quote_exec(a)).collect();
    u.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    let sig = signal_name(def.reload_signal_number()?);
    u.push_str(&format!("ExecReload=/bin/kill -{sig} $MAINPID\n"));
    if let Some(cwd) = &def.cwd {
        u.push_str(&format!(
            "WorkingDirectory={}\n",
            escape_specifiers(&cwd.to_string_lossy())
        ));
    }
    if let Some(user) = &def.user {
        u.push_str(&format!("User={}\n", escape_specifiers(user)));
    }
    for (k, v) in &def.env {
        u.push_str(&format!(
            "Environment={}\n",
            quote_value(&format!("{k}={v}"))
        ));
    }
    // Match the supervisor: restart what dies, kill the whole group on stop.
    u.push_str("Restart=always\nRestartSec=1\nKillMode=control-group\nTimeoutStopSec=10\n");
    u.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    Ok(u)
}

/// `%` starts a systemd specifier; a literal one is `%%`.
fn escape_specifiers(s: &str) -> String {
    s.replace('%', "%%")
}

/// A double-quoted systemd value with C-style escapes.
fn quote_value(s: &str) -> String {
    let mut out = String::from("\"");
    for c in escape_specifiers(s).chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An `ExecStart=` word: quoted, and `$` doubled so systemd does not expand it (the shell, when
/// there is one, still sees a single `$`).
fn quote_exec(s: &str) -> String {
    quote_value(s).replace('$', "$$")
}

/// Parses `systemctl show` output into a status.
fn parse_show(text: &str) -> ServiceStatus {
    let mut st = ServiceStatus::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("ActiveState", v)) => st.running = matches!(v, "active" | "reloading"),
            Some(("MainPID", v)) => st.pid = v.parse().ok().filter(|p| *p != 0),
            Some(("UnitFileState", v)) => {
                st.enabled = matches!(v, "enabled" | "enabled-runtime" | "alias" | "static")
            }
            _ => {}
        }
    }
    if !st.running {
        st.pid = None;
    }
    st
}

/// Writes a file through a temporary file and a rename.
fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut tmp = tempfile::Builder::new()
        .prefix(".opsworks-")
        .tempfile_in(dir)
        .map_err(|e| HostError::io("cannot create a temporary file in", dir, e))?;
    tmp.write_all(data)
        .and_then(|_| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| HostError::io("cannot write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| HostError::io("cannot replace", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_quotes_commands_and_environment() {
        let mut def = ServiceDef {
            name: "web".into(),
            command: "echo \"$HOME\" 100%".into(),
            user: Some("www-data".into()),
            cwd: Some("/srv/web".into()),
            reload_signal: Some("USR1".into()),
            ..ServiceDef::default()
        };
        def.env.insert("GREETING".into(), "a \"b\"".into());
        let unit = render_unit(&def).unwrap();
        assert!(
            unit.contains(r#"ExecStart="/bin/sh" "-c" "echo \"$$HOME\" 100%%""#),
            "{unit}"
        );
        assert!(
            unit.contains("ExecReload=/bin/kill -USR1 $MAINPID"),
            "{unit}"
        );
        assert!(unit.contains("User=www-data\n"), "{unit}");
        assert!(unit.contains("WorkingDirectory=/srv/web\n"), "{unit}");
        assert!(unit.contains(r#"Environment="GREETING=a \"b\"""#), "{unit}");
    }

    #[test]
    fn show_output_is_parsed() {
        let st = parse_show("ActiveState=active\nMainPID=42\nUnitFileState=enabled\n");
        assert_eq!(
            st,
            ServiceStatus {
                running: true,
                enabled: true,
                pid: Some(42)
            }
        );
        let st = parse_show("ActiveState=inactive\nMainPID=0\nUnitFileState=disabled\n");
        assert_eq!(st, ServiceStatus::default());
    }
}
