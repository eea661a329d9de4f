//! Cron entries in a user's crontab, each marked with a `# Chef Name: <name>` line as Chef writes
//! them, read with `crontab -u USER -l` and written with `crontab -u USER -`.

use std::collections::BTreeMap;
use std::process::Command;

use crate::cmd;
use crate::error::{HostError, Result};

/// The marker line that starts a managed entry.
const MARKER: &str = "# Chef Name: ";

/// One cron entry: schedule, command and the environment lines written above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSpec {
    /// The entry's name, written in its marker line.
    pub name: String,
    /// Minute field, or a special schedule such as `@reboot` (the other fields are then ignored).
    pub minute: String,
    /// Hour field.
    pub hour: String,
    /// Day-of-month field.
    pub day: String,
    /// Month field.
    pub month: String,
    /// Day-of-week field.
    pub weekday: String,
    /// The command line.
    pub command: String,
    /// Whose crontab holds the entry.
    pub user: String,
    /// `KEY=VALUE` lines written between the marker and the schedule (cron applies them to every
    /// later line of the crontab, as with Chef).
    pub environment: BTreeMap<String, String>,
}

impl Default for CronSpec {
    fn default() -> Self {
        CronSpec {
            name: String::new(),
            minute: "*".into(),
            hour: "*".into(),
            day: "*".into(),
            month: "*".into(),
            weekday: "*".into(),
            command: String::new(),
            user: "root".into(),
            environment: BTreeMap::new(),
        }
    }
}

/// The entry named `name` in `user`'s crontab, if there is one.
pub fn get_cron(name: &str, user: &str) -> Result<Option<CronSpec>> {
    check_field("cron name", name, true)?;
    check_field("cron user", user, false)?;
    let lines = read_crontab(user)?;
    Ok(find_entry(&lines, name).map(|(start, end)| parse_entry(&lines[start..end], name, user)))
}

/// Writes `spec` into its user's crontab, replacing an entry of the same name in place or
/// appending one. The crontab is only rewritten when its text changes.
pub fn set_cron(spec: &CronSpec) -> Result<()> {
    check_spec(spec)?;
    let lines = read_crontab(&spec.user)?;
    let block = render_entry(spec);
    let mut new_lines = lines.clone();
    match find_entry(&lines, &spec.name) {
        Some((start, end)) => {
            new_lines.splice(start..end, block);
        }
        None => new_lines.extend(block),
    }
    if new_lines != lines {
        write_crontab(&spec.user, &new_lines)?;
    }
    Ok(())
}

/// Removes the entry named `name` from `user`'s crontab; `true` when there was one.
pub fn remove_cron(name: &str, user: &str) -> Result<bool> {
    check_field("cron name", name, true)?;
    check_field("cron user", user, false)?;
    let mut lines = read_crontab(user)?;
    let Some((start, end)) = find_entry(&lines, name) else {
        return Ok(false);
    };
    lines.drain(start..end);
    write_crontab(user, &lines)?;
    Ok(true)
}

/// The lines of `user`'s crontab; an absent crontab is empty.
fn read_crontab(user: &str) -> Result<Vec<String>> {
    let mut cmd = Command::new("crontab");
    cmd.args(["-u", user, "-l"]);
    let out = cmd::output(&mut cmd, None)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("no crontab for") {
            return Ok(Vec::new());
        }
        return Err(cmd::failure(&cmd, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Installs `lines` as `user`'s crontab.
fn write_crontab(user: &str, lines: &[String]) -> Result<()> {
    let mut text = lines.join("\n");
    // cron ignores a last line without a newline.
    text.push('\n');
    let mut cmd = Command::new("crontab");
    cmd.args(["-u", user, "-"]);
    cmd::run_with_input(&mut cmd, text.as_bytes())?;
    Ok(())
}

/// The line range `[start, end)` of the entry named `name`: its marker, the environment lines
/// after it and the schedule line ending it (Chef reads the same span).
fn find_entry(lines: &[String], name: &str) -> Option<(usize, usize)> {
    let start = lines
        .iter()
        .position(|l| l.strip_prefix(MARKER).map(str::trim_end) == Some(name))?;
    let mut end = start + 1;
    while end < lines.len() {
        let line = &lines[end];
        if is_env_line(line) {
            end += 1;
            continue;
        }
        if is_schedule_line(line) {
            end += 1;
        }
        break;
    }
    Some((start, end))
}

/// `KEY=VALUE` with a shell-variable-like key.
fn is_env_line(line: &str) -> bool {
    line.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Five schedule fields and a command, or `@special command`.
fn is_schedule_line(line: &str) -> bool {
    let line = line.trim_start();
    if line.starts_with('#') || line.is_empty() {
        return false;
    }
    if line.starts_with('@') {
        return line.split_whitespace().count() >= 2;
    }
    line.split_whitespace().count() >= 6
}

/// Reads the entry lines found by [`find_entry`] back into a spec.
fn parse_entry(lines: &[String], name: &str, user: &str) -> CronSpec {
    let mut spec = CronSpec {
        name: name.to_string(),
        user: user.to_string(),
        ..CronSpec::default()
    };
    for line in &lines[1..] {
        if is_env_line(line) {
            if let Some((k, v)) = line.split_once('=') {
                spec.environment.insert(k.to_string(), v.to_string());
            }
        } else if is_schedule_line(line) {
            let line = line.trim_start();
            let (fields, command) = if line.starts_with('@') {
                split_fields(line, 1)
            } else {
                split_fields(line, 5)
            };
            let mut f = fields.into_iter();
            if let Some(v) = f.next() {
                spec.minute = v;
            }
            for slot in [
                &mut spec.hour,
                &mut spec.day,
                &mut spec.month,
                &mut spec.weekday,
            ] {
                if let Some(v) = f.next() {
                    *slot = v;
                }
            }
            spec.command = command;
        }
    }
    spec
}

/// The first `n` whitespace-separated fields and the untouched remainder of the line.
fn split_fields(line: &str, n: usize) -> (Vec<String>, String) {
    let mut fields = Vec::with_capacity(n);
    let mut rest = line;
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    (fields, rest.trim_start().to_string())
}

/// The crontab lines for `spec`, as Chef writes them.
fn render_entry(spec: &CronSpec) -> Vec<String> {
    let mut lines = vec![format!("{MARKER}{}", spec.name)];
    lines.extend(spec.environment.iter().map(|(k, v)| format!("{k}={v}")));
    if spec.minute.starts_with('@') {
        lines.push(format!("{} {}", spec.minute, spec.command));
    } else {
        lines.push(format!(
            "{} {} {} {} {} {}",
            spec.minute, spec.hour, spec.day, spec.month, spec.weekday, spec.command
        ));
    }
    lines
}

/// Validates every part of a spec so a bad value can never corrupt the crontab.
fn check_spec(spec: &CronSpec) -> Result<()> {
    check_field("cron name", &spec.name, true)?;
    check_field("cron user", &spec.user, false)?;
    for (what, v) in [
        ("cron minute", &spec.minute),
        ("cron hour", &spec.hour),
        ("cron day", &spec.day),
        ("cron month", &spec.month),
        ("cron weekday", &spec.weekday),
    ] {
        check_field(what, v, false)?;
    }
    check_field("cron command", &spec.command, true)?;
    for (k, v) in &spec.environment {
        if !is_env_line(&format!("{k}=")) {
            return Err(HostError::invalid(
                "cron environment",
                format!("`{}` is not a variable name", k.escape_debug()),
            ));
        }
        if v.contains(['\n', '\r']) {
            return Err(HostError::invalid(
                "cron environment",
                format!("the value of {k} contains a newline"),
            ));
        }
    }
    Ok(())
}

/// A non-empty single-line value; `spaces` allows inner spaces.
fn check_field(what: &str, value: &str, spaces: bool) -> Result<()> {
    if value.trim().is_empty() {
        return Err(HostError::invalid(what, "it is empty"));
    }
    if value.contains(['\n', '\r']) {
        return Err(HostError::invalid(what, "it contains a newline"));
    }
    if !spaces && value.contains(char::is_whitespace) {
        return Err(HostError::invalid(
            what,
            format!("`{}` contains whitespace", value.escape_debug()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn finds_and_parses_an_entry_between_others() {
        let tab = lines(
            "MAILTO=ops\n# Chef Name: backup\nPATH=/usr/bin:/bin\nHOME=/srv\n30 2 * * 1-5 /usr/local/bin/backup  --all\n# Chef Name: other\n@reboot /bin/true\n",
        );
        let (s, e) = find_entry(&tab, "backup").unwrap();
        assert_eq!((s, e), (1, 5));
        let spec = parse_entry(&tab[s..e], "backup", "root");
        assert_eq!(spec.minute, "30");
        assert_eq!(spec.hour, "2");
        assert_eq!(spec.weekday, "1-5");
        assert_eq!(spec.command, "/usr/local/bin/backup  --all");
        assert_eq!(
            spec.environment.get("HOME").map(String::as_str),
            Some("/srv")
        );
        let (s, e) = find_entry(&tab, "other").unwrap();
        let other = parse_entry(&tab[s..e], "other", "root");
        assert_eq!(other.minute, "@reboot");
        assert_eq!(other.command, "/bin/true");
    }

    #[test]
    fn render_round_trips() {
        let mut spec = CronSpec {
            name: "job one".into(),
            minute: "*/5".into(),
            command: "echo hi > /tmp/x".into(),
            ..CronSpec::default()
        };
        spec.environment.insert("FOO".into(), "bar baz".into());
        let block = render_entry(&spec);
        let (s, e) = find_entry(&block, "job one").unwrap();
        assert_eq!(parse_entry(&block[s..e], "job one", "root"), spec);
    }

    #[test]
    fn newlines_are_rejected() {
        let spec = CronSpec {
            name: "x".into(),
            command: "true\n* * * * * rm -rf /".into(),
            ..CronSpec::default()
        };
        assert!(matches!(
            check_spec(&spec),
            Err(HostError::InvalidInput { .. })
        ));
        let spec = CronSpec {
            name: "x".into(),
            hour: "1 2".into(),
            command: "true".into(),
            ..CronSpec::default()
        };
        assert!(check_spec(&spec).is_err());
    }
}
