//! Command resources (`execute`, `bash`), `log`, and the shell runner that string guards use.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::files::resolve_id;
use super::{Ctx, Outcome, verb};
use crate::resource::Resource;

/// Options for running a command.
#[derive(Debug, Clone, Default)]
pub struct CommandSpec {
    /// argv.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Run as this uid / gid.
    pub uid: Option<u32>,
    /// Group id.
    pub gid: Option<u32>,
    /// Kill after this long.
    pub timeout: Option<Duration>,
    /// Written to stdin.
    pub input: Option<String>,
    /// Also copy the output, line by line, to this process's stdout as it comes (Chef's
    /// `live_stream`): the converge's own output, which the agent keeps as the command's log.
    pub live: bool,
}

/// A finished command.
#[derive(Debug, Clone)]
pub struct CommandResult {
    /// Exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

/// Runs a command to completion, capturing output, killing it on timeout.
pub fn run(spec: &CommandSpec) -> Result<CommandResult, String> {
    let (prog, args) = spec.argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .envs(&spec.env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.stdin(if spec.input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    if let Some(g) = spec.gid {
        cmd.gid(g);
    }
    if let Some(u) = spec.uid {
        cmd.uid(u);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {prog}: {e}"))?;
    if let (Some(input), Some(mut stdin)) = (&spec.input, child.stdin.take()) {
        let input = input.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    // Drain both pipes in threads so a chatty command cannot block on a full pipe.
    let live = spec.live;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let mut r = std::io::BufReader::new(r);
                let mut line = Vec::new();
                while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                    if live {
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(b"    | ");
                        let _ = out.write_all(&line);
                        if !line.ends_with(b"\n") {
                            let _ = out.write_all(b"\n");
                        }
                        let _ = out.flush();
                    }
                    buf.append(&mut line);
                }
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        match child
            .try_wait()
            .map_err(|e| format!("cannot wait for {prog}: {e}"))?
        {
            Some(s) => break s,
            None => {
                if spec.timeout.is_some_and(|t| start.elapsed() > t) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "command timed out after {} s",
                        spec.timeout.map(|t| t.as_secs()).unwrap_or_default()
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    Ok(CommandResult {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Runs a guard command with `sh -c`; true when it exits 0.
pub fn guard_command(command: &str) -> Result<bool, String> {
    let r = run(&CommandSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), command.into()],
        ..Default::default()
    })?;
    Ok(r.code == Some(0))
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn spec_from(res: &Resource, argv: Vec<String>) -> Result<CommandSpec, String> {
    let env = match res.props.get("environment") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect(),
        Some(other) => return Err(format!("`environment` must be a dict, got {other}")),
    };
    let uid = res
        .props
        .get("user")
        .filter(|v| !v.is_null())
        .map(|v| resolve_id(v, "/etc/passwd", "user"))
        .transpose()?;
    let gid = res
        .props
        .get("group")
        .filter(|v| !v.is_null())
        .map(|v| resolve_id(v, "/etc/group", "group"))
        .transpose()?;
    let timeout = match res.props.get("timeout") {
        None | Some(Value::Null) => Some(Duration::from_secs(3600)),
        Some(v) => Some(Duration::from_secs_f64(
            v.as_f64()
                .filter(|t| *t > 0.0)
                .ok_or("`timeout` must be a positive number of seconds")?,
        )),
    };
    Ok(CommandSpec {
        argv,
        cwd: res.str_prop("cwd").map(str::to_string),
        env,
        uid,
        gid,
        timeout,
        input: res.str_prop("input").map(str::to_string),
        // A sensitive command's output stays out of the log, streamed or not.
        live: res.bool_prop("live_stream", false) && !res.sensitive,
    })
}

fn allowed_returns(res: &Resource) -> Result<Vec<i64>, String> {
    match res.props.get("returns") {
        None | Some(Value::Null) => Ok(vec![0]),
        Some(Value::Number(n)) => Ok(vec![n.as_i64().ok_or("`returns` must be an integer")?]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| "`returns` must be integers".to_string())
            })
            .collect(),
        Some(other) => Err(format!(
            "`returns` must be an integer or a list, got {other}"
        )),
    }
}

fn run_checked(
    res: &Resource,
    what: &str,
    argv: Vec<String>,
    ctx: &Ctx<'_>,
) -> Result<Outcome, String> {
    if let Some(creates) = res.str_prop("creates")
        && std::path::Path::new(creates).exists()
    {
        return Ok(Outcome {
            skipped: Some(format!("creates {creates}")),
            ..Default::default()
        });
    }
    let shown = if res.sensitive {
        "(sensitive command)".to_string()
    } else {
        format!("\"{what}\"")
    };
    if ctx.why_run {
        return Ok(Outcome::changed(verb(true, &format!("execute {shown}"))));
    }
    let returns = allowed_returns(res)?;
    let r = run(&spec_from(res, argv)?)?;
    let code = r.code.map(i64::from);
    if code.is_none_or(|c| !returns.contains(&c)) {
        let status = match r.code {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        let mut msg = format!("command {shown} {status} (expected {returns:?})");
        if !res.sensitive {
            for (name, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
                if !text.trim().is_empty() {
                    msg.push_str(&format!(
                        "\n---- {name} (last lines) ----\n{}",
                        tail(text, 20)
                    ));
                }
            }
        }
        return Err(msg);
    }
    Ok(Outcome::changed(format!("execute {shown}")))
}

/// `execute`: runs `command` (default: the name) with `sh -c`.
pub fn execute(res: &Resource, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let command = res.name_prop("command").to_string();
    run_checked(
        res,
        &command,
        vec!["/bin/sh".into(), "-c".into(), command.clone()],
        ctx,
    )
}

/// `bash`: runs `code` with `bash` (plus `flags`).
pub fn bash(res: &Resource, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let code = res
        .str_prop("code")
        .ok_or("`code` is required")?
        .to_string();
    let mut argv = vec!["bash".to_string()];
    if let Some(f) = res.str_prop("flags") {
        argv.extend(f.split_whitespace().map(str::to_string));
    }
    argv.extend(["-c".to_string(), code]);
    run_checked(res, &format!("bash[{}]", res.name), argv, ctx)
}

/// `log`: writes its message to the report (always "updated", as in Chef).
pub fn log(res: &Resource, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let msg = res.name_prop("message");
    let level = res.str_prop("level").unwrap_or("info");
    if !matches!(level, "debug" | "info" | "warn" | "error" | "fatal") {
        return Err(format!("invalid log level `{level}`"));
    }
    let shown = if res.sensitive { "(sensitive)" } else { msg };
    Ok(Outcome::changed(verb(
        ctx.why_run,
        &format!("log [{level}] {shown}"),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_commands_use_the_exit_status() {
        assert_eq!(guard_command("true"), Ok(true));
        assert_eq!(guard_command("exit 3"), Ok(false));
        assert_eq!(guard_command("test -d /"), Ok(true));
    }

    #[test]
    fn commands_capture_output_and_time_out() {
        let r = run(&CommandSpec {
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo out; echo err >&2; cat".into(),
            ],
            input: Some("in".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.code, Some(0));
        assert_eq!(r.stdout, "out\nin");
        assert_eq!(r.stderr, "err\n");
        let e = run(&CommandSpec {
            argv: vec!["sleep".into(), "5".into()],
            timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.contains("timed out"), "{e}");
    }
}
