//! Running commands inside a running machine: with captured output ([`Provider::exec`]) or
//! attached to the caller's terminal ([`LocalProvider::exec_attached`], behind `opsworks exec`).
//! Both re-execute the helper's `exec`, which enters the machine's namespaces, root and group.
//!
//! [`Provider::exec`]: crate::Provider::exec

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};

use super::{LocalProvider, running_pid};
use crate::error::{Error, Result};
use crate::init::{EXEC_ERROR_CODE, EXEC_ERROR_PREFIX};
use crate::spec::{ExecOutput, validate_id};

fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl LocalProvider {
    /// The helper's `exec` command line for the running machine `id`, without the command.
    fn exec_command(&self, id: &str) -> Result<Command> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        if !dir.join("machine.json").exists() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        let Some((pid, start_time)) = running_pid(&dir) else {
            return Err(Error::NotRunning { id: id.to_string() });
        };
        let mut command = Command::new(&self.inner.helper);
        command
            .args(&self.inner.helper_args)
            .arg("exec")
            .arg(pid.to_string())
            .arg(start_time.to_string())
            .env_clear();
        if let Some(group) = self.group_of(&dir)? {
            for dir in group.dirs.iter().filter(|d| d.exists()) {
                command.arg("--cgroup").arg(dir);
            }
        }
        Ok(command)
    }

    fn helper_error(&self, id: &str, e: std::io::Error) -> Error {
        Error::Exec {
            id: id.to_string(),
            reason: format!(
                "cannot start the helper {}: {e}",
                self.inner.helper.display()
            ),
        }
    }

    /// Blocking form of [`Provider::exec`](crate::Provider::exec).
    pub fn exec_blocking(&self, id: &str, argv: &[String]) -> Result<ExecOutput> {
        let exec_error = |reason: String| Error::Exec {
            id: id.to_string(),
            reason,
        };
        if argv.is_empty() {
            validate_id(id)?;
            return Err(exec_error("empty command".to_string()));
        }
        let out = self
            .exec_command(id)?
            .arg("--")
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.helper_error(id, e))?;
        let exit_code = exit_code(out.status);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if exit_code == EXEC_ERROR_CODE
            && let Some(reason) = stderr.trim().strip_prefix(EXEC_ERROR_PREFIX)
        {
            return Err(exec_error(reason.to_string()));
        }
        Ok(ExecOutput {
            exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Runs `argv` inside the running machine `id` on the caller's standard input, output and
    /// error (its terminal, if it has one), as root; an empty `argv` runs root's login shell.
    /// Returns the command's exit status (128 + the signal's number when a signal ended it).
    ///
    /// Entering a machine takes root on the host: anyone else gets a clear error, not a
    /// half-entered machine. Failures inside (a command that does not exist) are reported on
    /// stderr by the helper with status 127, or 125 when the machine could not be entered.
    pub fn exec_attached(&self, id: &str, argv: &[String]) -> Result<i32> {
        crate::host::ensure_root("entering a machine")?;
        let mut command = self.exec_command(id)?;
        command.arg("--attach");
        if let Some(term) = std::env::var_os("TERM") {
            command.arg("--term").arg(term);
        }
        let status = command
            .arg("--")
            .args(argv)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| self.helper_error(id, e))?;
        Ok(exit_code(status))
    }
}
