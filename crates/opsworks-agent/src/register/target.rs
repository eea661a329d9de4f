//! The machine `opsworks register` works on: reached with the OpenSSH client (the user's key or
//! agent, one shared connection for every step) or this machine itself (`--local`). Commands run
//! as the login user, or as root through `sudo -n` when the user is not root.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use opsworks_env as env;

use super::RegisterError;

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Whether it exited 0.
    pub ok: bool,
    /// Its exit code (255 from ssh itself: the connection failed).
    pub code: Option<i32>,
}

/// The machine being registered.
pub enum Target {
    /// A machine reached over SSH.
    Ssh(Ssh),
    /// This machine.
    Local,
}

/// An SSH destination and the options every step uses.
pub struct Ssh {
    host: String,
    user: Option<String>,
    key: Option<PathBuf>,
    /// The shared connection's control socket lives here (removed at the end).
    control: tempfile::TempDir,
}

/// Single-quotes a word for the remote shell.
pub fn quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl Ssh {
    /// An SSH target; `key` must be a readable file.
    pub fn new(host: &str, user: Option<&str>, key: Option<&Path>) -> Result<Ssh, RegisterError> {
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(RegisterError::Usage(format!(
                "{host:?} is not a host name or address"
            )));
        }
        if let Some(k) = key {
            std::fs::File::open(k).map_err(|e| {
                RegisterError::Usage(format!(
                    "cannot read the SSH private key {}: {e}",
                    k.display()
                ))
            })?;
        }
        let control = tempfile::Builder::new()
            .prefix("opsworks-ssh-")
            .tempdir()
            .map_err(|e| RegisterError::Local(format!("creating a temporary directory: {e}")))?;
        Ok(Ssh {
            host: host.to_string(),
            user: user.map(str::to_string),
            key: key.map(Path::to_path_buf),
            control,
        })
    }

    /// `user@host`, as messages name it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }

    fn base(&self) -> Command {
        let mut cmd = Command::new("ssh");
        if let Some(config) = std::env::var_os(env::OPSWORKS_SSH_CONFIG).filter(|c| !c.is_empty()) {
            cmd.arg("-F").arg(config);
        }
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ControlMaster=auto",
            "-o",
            "ControlPersist=60",
        ]);
        cmd.arg("-o").arg(format!(
            "ControlPath={}",
            self.control.path().join("c").display()
        ));
        if let Some(u) = &self.user {
            cmd.args(["-l", u]);
        }
        if let Some(k) = &self.key {
            cmd.arg("-i").arg(k).args(["-o", "IdentitiesOnly=yes"]);
        }
        cmd
    }

    /// The command that runs `remote` (a shell command line) on the host.
    fn command(&self, remote: &str) -> Command {
        let mut cmd = self.base();
        cmd.arg("--").arg(&self.host).arg(remote);
        cmd
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        // Ends the shared connection's master process.
        let _ = self
            .base()
            .args(["-O", "exit", "--", &self.host])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Target {
    /// How messages name the machine.
    pub fn name(&self) -> String {
        match self {
            Target::Ssh(s) => s.destination(),
            Target::Local => "this machine".into(),
        }
    }

    /// Runs `script` with `sh -c` on the machine, feeding it `stdin`; `each_line` sees its
    /// standard output line by line as it comes (when given).
    pub fn sh(
        &self,
        script: &str,
        stdin: &[u8],
        each_line: Option<&dyn Fn(&str)>,
    ) -> Result<Ran, RegisterError> {
        let mut cmd = match self {
            Target::Ssh(s) => s.command(&format!("sh -c {}", quote(script))),
            Target::Local => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(script);
                c
            }
        };
        run(&mut cmd, stdin, each_line)
            .map_err(|e| RegisterError::Local(format!("running {}: {e}", program(self))))
    }

    /// Turns a failed SSH connection into its one clear message; `None` when the connection
    /// worked (the command itself failed, or succeeded).
    pub fn connection_failure(&self, ran: &Ran) -> Option<RegisterError> {
        let Target::Ssh(s) = self else { return None };
        if ran.code != Some(255) {
            return None;
        }
        let text = ran.stderr.trim();
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(text);
        let has = |needle: &str| text.contains(needle);
        Some(
            if has("Permission denied") || has("Too many authentication failures") {
                RegisterError::KeyRefused {
                    destination: s.destination(),
                    detail: last.to_string(),
                }
            } else if has("Host key verification failed") || has("IDENTIFICATION HAS CHANGED") {
                RegisterError::HostKey {
                    host: s.host.clone(),
                    detail: last.to_string(),
                }
            } else {
                RegisterError::Unreachable {
                    host: s.host.clone(),
                    detail: if last.is_empty() {
                        "ssh exited with 255".into()
                    } else {
                        last.to_string()
                    },
                }
            },
        )
    }
}

fn program(t: &Target) -> &'static str {
    match t {
        Target::Ssh(_) => "ssh",
        Target::Local => "sh",
    }
}

/// Runs `cmd` with `stdin` written to it, collecting its output (and passing stdout lines to
/// `each_line` as they come).
fn run(cmd: &mut Command, stdin: &[u8], each_line: Option<&dyn Fn(&str)>) -> std::io::Result<Ran> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut input = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A command that exits without reading its input is not an error here.
        let _ = input.write_all(&data);
    });
    let mut err = child
        .stderr
        .take()
        .ok_or_else(|| std::io::Error::other("no stderr"))?;
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let out = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let mut stdout = String::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line?;
        if let Some(f) = each_line {
            f(&line);
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait()?;
    let _ = writer.join();
    let stderr = errors.join().unwrap_or_default();
    Ok(Ran {
        stdout,
        stderr,
        ok: status.success(),
        code: status.code(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_remote_shell() {
        assert_eq!(quote("/tmp/x/opsworks"), "/tmp/x/opsworks");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn local_commands_stream_their_lines_and_report_their_end() {
        let seen = std::sync::Mutex::new(Vec::new());
        let each = |l: &str| seen.lock().unwrap().push(l.to_string());
        let ran = Target::Local
            .sh(
                "cat; echo two; echo oops >&2; exit 3",
                b"one\n",
                Some(&each),
            )
            .unwrap();
        assert!(!ran.ok);
        assert_eq!(ran.code, Some(3));
        assert_eq!(*seen.lock().unwrap(), vec!["one", "two"]);
        assert_eq!(ran.stderr.trim(), "oops");
        assert!(Target::Local.connection_failure(&ran).is_none());
    }

    #[test]
    fn ssh_connection_failures_get_their_own_messages() {
        let ssh = Target::Ssh(Ssh::new("10.9.9.9", Some("deploy"), None).unwrap());
        let failed = |stderr: &str| Ran {
            stdout: String::new(),
            stderr: stderr.into(),
            ok: false,
            code: Some(255),
        };
        let refused = ssh
            .connection_failure(&failed("deploy@10.9.9.9: Permission denied (publickey)."))
            .unwrap();
        assert!(
            refused.to_string().contains("refused the SSH key"),
            "{refused}"
        );
        let away = ssh
            .connection_failure(&failed(
                "ssh: connect to host 10.9.9.9 port 22: No route to host",
            ))
            .unwrap();
        assert!(away.to_string().contains("cannot reach 10.9.9.9"), "{away}");
        let ok = Ran {
            code: Some(1),
            ..failed("")
        };
        assert!(ssh.connection_failure(&ok).is_none());
        assert!(Ssh::new("-oProxyCommand=x", None, None).is_err());
    }
}
